//! The consumer's [`OrderStore`] over PostgreSQL: one connection, reused across invocations
//! and replaced when it breaks, opened with the credentials read from Secrets Manager at each
//! connect (a rotated password takes effect at the next one); the schema migrated on the
//! first batch the process applies.

use std::{
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use switchyard_aws::db_secret::DbSecret;
use switchyard_core::{
    COMMIT_WINDOW, CommitWindow, ErrorName, Order, Region, SwitchyardError, WriterClaim, WriterEpoch,
    ports::{Applied, Delivery, FirstApplied, OrderStore, PortResult, Presence},
};
use switchyard_postgres::{PgNode, bounded, orders};
use tokio_postgres::Client;

use crate::consumer::ConsumerConfig;

#[derive(Debug)]
pub struct PgOrderStore {
    db: PgNode,
    secret: Option<DbSecret>,
    /// Reused across invocations; replaced when it breaks.
    connection: tokio::sync::Mutex<Option<Client>>,
    migrated: AtomicBool,
}

impl PgOrderStore {
    pub fn new(config: &ConsumerConfig, secret: Option<DbSecret>) -> Self {
        let mut db = PgNode::new(config.database.clone(), format!("order-consumer-{}", config.deployment.local_region));
        db.timeout = Duration::from_secs(5);
        db.access.tls = config.tls.clone();
        PgOrderStore { db, secret, connection: tokio::sync::Mutex::new(None), migrated: AtomicBool::new(false) }
    }

    /// The reused connection, opened (again) if there is none or it broke.
    async fn connection<'a>(
        &self,
        slot: &'a mut tokio::sync::MutexGuard<'_, Option<Client>>,
    ) -> PortResult<&'a mut Client> {
        if slot.as_ref().is_none_or(Client::is_closed) {
            let mut node = self.db.clone();
            if let Some(secret) = &self.secret {
                node.access.credentials = Some(secret.credentials().await?);
            }
            **slot = Some(node.connect().await?);
        }
        slot.as_mut().ok_or_else(|| SwitchyardError::new(ErrorName::Internal, "no connection"))
    }
}

impl OrderStore for PgOrderStore {
    async fn apply<G>(
        &self,
        deliveries: &[Delivery<'_>],
        claim: &WriterClaim,
        still_current: G,
    ) -> PortResult<Vec<Applied>>
    where
        G: Future<Output = PortResult<CommitWindow>> + Send,
    {
        let t = self.db.timeout;
        let mut slot = self.connection.lock().await;
        let result = async {
            let client = self.connection(&mut slot).await?;
            if !self.migrated.load(Ordering::Relaxed) {
                self.db.migrate(client).await?;
                self.migrated.store(true, Ordering::Relaxed);
            }
            let tx = bounded(t, "begin", client.transaction()).await?;
            let applied = orders::apply(&tx, t, deliveries, &claim.writer, claim.epoch).await?;
            // The database's deadline first, then the read it bounds: the deadline falls no
            // later than COMMIT_WINDOW after the read started, by the database's own clock.
            orders::arm_commit_deadline(&tx, t, COMMIT_WINDOW).await?;
            // Dropping the transaction on an error rolls it back: nothing was applied.
            still_current.await?.check()?;
            bounded(t, "commit", tx.commit()).await?;
            Ok(applied)
        }
        .await;
        drop_broken(&mut slot, &result);
        result
    }

    async fn presence(&self, orders: &[&Order]) -> PortResult<Vec<Presence>> {
        let mut slot = self.connection.lock().await;
        let result = async {
            let client = self.connection(&mut slot).await?;
            orders::presence(&*client, self.db.timeout, orders).await
        }
        .await;
        drop_broken(&mut slot, &result);
        result
    }

    async fn first_applied(&self, region: &Region, epoch: WriterEpoch) -> PortResult<Option<FirstApplied>> {
        let mut slot = self.connection.lock().await;
        let result = async {
            let client = self.connection(&mut slot).await?;
            orders::first_applied(&*client, self.db.timeout, region, epoch).await
        }
        .await;
        drop_broken(&mut slot, &result);
        result
    }
}

/// Forgets a connection after an error that may have broken it (unreachable, or refused
/// credentials: the secret may have been rotated), so the next batch opens a fresh one.
fn drop_broken<T>(slot: &mut Option<Client>, result: &PortResult<T>) {
    if result.as_ref().is_err_and(|e| matches!(e.name, ErrorName::ServiceUnavailable | ErrorName::AccessDenied)) {
        *slot = None;
    }
}
