//! The state machines' definitions as deployed: `statemachines/*.asl.json` with the
//! `DefinitionSubstitutions` the stacks give them ([`Deployment::state_machine_substitutions`]),
//! and their registration in moto (`create_state_machine`, same definition) so that what reads
//! Step Functions (the readiness tester) finds them. moto runs none of them: [`crate::runner`]
//! does.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use switchyard_core::Region;
use switchyard_model::{Deployment, STATE_MACHINES};

use crate::workspace::repo_root;

/// moto's account.
pub const SANDBOX_ACCOUNT: &str = "123456789012";

/// A definition file's text, by state machine name (one of `STATE_MACHINES`).
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
    substitute(&definition_text(machine)?, &d.state_machine_substitutions(region, SANDBOX_ACCOUNT, machine))
}

/// Registers every state machine of every region with moto, under the model's names.
pub async fn register(target: &switchyard_aws::AwsTarget, d: &Deployment) -> Result<()> {
    for region in d.regions.iter() {
        let sfn = aws_sdk_sfn::Client::new(&switchyard_aws::sdk_config(target, region).await);
        let names = d.regional_names(region);
        for (machine, name) in names.state_machines() {
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
