//! `switchyard status`: the deployment at a glance, like `patronictl list`. Who writes and at
//! which epoch as each region reads the claim store, each database's own role (a fenced old
//! writer shows as such), the replication in the direction it actually runs and its lag, where
//! `api.<domain>` answers, what is armed, the failover lock, and the last execution.
//!
//! Read-only: strongly consistent reads, nothing written (no canary row, no probe datapoint:
//! a status that wrote would refresh the lag it reports). Every read is bounded; a part that
//! does not answer is reported, not waited for.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use switchyard_aws::control_table::ControlTable;
use switchyard_core::{
    Region, WriterClaim,
    arming::{Arming, ArmingStore},
    ledger::{ExecutionLedger, HandoverRecord, Lock, Timeline},
    order::Timestamp,
    ports::ClaimStore,
};
use switchyard_sandbox::{
    Sandbox,
    dns::DnsAnswer,
    instance::{DatabaseStatus, ReplicationReport},
};

use crate::{Exit, Global, Output, Refused, not_up, refuse_aws_flags};

/// Every read is bounded: a region that does not answer is reported, not waited for.
const READ_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RegionView {
    region: Region,
    /// The writer claim as this region reads the claim store (strongly consistent).
    claim: Option<WriterClaim>,
    last_handover: Option<HandoverRecord>,
    error: Option<String>,
    /// What this region's database says of itself.
    database: DatabaseStatus,
}

/// The arming, and whether it still holds (it is void once the epoch moved on).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ArmedView {
    #[serde(flatten)]
    arming: Arming,
    /// Armed under the current epoch; `None` when no claim could be read to tell.
    holds: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LockView {
    #[serde(flatten)]
    lock: Lock,
    expired: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusView {
    sandbox: String,
    up: bool,
    /// Every region read the same claim.
    agree: bool,
    /// The claim's writer is the one database that accepts writes, and the one `api.<domain>`
    /// answers.
    consistent: bool,
    regions: Vec<RegionView>,
    replication: ReplicationReport,
    dns: Option<DnsAnswer>,
    dns_error: Option<String>,
    armed: Option<ArmedView>,
    lock: Option<LockView>,
    last_execution: Option<Timeline>,
    /// A control-table read that failed (the arming, the lock, the executions).
    errors: Vec<String>,
}

pub async fn run(g: &Global) -> Result<Exit> {
    refuse_aws_flags(g)?;
    let name = g.sandbox();
    let Some(sb) = Sandbox::load(&name)?.filter(Sandbox::is_up) else {
        // JSON stays JSON: a script reading `status --output json` gets an answer it parses.
        if g.output == Output::Json {
            println!("{}", json!({ "sandbox": name, "up": false }));
        }
        return Err(Refused(not_up(&name)).into());
    };
    let view = read(&sb).await;
    match g.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&view)?),
        Output::Table => print!("{}", table(&sb, &view)),
    }
    let read_everything = view.errors.is_empty() && view.dns_error.is_none();
    Ok(if view.agree && view.consistent && read_everything { Exit::Done } else { Exit::Failed })
}

async fn bounded<T>(
    what: &str,
    read: impl Future<Output = Result<T, switchyard_core::SwitchyardError>>,
) -> Result<T, String> {
    match tokio::time::timeout(READ_DEADLINE, read).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {READ_DEADLINE:?}")),
    }
}

async fn read(sb: &Sandbox) -> StatusView {
    let d = sb.deployment();
    let databases = sb.databases().await;
    let mut regions = Vec::new();
    for (region, database) in d.regions.iter().zip(databases.iter().cloned()) {
        // Through the region's own links: under a partition, a region cut off from the
        // majority cannot read the claim strongly, and the table shows it.
        let config = switchyard_aws::sdk_config(&sb.region_aws_target(region), region).await;
        let table = ControlTable::new(aws_sdk_dynamodb::Client::new(&config), d.regional_names(region).control_table);
        let read = async { Ok((table.strong_read().await.proven()?, table.last_handover().await?)) };
        let (claim, last_handover, error) = match bounded("the claim store", read).await {
            Ok((claim, last)) => (Some(claim), last, None),
            Err(e) => (None, None, Some(e)),
        };
        regions.push(RegionView { region: region.clone(), claim, last_handover, error, database });
    }
    let replication = sb.replication(&databases).await;
    let claims: Vec<_> = regions.iter().map(|v| v.claim.as_ref()).collect();
    let agree = claims.iter().all(|c| c.is_some() && *c == claims[0]);
    let (dns, dns_error) = match tokio::time::timeout(READ_DEADLINE, switchyard_sandbox::dns::answer(sb)).await {
        Ok(Ok(a)) => (Some(a), None),
        Ok(Err(e)) => (None, Some(format!("{e:#}"))),
        Err(_) => (None, Some(format!("no answer within {READ_DEADLINE:?}"))),
    };
    let read_claim = claims.iter().flatten().next().copied();
    let consistent = read_claim.is_some_and(|c| {
        Some(&c.writer) == replication.writer.as_ref() && dns.as_ref().is_some_and(|a| a.region == c.writer)
    });
    let store = crate::arm::claim_store(sb).await;
    let mut errors = Vec::new();
    let now = Timestamp::now();
    let epoch = read_claim.map(|c| c.epoch);
    let armed = bounded("the arming", store.armed())
        .await
        .map_err(|e| errors.push(e))
        .ok()
        .flatten()
        .map(|arming| ArmedView { holds: epoch.map(|e| e == arming.epoch), arming });
    let lock = bounded("the lock", store.held_lock())
        .await
        .map_err(|e| errors.push(e))
        .ok()
        .flatten()
        .map(|lock| LockView { expired: lock.expires_at <= now, lock });
    let last_execution = bounded("the executions", store.timelines())
        .await
        .map_err(|e| errors.push(e))
        .ok()
        .and_then(|t| t.into_iter().next());
    StatusView {
        sandbox: sb.instance.clone(),
        up: true,
        agree,
        consistent,
        regions,
        replication,
        dns,
        dns_error,
        armed,
        lock,
        last_execution,
        errors,
    }
}

fn table(sb: &Sandbox, v: &StatusView) -> String {
    let mut out = format!("switchyard {} (sandbox {:?})\n", sb.deployment().environment, v.sandbox);
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("  {:<10} {:<32} {}", "REGION", "CLAIM (as this region reads it)", "DATABASE"));
    for r in &v.regions {
        let claim = match (&r.claim, &r.error) {
            (Some(c), _) => format!("{} at epoch {} ({})", c.writer, c.epoch, c.phase),
            (None, Some(e)) => format!("unreadable: {e}"),
            (None, None) => "no claim".to_owned(),
        };
        let database = match (&r.database.status, &r.database.error) {
            (Some(s), _) => match (s.role, s.fenced) {
                (switchyard_core::DatabaseRole::Writer, true) => "writer, FENCED (refuses writes)".to_owned(),
                (switchyard_core::DatabaseRole::Writer, false) => {
                    format!("writer, {} streaming replica(s)", s.streaming_peers)
                }
                (switchyard_core::DatabaseRole::Replica, _) => {
                    format!("replica, {}", if s.streaming_peers > 0 { "streaming" } else { "NOT streaming" })
                }
            },
            (None, Some(e)) => format!("DOWN: {e}"),
            (None, None) => "unknown".to_owned(),
        };
        line(format!("  {:<10} {claim:<32} {database}", r.region.as_str()));
    }
    let rep = &v.replication;
    line(match (&rep.writer, &rep.replica, &rep.lag) {
        (Some(w), Some(p), Some(l)) => format!(
            "  replication {w} -> {p}: lag {} bytes, at most {:.1} s{}",
            l.bytes,
            l.seconds,
            rep.error.as_ref().map(|e| format!("; {e}")).unwrap_or_default()
        ),
        _ => format!("  replication {}", rep.error.as_deref().unwrap_or("unknown")),
    });
    line(match (&v.dns, &v.dns_error) {
        (Some(a), _) => format!("  dns         {} answers {} ({})", a.record, a.region, a.value),
        (None, e) => format!("  dns         unknown: {}", e.as_deref().unwrap_or("-")),
    });
    line(match &v.armed {
        Some(a) if a.holds == Some(true) => format!(
            "  armed       {} may take over automatically (armed by {} at {}, epoch {})",
            a.arming.target, a.arming.armed_by, a.arming.at, a.arming.epoch
        ),
        Some(a) if a.holds == Some(false) => format!(
            "  armed       void: {} was armed under epoch {}, the writer has moved on (arm again)",
            a.arming.target, a.arming.epoch
        ),
        Some(a) => format!(
            "  armed       {} under epoch {} (whether that is the current epoch is unknown: no claim was read)",
            a.arming.target, a.arming.epoch
        ),
        None => "  armed       nothing: no automatic failover moves the writer".to_owned(),
    });
    line(match &v.lock {
        Some(l) if !l.expired => {
            format!("  lock        held by {} for {} until {}", l.lock.owner, l.lock.incident, l.lock.expires_at)
        }
        Some(l) => format!("  lock        free (the last, {}'s, expired at {})", l.lock.owner, l.lock.expires_at),
        None => "  lock        free".to_owned(),
    });
    line(match &v.last_execution {
        Some(t) => format!(
            "  last        {} {} {} → {}, detected {}{}{}",
            t.execution,
            t.status,
            t.from,
            t.to,
            t.detected,
            t.rto_seconds.map(|r| format!(", RTO {r:.1} s")).unwrap_or_default(),
            t.error.as_ref().map(|e| format!(", {e}")).unwrap_or_default()
        ),
        None => "  last        no execution yet".to_owned(),
    });
    for e in &v.errors {
        line(format!("  error       {e}"));
    }
    let unread: Vec<&str> = v.regions.iter().filter(|r| r.claim.is_none()).map(|r| r.region.as_str()).collect();
    let claim = v.regions.iter().find_map(|r| r.claim.as_ref());
    if !unread.is_empty() {
        line(format!(
            "  {} could not read the claim store (see above): a region cut off from the majority cannot",
            unread.join(" and ")
        ));
    } else if !v.agree {
        line("  the regions read different claims: the claim store is not one strongly consistent table; readiness's writer-claim rule fails".into());
    }
    if let Some(c) = claim.filter(|_| !v.consistent) {
        line(format!(
            "  the claim names {} but {} accepts writes and api.<domain> answers {}: a handover is under way, or they disagree",
            c.writer,
            rep.writer.as_ref().map_or("no database".to_owned(), |w| w.to_string()),
            v.dns.as_ref().map_or("unknown".to_owned(), |a| a.region.to_string())
        ));
    }
    out
}
