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

pub async fn run(g: &Global) -> Result<Exit> {
    let bars = Bars::new(std::io::stderr().is_terminal());
    let progress = |line: &str| bars.line(line);
    eprintln!(
        "switchyard drill: a fresh sandbox, orders flowing; a regional outage, a failback, a switchover; the invariants from the data"
    );
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
