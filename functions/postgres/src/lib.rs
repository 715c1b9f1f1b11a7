//! PostgreSQL adapter: the regional database as switchyard sees it.
//!
//! In the sandbox this talks to two real PostgreSQL servers joined by streaming replication;
//! in production it serves self-managed PostgreSQL and the data-plane side of Aurora
//! PostgreSQL (an Aurora Global Database is promoted through `aws-sdk-rds`, not here).
//!
//! Every call is bounded by a timeout and every error is classified into a
//! [`SwitchyardError`] name, so a caller can tell "retry later" from "fix something".
//!
//! Transport: TLS (rustls, server certificate checked against a CA bundle, password from the
//! caller's secret store) wherever a [`PgAccess`] carries TLS; plain TCP otherwise, which
//! [`PgEndpoint::config`] allows to loopback only (the sandbox's superuser connections).

pub mod engine;
pub mod heartbeat;
mod migrate;
pub mod orders;
mod promotion;
mod settings;

use std::{sync::Arc, time::Duration};

pub use migrate::{MIGRATIONS, Migration, required_version};
pub use promotion::{Fence, PROMOTE_POLL_WAIT, catch_up, streaming_replica};
use serde::{Deserialize, Serialize};
pub use settings::DbSettings;
use switchyard_core::{
    DatabaseRole, ErrorName, ReplicationLag, ReplicationStatus, SwitchyardError,
    ports::{PortResult, ReplicationMonitor},
};
use tokio_postgres::{Client, NoTls, error::SqlState};

/// Where a regional database listens. Credentials are not part of it: the sandbox trusts
/// loopback connections, production reads them from Secrets Manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgEndpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
}

impl PgEndpoint {
    /// A connection config tagged with `application_name` (it shows in `pg_stat_activity`
    /// and, for a replica, in the primary's `pg_stat_replication`).
    pub fn config(&self, application_name: &str, timeout: Duration) -> PortResult<tokio_postgres::Config> {
        self.config_with(application_name, timeout, &PgAccess::default())
    }

    /// As [`PgEndpoint::config`], with the credentials and transport of `access`.
    pub fn config_with(
        &self,
        application_name: &str,
        timeout: Duration,
        access: &PgAccess,
    ) -> PortResult<tokio_postgres::Config> {
        if access.tls.is_none() && !is_loopback(&self.host) {
            return Err(SwitchyardError::new(
                ErrorName::MissingConfig,
                format!("{}: plain-text connections are allowed to loopback only until TLS support lands", self.host),
            ));
        }
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(access.credentials.as_ref().map_or(self.user.as_str(), |c| c.username.as_str()))
            .dbname(&self.dbname)
            .application_name(application_name)
            .connect_timeout(timeout);
        if let Some(credentials) = &access.credentials {
            c.password(credentials.password.as_bytes());
        }
        if access.tls.is_some() {
            c.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        Ok(c)
    }

    /// `host=… port=… user=…` as libpq tools (`psql`, `pg_basebackup`) and `primary_conninfo`
    /// expect it.
    pub fn conninfo(&self, application_name: &str) -> String {
        format!(
            "host={} port={} user={} dbname={} application_name={}",
            self.host, self.port, self.user, self.dbname, application_name
        )
    }
}

/// Whether `host` names this machine (plain text is allowed there only).
pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub use switchyard_core::DbCredentials;

/// How to reach a server beyond its endpoint: credentials (else the endpoint's user with no
/// password: the sandbox's trusted loopback superuser) and TLS (else plain text, loopback only).
#[derive(Debug, Clone, Default)]
pub struct PgAccess {
    pub credentials: Option<DbCredentials>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A TLS client configuration that trusts exactly the CA certificates in `pem` (for Aurora:
/// the RDS CA bundle) and checks the server's name against the endpoint host.
pub fn tls_trusting(pem: &[u8]) -> PortResult<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let bad = |what: String| SwitchyardError::new(ErrorName::MissingConfig, format!("CA bundle: {what}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots.add(cert.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// One regional PostgreSQL server.
#[derive(Debug, Clone)]
pub struct PgNode {
    pub endpoint: PgEndpoint,
    /// Credentials and TLS; default: the endpoint's user over plain text (loopback only).
    pub access: PgAccess,
    /// Bounds connecting and every query: a hung database is an answer ("unavailable"), not a
    /// hung probe.
    pub timeout: Duration,
    pub application_name: String,
}

impl PgNode {
    pub fn new(endpoint: PgEndpoint, application_name: impl Into<String>) -> Self {
        PgNode {
            endpoint,
            access: PgAccess::default(),
            timeout: Duration::from_secs(5),
            application_name: application_name.into(),
        }
    }

    /// Opens a connection whose driver task runs on the current runtime.
    pub async fn connect(&self) -> PortResult<Client> {
        let config = self.endpoint.config_with(&self.application_name, self.timeout, &self.access)?;
        let client = match &self.access.tls {
            None => {
                let (client, connection) = bounded(self.timeout, "connect", config.connect(NoTls)).await?;
                tokio::spawn(drive(connection));
                client
            }
            Some(tls) => {
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(rustls::ClientConfig::clone(tls));
                let (client, connection) = bounded(self.timeout, "connect (TLS)", config.connect(tls)).await?;
                tokio::spawn(drive(connection));
                client
            }
        };
        Ok(client)
    }

    pub(crate) async fn query_one(&self, client: &Client, sql: &str) -> PortResult<tokio_postgres::Row> {
        bounded(self.timeout, sql, client.query_one(sql, &[])).await
    }
}

async fn drive<F: Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "postgres connection ended");
    }
}

/// Runs a database future under a timeout and classifies its error.
pub async fn bounded<T>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> PortResult<T> {
    bounded_with(timeout, what, fut, classify).await
}

/// [`bounded`], with the errors sorted by `classify`.
pub async fn bounded_with<T>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    classify: fn(&tokio_postgres::Error) -> SwitchyardError,
) -> PortResult<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(&e)),
        Err(_) => Err(SwitchyardError::new(
            ErrorName::ServiceUnavailable,
            format!("postgres did not answer within {timeout:?}: {what}"),
        )),
    }
}

/// Sorts a driver error into transient / precondition / fatal.
pub fn classify(e: &tokio_postgres::Error) -> SwitchyardError {
    let Some(db) = e.as_db_error() else {
        // No server answer: refused, reset, closed. The server may come back.
        return SwitchyardError::new(ErrorName::ServiceUnavailable, format!("postgres unreachable: {e}"));
    };
    let code = db.code();
    let class = &code.code()[..2];
    let name = if *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::CRASH_SHUTDOWN
        || class == "08"
    {
        ErrorName::ServiceUnavailable
    } else if class == "53" || *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    {
        ErrorName::Throttled
    } else if class == "28" || *code == SqlState::INSUFFICIENT_PRIVILEGE {
        ErrorName::AccessDenied
    } else if *code == SqlState::INVALID_CATALOG_NAME || *code == SqlState::UNDEFINED_TABLE {
        ErrorName::ResourceNotFound
    } else if code.code() == orders::LEASE_LAPSED || code.code() == orders::LEASE_UNSET {
        ErrorName::LeaseLapsed
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        // A write reached a replica or a fenced writer: the caller's idea of the writer is wrong.
        ErrorName::StaleEpoch
    } else {
        ErrorName::Internal
    };
    SwitchyardError::new(name, format!("postgres {}: {}", code.code(), db.message()))
}

/// [`classify`] for a statement that writes input data: a data exception (`22…`) or a
/// violated constraint (`23…`) the server raises for it is `InvalidInput`, this input being
/// refused however often it is sent (the order consumer isolates such an order for the DLQ).
/// Only for the statement itself: the same classes from elsewhere (a migration, the commit's
/// lease check) are not the input's fault.
pub fn classify_input(e: &tokio_postgres::Error) -> SwitchyardError {
    let classified = classify(e);
    match e.as_db_error().map(|db| &db.code().code()[..2]) {
        Some("22" | "23") => SwitchyardError::new(ErrorName::InvalidInput, classified.message),
        _ => classified,
    }
}

impl ReplicationMonitor for PgNode {
    /// A writer reports its most-behind streaming replica; a replica reports what it alone
    /// can see: received-but-not-replayed WAL, and the age of its last replayed commit while
    /// it is behind. Neither view sees WAL the replica never received; [`pair_lag`] does.
    async fn replication_status(&self) -> PortResult<ReplicationStatus> {
        let client = self.connect().await?;
        let in_recovery: bool = self.query_one(&client, "SELECT pg_is_in_recovery()").await?.get(0);
        // Both queries answer (log position, lag bytes, lag seconds, streaming peers, fenced).
        let (role, sql) = if in_recovery {
            (
                DatabaseRole::Replica,
                "SELECT pg_last_wal_replay_lsn()::text,
                        pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8,
                        CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                             ELSE COALESCE(EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp())::float8, 0) END,
                        (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming')::int8,
                        false",
            )
        } else {
            (
                DatabaseRole::Writer,
                "SELECT pg_current_wal_lsn()::text,
                        max(pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn))::int8,
                        COALESCE(EXTRACT(epoch FROM max(r.replay_lag))::float8, 0),
                        count(r.*)::int8,
                        current_setting('default_transaction_read_only')::bool
                   FROM pg_stat_replication r WHERE r.state = 'streaming'",
            )
        };
        let row = self.query_one(&client, sql).await?;
        let lag = row
            .get::<_, Option<i64>>(1)
            .map(|bytes| ReplicationLag { bytes: bytes.max(0) as u64, seconds: row.get(2) });
        Ok(ReplicationStatus {
            role,
            log_position: row.get::<_, Option<String>>(0).unwrap_or_default(),
            lag,
            streaming_peers: row.get::<_, i64>(3) as u32,
            fenced: row.get(4),
        })
    }
}

/// The lag of `replica` behind `writer`, measured across both: bytes between the writer's
/// current WAL position and the replica's replay position; seconds zero when no byte is
/// outstanding, else the larger of the writer's view of that replica (`replay_lag`) and the
/// age of the replica's last replayed commit. Taking the larger errs towards reporting more
/// lag, which is the safe side for a lag gate (it may refuse; it must not silently lose).
/// Fails with `NotReady` if `replica` is not in recovery, and when bytes are outstanding but
/// nothing tells their age (the replica has replayed no transaction since it started and the
/// writer has no `replay_lag` sample): an unknown lag must never pass for zero seconds.
pub async fn pair_lag(writer: &PgNode, replica: &PgNode) -> PortResult<ReplicationLag> {
    let b = behind(writer, replica).await?;
    let bytes = b.bytes.max(0) as u64;
    let seconds = match (bytes, b.writer_view, b.replay_age) {
        (0, _, _) => 0.0,
        (bytes, None, None) => {
            return Err(SwitchyardError::new(
                ErrorName::NotReady,
                format!("{} is {bytes} bytes behind and the age of that data is unknown", replica.application_name),
            ));
        }
        (_, w, r) => w.unwrap_or(0.0).max(r.unwrap_or(0.0)),
    };
    Ok(ReplicationLag { bytes, seconds })
}

/// The bytes `replica` has yet to replay of what `writer` wrote, whatever their age: what a
/// catch-up waits for (the writer fenced, its position final). `NotReady` if `replica` is not
/// in recovery.
pub async fn bytes_behind(writer: &PgNode, replica: &PgNode) -> PortResult<u64> {
    let b = behind(writer, replica).await?;
    // Replayed past the writer's own position: not a copy of this writer (a diverged
    // timeline). Never "caught up".
    if b.bytes < 0 {
        return Err(SwitchyardError::new(
            ErrorName::NotReady,
            format!(
                "{} has replayed {} bytes past {}'s position: it is not a copy of that writer",
                replica.application_name, -b.bytes, writer.application_name
            ),
        ));
    }
    Ok(b.bytes as u64)
}

/// What [`pair_lag`] and [`bytes_behind`] read from both servers.
struct Behind {
    /// The writer's current WAL position minus the replica's replay position (negative: the
    /// replica replayed past it).
    bytes: i64,
    /// The writer's `replay_lag` of this replica, when it has a sample.
    writer_view: Option<f64>,
    /// The age of the replica's last replayed commit, when it replayed one since it started.
    replay_age: Option<f64>,
}

async fn behind(writer: &PgNode, replica: &PgNode) -> PortResult<Behind> {
    let (w, r) = tokio::try_join!(writer.connect(), replica.connect())?;
    let replica_row = replica
        .query_one(
            &r,
            "SELECT pg_is_in_recovery(),
                    pg_last_wal_replay_lsn()::text,
                    EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
        )
        .await?;
    // A server promoted, or started without standby.signal, still reports the position its
    // recovery replayed to; measuring against that would invent a lag.
    let (true, Some(replay_lsn)) = (replica_row.get::<_, bool>(0), replica_row.get::<_, Option<String>>(1)) else {
        return Err(SwitchyardError::new(
            ErrorName::NotReady,
            format!("{} is not a replica (not in recovery)", replica.application_name),
        ));
    };
    let sql = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::int8,
                      (SELECT EXTRACT(epoch FROM replay_lag)::float8 FROM pg_stat_replication
                        WHERE application_name = $2 ORDER BY backend_start DESC LIMIT 1)";
    let row = bounded(writer.timeout, sql, w.query_one(sql, &[&replay_lsn, &replica.application_name])).await?;
    Ok(Behind { bytes: row.get::<_, i64>(0), writer_view: row.get(1), replay_age: replica_row.get(2) })
}

/// How stale `replica` is by its own account alone (its writer unreachable): the age of the
/// last transaction it replayed. Everything lost was committed after that transaction, so this
/// bounds the lost window from above, as long as the writer committed regularly until it
/// failed (the health probe's heartbeat writes see to that). `None`: not a replica, or it has
/// replayed nothing since it started, or the two clocks disagree (see [`replayed_age`]).
pub async fn replica_age(replica: &PgNode) -> PortResult<Option<f64>> {
    let client = replica.connect().await?;
    let row = replica
        .query_one(
            &client,
            "SELECT pg_is_in_recovery(), EXTRACT(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8",
        )
        .await?;
    Ok(if row.get::<_, bool>(0) { replayed_age(row.get(1)) } else { None })
}

/// The age of the replica's last replayed commit from `raw`, the replica's clock minus the
/// commit's time on the writer's clock. A writer clock ahead by S seconds makes `raw` S
/// seconds too small; when that makes it negative the commit is "from the future": proof of
/// skew, and the age is unknown (#18: it was clamped to zero, a lag that passed any gate).
/// A skew smaller than the true age is not visible from here: the promoter adds the offset the
/// replica's WAL receiver measured while streaming (`replication::skew_corrected`).
fn replayed_age(raw: Option<f64>) -> Option<f64> {
    raw.filter(|age| *age >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_stamped_in_the_replica_s_future_leaves_the_age_unknown() {
        assert_eq!(replayed_age(Some(12.5)), Some(12.5));
        assert_eq!(replayed_age(None), None);
        // The writer's clock runs 30 s ahead; its last commit replayed 10 s ago.
        assert_eq!(replayed_age(Some(-20.0)), None);
    }

    #[test]
    fn plain_text_only_to_loopback() {
        let ep = |host: &str| PgEndpoint { host: host.into(), port: 5432, user: "u".into(), dbname: "d".into() };
        for (host, ok) in
            [("127.0.0.1", true), ("localhost", true), ("::1", true), ("db.example.com", false), ("10.0.0.5", false)]
        {
            assert_eq!(ep(host).config("t", Duration::from_secs(1)).is_ok(), ok, "{host}");
        }
    }

    #[test]
    fn conninfo_names_the_application() {
        let ep =
            PgEndpoint { host: "127.0.0.1".into(), port: 6543, user: "switchyard".into(), dbname: "trading".into() };
        assert_eq!(
            ep.conninfo("us-east-2"),
            "host=127.0.0.1 port=6543 user=switchyard dbname=trading application_name=us-east-2"
        );
    }
}

/// Where each region's database listens: the `SWITCHYARD_DB_ENDPOINTS` JSON map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DbEndpoints(pub std::collections::BTreeMap<switchyard_core::Region, PgEndpoint>);

impl std::str::FromStr for DbEndpoints {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_str(s).map_err(|e| format!("expected a JSON map of region to endpoint: {e}"))
    }
}
