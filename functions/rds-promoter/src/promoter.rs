//! The promoter's actions. A failover runs them in order; each is idempotent, so a retried
//! or repeated execution changes nothing that is already done:
//!
//! | action    | does                                                                    |
//! |-----------|-------------------------------------------------------------------------|
//! | `gate`    | epoch still as expected, then the cooldown and the lag gate (unplanned) → gate decision |
//! | `fence`   | make the old writer refuse writes (unplanned: only where reachable)     |
//! | `catchUp` | planned only: `done` once the replica has replayed the fenced writer    |
//! | `promote` | make this region's database the writer (`inProgress` → poll again)      |
//! | `record`  | bump the writer epoch (conditional write on the one claim store) to this region, as a **pending** claim, and record the handover |
//! | `activate`| after the state machine waited the lease: mark the claim active (its consumer applies from here) |
//!
//! Beside the executions' steps, an EventBridge schedule (every minute, each region) sends the
//! promoter its Scheduled Event: the **re-fence**. Where this region holds the active claim,
//! it fences the peer's database, so an old writer that comes back after a failover (its
//! fence was "unreachable") refuses writes within a minute, not only when an execution's
//! `fence` step happens to run again. It holds the failover lock while it fences, so it never
//! races an execution moving the writer (which would unfence the peer it promotes).
//!
//! Each answers a [`StepAnswer`] of its own result type (`switchyard_core::steps`). With
//! `execution` set (a state machine passes `$$.Execution.Name`), `gate` and `record` add their
//! marks to that execution's timeline; `begin` and `end` (see `ledger.rs`) open and close it.
//!
//! The promoter runs in the region it promotes (static stability: a failover never depends
//! on the failed region). The writer claim is read on every invocation, never cached.

use std::{
    collections::BTreeMap,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_core::{
    ConfigReader, DeploymentConfig, ErrorName, FailoverMode, Handover, LagGate, LeasePhase, Region, ReplicationLag,
    SwitchyardError, WRITER_LEASE, WriterClaim, WriterEpoch,
    arming::ArmingStore,
    config::{ConfigError, keys},
    ingress::{self, EligibilityStore},
    ledger::{Cooldown, ExecutionLedger, ExecutionStatus, HandoverRecord, Lock, LockOutcome, RpoFigure, Timeline},
    order::Timestamp,
    ports::{ClaimStore, PortResult, PromotionEngine, StepState, TakeoverGuard},
    steps::{
        ActivateResult, BeginAnswer, CatchUpResult, EndAnswer, FenceResult, FenceState, GateResult, HandoverPlan,
        LagSource, PromoteResult, PromoterAction, RecordResult, RefenceAnswer, RefenceOutcome, StepAnswer,
    },
};
use switchyard_postgres::DbEndpoints;

use crate::ledger::{self, BeginRequest, EndRequest};

/// Which database engine the promoter acts on, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineConfig {
    /// `SWITCHYARD_DB_ENGINE=postgres` (default): `SWITCHYARD_DB_ENDPOINTS`.
    Postgres(DbEndpoints),
    /// `SWITCHYARD_DB_ENGINE=aurora`: `SWITCHYARD_GLOBAL_CLUSTER` and `SWITCHYARD_DB_CLUSTER_ARNS`.
    Aurora { global_cluster: String, cluster_arns: BTreeMap<Region, String> },
}

/// A JSON map region → regional cluster ARN.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
struct ClusterArns(BTreeMap<Region, String>);

impl std::str::FromStr for ClusterArns {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_str(s).map_err(|e| format!("expected a JSON map of region to cluster ARN: {e}"))
    }
}

#[derive(Debug, Clone)]
pub struct PromoterConfig {
    pub deployment: DeploymentConfig,
    pub control_table: String,
    pub engine: EngineConfig,
    pub orders_per_hour: u32,
    pub cooldown: Cooldown,
    /// Where an execution that ended uncaught is paged (the functions' alerts topic).
    pub alerts_topic_arn: Option<String>,
}

impl PromoterConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + Clone) -> Result<Self, ConfigError> {
        DeploymentConfig::read_with(lookup, Self::read_own)
    }

    /// The promoter's own settings, as the config they make with the deployment's.
    fn read_own<L: Fn(&str) -> Option<String>>(
        r: &mut ConfigReader<L>,
        d: Option<&DeploymentConfig>,
    ) -> Option<impl FnOnce(DeploymentConfig) -> PromoterConfig + use<L>> {
        let control_table = r.required::<String>(keys::CONTROL_TABLE);
        let orders_per_hour = r.optional::<u32>(keys::ORDERS_PER_HOUR).unwrap_or(10_000);
        let alerts_topic_arn = r.optional::<String>(keys::ALERTS_TOPIC_ARN);
        let cooldown = r
            .optional::<u64>(keys::FAILOVER_COOLDOWN_SECONDS)
            .map_or(Cooldown::DEFAULT, |s| Cooldown(std::time::Duration::from_secs(s)));
        let engine = match r.optional::<String>(keys::DB_ENGINE).as_deref().unwrap_or("postgres") {
            "postgres" => r.required::<DbEndpoints>(keys::DB_ENDPOINTS).map(EngineConfig::Postgres),
            "aurora" => {
                let global_cluster = r.required::<String>(keys::GLOBAL_CLUSTER);
                let arns = r.required::<ClusterArns>(keys::DB_CLUSTER_ARNS);
                global_cluster
                    .zip(arns)
                    .map(|(global_cluster, arns)| EngineConfig::Aurora { global_cluster, cluster_arns: arns.0 })
            }
            other => {
                r.invalid(keys::DB_ENGINE, other, "expected postgres or aurora");
                None
            }
        };
        if let (Some(d), Some(engine)) = (d, &engine) {
            for region in d.regions.iter() {
                let (known, key) = match engine {
                    EngineConfig::Postgres(dbs) => (dbs.0.contains_key(region), keys::DB_ENDPOINTS),
                    EngineConfig::Aurora { cluster_arns, .. } => {
                        (cluster_arns.contains_key(region), keys::DB_CLUSTER_ARNS)
                    }
                };
                if !known {
                    r.invalid(key, "", format!("no endpoint for {region}"));
                }
            }
        }
        let (control_table, engine) = (control_table?, engine?);
        Some(move |deployment| PromoterConfig {
            deployment,
            control_table,
            engine,
            orders_per_hour,
            cooldown,
            alerts_topic_arn,
        })
    }
}

/// The task input a state machine sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromoteRequest {
    pub action: PromoterAction,
    /// The region to become the writer: the one this function runs in.
    pub target_region: Region,
    pub mode: FailoverMode,
    /// The epoch the execution saw when it decided to fail over.
    pub expected_epoch: WriterEpoch,
    #[serde(default)]
    pub allow_data_loss: bool,
    /// An operator failover within the cooldown ([`switchyard_core::ledger::Overrides`]).
    #[serde(default)]
    pub ignore_cooldown: bool,
    /// The execution whose timeline gets this step's mark (`$$.Execution.Name`).
    #[serde(default)]
    pub execution: Option<String>,
}

/// The `detail-type` of Step Functions' events on an execution's status
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/eventbridge-integration.html>).
pub const EXECUTION_STATUS_CHANGE: &str = "Step Functions Execution Status Change";

/// The `detail` of an execution status change the abandoned-execution rule sends: only the
/// two ends no state of the definition can catch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbandonedExecution {
    /// The execution's name: the ledger's key.
    pub name: String,
    pub status: AbandonedStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AbandonedStatus {
    /// It ran into its `TimeoutSeconds`.
    TimedOut,
    /// Someone stopped it (`StopExecution`).
    Aborted,
}

impl AbandonedExecution {
    /// What `end` records, as a Catch would have: the service's error name and why.
    fn caught(&self) -> ledger::Caught {
        let (error, why) = match self.status {
            AbandonedStatus::TimedOut => (ledger::TIMED_OUT, "timed out (its TimeoutSeconds)"),
            AbandonedStatus::Aborted => (ledger::ABORTED, "was aborted (StopExecution)"),
        };
        ledger::Caught {
            error: error.to_owned(),
            cause: Some(format!(
                "execution {} {why}: no state of it closed the ledger; the abandoned-execution rule did",
                self.name
            )),
        }
    }
}

/// Every request the promoter takes, by `action`.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Step(PromoteRequest),
    Begin(BeginRequest),
    End(EndRequest),
    /// EventBridge's Scheduled Event (the re-fence schedule).
    Refence,
    /// Step Functions' status change of an execution that timed out or was aborted: nothing
    /// in it ran `end` (the abandoned-execution rule).
    Abandoned(AbandonedExecution),
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Request::parse(Value::deserialize(d)?).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl Request {
    pub fn parse(mut event: Value) -> Result<Request, SwitchyardError> {
        let bad =
            |e: serde_json::Error| SwitchyardError::new(ErrorName::InvalidInput, format!("malformed request: {e}"));
        if event.get("source").and_then(Value::as_str) == Some("aws.events")
            && event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
        {
            return Ok(Request::Refence);
        }
        if event.get("source").and_then(Value::as_str) == Some("aws.states")
            && event.get("detail-type").and_then(Value::as_str) == Some(EXECUTION_STATUS_CHANGE)
        {
            let detail = event.get("detail").cloned().unwrap_or_default();
            return serde_json::from_value(detail).map(Request::Abandoned).map_err(bad);
        }
        match event.get("action").and_then(Value::as_str) {
            Some(ledger @ ("begin" | "end")) => {
                let begin = ledger == "begin";
                if let Some(o) = event.as_object_mut() {
                    o.remove("action");
                }
                if begin {
                    serde_json::from_value(event).map(Request::Begin).map_err(bad)
                } else {
                    serde_json::from_value(event).map(Request::End).map_err(bad)
                }
            }
            _ => serde_json::from_value(event).map(Request::Step).map_err(bad),
        }
    }
}

/// The promoter of one region, over its ports: the writer claim `R` and the ledger `L` (both
/// in the one claim store, read and written through this region's replica), and the database
/// engine `E`.
#[derive(Debug, Clone)]
pub struct Promoter<R, L, E> {
    config: PromoterConfig,
    registry: R,
    ledger: L,
    engine: E,
    /// PostgreSQL only: this region's CloudWatch, where its probe publishes how far the
    /// writer's clock runs ahead of the replica's (`WriterClockAheadSeconds`). Aurora's lag
    /// is AWS's own figure and needs no correction.
    writer_clocks: Option<aws_sdk_cloudwatch::Client>,
    /// The alerts topic, for the page of an execution that ended uncaught (every other page
    /// is the state machine's own `NotifyFailure`/`NotifySuccess`).
    pager: Option<(aws_sdk_sns::Client, String)>,
    /// [`ABANDON_SETTLE`]; tests shorten it.
    settle: std::time::Duration,
}

/// The most one step may take: a step's calls each have their own deadline, and a step past
/// this ends `ServiceUnavailable` (retried). A request it sent may still land a few seconds
/// later (a statement the server already runs).
const STEP_BUDGET: std::time::Duration = std::time::Duration::from_secs(25);

/// How long the abandoned-execution handler waits before it acts: a step in flight when its
/// execution stopped has ended by then, with its effects.
pub const ABANDON_SETTLE: std::time::Duration = std::time::Duration::from_secs(STEP_BUDGET.as_secs() + 10);

/// How long the re-fence holds the failover lock at most (an invocation that dies holding it
/// blocks a failover's `begin` no longer than this).
const REFENCE_LOCK_TTL: std::time::Duration = std::time::Duration::from_secs(60);

fn lease_seconds() -> u64 {
    WRITER_LEASE.as_secs()
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default()
}

/// A step's result in its envelope.
fn envelope<T>(req: &PromoteRequest, result: T) -> StepAnswer<T> {
    StepAnswer { action: req.action, target_region: req.target_region.clone(), at_ms: now_ms() as u64, result }
}

/// A promoter answer: one type per action (`switchyard_core::steps`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Begin(BeginAnswer),
    Gate(StepAnswer<GateResult>),
    Fence(StepAnswer<FenceResult>),
    CatchUp(StepAnswer<CatchUpResult>),
    Promote(StepAnswer<PromoteResult>),
    Record(StepAnswer<RecordResult>),
    Activate(StepAnswer<ActivateResult>),
    Refence(RefenceAnswer),
    End(Box<EndAnswer>),
    /// An event about an execution this ledger does not hold open: why nothing was done.
    Ignored {
        ignored: String,
    },
}

impl<R: ClaimStore + EligibilityStore + ArmingStore, L: ExecutionLedger, E: PromotionEngine> Promoter<R, L, E> {
    pub fn new(config: PromoterConfig, registry: R, ledger: L, engine: E) -> Self {
        Promoter { config, registry, ledger, engine, writer_clocks: None, pager: None, settle: ABANDON_SETTLE }
    }

    /// Pages an execution that ended uncaught on `topic`.
    pub fn with_pager(self, sns: aws_sdk_sns::Client, topic: String) -> Self {
        Promoter { pager: Some((sns, topic)), ..self }
    }

    /// A lag bound from the replica alone is corrected by the writer clock offset the
    /// region's probe published ([`switchyard_core::replication::skew_corrected`]).
    pub fn with_writer_clocks(self, cloudwatch: aws_sdk_cloudwatch::Client) -> Self {
        Promoter { writer_clocks: Some(cloudwatch), ..self }
    }

    /// The replica's own lag bound, corrected for a writer clock running ahead. An offset
    /// that cannot be read makes the bound unknown (refused unless allowDataLoss): it is
    /// this region's own CloudWatch, so that is no outage of the failed region.
    async fn lag_from_target(&self, target: &Region) -> PortResult<Option<ReplicationLag>> {
        let Some(lag) = self.engine.lag_from_target(target).await? else { return Ok(None) };
        let Some(cloudwatch) = &self.writer_clocks else { return Ok(Some(lag)) };
        let ahead = switchyard_aws::metrics::writer_clock_ahead(cloudwatch, target).await?;
        if ahead.is_none() {
            tracing::warn!(target = %target, "no writer clock offset published in the last hour: the replica's bound is uncorrected");
        }
        Ok(Some(switchyard_core::replication::skew_corrected(lag, ahead)))
    }

    pub async fn handle_any(&self, event: Value) -> Result<Answer, SwitchyardError> {
        let d = &self.config.deployment;
        let local = &d.local_region;
        let peer = d.regions.peer_of(local)?;
        match Request::parse(event)? {
            // Bounded, so that an execution stopped mid-step has nothing in flight for long
            // (the abandoned-execution handler waits that out).
            Request::Step(req) => tokio::time::timeout(STEP_BUDGET, self.handle(req)).await.unwrap_or_else(|_| {
                Err(SwitchyardError::new(
                    ErrorName::ServiceUnavailable,
                    format!("the step ran past its {} s budget; the state machine retries it", STEP_BUDGET.as_secs()),
                ))
            }),
            Request::Begin(req) => {
                ledger::begin(&self.registry, &self.ledger, local, peer, req).await.map(Answer::Begin)
            }
            Request::Refence => self.refence(local, peer).await.map(Answer::Refence),
            Request::End(req) => self.end(req).await.map(|a| Answer::End(Box::new(a))),
            Request::Abandoned(abandoned) => self.abandoned(abandoned).await,
        }
    }

    /// Closes an execution: a failed one lifts a fence it stranded, then the ledger's `end`.
    async fn end(&self, req: EndRequest) -> Result<EndAnswer, SwitchyardError> {
        let d = &self.config.deployment;
        let local = &d.local_region;
        let peer = d.regions.peer_of(local)?;
        if req.outcome == ledger::EndOutcome::Failed {
            self.lift_stranded_fence(&req.execution).await;
        }
        ledger::end(&self.registry, &self.ledger, d.environment.as_str(), local, peer, req).await
    }

    /// An execution that timed out or was aborted: what its `EndFailed` would have done
    /// (timeline closed as failed, lock released, a stranded fence lifted) and its page,
    /// which this function sends itself since no state of the execution runs any more.
    ///
    /// A stop dispatches no new task, but one already running goes on (review of #18: a
    /// fence landing after the lift, a promotion after a read that missed its mark). So the
    /// handler first lets every step in flight end: each runs within [`STEP_BUDGET`], and it
    /// waits [`ABANDON_SETTLE`] before it reads anything it acts on. Left alone: an
    /// execution this region's ledger does not hold (another state machine's, or one the
    /// other region runs under the same name in the shared ledger). A retried delivery of
    /// an execution this handler closed pages again (at least once, never lost).
    async fn abandoned(&self, abandoned: AbandonedExecution) -> Result<Answer, SwitchyardError> {
        let local = &self.config.deployment.local_region;
        let caught = abandoned.caught();
        let ours = |t: &Timeline| {
            &t.to == local
                && (t.status == ExecutionStatus::Running
                    || (t.status == ExecutionStatus::Failed && t.error.as_deref() == Some(caught.error.as_str())))
        };
        if !self.ledger.timeline(&abandoned.name).await?.is_some_and(|t| ours(&t)) {
            tracing::info!(execution = %abandoned.name, status = ?abandoned.status, "no execution this region's ledger holds open: nothing to close");
            return Ok(Answer::Ignored {
                ignored: format!("execution {} is no open execution of {local}'s ledger", abandoned.name),
            });
        }
        tracing::error!(execution = %abandoned.name, status = ?abandoned.status, settle = ?self.settle, "an execution ended uncaught: closing it once its steps in flight have ended");
        tokio::time::sleep(self.settle).await;
        let req = EndRequest {
            execution: abandoned.name.clone(),
            outcome: ledger::EndOutcome::Failed,
            error: Some(caught),
            steps: Default::default(),
        };
        let answer = self.end(req).await?;
        match &self.pager {
            Some((sns, topic)) => {
                sns.publish()
                    .topic_arn(topic)
                    .subject(answer.subject.chars().take(100).collect::<String>())
                    .message(&answer.message)
                    .send()
                    .await
                    .map_err(|e| switchyard_aws::errors::classify("Publish", &e))?;
            }
            None => {
                tracing::error!(page = %answer.message, "no alerts topic configured: the page goes to the log only")
            }
        }
        Ok(Answer::End(Box::new(answer)))
    }

    pub async fn handle(&self, req: PromoteRequest) -> Result<Answer, SwitchyardError> {
        let d = &self.config.deployment;
        d.regions.check(&req.target_region)?;
        if req.target_region != d.local_region {
            return Err(SwitchyardError::new(
                ErrorName::InvalidInput,
                format!(
                    "the promoter in {} promotes its own region only, not {} (a failover must not depend on the other region)",
                    d.local_region, req.target_region
                ),
            ));
        }
        let old_writer = d.regions.peer_of(&req.target_region)?.clone();
        let (target, old) = (&req.target_region, &old_writer);
        if matches!(
            req.action,
            PromoterAction::Fence | PromoterAction::Promote | PromoterAction::Record | PromoterAction::Activate
        ) {
            self.check_gated(&req).await?;
        }
        if let Some(execution) = &req.execution {
            self.renew_lock(execution).await?;
        }
        let answer = match req.action {
            PromoterAction::Gate => Answer::Gate(envelope(&req, self.gate(&req, old, target).await?)),
            PromoterAction::Fence => Answer::Fence(envelope(&req, {
                // Marked before the request: a fence may land even if this call fails, and the
                // failure path lifts only a fence it knows was asked for.
                self.mark(&req, |t| t.fenced = t.fenced.or(Some(Timestamp::now()))).await?;
                match (self.engine.fence(old).await, req.mode) {
                    (Ok(s), _) => FenceResult { state: s.into(), fenced: Some(old_writer.clone()), reason: None },
                    // Unplanned: the old writer is usually unreachable, or sick. The re-fence
                    // fences it when it answers again.
                    (Err(e), FailoverMode::Unplanned) if failed_writer_error(e.name) => {
                        FenceResult { state: FenceState::Unreachable, fenced: None, reason: Some(e.message) }
                    }
                    (Err(e), _) => return Err(e),
                }
            })),
            PromoterAction::CatchUp => {
                if req.mode != FailoverMode::Planned {
                    return Err(SwitchyardError::new(
                        ErrorName::InvalidInput,
                        "catchUp belongs to a planned switchover; an unplanned failover cannot wait for a failed writer",
                    ));
                }
                // After the handover is recorded the replica is the writer: nothing to catch up.
                let claim = self.registry.strong_read().await.proven()?;
                Answer::CatchUp(envelope(
                    &req,
                    match claim.plan_handover(req.expected_epoch, &req.target_region)? {
                        Handover::AlreadyDone(_) => {
                            CatchUpResult { state: StepState::Done, handover: HandoverPlan::AlreadyDone }
                        }
                        Handover::Bump(_) => CatchUpResult {
                            state: self.engine.catch_up(old, target).await?,
                            handover: HandoverPlan::Bump,
                        },
                    },
                ))
            }
            PromoterAction::Promote => {
                // Marked before the request: a promotion may complete even if this call fails.
                self.mark(&req, |t| t.promotion_started = t.promotion_started.or(Some(Timestamp::now()))).await?;
                Answer::Promote(envelope(&req, PromoteResult { state: self.engine.promote(target, req.mode).await? }))
            }
            PromoterAction::Record => Answer::Record(envelope(&req, self.record(&req, target).await?)),
            PromoterAction::Activate => Answer::Activate(envelope(&req, self.activate(&req).await?)),
        };
        tracing::info!(action = ?req.action, target = %req.target_region, mode = ?req.mode, ?answer, "rds-promoter");
        Ok(answer)
    }

    /// The scheduled re-fence (see the module's doc): only from the region holding the active
    /// claim, only under the failover lock (held for a minute at most), read again under it.
    async fn refence(&self, local: &Region, peer: &Region) -> Result<RefenceAnswer, SwitchyardError> {
        let answer = |outcome, claim: WriterClaim, reason: Option<String>| RefenceAnswer {
            outcome,
            region: local.clone(),
            peer: peer.clone(),
            claim,
            reason,
        };
        let claim = self.registry.strong_read().await.proven()?;
        if !claim.lets_apply(local) {
            return Ok(answer(RefenceOutcome::NotWriter, claim, None));
        }
        let now = Timestamp::now();
        let lock = Lock {
            owner: format!("refence-{local}-{}", now.unix_millis()),
            incident: switchyard_core::ledger::refence_incident(peer),
            acquired_at: now,
            expires_at: Timestamp::from_unix_millis(now.unix_millis() + REFENCE_LOCK_TTL.as_millis() as i64),
        };
        match self.ledger.acquire(&lock).await? {
            LockOutcome::Acquired => {}
            LockOutcome::Duplicate { owner } | LockOutcome::HeldBy { owner, .. } => {
                return Ok(answer(RefenceOutcome::LockHeld, claim, Some(format!("{owner} holds the failover lock"))));
            }
        }
        let fenced = async {
            // Under the lock no execution moves the writer: this read stays true while we fence.
            let claim = self.registry.strong_read().await.proven()?;
            if !claim.lets_apply(local) {
                return Ok(answer(RefenceOutcome::NotWriter, claim, None));
            }
            Ok(match self.engine.fence(peer).await {
                Ok(StepState::Done) => answer(RefenceOutcome::Fenced, claim, None),
                Ok(StepState::InProgress) => {
                    answer(RefenceOutcome::Unreachable, claim, Some("fence in progress".into()))
                }
                Err(e) if failed_writer_error(e.name) => answer(RefenceOutcome::Unreachable, claim, Some(e.message)),
                Err(e) => return Err(e),
            })
        }
        .await;
        self.ledger.release(&lock.owner).await?;
        let fenced = fenced?;
        tracing::info!(outcome = ?fenced.outcome, peer = %peer, reason = ?fenced.reason, "rds-promoter: re-fence");
        Ok(fenced)
    }

    /// Fence and promote act on databases, and record moves the writer: only inside an
    /// execution that holds the failover lock now and whose gate recorded its decision for
    /// this handover (the timeline of the
    /// incident `expectedEpoch` → `targetRegion`, marked `decided`). A direct invocation, a
    /// late task of an execution that lost its lock, or a step that skipped the gate is
    /// `Ungated`.
    async fn check_gated(&self, req: &PromoteRequest) -> Result<(), SwitchyardError> {
        let action = match req.action {
            PromoterAction::Fence => "fence",
            PromoterAction::Promote => "promote",
            PromoterAction::Activate => "activate",
            _ => "record",
        };
        let ungated = |why: String| SwitchyardError::new(ErrorName::Ungated, format!("{action} refused: {why}"));
        let Some(execution) = &req.execution else {
            return Err(ungated(
                "it runs only inside an execution (begin takes the lock, gate records its decision); this request names none"
                    .into(),
            ));
        };
        let now = Timestamp::now();
        match self.ledger.held_lock().await? {
            Some(lock) if lock.owner == *execution && lock.expires_at > now => {}
            Some(lock) if lock.owner == *execution => {
                return Err(ungated(format!("execution {execution}'s lock expired at {}", lock.expires_at)));
            }
            Some(lock) => return Err(ungated(format!("the failover lock is held by {}, not {execution}", lock.owner))),
            None => return Err(ungated(format!("execution {execution} does not hold the failover lock"))),
        }
        let incident = switchyard_core::ledger::incident(req.expected_epoch, &req.target_region);
        match self.ledger.timeline(execution).await? {
            Some(t) if t.incident == incident && t.decided.is_some() => Ok(()),
            Some(t) if t.incident != incident => {
                Err(ungated(format!("execution {execution} handles incident {}, not {incident}", t.incident)))
            }
            _ => Err(ungated(format!("execution {execution} has no gate decision for {incident}"))),
        }
    }

    /// Renews `execution`'s lease on the failover lock (every step of an execution does), or
    /// refuses the step when the execution no longer holds the lock: a new start took it over
    /// after this one stopped renewing it.
    async fn renew_lock(&self, execution: &str) -> Result<(), SwitchyardError> {
        let lost = |why: String| SwitchyardError::new(ErrorName::Ungated, format!("execution {execution} {why}"));
        match self.ledger.held_lock().await? {
            Some(held) if held.owner == execution => {
                if self.ledger.renew(&held.renewed(Timestamp::now())).await? {
                    Ok(())
                } else {
                    Err(lost("lost the failover lock while renewing it".into()))
                }
            }
            Some(held) => Err(lost(format!("does not hold the failover lock: {} does", held.owner))),
            None => Err(lost("does not hold the failover lock".into())),
        }
    }

    /// A planned switchover that fenced its writer and then failed before any promotion
    /// would leave no region writing (#18): lift the fence, while this execution still holds
    /// the lock and the claim still names the old writer. Never once a promotion was
    /// requested (the target may become a writer at any moment), never in an unplanned
    /// failover (its old writer is the failed one). Best effort: the notification says
    /// whether the fence stands.
    async fn lift_stranded_fence(&self, execution: &str) {
        let lifted = async {
            let Some(mut t) = self.ledger.timeline(execution).await? else { return Ok(false) };
            if t.mode != FailoverMode::Planned
                || t.status != ExecutionStatus::Running
                || t.fenced.is_none()
                || t.promotion_started.is_some()
                || t.fence_lifted.is_some()
            {
                return Ok(false);
            }
            // Holding the lock is proven by renewing it (a conditional write): an execution
            // whose lock was taken over lifts nothing.
            let held = self.ledger.held_lock().await?.filter(|l| l.owner == execution);
            let holds = match held {
                Some(l) if l.expires_at > Timestamp::now() => self.ledger.renew(&l.renewed(Timestamp::now())).await?,
                _ => false,
            };
            let claim = self.registry.strong_read().await.proven()?;
            if !holds || claim.writer != t.from || self.engine.accepts_writes(&t.to).await? {
                return Ok(false);
            }
            if self.engine.unfence(&t.from).await? != StepState::Done {
                return Ok(false);
            }
            t.fence_lifted = Some(Timestamp::now());
            self.ledger.save_timeline(&t).await?;
            Ok::<_, SwitchyardError>(true)
        }
        .await;
        match lifted {
            Ok(true) => tracing::warn!(execution, "the switchover failed before promotion: fence lifted"),
            Ok(false) => {}
            Err(e) => tracing::error!(execution, error = %e, "the fence could not be lifted"),
        }
    }

    /// Adds marks to the request's execution timeline, if it names one that exists.
    async fn mark(&self, req: &PromoteRequest, change: impl FnOnce(&mut Timeline)) -> Result<(), SwitchyardError> {
        let Some(execution) = &req.execution else { return Ok(()) };
        if let Some(mut t) = self.ledger.timeline(execution).await? {
            change(&mut t);
            self.ledger.save_timeline(&t).await?;
        }
        Ok(())
    }

    async fn gate(&self, req: &PromoteRequest, old: &Region, target: &Region) -> Result<GateResult, SwitchyardError> {
        let claim = self.registry.strong_read().await.proven()?;
        if let Handover::AlreadyDone(claim) = claim.plan_handover(req.expected_epoch, &req.target_region)? {
            // Decided: nothing left to gate (a rerun finishes the steps, which are idempotent).
            self.mark(req, |t| t.decided = t.decided.or(Some(Timestamp::now()))).await?;
            return Ok(GateResult { handover: HandoverPlan::AlreadyDone, claim, gate: None, lag_measured_from: None });
        }
        let last = self.ledger.last_handover().await?;
        match self.config.cooldown.check(req.mode, last.as_ref(), Timestamp::now()) {
            // An operator decided the new writer's outage is real (begin checked the entry
            // and the reason; the timeline keeps both).
            Err(e) if req.ignore_cooldown && e.name == ErrorName::CooldownActive => {
                tracing::warn!(cooldown = %e.message, "the operator's override lets this failover through the cooldown");
            }
            other => other?,
        }
        let may_take_over = self.check_standing(req, target, claim.epoch).await?;
        if req.mode == FailoverMode::Planned {
            // Before the fence: a target that cannot catch up must not cost us the writer.
            self.engine.can_catch_up(old, target).await?;
        }
        let mut lag_source = LagSource::Both;
        let lag = match self.engine.lag(old, target).await {
            Ok(lag) => lag,
            // Planned switchover needs the current writer.
            Err(e) if req.mode == FailoverMode::Planned => return Err(e),
            // The old writer is unreachable or sick (the usual unplanned case): the replica's
            // own account bounds the lag from above. When the error was the target's, that
            // fails too; nothing at all is an unknown lag, which the gate treats as above
            // budget.
            Err(e) if failed_writer_error(e.name) => {
                lag_source = LagSource::Target;
                let fallback = self.lag_from_target(target).await.unwrap_or_else(|e2| {
                    tracing::warn!(error = %e2, "lag from the target alone unknown too");
                    None
                });
                if fallback.is_none() {
                    tracing::warn!(error = %e, "lag unknown");
                }
                fallback
            }
            Err(e) => return Err(e),
        };
        let gate = LagGate { budget: self.config.deployment.rpo_budget, orders_per_hour: self.config.orders_per_hour };
        let decision = gate.check(req.mode, lag, req.allow_data_loss)?;
        self.mark(req, |t| {
            t.decided = Some(Timestamp::now());
            t.rpo = Some(RpoFigure::new(&decision, may_take_over));
        })
        .await?;
        Ok(GateResult {
            handover: HandoverPlan::Bump,
            claim,
            gate: Some(decision),
            lag_measured_from: Some(lag_source),
        })
    }

    /// A standby dropped from the eligible set may lack acknowledged orders: it takes over
    /// only once caught up, or by an operator's explicit data-loss override. Whether it may.
    async fn check_standing(
        &self,
        req: &PromoteRequest,
        target: &Region,
        epoch: WriterEpoch,
    ) -> Result<bool, SwitchyardError> {
        let standing = ingress::standing_of(&self.registry, target, epoch).await?;
        let may_take_over = standing.may_take_over(target);
        if !may_take_over {
            if !req.allow_data_loss {
                return Err(SwitchyardError::new(
                    ErrorName::NotReady,
                    format!(
                        "{target} is {:?} for the acknowledgement (standing version {}): it may lack acknowledged orders, \
                         so it takes over only once caught up, or with allowDataLoss",
                        standing.standing, standing.version
                    ),
                ));
            }
            tracing::warn!(target = %target, standing = ?standing.standing, "taking over with orders possibly missing: allowDataLoss");
        }
        Ok(may_take_over)
    }

    async fn record(&self, req: &PromoteRequest, target: &Region) -> Result<RecordResult, SwitchyardError> {
        let claim = self.registry.strong_read().await.proven()?;
        match claim.plan_handover(req.expected_epoch, &req.target_region)? {
            // Bumped already: by this execution's earlier attempt, whose later writes may have
            // failed (a throttled handover write), or by another. Each write below is
            // idempotent, so the retry finishes whatever is missing.
            Handover::AlreadyDone(claim) => {
                let handover = match self.ledger.last_handover().await? {
                    Some(last) if last.epoch >= claim.epoch => last,
                    _ => {
                        let handover = self.handover_record(req, &claim);
                        self.ledger.record_handover(&handover).await?;
                        handover
                    }
                };
                self.mark(req, |t| {
                    if t.epoch.is_none() {
                        t.promoted = Some(handover.at);
                        t.epoch = Some(claim.epoch);
                    }
                })
                .await?;
                Ok(RecordResult { state: StepState::Done, claim, changed: false, lease_seconds: lease_seconds() })
            }
            Handover::Bump(next) => {
                // Unplanned: the standing again, just before the bump. The writer's region may
                // have dropped the target since the gate (orders acknowledged since are not in
                // its queue), and it may be lost for good. The window left is this read to the
                // bump: one conditional write over both would close it (two items today).
                // Planned: the old writer is fenced by now and alive; refusing would leave
                // nobody applying, and the new writer's catch-up takes in what it parked.
                if req.mode == FailoverMode::Unplanned {
                    self.check_standing(req, target, req.expected_epoch).await?;
                }
                // Never name a writer that cannot write.
                if !self.engine.accepts_writes(target).await? {
                    return Err(SwitchyardError::new(
                        ErrorName::NotReady,
                        format!("{} does not accept writes yet: promote before recording", req.target_region),
                    ));
                }
                // One conditional write with the standing (kept on the claim item): a drop
                // of the target recorded after the check above refuses the bump.
                let guard = if req.mode == FailoverMode::Unplanned && !req.allow_data_loss {
                    TakeoverGuard::TargetEligible
                } else {
                    TakeoverGuard::Waived
                };
                self.registry.bump(req.expected_epoch, next.clone(), guard).await?;
                let handover = self.handover_record(req, &next);
                self.ledger.record_handover(&handover).await?;
                self.mark(req, |t| {
                    t.promoted = Some(handover.at);
                    t.epoch = Some(next.epoch);
                })
                .await?;
                Ok(RecordResult { state: StepState::Done, claim: next, changed: true, lease_seconds: lease_seconds() })
            }
        }
    }

    /// The second phase of the lease. The state machine waited `WRITER_LEASE` since `record`
    /// (its `Wait` is the lease's clock), so whatever the old writer committed under its last
    /// read has landed or been refused: the new writer may apply. Gated like `record`, so only
    /// the execution that bumped (and holds the lock) activates.
    async fn activate(&self, req: &PromoteRequest) -> Result<ActivateResult, SwitchyardError> {
        let claim = self.registry.strong_read().await.proven()?;
        let Handover::AlreadyDone(claim) = claim.plan_handover(req.expected_epoch, &req.target_region)? else {
            return Err(SwitchyardError::new(
                ErrorName::NotReady,
                format!(
                    "the claim is still epoch {} held by {}: record the handover before activating it",
                    claim.epoch, claim.writer
                ),
            ));
        };
        let changed = claim.phase == LeasePhase::Pending;
        if changed {
            self.registry.activate(&claim).await?;
        }
        self.mark(req, |t| t.activated = t.activated.or(Some(Timestamp::now()))).await?;
        Ok(ActivateResult { state: StepState::Done, claim: claim.activated(), changed })
    }

    fn handover_record(&self, req: &PromoteRequest, claim: &WriterClaim) -> HandoverRecord {
        HandoverRecord {
            epoch: claim.epoch,
            writer: claim.writer.clone(),
            at: Timestamp::now(),
            execution: req.execution.clone().unwrap_or_else(|| "direct-invocation".to_owned()),
            mode: req.mode,
        }
    }
}

/// Whether a database error is what a failed old writer answers in an unplanned failover:
/// nothing (unreachable, not ready), or an error that says it is sick (out of connection
/// slots, memory or disk: `Throttled`; rejecting our login: `AccessDenied`; its database
/// gone: `ResourceNotFound`). Such a writer is as good as gone for the gate (the replica
/// bounds the lag) and the fence (skipped; the re-fence fences it when it answers again).
/// One writer does not rest on that fence: the claim has moved, and the lease stops the old
/// region's consumer. An error that is not about the database's health stops the step.
fn failed_writer_error(name: ErrorName) -> bool {
    matches!(
        name,
        ErrorName::ServiceUnavailable
            | ErrorName::NotReady
            | ErrorName::Throttled
            | ErrorName::AccessDenied
            | ErrorName::ResourceNotFound
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Clone {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn config_reports_everything_missing_at_once() {
        let e = PromoterConfig::from_lookup(env(&[(keys::ENVIRONMENT, "t")])).expect_err("incomplete");
        let text = e.to_string();
        for key in [keys::LOCAL_REGION, keys::PRIMARY_REGION, keys::CONTROL_TABLE, keys::DB_ENDPOINTS] {
            assert!(text.contains(key), "{key} not reported: {text}");
        }
    }

    #[test]
    fn config_needs_an_endpoint_per_region() {
        let e = PromoterConfig::from_lookup(env(&[
            (keys::ENVIRONMENT, "t"),
            (keys::LOCAL_REGION, "us-east-2"),
            (keys::PRIMARY_REGION, "us-east-1"),
            (keys::STANDBY_REGION, "us-east-2"),
            (keys::CONTROL_TABLE, "t-control"),
            (keys::DB_ENDPOINTS, r#"{"us-east-2":{"host":"127.0.0.1","port":5432,"user":"u","dbname":"d"}}"#),
        ]))
        .expect_err("us-east-1 missing");
        assert!(e.to_string().contains("no endpoint for us-east-1"), "{e}");
    }

    #[test]
    fn sample_events() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/rds-promoter");
        let seen = switchyard_lambda::check_sample_events::<Request>(&dir).expect("sample events");
        assert!(seen >= 12, "only {seen} sample events");
    }

    #[test]
    fn requests_are_strict() {
        let ok = serde_json::json!({"action": "catchUp", "targetRegion": "us-east-2", "mode": "planned", "expectedEpoch": 1});
        let req: PromoteRequest = serde_json::from_value(ok).expect("valid");
        assert_eq!((req.action, req.allow_data_loss), (PromoterAction::CatchUp, false));
        let bad = [
            serde_json::json!({"action": "promote", "targetRegion": "us-east-9", "mode": "planned", "expectedEpoch": 1}),
            serde_json::json!({"action": "promote", "targetRegion": "us-east-2", "mode": "sideways", "expectedEpoch": 1}),
            serde_json::json!({"action": "promote", "targetRegion": "us-east-2", "mode": "planned"}),
            serde_json::json!({"action": "promote", "targetRegion": "us-east-2", "mode": "planned", "expectedEpoch": 1, "force": true}),
            serde_json::json!({"action": "demote", "targetRegion": "us-east-2", "mode": "planned", "expectedEpoch": 1}),
        ];
        for event in bad {
            assert!(serde_json::from_value::<PromoteRequest>(event.clone()).is_err(), "{event}");
        }
    }

    /// The promoter's steps over the in-memory twins of its ports: the flows a state machine
    /// runs, and each refusal, without a database or a control table.
    mod flow {
        use switchyard_core::{
            WriterClaim,
            ledger::{FailoverEntry, InMemoryLedger},
            ports::{InMemoryClaimStore, memory::InMemoryEngine},
        };

        use super::*;

        type Twin = Promoter<InMemoryClaimStore, InMemoryLedger, InMemoryEngine>;

        fn region(s: &str) -> Region {
            s.parse().expect("region")
        }

        /// The promoter of us-east-2; us-east-1 writes at epoch 1.
        fn promoter() -> Twin {
            let endpoints = r#"{"us-east-1":{"host":"127.0.0.1","port":1,"user":"u","dbname":"d"},"us-east-2":{"host":"127.0.0.1","port":2,"user":"u","dbname":"d"}}"#;
            let config = PromoterConfig::from_lookup(env(&[
                (keys::ENVIRONMENT, "t"),
                (keys::LOCAL_REGION, "us-east-2"),
                (keys::PRIMARY_REGION, "us-east-1"),
                (keys::STANDBY_REGION, "us-east-2"),
                (keys::CONTROL_TABLE, "t-control"),
                (keys::DB_ENDPOINTS, endpoints),
            ]))
            .expect("config");
            let claim = WriterClaim::active(WriterEpoch(1), region("us-east-1"));
            let engine = InMemoryEngine::new(&region("us-east-1"), &region("us-east-2"));
            Promoter::new(
                config,
                InMemoryClaimStore::new(claim).armed_for(&"us-east-2".parse().expect("region")),
                InMemoryLedger::default(),
                engine,
            )
        }

        /// Begins execution `name` in us-east-2 (the lock and the timeline), as the state
        /// machine's first step does.
        async fn begin(p: &Twin, name: &str) {
            let begin = serde_json::json!({
                "action": "begin", "mode": "unplanned", "entry": "automatic", "execution": name,
                "startedAt": Timestamp::now().to_string(),
            });
            p.handle_any(begin).await.expect("begin");
        }

        /// One step of the execution "flow" (begun on first use), as the state machine runs it.
        async fn step(p: &Twin, action: PromoterAction, mode: FailoverMode, allow: bool) -> Result<Answer, ErrorName> {
            if p.ledger.timeline("flow").await.ok().flatten().is_none() {
                begin(p, "flow").await;
            }
            let req = PromoteRequest {
                action,
                target_region: region("us-east-2"),
                mode,
                expected_epoch: WriterEpoch(1),
                allow_data_loss: allow,
                ignore_cooldown: false,
                execution: Some("flow".to_owned()),
            };
            p.handle(req).await.map_err(|e| e.name)
        }

        fn state(a: &Answer) -> Option<StepState> {
            match a {
                Answer::CatchUp(x) => Some(x.result.state),
                Answer::Promote(x) => Some(x.result.state),
                Answer::Record(x) => Some(x.result.state),
                _ => None,
            }
        }

        fn lag(seconds: f64) -> switchyard_core::ports::PortResult<Option<switchyard_core::ReplicationLag>> {
            Ok(Some(switchyard_core::ReplicationLag { bytes: 1, seconds }))
        }

        /// A standby the writer dropped from the eligible set (it may lack acknowledged
        /// orders) is no failover target, planned or not, until it is eligible again; an
        /// operator's allowDataLoss overrides.
        #[tokio::test]
        async fn no_failover_into_a_standby_that_is_not_eligible() {
            use switchyard_core::ingress::{Eligibility, EligibilityStore, Standing};
            let p = promoter();
            let dropped = Eligibility {
                version: 1,
                epoch: WriterEpoch(1),
                standby: region("us-east-2"),
                standing: Standing::Ineligible,
            };
            p.registry.write(0, dropped.clone()).await.expect("recorded");
            for mode in [FailoverMode::Unplanned, FailoverMode::Planned] {
                assert_eq!(
                    step(&p, PromoterAction::Gate, mode, false).await.err(),
                    Some(ErrorName::NotReady),
                    "{mode:?}"
                );
            }
            assert!(matches!(step(&p, PromoterAction::Gate, FailoverMode::Unplanned, true).await, Ok(Answer::Gate(_))));
            p.registry.write(1, dropped.next(Standing::CatchingUp)).await.expect("catching up");
            assert_eq!(
                step(&p, PromoterAction::Gate, FailoverMode::Unplanned, false).await.err(),
                Some(ErrorName::NotReady)
            );
            p.registry.write(2, dropped.next(Standing::CatchingUp).next(Standing::Eligible)).await.expect("eligible");
            assert!(matches!(
                step(&p, PromoterAction::Gate, FailoverMode::Unplanned, false).await,
                Ok(Answer::Gate(_))
            ));
        }

        #[tokio::test]
        async fn a_planned_switchover_polls_to_the_end_and_a_rerun_changes_nothing() {
            use PromoterAction::*;
            let p = promoter();
            p.engine.set_polls(1, 1);
            let planned = FailoverMode::Planned;
            let Ok(Answer::Gate(g)) = step(&p, Gate, planned, false).await else { panic!("gate") };
            assert_eq!((g.result.handover, g.result.lag_measured_from), (HandoverPlan::Bump, Some(LagSource::Both)));
            assert!(
                matches!(step(&p, Fence, planned, false).await, Ok(Answer::Fence(f)) if f.result.state == FenceState::Done)
            );
            assert!(p.engine.node(&region("us-east-1")).is_some_and(|n| n.fenced));
            let polls = [CatchUp, CatchUp, Promote, Promote];
            let mut states = Vec::new();
            for a in polls {
                states.push(state(&step(&p, a, planned, false).await.expect("step")));
            }
            use StepState::{Done, InProgress};
            assert_eq!(states, [Some(InProgress), Some(Done), Some(InProgress), Some(Done)]);
            let Ok(Answer::Record(r)) = step(&p, Record, planned, false).await else { panic!("record") };
            assert!(
                r.result.changed
                    && r.result.claim.epoch == WriterEpoch(2)
                    && r.result.claim.writer == region("us-east-2")
            );
            assert_eq!(p.registry.strong_read().await.proven().map(|c| c.epoch), Ok(WriterEpoch(2)));
            assert_eq!(p.ledger.last_handover().await.ok().flatten().map(|h| h.epoch), Some(WriterEpoch(2)));
            // The same execution again (a retried state machine): nothing moves twice.
            let Ok(Answer::Gate(g)) = step(&p, Gate, planned, false).await else { panic!("gate") };
            assert_eq!(g.result.handover, HandoverPlan::AlreadyDone);
            let Ok(Answer::CatchUp(c)) = step(&p, CatchUp, planned, false).await else { panic!("catch up") };
            assert_eq!(c.result.handover, HandoverPlan::AlreadyDone);
            assert_eq!(state(&step(&p, Promote, planned, false).await.expect("promote")), Some(Done));
            let Ok(Answer::Record(r)) = step(&p, Record, planned, false).await else { panic!("record") };
            assert!(!r.result.changed);
            assert_eq!(p.engine.promotions_started(), 1, "a finished promotion was started again");
        }

        /// The two-phase lease: `record` leaves the claim pending, `activate` (only after
        /// the record, only inside the execution) makes it active, again changes nothing. An
        /// execution that ended between the two leaves a pending claim that nobody applies
        /// under; the next execution's begin resumes it instead of answering NothingToDo.
        #[tokio::test]
        async fn record_leaves_the_claim_pending_until_activate_and_a_new_execution_resumes_it() {
            use PromoterAction::*;
            let p = promoter();
            let unplanned = FailoverMode::Unplanned;
            assert_eq!(step(&p, Activate, unplanned, false).await.err(), Some(ErrorName::Ungated), "before the gate");
            step(&p, Gate, unplanned, false).await.expect("gate");
            assert_eq!(step(&p, Activate, unplanned, false).await.err(), Some(ErrorName::NotReady), "before record");
            step(&p, Promote, unplanned, false).await.expect("promote");
            let Ok(Answer::Record(r)) = step(&p, Record, unplanned, false).await else { panic!("record") };
            assert_eq!((r.result.claim.phase, r.result.lease_seconds), (LeasePhase::Pending, WRITER_LEASE.as_secs()));
            assert_eq!(p.registry.strong_read().await.proven().map(|c| c.phase), Ok(LeasePhase::Pending));

            // The execution dies here. A new one resumes the handover rather than ending NothingToDo.
            p.ledger.release("flow").await.expect("released");
            let begin = serde_json::json!({
                "action": "begin", "mode": "unplanned", "entry": "automatic", "execution": "resume",
                "startedAt": Timestamp::now().to_string(),
            });
            let Ok(Answer::Begin(b)) = p.handle_any(begin).await else { panic!("begin") };
            assert_eq!(
                (b.outcome, b.expected_epoch),
                (switchyard_core::steps::BeginOutcome::Acquired, Some(WriterEpoch(1)))
            );
            let resume = |action| PromoteRequest {
                action,
                target_region: region("us-east-2"),
                mode: unplanned,
                expected_epoch: WriterEpoch(1),
                allow_data_loss: false,
                ignore_cooldown: false,
                execution: Some("resume".to_owned()),
            };
            for action in [Gate, Fence, Promote, Record] {
                p.handle(resume(action)).await.unwrap_or_else(|e| panic!("{action:?}: {e}"));
            }
            let Ok(Answer::Activate(a)) = p.handle(resume(Activate)).await else { panic!("activate") };
            assert!(a.result.changed && a.result.claim.phase == LeasePhase::Active);
            let Ok(Answer::Activate(again)) = p.handle(resume(Activate)).await else { panic!("activate again") };
            assert!(!again.result.changed);
            assert_eq!(
                p.registry.strong_read().await.proven(),
                Ok(WriterClaim::active(WriterEpoch(2), region("us-east-2")))
            );
            assert!(p.ledger.timeline("resume").await.ok().flatten().is_some_and(|t| t.activated.is_some()));
        }

        /// The scheduled re-fence: only from the active writer's region, only under the lock,
        /// and a returning old writer is fenced by the first round that reaches it.
        #[tokio::test]
        async fn the_scheduled_refence_fences_a_returning_old_writer_from_the_active_writer_only() {
            let p = promoter();
            let scheduled = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
            let outcome = |a: Answer| match a {
                Answer::Refence(r) => r.outcome,
                other => panic!("not a re-fence answer: {other:?}"),
            };
            // us-east-2 is not the writer: nothing fenced.
            let a = p.handle_any(scheduled.clone()).await.expect("refence");
            assert_eq!(outcome(a), RefenceOutcome::NotWriter);
            assert!(p.engine.node(&region("us-east-1")).is_some_and(|n| !n.fenced));

            // us-east-2 took over while us-east-1 was down; us-east-1 is back, unfenced.
            p.registry.set(WriterClaim::active(WriterEpoch(2), region("us-east-2")));
            p.engine.set_reachable(&region("us-east-1"), false);
            assert_eq!(outcome(p.handle_any(scheduled.clone()).await.expect("r")), RefenceOutcome::Unreachable);
            p.engine.set_reachable(&region("us-east-1"), true);
            assert_eq!(outcome(p.handle_any(scheduled.clone()).await.expect("r")), RefenceOutcome::Fenced);
            assert!(p.engine.node(&region("us-east-1")).is_some_and(|n| n.fenced), "not fenced");
            assert_eq!(p.ledger.held_lock().await.ok().flatten(), None, "the lock is released");

            // An execution holding the lock: this round fences nothing. And an execution's
            // begin that meets the re-fence's lock retries instead of failing.
            let held = Lock {
                owner: "some-execution".into(),
                incident: "epoch-2-to-us-east-1".into(),
                acquired_at: Timestamp::now(),
                expires_at: Timestamp::from_unix_millis(Timestamp::now().unix_millis() + 60_000),
            };
            p.ledger.acquire(&held).await.expect("lock");
            assert_eq!(outcome(p.handle_any(scheduled).await.expect("r")), RefenceOutcome::LockHeld);
            p.ledger.release("some-execution").await.expect("released");
            let refencing = Lock {
                owner: "refence-us-east-1-1".into(),
                incident: switchyard_core::ledger::refence_incident(&region("us-east-2")),
                ..held
            };
            p.ledger.acquire(&refencing).await.expect("lock");
            p.registry.set(WriterClaim::active(WriterEpoch(2), region("us-east-1")));
            let begin = serde_json::json!({
                "action": "begin", "mode": "planned", "entry": "operator", "execution": "meets-refence",
                "startedAt": Timestamp::now().to_string(),
            });
            let refused = p.handle_any(begin).await.expect_err("the lock is held");
            assert_eq!(refused.name, ErrorName::OperationInProgress, "{refused}");
        }

        #[tokio::test]
        async fn an_unplanned_failover_goes_on_without_the_old_writer() {
            use PromoterAction::*;
            let p = promoter();
            p.engine.set_reachable(&region("us-east-1"), false);
            p.engine.set_lag_from_target(lag(5.0));
            let unplanned = FailoverMode::Unplanned;
            let Ok(Answer::Gate(g)) = step(&p, Gate, unplanned, false).await else { panic!("gate") };
            assert_eq!(g.result.lag_measured_from, Some(LagSource::Target), "the replica alone bounds the lag");
            let Ok(Answer::Fence(f)) = step(&p, Fence, unplanned, false).await else { panic!("fence") };
            assert_eq!((f.result.state, f.result.fenced), (FenceState::Unreachable, None));
            assert_eq!(step(&p, CatchUp, unplanned, false).await.err(), Some(ErrorName::InvalidInput));
            assert_eq!(state(&step(&p, Promote, unplanned, false).await.expect("promote")), Some(StepState::Done));
            let Ok(Answer::Record(r)) = step(&p, Record, unplanned, false).await else { panic!("record") };
            assert_eq!(r.result.claim.writer, region("us-east-2"));
        }

        #[tokio::test]
        async fn the_gate_refuses_what_it_must() {
            use FailoverMode::{Planned, Unplanned};
            // (lag with both answering, old writer reachable, lag from the target, mode,
            //  allowDataLoss, expected)
            let table: [(_, bool, _, _, bool, Result<bool, ErrorName>); 7] = [
                (lag(10.0), true, lag(0.0), Unplanned, false, Ok(false)),
                (lag(90.0), true, lag(0.0), Unplanned, false, Err(ErrorName::LagAboveBudget)),
                (lag(90.0), true, lag(0.0), Unplanned, true, Ok(true)),
                (Ok(None), true, lag(0.0), Unplanned, false, Err(ErrorName::LagAboveBudget)),
                (lag(0.0), false, Ok(None), Unplanned, false, Err(ErrorName::LagAboveBudget)),
                // A planned switchover needs the writer it drains.
                (lag(0.0), false, lag(0.0), Planned, false, Err(ErrorName::ServiceUnavailable)),
                // Planned never loses data, whatever the lag: the catch-up waits for it.
                (lag(90.0), true, lag(0.0), Planned, false, Ok(false)),
            ];
            for (i, (both, reachable, target, mode, allow, expected)) in table.into_iter().enumerate() {
                let p = promoter();
                p.engine.set_lag(both);
                p.engine.set_reachable(&region("us-east-1"), reachable);
                p.engine.set_lag_from_target(target);
                let got = step(&p, PromoterAction::Gate, mode, allow).await.map(|a| match a {
                    Answer::Gate(g) => g.result.gate.is_some_and(|d| d.data_loss_accepted),
                    other => panic!("row {i}: {other:?}"),
                });
                assert_eq!(got, expected, "row {i}");
            }
        }

        #[tokio::test]
        async fn nothing_is_recorded_before_the_target_writes_nor_from_a_stale_view() {
            let p = promoter();
            p.engine.set_lag_from_target(lag(5.0));
            step(&p, PromoterAction::Gate, FailoverMode::Unplanned, false).await.expect("gate");
            assert_eq!(
                step(&p, PromoterAction::Record, FailoverMode::Unplanned, false).await.err(),
                Some(ErrorName::NotReady)
            );
            assert_eq!(p.registry.strong_read().await.proven().map(|c| c.epoch), Ok(WriterEpoch(1)));
            // Another handover won meanwhile: every step of this one is stale.
            p.registry.set(WriterClaim::active(WriterEpoch(3), region("us-east-1")));
            for action in [PromoterAction::Gate, PromoterAction::Record] {
                assert_eq!(step(&p, action, FailoverMode::Unplanned, false).await.err(), Some(ErrorName::StaleEpoch));
            }
        }

        /// #17 schedule 7: invoking the promoter directly with `promote` failed the database
        /// over (with data loss allowed) with no lock, no lag gate and no epoch check. Fence and
        /// promote now run only inside an execution that holds the lock and whose gate step
        /// recorded its decision for this epoch and target.
        #[tokio::test]
        async fn fence_and_promote_run_only_inside_a_gated_execution() {
            use PromoterAction::*;
            let p = promoter();
            let unplanned = FailoverMode::Unplanned;
            let named = |action, execution: Option<&str>| PromoteRequest {
                action,
                target_region: region("us-east-2"),
                mode: unplanned,
                expected_epoch: WriterEpoch(1),
                allow_data_loss: true,
                ignore_cooldown: false,
                execution: execution.map(str::to_owned),
            };
            let refused = |a: Result<Answer, SwitchyardError>| a.err().map(|e| e.name.as_str());
            for action in [Fence, Promote] {
                assert_eq!(
                    refused(p.handle(named(action, None)).await),
                    Some("Ungated"),
                    "{action:?} without an execution"
                );
                assert_eq!(
                    refused(p.handle(named(action, Some("x"))).await),
                    Some("Ungated"),
                    "{action:?} without the lock"
                );
            }
            begin(&p, "x").await;
            for action in [Fence, Promote] {
                assert_eq!(
                    refused(p.handle(named(action, Some("x"))).await),
                    Some("Ungated"),
                    "{action:?} before the gate"
                );
            }
            assert_eq!(p.engine.promotions_started(), 0);
            p.handle(named(Gate, Some("x"))).await.expect("gate");
            p.handle(named(Fence, Some("x"))).await.expect("fence after the gate");
            p.handle(named(Promote, Some("x"))).await.expect("promote after the gate");
            // Another execution, without the lock, still may not.
            assert_eq!(refused(p.handle(named(Promote, Some("y"))).await), Some("Ungated"));
            // Nor record: the step that moves the writer (review of this change).
            for execution in [None, Some("y")] {
                assert_eq!(refused(p.handle(named(Record, execution)).await), Some("Ungated"), "{execution:?}");
            }
            assert_eq!(p.registry.strong_read().await.proven().map(|c| c.epoch), Ok(WriterEpoch(1)));
        }

        /// us-east-1's order API drops us-east-2 from the eligible set (a recorded `Ineligible`).
        async fn drop_us_east_2(p: &Twin) {
            use switchyard_core::ingress::{Eligibility, EligibilityStore, Standing};
            let dropped = Eligibility {
                version: 1,
                epoch: WriterEpoch(1),
                standby: region("us-east-2"),
                standing: Standing::Ineligible,
            };
            p.registry.write(0, dropped).await.expect("dropped");
        }

        /// #16's open race: the Gate saw us-east-2 eligible; before the bump the writer's region
        /// dropped it (recorded `Ineligible`: orders acknowledged since are in us-east-1's
        /// queues only). Recording us-east-2 as writer then would strand them if us-east-1 is
        /// lost for good: `record` checks the standing again, just before the bump.
        #[tokio::test]
        async fn record_refuses_a_target_dropped_from_the_eligible_set_after_the_gate() {
            use PromoterAction::*;
            let p = promoter();
            let unplanned = FailoverMode::Unplanned;
            p.engine.set_lag_from_target(lag(5.0));
            step(&p, Gate, unplanned, false).await.expect("gate: eligible");
            assert_eq!(state(&step(&p, Promote, unplanned, false).await.expect("promote")), Some(StepState::Done));
            drop_us_east_2(&p).await;
            assert_eq!(step(&p, Record, unplanned, false).await.err(), Some(ErrorName::NotReady));
            assert_eq!(p.registry.strong_read().await.proven().map(|c| c.epoch), Ok(WriterEpoch(1)), "bumped");
            // An operator who accepts the loss says so.
            assert!(matches!(step(&p, Record, unplanned, true).await, Ok(Answer::Record(_))));
        }

        /// #18: an old writer that answers, but only with an error (out of connection slots,
        /// memory or disk; rejecting the promoter's login; its database dropped), is as good as
        /// gone in an unplanned failover: the gate bounds the lag from the replica and the
        /// fence is skipped for the re-fence, instead of failing the failover on the failed
        /// region's behaviour. A planned switchover needs that writer and stops.
        #[tokio::test]
        async fn a_sick_old_writer_does_not_block_an_unplanned_failover() {
            use PromoterAction::*;
            let sicknesses = [
                (ErrorName::Throttled, "53300: sorry, too many clients already"),
                (ErrorName::Throttled, "53200: out of memory"),
                (ErrorName::Throttled, "53100: could not extend file: No space left on device"),
                (ErrorName::AccessDenied, "28000: pg_hba.conf rejects connection"),
                (ErrorName::ResourceNotFound, "3D000: database \"orders\" does not exist"),
            ];
            for (name, message) in sicknesses {
                let p = promoter();
                p.engine.set_sick(&region("us-east-1"), Some(SwitchyardError::new(name, message)));
                p.engine.set_lag_from_target(lag(5.0));
                let unplanned = FailoverMode::Unplanned;
                let gate = step(&p, Gate, unplanned, false).await;
                let Ok(Answer::Gate(g)) = gate else { panic!("{message}: gate {gate:?}") };
                assert_eq!(g.result.lag_measured_from, Some(LagSource::Target), "{message}");
                let fence = step(&p, Fence, unplanned, false).await;
                let Ok(Answer::Fence(f)) = fence else { panic!("{message}: fence {fence:?}") };
                assert_eq!(f.result.state, FenceState::Unreachable, "{message}");
                assert_eq!(state(&step(&p, Promote, unplanned, false).await.expect("promote")), Some(StepState::Done));
                // The target's own errors are no evidence about the old writer.
                let p = promoter();
                p.engine.set_sick(&region("us-east-2"), Some(SwitchyardError::new(name, message)));
                assert!(step(&p, Gate, unplanned, false).await.is_err(), "{message}: gate with a sick target");
                // Planned: the switchover needs the old writer, and stops.
                let p = promoter();
                p.engine.set_sick(&region("us-east-1"), Some(SwitchyardError::new(name, message)));
                assert_eq!(step(&p, Gate, FailoverMode::Planned, false).await.err(), Some(name), "{message}: planned");
            }
        }

        /// #18: a planned switchover into a standby that cannot catch up (its replay paused, its
        /// stream broken, or not a replica at all) stops at the gate, before the fence: it
        /// would otherwise fence the only writer and wait for a catch-up that never comes.
        #[tokio::test]
        async fn a_switchover_into_a_standby_that_cannot_catch_up_stops_before_the_fence() {
            let p = promoter();
            p.engine.set_replay_stalled(true);
            assert_eq!(
                step(&p, PromoterAction::Gate, FailoverMode::Planned, false).await.err(),
                Some(ErrorName::NotReady)
            );
            assert_eq!(p.engine.accepts_writes(&region("us-east-1")).await, Ok(true));
        }

        /// Begins execution `name` of a planned switchover into us-east-2.
        async fn begin_planned(p: &Twin, name: &str) {
            let begin = serde_json::json!({
                "action": "begin", "mode": "planned", "entry": "operator", "execution": name,
                "startedAt": Timestamp::now().to_string(),
            });
            p.handle_any(begin).await.expect("begin");
        }

        /// Ends execution "flow" as failed, as the state machine's EndFailed does.
        async fn end_failed(p: &Twin) -> EndAnswer {
            let end = serde_json::json!({
                "action": "end", "execution": "flow", "outcome": "failed",
                "error": { "Error": "StepTimedOut", "Cause": "the catch-up was not done after 30 polls" },
            });
            match p.handle_any(end).await {
                Ok(Answer::End(a)) => *a,
                other => panic!("end: {other:?}"),
            }
        }

        /// #18: a planned switchover that fenced its writer and failed before promoting the
        /// target (here: the target stopped replaying after the gate, and the catch-up's polls
        /// ran out) lifts the fence on its way out, and its page says so. Once a promotion was
        /// requested, the fence stays and the page says what to check.
        #[tokio::test]
        async fn a_switchover_that_fails_before_promotion_lifts_its_fence() {
            use PromoterAction::*;
            let planned = FailoverMode::Planned;
            let p = promoter();
            begin_planned(&p, "flow").await;
            step(&p, Gate, planned, false).await.expect("gate");
            p.engine.set_replay_stalled(true);
            step(&p, Fence, planned, false).await.expect("fence");
            assert_eq!(p.engine.accepts_writes(&region("us-east-1")).await, Ok(false), "fenced");
            assert_eq!(state(&step(&p, CatchUp, planned, false).await.expect("poll")), Some(StepState::InProgress));
            let end = end_failed(&p).await;
            assert_eq!(p.engine.accepts_writes(&region("us-east-1")).await, Ok(true), "{}", end.message);
            assert!(end.timeline.fence_lifted.is_some() && end.message.contains("lifted the fence"), "{}", end.message);

            let p = promoter();
            p.engine.set_polls(5, 0);
            begin_planned(&p, "flow").await;
            step(&p, Gate, planned, false).await.expect("gate");
            step(&p, Fence, planned, false).await.expect("fence");
            step(&p, CatchUp, planned, false).await.expect("caught up");
            assert_eq!(state(&step(&p, Promote, planned, false).await.expect("poll")), Some(StepState::InProgress));
            let end = end_failed(&p).await;
            assert_eq!(p.engine.accepts_writes(&region("us-east-1")).await, Ok(false), "lifted during a promotion");
            assert!(
                end.message.contains("a promotion of us-east-2 was requested") && end.message.contains("was fenced"),
                "{}",
                end.message
            );
        }

        /// Review of #18: an unplanned failover whose promotion was requested and whose record
        /// then failed paged "did not move", although the target's database may write.
        #[tokio::test]
        async fn a_failure_after_the_promotion_request_pages_what_to_check() {
            use PromoterAction::*;
            let p = promoter();
            let unplanned = FailoverMode::Unplanned;
            p.engine.set_reachable(&region("us-east-1"), false);
            p.engine.set_lag_from_target(lag(5.0));
            step(&p, Gate, unplanned, false).await.expect("gate");
            step(&p, Fence, unplanned, false).await.expect("fence: unreachable");
            step(&p, Promote, unplanned, false).await.expect("promote");
            let end = end_failed(&p).await;
            assert!(end.message.contains("a promotion of us-east-2 was requested"), "{}", end.message);
            assert!(!end.message.contains("did not move"), "{}", end.message);
        }

        /// #18: an execution that died holding the lock (timed out, aborted) made every new start
        /// for its incident bow out as a duplicate for up to 15 minutes. Its lease lapses
        /// unrenewed after LOCK_LEASE; a new start takes the lock over, says so, and closes the
        /// dead execution's timeline; a late step of the dead execution is refused.
        #[tokio::test]
        async fn a_lock_its_execution_stopped_renewing_is_taken_over_loudly() {
            use switchyard_core::{ledger::LOCK_LEASE, steps::BeginOutcome};
            let p = promoter();
            begin(&p, "dead").await;
            // As if "dead" had begun LOCK_LEASE and a minute ago, and never renewed since.
            let held = p.ledger.held_lock().await.expect("read").expect("held");
            let ago =
                |t: Timestamp| Timestamp::from_unix_millis(t.unix_millis() - LOCK_LEASE.as_millis() as i64 - 60_000);
            let stale = Lock { acquired_at: ago(held.acquired_at), expires_at: ago(held.expires_at), ..held };
            assert!(p.ledger.renew(&stale).await.expect("rewrite"));
            let again = serde_json::json!({
                "action": "begin", "mode": "unplanned", "entry": "automatic", "execution": "again",
                "startedAt": Timestamp::now().to_string(),
            });
            let Ok(Answer::Begin(b)) = p.handle_any(again).await else { panic!("begin") };
            assert_eq!(b.outcome, BeginOutcome::Acquired, "{b:?}");
            assert!(
                b.cause.as_deref().is_some_and(|c| c.contains("took over the failover lock of execution dead")),
                "{b:?}"
            );
            let dead = p.ledger.timeline("dead").await.expect("read").expect("timeline");
            assert_eq!(dead.status, ExecutionStatus::Failed, "{dead:?}");
            let late = PromoteRequest {
                action: PromoterAction::Gate,
                target_region: region("us-east-2"),
                mode: FailoverMode::Unplanned,
                expected_epoch: WriterEpoch(1),
                allow_data_loss: false,
                ignore_cooldown: false,
                execution: Some("dead".to_owned()),
            };
            assert_eq!(p.handle(late).await.err().map(|e| e.name), Some(ErrorName::Ungated));
        }

        /// Every step renews its execution's lease on the lock, within LOCK_TTL of the start.
        #[tokio::test]
        async fn each_step_renews_the_lock() {
            let p = promoter();
            begin(&p, "flow").await;
            let first = p.ledger.held_lock().await.expect("read").expect("held");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            step(&p, PromoterAction::Gate, FailoverMode::Unplanned, false).await.expect("gate");
            let renewed = p.ledger.held_lock().await.expect("read").expect("held");
            assert!(renewed.expires_at > first.expires_at, "{first:?} then {renewed:?}");
            assert_eq!(renewed.acquired_at, first.acquired_at);
        }

        /// Review of this change: in a planned switchover the old writer is fenced by the time
        /// `record` runs; refusing then would leave nobody applying. The old region is alive:
        /// the new writer's catch-up takes in what it parked, so `record` goes on.
        #[tokio::test]
        async fn a_planned_switchover_records_even_if_the_target_was_dropped_after_the_gate() {
            use PromoterAction::*;
            let p = promoter();
            let planned = FailoverMode::Planned;
            step(&p, Gate, planned, false).await.expect("gate");
            step(&p, Fence, planned, false).await.expect("fence");
            for action in [CatchUp, Promote] {
                while state(&step(&p, action, planned, false).await.expect("poll")) != Some(StepState::Done) {}
            }
            drop_us_east_2(&p).await;
            let Ok(Answer::Record(r)) = step(&p, Record, planned, false).await else { panic!("record refused") };
            assert!(r.result.changed);
        }

        /// Review C2 (amplifier) / #17 schedule 4: the epoch write succeeded, then the handover
        /// write was throttled. The retry saw `AlreadyDone` and skipped the handover (so the
        /// cooldown was lost) and the timeline's marks.
        #[tokio::test]
        async fn a_record_retried_after_a_partial_failure_finishes_the_handover() {
            use PromoterAction::*;
            let p = promoter();
            let unplanned = FailoverMode::Unplanned;
            p.engine.set_lag_from_target(lag(5.0));
            step(&p, Gate, unplanned, false).await.expect("gate");
            assert_eq!(state(&step(&p, Promote, unplanned, false).await.expect("promote")), Some(StepState::Done));
            p.ledger.throttle_next_handovers(1);
            assert_eq!(step(&p, Record, unplanned, false).await.err(), Some(ErrorName::Throttled));
            assert_eq!(p.registry.strong_read().await.proven().map(|c| c.epoch), Ok(WriterEpoch(2)), "bumped");
            let Ok(Answer::Record(r)) = step(&p, Record, unplanned, false).await else { panic!("record retried") };
            assert!(!r.result.changed);
            let last = p.ledger.last_handover().await.expect("read").map(|h| (h.epoch, h.writer));
            assert_eq!(last, Some((WriterEpoch(2), region("us-east-2"))), "the handover (the cooldown's start)");
        }

        /// #18: the replica's own lag bound is its clock minus its last replayed commit's
        /// time on the writer's clock. With the writer's clock 50 s ahead (as the replica's
        /// WAL receiver measured it; the probe publishes it), a bound of 20 s is really 70 s:
        /// above the 60 s budget, refused. It passed before.
        #[tokio::test]
        async fn a_writer_clock_ahead_does_not_sneak_a_lag_past_the_gate() {
            use aws_sdk_cloudwatch::{
                operation::get_metric_data::GetMetricDataOutput, primitives::DateTime, types::MetricDataResult,
            };
            use aws_smithy_mocks::{RuleMode, mock, mock_client};
            let offsets = |values: &'static [f64]| {
                mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_output(move || {
                    let now = DateTime::from(SystemTime::now());
                    GetMetricDataOutput::builder()
                        .metric_data_results(
                            MetricDataResult::builder()
                                .id("newest")
                                .set_values(Some(values.to_vec()))
                                .set_timestamps(Some(values.iter().map(|_| now).collect()))
                                .build(),
                        )
                        .build()
                })
            };
            let unplanned = FailoverMode::Unplanned;
            // An hour's figures: the largest counts.
            let ahead = offsets(&[3.0, 50.0, 1.0]);
            let p = promoter().with_writer_clocks(mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[&ahead]));
            // us-east-1 is gone: the lag comes from the replica alone.
            p.engine.set_reachable(&region("us-east-1"), false);
            p.engine.set_lag_from_target(lag(20.0));
            assert_eq!(step(&p, PromoterAction::Gate, unplanned, false).await.err(), Some(ErrorName::LagAboveBudget));
            // A writer clock behind the replica's only overstates the bound: nothing is taken off.
            let behind = offsets(&[-50.0]);
            let p = promoter().with_writer_clocks(mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[&behind]));
            p.engine.set_reachable(&region("us-east-1"), false);
            p.engine.set_lag_from_target(lag(20.0));
            let Ok(Answer::Gate(g)) = step(&p, PromoterAction::Gate, unplanned, false).await else { panic!("gate") };
            assert_eq!(g.result.gate.and_then(|d| d.lag).map(|l| l.seconds), Some(20.0));
        }

        /// #18: Step Functions' status change of an execution this ledger never began (another
        /// state machine's) changes nothing; one it holds open is closed.
        #[tokio::test]
        async fn an_abandoned_execution_the_ledger_does_not_hold_open_is_left_alone() {
            let mut p = promoter();
            p.settle = std::time::Duration::ZERO;
            let event = |name: &str| {
                serde_json::json!({
                    "source": "aws.states", "detail-type": EXECUTION_STATUS_CHANGE,
                    "detail": { "name": name, "status": "ABORTED" },
                })
            };
            let Ok(Answer::Ignored { .. }) = p.handle_any(event("someone-else")).await else { panic!("not ignored") };
            begin(&p, "mine").await;
            let Ok(Answer::End(closed)) = p.handle_any(event("mine")).await else { panic!("not closed") };
            assert_eq!(
                (closed.timeline.status, closed.timeline.error.as_deref(), closed.lock_released),
                (ExecutionStatus::Failed, Some("ExecutionAborted"), true)
            );
            // A retried delivery (its page failed) closes nothing more and pages again.
            let Ok(Answer::End(again)) = p.handle_any(event("mine")).await else { panic!("not paged again") };
            assert_eq!((again.timeline.status, again.lock_released), (ExecutionStatus::Failed, false));
        }

        /// A failback to us-east-1 a moment ago: the cooldown runs.
        async fn handed_over_just_now(p: &Twin) {
            let recent = HandoverRecord {
                epoch: WriterEpoch(1),
                writer: region("us-east-1"),
                at: Timestamp::now(),
                execution: "failback".into(),
                mode: FailoverMode::Planned,
            };
            p.ledger.record_handover(&recent).await.expect("recorded");
        }

        #[tokio::test]
        async fn the_cooldown_holds_back_automatic_failover_only() {
            let p = promoter();
            handed_over_just_now(&p).await;
            let unplanned = step(&p, PromoterAction::Gate, FailoverMode::Unplanned, false).await;
            assert_eq!(unplanned.err(), Some(ErrorName::CooldownActive));
            assert!(step(&p, PromoterAction::Gate, FailoverMode::Planned, false).await.is_ok());
        }

        /// #18: the new writer fails within the cooldown. The automatic entry refuses the
        /// override; the operator entry takes it with a reason, the gate lets the failover
        /// through, and the timeline keeps who-said-why.
        #[tokio::test]
        async fn an_operator_fails_over_within_the_cooldown_through_the_operator_entry_only() {
            let p = promoter();
            p.engine.set_lag_from_target(lag(5.0));
            handed_over_just_now(&p).await;
            let begin = |execution: &str, entry: &str, reason: Option<&str>| {
                serde_json::json!({
                    "action": "begin", "mode": "unplanned", "entry": entry, "execution": execution,
                    "startedAt": Timestamp::now().to_string(),
                    "input": { "trigger": "manual", "reason": reason, "ignoreCooldown": true },
                })
            };
            let automatic = p.handle_any(begin("auto", "automatic", Some("flapping"))).await.err();
            assert_eq!(automatic.map(|e| e.name), Some(ErrorName::InvalidInput));
            let no_reason = p.handle_any(begin("op", "operator", None)).await.err();
            assert_eq!(no_reason.map(|e| e.name), Some(ErrorName::InvalidInput));
            let why = "INC-2291: us-east-1 lost its database 20 min after the failback";
            let Ok(Answer::Begin(b)) = p.handle_any(begin("op", "operator", Some(why))).await else { panic!("begin") };
            assert!(b.ignore_cooldown, "{b:?}");
            let gate = PromoteRequest {
                action: PromoterAction::Gate,
                target_region: region("us-east-2"),
                mode: FailoverMode::Unplanned,
                expected_epoch: WriterEpoch(1),
                allow_data_loss: b.allow_data_loss,
                ignore_cooldown: b.ignore_cooldown,
                execution: Some("op".to_owned()),
            };
            let passed = p.handle(gate).await;
            assert!(passed.is_ok(), "the operator's failover within the cooldown: {:?}", passed.err());
            let t = p.ledger.timeline("op").await.expect("read").expect("timeline");
            assert_eq!(
                (t.entry, t.reason.as_deref(), t.overrides.clone()),
                (Some(FailoverEntry::Operator), Some(why), vec!["ignoreCooldown".to_owned()])
            );
        }
    }

    mod aurora {
        use aws_sdk_cloudwatch::{operation::get_metric_data::GetMetricDataOutput, types::MetricDataResult};
        use aws_sdk_rds::{
            operation::{
                describe_global_clusters::DescribeGlobalClustersOutput,
                failover_global_cluster::FailoverGlobalClusterOutput,
            },
            types::{GlobalCluster, GlobalClusterMember},
        };
        use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
        use switchyard_core::{WriterClaim, ledger::InMemoryLedger, ports::InMemoryClaimStore};

        use switchyard_aws::aurora_engine::AuroraEngine;

        use super::*;

        const EAST1: &str = "arn:aws:rds:us-east-1:123456789012:cluster:switchyard-prod-us-east-1";
        const EAST2: &str = "arn:aws:rds:us-east-2:123456789012:cluster:switchyard-prod-us-east-2";

        fn config() -> PromoterConfig {
            let arns = format!(r#"{{"us-east-1":"{EAST1}","us-east-2":"{EAST2}"}}"#);
            PromoterConfig::from_lookup(env(&[
                (keys::ENVIRONMENT, "prod"),
                (keys::LOCAL_REGION, "us-east-2"),
                (keys::PRIMARY_REGION, "us-east-1"),
                (keys::STANDBY_REGION, "us-east-2"),
                (keys::CONTROL_TABLE, "switchyard-prod-control"),
                (keys::DB_ENGINE, "aurora"),
                (keys::GLOBAL_CLUSTER, "switchyard-prod"),
                (keys::DB_CLUSTER_ARNS, arns.as_str()),
            ]))
            .expect("aurora config")
        }

        fn lag_ms(values: &'static [f64]) -> Rule {
            mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_output(move || {
                GetMetricDataOutput::builder()
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("lag")
                            .set_values(Some(values.to_vec()))
                            // Stamped this minute: current figures.
                            .set_timestamps(Some(
                                values
                                    .iter()
                                    .map(|_| aws_sdk_cloudwatch::primitives::DateTime::from(SystemTime::now()))
                                    .collect(),
                            ))
                            .build(),
                    )
                    .build()
            })
        }

        fn writer_is(arn: &'static str) -> Rule {
            mock!(aws_sdk_rds::Client::describe_global_clusters).then_output(move || {
                let member = |a: &str| GlobalClusterMember::builder().db_cluster_arn(a).is_writer(a == arn).build();
                DescribeGlobalClustersOutput::builder()
                    .global_clusters(
                        GlobalCluster::builder()
                            .global_cluster_identifier("switchyard-prod")
                            .status("available")
                            .global_cluster_members(member(EAST1))
                            .global_cluster_members(member(EAST2))
                            .build(),
                    )
                    .build()
            })
        }

        fn promoter(rds: &[&Rule], cloudwatch: &[&Rule]) -> Promoter<InMemoryClaimStore, InMemoryLedger, AuroraEngine> {
            let config = config();
            let EngineConfig::Aurora { global_cluster, cluster_arns } = config.engine.clone() else { panic!("aurora") };
            let engine = AuroraEngine {
                global_cluster,
                cluster_arns,
                rds: mock_client!(aws_sdk_rds, RuleMode::MatchAny, rds),
                cloudwatch: mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, cloudwatch),
            };
            let claim = WriterClaim::active(WriterEpoch(1), "us-east-1".parse().expect("region"));
            Promoter::new(
                config,
                InMemoryClaimStore::new(claim).armed_for(&"us-east-2".parse().expect("region")),
                InMemoryLedger::default(),
                engine,
            )
        }

        fn request(action: PromoterAction, allow_data_loss: bool) -> PromoteRequest {
            PromoteRequest {
                action,
                target_region: "us-east-2".parse().expect("region"),
                mode: FailoverMode::Unplanned,
                expected_epoch: WriterEpoch(1),
                allow_data_loss,
                ignore_cooldown: false,
                execution: Some("x".to_owned()),
            }
        }

        /// Execution "x" has begun (the lock) and its gate decided (the timeline's mark).
        async fn gated(p: &Promoter<InMemoryClaimStore, InMemoryLedger, AuroraEngine>) {
            let begin = serde_json::json!({
                "action": "begin", "mode": "unplanned", "entry": "automatic", "execution": "x", "startedAt": Timestamp::now().to_string(),
            });
            p.handle_any(begin).await.expect("begin");
            let mut t = p.ledger.timeline("x").await.expect("read").expect("timeline");
            t.decided = Some(Timestamp::now());
            p.ledger.save_timeline(&t).await.expect("saved");
        }

        #[tokio::test]
        async fn the_lag_gate_reads_aurora_lag_from_cloudwatch() {
            // 90 s of lag against a 60 s budget: refused, then allowed with allowDataLoss.
            let p = promoter(&[], &[&lag_ms(&[90_000.0])]);
            gated(&p).await;
            let err = p.handle(request(PromoterAction::Gate, false)).await.expect_err("above budget");
            assert_eq!(err.name, ErrorName::LagAboveBudget, "{err}");
            assert!(err.message.contains("250 orders in the lag"), "{err}");
            let Answer::Gate(ok) = p.handle(request(PromoterAction::Gate, true)).await.expect("allowed") else {
                panic!("not a gate answer")
            };
            assert!(ok.result.gate.is_some_and(|g| g.data_loss_accepted));
            // No datapoint: unknown lag, refused.
            let p = promoter(&[], &[&lag_ms(&[])]);
            gated(&p).await;
            let err = p.handle(request(PromoterAction::Gate, false)).await.expect_err("unknown");
            assert!(err.name == ErrorName::LagAboveBudget && err.message.contains("unknown"), "{err}");
            // Within budget: passes.
            let p = promoter(&[], &[&lag_ms(&[800.0])]);
            gated(&p).await;
            assert!(p.handle(request(PromoterAction::Gate, false)).await.is_ok());
        }

        #[tokio::test]
        async fn promote_fails_over_once_and_record_waits_for_the_writer() {
            let failover = mock!(aws_sdk_rds::Client::failover_global_cluster)
                .then_output(|| FailoverGlobalClusterOutput::builder().build());
            let before = writer_is(EAST1);
            let p = promoter(&[&before, &failover], &[]);
            gated(&p).await;
            let fenced = p.handle(request(PromoterAction::Fence, false)).await.expect("done");
            assert!(matches!(fenced, Answer::Fence(f) if f.result.state == FenceState::Done));
            let promoted = p.handle(request(PromoterAction::Promote, false)).await.expect("promote");
            assert!(matches!(promoted, Answer::Promote(p) if p.result.state == StepState::InProgress));
            assert_eq!(failover.num_calls(), 1);
            // The target is not the writer yet: recording must wait.
            let err = p.handle(request(PromoterAction::Record, false)).await.expect_err("not yet");
            assert_eq!(err.name, ErrorName::NotReady);

            let after = writer_is(EAST2);
            let p = promoter(&[&after, &failover], &[]);
            gated(&p).await;
            let promoted = p.handle(request(PromoterAction::Promote, false)).await.expect("done");
            assert!(matches!(promoted, Answer::Promote(p) if p.result.state == StepState::Done));
            assert_eq!(failover.num_calls(), 1, "a finished failover was started again");
            let Answer::Record(recorded) = p.handle(request(PromoterAction::Record, false)).await.expect("record")
            else {
                panic!("not a record answer")
            };
            assert!(recorded.result.changed);
            assert_eq!(recorded.result.claim.writer.as_str(), "us-east-2");
        }
    }
}
