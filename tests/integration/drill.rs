//! The drill's engine on a sandbox of its own: the unplanned outage with orders flowing,
//! nothing started by hand, every invariant checked from the data (#20).

use anyhow::ensure;
use libtest_mimic::Trial;
use switchyard_sandbox::{
    Sandbox,
    drill::{self, DrillOptions},
};
use switchyard_tests::own_sandbox_trial;

pub fn trials() -> Vec<Trial> {
    vec![own_sandbox_trial("drill::an_unplanned_outage_with_orders_flowing_keeps_every_invariant", "drill", |sb| {
        Box::pin(outage(sb))
    })]
}

async fn outage(sb: &Sandbox) -> anyhow::Result<()> {
    let began = std::time::Instant::now();
    let report = drill::run(sb, &DrillOptions::default(), &|line| eprintln!("  {line}")).await?;
    // What the drill shows, in the test's log.
    eprintln!("\n{report}\n(wall {:.0} s)", began.elapsed().as_secs_f64());
    ensure!(report.ok, "broken invariants: {:?}\n{report}", report.broken());
    let outage = report.scenarios.iter().find(|s| s.name == "unplanned-outage");
    let figures = outage.map(|s| s.figures.clone()).unwrap_or_default();
    ensure!(
        figures.orders_acknowledged >= 30 && figures.rto_seconds.is_some() && figures.orders_lost == 0,
        "{figures:?}"
    );
    Ok(())
}
