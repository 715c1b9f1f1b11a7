//! Alarms, rules and schedules that fire — what CloudWatch and EventBridge do in AWS and moto
//! does not (moto stores alarms and rules; it evaluates and routes nothing).
//!
//! - **Alarms** are evaluated as CloudWatch documents (*Evaluating an alarm*,
//!   <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-evaluation.html>):
//!   over the last `EvaluationPeriods` periods of the alarm's statistic, the alarm is ALARM when
//!   at least `DatapointsToAlarm` of them breach the threshold, missing datapoints counted as
//!   `TreatMissingData` says (`missing`: all missing is INSUFFICIENT_DATA; `ignore`: the state
//!   stays). Definitions and datapoints are read from moto (provisioned from the model, the
//!   same definitions the stacks emit); a change is written back (`SetAlarmState`).
//! - A state change becomes the **event** CloudWatch sends ("CloudWatch Alarm State Change"),
//!   matched against each enabled **rule** of the region by EventBridge's pattern rules
//!   (exact values, `prefix`, `anything-but`, `exists`), transformed by the target's
//!   **input transformer** and delivered: a state machine starts (the local runner, as defined:
//!   real waits and retries), a function is invoked, another region's bus receives it (over
//!   the link between the regions; held while it is cut).
//! - **Schedules** (`rate(N unit)`) fire at their rate divided by the compression factor.
//!
//! The clock is stopped until started (`PUT /clock`): nothing fires in a sandbox nobody asked
//! to run unattended, so tests are not raced by a probe or a failover they did not start.
//! `POST /clock/tick` evaluates the alarms once, now. What it does not model is listed in
//! ARCHITECTURE.md.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result};
use aws_sdk_cloudwatch::{
    primitives::DateTime,
    types::{ComparisonOperator, Metric, MetricDataQuery, MetricStat, StateValue, Statistic},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchyard_aws::{AwsTarget, sdk_config};
use switchyard_core::Region;

use super::World;

type Pending<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send>>;

/// What the clock's targets run on: the sandbox's Step Functions runner and Lambda services.
/// Given to [`super::serve`] by a module above the world (`crate::daemon`), so the world
/// depends on nothing of the sandbox instance.
pub trait Targets: Send + Sync {
    /// Runs an execution of `machine` in `region` to its end; its status (and error).
    fn start_execution(&self, machine: &'static str, region: Region, name: String, input: Value) -> Pending<String>;
    /// Invokes a function of `region`; a summary of its answer.
    fn invoke(&self, region: Region, function: &'static str, payload: Value) -> Pending<String>;
}

/// What the clock did: one delivery of an event to a rule's target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Delivery {
    pub region: Region,
    pub rule: String,
    pub target: String,
    pub input: Value,
    /// `started`, then the execution's or invocation's end (`SUCCEEDED`, `FAILED …`), or why
    /// it was not delivered.
    pub outcome: String,
}

/// An alarm state change the clock made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Change {
    pub region: Region,
    pub alarm: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct ClockState {
    pub running: bool,
    pub compression: f64,
    started: Option<Instant>,
    last_fired: BTreeMap<(Region, String), Instant>,
    pub changes: Vec<Change>,
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClockSettings {
    pub running: bool,
    #[serde(default = "one")]
    pub compression: f64,
}

fn one() -> f64 {
    1.0
}

impl World {
    fn moto(&self) -> Option<AwsTarget> {
        AwsTarget::sandbox_everywhere(&format!("http://127.0.0.1:{}", self.plan.moto_port), self.plan.places.clone())
            .ok()
    }
}

pub fn settle(world: &World, settings: &ClockSettings) -> Result<()> {
    anyhow::ensure!(settings.compression >= 1.0, "compression must be at least 1 (time runs no slower than real)");
    let mut clock = world.clock.lock().map_err(|_| anyhow::anyhow!("clock poisoned"))?;
    clock.running = settings.running;
    clock.compression = settings.compression;
    clock.started = settings.running.then(Instant::now);
    clock.last_fired.clear();
    Ok(())
}

pub fn report(world: &World) -> Value {
    match world.clock.lock() {
        Ok(c) => json!({
            "running": c.running, "compression": c.compression, "changes": c.changes, "deliveries": c.deliveries,
        }),
        Err(_) => json!({ "error": "clock poisoned" }),
    }
}

/// Runs the clock while it is started: alarms every second, schedules when due.
pub async fn run(world: Arc<World>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let running = world.clock.lock().map(|c| c.running).unwrap_or(false);
        if running {
            if let Err(e) = evaluate_alarms(&world).await {
                eprintln!("clock: evaluating alarms: {e:#}");
            }
            if let Err(e) = fire_schedules(&world).await {
                eprintln!("clock: schedules: {e:#}");
            }
        }
    }
}

/// Evaluates every alarm of the pair once, now; routes each state change. Returns the changes.
pub async fn evaluate_alarms(world: &Arc<World>) -> Result<Vec<Change>> {
    let target = world.moto().context("moto's endpoint")?;
    let mut changes = Vec::new();
    for region in world.plan.replicas().to_vec() {
        let cw = aws_sdk_cloudwatch::Client::new(&sdk_config(&target, &region).await);
        let alarms = cw.describe_alarms().send().await.context("DescribeAlarms")?;
        for alarm in alarms.metric_alarms() {
            let Some(new) = evaluate(&cw, alarm).await? else { continue };
            let old = alarm.state_value().map(|s| s.as_str().to_owned()).unwrap_or_default();
            if new.0.as_str() == old {
                continue;
            }
            let name = alarm.alarm_name().unwrap_or_default().to_owned();
            cw.set_alarm_state().alarm_name(&name).state_value(new.0.clone()).state_reason(&new.1).send().await?;
            let change = Change {
                region: region.clone(),
                alarm: name.clone(),
                from: old.clone(),
                to: new.0.as_str().to_owned(),
                reason: new.1.clone(),
            };
            if let Ok(mut clock) = world.clock.lock() {
                clock.changes.push(change.clone());
            }
            let event = alarm_event(&region, alarm, &old, new.0.as_str(), &new.1);
            route(world, &region, event).await?;
            changes.push(change);
        }
    }
    Ok(changes)
}

/// The state an alarm should be in now and why; `None` when it stays (`ignore`).
async fn evaluate(
    cw: &aws_sdk_cloudwatch::Client,
    alarm: &aws_sdk_cloudwatch::types::MetricAlarm,
) -> Result<Option<(StateValue, String)>> {
    let (Some(period), Some(n), Some(threshold), Some(op)) =
        (alarm.period(), alarm.evaluation_periods(), alarm.threshold(), alarm.comparison_operator())
    else {
        return Ok(None);
    };
    let (period, n) = (period.max(1) as u64, n.max(1) as u64);
    let m = alarm.datapoints_to_alarm().map_or(n, |m| m.max(1) as u64);
    let statistic = alarm.statistic().cloned().unwrap_or(Statistic::Average);
    // The last n periods that have ended, aligned to the period. The period in progress is
    // not judged: its datapoints are not all in (a probe publishes once per period), and
    // counting it as missing (not breaching) turned a sustained breach into ALARM → OK →
    // ALARM at every period boundary, an alarm storm (#20's drill).
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs();
    let end = (now / period) * period;
    let start = end - n * period;
    // GetMetricData, not GetMetricStatistics: moto buckets GetMetricStatistics from the first
    // datapoint it finds (to its fraction of a second), so a sample a moment into a period
    // came back stamped in the period before and the last period looked empty (the drill's
    // ALARM → OK relapse). GetMetricData's buckets start at StartTime, aligned here as
    // CloudWatch aligns them.
    let metric = Metric::builder()
        .set_namespace(alarm.namespace().map(str::to_owned))
        .set_metric_name(alarm.metric_name().map(str::to_owned))
        .set_dimensions(Some(alarm.dimensions().to_vec()))
        .build();
    let query = MetricDataQuery::builder()
        .id("judged")
        .metric_stat(MetricStat::builder().metric(metric).period(period as i32).stat(statistic.as_str()).build())
        .return_data(true)
        .build();
    let data = cw
        .get_metric_data()
        .metric_data_queries(query)
        .start_time(DateTime::from_secs(start as i64))
        .end_time(DateTime::from_secs(end as i64))
        .send()
        .await
        .context("GetMetricData")?;
    let result = data.metric_data_results().first();
    let stamped: Vec<(u64, f64)> = result
        .map(|r| r.timestamps().iter().map(|t| t.secs().max(0) as u64).zip(r.values().iter().copied()).collect())
        .unwrap_or_default();
    let buckets = by_period(&stamped, start, period, n);
    let breaches = |v: f64| match op {
        ComparisonOperator::GreaterThanOrEqualToThreshold => v >= threshold,
        ComparisonOperator::GreaterThanThreshold => v > threshold,
        ComparisonOperator::LessThanThreshold => v < threshold,
        ComparisonOperator::LessThanOrEqualToThreshold => v <= threshold,
        _ => false,
    };
    let present: Vec<f64> = buckets.iter().flatten().copied().collect();
    let missing = n - present.len() as u64;
    let treat = alarm.treat_missing_data().unwrap_or("missing");
    let breaching =
        present.iter().filter(|v| breaches(**v)).count() as u64 + if treat == "breaching" { missing } else { 0 };
    let describe = |state: &str| {
        format!(
            "sandbox clock: {breaching} of the last {n} datapoints breach {} {threshold} ({} missing, treated as {treat}): {state}",
            op.as_str(),
            missing
        )
    };
    if present.is_empty() {
        return Ok(match treat {
            "ignore" => None,
            "breaching" => Some((StateValue::Alarm, describe("ALARM"))),
            "notBreaching" => Some((StateValue::Ok, describe("OK"))),
            _ => Some((StateValue::InsufficientData, describe("INSUFFICIENT_DATA"))),
        });
    }
    Ok(Some(if breaching >= m { (StateValue::Alarm, describe("ALARM")) } else { (StateValue::Ok, describe("OK")) }))
}

/// The value of each of the `n` periods from `start`, from GetMetricData's (timestamp, value)
/// pairs; `None` for a period it returned nothing for.
fn by_period(stamped: &[(u64, f64)], start: u64, period: u64, n: u64) -> Vec<Option<f64>> {
    let mut periods = vec![None; n as usize];
    for (at, value) in stamped {
        let i = at.saturating_sub(start) / period;
        if *at >= start && i < n {
            periods[i as usize] = Some(*value);
        }
    }
    periods
}

fn event_time() -> String {
    let t = switchyard_core::order::Timestamp::now().to_string();
    format!("{}Z", &t[..19.min(t.len())])
}

fn alarm_event(
    region: &Region,
    alarm: &aws_sdk_cloudwatch::types::MetricAlarm,
    from: &str,
    to: &str,
    reason: &str,
) -> Value {
    let time = event_time();
    json!({
        "version": "0",
        "id": format!("sandbox-{}", SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": crate::definitions::SANDBOX_ACCOUNT,
        "time": time,
        "region": region,
        "resources": [alarm.alarm_arn().unwrap_or_default()],
        "detail": {
            "alarmName": alarm.alarm_name().unwrap_or_default(),
            "state": { "value": to, "reason": reason, "timestamp": time },
            "previousState": { "value": from, "reason": alarm.state_reason().unwrap_or_default() },
            "configuration": {
                "metrics": [{ "metricStat": { "metric": {
                    "namespace": alarm.namespace().unwrap_or_default(),
                    "name": alarm.metric_name().unwrap_or_default(),
                    "dimensions": alarm.dimensions().iter().map(|d| (d.name().unwrap_or_default().to_owned(), json!(d.value().unwrap_or_default()))).collect::<serde_json::Map<_, _>>(),
                }, "period": alarm.period(), "stat": alarm.statistic().map(|s| s.as_str()) } }],
            },
        },
    })
}

/// EventBridge's event-pattern match: every key of the pattern must match the event.
pub fn matches(pattern: &Value, event: &Value) -> bool {
    let Some(pattern) = pattern.as_object() else { return false };
    pattern.iter().all(|(key, wanted)| {
        let got = event.get(key);
        match wanted {
            Value::Object(_) => got.is_some_and(|g| matches(wanted, g)),
            Value::Array(options) => options.iter().any(|option| matches_one(option, got)),
            _ => false,
        }
    })
}

fn matches_one(option: &Value, got: Option<&Value>) -> bool {
    let values: Vec<&Value> = match got {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v) => vec![v],
        None => vec![],
    };
    match option {
        Value::Object(filter) => {
            if let Some(exists) = filter.get("exists").and_then(Value::as_bool) {
                return got.is_some() == exists;
            }
            if let Some(prefix) = filter.get("prefix").and_then(Value::as_str) {
                return values.iter().any(|v| v.as_str().is_some_and(|s| s.starts_with(prefix)));
            }
            if let Some(but) = filter.get("anything-but") {
                let excluded: Vec<&Value> = match but {
                    Value::Array(items) => items.iter().collect(),
                    v => vec![v],
                };
                return !values.is_empty() && values.iter().all(|v| !excluded.contains(v));
            }
            // A filter the sandbox does not evaluate matches nothing (see ARCHITECTURE.md).
            false
        }
        scalar => values.contains(&scalar),
    }
}

/// An input transformer: each `<name>` of the template replaced by the value at its path
/// (`$.a.b`); inside quotes a string's text, elsewhere the JSON value
/// (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html>).
pub fn transform(paths: &Value, template: &str, event: &Value) -> Result<Value> {
    let mut out = template.to_owned();
    for (name, path) in paths.as_object().into_iter().flatten() {
        let path = path.as_str().unwrap_or("$");
        let mut value = event;
        for part in path.trim_start_matches('$').split('.').filter(|p| !p.is_empty()) {
            value = value.get(part).unwrap_or(&Value::Null);
        }
        let quoted = format!("\"<{name}>\"");
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let escaped = serde_json::to_string(&text)?;
        out = out.replace(&quoted, &format!("\"{}\"", &escaped[1..escaped.len() - 1]));
        out = out.replace(&format!("<{name}>"), &value.to_string());
    }
    serde_json::from_str(&out).with_context(|| format!("the transformed input is not JSON: {out}"))
}

/// Matches `event` against `region`'s enabled rules and delivers it to their targets.
pub fn route<'a>(
    world: &'a Arc<World>,
    region: &'a Region,
    event: Value,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
    let region = region.clone();
    Box::pin(async move {
        let target = world.moto().context("moto's endpoint")?;
        let events = aws_sdk_eventbridge::Client::new(&sdk_config(&target, &region).await);
        let rules = events.list_rules().send().await.context("ListRules")?;
        for rule in rules.rules() {
            let enabled = rule.state().is_some_and(|s| s.as_str() == "ENABLED");
            let Some(pattern) = rule.event_pattern().and_then(|p| serde_json::from_str::<Value>(p).ok()) else {
                continue;
            };
            if !enabled || !matches(&pattern, &event) {
                continue;
            }
            let name = rule.name().unwrap_or_default().to_owned();
            let targets = events.list_targets_by_rule().rule(&name).send().await.context("ListTargetsByRule")?;
            for t in targets.targets() {
                let input = match (t.input_transformer(), t.input()) {
                    (Some(tr), _) => transform(&json!(tr.input_paths_map()), tr.input_template(), &event)?,
                    (None, Some(input)) => serde_json::from_str(input)?,
                    (None, None) => event.clone(),
                };
                deliver(world, &region, &name, t.arn(), input).await;
            }
        }
        Ok(())
    })
}

/// Fires every schedule whose (compressed) rate has passed since the clock started or last fired it.
async fn fire_schedules(world: &Arc<World>) -> Result<()> {
    let target = world.moto().context("moto's endpoint")?;
    let (compression, started) = match world.clock.lock() {
        Ok(c) => (c.compression.max(1.0), c.started),
        Err(_) => return Ok(()),
    };
    let Some(started) = started else { return Ok(()) };
    for region in world.plan.replicas().to_vec() {
        let events = aws_sdk_eventbridge::Client::new(&sdk_config(&target, &region).await);
        let rules = events.list_rules().send().await.context("ListRules")?;
        for rule in rules.rules() {
            let (Some(expr), Some(name)) = (rule.schedule_expression(), rule.name()) else { continue };
            if rule.state().is_none_or(|s| s.as_str() != "ENABLED") {
                continue;
            }
            let Some(every) = rate(expr) else {
                eprintln!("clock: {name}: only rate() schedules fire in the sandbox, not {expr}");
                continue;
            };
            let every = every.div_f64(compression);
            let key = (region.clone(), name.to_owned());
            let last = world.clock.lock().ok().and_then(|c| c.last_fired.get(&key).copied()).unwrap_or(started);
            if last.elapsed() < every {
                continue;
            }
            if let Ok(mut c) = world.clock.lock() {
                c.last_fired.insert(key, Instant::now());
            }
            let event = json!({
                "version": "0", "id": format!("sandbox-schedule-{}", event_time()), "detail-type": "Scheduled Event",
                "source": "aws.events", "account": crate::definitions::SANDBOX_ACCOUNT, "time": event_time(),
                "region": region, "resources": [rule.arn().unwrap_or_default()], "detail": {},
            });
            let targets = events.list_targets_by_rule().rule(name).send().await.context("ListTargetsByRule")?;
            for t in targets.targets() {
                deliver(world, &region, name, t.arn(), event.clone()).await;
            }
        }
    }
    Ok(())
}

/// `rate(5 minutes)` → 5 min.
pub fn rate(expression: &str) -> Option<Duration> {
    let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.split_once(' ')?;
    let n: u64 = n.parse().ok()?;
    let seconds = match unit.trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n * seconds))
}

/// Delivers `input` to one target; records the delivery and, for executions and
/// invocations, their end.
async fn deliver(world: &Arc<World>, region: &Region, rule: &str, arn: &str, input: Value) {
    let index = match world.clock.lock() {
        Ok(mut c) => {
            c.deliveries.push(Delivery {
                region: region.clone(),
                rule: rule.to_owned(),
                target: arn.to_owned(),
                input: input.clone(),
                outcome: "started".into(),
            });
            c.deliveries.len() - 1
        }
        Err(_) => return,
    };
    let world = world.clone();
    let (region, rule, arn) = (region.clone(), rule.to_owned(), arn.to_owned());
    tokio::spawn(async move {
        let outcome = match deliver_now(&world, &region, &rule, &arn, input).await {
            Ok(o) => o,
            Err(e) => format!("not delivered: {e:#}"),
        };
        if let Ok(mut c) = world.clock.lock()
            && let Some(d) = c.deliveries.get_mut(index)
        {
            d.outcome = outcome;
        }
    });
}

async fn deliver_now(world: &Arc<World>, region: &Region, rule: &str, arn: &str, input: Value) -> Result<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    let d = &world.deployment;
    match parts.get(2).copied() {
        Some("states") => {
            let name = parts.last().copied().unwrap_or_default();
            let names = d.regional_names(region);
            let (machine, _) = names
                .state_machines()
                .into_iter()
                .find(|(_, deployed)| *deployed == name)
                .with_context(|| format!("no state machine {name}"))?;
            let execution = format!("{rule}-{}", SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_millis());
            world.targets.start_execution(machine, region.clone(), execution, input).await
        }
        Some("lambda") => {
            let function = switchyard_model::FUNCTIONS
                .iter()
                .find(|f| d.function_arn(region, crate::definitions::SANDBOX_ACCOUNT, f) == arn)
                .with_context(|| format!("no function {arn}"))?;
            world.targets.invoke(region.clone(), function, input).await
        }
        Some("events") => {
            // Another region's default bus: the event crosses the link between the regions.
            let peer: Region = parts.get(3).copied().unwrap_or_default().parse().map_err(anyhow::Error::msg)?;
            let mut changes = world.subscribe();
            while world.cut(region, &peer).is_some() {
                changes.changed().await?;
            }
            tokio::time::sleep(world.delay()).await;
            route(world, &peer, input).await?;
            Ok(format!("routed on {peer}'s bus"))
        }
        other => anyhow::bail!("the sandbox delivers to states, lambda and events targets, not {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_model::{Deployment, RuleTarget};

    #[test]
    fn each_value_lands_in_the_period_its_timestamp_starts() {
        let stamped = [(40, 0.0), (60, 1.0), (75, 0.0), (30, 0.0)];
        assert_eq!(by_period(&stamped, 40, 10, 3), vec![Some(0.0), None, Some(1.0)]);
    }

    fn alarm_change(region: &str, alarm: &str, state: &str) -> Value {
        json!({
            "source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change", "region": region,
            "time": "2026-12-01T17:00:00Z",
            "detail": { "alarmName": alarm, "state": { "value": state, "reason": "3 of 3 below 1" } },
        })
    }

    #[test]
    fn the_model_s_rules_match_what_they_should_and_transform_their_input() {
        let d = Deployment::sandbox();
        let east2 = d.regions.standby.clone();
        let rules = d.event_rules(&east2);
        let failover = rules.iter().find(|r| r.name == d.regional_names(&east2).failover_rule).expect("test value");
        let pattern = failover.pattern.clone().expect("test value");
        let alarm = d.failover_alarm(&east2).name;
        assert!(matches(&pattern, &alarm_change("us-east-2", &alarm, "ALARM")));
        assert!(!matches(&pattern, &alarm_change("us-east-2", &alarm, "OK")), "OK starts nothing");
        assert!(!matches(&pattern, &alarm_change("us-east-1", &alarm, "ALARM")), "the peer's forwarded alarm");
        assert!(!matches(&pattern, &alarm_change("us-east-2", "someone-else", "ALARM")));
        let RuleTarget::StateMachine { input_paths, template, .. } = &failover.target else { panic!("target") };
        let input = transform(input_paths, template, &alarm_change("us-east-2", &alarm, "ALARM")).expect("test value");
        assert_eq!(
            input,
            json!({ "detectedAt": "2026-12-01T17:00:00Z", "trigger": alarm, "reason": "3 of 3 below 1" })
        );

        let forward = rules.iter().find(|r| r.name == d.regional_names(&east2).forward_rule).expect("test value");
        let pattern = forward.pattern.clone().expect("test value");
        assert!(matches(&pattern, &alarm_change("us-east-2", "switchyard-sandbox-peer-unhealthy", "OK")), "prefix");
        assert!(!matches(&pattern, &alarm_change("us-east-2", "other-app-alarm", "OK")));
    }

    #[test]
    fn content_filters_and_quoted_placeholders() {
        let event = json!({ "a": "x", "n": [1, 2], "s": "say \"hi\"" });
        assert!(matches(&json!({ "a": [{ "anything-but": ["y"] }] }), &event));
        assert!(!matches(&json!({ "a": [{ "anything-but": "x" }] }), &event));
        assert!(matches(&json!({ "n": [2] }), &event), "an array matches if any element does");
        assert!(matches(&json!({ "b": [{ "exists": false }] }), &event));
        assert!(!matches(&json!({ "a": [{ "numeric": [">", 0] }] }), &event), "unmodelled filters match nothing");
        let out = transform(&json!({ "s": "$.s", "n": "$.n" }), r#"{"q": "<s>", "raw": <s>, "n": <n>}"#, &event)
            .expect("test value");
        assert_eq!(out, json!({ "q": "say \"hi\"", "raw": "say \"hi\"", "n": [1, 2] }));
    }

    #[test]
    fn rates() {
        assert_eq!(rate("rate(1 minute)"), Some(Duration::from_secs(60)));
        assert_eq!(rate("rate(2 hours)"), Some(Duration::from_secs(7200)));
        assert_eq!(rate("cron(0 12 * * ? *)"), None);
    }
}
