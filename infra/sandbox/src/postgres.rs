//! The sandbox's regional databases: two real PostgreSQL 15 servers on loopback, the standby
//! region's an asynchronous streaming replica of the primary region's. This stands in for the
//! Aurora Global Database data plane: lag, promotion, fencing and lost writes are real.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use switchyard_postgres::{DbCredentials, PgEndpoint, PgNode};

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

    /// Where the server binaries are.
    pub fn bindir(&self) -> &Path {
        &self.bindir
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
/// Commit timestamps are kept, so a test can check from the data that no two writers'
/// commits overlap (`pg_xact_commit_timestamp(xmin)` of each order row).
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
         track_commit_timestamp = on\n\
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

/// Starts the server of `data_dir` with its data and role, unless it runs.
pub fn start_if_down(data_dir: &Path, log: &Path) -> Result<()> {
    if postmaster_pid(data_dir).is_none() {
        PgTools::find()?.start(data_dir, log)?;
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

/// A function's own database role: password authentication over TLS only (see
/// [`hba_lines`]), with no more rights than the function needs. Each function's password is
/// in its own secret (`Deployment::db_secret`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbRole {
    /// The function that logs in with it.
    pub function: &'static str,
    pub name: &'static str,
    /// Run once, when the role is created (`{role}` and `{db}` substituted).
    pub grants: &'static str,
}

/// The order consumer reads the schema version and reads and inserts orders.
pub const CONSUMER: DbRole = DbRole {
    function: "order-consumer",
    name: "order_consumer",
    grants: "GRANT CONNECT ON DATABASE {db} TO {role};
             GRANT SELECT, INSERT ON orders TO {role};
             GRANT SELECT ON switchyard_migrations TO {role};",
};

/// The health probe writes its heartbeat and reads replication statistics (pg_monitor).
pub const PROBE: DbRole = DbRole {
    function: "health-probe",
    name: "health_probe",
    grants: "GRANT CONNECT ON DATABASE {db} TO {role};
             GRANT pg_monitor TO {role};
             GRANT SELECT, INSERT, UPDATE ON switchyard_heartbeat TO {role};",
};

/// The readiness tester only reads: replication statistics and positions (pg_monitor).
pub const READINESS: DbRole = DbRole {
    function: "readiness-tester",
    name: "readiness_tester",
    grants: "GRANT CONNECT ON DATABASE {db} TO {role};
             GRANT pg_monitor TO {role};",
};

pub const ROLES: [DbRole; 3] = [CONSUMER, PROBE, READINESS];

/// The consumer's role name (tests look for its sessions).
pub const CONSUMER_ROLE: &str = CONSUMER.name;

/// `pg_hba.conf` lines put before initdb's `trust` lines: every function role must use TLS
/// and a password; a plain-text attempt is rejected.
fn hba_lines() -> String {
    ROLES
        .iter()
        .map(|r| {
            format!(
                "hostssl all {role} 127.0.0.1/32 scram-sha-256\nhost    all {role} 127.0.0.1/32 reject\n",
                role = r.name
            )
        })
        .collect()
}

/// The sandbox's certificate authority and the servers' certificate (for `127.0.0.1`),
/// made once per instance with `openssl`, as a stand-in for the RDS CA and Aurora's
/// certificates.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn ensure_tls(instance_dir: &Path) -> Result<TlsFiles> {
    let dir = instance_dir.join("tls");
    let files = TlsFiles { ca: dir.join("ca.pem"), cert: dir.join("server.crt"), key: dir.join("server.key") };
    if files.ca.exists() && files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    std::fs::create_dir_all(&dir)?;
    let openssl = |args: &[&str]| -> Result<()> {
        run(Command::new("openssl").current_dir(&dir).args(args))
            .context("openssl (the sandbox makes its TLS certificates with it; apt-get install openssl)")
            .map(drop)
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "3650",
                "-subj",
                "/CN=switchyard sandbox CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    )?;
    openssl(&[&["req"][..], &ec, &["-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr"]].concat())?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ])?;
    Ok(files)
}

impl PgTools {
    /// Gives a data directory the server certificate and key, turns TLS on and makes the
    /// consumer's role use it (before the first start; a replica's base backup copies both).
    pub fn enable_tls(&self, data_dir: &Path, tls: &TlsFiles) -> Result<()> {
        std::fs::copy(&tls.cert, data_dir.join("server.crt"))?;
        std::fs::copy(&tls.key, data_dir.join("server.key"))?;
        run(Command::new("chmod").arg("600").arg(data_dir.join("server.key")))?;
        let hba = data_dir.join("pg_hba.conf");
        let existing = std::fs::read_to_string(&hba)?;
        let lines = hba_lines();
        if !existing.contains(&lines) {
            std::fs::write(&hba, format!("{lines}{existing}"))?;
        }
        self.append_conf(data_dir, "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")?;
        self.own(data_dir)
    }
}

/// A function role's database credentials: made once per instance (random password) and
/// kept in the instance directory (mode 600), from where `up` loads them into the sandbox's
/// Secrets Manager. Functions only ever read them from there.
pub fn credentials(instance_dir: &Path, role: &DbRole) -> Result<DbCredentials> {
    use std::io::Read;
    let path = instance_dir.join(format!("{}-db-secret.json", role.function));
    if let Ok(text) = std::fs::read_to_string(&path) {
        let v: serde_json::Value = serde_json::from_str(&text)?;
        if let (Some(u), Some(p)) = (v["username"].as_str(), v["password"].as_str()) {
            return Ok(DbCredentials { username: u.to_owned(), password: p.to_owned() });
        }
    }
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let credentials = DbCredentials { username: role.name.to_owned(), password };
    std::fs::write(&path, secret_json(&credentials))?;
    run(Command::new("chmod").arg("600").arg(&path))?;
    Ok(credentials)
}

/// The consumer's credentials (see [`credentials`]).
pub fn consumer_credentials(instance_dir: &Path) -> Result<DbCredentials> {
    credentials(instance_dir, &CONSUMER)
}

/// The secret's text, in the shape RDS uses for the secrets it manages.
pub fn secret_json(c: &DbCredentials) -> String {
    serde_json::json!({ "username": c.username, "password": c.password }).to_string()
}

/// Creates a function's role on the writer (replicas get it through replication), with the
/// role's grants and nothing else.
pub async fn ensure_role(writer: &PgEndpoint, role: &DbRole, credentials: &DbCredentials) -> Result<()> {
    let node = PgNode::new(writer.clone(), "switchyard-sandbox");
    let client = node.connect().await.map_err(anyhow::Error::msg)?;
    let exists = client.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&credentials.username]).await?;
    if exists.is_none() {
        // Identifiers and the password are ours (hex), not user input; DDL takes no parameters.
        let grants = role.grants.replace("{role}", &credentials.username).replace("{db}", DB_NAME);
        client
            .batch_execute(&format!(
                "CREATE ROLE {role} LOGIN PASSWORD '{password}'; {grants}",
                role = credentials.username,
                password = credentials.password,
            ))
            .await?;
    }
    Ok(())
}

/// A database that is sick but answering: what the failure-path tests need besides a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sickness {
    /// The functions' roles get "too many connections for role" (SQLSTATE 53300, the class
    /// of exhausted connection slots): `ALTER ROLE … CONNECTION LIMIT 0`. On the writer (a
    /// replica's roles follow its writer's).
    ConnectionSlots,
    /// `pg_hba.conf` rejects the functions' roles ("pg_hba.conf rejects connection"); the
    /// superuser and replication still connect, so the sandbox can watch.
    RejectAuth,
    /// Every write to a table fails with SQLSTATE 53100 `disk_full` ("could not extend file:
    /// No space left on device"), by a trigger; reads still work. Made on the writer, it fires
    /// on that server only (its replica has the trigger but keeps its own disk).
    DiskFull,
}

impl Sickness {
    pub const ALL: [Sickness; 3] = [Sickness::ConnectionSlots, Sickness::RejectAuth, Sickness::DiskFull];

    pub fn as_str(self) -> &'static str {
        match self {
            Sickness::ConnectionSlots => "connection-slots",
            Sickness::RejectAuth => "reject-auth",
            Sickness::DiskFull => "disk-full",
        }
    }
}

impl std::str::FromStr for Sickness {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Sickness::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a sickness (connection-slots, reject-auth, disk-full)"))
    }
}

const HBA_MARK: &str = "# switchyard sandbox: sicken reject-auth";
const DISK_FULL_TRIGGER: &str = "switchyard_sandbox_disk_full";

/// Makes the database of `data_dir` (listening at `endpoint`) sick in one way.
pub async fn sicken(data_dir: &Path, endpoint: &PgEndpoint, sickness: Sickness) -> Result<()> {
    let node = PgNode::new(endpoint.clone(), "switchyard-sandbox-sicken");
    let client = node.connect().await.map_err(anyhow::Error::msg)?;
    let replica: bool = client.query_one("SELECT pg_is_in_recovery()", &[]).await?.get(0);
    match sickness {
        Sickness::RejectAuth => {
            let hba = data_dir.join("pg_hba.conf");
            let text = std::fs::read_to_string(&hba)?;
            if !text.contains(HBA_MARK) {
                let roles: Vec<&str> = ROLES.iter().map(|r| r.name).collect();
                let lines = format!("{HBA_MARK}\nhost all {} 127.0.0.1/32 reject\n", roles.join(","));
                std::fs::write(&hba, lines + &text)?;
            }
            client.batch_execute("SELECT pg_reload_conf()").await?;
        }
        _ if replica => {
            bail!("{} is made on the writer: a replica's roles and tables follow its writer's", sickness.as_str())
        }
        Sickness::ConnectionSlots => {
            for role in ROLES {
                client.batch_execute(&format!("ALTER ROLE {} CONNECTION LIMIT 0", role.name)).await?;
            }
        }
        Sickness::DiskFull => {
            // The trigger replicates with the catalog, and a full disk is one server's: it
            // fires only on the server it was made on (by port; every connection here is
            // TCP), or the replica promoted in a failover would refuse every write too.
            let port = endpoint.port;
            client
                .batch_execute(&format!(
                    "CREATE OR REPLACE FUNCTION {DISK_FULL_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN
                       IF inet_server_port() = {port} THEN
                         RAISE EXCEPTION 'could not extend file \"base/sandbox\": No space left on device'
                           USING ERRCODE = 'disk_full', HINT = 'Check free disk space.';
                       END IF;
                       RETURN NULL;
                     END $$;
                     DO $$ DECLARE t record; BEGIN
                       FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
                         EXECUTE format('CREATE OR REPLACE TRIGGER {DISK_FULL_TRIGGER} BEFORE INSERT OR UPDATE OR DELETE ON %I
                                         FOR EACH STATEMENT EXECUTE FUNCTION {DISK_FULL_TRIGGER}()', t.tablename);
                       END LOOP;
                     END $$;"
                ))
                .await?;
        }
    }
    Ok(())
}

/// Cures every sickness of the database ([`sicken`]'s undo).
pub async fn cure(data_dir: &Path, endpoint: &PgEndpoint) -> Result<()> {
    let hba = data_dir.join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba)?;
    if let Some(rest) = text.strip_prefix(&format!("{HBA_MARK}\n")) {
        let rest = rest.split_once('\n').map_or("", |(_, after)| after);
        std::fs::write(&hba, rest)?;
    }
    let node = PgNode::new(endpoint.clone(), "switchyard-sandbox-cure");
    let client = node.connect().await.map_err(anyhow::Error::msg)?;
    // A writer fenced while sick (a failover away from it) defaults to read-only: the cure
    // is the sandbox's, not a client's write.
    client.batch_execute("SET default_transaction_read_only = off; SELECT pg_reload_conf()").await?;
    let replica: bool = client.query_one("SELECT pg_is_in_recovery()", &[]).await?.get(0);
    if !replica {
        for role in ROLES {
            client.batch_execute(&format!("ALTER ROLE {} CONNECTION LIMIT -1", role.name)).await?;
        }
        client.batch_execute(&format!("DROP FUNCTION IF EXISTS {DISK_FULL_TRIGGER}() CASCADE")).await?;
    }
    Ok(())
}
