//! Glue between the Lambda runtime and switchyard handlers.
//!
//! **Error names are API**: every error leaves a function with `errorType` set to its
//! [`ErrorName`](switchyard_core::ErrorName) (never a Rust type name), because Step Functions
//! matches `Retry` and `Catch` on it. Events are parsed here rather than by the runtime for
//! the same reason: a malformed event must surface as `InvalidInput`.

use std::future::Future;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::{Serialize, de::DeserializeOwned};
use switchyard_core::{ErrorName, SwitchyardError};

/// A [`SwitchyardError`] on its way out of a function.
#[derive(Debug)]
pub struct FunctionError(pub SwitchyardError);

impl From<SwitchyardError> for FunctionError {
    fn from(e: SwitchyardError) -> Self {
        FunctionError(e)
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(FunctionError(e): FunctionError) -> Self {
        Diagnostic { error_type: e.name.as_str().to_owned(), error_message: e.message }
    }
}

/// The process environment as a configuration lookup: what every function's `main` reads its
/// config from (the config readers themselves take any lookup, so tests pass a map).
pub fn env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// Deserializes an event into the handler's input type, naming the failure `InvalidInput`.
pub fn parse_event<T: DeserializeOwned>(event: serde_json::Value) -> Result<T, SwitchyardError> {
    serde_json::from_value(event)
        .map_err(|e| SwitchyardError::new(ErrorName::InvalidInput, format!("malformed event: {e}")))
}

/// An EventBridge "Scheduled Event" (what a `rate(…)` rule sends).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ScheduledEvent {
    pub source: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub region: switchyard_core::Region,
}

impl ScheduledEvent {
    /// `None` if `value` is no EventBridge event at all (no `detail-type`); else the schedule,
    /// or why it is not one (another kind of event, an unknown region).
    pub fn recognise(value: &serde_json::Value) -> Option<Result<ScheduledEvent, String>> {
        value.get("detail-type")?;
        let parsed = serde_json::from_value::<ScheduledEvent>(value.clone()).map_err(|e| e.to_string());
        Some(parsed.and_then(|e| {
            if e.source == "aws.events" && e.detail_type == "Scheduled Event" {
                Ok(e)
            } else {
                Err(format!(
                    "expected an EventBridge \"Scheduled Event\" from aws.events, got {:?} from {:?}",
                    e.detail_type, e.source
                ))
            }
        }))
    }
}

/// Checks a function's sample events (`events/<function>/*.json`): every file must parse as
/// `T`, except `malformed-*` files, which must fail as `InvalidInput`. Returns how many it read.
pub fn check_sample_events<T: DeserializeOwned>(dir: &std::path::Path) -> Result<usize, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut seen = 0;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue; // a README beside the events
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{name}: {e}"))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{name}: not JSON: {e}"))?;
        match (name.starts_with("malformed-"), parse_event::<T>(value)) {
            (false, Err(e)) => return Err(format!("{name} was refused: {e}")),
            (true, Ok(_)) => return Err(format!("{name} was accepted")),
            (true, Err(e)) if e.name != ErrorName::InvalidInput => return Err(format!("{name}: {e}")),
            _ => seen += 1,
        }
    }
    Ok(seen)
}

/// When an invocation must have answered: the Lambda runtime's deadline for it (the
/// function's configured timeout after the invocation started). Every call a handler makes
/// takes its deadline from here, so that a dependency that hangs ends as a named error inside
/// the function's own timeout, never as a timeout of the whole function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub tokio::time::Instant);

impl Deadline {
    /// From the runtime's `Lambda-Runtime-Deadline-Ms` (milliseconds since the Unix epoch).
    pub fn from_epoch_ms(deadline_ms: u64) -> Self {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Deadline(tokio::time::Instant::now() + std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
    }

    /// An invocation's deadline: the runtime's (`Lambda-Runtime-Deadline-Ms`), or where a
    /// runtime emulator gives none in the future, the function's timeout from
    /// `SWITCHYARD_FUNCTION_TIMEOUTS` (the sandbox), else Lambda's longest timeout, 900 s.
    pub fn of_invocation(function: &str, deadline_ms: u64) -> Self {
        Self::of_invocation_with(function, deadline_ms, env(switchyard_core::config::keys::FUNCTION_TIMEOUTS))
    }

    fn of_invocation_with(function: &str, deadline_ms: u64, timeouts: Option<String>) -> Self {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let from_runtime = (deadline_ms > now_ms).then(|| Deadline::from_epoch_ms(deadline_ms));
        let configured = timeouts
            .and_then(|text| serde_json::from_str::<std::collections::BTreeMap<String, u64>>(&text).ok())
            .and_then(|timeouts| timeouts.get(function).copied())
            .map(|seconds| Deadline::after(std::time::Duration::from_secs(seconds)));
        match (from_runtime, configured) {
            (Some(a), Some(b)) => Deadline(a.0.min(b.0)),
            (Some(d), None) | (None, Some(d)) => d,
            (None, None) => Deadline::after(std::time::Duration::from_secs(900)),
        }
    }

    /// `duration` from now (tests).
    pub fn after(duration: std::time::Duration) -> Self {
        Deadline(tokio::time::Instant::now() + duration)
    }

    pub fn remaining(&self) -> std::time::Duration {
        self.0.saturating_duration_since(tokio::time::Instant::now())
    }

    /// `margin` before the deadline, or now if that has passed.
    pub fn before(&self, margin: std::time::Duration) -> tokio::time::Instant {
        self.0.checked_sub(margin).unwrap_or(self.0).max(tokio::time::Instant::now())
    }
}

/// What every handler keeps for its answer: its work ends this long before the deadline.
pub const ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_millis(300);

/// Serves `handler` on the Lambda Runtime API until the runtime stops the process. A handler
/// still working [`ANSWER_MARGIN`] before its invocation's deadline is stopped and answers
/// `ServiceUnavailable`.
pub async fn serve<F, Fut, T>(function: &'static str, handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(serde_json::Value, Deadline) -> Fut,
    Fut: Future<Output = Result<T, SwitchyardError>>,
    T: Serialize,
{
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let request_id = event.context.request_id.clone();
        let deadline = Deadline::of_invocation(function, event.context.deadline);
        let outcome = handler(event.payload, deadline);
        async move {
            let result = match tokio::time::timeout_at(deadline.before(ANSWER_MARGIN), outcome).await {
                Ok(result) => result,
                Err(_) => Err(SwitchyardError::new(
                    ErrorName::ServiceUnavailable,
                    format!("{function} ran out of its invocation's time: a dependency did not answer"),
                )),
            };
            if let Err(e) = &result {
                tracing::error!(function, request_id, error_type = e.name.as_str(), category = ?e.category(), "{}", e.message);
            }
            result.map_err(FunctionError)
        }
    }))
    .await
}

/// Serves a function built once per cold start: each invocation answers the build's error
/// (a named `MissingConfig`, say) if there is one, else parses the event into `I` (a
/// malformed one is `InvalidInput`) and hands both, with the invocation's deadline, to `handle`.
pub async fn serve_built<H, I, F, Fut, T>(
    function: &'static str,
    built: Result<H, SwitchyardError>,
    handle: F,
) -> Result<(), lambda_runtime::Error>
where
    H: Clone,
    I: DeserializeOwned,
    F: Fn(H, I, Deadline) -> Fut,
    Fut: Future<Output = Result<T, SwitchyardError>>,
    T: Serialize,
{
    serve(function, move |event, deadline| {
        // Boxed: the handler's future nests deep enough to hit the compiler's layout limit
        // inside the runtime's own futures; one allocation per invocation is nothing here.
        let call = built.clone().and_then(|h| Ok(Box::pin(handle(h, parse_event::<I>(event)?, deadline))));
        async move { call?.await }
    })
    .await
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn an_invocation_deadline_is_the_runtime_s_or_the_configured_timeout() {
        use std::time::Duration;
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
        let timeouts = || Some(r#"{"order-consumer":10}"#.to_owned());
        let near = |d: Deadline, secs: u64| {
            let left = d.remaining();
            left <= Duration::from_secs(secs) && left + Duration::from_millis(500) >= Duration::from_secs(secs)
        };
        // AWS: the runtime's epoch deadline, capped by a configured timeout when one is set.
        assert!(near(Deadline::of_invocation_with("order-consumer", now_ms + 5_000, None), 5));
        assert!(near(Deadline::of_invocation_with("order-consumer", now_ms + 60_000, timeouts()), 10));
        // cargo lambda watch sends 600000 (not an epoch time): the configured timeout stands in.
        assert!(near(Deadline::of_invocation_with("order-consumer", 600_000, timeouts()), 10));
        assert!(near(Deadline::of_invocation_with("health-probe", 600_000, timeouts()), 900));
    }

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        region: String,
    }

    #[test]
    fn malformed_events_are_invalid_input() {
        for event in [
            serde_json::json!({}),
            serde_json::json!({"region": 1}),
            serde_json::json!({"region": "x", "extra": 1}),
            serde_json::json!([]),
        ] {
            let err = parse_event::<Input>(event.clone()).expect_err("malformed");
            assert_eq!(err.name, ErrorName::InvalidInput, "{event}");
        }
        assert!(parse_event::<Input>(serde_json::json!({"region": "us-east-1"})).is_ok());
    }

    #[test]
    fn diagnostics_carry_the_stable_name() {
        let d: Diagnostic = FunctionError(SwitchyardError::new(ErrorName::LagAboveBudget, "lag 90 s")).into();
        assert_eq!(d.error_type, "LagAboveBudget");
        assert_eq!(d.error_message, "lag 90 s");
    }
}
