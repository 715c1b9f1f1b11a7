//! The readiness rules. Each reads (never writes) and answers a [`RuleResult`] with its
//! evidence. A missing resource or a database that does not answer is a *finding* (`fail`);
//! an API that throttles or denies us is an inability to check (`error`, with its name).
//!
//! The judgements that are more than a comparison are pure functions below the rules
//! ([`judge_claims`], [`ssm_differences`], [`judge_dns`]) with their own unit tests.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use switchyard_aws::{aurora_lag::aurora_replication_lag, control_table::ControlTable, errors::classify, queues};
use switchyard_core::{
    DatabaseRole, ErrorCategory, ErrorName, LagGate, LagVerdict, Region, SwitchyardError, WriterClaim,
    arming::ArmingStore,
    ingress,
    ports::{ClaimStore, ReplicationMonitor},
    readiness::{RuleResult, rules},
};
use switchyard_model::Names;
use switchyard_postgres::{PgNode, pair_lag};

use crate::config::ReadinessConfig;

/// The AWS clients of one region.
#[derive(Debug, Clone)]
pub struct Regional {
    pub region: Region,
    pub claims: ControlTable,
    pub sqs: aws_sdk_sqs::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub lambda: aws_sdk_lambda::Client,
}

/// Everything a run reads through.
#[derive(Debug, Clone)]
pub struct Sources {
    pub config: ReadinessConfig,
    pub regions: Vec<Regional>,
    pub rds: aws_sdk_rds::Client,
    pub route53: aws_sdk_route53::Client,
    /// Postgres engine: each region's database, with the tester's credentials.
    pub databases: BTreeMap<Region, PgNode>,
}

/// Who writes now and who would take over, as the run judges them.
#[derive(Debug, Clone)]
pub struct Roles {
    pub writer: Region,
    pub candidate: Region,
    /// The writer's epoch, when a claim could be read.
    pub epoch: Option<switchyard_core::WriterEpoch>,
}

impl Sources {
    pub fn regional(&self, region: &Region) -> &Regional {
        self.regions.iter().find(|r| r.region == *region).unwrap_or(&self.regions[0])
    }

    fn names(&self) -> &Names {
        &self.config.names
    }

    fn region_names(&self, region: &Region) -> switchyard_model::RegionalNames {
        self.names().regional(region)
    }
}

/// An error from an API: a missing resource is a finding, anything else an inability to check.
fn api_error(rule: &str, e: SwitchyardError) -> RuleResult {
    if e.name == ErrorName::ResourceNotFound {
        RuleResult::fail(rule, e.message.clone(), json!({ "error": e.message }))
    } else {
        RuleResult::error(rule, e.name, e.message)
    }
}

// ---------------------------------------------------------------------------------------
// writer-claim

/// Reads both regions' claims (phase one: the other rules need to know the writer).
pub async fn read_claims(s: &Sources) -> Vec<(Region, Result<WriterClaim, SwitchyardError>)> {
    let reads = s.regions.iter().map(|r| async move { (r.region.clone(), r.claims.strong_read().await.proven()) });
    futures_util::future::join_all(reads).await
}

/// Exactly one writer: the claim store answers a strong read through both regions' replicas,
/// with one claim (two answers would mean the store is not one MRSC table).
pub fn judge_claims(claims: &[(Region, Result<WriterClaim, SwitchyardError>)]) -> RuleResult {
    let rule = rules::WRITER_CLAIM;
    let evidence: BTreeMap<String, Value> = claims
        .iter()
        .map(|(region, c)| {
            let v = match c {
                Ok(c) => json!({ "epoch": c.epoch.0, "writer": c.writer, "phase": c.phase }),
                Err(e) => json!({ "error": e.name.as_str(), "message": e.message }),
            };
            (region.to_string(), v)
        })
        .collect();
    let evidence = json!(evidence);
    if let Some((region, Err(e))) = claims.iter().find(|(_, c)| c.is_err()) {
        return match e.category() {
            ErrorCategory::Transient => RuleResult::error(rule, e.name, format!("{region}: {}", e.message)),
            _ => RuleResult::fail(rule, format!("{region}'s control table: {}", e.message), evidence),
        };
    }
    let read: Vec<(&Region, &WriterClaim)> =
        claims.iter().filter_map(|(r, c)| c.as_ref().ok().map(|c| (r, c))).collect();
    let writers: std::collections::BTreeSet<&Region> = read.iter().map(|(_, c)| &c.writer).collect();
    let epochs: std::collections::BTreeSet<u64> = read.iter().map(|(_, c)| c.epoch.0).collect();
    if writers.len() > 1 {
        let each: Vec<String> =
            read.iter().map(|(r, c)| format!("{r}'s table names {} (epoch {})", c.writer, c.epoch)).collect();
        return RuleResult::fail(rule, format!("both regions claim the writer role: {}", each.join(", ")), evidence);
    }
    if epochs.len() > 1 {
        let each: Vec<String> = read.iter().map(|(r, c)| format!("{r} at epoch {}", c.epoch)).collect();
        return RuleResult::fail(rule, format!("the epochs disagree: {}", each.join(", ")), evidence);
    }
    match read.first() {
        // Recorded but never activated: its execution ended between Record and Activate.
        Some((_, c)) if c.phase == switchyard_core::LeasePhase::Pending => RuleResult::fail(
            rule,
            format!(
                "{} holds epoch {} but its lease is still pending, so no region applies orders: \
                 start the state machine in {} again to finish the handover",
                c.writer, c.epoch, c.writer
            ),
            evidence,
        ),
        Some((_, c)) => RuleResult::pass(
            rule,
            format!("{} writes at epoch {}, read through both regions' replicas", c.writer, c.epoch),
            evidence,
        ),
        None => RuleResult::fail(rule, "no control table could be read", evidence),
    }
}

// ---------------------------------------------------------------------------------------
// global-database, standby-replica, replication-lag

pub async fn global_database(s: &Sources, roles: &Roles) -> RuleResult {
    let rule = rules::GLOBAL_DATABASE;
    let id = s.names().global_cluster();
    let out = match s.rds.describe_global_clusters().global_cluster_identifier(&id).send().await {
        Ok(out) => out,
        Err(e) => return api_error(rule, classify("DescribeGlobalClusters", &e)),
    };
    // Select by id ourselves: some implementations ignore the filter.
    let Some(global) = out.global_clusters().iter().find(|g| g.global_cluster_identifier() == Some(id.as_str())) else {
        return RuleResult::fail(rule, format!("global cluster {id} does not exist"), json!({ "globalCluster": id }));
    };
    let members: Vec<Value> = global
        .global_cluster_members()
        .iter()
        .map(|m| {
            json!({
                "arn": m.db_cluster_arn(),
                "isWriter": m.is_writer(),
                "synchronizationStatus": m.synchronization_status().map(|s| s.as_str()),
            })
        })
        .collect();
    let mut problems = Vec::new();
    for region in s.config.deployment.regions.iter() {
        let suffix = format!(":cluster:{}", s.region_names(region).db_cluster);
        if !global.global_cluster_members().iter().any(|m| m.db_cluster_arn().is_some_and(|a| a.ends_with(&suffix))) {
            problems.push(format!("{region}'s cluster {} is not a member", s.region_names(region).db_cluster));
        }
    }
    let writers: Vec<&str> = global
        .global_cluster_members()
        .iter()
        .filter(|m| m.is_writer() == Some(true))
        .filter_map(|m| m.db_cluster_arn())
        .collect();
    if writers.len() != 1 {
        problems.push(format!("{} writer members, expected exactly one", writers.len()));
    }
    // Only Aurora moves the writer member; with PostgreSQL the global cluster is metadata.
    if matches!(s.config.engine, crate::config::Engine::Aurora)
        && let [writer] = writers.as_slice()
        && !writer.contains(&format!(":rds:{}:", roles.writer))
    {
        problems.push(format!("the writer member {writer} is not in {}, the claimed writer", roles.writer));
    }
    let evidence = json!({ "globalCluster": id, "status": global.status(), "members": members });
    RuleResult::holds(
        rule,
        problems.is_empty(),
        format!("{id}: both regional clusters are members, one writer"),
        problems.join("; "),
        evidence,
    )
}

pub async fn standby_replica(s: &Sources, roles: &Roles) -> RuleResult {
    let rule = rules::STANDBY_REPLICA;
    let Some(node) = s.databases.get(&roles.candidate) else {
        return aurora_sync(s, roles).await;
    };
    let evidence = |status: Value| json!({ "region": roles.candidate, "endpoint": format!("{}:{}", node.endpoint.host, node.endpoint.port), "status": status });
    match node.replication_status().await {
        Err(e) if e.name == ErrorName::Throttled => RuleResult::error(rule, e.name, e.message),
        // The database being down or refusing us is what this rule looks for.
        Err(e) => RuleResult::fail(
            rule,
            format!("{}'s database does not answer: {}", roles.candidate, e.message),
            evidence(json!({ "error": e.name.as_str() })),
        ),
        Ok(status) => {
            let ev = evidence(serde_json::to_value(&status).unwrap_or_default());
            match (status.role, status.streaming_peers) {
                (DatabaseRole::Writer, _) => RuleResult::fail(
                    rule,
                    format!("{}'s database is a writer, not a replica: two databases accept writes", roles.candidate),
                    ev,
                ),
                (DatabaseRole::Replica, 0) => {
                    RuleResult::fail(rule, format!("{}'s replica does not stream from the writer", roles.candidate), ev)
                }
                (DatabaseRole::Replica, _) => {
                    RuleResult::pass(rule, format!("{}'s replica streams from the writer", roles.candidate), ev)
                }
            }
        }
    }
}

/// Aurora: the candidate's cluster is a connected secondary of the global cluster.
async fn aurora_sync(s: &Sources, roles: &Roles) -> RuleResult {
    let rule = rules::STANDBY_REPLICA;
    let id = s.names().global_cluster();
    let cluster = s.region_names(&roles.candidate).db_cluster;
    let out = match s.rds.describe_global_clusters().global_cluster_identifier(&id).send().await {
        Ok(out) => out,
        Err(e) => return api_error(rule, classify("DescribeGlobalClusters", &e)),
    };
    let member = out
        .global_clusters()
        .iter()
        .filter(|g| g.global_cluster_identifier() == Some(id.as_str()))
        .flat_map(|g| g.global_cluster_members())
        .find(|m| m.db_cluster_arn().is_some_and(|a| a.ends_with(&format!(":cluster:{cluster}"))));
    let Some(member) = member else {
        return RuleResult::fail(rule, format!("{cluster} is not a member of {id}"), json!({ "cluster": cluster }));
    };
    let sync = member.synchronization_status().map(|s| s.as_str().to_owned());
    let evidence = json!({ "cluster": cluster, "isWriter": member.is_writer(), "synchronizationStatus": sync });
    RuleResult::holds(
        rule,
        member.is_writer() != Some(true) && sync.as_deref() == Some("connected"),
        format!("{cluster} is a connected secondary"),
        format!("{cluster} is not a connected secondary (writer: {:?}, sync: {sync:?})", member.is_writer()),
        evidence,
    )
}

pub async fn replication_lag(s: &Sources, roles: &Roles) -> RuleResult {
    let rule = rules::REPLICATION_LAG;
    let d = &s.config.deployment;
    let gate = LagGate { budget: d.rpo_budget, orders_per_hour: s.config.orders_per_hour };
    let lag = match (s.databases.get(&roles.writer), s.databases.get(&roles.candidate)) {
        (Some(writer), Some(replica)) => pair_lag(writer, replica).await.map(Some),
        _ => {
            let cluster = s.region_names(&roles.candidate).db_cluster;
            aurora_replication_lag(&s.regional(&roles.candidate).cloudwatch, &cluster).await
        }
    };
    let lag = match lag {
        Ok(lag) => lag,
        Err(e) if e.category() == ErrorCategory::Transient && e.name != ErrorName::ServiceUnavailable => {
            return RuleResult::error(rule, e.name, e.message);
        }
        Err(e) => {
            return RuleResult::fail(rule, format!("lag unknown: {}", e.message), json!({ "error": e.name.as_str() }));
        }
    };
    let budget = d.rpo_budget.0.as_secs();
    let evidence = json!({
        "from": roles.writer,
        "to": roles.candidate,
        "bytes": lag.map(|l| l.bytes),
        "seconds": lag.map(|l| l.seconds),
        "budgetSeconds": budget,
        "ordersInLag": lag.as_ref().map(|l| gate.orders_in_lag(l)),
    });
    match (d.rpo_budget.judge(lag.as_ref()), lag) {
        (LagVerdict::WithinBudget, Some(l)) => {
            RuleResult::pass(rule, format!("{:.1} s behind, within the {budget} s RPO budget", l.seconds), evidence)
        }
        (LagVerdict::AboveBudget, Some(l)) => RuleResult::fail(
            rule,
            format!(
                "{:.1} s behind, above the {budget} s RPO budget: about {} orders in the lag (applied there, not yet in the standby)",
                l.seconds,
                gate.orders_in_lag(&l)
            ),
            evidence,
        ),
        _ => RuleResult::fail(rule, "no lag figure: the budget cannot be shown to hold", evidence),
    }
}

// ---------------------------------------------------------------------------------------
// queues, acknowledgement

pub async fn queues(s: &Sources) -> RuleResult {
    let rule = rules::QUEUES;
    let mut evidence = BTreeMap::new();
    let mut problems = Vec::new();
    for r in &s.regions {
        let names = s.region_names(&r.region);
        let describe =
            |name: String| async move { queues::describe(&r.sqs, &queues::url_of(&r.sqs, &name).await?).await };
        let (queue, dlq, catch_up) = tokio::join!(
            describe(names.orders_queue.clone()),
            describe(names.orders_dlq.clone()),
            describe(names.orders_catch_up.clone())
        );
        let mut found = |name: &str, q: &Result<queues::QueueDescription, SwitchyardError>| match q {
            Ok(q) => Some(q.clone()),
            Err(e) if e.name == ErrorName::ResourceNotFound => {
                problems.push(format!("{}: {name} does not exist", r.region));
                None
            }
            Err(e) => {
                problems.push(format!("{}: {name}: {}", r.region, e.message));
                None
            }
        };
        if let Some(e) = [&queue, &dlq, &catch_up]
            .into_iter()
            .find_map(|q| q.as_ref().err())
            .filter(|e| e.category() == ErrorCategory::Transient || e.name == ErrorName::AccessDenied)
        {
            return RuleResult::error(rule, e.name, format!("{}: {}", r.region, e.message));
        }
        let (queue, dlq, catch_up) = (
            found(&names.orders_queue, &queue),
            found(&names.orders_dlq, &dlq),
            found(&names.orders_catch_up, &catch_up),
        );
        if let Some(q) = &queue {
            match (&q.redrive, &dlq) {
                (None, _) => problems.push(format!("{}: {} has no redrive policy", r.region, names.orders_queue)),
                (Some(red), Some(d)) if red.dead_letter_arn != d.arn => problems.push(format!(
                    "{}: {} redrives to {}, not to {}",
                    r.region, names.orders_queue, red.dead_letter_arn, d.arn
                )),
                (Some(red), _) if red.max_receive_count != s.config.orders_max_receives => problems.push(format!(
                    "{}: maxReceiveCount {} (the consumer is told {})",
                    r.region, red.max_receive_count, s.config.orders_max_receives
                )),
                _ => {}
            }
        }
        for q in queue.iter().chain(dlq.iter()).chain(catch_up.iter()).filter(|q| !q.encrypted) {
            problems.push(format!("{}: {} is not encrypted at rest", r.region, queues::name_in_arn(&q.arn)));
        }
        evidence.insert(
            r.region.to_string(),
            json!({
                "queue": queue.as_ref().map(|q| json!({ "arn": q.arn, "visible": q.visible, "inFlight": q.in_flight, "encrypted": q.encrypted,
                    "redrive": q.redrive.as_ref().map(|r| json!({ "deadLetterArn": r.dead_letter_arn, "maxReceiveCount": r.max_receive_count })) })),
                "dlq": dlq.as_ref().map(|q| json!({ "arn": q.arn, "visible": q.visible, "encrypted": q.encrypted })),
                "catchUp": catch_up.as_ref().map(|q| json!({ "arn": q.arn, "visible": q.visible, "inFlight": q.in_flight, "encrypted": q.encrypted })),
            }),
        );
    }
    RuleResult::holds(
        rule,
        problems.is_empty(),
        "both regions have their orders queue, DLQ and catch-up queue, encrypted, with the redrive policy".to_owned(),
        problems.join("; "),
        json!(evidence),
    )
}

/// The candidate's standing in the acknowledgement, as the writer's epoch recorded it: only
/// an eligible standby holds every acknowledged order, so only it may take over without
/// `allowDataLoss` (the promoter's Gate refuses otherwise).
pub async fn acknowledgement(s: &Sources, roles: &Roles) -> RuleResult {
    let rule = rules::ACKNOWLEDGEMENT;
    let Some(epoch) = roles.epoch else {
        return RuleResult::fail(rule, "no writer claim could be read, so no standing either", json!({}));
    };
    let store = &s.regional(&roles.writer).claims;
    let standing = match ingress::standing_of(store, &roles.candidate, epoch).await {
        Ok(standing) => standing,
        Err(e) => return api_error(rule, e),
    };
    let evidence = json!({
        "standby": standing.standby,
        "standing": standing.standing,
        "version": standing.version,
        "epoch": standing.epoch.0,
    });
    if standing.may_take_over(&roles.candidate) {
        RuleResult::pass(
            rule,
            format!("{} is eligible: every acknowledged order is durable there", roles.candidate),
            evidence,
        )
    } else {
        RuleResult::fail(
            rule,
            format!(
                "{} is {:?} (standing version {}): acknowledged orders may wait in {}'s catch-up queue, \
                 so a failover there needs allowDataLoss until it has caught up",
                roles.candidate, standing.standing, standing.version, roles.writer
            ),
            evidence,
        )
    }
}

/// Whether the candidate may take over automatically: armed under the writer's epoch.
pub async fn arming(s: &Sources, roles: &Roles) -> RuleResult {
    let rule = rules::ARMING;
    let Some(epoch) = roles.epoch else {
        return RuleResult::fail(rule, "no writer claim could be read, so no arming either", json!({}));
    };
    let armed = match s.regional(&roles.writer).claims.armed().await {
        Ok(armed) => armed,
        Err(e) => return api_error(rule, e),
    };
    let evidence = json!({ "armed": armed, "epoch": epoch.0 });
    match switchyard_core::arming::check(armed.as_ref(), &roles.candidate, epoch) {
        Ok(()) => RuleResult::pass(rule, format!("{} is armed as the takeover target", roles.candidate), evidence),
        Err(e) => RuleResult::fail(rule, e.message, evidence),
    }
}

// ---------------------------------------------------------------------------------------
// ssm-config

async fn parameters(ssm: &aws_sdk_ssm::Client, prefix: &str) -> Result<BTreeMap<String, String>, SwitchyardError> {
    let mut found = BTreeMap::new();
    let mut next = None;
    loop {
        let out = ssm
            .get_parameters_by_path()
            .path(prefix)
            .recursive(true)
            .with_decryption(false)
            .set_next_token(next)
            .send()
            .await
            .map_err(|e| classify("GetParametersByPath", &e))?;
        for p in out.parameters() {
            if let (Some(n), Some(v)) = (p.name(), p.value()) {
                found.insert(n.to_owned(), v.to_owned());
            }
        }
        match out.next_token {
            Some(t) => next = Some(t),
            None => return Ok(found),
        }
    }
}

/// Keys whose values differ (or exist on one side only), ignoring `{prefix}regional/…`.
pub fn ssm_differences(
    prefix: &str,
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let regional = format!("{prefix}regional/");
    let keys: std::collections::BTreeSet<&String> =
        a.keys().chain(b.keys()).filter(|k| !k.starts_with(&regional)).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| ((*k).clone(), a.get(k).cloned(), b.get(k).cloned()))
        .collect()
}

pub async fn ssm_config(s: &Sources) -> RuleResult {
    let rule = rules::SSM_CONFIG;
    let prefix = s.names().ssm_prefix();
    let reads = futures_util::future::join_all(s.regions.iter().map(|r| parameters(&r.ssm, &prefix))).await;
    let mut maps = Vec::new();
    for (r, read) in s.regions.iter().zip(reads) {
        match read {
            Ok(m) => maps.push((r.region.clone(), m)),
            Err(e) => return RuleResult::error(rule, e.name, format!("{}: {}", r.region, e.message)),
        }
    }
    let [(ra, a), (rb, b)] = &maps[..] else {
        return RuleResult::error(rule, ErrorName::Internal, "expected two regions");
    };
    let differences = ssm_differences(&prefix, a, b);
    let evidence = json!({
        "prefix": prefix,
        "parameters": a.len().max(b.len()),
        "differences": differences.iter().map(|(k, va, vb)| json!({ "name": k, ra.as_str(): va, rb.as_str(): vb })).collect::<Vec<_>>(),
    });
    if a.is_empty() && b.is_empty() {
        return RuleResult::fail(rule, format!("no parameters under {prefix} in either region"), evidence);
    }
    let listed: Vec<String> = differences
        .iter()
        .map(|(k, va, vb)| {
            format!("{k}: {ra}={} {rb}={}", va.as_deref().unwrap_or("(missing)"), vb.as_deref().unwrap_or("(missing)"))
        })
        .collect();
    RuleResult::holds(
        rule,
        differences.is_empty(),
        format!("{} shared parameters agree", a.len()),
        format!("{} parameter(s) differ between regions: {}", listed.len(), listed.join("; ")),
        evidence,
    )
}

// ---------------------------------------------------------------------------------------
// dns

/// One failover record as the rule needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverRecord {
    pub set_identifier: String,
    pub failover: String,
    pub health_check_id: Option<String>,
}

/// Both regions have a failover record (set identifier = region) with a health check, one
/// PRIMARY and one SECONDARY.
pub fn judge_dns(regions: &[&Region], records: &[FailoverRecord]) -> Vec<String> {
    let mut problems = Vec::new();
    for region in regions {
        match records.iter().find(|r| r.set_identifier == region.as_str()) {
            None => problems.push(format!("no failover record for {region}")),
            Some(r) if r.health_check_id.is_none() => problems.push(format!("{region}'s record has no health check")),
            Some(_) => {}
        }
    }
    let mut roles: Vec<&str> = records.iter().map(|r| r.failover.as_str()).collect();
    roles.sort_unstable();
    if !problems.is_empty() {
        return problems;
    }
    if roles != ["PRIMARY", "SECONDARY"] {
        problems.push(format!("failover roles {roles:?}, expected one PRIMARY and one SECONDARY"));
    }
    problems
}

pub async fn dns(s: &Sources) -> RuleResult {
    let rule = rules::DNS;
    let name = s.config.api_record.trim_end_matches('.').to_owned();
    let out = match s
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(&s.config.hosted_zone_id)
        .start_record_name(&name)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => return api_error(rule, classify("ListResourceRecordSets", &e)),
    };
    let records: Vec<FailoverRecord> = out
        .resource_record_sets()
        .iter()
        .filter(|r| r.name().trim_end_matches('.') == name && r.failover().is_some())
        .map(|r| FailoverRecord {
            set_identifier: r.set_identifier().unwrap_or_default().to_owned(),
            failover: r.failover().map(|f| f.as_str().to_owned()).unwrap_or_default(),
            health_check_id: r.health_check_id().map(str::to_owned),
        })
        .collect();
    let regions: Vec<&Region> = s.config.deployment.regions.iter().collect();
    let mut problems = judge_dns(&regions, &records);
    let mut checks = BTreeMap::new();
    for id in records.iter().filter_map(|r| r.health_check_id.as_ref()) {
        match s.route53.get_health_check().health_check_id(id).send().await {
            Ok(hc) => {
                let kind =
                    hc.health_check().and_then(|h| h.health_check_config()).map(|c| c.r#type().as_str().to_owned());
                checks.insert(id.clone(), json!({ "type": kind }));
            }
            Err(e) => {
                let e = classify("GetHealthCheck", &e);
                if e.name != ErrorName::ResourceNotFound {
                    return RuleResult::error(rule, e.name, e.message);
                }
                problems.push(format!("health check {id} does not exist"));
            }
        }
    }
    let evidence = json!({
        "zone": s.config.hosted_zone_id,
        "record": name,
        "records": records.iter().map(|r| json!({ "setIdentifier": r.set_identifier, "failover": r.failover, "healthCheckId": r.health_check_id })).collect::<Vec<_>>(),
        "healthChecks": checks,
    });
    RuleResult::holds(
        rule,
        problems.is_empty(),
        format!("{name}: a failover record with a health check for each region"),
        problems.join("; "),
        evidence,
    )
}

// ---------------------------------------------------------------------------------------
// failover-alarm, failover-trigger, state-machine (all in the candidate region)

pub async fn failover_alarm(s: &Sources, roles: &Roles) -> RuleResult {
    let rule = rules::FAILOVER_ALARM;
    let name = s.region_names(&roles.candidate).failover_alarm;
    let cw = &s.regional(&roles.candidate).cloudwatch;
    let out = match cw.describe_alarms().alarm_names(&name).send().await {
        Ok(out) => out,
        Err(e) => return api_error(rule, classify("DescribeAlarms", &e)),
    };
    let Some(alarm) = out.metric_alarms().first() else {
        return RuleResult::fail(
            rule,
            format!("{}: alarm {name} does not exist", roles.candidate),
            json!({ "alarm": name }),
        );
    };
    let watched: Vec<(String, String)> = alarm
        .dimensions()
        .iter()
        .map(|d| (d.name().unwrap_or_default().to_owned(), d.value().unwrap_or_default().to_owned()))
        .collect();
    let watches_writer = watched.contains(&("Region".to_owned(), roles.writer.to_string()));
    let enabled = alarm.actions_enabled() == Some(true);
    let evidence = json!({
        "region": roles.candidate, "alarm": name, "metric": alarm.metric_name(), "dimensions": watched.iter().map(|(k, v)| json!({ k: v })).collect::<Vec<_>>(),
        "actionsEnabled": enabled, "state": alarm.state_value().map(|s| s.as_str()), "period": alarm.period(), "evaluationPeriods": alarm.evaluation_periods(),
    });
    let mut problems = Vec::new();
    if !enabled {
        problems.push("its actions are disabled".to_owned());
    }
    if !watches_writer {
        problems.push(format!("it does not watch {}, the writer", roles.writer));
    }
    RuleResult::holds(
        rule,
        problems.is_empty(),
        format!("{}: {name} watches {} with actions enabled", roles.candidate, roles.writer),
        format!("{}: {name}: {}", roles.candidate, problems.join(", ")),
        evidence,
    )
}

pub async fn failover_trigger(s: &Sources, roles: &Roles) -> RuleResult {
    let rule = rules::FAILOVER_TRIGGER;
    let names = s.region_names(&roles.candidate);
    let events = &s.regional(&roles.candidate).events;
    let out = match events.describe_rule().name(&names.failover_rule).send().await {
        Ok(out) => out,
        Err(e) => return api_error(rule, classify("DescribeRule", &e)),
    };
    let enabled = out.state().is_some_and(|s| s.as_str() == "ENABLED");
    let pattern = out.event_pattern().unwrap_or_default();
    let on_alarm = pattern.contains(&names.failover_alarm);
    let evidence = json!({ "region": roles.candidate, "rule": names.failover_rule, "state": out.state().map(|s| s.as_str()), "eventPattern": pattern });
    RuleResult::holds(
        rule,
        enabled && on_alarm,
        format!("{}: {} is enabled and matches {}", roles.candidate, names.failover_rule, names.failover_alarm),
        format!(
            "{}: {} is {}{}",
            roles.candidate,
            names.failover_rule,
            out.state().map_or("in no state", |s| s.as_str()),
            if on_alarm { "" } else { " and does not match the failover alarm" }
        ),
        evidence,
    )
}

pub async fn state_machine(s: &Sources, roles: &Roles) -> RuleResult {
    let rule = rules::STATE_MACHINE;
    let name = s.region_names(&roles.candidate).failover_state_machine;
    let sfn = &s.regional(&roles.candidate).sfn;
    let mut next = None;
    let arn = loop {
        let out = match sfn.list_state_machines().set_next_token(next).send().await {
            Ok(out) => out,
            Err(e) => return api_error(rule, classify("ListStateMachines", &e)),
        };
        if let Some(m) = out.state_machines().iter().find(|m| m.name() == name) {
            break m.state_machine_arn().to_owned();
        }
        match out.next_token {
            Some(t) => next = Some(t),
            None => {
                return RuleResult::fail(
                    rule,
                    format!("{}: state machine {name} is not deployed", roles.candidate),
                    json!({ "region": roles.candidate, "stateMachine": name }),
                );
            }
        }
    };
    let running = match sfn
        .list_executions()
        .state_machine_arn(&arn)
        .status_filter(aws_sdk_sfn::types::ExecutionStatus::Running)
        .send()
        .await
    {
        Ok(out) => out.executions().iter().map(|e| e.name().to_owned()).collect::<Vec<_>>(),
        Err(e) => return api_error(rule, classify("ListExecutions", &e)),
    };
    RuleResult::holds(
        rule,
        running.is_empty(),
        format!("{}: {name} is deployed and idle", roles.candidate),
        format!("{}: {name} is running {}", roles.candidate, running.join(", ")),
        json!({ "region": roles.candidate, "stateMachine": arn, "running": running }),
    )
}

// ---------------------------------------------------------------------------------------
// function-parity

pub async fn function_parity(s: &Sources) -> RuleResult {
    let rule = rules::FUNCTION_PARITY;
    let mut evidence = BTreeMap::new();
    let mut problems = Vec::new();
    for function in switchyard_model::FUNCTIONS {
        let name = s.names().function(function);
        let mut seen = Vec::new();
        for r in &s.regions {
            let got = r.lambda.get_function().function_name(&name).send().await;
            let concurrency = r.lambda.get_function_concurrency().function_name(&name).send().await;
            match (got, concurrency) {
                (Ok(f), Ok(c)) => {
                    let sha = f.configuration().and_then(|c| c.code_sha256()).unwrap_or_default().to_owned();
                    seen.push((r.region.clone(), sha, c.reserved_concurrent_executions()));
                }
                (Err(e), _) => {
                    let e = classify("GetFunction", &e);
                    if e.name != ErrorName::ResourceNotFound {
                        return RuleResult::error(rule, e.name, e.message);
                    }
                    problems.push(format!("{name} is not deployed in {}", r.region));
                }
                (_, Err(e)) => return api_error(rule, classify("GetFunctionConcurrency", &e)),
            }
        }
        if let [(ra, sha_a, ca), (rb, sha_b, cb)] = &seen[..] {
            if sha_a != sha_b {
                problems.push(format!("{name}: code {ra}={sha_a} {rb}={sha_b}"));
            }
            if ca != cb {
                problems.push(format!("{name}: reserved concurrency {ra}={ca:?} {rb}={cb:?}"));
            }
        }
        evidence.insert(
            name,
            json!(
                seen.iter()
                    .map(|(r, sha, c)| (r.to_string(), json!({ "codeSha256": sha, "reservedConcurrency": c })))
                    .collect::<BTreeMap<_, _>>()
            ),
        );
    }
    RuleResult::holds(
        rule,
        problems.is_empty(),
        "every function has the same code and concurrency in both regions".to_owned(),
        problems.join("; "),
        json!(evidence),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(s: &str) -> Region {
        s.parse().expect("region")
    }

    fn claim(epoch: u64, writer: &str) -> Result<WriterClaim, SwitchyardError> {
        Ok(WriterClaim::active(switchyard_core::WriterEpoch(epoch), region(writer)))
    }

    #[test]
    fn one_writer_at_one_epoch() {
        use switchyard_core::readiness::Verdict;
        let (e1, e2) = (region("us-east-1"), region("us-east-2"));
        let table = [
            (
                vec![(e1.clone(), claim(1, "us-east-1")), (e2.clone(), claim(1, "us-east-1"))],
                Verdict::Pass,
                "us-east-1 writes at epoch 1",
            ),
            (
                vec![(e1.clone(), claim(1, "us-east-1")), (e2.clone(), claim(1, "us-east-2"))],
                Verdict::Fail,
                "both regions claim the writer role",
            ),
            (
                vec![(e1.clone(), claim(1, "us-east-2")), (e2.clone(), claim(2, "us-east-2"))],
                Verdict::Fail,
                "the epochs disagree",
            ),
            (
                vec![
                    (e1.clone(), Err(SwitchyardError::new(ErrorName::Throttled, "slow"))),
                    (e2.clone(), claim(1, "us-east-1")),
                ],
                Verdict::Error,
                "us-east-1: slow",
            ),
            (
                vec![
                    (e1.clone(), Ok(WriterClaim::pending(switchyard_core::WriterEpoch(2), region("us-east-2")))),
                    (e2.clone(), Ok(WriterClaim::pending(switchyard_core::WriterEpoch(2), region("us-east-2")))),
                ],
                Verdict::Fail,
                "its lease is still pending",
            ),
            (
                vec![
                    (e1, Err(SwitchyardError::new(ErrorName::ResourceNotFound, "no table"))),
                    (e2, claim(1, "us-east-1")),
                ],
                Verdict::Fail,
                "no table",
            ),
        ];
        for (claims, verdict, needle) in table {
            let r = judge_claims(&claims);
            assert_eq!(r.verdict, verdict, "{r:?}");
            assert!(r.summary.contains(needle), "{needle} not in {}", r.summary);
        }
    }

    #[test]
    fn ssm_compares_shared_keys_only() {
        let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let a = map(&[("/s/rpo", "60"), ("/s/mode", "health-check"), ("/s/regional/x", "1"), ("/s/only-a", "1")]);
        let b = map(&[("/s/rpo", "30"), ("/s/mode", "health-check"), ("/s/regional/x", "2")]);
        let diff = ssm_differences("/s/", &a, &b);
        assert_eq!(
            diff,
            [
                ("/s/only-a".to_owned(), Some("1".to_owned()), None),
                ("/s/rpo".to_owned(), Some("60".to_owned()), Some("30".to_owned())),
            ]
        );
    }

    #[test]
    fn dns_needs_a_checked_record_per_region_and_one_primary() {
        let (e1, e2) = (region("us-east-1"), region("us-east-2"));
        let rec = |id: &str, f: &str, hc: Option<&str>| FailoverRecord {
            set_identifier: id.into(),
            failover: f.into(),
            health_check_id: hc.map(Into::into),
        };
        let good = [rec("us-east-1", "PRIMARY", Some("a")), rec("us-east-2", "SECONDARY", Some("b"))];
        assert!(judge_dns(&[&e1, &e2], &good).is_empty());
        assert_eq!(judge_dns(&[&e1, &e2], &good[..1]), ["no failover record for us-east-2"]);
        let unchecked = [rec("us-east-1", "PRIMARY", Some("a")), rec("us-east-2", "SECONDARY", None)];
        assert_eq!(judge_dns(&[&e1, &e2], &unchecked), ["us-east-2's record has no health check"]);
        let two_primaries = [rec("us-east-1", "PRIMARY", Some("a")), rec("us-east-2", "PRIMARY", Some("b"))];
        assert_eq!(judge_dns(&[&e1, &e2], &two_primaries).len(), 1);
    }
}
