//! Schema migrations: plain SQL files in `migrations/`, compiled into the binary and applied
//! in order, each in the same transaction as its bookkeeping row.
//!
//! Why not sqlx or refinery: sqlx checks queries against a live database at build time (a
//! database in every build), refinery brings a second driver stack; what we need is forty
//! lines over the driver we already have. PostgreSQL runs DDL transactionally, so a failed
//! migration leaves nothing behind.
//!
//! Only a writer is migrated; replicas receive the schema through replication. Concurrent
//! callers (several consumers cold-starting at once) serialize on an advisory lock, and a
//! migration edited after it was applied is refused by its checksum.

use switchyard_core::{ErrorName, SwitchyardError, ports::PortResult};
use tokio_postgres::Client;

use crate::{PgNode, bounded};

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, oldest first. Append only.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "orders", sql: include_str!("../migrations/0001_orders.sql") },
    Migration { version: 2, name: "heartbeat", sql: include_str!("../migrations/0002_heartbeat.sql") },
    Migration { version: 3, name: "writer_lease", sql: include_str!("../migrations/0003_writer_lease.sql") },
    Migration {
        version: 4,
        name: "acknowledged_before_submitted",
        sql: include_str!("../migrations/0004_acknowledged_before_submitted.sql"),
    },
];

/// The schema version this code needs.
pub fn required_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Arbitrary, fixed: the key of the advisory lock migrations hold.
const LOCK_KEY: i64 = 0x5357_5944_4d49_4752; // "SWYDMIGR"

impl PgNode {
    /// Applies every migration the database lacks. Returns the versions applied now (empty
    /// when the schema was already current).
    pub async fn migrate(&self, client: &mut Client) -> PortResult<Vec<i32>> {
        // Read-only first: a current schema needs no lock and no write (a fenced server or a
        // replica may be asked too).
        if self.schema_version(client).await? >= required_version() {
            return Ok(Vec::new());
        }
        let t = self.timeout;
        let tx = bounded(t, "begin", client.transaction()).await?;
        bounded(t, "advisory lock", tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])).await?;
        bounded(
            t,
            "migrations table",
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS switchyard_migrations (
                     version    integer     PRIMARY KEY,
                     name       text        NOT NULL,
                     checksum   text        NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now())",
            ),
        )
        .await?;
        let mut applied = Vec::new();
        for m in MIGRATIONS {
            let known = bounded(
                t,
                "read migration",
                tx.query_opt(
                    "SELECT checksum = md5($2::text) FROM switchyard_migrations WHERE version = $1",
                    &[&m.version, &m.sql],
                ),
            )
            .await?;
            match known.map(|row| row.get::<_, bool>(0)) {
                Some(true) => continue,
                Some(false) => {
                    return Err(SwitchyardError::new(
                        ErrorName::Internal,
                        format!("migration {} ({}) was changed after it was applied", m.version, m.name),
                    ));
                }
                None => {}
            }
            bounded(t, m.name, tx.batch_execute(m.sql)).await?;
            bounded(
                t,
                "record migration",
                tx.execute(
                    "INSERT INTO switchyard_migrations (version, name, checksum) VALUES ($1, $2, md5($3::text))",
                    &[&m.version, &m.name, &m.sql],
                ),
            )
            .await?;
            applied.push(m.version);
        }
        bounded(t, "commit", tx.commit()).await?;
        if !applied.is_empty() {
            tracing::info!(node = %self.application_name, ?applied, "schema migrated");
        }
        Ok(applied)
    }

    /// The newest migration a database (writer or replica) has; 0 for none.
    pub async fn schema_version(&self, client: &Client) -> PortResult<i32> {
        let exists: bool =
            self.query_one(client, "SELECT to_regclass('switchyard_migrations') IS NOT NULL").await?.get(0);
        if !exists {
            return Ok(0);
        }
        Ok(self.query_one(client, "SELECT COALESCE(max(version), 0) FROM switchyard_migrations").await?.get(0))
    }
}
