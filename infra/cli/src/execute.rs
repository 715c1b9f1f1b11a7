//! `switchyard execute failover|switchover REGION`: one execution of a state machine in the
//! sandbox, with the definition's own waits and retry pauses.

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use switchyard_core::ErrorName;
use switchyard_core::error::ErrorCategory;
use switchyard_sandbox::runner::{Execution, Start, Timing, execute};

use crate::{BadValue, Exit, Global, Output, Refused, input_json, loaded_sandbox};

#[derive(Debug, Clone, Args)]
pub struct ExecuteArgs {
    /// Which state machine.
    pub machine: Machine,
    /// The region whose state machine runs (the one the writer moves to); or `--region`.
    pub region: Option<String>,
    /// The execution input: JSON, or `file://PATH` (default: {"trigger":"manual"}).
    #[arg(long)]
    pub input: Option<String>,
    /// The execution name (default: MACHINE-<unix ms>); Step Functions refuses a reused one.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Machine {
    /// The automatic failover (what the alarm starts): no overrides.
    Failover,
    /// Break-glass: a failover with `allowDataLoss` or `ignoreCooldown`, and a `reason`.
    OperatorFailover,
    Switchover,
}

impl Machine {
    fn name(self) -> &'static str {
        match self {
            Machine::Failover => "failover",
            Machine::OperatorFailover => "operator-failover",
            Machine::Switchover => "switchover",
        }
    }
}

pub async fn run(g: &Global, args: ExecuteArgs) -> Result<Exit> {
    let region = match (args.region, &g.region) {
        (Some(r), _) => r,
        (None, Some(r)) => r.clone(),
        (None, None) => {
            return Err(BadValue("name the region whose state machine runs: REGION or --region".into()).into());
        }
    };
    let input: Value = match args.input.as_deref() {
        None => json!({ "trigger": "manual" }),
        Some(text) => input_json("--input", text)?,
    };
    let sb = loaded_sandbox(g)?;
    sandbox_region(&sb, &region)?;
    let machine = args.machine.name();
    let name =
        args.name.unwrap_or_else(|| format!("{machine}-{}", switchyard_core::order::Timestamp::now().unix_millis()));
    // The definition's own waits and retry pauses: this is what an operator runs.
    let start = Start::new(machine, &region, name, input, Timing::AsDefined)?;
    let x = execute(&sb, &start).await?;
    let exit = verdict(&x);
    match g.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "execution": x.name,
                "status": x.status,
                "error": x.error,
                "cause": x.cause,
                "path": x.path(),
                "output": x.output,
            }))?
        ),
        Output::Table => {
            println!("{}", x.history());
            if let Some(output) = &x.output {
                println!("{}", serde_json::to_string_pretty(output)?);
            }
            println!("{}", summary(&x, exit));
        }
    }
    Ok(exit)
}

/// `region` as one of the sandbox's regions, or refused (exit 4) naming the ones it has.
pub(crate) fn sandbox_region(sb: &switchyard_sandbox::Sandbox, region: &str) -> Result<switchyard_core::Region> {
    let d = sb.deployment();
    match d.regions.iter().find(|r| r.as_str() == region) {
        Some(r) => Ok(r.clone()),
        None => {
            let known: Vec<_> = d.regions.iter().map(|r| r.to_string()).collect();
            Err(Refused(format!("{region}: the sandbox has {}", known.join(" and "))).into())
        }
    }
}

/// The first state that changes anything: an execution that failed before it only refused.
const FIRST_CHANGE: &str = "Fence";

/// What the execution amounts to: a no-op or a duplicate is not a success, and a precondition
/// that stopped it before anything changed is a refusal. A failure after the old writer was
/// touched is a failure, whatever its name.
pub(crate) fn verdict(x: &Execution) -> Exit {
    if x.succeeded() {
        return Exit::Done;
    }
    let changed_something = x.path().iter().any(|s| s == FIRST_CHANGE);
    // The execution's error is the one its Catch recorded (`$.error.Error`), or the name its
    // Fail state gives a duplicate or a no-op (failed executions: neither is a success).
    match x.error.as_deref().and_then(ErrorName::parse) {
        Some(ErrorName::Duplicate | ErrorName::NothingToDo) => Exit::NothingToDo,
        Some(name) if name.category() == ErrorCategory::Precondition && !changed_something => Exit::Refused,
        _ => Exit::Failed,
    }
}

fn summary(x: &Execution, exit: Exit) -> String {
    match exit {
        Exit::Done => format!("{}: {} succeeded", x.name, x.status),
        Exit::NothingToDo => format!(
            "{}: {} {}, nothing done: {}",
            x.name,
            x.status,
            x.error.as_deref().unwrap_or("?"),
            x.cause.as_deref().map(cause_message).unwrap_or_default()
        ),
        _ => format!(
            "{}: {} {}: {}",
            x.name,
            x.status,
            x.error.as_deref().unwrap_or("?"),
            x.cause.as_deref().map(cause_message).unwrap_or_default()
        ),
    }
}

/// A function error's cause is `{"errorType","errorMessage"}` as a string: show the message.
pub(crate) fn cause_message(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| v["errorMessage"].as_str().map(str::to_owned))
        .unwrap_or_else(|| cause.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn execution(status: &str, error: Option<&str>, states: &[&str], output: Option<Value>) -> Execution {
        Execution {
            name: "x".into(),
            status: status.into(),
            output,
            error: error.map(str::to_owned),
            cause: None,
            events: states.iter().map(|s| json!({ "type": "StateEntered", "state": { "name": s } })).collect(),
        }
    }

    #[test]
    fn the_exit_code_says_what_happened() {
        let begin = |outcome: &str| Some(json!({ "steps": { "begin": { "outcome": outcome } } }));
        let table = [
            (execution("SUCCEEDED", None, &["Begin", "Gate", "Fence", "Promote"], begin("acquired")), Exit::Done),
            // A no-op and a duplicate are failed executions, and nothing done.
            (execution("FAILED", Some("NothingToDo"), &["Begin", "Proceed", "NothingToDo"], None), Exit::NothingToDo),
            (execution("FAILED", Some("Duplicate"), &["Begin", "Proceed", "Duplicate"], None), Exit::NothingToDo),
            // The gate said no before anything changed: refused.
            (execution("FAILED", Some("LagAboveBudget"), &["Begin", "Gate", "EndFailed"], None), Exit::Refused),
            (execution("FAILED", Some("LockHeld"), &["Begin", "EndFailed"], None), Exit::Refused),
            // NotReady after the epoch bump (the new writer's health): the writer moved; a failure.
            (
                execution(
                    "FAILED",
                    Some("NotReady"),
                    &["Begin", "Gate", "Fence", "Promote", "Record", "VerifyHealth"],
                    None,
                ),
                Exit::Failed,
            ),
            (execution("FAILED", Some("InvalidInput"), &["Begin", "EndFailed"], None), Exit::Failed),
            (execution("FAILED", Some("TypeError"), &["Begin"], None), Exit::Failed),
        ];
        for (x, expected) in table {
            assert_eq!(verdict(&x), expected, "{:?} after {:?}", x.error, x.path());
        }
    }
}
