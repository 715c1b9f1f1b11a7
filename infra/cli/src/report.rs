//! `switchyard executions` and `switchyard report EXECUTION`: the timelines the promoter keeps
//! in the claim store (`execution#<name>`), read back for a person: a line per execution, or
//! one execution's marks with their offsets from detection, its RTO and its data at risk.
//! Read-only.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use switchyard_core::{
    ledger::{ExecutionLedger, Timeline},
    order::Timestamp,
};

use crate::{BadValue, Exit, Global, Output, Refused, loaded_sandbox};

/// Every read is bounded: a claim store that does not answer is an error, not a hang.
const READ_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Args)]
pub struct ExecutionsArgs {
    /// How many executions to show, the most recently detected first.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The execution's name (`switchyard executions` lists them).
    pub execution: String,
}

pub async fn executions(g: &Global, args: ExecutionsArgs) -> Result<Exit> {
    let sb = loaded_sandbox(g)?;
    let store = crate::arm::claim_store(&sb).await;
    let mut timelines = tokio::time::timeout(READ_DEADLINE, store.timelines())
        .await
        .map_err(|_| anyhow::anyhow!("the claim store: no answer within {READ_DEADLINE:?}"))??;
    timelines.truncate(args.limit as usize);
    match g.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&timelines)?),
        Output::Table if timelines.is_empty() => println!("no execution yet"),
        Output::Table => {
            println!(
                "{:<34} {:<11} {:<23} {:<12} {:<21} {:>7}  ERROR",
                "EXECUTION", "KIND", "FROM → TO", "STATUS", "DETECTED", "RTO"
            );
            for t in &timelines {
                println!(
                    "{:<34} {:<11} {:<23} {:<12} {:<21} {:>7}  {}",
                    t.execution,
                    kind(t),
                    format!("{} → {}", t.from, t.to),
                    t.status.to_string(),
                    short(&t.detected),
                    t.rto_seconds.map_or("-".to_owned(), |r| format!("{r:.1} s")),
                    t.error.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(Exit::Done)
}

pub async fn report(g: &Global, args: ReportArgs) -> Result<Exit> {
    if args.execution.trim().is_empty() {
        return Err(BadValue("name an execution (`switchyard executions` lists them)".into()).into());
    }
    let sb = loaded_sandbox(g)?;
    let store = crate::arm::claim_store(&sb).await;
    let timeline = tokio::time::timeout(READ_DEADLINE, store.timeline(&args.execution))
        .await
        .map_err(|_| anyhow::anyhow!("the claim store: no answer within {READ_DEADLINE:?}"))??;
    let Some(t) = timeline else {
        return Err(Refused(format!(
            "no execution {:?} in the claim store (`switchyard executions` lists them)",
            args.execution
        ))
        .into());
    };
    match g.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&t)?),
        Output::Table => print!("{}", full(&t)),
    }
    Ok(Exit::Done)
}

fn kind(t: &Timeline) -> String {
    match (t.mode, t.entry) {
        (switchyard_core::FailoverMode::Planned, _) => "switchover".into(),
        (_, Some(switchyard_core::ledger::FailoverEntry::Operator)) => "operator".into(),
        _ => "failover".into(),
    }
}

/// `2026-12-02T06:44:21Z`, without fractions of a second.
fn short(t: &Timestamp) -> String {
    let text = t.to_string();
    match text.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => text,
    }
}

/// What a timeline says a person needs after a handover: RTO, first order, data, the old
/// writer's fence, the overrides. Shared by `report` and the handover summary.
pub(crate) fn facts(t: &Timeline) -> Vec<(&'static str, String)> {
    let mut facts = vec![(
        "RTO",
        t.rto_seconds.map_or("- (traffic did not move)".into(), |r| {
            format!(
                "{r:.1} s (detected → traffic moved, as modelled from Route 53's checks; resolvers +{} s)",
                switchyard_core::dns::RECORD_TTL.as_secs()
            )
        }),
    )];
    facts.push((
        "first order",
        match (t.first_order_applied, t.activated) {
            (Some(f), Some(a)) => format!("applied {:.1} s after the activation", f.seconds_since(&a)),
            _ => "none applied under the new epoch yet".into(),
        },
    ));
    if let Some(rpo) = &t.rpo {
        let known = |n: Option<u64>| n.map_or("unknown".to_owned(), |n| n.to_string());
        facts.push((
            "data",
            format!(
                "lag {}, acknowledged orders at risk {}{}",
                rpo.lag_seconds.map_or("unknown".to_owned(), |l| format!("{l:.1} s")),
                known(rpo.orders_at_risk),
                if rpo.data_loss_accepted { " (data loss accepted)" } else { "" }
            ),
        ));
    }
    facts.push((
        "old writer",
        match (t.fenced, t.fence_lifted) {
            (_, Some(_)) => format!("{}: fenced, then the fence was lifted (it writes again)", t.from),
            (Some(_), None) => format!("{}: fenced (refuses writes)", t.from),
            (None, None) => format!("{}: not fenced by this execution", t.from),
        },
    ));
    if !t.overrides.is_empty() {
        facts.push(("overrides", format!("{} ({})", t.overrides.join(", "), t.reason.as_deref().unwrap_or("-"))));
    }
    facts
}

/// The whole timeline: each mark with its offset from detection, then the facts.
fn full(t: &Timeline) -> String {
    let mut out = format!(
        "{} {}: {} → {}, {}{}\n",
        kind(t),
        t.execution,
        t.from,
        t.to,
        t.status,
        t.epoch.map(|e| format!(" (epoch {e})")).unwrap_or_default()
    );
    if let Some(reason) = &t.reason {
        out.push_str(&format!("  reason        {reason}\n"));
    }
    let marks = [
        ("detected", Some(t.detected)),
        ("decided", t.decided),
        ("fenced", t.fenced),
        ("promoting", t.promotion_started),
        ("fence lifted", t.fence_lifted),
        ("promoted", t.promoted),
        ("activated", t.activated),
        ("traffic moved", t.traffic_moved),
        ("first order", t.first_order_applied),
        ("ended", t.ended),
    ];
    for (name, at) in marks {
        if let Some(at) = at {
            out.push_str(&format!("  {name:<14}{:>+8.1} s  {at}\n", at.seconds_since(&t.detected)));
        }
    }
    for (k, v) in facts(t) {
        out.push_str(&format!("  {k:<14}{v}\n"));
    }
    if let Some(e) = &t.error {
        out.push_str(&format!(
            "  error         {e}: {}\n",
            t.cause.as_deref().map(crate::execute::cause_message).unwrap_or_default()
        ));
    }
    if let Some(from) = &t.took_over_from {
        out.push_str(&format!("  took over     the expired lock of {from}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_gives_each_mark_its_offset_from_detection() {
        let at = |s: &str| s.parse::<Timestamp>().expect("timestamp");
        let mut t = Timeline::start(
            "switchover-1",
            "incident",
            switchyard_core::FailoverMode::Planned,
            "us-east-1".parse().expect("region"),
            "us-east-2".parse().expect("region"),
            at("2026-12-02T06:00:00Z"),
        );
        t.fenced = Some(at("2026-12-02T06:00:02.5Z"));
        t.traffic_moved = Some(at("2026-12-02T06:00:40Z"));
        t.finish(switchyard_core::ledger::ExecutionStatus::Succeeded, at("2026-12-02T06:00:45Z"));
        let text = full(&t);
        assert!(text.starts_with("switchover switchover-1: us-east-1 → us-east-2, succeeded\n"), "{text}");
        assert!(text.contains("  fenced            +2.5 s"), "{text}");
        assert!(text.contains("  RTO           40.0 s (detected → traffic moved"), "{text}");
        assert!(text.contains("  old writer    us-east-1: fenced (refuses writes)"), "{text}");
        assert_eq!(short(&at("2026-12-02T06:00:02.5Z")), "2026-12-02T06:00:02Z");
    }
}
