//! The rds-promoter function, driven over the Lambda runtime API as a state machine would.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use libtest_mimic::Trial;
use serde_json::{Value, json};
use switchyard_aws::{control_table::ControlTable, sdk_config};
use switchyard_core::{
    WriterClaim, WriterEpoch,
    config::keys,
    ports::{ClaimStore, ReplicationMonitor},
};
use switchyard_sandbox::{
    Sandbox,
    lambda::{self, Invocation, LambdaService},
    postgres, process,
};
use switchyard_tests::{own_sandbox_trial, sandbox_trial};

pub fn trials() -> Vec<Trial> {
    vec![
        own_sandbox_trial("promoter::planned_switchover_through_the_function", "promoter", |sb| Box::pin(planned(sb))),
        own_sandbox_trial(
            "promoter::unplanned_failover_after_a_crash_through_the_function",
            "promoter-unplanned",
            |sb| Box::pin(unplanned(sb)),
        ),
        sandbox_trial("promoter::lag_gate_refuses_unplanned_failover_unless_data_loss_is_allowed", |sb| {
            Box::pin(lag_gate(sb))
        }),
        sandbox_trial("promoter::a_promote_outside_a_gated_execution_is_refused", |sb| Box::pin(ungated(sb))),
    ]
}

/// The execution the direct-invocation tests play: `begin` takes the lock for it, and every
/// step names it (fence and promote run only inside a gated execution).
const EXECUTION: &str = "direct-test";

pub(crate) fn request(action: &str, mode: &str, expected_epoch: u64) -> Value {
    json!({
        "action": action, "targetRegion": "us-east-2", "mode": mode, "expectedEpoch": expected_epoch,
        "execution": EXECUTION,
    })
}

/// Begins [`EXECUTION`] in us-east-2, as a state machine's first step does.
pub(crate) async fn begin(service: &LambdaService, mode: &str) -> anyhow::Result<Value> {
    let begin = json!({
        "action": "begin", "mode": mode, "entry": if mode == "planned" { "operator" } else { "automatic" }, "execution": EXECUTION,
        "startedAt": switchyard_core::order::Timestamp::now().to_string(),
    });
    match service.invoke("rds-promoter", &begin).await? {
        Invocation::Ok(v) if v["outcome"] == "acquired" => Ok(v),
        Invocation::Ok(v) => bail!("begin: {v}"),
        Invocation::FunctionError { error_type, error_message } => bail!("begin: {error_type}: {error_message}"),
    }
}

pub(crate) async fn ok(service: &LambdaService, payload: Value) -> anyhow::Result<Value> {
    match service.invoke("rds-promoter", &payload).await? {
        Invocation::Ok(v) => Ok(v["result"].clone()),
        Invocation::FunctionError { error_type, error_message } => bail!("{payload}: {error_type}: {error_message}"),
    }
}

async fn refused(service: &LambdaService, payload: Value) -> anyhow::Result<(String, String)> {
    match service.invoke("rds-promoter", &payload).await? {
        Invocation::FunctionError { error_type, error_message } => Ok((error_type, error_message)),
        Invocation::Ok(v) => bail!("{payload} was accepted: {v}"),
    }
}

/// Whether the failover lock is free (the claim store, through us-east-2's replica).
async fn table_lock_free(sb: &Sandbox) -> anyhow::Result<bool> {
    use switchyard_core::ledger::ExecutionLedger;
    let d = sb.deployment();
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(&sb.aws_target(), &d.regions.standby).await);
    let table = ControlTable::new(ddb, d.regional_names(&d.regions.standby).control_table);
    Ok(table.held_lock().await?.is_none())
}

/// Invokes an action until it reports `done`, as a state machine's poll loop would.
pub(crate) async fn until_done(service: &LambdaService, payload: Value) -> anyhow::Result<Value> {
    for _ in 0..100 {
        let result = ok(service, payload.clone()).await?;
        if result["state"] == "done" {
            return Ok(result);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{payload} never reported done")
}

/// The writer's region is gone: its lag cannot be measured, so the gate wants an explicit
/// `allowDataLoss`; fencing reports the old writer unreachable; promotion and the epoch bump
/// need only us-east-2.
async fn unplanned(sb: &Sandbox) -> anyhow::Result<()> {
    let east2 = sb.lambda("us-east-2")?;
    switchyard_tests::arm(sb, "us-east-2")?;
    begin(east2, "unplanned").await?;
    sb.crash_database("us-east-1")?;

    // The writer is gone: the lag is bounded from the replica alone (the age of its last
    // replayed commit), or unknown if it has replayed no commit since it started; the gate
    // judges either (unknown as above budget), and allowDataLoss lets it through.
    let mut allowed = request("gate", "unplanned", 1);
    allowed["allowDataLoss"] = json!(true);
    let check = ok(east2, allowed).await?;
    let bounded = check["gate"]["lag"]["seconds"].as_f64().is_some_and(|s| s > 0.0);
    ensure!(check["lagMeasuredFrom"] == "target" && (bounded || check["gate"]["verdict"] == "unknown"), "{check}");

    let fence = ok(east2, request("fence", "unplanned", 1)).await?;
    ensure!(fence["state"] == "unreachable", "fence: {fence}");
    let (kind, _) = refused(east2, request("catchUp", "unplanned", 1)).await?;
    ensure!(kind == "InvalidInput", "catchUp in an unplanned failover: {kind}");
    until_done(east2, request("promote", "unplanned", 1)).await?;
    let record = ok(east2, request("record", "unplanned", 1)).await?;
    ensure!(record["changed"] == true && record["claim"]["writer"] == "us-east-2", "record: {record}");
    ensure!(sb.node("us-east-2")?.accepts_writes().await?, "us-east-2 does not write");

    // The lease, the activation, and the execution's end, as the state machine runs them.
    tokio::time::sleep(switchyard_core::WRITER_LEASE).await;
    ok(east2, request("activate", "unplanned", 1)).await?;
    let end = json!({ "action": "end", "execution": EXECUTION, "outcome": "succeeded" });
    ensure!(matches!(east2.invoke("rds-promoter", &end).await?, Invocation::Ok(_)), "end");

    // #17: the old writer returns after the execution ended, unfenced (its fence step found
    // it unreachable). The next scheduled re-fence in us-east-2 (EventBridge's Scheduled
    // Event, every minute) fences it; no execution is needed.
    sb.start_database("us-east-1")?;
    ensure!(sb.node("us-east-1")?.accepts_writes().await?, "the old writer did not come back as a writer");
    let scheduled = json!({
        "version": "0", "id": "test", "detail-type": "Scheduled Event", "source": "aws.events",
        "region": "us-east-2", "resources": [], "detail": {},
    });
    let refence = east2.invoke("rds-promoter", &scheduled).await?;
    ensure!(
        matches!(&refence, Invocation::Ok(v) if v["outcome"] == "fenced" && v["peer"] == "us-east-1"),
        "the scheduled re-fence: {refence:?}"
    );
    ensure!(!sb.node("us-east-1")?.accepts_writes().await?, "the returning writer still writes");
    ensure!(table_lock_free(sb).await?, "the re-fence kept the failover lock");
    Ok(())
}

/// #17 schedule 7: the promoter invoked directly with `promote` (and allowDataLoss) used to
/// fail the database over with no lock, no lag gate and no epoch check. Here it is refused,
/// with or without an execution name that never began, and the replica stays a replica.
async fn ungated(sb: &Sandbox) -> anyhow::Result<()> {
    let east2 = sb.lambda("us-east-2")?;
    let mut bare = request("promote", "unplanned", 1);
    bare["allowDataLoss"] = json!(true);
    let mut anonymous = bare.clone();
    anonymous.as_object_mut().context("object")?.remove("execution");
    for (what, payload) in [("no execution", anonymous), ("an execution that never began", bare)] {
        let (kind, message) = refused(east2, payload).await?;
        ensure!(kind == "Ungated", "{what}: {kind}: {message}");
    }
    let mut fence = request("fence", "unplanned", 1);
    fence.as_object_mut().context("object")?.remove("execution");
    ensure!(refused(east2, fence).await?.0 == "Ungated", "a direct fence");
    ensure!(!sb.node("us-east-2")?.accepts_writes().await?, "the replica was promoted");
    ensure!(sb.node("us-east-1")?.accepts_writes().await?, "the writer was fenced");
    Ok(())
}

async fn planned(sb: &Sandbox) -> anyhow::Result<()> {
    let east2 = sb.lambda("us-east-2")?;
    let (old, new) = (sb.node("us-east-1")?, sb.node("us-east-2")?);
    let writes = old.connect().await?;
    writes.batch_execute("CREATE TABLE promoter_probe (id int PRIMARY KEY); INSERT INTO promoter_probe SELECT generate_series(1, 500)").await?;

    // A promoter only promotes its own region.
    let (kind, _) = refused(sb.lambda("us-east-1")?, request("promote", "planned", 1)).await?;
    ensure!(kind == "InvalidInput", "the us-east-1 promoter promoted us-east-2: {kind}");

    begin(east2, "planned").await?;
    let check = ok(east2, request("gate", "planned", 1)).await?;
    ensure!(check["handover"] == "bump" && check["gate"]["mode"] == "planned", "check: {check}");
    until_done(east2, request("fence", "planned", 1)).await?;
    until_done(east2, request("catchUp", "planned", 1)).await?;
    until_done(east2, request("promote", "planned", 1)).await?;
    let record = ok(east2, request("record", "planned", 1)).await?;
    let pending = WriterClaim::pending(WriterEpoch(2), "us-east-2".parse()?);
    ensure!(record["changed"] == true && record["claim"] == serde_json::to_value(&pending)?, "record: {record}");
    tokio::time::sleep(switchyard_core::WRITER_LEASE).await;
    let activate = ok(east2, request("activate", "planned", 1)).await?;
    let expected_claim = pending.activated();
    ensure!(activate["changed"] == true && activate["claim"] == serde_json::to_value(&expected_claim)?, "{activate}");

    // The claim is in us-east-2's control table, and the data made it.
    let d = sb.deployment();
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(&sb.aws_target(), &d.regions.standby).await);
    let table = ControlTable::new(ddb, d.regional_names(&d.regions.standby).control_table);
    ensure!(table.strong_read().await.proven()? == expected_claim, "control table disagrees");
    let count: i64 = new.connect().await?.query_one("SELECT count(*) FROM promoter_probe", &[]).await?.get(0);
    ensure!(count == 500, "{count} of 500 rows on the new writer");
    ensure!(new.accepts_writes().await? && !old.accepts_writes().await?, "roles not swapped");
    ensure!(old.replication_status().await?.fenced, "the old writer does not report itself fenced");

    // The same execution run again changes nothing; an older view is refused.
    let again = ok(east2, request("gate", "planned", 1)).await?;
    ensure!(again["handover"] == "alreadyDone", "check again: {again}");
    for action in ["fence", "catchUp", "promote"] {
        until_done(east2, request(action, "planned", 1)).await?;
    }
    for action in ["record", "activate"] {
        let again = ok(east2, request(action, "planned", 1)).await?;
        ensure!(again["changed"] == false, "{action} again: {again}");
    }
    ensure!(table.strong_read().await.proven()? == expected_claim, "re-running moved the claim");
    // An older view is refused: its incident (epoch 0 → us-east-2) is not the one this
    // execution was gated for.
    let (kind, message) = refused(east2, request("record", "planned", 0)).await?;
    ensure!(kind == "Ungated", "an epoch-0 request: {kind}: {message}");
    Ok(())
}

/// Pauses the standby's replay and commits on the writer, 2.5 s apart: the replica is then
/// more than two seconds behind, and knows how old its data is. Resume replay with
/// `SELECT pg_wal_replay_resume()` on the returned connection.
pub(crate) async fn replica_behind(sb: &Sandbox) -> anyhow::Result<tokio_postgres::Client> {
    let (writer, replica) = (sb.node("us-east-1")?, sb.node("us-east-2")?);
    // A replayed commit first, so the replica knows how old its data is.
    postgres::canary(&writer, &replica, Duration::from_secs(10)).await?;
    let replica = replica.connect().await?;
    replica.batch_execute("SELECT pg_wal_replay_pause()").await?;
    let writer = writer.connect().await?;
    let writes = async {
        writer
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS gate_probe (id serial PRIMARY KEY, at timestamptz DEFAULT now());
                 INSERT INTO gate_probe DEFAULT VALUES;",
            )
            .await?;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        writer.batch_execute("INSERT INTO gate_probe DEFAULT VALUES").await?;
        anyhow::Ok(())
    };
    if let Err(e) = writes.await {
        replica.batch_execute("SELECT pg_wal_replay_resume()").await?;
        return Err(e);
    }
    Ok(replica)
}

/// A service of `region`'s functions whose RPO budget is one second (tests of the lag gate
/// and of readiness make a replica fall behind it). Stop it with `process::stop_group`.
pub(crate) fn one_second_budget(
    sb: &Sandbox,
    region: &switchyard_core::Region,
    name: &str,
) -> anyhow::Result<LambdaService> {
    let mut env = sb.function_environment(region);
    env.retain(|(k, _)| *k != keys::RPO_BUDGET_SECONDS);
    env.push((keys::RPO_BUDGET_SECONDS, "1".to_owned()));
    lambda::start(region, &env, process::free_port()?, &sb.dir.join(format!("lambda-{name}.log")))
}

/// With replay paused the replica falls behind a 1-second budget: the gate refuses an
/// unplanned failover, naming the orders in the lag, and lets it through with `allowDataLoss`.
async fn lag_gate(sb: &Sandbox) -> anyhow::Result<()> {
    let service = one_second_budget(sb, &sb.deployment().regions.standby, "lag-gate")?;
    let replica = match replica_behind(sb).await {
        Ok(r) => r,
        Err(e) => {
            process::stop_group(service.pid, "TERM", Duration::from_secs(10))?;
            return Err(e);
        }
    };
    // A gate outside any execution: a dry check (a step of an execution must hold its lock).
    let dry_gate = || {
        let mut gate = request("gate", "unplanned", 1);
        gate.as_object_mut().map(|o| o.remove("execution"));
        gate
    };
    let outcome = async {
        let (kind, message) = refused(&service, dry_gate()).await?;
        ensure!(kind == "LagAboveBudget", "{kind}: {message}");
        ensure!(message.contains("orders in the lag") && message.contains("allowDataLoss"), "{message}");

        let mut allowed = dry_gate();
        allowed["allowDataLoss"] = json!(true);
        let check = ok(&service, allowed).await?;
        let gate = &check["gate"];
        ensure!(gate["dataLossAccepted"] == true && gate["verdict"] == "above_budget", "{check}");
        ensure!(gate["ordersInLag"].as_u64().context("orders in the lag")? >= 1, "{check}");
        anyhow::Ok(())
    }
    .await;
    replica.batch_execute("SELECT pg_wal_replay_resume()").await?;
    process::stop_group(service.pid, "TERM", Duration::from_secs(10))?;
    outcome
}
