//! The dns-switcher function moves the sandbox's Route 53 failover records, only to the
//! recorded writer.

use anyhow::{bail, ensure};
use libtest_mimic::Trial;
use serde_json::{Value, json};
use switchyard_aws::{control_table::ControlTable, route53_records::FailoverRecords, sdk_config};
use switchyard_core::{
    WriterClaim, WriterEpoch,
    ports::{TrafficRouter, WriterRegistry},
};
use switchyard_tests::{INSTANCE_PREFIX, trial};
use xtask::sandbox::{
    Sandbox,
    lambda::{Invocation, LambdaService},
};

pub fn trials() -> Vec<Trial> {
    vec![
        trial("switcher::records_mode_moves_traffic_only_to_the_recorded_writer", || Box::pin(records_mode()))
            .with_kind("sandbox"),
    ]
}

async fn invoke(service: &LambdaService, payload: Value) -> anyhow::Result<Result<Value, String>> {
    Ok(match service.invoke("dns-switcher", &payload).await? {
        Invocation::Ok(v) => Ok(v),
        Invocation::FunctionError { error_type, .. } => Err(error_type),
    })
}

async fn records_mode() -> anyhow::Result<()> {
    let sb = Sandbox::up(&format!("{INSTANCE_PREFIX}{}-switcher", std::process::id())).await?;
    let outcome = switch(&sb).await;
    let stopped = sb.down();
    outcome?;
    stopped
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
    table.replace(WriterEpoch(1), WriterClaim { epoch: WriterEpoch(2), writer: d.regions.standby.clone() }).await?;
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
    Ok(())
}
