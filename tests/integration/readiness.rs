//! The readiness-tester function against the sandbox: green where the sandbox is whole, and
//! each way of breaking the standby fails exactly the rule that names it.

use std::{collections::BTreeSet, time::Duration};

use anyhow::{Context, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch};
use libtest_mimic::Trial;
use serde_json::{Value, json};
use switchyard_aws::sdk_config;
use switchyard_sandbox::{
    Sandbox,
    lambda::{Invocation, LambdaService},
    process,
};
use switchyard_tests::{eventually, sandbox_trial};

use crate::promoter::{one_second_budget, replica_behind};

pub fn trials() -> Vec<Trial> {
    vec![
        sandbox_trial("readiness::the_whole_sandbox_passes_every_rule_it_can_hold", |sb| Box::pin(healthy(sb))),
        sandbox_trial("readiness::a_stopped_replica_fails_standby_replica", |sb| Box::pin(replica_stopped(sb))),
        sandbox_trial("readiness::lag_above_budget_fails_replication_lag", |sb| Box::pin(lag_above_budget(sb))),
        sandbox_trial("readiness::a_missing_dlq_fails_queues", |sb| Box::pin(missing_dlq(sb))),
        sandbox_trial("readiness::an_ssm_value_differing_fails_ssm_config", |sb| Box::pin(ssm_differs(sb))),
        sandbox_trial("readiness::an_ineligible_standby_fails_acknowledgement", |sb| Box::pin(ineligible(sb))),
        sandbox_trial("readiness::a_disarmed_standby_fails_arming", |sb| Box::pin(disarmed(sb))),
        sandbox_trial("readiness::both_regions_read_one_writer_claim", |sb| Box::pin(two_writers(sb))),
        sandbox_trial("readiness::a_missing_dns_record_fails_dns", |sb| Box::pin(missing_dns_record(sb))),
        sandbox_trial("readiness::another_package_in_the_standby_fails_function_parity", |sb| {
            Box::pin(package_differs(sb))
        }),
    ]
}

async fn run(service: &LambdaService) -> anyhow::Result<Value> {
    match service.invoke("readiness-tester", &json!({})).await? {
        Invocation::Ok(report) => Ok(report),
        Invocation::FunctionError { error_type, error_message } => anyhow::bail!("{error_type}: {error_message}"),
    }
}

fn not_passing(report: &Value) -> BTreeSet<String> {
    report["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["verdict"] != "pass")
        .filter_map(|r| r["rule"].as_str().map(str::to_owned))
        .collect()
}

fn rule<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["rules"].as_array().and_then(|rs| rs.iter().find(|r| r["rule"] == name)).unwrap_or(&Value::Null)
}

/// Runs readiness and checks that exactly `broken` does not pass, with `needle` in its summary.
async fn expect_broken(sb: &Sandbox, service: &LambdaService, broken: &str, needle: &str) -> anyhow::Result<Value> {
    // Armed for the run (else `arming` fails too), and disarmed after: a shared sandbox left
    // armed would let the world's alarm test fail it over for real.
    if broken != "arming" {
        switchyard_tests::arm(sb, "us-east-2")?;
    }
    let report = run(service).await;
    if broken != "arming" {
        let (code, _, stderr) = switchyard_tests::run_cli(sb, &["disarm"])?;
        ensure!(code == 0, "disarm: {stderr}");
    }
    let report = report?;
    let expected = BTreeSet::from([broken.to_owned()]);
    let r = rule(&report, broken);
    ensure!(r["verdict"] == "fail", "{broken}: {r}");
    ensure!(r["summary"].as_str().is_some_and(|s| s.contains(needle)), "{needle:?} not in {r}");
    let mut seen = not_passing(&report);
    // A stopped replica's lag is skipped, not failed a second time.
    if rule(&report, "replication-lag")["verdict"] == "skipped" && broken == "standby-replica" {
        seen.remove("replication-lag");
    }
    ensure!(seen == expected, "not passing {seen:?}, expected {expected:?}");
    ensure!(report["ready"] == false, "ready with {broken} broken");
    Ok(report)
}

/// Every rule passes in the sandbox (it holds every resource the rules check), each with
/// evidence and its own duration. A second run with the same verdict sends no SNS message.
async fn healthy(sb: &Sandbox) -> anyhow::Result<()> {
    // Armed only for this test: a shared sandbox left armed would let the world's alarm test
    // fail it over for real.
    switchyard_tests::arm(sb, "us-east-2")?;
    let outcome = healthy_armed(sb).await;
    let (code, _, stderr) = switchyard_tests::run_cli(sb, &["disarm"])?;
    ensure!(code == 0, "disarm: {stderr}");
    outcome
}

async fn healthy_armed(sb: &Sandbox) -> anyhow::Result<()> {
    let service = sb.lambda("us-east-1")?;
    let report = run(service).await?;
    ensure!(not_passing(&report).is_empty(), "{:#}", report["rules"]);
    ensure!(report["ready"] == true, "ready: {}", report["ready"]);
    ensure!(report["schema"] == "switchyard.readiness/2" && report["candidate"] == "us-east-2", "{report}");
    for r in report["rules"].as_array().context("rules")? {
        ensure!(r["durationMs"].as_f64().is_some_and(|d| d > 0.0), "no duration: {r}");
        ensure!(r["verdict"] != "pass" || !r["evidence"].is_null(), "a pass without evidence: {r}");
    }
    let lag = &rule(&report, "replication-lag")["evidence"];
    ensure!(lag["budgetSeconds"] == 60 && lag["ordersInLag"].is_u64(), "{lag}");
    eprintln!(
        "readiness run against the sandbox: {:.0} ms wall, {:.0} ms summed over rules",
        report["durationMs"].as_f64().unwrap_or_default(),
        report["rules"].as_array().into_iter().flatten().filter_map(|r| r["durationMs"].as_f64()).sum::<f64>()
    );
    ensure!(report["published"]["metric"] == true, "{}", report["published"]);

    let again = run(service).await?;
    ensure!(again["previousReady"] == report["ready"] && again["changed"] == false, "{again}");
    ensure!(again["published"]["notified"] == false, "notified without a change: {}", again["published"]);
    Ok(())
}

async fn replica_stopped(sb: &Sandbox) -> anyhow::Result<()> {
    sb.stop_database("us-east-2")?;
    let outcome =
        expect_broken(sb, sb.lambda("us-east-1")?, "standby-replica", "us-east-2's database does not answer").await;
    sb.start_database("us-east-2")?;
    let report = outcome?;
    ensure!(rule(&report, "replication-lag")["verdict"] == "skipped", "{}", rule(&report, "replication-lag"));
    // Back to streaming before the next test.
    let replica = sb.node("us-east-2")?;
    eventually(Duration::from_secs(30), "the replica streams again", || async {
        use switchyard_core::ports::ReplicationMonitor;
        Ok(replica.replication_status().await.ok().filter(|s| s.streaming_peers > 0).map(drop))
    })
    .await
}

async fn lag_above_budget(sb: &Sandbox) -> anyhow::Result<()> {
    let service = one_second_budget(sb, &"us-east-1".parse()?, "readiness-lag")?;
    let outcome = async {
        let replica = replica_behind(sb).await?;
        let report = expect_broken(sb, &service, "replication-lag", "above the 1 s RPO budget").await;
        replica.batch_execute("SELECT pg_wal_replay_resume()").await?;
        let report = report?;
        let evidence = &rule(&report, "replication-lag")["evidence"];
        ensure!(evidence["ordersInLag"].as_u64().is_some_and(|n| n >= 1), "{evidence}");
        anyhow::Ok(())
    }
    .await;
    process::stop_group(service.pid, "TERM", Duration::from_secs(10))?;
    outcome
}

async fn sqs(sb: &Sandbox, region: &str) -> anyhow::Result<aws_sdk_sqs::Client> {
    Ok(aws_sdk_sqs::Client::new(&sdk_config(&sb.aws_target(), &sb.region(region)?.region).await))
}

async fn missing_dlq(sb: &Sandbox) -> anyhow::Result<()> {
    let resources = sb.resources.as_ref().context("not provisioned")?;
    let dlq_url = &resources.regions["us-east-2"].orders_dlq_url;
    let sqs = sqs(sb, "us-east-2").await?;
    sqs.delete_queue().queue_url(dlq_url).send().await?;
    let outcome =
        expect_broken(sb, sb.lambda("us-east-1")?, "queues", "us-east-2: switchyard-sandbox-orders-dlq does not exist")
            .await;
    // The same name gives the same ARN, which the orders queue's redrive policy names.
    let name = sb.deployment().regional_names(&"us-east-2".parse()?).orders_dlq;
    sqs.create_queue()
        .queue_name(name)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::SqsManagedSseEnabled, "true")
        .send()
        .await?;
    outcome.map(drop)
}

/// The writer dropped us-east-2 from the acknowledgement (a recorded `Ineligible`): a
/// failover there may lose acknowledged orders, so the standby is not ready until it is
/// eligible again.
async fn ineligible(sb: &Sandbox) -> anyhow::Result<()> {
    use switchyard_aws::control_table::ControlTable;
    use switchyard_core::{
        ingress::{self, Eligibility, EligibilityStore, Standing},
        ports::ClaimStore,
    };
    let d = sb.deployment();
    let config = sdk_config(&sb.aws_target(), &d.regions.primary).await;
    let store =
        ControlTable::new(aws_sdk_dynamodb::Client::new(&config), d.regional_names(&d.regions.primary).control_table);
    let claim = store.strong_read().await.proven()?;
    let with = |version: u64, standing: Standing| Eligibility {
        version,
        epoch: claim.epoch,
        standby: d.regions.standby.clone(),
        standing,
    };
    // us-east-1's order API would catch us-east-2 up within a second (it answers): paused,
    // and a catch-up round already under way (one a second) is let finish first, or it may
    // move the standing it read after the write below. The API comes back whatever happens:
    // the sandbox is shared.
    sb.set_api("us-east-1", false).await?;
    let outcome = async {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let now = ingress::standing_of(&store, &d.regions.standby, claim.epoch).await?;
        store.write(now.version, with(now.version + 1, Standing::Ineligible)).await?;
        let broken = expect_broken(sb, sb.lambda("us-east-1")?, "acknowledgement", "us-east-2 is Ineligible").await;
        let then = ingress::standing_of(&store, &d.regions.standby, claim.epoch).await?;
        store.write(then.version, with(then.version + 1, Standing::Eligible)).await?;
        broken.map(drop)
    }
    .await;
    sb.set_api("us-east-1", true).await?;
    outcome
}

/// Nothing armed (a seeded claim store, or any handover since): no alarm fails over, and
/// readiness says so.
async fn disarmed(sb: &Sandbox) -> anyhow::Result<()> {
    expect_broken(sb, sb.lambda("us-east-1")?, "arming", "us-east-2 is not armed").await.map(drop)
}

/// The standby runs another build of a function than the primary (here: the dns-switcher's
/// package deployed as the order consumer).
async fn package_differs(sb: &Sandbox) -> anyhow::Result<()> {
    let lambda = aws_sdk_lambda::Client::new(&sdk_config(&sb.aws_target(), &"us-east-2".parse()?).await);
    let name = sb.deployment().names().function("order-consumer");
    let packages = switchyard_sandbox::packages::sandbox_packages()?;
    let deploy = |function: &str| -> anyhow::Result<_> {
        let zip = std::fs::read(packages.get(function).context("package")?)?;
        Ok(lambda.update_function_code().function_name(&name).zip_file(zip.into()).send())
    };
    deploy("dns-switcher")?.await?;
    let outcome =
        expect_broken(sb, sb.lambda("us-east-1")?, "function-parity", &format!("{name}: code us-east-1=")).await;
    deploy("order-consumer")?.await?;
    outcome.map(drop)
}

async fn ssm_differs(sb: &Sandbox) -> anyhow::Result<()> {
    let ssm = aws_sdk_ssm::Client::new(&sdk_config(&sb.aws_target(), &"us-east-2".parse()?).await);
    let (name, value) = sb.deployment().shared_parameters().into_iter().next().context("a shared parameter")?;
    ssm.put_parameter().name(&name).value("30").overwrite(true).send().await?;
    let outcome =
        expect_broken(sb, sb.lambda("us-east-1")?, "ssm-config", &format!("{name}: us-east-1={value} us-east-2=30"))
            .await;
    ssm.put_parameter().name(&name).value(&value).overwrite(true).send().await?;
    outcome.map(drop)
}

async fn put_claim(sb: &Sandbox, table_region: &str, writer: &str) -> anyhow::Result<()> {
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(&sb.aws_target(), &table_region.parse()?).await);
    ddb.put_item()
        .table_name(sb.deployment().regional_names(&table_region.parse()?).control_table)
        .item("pk", AttributeValue::S("writer".into()))
        .item("epoch", AttributeValue::N("1".into()))
        .item("writer", AttributeValue::S(writer.into()))
        .send()
        .await?;
    Ok(())
}

/// The claim store is one table (the sandbox's stand-in for an MRSC global table): a claim
/// written "in us-east-2" is the claim both regions read, so two claims cannot differ.
async fn two_writers(sb: &Sandbox) -> anyhow::Result<()> {
    put_claim(sb, "us-east-2", "us-east-2").await?;
    let outcome = async {
        let report = run(sb.lambda("us-east-1")?).await?;
        let claim = rule(&report, "writer-claim");
        ensure!(claim["verdict"] == "pass", "{claim}");
        ensure!(claim["evidence"]["us-east-1"]["writer"] == "us-east-2", "one table, one claim: {claim}");
        Ok(())
    }
    .await;
    put_claim(sb, "us-east-2", "us-east-1").await?;
    outcome.map(drop)
}

async fn missing_dns_record(sb: &Sandbox) -> anyhow::Result<()> {
    let resources = sb.resources.as_ref().context("not provisioned")?;
    let route53 = aws_sdk_route53::Client::new(&sdk_config(&sb.aws_target(), &"us-east-1".parse()?).await);
    let zone = &resources.global.hosted_zone_id;
    let listed = route53.list_resource_record_sets().hosted_zone_id(zone).send().await?;
    let record = listed
        .resource_record_sets()
        .iter()
        .find(|r| r.set_identifier() == Some("us-east-2"))
        .cloned()
        .context("us-east-2's failover record")?;
    let change = |action: ChangeAction| -> anyhow::Result<ChangeBatch> {
        Ok(ChangeBatch::builder()
            .changes(Change::builder().action(action).resource_record_set(record.clone()).build()?)
            .build()?)
    };
    route53
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(change(ChangeAction::Delete)?)
        .send()
        .await?;
    let outcome = expect_broken(sb, sb.lambda("us-east-1")?, "dns", "no failover record for us-east-2").await;
    route53
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(change(ChangeAction::Upsert)?)
        .send()
        .await?;
    outcome.map(drop)
}
