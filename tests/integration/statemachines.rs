//! The state machines executed in the sandbox (aws-local-stepfunctions), every task the real
//! function through the Lambda Invoke API of `cargo lambda watch`, SNS publishing to moto.
//! Wait and retry pauses are shortened; nothing else is stood in for.

use std::time::Duration;

use anyhow::{Context, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use libtest_mimic::Trial;
use serde_json::{Value, json};
use switchyard_aws::{control_table::ControlTable, sdk_config};
use switchyard_core::ports::ReplicationMonitor;
use switchyard_core::{order::Timestamp, ports::ClaimStore};
use switchyard_sandbox::{
    Sandbox,
    event_source::OrdersEventSource,
    lambda::Invocation,
    process,
    runner::{Execution, Start, Timing, execute},
};
use switchyard_tests::own_sandbox_trial;

use crate::{
    consumer::{order, publish},
    promoter::{one_second_budget, replica_behind},
};

pub fn trials() -> Vec<Trial> {
    vec![
        own_sandbox_trial("statemachines::failover_happy_path_leaves_a_timeline", "sm-happy", |sb| {
            Box::pin(happy_failover(sb))
        }),
        own_sandbox_trial("statemachines::the_lag_gate_stops_an_unplanned_failover", "sm-gate", |sb| {
            Box::pin(lag_gate(sb))
        }),
        own_sandbox_trial("statemachines::a_transient_promoter_error_is_retried", "sm-retry", |sb| {
            Box::pin(transient(sb))
        }),
        own_sandbox_trial("statemachines::a_fatal_error_is_caught_releases_the_lock_and_notifies", "sm-fatal", |sb| {
            Box::pin(fatal(sb))
        }),
        own_sandbox_trial(
            "statemachines::an_old_writer_out_of_connection_slots_does_not_block_the_failover",
            "sm-sick",
            |sb| Box::pin(sick_old_writer(sb)),
        ),
        own_sandbox_trial(
            "statemachines::a_failover_whose_old_writer_answers_healthy_from_here_changes_nothing",
            "sm-confirm",
            |sb| Box::pin(unconfirmed_outage(sb)),
        ),
        own_sandbox_trial("statemachines::cooldown_refuses_a_second_failover", "sm-cool", |sb| Box::pin(cooldown(sb))),
        own_sandbox_trial("statemachines::concurrent_starts_for_one_incident_do_the_work_once", "sm-storm", |sb| {
            Box::pin(storm(sb))
        }),
        own_sandbox_trial("statemachines::switchover_then_failback_restores_the_layout", "sm-switch", |sb| {
            Box::pin(switchover_and_back(sb))
        }),
        own_sandbox_trial(
            "statemachines::a_switchover_into_a_standby_that_cannot_catch_up_leaves_the_writer_writing",
            "sm-stalled",
            |sb| Box::pin(stalled_switchover(sb)),
        ),
        own_sandbox_trial(
            "statemachines::an_aborted_switchover_lifts_its_fence_frees_the_lock_and_pages",
            "sm-abort",
            |sb| Box::pin(aborted_switchover(sb)),
        ),
        own_sandbox_trial("statemachines::no_automatic_failback_once_the_cooldown_has_passed", "sm-failback", |sb| {
            Box::pin(no_automatic_failback(sb))
        }),
        own_sandbox_trial("statemachines::an_isolated_writer_applies_nothing_once_cut_off", "sm-partition", |sb| {
            Box::pin(isolated_writer(sb))
        }),
        own_sandbox_trial(
            "statemachines::with_only_the_pair_cut_the_old_writer_s_last_commit_precedes_the_new_one_s_first",
            "sm-pair-cut",
            |sb| Box::pin(pair_cut(sb)),
        ),
        own_sandbox_trial(
            "statemachines::with_the_witness_down_and_the_pair_cut_no_region_applies_or_takes_over",
            "sm-no-majority",
            |sb| Box::pin(no_majority(sb)),
        ),
        own_sandbox_trial(
            "statemachines::a_region_lost_while_the_pair_is_cut_loses_no_acknowledged_order",
            "sm-cut",
            |sb| Box::pin(lost_while_cut(sb)),
        ),
    ]
}

/// The input the failover rule's input transformer gives the state machine.
fn alarm_input() -> Value {
    json!({
        "detectedAt": switchyard_core::order::Timestamp::now().to_string(),
        "trigger": "switchyard-sandbox-peer-unhealthy",
        "reason": "Threshold Crossed: 3 out of the last 3 datapoints were less than the threshold (1.0)."
    })
}

/// An operator's break-glass input for `operator-failover`: the alarm's, with
/// `allowDataLoss` and the reason a person gives.
fn operator_input(reason: &str) -> Value {
    let mut input = alarm_input();
    input["trigger"] = json!("manual");
    input["reason"] = json!(reason);
    input["allowDataLoss"] = json!(true);
    input
}

fn ensure_path(x: &Execution, states: &[&str]) -> anyhow::Result<()> {
    let path = x.path();
    let mut at = 0;
    for s in states {
        match path[at..].iter().position(|p| p == s) {
            Some(i) => at += i + 1,
            None => anyhow::bail!("state {s} not entered in order; path {path:?}\n{}", x.history()),
        }
    }
    Ok(())
}

/// An SQS queue subscribed to `region`'s alerts topic: what an on-call pager would get.
struct Pager {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl Pager {
    async fn subscribe(sb: &Sandbox, region: &str) -> anyhow::Result<Pager> {
        let config = sdk_config(&sb.aws_target(), &sb.region(region)?.region).await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let url = sqs.create_queue().queue_name(format!("pager-{region}")).send().await?.queue_url.context("url")?;
        let arn = format!("arn:aws:sqs:{region}:123456789012:pager-{region}");
        let topic = &sb.resources.as_ref().context("not provisioned")?.regions[region].alerts_topic_arn;
        aws_sdk_sns::Client::new(&config)
            .subscribe()
            .topic_arn(topic)
            .protocol("sqs")
            .endpoint(arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await?;
        Ok(Pager { sqs, url })
    }

    async fn messages(&self) -> anyhow::Result<Vec<String>> {
        let mut all = Vec::new();
        loop {
            let out = self.sqs.receive_message().queue_url(&self.url).max_number_of_messages(10).send().await?;
            if out.messages().is_empty() {
                return Ok(all);
            }
            for m in out.messages() {
                all.push(m.body().unwrap_or_default().to_owned());
                self.sqs
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await?;
            }
        }
    }
}

async fn table_item(sb: &Sandbox, region: &str, pk: &str) -> anyhow::Result<Option<Value>> {
    let config = sdk_config(&sb.aws_target(), &sb.region(region)?.region).await;
    let table = sb.deployment().regional_names(&sb.region(region)?.region).control_table;
    let out = aws_sdk_dynamodb::Client::new(&config)
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await?;
    Ok(out.item.map(|item| {
        let mut v = serde_json::Map::new();
        for (k, a) in item {
            let value = match a {
                AttributeValue::S(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
                AttributeValue::N(n) => n.parse::<f64>().map(Value::from).unwrap_or(Value::String(n)),
                other => Value::String(format!("{other:?}")),
            };
            v.insert(k, value);
        }
        Value::Object(v)
    }))
}

/// The writer claim of a region's control table, as `(epoch, writer)`.
async fn claim(sb: &Sandbox, region: &str) -> anyhow::Result<(u64, String)> {
    let r = &sb.region(region)?.region;
    let config = sdk_config(&sb.aws_target(), r).await;
    let table =
        ControlTable::new(aws_sdk_dynamodb::Client::new(&config), sb.deployment().regional_names(r).control_table);
    let claim = table.strong_read().await.proven()?;
    Ok((claim.epoch.0, claim.writer.to_string()))
}

/// Runs the event source of `region` until `stop` is set: the consumer applies as it would
/// behind its SQS event source mapping.
fn keep_consuming<'a>(
    sb: &'a Sandbox,
    region: &'static str,
) -> (tokio::sync::watch::Sender<bool>, impl Future<Output = anyhow::Result<()>> + 'a) {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let work = async move {
        let mut source = OrdersEventSource::new(sb, region).await?;
        // Orders the shadow consumer kept come back after SHADOW_RECHECK (it says so to the
        // queue); orders kept for an error come back after the visibility timeout (60 s in
        // the model): shortened here, as the wait states are.
        source.visibility = Some(Duration::from_secs(1));
        while !*rx.borrow() {
            source.poll().await?;
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            }
        }
        anyhow::Ok(())
    };
    (tx, work)
}

/// us-east-1's database fails; the failover in us-east-2 moves the writer, the traffic and the
/// order flow, and the timeline shows each step.
async fn happy_failover(sb: &Sandbox) -> anyhow::Result<()> {
    let pager = Pager::subscribe(sb, "us-east-2").await?;
    // Orders before the outage, applied by us-east-1 and replicated.
    let before: Vec<_> = (0..5).map(|n| order("sm-before", n)).collect();
    publish(sb, "us-east-1", &before).await?;
    OrdersEventSource::new(sb, "us-east-1").await?.drain(5).await?;
    sb.crash_database("us-east-1")?;
    // Acknowledged during the outage: in both queues, applied by nobody yet.
    let during: Vec<_> = (0..4).map(|n| order("sm-during", n)).collect();
    publish(sb, "us-east-2", &during).await?;

    switchyard_tests::arm(sb, "us-east-2")?;
    let start = Start::new("failover", "us-east-2", "alarm-1", alarm_input(), Timing::FAST)?;
    let (stop, consuming) = keep_consuming(sb, "us-east-2");
    let run = async {
        let x = execute(sb, &start).await;
        let _ = stop.send(true);
        x
    };
    let (x, consumed) = tokio::join!(run, consuming);
    let x = x?;
    consumed?;
    ensure!(x.succeeded(), "failover did not succeed:\n{}", x.history());
    ensure_path(
        &x,
        &[
            "Begin",
            "Gate",
            "Fence",
            "Promote",
            "Record",
            "WaitForLease",
            "Activate",
            "SwitchTraffic",
            "AwaitConsumer",
            "VerifyHealth",
            "EndSucceeded",
            "NotifySuccess",
        ],
    )?;
    let out = x.output.clone().context("no output")?;
    let t = &out["timeline"];
    for mark in ["detected", "decided", "promoted", "activated", "trafficMoved", "firstOrderApplied", "ended"] {
        ensure!(t[mark].is_string(), "timeline lacks {mark}: {t}");
    }
    // The lease: activated at least WRITER_LEASE after the bump (the fast timing shortens
    // every other Wait, never this one), and no order applied under epoch 2 before it.
    let at = |mark: &str| -> anyhow::Result<Timestamp> {
        t[mark].as_str().context(mark.to_owned())?.parse().map_err(|e| anyhow::anyhow!("{mark}: {e}"))
    };
    let (promoted, activated, first) = (at("promoted")?, at("activated")?, at("firstOrderApplied")?);
    let lease_ms = activated.unix_millis() - promoted.unix_millis();
    ensure!(lease_ms >= switchyard_core::WRITER_LEASE.as_millis() as i64, "activated {lease_ms} ms after the bump");
    ensure!(first >= activated, "an order applied under epoch 2 at {first}, before the activation at {activated}");
    ensure!(t["status"] == "succeeded" && t["epoch"] == 2 && t["rtoSeconds"].as_f64().is_some(), "{t}");
    ensure!(t["rpo"]["lagSeconds"].as_f64().is_some() && t["rpo"]["ordersInLag"].is_u64(), "no RPO figure: {t}");
    // us-east-2 was eligible: every acknowledged order was durable there (#16).
    ensure!(t["rpo"]["ordersAtRisk"] == 0, "acknowledged orders at risk: {t}");
    // The same timeline is in the control table; the lock is free.
    let stored = table_item(sb, "us-east-2", "execution#alarm-1").await?.context("no timeline item")?;
    ensure!(stored["timeline"] == *t, "stored {stored} differs from the output {t}");
    ensure!(table_item(sb, "us-east-2", "lock").await?.is_none(), "the lock is still held");
    // Both regions read the new writer from the one claim store.
    for region in ["us-east-2", "us-east-1"] {
        ensure!(claim(sb, region).await? == (2, "us-east-2".into()), "{region}'s claim");
    }
    let pages = pager.messages().await?;
    ensure!(
        pages.iter().any(|m| m.contains("alarm-1 (succeeded)") && m.contains("detected → traffic moved")),
        "no success notification with the RTO: {pages:?}"
    );
    // #18: RTO ends when traffic moved, which is when Route 53 answers us-east-2: the
    // sandbox's checkers (every 10 s, threshold 2) say when the answer changed, and the
    // timeline's figure bounds it (a model's bound: the checkers use the same constants).
    let moved = at("trafficMoved")?;
    let observed = switchyard_tests::eventually(Duration::from_secs(45), "the DNS answer names us-east-2", || async {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let answer = switchyard_sandbox::dns::answer(sb).await?;
        if answer.region.as_str() != "us-east-2" {
            return Ok(None);
        }
        let checks = switchyard_sandbox::world::control::dns_checks(sb.world.control_port).await?;
        Ok(checks.values().map(|c| c.since).max())
    })
    .await?;
    let early_ms = moved.unix_millis() - observed.unix_millis();
    let bound_ms = switchyard_core::dns::check_follows_within().as_millis() as i64;
    ensure!(
        (-1000..=bound_ms).contains(&early_ms),
        "the DNS answer moved at {observed}, the timeline says traffic moved by {moved}"
    );
    eprintln!(
        "      failover: RTO {:.1} s (detected → traffic moved: Route 53's answer, at the latest; the sandbox's \
         checkers moved it {:.1} s before that bound), of which the confirmation {:.1} s and the lease {:.1} s \
         (promoted → activated), first order {:.1} s after the activation; {} orders applied under epoch 2",
        t["rtoSeconds"].as_f64().unwrap_or(0.0),
        early_ms as f64 / 1000.0,
        x.state_ms("ConfirmOutage").unwrap_or(0) as f64 / 1000.0,
        lease_ms as f64 / 1000.0,
        (first.unix_millis() - activated.unix_millis()) as f64 / 1000.0,
        x.output.as_ref().map(|o| o["steps"]["consumer"]["appliedUnderEpoch"].clone()).unwrap_or_default(),
    );
    Ok(())
}

/// The replica is behind a one-second budget: the unplanned failover stops at the gate, names
/// the orders in the lag, releases the lock and pages; nothing moved.
async fn lag_gate(sb: &Sandbox) -> anyhow::Result<()> {
    let pager = Pager::subscribe(sb, "us-east-2").await?;
    let service = one_second_budget(sb, &"us-east-2".parse().map_err(|e| anyhow::anyhow!("{e}"))?, "sm-gate")?;
    let outcome = async {
        service.wait_ready()?;
        let replica = replica_behind(sb).await?;
        switchyard_tests::arm(sb, "us-east-2")?;
        let mut start = Start::new("failover", "us-east-2", "alarm-gate", alarm_input(), Timing::FAST)?;
        start.lambda_port = Some(service.port);
        let x = execute(sb, &start).await;
        replica.batch_execute("SELECT pg_wal_replay_resume()").await?;
        let x = x?;
        ensure!(
            !x.succeeded() && x.error.as_deref() == Some("LagAboveBudget"),
            "expected LagAboveBudget:\n{}",
            x.history()
        );
        ensure!(!x.path().iter().any(|s| s == "Fence" || s == "Promote"), "went past the gate:\n{}", x.history());
        ensure_path(&x, &["Begin", "Gate", "EndFailed", "NotifyFailure", "Failed"])?;
        let stored = table_item(sb, "us-east-2", "execution#alarm-gate").await?.context("no timeline")?;
        ensure!(
            stored["timeline"]["status"] == "failed" && stored["timeline"]["error"] == "LagAboveBudget",
            "{stored}"
        );
        ensure!(table_item(sb, "us-east-2", "lock").await?.is_none(), "the lock is still held");
        ensure!(claim(sb, "us-east-2").await? == (1, "us-east-1".into()), "the claim moved");
        let pages = pager.messages().await?;
        ensure!(
            pages.iter().any(|m| m.contains("orders in the lag") && m.contains("did not move")),
            "no page naming the orders in the lag: {pages:?}"
        );
        Ok(())
    }
    .await;
    process::stop_group(service.pid, "TERM", Duration::from_secs(10))?;
    outcome
}

/// The target database is down when the promotion starts: the promoter answers
/// `ServiceUnavailable`, the state machine retries with backoff, the database returns, the
/// promotion succeeds.
async fn transient(sb: &Sandbox) -> anyhow::Result<()> {
    switchyard_tests::arm(sb, "us-east-2")?;
    sb.stop_database("us-east-2")?;
    // us-east-1's order API is down (the outage the alarm saw): the failover's confirmation
    // from us-east-2 finds no healthy old writer.
    sb.set_api("us-east-1", false).await?;
    // With the target down its lag cannot be read at all: a person accepts that, so the
    // execution reaches the promotion. The automatic entry refuses the override before it
    // touches anything; the operator entry takes it with a reason.
    let input = operator_input("INC-18: us-east-1 down, us-east-2's lag unreadable while its database restarts");
    let refused =
        execute(sb, &Start::new("failover", "us-east-2", "alarm-override", input.clone(), Timing::FAST)?).await?;
    ensure!(
        refused.error.as_deref() == Some("InvalidInput") && !refused.path().iter().any(|s| s == "Fence"),
        "the automatic failover took an override:\n{}",
        refused.history()
    );
    let mut start = Start::new("operator-failover", "us-east-2", "alarm-transient", input, Timing::FAST)?;
    start.timing = Timing::Shortened { wait_ms: 200, retry_ms: 1500 };
    let restore = async {
        // The fence of us-east-1 comes right before the promotion.
        let old = sb.node("us-east-1")?;
        switchyard_tests::eventually(Duration::from_secs(30), "us-east-1 fenced", || async {
            Ok((!old.accepts_writes().await.unwrap_or(true)).then_some(()))
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(700)).await;
        sb.start_database("us-east-2")
    };
    let (x, restored) = tokio::join!(execute(sb, &start), restore);
    sb.set_api("us-east-1", true).await?;
    restored?;
    let x = x?;
    ensure!(x.succeeded(), "did not recover:\n{}", x.history());
    let failures = x.failures();
    ensure!(
        failures.iter().any(|(state, error)| state == "Promote" && error == "ServiceUnavailable"),
        "no transient promotion failure seen: {failures:?}\n{}",
        x.history()
    );
    ensure!(!x.retried("Promote").is_empty(), "Promote was not retried:\n{}", x.history());
    ensure!(claim(sb, "us-east-2").await? == (2, "us-east-2".into()), "the claim did not move");
    // The evidence says a person overrode, and why; the page's text says it too.
    let t = &x.output.as_ref().context("no output")?["timeline"];
    ensure!(
        t["entry"] == "operator"
            && t["overrides"] == json!(["allowDataLoss"])
            && t["reason"].as_str().is_some_and(|r| r.starts_with("INC-18")),
        "{t}"
    );
    Ok(())
}

/// After the promotion the dns-switcher fails with a fatal error (its configuration lacks the
/// hosted zone): caught, the timeline says failed with the cause, the lock is released and
/// the page says traffic was not moved. Nothing is undone (never fails back).
async fn fatal(sb: &Sandbox) -> anyhow::Result<()> {
    let pager = Pager::subscribe(sb, "us-east-2").await?;
    let region: switchyard_core::Region = "us-east-2".parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut env = sb.function_environment(&region);
    env.retain(|(k, _)| *k != switchyard_core::config::keys::HOSTED_ZONE_ID);
    let service =
        switchyard_sandbox::lambda::start(&region, &env, process::free_port()?, &sb.dir.join("lambda-sm-fatal.log"))?;
    let outcome = async {
        service.wait_ready()?;
        switchyard_tests::arm(sb, "us-east-2")?;
        crash_east1_after_heartbeat(sb).await?;
        let mut start = Start::new("failover", "us-east-2", "alarm-fatal", alarm_input(), Timing::FAST)?;
        start.lambda_port = Some(service.port);
        let x = execute(sb, &start).await?;
        ensure!(x.error.as_deref() == Some("MissingConfig"), "expected MissingConfig:\n{}", x.history());
        ensure!(x.retried("SwitchTraffic").is_empty(), "a fatal error was retried:\n{}", x.history());
        ensure_path(&x, &["Promote", "Record", "SwitchTraffic", "EndFailed", "NotifyFailure", "Failed"])?;
        let stored = table_item(sb, "us-east-2", "execution#alarm-fatal").await?.context("no timeline")?;
        let t = &stored["timeline"];
        ensure!(t["status"] == "failed" && t["error"] == "MissingConfig" && t["promoted"].is_string(), "{t}");
        ensure!(t["cause"].as_str().is_some_and(|c| c.contains("SWITCHYARD_HOSTED_ZONE_ID")), "cause: {t}");
        ensure!(table_item(sb, "us-east-2", "lock").await?.is_none(), "the lock is still held");
        ensure!(claim(sb, "us-east-2").await? == (2, "us-east-2".into()), "the promotion was undone");
        let pages = pager.messages().await?;
        ensure!(pages.iter().any(|m| m.contains("traffic was not moved")), "no actionable page: {pages:?}");
        Ok(())
    }
    .await;
    process::stop_group(service.pid, "TERM", Duration::from_secs(10))?;
    outcome
}

/// us-east-1's database crashes right after a heartbeat of its health probe, as it would in
/// production (the probe writes one every interval): the replica's last replayed commit is
/// then recent, which is what bounds the lag when the writer is gone.
async fn crash_east1_after_heartbeat(sb: &Sandbox) -> anyhow::Result<()> {
    let probe = sb.lambda("us-east-1")?.invoke("health-probe", &json!({ "rounds": 1, "intervalSeconds": 1 })).await?;
    ensure!(matches!(probe, switchyard_sandbox::lambda::Invocation::Ok(_)), "probe: {probe:?}");
    sb.crash_database("us-east-1")
}

/// Runs one whole failover to us-east-2 after us-east-1's database crashed.
async fn fail_over_to_east2(sb: &Sandbox, name: &str) -> anyhow::Result<Execution> {
    switchyard_tests::arm(sb, "us-east-2")?;
    crash_east1_after_heartbeat(sb).await?;
    let x = execute(sb, &Start::new("failover", "us-east-2", name, alarm_input(), Timing::FAST)?).await?;
    ensure!(x.succeeded(), "failover {name} failed:\n{}", x.history());
    Ok(x)
}

/// #18: us-east-1 is sick, not gone: its database is up but every connection slot is taken
/// (SQLSTATE 53300, "too many clients", for every role, the promoter's superuser too: the
/// sandbox's `connection-slots` and `reject-auth` reach only the functions' own roles), so
/// its order API's health fails (what fired the alarm) and the promoter's calls there fail
/// `Throttled`, not unreachable. The unplanned failover treats it as gone: the gate bounds
/// the lag from the replica (a heartbeat replicated just before), the fence is left to the
/// re-fence, and the failover succeeds. Before, `Throttled` was retried until the failover
/// failed on the failed region's behaviour.
async fn sick_old_writer(sb: &Sandbox) -> anyhow::Result<()> {
    switchyard_tests::arm(sb, "us-east-2")?;
    let probe = sb.lambda("us-east-1")?.invoke("health-probe", &json!({ "rounds": 1, "intervalSeconds": 1 })).await?;
    ensure!(matches!(probe, Invocation::Ok(_)), "probe: {probe:?}");
    // Take every slot (bounded): the server answers, and refuses.
    let node = sb.node("us-east-1")?;
    let mut held = Vec::new();
    let full = loop {
        match node.connect().await {
            Ok(c) => held.push(c),
            Err(e) if e.name == switchyard_core::ErrorName::Throttled => break e,
            Err(e) => anyhow::bail!("filling us-east-1's connection slots: {e}"),
        }
        ensure!(held.len() < 400, "us-east-1 still takes connections after 400");
    };
    let x = execute(sb, &Start::new("failover", "us-east-2", "sick-1", alarm_input(), Timing::FAST)?).await;
    drop(held);
    let x = x?;
    ensure!(x.succeeded(), "the failover from a sick writer ({full}):\n{}", x.history());
    let out = x.output.as_ref().context("no output")?;
    let (gate, fence) = (&out["steps"]["gate"]["result"], &out["steps"]["fence"]["result"]);
    ensure!(fence["state"] == "unreachable", "the fence: {fence}\n{}", x.history());
    ensure!(gate["lagMeasuredFrom"] == "target", "the gate: {gate}");
    for region in ["us-east-2", "us-east-1"] {
        ensure!(claim(sb, region).await? == (2, "us-east-2".into()), "{region}'s claim");
    }
    Ok(())
}

/// #18, detection that confirms: the failover alarm fired in us-east-2 (a blip, or us-east-2's
/// probe losing its own egress), but us-east-1 is healthy. Before anything changes, the
/// failover probes once from us-east-2: us-east-1's endpoint answers healthy, positive
/// evidence against an outage, so it stops (NotReady) with nothing fenced or promoted.
/// Before, it fenced and promoted away from a healthy writer. Then us-east-1's database
/// refuses writes, its API still up: that failover goes on.
async fn unconfirmed_outage(sb: &Sandbox) -> anyhow::Result<()> {
    switchyard_tests::arm(sb, "us-east-2")?;
    let x = execute(sb, &Start::new("failover", "us-east-2", "blip-1", alarm_input(), Timing::FAST)?).await?;
    ensure!(!x.succeeded() && x.error.as_deref() == Some("NotReady"), "expected NotReady:\n{}", x.history());
    ensure!(!x.path().iter().any(|s| s == "Fence" || s == "Promote"), "went past the confirmation:\n{}", x.history());
    ensure_path(&x, &["Begin", "Gate", "ConfirmOutage", "OldWriterHealthy", "EndFailed"])?;
    ensure!(sb.node("us-east-1")?.accepts_writes().await?, "us-east-1 no longer accepts writes");
    ensure!(claim(sb, "us-east-1").await? == (1, "us-east-1".into()), "the claim moved");
    ensure!(table_item(sb, "us-east-2", "lock").await?.is_none(), "the lock is still held");
    // Review of #18: an API that answers while its writer cannot write is no healthy old
    // writer: its /health says so, and the failover goes on. The writer here refuses writes
    // by its own setting (as a volume remounted read-only would; the sandbox's disk-full
    // trigger replicates to us-east-2, inert there, but a setting is this server's alone).
    let probe = sb.lambda("us-east-1")?.invoke("health-probe", &json!({ "rounds": 1, "intervalSeconds": 1 })).await?;
    ensure!(matches!(probe, Invocation::Ok(_)), "probe: {probe:?}");
    let old = sb.node("us-east-1")?.connect().await?;
    old.batch_execute("ALTER SYSTEM SET default_transaction_read_only = on").await?;
    old.batch_execute("SELECT pg_reload_conf()").await?;
    let y = execute(sb, &Start::new("failover", "us-east-2", "read-only-1", alarm_input(), Timing::FAST)?).await?;
    ensure!(y.succeeded(), "the failover from a writer that cannot write:\n{}", y.history());
    ensure!(claim(sb, "us-east-2").await? == (2, "us-east-2".into()), "the claim did not move");
    Ok(())
}

/// Right after a failover, us-east-1's state machine is started (its own alarm about
/// us-east-2, as a flapping outage would): refused by the cooldown, never failing back. A
/// repeat in us-east-2 has nothing to do.
async fn cooldown(sb: &Sandbox) -> anyhow::Result<()> {
    fail_over_to_east2(sb, "alarm-first").await?;
    // Armed, so that it is the cooldown that refuses (unarmed, begin would).
    switchyard_tests::arm(sb, "us-east-1")?;
    let back = execute(sb, &Start::new("failover", "us-east-1", "alarm-flap", alarm_input(), Timing::FAST)?).await?;
    ensure!(back.error.as_deref() == Some("CooldownActive"), "expected CooldownActive:\n{}", back.history());
    ensure!(!back.path().iter().any(|s| s == "Fence" || s == "Promote"), "went past the cooldown:\n{}", back.history());
    ensure!(table_item(sb, "us-east-1", "lock").await?.is_none(), "us-east-1's lock is still held");
    let again = execute(sb, &Start::new("failover", "us-east-2", "alarm-again", alarm_input(), Timing::FAST)?).await?;
    // #18: a no-op is never reported as success.
    ensure!(
        !again.succeeded()
            && again.error.as_deref() == Some("NothingToDo")
            && again.path().last().map(String::as_str) == Some("NothingToDo"),
        "{}",
        again.history()
    );
    // #18 break-glass: an operator says the new writer's outage is real. The operator entry
    // takes the cooldown override with a reason and passes the cooldown; the outage is still
    // confirmed from us-east-1, and us-east-2 answers healthy: nothing changes.
    let mut input = operator_input("INC-18: us-east-2 lost its database 10 min after the failover");
    input["ignoreCooldown"] = json!(true);
    let glass = execute(sb, &Start::new("operator-failover", "us-east-1", "break-glass", input, Timing::FAST)?).await?;
    ensure!(
        glass.error.as_deref() == Some("NotReady")
            && glass.path().iter().any(|s| s == "ConfirmOutage")
            && glass.path().iter().any(|s| s == "OldWriterHealthy")
            && !glass.path().iter().any(|s| s == "Fence"),
        "the operator failover within the cooldown:\n{}",
        glass.history()
    );
    for region in ["us-east-1", "us-east-2"] {
        ensure!(claim(sb, region).await? == (2, "us-east-2".into()), "{region}'s claim moved");
    }
    Ok(())
}

/// #18: an execution that times out or is aborted runs no state of its own any more. A
/// switchover stopped right after it fenced us-east-1 left the writer fenced, the lock held
/// (until its lease ran out), the timeline running and nobody paged. Step Functions' status
/// change reaches the promoter through the abandoned-execution rule: it lifts the fence
/// (no promotion was requested), closes the timeline as failed, frees the lock and pages.
async fn aborted_switchover(sb: &Sandbox) -> anyhow::Result<()> {
    let pager = Pager::subscribe(sb, "us-east-2").await?;
    let input = json!({ "from": "us-east-1", "to": "us-east-2", "trigger": "manual", "reason": "exercise, stopped" });
    let mut start = Start::new("switchover", "us-east-2", "stopped-1", input, Timing::FAST)?;
    start.abort_at = Some("CatchUp");
    let x = execute(sb, &start).await?;
    ensure!(x.status == "ABORTED" && x.path().iter().any(|s| s == "Fence"), "{}", x.history());
    // The promoter first lets any step in flight end (ABANDON_SETTLE, 35 s).
    let closed = switchyard_tests::eventually(Duration::from_secs(90), "the aborted execution closed", || async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let item = table_item(sb, "us-east-2", "execution#stopped-1").await?;
        Ok(item.filter(|i| i["timeline"]["status"] == "failed"))
    })
    .await?;
    let t = &closed["timeline"];
    ensure!(t["error"] == "ExecutionAborted" && t["fenceLifted"].is_string(), "{t}");
    ensure!(table_item(sb, "us-east-2", "lock").await?.is_none(), "the aborted execution's lock is still held");
    ensure!(sb.node("us-east-1")?.accepts_writes().await?, "us-east-1 is still fenced");
    let pages = switchyard_tests::eventually(Duration::from_secs(30), "the page", || async {
        let pages = pager.messages().await?;
        Ok(pages.iter().any(|m| m.contains("stopped-1 (failed)") && m.contains("aborted")).then_some(pages))
    })
    .await?;
    ensure!(pages.iter().any(|m| m.contains("lifted the fence")), "{pages:?}");
    Ok(())
}

/// An alarm storm: three executions for the same incident start at once. One does the work;
/// the others end as duplicates (or, if they begin after it finished, with nothing to do),
/// failed executions that did nothing.
async fn storm(sb: &Sandbox) -> anyhow::Result<()> {
    switchyard_tests::arm(sb, "us-east-2")?;
    crash_east1_after_heartbeat(sb).await?;
    let starts: Vec<Start> = (1..=3)
        .map(|i| Start::new("failover", "us-east-2", format!("storm-{i}"), alarm_input(), Timing::FAST))
        .collect::<anyhow::Result<_>>()?;
    let (a, b, c) = tokio::join!(execute(sb, &starts[0]), execute(sb, &starts[1]), execute(sb, &starts[2]));
    let runs = [a?, b?, c?];
    let workers: Vec<&Execution> = runs.iter().filter(|x| x.path().iter().any(|s| s == "Promote")).collect();
    let all = runs.iter().map(|x| format!("{}:\n{}", x.name, x.history())).collect::<Vec<_>>().join("\n");
    ensure!(workers.len() == 1, "{} executions did the work:\n{all}", workers.len());
    ensure!(workers[0].succeeded(), "the worker failed:\n{all}");
    for x in runs.iter().filter(|x| x.name != workers[0].name) {
        let ended = x.path().last().cloned().unwrap_or_default();
        // #18: a duplicate or a no-op is never reported as success.
        ensure!(
            !x.succeeded() && (ended == "Duplicate" || ended == "NothingToDo") && x.error.as_deref() == Some(&*ended),
            "{}: ended in {ended} ({:?})\n{all}",
            x.name,
            x.error
        );
    }
    ensure!(claim(sb, "us-east-2").await? == (2, "us-east-2".into()), "the epoch moved more than once");
    Ok(())
}

/// A planned switchover to us-east-2 with orders flowing, then the failback (the same state
/// machine, started in us-east-1 with the direction named): the layout is the original
/// again, every acknowledged order applied exactly once.
async fn switchover_and_back(sb: &Sandbox) -> anyhow::Result<()> {
    let orders: Vec<_> = (0..6).map(|n| order("sm-switch", n)).collect();
    publish(sb, "us-east-1", &orders[..3]).await?;
    OrdersEventSource::new(sb, "us-east-1").await?.drain(5).await?;

    let there = json!({ "from": "us-east-1", "to": "us-east-2", "trigger": "manual", "reason": "exercise" });
    let x = execute(sb, &Start::new("switchover", "us-east-2", "switchover-1", there, Timing::FAST)?).await?;
    ensure!(x.succeeded(), "switchover failed:\n{}", x.history());
    ensure_path(
        &x,
        &["Begin", "Gate", "Fence", "CatchUp", "Promote", "Record", "SwitchTraffic", "AwaitConsumer", "EndSucceeded"],
    )?;
    let t = &x.output.as_ref().context("no output")?["timeline"];
    ensure!(t["rpo"]["ordersAtRisk"] == 0 && t["status"] == "succeeded", "{t}");
    ensure!(claim(sb, "us-east-2").await? == (2, "us-east-2".into()), "switchover: claim");
    // Aurora's switchover turns the old primary into a secondary; the sandbox rebuilds it.
    sb.rejoin_as_replica("us-east-1", "us-east-2")?;
    publish(sb, "us-east-2", &orders[3..]).await?;
    OrdersEventSource::new(sb, "us-east-2").await?.drain(5).await?;

    let back = json!({ "from": "us-east-2", "to": "us-east-1", "trigger": "manual", "reason": "failback" });
    let y = execute(sb, &Start::new("switchover", "us-east-1", "failback-1", back, Timing::FAST)?).await?;
    ensure!(y.succeeded(), "failback failed:\n{}", y.history());
    ensure!(claim(sb, "us-east-1").await? == (3, "us-east-1".into()), "failback: claim");
    sb.rejoin_as_replica("us-east-2", "us-east-1")?;
    let (writer, replica) = (sb.node("us-east-1")?, sb.node("us-east-2")?);
    ensure!(writer.accepts_writes().await? && !replica.accepts_writes().await?, "roles are not the original ones");
    switchyard_tests::eventually(Duration::from_secs(20), "us-east-2 streams from us-east-1", || async {
        Ok((writer.replication_status().await?.streaming_peers == 1).then_some(()))
    })
    .await?;
    let ids: Vec<String> = orders.iter().map(|o| o.order_id.clone()).collect();
    let applied: i64 = writer
        .connect()
        .await?
        .query_one("SELECT count(*) FROM orders WHERE order_id = ANY($1)", &[&ids])
        .await?
        .get(0);
    ensure!(applied == orders.len() as i64, "{applied} of {} acknowledged orders applied", orders.len());
    Ok(())
}

/// Schedule 1 of the safety review's H2, in the world: the pair is cut, us-east-1 keeps
/// acknowledging orders (it dropped us-east-2 from the eligible set, by a recorded write),
/// then us-east-1 is lost. The failover into us-east-2, which may lack those orders, is
/// refused at the Gate; every acknowledged order is still in us-east-1's queues (for when it
/// returns). Once the link heals and the catch-up runs, us-east-2 holds them all and the
/// failover goes through.
async fn lost_while_cut(sb: &Sandbox) -> anyhow::Result<()> {
    use switchyard_sandbox::world::{CutMode, Links, Shape, control, http};
    let api = sb.world.apis.iter().find(|a| a.target.as_str() == "us-east-1").context("api")?.port;
    // A heartbeat replicated before the cut bounds the lag the gate will see from us-east-2.
    let probe = sb.lambda("us-east-1")?.invoke("health-probe", &json!({ "rounds": 1, "intervalSeconds": 1 })).await?;
    ensure!(matches!(probe, switchyard_sandbox::lambda::Invocation::Ok(_)), "probe: {probe:?}");
    let mut links = Links::default();
    let pair = Shape::Link("us-east-1".parse()?, "us-east-2".parse()?);
    links.apply(&pair, CutMode::Refuse, &sb.world.places, sb.world.witness()).map_err(anyhow::Error::msg)?;
    control::set_links(sb.world.control_port, &links).await?;
    let mut acknowledged = Vec::new();
    for n in 0..3 {
        let id = format!("cut-{}-{n}", std::process::id());
        let order = json!({
            "orderId": id, "account": "acct-1", "instrument": "AAPL", "side": "buy", "quantity": 1,
            "price": "10.00", "submittedAt": switchyard_core::order::Timestamp::now().to_string(),
        });
        let (status, body) = http::call(api, "POST", "/orders", Some(&order)).await?;
        ensure!(status == 202, "intake stopped while the standby was cut off: {status} {body}");
        acknowledged.push(id);
    }
    sb.crash_database("us-east-1")?;
    switchyard_tests::arm(sb, "us-east-2")?;
    let x = execute(sb, &Start::new("failover", "us-east-2", "cut-refused", alarm_input(), Timing::FAST)?).await?;
    ensure!(
        !x.succeeded() && x.error.as_deref() == Some("NotReady") && x.path().iter().any(|s| s == "Gate"),
        "failed over into a region that lacks acknowledged orders (or stopped before the Gate):\n{}",
        x.history()
    );
    ensure!(claim(sb, "us-east-2").await? == (1, "us-east-1".into()), "the claim moved");
    // Heal: the catch-up (us-east-1's API, still up; only its database is down) moves the
    // orders to us-east-2's queue and marks it eligible; the failover then goes through.
    control::set_links(sb.world.control_port, &Links::default()).await?;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config(&sb.aws_target(), &"us-east-2".parse()?).await);
    let url = sb.resources.as_ref().context("resources")?.regions["us-east-2"].orders_queue_url.clone();
    let held = switchyard_tests::eventually(Duration::from_secs(30), "the orders in us-east-2's queue", || async {
        let got = sqs.receive_message().queue_url(&url).max_number_of_messages(10).visibility_timeout(0).send().await?;
        let ids: Vec<String> = got
            .messages()
            .iter()
            .filter_map(|m| serde_json::from_str::<Value>(m.body().unwrap_or("{}")).ok())
            .filter_map(|o| o["orderId"].as_str().map(str::to_owned))
            .collect();
        Ok(acknowledged.iter().all(|id| ids.contains(id)).then_some(ids))
    })
    .await?;
    ensure!(acknowledged.iter().all(|id| held.contains(id)));
    let attempt = std::sync::atomic::AtomicU32::new(0);
    let x = switchyard_tests::eventually(Duration::from_secs(30), "a failover once caught up", || async {
        let name = format!("cut-caught-up-{}", attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let x = execute(sb, &Start::new("failover", "us-east-2", name, alarm_input(), Timing::FAST)?).await?;
        Ok((x.error.as_deref() != Some("NotReady")).then_some(x))
    })
    .await?;
    ensure!(x.succeeded(), "the failover after the catch-up:\n{}", x.history());
    Ok(())
}

/// #17 schedule 1 (review C1): us-east-1, the writer, is cut off from us-east-2 and from the
/// claim store's witness, but stays alive with an unfenced database and orders in its queue.
/// us-east-2 (its replica and the witness are a majority) fails over, and applies. us-east-1's
/// consumer cannot read the claim from the cut on, so it applies nothing: at no moment do two
/// regions apply orders. Prints the last order us-east-1 applied, relative to the cut, both
/// by its database's clock.
async fn isolated_writer(sb: &Sandbox) -> anyhow::Result<()> {
    use switchyard_sandbox::world::{CutMode, Links, Shape, control};
    let mut east1 = OrdersEventSource::new(sb, "us-east-1").await?;
    east1.visibility = Some(Duration::from_secs(1));
    let before: Vec<_> = (0..5).map(|n| order("iso-before", n)).collect();
    publish(sb, "us-east-1", &before).await?;
    east1.drain(5).await?;
    // A heartbeat replicated before the cut bounds the lag the gate sees from us-east-2.
    let probe = sb.lambda("us-east-1")?.invoke("health-probe", &json!({ "rounds": 1, "intervalSeconds": 1 })).await?;
    ensure!(matches!(probe, switchyard_sandbox::lambda::Invocation::Ok(_)), "probe: {probe:?}");
    // Acknowledged just before the cut: in both queues, applied by nobody yet.
    let pending: Vec<_> = (0..5).map(|n| order("iso-pending", n)).collect();
    publish(sb, "us-east-1", &pending).await?;

    switchyard_tests::arm(sb, "us-east-2")?;
    let old = sb.node("us-east-1")?.connect().await?;
    let mut links = Links::default();
    links
        .apply(&Shape::Isolate("us-east-1".parse()?), CutMode::Refuse, &sb.world.places, sb.world.witness())
        .map_err(anyhow::Error::msg)?;
    control::set_links(sb.world.control_port, &links).await?;
    let cut_at: std::time::SystemTime = old.query_one("SELECT clock_timestamp()", &[]).await?.get(0);
    let outcome = async {
        // us-east-1's consumer keeps going, but cannot prove the claim: it keeps every order
        // (copying those near their last receive back onto the queue).
        let cut_off = east1.drain(5).await?;
        ensure!(cut_off.iter().all(|p| p.function_error.is_none()), "{cut_off:?}");
        // us-east-2 takes over (the lag is unknowable from there: allowDataLoss, as an
        // operator would after looking).
        let input = operator_input("INC-17: us-east-1 isolated; its lag is unknowable from us-east-2");
        let (stop, consuming) = keep_consuming(sb, "us-east-2");
        let run = async {
            let x = execute(sb, &Start::new("operator-failover", "us-east-2", "iso-1", input, Timing::FAST)?).await;
            let _ = stop.send(true);
            x
        };
        let (x, consumed) = tokio::join!(run, consuming);
        let x = x?;
        consumed?;
        ensure!(x.succeeded(), "the failover into the majority side:\n{}", x.history());
        // us-east-1, still cut off, still applies nothing.
        east1.drain(5).await?;
        // #17 schedule 2: us-east-1's replica of the claim store missed the bump (its
        // eventually consistent read still names us-east-1 at epoch 1). Its control plane
        // reads strongly, so it cannot prove a claim: its begin fails (transient), instead
        // of reading the stale claim naming itself and ending "nothing to do".
        let begin = begin_in(sb, "us-east-1", "iso-east1-cut").await?;
        ensure!(
            matches!(&begin, Invocation::FunctionError { error_type, .. } if error_type == "ServiceUnavailable"),
            "us-east-1's begin while cut off: {begin:?}"
        );
        anyhow::Ok(())
    }
    .await;
    control::set_links(sb.world.control_port, &Links::default()).await?;
    outcome?;
    // Healed: us-east-1 reads the one claim (us-east-2 at epoch 2), so armed it would fail
    // over to itself from there (begin takes the lock); it ends the execution right away.
    switchyard_tests::arm(sb, "us-east-1")?;
    let begin = begin_in(sb, "us-east-1", "iso-east1-healed").await?;
    ensure!(
        matches!(&begin, Invocation::Ok(v) if v["outcome"] == "acquired" && v["claim"]["epoch"] == 2 && v["claim"]["writer"] == "us-east-2"),
        "us-east-1's begin after the heal: {begin:?}"
    );
    let end = json!({ "action": "end", "execution": "iso-east1-healed", "outcome": "failed" });
    sb.lambda("us-east-1")?.invoke("rds-promoter", &end).await?;
    let (code, out, err) = switchyard_tests::run_cli(sb, &["disarm"])?;
    ensure!(code == 0, "disarm: {out}{err}");
    let prefix = format!("iso-%-{}-%", std::process::id());
    let row = old
        .query_one(
            "SELECT count(*) FILTER (WHERE applied_at > $2), max(applied_at) FROM orders WHERE order_id LIKE $1",
            &[&prefix, &cut_at],
        )
        .await?;
    let (after_cut, last): (i64, Option<std::time::SystemTime>) = (row.get(0), row.get(1));
    let last_vs_cut = last.map(|l| match l.duration_since(cut_at) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    });
    eprintln!(
        "      isolated writer: last order applied {last_vs_cut:?} s after the cut; {after_cut} applied after it"
    );
    ensure!(after_cut == 0, "us-east-1 applied {after_cut} orders after it was cut off");
    let new = sb.node("us-east-2")?.connect().await?;
    let pending_prefix = format!("iso-pending-{}-%", std::process::id());
    let row = new
        .query_one(
            "SELECT count(*) FILTER (WHERE order_id LIKE $2 AND applied_epoch = 2), count(*) FROM orders WHERE order_id LIKE $1",
            &[&prefix, &pending_prefix],
        )
        .await?;
    let (pending_there, all_there): (i64, i64) = (row.get(0), row.get(1));
    // From the data: every commit of the old writer precedes every commit of the new one
    // (commit timestamps, both servers on this host's clock).
    let last_old: Option<std::time::SystemTime> = old
        .query_one("SELECT max(pg_xact_commit_timestamp(xmin)) FROM orders WHERE applied_epoch = 1", &[])
        .await?
        .get(0);
    let first_new: Option<std::time::SystemTime> = new
        .query_one("SELECT min(pg_xact_commit_timestamp(xmin)) FROM orders WHERE applied_epoch = 2", &[])
        .await?
        .get(0);
    let (last_old, first_new) = (last_old.context("no commit under epoch 1")?, first_new.context("none under 2")?);
    let gap = first_new.duration_since(last_old).map_err(|e| {
        anyhow::anyhow!("the writers overlap: us-east-1 committed {:?} after us-east-2's first commit", e.duration())
    })?;
    eprintln!("      isolated writer: the new writer's first commit came {gap:?} after the old one's last");
    ensure!(
        pending_there == 5 && all_there == 10,
        "the new writer holds {all_there} of 10 orders, {pending_there} of the 5 pending ones applied under epoch 2"
    );
    // #17 schedule 3 (review C2): the old region's switcher, asked to route to itself at the
    // old epoch (a late task, a manual call), refuses: it reads the one claim, not a stale copy.
    let stale =
        sb.lambda("us-east-1")?.invoke("dns-switcher", &json!({ "targetRegion": "us-east-1", "epoch": 1 })).await?;
    ensure!(
        matches!(&stale, switchyard_sandbox::lambda::Invocation::FunctionError { error_type, .. } if error_type == "StaleEpoch"),
        "us-east-1's switcher at epoch 1: {stale:?}"
    );
    Ok(())
}

/// #17, the two-phase lease's own case: only the pair's link is cut, so each region still
/// reaches the witness and keeps a majority of the claim store. us-east-1, the writer, is
/// alive and keeps taking orders (its API drops the unreachable standby and goes on) and
/// applying them while us-east-2 fails over (with `allowDataLoss`: the standby was dropped).
/// us-east-1's consumer stops at its first read of the new claim; a commit it had in flight
/// lands within its window or is refused. From the data (commit timestamps, one host's
/// clock): every commit us-east-1 made under epoch 1 precedes every commit us-east-2 made
/// under epoch 2. Prints the gap, and how many orders us-east-1 committed after the bump.
async fn pair_cut(sb: &Sandbox) -> anyhow::Result<()> {
    use switchyard_sandbox::world::{CutMode, Links, Shape, control};
    let probe = sb.lambda("us-east-1")?.invoke("health-probe", &json!({ "rounds": 1, "intervalSeconds": 1 })).await?;
    ensure!(matches!(probe, Invocation::Ok(_)), "probe: {probe:?}");
    switchyard_tests::arm(sb, "us-east-2")?;
    let mut links = Links::default();
    links
        .apply(
            &Shape::Link("us-east-1".parse()?, "us-east-2".parse()?),
            CutMode::Refuse,
            &sb.world.places,
            sb.world.witness(),
        )
        .map_err(anyhow::Error::msg)?;
    control::set_links(sb.world.control_port, &links).await?;
    let outcome = async {
        let (stop1, consuming1) = keep_consuming(sb, "us-east-1");
        let (stop2, consuming2) = keep_consuming(sb, "us-east-2");
        let (stop_feed, mut fed) = tokio::sync::watch::channel(false);
        // Orders keep arriving at both regions' APIs, one each every 100 ms: us-east-1's
        // acknowledges (it drops the unreachable standby) until the bump, us-east-2's after it.
        let feeding = async move {
            let mut n = 0;
            while !*fed.borrow() {
                let _ = publish(sb, "us-east-1", &[order("pair-east1", n)]).await;
                let _ = publish(sb, "us-east-2", &[order("pair-east2", n)]).await;
                n += 2;
                tokio::select! {
                    _ = fed.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            anyhow::Ok(n)
        };
        let run = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let input = operator_input("INC-17: the pair's link is cut; us-east-2 dropped from the eligible set");
            let x = execute(sb, &Start::new("operator-failover", "us-east-2", "pair-1", input, Timing::FAST)?).await;
            // A little longer, so that the old writer would have applied more had it not stopped.
            tokio::time::sleep(Duration::from_secs(3)).await;
            for stop in [&stop1, &stop2] {
                let _ = stop.send(true);
            }
            let _ = stop_feed.send(true);
            x
        };
        let (x, c1, c2, fed) = tokio::join!(run, consuming1, consuming2, feeding);
        let x = x?;
        c1?;
        c2?;
        ensure!(x.succeeded(), "the failover with the pair cut:\n{}", x.history());
        let t = &x.output.as_ref().context("no output")?["timeline"];
        anyhow::Ok((
            fed?,
            t["promoted"].as_str().unwrap_or_default().to_owned(),
            t["activated"].as_str().unwrap_or_default().to_owned(),
        ))
    }
    .await;
    control::set_links(sb.world.control_port, &Links::default()).await?;
    let (fed, promoted, activated) = outcome?;
    let old = sb.node("us-east-1")?.connect().await?;
    let new = sb.node("us-east-2")?.connect().await?;
    let commits = |epoch: i64, agg: &'static str| {
        format!("SELECT {agg}(pg_xact_commit_timestamp(xmin)) FROM orders WHERE applied_epoch = {epoch}")
    };
    let last_old: Option<std::time::SystemTime> = old.query_one(&commits(1, "max"), &[]).await?.get(0);
    let first_new: Option<std::time::SystemTime> = new.query_one(&commits(2, "min"), &[]).await?.get(0);
    let (last_old, first_new) = (last_old.context("no commit under epoch 1")?, first_new.context("none under 2")?);
    let promoted: Timestamp = promoted.parse().map_err(|e| anyhow::anyhow!("promoted: {e}"))?;
    let bumped = std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(promoted.unix_millis() as u64);
    let after_bump: i64 = old
        .query_one(
            "SELECT count(*) FROM orders WHERE applied_epoch = 1 AND pg_xact_commit_timestamp(xmin) > $1",
            &[&bumped],
        )
        .await?
        .get(0);
    let gap = first_new.duration_since(last_old).map_err(|e| {
        anyhow::anyhow!("two writers: us-east-1 committed {:?} after us-east-2's first commit", e.duration())
    })?;
    eprintln!(
        "      pair cut: {fed} orders offered; the new writer's first commit came {gap:?} after the old one's last; \
         the old writer committed {after_bump} orders after the bump ({promoted}, activated {activated})"
    );
    Ok(())
}

/// #17 on the shapes the two tests above do not cut: the witness down as well as the pair's
/// link, both blackholed (calls hang until their deadlines). No place reaches a majority of
/// the claim store, so no region can prove a claim: the writer, us-east-1, alive and
/// unfenced, applies nothing and keeps every order; us-east-2, armed, cannot take over (its
/// begin fails transient). Healed, us-east-1 applies what it kept, under epoch 1: nothing lost.
async fn no_majority(sb: &Sandbox) -> anyhow::Result<()> {
    use switchyard_sandbox::world::{CutMode, Links, Shape, control};
    let mut east1 = OrdersEventSource::new(sb, "us-east-1").await?;
    east1.visibility = Some(Duration::from_secs(1));
    let kept: Vec<_> = (0..4).map(|n| order("nomaj", n)).collect();
    publish(sb, "us-east-1", &kept).await?;
    switchyard_tests::arm(sb, "us-east-2")?;
    let old = sb.node("us-east-1")?.connect().await?;
    let mut links = Links::default();
    for shape in [Shape::WitnessDown, Shape::Link("us-east-1".parse()?, "us-east-2".parse()?)] {
        links.apply(&shape, CutMode::Blackhole, &sb.world.places, sb.world.witness()).map_err(anyhow::Error::msg)?;
    }
    control::set_links(sb.world.control_port, &links).await?;
    let outcome = async {
        let cut_off = east1.drain(3).await?;
        ensure!(cut_off.iter().all(|p| p.function_error.is_none()), "{cut_off:?}");
        let begin = begin_in(sb, "us-east-2", "nomaj-east2").await?;
        ensure!(
            matches!(&begin, Invocation::FunctionError { error_type, .. } if error_type == "ServiceUnavailable"),
            "us-east-2's begin without a majority: {begin:?}"
        );
        anyhow::Ok(())
    }
    .await;
    control::set_links(sb.world.control_port, &Links::default()).await?;
    let prefix = format!("nomaj-{}-%", std::process::id());
    let during: i64 = old.query_one("SELECT count(*) FROM orders WHERE order_id LIKE $1", &[&prefix]).await?.get(0);
    let (code, out, err) = switchyard_tests::run_cli(sb, &["disarm"])?;
    ensure!(code == 0, "disarm: {out}{err}");
    outcome?;
    ensure!(during == 0, "us-east-1 applied {during} orders without a majority");
    // Healed: the kept orders come back (2 s recheck) and are applied where the claim is.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        east1.drain(3).await?;
        let row =
            old.query_one("SELECT count(*), min(applied_epoch) FROM orders WHERE order_id LIKE $1", &[&prefix]).await?;
        let (n, epoch): (i64, Option<i64>) = (row.get(0), row.get(1));
        if n == 4 {
            ensure!(epoch == Some(1), "applied under epoch {epoch:?}");
            break;
        }
        ensure!(tokio::time::Instant::now() < deadline, "{n} of 4 kept orders applied 20 s after the heal");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Invokes `region`'s promoter with an unplanned `begin` of execution `name`.
async fn begin_in(sb: &Sandbox, region: &str, name: &str) -> anyhow::Result<Invocation> {
    let begin = json!({
        "action": "begin", "mode": "unplanned", "entry": "automatic", "execution": name,
        "startedAt": Timestamp::now().to_string(),
    });
    sb.lambda(region)?.invoke("rds-promoter", &begin).await
}

/// #18: a planned switchover into a standby whose replay is paused. Before, the gate passed,
/// Fence made us-east-1 read-only, and CatchUp ↔ WaitForCatchUp looped until the execution's
/// own 900 s timeout, which nothing catches: no page, the lock held, no region writing. Now
/// the gate proves the target can catch up before anything is fenced.
async fn stalled_switchover(sb: &Sandbox) -> anyhow::Result<()> {
    let pager = Pager::subscribe(sb, "us-east-2").await?;
    let replica = replica_behind(sb).await?;
    let there = json!({ "from": "us-east-1", "to": "us-east-2", "trigger": "manual", "reason": "exercise" });
    let start = Start::new("switchover", "us-east-2", "stalled-1", there, Timing::FAST)?;
    let x = tokio::time::timeout(Duration::from_secs(150), execute(sb, &start)).await;
    replica.batch_execute("SELECT pg_wal_replay_resume()").await?;
    let writes = sb.node("us-east-1")?.accepts_writes().await?;
    let x = match x {
        Ok(x) => x?,
        Err(_) => anyhow::bail!("the switchover still runs after 150 s; us-east-1 accepts writes: {writes}"),
    };
    ensure!(!x.succeeded() && x.error.as_deref() == Some("NotReady"), "expected NotReady:\n{}", x.history());
    ensure!(!x.path().iter().any(|s| s == "Fence"), "fenced a writer it cannot replace:\n{}", x.history());
    ensure!(writes, "us-east-1 no longer accepts writes");
    ensure!(claim(sb, "us-east-1").await? == (1, "us-east-1".into()), "the claim moved");
    ensure!(table_item(sb, "us-east-2", "lock").await?.is_none(), "the lock is still held");
    let pages = pager.messages().await?;
    ensure!(pages.iter().any(|m| m.contains("replay is paused")), "the page does not say why: {pages:?}");
    Ok(())
}

/// #17 schedule 6: after a failover to us-east-2, us-east-1 is rebuilt as its replica and the
/// cooldown's hour passes (the handover is backdated). A blip of us-east-2's endpoint seen
/// from us-east-1 fires us-east-1's alarm: its failover must not move the writer back. Only a
/// region an operator armed as the takeover target, under the current epoch, takes over
/// automatically; the failover disarmed nothing, but its epoch voids the arming.
async fn no_automatic_failback(sb: &Sandbox) -> anyhow::Result<()> {
    use switchyard_core::ledger::{ExecutionLedger, HandoverRecord};
    fail_over_to_east2(sb, "fb-first").await?;
    sb.rejoin_as_replica("us-east-1", "us-east-2")?;
    let d = sb.deployment();
    let config = sdk_config(&sb.aws_target(), &d.regions.primary).await;
    let store =
        ControlTable::new(aws_sdk_dynamodb::Client::new(&config), d.regional_names(&d.regions.primary).control_table);
    let last = store.last_handover().await?.context("no handover recorded")?;
    let hour_ago = switchyard_core::order::Timestamp::from_unix_millis(last.at.unix_millis() - 2 * 3_600_000);
    store.record_handover(&HandoverRecord { at: hour_ago, ..last }).await?;
    let probe = sb.lambda("us-east-2")?.invoke("health-probe", &json!({ "rounds": 1, "intervalSeconds": 1 })).await?;
    ensure!(matches!(probe, switchyard_sandbox::lambda::Invocation::Ok(_)), "probe: {probe:?}");
    let back = execute(sb, &Start::new("failover", "us-east-1", "fb-blip", alarm_input(), Timing::FAST)?).await?;
    ensure!(
        claim(sb, "us-east-1").await? == (2, "us-east-2".into()),
        "the writer moved back on an alarm:\n{}",
        back.history()
    );
    ensure!(!back.succeeded() && back.error.as_deref() == Some("NotReady"), "{}", back.history());
    ensure!(!back.path().iter().any(|s| s == "Fence" || s == "Promote"), "went past begin:\n{}", back.history());
    ensure!(sb.node("us-east-2")?.accepts_writes().await?, "us-east-2 was fenced");
    Ok(())
}
