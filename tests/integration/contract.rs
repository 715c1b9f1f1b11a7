//! Contracts between crates: one name everywhere.

use std::collections::BTreeSet;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use serde_json::{Value, json};
use switchyard_core::{
    ErrorCategory, ErrorName,
    ledger::{LOCK_LEASE, LOCK_TTL},
};
use switchyard_model::{Deployment, FUNCTIONS, STATE_MACHINES, function_arn_substitution};
use switchyard_sandbox::{definitions, runner};
use switchyard_tests::trial;

pub fn trials() -> Vec<Trial> {
    vec![
        trial("contract::each_model_function_is_a_crate_of_the_same_name", || Box::pin(function_crates())),
        trial("contract::asl_error_names_are_the_core_crate_s", || Box::pin(asl_error_names())),
        trial("contract::asl_substitutions_are_what_infra_provides", || Box::pin(asl_substitutions())),
        trial("contract::asl_timeouts_equal_the_lock_lifetime", || Box::pin(asl_timeouts())),
        trial("contract::asl_validator_and_cfn_lint_accept_the_definitions", || Box::pin(asl_validated())),
        trial("contract::an_operator_s_execution_waits_and_retries_as_defined", || Box::pin(timing_as_defined())),
        trial("contract::the_crate_graph_only_points_down", || Box::pin(crate_graph())),
        trial("contract::every_asl_path_resolves_in_the_typed_step_answers", || Box::pin(asl_paths_resolve())),
        trial("contract::the_two_machines_do_not_drift_apart", || Box::pin(machines_do_not_drift())),
        trial("contract::the_sandbox_s_modules_import_no_cycle", || Box::pin(sandbox_modules_acyclic())),
    ]
}

/// The modules of a crate (its `src/*.rs`, and `src/m/*.rs` as one module `m`) and the ones
/// each imports (`crate::m`, `crate::{m, …}`), comments left out.
fn module_imports(src: &std::path::Path) -> anyhow::Result<std::collections::BTreeMap<String, BTreeSet<String>>> {
    let mut graph = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(src)? {
        let path = entry?.path();
        let Some(module) = path.file_stem().and_then(|s| s.to_str()).filter(|m| *m != "lib") else { continue };
        let files: Vec<std::path::PathBuf> = if path.is_dir() {
            std::fs::read_dir(&path)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?
        } else {
            vec![path.clone()]
        };
        let mut code = String::new();
        for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "rs")) {
            let text = std::fs::read_to_string(file)?;
            code += &text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
            code += "\n";
        }
        let mut used = BTreeSet::new();
        let mut rest = code.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            // The top-level names of `crate::m::…` or of the group `crate::{m::{…}, n, …}`.
            let mut names = Vec::new();
            if let Some(group) = rest.strip_prefix('{') {
                let (mut depth, mut current, mut at_top) = (0, String::new(), true);
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            names.push(std::mem::take(&mut current));
                            at_top = true;
                            continue;
                        }
                        ':' if depth == 0 => at_top = false,
                        _ if depth == 0 && at_top => current.push(c),
                        _ => {}
                    }
                }
                names.push(current);
            } else {
                names.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
            }
            for name in names {
                let name = name.trim();
                if !name.is_empty() && name != module && name.chars().all(|c| c.is_lowercase() || c == '_') {
                    used.insert(name.to_owned());
                }
            }
        }
        graph.insert(module.to_owned(), used);
    }
    Ok(graph)
}

/// The sandbox's modules form layers (see its lib.rs): no module imports one that imports it
/// back, directly or not. The crate once had `package` ↔ `tools` and `aws` → `stepfunctions`
/// → `sandbox` cycles.
async fn sandbox_modules_acyclic() -> anyhow::Result<()> {
    let graph = module_imports(&switchyard_sandbox::workspace::repo_root().join("infra/sandbox/src"))?;
    ensure!(graph.len() >= 10 && graph["instance"].contains("aws"), "the reader missed imports: {graph:?}");
    fn reaches(
        graph: &std::collections::BTreeMap<String, BTreeSet<String>>,
        from: &str,
        to: &str,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        graph
            .get(from)
            .into_iter()
            .flatten()
            .any(|m| m == to || (seen.insert(m.clone()) && reaches(graph, m, to, seen)))
    }
    for module in graph.keys() {
        ensure!(
            !reaches(&graph, module, module, &mut BTreeSet::new()),
            "{module} imports itself through {:?}",
            graph[module]
        );
    }
    Ok(())
}

/// What may differ between a state both machines have: each machine's `mode` and `entry`
/// (the switchover is operator-only), comments, the failover's overrides (`allowDataLoss`,
/// `ignoreCooldown`) and Gate's next state (Fence runs straight after it, the switchover's
/// CatchUp after Fence), and the page's subject.
const MAY_DIFFER: &[&str] = &[
    "/Comment",
    "/Parameters/mode",
    "/Parameters/entry",
    "/Parameters/allowDataLoss.$",
    "/Parameters/ignoreCooldown.$",
    "/Parameters/Subject",
];

/// The two definitions are written by hand (one reviewable file per workflow, as AWS's
/// samples keep them), so a shared state changed in one file only is a failure here: they
/// share most states, and those must stay equal but for [`MAY_DIFFER`].
async fn machines_do_not_drift() -> anyhow::Result<()> {
    let defs: std::collections::BTreeMap<_, _> = definitions()?.into_iter().collect();
    let (failover, switchover) = (&defs["failover"]["States"], &defs["switchover"]["States"]);
    let strip = |state: &Value, name: &str| {
        let mut s = state.clone();
        for p in MAY_DIFFER {
            let (parent, key) = p.rsplit_once('/').unwrap_or_default();
            if let Some(o) = s.pointer_mut(parent).and_then(Value::as_object_mut) {
                o.remove(key);
            }
        }
        // Gate's successor differs by design (Fence, then CatchUp only when planned).
        if name == "Fence" || name == "Gate" {
            s.as_object_mut().map(|o| o.remove("Next"));
        }
        s
    };
    let mut shared = Vec::new();
    for (name, f) in failover.as_object().context("States")? {
        let Some(s) = switchover.get(name) else { continue };
        ensure!(strip(f, name) == strip(s, name), "state {name} differs beyond {MAY_DIFFER:?}:\n{f:#}\n{s:#}");
        shared.push(name.clone());
    }
    ensure!(shared.len() >= 24, "only {} shared states: {shared:?}", shared.len());
    // One name per action: a promoter action runs in the state of its name, in both machines.
    for states in [failover, switchover] {
        for (name, state) in states.as_object().into_iter().flatten() {
            if let Some(action) = state["Parameters"]["action"].as_str() {
                let expected: Vec<String> = match action {
                    "end" => vec!["EndSucceeded".into(), "EndFailed".into()],
                    other => vec![switchyard_model::pascal(other)],
                };
                ensure!(expected.contains(name), "state {name} runs action {action}: name it {expected:?}");
            }
        }
    }
    Ok(())
}

/// The answer a task state's function gives, as its type serializes it, with every optional
/// field empty (so a path through an optional part fails here).
fn answer_of(state: &Value) -> anyhow::Result<Option<Value>> {
    use switchyard_core::{
        DnsMode, FailoverMode, GateDecision, LagVerdict, WriterClaim, WriterEpoch, ledger::Timeline, order::Timestamp,
        ports::StepState, steps::*,
    };
    let region = |s: &str| s.parse::<switchyard_core::Region>().map_err(|e| anyhow::anyhow!("{e}"));
    let (east1, east2) = (region("us-east-1")?, region("us-east-2")?);
    let claim = WriterClaim::active(WriterEpoch(2), east2.clone());
    let now = Timestamp::now();
    let step = |action, result: Value| {
        serde_json::to_value(StepAnswer { action, target_region: east2.clone(), at_ms: 0, result })
    };
    let resource = state["Resource"].as_str().unwrap_or_default();
    let action = state["Parameters"]["action"].as_str();
    let answer = match (resource, action) {
        ("arn:aws:states:::sns:publish", _) => return Ok(None),
        ("${RdsPromoterFunctionArn}", Some("begin")) => serde_json::to_value(BeginAnswer {
            execution: "x".into(),
            incident: "i".into(),
            mode: FailoverMode::Unplanned,
            target_region: east2.clone(),
            old_writer: east1.clone(),
            allow_data_loss: false,
            ignore_cooldown: false,
            outcome: BeginOutcome::Acquired,
            claim: claim.clone(),
            expected_epoch: None,
            lock_expires_at: None,
            cause: None,
        })?,
        ("${RdsPromoterFunctionArn}", Some("gate")) => step(
            PromoterAction::Gate,
            serde_json::to_value(GateResult {
                handover: HandoverPlan::Bump,
                claim: claim.clone(),
                gate: Some(GateDecision {
                    mode: FailoverMode::Unplanned,
                    verdict: LagVerdict::Unknown,
                    lag: None,
                    orders_in_lag: None,
                    data_loss_accepted: false,
                }),
                lag_measured_from: None,
            })?,
        )?,
        ("${RdsPromoterFunctionArn}", Some("fence")) => step(
            PromoterAction::Fence,
            serde_json::to_value(FenceResult { state: FenceState::Unreachable, fenced: None, reason: None })?,
        )?,
        ("${RdsPromoterFunctionArn}", Some("catchUp")) => step(
            PromoterAction::CatchUp,
            serde_json::to_value(CatchUpResult { state: StepState::Done, handover: HandoverPlan::Bump })?,
        )?,
        ("${RdsPromoterFunctionArn}", Some("promote")) => {
            step(PromoterAction::Promote, serde_json::to_value(PromoteResult { state: StepState::InProgress })?)?
        }
        ("${RdsPromoterFunctionArn}", Some("record")) => step(
            PromoterAction::Record,
            serde_json::to_value(RecordResult {
                state: StepState::Done,
                claim: WriterClaim::pending(claim.epoch, claim.writer.clone()),
                changed: false,
                lease_seconds: 6,
            })?,
        )?,
        ("${RdsPromoterFunctionArn}", Some("activate")) => step(
            PromoterAction::Activate,
            serde_json::to_value(ActivateResult { state: StepState::Done, claim: claim.clone(), changed: false })?,
        )?,
        ("${RdsPromoterFunctionArn}", Some("end")) => serde_json::to_value(EndAnswer {
            timeline: Timeline::start("x", "i", FailoverMode::Unplanned, east1.clone(), east2.clone(), now),
            lock_released: false,
            writer: None,
            subject: "s".into(),
            message: "m".into(),
        })?,
        ("${DnsSwitcherFunctionArn}", None) => serde_json::to_value(SwitchAnswer {
            state: StepState::InProgress,
            mode: DnsMode::HealthCheck,
            claim: claim.clone(),
            previous_target: None,
            changed: true,
            at: now,
        })?,
        ("${OrderConsumerFunctionArn}", None) => serde_json::to_value(ActivationAnswer {
            region: east2.clone(),
            epoch: claim.epoch,
            first_applied_at: None,
            applied_under_epoch: 0,
        })?,
        ("${HealthProbeFunctionArn}", None) => serde_json::to_value(HealthAnswer::default())?,
        other => anyhow::bail!("no answer type for a task of {other:?}: add it to switchyard_core::steps"),
    };
    Ok(Some(answer))
}

/// Every path in a state that reads the state's input (`$.…`): Choice variables, `….$`
/// parameters (also inside intrinsic functions), a Fail's ErrorPath/CausePath. Context paths
/// (`$$.…`) are Step Functions' own.
fn paths_read(value: &Value, out: &mut Vec<String>) {
    fn from_text(text: &str, out: &mut Vec<String>) {
        let mut rest = text;
        while let Some(i) = rest.find("$.") {
            if i > 0 && rest.as_bytes()[i - 1] == b'$' {
                rest = &rest[i + 2..];
                continue;
            }
            let path: String =
                rest[i..].chars().take_while(|c| c.is_alphanumeric() || matches!(c, '$' | '.' | '_')).collect();
            out.push(path);
            rest = &rest[i + 2..];
        }
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("Variable" | "ErrorPath" | "CausePath" | "SecondsPath", Value::String(s)) => from_text(s, out),
                    (k, Value::String(s)) if k.ends_with(".$") => from_text(s, out),
                    _ => paths_read(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| paths_read(v, out)),
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let rest = path.strip_prefix('$')?;
    rest.split('.').filter(|s| !s.is_empty()).try_fold(doc, |v, key| v.as_object()?.get(key))
}

fn set(doc: &mut Value, path: &str, value: Value) {
    let keys: Vec<&str> = path.trim_start_matches('$').split('.').filter(|s| !s.is_empty()).collect();
    let mut at = doc;
    for key in &keys {
        if !at.is_object() {
            *at = json!({});
        }
        at = at.as_object_mut().map(|m| m.entry(*key).or_insert(Value::Null)).unwrap_or_else(|| unreachable!());
    }
    *at = value;
}

/// Every JSONPath the ASL files read resolves in the serialized answers of the steps that
/// write there (`switchyard_core::steps`), so a renamed or optional field fails here, not in
/// an execution. The document is the state after every task has answered once.
async fn asl_paths_resolve() -> anyhow::Result<()> {
    for (machine, definition) in definitions()? {
        let states = definition["States"].as_object().context("States")?;
        let mut doc = json!({
            "input": {},
            "steps": {},
            "polls": { "catchUp": { "n": 0 }, "promote": { "n": 0 }, "traffic": { "n": 0 }, "consumer": { "n": 0 } },
            "error": { "Error": "InvalidInput", "Cause": "{}" },
        });
        let mut selected = Vec::new();
        for (name, state) in states {
            if state["Type"] != "Task" {
                continue;
            }
            let Some(answer) = answer_of(state).with_context(|| format!("{machine}.{name}"))? else { continue };
            // A ResultSelector reads the raw answer and keeps what it names.
            let kept = match state.get("ResultSelector") {
                Some(selector) => {
                    let mut paths = Vec::new();
                    paths_read(selector, &mut paths);
                    for p in &paths {
                        ensure!(
                            resolve(&answer, p).is_some(),
                            "{machine}.{name}: ResultSelector path {p} not in the answer"
                        );
                    }
                    selected.push(name.clone());
                    let mut kept = json!({});
                    for (k, v) in selector.as_object().into_iter().flatten() {
                        let key = k.trim_end_matches(".$");
                        let value = v.as_str().and_then(|p| resolve(&answer, p)).cloned().unwrap_or(Value::Null);
                        kept[key] = value;
                    }
                    kept
                }
                None => answer,
            };
            if let Some(path) = state["ResultPath"].as_str() {
                set(&mut doc, path, kept);
            }
        }
        let expected: &[&str] =
            if machine != "switchover" { &["ConfirmOutage", "VerifyHealth"] } else { &["VerifyHealth"] };
        ensure!(selected == expected, "{machine}: ResultSelectors in {selected:?}");
        let mut checked = 0;
        for (name, state) in states {
            let mut paths = Vec::new();
            let mut reading = state.clone();
            if let Some(o) = reading.as_object_mut() {
                o.remove("ResultSelector");
            }
            paths_read(&reading, &mut paths);
            for p in paths {
                ensure!(resolve(&doc, &p).is_some(), "{machine}.{name} reads {p}, which no step's answer has");
                checked += 1;
            }
        }
        ensure!(checked > 30, "{machine}: only {checked} paths found: the reader misses some");
    }
    Ok(())
}

/// Which of our crates each of our crates may depend on (normal, build and dev dependencies
/// alike). The core depends on none of ours; the model on the core; adapters on the core (and
/// the model); functions on adapters; the sandbox on adapters; the CLI on the sandbox; nothing
/// but the tests on xtask. A crate missing from this table is a failure too: a new crate is a
/// decision about its place.
const ALLOWED_EDGES: &[(&str, &[&str])] = &[
    ("switchyard-core", &[]),
    ("switchyard-model", &["switchyard-core"]),
    ("switchyard-postgres", &["switchyard-core"]),
    ("switchyard-aws", &["switchyard-core", "switchyard-model"]),
    ("switchyard-lambda", &["switchyard-core"]),
    ("switchyard-stacks", &["switchyard-core", "switchyard-model"]),
    ("health-probe", FUNCTION_DEPENDENCIES),
    ("readiness-tester", FUNCTION_DEPENDENCIES),
    ("rds-promoter", FUNCTION_DEPENDENCIES),
    ("dns-switcher", FUNCTION_DEPENDENCIES),
    ("order-consumer", FUNCTION_DEPENDENCIES),
    ("switchyard-sandbox", &["switchyard-core", "switchyard-model", "switchyard-aws", "switchyard-postgres"]),
    ("switchyard-cli", &["switchyard-core", "switchyard-model", "switchyard-aws", "switchyard-sandbox"]),
    ("xtask", &["switchyard-core", "switchyard-model", "switchyard-sandbox", "switchyard-stacks"]),
    ("switchyard-tests", &["*"]),
];

const FUNCTION_DEPENDENCIES: &[&str] =
    &["switchyard-core", "switchyard-model", "switchyard-aws", "switchyard-postgres", "switchyard-lambda"];

/// The edges between workspace crates that [`ALLOWED_EDGES`] does not allow.
fn forbidden_edges(edges: &[(String, String)]) -> Vec<String> {
    edges
        .iter()
        .filter(|(from, to)| {
            let allowed = ALLOWED_EDGES.iter().find(|(name, _)| name == from).map(|(_, to)| *to);
            !allowed.is_some_and(|a| a.contains(&"*") || a.contains(&to.as_str()))
        })
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect()
}

async fn crate_graph() -> anyhow::Result<()> {
    let out = switchyard_sandbox::workspace::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .output()?;
    ensure!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let metadata: Value = serde_json::from_slice(&out.stdout)?;
    let packages = metadata["packages"].as_array().context("packages")?;
    let ours: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut edges = Vec::new();
    for p in packages {
        let from = p["name"].as_str().unwrap_or_default();
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let to = d["name"].as_str().unwrap_or_default();
            if ours.contains(to) {
                edges.push((from.to_owned(), to.to_owned()));
            }
        }
        ensure!(ALLOWED_EDGES.iter().any(|(name, _)| *name == from), "{from}: not in ALLOWED_EDGES");
    }
    ensure!(edges.len() > 20, "read {} edges: the metadata is not what this test expects", edges.len());
    let forbidden = forbidden_edges(&edges);
    ensure!(forbidden.is_empty(), "edges pointing up or sideways: {forbidden:?}");
    // The check itself refuses what it must: an adapter in the core, xtask in a function.
    let broken =
        [("switchyard-core", "switchyard-aws"), ("rds-promoter", "xtask"), ("switchyard-aws", "switchyard-postgres")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()));
    ensure!(forbidden_edges(&broken).len() == broken.len(), "the table lets a broken graph through");
    Ok(())
}

/// What `switchyard execute` runs ([`Timing::AsDefined`]): a Wait lasts its `Seconds`, and a
/// task error no Retry matches goes to the Catch. The runner used to get `null` overrides
/// from the CLI: every Wait took ~0 ms and every task error crashed it with a TypeError.
async fn timing_as_defined() -> anyhow::Result<()> {
    let missing = "arn:aws:lambda:us-east-1:123456789012:function:not-in-the-sandbox";
    let definition = serde_json::json!({
        "StartAt": "Pause",
        "States": {
            "Pause": { "Type": "Wait", "Seconds": 1, "Next": "Call" },
            "Call": {
                "Type": "Task",
                "Resource": missing,
                "Retry": [{ "ErrorEquals": ["Throttled"], "IntervalSeconds": 1, "MaxAttempts": 2 }],
                "Catch": [{ "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught" }],
                "End": true
            },
            "Caught": { "Type": "Pass", "End": true }
        }
    });
    let spec = runner::RunnerSpec {
        definition,
        input: serde_json::json!({}),
        name: "timing".into(),
        state_machine: "timing".into(),
        lambda: Default::default(),
        aws_endpoint: "http://127.0.0.1:9".into(),
        timing: runner::Timing::AsDefined,
        abort_at: None,
    };
    let x = runner::run(&spec).await?;
    let history = x.history();
    ensure!(x.succeeded(), "the Catch path ends the execution: {history}");
    ensure!(x.path() == ["Pause", "Call", "Caught"], "{history}");
    let at = |kind: &str| {
        x.events_of(kind).find(|e| e["state"]["name"] == "Pause").and_then(|e| e["timestamp"].as_u64()).unwrap_or(0)
    };
    let waited = at("StateExited").saturating_sub(at("StateEntered"));
    ensure!(waited >= 1000, "the 1 s Wait lasted {waited} ms: {history}");
    // The execution's TimeoutSeconds, which the runner does not enforce itself: a run past
    // it ends TIMED_OUT where it stood (#18: what the abandoned-execution rule answers).
    let mut slow = spec.clone();
    slow.definition["TimeoutSeconds"] = serde_json::json!(1);
    slow.definition["States"]["Pause"]["Seconds"] = serde_json::json!(5);
    let x = runner::run(&slow).await?;
    ensure!(x.status == "TIMED_OUT" && x.path() == ["Pause"], "{}", x.history());
    Ok(())
}

fn definitions() -> anyhow::Result<Vec<(&'static str, Value)>> {
    STATE_MACHINES
        .iter()
        .map(|(name, _)| Ok((*name, serde_json::from_str(&definitions::definition_text(name)?)?)))
        .collect()
}

fn states(definition: &Value) -> impl Iterator<Item = (&String, &Value)> {
    definition["States"].as_object().into_iter().flatten()
}

/// Names Step Functions itself raises for Lambda tasks and intrinsic failures.
fn is_service_error(name: &str) -> bool {
    name.starts_with("States.")
        || [
            "Lambda.ServiceException",
            "Lambda.AWSLambdaException",
            "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException",
        ]
        .contains(&name)
}

/// Every error name in a `Retry`/`Catch` (or raised by a `Pass`) is the core crate's or the
/// service's; every transient core name is retried by every Lambda task; no fatal name is
/// ever retried.
async fn asl_error_names() -> anyhow::Result<()> {
    let transient: Vec<&str> = ErrorName::ALL.iter().filter(|n| n.is_transient()).map(|n| n.as_str()).collect();
    for (machine, d) in definitions()? {
        for (state, s) in states(&d) {
            let mut named: Vec<&str> = Vec::new();
            for field in ["Retry", "Catch"] {
                for r in s[field].as_array().into_iter().flatten() {
                    named.extend(r["ErrorEquals"].as_array().into_iter().flatten().filter_map(Value::as_str));
                }
            }
            named.extend(s["Parameters"]["Error"].as_str());
            named.extend(s["Error"].as_str());
            for name in &named {
                ensure!(
                    is_service_error(name) || ErrorName::parse(name).is_some(),
                    "{machine}.{state}: error name {name} is unknown to switchyard_core::ErrorName"
                );
            }
            let retried: Vec<&str> = s["Retry"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["ErrorEquals"].as_array().into_iter().flatten().filter_map(Value::as_str))
                .collect();
            for name in &retried {
                let fatal = ErrorName::parse(name).is_some_and(|n| n.category() == ErrorCategory::Fatal);
                ensure!(!fatal, "{machine}.{state} retries the fatal {name}");
            }
            if s["Resource"].as_str().is_some_and(|r| r.ends_with("FunctionArn}")) {
                for name in &transient {
                    ensure!(retried.contains(name), "{machine}.{state} does not retry the transient {name}");
                }
            }
        }
    }
    Ok(())
}

/// Every `${...}` in a definition is a substitution `infra` provides, and `infra` provides
/// nothing a definition does not use.
async fn asl_substitutions() -> anyhow::Result<()> {
    let d = Deployment::sandbox();
    for (machine, _) in STATE_MACHINES {
        let used = definitions::placeholders(&definitions::definition_text(machine)?);
        for region in d.regions.iter() {
            let provided: BTreeSet<String> =
                d.state_machine_substitutions(region, "123456789012", machine).into_keys().collect();
            ensure!(used == provided, "{machine}: uses {used:?}, infra provides {provided:?}");
        }
        for f in FUNCTIONS {
            // Every function but the readiness tester (scheduled only) is a task of a failover.
            if f != "readiness-tester" {
                ensure!(used.contains(&function_arn_substitution(f)), "{machine} never invokes {f}");
            }
        }
    }
    Ok(())
}

/// The failover lock expires when an execution would have timed out, not before.
async fn asl_timeouts() -> anyhow::Result<()> {
    for (machine, d) in definitions()? {
        ensure!(
            d["TimeoutSeconds"].as_u64() == Some(LOCK_TTL.as_secs()),
            "{machine}: TimeoutSeconds {} but the lock lives {} s",
            d["TimeoutSeconds"],
            LOCK_TTL.as_secs()
        );
        // After Activate no promoter step renews the lock until EndSucceeded: the bounded
        // traffic and consumer polls' waits must leave a minute of the lease for the tasks.
        let states = &d["States"];
        let mut waited = 0;
        for (choice, wait) in [("Switched", "WaitForTraffic"), ("FirstOrderApplied", "WaitForFirstOrder")] {
            let bound = states[choice]["Choices"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|c| c["NumericGreaterThanEquals"].as_u64().or(c["NumericLessThan"].as_u64()))
                .with_context(|| format!("{machine}.{choice} has no poll bound"))?;
            waited += bound * states[wait]["Seconds"].as_u64().with_context(|| format!("{machine}.{wait}"))?;
        }
        ensure!(
            waited + 60 <= LOCK_LEASE.as_secs(),
            "{machine}: {waited} s of polls after Activate leave less than a minute of the {} s lock lease",
            LOCK_LEASE.as_secs()
        );
        // Every bounded loop at its worst (each poll's Wait plus what that poll may wait
        // itself) leaves two minutes of the execution's timeout for the other tasks, so a
        // slow loop ends in its caught StepTimedOut, not in the uncaught timeout.
        let loops = [
            ("CaughtUp", "WaitForCatchUp", 0),
            ("Promoted", "WaitForPromotion", switchyard_postgres::PROMOTE_POLL_WAIT.as_secs()),
            ("Switched", "WaitForTraffic", switchyard_aws::route53_records::SYNC_WAIT.as_secs()),
            ("FirstOrderApplied", "WaitForFirstOrder", 0),
        ];
        let mut worst = 0;
        for (choice, wait, per_poll) in loops {
            let Some(choices) = states[choice]["Choices"].as_array() else { continue };
            let bound = choices
                .iter()
                .find_map(|c| c["NumericGreaterThanEquals"].as_u64().or(c["NumericLessThan"].as_u64()))
                .with_context(|| format!("{machine}.{choice} has no poll bound"))?;
            worst +=
                bound * (states[wait]["Seconds"].as_u64().with_context(|| format!("{machine}.{wait}"))? + per_poll);
        }
        ensure!(
            worst + 120 <= LOCK_TTL.as_secs(),
            "{machine}: its poll loops may take {worst} s of its {} s",
            LOCK_TTL.as_secs()
        );
    }
    Ok(())
}

/// `asl-validator` (graph, paths) and cfn-lint's state machine rule (E3601, on a template
/// that embeds the definition as a `Definition` object with `DefinitionSubstitutions`, as
/// the stacks do) accept both definitions.
async fn asl_validated() -> anyhow::Result<()> {
    runner::ensure_node_tools()?;
    switchyard_sandbox::tools::ensure_python_tools()?;
    let dir = switchyard_sandbox::workspace::repo_root().join("target/contract");
    std::fs::create_dir_all(&dir)?;
    let d = Deployment::sandbox();
    let region = &d.regions.standby;
    for (machine, file) in STATE_MACHINES {
        let out = asl_validator(&switchyard_sandbox::workspace::repo_root().join(file))?;
        ensure!(out.status.success(), "asl-validator refused {file}: {}", String::from_utf8_lossy(&out.stdout));
        let template = json!({
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {
                "StateMachine": {
                    "Type": "AWS::StepFunctions::StateMachine",
                    "Properties": {
                        "StateMachineName": format!("switchyard-sandbox-{machine}"),
                        "RoleArn": "arn:aws:iam::123456789012:role/switchyard-sandbox-states",
                        "Definition": serde_json::from_str::<Value>(&definitions::definition_text(machine)?)?,
                        "DefinitionSubstitutions": d.state_machine_substitutions(region, "123456789012", machine),
                    }
                }
            }
        });
        let path = dir.join(format!("{machine}-state-machine.template.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&template)?)?;
        let lint = cfn_lint(&path, region.as_str())?;
        ensure!(lint.status.success(), "cfn-lint on {machine}: {}", String::from_utf8_lossy(&lint.stdout));

        // Both tools can fail: a broken copy (a retry's BackoffRate not a number, a
        // transition to no state) is refused by each.
        let mut broken = template.clone();
        let states = &mut broken["Resources"]["StateMachine"]["Properties"]["Definition"]["States"];
        states["Gate"]["Retry"][0]["BackoffRate"] = json!("fast");
        states["Begin"]["Next"] = json!("Nowhere");
        let broken_path = dir.join(format!("{machine}-broken.template.json"));
        std::fs::write(&broken_path, serde_json::to_string_pretty(&broken)?)?;
        ensure!(!cfn_lint(&broken_path, region.as_str())?.status.success(), "cfn-lint accepted a broken {machine}");
        let definition_path = dir.join(format!("{machine}-broken.asl.json"));
        std::fs::write(&definition_path, broken["Resources"]["StateMachine"]["Properties"]["Definition"].to_string())?;
        ensure!(!asl_validator(&definition_path)?.status.success(), "asl-validator accepted a broken {machine}");
    }
    Ok(())
}

use crate::infra::cfn_lint;

fn asl_validator(definition: &std::path::Path) -> anyhow::Result<std::process::Output> {
    Ok(std::process::Command::new(runner::node())
        .arg(
            switchyard_sandbox::workspace::repo_root()
                .join("infra/sandbox/stepfunctions/node_modules/asl-validator/dist/bin/asl-validator.js"),
        )
        .arg("--json-path")
        .arg(definition)
        .output()?)
}

/// `rds-promoter` is the crate dir, the package, the binary and the model's name.
async fn function_crates() -> anyhow::Result<()> {
    let root = switchyard_sandbox::workspace::repo_root();
    for name in FUNCTIONS {
        let manifest = root.join("functions").join(name).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).with_context(|| format!("{} missing", manifest.display()))?;
        ensure!(
            text.contains(&format!("name = \"{name}\"")),
            "{} does not name the package {name}",
            manifest.display()
        );
        ensure!(root.join("functions").join(name).join("src/main.rs").exists(), "{name} is not a binary crate");
    }
    let dirs: Vec<String> = std::fs::read_dir(root.join("functions"))?
        .flatten()
        .filter(|e| e.path().join("src/main.rs").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ensure!(dirs.len() == FUNCTIONS.len(), "binary crates {dirs:?} differ from the model's {FUNCTIONS:?}");
    Ok(())
}
