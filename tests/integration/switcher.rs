//! The dns-switcher function moves the sandbox's Route 53 failover records, only to the
//! recorded writer.

use anyhow::{bail, ensure};
use libtest_mimic::Trial;
use serde_json::{Value, json};
use switchyard_aws::{control_table::ControlTable, route53_records::FailoverRecords, sdk_config};
use switchyard_core::{
    WriterClaim, WriterEpoch,
    ports::{ClaimStore, TakeoverGuard, TrafficRouter},
};
use switchyard_sandbox::{
    Sandbox,
    lambda::{Invocation, LambdaService},
};
use switchyard_tests::own_sandbox_trial;

pub fn trials() -> Vec<Trial> {
    vec![
        own_sandbox_trial("switcher::both_modes_move_traffic_only_to_the_recorded_writer", "switcher", |sb| {
            Box::pin(switch(sb))
        }),
        own_sandbox_trial(
            "switcher::after_a_failover_and_a_failback_the_next_failover_s_dns_names_the_survivor",
            "switcher-latch",
            |sb| Box::pin(no_latch(sb)),
        ),
    ]
}

/// #17 schedule 5: a failover to us-east-2, a failback to us-east-1, then us-east-1 is cut
/// off and us-east-2 takes over again. The DNS answer must name us-east-2, using only the
/// survivor and the claim store: in the `health-check` mode the old design latched "not
/// serving" in the region that failed (the alarm of the survivor's record lived there), so
/// both records ended unhealthy and Route 53 answered the dead primary. Each handover is
/// recorded and activated as the promoter does, then the region's switcher runs in the
/// default mode.
async fn no_latch(sb: &Sandbox) -> anyhow::Result<()> {
    use switchyard_sandbox::world::{CutMode, Links, Shape, control};
    let d = sb.deployment();
    let (east1, east2) = (d.regions.primary.clone(), d.regions.standby.clone());
    let config2 = sdk_config(&sb.aws_target(), &east2).await;
    let via_east2 = ControlTable::new(aws_sdk_dynamodb::Client::new(&config2), d.regional_names(&east2).control_table);
    let hand_over = |to: &switchyard_core::Region, epoch: u64| {
        let (to, via) = (to.clone(), &via_east2);
        async move {
            let next = WriterClaim::pending(WriterEpoch(epoch), to.clone());
            via.bump(WriterEpoch(epoch - 1), next.clone(), TakeoverGuard::Waived).await?;
            via.activate(&next).await?;
            let answer = invoke(sb.lambda(to.as_str())?, json!({ "targetRegion": to, "epoch": epoch })).await?;
            ensure!(answer.as_ref().is_ok_and(|a| a["state"] == "done"), "switch to {to} at epoch {epoch}: {answer:?}");
            control::tick(sb.world.control_port).await?;
            anyhow::Ok(())
        }
    };
    hand_over(&east2, 2).await?;
    answers(sb, &east2, "after the failover").await?;
    hand_over(&east1, 3).await?;
    answers(sb, &east1, "after the failback").await?;

    let mut links = Links::default();
    links
        .apply(&Shape::Isolate(east1.clone()), CutMode::Refuse, &sb.world.places, sb.world.witness())
        .map_err(anyhow::Error::msg)?;
    control::set_links(sb.world.control_port, &links).await?;
    let outcome = async {
        hand_over(&east2, 4).await?;
        answers(sb, &east2, "after the second failover, us-east-1 cut off").await?;
        anyhow::Ok(())
    }
    .await;
    control::set_links(sb.world.control_port, &Links::default()).await?;
    outcome
}

/// The DNS answer names `region` once Route 53's checks follow the claim: within
/// `FailureThreshold` intervals of the change, and one more for the sampling.
async fn answers(sb: &Sandbox, region: &switchyard_core::Region, when: &str) -> anyhow::Result<()> {
    let within = switchyard_core::dns::check_follows_within() + switchyard_core::dns::CHECK_REQUEST_INTERVAL;
    let found = switchyard_tests::eventually(within, when, || async {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        Ok((switchyard_sandbox::dns::answer(sb).await?.region == *region).then_some(()))
    })
    .await;
    if found.is_err() {
        bail!("{when}, the answer is still:\n{}", switchyard_sandbox::dns::answer(sb).await?);
    }
    Ok(())
}

async fn invoke(service: &LambdaService, payload: Value) -> anyhow::Result<Result<Value, String>> {
    Ok(match service.invoke("dns-switcher", &payload).await? {
        Invocation::Ok(v) => Ok(v),
        Invocation::FunctionError { error_type, .. } => Err(error_type),
    })
}

async fn switch(sb: &Sandbox) -> anyhow::Result<()> {
    let d = sb.deployment();
    let east2 = sb.lambda("us-east-2")?;
    let request = |epoch: u64| json!({ "targetRegion": "us-east-2", "epoch": epoch, "mode": "records" });
    let config = sdk_config(&sb.aws_target(), &d.regions.standby).await;
    let global = &sb.resources.as_ref().map(|r| r.global.clone()).ok_or_else(|| anyhow::anyhow!("not provisioned"))?;
    let records = FailoverRecords::new(aws_sdk_route53::Client::new(&config), &global.hosted_zone_id, d.api_record());
    ensure!(records.current_target().await?.as_str() == "us-east-1", "the sandbox does not start on us-east-1");

    // Before the handover is recorded, the switcher refuses and traffic stays.
    ensure!(invoke(east2, request(2)).await? == Err("NotReady".into()), "switched before the epoch was recorded");
    ensure!(records.current_target().await?.as_str() == "us-east-1", "traffic moved anyway");

    // Record the handover in us-east-2 (as rds-promoter's `record` does), then switch.
    let table =
        ControlTable::new(aws_sdk_dynamodb::Client::new(&config), d.regional_names(&d.regions.standby).control_table);
    table
        .bump(WriterEpoch(1), WriterClaim::active(WriterEpoch(2), d.regions.standby.clone()), TakeoverGuard::Waived)
        .await?;
    let Ok(first) = invoke(east2, request(2)).await? else { bail!("switch refused") };
    ensure!(first["state"] == "done" && first["changed"] == true && first["previousTarget"] == "us-east-1", "{first}");

    // Read back: us-east-2 PRIMARY, us-east-1 SECONDARY, health checks kept.
    let listed = records.records().await?;
    let roles: Vec<(String, String, bool)> = listed
        .iter()
        .map(|r| {
            (
                r.set_identifier().unwrap_or_default().to_owned(),
                r.failover().map(|f| f.as_str().to_owned()).unwrap_or_default(),
                r.health_check_id()
                    == global.health_checks.get(r.set_identifier().unwrap_or_default()).map(String::as_str),
            )
        })
        .collect();
    let expected = [("us-east-1", "SECONDARY", true), ("us-east-2", "PRIMARY", true)]
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c));
    ensure!(roles == expected, "records after the switch: {roles:?}");

    // Again: nothing changes. An older epoch, or the old writer, is refused.
    let Ok(again) = invoke(east2, request(2)).await? else { bail!("repeat refused") };
    ensure!(again["changed"] == false, "{again}");
    ensure!(invoke(east2, request(1)).await? == Err("StaleEpoch".into()), "an epoch-1 request was taken");
    let failback = json!({ "targetRegion": "us-east-1", "epoch": 2, "mode": "records" });
    ensure!(
        invoke(east2, failback).await? == Err("InvalidInput".into()),
        "traffic sent to a region that is not the writer"
    );
    ensure!(records.current_target().await?.as_str() == "us-east-2", "traffic left the writer");

    // The default mode, health-check: nothing to write (the checks follow the claim-aware
    // endpoints), the claim is confirmed; the records stay as they are.
    let Ok(confirmed) = invoke(east2, json!({ "targetRegion": "us-east-2", "epoch": 2 })).await? else {
        bail!("health-check mode refused")
    };
    ensure!(
        confirmed["mode"] == "health-check"
            && confirmed["state"] == "done"
            && confirmed["changed"] == false
            && confirmed["previousTarget"].is_null(),
        "{confirmed}"
    );
    ensure!(records.current_target().await?.as_str() == "us-east-2", "the records moved in health-check mode");
    Ok(())
}
