//! Ports: the narrow interfaces the domain needs from the outside world. Adapters implement
//! them (`switchyard-postgres` over PostgreSQL, `switchyard-aws` over the AWS SDK); handlers
//! are generic over them, so tests can substitute an in-memory implementation.
//!
//! Every method returns [`SwitchyardError`], whose name tells the caller (and Step Functions)
//! whether to retry. Adapters must classify, never flatten errors into strings.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::{
    FailoverMode, Order, Region, ReplicationLag, ReplicationStatus, SwitchyardError, WriterClaim, WriterEpoch,
    order::Timestamp,
};

pub mod memory;

pub use memory::InMemoryClaimStore;

pub type PortResult<T> = Result<T, SwitchyardError>;

/// Reads the replication state of one regional database node. Read-only.
pub trait ReplicationMonitor: Send + Sync {
    fn replication_status(&self) -> impl Future<Output = PortResult<ReplicationStatus>> + Send;
}

/// Outcome of a promotion or fencing step. Steps are idempotent: asking again after success
/// reports `Done`, asking while the engine is still working reports `InProgress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepState {
    InProgress,
    Done,
}

/// Changes which node of a regional database pair is the writer.
pub trait DatabasePromoter: Send + Sync {
    /// Makes this region's replica the writer.
    fn promote(&self) -> impl Future<Output = PortResult<StepState>> + Send;
    /// Stops the old writer from accepting writes (where it is reachable).
    fn fence(&self) -> impl Future<Output = PortResult<StepState>> + Send;
}

/// What a strongly consistent read of the writer claim proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRead {
    /// The claim the store holds now.
    Claim(WriterClaim),
    /// The store could not prove which claim holds (unreachable, no majority, no claim, a
    /// refused call): **a region that cannot prove it holds the claim does not act as
    /// writer**. The error says why, by name.
    CannotProve(SwitchyardError),
}

impl ClaimRead {
    /// The claim, or why it cannot be proven as an error (for callers that stop on it).
    pub fn proven(self) -> PortResult<WriterClaim> {
        match self {
            ClaimRead::Claim(c) => Ok(c),
            ClaimRead::CannotProve(e) => Err(e),
        }
    }
}

impl From<PortResult<WriterClaim>> for ClaimRead {
    fn from(r: PortResult<WriterClaim>) -> ClaimRead {
        match r {
            Ok(c) => ClaimRead::Claim(c),
            Err(e) => ClaimRead::CannotProve(e),
        }
    }
}

/// Moves the writer role between the two regions' databases, step by step, each step
/// idempotent (asking again after success is `Done`, while the engine works `InProgress`).
/// The promoter runs every step in the region it promotes.
pub trait PromotionEngine: Send + Sync {
    /// How far `target` is behind `old`; `None` when it cannot be told.
    fn lag(&self, old: &Region, target: &Region) -> impl Future<Output = PortResult<Option<ReplicationLag>>> + Send;
    /// `target`'s lag judged from `target` alone, for when `old` does not answer; `None` when
    /// the engine has no such figure.
    fn lag_from_target(&self, target: &Region) -> impl Future<Output = PortResult<Option<ReplicationLag>>> + Send;
    /// Makes `old` refuse writes (where it answers: `ServiceUnavailable` when it does not).
    fn fence(&self, old: &Region) -> impl Future<Output = PortResult<StepState>> + Send;
    /// Planned only, before the fence: `Ok` when `target` can catch up with `old` (a replica,
    /// streaming, replaying); `NotReady` saying why not. A switchover that fenced a writer
    /// it cannot replace would leave no region writing.
    fn can_catch_up(&self, old: &Region, target: &Region) -> impl Future<Output = PortResult<()>> + Send;
    /// Lifts the fence of `old` (a planned switchover that failed before any promotion).
    fn unfence(&self, old: &Region) -> impl Future<Output = PortResult<StepState>> + Send;
    /// Planned only: `Done` once `target` has replayed everything the fenced `old` wrote;
    /// `NotReady` while `old` still accepts writes.
    fn catch_up(&self, old: &Region, target: &Region) -> impl Future<Output = PortResult<StepState>> + Send;
    /// Makes `target` the writer.
    fn promote(&self, target: &Region, mode: FailoverMode) -> impl Future<Output = PortResult<StepState>> + Send;
    /// Whether `target` accepts writes now (the epoch is bumped only to a writer that does).
    fn accepts_writes(&self, target: &Region) -> impl Future<Output = PortResult<bool>> + Send;
}

/// The store of the writer claim: one linearizable store (see DESIGN: a majority-backed
/// claim). Every read is strongly consistent, and `bump` is a conditional write: **an older
/// epoch can never win**.
pub trait ClaimStore: Send + Sync {
    /// The claim as the store holds it now, or why that cannot be proven. Never a cached or
    /// eventually consistent answer.
    fn strong_read(&self) -> impl Future<Output = ClaimRead> + Send;
    /// Writes `next` only if the stored epoch is still `expected` and `next` is newer;
    /// otherwise `StaleEpoch`. With [`TakeoverGuard::TargetEligible`], also only if the
    /// standing recorded under `expected` (`crate::ingress`, kept on the claim itself) does
    /// not exclude `next.writer`; otherwise `NotReady`. One conditional write: a drop of the
    /// target recorded just before the bump wins, one recorded after it is refused.
    fn bump(
        &self,
        expected: WriterEpoch,
        next: WriterClaim,
        guard: TakeoverGuard,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Marks `claim` active, only while the store still holds its epoch and writer (again
    /// after success changes nothing); otherwise `StaleEpoch`. The caller waits the lease
    /// between the bump and this (see [`crate::epoch`]).
    fn activate(&self, claim: &WriterClaim) -> impl Future<Output = PortResult<()>> + Send;
}

/// What a bump requires of the acknowledgement's standing (`crate::ingress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeoverGuard {
    /// The new writer must not have been dropped from the eligible set (an unplanned
    /// failover without `allowDataLoss`).
    TargetEligible,
    /// No standing is checked: a planned switchover (the old writer is fenced and alive, its
    /// catch-up reaches the new writer) or an operator's `allowDataLoss`.
    Waived,
}

/// One order and the SQS message that carried it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub message_id: &'a str,
    pub order: &'a Order,
}

/// What a database holds under an order's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Absent,
    /// This very order (same fingerprint).
    Same,
    /// Another order under the same id.
    Different,
}

/// What applying an order did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Inserted,
    /// Already applied earlier (a redelivery): nothing written.
    AlreadyPresent,
    /// The id holds another order: nothing written.
    Conflict,
}

/// The first order applied under an epoch, and how many were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstApplied {
    pub at: Timestamp,
    pub count: u64,
}

/// The orders database of the consumer's region. **Idempotent on the order id**: an order is
/// inserted at most once, an id that arrives with other content is a conflict, never an
/// overwrite.
pub trait OrderStore: Send + Sync {
    /// Inserts every delivery's order whose id is new, as applied by `claim.writer` under
    /// `claim.epoch`, in one transaction; reports each delivery's outcome in order. Between
    /// the inserts and the commit it awaits `still_current` (the strong read that allows the
    /// commit): unless that is `Ok`, nothing is applied and its error is returned. It commits
    /// only within the [`crate::CommitWindow`] that read answers, checked on this process's
    /// clock and, where the store has one, on the database's own (a deadline set before the
    /// read starts). Deliveries carry distinct order ids.
    fn apply<G>(
        &self,
        deliveries: &[Delivery<'_>],
        claim: &WriterClaim,
        still_current: G,
    ) -> impl Future<Output = PortResult<Vec<Applied>>> + Send
    where
        G: Future<Output = PortResult<crate::CommitWindow>> + Send;
    /// Which of `orders` the database (in the shadow region: the replica) holds, in order.
    fn presence(&self, orders: &[&Order]) -> impl Future<Output = PortResult<Vec<Presence>>> + Send;
    /// When `region` applied its first order under `epoch` (`None`: none yet).
    fn first_applied(
        &self,
        region: &Region,
        epoch: WriterEpoch,
    ) -> impl Future<Output = PortResult<Option<FirstApplied>>> + Send;
}

/// A message to copy back onto its queue.
#[derive(Debug, Clone, Copy)]
pub struct Requeue<'a> {
    pub message_id: &'a str,
    pub body: &'a str,
}

/// The consumer's queue, for what the event source mapping does not do: re-enqueueing, and
/// forwarding a stranded order to the writer region's queue.
pub trait OrderRequeue: Send + Sync {
    /// Sends a copy of each message; answers the ids of the messages whose copy the queue
    /// accepted (the caller lets only those originals go).
    fn requeue(&self, messages: &[Requeue<'_>]) -> impl Future<Output = PortResult<Vec<String>>> + Send;
    /// Sends a copy of each message to `region`'s orders queue; answers the ids of the
    /// messages whose copy it accepted.
    fn forward(
        &self,
        region: &Region,
        messages: &[Requeue<'_>],
    ) -> impl Future<Output = PortResult<Vec<String>>> + Send;
    /// Makes the received messages with these receipt handles visible again `after` from now
    /// (instead of at the end of the queue's visibility timeout); answers how many it moved.
    fn redeliver_after(
        &self,
        receipt_handles: &[&str],
        after: std::time::Duration,
    ) -> impl Future<Output = PortResult<usize>> + Send;
}

/// Moves client traffic to the writer's region.
pub trait TrafficRouter: Send + Sync {
    fn route_to(&self, claim: &WriterClaim) -> impl Future<Output = PortResult<StepState>> + Send;
    fn current_target(&self) -> impl Future<Output = PortResult<Region>> + Send;
}

/// One metric observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Datapoint {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub dimensions: Vec<(String, String)>,
}

pub trait MetricsSink: Send + Sync {
    fn publish(&self, datapoints: &[Datapoint]) -> impl Future<Output = PortResult<()>> + Send;
}

/// Behaviour every [`ClaimStore`] must show, checked against the in-memory reference in
/// this crate's tests and against each adapter in its own. `registry` must hold `initial`.
pub mod contract {
    use super::ClaimStore;
    use crate::{ErrorName, Region, WriterClaim, WriterEpoch};

    pub async fn claim_store(registry: &impl ClaimStore, initial: &WriterClaim, other: &Region) -> Result<(), String> {
        let current = registry.strong_read().await.proven().map_err(|e| format!("reading the initial claim: {e}"))?;
        if current != *initial {
            return Err(format!("holds {current:?}, expected {initial:?}"));
        }
        let next = WriterClaim::pending(initial.epoch.next(), other.clone());
        registry
            .bump(initial.epoch, next.clone(), super::TakeoverGuard::TargetEligible)
            .await
            .map_err(|e| format!("first handover: {e}"))?;
        let bumped = registry.strong_read().await.proven().map_err(|e| format!("reading the bumped claim: {e}"))?;
        if bumped != next {
            return Err(format!("holds {bumped:?} after the bump, expected {next:?} (pending)"));
        }
        // Every later attempt from a stale view loses, whatever it offers.
        let stale = [
            (initial.epoch, WriterClaim::active(next.epoch, initial.writer.clone())),
            (initial.epoch, WriterClaim::active(next.epoch.next(), initial.writer.clone())),
            (next.epoch, WriterClaim::active(next.epoch, initial.writer.clone())),
            (WriterEpoch(0), WriterClaim::active(WriterEpoch(99), initial.writer.clone())),
        ];
        for (expected, offered) in stale {
            match registry.bump(expected, offered.clone(), super::TakeoverGuard::Waived).await {
                Err(e) if e.name == ErrorName::StaleEpoch => {}
                other => {
                    return Err(format!("expected {expected}, offered {offered:?}: got {other:?}, not StaleEpoch"));
                }
            }
        }
        // Activation: only of the claim the store holds, and idempotent.
        for stale in [initial.clone(), WriterClaim::pending(next.epoch, initial.writer.clone())] {
            match registry.activate(&stale).await {
                Err(e) if e.name == ErrorName::StaleEpoch => {}
                other => return Err(format!("activating {stale:?}: got {other:?}, not StaleEpoch")),
            }
        }
        for attempt in ["first", "second"] {
            registry.activate(&next).await.map_err(|e| format!("{attempt} activation: {e}"))?;
        }
        let last = registry.strong_read().await.proven().map_err(|e| format!("reading the final claim: {e}"))?;
        if last != next.activated() {
            return Err(format!("holds {last:?} after the handover, expected {:?}", next.activated()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{claim, now};

    #[test]
    fn an_older_epoch_never_wins() {
        let reg = InMemoryClaimStore::new(claim(1, "us-east-1"));
        let other = "us-east-2".parse().expect("region");
        now(contract::claim_store(&reg, &claim(1, "us-east-1"), &other)).expect("contract holds");
    }
}
