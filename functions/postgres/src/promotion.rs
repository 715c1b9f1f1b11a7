//! Changing which PostgreSQL server is the writer: promotion, fencing, catch-up.
//!
//! Each step is idempotent and reports [`StepState`], so a state machine can retry or poll
//! it: promoting a server that already writes, or fencing one already fenced, is `Done`.
//!
//! A planned switchover loses nothing when run in this order: fence the writer, wait until
//! the replica has replayed the writer's final WAL position ([`catch_up`]), promote the
//! replica. An unplanned failover promotes without the writer; whatever the writer committed
//! but never sent is lost, which is what the lag gate weighs beforehand.

use std::time::Duration;

use switchyard_core::{
    ErrorName, SwitchyardError,
    ports::{DatabasePromoter, PortResult, StepState},
};

use crate::{PgNode, bounded};

/// How a fenced server refuses writes.
///
/// `default_transaction_read_only` is persisted with `ALTER SYSTEM`, so it survives a
/// restart, and every existing session is ended so none keeps writing. It is a fence against
/// well-behaved clients (the order consumer never opts back into read-write); the writer
/// epoch is the second line. For Aurora the global cluster itself demotes the old writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    ReadOnly,
}

/// How long one promotion poll waits for `pg_promote` to finish (then `InProgress`).
pub const PROMOTE_POLL_WAIT: Duration = Duration::from_secs(5);

impl DatabasePromoter for PgNode {
    /// Promotes a replica and lifts any fence it inherited, so it accepts writes.
    async fn promote(&self) -> PortResult<StepState> {
        let client = self.connect().await?;
        let in_recovery: bool = self.query_one(&client, "SELECT pg_is_in_recovery()").await?.get(0);
        if in_recovery {
            // Waits up to 5 s for the promotion to finish; `false` means not finished yet and
            // the state machine polls again (each poll short, so its bounded polls stay within
            // the execution's timeout; asking again while it runs changes nothing).
            let promoted: bool = bounded(
                (PROMOTE_POLL_WAIT + Duration::from_secs(5)).max(self.timeout),
                "pg_promote",
                client.query_one("SELECT pg_promote(true, $1)", &[&(PROMOTE_POLL_WAIT.as_secs() as i32)]),
            )
            .await?
            .get(0);
            if !promoted {
                return Ok(StepState::InProgress);
            }
            tracing::info!(node = %self.application_name, "promoted to writer");
        }
        // A replica copies its writer's configuration, fence included: lift it. Idempotent.
        let fenced: bool =
            self.query_one(&client, "SELECT current_setting('default_transaction_read_only')::bool").await?.get(0);
        if fenced {
            self.run_each(&client, "unfence", &UNFENCE).await?;
        }
        let writable = self.accepts_writes().await?;
        Ok(if writable { StepState::Done } else { StepState::InProgress })
    }

    /// Makes a writer refuse writes and ends its sessions. On a replica it does nothing (a
    /// replica refuses writes already).
    async fn fence(&self) -> PortResult<StepState> {
        let client = self.connect().await?;
        let in_recovery: bool = self.query_one(&client, "SELECT pg_is_in_recovery()").await?.get(0);
        if in_recovery {
            return Ok(StepState::Done);
        }
        let reload = ["ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()"];
        self.run_each(&client, "fence", &reload).await?;
        // `pg_reload_conf` only signals the postmaster: a session that starts before it has
        // reread the file still defaults to read-write. Wait (briefly) until a new session
        // sees the fence, and only then end every other session, so none that began before
        // the fence was in force keeps writing while the catch-up measures the final position.
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while self.accepts_writes().await? {
            if std::time::Instant::now() >= until {
                return Ok(StepState::InProgress);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let end_sessions = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                             WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'";
        self.run_each(&client, "fence", &[end_sessions]).await?;
        tracing::info!(node = %self.application_name, "fenced: read-only, sessions ended");
        let writable = self.accepts_writes().await?;
        Ok(if writable { StepState::InProgress } else { StepState::Done })
    }
}

/// What lifts the fence: the persisted read-only default goes, and the server reloads.
const UNFENCE: [&str; 2] = ["ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()"];

impl PgNode {
    /// Lifts this server's fence (a planned switchover that failed before promoting the
    /// replica): `Done` once a new session may write again. Does nothing to a replica.
    pub async fn unfence(&self) -> PortResult<StepState> {
        let client = self.connect().await?;
        let in_recovery: bool = self.query_one(&client, "SELECT pg_is_in_recovery()").await?.get(0);
        if in_recovery {
            return Ok(StepState::Done);
        }
        self.run_each(&client, "unfence", &UNFENCE).await?;
        tracing::info!(node = %self.application_name, "fence lifted");
        Ok(if self.accepts_writes().await? { StepState::Done } else { StepState::InProgress })
    }

    /// Runs statements one by one: `ALTER SYSTEM` refuses the implicit transaction that a
    /// multi-statement batch runs in.
    async fn run_each(&self, client: &tokio_postgres::Client, what: &str, statements: &[&str]) -> PortResult<()> {
        for sql in statements {
            bounded(self.timeout, what, client.batch_execute(sql)).await?;
        }
        Ok(())
    }

    /// Whether a new session on this server may write (not in recovery, not fenced).
    pub async fn accepts_writes(&self) -> PortResult<bool> {
        let client = self.connect().await?;
        let row = self
            .query_one(
                &client,
                "SELECT NOT pg_is_in_recovery()
                    AND NOT current_setting('default_transaction_read_only')::bool",
            )
            .await?;
        Ok(row.get(0))
    }
}

/// `Ok` when `replica` can catch up with its writer: in recovery, replaying (not paused),
/// its WAL receiver streaming. `NotReady` with the reason otherwise (a switchover checks this
/// before it fences the writer).
pub async fn streaming_replica(replica: &PgNode) -> PortResult<()> {
    let client = replica.connect().await?;
    let row = replica
        .query_one(
            &client,
            "SELECT pg_is_in_recovery(),
                    CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END,
                    (SELECT status FROM pg_stat_wal_receiver LIMIT 1)",
        )
        .await?;
    let (in_recovery, paused, receiver): (bool, Option<bool>, Option<String>) = (row.get(0), row.get(1), row.get(2));
    let name = &replica.application_name;
    let why = if !in_recovery {
        format!("{name} is not a replica (not in recovery): rebuild it from the writer before switching to it")
    } else if paused == Some(true) {
        format!("{name}'s replay is paused: it would never catch up")
    } else if receiver.as_deref() != Some("streaming") {
        format!("{name} does not stream from its writer (WAL receiver: {})", receiver.as_deref().unwrap_or("none"))
    } else {
        return Ok(());
    };
    Err(SwitchyardError::new(ErrorName::NotReady, why))
}

/// Whether `replica` has replayed everything `writer` has written. Call after fencing the
/// writer, so that its position is final: `Done` means promoting now loses nothing.
pub async fn catch_up(writer: &PgNode, replica: &PgNode) -> PortResult<StepState> {
    if writer.accepts_writes().await? {
        return Err(SwitchyardError::new(
            ErrorName::NotReady,
            format!("{} still accepts writes: fence it before waiting for catch-up", writer.application_name),
        ));
    }
    // Bytes only: their age does not matter here, and a replica that has replayed no commit
    // since it started cannot tell it (pair_lag's NotReady failed a switchover's CatchUp on
    // the 96 bytes the fence left behind, #20).
    let bytes = crate::bytes_behind(writer, replica).await?;
    Ok(if bytes == 0 { StepState::Done } else { StepState::InProgress })
}
