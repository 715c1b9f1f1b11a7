//! The sandbox's databases replicate for real.

use std::time::Duration;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use switchyard_core::{
    DatabaseRole, ErrorName,
    ports::{DatabasePromoter, ReplicationMonitor, StepState},
};
use switchyard_postgres::{catch_up, classify, pair_lag};
use switchyard_sandbox::{
    Sandbox, postgres,
    world::{CutMode, Links, Shape, control},
};
use switchyard_tests::{eventually, sandbox_trial};
use tokio_postgres::error::SqlState;

pub fn trials() -> Vec<Trial> {
    vec![
        sandbox_trial("replication::a_row_written_on_the_primary_is_read_on_the_replica", |sb| {
            Box::pin(row_replicates(sb))
        }),
        sandbox_trial("replication::the_replica_rejects_writes", |sb| Box::pin(replica_rejects_writes(sb))),
        sandbox_trial("replication::lag_is_measured_in_bytes_and_seconds", |sb| Box::pin(lag_is_measured(sb))),
        sandbox_trial("replication::status_names_a_stopped_database", |sb| Box::pin(status_names_stopped_database(sb))),
        sandbox_trial("replication::status_reports_roles_and_lag_without_writing", |sb| Box::pin(status_reports(sb))),
        sandbox_trial("replication::a_catch_up_waits_for_bytes_whose_age_is_unknown", |sb| {
            Box::pin(catch_up_of_unknown_age(sb))
        }),
    ]
}

async fn row_replicates(sb: &Sandbox) -> anyhow::Result<()> {
    let primary = sb.node("us-east-1")?.connect().await?;
    let replica = sb.node("us-east-2")?.connect().await?;

    // Two distinct servers, in their expected roles.
    let info = "SELECT pg_is_in_recovery(), inet_server_port(), system_identifier::text FROM pg_control_system()";
    let (p, r) = (primary.query_one(info, &[]).await?, replica.query_one(info, &[]).await?);
    ensure!(!p.get::<_, bool>(0) && r.get::<_, bool>(0), "expected a writer and a replica");
    ensure!(p.get::<_, i32>(1) != r.get::<_, i32>(1), "both connections reached the same server");
    // A physical replica shares its primary's system identifier: it is a copy, not a twin.
    ensure!(p.get::<_, String>(2) == r.get::<_, String>(2), "the replica is not a copy of the primary");

    primary
        .batch_execute("CREATE TABLE IF NOT EXISTS replication_probe (token text PRIMARY KEY, payload text NOT NULL)")
        .await?;
    let token = format!("row-{}", std::process::id());
    let payload = "written in us-east-1".to_owned();
    primary
        .execute(
            "INSERT INTO replication_probe VALUES ($1, $2) ON CONFLICT (token) DO UPDATE SET payload = $2",
            &[&token, &payload],
        )
        .await?;
    let seen: String = eventually(Duration::from_secs(10), "row visible on the replica", || async {
        let row = replica.query_opt("SELECT payload FROM replication_probe WHERE token = $1", &[&token]).await;
        // Until the CREATE TABLE replays, the table does not exist on the replica.
        Ok(row.ok().flatten().map(|r| r.get(0)))
    })
    .await?;
    ensure!(seen == payload, "replica returned {seen:?}");
    Ok(())
}

async fn replica_rejects_writes(sb: &Sandbox) -> anyhow::Result<()> {
    let primary = sb.node("us-east-1")?.connect().await?;
    let replica = sb.node("us-east-2")?.connect().await?;
    // A table that exists on both sides, so the insert below fails for being on a replica
    // and not for a missing table. The primary, by contrast, takes writes.
    primary
        .batch_execute("CREATE TABLE IF NOT EXISTS write_probe (id int); INSERT INTO write_probe VALUES (1)")
        .await?;
    eventually(Duration::from_secs(10), "write_probe replicated", || async {
        let row = replica.query_one("SELECT to_regclass('write_probe') IS NOT NULL", &[]).await?;
        Ok(row.get::<_, bool>(0).then_some(()))
    })
    .await?;
    let attempts =
        ["CREATE TABLE written_on_replica (id int)", "INSERT INTO write_probe VALUES (2)", "DELETE FROM write_probe"];
    for sql in attempts {
        let err = replica.batch_execute(sql).await.err().with_context(|| format!("the replica accepted {sql:?}"))?;
        ensure!(
            err.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
            "{sql:?} failed with {err:?} instead of read-only"
        );
        // The adapter names it: whoever sent a write here has a stale idea of the writer.
        ensure!(classify(&err).name == ErrorName::StaleEpoch, "classified as {}", classify(&err));
    }
    Ok(())
}

/// Pausing replay on the replica makes lag real: bytes pile up and the replayed data ages.
async fn lag_is_measured(sb: &Sandbox) -> anyhow::Result<()> {
    let (writer, replica) = (sb.node("us-east-1")?, sb.node("us-east-2")?);
    // A writer is not a replica: no lag is invented against it.
    let reversed = pair_lag(&replica, &writer).await.map_err(|e| e.name);
    ensure!(reversed == Err(ErrorName::NotReady), "lag of the writer behind the replica: {reversed:?}");
    // A replayed commit first, so the replica can tell how old its data is.
    postgres::canary(&writer, &replica, Duration::from_secs(10)).await?;
    let r = replica.connect().await?;
    r.batch_execute("SELECT pg_wal_replay_pause()").await?;
    let outcome = async {
        let w = writer.connect().await?;
        w.batch_execute(
            "CREATE TABLE IF NOT EXISTS lag_probe (id bigserial PRIMARY KEY, payload text);
             INSERT INTO lag_probe (payload) SELECT repeat('x', 1000) FROM generate_series(1, 2000);",
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let lag = pair_lag(&writer, &replica).await?;
        ensure!(lag.bytes > 2_000_000, "expected > 2 MB of lag while replay is paused, got {} bytes", lag.bytes);
        ensure!(lag.seconds >= 1.0, "expected at least 1 s of lag while replay is paused, got {} s", lag.seconds);
        // The replica alone sees WAL it received but has not replayed.
        let own = replica.replication_status().await?;
        ensure!(
            own.role == DatabaseRole::Replica && own.lag.is_some_and(|l| l.bytes > 0),
            "replica's own view: {own:?}"
        );
        anyhow::Ok(())
    }
    .await;
    r.batch_execute("SELECT pg_wal_replay_resume()").await?;
    outcome?;
    let caught_up = eventually(Duration::from_secs(15), "replica catches up after resume", || async {
        let lag = pair_lag(&writer, &replica).await?;
        Ok((lag.bytes == 0).then_some(lag))
    })
    .await?;
    ensure!(caught_up.seconds == 0.0, "caught up but {} s of lag reported", caught_up.seconds);
    Ok(())
}

async fn status_reports(sb: &Sandbox) -> anyhow::Result<()> {
    let status = sb.status().await;
    ensure!(status.healthy, "sandbox unhealthy:\n{status}");
    let roles: Vec<_> =
        status.databases.iter().map(|d| d.status.as_ref().map(|s| (s.role, s.streaming_peers))).collect();
    ensure!(roles == [Some((DatabaseRole::Writer, 1)), Some((DatabaseRole::Replica, 1))], "roles: {roles:?}");
    let r = &status.replication;
    ensure!(
        r.writer.as_ref().map(|w| w.as_str()) == Some("us-east-1")
            && r.replica.as_ref().map(|w| w.as_str()) == Some("us-east-2")
            && r.streaming
            && r.lag.is_some(),
        "{status}"
    );
    // #19: status is read-only. It used to write a canary row each call (which also kept the
    // replica's last replayed commit fresh, and so the lag gate's figure).
    let canaries = || async {
        let c = sb.node("us-east-1")?.connect().await?;
        let sql = "SELECT CASE WHEN to_regclass('switchyard_canary') IS NULL THEN 0
                   ELSE (xpath('/row/n/text()', query_to_xml('SELECT count(*) AS n FROM switchyard_canary', false, true, '')))[1]::text::int8 END";
        anyhow::Ok(c.query_one(sql, &[]).await?.get::<_, i64>(0))
    };
    let before = canaries().await?;
    sb.status().await;
    ensure!(canaries().await? == before, "status wrote a canary row");
    ensure!(sb.prove_replication().await? < std::time::Duration::from_secs(10), "no canary");
    Ok(())
}

/// A stopped database is reported, by region, as unreachable; starting it again heals status.
async fn status_names_stopped_database(sb: &Sandbox) -> anyhow::Result<()> {
    sb.stop_database("us-east-2")?;
    let status = sb.status().await;
    sb.start_database("us-east-2")?;
    ensure!(!status.healthy, "healthy with us-east-2 stopped:\n{status}");
    let east2 = status.databases.iter().find(|d| d.region.as_str() == "us-east-2").context("no us-east-2")?;
    ensure!(
        east2.pid.is_none() && east2.error.as_deref().is_some_and(|e| e.starts_with("ServiceUnavailable")),
        "us-east-2: {east2:?}"
    );
    let east1 = status.databases.iter().find(|d| d.region.as_str() == "us-east-1").context("no us-east-1")?;
    ensure!(east1.error.is_none(), "us-east-1 suffered: {east1:?}");
    eventually(Duration::from_secs(20), "healthy again after restart", || async {
        Ok(sb.status().await.healthy.then_some(()))
    })
    .await
}

/// #20: a switchover failed in CatchUp with `NotReady: … 96 bytes behind and the age of that
/// data is unknown` (CI, a fresh sandbox): the catch-up measured with the lag gate's
/// `pair_lag`, which refuses bytes of unknown age. A catch-up waits for bytes, whatever their
/// age. Here: a replica rebuilt a moment ago (it has replayed no commit), cut off from its
/// writer (the writer has no `replay_lag` of it), the writer fenced and writing a checkpoint
/// the replica lacks: the catch-up is in progress, then done once the link heals.
async fn catch_up_of_unknown_age(sb: &Sandbox) -> anyhow::Result<()> {
    let (writer, replica) = (sb.node("us-east-1")?, sb.node("us-east-2")?);
    let east1 = "us-east-1".parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let east2 = "us-east-2".parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut links = Links::default();
    links
        .apply(&Shape::Link(east1, east2), CutMode::Refuse, &sb.world.places, sb.world.witness())
        .map_err(anyhow::Error::msg)?;
    let outcome = async {
        // The precondition: the lag gate's measure cannot tell these bytes' age. A write on
        // the writer between the rebuild and the cut (the world's /health, every 10 s)
        // replayed gives them an age (CI once: `Ok(ReplicationLag { bytes: 216, seconds:
        // 0.797489 })`): then rebuild and cut again, up to three times.
        let mut gate = None;
        for _ in 0..3 {
            control::set_links(sb.world.control_port, &Links::default()).await?;
            writer.unfence().await?;
            tokio::task::block_in_place(|| sb.rejoin_as_replica("us-east-2", "us-east-1"))?;
            eventually(Duration::from_secs(20), "the rebuilt replica streams", || async {
                Ok(replica.replication_status().await.ok().filter(|s| s.role == DatabaseRole::Replica).map(|_| ()))
            })
            .await?;
            control::set_links(sb.world.control_port, &links).await?;
            ensure!(writer.fence().await? == StepState::Done, "the writer did not fence");
            writer.connect().await?.batch_execute("CHECKPOINT").await?;
            gate = Some(pair_lag(&writer, &replica).await.map_err(|e| e.name));
            if gate == Some(Err(ErrorName::NotReady)) {
                break;
            }
        }
        ensure!(gate == Some(Err(ErrorName::NotReady)), "the bytes' age was known after all, three times: {gate:?}");
        let state = catch_up(&writer, &replica).await;
        ensure!(matches!(state, Ok(StepState::InProgress)), "a catch-up of bytes of unknown age: {state:?}");
        control::set_links(sb.world.control_port, &Links::default()).await?;
        eventually(Duration::from_secs(20), "the replica catches up once the link heals", || async {
            Ok((catch_up(&writer, &replica).await? == StepState::Done).then_some(()))
        })
        .await
    }
    .await;
    let healed = control::set_links(sb.world.control_port, &Links::default()).await;
    writer.unfence().await?;
    healed?;
    outcome?;
    // Leave the shared sandbox as the other tests find it: a replica that replayed a commit.
    postgres::canary(&writer, &replica, Duration::from_secs(10)).await?;
    Ok(())
}
