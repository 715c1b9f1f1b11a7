//! The world daemon (`switchyard sandbox world --plan FILE`, started by `Sandbox::up`): the
//! [`crate::world`] with the clock's targets bound to this sandbox's Step Functions runner and
//! Lambda services.

use std::{path::Path, sync::Arc};

use anyhow::{Context, Result};
use serde_json::Value;
use switchyard_core::Region;

use crate::{
    Sandbox, runner,
    world::{self, WorldPlan, clock::Targets},
};

struct SandboxTargets {
    instance: String,
}

type Pending<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send>>;

impl Targets for SandboxTargets {
    fn start_execution(&self, machine: &'static str, region: Region, name: String, input: Value) -> Pending<String> {
        let instance = self.instance.clone();
        Box::pin(async move {
            let sb = Sandbox::load(&instance)?.context("the sandbox's state")?;
            let start = runner::Start::new(machine, region.as_str(), name, input, runner::Timing::AsDefined)?;
            let done = runner::execute(&sb, &start).await?;
            Ok(format!("{}{}", done.status, done.error.map(|e| format!(" {e}")).unwrap_or_default()))
        })
    }

    fn invoke(&self, region: Region, function: &'static str, payload: Value) -> Pending<String> {
        let instance = self.instance.clone();
        Box::pin(async move {
            let sb = Sandbox::load(&instance)?.context("the sandbox's state")?;
            let answer = sb.lambda(region.as_str())?.invoke(function, &payload).await?;
            Ok(format!("{answer:?}").chars().take(200).collect())
        })
    }
}

/// Serves the world of `plan_file` until the process is stopped.
pub async fn serve(plan_file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(plan_file).with_context(|| format!("reading {}", plan_file.display()))?;
    let plan: WorldPlan = serde_json::from_str(&text)?;
    let targets = Arc::new(SandboxTargets { instance: plan.instance.clone() });
    world::serve(plan, targets).await
}
