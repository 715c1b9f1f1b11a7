//! Health as the probe sees it: one outcome per probe, a verdict per region and round, the
//! datapoints that carry it to CloudWatch, and the alarm rule that turns those datapoints
//! into a failover trigger.
//!
//! **A failed probe is a datapoint.** Nothing here fails: an unreachable database is an
//! `Unhealthy` outcome with its reason, published like any other value.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{ErrorName, Region, ports::Datapoint};

/// CloudWatch namespace of every switchyard metric.
pub const NAMESPACE: &str = "switchyard";

/// Ordered from best to worst, so the verdict of several outcomes is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    /// Serving, but something needs attention (lag above budget, a backlog, poison in the DLQ).
    /// Never a reason to fail over.
    Degraded,
    /// Not serving: the region should not be trusted with traffic or writes.
    Unhealthy,
}

/// What a probe looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The platform's regional HTTP(S) `/health` endpoint.
    Endpoint,
    /// The region's database: a write on the writer, lag on a replica.
    Database,
    /// The region's orders queue and its DLQ.
    Queue,
}

impl Target {
    pub const fn as_str(self) -> &'static str {
        match self {
            Target::Endpoint => "endpoint",
            Target::Database => "database",
            Target::Queue => "queue",
        }
    }
}

/// The result of one probe of one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeOutcome {
    pub target: Target,
    /// The region whose target was probed (the probe runs in one region, looks at both).
    pub region: Region,
    pub health: Health,
    /// Wall time of the probe, whatever its outcome (a timeout reports the timeout).
    pub latency_ms: f64,
    /// Why the outcome is not healthy; `None` when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The error's stable name when the probe failed on an error.
    #[serde(skip_serializing_if = "Option::is_none", with = "error_name_opt")]
    pub error: Option<ErrorName>,
    /// Figures the probe read (`lagSeconds`, `queueDepth`, …), each also published as a metric.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub measurements: BTreeMap<String, f64>,
}

impl ProbeOutcome {
    pub fn healthy(target: Target, region: Region, latency_ms: f64) -> Self {
        ProbeOutcome {
            target,
            region,
            health: Health::Healthy,
            latency_ms,
            reason: None,
            error: None,
            measurements: BTreeMap::new(),
        }
    }

    /// Marks the outcome no better than `health`, adding `reason` (several reasons accumulate).
    pub fn worsen(&mut self, health: Health, reason: impl Into<String>) {
        self.health = self.health.max(health);
        let reason = reason.into();
        self.reason = Some(match self.reason.take() {
            Some(earlier) => format!("{earlier}; {reason}"),
            None => reason,
        });
    }

    pub fn measure(&mut self, name: &str, value: f64) {
        self.measurements.insert(name.to_owned(), value);
    }
}

/// The verdict on one region in one round: the worst of its outcomes, with their reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionVerdict {
    pub health: Health,
    /// `"database: postgres unreachable: …"`, one per outcome that is not healthy.
    pub reasons: Vec<String>,
}

/// Judges each probed region from its outcomes.
pub fn judge(outcomes: &[ProbeOutcome]) -> BTreeMap<Region, RegionVerdict> {
    let mut verdicts: BTreeMap<Region, RegionVerdict> = BTreeMap::new();
    for o in outcomes {
        let v = verdicts
            .entry(o.region.clone())
            .or_insert_with(|| RegionVerdict { health: Health::Healthy, reasons: Vec::new() });
        v.health = v.health.max(o.health);
        if let Some(reason) = &o.reason {
            v.reasons.push(format!("{}: {reason}", o.target.as_str()));
        }
    }
    verdicts
}

/// Metric names. `Healthy` is what the failover alarm watches; the rest explain it.
pub mod metric {
    /// Per region: 1 unless the region is unhealthy (degraded still serves).
    pub const HEALTHY: &str = "Healthy";
    /// Per region: 1 while degraded.
    pub const DEGRADED: &str = "Degraded";
    /// Per region and target: 1 if the probe found the target healthy or degraded.
    pub const PROBE_SUCCESS: &str = "ProbeSuccess";
    pub const PROBE_LATENCY: &str = "ProbeLatency";
    /// The readiness tester's verdict: 1 when every rule passes.
    pub const FAILOVER_READY: &str = "FailoverReady";
    /// Per replica region (target `database`): how far the writer's clock runs ahead of the
    /// replica's, at least, as the replica's WAL receiver sees it while streaming (the probe's
    /// measure `writerClockAheadSeconds`). The promoter adds it to a lag bound taken from
    /// the replica alone ([`crate::replication::skew_corrected`]).
    pub const WRITER_CLOCK_AHEAD: &str = "WriterClockAheadSeconds";
}

fn dims(region: &Region, target: Option<Target>) -> Vec<(String, String)> {
    let mut d = vec![("Region".to_owned(), region.to_string())];
    if let Some(t) = target {
        d.push(("Target".to_owned(), t.as_str().to_owned()));
    }
    d
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The datapoints of one round of the probe running in `local`: per probe its success, latency
/// and measurements; per region `Healthy` and `Degraded`.
pub fn datapoints(
    local: &Region,
    outcomes: &[ProbeOutcome],
    verdicts: &BTreeMap<Region, RegionVerdict>,
) -> Vec<Datapoint> {
    // A round in which this region's own endpoint did not answer at all (refused, reset,
    // timed out) says nothing about the peer: the failure may be this region's egress, so no
    // datapoint of the peer is published (missing data is not breaching: the peer's failover
    // alarm holds). An own endpoint that answers, even with an error status, shows the
    // probe can reach the network: the peer's figures stand.
    let own_endpoint_failed = outcomes.iter().any(|o| {
        o.region == *local && o.target == Target::Endpoint && o.health == Health::Unhealthy && o.error.is_some()
    });
    let about = |region: &Region| !own_endpoint_failed || region == local;
    let mut points = Vec::new();
    for o in outcomes.iter().filter(|o| about(&o.region)) {
        let d = dims(&o.region, Some(o.target));
        let point = |name: &str, value: f64, unit: &str| Datapoint {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            dimensions: d.clone(),
        };
        points.push(point(metric::PROBE_SUCCESS, flag(o.health != Health::Unhealthy), "None"));
        points.push(point(metric::PROBE_LATENCY, o.latency_ms, "Milliseconds"));
        for (name, value) in &o.measurements {
            let unit = if name.ends_with("Seconds") { "Seconds" } else { "Count" };
            points.push(point(&upper_camel(name), *value, unit));
        }
    }
    for (region, v) in verdicts.iter().filter(|(r, _)| about(r)) {
        let d = dims(region, None);
        points.push(Datapoint {
            name: metric::HEALTHY.to_owned(),
            value: flag(v.health != Health::Unhealthy),
            unit: "None".to_owned(),
            dimensions: d.clone(),
        });
        points.push(Datapoint {
            name: metric::DEGRADED.to_owned(),
            value: flag(v.health == Health::Degraded),
            unit: "None".to_owned(),
            dimensions: d,
        });
    }
    points
}

fn upper_camel(name: &str) -> String {
    let mut c = name.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

/// State of an alarm, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

/// A CloudWatch alarm on a `1 = fine, 0 = not` metric: ALARM when at least
/// `datapoints_to_alarm` of the last `evaluation_periods` periods are below 1. Missing data is
/// not breaching: a silent probe is its own alarm, never a reason to fail over.
///
/// The stack emits the alarm from this rule and the sandbox (where alarms never evaluate)
/// evaluates it with [`AlarmRule::evaluate`], so both judge the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmRule {
    #[serde(with = "crate::replication::seconds")]
    pub period: Duration,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
}

impl AlarmRule {
    /// The failover alarm on the writer region's `Healthy`: three of three probe periods
    /// unhealthy. With 10-second probes, 30 s of consecutive failures (one flap never fails
    /// over), which leaves half of the one-minute RTO for the failover itself.
    pub fn failover(probe_interval: Duration) -> Self {
        AlarmRule { period: probe_interval, evaluation_periods: 3, datapoints_to_alarm: 3 }
    }

    /// Evaluates the newest `evaluation_periods` values (oldest first; `None` is a period
    /// with no datapoint, taken as the minimum of that period otherwise).
    pub fn evaluate(&self, values: &[Option<f64>]) -> AlarmState {
        let n = self.evaluation_periods as usize;
        let window = &values[values.len().saturating_sub(n)..];
        if window.iter().all(Option::is_none) {
            return AlarmState::InsufficientData;
        }
        let breaching = window.iter().flatten().filter(|v| **v < 1.0).count();
        if breaching >= self.datapoints_to_alarm as usize { AlarmState::Alarm } else { AlarmState::Ok }
    }
}

mod error_name_opt {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::ErrorName;

    pub fn serialize<S: Serializer>(n: &Option<ErrorName>, s: S) -> Result<S::Ok, S::Error> {
        match n {
            Some(n) => s.serialize_str(n.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ErrorName>, D::Error> {
        let Some(name) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        ErrorName::ALL
            .iter()
            .find(|n| n.as_str() == name)
            .copied()
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("unknown error name {name}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(s: &str) -> Region {
        s.parse().expect("region")
    }

    #[test]
    fn a_region_is_as_healthy_as_its_worst_probe() {
        let mut db = ProbeOutcome::healthy(Target::Database, region("us-east-1"), 3.0);
        db.worsen(Health::Unhealthy, "postgres unreachable");
        let mut queue = ProbeOutcome::healthy(Target::Queue, region("us-east-1"), 2.0);
        queue.worsen(Health::Degraded, "2 messages in the DLQ");
        let peer = ProbeOutcome::healthy(Target::Endpoint, region("us-east-2"), 9.0);
        let v = judge(&[db, queue, peer]);
        assert_eq!(v[&region("us-east-1")].health, Health::Unhealthy);
        assert_eq!(v[&region("us-east-1")].reasons, ["database: postgres unreachable", "queue: 2 messages in the DLQ"]);
        assert_eq!(v[&region("us-east-2")], RegionVerdict { health: Health::Healthy, reasons: vec![] });
    }

    #[test]
    fn healthy_is_zero_only_when_unhealthy() {
        let mut o = ProbeOutcome::healthy(Target::Queue, region("us-east-2"), 1.0);
        o.worsen(Health::Degraded, "backlog");
        o.measure("queueDepth", 12.0);
        let points = datapoints(&region("us-east-2"), &[o.clone()], &judge(&[o]));
        let value = |name: &str| points.iter().find(|p| p.name == name).map(|p| p.value);
        assert_eq!(value("Healthy"), Some(1.0));
        assert_eq!(value("Degraded"), Some(1.0));
        assert_eq!(value("ProbeSuccess"), Some(1.0));
        assert_eq!(value("QueueDepth"), Some(12.0));
        let healthy = points.iter().find(|p| p.name == "Healthy").expect("Healthy");
        assert_eq!(healthy.dimensions, [("Region".to_owned(), "us-east-2".to_owned())]);
    }

    /// #18: a standby that loses its own egress fails every endpoint probe, its own and the
    /// peer's alike; that round is no evidence about the peer, so it publishes nothing about
    /// it (missing data is not breaching: the failover alarm holds).
    #[test]
    fn a_round_whose_own_endpoint_failed_says_nothing_of_the_peer() {
        let (local, peer) = (region("us-east-2"), region("us-east-1"));
        let mut own = ProbeOutcome::healthy(Target::Endpoint, local.clone(), 2000.0);
        own.worsen(Health::Unhealthy, "timed out");
        own.error = Some(ErrorName::ServiceUnavailable);
        let mut theirs = ProbeOutcome::healthy(Target::Endpoint, peer.clone(), 2000.0);
        theirs.worsen(Health::Unhealthy, "timed out");
        let outcomes = [own.clone(), theirs.clone()];
        let points = datapoints(&local, &outcomes, &judge(&outcomes));
        let about =
            |r: &Region| points.iter().filter(|p| p.dimensions.contains(&("Region".to_owned(), r.to_string()))).count();
        assert_eq!(about(&peer), 0, "{points:?}");
        assert!(points.iter().any(|p| p.name == "Healthy" && p.value == 0.0 && about(&local) > 0));
        // With its own endpoint answering, healthy or not (a 503 its API gives because the
        // writer is gone), the same peer failure is published.
        let mut answered_503 = ProbeOutcome::healthy(Target::Endpoint, local.clone(), 20.0);
        answered_503.worsen(Health::Unhealthy, "answered HTTP 503");
        for own in [ProbeOutcome::healthy(Target::Endpoint, local.clone(), 20.0), answered_503] {
            let outcomes = [own, theirs.clone()];
            let points = datapoints(&local, &outcomes, &judge(&outcomes));
            let peer_healthy = points
                .iter()
                .find(|p| p.name == "Healthy" && p.dimensions.contains(&("Region".to_owned(), peer.to_string())));
            assert_eq!(peer_healthy.map(|p| p.value), Some(0.0), "{outcomes:?}");
        }
    }

    #[test]
    fn the_failover_alarm_needs_three_bad_periods_in_a_row() {
        let rule = AlarmRule::failover(Duration::from_secs(10));
        let table: &[(&[Option<f64>], AlarmState)] = &[
            (&[Some(1.0), Some(1.0), Some(1.0)], AlarmState::Ok),
            (&[Some(1.0), Some(0.0), Some(0.0)], AlarmState::Ok),
            (&[Some(0.0), Some(0.0), Some(0.0)], AlarmState::Alarm),
            (&[Some(1.0), Some(0.0), Some(0.0), Some(0.0)], AlarmState::Alarm),
            (&[Some(0.0), Some(0.0), Some(0.0), Some(1.0)], AlarmState::Ok),
            // Missing data is not breaching: a silent probe never fails over.
            (&[Some(0.0), None, Some(0.0)], AlarmState::Ok),
            (&[None, None, None], AlarmState::InsufficientData),
            (&[], AlarmState::InsufficientData),
        ];
        for (values, state) in table {
            assert_eq!(rule.evaluate(values), *state, "{values:?}");
        }
    }

    #[test]
    fn outcomes_round_trip_with_error_names() {
        let mut o = ProbeOutcome::healthy(Target::Database, region("us-east-1"), 5.0);
        o.worsen(Health::Unhealthy, "refused");
        o.error = Some(ErrorName::ServiceUnavailable);
        let json = serde_json::to_value(&o).expect("serialize");
        assert_eq!(json["error"], "ServiceUnavailable");
        assert_eq!(json["health"], "unhealthy");
        let back: ProbeOutcome = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, o);
    }
}
