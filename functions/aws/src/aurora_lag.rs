//! Replication lag of an Aurora Global Database secondary, from CloudWatch in its own region
//! (`AWS/RDS` `AuroraGlobalDBReplicationLag`, milliseconds, per secondary cluster).
//!
//! Aurora publishes no byte figure, so `bytes` is 0; no datapoint in the last five minutes
//! means the lag is unknown (`None`), which the lag gate treats as above budget.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::{
    Client,
    primitives::DateTime,
    types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy},
};
use switchyard_core::{ReplicationLag, ports::PortResult};

use crate::errors::classify;

/// The newest per-minute maximum of the secondary cluster `cluster_id`'s replication lag.
pub async fn aurora_replication_lag(cloudwatch: &Client, cluster_id: &str) -> PortResult<Option<ReplicationLag>> {
    let metric = Metric::builder()
        .namespace("AWS/RDS")
        .metric_name("AuroraGlobalDBReplicationLag")
        .dimensions(Dimension::builder().name("DBClusterIdentifier").value(cluster_id).build())
        .build();
    let query = MetricDataQuery::builder()
        .id("lag")
        .metric_stat(MetricStat::builder().metric(metric).period(60).stat("Maximum").build())
        .build();
    let now = SystemTime::now();
    let out = cloudwatch
        .get_metric_data()
        .metric_data_queries(query)
        .start_time(DateTime::from(now - Duration::from_secs(300)))
        .end_time(DateTime::from(now))
        .scan_by(ScanBy::TimestampDescending)
        .send()
        .await
        .map_err(|e| classify("GetMetricData", &e))?;
    let newest_ms = out.metric_data_results().first().and_then(|r| r.values().first().copied());
    Ok(newest_ms.map(|ms| ReplicationLag { bytes: 0, seconds: ms / 1000.0 }))
}
