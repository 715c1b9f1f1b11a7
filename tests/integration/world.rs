//! The sandbox's world itself: each partition shape and cut mode does what it says to the
//! paths it names, the claim store keeps MRSC's majority rule (a stale eventual read, failing
//! strong reads and writes, refused transactions and TTL), orders cross regions only over an
//! open link, and a sick database answers with the errors it names.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use libtest_mimic::Trial;
use serde_json::json;
use switchyard_aws::sdk_config;
use switchyard_core::Region;
use switchyard_postgres::{PgAccess, PgNode, tls_trusting};
use switchyard_sandbox::{
    Sandbox,
    postgres::Sickness,
    smoke,
    world::{CutMode, Links, Shape, control, http},
};
use switchyard_tests::{eventually, own_sandbox_trial, run_cli, sandbox_trial};

pub fn trials() -> Vec<Trial> {
    vec![
        sandbox_trial("world::each_cut_mode_does_what_it_says_on_aws_and_database_links", |sb| {
            Box::pin(healed(sb, cut_modes(sb)))
        }),
        sandbox_trial("world::the_claim_store_needs_a_majority_and_an_isolated_replica_reads_stale", |sb| {
            Box::pin(healed(sb, claim_store_majority(sb)))
        }),
        sandbox_trial("world::the_claim_store_refuses_what_mrsc_does_not_support", |sb| Box::pin(mrsc_unsupported(sb))),
        sandbox_trial("world::an_order_is_acknowledged_once_both_queues_hold_it_or_the_standby_is_dropped", |sb| {
            Box::pin(healed(sb, orders_cross_over_links(sb)))
        }),
        sandbox_trial("world::partition_and_heal_through_the_cli", |sb| Box::pin(healed(sb, partition_cli(sb)))),
        sandbox_trial("world::a_sick_database_answers_with_the_error_it_names", |sb| Box::pin(sick_database(sb))),
        sandbox_trial("world::the_dns_answer_follows_the_claim_aware_health_checks", |sb| Box::pin(dns_answers(sb))),
        own_sandbox_trial("world::orders_a_former_writer_parked_for_the_new_writer_reach_its_queue", "parked", |sb| {
            Box::pin(parked_orders(sb))
        }),
        own_sandbox_trial(
            "world::the_failover_alarm_fires_below_its_threshold_and_its_rule_starts_the_failover_machine",
            "clock",
            |sb| Box::pin(alarm_fires(sb)),
        ),
    ]
}

fn region(s: &str) -> Region {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Runs `test`, then opens every link again whatever happened (the run's sandbox is shared).
async fn healed(sb: &Sandbox, test: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let outcome = test.await;
    control::set_links(sb.world.control_port, &Links::default()).await?;
    outcome
}

async fn cut(sb: &Sandbox, shape: Shape, mode: CutMode) -> anyhow::Result<()> {
    let mut links = Links::default();
    links.apply(&shape, mode, &sb.world.places, sb.world.witness()).map_err(anyhow::Error::msg)?;
    control::set_links(sb.world.control_port, &links).await?;
    Ok(())
}

/// An SQS client of `caller`'s functions for `target`'s API, with one attempt and a deadline.
async fn sqs_from(sb: &Sandbox, caller: &str, target: &str, deadline: Duration) -> aws_sdk_sqs::Client {
    let config = sdk_config(&sb.region_aws_target(&region(caller)), &region(target)).await;
    let config = aws_sdk_sqs::config::Builder::from(&config)
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .timeout_config(aws_sdk_sqs::config::timeout::TimeoutConfig::builder().operation_timeout(deadline).build())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

async fn timed<T, E>(f: impl std::future::Future<Output = Result<T, E>>) -> (Result<T, E>, Duration) {
    let start = Instant::now();
    let r = f.await;
    (r, start.elapsed())
}

async fn cut_modes(sb: &Sandbox) -> anyhow::Result<()> {
    let resources = sb.resources.as_ref().context("not provisioned")?;
    let east2_queue = &resources.regions["us-east-2"].orders_queue_url;
    let deadline = Duration::from_secs(2);
    let east1 = sb.node("us-east-1")?;
    let replica = sb.node("us-east-2")?;
    let link_db = |caller: &str, target: &str| -> anyhow::Result<PgNode> {
        let endpoint = sb.world.database_from(&region(caller), &region(target)).context("no db link")?;
        let mut node = PgNode::new(endpoint, "world-test");
        node.timeout = deadline;
        Ok(node)
    };
    // Open: every path answers.
    sqs_from(sb, "us-east-1", "us-east-2", deadline).await.list_queues().send().await.context("open link")?;
    link_db("us-east-1", "us-east-2")?.connect().await.map_err(anyhow::Error::msg).context("open db link")?;

    // refuse: at once, on AWS and database links; the region's own services still answer,
    // and so does the link between the two others.
    cut(sb, Shape::Isolate(region("us-east-1")), CutMode::Refuse).await?;
    let (r, took) = timed(sqs_from(sb, "us-east-1", "us-east-2", deadline).await.list_queues().send()).await;
    ensure!(r.is_err() && took < Duration::from_secs(1), "refuse: {r:?} after {took:?}");
    let (r, took) = timed(link_db("us-east-1", "us-east-2")?.connect()).await;
    ensure!(r.is_err() && took < Duration::from_secs(1), "refuse (db): after {took:?}");
    sqs_from(sb, "us-east-1", "us-east-1", deadline).await.list_queues().send().await.context("own region")?;
    sqs_from(sb, "us-east-2", "us-west-2", deadline).await.list_queues().send().await.context("us-east-2 → witness")?;

    // blackhole: the call hangs until the caller's deadline; replication stops, and resumes
    // with everything after the link heals.
    cut(sb, Shape::Isolate(region("us-east-1")), CutMode::Blackhole).await?;
    let (r, took) = timed(sqs_from(sb, "us-east-1", "us-east-2", deadline).await.list_queues().send()).await;
    ensure!(r.is_err() && took >= deadline - Duration::from_millis(100), "blackhole: {r:?} after {took:?}");
    let (r, took) = timed(link_db("us-east-2", "us-east-1")?.connect()).await;
    ensure!(r.is_err() && took >= deadline - Duration::from_millis(100), "blackhole (db): after {took:?}");
    let token = format!("world-{}", std::process::id());
    let w = east1.connect().await.map_err(anyhow::Error::msg)?;
    w.batch_execute("CREATE TABLE IF NOT EXISTS world_probe (token text PRIMARY KEY)").await?;
    w.execute("INSERT INTO world_probe VALUES ($1) ON CONFLICT DO NOTHING", &[&token]).await?;
    let seen = || async {
        let r = replica.connect().await.map_err(anyhow::Error::msg)?;
        let row = r.query_opt("SELECT 1 FROM world_probe WHERE token = $1", &[&token]).await.ok().flatten();
        anyhow::Ok(row.is_some())
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(!seen().await?, "a row crossed a blackholed link");
    control::set_links(sb.world.control_port, &Links::default()).await?;
    eventually(Duration::from_secs(10), "the row after healing", || async { Ok(seen().await?.then_some(())) }).await?;

    // drop-response: the request is applied, the answer lost.
    cut(sb, Shape::Link(region("us-east-1"), region("us-east-2")), CutMode::DropResponse).await?;
    let marker = format!("drop-response-{}", std::process::id());
    let sqs = sqs_from(sb, "us-east-1", "us-east-2", deadline).await;
    let (r, took) = timed(sqs.send_message().queue_url(east2_queue).message_body(&marker).send()).await;
    ensure!(r.is_err() && took >= deadline - Duration::from_millis(100), "drop-response: {r:?} after {took:?}");
    let operator = aws_sdk_sqs::Client::new(&sdk_config(&sb.aws_target(), &region("us-east-2")).await);
    let received = operator.receive_message().queue_url(east2_queue).max_number_of_messages(10).send().await?;
    let found: Vec<_> = received.messages().iter().filter(|m| m.body() == Some(marker.as_str())).collect();
    ensure!(found.len() == 1, "the request whose answer was dropped was not applied once: {found:?}");
    for m in found {
        operator
            .delete_message()
            .queue_url(east2_queue)
            .receipt_handle(m.receipt_handle().unwrap_or_default())
            .send()
            .await?;
    }
    Ok(())
}

/// The writer item of the control table, read by `caller`'s functions with or without
/// `ConsistentRead`; its epoch.
async fn claim_epoch(sb: &Sandbox, caller: &str, strong: bool) -> anyhow::Result<u64> {
    let ddb = dynamodb_from(sb, caller).await;
    let table = sb.deployment().regional_names(&region(caller)).control_table;
    let item = ddb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S("writer".into()))
        .consistent_read(strong)
        .send()
        .await?;
    let epoch = item.item().and_then(|i| i.get("epoch")).and_then(|e| e.as_n().ok()).context("no epoch")?;
    Ok(epoch.parse()?)
}

async fn dynamodb_from(sb: &Sandbox, caller: &str) -> aws_sdk_dynamodb::Client {
    let config = sdk_config(&sb.region_aws_target(&region(caller)), &region(caller)).await;
    let config = aws_sdk_dynamodb::config::Builder::from(&config)
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

async fn set_epoch(sb: &Sandbox, caller: &str, epoch: u64) -> anyhow::Result<()> {
    let ddb = dynamodb_from(sb, caller).await;
    let table = sb.deployment().regional_names(&region(caller)).control_table;
    ddb.update_item()
        .table_name(table)
        .key("pk", AttributeValue::S("writer".into()))
        .update_expression("SET epoch = :e")
        .expression_attribute_values(":e", AttributeValue::N(epoch.to_string()))
        .send()
        .await?;
    Ok(())
}

async fn claim_store_majority(sb: &Sandbox) -> anyhow::Result<()> {
    // One table: what one replica writes, the other reads strongly.
    let before = claim_epoch(sb, "us-east-1", true).await?;
    set_epoch(sb, "us-east-2", before + 1).await?;
    ensure!(claim_epoch(sb, "us-east-1", true).await? == before + 1, "the replicas are not one table");

    let outcome = async {
        // us-east-1 cut off from both others: no majority.
        cut(sb, Shape::Isolate(region("us-east-1")), CutMode::Refuse).await?;
        let strong = claim_epoch(sb, "us-east-1", true).await;
        let message = format!("{:?}", strong.as_ref().err());
        ensure!(strong.is_err() && message.contains("InternalServerError"), "strong read in a minority: {strong:?}");
        let write = set_epoch(sb, "us-east-1", before + 7).await;
        ensure!(write.is_err(), "a write in a minority succeeded");
        // The majority side (us-east-2 with the witness) moves on…
        set_epoch(sb, "us-east-2", before + 2).await.context("write in the majority")?;
        ensure!(claim_epoch(sb, "us-east-2", true).await? == before + 2);
        // …and the isolated replica's eventual read still answers, stale.
        let stale = claim_epoch(sb, "us-east-1", false).await?;
        ensure!(stale == before + 1, "eventual read in a minority: epoch {stale}, expected the stale {}", before + 1);

        // The pair cut but the witness reachable from both: both keep a majority.
        cut(sb, Shape::Link(region("us-east-1"), region("us-east-2")), CutMode::Blackhole).await?;
        ensure!(claim_epoch(sb, "us-east-1", true).await? == before + 2, "a strong read after the isolation healed");
        ensure!(claim_epoch(sb, "us-east-2", true).await? == before + 2);

        // The witness down and the pair cut: nobody has a majority.
        let mut links = Links::default();
        let (places, witness) = (&sb.world.places, sb.world.witness());
        links.apply(&Shape::WitnessDown, CutMode::Refuse, places, witness).map_err(anyhow::Error::msg)?;
        links
            .apply(&Shape::Link(region("us-east-1"), region("us-east-2")), CutMode::Refuse, places, witness)
            .map_err(anyhow::Error::msg)?;
        control::set_links(sb.world.control_port, &links).await?;
        ensure!(claim_epoch(sb, "us-east-1", true).await.is_err() && claim_epoch(sb, "us-east-2", true).await.is_err());
        ensure!(claim_epoch(sb, "us-east-2", false).await? == before + 2, "the eventual read of an isolated us-east-2");
        Ok(())
    }
    .await;
    control::set_links(sb.world.control_port, &Links::default()).await?;
    set_epoch(sb, "us-east-1", before).await?;
    outcome
}

async fn mrsc_unsupported(sb: &Sandbox) -> anyhow::Result<()> {
    let ddb = dynamodb_from(sb, "us-east-2").await;
    let table = sb.deployment().regional_names(&region("us-east-2")).control_table;
    let put = |t: &str| {
        aws_sdk_dynamodb::types::TransactWriteItem::builder()
            .put(
                aws_sdk_dynamodb::types::Put::builder()
                    .table_name(t)
                    .item("pk", AttributeValue::S(format!("txn-{}", std::process::id())))
                    .build()
                    .expect("put"),
            )
            .build()
    };
    let refused = ddb.transact_write_items().transact_items(put(&table)).send().await;
    let message = format!("{:?}", refused.as_ref().err());
    ensure!(
        refused.is_err() && message.contains("ValidationException") && message.contains("TransactWriteItems"),
        "{message}"
    );
    let ttl = ddb
        .update_time_to_live()
        .table_name(&table)
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires")
                .build()?,
        )
        .send()
        .await;
    ensure!(format!("{:?}", ttl.as_ref().err()).contains("ValidationException"), "TTL on an MRSC table: {ttl:?}");
    // moto itself accepts both: the refusal is the world's, from AWS's documented limits.
    let scratch = format!("world-scratch-{}", std::process::id());
    switchyard_sandbox::aws::create_control_table(&ddb, &scratch, &[], &sb.deployment().initial_writer_claim()).await?;
    let accepted = ddb.transact_write_items().transact_items(put(&scratch)).send().await;
    ddb.delete_table().table_name(&scratch).send().await?;
    ensure!(accepted.is_ok(), "moto refused a transaction on a plain table: {accepted:?}");
    Ok(())
}

fn new_order(id: &str) -> serde_json::Value {
    json!({
        "orderId": id, "account": "acct-1", "instrument": "AAPL", "side": "buy", "quantity": 3,
        "price": "101.25", "submittedAt": switchyard_core::order::Timestamp::now().to_string(),
    })
}

/// Receives and deletes every message of `region`'s orders queue; the order ids among them.
async fn drain(sb: &Sandbox, region_name: &str) -> anyhow::Result<Vec<String>> {
    let url = &sb.resources.as_ref().context("not provisioned")?.regions[region_name].orders_queue_url;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config(&sb.aws_target(), &region(region_name)).await);
    let mut ids = Vec::new();
    loop {
        let got = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await?;
        if got.messages().is_empty() {
            return Ok(ids);
        }
        for m in got.messages() {
            let order: serde_json::Value = serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or_default();
            ids.extend(order["orderId"].as_str().map(str::to_owned));
            sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle().unwrap_or_default()).send().await?;
        }
    }
}

async fn orders_cross_over_links(sb: &Sandbox) -> anyhow::Result<()> {
    use switchyard_core::ingress::{EligibilityStore, Standing};
    drain(sb, "us-east-1").await?;
    drain(sb, "us-east-2").await?;
    let id = |n: u32| format!("world-{}-{n}", std::process::id());
    let table = switchyard_aws::control_table::ControlTable::new(
        aws_sdk_dynamodb::Client::new(&sdk_config(&sb.aws_target(), &region("us-east-1")).await),
        sb.deployment().regional_names(&region("us-east-1")).control_table,
    );
    let standing = || async { anyhow::Ok(table.read().await?.map(|e| e.standing).unwrap_or(Standing::Eligible)) };

    // Acknowledged once both regions' queues hold it.
    let (status, body) = smoke::post_order(sb, "us-east-1", &new_order(&id(1))).await?;
    ensure!(status == 202 && body["durableIn"] == json!(["us-east-1", "us-east-2"]), "{status} {body}");
    let (status, body) = smoke::post_order(sb, "us-east-1", &json!({ "orderId": "x" })).await?;
    ensure!(status == 400 && body["error"] == "InvalidOrder", "a bad order: {status} {body}");
    ensure!(drain(sb, "us-east-1").await? == [id(1)]);
    ensure!(drain(sb, "us-east-2").await? == [id(1)], "the standby's queue did not hold an acknowledged order");

    // The pair cut: the writer's API drops the standby by a recorded write and goes on; the
    // standby's API cannot reach the writer's queue and acknowledges nothing.
    cut(sb, Shape::Link(region("us-east-1"), region("us-east-2")), CutMode::Refuse).await?;
    let (status, body) = smoke::post_order(sb, "us-east-1", &new_order(&id(2))).await?;
    ensure!(status == 202 && body["standbyCatchingUp"] == true, "intake stopped for a standby outage: {status} {body}");
    ensure!(standing().await? == Standing::Ineligible, "the drop was not recorded");
    let (status, body) = smoke::post_order(sb, "us-east-2", &new_order(&id(3))).await?;
    ensure!(status == 503 && body["error"] == "NotAcknowledged", "acknowledged without the writer: {status} {body}");
    ensure!(drain(sb, "us-east-1").await? == [id(2)]);
    ensure!(drain(sb, "us-east-2").await?.is_empty(), "an order crossed a cut link");
    // Healed: the catch-up moves order 2 to the standby, which is then eligible again.
    control::set_links(sb.world.control_port, &Links::default()).await?;
    eventually(Duration::from_secs(20), "the standby eligible again", || async {
        Ok((standing().await? == Standing::Eligible).then_some(()))
    })
    .await?;
    let caught_up = drain(sb, "us-east-2").await?;
    ensure!(caught_up == [id(2)], "the standby lacks an order acknowledged without it: {caught_up:?}");

    // Health, and an order API that crashes and comes back.
    let api = sb.world.api_url(&region("us-east-2"), &region("us-east-2")).context("api")?;
    let port: u16 = api.rsplit(':').next().unwrap_or_default().parse()?;
    let (status, body) = http::call(port, "GET", "/health", None).await?;
    ensure!(status == 200 && body["database"] == "replica", "{status} {body}");
    sb.set_api("us-east-2", false).await?;
    ensure!(http::call(port, "GET", "/health", None).await.is_err(), "a crashed API answered");
    sb.set_api("us-east-2", true).await?;
    ensure!(http::call(port, "GET", "/health", None).await?.0 == 200);
    Ok(())
}

async fn partition_cli(sb: &Sandbox) -> anyhow::Result<()> {
    let (code, out, err) =
        run_cli(sb, &["sandbox", "partition", "--witness-down", "--mode", "blackhole", "--delay-ms", "15"])?;
    ensure!(code == 0, "partition: {code} {out} {err}");
    let words = out.split_whitespace().collect::<Vec<_>>().join(" ");
    ensure!(words.contains("us-east-2 ↔ us-west-2 blackhole") && words.contains("delay: 15 ms"), "{out}");
    let links = control::links(sb.world.control_port).await?;
    ensure!(
        links.delay_ms == 15 && links.between(&region("us-east-1"), sb.world.witness()) == Some(CutMode::Blackhole)
    );
    ensure!(links.between(&region("us-east-1"), &region("us-east-2")).is_none());
    let (code, _, err) = run_cli(sb, &["sandbox", "partition", "--isolate", "eu-west-1"])?;
    ensure!(code == 4 && err.contains("not a sandbox place"), "{code} {err}");
    let (code, _, err) = run_cli(sb, &["sandbox", "partition", "--mode", "refuse"])?;
    ensure!(code == 2, "a partition with no shape: {code} {err}");
    let (code, out, _) = run_cli(sb, &["sandbox", "heal"])?;
    ensure!(code == 0 && control::links(sb.world.control_port).await? == Links::default(), "{out}");
    Ok(())
}

async fn sick_database(sb: &Sandbox) -> anyhow::Result<()> {
    let ca = std::fs::read(sb.dir.join("tls/ca.pem"))?;
    let consumer = || -> anyhow::Result<PgNode> {
        let mut node = sb.node("us-east-1")?;
        node.access = PgAccess {
            credentials: Some(switchyard_sandbox::postgres::consumer_credentials(&sb.dir)?),
            tls: Some(tls_trusting(&ca).map_err(anyhow::Error::msg)?),
        };
        Ok(node)
    };
    consumer()?.connect().await.map_err(anyhow::Error::msg).context("a healthy database")?;
    let cases = [
        (Sickness::RejectAuth, "pg_hba.conf rejects connection"),
        (Sickness::ConnectionSlots, "too many connections for role"),
    ];
    let outcome = async {
        for (sickness, expected) in cases {
            sb.sicken_database("us-east-1", sickness).await?;
            let err = match consumer()?.connect().await {
                Ok(_) => bail!("{} let the consumer in", sickness.as_str()),
                Err(e) => e.to_string(),
            };
            ensure!(err.contains(expected), "{}: {err}", sickness.as_str());
            sb.cure_database("us-east-1").await?;
            consumer()?.connect().await.map_err(anyhow::Error::msg).with_context(|| format!("cured of {}", sickness.as_str()))?;
        }
        sb.sicken_database("us-east-1", Sickness::DiskFull).await?;
        let w = sb.node("us-east-1")?.connect().await.map_err(anyhow::Error::msg)?;
        let write = w.batch_execute("CREATE TABLE IF NOT EXISTS world_probe (token text PRIMARY KEY); INSERT INTO world_probe VALUES ('disk') ON CONFLICT DO NOTHING").await;
        let code = write.as_ref().err().and_then(|e| e.code()).map(|c| c.code().to_owned());
        ensure!(code.as_deref() == Some("53100"), "disk-full: {write:?}");
        w.query_one("SELECT count(*) FROM world_probe", &[]).await.context("reads still work")?;
        let refused = sb.sicken_database("us-east-2", Sickness::DiskFull).await;
        ensure!(refused.is_err(), "disk-full on a replica");
        Ok(())
    }
    .await;
    sb.cure_database("us-east-1").await?;
    outcome
}

/// Route 53's checks call each region's claim-aware `/writer`: only the active writer's
/// answers 200. With the standby never healthy here (the shared sandbox's claim stays
/// us-east-1's), each state of us-east-1 gives the answer Route 53's failover rule gives:
/// the writer while it serves, and the primary when both records are unhealthy (the
/// failover to the standby is `switcher::after_a_failover_and_a_failback…`'s to show). A
/// check's status follows its endpoint only after `FailureThreshold` results, one
/// `RequestInterval` apart (#18: one call used to stand for the verdict at once).
async fn dns_answers(sb: &Sandbox) -> anyhow::Result<()> {
    use switchyard_sandbox::dns::DnsAnswer;
    use switchyard_sandbox::world::{CutMode, Links, Shape, control};
    let d = sb.deployment();
    let (p, s) = (d.regions.primary.clone(), d.regions.standby.clone());
    // Until the checks follow: FailureThreshold intervals, and one more for the sampling.
    let within = switchyard_core::dns::check_follows_within() + switchyard_core::dns::CHECK_REQUEST_INTERVAL;
    let until = |what: &'static str, holds: fn(&DnsAnswer, &Region, &Region) -> bool| {
        let (p, s) = (p.clone(), s.clone());
        async move {
            let found = switchyard_tests::eventually(within, what, || async {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let answer = switchyard_sandbox::dns::answer(sb).await?;
                Ok(holds(&answer, &p, &s).then_some(answer))
            })
            .await;
            match found {
                Ok(answer) => Ok(answer),
                Err(e) => anyhow::bail!("{e}: {}", switchyard_sandbox::dns::answer(sb).await?),
            }
        }
    };
    let healthy = |a: &DnsAnswer, r: &Region| a.records.iter().any(|h| h.region == *r && h.healthy);
    let answer = until("the writer serves", |a, p, s| {
        a.region == *p
            && a.records.iter().any(|h| h.region == *p && h.healthy && h.evidence.contains("/writer: 200"))
            && a.records.iter().any(|h| h.region == *s && !h.healthy && h.evidence.contains("/writer: 503"))
    })
    .await?;
    ensure!(healthy(&answer, &p) && !healthy(&answer, &s), "{answer}");
    let (code, out, err) = run_cli(sb, &["sandbox", "dns"])?;
    ensure!(code == 0 && out.contains(&format!("({p})")) && out.contains("/writer"), "sandbox dns: {code} {out}{err}");

    let outcome = async {
        // The writer cut off from the claim store's majority cannot prove its claim.
        let mut links = Links::default();
        links
            .apply(&Shape::Isolate(p.clone()), CutMode::Refuse, &sb.world.places, sb.world.witness())
            .map_err(anyhow::Error::msg)?;
        let isolated = switchyard_core::order::Timestamp::now();
        control::set_links(sb.world.control_port, &links).await?;
        let answer = until("the isolated writer's check fails", |a, p, _| {
            a.records.iter().any(|h| h.region == *p && !h.healthy && h.evidence.contains("/writer: 503"))
        })
        .await?;
        // One result against the status does not change it: FailureThreshold (2) results,
        // the first within one interval, so the status changed at least an interval later.
        let checks = control::dns_checks(sb.world.control_port).await?;
        let changed = checks.get(&p).map(|c| c.since).context("no check of the primary")?;
        let after_ms = changed.unix_millis() - isolated.unix_millis();
        let interval_ms = switchyard_core::dns::CHECK_REQUEST_INTERVAL.as_millis() as i64;
        ensure!(after_ms >= interval_ms - 500, "the check failed {after_ms} ms after the cut: {answer}");
        // Both unhealthy: Route 53 answers the primary.
        ensure!(answer.region == p, "isolated: {answer}");
        control::set_links(sb.world.control_port, &Links::default()).await?;
        // Its API down: the check cannot connect.
        control::set_api(sb.world.control_port, &p, false).await?;
        let answer = until("the check of a region whose API is down fails", |a, p, _| {
            a.region == *p
                && a.records.iter().any(|h| {
                    h.region == *p
                        && !h.healthy
                        && !h.evidence.contains("/writer: 503")
                        && !h.evidence.contains("/writer: 200")
                })
        })
        .await?;
        ensure!(!healthy(&answer, &p), "API down: {answer}");
        anyhow::Ok(())
    }
    .await;
    control::set_links(sb.world.control_port, &Links::default()).await?;
    control::set_api(sb.world.control_port, &p, true).await?;
    outcome?;
    until("the healed writer's check passes", |a, p, _| a.records.iter().any(|h| h.region == *p && h.healthy)).await?;
    Ok(())
}

/// Healthy datapoints of `watched` as `home`'s probe publishes them, one per period of the
/// failover alarm, the newest in the last period that has ended (the period in progress is
/// not judged).
async fn put_healthy(sb: &Sandbox, home: &Region, watched: &Region, values: &[f64]) -> anyhow::Result<()> {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let period = sb.deployment().failover_alarm(home).rule.period;
    // The caller's tick judges the periods that have ended when it runs: a period boundary
    // between this put and that tick leaves the newest judged period empty (CI saw "three of
    // three below: []" once). Too close to the boundary, start in the next period.
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let into_period = Duration::from_nanos((since_epoch.as_nanos() % period.as_nanos()) as u64);
    if period.saturating_sub(into_period) < Duration::from_secs(3) {
        tokio::time::sleep(period - into_period + Duration::from_millis(100)).await;
    }
    let period = period.as_secs() as i64;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let cw = aws_sdk_cloudwatch::Client::new(&sdk_config(&sb.aws_target(), home).await);
    let mut data = Vec::new();
    for (i, v) in values.iter().rev().enumerate() {
        data.push(
            MetricDatum::builder()
                .metric_name(switchyard_core::health::metric::HEALTHY)
                .dimensions(Dimension::builder().name("Region").value(watched.as_str()).build())
                .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(now - (i as i64 + 1) * period))
                .value(*v)
                .storage_resolution(1)
                .build(),
        );
    }
    cw.put_metric_data().namespace(switchyard_core::health::NAMESPACE).set_metric_data(Some(data)).send().await?;
    Ok(())
}

/// The failover alarm as the model emits it (Healthy < 1 in 3 of 3 periods): at the
/// threshold and with too few breaching periods it stays OK; below it in every period it
/// fires, and the failover rule starts us-east-2's failover machine with the transformed input.
async fn alarm_fires(sb: &Sandbox) -> anyhow::Result<()> {
    let d = sb.deployment();
    let (east1, east2) = (d.regions.primary.clone(), d.regions.standby.clone());
    let alarm = d.failover_alarm(&east2);
    let port = sb.world.control_port;
    let state = |changes: &[switchyard_sandbox::world::clock::Change]| {
        changes.iter().rev().find(|c| c.alarm == alarm.name && c.region == east2).map(|c| c.to.clone())
    };
    let cw = aws_sdk_cloudwatch::Client::new(&sdk_config(&sb.aws_target(), &east2).await);
    let in_moto = || async {
        let described = cw.describe_alarms().alarm_names(&alarm.name).send().await?;
        anyhow::Ok(described.metric_alarms().first().and_then(|a| a.state_value()).map(|s| s.as_str().to_owned()))
    };
    // At the threshold: healthy (1 is not below 1).
    put_healthy(sb, &east2, &east1, &[1.0, 1.0, 1.0]).await?;
    let changes = control::tick(port).await?;
    ensure!(
        state(&changes).is_none_or(|s| s == "OK") && in_moto().await?.as_deref() == Some("OK"),
        "at the threshold: {changes:?}"
    );
    // Two of three below: still OK (3 of 3 are needed).
    put_healthy(sb, &east2, &east1, &[0.0, 0.0]).await?;
    let changes = control::tick(port).await?;
    ensure!(state(&changes).is_none(), "two of three breaching changed the state: {changes:?}");
    let started = |report: &serde_json::Value| -> Vec<serde_json::Value> {
        report["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["target"].as_str().is_some_and(|t| t.contains(":states:")))
            .cloned()
            .collect()
    };
    ensure!(started(&control::clock(port).await?).is_empty(), "a failover started without the alarm");
    // Three of three below: ALARM, and the rule starts the failover machine.
    put_healthy(sb, &east2, &east1, &[0.0, 0.0, 0.0]).await?;
    let changes = control::tick(port).await?;
    ensure!(state(&changes).as_deref() == Some("ALARM"), "three of three below: {changes:?}");
    let report = control::clock(port).await?;
    let executions = started(&report);
    ensure!(executions.len() == 1, "expected one failover execution: {report}");
    let e = &executions[0];
    ensure!(e["target"].as_str().is_some_and(|t| t.ends_with(&d.regional_names(&east2).failover_state_machine)), "{e}");
    ensure!(e["region"] == east2.as_str() && e["input"]["trigger"] == alarm.name.as_str(), "{e}");
    ensure!(e["input"]["reason"].as_str().is_some_and(|r| r.contains("3 of the last 3")), "{e}");
    ensure!(e["input"]["detectedAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    // moto holds the state the clock decided.
    ensure!(in_moto().await?.as_deref() == Some("ALARM"), "moto's alarm state after the tick");
    samples_land_in_their_own_periods(sb, &alarm, port, &state).await?;

    // Schedules fire at their rate, compressed: rate(1 minute) / 600 fires within seconds.
    control::set_clock(port, &switchyard_sandbox::world::clock::ClockSettings { running: true, compression: 600.0 })
        .await?;
    let fired = eventually(Duration::from_secs(15), "the probe schedule", || async {
        let report = control::clock(port).await?;
        let probes =
            report["deliveries"].as_array().into_iter().flatten().any(|d| {
                d["target"].as_str().is_some_and(|t| t.ends_with(":function:switchyard-sandbox-health-probe"))
            });
        Ok(probes.then_some(()))
    })
    .await;
    control::set_clock(port, &switchyard_sandbox::world::clock::ClockSettings { running: false, compression: 1.0 })
        .await?;
    fired
}

/// A probe publishes once per period at whatever fraction of a second it runs: three breaching
/// periods, each holding one sample a fraction of a second past its start (the first later
/// in its second than the others), keep the alarm in ALARM. The drill's alarm relapsed to OK
/// when the clock read moto's 1-second `GetMetricStatistics` buckets, which moto chains from
/// the first datapoint's fraction of a second: a sample 0.2 s into a period came back stamped
/// in the period before, and the last period looked empty.
async fn samples_land_in_their_own_periods(
    sb: &Sandbox,
    alarm: &switchyard_model::FailoverAlarm,
    port: u16,
    state: &(dyn Fn(&[switchyard_sandbox::world::clock::Change]) -> Option<String> + Sync),
) -> anyhow::Result<()> {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let home = sb.deployment().regions.standby.clone();
    let period = alarm.rule.period.as_secs_f64();
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64());
    // Past the earlier steps' datapoints (one period before their puts at most), and not near a
    // period boundary, so the three periods the tick judges are the three written here.
    let clear_of = now()? + 2.0 * period;
    loop {
        let t = now()?;
        let into = t % period;
        if t - into > clear_of && into > 0.5 && into < period - 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let end = (now()? / period).floor() * period;
    let cw = aws_sdk_cloudwatch::Client::new(&sdk_config(&sb.aws_target(), &home).await);
    let datum = |at: f64| {
        MetricDatum::builder()
            .metric_name(switchyard_core::health::metric::HEALTHY)
            .dimensions(Dimension::builder().name("Region").value(alarm.watched_region.as_str()).build())
            .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs_f64(at))
            .value(0.0)
            .storage_resolution(1)
            .build()
    };
    let at = [end - 3.0 * period + 0.7, end - 2.0 * period + 0.2, end - period + 0.2];
    cw.put_metric_data()
        .namespace(switchyard_core::health::NAMESPACE)
        .set_metric_data(Some(at.iter().map(|t| datum(*t)).collect()))
        .send()
        .await?;
    let changes = control::tick(port).await?;
    ensure!(state(&changes).is_none(), "three breaching periods, each with its sample: {changes:?}");
    Ok(())
}

/// The safety review of the contract (finding 5): us-east-1 parked an acknowledged order in
/// its catch-up queue for us-east-2, then lost the claim (here: the claim moves by hand).
/// The new writer's catch-up takes what the former writer parked into its own orders queue.
async fn parked_orders(sb: &Sandbox) -> anyhow::Result<()> {
    let d = sb.deployment();
    let (east1, east2) = (region("us-east-1"), region("us-east-2"));
    let sqs1 = aws_sdk_sqs::Client::new(&sdk_config(&sb.aws_target(), &east1).await);
    let parked = sqs1.get_queue_url().queue_name(d.regional_names(&east1).orders_catch_up).send().await?;
    let id = format!("parked-{}", std::process::id());
    sqs1.send_message()
        .queue_url(parked.queue_url().unwrap_or_default())
        .message_body(new_order(&id).to_string())
        .send()
        .await?;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(&sb.aws_target(), &east2).await);
    ddb.put_item()
        .table_name(d.regional_names(&east2).control_table)
        .item("pk", AttributeValue::S("writer".into()))
        .item("epoch", AttributeValue::N("2".into()))
        .item("writer", AttributeValue::S("us-east-2".into()))
        .send()
        .await?;
    let found = eventually(Duration::from_secs(20), "the parked order in us-east-2's queue", || async {
        let ids = drain(sb, "us-east-2").await?;
        Ok((!ids.is_empty()).then_some(ids))
    })
    .await?;
    ensure!(found == [id], "{found:?}");
    Ok(())
}
