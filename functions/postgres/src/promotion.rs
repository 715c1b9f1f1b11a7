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

impl DatabasePromoter for PgNode {
    /// Promotes a replica and lifts any fence it inherited, so it accepts writes.
    async fn promote(&self) -> PortResult<StepState> {
        let client = self.connect().await?;
        let in_recovery: bool = self.query_one(&client, "SELECT pg_is_in_recovery()").await?.get(0);
        if in_recovery {
            // Waits up to 60 s for the promotion to finish; `false` means not finished yet.
            let promoted: bool = bounded(
                Duration::from_secs(65).max(self.timeout),
                "pg_promote",
                client.query_one("SELECT pg_promote(true, 60)", &[]),
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
            let statements = ["ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()"];
            self.run_each(&client, "unfence", &statements).await?;
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
        self.run_each(
            &client,
            "fence",
            &[
                "ALTER SYSTEM SET default_transaction_read_only = on",
                "SELECT pg_reload_conf()",
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
            ],
        )
        .await?;
        tracing::info!(node = %self.application_name, "fenced: read-only, sessions ended");
        let writable = self.accepts_writes().await?;
        Ok(if writable { StepState::InProgress } else { StepState::Done })
    }
}

impl PgNode {
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

/// Whether `replica` has replayed everything `writer` has written. Call after fencing the
/// writer, so that its position is final: `Done` means promoting now loses nothing.
pub async fn catch_up(writer: &PgNode, replica: &PgNode) -> PortResult<StepState> {
    if writer.accepts_writes().await? {
        return Err(SwitchyardError::new(
            ErrorName::NotReady,
            format!("{} still accepts writes: fence it before waiting for catch-up", writer.application_name),
        ));
    }
    let lag = crate::pair_lag(writer, replica).await?;
    Ok(if lag.bytes == 0 { StepState::Done } else { StepState::InProgress })
}
