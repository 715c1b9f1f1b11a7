//! Aurora Global Database promotion through the RDS control plane of the target region.
//!
//! - planned → `SwitchoverGlobalCluster`: RDS waits for the secondary to catch up, no loss;
//! - unplanned → `FailoverGlobalCluster` with `AllowDataLoss`, called only after the lag gate.
//!
//! `promote` is idempotent and pollable: it reports `Done` once the target cluster is the
//! writer (whoever started it), `InProgress` while a switchover or failover is under way
//! (never starting a second one), and starts the operation otherwise. `fence` is `Done`: the
//! global cluster demotes the old writer itself.
//!
//! Not testable in the sandbox (moto implements neither operation; see ARCHITECTURE.md), so
//! its tests use `aws-smithy-mocks` with the responses RDS documents.

use aws_sdk_rds::{Client, types::GlobalCluster};
use switchyard_core::{
    ErrorName, FailoverMode, SwitchyardError,
    ports::{DatabasePromoter, PortResult, StepState},
};

use crate::errors::classify;

#[derive(Debug, Clone)]
pub struct AuroraGlobalCluster {
    client: Client,
    global_cluster: String,
    /// ARN of the regional cluster that must become the writer.
    target_cluster_arn: String,
    mode: FailoverMode,
}

impl AuroraGlobalCluster {
    pub fn new(
        client: Client,
        global_cluster: impl Into<String>,
        target_cluster_arn: impl Into<String>,
        mode: FailoverMode,
    ) -> Self {
        AuroraGlobalCluster {
            client,
            global_cluster: global_cluster.into(),
            target_cluster_arn: target_cluster_arn.into(),
            mode,
        }
    }

    async fn describe(&self) -> PortResult<GlobalCluster> {
        let out = self
            .client
            .describe_global_clusters()
            .global_cluster_identifier(&self.global_cluster)
            .send()
            .await
            .map_err(|e| classify("DescribeGlobalClusters", &e))?;
        // Select by id ourselves: some implementations ignore the filter.
        out.global_clusters
            .unwrap_or_default()
            .into_iter()
            .find(|g| g.global_cluster_identifier() == Some(self.global_cluster.as_str()))
            .ok_or_else(|| {
                SwitchyardError::new(
                    ErrorName::ResourceNotFound,
                    format!("global cluster {} not found", self.global_cluster),
                )
            })
    }
}

/// What a described global cluster says about promoting `target`.
fn assess(global: &GlobalCluster, target: &str) -> PortResult<Option<StepState>> {
    let member = global.global_cluster_members().iter().find(|m| m.db_cluster_arn() == Some(target));
    let Some(member) = member else {
        return Err(SwitchyardError::new(
            ErrorName::ResourceNotFound,
            format!(
                "{target} is not a member of {}",
                global.global_cluster_identifier().unwrap_or("the global cluster")
            ),
        ));
    };
    if member.is_writer() == Some(true) && global.failover_state().is_none() {
        return Ok(Some(StepState::Done));
    }
    if global.failover_state().is_some() || matches!(global.status(), Some("failing-over" | "switching-over")) {
        return Ok(Some(StepState::InProgress));
    }
    Ok(None)
}

impl AuroraGlobalCluster {
    /// Whether the target cluster is the global cluster's writer, with no operation under way.
    pub async fn target_is_writer(&self) -> PortResult<bool> {
        Ok(assess(&self.describe().await?, &self.target_cluster_arn)? == Some(StepState::Done))
    }
}

impl DatabasePromoter for AuroraGlobalCluster {
    async fn promote(&self) -> PortResult<StepState> {
        if let Some(state) = assess(&self.describe().await?, &self.target_cluster_arn)? {
            return Ok(state);
        }
        let started = match self.mode {
            FailoverMode::Planned => self
                .client
                .switchover_global_cluster()
                .global_cluster_identifier(&self.global_cluster)
                .target_db_cluster_identifier(&self.target_cluster_arn)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("SwitchoverGlobalCluster", &e)),
            FailoverMode::Unplanned => self
                .client
                .failover_global_cluster()
                .global_cluster_identifier(&self.global_cluster)
                .target_db_cluster_identifier(&self.target_cluster_arn)
                .allow_data_loss(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("FailoverGlobalCluster", &e)),
        };
        started?;
        tracing::info!(global_cluster = %self.global_cluster, target = %self.target_cluster_arn, mode = ?self.mode, "promotion started");
        Ok(StepState::InProgress)
    }

    async fn fence(&self) -> PortResult<StepState> {
        Ok(StepState::Done)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_rds::{
        error::ErrorMetadata,
        operation::{
            describe_global_clusters::{DescribeGlobalClustersError, DescribeGlobalClustersOutput},
            failover_global_cluster::{FailoverGlobalClusterError, FailoverGlobalClusterOutput},
            switchover_global_cluster::SwitchoverGlobalClusterOutput,
        },
        types::{
            FailoverState, FailoverStatus, GlobalClusterMember,
            error::{GlobalClusterNotFoundFault, InvalidGlobalClusterStateFault},
        },
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    const EAST1: &str = "arn:aws:rds:us-east-1:123456789012:cluster:switchyard-prod-us-east-1";
    const EAST2: &str = "arn:aws:rds:us-east-2:123456789012:cluster:switchyard-prod-us-east-2";

    /// A global cluster as DescribeGlobalClusters returns it; `writer` holds the writer role.
    fn global(writer: &str, status: &str, failing_over: bool) -> GlobalCluster {
        let member = |arn: &str| GlobalClusterMember::builder().db_cluster_arn(arn).is_writer(arn == writer).build();
        let mut g = GlobalCluster::builder()
            .global_cluster_identifier("switchyard-prod")
            .status(status)
            .global_cluster_members(member(EAST1))
            .global_cluster_members(member(EAST2));
        if failing_over {
            g = g.failover_state(
                FailoverState::builder()
                    .status(FailoverStatus::FailingOver)
                    .from_db_cluster_arn(EAST1)
                    .to_db_cluster_arn(EAST2)
                    .is_data_loss_allowed(true)
                    .build(),
            );
        }
        g.build()
    }

    fn describing(g: GlobalCluster) -> aws_smithy_mocks::Rule {
        mock!(Client::describe_global_clusters)
            .then_output(move || DescribeGlobalClustersOutput::builder().global_clusters(g.clone()).build())
    }

    fn cluster(client: Client, mode: FailoverMode) -> AuroraGlobalCluster {
        AuroraGlobalCluster::new(client, "switchyard-prod", EAST2, mode)
    }

    #[tokio::test]
    async fn already_completed_is_done_without_a_new_failover() {
        let describe = describing(global(EAST2, "available", false));
        let failover =
            mock!(Client::failover_global_cluster).then_output(|| FailoverGlobalClusterOutput::builder().build());
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &failover]);
        assert_eq!(cluster(client, FailoverMode::Unplanned).promote().await, Ok(StepState::Done));
        assert_eq!(failover.num_calls(), 0);
    }

    #[tokio::test]
    async fn in_progress_is_polled_not_restarted() {
        let describe = describing(global(EAST1, "failing-over", true));
        let failover =
            mock!(Client::failover_global_cluster).then_output(|| FailoverGlobalClusterOutput::builder().build());
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &failover]);
        assert_eq!(cluster(client, FailoverMode::Unplanned).promote().await, Ok(StepState::InProgress));
        assert_eq!(failover.num_calls(), 0);
    }

    #[tokio::test]
    async fn unplanned_fails_over_allowing_data_loss_and_planned_switches_over() {
        let describe = describing(global(EAST1, "available", false));
        let failover = mock!(Client::failover_global_cluster)
            .match_requests(|r| {
                r.target_db_cluster_identifier() == Some(EAST2)
                    && r.allow_data_loss() == Some(true)
                    && r.global_cluster_identifier() == Some("switchyard-prod")
            })
            .then_output(|| FailoverGlobalClusterOutput::builder().build());
        let switchover = mock!(Client::switchover_global_cluster)
            .match_requests(|r| r.target_db_cluster_identifier() == Some(EAST2))
            .then_output(|| SwitchoverGlobalClusterOutput::builder().build());
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &failover, &switchover]);
        assert_eq!(cluster(client.clone(), FailoverMode::Unplanned).promote().await, Ok(StepState::InProgress));
        assert_eq!((failover.num_calls(), switchover.num_calls()), (1, 0));
        assert_eq!(cluster(client, FailoverMode::Planned).promote().await, Ok(StepState::InProgress));
        assert_eq!((failover.num_calls(), switchover.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn errors_are_classified() {
        // A busy global cluster is transient; a missing one is fatal; throttling is transient.
        let describe = describing(global(EAST1, "available", false));
        let busy = mock!(Client::failover_global_cluster).then_error(|| {
            FailoverGlobalClusterError::InvalidGlobalClusterStateFault(
                InvalidGlobalClusterStateFault::builder()
                    .message("in the middle of another operation")
                    .meta(ErrorMetadata::builder().code("InvalidGlobalClusterStateFault").build())
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &busy]);
        let got = cluster(client, FailoverMode::Unplanned).promote().await.map_err(|e| e.name);
        assert_eq!(got, Err(ErrorName::OperationInProgress));

        let missing = mock!(Client::describe_global_clusters).then_error(|| {
            DescribeGlobalClustersError::GlobalClusterNotFoundFault(
                GlobalClusterNotFoundFault::builder()
                    .meta(ErrorMetadata::builder().code("GlobalClusterNotFoundFault").build())
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_rds, [&missing]);
        let got = cluster(client, FailoverMode::Planned).promote().await.map_err(|e| e.name);
        assert_eq!(got, Err(ErrorName::ResourceNotFound));

        let throttled = mock!(Client::describe_global_clusters).then_error(|| {
            DescribeGlobalClustersError::generic(
                ErrorMetadata::builder().code("Throttling").message("Rate exceeded").build(),
            )
        });
        let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&throttled]);
        let got = cluster(client, FailoverMode::Planned).promote().await.map_err(|e| e.name);
        assert_eq!(got, Err(ErrorName::Throttled));

        let empty =
            mock!(Client::describe_global_clusters).then_output(|| DescribeGlobalClustersOutput::builder().build());
        let client = mock_client!(aws_sdk_rds, [&empty]);
        let got = cluster(client, FailoverMode::Planned).promote().await.map_err(|e| e.name);
        assert_eq!(got, Err(ErrorName::ResourceNotFound));
    }
}
