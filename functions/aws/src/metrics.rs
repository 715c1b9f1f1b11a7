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
    Ok(datapoints(client, metric, stat, lookback, period).await?.into_iter().next())
}

/// Every per-period `stat` of `metric` within `lookback` (and a minute ahead), newest first.
pub async fn datapoints(
    client: &Client,
    metric: Metric,
    stat: &str,
    lookback: Duration,
    period: i32,
) -> PortResult<Vec<(SystemTime, f64)>> {
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
    Ok(out
        .metric_data_results()
        .first()
        .map(|r| {
            r.timestamps()
                .iter()
                .zip(r.values())
                .filter_map(|(t, v)| Some((SystemTime::try_from(*t).ok()?, *v)))
                .collect()
        })
        .unwrap_or_default())
}

/// How far the writer's clock ran ahead of `replica`'s at most in the last hour, as the
/// replica's WAL receiver measured it (`WriterClockAheadSeconds`, published by the replica
/// region's probe while it streams): the hour's largest figure, or `None` if none was
/// published. Read from the caller's own region's CloudWatch only.
pub async fn writer_clock_ahead(client: &Client, replica: &switchyard_core::Region) -> PortResult<Option<f64>> {
    use switchyard_core::health::{NAMESPACE, Target, metric};
    let metric = Metric::builder()
        .namespace(NAMESPACE)
        .metric_name(metric::WRITER_CLOCK_AHEAD)
        .dimensions(Dimension::builder().name("Region").value(replica.as_str()).build())
        .dimensions(Dimension::builder().name("Target").value(Target::Database.as_str()).build())
        .build();
    let points = datapoints(client, metric, "Maximum", Duration::from_secs(3600), 60).await?;
    Ok(points.into_iter().map(|(_, v)| v).reduce(f64::max))
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
