//! `switchyard execute failover|switchover REGION`: one execution of a state machine in the
//! sandbox, with the definition's own waits and retry pauses.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use switchyard_core::ErrorName;
use switchyard_core::error::ErrorCategory;
use switchyard_sandbox::runner::{Execution, Start, Timing, execute};

use crate::{Exit, Global, Output, Refused, loaded_sandbox};

#[derive(Debug, Clone, Args)]
pub struct ExecuteArgs {
    /// Which state machine.
    pub machine: Machine,
    /// The region whose state machine runs (the one the writer moves to).
    pub region: String,
    /// The execution input: JSON, or `file://PATH` (default: {"trigger":"manual"}).
    #[arg(long)]
    pub input: Option<String>,
    /// The execution name (default: MACHINE-<unix ms>); Step Functions refuses a reused one.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Machine {
    Failover,
    Switchover,
}

impl Machine {
    fn name(self) -> &'static str {
        match self {
            Machine::Failover => "failover",
            Machine::Switchover => "switchover",
        }
    }
}

pub async fn run(g: &Global, args: ExecuteArgs) -> Result<Exit> {
    let sb = loaded_sandbox(g)?;
    let d = sb.deployment();
    if !d.regions.iter().any(|r| r.as_str() == args.region) {
        let known: Vec<_> = d.regions.iter().map(|r| r.to_string()).collect();
        return Err(Refused(format!("{}: the sandbox has {}", args.region, known.join(" and "))).into());
    }
    let input: Value = match args.input.as_deref() {
        None => json!({ "trigger": "manual" }),
        Some(text) => {
            let (what, text) = match text.strip_prefix("file://") {
                Some(path) => {
                    (path.to_owned(), std::fs::read_to_string(path).with_context(|| format!("--input {path}"))?)
                }
                None => ("--input".to_owned(), text.to_owned()),
            };
            serde_json::from_str(&text).with_context(|| format!("{what} is not JSON"))?
        }
    };
    let machine = args.machine.name();
    let name =
        args.name.unwrap_or_else(|| format!("{machine}-{}", switchyard_core::order::Timestamp::now().unix_millis()));
    // The definition's own waits and retry pauses: this is what an operator runs.
    let start = Start::new(machine, &args.region, name, input, Timing::AsDefined)?;
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

/// What the execution amounts to: a no-op or a duplicate is not a success, a refusal by a
/// precondition is not a failure of the machinery.
fn verdict(x: &Execution) -> Exit {
    if x.succeeded() {
        let outcome = x.output.as_ref().and_then(|o| o.pointer("/steps/begin/outcome")).and_then(Value::as_str);
        return match outcome {
            Some("nothingToDo" | "duplicate") => Exit::NothingToDo,
            _ => Exit::Done,
        };
    }
    // The execution's error is the one its Catch recorded (`$.error.Error`).
    match x.error.as_deref().and_then(ErrorName::parse).map(ErrorName::category) {
        Some(ErrorCategory::Precondition) => Exit::Refused,
        _ => Exit::Failed,
    }
}

fn summary(x: &Execution, exit: Exit) -> String {
    let outcome = x.output.as_ref().and_then(|o| o.pointer("/steps/begin/outcome")).and_then(Value::as_str);
    match exit {
        Exit::Done => format!("{}: {} succeeded", x.name, x.status),
        Exit::NothingToDo => format!("{}: nothing done ({})", x.name, outcome.unwrap_or("?")),
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
fn cause_message(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| v["errorMessage"].as_str().map(str::to_owned))
        .unwrap_or_else(|| cause.to_owned())
}
