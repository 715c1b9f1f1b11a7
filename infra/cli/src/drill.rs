//! `switchyard drill`: the main job, in a sandbox of its own that it always stops. Until the
//! failover drill lands it honestly runs the sandbox smoke check: both regions up, replication
//! proven with a row, an order fanned out to both regions' queues.

use anyhow::{Result, bail};
use switchyard_sandbox::{Sandbox, smoke};

use crate::Exit;

pub async fn run() -> Result<Exit> {
    println!("switchyard drill — sandbox smoke check (the failover drill itself is not built yet)\n");
    let sb = Sandbox::up("drill").await?;
    let outcome = async {
        let status = sb.status().await;
        print!("{status}");
        if !status.healthy {
            bail!("sandbox unhealthy");
        }
        let took = sb.prove_replication().await?;
        println!(
            "  ok   a row written on the writer is readable on the replica after {:.0} ms",
            took.as_secs_f64() * 1000.0
        );
        let order_id = format!("drill-smoke-{}", std::process::id());
        for (region, took) in smoke::acknowledgement(&sb, "us-east-1", &order_id).await? {
            println!(
                "  ok   order acknowledged by us-east-1's API is in {region}'s queue after {:.0} ms",
                took.as_secs_f64() * 1000.0
            );
        }
        Ok(())
    }
    .await;
    let stopped = sb.down();
    outcome?;
    stopped?;
    println!("\nsmoke check passed; sandbox stopped, nothing left running");
    Ok(Exit::Done)
}
