//! The probe's configuration and the events it accepts.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::{Deserialize, Deserializer, de::Error as _};
use switchyard_core::{
    ConfigReader, DeploymentConfig, Region,
    config::{ConfigError, keys},
};
use switchyard_lambda::ScheduledEvent;
use switchyard_postgres::{DbSettings, PgEndpoint, is_loopback};

/// The longest a single probe may take, whatever the interval: a probe that needs longer
/// than this to answer is as good as down.
const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub deployment: DeploymentConfig,
    pub interval: Duration,
    pub rounds: u32,
    /// Region → the platform's `/health` URL there. Both regions' are probed from each.
    pub health_urls: BTreeMap<Region, String>,
    /// This region's database.
    pub database: PgEndpoint,
    pub db_secret_id: Option<String>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub queue_url: String,
}

/// A region → URL map; each URL must be `https://`, or `http://` to loopback.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct HealthUrls(pub BTreeMap<Region, String>);

impl std::str::FromStr for HealthUrls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let urls: HealthUrls =
            serde_json::from_str(s).map_err(|e| format!("expected a JSON map of region to URL: {e}"))?;
        for (region, url) in &urls.0 {
            let host = url.split("://").nth(1).and_then(|rest| rest.split([':', '/']).next()).unwrap_or("");
            let secure = url.starts_with("https://") || (url.starts_with("http://") && is_loopback(host));
            if !secure {
                return Err(format!("{region}: {url:?} must be https:// (http:// only to loopback)"));
            }
        }
        Ok(urls)
    }
}

/// The alarm periods CloudWatch can evaluate for high-resolution metrics.
fn alarm_period(seconds: u64) -> bool {
    seconds == 10 || seconds == 30 || (seconds > 0 && seconds.is_multiple_of(60))
}

impl ProbeConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + Clone) -> Result<Self, ConfigError> {
        DeploymentConfig::read_with(lookup, Self::read_own)
    }

    /// The probe's own settings, as the config they make with the deployment's.
    fn read_own<L: Fn(&str) -> Option<String>>(
        r: &mut ConfigReader<L>,
        d: Option<&DeploymentConfig>,
    ) -> Option<impl FnOnce(DeploymentConfig) -> ProbeConfig + use<L>> {
        let interval = r.optional::<u64>(keys::PROBE_INTERVAL_SECONDS).unwrap_or(10);
        if !alarm_period(interval) {
            r.invalid(keys::PROBE_INTERVAL_SECONDS, interval.to_string(), "10, 30 or a multiple of 60");
        }
        let rounds = r.optional::<u32>(keys::PROBE_ROUNDS).unwrap_or(6);
        if rounds == 0 || u64::from(rounds) * interval > 840 {
            r.invalid(keys::PROBE_ROUNDS, rounds.to_string(), "at least 1, and all rounds within 14 minutes");
        }
        let health_urls = r.optional::<HealthUrls>(keys::HEALTH_URLS).map(|u| u.0).unwrap_or_default();
        let queue_url = r.required::<String>(keys::ORDERS_QUEUE_URL);
        let db = DbSettings::read(r, keys::PROBE_DB_SECRET_ID);
        let database = d.and_then(|d| db.endpoint(r, &d.local_region));
        if let Some(d) = d {
            for region in health_urls.keys().filter(|region| !d.regions.contains(region)) {
                r.invalid(keys::HEALTH_URLS, region.as_str(), "not a region of this deployment");
            }
        }
        let (database, queue_url) = (database?, queue_url?);
        Some(move |deployment| ProbeConfig {
            deployment,
            interval: Duration::from_secs(interval),
            rounds,
            health_urls,
            database,
            db_secret_id: db.secret_id,
            tls: db.tls,
            queue_url,
        })
    }

    /// How long one probe may take: well inside the interval, so that a hanging probe never
    /// delays the next round.
    pub fn probe_timeout(interval: Duration) -> Duration {
        (interval * 3 / 4).min(MAX_PROBE_TIMEOUT)
    }
}

/// What starts an invocation: the EventBridge schedule, or a person or test asking for a run
/// with other rounds or interval.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeEvent {
    Scheduled { region: Region },
    Request(ProbeRequest),
}

/// An on-demand run. Absent fields take the configured values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProbeRequest {
    pub rounds: Option<u32>,
    pub interval_seconds: Option<u64>,
}

impl<'de> Deserialize<'de> for ProbeEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        if let Some(scheduled) = ScheduledEvent::recognise(&value) {
            return Ok(ProbeEvent::Scheduled { region: scheduled.map_err(D::Error::custom)?.region });
        }
        let request: ProbeRequest = serde_json::from_value(value).map_err(D::Error::custom)?;
        if request.rounds.is_some_and(|n| !(1..=60).contains(&n)) {
            return Err(D::Error::custom("rounds must be 1 to 60"));
        }
        if request.interval_seconds.is_some_and(|s| !(1..=60).contains(&s)) {
            return Err(D::Error::custom("intervalSeconds must be 1 to 60"));
        }
        Ok(ProbeEvent::Request(request))
    }
}

#[cfg(test)]
mod tests {
    use switchyard_core::ErrorName;
    use switchyard_lambda::parse_event;

    use super::*;

    fn env(extra: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> + Clone {
        let mut pairs = vec![
            ("SWITCHYARD_ENV", "t"),
            ("AWS_REGION", "us-east-1"),
            ("SWITCHYARD_PRIMARY_REGION", "us-east-1"),
            ("SWITCHYARD_STANDBY_REGION", "us-east-2"),
            ("SWITCHYARD_ORDERS_QUEUE_URL", "http://127.0.0.1:1/q"),
            ("SWITCHYARD_DB_ENDPOINTS", r#"{"us-east-1":{"host":"127.0.0.1","port":1,"user":"u","dbname":"d"}}"#),
        ];
        pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        pairs.extend(extra.iter().filter(|(_, v)| !v.is_empty()));
        let map: BTreeMap<String, String> = pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn defaults_probe_six_times_ten_seconds_apart() {
        let c = ProbeConfig::from_lookup(env(&[])).expect("valid");
        assert_eq!((c.rounds, c.interval), (6, Duration::from_secs(10)));
        assert_eq!(ProbeConfig::probe_timeout(c.interval), Duration::from_secs(5));
        assert_eq!(ProbeConfig::probe_timeout(Duration::from_secs(1)), Duration::from_millis(750));
        assert!(c.health_urls.is_empty());
    }

    #[test]
    fn names_every_problem() {
        let text = ProbeConfig::from_lookup(env(&[
            ("SWITCHYARD_PROBE_INTERVAL_SECONDS", "15"),
            ("SWITCHYARD_PROBE_ROUNDS", "100"),
            ("SWITCHYARD_HEALTH_URLS", r#"{"us-east-1":"http://api.example.com/health"}"#),
            ("SWITCHYARD_ORDERS_QUEUE_URL", ""),
        ]))
        .expect_err("invalid")
        .to_string();
        for needle in [
            "SWITCHYARD_PROBE_INTERVAL_SECONDS=\"15\"",
            "SWITCHYARD_PROBE_ROUNDS=\"100\"",
            "must be https://",
            "SWITCHYARD_ORDERS_QUEUE_URL is not set",
        ] {
            assert!(text.contains(needle), "{needle} not in {text}");
        }
        let text = ProbeConfig::from_lookup(env(&[("SWITCHYARD_HEALTH_URLS", r#"{"eu-west-1":"https://x/health"}"#)]))
            .expect_err("foreign region")
            .to_string();
        assert!(text.contains("not a region of this deployment"), "{text}");
    }

    #[test]
    fn events_are_schedules_or_requests() {
        let scheduled = serde_json::json!({
            "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-22T10:00:00Z", "region": "us-east-2",
            "resources": ["arn:aws:events:us-east-2:123456789012:rule/x"], "detail": {}
        });
        assert_eq!(
            parse_event::<ProbeEvent>(scheduled).expect("scheduled"),
            ProbeEvent::Scheduled { region: "us-east-2".parse().expect("region") }
        );
        let request = serde_json::json!({"rounds": 3, "intervalSeconds": 1});
        assert_eq!(
            parse_event::<ProbeEvent>(request).expect("request"),
            ProbeEvent::Request(ProbeRequest { rounds: Some(3), interval_seconds: Some(1) })
        );
        assert_eq!(
            parse_event::<ProbeEvent>(serde_json::json!({})).ok(),
            Some(ProbeEvent::Request(ProbeRequest::default()))
        );
        for bad in [
            serde_json::json!({"source": "switchyard-tests"}),
            serde_json::json!({"rounds": 0}),
            serde_json::json!({"intervalSeconds": 3600}),
            serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "region": "mars-1"}),
            serde_json::json!({"detail-type": "EC2 Instance State-change", "source": "aws.ec2", "region": "us-east-1"}),
            serde_json::json!([1]),
        ] {
            assert_eq!(
                parse_event::<ProbeEvent>(bad.clone()).map_err(|e| e.name),
                Err(ErrorName::InvalidInput),
                "{bad}"
            );
        }
    }

    #[test]
    fn sample_events_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/health-probe");
        assert_eq!(switchyard_lambda::check_sample_events::<ProbeEvent>(&dir), Ok(3));
    }
}
