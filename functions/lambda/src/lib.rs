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

/// Serves `handler` on the Lambda Runtime API until the runtime stops the process.
pub async fn serve<F, Fut, T>(function: &'static str, handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(serde_json::Value) -> Fut,
    Fut: Future<Output = Result<T, SwitchyardError>>,
    T: Serialize,
{
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let request_id = event.context.request_id.clone();
        let outcome = handler(event.payload);
        async move {
            let result = outcome.await;
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
/// malformed one is `InvalidInput`) and hands both to `handle`.
pub async fn serve_built<H, I, F, Fut, T>(
    function: &'static str,
    built: Result<H, SwitchyardError>,
    handle: F,
) -> Result<(), lambda_runtime::Error>
where
    H: Clone,
    I: DeserializeOwned,
    F: Fn(H, I) -> Fut,
    Fut: Future<Output = Result<T, SwitchyardError>>,
    T: Serialize,
{
    serve(function, move |event| {
        // Boxed: the handler's future nests deep enough to hit the compiler's layout limit
        // inside the runtime's own futures; one allocation per invocation is nothing here.
        let call = built.clone().and_then(|h| Ok(Box::pin(handle(h, parse_event::<I>(event)?))));
        async move { call?.await }
    })
    .await
}

#[cfg(test)]
mod tests {
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
