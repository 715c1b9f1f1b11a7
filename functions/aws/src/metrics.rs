//! CloudWatch metrics: the one query shape switchyard reads, and publishing datapoints.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::{
    Client,
    primitives::DateTime,
    types::{Dimension, Metric, MetricDataQuery, MetricDatum, MetricStat, ScanBy, StandardUnit},
};
use switchyard_core::ports::{Datapoint, MetricsSink, PortResult};

use crate::errors::classify;

/// The newest per-period `stat` (e.g. `Maximum`) of `metric` within `lookback`, if any
/// datapoint exists. The window reaches a minute ahead, to include datapoints just written.
/// `period` is in seconds: 60 for standard metrics, down to 1 for high-resolution ones.
pub async fn newest_value(
    client: &Client,
    metric: Metric,
    stat: &str,
    lookback: Duration,
    period: i32,
) -> PortResult<Option<f64>> {
    Ok(newest_datapoint(client, metric, stat, lookback, period).await?.map(|(_, value)| value))
}

/// [`newest_value`] with its timestamp (the start of its period), for a reader that must
/// know how old the figure is.
pub async fn newest_datapoint(
    client: &Client,
    metric: Metric,
    stat: &str,
    lookback: Duration,
    period: i32,
) -> PortResult<Option<(SystemTime, f64)>> {
    let query = MetricDataQuery::builder()
        .id("newest")
        .metric_stat(MetricStat::builder().metric(metric).period(period).stat(stat).build())
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
    Ok(out.metric_data_results().first().and_then(|r| {
        let stamped = r.timestamps().first().and_then(|t| SystemTime::try_from(*t).ok())?;
        Some((stamped, *r.values().first()?))
    }))
}

/// Publishes switchyard datapoints with `PutMetricData`: high resolution (1-second storage),
/// stamped `at`, in chunks well under the API's per-request limit.
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    client: Client,
    namespace: String,
}

impl CloudWatchMetrics {
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        CloudWatchMetrics { client, namespace: namespace.into() }
    }

    pub async fn publish_at(&self, datapoints: &[Datapoint], at: SystemTime) -> PortResult<()> {
        for chunk in datapoints.chunks(150) {
            let data = chunk
                .iter()
                .map(|p| {
                    let mut d = MetricDatum::builder()
                        .metric_name(&p.name)
                        .value(p.value)
                        .unit(StandardUnit::from(p.unit.as_str()))
                        .storage_resolution(1)
                        .timestamp(DateTime::from(at));
                    for (name, value) in &p.dimensions {
                        d = d.dimensions(Dimension::builder().name(name).value(value).build());
                    }
                    d.build()
                })
                .collect::<Vec<_>>();
            self.client
                .put_metric_data()
                .namespace(&self.namespace)
                .set_metric_data(Some(data))
                .send()
                .await
                .map_err(|e| classify("PutMetricData", &e))?;
        }
        Ok(())
    }
}

impl MetricsSink for CloudWatchMetrics {
    async fn publish(&self, datapoints: &[Datapoint]) -> PortResult<()> {
        self.publish_at(datapoints, SystemTime::now()).await
    }
}
