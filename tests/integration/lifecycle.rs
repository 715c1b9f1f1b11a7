//! `sandbox down` leaves nothing behind.

use anyhow::ensure;
use libtest_mimic::Trial;
use switchyard_sandbox::{Sandbox, process};
use switchyard_tests::{INSTANCE_PREFIX, trial};

pub fn trials() -> Vec<Trial> {
    vec![trial("sandbox::down_leaves_no_process_and_no_port", || Box::pin(down_leaves_nothing())).with_kind("sandbox")]
}

async fn down_leaves_nothing() -> anyhow::Result<()> {
    let instance = format!("{INSTANCE_PREFIX}{}-lifecycle", std::process::id());
    let sb = Sandbox::up(&instance).await?;
    let (pids, ports) = (sb.live_pids(), sb.ports());
    let checked = async {
        // moto, the world, two postgres, two cargo lambda watch.
        ensure!(pids.len() == 6, "expected 6 processes, found {pids:?}");
        ensure!(ports.iter().all(|p| process::port_is_open(*p)), "not every port listens: {ports:?}");
        anyhow::Ok(())
    }
    .await;
    let stopped = sb.down();
    checked?;
    stopped?;
    let alive: Vec<_> = pids.iter().filter(|p| process::is_alive(**p)).collect();
    ensure!(alive.is_empty(), "still running after down: {alive:?}");
    let open: Vec<_> = ports.iter().filter(|p| process::port_is_open(**p)).collect();
    ensure!(open.is_empty(), "still listening after down: {open:?}");
    ensure!(!sb.dir.exists(), "{} still exists", sb.dir.display());
    ensure!(Sandbox::load(&instance)?.is_none(), "state file survived");
    Ok(())
}
