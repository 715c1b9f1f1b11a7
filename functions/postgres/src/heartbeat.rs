//! The health probe's heartbeat and what a database says about itself when probed.

use switchyard_core::{DatabaseRole, ports::PortResult};
use tokio_postgres::Client;

use crate::{PgNode, bounded};

/// What one probe of a database found.
#[derive(Debug, Clone, PartialEq)]
pub struct Pulse {
    pub role: DatabaseRole,
    /// A writer that refuses writes (fenced).
    pub fenced: bool,
    /// Replica only: the WAL receiver streams from the writer.
    pub streaming: bool,
    /// Replica only: received WAL not replayed yet, and the age of the newest replayed commit
    /// while behind (the replica's own view; it cannot see WAL it never received).
    pub replay_lag_seconds: Option<f64>,
    /// Age of the newest heartbeat the database holds: on a replica, the lag as a client
    /// sees it (plus at most one probe interval), even when the writer is gone.
    pub heartbeat_age_seconds: Option<f64>,
    /// Replica only, while it streams: how far the writer's clock runs ahead of this
    /// replica's, at least (`last_msg_send_time` on the writer's clock minus
    /// `last_msg_receipt_time` on the replica's: the offset less the message's one-way
    /// delay). Negative when the writer's clock is behind.
    pub writer_clock_ahead_seconds: Option<f64>,
}

/// Probes `node` over `client`: on a writer, writes the heartbeat of `region` (the write is
/// the probe: a writer that cannot write is down); on a replica, reads its lag.
pub async fn probe(node: &PgNode, client: &Client, region: &str) -> PortResult<Pulse> {
    let t = node.timeout;
    let sql = "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')::bool,
                      (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming') > 0,
                      CASE WHEN NOT pg_is_in_recovery() THEN NULL
                           WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                           ELSE EXTRACT(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 END,
                      (SELECT EXTRACT(epoch FROM last_msg_send_time - last_msg_receipt_time)::float8
                         FROM pg_stat_wal_receiver WHERE status = 'streaming')";
    let row = bounded(t, "probe", client.query_one(sql, &[])).await?;
    let (in_recovery, fenced): (bool, bool) = (row.get(0), row.get(1));
    if !in_recovery && !fenced {
        let beat = "INSERT INTO switchyard_heartbeat (region, beat_at) VALUES ($1, clock_timestamp())
                    ON CONFLICT (region) DO UPDATE SET beat_at = EXCLUDED.beat_at, beats = switchyard_heartbeat.beats + 1";
        bounded(t, "heartbeat", client.execute(beat, &[&region])).await?;
    }
    let age = "SELECT EXTRACT(epoch FROM clock_timestamp() - max(beat_at))::float8 FROM switchyard_heartbeat";
    let heartbeat_age_seconds: Option<f64> = bounded(t, age, client.query_one(age, &[])).await?.get(0);
    Ok(Pulse {
        role: if in_recovery { DatabaseRole::Replica } else { DatabaseRole::Writer },
        fenced,
        streaming: row.get(2),
        replay_lag_seconds: row.get(3),
        heartbeat_age_seconds: heartbeat_age_seconds.map(|a| a.max(0.0)),
        writer_clock_ahead_seconds: row.get(4),
    })
}
