//! Traffic by health-check signal (the dns-switcher's `health-check` mode), with data-plane
//! calls only, in the surviving region.
//!
//! Each region's failover record has a CLOUDWATCH_METRIC health check that follows an alarm
//! on `switchyard/RegionServing{Region=<that region>}`, and **that alarm lives in the peer
//! region**. So the region taking over (W) marks the other region (O) as not serving with a
//! `PutMetricData` in W's own CloudWatch: O's record turns unhealthy, Route 53 answers with
//! W's record. Nothing in O (possibly down) and nothing in us-east-1's control planes is
//! needed. W's own record is marked serving in O's CloudWatch when O answers (best effort:
//! when O is down its alarm has no data and keeps its last state, healthy).

use std::time::Duration;

use aws_sdk_cloudwatch::{
    Client,
    types::{Dimension, Metric, MetricDatum, StandardUnit},
};
use switchyard_core::{
    ErrorName, Region, SwitchyardError, WriterClaim,
    ports::{PortResult, StepState, TrafficRouter},
};

use crate::{errors::classify, metrics::newest_value};

pub use switchyard_core::health::{NAMESPACE, metric::REGION_SERVING as METRIC};

#[derive(Debug, Clone)]
pub struct ServingSignal {
    /// The region this function runs in, and its CloudWatch.
    local: Region,
    local_cloudwatch: Client,
    peer: Region,
    peer_cloudwatch: Client,
}

fn dimension(region: &Region) -> Dimension {
    Dimension::builder().name("Region").value(region.as_str()).build()
}

impl ServingSignal {
    pub fn new(local: Region, local_cloudwatch: Client, peer: Region, peer_cloudwatch: Client) -> Self {
        ServingSignal { local, local_cloudwatch, peer, peer_cloudwatch }
    }

    async fn put(client: &Client, about: &Region, serving: bool) -> PortResult<()> {
        let datum = MetricDatum::builder()
            .metric_name(METRIC)
            .dimensions(dimension(about))
            .value(if serving { 1.0 } else { 0.0 })
            .unit(StandardUnit::None)
            .storage_resolution(switchyard_core::health::metric::REGION_SERVING_STORAGE_RESOLUTION)
            .build();
        client
            .put_metric_data()
            .namespace(NAMESPACE)
            .metric_data(datum)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("PutMetricData", &e))
    }

    /// The lowest value of the signal about `about` in the latest minute with data.
    async fn latest(client: &Client, about: &Region) -> PortResult<Option<f64>> {
        let metric = Metric::builder().namespace(NAMESPACE).metric_name(METRIC).dimensions(dimension(about)).build();
        newest_value(client, metric, "Minimum", Duration::from_secs(900), 60).await
    }
}

impl TrafficRouter for ServingSignal {
    async fn route_to(&self, claim: &WriterClaim) -> PortResult<StepState> {
        if claim.writer != self.local {
            return Err(SwitchyardError::new(
                ErrorName::InvalidInput,
                format!("the health-check mode moves traffic to its own region ({}), not {}", self.local, claim.writer),
            ));
        }
        Self::put(&self.local_cloudwatch, &self.peer, false).await?;
        if Self::latest(&self.local_cloudwatch, &self.peer).await? != Some(0.0) {
            return Err(SwitchyardError::new(
                ErrorName::ServiceUnavailable,
                format!("{} reads no 'not serving' signal for {} back", self.local, self.peer),
            ));
        }
        if let Err(e) = Self::put(&self.peer_cloudwatch, &self.local, true).await {
            tracing::warn!(peer = %self.peer, error = %e, "could not mark this region serving in the peer region");
        }
        tracing::info!(writer = %claim.writer, epoch = %claim.epoch, not_serving = %self.peer, "serving signal flipped");
        Ok(StepState::Done)
    }

    /// This region if it has marked the peer as not serving, else the peer.
    async fn current_target(&self) -> PortResult<Region> {
        Ok(match Self::latest(&self.local_cloudwatch, &self.peer).await? {
            Some(v) if v < 1.0 => self.local.clone(),
            _ => self.peer.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudwatch::{
        error::ErrorMetadata,
        operation::{
            get_metric_data::GetMetricDataOutput,
            put_metric_data::{PutMetricDataError, PutMetricDataOutput},
        },
        types::MetricDataResult,
    };
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use switchyard_core::WriterEpoch;

    use super::*;

    fn region(s: &str) -> Region {
        s.parse().expect("region")
    }

    fn claim(writer: &str) -> WriterClaim {
        WriterClaim::active(WriterEpoch(2), region(writer))
    }

    /// A PutMetricData about `about` with `value`, answered successfully.
    fn put(about: &'static str, value: f64) -> Rule {
        mock!(Client::put_metric_data)
            .match_requests(move |r| {
                let d = &r.metric_data()[0];
                r.namespace() == Some(NAMESPACE)
                    && d.metric_name() == Some(METRIC)
                    && d.value() == Some(value)
                    && d.dimensions()[0].value() == Some(about)
            })
            .then_output(|| PutMetricDataOutput::builder().build())
    }

    fn reads(values: &'static [f64]) -> Rule {
        mock!(Client::get_metric_data).then_output(move || {
            GetMetricDataOutput::builder()
                .metric_data_results(
                    MetricDataResult::builder().id("serving").set_values(Some(values.to_vec())).build(),
                )
                .build()
        })
    }

    fn throttled() -> Rule {
        mock!(Client::put_metric_data).then_error(|| {
            PutMetricDataError::generic(ErrorMetadata::builder().code("Throttling").message("Rate exceeded").build())
        })
    }

    #[tokio::test]
    async fn the_surviving_region_marks_the_other_not_serving_and_reads_it_back() {
        let (mark_peer, read_back, mark_self) = (put("us-east-1", 0.0), reads(&[0.0]), put("us-east-2", 1.0));
        let local = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&mark_peer, &read_back]);
        let peer = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&mark_self]);
        let signal = ServingSignal::new(region("us-east-2"), local, region("us-east-1"), peer);
        assert_eq!(signal.route_to(&claim("us-east-2")).await, Ok(StepState::Done));
        assert_eq!((mark_peer.num_calls(), read_back.num_calls(), mark_self.num_calls()), (1, 1, 1));
        assert_eq!(signal.current_target().await, Ok(region("us-east-2")));
    }

    #[tokio::test]
    async fn a_dead_peer_region_does_not_stop_the_switch() {
        let (mark_peer, read_back, peer_down) = (put("us-east-1", 0.0), reads(&[0.0]), throttled());
        let local = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&mark_peer, &read_back]);
        let peer = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&peer_down]);
        let signal = ServingSignal::new(region("us-east-2"), local, region("us-east-1"), peer);
        assert_eq!(signal.route_to(&claim("us-east-2")).await, Ok(StepState::Done));
    }

    #[tokio::test]
    async fn failures_in_the_surviving_region_are_named() {
        let cases: [(&[&Rule], &str, ErrorName); 3] = [
            (&[&throttled()], "us-east-2", ErrorName::Throttled),
            (&[&put("us-east-1", 0.0), &reads(&[1.0])], "us-east-2", ErrorName::ServiceUnavailable),
            (&[&put("us-east-1", 0.0), &reads(&[0.0])], "us-east-1", ErrorName::InvalidInput),
        ];
        for (rules, writer, name) in cases {
            let local = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, rules);
            let peer = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&put("us-east-2", 1.0)]);
            let signal = ServingSignal::new(region("us-east-2"), local, region("us-east-1"), peer);
            assert_eq!(signal.route_to(&claim(writer)).await.map_err(|e| e.name), Err(name), "writer {writer}");
        }
    }
}
