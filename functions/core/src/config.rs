//! Configuration, parsed once from a lookup function (the process environment in a Lambda,
//! a map in tests) and reporting **every** problem at once, so a misconfigured stack is fixed
//! in one deploy rather than one variable at a time.
//!
//! The variable names are constants in [`keys`]: `infra` emits exactly these names into the
//! functions' environments, and a contract test holds the two together.

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{ErrorName, Region, RegionPair, RpoBudget, SwitchyardError};

/// One environment variable the functions read: its name, who reads it, what it means. The
/// configuration reference (`docs/configuration.md`) is generated from [`keys::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub read_by: &'static str,
    pub meaning: &'static str,
}

macro_rules! keys {
    ($( $(#[$doc:meta])* $id:ident = $name:literal, read by $read_by:literal: $meaning:literal; )+) => {
        /// Environment variable names, each with who reads it and what it means.
        pub mod keys {
            $( $(#[$doc])* #[doc = $meaning] pub const $id: &str = $name; )+

            /// Every variable, in this order in the reference.
            pub const ALL: &[super::Key] = &[ $( super::Key { name: $name, read_by: $read_by, meaning: $meaning } ),+ ];
        }
    };
}

keys! {
    LOCAL_REGION = "AWS_REGION", read by "all":
        "Set by Lambda: the region the function runs in; one of the two below.";
    ENVIRONMENT = "SWITCHYARD_ENV", read by "all":
        "The deployment's name (`prod`, `sandbox`: lowercase letters, digits, `-`); every resource name derives from it.";
    PRIMARY_REGION = "SWITCHYARD_PRIMARY_REGION", read by "all":
        "The region that writes when the deployment starts (the roles swap after a failover; this pair does not).";
    STANDBY_REGION = "SWITCHYARD_STANDBY_REGION", read by "all":
        "The other region of the pair.";
    RPO_BUDGET_SECONDS = "SWITCHYARD_RPO_BUDGET_SECONDS", read by "all":
        "Whole seconds of replication lag an unplanned failover may lose without an override; default 60.";
    AWS_ENDPOINTS = "SWITCHYARD_AWS_ENDPOINTS", read by "all":
        "Sandbox only: JSON map region → the loopback URL through which this region reaches that region's AWS APIs (the sandbox's cuttable links). Absent in AWS.";
    FUNCTION_TIMEOUTS = "SWITCHYARD_FUNCTION_TIMEOUTS", read by "all":
        "Sandbox only: JSON map function → its timeout in whole seconds, standing in for the invocation deadline that Lambda gives and `cargo lambda watch` does not (it sends `600000`). Absent in AWS.";
    CONTROL_TABLE = "SWITCHYARD_CONTROL_TABLE", read by "rds-promoter, dns-switcher, order-consumer":
        "The region's control table: the writer claim and the ledger (lock, last handover, timelines).";
    ORDERS_PER_HOUR = "SWITCHYARD_ORDERS_PER_HOUR", read by "rds-promoter, readiness-tester":
        "Orders per hour the platform expects, to turn lag into orders in the lag; default 10000.";
    DB_ENDPOINTS = "SWITCHYARD_DB_ENDPOINTS", read by "rds-promoter (postgres), order-consumer, health-probe, readiness-tester":
        "JSON map region → `{host, port, user, dbname}` of each region's database.";
    DB_ENGINE = "SWITCHYARD_DB_ENGINE", read by "rds-promoter, readiness-tester":
        "`postgres` (default; the sandbox, self-managed PostgreSQL) or `aurora`.";
    GLOBAL_CLUSTER = "SWITCHYARD_GLOBAL_CLUSTER", read by "rds-promoter (aurora)":
        "The Aurora global cluster's identifier.";
    DB_CLUSTER_ARNS = "SWITCHYARD_DB_CLUSTER_ARNS", read by "rds-promoter (aurora)":
        "JSON map region → regional Aurora cluster ARN.";
    HOSTED_ZONE_ID = "SWITCHYARD_HOSTED_ZONE_ID", read by "dns-switcher, readiness-tester":
        "The Route 53 hosted zone of the API record (an id AWS assigns: a stack output).";
    API_RECORD = "SWITCHYARD_API_RECORD", read by "dns-switcher, readiness-tester":
        "The name clients resolve, e.g. `api.trading.example.com`.";
    DNS_MODE = "SWITCHYARD_DNS_MODE", read by "dns-switcher":
        "How traffic moves: `health-check` (default: nothing to write, the records' health checks follow each region's claim-aware `/writer`) or `records` (also rewrite the failover roles through the Route 53 control plane).";
    DB_SECRET_ID = "SWITCHYARD_DB_SECRET_ID", read by "order-consumer":
        "The Secrets Manager secret (id or ARN) with its database `username` and `password`; required unless the database is on loopback.";
    DB_CA_BUNDLE = "SWITCHYARD_DB_CA_BUNDLE", read by "order-consumer, health-probe, readiness-tester":
        "Path of the PEM CA bundle that signs the database's certificate (the RDS bundle in AWS): TLS is then required; required unless the database is on loopback.";
    ORDERS_QUEUE_URL = "SWITCHYARD_ORDERS_QUEUE_URL", read by "order-consumer, health-probe":
        "The region's orders queue, where valid orders not applied yet are re-enqueued.";
    ORDERS_MAX_RECEIVES = "SWITCHYARD_ORDERS_MAX_RECEIVES", read by "order-consumer, readiness-tester":
        "The orders queue's redrive `maxReceiveCount`; a valid order is re-enqueued before its last receive, so only poison reaches the DLQ. Default 5.";
    PROBE_INTERVAL_SECONDS = "SWITCHYARD_PROBE_INTERVAL_SECONDS", read by "health-probe":
        "Seconds between probe rounds: 10, 30 or a multiple of 60 (the periods a high-resolution alarm evaluates); default 10.";
    PROBE_ROUNDS = "SWITCHYARD_PROBE_ROUNDS", read by "health-probe":
        "Rounds per invocation (the schedule invokes once a minute); default 6.";
    HEALTH_URLS = "SWITCHYARD_HEALTH_URLS", read by "health-probe":
        "JSON map region → the platform's regional `/health` URL (`https://`, or `http://` to loopback); optional.";
    PROBE_DB_SECRET_ID = "SWITCHYARD_PROBE_DB_SECRET_ID", read by "health-probe":
        "Its own database secret (its role writes the heartbeat and has `pg_monitor`).";
    READINESS_DB_SECRET_ID = "SWITCHYARD_READINESS_DB_SECRET_ID", read by "readiness-tester":
        "Its own database secret (`pg_monitor` only).";
    ALERTS_TOPIC_ARN = "SWITCHYARD_ALERTS_TOPIC_ARN", read by "readiness-tester, rds-promoter":
        "The SNS topic told when readiness changes, and of an execution that timed out or was aborted.";
    FAILOVER_COOLDOWN_SECONDS = "SWITCHYARD_FAILOVER_COOLDOWN_SECONDS", read by "rds-promoter":
        "Whole seconds without automatic (unplanned) failover after a handover; default 3600. Planned switchovers are not held back.";
}

pub const DEFAULT_RPO_BUDGET_SECONDS: u64 = 60;

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigProblem {
    Missing { key: &'static str },
    Invalid { key: &'static str, value: String, reason: String },
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigProblem::Missing { key } => write!(f, "{key} is not set"),
            ConfigProblem::Invalid { key, value, reason } => {
                write!(f, "{key}={value:?} is invalid: {reason}")
            }
        }
    }
}

/// All problems found while reading a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} configuration problem(s): ", self.problems.len())?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for SwitchyardError {
    fn from(e: ConfigError) -> Self {
        SwitchyardError::new(ErrorName::MissingConfig, e.to_string())
    }
}

/// Reads typed values through a lookup function, collecting problems instead of stopping at
/// the first. Call [`ConfigReader::finish`] after the last read.
pub struct ConfigReader<F> {
    lookup: F,
    problems: Vec<ConfigProblem>,
}

impl<F> fmt::Debug for ConfigReader<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigReader").field("problems", &self.problems).finish_non_exhaustive()
    }
}

impl<F: Fn(&str) -> Option<String>> ConfigReader<F> {
    pub fn new(lookup: F) -> Self {
        ConfigReader { lookup, problems: Vec::new() }
    }

    fn raw(&self, key: &str) -> Option<String> {
        (self.lookup)(key).filter(|v| !v.trim().is_empty())
    }

    fn parse<T>(&mut self, key: &'static str, value: String) -> Option<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match value.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(ConfigProblem::Invalid { key, value, reason: e.to_string() });
                None
            }
        }
    }

    /// A value that must be present and parse. `None` means a problem was recorded.
    pub fn required<T>(&mut self, key: &'static str) -> Option<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.raw(key) {
            Some(v) => self.parse(key, v),
            None => {
                self.problems.push(ConfigProblem::Missing { key });
                None
            }
        }
    }

    /// A value that may be absent (`None`); if present it must parse.
    pub fn optional<T>(&mut self, key: &'static str) -> Option<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let v = self.raw(key)?;
        self.parse(key, v)
    }

    /// Records a problem found by a check across several values.
    pub fn invalid(&mut self, key: &'static str, value: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(ConfigProblem::Invalid { key, value: value.into(), reason: reason.into() });
    }

    /// Like [`finish`](Self::finish), reporting an earlier reader's problems first (a
    /// function's own settings read after the shared [`DeploymentConfig`]).
    pub fn finish_after(mut self, earlier: Option<&ConfigError>) -> Result<(), ConfigError> {
        if let Some(e) = earlier {
            self.problems.splice(0..0, e.problems.iter().cloned());
        }
        self.finish()
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() { Ok(()) } else { Err(ConfigError { problems: self.problems }) }
    }
}

/// A deployment's name suffix, used in every resource name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvironmentName(String);

impl EnvironmentName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EnvironmentName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok_chars = s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if (1..=20).contains(&s.len()) && ok_chars && !s.starts_with('-') && !s.ends_with('-') {
            Ok(EnvironmentName(s.to_owned()))
        } else {
            Err("expected 1 to 20 lowercase letters, digits or inner '-'".to_owned())
        }
    }
}

impl TryFrom<String> for EnvironmentName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<EnvironmentName> for String {
    fn from(e: EnvironmentName) -> String {
        e.0
    }
}

impl fmt::Display for EnvironmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The sandbox's AWS endpoints as seen from one region: region → loopback URL. Every path
/// goes through the sandbox's links, so a partition can cut it; loopback only, so the
/// sandbox's dummy credentials never reach a real endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct AwsEndpoints(pub std::collections::BTreeMap<Region, String>);

impl AwsEndpoints {
    pub fn new(endpoints: std::collections::BTreeMap<Region, String>) -> Result<Self, String> {
        for (region, url) in &endpoints {
            let host = url.strip_prefix("http://").and_then(|rest| rest.split([':', '/']).next()).unwrap_or("");
            if host != "127.0.0.1" && host != "localhost" {
                return Err(format!("{region}: {url:?} must be http://127.0.0.1:PORT or http://localhost:PORT"));
            }
        }
        Ok(AwsEndpoints(endpoints))
    }
}

impl FromStr for AwsEndpoints {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let endpoints: std::collections::BTreeMap<Region, String> =
            serde_json::from_str(s).map_err(|e| format!("expected a JSON map of region to URL: {e}"))?;
        AwsEndpoints::new(endpoints)
    }
}

/// What every switchyard function knows about the deployment it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentConfig {
    pub environment: EnvironmentName,
    pub regions: RegionPair,
    /// The region this process runs in; always one of `regions`.
    pub local_region: Region,
    pub rpo_budget: RpoBudget,
    /// `Some` only in the sandbox: where this region reaches each region's AWS APIs.
    pub aws_endpoints: Option<AwsEndpoints>,
}

impl DeploymentConfig {
    /// A function's whole configuration: the deployment's part, then the function's own read
    /// by `own` (given the deployment when that part is valid), every problem of both reported
    /// at once. `own` reads every value before it combines them (`let (a, b) = (a?, b?)`), so
    /// a missing first value does not hide a missing second, and answers how its values make
    /// the config with the deployment's.
    pub fn read_with<L, T, M>(
        lookup: L,
        own: impl FnOnce(&mut ConfigReader<L>, Option<&DeploymentConfig>) -> Option<M>,
    ) -> Result<T, ConfigError>
    where
        L: Fn(&str) -> Option<String> + Clone,
        M: FnOnce(DeploymentConfig) -> T,
    {
        let deployment = DeploymentConfig::from_lookup(lookup.clone());
        let mut r = ConfigReader::new(lookup);
        let own = own(&mut r, deployment.as_ref().ok());
        r.finish_after(deployment.as_ref().err())?;
        match (deployment, own) {
            (Ok(deployment), Some(make)) => Ok(make(deployment)),
            // No problem recorded, yet a value is missing: `own` returned early.
            _ => Err(ConfigError {
                problems: vec![ConfigProblem::Invalid {
                    key: keys::ENVIRONMENT,
                    value: String::new(),
                    reason: "the configuration could not be read (a reader stopped without saying why)".into(),
                }],
            }),
        }
    }

    /// Reads the deployment configuration, reporting all problems at once.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = ConfigReader::new(lookup);
        let environment = r.required::<EnvironmentName>(keys::ENVIRONMENT);
        let local_region = r.required::<Region>(keys::LOCAL_REGION);
        let primary = r.required::<Region>(keys::PRIMARY_REGION);
        let standby = r.required::<Region>(keys::STANDBY_REGION);
        let rpo_seconds = r.optional::<u64>(keys::RPO_BUDGET_SECONDS).unwrap_or(DEFAULT_RPO_BUDGET_SECONDS);
        let aws_endpoints = r.optional::<AwsEndpoints>(keys::AWS_ENDPOINTS);

        let mut regions = None;
        if let (Some(p), Some(s)) = (primary, standby) {
            match RegionPair::new(p, s) {
                Ok(pair) => regions = Some(pair),
                Err(e) => r.invalid(keys::STANDBY_REGION, "", e.message),
            }
        }
        if let (Some(pair), Some(local)) = (&regions, &local_region)
            && let Err(e) = pair.check(local)
        {
            r.invalid(keys::LOCAL_REGION, local.as_str(), e.message);
        }
        if rpo_seconds == 0 {
            r.invalid(keys::RPO_BUDGET_SECONDS, "0", "the RPO budget must be at least one second");
        }
        r.finish()?;
        match (environment, regions, local_region) {
            (Some(environment), Some(regions), Some(local_region)) => Ok(DeploymentConfig {
                environment,
                regions,
                local_region,
                rpo_budget: RpoBudget(Duration::from_secs(rpo_seconds)),
                aws_endpoints,
            }),
            // finish() returned Ok, so every required value was recorded.
            _ => Err(ConfigError { problems: Vec::new() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const GOOD: &[(&str, &str)] = &[
        (keys::ENVIRONMENT, "prod"),
        (keys::LOCAL_REGION, "us-east-2"),
        (keys::PRIMARY_REGION, "us-east-1"),
        (keys::STANDBY_REGION, "us-east-2"),
    ];

    fn with(overrides: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = GOOD.iter().copied().filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k)).collect();
        v.extend(overrides.iter().copied().filter(|(_, val)| !val.is_empty()));
        v
    }

    #[test]
    fn reads_a_complete_config_with_defaults() {
        let c = DeploymentConfig::from_lookup(lookup(GOOD)).expect("valid");
        assert_eq!(c.environment.as_str(), "prod");
        assert_eq!(c.local_region.as_str(), "us-east-2");
        assert_eq!(c.regions.primary.as_str(), "us-east-1");
        assert_eq!(c.rpo_budget, RpoBudget(Duration::from_secs(60)));
        assert_eq!(c.aws_endpoints, None);
    }

    #[test]
    fn reports_every_missing_variable_at_once() {
        let e = DeploymentConfig::from_lookup(lookup(&[])).expect_err("empty");
        let missing: Vec<_> = e
            .problems
            .iter()
            .map(|p| match p {
                ConfigProblem::Missing { key } => *key,
                other => panic!("unexpected {other}"),
            })
            .collect();
        assert_eq!(missing, [keys::ENVIRONMENT, keys::LOCAL_REGION, keys::PRIMARY_REGION, keys::STANDBY_REGION]);
        assert_eq!(SwitchyardError::from(e).name, ErrorName::MissingConfig);
    }

    #[test]
    fn rejects_bad_values_by_key() {
        // (overrides, the key that must be reported)
        let table: &[(&[(&'static str, &'static str)], &str)] = &[
            (&[(keys::LOCAL_REGION, "eu-west-1")], keys::LOCAL_REGION),
            (&[(keys::LOCAL_REGION, "us-east-9")], keys::LOCAL_REGION),
            (&[(keys::STANDBY_REGION, "us-east-1")], keys::STANDBY_REGION),
            (&[(keys::ENVIRONMENT, "Prod")], keys::ENVIRONMENT),
            (&[(keys::ENVIRONMENT, "-x")], keys::ENVIRONMENT),
            (&[(keys::RPO_BUDGET_SECONDS, "0")], keys::RPO_BUDGET_SECONDS),
            (&[(keys::RPO_BUDGET_SECONDS, "a minute")], keys::RPO_BUDGET_SECONDS),
            (&[(keys::PRIMARY_REGION, "   ")], keys::PRIMARY_REGION),
        ];
        for (overrides, key) in table {
            let e = DeploymentConfig::from_lookup(lookup(&with(overrides))).expect_err("invalid");
            let keys: Vec<_> = e
                .problems
                .iter()
                .map(|p| match p {
                    ConfigProblem::Missing { key } | ConfigProblem::Invalid { key, .. } => *key,
                })
                .collect();
            assert_eq!(keys, [*key], "{overrides:?}: {e}");
        }
    }

    #[test]
    fn error_message_names_each_problem() {
        let e = DeploymentConfig::from_lookup(lookup(&[(keys::ENVIRONMENT, "prod"), (keys::LOCAL_REGION, "mars-1")]))
            .expect_err("invalid");
        let text = e.to_string();
        for needle in ["3 configuration problem(s)", "AWS_REGION=\"mars-1\"", "SWITCHYARD_PRIMARY_REGION is not set"] {
            assert!(text.contains(needle), "{text}");
        }
    }
}

/// A database user's name and password, as a secret store hands them out (the AWS adapter
/// reads them, the PostgreSQL adapter logs in with them). The password never appears in
/// `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct DbCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for DbCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbCredentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}
