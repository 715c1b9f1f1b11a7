//! The three probes. Each returns a [`ProbeOutcome`] whatever happens (a failure is an
//! outcome, with its reason and error name) and is bounded by [`timed`], so one hanging
//! probe never holds up the others or the next round.
//!
//! Only the endpoint and the database can make a region `Unhealthy`: they are what serving
//! means. The queue can only degrade it (a backlog, poison in the DLQ, SQS answering
//! errors), because an SQS hiccup must never start a failover.

use std::{future::Future, time::Duration};

use aws_sdk_cloudwatch::types::{Dimension, Metric};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client as HttpClient, connect::HttpConnector};
use switchyard_aws::{metrics::newest_value, queues};
use switchyard_core::{
    DatabaseRole, ErrorName, Region, SwitchyardError,
    health::{Health, ProbeOutcome, Target},
};
use switchyard_postgres::{DbCredentials, PgNode, heartbeat};

/// Runs `probe` for at most `timeout`, stamping the outcome with its wall time. A probe
/// that does not answer in time is `Unhealthy` for the endpoint and the database, and
/// `Degraded` for the queue.
pub async fn timed(
    target: Target,
    region: &Region,
    timeout: Duration,
    probe: impl Future<Output = ProbeOutcome>,
) -> ProbeOutcome {
    // Tokio's clock, so tests can pause time; the same as the system clock otherwise.
    let start = tokio::time::Instant::now();
    let mut outcome = match tokio::time::timeout(timeout, probe).await {
        Ok(outcome) => outcome,
        Err(_) => failed(
            target,
            region,
            SwitchyardError::new(ErrorName::ServiceUnavailable, format!("no answer within {} ms", timeout.as_millis())),
        ),
    };
    outcome.latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    outcome
}

/// The outcome of a probe that failed with `e`.
pub fn failed(target: Target, region: &Region, e: SwitchyardError) -> ProbeOutcome {
    let mut o = ProbeOutcome::healthy(target, region.clone(), 0.0);
    let health = if target == Target::Queue { Health::Degraded } else { Health::Unhealthy };
    o.worsen(health, e.message);
    o.error = Some(e.name);
    o
}

/// An HTTP(S) client for `/health` endpoints: system roots, HTTP/1.1, no connection reuse
/// surprises (every probe is a fresh request with its own timeout).
pub fn http_client() -> Result<HttpClient<HttpsConnector<HttpConnector>, Empty<Bytes>>, SwitchyardError> {
    let mut roots = rustls::RootCertStore::empty();
    // Certificates the system cannot parse are skipped; none at all only matters for https.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SwitchyardError::new(ErrorName::Internal, format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    Ok(HttpClient::builder(hyper_util::rt::TokioExecutor::new()).build(https))
}

/// GET `url`: healthy on 2xx, unhealthy on anything else or no answer.
pub async fn endpoint(
    client: &HttpClient<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    region: &Region,
    url: &str,
) -> ProbeOutcome {
    let request = hyper::Request::get(url).header("user-agent", "switchyard-health-probe").body(Empty::new());
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            return failed(Target::Endpoint, region, SwitchyardError::new(ErrorName::MissingConfig, e.to_string()));
        }
    };
    match client.request(request).await {
        Ok(response) if response.status().is_success() => ProbeOutcome::healthy(Target::Endpoint, region.clone(), 0.0),
        Ok(response) => {
            let mut o = ProbeOutcome::healthy(Target::Endpoint, region.clone(), 0.0);
            o.worsen(Health::Unhealthy, format!("{url} answered HTTP {}", response.status().as_u16()));
            o
        }
        Err(e) => {
            failed(Target::Endpoint, region, SwitchyardError::new(ErrorName::ServiceUnavailable, format!("{url}: {e}")))
        }
    }
}

/// The database: a writer must accept the heartbeat write; a replica must stream and be
/// within the RPO budget (else degraded: the standby still serves reads, and the lag gate,
/// not the probe, decides about failover).
pub async fn database(
    node: &PgNode,
    credentials: Option<&DbCredentials>,
    region: &Region,
    budget: Duration,
) -> ProbeOutcome {
    let mut node = node.clone();
    node.access.credentials = credentials.cloned();
    let pulse = async {
        let client = node.connect().await?;
        heartbeat::probe(&node, &client, region.as_str()).await
    };
    let pulse = match pulse.await {
        Ok(p) => p,
        Err(e) => return failed(Target::Database, region, e),
    };
    let mut o = ProbeOutcome::healthy(Target::Database, region.clone(), 0.0);
    o.measure("isWriter", if pulse.role == DatabaseRole::Writer { 1.0 } else { 0.0 });
    if let Some(age) = pulse.heartbeat_age_seconds {
        o.measure("heartbeatAgeSeconds", age);
    }
    match pulse.role {
        DatabaseRole::Writer if pulse.fenced => o.worsen(Health::Unhealthy, "the writer is fenced: it refuses writes"),
        DatabaseRole::Writer => {}
        DatabaseRole::Replica => {
            if let Some(lag) = pulse.replay_lag_seconds {
                o.measure("replayLagSeconds", lag);
            }
            // What the promoter adds to the replica's own lag bound when the writer is gone
            // (its commit times are on the writer's clock): `WriterClockAheadSeconds`.
            if let Some(ahead) = pulse.writer_clock_ahead_seconds {
                o.measure("writerClockAheadSeconds", ahead);
            }
            if !pulse.streaming {
                o.worsen(Health::Degraded, "the replica does not stream from the writer");
            }
            // Streaming: the replica's own view (received but not replayed) is the lag. Not
            // streaming: nothing new arrives, so the newest heartbeat's age bounds the lag from
            // above (the writer's probe beats every interval).
            let lag = if pulse.streaming { pulse.replay_lag_seconds } else { pulse.heartbeat_age_seconds };
            let lag = lag.unwrap_or(0.0);
            if lag > budget.as_secs_f64() {
                o.worsen(
                    Health::Degraded,
                    format!("replication lag {lag:.1} s is above the {} s RPO budget", budget.as_secs()),
                );
            }
        }
    }
    o
}

/// The orders queue and its DLQ: depths from SQS (immediate), the age of the oldest message
/// from CloudWatch's `AWS/SQS` metric (per minute; absent in the sandbox, whose emulator
/// publishes no SQS metrics, so it is reported only when it exists).
pub async fn queue(
    sqs: &aws_sdk_sqs::Client,
    cloudwatch: &aws_sdk_cloudwatch::Client,
    region: &Region,
    url: &str,
    budget: Duration,
) -> ProbeOutcome {
    let described = match queues::describe(sqs, url).await {
        Ok(d) => d,
        Err(e) => return failed(Target::Queue, region, e),
    };
    let mut o = ProbeOutcome::healthy(Target::Queue, region.clone(), 0.0);
    o.measure("queueDepth", described.visible as f64);
    o.measure("inFlight", described.in_flight as f64);
    match &described.redrive {
        None => o.worsen(Health::Degraded, "no redrive policy: poison messages would be retried forever"),
        Some(redrive) => {
            let dlq = queues::name_in_arn(&redrive.dead_letter_arn);
            match async { queues::describe(sqs, &queues::url_of(sqs, dlq).await?).await }.await {
                Ok(d) => {
                    o.measure("dlqDepth", d.visible as f64);
                    if d.visible > 0 {
                        o.worsen(Health::Degraded, format!("{} message(s) in the DLQ {dlq}", d.visible));
                    }
                }
                Err(e) => o.worsen(Health::Degraded, format!("DLQ {dlq}: {}", e.message)),
            }
        }
    }
    let name = queues::name_in_arn(&described.arn);
    let metric = Metric::builder()
        .namespace("AWS/SQS")
        .metric_name("ApproximateAgeOfOldestMessage")
        .dimensions(Dimension::builder().name("QueueName").value(name).build())
        .build();
    match newest_value(cloudwatch, metric, "Maximum", Duration::from_secs(300), 60).await {
        Ok(Some(age)) => {
            o.measure("oldestMessageAgeSeconds", age);
            if age > budget.as_secs_f64() {
                o.worsen(Health::Degraded, format!("the oldest message has waited {age:.0} s"));
            }
        }
        Ok(None) => {}
        Err(e) => o.worsen(Health::Degraded, format!("age of the oldest message: {}", e.message)),
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region() -> Region {
        "us-east-1".parse().expect("region")
    }

    /// With time paused, a probe that never answers ends exactly at its timeout, and a probe
    /// running beside it is not held up: its outcome and latency are its own.
    #[tokio::test(start_paused = true)]
    async fn a_hanging_probe_delays_nothing_but_itself() {
        let timeout = Duration::from_secs(5);
        let r = region();
        let hanging = timed(Target::Endpoint, &r, timeout, std::future::pending());
        let quick = timed(Target::Database, &r, timeout, async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            ProbeOutcome::healthy(Target::Database, region(), 0.0)
        });
        let started = tokio::time::Instant::now();
        let (hanging, quick) = tokio::join!(hanging, quick);
        assert_eq!(started.elapsed(), timeout);
        assert_eq!((hanging.health, hanging.error), (Health::Unhealthy, Some(ErrorName::ServiceUnavailable)));
        assert_eq!(hanging.latency_ms, 5000.0);
        assert_eq!((quick.health, quick.latency_ms), (Health::Healthy, 20.0));
    }

    #[test]
    fn a_failing_queue_only_degrades() {
        let e = SwitchyardError::new(ErrorName::Throttled, "slow down");
        assert_eq!(failed(Target::Queue, &region(), e.clone()).health, Health::Degraded);
        assert_eq!(failed(Target::Database, &region(), e).health, Health::Unhealthy);
    }
}
