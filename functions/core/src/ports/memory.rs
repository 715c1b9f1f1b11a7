//! In-memory twins of the ports: the reference semantics the adapters must share (the
//! contract tests run against both), with the faults the domain's tests need. No I/O.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Mutex,
};

use super::{
    Applied, ClaimRead, ClaimStore, Delivery, FirstApplied, OrderRequeue, OrderStore, PortResult, Presence,
    PromotionEngine, Requeue, StepState,
};
use crate::{
    ErrorName, FailoverMode, Order, Region, ReplicationLag, SwitchyardError, WriterClaim, WriterEpoch, order::Timestamp,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The reference semantics of [`ClaimStore`], for domain tests, with the faults a test
/// needs: reads that cannot prove the claim, and scripted reads (a claim that moves between
/// two reads of one batch). Adapters must behave the same way ([`contract::claim_store`]).
#[derive(Debug)]
pub struct InMemoryClaimStore {
    state: Mutex<ClaimState>,
}

#[derive(Debug)]
struct ClaimState {
    claim: WriterClaim,
    /// While set, every read answers `CannotProve` with this error.
    unprovable: Option<SwitchyardError>,
    /// Answered by the next reads, in order, before the stored claim.
    script: VecDeque<ClaimRead>,
    /// The standby's standing for the acknowledgement (`crate::ingress`).
    eligibility: Option<crate::ingress::Eligibility>,
    /// The takeover target an operator armed (`crate::arming`).
    arming: Option<crate::arming::Arming>,
}

impl InMemoryClaimStore {
    pub fn new(claim: WriterClaim) -> Self {
        InMemoryClaimStore {
            state: Mutex::new(ClaimState {
                claim,
                unprovable: None,
                script: Default::default(),
                eligibility: None,
                arming: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClaimState> {
        lock(&self.state)
    }

    /// Every read from now on cannot prove the claim (`None`: reads answer again).
    pub fn set_unprovable(&self, why: Option<SwitchyardError>) {
        self.lock().unprovable = why;
    }

    /// The next reads answer these, in order, then the stored claim again.
    pub fn script(&self, reads: impl IntoIterator<Item = ClaimRead>) {
        self.lock().script.extend(reads);
    }

    /// Overwrites the claim (a handover done elsewhere).
    pub fn set(&self, claim: WriterClaim) {
        self.lock().claim = claim;
    }

    /// Arms `target` under the stored claim's epoch (as `switchyard arm` would).
    pub fn armed_for(self, target: &crate::Region) -> Self {
        {
            let mut s = self.lock();
            let epoch = s.claim.epoch;
            s.arming = Some(crate::arming::Arming {
                target: target.clone(),
                epoch,
                armed_by: "test".into(),
                at: crate::order::Timestamp::now(),
            });
        }
        self
    }
}

impl crate::ingress::EligibilityStore for InMemoryClaimStore {
    async fn read(&self) -> PortResult<Option<crate::ingress::Eligibility>> {
        Ok(self.lock().eligibility.clone())
    }

    async fn write(&self, expected: u64, next: crate::ingress::Eligibility) -> PortResult<()> {
        let mut s = self.lock();
        let version = s.eligibility.as_ref().map_or(0, |e| e.version);
        if version != expected || s.claim.epoch != next.epoch {
            return Err(SwitchyardError::new(
                ErrorName::StaleEpoch,
                format!("the standing is version {version} under epoch {}", s.claim.epoch),
            ));
        }
        s.eligibility = Some(next);
        Ok(())
    }
}

impl crate::arming::ArmingStore for InMemoryClaimStore {
    async fn armed(&self) -> PortResult<Option<crate::arming::Arming>> {
        Ok(self.lock().arming.clone())
    }

    async fn arm(&self, arming: &crate::arming::Arming) -> PortResult<()> {
        self.lock().arming = Some(arming.clone());
        Ok(())
    }

    async fn disarm(&self) -> PortResult<()> {
        self.lock().arming = None;
        Ok(())
    }
}

impl ClaimStore for InMemoryClaimStore {
    async fn strong_read(&self) -> ClaimRead {
        let mut s = self.lock();
        if let Some(scripted) = s.script.pop_front() {
            return scripted;
        }
        match &s.unprovable {
            Some(e) => ClaimRead::CannotProve(e.clone()),
            None => ClaimRead::Claim(s.claim.clone()),
        }
    }

    async fn bump(&self, expected: WriterEpoch, next: WriterClaim, guard: super::TakeoverGuard) -> PortResult<()> {
        let mut s = self.lock();
        if let Some(e) = &s.unprovable {
            return Err(e.clone());
        }
        if s.claim.epoch != expected || next.epoch <= expected {
            return Err(SwitchyardError::new(
                ErrorName::StaleEpoch,
                format!("stored epoch is {}, request expected {expected} and offered {}", s.claim.epoch, next.epoch),
            ));
        }
        if guard == super::TakeoverGuard::TargetEligible
            && let Some(e) = &s.eligibility
            && !e.may_take_over(&next.writer)
        {
            return Err(SwitchyardError::new(
                ErrorName::NotReady,
                format!("{} is {:?} for the acknowledgement: not bumped", next.writer, e.standing),
            ));
        }
        // The standing lives on the claim: a new claim starts without one (eligible).
        s.claim = next;
        s.eligibility = None;
        Ok(())
    }

    async fn activate(&self, target: &WriterClaim) -> PortResult<()> {
        let mut s = self.lock();
        if let Some(e) = &s.unprovable {
            return Err(e.clone());
        }
        let claim = &mut s.claim;
        if claim.epoch != target.epoch || claim.writer != target.writer {
            return Err(SwitchyardError::new(
                ErrorName::StaleEpoch,
                format!(
                    "the store holds epoch {} ({}), not {} ({})",
                    claim.epoch, claim.writer, target.epoch, target.writer
                ),
            ));
        }
        *claim = claim.activated();
        Ok(())
    }
}

/// One order as a database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    pub fingerprint: String,
    pub region: Region,
    pub epoch: WriterEpoch,
    pub message_id: String,
    pub at: Timestamp,
}

/// The reference semantics of [`OrderStore`]: one region's database. A shadow region's is
/// its replica: fill it with [`InMemoryOrderStore::replicate`].
#[derive(Debug, Default)]
pub struct InMemoryOrderStore {
    state: Mutex<OrderState>,
}

#[derive(Debug, Default)]
struct OrderState {
    orders: BTreeMap<String, StoredOrder>,
    /// While set, every call fails with this error (an outage, refused credentials).
    unavailable: Option<SwitchyardError>,
    /// A fenced writer or a replica: writes fail with `StaleEpoch`, as PostgreSQL's
    /// read-only transactions are classified.
    read_only: bool,
    /// Logical clock of `applied_at`, in ms.
    clock: i64,
    /// Order ids the database refuses (a constraint the parser does not check): a
    /// transaction holding one fails whole, with `InvalidInput`.
    refused: std::collections::BTreeSet<String>,
}

impl InMemoryOrderStore {
    /// What the database holds, by order id.
    pub fn orders(&self) -> BTreeMap<String, StoredOrder> {
        lock(&self.state).orders.clone()
    }

    /// Every call fails with `e` from now on (`None`: it answers again).
    pub fn set_unavailable(&self, e: Option<SwitchyardError>) {
        lock(&self.state).unavailable = e;
    }

    pub fn set_read_only(&self, read_only: bool) {
        lock(&self.state).read_only = read_only;
    }

    /// The database refuses the order `order_id` from now on (a check constraint).
    pub fn refuse(&self, order_id: &str) {
        lock(&self.state).refused.insert(order_id.to_owned());
    }

    /// Puts `order` in the database as the writer applied it (what replication delivers).
    pub fn replicate(&self, order: &Order, region: &Region, epoch: WriterEpoch) {
        let mut s = lock(&self.state);
        s.clock += 1;
        let at = Timestamp::from_unix_millis(s.clock);
        s.orders.insert(
            order.order_id.clone(),
            StoredOrder {
                fingerprint: order.fingerprint(),
                region: region.clone(),
                epoch,
                message_id: "replicated".into(),
                at,
            },
        );
    }

    fn available(&self) -> PortResult<()> {
        lock(&self.state).unavailable.clone().map_or(Ok(()), Err)
    }
}

impl OrderStore for InMemoryOrderStore {
    async fn apply<G>(
        &self,
        deliveries: &[Delivery<'_>],
        claim: &WriterClaim,
        still_current: G,
    ) -> PortResult<Vec<Applied>>
    where
        G: std::future::Future<Output = PortResult<crate::CommitWindow>> + Send,
    {
        self.available()?;
        let (outcomes, staged) = {
            let s = lock(&self.state);
            if s.read_only {
                return Err(SwitchyardError::new(
                    ErrorName::StaleEpoch,
                    "cannot execute INSERT in a read-only transaction",
                ));
            }
            if let Some(d) = deliveries.iter().find(|d| s.refused.contains(&d.order.order_id)) {
                return Err(SwitchyardError::new(
                    ErrorName::InvalidInput,
                    format!("new row for order {} violates a check constraint", d.order.order_id),
                ));
            }
            let mut staged: BTreeMap<String, StoredOrder> = BTreeMap::new();
            let mut clock = s.clock;
            let outcomes = deliveries
                .iter()
                .map(|d| {
                    let fingerprint = d.order.fingerprint();
                    match s.orders.get(&d.order.order_id).or_else(|| staged.get(&d.order.order_id)) {
                        Some(held) if held.fingerprint == fingerprint => Applied::AlreadyPresent,
                        Some(_) => Applied::Conflict,
                        None => {
                            clock += 1;
                            staged.insert(
                                d.order.order_id.clone(),
                                StoredOrder {
                                    fingerprint,
                                    region: claim.writer.clone(),
                                    epoch: claim.epoch,
                                    message_id: d.message_id.to_owned(),
                                    at: Timestamp::from_unix_millis(clock),
                                },
                            );
                            Applied::Inserted
                        }
                    }
                })
                .collect::<Vec<_>>();
            (outcomes, staged)
        };
        // The transaction is open here: the caller's last word decides, within its window.
        still_current.await?.check()?;
        let mut s = lock(&self.state);
        s.clock += staged.len() as i64;
        s.orders.extend(staged);
        Ok(outcomes)
    }

    async fn presence(&self, orders: &[&Order]) -> PortResult<Vec<Presence>> {
        self.available()?;
        let s = lock(&self.state);
        Ok(orders
            .iter()
            .map(|o| match s.orders.get(&o.order_id) {
                None => Presence::Absent,
                Some(held) if held.fingerprint == o.fingerprint() => Presence::Same,
                Some(_) => Presence::Different,
            })
            .collect())
    }

    async fn first_applied(&self, region: &Region, epoch: WriterEpoch) -> PortResult<Option<FirstApplied>> {
        self.available()?;
        let s = lock(&self.state);
        let under: Vec<&StoredOrder> = s.orders.values().filter(|o| o.region == *region && o.epoch == epoch).collect();
        Ok(under.iter().map(|o| o.at).min().map(|at| FirstApplied { at, count: under.len() as u64 }))
    }
}

/// The reference semantics of [`OrderRequeue`]: records every copy; its sends can fail.
#[derive(Debug, Default)]
pub struct InMemoryQueue {
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    copies: Vec<(String, String)>,
    forwarded: Vec<(Region, String, String)>,
    redelivered: Vec<(String, std::time::Duration)>,
    failing: Option<SwitchyardError>,
}

impl InMemoryQueue {
    /// (id of the original, body) of every accepted copy.
    pub fn copies(&self) -> Vec<(String, String)> {
        lock(&self.state).copies.clone()
    }

    pub fn set_failing(&self, e: Option<SwitchyardError>) {
        lock(&self.state).failing = e;
    }

    /// (region, id of the original, body) of every copy forwarded to another region's queue.
    pub fn forwarded(&self) -> Vec<(Region, String, String)> {
        lock(&self.state).forwarded.clone()
    }

    /// (receipt handle, delay) of every message made visible again early.
    pub fn redelivered(&self) -> Vec<(String, std::time::Duration)> {
        lock(&self.state).redelivered.clone()
    }
}

impl OrderRequeue for InMemoryQueue {
    async fn requeue(&self, messages: &[Requeue<'_>]) -> PortResult<Vec<String>> {
        let mut s = lock(&self.state);
        if let Some(e) = &s.failing {
            return Err(e.clone());
        }
        let accepted: Vec<(String, String)> =
            messages.iter().map(|m| (m.message_id.to_owned(), m.body.to_owned())).collect();
        s.copies.extend(accepted.iter().cloned());
        Ok(accepted.into_iter().map(|(id, _)| id).collect())
    }

    async fn forward(&self, region: &Region, messages: &[Requeue<'_>]) -> PortResult<Vec<String>> {
        let mut s = lock(&self.state);
        if let Some(e) = &s.failing {
            return Err(e.clone());
        }
        for m in messages {
            s.forwarded.push((region.clone(), m.message_id.to_owned(), m.body.to_owned()));
        }
        Ok(messages.iter().map(|m| m.message_id.to_owned()).collect())
    }

    /// Never fails: `set_failing` is about sending copies (a visibility change is a separate
    /// call that may well succeed when sends are throttled).
    async fn redeliver_after(&self, receipt_handles: &[&str], after: std::time::Duration) -> PortResult<usize> {
        let mut s = lock(&self.state);
        s.redelivered.extend(receipt_handles.iter().map(|h| ((*h).to_owned(), after)));
        Ok(receipt_handles.len())
    }
}

/// One region's database as [`InMemoryEngine`] holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineNode {
    pub writer: bool,
    pub fenced: bool,
    pub reachable: bool,
}

/// The reference semantics of [`PromotionEngine`]: two databases, one writing, with settable
/// lag, reachability and how many polls promotion and catch-up take.
#[derive(Debug)]
pub struct InMemoryEngine {
    state: Mutex<EngineState>,
}

#[derive(Debug)]
struct EngineState {
    nodes: BTreeMap<Region, EngineNode>,
    lag: PortResult<Option<ReplicationLag>>,
    lag_from_target: PortResult<Option<ReplicationLag>>,
    /// Polls a promotion answers `InProgress` before it is done.
    promote_polls: u32,
    /// Polls a catch-up answers `InProgress` before it is done.
    catch_up_polls: u32,
    promotions_started: u32,
    promotion_running: bool,
    /// Databases that answer, with this error (too many connections, a rejected login…).
    sick: BTreeMap<Region, SwitchyardError>,
    /// The replica's replay is paused (or its stream broken): it cannot catch up.
    replay_stalled: bool,
}

impl InMemoryEngine {
    /// `writer` writes, `replica` replays it, no lag, every step done at once.
    pub fn new(writer: &Region, replica: &Region) -> Self {
        let node = |writer| EngineNode { writer, fenced: false, reachable: true };
        let nodes = BTreeMap::from([(writer.clone(), node(true)), (replica.clone(), node(false))]);
        let zero = Ok(Some(ReplicationLag { bytes: 0, seconds: 0.0 }));
        InMemoryEngine {
            state: Mutex::new(EngineState {
                nodes,
                lag: zero.clone(),
                lag_from_target: zero,
                promote_polls: 0,
                catch_up_polls: 0,
                promotions_started: 0,
                promotion_running: false,
                sick: BTreeMap::new(),
                replay_stalled: false,
            }),
        }
    }

    pub fn node(&self, region: &Region) -> Option<EngineNode> {
        lock(&self.state).nodes.get(region).copied()
    }

    pub fn set_reachable(&self, region: &Region, reachable: bool) {
        if let Some(n) = lock(&self.state).nodes.get_mut(region) {
            n.reachable = reachable;
        }
    }

    /// The replica stops replaying (`true`) or replays again.
    pub fn set_replay_stalled(&self, stalled: bool) {
        lock(&self.state).replay_stalled = stalled;
    }

    /// `region`'s database answers every call with `error` (`None`: it is well again).
    pub fn set_sick(&self, region: &Region, error: Option<SwitchyardError>) {
        let mut s = lock(&self.state);
        match error {
            Some(e) => s.sick.insert(region.clone(), e),
            None => s.sick.remove(region),
        };
    }

    /// What `lag` answers while both databases answer.
    pub fn set_lag(&self, lag: PortResult<Option<ReplicationLag>>) {
        lock(&self.state).lag = lag;
    }

    /// What `lag_from_target` answers while the target answers.
    pub fn set_lag_from_target(&self, lag: PortResult<Option<ReplicationLag>>) {
        lock(&self.state).lag_from_target = lag;
    }

    pub fn set_polls(&self, promote: u32, catch_up: u32) {
        let mut s = lock(&self.state);
        (s.promote_polls, s.catch_up_polls) = (promote, catch_up);
    }

    /// How many promotions were started (a finished one must never start again).
    pub fn promotions_started(&self) -> u32 {
        lock(&self.state).promotions_started
    }
}

fn unreachable_node(region: &Region) -> SwitchyardError {
    SwitchyardError::new(ErrorName::ServiceUnavailable, format!("the database in {region} does not answer"))
}

impl EngineState {
    fn answering(&mut self, region: &Region) -> PortResult<&mut EngineNode> {
        if let Some(e) = self.sick.get(region) {
            return Err(e.clone());
        }
        match self.nodes.get_mut(region) {
            Some(n) if n.reachable => Ok(n),
            Some(_) => Err(unreachable_node(region)),
            None => Err(SwitchyardError::new(ErrorName::MissingConfig, format!("no database in {region}"))),
        }
    }
}

impl PromotionEngine for InMemoryEngine {
    async fn lag(&self, old: &Region, target: &Region) -> PortResult<Option<ReplicationLag>> {
        let mut s = lock(&self.state);
        s.answering(old)?;
        s.answering(target)?;
        s.lag.clone()
    }

    async fn lag_from_target(&self, target: &Region) -> PortResult<Option<ReplicationLag>> {
        let mut s = lock(&self.state);
        s.answering(target)?;
        s.lag_from_target.clone()
    }

    async fn fence(&self, old: &Region) -> PortResult<StepState> {
        let mut s = lock(&self.state);
        let node = s.answering(old)?;
        if node.writer {
            node.fenced = true;
        }
        Ok(StepState::Done)
    }

    async fn can_catch_up(&self, old: &Region, target: &Region) -> PortResult<()> {
        let mut s = lock(&self.state);
        s.answering(old)?;
        let stalled = s.replay_stalled;
        if s.answering(target)?.writer {
            return Err(SwitchyardError::new(ErrorName::NotReady, format!("{target} is not a replica")));
        }
        if stalled {
            return Err(SwitchyardError::new(ErrorName::NotReady, format!("{target} does not replay")));
        }
        Ok(())
    }

    async fn unfence(&self, old: &Region) -> PortResult<StepState> {
        lock(&self.state).answering(old)?.fenced = false;
        Ok(StepState::Done)
    }

    async fn catch_up(&self, old: &Region, target: &Region) -> PortResult<StepState> {
        let mut s = lock(&self.state);
        let writes = {
            let n = s.answering(old)?;
            n.writer && !n.fenced
        };
        s.answering(target)?;
        if writes {
            return Err(SwitchyardError::new(
                ErrorName::NotReady,
                format!("{old} still accepts writes: fence it first"),
            ));
        }
        if s.catch_up_polls > 0 || s.replay_stalled {
            s.catch_up_polls = s.catch_up_polls.saturating_sub(1);
            return Ok(StepState::InProgress);
        }
        Ok(StepState::Done)
    }

    async fn promote(&self, target: &Region, _mode: FailoverMode) -> PortResult<StepState> {
        let mut s = lock(&self.state);
        if s.answering(target)?.writer {
            return Ok(StepState::Done);
        }
        if !s.promotion_running {
            s.promotion_running = true;
            s.promotions_started += 1;
        }
        if s.promote_polls > 0 {
            s.promote_polls -= 1;
            return Ok(StepState::InProgress);
        }
        s.promotion_running = false;
        // Promotion lifts a fence the replica inherited.
        let node = s.answering(target)?;
        (node.writer, node.fenced) = (true, false);
        Ok(StepState::Done)
    }

    async fn accepts_writes(&self, target: &Region) -> PortResult<bool> {
        let mut s = lock(&self.state);
        let n = s.answering(target)?;
        Ok(n.writer && !n.fenced)
    }
}
