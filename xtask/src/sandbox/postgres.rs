//! The sandbox's regional databases: two real PostgreSQL 15 servers on loopback, the standby
//! region's an asynchronous streaming replica of the primary region's. This stands in for the
//! Aurora Global Database data plane: lag, promotion, fencing and lost writes are real.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use switchyard_postgres::{PgEndpoint, PgNode};

use crate::{
    process::{self, run},
    tools::{self, POSTGRES_USER},
};

/// The role every sandbox connection uses; trusted on loopback only (pg_hba from initdb).
pub const DB_USER: &str = "switchyard";
/// The database the trading platform's tables live in.
pub const DB_NAME: &str = "trading";

/// Runs PostgreSQL's tools, as the `postgres` user when we are root (the server refuses root).
#[derive(Debug, Clone)]
pub struct PgTools {
    bindir: PathBuf,
    as_postgres: bool,
}

impl PgTools {
    pub fn find() -> Result<Self> {
        Ok(PgTools { bindir: tools::postgres_bindir()?, as_postgres: tools::is_root() })
    }

    fn cmd(&self, tool: &str) -> Command {
        let exe = self.bindir.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", POSTGRES_USER, "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// Makes `dir` (and everything below it) belong to the server's user.
    fn own(&self, dir: &Path) -> Result<()> {
        if self.as_postgres {
            run(Command::new("chown").arg("-R").arg(format!("{POSTGRES_USER}:")).arg(dir))?;
        }
        Ok(())
    }

    /// Where data directories go: under the instance directory when the server's user can
    /// reach it; otherwise (a checkout under a private home directory, as root) in a private
    /// directory under /tmp named after the instance.
    pub fn data_root(&self, instance_dir: &Path, instance: &str) -> Result<PathBuf> {
        let preferred = instance_dir.join("pg");
        std::fs::create_dir_all(&preferred)?;
        if !self.as_postgres {
            return Ok(preferred);
        }
        self.own(&preferred)?;
        let reachable = Command::new("runuser")
            .args(["-u", POSTGRES_USER, "--", "test", "-w"])
            .arg(&preferred)
            .status()
            .is_ok_and(|s| s.success());
        if reachable {
            return Ok(preferred);
        }
        std::fs::remove_dir_all(&preferred)?;
        let fallback = std::env::temp_dir()
            .join(format!("switchyard-pg-{instance}-{:x}", fnv1a(instance_dir.to_string_lossy().as_bytes())));
        std::fs::create_dir_all(&fallback)?;
        run(Command::new("chmod").arg("700").arg(&fallback))?;
        self.own(&fallback)?;
        Ok(fallback)
    }

    fn append_conf(&self, data_dir: &Path, lines: &str) -> Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(data_dir.join("postgresql.conf"))?;
        f.write_all(lines.as_bytes())?;
        Ok(())
    }

    /// `initdb` for the writer region, configured to stream its WAL to replicas.
    pub fn init_primary(&self, data_dir: &Path, port: u16, name: &str) -> Result<()> {
        run(self.cmd("initdb").arg("-D").arg(data_dir).args([
            "-U",
            DB_USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-instructions",
        ]))
        .context("initdb")?;
        self.append_conf(data_dir, &server_conf(port, name))
    }

    /// A base backup of the primary, started as its asynchronous streaming replica.
    pub fn init_replica(&self, data_dir: &Path, port: u16, name: &str, primary: &PgEndpoint) -> Result<()> {
        run(self
            .cmd("pg_basebackup")
            .args([
                "-h",
                &primary.host,
                "-p",
                &primary.port.to_string(),
                "-U",
                DB_USER,
                "-X",
                "stream",
                "-c",
                "fast",
                "-D",
            ])
            .arg(data_dir))
        .context("pg_basebackup from the primary")?;
        let conninfo = primary.conninfo(name).replace(&format!(" dbname={}", primary.dbname), "");
        self.append_conf(data_dir, &format!("{}primary_conninfo = '{conninfo}'\n", server_conf(port, name)))?;
        std::fs::write(data_dir.join("standby.signal"), "")?;
        self.own(data_dir)
    }

    pub fn start(&self, data_dir: &Path, log: &Path) -> Result<u32> {
        run(self.cmd("pg_ctl").arg("-D").arg(data_dir).arg("-l").arg(log).args(["-w", "-t", "60", "start"]))
            .with_context(|| format!("starting postgres in {}; see {}", data_dir.display(), log.display()))?;
        postmaster_pid(data_dir).context("postgres started but wrote no postmaster.pid")
    }
}

/// Settings both servers share. Durability stays on (fsync, synchronous_commit): lag and lost
/// writes in the sandbox must be the real thing. Unix sockets are off: TCP on 127.0.0.1 only.
fn server_conf(port: u16, name: &str) -> String {
    format!(
        "\n# switchyard sandbox\n\
         listen_addresses = '127.0.0.1'\n\
         port = {port}\n\
         unix_socket_directories = ''\n\
         cluster_name = '{name}'\n\
         wal_level = replica\n\
         max_wal_senders = 10\n\
         wal_keep_size = '512MB'\n\
         hot_standby = on\n\
         hot_standby_feedback = on\n\
         wal_receiver_status_interval = '1s'\n\
         shared_buffers = '64MB'\n\
         max_connections = 50\n"
    )
}

/// The PID of the postmaster running in `data_dir`, if any.
pub fn postmaster_pid(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid = text.lines().next()?.trim().parse().ok()?;
    process::is_alive(pid).then_some(pid)
}

/// Stops the postmaster in `data_dir` by PID with a fast shutdown (SIGINT: disconnect
/// clients, checkpoint, exit).
pub fn stop(data_dir: &Path) -> Result<()> {
    if let Some(pid) = postmaster_pid(data_dir) {
        process::stop(pid, "INT", Duration::from_secs(30))?;
    }
    Ok(())
}

/// Stops the postmaster in `data_dir` with an immediate shutdown (SIGQUIT): every process
/// exits at once, WAL not yet streamed stays behind, crash recovery runs at the next start.
pub fn crash(data_dir: &Path) -> Result<()> {
    if let Some(pid) = postmaster_pid(data_dir) {
        process::stop(pid, "QUIT", Duration::from_secs(10))?;
    }
    Ok(())
}

/// Creates the trading database on the writer (before the replica's base backup, so the
/// replica has it too).
pub async fn create_database(admin: &PgEndpoint) -> Result<()> {
    let node = PgNode::new(PgEndpoint { dbname: "postgres".into(), ..admin.clone() }, "switchyard-sandbox");
    let client = node.connect().await.map_err(anyhow::Error::msg)?;
    let exists = client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DB_NAME]).await?.is_some();
    if !exists {
        client.batch_execute(&format!("CREATE DATABASE {DB_NAME}")).await?;
    }
    Ok(())
}

/// Applies the schema migrations the functions ship (`switchyard_postgres::MIGRATIONS`), as
/// a first cold-started consumer would; the replica receives them through replication.
pub async fn migrate(writer: &PgEndpoint) -> Result<Vec<i32>> {
    let node = PgNode::new(writer.clone(), "switchyard-sandbox");
    let mut client = node.connect().await.map_err(anyhow::Error::msg)?;
    node.migrate(&mut client).await.map_err(anyhow::Error::msg)
}

/// Writes a uniquely tagged row on the writer and waits for it to appear on the replica.
/// Returns how long that took.
pub async fn canary(writer: &PgNode, replica: &PgNode, timeout: Duration) -> Result<Duration> {
    let w = writer.connect().await.map_err(anyhow::Error::msg)?;
    w.batch_execute(
        "CREATE TABLE IF NOT EXISTS switchyard_canary (token text PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now());
         DELETE FROM switchyard_canary WHERE written_at < now() - interval '1 hour';",
    )
    .await?;
    let token = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos()
    );
    let start = std::time::Instant::now();
    w.execute("INSERT INTO switchyard_canary (token) VALUES ($1)", &[&token]).await?;
    let r = replica.connect().await.map_err(anyhow::Error::msg)?;
    loop {
        // The table itself may not have reached the replica yet on the very first canary.
        let seen = r.query_opt("SELECT 1 FROM switchyard_canary WHERE token = $1", &[&token]).await.ok().flatten();
        if seen.is_some() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            bail!(
                "row written on {} not visible on {} after {timeout:?}",
                writer.application_name,
                replica.application_name
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
