//! `switchyard invoke REGION FUNCTION [--event NAME | --input JSON|file://PATH]` and
//! `switchyard readiness [--candidate REGION]`: a function of a region called through its
//! Lambda service's Invoke API, as Step Functions and the AWS SDK call it, with a sample
//! event from `events/<function>/` by name; and the readiness tester's report as a rule table.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};
use switchyard_core::{
    ErrorName, Region,
    error::ErrorCategory,
    ports::ClaimStore,
    readiness::{Report, Verdict},
};
use switchyard_sandbox::{Sandbox, lambda::Invocation, workspace::repo_root};

use crate::{BadValue, Exit, Global, Output, Refused, execute::sandbox_region, input_json, loaded_sandbox};

#[derive(Debug, Clone, Args)]
pub struct InvokeArgs {
    /// The region whose function runs.
    pub region: String,
    /// The function: health-probe, readiness-tester, rds-promoter, dns-switcher, order-consumer.
    pub function: String,
    /// A sample event by name: `events/FUNCTION/NAME.json` (`--event on-demand`).
    #[arg(long, conflicts_with = "input")]
    pub event: Option<String>,
    /// The event: JSON, or `file://PATH` (default: `{}`).
    #[arg(long)]
    pub input: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ReadinessArgs {
    /// The region that would take over (default: the region that does not write, as the
    /// claim store says); its readiness tester runs.
    #[arg(long)]
    pub candidate: Option<String>,
}

pub async fn invoke(g: &Global, args: InvokeArgs) -> Result<Exit> {
    // The command line first: a bad value is a usage error whether or not the sandbox is up.
    let event = match (&args.event, &args.input) {
        (Some(name), _) => sample_event(&args.function, name)?,
        (None, Some(text)) => input_json("--input", text)?,
        (None, None) => json!({}),
    };
    let sb = loaded_sandbox(g)?;
    let region = sandbox_region(&sb, &args.region)?;
    let functions: Vec<&str> = sb.deployment().function_specs().iter().map(|f| f.name).collect();
    if !functions.contains(&args.function.as_str()) {
        return Err(Refused(format!("{}: no such function; there are {}", args.function, functions.join(", "))).into());
    }
    match call(&sb, &region, &args.function, &event).await? {
        Invocation::Ok(payload) => {
            println!("{}", serde_json::to_string_pretty(&payload)?);
            Ok(Exit::Done)
        }
        Invocation::FunctionError { error_type, error_message } => Ok(function_error(g, &error_type, &error_message)),
    }
}

/// A function's named error: `error: Name: message` on stderr (and as JSON on stdout with
/// `--output json`), and its exit code: bad input is a usage error, a precondition a refusal,
/// anything else a failure.
fn function_error(g: &Global, error_type: &str, error_message: &str) -> Exit {
    if g.output == Output::Json {
        println!("{}", json!({ "errorType": error_type, "errorMessage": error_message }));
    }
    eprintln!("error: {error_type}: {error_message}");
    function_error_exit(error_type)
}

/// A function's named error as an exit code.
fn function_error_exit(error_type: &str) -> Exit {
    match ErrorName::parse(error_type) {
        Some(ErrorName::InvalidInput) => Exit::Usage,
        Some(ErrorName::Duplicate | ErrorName::NothingToDo) => Exit::NothingToDo,
        Some(name) if name.category() == ErrorCategory::Precondition => Exit::Refused,
        _ => Exit::Failed,
    }
}

/// `events/FUNCTION/NAME.json`, or a usage error naming the ones there are.
fn sample_event(function: &str, name: &str) -> Result<Value> {
    let dir = repo_root().join("events").join(function);
    let file = dir.join(format!("{}.json", name.trim_end_matches(".json")));
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            serde_json::from_str(&text).map_err(|e| BadValue(format!("{}: not JSON: {e}", file.display())).into())
        }
        Err(_) => {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".json").map(str::to_owned))
                .collect();
            names.sort();
            Err(BadValue(format!("--event {name}: no {}; {function}'s events: {}", file.display(), names.join(", ")))
                .into())
        }
    }
}

async fn call(sb: &Sandbox, region: &Region, function: &str, event: &Value) -> Result<Invocation> {
    let service = sb.lambda(region.as_str()).map_err(|e| Refused(format!("{e:#}")))?;
    service.invoke(function, event).await
}

pub async fn readiness(g: &Global, args: ReadinessArgs) -> Result<Exit> {
    let sb = loaded_sandbox(g)?;
    let d = sb.deployment();
    // The tester runs in the candidate's region: where a failover would run.
    let (region, event) = match &args.candidate {
        Some(c) => (sandbox_region(&sb, c)?, json!({ "candidate": c })),
        None => {
            let store = crate::arm::claim_store(&sb).await;
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), store.strong_read()).await;
            // Never guess the writer: the candidate would be wrong after a handover.
            let writer = match read.map(|r| r.proven()) {
                Ok(Ok(claim)) => claim.writer,
                Ok(Err(e)) => anyhow::bail!("reading the writer claim: {e}; name the region with --candidate REGION"),
                Err(_) => {
                    anyhow::bail!("the claim store did not answer within 5 s; name the region with --candidate REGION")
                }
            };
            (d.regions.peer_of(&writer).map_err(|e| Refused(e.message))?.clone(), json!({}))
        }
    };
    let report: Report = match call(&sb, &region, "readiness-tester", &event).await? {
        Invocation::Ok(payload) => serde_json::from_value(payload)?,
        Invocation::FunctionError { error_type, error_message } => {
            return Ok(function_error(g, &error_type, &error_message));
        }
    };
    match g.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => print!("{}", rule_table(&report)),
    }
    Ok(if report.ready { Exit::Done } else { Exit::Failed })
}

/// The report as a person reads it: the verdict, then a line per rule.
fn rule_table(r: &Report) -> String {
    let candidate = r.candidate.as_ref().map_or("?".to_owned(), |c| c.to_string());
    let writer =
        r.writer.as_ref().map_or("an unknown writer".to_owned(), |w| format!("{} (epoch {})", w.writer, w.epoch));
    let mut out = format!(
        "{candidate} taking over from {writer}: {} ({:.0} ms, checked from {})\n",
        if r.ready { "READY".to_owned() } else { format!("NOT READY: {}", r.not_passing.join(", ")) },
        r.duration_ms,
        r.checked_from
    );
    for rule in &r.rules {
        let verdict = match rule.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERROR",
            Verdict::Skipped => "skip",
        };
        out.push_str(&format!("  {verdict:<5} {:<17} {:>6.0} ms  {}\n", rule.rule, rule.duration_ms, rule.summary));
        if let Some(e) = &rule.error {
            out.push_str(&format!("  {:<5} {:<17} {:>9}  {e}\n", "", "", ""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_functions_error_names_the_exit_code() {
        assert_eq!(function_error_exit("InvalidInput"), Exit::Usage);
        assert_eq!(function_error_exit("LagAboveBudget"), Exit::Refused);
        assert_eq!(function_error_exit("NothingToDo"), Exit::NothingToDo);
        assert_eq!(function_error_exit("Internal"), Exit::Failed);
        assert_eq!(function_error_exit("Runtime.ExitError"), Exit::Failed);
    }

    #[test]
    fn every_sample_event_is_found_by_name_and_a_wrong_name_lists_them() {
        assert!(sample_event("readiness-tester", "on-demand").is_ok());
        assert!(sample_event("rds-promoter", "gate-planned.json").is_ok());
        let e = sample_event("readiness-tester", "on-demnad").expect_err("no such event").to_string();
        assert!(e.contains("on-demand, scheduled"), "{e}");
    }
}
