//! Replication lag of an Aurora Global Database secondary, from CloudWatch in its own region
//! (`AWS/RDS` `AuroraGlobalDBReplicationLag`, milliseconds, per secondary cluster).
//!
//! Aurora publishes no byte figure, so `bytes` is 0; no datapoint in the last five minutes
//! means the lag is unknown (`None`), which the lag gate treats as above budget. A datapoint
//! is a minute's maximum, stamped with the minute's start; the lag since then is not known,
//! only bounded: it grows by at most a second a second (#18: a four-minute-old datapoint is
//! not the current lag).

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::{
    Client,
    types::{Dimension, Metric},
};
use switchyard_core::{ReplicationLag, ports::PortResult};

use crate::metrics::newest_datapoint;

/// The period of the lag's datapoints, seconds (Aurora publishes per minute).
const PERIOD: Duration = Duration::from_secs(60);

/// An upper bound of the replication lag of the secondary cluster `cluster_id` now, from the
/// newest per-minute maximum of its `AuroraGlobalDBReplicationLag`.
pub async fn aurora_replication_lag(cloudwatch: &Client, cluster_id: &str) -> PortResult<Option<ReplicationLag>> {
    let metric = Metric::builder()
        .namespace("AWS/RDS")
        .metric_name("AuroraGlobalDBReplicationLag")
        .dimensions(Dimension::builder().name("DBClusterIdentifier").value(cluster_id).build())
        .build();
    let newest =
        newest_datapoint(cloudwatch, metric, "Maximum", Duration::from_secs(300), PERIOD.as_secs() as i32).await?;
    Ok(newest.map(|(stamped, ms)| ReplicationLag { bytes: 0, seconds: lag_bound(ms, stamped, SystemTime::now()) }))
}

/// The lag now, in seconds, at most: the period's maximum `ms` plus the time since the end of
/// the period stamped `stamped` (a period not over yet adds nothing).
fn lag_bound(ms: f64, stamped: SystemTime, now: SystemTime) -> f64 {
    let since_period = now.duration_since(stamped + PERIOD).unwrap_or_default();
    ms / 1000.0 + since_period.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_datapoint_bounds_the_lag_by_its_age() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // The current minute's maximum: as published.
        assert_eq!(lag_bound(500.0, now - Duration::from_secs(30), now), 0.5);
        // Four minutes old: replication may have stopped right after it; the minute it
        // covers ended three minutes ago.
        assert_eq!(lag_bound(500.0, now - Duration::from_secs(240), now), 180.5);
    }
}
