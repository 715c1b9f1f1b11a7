//! `switchyard drill`: the main job, in a fresh sandbox of its own (`drill`) that it always
//! stops. With orders flowing through the regional order APIs it runs the scenarios of
//! `switchyard_sandbox::drill` (the hourly readiness check; an unplanned outage of the primary
//! that the probes, the alarm and its rule fail over with nothing started by hand; a planned
//! failback and a switchover), checks the invariants from the data, and writes
//! `target/drill/report.html` and `report.json`. Exit 0 only when every invariant holds; 1
//! names the broken ones.

use std::{
    io::IsTerminal,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use switchyard_sandbox::{
    Sandbox,
    drill::{self, DrillOptions},
    workspace::repo_root,
};

use crate::{Exit, Global, Output};

/// The drill's own sandbox.
const INSTANCE: &str = "drill";

#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct DrillArgs {
    /// Run N fault schedules drawn from --seed (schedule k from seed+k) instead of the
    /// scenarios, each from a snapshot taken after the readiness check.
    #[arg(long, value_name = "N")]
    pub campaign: Option<u64>,
    /// The campaign's first seed (default: a fresh one, printed).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// How many times faster the failover alarm's evaluation passes in a campaign (its
    /// three 10-s periods in 30/C s); everything after detection runs at real time.
    #[arg(long, value_name = "C", default_value_t = 10.0)]
    pub compression: f64,
    /// No campaign schedule starts after this many minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = 90)]
    pub budget_minutes: u64,
    /// Only these scenarios (comma-separated; the readiness check always runs).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub only: Vec<String>,
    /// How long orders keep flowing after a failover closed its timeline.
    #[arg(long, value_name = "SECONDS", default_value_t = DrillOptions::default().after_seconds)]
    pub after_seconds: u64,
}

pub async fn run(g: &Global, args: &DrillArgs) -> Result<Exit> {
    let known: Vec<&str> = drill::SCENARIOS.iter().map(|(n, _)| *n).collect();
    if let Some(unknown) = args.only.iter().find(|o| !known.contains(&o.as_str())) {
        return Err(crate::BadValue(format!("--only {unknown}: not a scenario ({})", known.join(", "))).into());
    }
    if args.compression < 1.0 || args.compression > 30.0 {
        return Err(crate::BadValue(format!("--compression {}: between 1 and 30", args.compression)).into());
    }
    let bars = Bars::new(std::io::stderr().is_terminal() && args.campaign.is_none());
    let progress = |line: &str| bars.line(line);
    let campaign = args.campaign.map(|n| drill::CampaignOptions {
        schedules: n,
        seed: args.seed.unwrap_or_else(drill::faults::fresh_seed),
        compression: args.compression,
        budget_seconds: args.budget_minutes * 60,
        trace_dir: repo_root().join("target/drill/campaign"),
    });
    match &campaign {
        Some(c) => eprintln!(
            "switchyard drill --campaign {} --seed {} --compression {}: fault schedules around an outage, orders flowing, each from a snapshot; the invariants from the data",
            c.schedules, c.seed, c.compression
        ),
        None => eprintln!(
            "switchyard drill: a fresh sandbox, orders flowing; a regional outage, a failback, a switchover, a partition, a returning primary; the invariants from the data"
        ),
    }
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
        let options =
            DrillOptions { only: args.only.clone(), after_seconds: args.after_seconds, ..DrillOptions::default() };
        match &campaign {
            Some(c) => drill::campaign(&sb, &options, c, &progress).await,
            None => drill::run(&sb, &options, &progress).await,
        }
    }
    .await;
    bars.finish();
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
    if let Some(c) = &report.campaign {
        eprintln!(
            "campaign: {} of {} schedules from seed {} in {:.0} s (compression {}×; {}); {} failing",
            c.schedules_run,
            c.options.schedules,
            c.options.seed,
            report.wall_seconds,
            c.options.compression,
            c.stopped,
            c.failing.len()
        );
        for f in &c.failing {
            eprintln!(
                "  FAILED seed {}: {}\n    broke: {}\n    trace: {}\n    replay: {}",
                f.seed,
                f.schedule,
                f.broken.join("; "),
                f.trace.display(),
                f.replay
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

/// Progress on stderr: every line as it comes (plain lines when stderr is not a terminal);
/// in a terminal, under them, a bar per scenario, redrawn every second. A scenario starts
/// with its first line (lines begin with its name) and ends when the next starts; a bar
/// fills over the scenario's typical length ([`drill::SCENARIOS`]).
struct Bars {
    tty: bool,
    state: Arc<Mutex<BarState>>,
}

#[derive(Default)]
struct BarState {
    /// The scenario running (its index in `drill::SCENARIOS`) and since when.
    current: Option<(usize, Instant)>,
    /// Each finished scenario's length.
    took: Vec<Option<Duration>>,
    stopped: bool,
}

impl Bars {
    fn new(tty: bool) -> Bars {
        let state = Arc::new(Mutex::new(BarState { took: vec![None; drill::SCENARIOS.len()], ..Default::default() }));
        if tty {
            let state = Arc::clone(&state);
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let Ok(s) = state.lock() else { return };
                    if s.stopped {
                        return;
                    }
                    if s.current.is_some() {
                        eprint!("{}", s.drawn());
                    }
                }
            });
        }
        Bars { tty, state }
    }

    fn line(&self, line: &str) {
        let Ok(mut s) = self.state.lock() else { return };
        let first = line.split_whitespace().next().unwrap_or_default();
        if let Some(i) = drill::SCENARIOS.iter().position(|(name, _)| *name == first)
            && s.current.map(|(c, _)| c) != Some(i)
        {
            if let Some((c, since)) = s.current {
                s.took[c] = Some(since.elapsed());
            }
            s.current = Some((i, Instant::now()));
        }
        if self.tty && s.current.is_some() {
            // Clear the bars, print the line where they were, draw them again below it.
            eprint!("\x1b[J  {line}\n{}", s.drawn());
        } else {
            eprintln!("  {line}");
        }
    }

    fn finish(&self) {
        let Ok(mut s) = self.state.lock() else { return };
        if let Some((c, since)) = s.current.take() {
            s.took[c] = Some(since.elapsed());
        }
        s.stopped = true;
        if self.tty {
            eprint!("\x1b[J");
        }
    }
}

impl BarState {
    /// The bars, then the cursor moved back up to their first line.
    fn drawn(&self) -> String {
        const WIDTH: usize = 24;
        let mut out = String::new();
        for (i, (name, typical)) in drill::SCENARIOS.iter().enumerate() {
            let (filled, what) = match (self.took[i], self.current) {
                (Some(took), _) => (WIDTH, format!("done in {:.0} s", took.as_secs_f64())),
                (None, Some((c, since))) if c == i => {
                    let elapsed = since.elapsed().as_secs_f64();
                    let part = (elapsed / *typical as f64).min(0.95);
                    ((part * WIDTH as f64) as usize, format!("{elapsed:.0} s (typically {typical} s)"))
                }
                _ => (0, String::new()),
            };
            out.push_str(&format!(
                "  {name:<16} [{}{}] {what}\x1b[K\n",
                "#".repeat(filled),
                " ".repeat(WIDTH - filled)
            ));
        }
        out.push_str(&format!("\x1b[{}A", drill::SCENARIOS.len()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_per_scenario_then_the_cursor_back_up() {
        let mut s = BarState { took: vec![None; drill::SCENARIOS.len()], ..Default::default() };
        s.took[0] = Some(Duration::from_secs(1));
        s.current = Some((1, Instant::now()));
        let drawn = s.drawn();
        let lines: Vec<&str> = drawn.split('\n').collect();
        assert_eq!(lines.len(), drill::SCENARIOS.len() + 1, "{drawn:?}");
        assert!(lines[0].contains("readiness") && lines[0].contains(&format!("[{}] done in 1 s", "#".repeat(24))));
        assert!(lines[1].contains("unplanned-outage") && lines[1].contains("0 s (typically 200 s)"), "{drawn:?}");
        assert!(lines[2].contains(&format!("[{}]", " ".repeat(24))), "{drawn:?}");
        assert_eq!(lines[drill::SCENARIOS.len()], format!("\x1b[{}A", drill::SCENARIOS.len()));
    }
}
