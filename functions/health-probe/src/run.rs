//! One invocation: `rounds` probe rounds, `interval` apart, each round's probes concurrent,
//! each round's datapoints published as soon as the round ends.
//!
//! Rounds start on a fixed schedule (start + k × interval), so a slow round never pushes the
//! next one back; every probe is bounded well inside the interval.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::Empty;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client as HttpClient, connect::HttpConnector};
use serde::Serialize;
use switchyard_aws::{db_secret::DbSecret, metrics::CloudWatchMetrics};
use switchyard_core::{
    Region, SwitchyardError,
    health::{AlarmRule, AlarmState, Health, ProbeOutcome, RegionVerdict, Target, datapoints, judge, metric},
    order::Timestamp,
    ports::PortResult,
    steps::HealthAnswer,
};
use switchyard_postgres::PgNode;

use crate::{
    config::{ProbeConfig, ProbeEvent},
    probes::{self, timed},
};

#[derive(Debug)]
pub struct Prober {
    pub config: ProbeConfig,
    pub http: HttpClient<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    pub sqs: aws_sdk_sqs::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub metrics: CloudWatchMetrics,
    pub secret: Option<DbSecret>,
    pub db: PgNode,
}

/// The function's answer (also logged as one JSON line).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    pub probed_from: Region,
    pub interval_seconds: u64,
    pub probe_timeout_ms: u64,
    pub rounds: Vec<Round>,
    /// The last round's verdicts: what the state machines read (`switchyard_core::steps`).
    #[serde(flatten)]
    pub last: HealthAnswer,
    /// What the failover alarm on each region's `Healthy` would conclude from these rounds
    /// alone (CloudWatch also sees the previous invocation's).
    pub alarm: BTreeMap<Region, AlarmView>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Round {
    pub started_at: String,
    /// Milliseconds after the invocation's first round started.
    pub offset_ms: f64,
    pub outcomes: Vec<ProbeOutcome>,
    pub verdicts: BTreeMap<Region, RegionVerdict>,
    /// `None` when the datapoints reached CloudWatch; else why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmView {
    pub metric: String,
    pub rule: AlarmRule,
    /// `Healthy` per round, oldest first.
    pub values: Vec<f64>,
    pub state: AlarmState,
}

impl Prober {
    pub fn new(
        config: ProbeConfig,
        sqs: aws_sdk_sqs::Client,
        cloudwatch: aws_sdk_cloudwatch::Client,
        secret: Option<DbSecret>,
    ) -> Result<Arc<Self>, SwitchyardError> {
        let mut db = PgNode::new(config.database.clone(), format!("health-probe-{}", config.deployment.local_region));
        db.access.tls = config.tls.clone();
        Ok(Arc::new(Prober {
            http: probes::http_client()?,
            metrics: CloudWatchMetrics::new(cloudwatch.clone(), switchyard_core::health::NAMESPACE),
            config,
            sqs,
            cloudwatch,
            secret,
            db,
        }))
    }

    pub async fn handle(&self, event: ProbeEvent) -> PortResult<ProbeReport> {
        let d = &self.config.deployment;
        let (rounds, interval) = match event {
            ProbeEvent::Scheduled { region } => {
                d.regions.check(&region)?;
                if region != d.local_region {
                    return Err(SwitchyardError::new(
                        switchyard_core::ErrorName::InvalidInput,
                        format!("a schedule in {region} invoked the probe of {}", d.local_region),
                    ));
                }
                (self.config.rounds, self.config.interval)
            }
            ProbeEvent::Request(r) => (
                r.rounds.unwrap_or(self.config.rounds),
                r.interval_seconds.map_or(self.config.interval, Duration::from_secs),
            ),
        };
        // Read once per invocation: the probe's own secret failing is the probe's problem,
        // answered as a named error, never published as the database being down.
        let credentials = match &self.secret {
            Some(s) => Some(s.credentials().await?),
            None => None,
        };
        let timeout = ProbeConfig::probe_timeout(interval);
        let start = tokio::time::Instant::now();
        let mut report = ProbeReport {
            probed_from: d.local_region.clone(),
            interval_seconds: interval.as_secs(),
            probe_timeout_ms: timeout.as_millis() as u64,
            rounds: Vec::new(),
            last: HealthAnswer::default(),
            alarm: BTreeMap::new(),
        };
        for k in 0..rounds {
            tokio::time::sleep_until(start + interval * k).await;
            let round = self.round(credentials.as_ref(), timeout, start).await;
            tracing::info!(round = k, verdicts = %serde_json::to_string(&round.verdicts).unwrap_or_default(), "probe round");
            report.rounds.push(round);
        }
        let verdicts = report.rounds.last().map(|r| r.verdicts.clone()).unwrap_or_default();
        let peer = d.regions.peer_of(&report.probed_from).ok();
        report.last = HealthAnswer {
            own_health: verdicts.get(&report.probed_from).map(|v| v.health),
            peer_health: peer.and_then(|p| verdicts.get(p)).map(|v| v.health),
            verdicts,
        };
        let rule = AlarmRule::failover(interval);
        for region in report.last.verdicts.keys() {
            let values: Vec<f64> = report
                .rounds
                .iter()
                .filter_map(|r| r.verdicts.get(region))
                .map(|v| if v.health == Health::Unhealthy { 0.0 } else { 1.0 })
                .collect();
            let state = rule.evaluate(&values.iter().copied().map(Some).collect::<Vec<_>>());
            report.alarm.insert(region.clone(), AlarmView { metric: metric::HEALTHY.to_owned(), rule, values, state });
        }
        Ok(report)
    }

    async fn round(
        &self,
        credentials: Option<&switchyard_postgres::DbCredentials>,
        timeout: Duration,
        start: tokio::time::Instant,
    ) -> Round {
        let c = &self.config;
        let local = &c.deployment.local_region;
        let at = SystemTime::now();
        let offset_ms = start.elapsed().as_secs_f64() * 1000.0;
        let budget = c.deployment.rpo_budget.0;
        let endpoint_probes = c.health_urls.iter().map(|(region, url)| {
            Box::pin(timed(Target::Endpoint, region, timeout, probes::endpoint(&self.http, region, url)))
                as std::pin::Pin<Box<dyn Future<Output = ProbeOutcome> + Send + '_>>
        });
        let database =
            Box::pin(timed(Target::Database, local, timeout, probes::database(&self.db, credentials, local, budget)));
        let queue = Box::pin(timed(
            Target::Queue,
            local,
            timeout,
            probes::queue(&self.sqs, &self.cloudwatch, local, &c.queue_url, budget),
        ));
        let all: Vec<std::pin::Pin<Box<dyn Future<Output = ProbeOutcome> + Send + '_>>> =
            endpoint_probes.chain([database as _, queue as _]).collect();
        let outcomes = join_all(all).await;
        let verdicts = judge(&outcomes);
        let publish_error =
            self.metrics.publish_at(&datapoints(local, &outcomes, &verdicts), at).await.err().map(|e| e.to_string());
        if let Some(e) = &publish_error {
            tracing::error!(error = %e, "probe datapoints not published");
        }
        Round { started_at: Timestamp::from(at).to_string(), offset_ms, outcomes, verdicts, publish_error }
    }
}
