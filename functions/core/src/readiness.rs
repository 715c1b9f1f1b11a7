//! The readiness report: named rules, each with a verdict and the evidence behind it, and the
//! one bit they add up to (`FailoverReady`). Its JSON is a stable, versioned schema
//! ([`SCHEMA`], documented in ARCHITECTURE.md): dashboards and runbooks read it.

use serde::{Deserialize, Serialize};

use crate::{ErrorName, Region, WriterClaim};

/// Bumped on any change that is not a pure addition of fields.
pub const SCHEMA: &str = "switchyard.readiness/2";

/// The rules, by their stable names. Order is the report's order.
pub mod rules {
    /// The global database has both regional clusters as members and exactly one writer.
    pub const GLOBAL_DATABASE: &str = "global-database";
    /// The standby's database answers, is a replica, and streams from the writer.
    pub const STANDBY_REPLICA: &str = "standby-replica";
    /// The standby's replication lag is within the RPO budget.
    pub const REPLICATION_LAG: &str = "replication-lag";
    /// The claim store answers one claim through both regions' replicas.
    pub const WRITER_CLAIM: &str = "writer-claim";
    /// Each region has its orders queue, its DLQ, a redrive policy between them, and its
    /// catch-up queue; all encrypted.
    pub const QUEUES: &str = "queues";
    /// The candidate is eligible in the acknowledgement: every acknowledged order is durable
    /// there, so a failover to it loses none (`core::ingress`).
    pub const ACKNOWLEDGEMENT: &str = "acknowledgement";
    /// The candidate is armed as the takeover target under the current epoch: without it an
    /// alarm does not fail over (`core::arming`).
    pub const ARMING: &str = "arming";
    /// The shared SSM parameters hold the same values in both regions.
    pub const SSM_CONFIG: &str = "ssm-config";
    /// The API record has a failover record per region, each with an existing health check.
    pub const DNS: &str = "dns";
    /// The standby's failover alarm exists with its actions enabled.
    pub const FAILOVER_ALARM: &str = "failover-alarm";
    /// The standby's alarm → failover EventBridge rule exists and is enabled.
    pub const FAILOVER_TRIGGER: &str = "failover-trigger";
    /// The standby's failover state machine exists and runs no execution.
    pub const STATE_MACHINE: &str = "state-machine";
    /// Every function exists in both regions with the same code hash and reserved concurrency.
    pub const FUNCTION_PARITY: &str = "function-parity";

    pub const ALL: &[&str] = &[
        GLOBAL_DATABASE,
        STANDBY_REPLICA,
        REPLICATION_LAG,
        WRITER_CLAIM,
        QUEUES,
        ACKNOWLEDGEMENT,
        ARMING,
        SSM_CONFIG,
        DNS,
        FAILOVER_ALARM,
        FAILOVER_TRIGGER,
        STATE_MACHINE,
        FUNCTION_PARITY,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Checked, and it holds.
    Pass,
    /// Checked, and it does not hold: the evidence says why.
    Fail,
    /// Could not be checked (an API or database error, named in `error`). Not ready: readiness
    /// is proven, never assumed.
    Error,
    /// Not checked because a rule it depends on did not pass (the lag of a replica that does
    /// not answer); the failure is reported once, where it is.
    Skipped,
}

/// One rule's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleResult {
    pub rule: String,
    pub verdict: Verdict,
    /// One line a person reads first.
    pub summary: String,
    /// What was observed, as structured data (ids, values, both regions' answers).
    pub evidence: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: f64,
}

impl RuleResult {
    pub fn new(rule: &str, verdict: Verdict, summary: impl Into<String>, evidence: serde_json::Value) -> Self {
        RuleResult { rule: rule.to_owned(), verdict, summary: summary.into(), evidence, error: None, duration_ms: 0.0 }
    }

    pub fn pass(rule: &str, summary: impl Into<String>, evidence: serde_json::Value) -> Self {
        Self::new(rule, Verdict::Pass, summary, evidence)
    }

    pub fn fail(rule: &str, summary: impl Into<String>, evidence: serde_json::Value) -> Self {
        Self::new(rule, Verdict::Fail, summary, evidence)
    }

    /// `pass` if `holds`, else `fail`, with one summary for each.
    pub fn holds(rule: &str, holds: bool, pass: String, fail: String, evidence: serde_json::Value) -> Self {
        if holds { Self::pass(rule, pass, evidence) } else { Self::fail(rule, fail, evidence) }
    }

    pub fn error(rule: &str, name: ErrorName, message: impl Into<String>) -> Self {
        let message = message.into();
        RuleResult {
            rule: rule.to_owned(),
            verdict: Verdict::Error,
            summary: format!("could not check: {message}"),
            evidence: serde_json::Value::Null,
            error: Some(name.as_str().to_owned()),
            duration_ms: 0.0,
        }
    }

    pub fn skipped(rule: &str, because: &str) -> Self {
        Self::new(rule, Verdict::Skipped, format!("not checked: {because} did not pass"), serde_json::Value::Null)
    }
}

/// The whole report, as the function returns it and logs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema: String,
    pub environment: String,
    /// Where the tester ran.
    pub checked_from: Region,
    /// The writer claim the rules were judged against (the local control table's), if read.
    pub writer: Option<WriterClaim>,
    /// The region that would take over.
    pub candidate: Option<Region>,
    /// Every rule passed.
    pub ready: bool,
    /// Names of the rules that did not pass, in report order.
    pub not_passing: Vec<String>,
    /// Wall time of the whole run; rules run concurrently, so less than the sum of theirs.
    pub duration_ms: f64,
    pub rules: Vec<RuleResult>,
    /// `FailoverReady` before this run (the newest datapoint), if there was one.
    pub previous_ready: Option<bool>,
    /// Readiness differs from `previous_ready` (or there was none): an SNS message was due.
    pub changed: bool,
    /// What happened to the outputs: the metric and the notification.
    pub published: Published,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub metric: bool,
    pub notified: bool,
    /// Why an output could not be written (the report itself is still complete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Report {
    /// Assembles a report from rule results (sorted into [`rules::ALL`] order).
    pub fn new(
        environment: &str,
        checked_from: Region,
        writer: Option<WriterClaim>,
        candidate: Option<Region>,
        mut results: Vec<RuleResult>,
        duration_ms: f64,
    ) -> Self {
        let position = |r: &RuleResult| rules::ALL.iter().position(|n| *n == r.rule).unwrap_or(usize::MAX);
        results.sort_by_key(position);
        let not_passing: Vec<String> =
            results.iter().filter(|r| r.verdict != Verdict::Pass).map(|r| r.rule.clone()).collect();
        Report {
            schema: SCHEMA.to_owned(),
            environment: environment.to_owned(),
            checked_from,
            writer,
            candidate,
            ready: not_passing.is_empty() && !results.is_empty(),
            not_passing,
            duration_ms,
            rules: results,
            previous_ready: None,
            changed: false,
            published: Published::default(),
        }
    }

    /// Records the previous verdict; a notification is due when readiness changed, or when
    /// there is no previous verdict and the standby is not ready (a first run that is green
    /// is not news; a first run that is red is).
    pub fn compare(&mut self, previous_ready: Option<bool>) {
        self.previous_ready = previous_ready;
        self.changed = match previous_ready {
            Some(before) => before != self.ready,
            None => !self.ready,
        };
    }

    /// The SNS subject and message for a change.
    pub fn notification(&self) -> (String, String) {
        let state = if self.ready { "READY" } else { "NOT READY" };
        let subject = format!("switchyard {}: {} {state} to take over", self.environment, self.candidate_name());
        let mut message = format!("{subject}\n\n");
        for r in &self.rules {
            message += &format!("{:>7}  {}: {}\n", format!("{:?}", r.verdict).to_uppercase(), r.rule, r.summary);
        }
        (subject, message)
    }

    fn candidate_name(&self) -> String {
        self.candidate.as_ref().map_or_else(|| "standby".to_owned(), |c| c.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(verdicts: &[(&str, Verdict)]) -> Report {
        let results = verdicts.iter().map(|(r, v)| RuleResult::new(r, *v, "x", serde_json::Value::Null)).collect();
        Report::new("prod", "us-east-2".parse().expect("region"), None, None, results, 1.0)
    }

    #[test]
    fn ready_only_when_every_rule_passes() {
        assert!(report(&[(rules::DNS, Verdict::Pass), (rules::QUEUES, Verdict::Pass)]).ready);
        for bad in [Verdict::Fail, Verdict::Error, Verdict::Skipped] {
            let r = report(&[(rules::DNS, Verdict::Pass), (rules::QUEUES, bad)]);
            assert!(!r.ready, "{bad:?}");
            assert_eq!(r.not_passing, [rules::QUEUES]);
        }
        assert!(!report(&[]).ready, "no rule proves nothing");
    }

    #[test]
    fn rules_come_out_in_report_order() {
        let r = report(&[(rules::DNS, Verdict::Pass), (rules::GLOBAL_DATABASE, Verdict::Pass)]);
        let names: Vec<_> = r.rules.iter().map(|r| r.rule.as_str()).collect();
        assert_eq!(names, [rules::GLOBAL_DATABASE, rules::DNS]);
    }

    #[test]
    fn notifies_on_change_and_on_a_red_first_run() {
        let green = || report(&[(rules::DNS, Verdict::Pass)]);
        let red = || report(&[(rules::DNS, Verdict::Fail)]);
        let table = [
            (green(), None, false),
            (red(), None, true),
            (green(), Some(true), false),
            (green(), Some(false), true),
            (red(), Some(true), true),
            (red(), Some(false), false),
        ];
        for (mut r, previous, changed) in table {
            r.compare(previous);
            assert_eq!(r.changed, changed, "ready {} after {previous:?}", r.ready);
        }
        let (subject, message) = red().notification();
        assert!(subject.contains("NOT READY"), "{subject}");
        assert!(message.contains("FAIL  dns: x"), "{message}");
    }

    #[test]
    fn every_rule_name_is_distinct_kebab_case() {
        let mut seen = std::collections::BTreeSet::new();
        for r in rules::ALL {
            assert!(r.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{r}");
            assert!(seen.insert(r), "{r} twice");
        }
    }
}
