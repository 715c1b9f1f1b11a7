//! The [`PromotionEngine`] over two PostgreSQL servers (the sandbox, self-managed
//! PostgreSQL): promotion with `pg_promote`, fencing with a persisted read-only default,
//! catch-up by WAL position, lag from both servers or from the replica alone.

use std::time::Duration;

use switchyard_core::{
    ErrorName, FailoverMode, Region, ReplicationLag, SwitchyardError,
    ports::{DatabasePromoter, PortResult, PromotionEngine, StepState},
};

use crate::{DbEndpoints, PgNode, catch_up, pair_lag, replica_age, streaming_replica};

#[derive(Debug, Clone)]
pub struct PostgresEngine {
    pub endpoints: DbEndpoints,
}

impl PostgresEngine {
    /// A connection factory per call: the servers' roles change during a failover, and no
    /// connection is worth keeping across the steps of one.
    fn node(&self, region: &Region) -> PortResult<PgNode> {
        let endpoint = self.endpoints.0.get(region).ok_or_else(|| {
            SwitchyardError::new(ErrorName::MissingConfig, format!("no database endpoint for {region}"))
        })?;
        let mut node = PgNode::new(endpoint.clone(), format!("rds-promoter-{region}"));
        node.timeout = Duration::from_secs(5);
        Ok(node)
    }
}

impl PromotionEngine for PostgresEngine {
    async fn lag(&self, old: &Region, target: &Region) -> PortResult<Option<ReplicationLag>> {
        pair_lag(&self.node(old)?, &self.node(target)?).await.map(Some)
    }

    /// The age of the replica's last replayed commit (see [`replica_age`]).
    async fn lag_from_target(&self, target: &Region) -> PortResult<Option<ReplicationLag>> {
        Ok(replica_age(&self.node(target)?).await?.map(|seconds| ReplicationLag { bytes: 0, seconds }))
    }

    async fn fence(&self, old: &Region) -> PortResult<StepState> {
        self.node(old)?.fence().await
    }

    async fn can_catch_up(&self, old: &Region, target: &Region) -> PortResult<()> {
        self.node(old)?.connect().await?;
        streaming_replica(&self.node(target)?).await
    }

    async fn unfence(&self, old: &Region) -> PortResult<StepState> {
        self.node(old)?.unfence().await
    }

    async fn catch_up(&self, old: &Region, target: &Region) -> PortResult<StepState> {
        catch_up(&self.node(old)?, &self.node(target)?).await
    }

    async fn promote(&self, target: &Region, _mode: FailoverMode) -> PortResult<StepState> {
        self.node(target)?.promote().await
    }

    async fn accepts_writes(&self, target: &Region) -> PortResult<bool> {
        self.node(target)?.accepts_writes().await
    }
}
