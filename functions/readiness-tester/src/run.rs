//! One readiness run: the writer claim first (every other rule needs to know who writes and
//! who would take over), then every other rule at once, each timed and bounded; then the
//! report, the `FailoverReady` metric, and an SNS message if readiness changed.

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, SystemTime},
};

use aws_sdk_cloudwatch::types::{Dimension, Metric};
use switchyard_aws::metrics::{CloudWatchMetrics, newest_value};
use switchyard_core::{
    ErrorName, Region, SwitchyardError,
    health::{NAMESPACE, metric},
    ports::{Datapoint, PortResult},
    readiness::{Report, RuleResult, Verdict, rules},
};

use crate::{
    config::ReadinessEvent,
    rules::{self as r, Roles, Sources},
};

/// No rule may take longer than this; a rule that does is reported as an error.
const RULE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub struct Tester {
    pub sources: Sources,
    pub metrics: CloudWatchMetrics,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub sns: aws_sdk_sns::Client,
}

type RuleFuture<'a> = Pin<Box<dyn Future<Output = RuleResult> + Send + 'a>>;

/// Runs a rule under [`RULE_TIMEOUT`], recording how long it took.
async fn timed(rule: &'static str, check: impl Future<Output = RuleResult>) -> RuleResult {
    let start = tokio::time::Instant::now();
    let mut result = match tokio::time::timeout(RULE_TIMEOUT, check).await {
        Ok(r) => r,
        Err(_) => RuleResult::error(rule, ErrorName::ServiceUnavailable, format!("no answer within {RULE_TIMEOUT:?}")),
    };
    result.duration_ms = start.elapsed().as_secs_f64() * 1000.0;
    result
}

impl Tester {
    pub async fn handle(&self, event: ReadinessEvent) -> PortResult<Report> {
        let s = &self.sources;
        let d = &s.config.deployment;
        let asked = match event {
            ReadinessEvent::Scheduled => None,
            ReadinessEvent::Request { candidate } => candidate,
        };
        if let Some(c) = &asked {
            d.regions.check(c)?;
        }
        let start = tokio::time::Instant::now();

        let claims_start = tokio::time::Instant::now();
        let claims = r::read_claims(s).await;
        let mut claim_rule = r::judge_claims(&claims);
        claim_rule.duration_ms = claims_start.elapsed().as_secs_f64() * 1000.0;
        // The local table's claim, else the peer's, else the configured primary.
        let local_claim =
            claims.iter().find(|(region, _)| *region == d.local_region).and_then(|(_, c)| c.as_ref().ok());
        let any_claim = local_claim.or_else(|| claims.iter().find_map(|(_, c)| c.as_ref().ok()));
        let writer = any_claim.map_or_else(|| d.regions.primary.clone(), |c| c.writer.clone());
        let candidate = match asked {
            Some(c) if c == writer => {
                return Err(SwitchyardError::new(
                    ErrorName::InvalidInput,
                    format!("{c} is the writer already; name the region that would take over"),
                ));
            }
            Some(c) => c,
            None => d.regions.peer_of(&writer)?.clone(),
        };
        let roles = Roles { writer, candidate, epoch: any_claim.map(|c| c.epoch) };

        let checks: Vec<RuleFuture<'_>> = vec![
            Box::pin(timed(rules::GLOBAL_DATABASE, r::global_database(s, &roles))),
            Box::pin(timed(rules::STANDBY_REPLICA, r::standby_replica(s, &roles))),
            Box::pin(timed(rules::REPLICATION_LAG, r::replication_lag(s, &roles))),
            Box::pin(timed(rules::QUEUES, r::queues(s))),
            Box::pin(timed(rules::ACKNOWLEDGEMENT, r::acknowledgement(s, &roles))),
            Box::pin(timed(rules::ARMING, r::arming(s, &roles))),
            Box::pin(timed(rules::SSM_CONFIG, r::ssm_config(s))),
            Box::pin(timed(rules::DNS, r::dns(s))),
            Box::pin(timed(rules::FAILOVER_ALARM, r::failover_alarm(s, &roles))),
            Box::pin(timed(rules::FAILOVER_TRIGGER, r::failover_trigger(s, &roles))),
            Box::pin(timed(rules::STATE_MACHINE, r::state_machine(s, &roles))),
            Box::pin(timed(rules::FUNCTION_PARITY, r::function_parity(s))),
        ];
        let mut results = futures_util::future::join_all(checks).await;
        results.push(claim_rule);
        skip_dependents(&mut results);

        let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
        let mut report = Report::new(
            d.environment.as_str(),
            d.local_region.clone(),
            any_claim.cloned(),
            Some(roles.candidate.clone()),
            results,
            duration_ms,
        );
        self.publish(&mut report, &roles.candidate).await;
        tracing::info!(ready = report.ready, not_passing = ?report.not_passing, duration_ms, "readiness");
        Ok(report)
    }

    /// The metric, compared with the previous one first; the SNS message on a change. An
    /// output that fails is recorded in the report, which is still returned whole.
    async fn publish(&self, report: &mut Report, candidate: &Region) {
        let dims = vec![("Region".to_owned(), candidate.to_string())];
        let metric = Metric::builder()
            .namespace(NAMESPACE)
            .metric_name(metric::FAILOVER_READY)
            .dimensions(Dimension::builder().name("Region").value(candidate.as_str()).build())
            .build();
        let previous = newest_value(&self.cloudwatch, metric, "Minimum", Duration::from_secs(3 * 3600), 1).await;
        let previous = match previous {
            Ok(v) => v.map(|v| v >= 1.0),
            Err(e) => {
                report.published.errors.push(format!("reading the previous FailoverReady: {e}"));
                None
            }
        };
        report.compare(previous);
        let point = Datapoint {
            name: metric::FAILOVER_READY.to_owned(),
            value: if report.ready { 1.0 } else { 0.0 },
            unit: "None".to_owned(),
            dimensions: dims,
        };
        match self.metrics.publish_at(&[point], SystemTime::now()).await {
            Ok(()) => report.published.metric = true,
            Err(e) => report.published.errors.push(format!("FailoverReady: {e}")),
        }
        if report.changed {
            let (subject, message) = report.notification();
            let sent = self
                .sns
                .publish()
                .topic_arn(&self.sources.config.alerts_topic_arn)
                .subject(subject.chars().take(100).collect::<String>())
                .message(message)
                .send()
                .await;
            match sent {
                Ok(_) => report.published.notified = true,
                Err(e) => {
                    report.published.errors.push(format!("SNS: {}", switchyard_aws::errors::classify("Publish", &e)))
                }
            }
        }
    }
}

/// The lag of a replica that does not answer is not a second finding: it is `skipped`.
fn skip_dependents(results: &mut [RuleResult]) {
    let replica_ok = results.iter().any(|r| r.rule == rules::STANDBY_REPLICA && r.verdict == Verdict::Pass);
    if !replica_ok {
        for r in results.iter_mut().filter(|r| r.rule == rules::REPLICATION_LAG) {
            let took = r.duration_ms;
            *r = RuleResult::skipped(rules::REPLICATION_LAG, rules::STANDBY_REPLICA);
            r.duration_ms = took;
        }
    }
}
