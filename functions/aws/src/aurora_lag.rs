//! Replication lag of an Aurora Global Database secondary, from CloudWatch in its own region
//! (`AWS/RDS` `AuroraGlobalDBReplicationLag`, milliseconds, per secondary cluster).
//!
//! Aurora publishes no byte figure, so `bytes` is 0; no datapoint in the last five minutes
//! means the lag is unknown (`None`), which the lag gate treats as above budget.

use std::time::Duration;

use aws_sdk_cloudwatch::{
    Client,
    types::{Dimension, Metric},
};
use switchyard_core::{ReplicationLag, ports::PortResult};

use crate::metrics::newest_value;

/// The newest per-minute maximum of the secondary cluster `cluster_id`'s replication lag.
pub async fn aurora_replication_lag(cloudwatch: &Client, cluster_id: &str) -> PortResult<Option<ReplicationLag>> {
    let metric = Metric::builder()
        .namespace("AWS/RDS")
        .metric_name("AuroraGlobalDBReplicationLag")
        .dimensions(Dimension::builder().name("DBClusterIdentifier").value(cluster_id).build())
        .build();
    let newest_ms = newest_value(cloudwatch, metric, "Maximum", Duration::from_secs(300), 60).await?;
    Ok(newest_ms.map(|ms| ReplicationLag { bytes: 0, seconds: ms / 1000.0 }))
}
