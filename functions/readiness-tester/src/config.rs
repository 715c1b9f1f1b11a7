//! The readiness tester's configuration and the events it accepts.

use std::sync::Arc;

use serde::Deserialize;
use switchyard_core::{
    ConfigReader, DeploymentConfig, Region,
    config::{ConfigError, keys},
};
use switchyard_model::Names;
use switchyard_postgres::{DbSettings, PgEndpoint};

/// How the standby's database is reached and measured.
#[derive(Debug, Clone)]
pub enum Engine {
    /// PostgreSQL streaming replication (the sandbox; self-managed): both regions' endpoints.
    Postgres { endpoints: Vec<(Region, PgEndpoint)>, secret_id: Option<String>, tls: Option<Arc<rustls::ClientConfig>> },
    /// Aurora Global Database: membership and sync status from RDS, lag from CloudWatch.
    Aurora,
}

#[derive(Debug, Clone)]
pub struct ReadinessConfig {
    pub deployment: DeploymentConfig,
    pub names: Names,
    pub engine: Engine,
    pub hosted_zone_id: String,
    pub api_record: String,
    pub alerts_topic_arn: String,
    pub orders_per_hour: u32,
    pub orders_max_receives: u32,
}

impl ReadinessConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + Clone) -> Result<Self, ConfigError> {
        DeploymentConfig::read_with(lookup, Self::read_own)
    }

    /// The tester's own settings, as the config they make with the deployment's.
    fn read_own<L: Fn(&str) -> Option<String>>(
        r: &mut ConfigReader<L>,
        d: Option<&DeploymentConfig>,
    ) -> Option<impl FnOnce(DeploymentConfig) -> ReadinessConfig + use<L>> {
        let hosted_zone_id = r.required::<String>(keys::HOSTED_ZONE_ID);
        let api_record = r.required::<String>(keys::API_RECORD);
        let alerts_topic_arn = r.required::<String>(keys::ALERTS_TOPIC_ARN);
        let orders_per_hour = r.optional::<u32>(keys::ORDERS_PER_HOUR).unwrap_or(10_000);
        let orders_max_receives = r.optional::<u32>(keys::ORDERS_MAX_RECEIVES).unwrap_or(5);
        let engine = match r.optional::<String>(keys::DB_ENGINE).as_deref().unwrap_or("postgres") {
            "aurora" => Some(Engine::Aurora),
            "postgres" => {
                let db = DbSettings::read(r, keys::READINESS_DB_SECRET_ID);
                let endpoints = d.map(|d| {
                    d.regions.iter().filter_map(|region| Some((region.clone(), db.endpoint(r, region)?))).collect()
                });
                endpoints.map(|endpoints| Engine::Postgres { endpoints, secret_id: db.secret_id, tls: db.tls })
            }
            other => {
                r.invalid(keys::DB_ENGINE, other, "expected postgres or aurora");
                None
            }
        };
        let (engine, hosted_zone_id, api_record, alerts_topic_arn) =
            (engine?, hosted_zone_id?, api_record?, alerts_topic_arn?);
        Some(move |deployment: DeploymentConfig| ReadinessConfig {
            names: Names::new(&deployment.environment),
            deployment,
            engine,
            hosted_zone_id,
            api_record,
            alerts_topic_arn,
            orders_per_hour,
            orders_max_receives,
        })
    }
}

/// What starts a run: the hourly schedule, or an on-demand request (optionally naming the
/// region that would take over; by default the one the writer claim does not name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadinessEvent {
    Scheduled,
    Request { candidate: Option<Region> },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    candidate: Option<Region>,
}

impl<'de> Deserialize<'de> for ReadinessEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        if let Some(scheduled) = switchyard_lambda::ScheduledEvent::recognise(&value) {
            return scheduled.map(|_| ReadinessEvent::Scheduled).map_err(D::Error::custom);
        }
        let r: Request = serde_json::from_value(value).map_err(D::Error::custom)?;
        Ok(ReadinessEvent::Request { candidate: r.candidate })
    }
}

#[cfg(test)]
mod tests {
    use switchyard_core::ErrorName;
    use switchyard_lambda::parse_event;

    use super::*;

    #[test]
    fn events() {
        let ok = [
            (serde_json::json!({}), ReadinessEvent::Request { candidate: None }),
            (
                serde_json::json!({"candidate": "us-east-2"}),
                ReadinessEvent::Request { candidate: Some("us-east-2".parse().expect("region")) },
            ),
            (
                serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "region": "us-east-1",
                                   "id": "1", "version": "0", "time": "2026-11-22T10:00:00Z", "resources": [], "detail": {}}),
                ReadinessEvent::Scheduled,
            ),
        ];
        for (event, expected) in ok {
            assert_eq!(parse_event::<ReadinessEvent>(event).expect("valid"), expected);
        }
        for bad in [
            serde_json::json!({"source": "switchyard-tests"}),
            serde_json::json!({"candidate": "mars-1"}),
            serde_json::json!({"detail-type": "Object Created", "source": "aws.s3"}),
        ] {
            assert_eq!(
                parse_event::<ReadinessEvent>(bad.clone()).map_err(|e| e.name),
                Err(ErrorName::InvalidInput),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_every_problem() {
        let err = ReadinessConfig::from_lookup(|k| match k {
            "SWITCHYARD_ENV" => Some("t".into()),
            "AWS_REGION" | "SWITCHYARD_PRIMARY_REGION" => Some("us-east-1".into()),
            "SWITCHYARD_STANDBY_REGION" => Some("us-east-2".into()),
            "SWITCHYARD_DB_ENDPOINTS" => {
                Some(r#"{"us-east-1":{"host":"127.0.0.1","port":1,"user":"u","dbname":"d"}}"#.into())
            }
            _ => None,
        })
        .expect_err("incomplete")
        .to_string();
        for needle in [
            "SWITCHYARD_HOSTED_ZONE_ID",
            "SWITCHYARD_API_RECORD",
            "SWITCHYARD_ALERTS_TOPIC_ARN",
            "no endpoint for us-east-2",
        ] {
            assert!(err.contains(needle), "{needle} not in {err}");
        }
    }

    #[test]
    fn sample_events_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/readiness-tester");
        assert_eq!(switchyard_lambda::check_sample_events::<ReadinessEvent>(&dir), Ok(4));
    }
}
