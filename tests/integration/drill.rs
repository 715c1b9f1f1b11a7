//! The drill's engine, each part on a sandbox of its own (#20): the short drill (the readiness
//! check and the unplanned outage, nothing started by hand, orders flowing, every invariant
//! checked from the data) with its report rendered in headless Chromium (one timeline per
//! scenario and the invariant tables, drawn), and a short campaign from a fresh seed, so every
//! run explores new fault schedules. The whole drill is `cargo xtask drill` (docs/drill.md).

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use switchyard_sandbox::{
    Sandbox,
    drill::{self, DrillOptions},
};
use switchyard_tests::own_sandbox_trial;

pub fn trials() -> Vec<Trial> {
    vec![
        own_sandbox_trial(
            "drill::the_outage_with_orders_flowing_keeps_every_invariant_and_its_report_renders",
            "drill",
            |sb| Box::pin(short_drill(sb)),
        ),
        own_sandbox_trial("drill::a_campaign_from_a_fresh_seed_keeps_every_invariant", "campaign", |sb| {
            Box::pin(campaign(sb))
        }),
    ]
}

async fn short_drill(sb: &Sandbox) -> anyhow::Result<()> {
    // The render's prerequisite first: a missing Chromium fails here, by name, not after the drill.
    switchyard_sandbox::tools::chromium()?;
    let began = std::time::Instant::now();
    // Orders flow through each execution's whole tail already: 5 s after it keeps the test
    // command within its budget (the drill's own default is 15 s).
    let options = DrillOptions { after_seconds: 5, only: vec!["unplanned-outage".into()], ..DrillOptions::default() };
    let report = drill::run(sb, &options, &|line| eprintln!("  {line}")).await?;
    // What the drill shows, in the test's log.
    eprintln!("\n{report}\n(wall {:.0} s)", began.elapsed().as_secs_f64());
    ensure!(report.ok, "broken invariants: {:?}\n{report}", report.broken());
    let names: Vec<&str> = report.scenarios.iter().map(|s| s.name.as_str()).collect();
    ensure!(names == ["readiness", "unplanned-outage"], "the short drill ran {names:?}");
    for s in report.scenarios.iter().filter(|s| s.name != "readiness") {
        let f = &s.figures;
        ensure!(f.orders_acknowledged >= 10 && f.rto_seconds.is_some() && f.orders_lost == 0, "{}: {f:?}", s.name);
    }
    renders(&report)
}

/// Two schedules from a fresh seed (printed: a failing one is replayed from it), each from a
/// reset to the snapshot, on a sandbox of its own (a sandbox after a campaign has been reset
/// to an epoch the drill's own checks never start from).
async fn campaign(sb: &Sandbox) -> anyhow::Result<()> {
    let options = DrillOptions { after_seconds: 5, ..DrillOptions::default() };
    let seed = drill::faults::fresh_seed();
    eprintln!("campaign seed {seed} (replay a schedule: cargo xtask drill --campaign 1 --seed SEED)");
    let dir = std::env::temp_dir().join(format!("switchyard-drill-campaign-{}", std::process::id()));
    let c = drill::CampaignOptions { schedules: 2, seed, compression: 10.0, budget_seconds: 900, trace_dir: dir };
    let report = drill::campaign(sb, &options, &c, &|line| eprintln!("  {line}")).await?;
    eprintln!("\n{report}");
    let summary = report.campaign.as_ref().context("no campaign summary")?;
    ensure!(summary.schedules_run == 2 && summary.resets_seconds.len() == 3, "{summary:?}");
    ensure!(report.ok, "failing schedules (replay each with its command): {:#?}", summary.failing);
    Ok(())
}

/// The report in headless Chromium (Debian's `chromium`, installed as root when missing; a
/// named prerequisite otherwise): the DOM has a timeline and an invariant table per
/// scenario, and the screenshot is drawn (several times the bytes of a blank page's).
fn renders(report: &drill::DrillReport) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("switchyard-drill-report-{}", std::process::id()));
    let page = drill::write(report, &dir)?;
    let dom = drill::headless(&page, &dir.join("report.png"), 1280, 2400)?;
    let count = |needle: &str| dom.matches(needle).count();
    let scenarios = report.scenarios.len();
    ensure!(
        count(r#"<section class="scenario""#) == scenarios
            && count(r#"<svg class="timeline""#) == scenarios
            && count(r#"<table class="invariants""#) == scenarios,
        "the rendered DOM lacks a timeline or an invariant table per scenario ({scenarios}):\n{}",
        &dom[..dom.len().min(2000)]
    );
    let blank = dir.join("blank.html");
    std::fs::write(&blank, "<!doctype html><html><body></body></html>")?;
    drill::headless(&blank, &dir.join("blank.png"), 1280, 2400)?;
    let size = |name: &str| std::fs::metadata(dir.join(name)).map(|m| m.len()).context(name.to_owned());
    let (drawn, empty) = (size("report.png")?, size("blank.png")?);
    ensure!(drawn > 4 * empty, "the screenshot looks blank: {drawn} bytes, a blank page {empty}");
    eprintln!("report rendered: {} ({drawn} bytes; a blank page {empty})", dir.join("report.png").display());
    Ok(())
}
