//! Promotion and fencing on the sandbox's real PostgreSQL servers. Each test promotes a
//! replica, so each brings up a sandbox instance of its own.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::ensure;
use libtest_mimic::Trial;
use switchyard_core::ports::{DatabasePromoter, ReplicationMonitor, StepState};
use switchyard_postgres::{PgNode, bytes_behind, catch_up};
use switchyard_sandbox::Sandbox;
use switchyard_tests::{eventually, own_sandbox_trial};
use tokio_postgres::error::SqlState;

pub fn trials() -> Vec<Trial> {
    vec![
        own_sandbox_trial("failover::planned_switchover_loses_no_acknowledged_row", "switchover", |sb| {
            Box::pin(planned(sb))
        }),
        own_sandbox_trial(
            "failover::unplanned_failover_counts_lost_rows_and_fences_the_returning_writer",
            "failover",
            |sb| Box::pin(unplanned(sb)),
        ),
    ]
}

/// Polls an idempotent step until it reports `Done`.
macro_rules! until_done {
    ($what:expr, $step:expr) => {
        eventually(Duration::from_secs(30), $what, || async { Ok(($step.await? == StepState::Done).then_some(())) })
            .await
    };
}

/// Inserts rows first_id, first_id + 1, … into `ack_probe` on one connection until a write fails or it is
/// told to stop, recording each row whose commit was acknowledged.
struct Writer {
    acked: Arc<Mutex<Vec<i64>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Option<tokio_postgres::Error>>,
}

impl Writer {
    async fn start(node: &PgNode, first_id: i64) -> anyhow::Result<Writer> {
        let client = node.connect().await?;
        client.batch_execute("CREATE TABLE IF NOT EXISTS ack_probe (id bigint PRIMARY KEY)").await?;
        let (acked, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (a, s) = (acked.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut id = first_id - 1;
            while !s.load(Ordering::Relaxed) {
                id += 1;
                match client.execute("INSERT INTO ack_probe VALUES ($1)", &[&id]).await {
                    Ok(_) => a.lock().unwrap_or_else(|p| p.into_inner()).push(id),
                    Err(e) => return Some(e),
                }
            }
            None
        });
        Ok(Writer { acked, stop, task })
    }

    /// Stops writing; returns the acknowledged rows and the error that ended the writes.
    async fn finish(self) -> anyhow::Result<(BTreeSet<i64>, Option<tokio_postgres::Error>)> {
        self.stop.store(true, Ordering::Relaxed);
        let error = self.task.await?;
        let acked = self.acked.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
        Ok((acked, error))
    }
}

async fn rows(node: &PgNode) -> anyhow::Result<BTreeSet<i64>> {
    let client = node.connect().await?;
    Ok(client.query("SELECT id FROM ack_probe", &[]).await?.iter().map(|r| r.get(0)).collect())
}

async fn planned(sb: &Sandbox) -> anyhow::Result<()> {
    {
        let (old, new) = (sb.node("us-east-1")?, sb.node("us-east-2")?);
        let writer = Writer::start(&old, 1).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;

        // Fence while the writer is writing, wait for the replica, promote.
        until_done!("fence us-east-1", old.fence())?;
        until_done!("us-east-2 catches up", catch_up(&old, &new))?;
        until_done!("promote us-east-2", new.promote())?;

        let (acked, ended_by) = writer.finish().await?;
        ensure!(acked.len() > 50, "only {} rows were written before the switch", acked.len());
        ensure!(ended_by.is_some(), "the writer was never stopped by the fence");
        let present = rows(&new).await?;
        let lost: Vec<_> = acked.difference(&present).collect();
        ensure!(lost.is_empty(), "{} acknowledged rows lost in a planned switchover: {lost:?}", lost.len());
        ensure!(present.is_subset(&acked), "rows that were never acknowledged appeared");

        ensure!(new.accepts_writes().await?, "the promoted replica refuses writes");
        let refused = old.connect().await?.execute("INSERT INTO ack_probe VALUES (-1)", &[]).await;
        ensure!(
            refused.err().and_then(|e| e.code().cloned()) == Some(SqlState::READ_ONLY_SQL_TRANSACTION),
            "old writer not fenced"
        );

        // Re-running either step after success changes nothing.
        ensure!(
            new.promote().await? == StepState::Done && old.fence().await? == StepState::Done,
            "re-run not idempotent"
        );
        ensure!(rows(&new).await? == present, "re-running changed the data");

        // The fence survives a restart of the old writer.
        sb.stop_database("us-east-1")?;
        sb.start_database("us-east-1")?;
        ensure!(!old.accepts_writes().await?, "the fence did not survive a restart");
        Ok(())
    }
}

async fn unplanned(sb: &Sandbox) -> anyhow::Result<()> {
    {
        let (old, new) = (sb.node("us-east-1")?, sb.node("us-east-2")?);
        // Rows 1..=200 reach the replica before anything goes wrong.
        let before_cut = Writer::start(&old, 1).await?;
        eventually(Duration::from_secs(10), "200 rows written", || async {
            Ok((before_cut.acked.lock().unwrap_or_else(|p| p.into_inner()).len() >= 200).then_some(()))
        })
        .await?;
        let (safe, _) = before_cut.finish().await?;
        eventually(Duration::from_secs(10), "replica caught up", || async {
            Ok((bytes_behind(&old, &new).await? == 0).then_some(()))
        })
        .await?;

        // Then the network between the regions fails: the replica stops receiving WAL, while
        // the writer (asynchronous replication) keeps acknowledging commits, until it crashes.
        let replica = new.connect().await?;
        replica.batch_execute("ALTER SYSTEM SET primary_conninfo = ''").await?;
        replica.batch_execute("SELECT pg_reload_conf()").await?;
        eventually(Duration::from_secs(10), "replication cut", || async {
            Ok((old.replication_status().await?.streaming_peers == 0).then_some(()))
        })
        .await?;
        let doomed = Writer::start(&old, 1_000_000).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        sb.crash_database("us-east-1")?;
        let (unsent, ended_by) = doomed.finish().await?;
        ensure!(ended_by.is_some(), "writes kept succeeding after the crash");
        ensure!(!unsent.is_empty(), "no row was written after the cut");

        until_done!("promote us-east-2", new.promote())?;
        let present = rows(&new).await?;
        let acked: BTreeSet<i64> = safe.union(&unsent).copied().collect();
        ensure!(present.is_subset(&acked), "rows that were never acknowledged appeared");
        let lost: BTreeSet<i64> = acked.difference(&present).copied().collect();
        eprintln!(
            "      unplanned failover: {} rows acknowledged, {} lost, all written after replication was cut",
            acked.len(),
            lost.len()
        );
        ensure!(safe.is_subset(&present), "rows replicated before the cut were lost");
        ensure!(
            lost == unsent,
            "lost {} rows, expected exactly the {} written after the cut",
            lost.len(),
            unsent.len()
        );

        // Re-running the promotion changes nothing.
        let timeline = "SELECT timeline_id FROM pg_control_checkpoint()";
        let before: i32 = new.connect().await?.query_one(timeline, &[]).await?.get(0);
        ensure!(new.promote().await? == StepState::Done, "re-run not idempotent");
        let after: i32 = new.connect().await?.query_one(timeline, &[]).await?.get(0);
        ensure!(before == after && rows(&new).await? == present, "re-running the promotion changed something");

        // The old writer comes back as a writer (split brain!) until it is fenced.
        sb.start_database("us-east-1")?;
        ensure!(old.accepts_writes().await?, "expected the returning writer to be writable before fencing");
        until_done!("fence returning us-east-1", old.fence())?;
        let refused = old.connect().await?.execute("INSERT INTO ack_probe VALUES (-1)", &[]).await;
        ensure!(
            refused.err().and_then(|e| e.code().cloned()) == Some(SqlState::READ_ONLY_SQL_TRANSACTION),
            "the returning writer still takes writes after fencing"
        );
        Ok(())
    }
}
