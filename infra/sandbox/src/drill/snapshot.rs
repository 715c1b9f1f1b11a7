//! A snapshot of the sandbox's state to reset to between fault schedules, instead of a new
//! sandbox (tens of seconds and a provisioning): both databases' data directories as they
//! were when both were stopped cleanly (the writer first, so the replica has every byte),
//! the writer-claim table's items (claim, arming, lock, cooldown, timelines; the claim and
//! the arming under a new epoch, since epochs never go back), and the
//! layout the provisioning made (the failover records, empty queues, links healed, order
//! APIs up, the clock stopped). A sandbox-only operation: nothing in the product resets.

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecordSetFailover};
use switchyard_aws::sdk_config;
use switchyard_core::Region;

use crate::{
    Sandbox, dns,
    world::{self, Links, clock::ClockSettings},
};

type Item = HashMap<String, AttributeValue>;

/// What a reset puts back.
#[derive(Debug)]
pub struct Snapshot {
    /// Data directory copies, per region (the writer's first).
    databases: Vec<(String, PathBuf)>,
    claim_table: String,
    claims: Vec<Item>,
    /// The region each failover record's set identifier names, and its role then.
    records: Vec<(String, ResourceRecordSetFailover)>,
    /// The region the DNS answer named.
    answer: Region,
}

impl Snapshot {
    /// Takes the snapshot of `sb` as it is now (both databases are stopped and started again).
    pub async fn take(sb: &Sandbox) -> Result<Snapshot> {
        let d = sb.deployment();
        let (writer, replica) = sb.current_pair().await?;
        let order = [writer.to_string(), replica.to_string()];
        for r in &order {
            tokio::task::block_in_place(|| sb.stop_database(r))?;
        }
        let mut databases = Vec::new();
        for r in &order {
            let copy = sb.dir.join("snapshot").join(r);
            let data = sb.region(r)?.data_dir.clone();
            tokio::task::block_in_place(|| copy_dir(&data, &copy))?;
            databases.push((r.clone(), copy));
        }
        for r in &order {
            tokio::task::block_in_place(|| sb.start_database(r))?;
        }
        let claim_table = d.regional_names(&d.regions.primary).control_table;
        let claims = scan(&ddb(sb).await, &claim_table).await?;
        let records = records(sb).await?.into_iter().filter_map(|r| Some((r.set_identifier?, r.failover?))).collect();
        let answer = dns::answer(sb).await?.region;
        Ok(Snapshot { databases, claim_table, claims, records, answer })
    }

    /// Puts `sb` back as it was at the snapshot; how long it took (replication proven and
    /// the DNS answer back on the writer).
    pub async fn restore(&self, sb: &Sandbox) -> Result<Duration> {
        let began = Instant::now();
        let d = sb.deployment();
        let control = sb.world.control_port;
        let fail = |e: anyhow::Error| anyhow::anyhow!("{e:#}");
        world::control::set_clock(control, &ClockSettings { running: false, compression: 1.0 }).await.map_err(fail)?;
        world::control::set_links(control, &Links::default()).await.map_err(fail)?;
        // An execution still running (the clock's own alarm may have started one late) would
        // act on the restored state: let it end first.
        let store = switchyard_aws::control_table::ControlTable::new(ddb(sb).await, self.claim_table.clone());
        let deadline = Instant::now() + Duration::from_secs(300);
        while store.timelines().await?.iter().any(|t| t.status == switchyard_core::ledger::ExecutionStatus::Running) {
            anyhow::ensure!(Instant::now() < deadline, "an execution still runs 300 s into the reset");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // The databases: both down at once, their directories replaced, the writer first up.
        for (r, _) in &self.databases {
            tokio::task::block_in_place(|| sb.crash_database(r))?;
        }
        for (r, copy) in &self.databases {
            let data = sb.region(r)?.data_dir.clone();
            tokio::task::block_in_place(|| -> Result<()> {
                std::fs::remove_dir_all(&data).with_context(|| data.display().to_string())?;
                copy_dir(copy, &data)
            })?;
        }
        for (r, _) in &self.databases {
            tokio::task::block_in_place(|| sb.start_database(r))?;
        }
        // The claim table's items: what is there now removed, the snapshot's put back under
        // a new epoch. Epochs only move forward: a warm consumer that saw a later epoch than
        // the snapshot's halts on an older one (`EpochCheck::Inconsistent`), as it must.
        let ddb = ddb(sb).await;
        let now = scan(&ddb, &self.claim_table).await?;
        let epoch = now.iter().chain(&self.claims).filter_map(epoch_of).max().unwrap_or(0) + 1;
        for item in now {
            let key = item.get("pk").cloned().context("a claim-table item without pk")?;
            ddb.delete_item().table_name(&self.claim_table).key("pk", key).send().await?;
        }
        for item in &self.claims {
            let item = under_epoch(item, epoch)?;
            ddb.put_item().table_name(&self.claim_table).set_item(Some(item)).send().await?;
        }
        // Empty queues: what the last schedule left would be applied in this one.
        for r in d.regions.iter() {
            let sqs = aws_sdk_sqs::Client::new(&sdk_config(&sb.aws_target(), r).await);
            let names = d.regional_names(r);
            for queue in [&names.orders_queue, &names.orders_dlq, &names.orders_catch_up] {
                let url = sqs.get_queue_url().queue_name(queue).send().await?.queue_url.context("no queue url")?;
                sqs.purge_queue().queue_url(url).send().await?;
            }
        }
        self.restore_records(sb).await?;
        for r in d.regions.iter() {
            sb.set_api(r.as_str(), true).await?;
            // Every alarm back to OK: an ALARM left from the last schedule would hide the
            // next one's OK→ALARM (and its event) from the clock.
            let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk_config(&sb.aws_target(), r).await);
            let alarms = cloudwatch.describe_alarms().send().await?;
            for alarm in alarms.metric_alarms() {
                if alarm.state_value() != Some(&aws_sdk_cloudwatch::types::StateValue::Ok) {
                    cloudwatch
                        .set_alarm_state()
                        .alarm_name(alarm.alarm_name().unwrap_or_default())
                        .state_value(aws_sdk_cloudwatch::types::StateValue::Ok)
                        .state_reason("the drill's reset to its snapshot")
                        .send()
                        .await?;
                }
            }
        }
        // Ready when a row reaches the replica and Route 53's checkers send clients to the
        // writer again (they change a check's status only after its failure threshold).
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let replicated = sb.prove_replication().await.is_ok();
            let answered = dns::answer(sb).await.map(|a| a.region == self.answer).unwrap_or(false);
            if replicated && answered {
                return Ok(began.elapsed());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the reset did not settle within 90 s (replication proven: {replicated}; DNS answers the writer: {answered})"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The writer claim's epoch, if `item` is the claim.
fn epoch_of(item: &Item) -> Option<u64> {
    if item.get("pk")?.as_s().ok()? != "writer" {
        return None;
    }
    item.get("epoch")?.as_n().ok()?.parse().ok()
}

/// `item` with the claim's (or the arming's) epoch set to `epoch`.
fn under_epoch(item: &Item, epoch: u64) -> Result<Item> {
    let mut item = item.clone();
    match item.get("pk").and_then(|k| k.as_s().ok()).map(String::as_str) {
        Some("writer") => {
            item.insert("epoch".into(), AttributeValue::N(epoch.to_string()));
        }
        Some("arming") => {
            let text = item.get("arming").and_then(|a| a.as_s().ok()).context("an arming item without arming")?;
            let mut arming: serde_json::Value = serde_json::from_str(text)?;
            arming["epoch"] = serde_json::json!(epoch);
            item.insert("arming".into(), AttributeValue::S(arming.to_string()));
        }
        _ => {}
    }
    Ok(item)
}

async fn ddb(sb: &Sandbox) -> aws_sdk_dynamodb::Client {
    let d = sb.deployment();
    aws_sdk_dynamodb::Client::new(&sdk_config(&sb.aws_target(), &d.regions.primary).await)
}

async fn scan(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page =
            ddb.scan().table_name(table).consistent_read(true).set_exclusive_start_key(start.take()).send().await?;
        items.extend(page.items().iter().cloned());
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(items),
        }
    }
}

impl Snapshot {
    /// The failover records' roles as they were.
    async fn restore_records(&self, sb: &Sandbox) -> Result<()> {
        let mut changes = Vec::new();
        for rrs in records(sb).await? {
            let Some(id) = rrs.set_identifier() else { continue };
            let Some((_, role)) = self.records.iter().find(|(r, _)| r == id) else { continue };
            if rrs.failover() != Some(role) {
                let mut record = rrs.clone();
                record.failover = Some(role.clone());
                changes.push(Change::builder().action(ChangeAction::Upsert).resource_record_set(record).build()?);
            }
        }
        if !changes.is_empty() {
            let (route53, zone) = route53(sb).await?;
            route53
                .change_resource_record_sets()
                .hosted_zone_id(zone)
                .change_batch(ChangeBatch::builder().set_changes(Some(changes)).build()?)
                .send()
                .await?;
        }
        Ok(())
    }
}

async fn route53(sb: &Sandbox) -> Result<(aws_sdk_route53::Client, String)> {
    let d = sb.deployment();
    let zone = sb.resources.as_ref().context("the sandbox is not provisioned")?.global.hosted_zone_id.clone();
    Ok((aws_sdk_route53::Client::new(&sdk_config(&sb.aws_target(), &d.regions.primary).await), zone))
}

/// The failover records (those with a set identifier).
async fn records(sb: &Sandbox) -> Result<Vec<aws_sdk_route53::types::ResourceRecordSet>> {
    let (route53, zone) = route53(sb).await?;
    let listed = route53.list_resource_record_sets().hosted_zone_id(zone).send().await?;
    Ok(listed.resource_record_sets().iter().filter(|r| r.set_identifier().is_some()).cloned().collect())
}

/// `cp -a FROM TO` (TO replaced): modes and times kept, as PostgreSQL wants its directory.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let status = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status()?;
    anyhow::ensure!(status.success(), "cp -a {} {}: {status}", from.display(), to.display());
    Ok(())
}
