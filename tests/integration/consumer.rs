//! The order-consumer function, fed by the sandbox's stand-in for the SQS event source
//! mapping (`switchyard_sandbox::event_source`), against the real databases and queues.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use anyhow::{Context, ensure};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use libtest_mimic::Trial;
use serde_json::json;
use switchyard_aws::sdk_config;
use switchyard_core::{ErrorName, Order, WriterEpoch, order::SHADOW_RECHECK, ports::Delivery};
use switchyard_postgres::{PgNode, bytes_behind, orders};
use switchyard_sandbox::{
    Sandbox,
    event_source::{OrdersEventSource, Poll},
    smoke,
};
use switchyard_tests::{eventually, own_sandbox_trial, sandbox_trial};

use crate::promoter::{begin, ok, request, until_done};

pub fn trials() -> Vec<Trial> {
    vec![
        sandbox_trial("consumer::duplicate_deliveries_apply_each_order_once", |sb| Box::pin(duplicates(sb))),
        sandbox_trial("consumer::a_mixed_batch_reports_exactly_the_bad_orders_which_end_in_the_dlq", |sb| {
            Box::pin(mixed_batch(sb))
        }),
        sandbox_trial("consumer::an_order_the_database_refuses_stays_alone_and_the_rest_is_applied", |sb| {
            Box::pin(refused_by_the_database(sb))
        }),
        sandbox_trial("consumer::shadow_deletes_only_orders_the_replica_holds", |sb| Box::pin(shadow(sb))),
        sandbox_trial("consumer::the_database_refuses_orders_committed_outside_the_writer_lease", |sb| {
            Box::pin(outside_the_lease(sb))
        }),
        sandbox_trial("consumer::reaches_its_database_over_tls_with_the_secret_only", |sb| {
            Box::pin(tls_and_secret(sb))
        }),
        sandbox_trial("consumer::an_order_stranded_in_the_standby_s_queue_is_applied_by_the_writer", |sb| {
            Box::pin(outage(sb))
        }),
        sandbox_trial("consumer::an_order_the_shadow_keeps_is_back_on_the_queue_within_seconds", |sb| {
            Box::pin(recheck(sb))
        }),
        sandbox_trial("consumer::hanging_calls_end_inside_its_timeout_and_the_order_is_requeued", |sb| {
            Box::pin(brownout(sb, "dynamodb"))
        }),
        sandbox_trial("consumer::a_hanging_database_ends_inside_its_timeout_and_the_order_is_requeued", |sb| {
            Box::pin(brownout(sb, switchyard_sandbox::world::POSTGRES))
        }),
        own_sandbox_trial(
            "consumer::after_a_failover_every_acknowledged_order_is_applied_once",
            "consumer-failover",
            |sb| Box::pin(failover_in(sb)),
        )
        .with_kind("sandbox"),
    ]
}

/// A valid order with an id unique to this test run.
pub(crate) fn order(tag: &str, n: usize) -> Order {
    xtask::bench::sample_order(format!("{tag}-{}-{n}", std::process::id()), n)
}

fn body(o: &Order) -> String {
    o.to_json().to_string()
}

/// Sends bodies straight to a queue (no fan-out); returns their message ids in order.
async fn send(source: &OrdersEventSource<'_>, bodies: &[String]) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for chunk in bodies.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, b)| SendMessageBatchRequestEntry::builder().id(format!("e{i}")).message_body(b).build())
            .collect::<Result<Vec<_>, _>>()?;
        let out =
            source.sqs.send_message_batch().queue_url(&source.queue_url).set_entries(Some(entries)).send().await?;
        ensure!(out.failed().is_empty(), "SendMessageBatch refused {:?}", out.failed());
        let by_entry: BTreeMap<&str, &str> = out.successful().iter().map(|s| (s.id(), s.message_id())).collect();
        ids.extend((0..chunk.len()).map(|i| by_entry[format!("e{i}").as_str()].to_owned()));
    }
    Ok(ids)
}

/// Sends orders to a region's order API, as clients do: each is acknowledged once it is in
/// both regions' queues (the standby eligible) or the writer's and its catch-up queue.
pub(crate) async fn publish(sb: &Sandbox, region: &str, orders: &[Order]) -> anyhow::Result<()> {
    for o in orders {
        let (status, answer) = smoke::post_order(sb, region, &smoke::request_of(o)).await?;
        ensure!(status == 202, "{region}'s order API answered {status} for {}: {answer}", o.order_id);
    }
    Ok(())
}

async fn wait_depth(source: &OrdersEventSource<'_>, url: &str, n: u64) -> anyhow::Result<()> {
    eventually(Duration::from_secs(15), &format!("{} messages in {url}", n), || async {
        Ok((source.depth(url).await? == n).then_some(()))
    })
    .await
}

/// Receives up to ten visible messages of a queue and deletes them (what a test leaves).
async fn delete_visible(source: &OrdersEventSource<'_>, url: &str) -> anyhow::Result<()> {
    let got = source.sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await?;
    for m in got.messages() {
        source.sqs.delete_message().queue_url(url).set_receipt_handle(m.receipt_handle.clone()).send().await?;
    }
    Ok(())
}

/// The writer lease on the database's own clock (`migrations/0003_writer_lease.sql`): a
/// COMMIT that arrives after the deadline set before the claim's read is refused, and so is
/// one that never set a deadline. The window here is 200 ms and the COMMIT comes 600 ms later:
/// what a COMMIT held up by a blackholed link looks like to the database.
async fn outside_the_lease(sb: &Sandbox) -> anyhow::Result<()> {
    let node = sb.node("us-east-1")?;
    let mut client = node.connect().await?;
    node.migrate(&mut client).await?;
    let late = order("lease", 0);
    let deliveries = [Delivery { message_id: "lease-test", order: &late }];
    let writer: switchyard_core::Region = "us-east-1".parse()?;
    let t = Duration::from_secs(5);
    for deadline in [None, Some(Duration::from_millis(200))] {
        let tx = client.transaction().await?;
        orders::apply(&tx, t, &deliveries, &writer, WriterEpoch(1)).await?;
        if let Some(window) = deadline {
            orders::arm_commit_deadline(&tx, t, window).await?;
            tokio::time::sleep(window * 3).await;
        }
        let commit = tx.commit().await.map_err(|e| switchyard_postgres::classify(&e));
        ensure!(
            matches!(&commit, Err(e) if e.name == ErrorName::LeaseLapsed),
            "a commit with deadline {deadline:?} was not refused as LeaseLapsed: {commit:?}"
        );
    }
    ensure!(applied(&node, &late.order_id).await?.is_empty(), "the late order is in the database");
    Ok(())
}

/// Order ids with `prefix` in a database.
async fn applied(node: &PgNode, prefix: &str) -> anyhow::Result<BTreeSet<String>> {
    let rows =
        node.connect().await?.query("SELECT order_id FROM orders WHERE order_id LIKE $1 || '%'", &[&prefix]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn ids(orders: &[Order]) -> BTreeSet<String> {
    orders.iter().map(|o| o.order_id.clone()).collect()
}

fn total(polls: &[Poll], f: impl Fn(&Poll) -> usize) -> usize {
    polls.iter().map(f).sum()
}

/// Every poll succeeded as a whole (partial failures only).
fn no_function_error(polls: &[Poll]) -> anyhow::Result<()> {
    for p in polls {
        ensure!(p.function_error.is_none(), "the consumer failed a whole batch: {:?}", p.function_error);
    }
    Ok(())
}

/// One batch holds an order twice and the next batch holds it again; then the very same
/// event is delivered a second time. Each order is applied once, nothing is kept.
async fn duplicates(sb: &Sandbox) -> anyhow::Result<()> {
    let source = OrdersEventSource::new(sb, "us-east-1").await?;
    let orders: Vec<Order> = (0..4).map(|n| order("dup", n)).collect();
    let mut bodies: Vec<String> = orders.iter().map(body).collect();
    bodies.push(body(&orders[0]));
    send(&source, &bodies).await?;
    wait_depth(&source, &source.queue_url, 5).await?;
    let polls = source.drain(10).await?;
    no_function_error(&polls)?;
    ensure!(total(&polls, |p| p.kept.len()) == 0, "kept: {polls:?}");
    send(&source, &[body(&orders[1]), body(&orders[2])]).await?;
    let again = source.drain(10).await?;
    ensure!(total(&again, |p| p.deleted) == 2, "redelivered orders not deleted: {again:?}");

    let node = sb.node("us-east-1")?;
    let prefix = format!("dup-{}-", std::process::id());
    ensure!(applied(&node, &prefix).await? == ids(&orders), "applied set differs");
    let copies: i64 = node
        .connect()
        .await?
        .query_one("SELECT count(*) FROM orders WHERE order_id LIKE $1 || '%'", &[&prefix])
        .await?
        .get(0);
    ensure!(copies == 4, "{copies} rows for 4 orders");

    // The same event delivered twice (an at-least-once redelivery of a whole batch).
    let event = json!({ "Records": [
        { "messageId": "redelivered-1", "body": body(&orders[3]), "attributes": { "ApproximateReceiveCount": "2" } },
    ]});
    for _ in 0..2 {
        let answer = sb.lambda("us-east-1")?.invoke("order-consumer", &event).await?;
        ensure!(
            answer == switchyard_sandbox::lambda::Invocation::Ok(json!({ "batchItemFailures": [] })),
            "redelivery: {answer:?}"
        );
    }
    Ok(())
}

/// #18: an order the parser accepts and the database refuses (here a check constraint a test
/// adds, standing for any the parser does not know) failed its whole batch, on every
/// redelivery. Now the batch is applied one order per transaction and only that order stays
/// (for the DLQ); the database's refusal is `InvalidInput` only for the insert itself.
async fn refused_by_the_database(sb: &Sandbox) -> anyhow::Result<()> {
    let mut source = OrdersEventSource::new(sb, "us-east-1").await?;
    source.visibility = Some(Duration::ZERO);
    let node = sb.node("us-east-1")?;
    let db = node.connect().await?;
    let mut orders: Vec<Order> = (0..3).map(|n| order("refused", n)).collect();
    orders[1].account = "REFUSED".into();
    db.batch_execute("ALTER TABLE orders ADD CONSTRAINT test_refused CHECK (account <> 'REFUSED') NOT VALID").await?;
    let outcome = async {
        send(&source, &orders.iter().map(body).collect::<Vec<_>>()).await?;
        wait_depth(&source, &source.queue_url, 3).await?;
        let polls = source.drain(1).await?;
        no_function_error(&polls)?;
        ensure!(total(&polls, |p| p.kept.len()) == 1 && total(&polls, |p| p.deleted) == 2, "{polls:?}");
        let prefix = format!("refused-{}-", std::process::id());
        let expected = ids(&[orders[0].clone(), orders[2].clone()]);
        ensure!(applied(&node, &prefix).await? == expected, "applied: {:?}", applied(&node, &prefix).await?);
        anyhow::Ok(())
    }
    .await;
    db.batch_execute("ALTER TABLE orders DROP CONSTRAINT test_refused").await?;
    delete_visible(&source, &source.queue_url).await?;
    outcome
}

/// Seven good orders and three bad ones in one batch: exactly the three are reported, the
/// seven are applied. The three then go to the DLQ after the queue's max receives. One good
/// order comes from a client whose clock runs 2 s ahead of the API's (#18): acknowledged
/// "before" it was submitted, and applied all the same, by the parser and the database.
async fn mixed_batch(sb: &Sandbox) -> anyhow::Result<()> {
    let mut source = OrdersEventSource::new(sb, "us-east-1").await?;
    source.visibility = Some(Duration::ZERO);
    let mut good: Vec<Order> = (0..7).map(|n| order("mixed", n)).collect();
    good[6].submitted_at =
        switchyard_core::order::Timestamp::from_unix_millis(good[6].acknowledged_at.unix_millis() + 2000);
    let mut bodies: Vec<String> = good.iter().map(body).collect();
    let mut bad_price = good[0].to_json();
    bad_price["orderId"] = json!(format!("mixed-{}-bad", std::process::id()));
    bad_price["price"] = json!(-3);
    let bad = [r#"{"orderId": "#.to_owned(), json!({"hello": "world"}).to_string(), bad_price.to_string()];
    bodies.splice(2..2, bad.iter().cloned());
    let message_ids = send(&source, &bodies).await?;
    let bad_ids: BTreeSet<String> = message_ids[2..5].iter().cloned().collect();
    wait_depth(&source, &source.queue_url, 10).await?;

    let first = source.poll().await?;
    ensure!(first.received == 10, "expected one batch of 10, got {}", first.received);
    ensure!(first.function_error.is_none(), "{:?}", first.function_error);
    ensure!(first.kept.iter().cloned().collect::<BTreeSet<_>>() == bad_ids, "reported {:?}", first.kept);
    ensure!(applied(&sb.node("us-east-1")?, &format!("mixed-{}-", std::process::id())).await? == ids(&good));

    let max_receives = sb.deployment().orders_max_receives as usize;
    let mut polls = 1;
    while source.depth(&source.dlq_url).await? < 3 && polls <= max_receives + 2 {
        let p = source.poll().await?;
        ensure!(p.deleted == 0, "a poison message was deleted: {p:?}");
        polls += 1;
    }
    ensure!(source.depth(&source.dlq_url).await? == 3, "poison not in the DLQ after {polls} polls");
    ensure!(source.depth(&source.queue_url).await? == 0, "messages left on the queue");
    // Empty the DLQ for the other tests.
    delete_visible(&source, &source.dlq_url).await?;
    Ok(())
}

/// With the replica's replay paused, the standby consumer keeps every order; once the
/// replica has them, it deletes them.
async fn shadow(sb: &Sandbox) -> anyhow::Result<()> {
    let (primary, replica) = (sb.node("us-east-1")?, sb.node("us-east-2")?);
    let east1 = OrdersEventSource::new(sb, "us-east-1").await?;
    let mut east2 = OrdersEventSource::new(sb, "us-east-2").await?;
    east2.visibility = Some(Duration::from_secs(1));
    let orders: Vec<Order> = (0..5).map(|n| order("shadow", n)).collect();

    let paused = replica.connect().await?;
    paused.batch_execute("SELECT pg_wal_replay_pause()").await?;
    let outcome = async {
        publish(sb, "us-east-1", &orders).await?;
        wait_depth(&east2, &east2.queue_url, 5).await?;
        let applied_polls = east1.drain(10).await?;
        ensure!(total(&applied_polls, |p| p.deleted) == 5, "primary: {applied_polls:?}");
        let kept = east2.drain(10).await?;
        no_function_error(&kept)?;
        ensure!(total(&kept, |p| p.kept.len()) == 5 && total(&kept, |p| p.deleted) == 0, "shadow: {kept:?}");
        anyhow::Ok(())
    }
    .await;
    paused.batch_execute("SELECT pg_wal_replay_resume()").await?;
    outcome?;

    eventually(Duration::from_secs(10), "replica caught up", || async {
        Ok((bytes_behind(&primary, &replica).await? == 0).then_some(()))
    })
    .await?;
    tokio::time::sleep(SHADOW_RECHECK + Duration::from_millis(500)).await;
    let deleted = east2.drain(10).await?;
    ensure!(total(&deleted, |p| p.deleted) == 5, "shadow after replication: {deleted:?}");
    ensure!(east2.depth(&east2.queue_url).await? == 0, "orders left in the standby queue");
    ensure!(applied(&replica, &format!("shadow-{}-", std::process::id())).await? == ids(&orders));
    Ok(())
}

/// The consumer logs in as its own role with the password from Secrets Manager, over TLS;
/// the same password in plain text is refused, and no function's environment holds it.
async fn tls_and_secret(sb: &Sandbox) -> anyhow::Result<()> {
    let credentials = switchyard_sandbox::postgres::consumer_credentials(&sb.dir)?;
    for region in ["us-east-1", "us-east-2"] {
        let answer = sb
            .lambda(region)?
            .invoke(
                "order-consumer",
                &json!({ "Records": [
                    { "messageId": "tls-probe", "body": body(&order("tls", 0)), "attributes": {} },
                ]}),
            )
            .await?;
        ensure!(matches!(answer, switchyard_sandbox::lambda::Invocation::Ok(_)), "{region}: {answer:?}");
        let node = sb.node(region)?;
        let sessions = node
            .connect()
            .await?
            .query("SELECT a.usename::text, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1", &[&format!("order-consumer-{region}")])
            .await?;
        let seen: Vec<(String, bool)> = sessions.iter().map(|r| (r.get(0), r.get(1))).collect();
        ensure!(
            !seen.is_empty() && seen.iter().all(|(u, ssl)| u == "order_consumer" && *ssl),
            "{region}: sessions {seen:?}"
        );

        let mut plain = node.endpoint.config(&format!("plain-{region}"), Duration::from_secs(5))?;
        plain.user(&credentials.username).password(credentials.password.as_bytes());
        let refused = plain.connect(tokio_postgres::NoTls).await;
        ensure!(
            refused.as_ref().err().and_then(|e| e.as_db_error()).is_some_and(|e| e.message().contains("no encryption")),
            "{region}: plain text was not refused: {:?}",
            refused.err()
        );
        let env = sb.function_environment(&region.parse()?);
        ensure!(
            env.iter().all(|(_, v)| !v.contains(&credentials.password)),
            "{region}: the password is in the environment"
        );
    }
    Ok(())
}

/// An order that reached only the standby's queue, acknowledged long enough ago that the
/// writer would have applied it: the standby keeps its copy and forwards one to the writer,
/// which applies it; once the replica holds it, the standby lets its copy go. Nothing
/// reaches the DLQ.
async fn outage(sb: &Sandbox) -> anyhow::Result<()> {
    let mut east2 = OrdersEventSource::new(sb, "us-east-2").await?;
    east2.visibility = Some(Duration::ZERO);
    let mut east1 = OrdersEventSource::new(sb, "us-east-1").await?;
    east1.visibility = Some(Duration::ZERO);
    // An order that reached only the standby's queue (its copy to the writer was lost), and
    // was acknowledged two minutes ago: the writer would long have applied it.
    let mut stranded = order("stranded", 0);
    stranded.acknowledged_at =
        switchyard_core::order::Timestamp::from_unix_millis(stranded.acknowledged_at.unix_millis() - 120_000);
    stranded.submitted_at = stranded.acknowledged_at;
    send(&east2, &[body(&stranded)]).await?;
    let max_receives = sb.deployment().orders_max_receives as usize;
    let east2_polls = east2.drain(3 * max_receives).await;
    // The writer's consumer applies what reached its queue.
    let east1_polls = east1.drain(10).await;
    let writer_has = applied(&sb.node("us-east-1")?, &stranded.order_id).await?;
    // Once the replica holds it, the standby's copy goes.
    let replica = sb.node("us-east-2")?;
    let replicated = eventually(Duration::from_secs(10), "the stranded order in the replica", || async {
        Ok(applied(&replica, &stranded.order_id).await?.contains(&stranded.order_id).then_some(()))
    })
    .await;
    // What the standby kept comes back after SHADOW_RECHECK.
    tokio::time::sleep(SHADOW_RECHECK + Duration::from_millis(500)).await;
    let after = east2.drain(3).await?;
    // Leave nothing for later tests, whatever happened.
    delete_visible(&east2, &east2.queue_url).await?;
    let dlq_depth = east2.depth(&east2.dlq_url).await?;
    let (east2_polls, east1_polls) = (east2_polls?, east1_polls?);
    no_function_error(&east2_polls)?;
    no_function_error(&east1_polls)?;
    ensure!(dlq_depth == 0, "a valid order reached the DLQ");
    ensure!(
        writer_has.contains(&stranded.order_id),
        "the stranded order never reached the writer: after {} deliveries in us-east-2 it is not applied in us-east-1",
        east2_polls.len()
    );
    replicated?;
    ensure!(
        total(&after, |p| p.deleted) >= 1 && east2.depth(&east2.queue_url).await? == 0,
        "the standby kept it: {after:?}"
    );
    Ok(())
}

/// Review of #16: an order the shadow kept (not in its replica yet) stayed invisible for the
/// queue's whole visibility timeout (60 s), and a failover to the shadow's region waited that
/// out before applying it. Polled under the queue's own visibility timeout, it is back within
/// `SHADOW_RECHECK` (2 s).
async fn recheck(sb: &Sandbox) -> anyhow::Result<()> {
    let east2 = OrdersEventSource::new(sb, "us-east-2").await?;
    ensure!(east2.visibility.is_none(), "this test needs the queue's own visibility timeout");
    let kept = order("recheck", 0);
    send(&east2, &[body(&kept)]).await?;
    let first = east2.poll().await?;
    ensure!(first.kept.len() == 1 && first.function_error.is_none(), "the shadow kept it: {first:?}");
    let started = std::time::Instant::now();
    let again = eventually(Duration::from_secs(12), "the kept order visible again", || async {
        let poll = east2.poll().await?;
        Ok((poll.received > 0).then_some(poll))
    })
    .await;
    let waited = started.elapsed();
    // Leave nothing for later tests: the replica never gets this order.
    eventually(Duration::from_secs(70), "the test order gone", || async {
        delete_visible(&east2, &east2.queue_url).await?;
        Ok((east2.depth(&east2.queue_url).await? == 0).then_some(()))
    })
    .await?;
    again.with_context(|| format!("not back after {waited:?}"))?;
    ensure!(waited < SHADOW_RECHECK + Duration::from_secs(4), "back only after {waited:?}");
    Ok(())
}

/// Orders keep arriving through a regional outage: some applied and replicated, some applied
/// on the primary after replication was cut, some never applied there. After the failover the
/// new writer's consumer applies what its queue still holds: every acknowledged order exactly
/// once. The old writer's consumer, back again, applies nothing.
async fn failover_in(sb: &Sandbox) -> anyhow::Result<()> {
    let (old, new) = (sb.node("us-east-1")?, sb.node("us-east-2")?);
    let mut east1 = OrdersEventSource::new(sb, "us-east-1").await?;
    let mut east2 = OrdersEventSource::new(sb, "us-east-2").await?;
    east1.visibility = Some(Duration::from_secs(1));
    east2.visibility = Some(Duration::from_secs(1));
    let batch = |from: usize, to: usize| (from..to).map(|n| order("fo", n)).collect::<Vec<_>>();

    // Calm: applied in us-east-1, replicated, pruned from us-east-2's queue.
    let calm = batch(0, 20);
    publish(sb, "us-east-1", &calm).await?;
    wait_depth(&east2, &east2.queue_url, 20).await?;
    no_function_error(&east1.drain(10).await?)?;
    eventually(Duration::from_secs(10), "replica caught up", || async {
        Ok((bytes_behind(&old, &new).await? == 0).then_some(()))
    })
    .await?;
    let pruned = east2.drain(10).await?;
    ensure!(total(&pruned, |p| p.deleted) == 20, "shadow pruning: {pruned:?}");

    // The link between the regions fails; us-east-1 keeps applying what it receives.
    let replica = new.connect().await?;
    replica.batch_execute("ALTER SYSTEM SET primary_conninfo = ''; ").await?;
    replica.batch_execute("SELECT pg_reload_conf()").await?;
    eventually(Duration::from_secs(10), "replication cut", || async {
        use switchyard_core::ports::ReplicationMonitor;
        Ok((old.replication_status().await?.streaming_peers == 0).then_some(()))
    })
    .await?;
    let unreplicated = batch(20, 35);
    publish(sb, "us-east-1", &unreplicated).await?;
    wait_depth(&east1, &east1.queue_url, 15).await?;
    no_function_error(&east1.drain(10).await?)?;
    // Acknowledged, published, then us-east-1 dies before its consumer gets to them.
    let unapplied = batch(35, 45);
    publish(sb, "us-east-1", &unapplied).await?;
    wait_depth(&east2, &east2.queue_url, 25).await?;
    let kept = east2.drain(10).await?;
    ensure!(total(&kept, |p| p.kept.len()) == 25 && total(&kept, |p| p.deleted) == 0, "shadow: {kept:?}");
    sb.crash_database("us-east-1")?;

    // Unplanned failover to us-east-2 through rds-promoter, as the state machine runs it.
    let promoter = sb.lambda("us-east-2")?;
    switchyard_tests::arm(sb, "us-east-2")?;
    begin(promoter, "unplanned").await?;
    let mut check = request("gate", "unplanned", 1);
    check["allowDataLoss"] = json!(true);
    ok(promoter, check).await?;
    until_done(promoter, request("promote", "unplanned", 1)).await?;
    ok(promoter, request("record", "unplanned", 1)).await?;
    // The lease, as the state machine waits it; until the activation nobody applies.
    tokio::time::sleep(switchyard_core::WRITER_LEASE).await;
    ok(promoter, request("activate", "unplanned", 1)).await?;

    // us-east-2's consumer is active now and applies what its queue held.
    tokio::time::sleep(SHADOW_RECHECK + Duration::from_millis(500)).await;
    let takeover = east2.drain(10).await?;
    no_function_error(&takeover)?;
    let acknowledged: BTreeSet<String> =
        ids(&calm).into_iter().chain(ids(&unreplicated)).chain(ids(&unapplied)).collect();
    let prefix = format!("fo-{}-", std::process::id());
    let present = applied(&new, &prefix).await?;
    ensure!(
        present == acknowledged,
        "missing after failover: {:?}",
        acknowledged.difference(&present).collect::<Vec<_>>()
    );
    ensure!(east2.depth(&east2.queue_url).await? == 0 && east2.depth(&east2.dlq_url).await? == 0, "queue not empty");
    let by_epoch: Vec<(i64, String, i64)> = new
        .connect()
        .await?
        .query(
            "SELECT applied_epoch, applied_region, count(*) FROM orders WHERE order_id LIKE $1 || '%' GROUP BY 1, 2 ORDER BY 1",
            &[&prefix],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    ensure!(by_epoch == [(1, "us-east-1".into(), 20), (2, "us-east-2".into(), 25)], "applied: {by_epoch:?}");

    // us-east-1 comes back, its database unfenced and its own control table still naming it
    // the writer. Its consumer reads the peer's newer epoch and applies nothing.
    sb.start_database("us-east-1")?;
    let late = batch(45, 46);
    publish(sb, "us-east-2", &late).await?;
    wait_depth(&east1, &east1.queue_url, 11).await?;
    let returning = east1.drain(10).await?;
    no_function_error(&returning)?;
    ensure!(total(&returning, |p| p.kept.len()) == 11 && total(&returning, |p| p.deleted) == 0, "{returning:?}");
    ensure!(applied(&old, &prefix).await?.len() == 35, "the returning writer applied an order");
    let applied_late = east2.drain(10).await?;
    ensure!(total(&applied_late, |p| p.deleted) == 1, "{applied_late:?}");
    ensure!(applied(&new, &prefix).await?.len() == 46);
    Ok(())
}

/// H5 of the safety review: a brownout in which `service` of us-east-1 hangs (a `blackhole`
/// service cut). The consumer must answer inside its own timeout (the model's: the orders
/// queue's visibility timeout / 6) and copy a valid order near its last receive back onto the
/// queue, so the order never walks into the DLQ.
async fn brownout(sb: &Sandbox, service: &str) -> anyhow::Result<()> {
    use switchyard_sandbox::world::{CutMode, Links, Shape, control};
    let d = sb.deployment();
    let east1: switchyard_core::Region = "us-east-1".parse()?;
    let timeout = d.function_specs().into_iter().find(|f| f.name == "order-consumer").context("spec")?.timeout;
    let o = order(&format!("brownout-{service}"), 0);
    let event = json!({ "Records": [{
        "messageId": format!("brownout-{service}-{}", std::process::id()), "body": body(&o),
        "attributes": { "ApproximateReceiveCount": (d.orders_max_receives - 1).to_string() },
    }]});
    let mut links = Links::default();
    links
        .apply(
            &Shape::Service(east1.clone(), service.to_owned()),
            CutMode::Blackhole,
            &sb.world.places,
            sb.world.witness(),
        )
        .map_err(anyhow::Error::msg)?;
    control::set_links(sb.world.control_port, &links).await?;
    let start = std::time::Instant::now();
    let answer = tokio::time::timeout(timeout * 3, sb.lambda("us-east-1")?.invoke("order-consumer", &event)).await;
    let took = start.elapsed();
    control::set_links(sb.world.control_port, &Links::default()).await?;
    let answer =
        answer.map_err(|_| anyhow::anyhow!("no answer within {:?} (its timeout is {timeout:?})", timeout * 3))??;
    ensure!(took <= timeout, "answered after {took:?}, beyond its {timeout:?} timeout: {answer:?}");
    let failures = match &answer {
        switchyard_sandbox::lambda::Invocation::Ok(v) => v["batchItemFailures"].as_array().map_or(0, Vec::len),
        other => anyhow::bail!("a function error counts one more receive, with no copy made: {other:?}"),
    };
    ensure!(failures == 0, "the order was kept without a copy: {answer:?}");
    // The copy is on the queue; take it off again.
    let resources = sb.resources.as_ref().context("not provisioned")?;
    let url = &resources.regions["us-east-1"].orders_queue_url;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config(&sb.aws_target(), &east1).await);
    let copy = eventually(Duration::from_secs(10), "the copy on the queue", || async {
        let got = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await?;
        let mine = got.messages().iter().find(|m| m.body().is_some_and(|b| b.contains(&o.order_id))).cloned();
        Ok(mine)
    })
    .await?;
    sqs.delete_message().queue_url(url).receipt_handle(copy.receipt_handle().unwrap_or_default()).send().await?;
    Ok(())
}
