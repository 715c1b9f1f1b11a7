//! The ledger a failover or switchover execution keeps, in the control table of the region it
//! promotes: the **lock** (one execution at a time), the **cooldown** (no automatic failover
//! soon after a handover) and the **timeline** (the evidence: detected, decided, promoted,
//! traffic moved, first order applied, with RTO and RPO figures).
//!
//! Pure rules here; `switchyard_aws::control_table` stores them, the rds-promoter applies them
//! (`begin`/`end` actions), the state machines sequence them.

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    ErrorName, FailoverMode, GateDecision, Region, SwitchyardError, WriterEpoch, order::Timestamp, ports::PortResult,
};

/// Names one incident: "the writer of epoch N is being replaced by region R". Every alarm of
/// one outage maps to the same incident, so a storm of starts converges on one execution
/// however the executions are named.
pub fn incident(expected: WriterEpoch, target: &Region) -> String {
    format!("epoch-{expected}-to-{target}")
}

/// The incident the promoter's scheduled re-fence holds the lock under, for a minute at most:
/// a `begin` that meets it waits (a transient error), it is no failover of its own.
pub fn refence_incident(peer: &Region) -> String {
    format!("{REFENCE_PREFIX}{peer}")
}

const REFENCE_PREFIX: &str = "refence-";

/// Whether a lock's incident is the re-fence's ([`refence_incident`]).
pub fn is_refence(incident: &str) -> bool {
    incident.starts_with(REFENCE_PREFIX)
}

/// How long a lock is held at most: the state machines' `TimeoutSeconds` (a contract test
/// holds them equal), so a lock outlives no execution.
pub const LOCK_TTL: Duration = Duration::from_secs(900);

/// How long a lock lives without its execution renewing it (#18). `begin` takes it for this
/// long and every promoter step of the owning execution renews it (within [`LOCK_TTL`] of
/// its acquisition), so an execution that timed out or was aborted blocks its incident for
/// minutes, not a quarter of an hour: a new start then takes it over, loudly. Longer than the
/// longest stretch of a state machine without a promoter step (its bounded traffic and
/// consumer polls after `Activate`; a contract test checks it).
pub const LOCK_LEASE: Duration = Duration::from_secs(300);

/// The failover lock as stored. It expires, so an execution that died holding it (timed out,
/// aborted) cannot block every later failover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lock {
    /// The execution name.
    pub owner: String,
    pub incident: String,
    pub acquired_at: Timestamp,
    pub expires_at: Timestamp,
}

impl Lock {
    /// The lock `owner` takes at `now` for `incident`, for one [`LOCK_LEASE`].
    pub fn take(owner: &str, incident: &str, now: Timestamp) -> Lock {
        Lock {
            owner: owner.to_owned(),
            incident: incident.to_owned(),
            acquired_at: now,
            expires_at: Timestamp::from_unix_millis(now.unix_millis() + LOCK_LEASE.as_millis() as i64),
        }
    }

    /// This lock renewed at `now`: another lease, never past [`LOCK_TTL`] after it was taken.
    pub fn renewed(&self, now: Timestamp) -> Lock {
        let lease_end = now.unix_millis() + LOCK_LEASE.as_millis() as i64;
        let last = self.acquired_at.unix_millis() + LOCK_TTL.as_millis() as i64;
        Lock { expires_at: Timestamp::from_unix_millis(lease_end.min(last)), ..self.clone() }
    }

    /// Whether `owner` may write the lock over `held` at `now`: free, its own, or expired.
    pub fn may_take(held: Option<&Lock>, owner: &str, now: Timestamp) -> bool {
        held.is_none_or(|h| h.owner == owner || h.expires_at <= now)
    }

    /// What a refused acquisition means: another execution already handles this incident
    /// (the caller bows out quietly), or another incident holds the lock (refused, loudly).
    pub fn refusal(held: &Lock, incident: &str) -> LockOutcome {
        if held.incident == incident {
            LockOutcome::Duplicate { owner: held.owner.clone() }
        } else {
            LockOutcome::HeldBy { owner: held.owner.clone(), incident: held.incident.clone() }
        }
    }
}

/// Outcome of trying to take the failover lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum LockOutcome {
    Acquired,
    /// Another execution holds the lock for the same incident: it does the work.
    Duplicate {
        owner: String,
    },
    /// Another incident holds the lock.
    HeldBy {
        owner: String,
        incident: String,
    },
}

/// The last completed handover: when the writer role last moved. The cooldown counts from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandoverRecord {
    pub epoch: WriterEpoch,
    pub writer: Region,
    pub at: Timestamp,
    pub execution: String,
    pub mode: FailoverMode,
}

/// Which state machine an execution runs in, as its deployment fixed it (the definition's
/// `${FailoverEntry}` substitution), never as its input says: Step Functions authorizes
/// `StartExecution` per state machine, not per input field, so the overrides a person may give
/// need a state machine of their own that only operators may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailoverEntry {
    /// `failover`: started by the failover alarm's rule (or by hand); takes no override.
    Automatic,
    /// `operator-failover` and `switchover`: started only by the operator role; an override
    /// needs a reason, which the timeline keeps (CloudTrail keeps who).
    Operator,
}

impl FailoverEntry {
    pub const fn as_str(self) -> &'static str {
        match self {
            FailoverEntry::Automatic => "automatic",
            FailoverEntry::Operator => "operator",
        }
    }
}

/// What an execution's input may override, each a person's decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Fail over above the RPO budget, or into a standby that may lack acknowledged orders.
    pub allow_data_loss: bool,
    /// Fail over within the cooldown (the new writer failed soon after the last handover).
    pub ignore_cooldown: bool,
}

impl Overrides {
    /// The names of those given, as the input spells them.
    pub fn names(&self) -> Vec<String> {
        [(self.allow_data_loss, "allowDataLoss"), (self.ignore_cooldown, "ignoreCooldown")]
            .into_iter()
            .filter(|(set, _)| *set)
            .map(|(_, name)| name.to_owned())
            .collect()
    }

    /// Whether `entry` may start an execution of `mode` with these overrides and `reason`:
    /// the automatic entry takes none; an unplanned operator failover says why it runs; a
    /// planned switchover has nothing to override (it never loses data, has no cooldown).
    pub fn check(&self, entry: FailoverEntry, mode: FailoverMode, reason: Option<&str>) -> Result<(), SwitchyardError> {
        let given = self.names();
        let invalid = |m: String| Err(SwitchyardError::new(ErrorName::InvalidInput, m));
        match (mode, entry) {
            (FailoverMode::Planned, _) if !given.is_empty() => {
                invalid(format!("a planned switchover never loses data and has no cooldown: drop {}", given.join(", ")))
            }
            (FailoverMode::Unplanned, FailoverEntry::Automatic) if !given.is_empty() => invalid(format!(
                "the automatic failover takes no override ({}): an operator starts the operator-failover \
                 state machine with a reason",
                given.join(", ")
            )),
            (FailoverMode::Unplanned, FailoverEntry::Operator) if reason.is_none_or(|r| r.trim().is_empty()) => {
                invalid("an operator failover needs a reason: say why in the input's reason".to_owned())
            }
            _ => Ok(()),
        }
    }
}

/// No automatic (unplanned) failover within this long of the last handover: an outage that
/// flaps must not bounce the writer between regions. Planned switchovers are a person's
/// decision and are not held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooldown(pub Duration);

impl Cooldown {
    pub const DEFAULT: Cooldown = Cooldown(Duration::from_secs(3600));

    pub fn check(
        &self,
        mode: FailoverMode,
        last: Option<&HandoverRecord>,
        now: Timestamp,
    ) -> Result<(), SwitchyardError> {
        let Some(last) = last else { return Ok(()) };
        if mode == FailoverMode::Planned {
            return Ok(());
        }
        let until = Timestamp::from_unix_millis(last.at.unix_millis() + self.0.as_millis() as i64);
        if now < until {
            return Err(SwitchyardError::new(
                ErrorName::CooldownActive,
                format!(
                    "the writer moved to {} at {} (epoch {}, execution {}); no automatic failover before {until} \
                     (cooldown {} s). A planned switchover is not held back",
                    last.writer,
                    last.at,
                    last.epoch,
                    last.execution,
                    self.0.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    /// Another execution handles the same incident.
    Duplicate,
    /// This region already holds the writer role: nothing to do.
    NothingToDo,
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        f.write_str(&s)
    }
}

/// What the data loss of an execution amounts to, as the gate saw it.
///
/// Two figures, because the acknowledgement contract separates them: the **database** loses
/// the old writer's last `lag_seconds` (its RPO; about `orders_in_lag` orders, each applied
/// again from the new writer's queue), while **acknowledged orders at risk** are those not
/// durable in the new writer's region: zero by construction when the target may take over
/// (eligible: every acknowledged order is in its queue or its replica), unknown when an
/// operator overrode an ineligible target with `allowDataLoss`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RpoFigure {
    /// Replication lag at decision time; `None` when it could not be measured.
    pub lag_seconds: Option<f64>,
    pub orders_in_lag: Option<u64>,
    pub orders_at_risk: Option<u64>,
    pub data_loss_accepted: bool,
}

impl RpoFigure {
    /// The figure of a gate decision for a target that `may_take_over` (its standing) or not.
    pub fn new(g: &GateDecision, may_take_over: bool) -> Self {
        let planned = g.mode == FailoverMode::Planned;
        RpoFigure {
            // Planned: the replica catches up before promotion, nothing is lost.
            lag_seconds: if planned { Some(0.0) } else { g.lag.as_ref().map(|l| l.seconds) },
            orders_in_lag: if planned { Some(0) } else { g.orders_in_lag },
            orders_at_risk: may_take_over.then_some(0),
            data_loss_accepted: g.data_loss_accepted || !may_take_over,
        }
    }
}

/// The evidence of one execution. Marks are filled in as the execution passes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    pub execution: String,
    pub incident: String,
    pub mode: FailoverMode,
    pub from: Region,
    pub to: Region,
    pub status: ExecutionStatus,
    /// The outage was detected (the alarm's state change) or the request was made.
    pub detected: Timestamp,
    /// The gate passed: the decision to move the writer.
    pub decided: Option<Timestamp>,
    /// This execution fenced the old writer (it refuses writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced: Option<Timestamp>,
    /// The first promotion request: from here the target may become a writer at any moment,
    /// so the old writer's fence is never lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_started: Option<Timestamp>,
    /// A planned switchover that failed before any promotion lifted its fence: the old
    /// writer accepts writes again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_lifted: Option<Timestamp>,
    /// The execution whose expired lock this one took over (it had stopped renewing it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_over_from: Option<String>,
    /// Which state machine ran it (absent in timelines written before there were two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<FailoverEntry>,
    /// Why, as the input said; an operator failover always says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The overrides the operator gave ([`Overrides::names`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// The new writer accepts writes and its epoch is recorded.
    pub promoted: Option<Timestamp>,
    pub epoch: Option<WriterEpoch>,
    /// Traffic moved: Route 53 answers with the new writer's record, at the latest
    /// ([`crate::dns::traffic_moved`]; a model's bound, which may lie after `ended`). Written
    /// as `switched` before #18, when it was the switch call's time.
    #[serde(alias = "switched")]
    pub traffic_moved: Option<Timestamp>,
    /// The new claim became active, a lease after the bump: from here its consumer applies.
    #[serde(default)]
    pub activated: Option<Timestamp>,
    /// The new writer's consumer applied its first order under the new epoch.
    pub first_order_applied: Option<Timestamp>,
    pub ended: Option<Timestamp>,
    /// **RTO**, defined once: from detected to traffic moved. Resolvers may keep the old
    /// answer up to the record's TTL more ([`crate::dns::RECORD_TTL`]); the first order applied
    /// is a figure of its own (`first_order_applied`).
    pub rto_seconds: Option<f64>,
    pub rpo: Option<RpoFigure>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Timeline {
    pub fn start(
        execution: &str,
        incident: &str,
        mode: FailoverMode,
        from: Region,
        to: Region,
        detected: Timestamp,
    ) -> Self {
        Timeline {
            execution: execution.to_owned(),
            incident: incident.to_owned(),
            mode,
            from,
            to,
            status: ExecutionStatus::Running,
            detected,
            decided: None,
            fenced: None,
            promotion_started: None,
            fence_lifted: None,
            took_over_from: None,
            entry: None,
            reason: None,
            overrides: Vec::new(),
            promoted: None,
            activated: None,
            epoch: None,
            traffic_moved: None,
            first_order_applied: None,
            ended: None,
            rto_seconds: None,
            rpo: None,
            error: None,
            cause: None,
        }
    }

    /// Closes the timeline. A status that is already final is kept (an `end` retried after
    /// it succeeded changes nothing).
    pub fn finish(&mut self, status: ExecutionStatus, now: Timestamp) {
        if self.status != ExecutionStatus::Running {
            return;
        }
        self.status = status;
        self.ended = Some(now);
        self.rto_seconds = self.traffic_moved.map(|s| s.seconds_since(&self.detected));
    }

    /// One line for the notification's subject.
    pub fn headline(&self, environment: &str) -> String {
        let what = match self.mode {
            FailoverMode::Unplanned => "failover",
            FailoverMode::Planned => "switchover",
        };
        format!("switchyard {environment}: {what} {} → {} {}", self.from, self.to, self.status)
    }
}

/// Where executions keep their ledger. Implementations: the control table (DynamoDB) and
/// [`InMemoryLedger`] for tests.
pub trait ExecutionLedger: Send + Sync {
    /// Takes the lock if [`Lock::may_take`] allows it, atomically; otherwise says why not.
    fn acquire(&self, lock: &Lock) -> impl Future<Output = PortResult<LockOutcome>> + Send;
    /// The lock as stored (strongly consistent), expired or not.
    fn held_lock(&self) -> impl Future<Output = PortResult<Option<Lock>>> + Send;
    /// Releases the lock if `owner` holds it; `false` when it did not (nothing changes).
    fn release(&self, owner: &str) -> impl Future<Output = PortResult<bool>> + Send;
    /// Writes `lock` (a renewal, [`Lock::renewed`]) only if its owner still holds the lock;
    /// `false` when it does not (released, or taken over after it expired).
    fn renew(&self, lock: &Lock) -> impl Future<Output = PortResult<bool>> + Send;
    fn last_handover(&self) -> impl Future<Output = PortResult<Option<HandoverRecord>>> + Send;
    fn record_handover(&self, record: &HandoverRecord) -> impl Future<Output = PortResult<()>> + Send;
    fn timeline(&self, execution: &str) -> impl Future<Output = PortResult<Option<Timeline>>> + Send;
    fn save_timeline(&self, timeline: &Timeline) -> impl Future<Output = PortResult<()>> + Send;
}

/// The reference semantics of [`ExecutionLedger`].
#[derive(Debug, Default)]
pub struct InMemoryLedger {
    state: std::sync::Mutex<LedgerState>,
}

#[derive(Debug, Default)]
struct LedgerState {
    lock: Option<Lock>,
    last: Option<HandoverRecord>,
    timelines: std::collections::BTreeMap<String, Timeline>,
    /// How many of the next `record_handover` calls are throttled (a test's fault).
    throttled_handovers: u32,
}

impl InMemoryLedger {
    fn state(&self) -> PortResult<std::sync::MutexGuard<'_, LedgerState>> {
        self.state.lock().map_err(|_| SwitchyardError::new(ErrorName::Internal, "ledger poisoned"))
    }

    /// The next `n` handover writes fail with `Throttled` (DynamoDB throttling mid-record).
    pub fn throttle_next_handovers(&self, n: u32) {
        if let Ok(mut s) = self.state() {
            s.throttled_handovers = n;
        }
    }
}

impl ExecutionLedger for InMemoryLedger {
    async fn acquire(&self, lock: &Lock) -> PortResult<LockOutcome> {
        let mut s = self.state()?;
        if Lock::may_take(s.lock.as_ref(), &lock.owner, lock.acquired_at) {
            s.lock = Some(lock.clone());
            return Ok(LockOutcome::Acquired);
        }
        Ok(s.lock.as_ref().map(|held| Lock::refusal(held, &lock.incident)).unwrap_or(LockOutcome::Acquired))
    }

    async fn held_lock(&self) -> PortResult<Option<Lock>> {
        Ok(self.state()?.lock.clone())
    }

    async fn release(&self, owner: &str) -> PortResult<bool> {
        let mut s = self.state()?;
        if s.lock.as_ref().is_some_and(|l| l.owner == owner) {
            s.lock = None;
            return Ok(true);
        }
        Ok(false)
    }

    async fn renew(&self, lock: &Lock) -> PortResult<bool> {
        let mut s = self.state()?;
        match &mut s.lock {
            Some(held) if held.owner == lock.owner => {
                *held = lock.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn last_handover(&self) -> PortResult<Option<HandoverRecord>> {
        Ok(self.state()?.last.clone())
    }

    async fn record_handover(&self, record: &HandoverRecord) -> PortResult<()> {
        let mut s = self.state()?;
        if s.throttled_handovers > 0 {
            s.throttled_handovers -= 1;
            return Err(SwitchyardError::new(ErrorName::Throttled, "handover write throttled"));
        }
        // Never let an older handover replace a newer one.
        if s.last.as_ref().is_none_or(|l| l.epoch <= record.epoch) {
            s.last = Some(record.clone());
        }
        Ok(())
    }

    async fn timeline(&self, execution: &str) -> PortResult<Option<Timeline>> {
        Ok(self.state()?.timelines.get(execution).cloned())
    }

    async fn save_timeline(&self, timeline: &Timeline) -> PortResult<()> {
        self.state()?.timelines.insert(timeline.execution.clone(), timeline.clone());
        Ok(())
    }
}

/// Behaviour every [`ExecutionLedger`] must show, checked against [`InMemoryLedger`] in this
/// crate's tests and against the control table on DynamoDB in the integration tests. The
/// ledger must start empty.
pub mod contract {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_800_000_000_000 + ms)
    }

    fn lock(owner: &str, incident: &str, acquired: i64) -> Lock {
        Lock {
            owner: owner.into(),
            incident: incident.into(),
            acquired_at: at(acquired),
            expires_at: at(acquired + LOCK_TTL.as_millis() as i64),
        }
    }

    fn check(what: &str, ok: bool) -> Result<(), String> {
        if ok { Ok(()) } else { Err(what.to_owned()) }
    }

    pub async fn execution_ledger(ledger: &impl ExecutionLedger) -> Result<(), String> {
        let e = |what: &'static str| move |err: SwitchyardError| format!("{what}: {err}");
        // The lock: one holder per incident, a duplicate for the same incident, a refusal for
        // another, taken over once expired, released only by its owner.
        let a = lock("a", "epoch-1-to-us-east-2", 0);
        check("a free lock is acquired", ledger.acquire(&a).await.map_err(e("acquire a"))? == LockOutcome::Acquired)?;
        check(
            "the owner takes its own lock again (a retried begin)",
            ledger.acquire(&a).await.map_err(e("acquire a again"))? == LockOutcome::Acquired,
        )?;
        let same = ledger.acquire(&lock("b", "epoch-1-to-us-east-2", 1)).await.map_err(e("acquire b"))?;
        check("the same incident is a duplicate", same == LockOutcome::Duplicate { owner: "a".into() })?;
        let other = ledger.acquire(&lock("c", "epoch-2-to-us-east-1", 2)).await.map_err(e("acquire c"))?;
        check(
            "another incident is held off",
            other == LockOutcome::HeldBy { owner: "a".into(), incident: "epoch-1-to-us-east-2".into() },
        )?;
        check("only the owner releases", !ledger.release("b").await.map_err(e("release b"))?)?;
        let renewed = Lock { expires_at: at(LOCK_TTL.as_millis() as i64 - 1), ..a.clone() };
        check("the owner renews", ledger.renew(&renewed).await.map_err(e("renew a"))?)?;
        let held = ledger.held_lock().await.map_err(e("held"))?;
        check("a renewal is stored", held.as_ref() == Some(&renewed))?;
        let impostor = Lock { owner: "b".into(), ..renewed.clone() };
        check("no one else renews", !ledger.renew(&impostor).await.map_err(e("renew b"))?)?;
        let late = lock("d", "epoch-2-to-us-east-1", LOCK_TTL.as_millis() as i64 + 1);
        check(
            "an expired lock is taken over",
            ledger.acquire(&late).await.map_err(e("acquire d"))? == LockOutcome::Acquired,
        )?;
        check("the expired owner releases nothing", !ledger.release("a").await.map_err(e("release a"))?)?;
        check(
            "the expired owner renews nothing once taken over",
            !ledger.renew(&renewed).await.map_err(e("renew a"))?,
        )?;
        check("the owner releases", ledger.release("d").await.map_err(e("release d"))?)?;
        check(
            "a released lock is not renewed back into being",
            !ledger.renew(&lock("d", "epoch-2-to-us-east-1", 7)).await.map_err(e("renew d"))?,
        )?;
        check(
            "a released lock is free",
            ledger.acquire(&lock("f", "x", 5)).await.map_err(e("acquire f"))? == LockOutcome::Acquired,
        )?;
        ledger.release("f").await.map_err(e("release f"))?;
        // The last handover: an older one never replaces a newer one.
        check("no handover yet", ledger.last_handover().await.map_err(e("last handover"))?.is_none())?;
        let handover = |epoch: u64| HandoverRecord {
            epoch: WriterEpoch(epoch),
            writer: "us-east-2".parse().unwrap_or_else(|_| unreachable!("known region")),
            at: at(epoch as i64),
            execution: format!("x{epoch}"),
            mode: FailoverMode::Unplanned,
        };
        ledger.record_handover(&handover(3)).await.map_err(e("record 3"))?;
        ledger.record_handover(&handover(2)).await.map_err(e("record 2"))?;
        let last = ledger.last_handover().await.map_err(e("last handover"))?;
        check("an older handover never wins", last.map(|h| h.epoch) == Some(WriterEpoch(3)))?;
        // Timelines: by execution, saved whole.
        let r = |s: &str| s.parse::<Region>().unwrap_or_else(|_| unreachable!("known region"));
        let mut t = Timeline::start("x3", "i", FailoverMode::Unplanned, r("us-east-1"), r("us-east-2"), at(0));
        ledger.save_timeline(&t).await.map_err(e("save"))?;
        t.finish(ExecutionStatus::Succeeded, at(9));
        ledger.save_timeline(&t).await.map_err(e("save again"))?;
        let read = ledger.timeline("x3").await.map_err(e("timeline"))?;
        check("a timeline reads back as saved last", read.as_ref() == Some(&t))?;
        check("an unknown execution has none", ledger.timeline("nope").await.map_err(e("timeline"))?.is_none())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_memory_ledger_keeps_the_contract() {
        crate::testing::now(contract::execution_ledger(&InMemoryLedger::default())).expect("contract");
    }

    /// Review of #16: the timeline called replication lag × order rate "orders at risk"; under
    /// the acknowledgement contract those orders are in the new writer's queue, and the orders
    /// at risk are the acknowledged ones not durable there: none for an eligible target.
    #[test]
    fn acknowledged_orders_at_risk_are_zero_for_an_eligible_target_and_unknown_otherwise() {
        use crate::{
            promotion::LagGate,
            replication::{ReplicationLag, RpoBudget},
        };
        let gate = LagGate { budget: RpoBudget(std::time::Duration::from_secs(60)), orders_per_hour: 10_000 };
        let lag = Some(ReplicationLag { bytes: 4096, seconds: 9.0 });
        let d = gate.check(FailoverMode::Unplanned, lag, false).expect("within budget");
        let eligible = RpoFigure::new(&d, true);
        assert_eq!(
            (eligible.orders_in_lag, eligible.orders_at_risk, eligible.data_loss_accepted),
            (Some(25), Some(0), false)
        );
        let overridden = RpoFigure::new(&d, false);
        assert_eq!((overridden.orders_at_risk, overridden.data_loss_accepted), (None, true));
        let planned = gate.check(FailoverMode::Planned, lag, false).expect("planned");
        assert_eq!(RpoFigure::new(&planned, true).orders_in_lag, Some(0));
    }

    /// #18: overrides only through the operator entry, with a reason; nothing to override
    /// in a planned switchover.
    #[test]
    fn overrides_come_only_through_the_operator_entry_with_a_reason() {
        use FailoverEntry::{Automatic, Operator};
        use FailoverMode::{Planned, Unplanned};
        let none = Overrides::default();
        let loss = Overrides { allow_data_loss: true, ..Overrides::default() };
        let both = Overrides { allow_data_loss: true, ignore_cooldown: true };
        let refused = |o: Overrides, e, m, r: Option<&str>| o.check(e, m, r).map_err(|e| (e.name, e.message)).err();
        assert_eq!(refused(none, Automatic, Unplanned, None), None);
        let automatic = refused(both, Automatic, Unplanned, Some("new writer down")).expect("refused");
        assert_eq!(automatic.0, ErrorName::InvalidInput);
        assert!(automatic.1.contains("allowDataLoss, ignoreCooldown") && automatic.1.contains("operator-failover"));
        assert!(refused(loss, Operator, Unplanned, None).is_some_and(|e| e.1.contains("reason")));
        assert!(refused(none, Operator, Unplanned, Some("  ")).is_some(), "a blank reason is none");
        assert_eq!(refused(both, Operator, Unplanned, Some("us-east-2 down 20 min after the failover")), None);
        assert!(refused(loss, Operator, Planned, Some("why")).is_some_and(|e| e.1.contains("drop allowDataLoss")));
        assert_eq!(refused(none, Operator, Planned, None), None, "a switchover needs no reason");
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn lock(owner: &str, incident: &str, acquired: &str, expires: &str) -> Lock {
        Lock { owner: owner.into(), incident: incident.into(), acquired_at: at(acquired), expires_at: at(expires) }
    }

    #[test]
    fn the_lock_admits_one_owner_until_it_expires() {
        let held = lock("a", "epoch-1-to-us-east-2", "2026-11-22T10:00:00Z", "2026-11-22T10:15:00Z");
        let t = at("2026-11-22T10:05:00Z");
        assert!(Lock::may_take(None, "b", t));
        assert!(Lock::may_take(Some(&held), "a", t), "its own lock, retried");
        assert!(!Lock::may_take(Some(&held), "b", t));
        assert!(Lock::may_take(Some(&held), "b", at("2026-11-22T10:15:00Z")), "expired");
        assert_eq!(Lock::refusal(&held, "epoch-1-to-us-east-2"), LockOutcome::Duplicate { owner: "a".into() });
        assert_eq!(
            Lock::refusal(&held, "epoch-2-to-us-east-1"),
            LockOutcome::HeldBy { owner: "a".into(), incident: "epoch-1-to-us-east-2".into() }
        );
    }

    #[test]
    fn the_cooldown_holds_back_automatic_failover_only() {
        let last = HandoverRecord {
            epoch: WriterEpoch(2),
            writer: "us-east-2".parse().expect("region"),
            at: at("2026-11-22T10:00:00Z"),
            execution: "x".into(),
            mode: FailoverMode::Unplanned,
        };
        let c = Cooldown(Duration::from_secs(600));
        let soon = at("2026-11-22T10:09:59Z");
        let err = c.check(FailoverMode::Unplanned, Some(&last), soon).expect_err("cooling down");
        assert_eq!(err.name, ErrorName::CooldownActive);
        assert!(err.message.contains("2026-11-22T10:10:00.000000Z"), "{err}");
        assert!(c.check(FailoverMode::Planned, Some(&last), soon).is_ok());
        assert!(c.check(FailoverMode::Unplanned, Some(&last), at("2026-11-22T10:10:00Z")).is_ok());
        assert!(c.check(FailoverMode::Unplanned, None, soon).is_ok());
    }

    #[test]
    fn a_finished_timeline_has_its_rto_and_stays_finished() {
        let (e1, e2) = ("us-east-1".parse().expect("region"), "us-east-2".parse().expect("region"));
        let mut t =
            Timeline::start("x", "epoch-1-to-us-east-2", FailoverMode::Unplanned, e1, e2, at("2026-11-22T10:00:00Z"));
        t.traffic_moved = Some(at("2026-11-22T10:00:41.500Z"));
        t.finish(ExecutionStatus::Succeeded, at("2026-11-22T10:00:45Z"));
        assert_eq!(t.rto_seconds, Some(41.5));
        t.finish(ExecutionStatus::Failed, at("2026-11-22T10:01:00Z"));
        assert_eq!(t.status, ExecutionStatus::Succeeded);
        assert_eq!(t.headline("prod"), "switchyard prod: failover us-east-1 → us-east-2 succeeded");
    }
}
