//! The drill's engine: scenarios run on a sandbox with **orders flowing**, and invariants
//! checked from the data the databases hold, never from the control plane's own claims.
//!
//! While a scenario runs, three loops run beside it in this process:
//! - the **order client** posts orders to the order API of the region the DNS answer model
//!   names ([`crate::dns::answer`], re-read every second), at a fixed rate, and records every
//!   order an API acknowledged (HTTP 202);
//! - one **event source** per region (the stand-in for Lambda's SQS event source mapping,
//!   [`crate::event_source`]) feeds that region's orders queue to its consumer.
//!
//! Everything else is the deployment's own: the sandbox's clock runs (probes on their
//! schedule, the failover alarm, the rule that starts the failover), so in the unplanned
//! scenario nobody starts anything by hand.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;
use switchyard_aws::control_table::ControlTable;
use switchyard_core::{
    Region,
    arming::{Arming, ArmingStore},
    ledger::{ExecutionStatus, Timeline},
    order::Timestamp,
    ports::{ClaimStore, ReplicationMonitor},
};

use crate::{
    Sandbox, dns,
    event_source::OrdersEventSource,
    lambda::Invocation,
    runner::{self, Start, Timing},
    smoke,
    world::{self, clock::ClockSettings},
};

pub mod faults;
mod html;
mod snapshot;
pub use faults::Schedule;
pub use html::headless;
pub use snapshot::Snapshot;

/// The scenarios in the order they run, each with its typical length in seconds on this
/// project's 2-core machine (for progress bars; the report has the real ones).
pub const SCENARIOS: [(&str, u64); 6] = [
    ("readiness", 2),
    ("unplanned-outage", 200),
    ("failback", 75),
    ("switchover", 75),
    ("partition", 150),
    ("returning-primary", 220),
];

/// How long a returning old writer may stay writable: the re-fence schedule's minute, and
/// a margin for its invocation.
const REFENCE_WITHIN: Duration = Duration::from_secs(75);

/// The report's schema name; bumped on any change that is not a pure addition.
pub const SCHEMA: &str = "switchyard.drill/1";

/// How a drill runs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillOptions {
    /// Orders the client sends per second (the platform's 10,000 an hour is 2.8).
    pub orders_per_second: f64,
    /// The visibility timeout the event sources ask for when they receive (the queues' own
    /// is 60 s): a kept message is retried this much sooner. A sandbox compression, reported.
    pub visibility_seconds: u64,
    /// How long orders keep flowing after the failover ended.
    pub after_seconds: u64,
    /// How long the failover may take from the crash to its timeline's close.
    pub failover_budget_seconds: u64,
    /// The scenarios to run, by name (empty: all). The readiness check always runs (it
    /// arms the standby); the failback follows the outage.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<String>,
}

impl Default for DrillOptions {
    fn default() -> Self {
        DrillOptions {
            orders_per_second: 3.0,
            visibility_seconds: 5,
            after_seconds: 15,
            failover_budget_seconds: 240,
            only: Vec::new(),
        }
    }
}

/// One invariant, held or broken, with what was observed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invariant {
    pub name: &'static str,
    pub holds: bool,
    pub evidence: String,
}

/// The figures of a scenario, in seconds from the fault (the one RTO definition: detected →
/// traffic moved, from the execution's timeline).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub detected_after_fault: Option<f64>,
    pub decided_after_fault: Option<f64>,
    pub promoted_after_fault: Option<f64>,
    pub traffic_moved_after_fault: Option<f64>,
    pub first_order_applied_after_fault: Option<f64>,
    pub rto_seconds: Option<f64>,
    pub orders_acknowledged: usize,
    /// Acknowledged orders not yet applied in the final writer when the drill looked last.
    pub orders_at_risk: usize,
    pub orders_lost: usize,
    /// Acknowledged orders applied more than once (the key forbids it; counted, not assumed).
    pub orders_duplicated: usize,
    /// Orders an API refused or did not answer: never acknowledged, so never owed.
    pub orders_refused: usize,
    pub executions_started: usize,
    pub executions_deduplicated: usize,
    /// The failover alarm's state changes in the region taking over, in order (`OK→ALARM`).
    pub alarm_changes: Vec<String>,
    /// How often that alarm left ALARM after first entering it: each relapse may start
    /// another execution (deduplicated by the lock).
    pub alarm_relapses: usize,
}

/// What one scenario did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    pub name: String,
    pub description: String,
    /// The faults the scenario ran (scenarios 5 and 6, a campaign's schedules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    pub ok: bool,
    pub wall_seconds: f64,
    pub figures: Figures,
    pub invariants: Vec<Invariant>,
    /// The timelines of the executions the scenario caused.
    pub executions: Vec<Timeline>,
    /// Notable moments, in seconds from the scenario's start.
    pub events: Vec<(f64, String)>,
    /// When the fault was injected, in seconds from the scenario's start (the figures count
    /// from it).
    pub fault_at_seconds: Option<f64>,
}

/// The whole drill, as written to `report.json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    pub schema: &'static str,
    pub sandbox: String,
    pub started_at: String,
    pub wall_seconds: f64,
    pub ok: bool,
    pub options: DrillOptions,
    /// A campaign's own figures (`--campaign`); its schedules are the scenarios.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<CampaignSummary>,
    pub scenarios: Vec<ScenarioReport>,
}

impl DrillReport {
    fn new(
        sb: &Sandbox,
        options: &DrillOptions,
        (started_at, began): (String, Instant),
        campaign: Option<CampaignSummary>,
        scenarios: Vec<ScenarioReport>,
    ) -> DrillReport {
        DrillReport {
            schema: SCHEMA,
            sandbox: sb.instance.clone(),
            started_at,
            wall_seconds: began.elapsed().as_secs_f64(),
            ok: scenarios.iter().all(|s| s.ok),
            options: options.clone(),
            campaign,
            scenarios,
        }
    }

    /// The invariants that do not hold, as `scenario: invariant`.
    pub fn broken(&self) -> Vec<String> {
        self.scenarios
            .iter()
            .flat_map(|s| s.invariants.iter().filter(|i| !i.holds).map(move |i| format!("{}: {}", s.name, i.name)))
            .collect()
    }
}

/// The acknowledged orders, as the client saw them.
#[derive(Debug, Default)]
struct Ledger {
    acknowledged: BTreeMap<String, (String, Instant)>,
    refused: usize,
    next: u64,
}

/// Runs the drill's scenarios on `sb` (up, freshly provisioned), telling `progress` a line per
/// step. The report says which invariants hold; an `Err` is a drill that could not run.
pub async fn run(sb: &Sandbox, options: &DrillOptions, progress: &(dyn Fn(&str) + Sync)) -> Result<DrillReport> {
    let began = Instant::now();
    let started_at = Timestamp::now().to_string();
    let wanted = |name: &str| options.only.is_empty() || options.only.iter().any(|o| o == name);
    let mut scenarios = Vec::new();
    // The readiness check arms the standby, and the outage fails over into it with nothing
    // started by hand. Then the way home and away again, planned: the failback once the old
    // primary was rebuilt as a replica, and a switchover. (In this order because the cooldown
    // holds back an automatic failover for an hour after any handover, a planned one too:
    // docs/decisions.md.) After each scenario that moved the writer, the old writer is
    // rebuilt as the new one's replica. The partition and the returning primary start again
    // from the snapshot taken after the readiness check: the writer home, the standby armed,
    // no cooldown.
    scenarios.push(readiness(sb, progress).await?);
    let snapshot = if wanted("partition") || wanted("returning-primary") {
        let s = Snapshot::take(sb).await?;
        progress("snapshot    taken: both databases' directories and the claim table, to reset to");
        Some(s)
    } else {
        None
    };
    let mut dirty = false;
    for scenario in [Scenario::UnplannedOutage, Scenario::Failback, Scenario::Switchover] {
        if wanted(scenario.name()) {
            scenarios.push(with_orders(sb, options, progress, &scenario).await?);
            dirty = true;
        }
    }
    for (name, schedule) in [("partition", Schedule::partition()), ("returning-primary", Schedule::returning_primary())]
    {
        let (true, Some(snapshot)) = (wanted(name), &snapshot) else { continue };
        if dirty {
            let took = snapshot.restore(sb).await?;
            progress(&format!("{name:<16} reset to the snapshot in {:.1} s", took.as_secs_f64()));
        }
        let description = match name {
            "partition" => "the link between the regions cut for 45 s while orders flow; nothing crashes",
            _ => "the primary crashes, and returns (database and order API) while the failover's promoter is at work",
        };
        let scenario = Scenario::Faults { name: name.to_owned(), description: description.to_owned(), schedule };
        scenarios.push(with_orders(sb, options, progress, &scenario).await?);
        dirty = true;
    }
    Ok(DrillReport::new(sb, options, (started_at, began), None, scenarios))
}

/// How a campaign runs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignOptions {
    /// How many schedules to draw (fewer when the wall budget runs out first).
    pub schedules: u64,
    /// Schedule k's seed is `seed + k`: `--campaign 1 --seed SEED+k` replays it.
    pub seed: u64,
    /// The failover alarm's evaluation (three probe periods) passes this many times faster:
    /// its state-change event is put on the bus then. Everything after detection runs at
    /// real time (the waits and the writer lease as defined).
    pub compression: f64,
    /// No schedule starts once this has passed (seconds).
    pub budget_seconds: u64,
    /// Where a failing schedule's trace is written.
    pub trace_dir: std::path::PathBuf,
}

/// What a campaign did, in its report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignSummary {
    pub options: CampaignOptions,
    pub schedules_run: u64,
    /// Why it stopped: all drawn, or the wall budget.
    pub stopped: String,
    /// Each reset's wall, seconds.
    pub resets_seconds: Vec<f64>,
    pub failing: Vec<FailingSchedule>,
}

/// A schedule that broke an invariant (or could not run), and how to replay it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailingSchedule {
    pub seed: u64,
    pub schedule: String,
    pub broken: Vec<String>,
    pub trace: std::path::PathBuf,
    pub replay: String,
}

/// Runs `campaign.schedules` fault schedules drawn from seeds, each from the snapshot taken
/// after the readiness check armed the standby, each through the same checks as the drill's
/// scenarios; then resets to the snapshot once more, leaving the sandbox as it found it.
pub async fn campaign(
    sb: &Sandbox,
    options: &DrillOptions,
    campaign: &CampaignOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<DrillReport> {
    let began = Instant::now();
    let started_at = Timestamp::now().to_string();
    let d = sb.deployment();
    let mut scenarios = vec![readiness(sb, progress).await?];
    let snapshot = Snapshot::take(sb).await?;
    progress("snapshot    taken: both databases' directories and the claim table, to reset to");
    let budget = Duration::from_secs(campaign.budget_seconds);
    let (mut resets, mut failing, mut run) = (Vec::new(), Vec::new(), 0u64);
    let mut stopped = "every schedule drawn ran".to_owned();
    for k in 0..campaign.schedules {
        let spent = began.elapsed();
        if k > 0 && spent + spent / (k as u32) > budget {
            stopped = format!("the wall budget ({} s) would run out before schedule {}", budget.as_secs(), k + 1);
            break;
        }
        let seed = campaign.seed.wrapping_add(k);
        let schedule = Schedule::draw(seed, d.probe_interval, campaign.compression);
        // Every schedule from a reset, the first too: a replay (`--campaign 1`) then starts
        // from the state the schedule started from in its campaign (but the epoch).
        match snapshot.restore(sb).await {
            Ok(took) => {
                resets.push(took.as_secs_f64());
                progress(&format!("campaign    reset to the snapshot in {:.1} s", took.as_secs_f64()));
            }
            Err(e) => {
                // The schedule before left what a reset cannot undo: a finding, and the end.
                stopped = format!("the reset before schedule {} failed: {e:#}", k + 1);
                progress(&format!("campaign    {stopped}"));
                if let Some(last) = scenarios.last_mut().filter(|s| s.schedule.is_some()) {
                    last.ok = false;
                    last.invariants.push(Invariant {
                        name: "the sandbox could be reset after it",
                        holds: false,
                        evidence: format!("{e:#}"),
                    });
                }
                break;
            }
        }
        progress(&format!("schedule {}/{}: {schedule}", k + 1, campaign.schedules));
        let name = format!("schedule-{seed}");
        let scenario = Scenario::Faults { name: name.clone(), description: schedule.to_string(), schedule };
        let report = match with_orders(sb, options, progress, &scenario).await {
            Ok(r) => r,
            // A schedule that could not run to its end is a finding too: kept, not fatal.
            Err(e) => ScenarioReport {
                name: name.clone(),
                description: scenario.description().to_owned(),
                schedule: scenario.schedule().cloned(),
                ok: false,
                wall_seconds: 0.0,
                figures: Figures::default(),
                invariants: vec![Invariant {
                    name: "the schedule ran to its end",
                    holds: false,
                    evidence: format!("{e:#}"),
                }],
                executions: Vec::new(),
                events: Vec::new(),
                fault_at_seconds: None,
            },
        };
        run += 1;
        if !report.ok {
            std::fs::create_dir_all(&campaign.trace_dir)?;
            let trace = campaign.trace_dir.join(format!("{name}.json"));
            std::fs::write(&trace, serde_json::to_string_pretty(&report)? + "\n")?;
            let replay = format!(
                "cargo xtask drill --campaign 1 --seed {seed} --compression {} --after-seconds {}",
                campaign.compression, options.after_seconds
            );
            let broken: Vec<String> =
                report.invariants.iter().filter(|i| !i.holds).map(|i| i.name.to_owned()).collect();
            progress(&format!(
                "schedule {}/{}: FAILED {} (seed {seed}); trace {}; replay: {replay}",
                k + 1,
                campaign.schedules,
                broken.join("; "),
                trace.display()
            ));
            failing.push(FailingSchedule { seed, schedule: report.description.clone(), broken, trace, replay });
        }
        scenarios.push(report);
    }
    // The sandbox as the campaign found it (armed), for whatever runs next.
    if !stopped.starts_with("the reset") {
        let took = snapshot.restore(sb).await?;
        resets.push(took.as_secs_f64());
        progress(&format!(
            "campaign    reset to the snapshot in {:.1} s: the sandbox as the campaign found it",
            took.as_secs_f64()
        ));
    }
    let summary =
        CampaignSummary { options: campaign.clone(), schedules_run: run, stopped, resets_seconds: resets, failing };
    Ok(DrillReport::new(sb, options, (started_at, began), Some(summary), scenarios))
}

async fn claim_store(sb: &Sandbox) -> ControlTable {
    let d = sb.deployment();
    let config = switchyard_aws::sdk_config(&sb.aws_target(), &d.regions.primary).await;
    ControlTable::new(aws_sdk_dynamodb::Client::new(&config), d.regional_names(&d.regions.primary).control_table)
}

/// Scenario 1: the hourly readiness check, as its schedule runs it (in the standby, no
/// candidate named), after the standby is armed: the report says ready.
async fn readiness(sb: &Sandbox, progress: &(dyn Fn(&str) + Sync)) -> Result<ScenarioReport> {
    let began = Instant::now();
    let d = sb.deployment();
    let store = claim_store(sb).await;
    let claim = store.strong_read().await.proven()?;
    let standby = d.regions.peer_of(&claim.writer).map_err(|e| anyhow::anyhow!(e.message))?.clone();
    store
        .arm(&Arming { target: standby.clone(), epoch: claim.epoch, armed_by: "drill".into(), at: Timestamp::now() })
        .await?;
    progress(&format!("readiness   armed {standby} under epoch {}; running the hourly readiness check", claim.epoch));
    let answer = sb.lambda(standby.as_str())?.invoke("readiness-tester", &json!({})).await?;
    let report = match answer {
        Invocation::Ok(v) => v,
        Invocation::FunctionError { error_type, error_message } => {
            json!({ "error": error_type, "message": error_message })
        }
    };
    let ready = report["ready"] == true;
    progress(&format!(
        "readiness   {}",
        if ready { "READY".to_owned() } else { format!("NOT READY: {}", report["notPassing"]) }
    ));
    Ok(ScenarioReport {
        name: "readiness".into(),
        description: "the hourly readiness check in the armed standby".into(),
        schedule: None,
        ok: ready,
        wall_seconds: began.elapsed().as_secs_f64(),
        figures: Figures::default(),
        invariants: vec![Invariant {
            name: "the standby is ready to take over",
            holds: ready,
            evidence: format!("notPassing {}", report["notPassing"]),
        }],
        executions: Vec::new(),
        events: Vec::new(),
        fault_at_seconds: None,
    })
}

/// A scenario run with orders flowing.
#[derive(Debug, Clone, PartialEq)]
enum Scenario {
    /// Scenario 2: a planned switchover from the writer to its replica, started by hand.
    Switchover,
    /// Scenario 3: the planned switchover back home after the outage, once the old primary was
    /// rebuilt as a replica.
    Failback,
    /// Scenario 4: the writer's database and order API crash; probes, the alarm and its rule
    /// fail over into the armed standby, nothing started by hand.
    UnplannedOutage,
    /// Scenarios 5 and 6 and a campaign's schedules: faults around an outage, or instead of one.
    Faults { name: String, description: String, schedule: Schedule },
}

impl Scenario {
    fn name(&self) -> &str {
        match self {
            Scenario::Switchover => "switchover",
            Scenario::Failback => "failback",
            Scenario::UnplannedOutage => "unplanned-outage",
            Scenario::Faults { name, .. } => name,
        }
    }

    fn description(&self) -> &str {
        match self {
            Scenario::Switchover => {
                "a planned switchover from the writer to its replica while orders flow, started by hand as an operator does"
            }
            Scenario::Failback => {
                "the planned switchover back home after the outage, once the old primary was rebuilt as a replica"
            }
            Scenario::UnplannedOutage => {
                "the writer's database and order API crash while orders flow; probes, alarm and rule fail over into the armed standby"
            }
            Scenario::Faults { description, .. } => description,
        }
    }

    fn schedule(&self) -> Option<&Schedule> {
        match self {
            Scenario::Faults { schedule, .. } => Some(schedule),
            _ => None,
        }
    }

    /// The outage's schedule: scenario 4's is a crash detected by the clock, nothing more.
    fn outage(&self) -> Option<Schedule> {
        match self {
            Scenario::UnplannedOutage => {
                Some(Schedule { seed: 0, crash: true, detection: faults::Detection::Clock, faults: Vec::new() })
            }
            Scenario::Faults { schedule, .. } => Some(schedule.clone()),
            _ => None,
        }
    }
}

/// The writer and the region that takes over, as the claim store says before a scenario.
async fn pair(store: &ControlTable, sb: &Sandbox) -> Result<(Region, Region)> {
    let claim = store.strong_read().await.proven()?;
    let peer = sb.deployment().regions.peer_of(&claim.writer).map_err(|e| anyhow::anyhow!(e.message))?.clone();
    Ok((claim.writer, peer))
}

/// Runs `scenario` with orders flowing from start to end: the order client, one event
/// source per region, the sandbox's clock (probes, alarms, rules). Then checks the
/// invariants from the data of the region that should write at the end.
async fn with_orders(
    sb: &Sandbox,
    options: &DrillOptions,
    progress: &(dyn Fn(&str) + Sync),
    scenario: &Scenario,
) -> Result<ScenarioReport> {
    let began = Instant::now();
    let began_at = Timestamp::now();
    let d = sb.deployment();
    let store = claim_store(sb).await;
    let (from, to) = pair(&store, sb).await?;
    let stop_orders = AtomicBool::new(false);
    let client_stopped = AtomicBool::new(false);
    let stop_consumers = AtomicBool::new(false);
    let ledger = Mutex::new(Ledger::default());
    let events = Mutex::new(Vec::<(f64, String)>::new());
    let label = scenario.name().to_owned();
    let outage = scenario.outage();
    // Whether no handover is a right outcome: nothing crashed, or (set while the scenario
    // runs) the old primary returned before any execution decided to move the writer.
    let kept_is_right = AtomicBool::new(outage.as_ref().is_some_and(|o| !o.outage()));
    let note = |what: String| {
        progress(&format!("{label:<16} {:>6.1}s  {what}", began.elapsed().as_secs_f64()));
        if let Ok(mut e) = events.lock() {
            e.push((began.elapsed().as_secs_f64(), what));
        }
    };
    let mut sources = Vec::new();
    for r in [&from, &to] {
        let mut source = OrdersEventSource::new(sb, r.as_str()).await?;
        source.visibility = Some(Duration::from_secs(options.visibility_seconds));
        sources.push(source);
    }
    // What the clock did before this scenario is not this scenario's.
    let before = world::control::clock(sb.world.control_port).await.map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let seen = |key: &str| before[key].as_array().map_or(0, Vec::len);
    let (changes_before, deliveries_before) = (seen("changes"), seen("deliveries"));
    // The same counts at the fault (an outage sets them): what the clock did between a reset
    // and the fault (a probe still running from the schedule before) is not the fault's doing.
    let clock_at_fault = Mutex::new((changes_before, deliveries_before));
    // The clock: probes on their schedule, alarms evaluated every second, rules delivered,
    // the promoter's re-fence every minute. Also when a campaign's schedule puts the alarm's
    // event on the bus itself: its probes' own alarm then fires later, at real time.
    world::control::set_clock(sb.world.control_port, &ClockSettings { running: true, compression: 1.0 })
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;

    let driver = async {
        let outcome = match &outage {
            None => drive_handover(sb, options, &ledger, &from, &to, &note).await,
            Some(schedule) => {
                let pair = (&from, &to);
                let context = OutageContext {
                    store: &store,
                    ledger: &ledger,
                    began_at,
                    changes_before,
                    clock_at_fault: &clock_at_fault,
                };
                drive_outage(sb, options, &context, pair, schedule, &kept_is_right, &note).await
            }
        };
        stop_orders.store(true, Ordering::SeqCst);
        // The order in flight, if any, is recorded before the drain looks.
        while !client_stopped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if outcome.is_ok() {
            // Let what was acknowledged drain into the writer.
            let writer = final_writer(&store, &from, &to, began_at, kept_is_right.load(Ordering::SeqCst)).await;
            note(format!("orders stopped; draining the queues into the writer, {writer}"));
            let ids: Vec<String> = ledger.lock().map(|l| l.acknowledged.keys().cloned().collect()).unwrap_or_default();
            let deadline = Instant::now() + Duration::from_secs(90);
            while Instant::now() < deadline {
                if applied(sb, &writer, &ids).await.map(|rows| rows.len() == ids.len()).unwrap_or(false) {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        stop_consumers.store(true, Ordering::SeqCst);
        outcome
    };
    let client = async {
        order_client(sb, options, &label, &ledger, &stop_orders).await;
        client_stopped.store(true, Ordering::SeqCst);
    };
    let consumers = futures_util::future::join_all(sources.iter().map(|s| consume(s, &stop_consumers)));
    let (outcome, (), _) = tokio::join!(driver, client, consumers);
    let stop_clock = || async {
        let _ =
            world::control::set_clock(sb.world.control_port, &ClockSettings { running: false, compression: 1.0 }).await;
    };
    let fault_at = match outcome {
        Ok(at) => at,
        Err(e) => {
            stop_clock().await;
            return Err(e);
        }
    };

    // The evidence: the executions this scenario caused (each closed, or the budget spent:
    // the clock's own alarm may have started one late), and the rows of both databases.
    let executions = closed_executions(&store, began_at, Duration::from_secs(options.failover_budget_seconds)).await?;
    let clock = world::control::clock(sb.world.control_port).await?;
    let executions_delivered = |from: usize| {
        clock["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .skip(from)
            .filter(|x| x["target"].as_str().is_some_and(|t| t.contains(":states:")))
            .count()
    };
    let started = executions_delivered(deliveries_before)
        + executions.iter().filter(|t| t.execution.starts_with("drill-")).count();
    let (acknowledged, refused) = {
        let l = ledger.lock().map_err(|_| anyhow::anyhow!("the order ledger's lock was poisoned"))?;
        (l.acknowledged.keys().cloned().collect::<Vec<_>>(), l.refused)
    };
    let may_keep = kept_is_right.load(Ordering::SeqCst);
    let writer = final_writer(&store, &from, &to, began_at, may_keep).await;
    // A writer whose database is down has no rows to show: the first invariant says so.
    let (rows, unreadable) = match applied(sb, &writer, &acknowledged).await {
        Ok(rows) => (rows, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    // The other database's rows too, where it answers: a row it committed that the writer
    // does not hold is a second region applying (or a commit lost with a crash).
    let other = if writer == to { &from } else { &to };
    let other_rows = applied(sb, other, &acknowledged).await.unwrap_or_default();
    let sent_from = std::time::UNIX_EPOCH + Duration::from_millis(began_at.unix_millis().max(0) as u64);
    let evidence = Evidence {
        acknowledged: &acknowledged,
        rows: &rows,
        other_rows: &other_rows,
        unreadable,
        executions: &executions,
        sent_from,
    };
    let invariants = check(sb, (&from, &to), &writer, may_keep, &evidence).await;
    // The clock ran through the checks: the re-fence schedule fences a returning old writer.
    stop_clock().await;
    let invariants = invariants?;
    // The failover alarm's changes in the region taking over: a relapse out of ALARM while
    // the writer is still down is counted, not judged. The probe stamps a round's datapoints
    // with the round's start and publishes them when it ends (up to its 7.5 s deadline), so an
    // evaluation just after a period ends can find that period still empty (docs/drill.md).
    let alarm = d.failover_alarm(&to).name;
    let flips_from = |from: usize| -> Vec<String> {
        clock["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .skip(from)
            .filter(|c| c["alarm"] == alarm.as_str() && c["region"] == to.as_str())
            .map(|c| format!("{}→{}", c["from"].as_str().unwrap_or("?"), c["to"].as_str().unwrap_or("?")))
            .collect()
    };
    let flips = flips_from(changes_before);
    let alarm_relapses =
        flips.iter().skip_while(|f| !f.ends_with("→ALARM")).filter(|f| f.starts_with("ALARM→")).count();
    let mut invariants = invariants;
    if scenario.schedule().is_some_and(Schedule::flaps) {
        // Below the threshold: from the fault on, the alarm never fired and nothing started.
        let (changes_at, deliveries_at) = clock_at_fault.lock().map_or((changes_before, deliveries_before), |c| *c);
        let flips = flips_from(changes_at);
        let fired = flips.iter().filter(|f| f.ends_with("→ALARM")).count();
        let started = executions_delivered(deliveries_at);
        let since_fault: Vec<&str> = executions
            .iter()
            .filter(|t| t.detected.unix_millis() >= fault_at.unix_millis())
            .map(|t| t.execution.as_str())
            .collect();
        invariants.push(Invariant {
            name: "a probe flapping below the alarm's threshold started no failover",
            holds: fired == 0 && started == 0 && since_fault.is_empty(),
            evidence: format!(
                "from the fault on: the failover alarm in {to}: {flips:?}; executions started {started}, timelines {since_fault:?}"
            ),
        });
    }
    let moved = executions.iter().find(|t| t.to == to && t.status == ExecutionStatus::Succeeded);
    let after = |t: Option<Timestamp>| t.map(|t| t.seconds_since(&fault_at));
    let per_id: BTreeMap<&str, usize> = rows.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.order_id.as_str()).or_insert(0) += 1;
        m
    });
    let missing = acknowledged.iter().filter(|id| !per_id.contains_key(id.as_str())).count();
    let figures = Figures {
        detected_after_fault: moved.map(|t| t.detected.seconds_since(&fault_at)),
        decided_after_fault: after(moved.and_then(|t| t.decided)),
        promoted_after_fault: after(moved.and_then(|t| t.promoted)),
        traffic_moved_after_fault: after(moved.and_then(|t| t.traffic_moved)),
        first_order_applied_after_fault: after(moved.and_then(|t| t.first_order_applied)),
        rto_seconds: moved.and_then(|t| t.rto_seconds),
        orders_acknowledged: acknowledged.len(),
        orders_at_risk: missing,
        orders_lost: missing,
        orders_duplicated: per_id.values().filter(|n| **n > 1).count(),
        orders_refused: refused,
        executions_started: started,
        executions_deduplicated: executions.iter().filter(|t| t.status == ExecutionStatus::Duplicate).count(),
        alarm_changes: flips,
        alarm_relapses,
    };
    if moved.is_some() && scenario.schedule().is_none() {
        // The old writer back as the new one's replica, after the checks saw it fenced or
        // down, so the next handover has one: Aurora demotes the old primary of a switchover
        // itself, and after a failover a person recreates it (`sandbox rejoin`).
        let (old, new) = (from.to_string(), to.to_string());
        sb.set_api(&old, true).await?;
        tokio::task::block_in_place(|| sb.rejoin_as_replica(&old, &new))?;
        let took = sb.prove_replication().await?;
        note(format!(
            "{from} rebuilt as {to}'s streaming replica, its order API up; a row reached it in {:.0} ms",
            took.as_secs_f64() * 1000.0
        ));
    }
    let ok = invariants.iter().all(|i| i.holds);
    Ok(ScenarioReport {
        name: scenario.name().to_owned(),
        description: scenario.description().to_owned(),
        schedule: scenario.schedule().cloned(),
        ok,
        wall_seconds: began.elapsed().as_secs_f64(),
        figures,
        invariants,
        executions,
        events: events.into_inner().unwrap_or_default(),
        fault_at_seconds: Some(fault_at.seconds_since(&began_at)),
    })
}

/// Waits until orders are applied in `writer` (at least ten) and `at_least` has passed.
async fn warm_up(
    sb: &Sandbox,
    ledger: &Mutex<Ledger>,
    writer: &Region,
    at_least: Duration,
    note: &(dyn Fn(String) + Sync),
) -> Result<()> {
    let warm = Instant::now();
    loop {
        let ids: Vec<String> = ledger.lock().map(|l| l.acknowledged.keys().cloned().collect()).unwrap_or_default();
        let rows = applied(sb, writer, &ids).await.unwrap_or_default();
        if rows.len() >= 10 && warm.elapsed() > at_least {
            note(format!("{} orders acknowledged, {} applied in {writer}", ids.len(), rows.len()));
            return Ok(());
        }
        anyhow::ensure!(
            warm.elapsed() < Duration::from_secs(120),
            "no orders applied in {writer} within 120 s ({} acknowledged)",
            ids.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Scenarios 2 and 3: warm up, then switch over by hand (the `switchover` machine in the
/// region that takes over, as `switchyard switchover --to` starts it), keep orders flowing a
/// while. The request's time.
async fn drive_handover(
    sb: &Sandbox,
    options: &DrillOptions,
    ledger: &Mutex<Ledger>,
    from: &Region,
    to: &Region,
    note: &(dyn Fn(String) + Sync),
) -> Result<Timestamp> {
    note(format!("orders flowing at {}/s into {from}", options.orders_per_second));
    warm_up(sb, ledger, from, Duration::from_secs(5), note).await?;
    let requested = Timestamp::now();
    let name = format!("drill-switchover-{}", requested.unix_millis());
    note(format!("switchover {from} → {to} requested: execution {name}"));
    let input = json!({ "from": from, "to": to, "trigger": "manual", "reason": "the drill's planned switchover" });
    let start = Start::new("switchover", to.as_str(), name.clone(), input, Timing::AsDefined)?;
    // The steps a person follows (the timeline marks the rest): each the first time entered.
    const SHOWN: [&str; 6] = ["Gate", "Fence", "CatchUp", "WaitForLease", "Activate", "SwitchTraffic"];
    let mut entered = BTreeSet::new();
    let mut observer = |e: &serde_json::Value| {
        if e["type"] == "StateEntered"
            && let Some(state) = e["state"]["name"].as_str()
            && SHOWN.contains(&state)
            && entered.insert(state.to_owned())
        {
            note(format!("{name}: {state}"));
        }
    };
    let budget = Duration::from_secs(options.failover_budget_seconds);
    let x = tokio::time::timeout(budget, runner::execute_observed(sb, &start, &mut observer))
        .await
        .map_err(|_| anyhow::anyhow!("the switchover {name} did not end within {} s", budget.as_secs()))??;
    note(format!("{name} {}{}", x.status, x.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()));
    tokio::time::sleep(Duration::from_secs(options.after_seconds)).await;
    Ok(requested)
}

/// The region whose rows the checks read: the one a failover succeeded into, else (when no
/// handover is a right outcome) the old writer, else the region that should have taken over.
async fn final_writer(store: &ControlTable, from: &Region, to: &Region, since: Timestamp, may_keep: bool) -> Region {
    let moved = store.timelines().await.unwrap_or_default().iter().any(|t| {
        t.to == *to && t.status == ExecutionStatus::Succeeded && t.detected.unix_millis() >= since.unix_millis()
    });
    if moved || !may_keep { to.clone() } else { from.clone() }
}

/// What an outage scenario reads and writes besides the sandbox.
struct OutageContext<'a> {
    store: &'a ControlTable,
    ledger: &'a Mutex<Ledger>,
    began_at: Timestamp,
    changes_before: usize,
    /// The clock's changes and deliveries counted at the fault, set when it happens.
    clock_at_fault: &'a Mutex<(usize, usize)>,
}

/// How the schedule's faults are going, shared by the watcher and the injector.
#[derive(Default)]
struct FaultState {
    /// When the first execution's promotion started (its timeline's mark, as polled).
    promotion_started: Option<Instant>,
    /// Whether an execution has decided to move the writer.
    decided: bool,
    /// How many of the schedule's faults have not taken effect yet, and when the last did.
    pending: usize,
    /// Of those, the ones timed from the promotion: void once every execution closed
    /// without promoting (the old primary returned first).
    pending_on_promotion: usize,
    last_fired: Option<Instant>,
}

/// The outage scenarios' steps: warm up, inject the schedule's fault (a crash, or its first
/// cut), detect it (the clock, or the alarm's event put on the bus), apply the schedule's
/// other faults on time while waiting for the failover to close its timeline, keep orders
/// flowing a while. The fault's time. Sets `kept_is_right` when the old primary returned
/// before any execution decided (no handover is then a right outcome).
async fn drive_outage(
    sb: &Sandbox,
    options: &DrillOptions,
    context: &OutageContext<'_>,
    (primary, standby): (&Region, &Region),
    schedule: &Schedule,
    kept_is_right: &AtomicBool,
    note: &(dyn Fn(String) + Sync),
) -> Result<Timestamp> {
    let OutageContext { store, ledger, began_at, changes_before, clock_at_fault } = *context;
    let warm = match schedule.detection {
        // The probes publishing (the schedule's first firing is a minute after the clock
        // starts: these stand for the ones it started before the drill), three healthy
        // periods behind the alarm, and orders acknowledged and applied in the primary.
        faults::Detection::Clock => {
            for r in [primary, standby] {
                let service = sb.lambda(r.as_str())?.clone();
                tokio::spawn(async move { service.invoke("health-probe", &json!({})).await });
            }
            let healthy_periods = sb.deployment().probe_interval * 3 + Duration::from_secs(5);
            note(format!(
                "orders flowing at {}/s, probes publishing; {} s of healthy periods before the fault",
                options.orders_per_second,
                healthy_periods.as_secs()
            ));
            healthy_periods
        }
        faults::Detection::AlarmEvent { .. } => {
            note(format!("orders flowing at {}/s; schedule {schedule}", options.orders_per_second));
            Duration::from_secs(5)
        }
    };
    warm_up(sb, ledger, primary, warm, note).await?;
    let fault_at = Timestamp::now();
    let fault_instant = Instant::now();
    if schedule.crash {
        sb.crash_database(primary.as_str())?;
        sb.set_api(primary.as_str(), false).await?;
        note(format!("{primary} crashed: its database (immediate shutdown) and its order API"));
    }
    let on_promotion = schedule.faults.iter().filter(|t| t.anchor == faults::Anchor::PromotionStarted).count();
    let state = Mutex::new(FaultState {
        pending: schedule.faults.len(),
        pending_on_promotion: on_promotion,
        ..FaultState::default()
    });
    let done = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(options.failover_budget_seconds);
    let mut announced = BTreeSet::new();
    let counted = |c: &serde_json::Value, key: &str| c[key].as_array().map_or(0, Vec::len);
    let mut alarm_changes = changes_before;
    if let Ok(c) = world::control::clock(sb.world.control_port).await {
        alarm_changes = alarm_changes.max(counted(&c, "changes"));
        if let Ok(mut at) = clock_at_fault.lock() {
            *at = (alarm_changes, counted(&c, "deliveries"));
        }
    }
    let may_keep = schedule.may_keep_the_writer();
    // Done when every execution the fault caused has closed and one of them did the work (an
    // alarm storm's others end as duplicates). When no handover may be a right outcome: once
    // every fault has taken effect, nothing runs, and 30 s passed since the last one ended.
    let watch = async {
        let outcome = loop {
            if Instant::now() > deadline {
                break Err(anyhow::anyhow!(
                    "no failover into {standby} closed within {} s of the fault",
                    options.failover_budget_seconds
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            // The alarms' state changes as the clock made them (timed by this poll).
            if let Ok(clock) = world::control::clock(sb.world.control_port).await {
                let changes = clock["changes"].as_array().cloned().unwrap_or_default();
                for c in changes.iter().skip(alarm_changes) {
                    note(format!(
                        "alarm {} in {}: {} → {} ({})",
                        c["alarm"].as_str().unwrap_or("?"),
                        c["region"].as_str().unwrap_or("?"),
                        c["from"].as_str().unwrap_or("?"),
                        c["to"].as_str().unwrap_or("?"),
                        c["reason"].as_str().unwrap_or("")
                    ));
                }
                alarm_changes = alarm_changes.max(changes.len());
            }
            let Ok(timelines) = store.timelines().await else { continue };
            let ours: Vec<Timeline> = timelines
                .into_iter()
                .filter(|t| t.to == *standby && t.detected.unix_millis() >= began_at.unix_millis())
                .collect();
            for t in &ours {
                if announced.insert(t.execution.clone()) {
                    note(format!(
                        "the alarm's rule started {} (detected at +{:.1} s)",
                        t.execution,
                        t.detected.seconds_since(&fault_at)
                    ));
                }
            }
            let (pending, quiet) = {
                let Ok(mut f) = state.lock() else { continue };
                f.decided |= ours.iter().any(|t| t.decided.is_some());
                if f.promotion_started.is_none() && ours.iter().any(|t| t.promotion_started.is_some()) {
                    f.promotion_started = Some(Instant::now());
                    note("the promotion started".into());
                }
                let since = f.last_fired.unwrap_or(fault_instant);
                let promoted = ours.iter().any(|t| t.promotion_started.is_some());
                let idle = !ours.iter().any(|t| t.status == ExecutionStatus::Running);
                let pending = if idle && !promoted { f.pending - f.pending_on_promotion } else { f.pending };
                (pending, since.elapsed() > Duration::from_secs(30))
            };
            let running = ours.iter().any(|t| t.status == ExecutionStatus::Running);
            let worked = ours.iter().find(|t| matches!(t.status, ExecutionStatus::Succeeded | ExecutionStatus::Failed));
            let closed = ours.iter().find(|t| t.status != ExecutionStatus::Running);
            match (running, worked) {
                // A schedule that may keep the writer runs its faults to their end first (the
                // partition's 45 s, not only until the first execution gave up).
                (false, Some(t)) if !may_keep || (pending == 0 && quiet) => break Ok(Some(t.clone())),
                (false, None) if may_keep && pending == 0 && quiet => break Ok(closed.cloned()),
                _ => {}
            }
        };
        done.store(true, Ordering::SeqCst);
        outcome
    };
    let detect = detect(sb, schedule, standby, note);
    let injector = Injector { sb, schedule, primary, standby, fault_instant };
    let inject = injector.run(&state, &done, kept_is_right, note);
    let (outcome, detected, injected) = tokio::join!(watch, detect, inject);
    detected?;
    injected?;
    if let Ok(f) = state.lock()
        && f.pending > 0
    {
        note(format!("{} of the schedule's faults never took effect (their moment never came)", f.pending));
    }
    match outcome? {
        Some(t) => note(format!(
            "{} {}: RTO {}",
            t.execution,
            t.status,
            t.rto_seconds.map_or("-".into(), |r| format!("{r:.1} s"))
        )),
        None => note("no execution started; the faults are over".into()),
    }
    tokio::time::sleep(Duration::from_secs(options.after_seconds)).await;
    Ok(fault_at)
}

/// The executions since `since`, once none is running (or `budget` passed: those still
/// running are reported as such).
async fn closed_executions(store: &ControlTable, since: Timestamp, budget: Duration) -> Result<Vec<Timeline>> {
    let deadline = Instant::now() + budget;
    loop {
        let ours: Vec<Timeline> =
            store.timelines().await?.into_iter().filter(|t| t.detected.unix_millis() >= since.unix_millis()).collect();
        if Instant::now() > deadline || ours.iter().all(|t| t.status != ExecutionStatus::Running) {
            return Ok(ours);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A campaign's detection: the failover alarm's state-change event, as CloudWatch sends it,
/// put on the standby's bus (its rule and input transformer are the deployment's), once or
/// as a storm within a second. The clock's own detection needs nothing here.
async fn detect(sb: &Sandbox, schedule: &Schedule, standby: &Region, note: &(dyn Fn(String) + Sync)) -> Result<()> {
    let faults::Detection::AlarmEvent { after_seconds, events } = schedule.detection else { return Ok(()) };
    tokio::time::sleep(Duration::from_secs_f64(after_seconds)).await;
    let alarm = sb.deployment().failover_alarm(standby).name;
    for n in 0..events {
        let now = Timestamp::now().to_string();
        let event = json!({
            "version": "0", "id": format!("drill-{}-{n}", schedule.seed), "detail-type": "CloudWatch Alarm State Change",
            "source": "aws.cloudwatch", "account": crate::definitions::SANDBOX_ACCOUNT, "time": now, "region": standby,
            "resources": [format!("arn:aws:cloudwatch:{standby}:{}:alarm:{alarm}", crate::definitions::SANDBOX_ACCOUNT)],
            "detail": {
                "alarmName": alarm,
                "state": { "value": "ALARM", "reason": "the drill's compressed detection: 3 of the last 3 datapoints breaching", "timestamp": now },
                "previousState": { "value": "OK", "reason": "" },
            },
        });
        world::control::put_event(sb.world.control_port, standby, &event)
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    note(format!("the failover alarm's event put on {standby}'s bus ({events}×)"));
    Ok(())
}

/// Applies a schedule's faults on time: the cuts as the world's links, the old primary's
/// return as a start.
struct Injector<'a> {
    sb: &'a Sandbox,
    schedule: &'a Schedule,
    primary: &'a Region,
    standby: &'a Region,
    fault_instant: Instant,
}

impl Injector<'_> {
    /// Until the watcher is `done`; heals every cut at the end.
    async fn run(
        &self,
        state: &Mutex<FaultState>,
        done: &AtomicBool,
        kept_is_right: &AtomicBool,
        note: &(dyn Fn(String) + Sync),
    ) -> Result<()> {
        use faults::{Anchor, Fault};
        let Injector { sb, schedule, primary, standby, fault_instant } = *self;
        let port = sb.world.control_port;
        let fail = |e: anyhow::Error| anyhow::anyhow!("{e:#}");
        let base = world::control::links(port).await.map_err(fail)?;
        let mut applied = base.clone();
        let mut fired = vec![false; schedule.faults.len()];
        let mut returned = false;
        let (mut flapped_down, mut sickened) = (false, false);
        // Route 53's control plane lives in us-east-1, whichever region calls it.
        let route53: Region = "us-east-1".parse().map_err(anyhow::Error::msg)?;
        let cut = |links: &mut world::Links, shape: world::Shape| {
            links
                .apply(&shape, world::CutMode::Refuse, &sb.world.places, sb.world.witness())
                .map_err(anyhow::Error::msg)
        };
        loop {
            let finished = done.load(Ordering::SeqCst);
            let now = Instant::now();
            let (promotion, decided) = state.lock().map(|f| (f.promotion_started, f.decided)).unwrap_or((None, false));
            let mut links = base.clone();
            let mut flap_down = false;
            for (i, t) in schedule.faults.iter().enumerate() {
                let anchor = match t.anchor {
                    Anchor::Fault => Some(fault_instant),
                    Anchor::PromotionStarted => promotion,
                };
                let Some(start) = anchor.map(|a| a + Duration::from_secs_f64(t.at_seconds)) else { continue };
                let active =
                    !finished && now >= start && t.for_seconds.is_none_or(|d| now < start + Duration::from_secs_f64(d));
                if active && !fired[i] {
                    fired[i] = true;
                    if let Ok(mut f) = state.lock() {
                        f.pending = f.pending.saturating_sub(1);
                        if t.anchor == Anchor::PromotionStarted {
                            f.pending_on_promotion = f.pending_on_promotion.saturating_sub(1);
                        }
                        f.last_fired = Some(now + Duration::from_secs_f64(t.for_seconds.unwrap_or(0.0)));
                    }
                }
                if !active {
                    continue;
                }
                match t.fault {
                    Fault::PrimaryReturns => {
                        if !returned {
                            returned = true;
                            // Off the joined task: a start takes a second, and nothing else
                            // (the watcher, the cuts, the orders) should wait on it.
                            let region = sb.region(primary.as_str())?.clone();
                            tokio::task::spawn_blocking(move || {
                                crate::postgres::start_if_down(&region.data_dir, &region.log)
                            })
                            .await??;
                            sb.set_api(primary.as_str(), true).await?;
                            if !decided {
                                kept_is_right.store(true, Ordering::SeqCst);
                            }
                            note(format!(
                                "{primary} returned: its database started with its data, its order API up ({} any execution decided)",
                                if decided { "after" } else { "before" }
                            ));
                        }
                    }
                    Fault::PairCut(mode) => links.cut(primary, standby, mode),
                    Fault::WitnessDown => cut(&mut links, world::Shape::WitnessDown)?,
                    Fault::Route53Unreachable => {
                        cut(&mut links, world::Shape::Service(route53.clone(), "route53".into()))?
                    }
                    Fault::PromoterFails => {
                        cut(&mut links, world::Shape::Service(standby.clone(), world::POSTGRES.into()))?
                    }
                    Fault::Flapping { down_seconds, up_seconds } => {
                        let cycle = f64::from(down_seconds + up_seconds);
                        flap_down = (now - start).as_secs_f64() % cycle < f64::from(down_seconds);
                    }
                    Fault::WriteConflicts => links.write_conflicts.push(standby.clone()),
                    Fault::WriterSick => {
                        if !sickened {
                            sickened = true;
                            sb.sicken_database(primary.as_str(), crate::postgres::Sickness::DiskFull).await?;
                            note(format!(
                                "{primary}'s database fell sick: every table write fails (disk full); it and its order API answer"
                            ));
                        }
                    }
                }
            }
            // Up again when the flapping ends, and when the schedule does.
            if flap_down != flapped_down {
                sb.set_api(primary.as_str(), !flap_down).await?;
                flapped_down = flap_down;
                note(format!("{primary}'s order API {}", if flap_down { "down (flapping)" } else { "up" }));
            }
            if links != applied {
                world::control::set_links(port, &links).await.map_err(fail)?;
                let cuts: Vec<String> = links
                    .cuts
                    .iter()
                    .map(|c| format!("{}:{} {}", c.between[0], c.between[1], c.mode.as_str()))
                    .chain(links.services.iter().map(|c| format!("{} {} {}", c.region, c.service, c.mode.as_str())))
                    .chain(links.write_conflicts.iter().map(|r| format!("{r}'s claim-table writes conflict")))
                    .collect();
                note(if cuts.is_empty() { "links healed".into() } else { format!("links cut: {}", cuts.join(", ")) });
                applied = links;
            }
            if finished {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Posts orders at the options' rate to the region the DNS answer names, until `stop`. Each
/// id names the run and the scenario: an id a scenario before used would be taken as a
/// duplicate (applied once, by key) and its old row would pass for the new order (#20: the
/// failback's first orders did, until this).
async fn order_client(sb: &Sandbox, options: &DrillOptions, scenario: &str, ledger: &Mutex<Ledger>, stop: &AtomicBool) {
    let period = Duration::from_secs_f64(1.0 / options.orders_per_second.max(0.1));
    let mut target: Option<(String, Instant)> = None;
    let run = std::process::id();
    while !stop.load(Ordering::SeqCst) {
        let tick = Instant::now();
        // The DNS answer as Route 53 would give it, re-read every second.
        if target.as_ref().is_none_or(|(_, at)| at.elapsed() > Duration::from_secs(1))
            && let Ok(answer) = dns::answer(sb).await
        {
            target = Some((answer.region.to_string(), Instant::now()));
        }
        let Some((api, _)) = target.clone() else {
            tokio::time::sleep(period).await;
            continue;
        };
        let id = {
            let Ok(mut l) = ledger.lock() else { return };
            l.next += 1;
            format!("drill-{run}-{scenario}-{:06}", l.next)
        };
        let request = json!({
            "orderId": id, "account": "drill", "instrument": "DRILL", "side": "buy", "quantity": 1,
            "price": "1", "submittedAt": Timestamp::now().to_string(),
        });
        let answer = tokio::time::timeout(Duration::from_secs(5), smoke::post_order(sb, &api, &request)).await;
        if let Ok(mut l) = ledger.lock() {
            match answer {
                Ok(Ok((202, _))) => {
                    l.acknowledged.insert(id, (api, Instant::now()));
                }
                _ => l.refused += 1,
            }
        }
        tokio::time::sleep(period.saturating_sub(tick.elapsed())).await;
    }
}

/// One region's event source, polling until `stop`.
async fn consume(source: &OrdersEventSource<'_>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match tokio::time::timeout(Duration::from_secs(30), source.poll()).await {
            Ok(Ok(p)) if p.received > 0 => {}
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// A row of the orders table, as the checks read it.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    order_id: String,
    region: String,
    epoch: i64,
    /// When its transaction committed (its insert's time where unknown).
    applied_at: std::time::SystemTime,
}

/// The rows of `ids` in `region`'s orders table.
async fn applied(sb: &Sandbox, region: &Region, ids: &[String]) -> Result<Vec<Row>> {
    let node = sb.node(region.as_str())?;
    let c = node.connect().await.map_err(|e| anyhow::anyhow!("{region}'s database: {e}"))?;
    let rows = c
        .query(
            // The commit's own time (the sandbox runs with `track_commit_timestamp`), the
            // insert's where it is unknown: a commit may follow its insert by seconds.
            "SELECT order_id, applied_region, applied_epoch,
                    COALESCE(pg_xact_commit_timestamp(xmin), applied_at)
               FROM orders WHERE order_id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Row { order_id: r.get(0), region: r.get(1), epoch: r.get(2), applied_at: r.get(3) })
        .collect())
}

/// What the checks read: the client's acknowledged ids, the final writer's rows of them (or
/// why they could not be read), the executions' timelines.
struct Evidence<'a> {
    acknowledged: &'a [String],
    rows: &'a [Row],
    /// The same ids' rows in the other region's database (empty when it is down).
    other_rows: &'a [Row],
    unreadable: Option<String>,
    executions: &'a [Timeline],
    /// When the scenario began sending: a row applied before is not this scenario's order.
    sent_from: std::time::SystemTime,
}

/// The invariants, from the final writer's rows and the databases' own state. `may_keep`:
/// no handover is a right outcome too (the faults may keep the writer where it was).
async fn check(
    sb: &Sandbox,
    (from, to): (&Region, &Region),
    writer: &Region,
    may_keep: bool,
    evidence: &Evidence<'_>,
) -> Result<Vec<Invariant>> {
    let Evidence { acknowledged, rows, other_rows, unreadable, executions, sent_from } = evidence;
    let (rows, sent_from): (&[Row], _) = (rows, *sent_from);
    let mut invariants = Vec::new();
    // 1. Every acknowledged order applied exactly once in the final writer, and after the
    // scenario sent it: an older row under the same id is not this order.
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *count.entry(r.order_id.as_str()).or_insert(0) += 1;
    }
    let missing: Vec<&String> = acknowledged.iter().filter(|id| !count.contains_key(id.as_str())).collect();
    let twice: Vec<&&str> = count.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).collect();
    let before: Vec<&str> = rows.iter().filter(|r| r.applied_at < sent_from).map(|r| r.order_id.as_str()).collect();
    invariants.push(Invariant {
        name: "every acknowledged order applied exactly once in the final writer",
        holds: missing.is_empty() && twice.is_empty() && before.is_empty() && unreadable.is_none(),
        evidence: format!(
            "{} acknowledged, {} applied in {writer}{}; missing {:?}; twice {:?}; applied before the scenario sent them {:?}",
            acknowledged.len(),
            count.len(),
            unreadable.as_ref().map(|e| format!(" (its rows unreadable: {e})")).unwrap_or_default(),
            missing.iter().take(5).collect::<Vec<_>>(),
            twice.iter().take(5).collect::<Vec<_>>(),
            before.iter().take(5).collect::<Vec<_>>()
        ),
    });
    // 2. Never two regions applying at once: each epoch applied in one region, and every row
    // of an epoch committed before every row of the next (both servers on this host's clock).
    // Over both databases' rows (a row replicated to the other is the same row): a returning
    // old writer that applied under its old epoch after the new writer began shows here.
    let extra: Vec<&Row> = other_rows.iter().filter(|r| !rows.contains(r)).collect();
    let mut epochs: BTreeMap<i64, (BTreeSet<String>, std::time::SystemTime, std::time::SystemTime, usize)> =
        BTreeMap::new();
    for r in rows.iter().chain(extra.iter().copied()) {
        let e = epochs.entry(r.epoch).or_insert((BTreeSet::new(), r.applied_at, r.applied_at, 0));
        e.0.insert(r.region.clone());
        e.1 = e.1.min(r.applied_at);
        e.2 = e.2.max(r.applied_at);
        e.3 += 1;
    }
    let one_region = epochs.values().all(|(regions, ..)| regions.len() == 1);
    let ordered = epochs.values().zip(epochs.values().skip(1)).all(|(a, b)| a.2 < b.1);
    let shown: Vec<String> = epochs
        .iter()
        .map(|(e, (regions, first, last, n))| {
            let ms = |t: &std::time::SystemTime| {
                t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default()
            };
            format!("epoch {e}: {n} rows in {regions:?}, applied {}..{} ms", ms(first), ms(last))
        })
        .collect();
    invariants.push(Invariant {
        name: "never two regions applying orders at once",
        holds: one_region && ordered,
        evidence: format!(
            "{} (rows read in both databases; {} only in the other, e.g. {:?})",
            shown.join("; "),
            extra.len(),
            extra.iter().take(3).map(|r| r.order_id.as_str()).collect::<Vec<_>>()
        ),
    });
    // 3. The region that does not write at the end cannot: down, fenced, or a replica.
    let (other, name) = if writer == to {
        (from, "the old writer is fenced or down")
    } else {
        (to, "the standby was not promoted (the writer stayed)")
    };
    // An old writer that returned after its failover's fence step found it down is fenced by
    // the promoter's re-fence schedule within a minute (ARCHITECTURE.md): given that long.
    let node = sb.node(other.as_str())?;
    let looked = Instant::now();
    let (holds, evidence) = loop {
        let (holds, evidence) = match &node.replication_status().await {
            Err(e) => (true, format!("{other}'s database is down: {e}")),
            Ok(s) if s.fenced => (true, format!("{other}'s database is fenced")),
            Ok(s) if s.role == switchyard_core::DatabaseRole::Replica => (true, format!("{other} is a replica")),
            Ok(_) => (false, format!("{other}'s database accepts writes")),
        };
        if holds || writer != to || looked.elapsed() > REFENCE_WITHIN {
            let waited = looked.elapsed().as_secs_f64();
            break (holds, if waited >= 1.0 { format!("{evidence} (after {waited:.0} s)") } else { evidence });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    invariants.push(Invariant { name, holds, evidence });
    // 4. No automatic failback, and exactly one execution did the work.
    // An execution into the old writer that was refused or found nothing to do moved nothing.
    let back: Vec<&str> = executions
        .iter()
        .filter(|t| t.to == *from && (t.status == ExecutionStatus::Succeeded || t.promotion_started.is_some()))
        .map(|t| t.execution.as_str())
        .collect();
    invariants.push(Invariant {
        name: "no automatic failback",
        holds: back.is_empty(),
        evidence: format!("executions into {from}: {back:?}"),
    });
    let succeeded: Vec<&str> = executions
        .iter()
        .filter(|t| t.to == *to && t.status == ExecutionStatus::Succeeded)
        .map(|t| t.execution.as_str())
        .collect();
    invariants.push(if may_keep {
        Invariant {
            name: "at most one execution moved the writer",
            holds: succeeded.len() <= 1,
            evidence: format!("succeeded into {to}: {succeeded:?}; the writer at the end: {writer}"),
        }
    } else {
        Invariant {
            name: "one execution moved the writer",
            holds: succeeded.len() == 1,
            evidence: format!("succeeded into {to}: {succeeded:?}"),
        }
    });
    // 5. Every execution closed its timeline (a page is published on each close).
    let open: Vec<&str> =
        executions.iter().filter(|t| t.status == ExecutionStatus::Running).map(|t| t.execution.as_str()).collect();
    invariants.push(Invariant {
        name: "every execution closed its timeline",
        holds: open.is_empty(),
        evidence: format!("{} executions, still running: {open:?}", executions.len()),
    });
    Ok(invariants)
}

/// The report as a person reads it in a terminal.
impl std::fmt::Display for DrillReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "drill {} in {:.0} s", if self.ok { "PASSED" } else { "FAILED" }, self.wall_seconds)?;
        for s in &self.scenarios {
            writeln!(f, "\n{} ({:.0} s): {}", s.name, s.wall_seconds, if s.ok { "ok" } else { "FAILED" })?;
            if let Some(schedule) = &s.schedule {
                writeln!(f, "  schedule {schedule}")?;
            }
            for i in &s.invariants {
                writeln!(f, "  {} {}: {}", if i.holds { "ok  " } else { "FAIL" }, i.name, i.evidence)?;
            }
            // Why an execution failed, from its timeline: the first thing to read.
            for t in s.executions.iter().filter(|t| t.error.is_some()) {
                writeln!(
                    f,
                    "  execution {} {}: {}: {}",
                    t.execution,
                    t.status,
                    t.error.as_deref().unwrap_or_default(),
                    t.cause.as_deref().unwrap_or_default()
                )?;
            }
            let x = &s.figures;
            if x.orders_acknowledged > 0 || x.rto_seconds.is_some() {
                let s = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} s"));
                writeln!(
                    f,
                    "  figures: detected +{}, decided +{}, promoted +{}, traffic moved +{}, first order +{} after the fault; RTO {}",
                    s(x.detected_after_fault),
                    s(x.decided_after_fault),
                    s(x.promoted_after_fault),
                    s(x.traffic_moved_after_fault),
                    s(x.first_order_applied_after_fault),
                    s(x.rto_seconds)
                )?;
                if !x.alarm_changes.is_empty() {
                    writeln!(f, "  failover alarm: {} ({} relapses)", x.alarm_changes.join(", "), x.alarm_relapses)?;
                }
                writeln!(
                    f,
                    "  orders: {} acknowledged, {} at risk, {} lost, {} duplicated, {} refused (never acknowledged); executions {} started, {} deduplicated",
                    x.orders_acknowledged,
                    x.orders_at_risk,
                    x.orders_lost,
                    x.orders_duplicated,
                    x.orders_refused,
                    x.executions_started,
                    x.executions_deduplicated
                )?;
            }
        }
        Ok(())
    }
}

/// Writes `report.json` and `report.html` into `dir`; the HTML's path.
pub fn write(report: &DrillReport, dir: &std::path::Path) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n").with_context(|| json.display().to_string())?;
    let page = dir.join("report.html");
    std::fs::write(&page, html::render(report)).with_context(|| page.display().to_string())?;
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_with_orders_is_listed_for_the_progress_bars() {
        for s in [Scenario::UnplannedOutage, Scenario::Failback, Scenario::Switchover] {
            assert!(SCENARIOS.iter().any(|(name, _)| *name == s.name()), "{}", s.name());
        }
        for name in ["partition", "returning-primary"] {
            assert!(SCENARIOS.iter().any(|(n, _)| *n == name), "{name}");
        }
    }
}
