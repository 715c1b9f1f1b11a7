//! The orders table (see `migrations/`): apply a batch of orders idempotently, or look up
//! which orders a database already holds.
//!
//! **Idempotent on the order id**: an order is inserted at most once; delivering it again
//! finds it present with the same fingerprint. An order id that arrives with different
//! content is a conflict, reported and never overwritten.

use std::{collections::HashMap, time::Duration};

pub use switchyard_core::ports::{Applied, Delivery, FirstApplied, Presence};
use switchyard_core::{Order, Region, WriterEpoch, ports::PortResult};
use tokio_postgres::GenericClient;

use crate::{bounded, bounded_with};

/// SQLSTATEs of `migrations/0003_writer_lease.sql`: a commit of orders after the deadline,
/// or without one.
pub const LEASE_LAPSED: &str = "SYL02";
pub const LEASE_UNSET: &str = "SYL01";

/// Sets the transaction's commit deadline to `window` from now **by the database's clock**.
/// Call it just before the strong read that allows the commit: the deadline then falls no
/// later than `window` after that read started, whatever the network does to the COMMIT.
pub async fn arm_commit_deadline<C: GenericClient>(db: &C, timeout: Duration, window: Duration) -> PortResult<()> {
    bounded(
        timeout,
        "arm the commit deadline",
        db.execute(
            "SELECT set_config('switchyard.lease_deadline', (clock_timestamp() + make_interval(secs => $1))::text, true)",
            &[&window.as_secs_f64()],
        ),
    )
    .await?;
    Ok(())
}

/// The fingerprint column holds sha256 of [`Order::fingerprint`], computed by the server.
const FINGERPRINT: &str = "encode(sha256(convert_to(n.fp, 'UTF8')), 'hex')";

/// Inserts every order whose id is new, in one statement, as applied by `region` under
/// `epoch`; reports each delivery's outcome in order. Run it inside the caller's transaction
/// so the batch commits (or not) as one. Deliveries must carry distinct order ids.
pub async fn apply<C: GenericClient>(
    db: &C,
    timeout: Duration,
    deliveries: &[Delivery<'_>],
    region: &Region,
    epoch: WriterEpoch,
) -> PortResult<Vec<Applied>> {
    let column = |f: fn(&Delivery<'_>) -> String| deliveries.iter().map(f).collect::<Vec<String>>();
    let ids = column(|d| d.order.order_id.clone());
    let quantities: Vec<i64> = deliveries.iter().map(|d| d.order.quantity as i64).collect();
    let sql = format!(
        "INSERT INTO orders (order_id, account, instrument, side, quantity, price, submitted_at, acknowledged_at,
                             fingerprint, applied_region, applied_epoch, message_id)
         SELECT n.id, n.account, n.instrument, n.side, n.quantity, n.price::numeric, n.submitted::timestamptz,
                n.acknowledged::timestamptz, {FINGERPRINT}, $10, $11, n.message_id
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[],
                       $8::text[], $9::text[], $12::text[])
             AS n(id, account, instrument, side, quantity, price, submitted, acknowledged, fp, message_id)
         ON CONFLICT (order_id) DO NOTHING
         RETURNING order_id"
    );
    let inserted = bounded_with(
        timeout,
        "insert orders",
        db.query(
            &sql,
            &[
                &ids,
                &column(|d| d.order.account.clone()),
                &column(|d| d.order.instrument.clone()),
                &column(|d| d.order.side.as_str().to_owned()),
                &quantities,
                &column(|d| d.order.price.to_string()),
                &column(|d| d.order.submitted_at.to_string()),
                &column(|d| d.order.acknowledged_at.to_string()),
                &column(|d| d.order.fingerprint()),
                &region.as_str(),
                &(epoch.0 as i64),
                &column(|d| d.message_id.to_owned()),
            ],
        ),
        crate::classify_input,
    )
    .await?;
    let inserted: std::collections::HashSet<String> = inserted.iter().map(|r| r.get(0)).collect();
    let existing: Vec<&Order> =
        deliveries.iter().filter(|d| !inserted.contains(&d.order.order_id)).map(|d| d.order).collect();
    let mut earlier = presence(db, timeout, &existing).await?.into_iter();
    Ok(deliveries
        .iter()
        .map(|d| match inserted.contains(&d.order.order_id) {
            true => Applied::Inserted,
            false => match earlier.next() {
                Some(Presence::Same) => Applied::AlreadyPresent,
                // Absent cannot happen after ON CONFLICT; count it as a conflict, never as done.
                _ => Applied::Conflict,
            },
        })
        .collect())
}

/// Which of `orders` the database already holds, in order.
pub async fn presence<C: GenericClient>(db: &C, timeout: Duration, orders: &[&Order]) -> PortResult<Vec<Presence>> {
    if orders.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = orders.iter().map(|o| o.order_id.as_str()).collect();
    let fingerprints: Vec<String> = orders.iter().map(|o| o.fingerprint()).collect();
    let sql = format!(
        "SELECT n.id, o.fingerprint = {FINGERPRINT}
           FROM unnest($1::text[], $2::text[]) AS n(id, fp)
           LEFT JOIN orders o ON o.order_id = n.id"
    );
    let rows = bounded(timeout, "look up orders", db.query(&sql, &[&ids, &fingerprints])).await?;
    let found: HashMap<String, Option<bool>> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(ids
        .iter()
        .map(|id| match found.get(*id) {
            Some(Some(true)) => Presence::Same,
            Some(Some(false)) => Presence::Different,
            _ => Presence::Absent,
        })
        .collect())
}

/// When `region` applied its first order under `epoch` (`None`: none yet). The evidence of
/// "first order applied" in a failover's timeline.
pub async fn first_applied<C: GenericClient>(
    db: &C,
    timeout: Duration,
    region: &Region,
    epoch: WriterEpoch,
) -> PortResult<Option<FirstApplied>> {
    let row = bounded(
        timeout,
        "first applied order",
        db.query_one(
            "SELECT (extract(epoch FROM min(applied_at)) * 1000)::bigint, count(*)
               FROM orders WHERE applied_region = $1 AND applied_epoch = $2",
            &[&region.as_str(), &(epoch.0 as i64)],
        ),
    )
    .await?;
    let (first_ms, count): (Option<i64>, i64) = (row.get(0), row.get(1));
    Ok(first_ms
        .map(|ms| FirstApplied { at: switchyard_core::order::Timestamp::from_unix_millis(ms), count: count as u64 }))
}
