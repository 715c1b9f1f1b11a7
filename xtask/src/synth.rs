//! `cargo xtask synth`: the CloudFormation templates of a deployment, emitted by
//! `switchyard-stacks` from the model, and what is committed from the model, which a test
//! keeps current: the reference templates (`infra/templates/`) and the configuration
//! reference (`docs/configuration.md`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use switchyard_core::Region;
use switchyard_model::{Deployment, DnsMode, STATE_MACHINES};
use switchyard_stacks::{global_stack, regional_stack};

use switchyard_sandbox::{definitions::definition_text, workspace::repo_root};

/// One emitted template: its file name, the region it is deployed in, its JSON.
#[derive(Debug, Clone)]
pub struct Emitted {
    pub file: String,
    pub region: Region,
    pub template: Value,
}

impl Emitted {
    /// The file's text: pretty JSON with a final newline, so diffs of the committed set read
    /// line by line.
    pub fn text(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(&switchyard_stacks::cfn::Sorted(&self.template))? + "\n")
    }
}

/// The three templates of `d`, in deployment order: global (in the primary region), primary,
/// standby. A deployment AWS would refuse (`Deployment::validate`) emits nothing.
pub fn emit(d: &Deployment) -> Result<Vec<Emitted>> {
    let problems = d.validate();
    if !problems.is_empty() {
        bail!("the deployment breaks documented AWS constraints:\n  {}", problems.join("\n  "));
    }
    let definitions: Vec<(&str, Value)> = STATE_MACHINES
        .iter()
        .map(|(machine, file)| {
            let text = definition_text(machine)?;
            Ok((*machine, serde_json::from_str(&text).with_context(|| format!("{file} is not JSON"))?))
        })
        .collect::<Result<_>>()?;
    let (primary, standby) = (&d.regions.primary, &d.regions.standby);
    Ok(vec![
        Emitted { file: "1-global.template.json".into(), region: primary.clone(), template: global_stack(d) },
        Emitted {
            file: format!("2-primary-{primary}.template.json"),
            region: primary.clone(),
            template: regional_stack(d, primary, &definitions),
        },
        Emitted {
            file: format!("3-standby-{standby}.template.json"),
            region: standby.clone(),
            template: regional_stack(d, standby, &definitions),
        },
    ])
}

/// The committed reference set: the sandbox's model in both DNS modes, one directory each.
pub fn reference_sets() -> Vec<(Deployment, PathBuf)> {
    [DnsMode::HealthCheck, DnsMode::Records]
        .into_iter()
        .map(|mode| {
            let d = Deployment { dns_mode: mode, ..Deployment::sandbox() };
            (d, repo_root().join("infra/templates").join(mode.as_str()))
        })
        .collect()
}

/// Writes `d`'s templates into `dir`; returns their paths.
pub fn write(d: &Deployment, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    emit(d)?
        .into_iter()
        .map(|e| {
            let path = dir.join(&e.file);
            std::fs::write(&path, e.text()?).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

/// The generated configuration reference.
pub fn configuration_reference_path() -> PathBuf {
    repo_root().join("docs/configuration.md")
}

/// Every committed template (and the configuration reference) that differs from what the
/// model emits now (or is missing, or should not be there), by path.
pub fn stale() -> Result<Vec<String>> {
    let mut stale = Vec::new();
    let reference = configuration_reference_path();
    if std::fs::read_to_string(&reference).ok() != Some(switchyard_model::configuration_reference()) {
        stale.push(reference.display().to_string());
    }
    for (path, text) in switchyard_model::order_schemas() {
        let path = repo_root().join(path);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    for (d, dir) in reference_sets() {
        let emitted = emit(&d)?;
        for e in &emitted {
            let path = dir.join(&e.file);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(e.text()?.as_str()) {
                stale.push(path.display().to_string());
            }
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !emitted.iter().any(|e| e.file == name) {
                    stale.push(format!("{} (emitted no more)", entry.path().display()));
                }
            }
        }
    }
    Ok(stale)
}

/// `cargo xtask synth [--check]`: rewrite the reference set, or only say whether it is stale.
pub fn reference(check: bool) -> Result<()> {
    if check {
        let stale = stale()?;
        if !stale.is_empty() {
            bail!("the committed templates are stale (run `cargo xtask synth`): {}", stale.join(", "));
        }
        println!("infra/templates, docs/configuration.md and docs/schemas are current");
        return Ok(());
    }
    std::fs::write(configuration_reference_path(), switchyard_model::configuration_reference())?;
    println!("docs/configuration.md");
    for (path, text) in switchyard_model::order_schemas() {
        let full = repo_root().join(&path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&full, text)?;
        println!("{path}");
    }
    for (d, dir) in reference_sets() {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        for path in write(&d, &dir)? {
            println!("{}", path.strip_prefix(repo_root()).unwrap_or(&path).display());
        }
    }
    Ok(())
}
