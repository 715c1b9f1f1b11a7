//! `cargo xtask bench consumer`: orders per second applied by one order-consumer process
//! against the sandbox's PostgreSQL, beside a baseline measured in the same run on the same
//! server with the same durability settings (fsync and synchronous_commit on): a plain loop
//! of 10-row multi-row INSERTs, one commit each, from one connection. The consumer is
//! invoked through the Lambda Invoke API of `cargo lambda watch` with SQS events of 10
//! records (the event source mapping's default batch size), one batch at a time, as one
//! Lambda instance receives them. Rounds alternate so drift hits both sides alike.
//!
//! The ratio consumer/baseline is the figure; absolute numbers depend on the machine.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail, ensure};
use serde::Serialize;
use serde_json::{Value, json};
use switchyard_core::{
    Order,
    order::{Price, Side, Timestamp},
};

use switchyard_sandbox::{Sandbox, event_source::CONSUMER, lambda::Invocation};

/// What the platform needs: 10,000 orders an hour.
pub const NEED_ORDERS_PER_SECOND: f64 = 10_000.0 / 3600.0;
const BATCH: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub consumer_orders_per_second: f64,
    pub baseline_orders_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumerBench {
    pub orders_per_round: usize,
    pub batch_size: usize,
    pub rounds: Vec<Round>,
    pub consumer_median: f64,
    pub baseline_median: f64,
    /// consumer / baseline.
    pub ratio: f64,
    /// consumer / the platform's need.
    pub headroom: f64,
    pub consumer_build: &'static str,
    /// Median wall time of one invocation carrying no record: the Invoke API round trip plus
    /// the writer-claim read (one strong read of the claim store), without any database work.
    pub empty_invocation_ms: f64,
    /// Median wall time of one 10-order invocation.
    pub batch_invocation_ms: f64,
}

/// A valid order: the `n`-th of a series, acknowledged now. Tests and the benchmark share it.
pub fn sample_order(order_id: String, n: usize) -> Order {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let t = Timestamp { unix_seconds: d.as_secs() as i64, nanos: d.subsec_micros() * 1000 };
    Order {
        order_id,
        account: format!("ACC-{}", n % 97),
        instrument: "MSFT".into(),
        side: if n.is_multiple_of(2) { Side::Buy } else { Side::Sell },
        quantity: 1 + n as u64 % 500,
        price: Price(412_000_000 + n as i64),
        submitted_at: t,
        acknowledged_at: t,
    }
}

fn orders(tag: &str, n: usize) -> Vec<Order> {
    (0..n).map(|i| sample_order(format!("bench-{tag}-{i}"), i)).collect()
}

fn event(batch: &[Order], first_message: usize) -> Value {
    let records: Vec<Value> = batch
        .iter()
        .enumerate()
        .map(|(i, o)| {
            json!({
                "messageId": format!("bench-message-{}", first_message + i),
                "body": o.to_json().to_string(),
                "attributes": { "ApproximateReceiveCount": "1" },
                "eventSource": "aws:sqs",
            })
        })
        .collect();
    json!({ "Records": records })
}

async fn run_consumer(sb: &Sandbox, orders: &[Order]) -> Result<Duration> {
    let lambda = sb.lambda(sb.deployment().regions.primary.as_str())?;
    let start = Instant::now();
    for (k, batch) in orders.chunks(BATCH).enumerate() {
        match lambda.invoke(CONSUMER, &event(batch, k * BATCH)).await? {
            Invocation::Ok(answer) if answer["batchItemFailures"].as_array().is_some_and(Vec::is_empty) => {}
            other => bail!("the consumer did not apply a batch: {other:?}"),
        }
    }
    Ok(start.elapsed())
}

async fn run_baseline(client: &tokio_postgres::Client, orders: &[Order]) -> Result<Duration> {
    let start = Instant::now();
    for batch in orders.chunks(BATCH) {
        let values: Vec<String> = batch
            .iter()
            .map(|o| {
                format!(
                    "('{}','{}','{}','{}',{},{},'{}','{}',md5('{}'),'baseline',1,'{}')",
                    o.order_id,
                    o.account,
                    o.instrument,
                    o.side.as_str(),
                    o.quantity,
                    o.price,
                    o.submitted_at,
                    o.acknowledged_at,
                    o.order_id,
                    o.order_id
                )
            })
            .collect();
        client
            .batch_execute(&format!(
                "INSERT INTO orders_baseline (order_id, account, instrument, side, quantity, price, submitted_at,
                     acknowledged_at, fingerprint, applied_region, applied_epoch, message_id) VALUES {}",
                values.join(",")
            ))
            .await?;
    }
    Ok(start.elapsed())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the benchmark in a sandbox instance of its own and stops it.
pub async fn consumer(orders_per_round: usize, rounds: usize) -> Result<ConsumerBench> {
    ensure!(orders_per_round >= BATCH && rounds >= 1, "need at least {BATCH} orders and one round");
    let sb = Sandbox::up("bench").await?;
    let outcome = async {
        let writer = sb.node(sb.deployment().regions.primary.as_str())?;
        let client = writer.connect().await.map_err(anyhow::Error::msg)?;
        client
            .batch_execute(
                "DROP TABLE IF EXISTS orders_baseline;
                 CREATE TABLE orders_baseline (LIKE orders INCLUDING ALL);",
            )
            .await?;
        // Warm up: the first invocation builds the function and opens its connections.
        run_consumer(&sb, &orders("warmup", BATCH)).await?;
        run_baseline(&client, &orders("warmup", BATCH)).await?;
        let mut measured = Vec::new();
        for r in 0..rounds {
            let batch = orders(&format!("r{r}"), orders_per_round);
            let baseline = run_baseline(&client, &batch).await?;
            let consumer = run_consumer(&sb, &batch).await?;
            let rate = |d: Duration| orders_per_round as f64 / d.as_secs_f64();
            let round =
                Round { consumer_orders_per_second: rate(consumer), baseline_orders_per_second: rate(baseline) };
            println!(
                "  round {}: consumer {:>7.1} orders/s   baseline {:>7.1} orders/s",
                r + 1,
                round.consumer_orders_per_second,
                round.baseline_orders_per_second
            );
            measured.push(round);
        }
        let mut empty = Vec::new();
        for _ in 0..50 {
            let start = Instant::now();
            sb.lambda(sb.deployment().regions.primary.as_str())?.invoke(CONSUMER, &json!({ "Records": [] })).await?;
            empty.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let applied: i64 =
            client.query_one("SELECT count(*) FROM orders WHERE order_id LIKE 'bench-r%'", &[]).await?.get(0);
        ensure!(
            applied as usize == orders_per_round * rounds,
            "{applied} orders applied, expected {}",
            orders_per_round * rounds
        );
        let consumer_median = median(measured.iter().map(|r| r.consumer_orders_per_second).collect());
        let baseline_median = median(measured.iter().map(|r| r.baseline_orders_per_second).collect());
        Ok(ConsumerBench {
            orders_per_round,
            batch_size: BATCH,
            rounds: measured,
            consumer_median,
            baseline_median,
            ratio: consumer_median / baseline_median,
            headroom: consumer_median / NEED_ORDERS_PER_SECOND,
            consumer_build: "debug (cargo lambda watch), claim read from moto's DynamoDB",
            empty_invocation_ms: median(empty),
            batch_invocation_ms: 1000.0 * BATCH as f64 / consumer_median,
        })
    }
    .await;
    let stopped = sb.down();
    let report = outcome?;
    stopped?;
    Ok(report)
}
