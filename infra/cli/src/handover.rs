//! `switchyard switchover --to REGION` and `switchyard failover --to REGION`: move the writer
//! as an operator does, and answer with what happened instead of the execution's history.
//!
//! Each runs the region's state machine in the sandbox with the definition's own waits
//! (`execute` is the same run, raw), streams one line per state as it is first entered
//! (polls and retries collapsed), and ends in a summary from the execution's timeline in the
//! claim store: the verdict, where the writer is, the RTO, the data at risk, the old writer's
//! fence. A failover with an override runs through the operator entry (`operator-failover`)
//! and needs a reason.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};
use switchyard_aws::control_table::ControlTable;
use switchyard_core::{
    ErrorName, WriterClaim,
    ledger::{ExecutionLedger, Timeline},
    order::Timestamp,
    ports::ClaimStore,
};
use switchyard_sandbox::runner::{Execution, Start, Timing, execute_observed};

use crate::{BadValue, Exit, Global, Output, Refused, execute, loaded_sandbox};

/// Every read of the summary is bounded: a claim store that does not answer is reported.
const READ_DEADLINE: Duration = Duration::from_secs(5);

/// What both commands take besides the target.
#[derive(Debug, Clone, Args)]
pub struct Said {
    /// Why, for the timeline and the page (default: "<switchover|failover> by $USER"; an
    /// override needs one of its own).
    #[arg(long)]
    pub reason: Option<String>,
    /// The execution name (default: <state machine>-<unix ms>).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct SwitchoverArgs {
    /// The region the writer moves to; the switchover runs there. Never loses data.
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub said: Said,
}

#[derive(Debug, Clone, Args)]
pub struct FailoverArgs {
    /// The region the writer moves to (it must be armed); the failover runs there.
    #[arg(long)]
    pub to: String,
    /// Fail over even above the RPO budget, or into a standby that may lack acknowledged
    /// orders. Runs through the operator entry; needs --reason.
    #[arg(long)]
    pub allow_data_loss: bool,
    /// Fail over within the cooldown after the last handover. Runs through the operator
    /// entry; needs --reason.
    #[arg(long)]
    pub ignore_cooldown: bool,
    #[command(flatten)]
    pub said: Said,
}

pub async fn switchover(g: &Global, args: SwitchoverArgs) -> Result<Exit> {
    let sb = loaded_sandbox(g)?;
    let to = execute::sandbox_region(&sb, &args.to)?;
    let from = sb.deployment().regions.peer_of(&to).map_err(|e| Refused(e.message))?.clone();
    let reason = args.said.reason.unwrap_or_else(|| format!("switchover by {}", user()));
    let input = json!({ "from": from, "to": to, "trigger": "manual", "reason": reason });
    let name = args.said.name.unwrap_or_else(|| format!("switchover-{}", Timestamp::now().unix_millis()));
    hand_over(g, &sb, "switchover", &to, input, name).await
}

pub async fn failover(g: &Global, args: FailoverArgs) -> Result<Exit> {
    let overrides = args.allow_data_loss || args.ignore_cooldown;
    if overrides && args.said.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(BadValue(
            "--allow-data-loss and --ignore-cooldown are a person's decision: say why with --reason TEXT".into(),
        )
        .into());
    }
    let sb = loaded_sandbox(g)?;
    let to = execute::sandbox_region(&sb, &args.to)?;
    let mut input = json!({
        // Detected now: a person saw it (an alarm's execution carries the alarm's time).
        "detectedAt": Timestamp::now().to_string(),
        "trigger": "manual",
        "reason": args.said.reason.unwrap_or_else(|| format!("failover by {}", user())),
    });
    if args.allow_data_loss {
        input["allowDataLoss"] = json!(true);
    }
    if args.ignore_cooldown {
        input["ignoreCooldown"] = json!(true);
    }
    // Overrides only through the operator entry (the automatic one refuses them).
    let machine = if overrides { "operator-failover" } else { "failover" };
    let name = args.said.name.unwrap_or_else(|| format!("{machine}-{}", Timestamp::now().unix_millis()));
    hand_over(g, &sb, machine, &to, input, name).await
}

fn user() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "an operator".into())
}

async fn hand_over(
    g: &Global,
    sb: &switchyard_sandbox::Sandbox,
    machine: &'static str,
    to: &switchyard_core::Region,
    input: Value,
    name: String,
) -> Result<Exit> {
    let table = g.output == Output::Table;
    if table {
        println!("{machine} to {to}: execution {name}");
    }
    let began = Instant::now();
    let mut progress = Progress::default();
    let mut observer = |e: &Value| {
        if let Some(line) = progress.line(e, began.elapsed())
            && table
        {
            println!("{line}");
        }
    };
    let start = Start::new(machine, to.as_str(), name.clone(), input, Timing::AsDefined)?;
    let x = execute_observed(sb, &start, &mut observer).await?;
    let exit = execute::verdict(&x);
    let (timeline, writer) = read_back(sb, to, &name).await;
    let summary = Summary { machine, x: &x, exit, timeline: timeline.as_ref(), writer: writer.as_ref() };
    match g.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&summary.json(&progress))?),
        Output::Table => {
            print!("{}", summary.table(&progress));
            if let Some(error) = summary.error_line() {
                eprintln!("{error}");
            }
        }
    }
    Ok(exit)
}

/// The execution's timeline and the writer claim, as `to`'s region reads the claim store.
async fn read_back(
    sb: &switchyard_sandbox::Sandbox,
    to: &switchyard_core::Region,
    execution: &str,
) -> (Option<Timeline>, Option<WriterClaim>) {
    let d = sb.deployment();
    let config = switchyard_aws::sdk_config(&sb.aws_target(), to).await;
    let store = ControlTable::new(aws_sdk_dynamodb::Client::new(&config), d.regional_names(to).control_table);
    let read = async {
        let timeline = store.timeline(execution).await.ok().flatten();
        let writer = store.strong_read().await.proven().ok();
        (timeline, writer)
    };
    tokio::time::timeout(READ_DEADLINE, read).await.unwrap_or((None, None))
}

/// What has been shown of a run: each state once, with how often it was entered.
#[derive(Debug, Default)]
struct Progress {
    entered: BTreeMap<String, u32>,
    /// States in the order first entered.
    order: Vec<String>,
}

impl Progress {
    /// The line to show for one history event, if any: a state entered the first time, a
    /// state that failed, a retry the first time a state is retried.
    fn line(&mut self, e: &Value, elapsed: Duration) -> Option<String> {
        let state = e["state"]["name"].as_str().unwrap_or_default().to_owned();
        let at = format!("{:>7.1}s", elapsed.as_secs_f64());
        match e["type"].as_str()? {
            "StateEntered" => {
                let n = self.entered.entry(state.clone()).or_insert(0);
                *n += 1;
                (*n == 1).then(|| {
                    self.order.push(state.clone());
                    format!("{at}  {state}")
                })
            }
            "StateFailed" => Some(format!("{at}  ✗ {state}: {}", e["Error"].as_str().unwrap_or("failed"))),
            _ => None,
        }
    }

    /// Poll loops and retried states: entered more than once.
    fn repeated(&self) -> Vec<(String, u32)> {
        self.order.iter().filter_map(|s| self.entered.get(s).filter(|n| **n > 1).map(|n| (s.clone(), *n))).collect()
    }
}

struct Summary<'a> {
    machine: &'a str,
    x: &'a Execution,
    exit: Exit,
    timeline: Option<&'a Timeline>,
    writer: Option<&'a WriterClaim>,
}

impl Summary<'_> {
    fn verdict(&self) -> &'static str {
        match self.exit {
            Exit::Done => "done",
            Exit::NothingToDo => "nothingToDo",
            Exit::Refused => "refused",
            Exit::Usage | Exit::Failed => "failed",
        }
    }

    /// The error's own message (a function error's `errorMessage`), if the run failed.
    fn message(&self) -> Option<String> {
        self.x.cause.as_deref().map(execute::cause_message)
    }

    /// `error: Name: message; what to do`, for a run that did not succeed.
    fn error_line(&self) -> Option<String> {
        let name = self.x.error.as_deref()?;
        let hint = match ErrorName::parse(name) {
            Some(ErrorName::LagAboveBudget) => {
                "; a person may accept the loss: rerun with --allow-data-loss --reason TEXT"
            }
            Some(ErrorName::CooldownActive) => {
                "; if the new writer's outage is real: rerun with --ignore-cooldown --reason TEXT"
            }
            Some(ErrorName::Duplicate) => "; that execution does the work",
            Some(ErrorName::NothingToDo) => "; nothing to move",
            _ => "",
        };
        Some(format!("error: {name}: {}{hint}", self.message().unwrap_or_default()))
    }

    fn table(&self, progress: &Progress) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<14}{v}\n"));
        let exit = self.exit as u8;
        line("verdict", format!("{} (exit {exit}), {} {}", self.verdict(), self.machine, self.x.status));
        match self.writer {
            Some(w) => line("writer", format!("{} at epoch {} ({})", w.writer, w.epoch, w.phase)),
            None => line("writer", "unknown: the claim store did not answer".into()),
        }
        if let Some(t) = self.timeline {
            for (k, v) in crate::report::facts(t) {
                line(k, v);
            }
        }
        let repeated = progress.repeated();
        if !repeated.is_empty() {
            let polls: Vec<String> = repeated.iter().map(|(s, n)| format!("{s} ×{n}")).collect();
            line("polls", polls.join(", "));
        }
        line("execution", self.x.name.clone());
        out
    }

    fn json(&self, progress: &Progress) -> Value {
        json!({
            "execution": self.x.name,
            "machine": self.machine,
            "status": self.x.status,
            "verdict": self.verdict(),
            "exit": self.exit as u8,
            "error": self.x.error,
            "message": self.message(),
            "writer": self.writer,
            "timeline": self.timeline,
            "states": progress.order.iter().map(|s| json!({ "state": s, "entered": progress.entered[s] })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_is_shown_once_and_polls_are_counted() {
        let mut p = Progress::default();
        let entered = |s: &str| json!({ "type": "StateEntered", "state": { "name": s } });
        let shown: Vec<Option<String>> = ["Begin", "Promote", "WaitForPromotion", "Promote", "WaitForPromotion"]
            .iter()
            .map(|s| p.line(&entered(s), Duration::from_millis(1500)))
            .collect();
        assert_eq!(shown.iter().filter(|l| l.is_some()).count(), 3, "{shown:?}");
        assert_eq!(shown[0].as_deref(), Some("    1.5s  Begin"));
        assert_eq!(p.repeated(), vec![("Promote".to_owned(), 2), ("WaitForPromotion".to_owned(), 2)]);
        let failed = json!({ "type": "StateFailed", "state": { "name": "Gate" }, "Error": "LagAboveBudget" });
        assert_eq!(p.line(&failed, Duration::ZERO).as_deref(), Some("    0.0s  ✗ Gate: LagAboveBudget"));
    }
}
