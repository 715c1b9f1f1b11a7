//! The [`PromotionEngine`] over an Aurora Global Database, through the RDS and CloudWatch APIs
//! of the region the promoter runs in. Where Aurora does a step itself (it demotes the old
//! writer; `SwitchoverGlobalCluster` catches up before it switches) the step is `Done`.

use std::collections::BTreeMap;

use switchyard_core::{
    ErrorName, FailoverMode, Region, ReplicationLag, SwitchyardError,
    ports::{DatabasePromoter, PortResult, PromotionEngine, StepState},
};

use crate::{aurora_lag::aurora_replication_lag, global_cluster::AuroraGlobalCluster};

#[derive(Debug, Clone)]
pub struct AuroraEngine {
    pub global_cluster: String,
    /// Regional cluster ARN per region.
    pub cluster_arns: BTreeMap<Region, String>,
    /// The RDS and CloudWatch APIs of the region the promoter runs in.
    pub rds: aws_sdk_rds::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl AuroraEngine {
    fn arn(&self, region: &Region) -> PortResult<&str> {
        self.cluster_arns.get(region).map(String::as_str).ok_or_else(|| {
            SwitchyardError::new(ErrorName::MissingConfig, format!("no Aurora cluster ARN for {region}"))
        })
    }

    fn cluster(&self, target: &Region, mode: FailoverMode) -> PortResult<AuroraGlobalCluster> {
        Ok(AuroraGlobalCluster::new(self.rds.clone(), &self.global_cluster, self.arn(target)?, mode))
    }
}

impl PromotionEngine for AuroraEngine {
    /// The newest `AuroraGlobalDBReplicationLag` of the target's cluster; `None` when
    /// CloudWatch has no datapoint.
    async fn lag(&self, _old: &Region, target: &Region) -> PortResult<Option<ReplicationLag>> {
        let arn = self.arn(target)?;
        let cluster_id = arn.rsplit(':').next().unwrap_or(arn);
        aurora_replication_lag(&self.cloudwatch, cluster_id).await
    }

    /// The CloudWatch lag is already read in the target's region: no second source.
    async fn lag_from_target(&self, _target: &Region) -> PortResult<Option<ReplicationLag>> {
        Ok(None)
    }

    /// The global cluster demotes the old writer itself.
    async fn fence(&self, _old: &Region) -> PortResult<StepState> {
        Ok(StepState::Done)
    }

    /// `SwitchoverGlobalCluster` checks its members itself and refuses what it cannot do.
    async fn can_catch_up(&self, _old: &Region, _target: &Region) -> PortResult<()> {
        Ok(())
    }

    /// The global cluster fenced nothing of ours.
    async fn unfence(&self, _old: &Region) -> PortResult<StepState> {
        Ok(StepState::Done)
    }

    /// `SwitchoverGlobalCluster` waits for the secondary to catch up before it switches.
    async fn catch_up(&self, _old: &Region, _target: &Region) -> PortResult<StepState> {
        Ok(StepState::Done)
    }

    async fn promote(&self, target: &Region, mode: FailoverMode) -> PortResult<StepState> {
        self.cluster(target, mode)?.promote().await
    }

    async fn accepts_writes(&self, target: &Region) -> PortResult<bool> {
        self.cluster(target, FailoverMode::Planned)?.target_is_writer().await
    }
}
