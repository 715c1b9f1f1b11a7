//! `report.html`: the drill's report for a person. Self-contained (inline CSS and SVG, no
//! script, nothing fetched): a timeline per scenario, its figures and its invariant table.

use std::{fmt::Write, path::Path, process::Command};

use anyhow::{Context, Result};

use super::{DrillReport, ScenarioReport};

/// Escapes text for HTML element content and attribute values.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The whole page.
pub fn render(report: &DrillReport) -> String {
    let mut page = String::new();
    let verdict = if report.ok { "PASSED" } else { "FAILED" };
    let _ = write!(
        page,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>switchyard drill {verdict}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #1d232a; }}
h1 {{ font-size: 1.6em; margin-bottom: .2em; }}
.ok {{ color: #17703a; }} .fail {{ color: #b3261e; }}
table {{ border-collapse: collapse; margin: .6em 0 1.4em; width: 100%; }}
th, td {{ text-align: left; padding: .3em .6em; border-bottom: 1px solid #dde2e7; vertical-align: top; }}
th {{ background: #f3f5f7; }}
section {{ margin-top: 2.2em; }}
svg text {{ font: 11px system-ui, sans-serif; }}
.meta {{ color: #5b6670; }}
</style></head><body>
<h1>switchyard drill: <span class="{cls}">{verdict}</span></h1>
<p class="meta">sandbox {sandbox}, started {started}, {wall:.0} s wall; schema {schema}; orders at {rate}/s</p>
"#,
        cls = if report.ok { "ok" } else { "fail" },
        sandbox = esc(&report.sandbox),
        started = esc(&report.started_at),
        wall = report.wall_seconds,
        schema = super::SCHEMA,
        rate = report.options.orders_per_second,
    );
    if let Some(c) = &report.campaign {
        let _ = write!(
            page,
            r#"<p class="campaign">campaign: {run} of {n} schedules from seed {seed}, detection compressed {comp}×, {stopped}; <span class="{cls}">{failing} failing</span></p>"#,
            run = c.schedules_run,
            n = c.options.schedules,
            seed = c.options.seed,
            comp = c.options.compression,
            stopped = esc(&c.stopped),
            cls = if c.failing.is_empty() { "ok" } else { "fail" },
            failing = c.failing.len(),
        );
        for f in &c.failing {
            let _ = write!(
                page,
                "<p class=\"fail\">seed {}: {}; replay: <code>{}</code></p>",
                f.seed,
                esc(&f.broken.join("; ")),
                esc(&f.replay)
            );
        }
    }
    for s in &report.scenarios {
        page.push_str(&scenario(s));
    }
    page.push_str("</body></html>\n");
    page
}

fn scenario(s: &ScenarioReport) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<section class="scenario" data-scenario="{name}"><h2>{name}: <span class="{cls}">{verdict}</span></h2><p>{description} ({wall:.0} s)</p>"#,
        name = esc(&s.name),
        cls = if s.ok { "ok" } else { "fail" },
        verdict = if s.ok { "ok" } else { "FAILED" },
        description = esc(&s.description),
        wall = s.wall_seconds,
    );
    if let Some(schedule) = &s.schedule {
        let _ = write!(out, r#"<p class="schedule">schedule {}</p>"#, esc(&schedule.to_string()));
    }
    out.push_str(&timeline(s));
    let f = &s.figures;
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} s"));
    if f.orders_acknowledged > 0 || f.rto_seconds.is_some() {
        let _ = write!(
            out,
            r#"<table class="figures"><tr><th>detected</th><th>decided</th><th>promoted</th><th>traffic moved</th><th>first order applied</th><th>RTO</th></tr>
<tr><td>+{}</td><td>+{}</td><td>+{}</td><td>+{}</td><td>+{}</td><td>{}</td></tr></table>
<table class="orders"><tr><th>acknowledged</th><th>at risk</th><th>lost</th><th>duplicated</th><th>refused (never acknowledged)</th><th>executions started</th><th>deduplicated</th><th>alarm relapses</th></tr>
<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>"#,
            secs(f.detected_after_fault),
            secs(f.decided_after_fault),
            secs(f.promoted_after_fault),
            secs(f.traffic_moved_after_fault),
            secs(f.first_order_applied_after_fault),
            secs(f.rto_seconds),
            f.orders_acknowledged,
            f.orders_at_risk,
            f.orders_lost,
            f.orders_duplicated,
            f.orders_refused,
            f.executions_started,
            f.executions_deduplicated,
            f.alarm_relapses,
        );
    }
    out.push_str(r#"<table class="invariants"><tr><th>invariant</th><th>holds</th><th>evidence</th></tr>"#);
    for i in &s.invariants {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td class="{}">{}</td><td>{}</td></tr>"#,
            esc(i.name),
            if i.holds { "ok" } else { "fail" },
            if i.holds { "yes" } else { "NO" },
            esc(&i.evidence)
        );
    }
    out.push_str("</table></section>\n");
    out
}

/// The scenario's moments on one axis (seconds from its start): the drill's events above,
/// the failover's timeline marks below.
fn timeline(s: &ScenarioReport) -> String {
    let mut marks: Vec<(f64, String, bool)> = s.events.iter().map(|(t, what)| (*t, what.clone(), true)).collect();
    if let Some(fault) = s.fault_at_seconds {
        let f = &s.figures;
        for (name, v) in [
            ("detected", f.detected_after_fault),
            ("decided", f.decided_after_fault),
            ("promoted", f.promoted_after_fault),
            ("traffic moved", f.traffic_moved_after_fault),
            ("first order applied", f.first_order_applied_after_fault),
        ] {
            if let Some(v) = v {
                // Placed on the scenario's axis, labelled as the figures count (from the fault).
                marks.push((fault + v, format!("{name} +{v:.1} s"), false));
            }
        }
    }
    let end = marks.iter().map(|m| m.0).fold(s.wall_seconds, f64::max).max(1.0);
    let (width, left, right) = (1060.0, 20.0, 20.0);
    let x = |t: f64| left + (width - left - right) * t / end;
    let above = marks.iter().filter(|m| m.2).count();
    let below = marks.len() - above;
    let row = 16.0;
    let axis = 30.0 + above as f64 * row;
    let height = axis + 30.0 + below as f64 * row;
    let mut svg = format!(
        r##"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="timeline of {name}">
<line x1="{left}" y1="{axis}" x2="{x2}" y2="{axis}" stroke="#1d232a" stroke-width="2"/>
<text x="{left}" y="{ty}">0 s</text><text x="{x2}" y="{ty}" text-anchor="end">{end:.0} s</text>
"##,
        name = esc(&s.name),
        x2 = width - right,
        ty = axis + 14.0,
    );
    let (mut up, mut down) = (0.0, 0.0);
    for (t, what, is_event) in &marks {
        let (y, color) = if *is_event {
            up += 1.0;
            (axis - 6.0 - (above as f64 - up + 1.0) * row + row, "#2a5db0")
        } else {
            down += 1.0;
            (axis + 18.0 + down * row, "#b3261e")
        };
        let anchor = if x(*t) > width * 0.7 { "end" } else { "start" };
        let _ = writeln!(
            svg,
            r##"<line x1="{cx}" y1="{axis}" x2="{cx}" y2="{ly}" stroke="{color}" stroke-dasharray="2 2"/><circle cx="{cx}" cy="{axis}" r="4" fill="{color}"/><text x="{tx}" y="{y}" fill="{color}" text-anchor="{anchor}">{label}</text>"##,
            cx = x(*t),
            ly = y - 4.0,
            tx = x(*t) + if anchor == "end" { -4.0 } else { 4.0 },
            label = if *is_event { format!("{t:.1} s {}", esc(what)) } else { esc(what) },
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Renders `page` in headless Chromium: its DOM after layout, and a screenshot of the first
/// `width` × `height` pixels written to `png`. Each run has a deadline (60 s) and a fresh
/// profile; background networking is off (this machine's network is closed, and a report
/// fetches nothing).
pub fn headless(page: &Path, png: &Path, width: u32, height: u32) -> Result<String> {
    let chromium = crate::tools::chromium()?;
    let profile = tempfile_dir("switchyard-chromium")?;
    let url = format!("file://{}", page.canonicalize().with_context(|| page.display().to_string())?.display());
    let run = |args: &[String]| -> Result<String> {
        let mut cmd = Command::new("timeout");
        cmd.args(["--kill-after=5", "60"]).arg(&chromium).args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ]);
        cmd.arg(format!("--user-data-dir={}", profile.display())).args(args).arg(&url);
        crate::process::run(&mut cmd)
    };
    let dom = run(&["--dump-dom".to_owned()]);
    let shot = run(&[format!("--window-size={width},{height}"), format!("--screenshot={}", png.display())]);
    let _ = std::fs::remove_dir_all(&profile);
    let (dom, _) = (dom?, shot?);
    anyhow::ensure!(png.exists(), "Chromium wrote no screenshot at {}", png.display());
    Ok(dom)
}

/// A new empty directory under the system's temporary directory.
fn tempfile_dir(prefix: &str) -> Result<std::path::PathBuf> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    Ok(dir)
}
