//! The database engine the promoter acts on: PostgreSQL (the sandbox, self-managed) or an
//! Aurora Global Database. Both offer the same steps; where Aurora does a step itself (fence,
//! catch-up inside `SwitchoverGlobalCluster`) it reports `Done`.

use std::{collections::BTreeMap, time::Duration};

use switchyard_aws::{aurora_lag::aurora_replication_lag, global_cluster::AuroraGlobalCluster};
use switchyard_core::{
    ErrorName, FailoverMode, Region, ReplicationLag, SwitchyardError,
    ports::{DatabasePromoter, PortResult, StepState},
};
use switchyard_postgres::{DbEndpoints, PgNode, catch_up, pair_lag, replica_age};

#[derive(Debug, Clone)]
pub enum Engine {
    Postgres(DbEndpoints),
    Aurora(Aurora),
}

#[derive(Debug, Clone)]
pub struct Aurora {
    pub global_cluster: String,
    /// Regional cluster ARN per region.
    pub cluster_arns: BTreeMap<Region, String>,
    /// The RDS and CloudWatch APIs of the region the promoter runs in.
    pub rds: aws_sdk_rds::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Aurora {
    fn arn(&self, region: &Region) -> PortResult<&str> {
        self.cluster_arns.get(region).map(String::as_str).ok_or_else(|| {
            SwitchyardError::new(ErrorName::MissingConfig, format!("no Aurora cluster ARN for {region}"))
        })
    }

    fn cluster(&self, target: &Region, mode: FailoverMode) -> PortResult<AuroraGlobalCluster> {
        Ok(AuroraGlobalCluster::new(self.rds.clone(), &self.global_cluster, self.arn(target)?, mode))
    }
}

impl Engine {
    fn node(endpoints: &DbEndpoints, region: &Region) -> PortResult<PgNode> {
        let endpoint = endpoints.0.get(region).ok_or_else(|| {
            SwitchyardError::new(ErrorName::MissingConfig, format!("no database endpoint for {region}"))
        })?;
        let mut node = PgNode::new(endpoint.clone(), format!("rds-promoter-{region}"));
        node.timeout = Duration::from_secs(5);
        Ok(node)
    }

    /// How far `target` is behind `old`; `None` when it cannot be told (Aurora: no datapoint).
    pub async fn lag(&self, old: &Region, target: &Region) -> PortResult<Option<ReplicationLag>> {
        match self {
            Engine::Postgres(e) => pair_lag(&Self::node(e, old)?, &Self::node(e, target)?).await.map(Some),
            Engine::Aurora(a) => {
                let arn = a.arn(target)?;
                let cluster_id = arn.rsplit(':').next().unwrap_or(arn);
                aurora_replication_lag(&a.cloudwatch, cluster_id).await
            }
        }
    }

    /// The target's lag judged from the target alone, for when the old writer is unreachable
    /// (see `switchyard_postgres::replica_age`). Aurora: the CloudWatch lag is already read
    /// in the target's region, so there is no second source.
    pub async fn lag_from_target(&self, target: &Region) -> PortResult<Option<ReplicationLag>> {
        match self {
            Engine::Postgres(e) => {
                Ok(replica_age(&Self::node(e, target)?).await?.map(|seconds| ReplicationLag { bytes: 0, seconds }))
            }
            Engine::Aurora(_) => Ok(None),
        }
    }

    pub async fn fence(&self, old: &Region) -> PortResult<StepState> {
        match self {
            Engine::Postgres(e) => Self::node(e, old)?.fence().await,
            // The global cluster demotes the old writer itself.
            Engine::Aurora(_) => Ok(StepState::Done),
        }
    }

    pub async fn catch_up(&self, old: &Region, target: &Region) -> PortResult<StepState> {
        match self {
            Engine::Postgres(e) => catch_up(&Self::node(e, old)?, &Self::node(e, target)?).await,
            // SwitchoverGlobalCluster waits for the secondary to catch up before it switches.
            Engine::Aurora(_) => Ok(StepState::Done),
        }
    }

    pub async fn promote(&self, target: &Region, mode: FailoverMode) -> PortResult<StepState> {
        match self {
            Engine::Postgres(e) => Self::node(e, target)?.promote().await,
            Engine::Aurora(a) => a.cluster(target, mode)?.promote().await,
        }
    }

    pub async fn accepts_writes(&self, target: &Region) -> PortResult<bool> {
        match self {
            Engine::Postgres(e) => Self::node(e, target)?.accepts_writes().await,
            Engine::Aurora(a) => a.cluster(target, FailoverMode::Planned)?.target_is_writer().await,
        }
    }
}
