//! `switchyard drill`: the main job, in a fresh sandbox of its own (`drill`) that it always
//! stops. With orders flowing through the regional order APIs it runs the scenarios of
//! `switchyard_sandbox::drill` (the hourly readiness check; an unplanned outage of the primary
//! that the probes, the alarm and its rule fail over with nothing started by hand), checks
//! the invariants from the data, and writes `target/drill/report.json`. Exit 0 only when
//! every invariant holds; 1 names the broken ones.

use anyhow::{Result, bail};
use switchyard_sandbox::{
    Sandbox,
    drill::{self, DrillOptions},
    workspace::repo_root,
};

use crate::{Exit, Global, Output};

/// The drill's own sandbox.
const INSTANCE: &str = "drill";

pub async fn run(g: &Global) -> Result<Exit> {
    let progress = |line: &str| eprintln!("  {line}");
    eprintln!("switchyard drill: a fresh sandbox, orders flowing, a regional outage, the invariants from the data");
    // Fresh: a drill left behind by a killed run may hold any writer.
    if let Some(old) = Sandbox::load(INSTANCE)? {
        old.down()?;
    }
    let sb = Sandbox::up_reporting(INSTANCE, &progress).await?;
    let outcome = async {
        let status = sb.status().await;
        if !status.healthy {
            bail!("the drill's sandbox is unhealthy:\n{status}");
        }
        let took = sb.prove_replication().await?;
        progress(&format!(
            "replication proven: a row written on the writer readable on the replica after {:.0} ms",
            took.as_secs_f64() * 1000.0
        ));
        drill::run(&sb, &DrillOptions::default(), &progress).await
    }
    .await;
    let stopped = sb.down();
    let report = outcome?;
    stopped?;
    let path = drill::write(&report, &repo_root().join("target/drill"))?;
    match g.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => {
            print!("{report}");
            println!(
                "\nreport: {} (and report.json, schema {}); sandbox stopped, nothing left running",
                path.display(),
                drill::SCHEMA
            );
        }
    }
    let broken = report.broken();
    if broken.is_empty() {
        Ok(Exit::Done)
    } else {
        eprintln!("error: the drill broke {} invariant(s): {}", broken.len(), broken.join("; "));
        Ok(Exit::Failed)
    }
}
