//! Reading CloudWatch metrics: the one query shape switchyard needs.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::{
    Client,
    primitives::DateTime,
    types::{Metric, MetricDataQuery, MetricStat, ScanBy},
};
use switchyard_core::ports::PortResult;

use crate::errors::classify;

/// The newest per-minute `stat` (e.g. `Maximum`) of `metric` within `lookback`, if any
/// datapoint exists. The window reaches a minute ahead, to include datapoints just written.
pub async fn newest_value(client: &Client, metric: Metric, stat: &str, lookback: Duration) -> PortResult<Option<f64>> {
    let query = MetricDataQuery::builder()
        .id("newest")
        .metric_stat(MetricStat::builder().metric(metric).period(60).stat(stat).build())
        .build();
    let now = SystemTime::now();
    let out = client
        .get_metric_data()
        .metric_data_queries(query)
        .start_time(DateTime::from(now - lookback))
        .end_time(DateTime::from(now + Duration::from_secs(60)))
        .scan_by(ScanBy::TimestampDescending)
        .send()
        .await
        .map_err(|e| classify("GetMetricData", &e))?;
    Ok(out.metric_data_results().first().and_then(|r| r.values().first().copied()))
}
