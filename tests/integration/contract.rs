//! Contracts between crates: one name everywhere.

use std::collections::BTreeSet;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use serde_json::{Value, json};
use switchyard_core::{ErrorCategory, ErrorName, failover::LOCK_TTL};
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
    ]
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
                d.state_machine_substitutions(region, "123456789012").into_keys().collect();
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
                        "DefinitionSubstitutions": d.state_machine_substitutions(region, "123456789012"),
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
