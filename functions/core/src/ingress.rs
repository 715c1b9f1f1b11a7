//! The acknowledgement contract, in the spirit of Patroni's synchronous mode.
//!
//! **An order is acknowledged once it is durable in the writer's region and in every region
//! eligible to take over.** The writer's region may drop an unreachable standby from the
//! eligible set, and only by a recorded, conditional write to the claim store; while the
//! standby is not eligible, the writer's durability is enough (intake never stops for a
//! standby outage), each order also goes to the writer region's **catch-up** queue for the
//! standby, and no failover may target it. It becomes eligible again in two recorded steps:
//! `CatchingUp` (new orders go to it directly again, as if eligible) while the catch-up queue
//! is drained into its queue, then `Eligible` once that queue is empty. So "acknowledged"
//! always means "held by whichever region may become writer".
//!
//! Durable here means accepted by the region's orders queue (SQS stores a message redundantly
//! before answering `SendMessage`). The cost of the contract is the slower of the two sends:
//! a cross-region `SendMessage` round trip, paid in parallel with the local one, plus one
//! strongly consistent read of the claim store (also cross-region under MRSC).
//!
//! This module is the rule over ports; the order API (the sandbox's, or a function behind
//! API Gateway in AWS) supplies the queues and the claim store.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::{
    ErrorName, Region, RegionPair, SwitchyardError, WriterEpoch,
    ports::{ClaimStore, PortResult},
};

/// Where a standby stands for the acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Standing {
    /// Every order must reach it before it is acknowledged; a failover may target it.
    Eligible,
    /// Dropped by the writer (unreachable): orders go to the catch-up queue instead; no
    /// failover may target it.
    Ineligible,
    /// Being caught up: new orders must reach it again, the catch-up queue is drained into
    /// it; no failover may target it yet.
    CatchingUp,
}

/// The standby's standing as the claim store records it, with the version every change is
/// conditional on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eligibility {
    pub version: u64,
    /// The writer epoch it was recorded under: a standing holds only for its epoch (a
    /// handover starts from `Eligible`), and the store never lets an older epoch overwrite a
    /// newer one (a writer that lost the claim mid-acknowledgement cannot undo the new
    /// writer's record).
    pub epoch: WriterEpoch,
    pub standby: Region,
    pub standing: Standing,
}

impl Eligibility {
    /// Whether an order must reach the standby directly before it is acknowledged.
    pub fn must_reach_standby(&self) -> bool {
        self.standing != Standing::Ineligible
    }

    /// Whether a failover may make `region` the writer.
    pub fn may_take_over(&self, region: &Region) -> bool {
        *region != self.standby || self.standing == Standing::Eligible
    }

    pub fn next(&self, standing: Standing) -> Eligibility {
        Eligibility { version: self.version + 1, epoch: self.epoch, standby: self.standby.clone(), standing }
    }
}

/// Where the standing is recorded: the writer-claim store. Reads are strongly consistent.
pub trait EligibilityStore: Send + Sync {
    /// The recorded standing; `None` if none was ever recorded (the standby is eligible).
    fn read(&self) -> impl Future<Output = PortResult<Option<Eligibility>>> + Send;
    /// Writes `next` only if the stored version is still `expected` (0: none recorded) and
    /// the claim is still at `next.epoch` (the standing is kept on the claim: a handover
    /// drops it, and a writer that lost the claim can no longer record one); else
    /// `StaleEpoch`.
    fn write(&self, expected: u64, next: Eligibility) -> impl Future<Output = PortResult<()>> + Send;
}

/// The standing of `standby` under the writer claim at `epoch`, as recorded. A record from
/// another epoch or about another region (a handover since) means eligible; the version is
/// kept, so the next change stays conditional.
pub async fn standing_of<E: EligibilityStore>(
    store: &E,
    standby: &Region,
    epoch: WriterEpoch,
) -> PortResult<Eligibility> {
    let fresh = |version| Eligibility { version, epoch, standby: standby.clone(), standing: Standing::Eligible };
    Ok(match store.read().await? {
        Some(e) if e.standby == *standby && e.epoch == epoch => e,
        Some(e) => fresh(e.version),
        None => fresh(0),
    })
}

/// Behaviour every store of the standing must show (the in-memory twin in this crate's tests,
/// `ControlTable` on moto): the standing lives on the claim, so the bump and a drop of the
/// target are one item's conditional writes, linearizable against each other.
pub mod contract {
    use super::{Eligibility, EligibilityStore, Standing};
    use crate::{
        ErrorName, Region, WriterClaim,
        ports::{ClaimStore, TakeoverGuard},
    };

    /// `store` must hold `initial` and no standing; `standby` is the other region.
    pub async fn standing_on_the_claim(
        store: &(impl ClaimStore + EligibilityStore),
        initial: &WriterClaim,
        standby: &Region,
    ) -> Result<(), String> {
        let e = initial.epoch;
        let at = |version, epoch, standing| Eligibility { version, epoch, standby: standby.clone(), standing };
        let refused = |what: &str, got: Result<(), crate::SwitchyardError>, name: ErrorName| match got {
            Err(err) if err.name == name => Ok(()),
            other => Err(format!("{what}: {other:?}, not {name:?}")),
        };
        if store.read().await.map_err(|x| x.to_string())?.is_some() {
            return Err("a fresh store records a standing".into());
        }
        store.write(0, at(1, e, Standing::Ineligible)).await.map_err(|x| format!("the drop: {x}"))?;
        refused("version 0 again", store.write(0, at(1, e, Standing::Eligible)).await, ErrorName::StaleEpoch)?;
        refused("another epoch", store.write(1, at(2, e.next(), Standing::Eligible)).await, ErrorName::StaleEpoch)?;
        // The drop came first: a failover into the dropped standby is refused, atomically.
        let next = WriterClaim::pending(e.next(), standby.clone());
        for standing in [None, Some(Standing::CatchingUp)] {
            if let Some(standing) = standing {
                store.write(1, at(2, e, standing)).await.map_err(|x| format!("catching up: {x}"))?;
            }
            let bump = store.bump(e, next.clone(), TakeoverGuard::TargetEligible).await;
            refused("a bump into a standby that is not eligible", bump, ErrorName::NotReady)?;
        }
        let claim = store.strong_read().await.proven().map_err(|x| x.to_string())?;
        if claim != *initial {
            return Err(format!("the refused bump moved the claim to {claim:?}"));
        }
        store.write(2, at(3, e, Standing::Eligible)).await.map_err(|x| format!("eligible again: {x}"))?;
        if store.read().await.map_err(|x| x.to_string())? != Some(at(3, e, Standing::Eligible)) {
            return Err("the standing read back differs".into());
        }
        store.bump(e, next.clone(), TakeoverGuard::TargetEligible).await.map_err(|x| format!("the bump: {x}"))?;
        // The bump came first: the new claim starts with no standing, and the old writer can
        // no longer record one under its epoch.
        if store.read().await.map_err(|x| x.to_string())?.is_some() {
            return Err("a standing survived the handover".into());
        }
        refused(
            "a drop under the old epoch",
            store.write(0, at(1, e, Standing::Ineligible)).await,
            ErrorName::StaleEpoch,
        )?;
        Ok(())
    }
}

/// The orders queues, as the order API writes to them.
pub trait OrderIntake: Send + Sync {
    /// Sends the queued order (its JSON) to `region`'s orders queue.
    fn enqueue(&self, region: &Region, order: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// Sends it to the writer region's catch-up queue for the standby.
    fn enqueue_for_catch_up(&self, writer: &Region, order: &str) -> impl Future<Output = PortResult<()>> + Send;
}

/// What the API answers a client with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Acknowledged {
    /// Regions whose orders queue holds it.
    pub durable_in: Vec<Region>,
    /// True when the standby was not eligible: the order waits in the catch-up queue for it.
    pub standby_catching_up: bool,
    /// Set when this acknowledgement dropped the standby from the eligible set: why (the
    /// caller logs it; the core does no I/O).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_standby: Option<String>,
}

/// Acknowledges `order` (its JSON, stamped) received by the API of region `here`, or says
/// why not (`NotAcknowledged` is then `ServiceUnavailable`: the client retries, the order id
/// makes it idempotent).
pub async fn acknowledge<C: ClaimStore, E: EligibilityStore, Q: OrderIntake>(
    here: &Region,
    pair: &RegionPair,
    claims: &C,
    eligibility: &E,
    queues: &Q,
    order: &str,
) -> PortResult<Acknowledged> {
    // Two rounds at most: a standing that changes under us is read again once, with the claim.
    for _ in 0..2 {
        let claim = claims.strong_read().await.proven()?;
        let (writer, epoch) = (claim.writer, claim.epoch);
        let standby = pair.peer_of(&writer)?.clone();
        let standing = standing_of(eligibility, &standby, epoch).await?;
        if standing.must_reach_standby() {
            let (to_writer, to_standby) = both(queues.enqueue(&writer, order), queues.enqueue(&standby, order)).await;
            to_writer.map_err(|e| not_durable(&writer, &e))?;
            match to_standby {
                Ok(()) => {
                    return Ok(Acknowledged {
                        durable_in: vec![writer, standby],
                        standby_catching_up: false,
                        dropped_standby: None,
                    });
                }
                Err(e) if *here != writer => return Err(not_durable(&standby, &e)),
                Err(e) => {
                    // Only the writer's region drops the standby, by a recorded decision; the
                    // order is in the catch-up queue first, so a catch-up that starts right
                    // after the drop finds it (a failed drop leaves a harmless duplicate).
                    queues.enqueue_for_catch_up(&writer, order).await.map_err(|e| not_durable(&writer, &e))?;
                    match eligibility.write(standing.version, standing.next(Standing::Ineligible)).await {
                        Ok(()) => {
                            return Ok(Acknowledged {
                                durable_in: vec![writer],
                                standby_catching_up: true,
                                dropped_standby: Some(format!("{standby} dropped from the eligible set: {e}")),
                            });
                        }
                        Err(conflict) if conflict.name == ErrorName::StaleEpoch => continue,
                        Err(other) => {
                            return Err(not_acknowledged(format!("recording {standby} as ineligible: {other}")));
                        }
                    }
                }
            }
        } else {
            let (to_writer, to_catch_up) =
                both(queues.enqueue(&writer, order), queues.enqueue_for_catch_up(&writer, order)).await;
            to_writer.map_err(|e| not_durable(&writer, &e))?;
            to_catch_up.map_err(|e| not_durable(&writer, &e))?;
            // Caught up meanwhile? Then the drain may have missed this order: send it directly.
            let now = standing_of(eligibility, &standby, epoch).await?;
            if now.version != standing.version && now.must_reach_standby() {
                queues.enqueue(&standby, order).await.map_err(|e| not_durable(&standby, &e))?;
                return Ok(Acknowledged {
                    durable_in: vec![writer, standby],
                    standby_catching_up: false,
                    dropped_standby: None,
                });
            }
            return Ok(Acknowledged { durable_in: vec![writer], standby_catching_up: true, dropped_standby: None });
        }
    }
    Err(not_acknowledged("the standby's standing kept changing; try again"))
}

/// An order a catch-up queue hands out: its body, and the receipt that deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub body: String,
    pub receipt: String,
}

/// The catch-up queues, as the catch-up drains them.
pub trait CatchUpQueues: Send + Sync {
    /// Up to ten orders from `writer`'s catch-up queue, hidden from other receivers a while.
    fn receive(&self, writer: &Region) -> impl Future<Output = PortResult<Vec<Parked>>> + Send;
    fn delete(&self, writer: &Region, receipt: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// Whether `writer`'s catch-up queue holds nothing, visible or in flight.
    fn is_empty(&self, writer: &Region) -> impl Future<Output = PortResult<bool>> + Send;
    /// Whether `region`'s queues answer from here.
    fn reachable(&self, region: &Region) -> impl Future<Output = PortResult<()>> + Send;
}

/// What one round of the catch-up did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUpRound {
    /// Orders moved from the writer's catch-up queue into the standby's orders queue.
    pub moved: usize,
    /// Orders a former writer had parked for this region, moved into its own orders queue.
    pub taken_over: usize,
    /// The standby's standing after the round; `None` where this region does not write.
    pub standing: Option<Standing>,
    /// Why the former writer's catch-up queue could not be read (it is read again next round).
    pub parked_problem: Option<String>,
}

/// Batches one round moves at most; the next round goes on (the caller runs one a second).
const CATCH_UP_BATCHES: usize = 50;

/// One round of the catch-up in region `here` (each region runs one, say every second; it
/// acts only while `here` writes):
/// - orders the peer parked in its own catch-up queue while it wrote (acknowledged while this
///   region was dropped; then the peer lost the claim) go into this region's orders queue;
/// - a standby recorded `Ineligible` that answers again is marked `CatchingUp` (orders reach
///   it directly again from then on), the catch-up queue is moved into its orders queue, and
///   once that queue is empty it is marked `Eligible`; a send that fails marks it
///   `Ineligible` again.
pub async fn catch_up<C: ClaimStore, E: EligibilityStore, Q: OrderIntake, P: CatchUpQueues>(
    here: &Region,
    pair: &RegionPair,
    claims: &C,
    eligibility: &E,
    intake: &Q,
    parked: &P,
) -> PortResult<CatchUpRound> {
    let mut round = CatchUpRound { moved: 0, taken_over: 0, standing: None, parked_problem: None };
    let claim = claims.strong_read().await.proven()?;
    if claim.writer != *here {
        return Ok(round);
    }
    let standby = pair.peer_of(here)?.clone();
    match drain(parked, &standby, intake, here).await {
        Ok((n, _)) => round.taken_over = n,
        Err(e) => round.parked_problem = Some(format!("{standby}'s catch-up queue: {e}")),
    }
    let mut standing = standing_of(eligibility, &standby, claim.epoch).await?;
    match standing.standing {
        Standing::Eligible => {
            round.standing = Some(Standing::Eligible);
            return Ok(round);
        }
        Standing::Ineligible => {
            // Only a standby that answers again starts catching up.
            if parked.reachable(&standby).await.is_err() {
                round.standing = Some(Standing::Ineligible);
                return Ok(round);
            }
            let next = standing.next(Standing::CatchingUp);
            eligibility.write(standing.version, next.clone()).await?;
            standing = next;
        }
        Standing::CatchingUp => {}
    }
    match drain(parked, here, intake, &standby).await {
        Ok((n, emptied)) => {
            round.moved = n;
            if emptied && parked.is_empty(here).await? {
                let next = standing.next(Standing::Eligible);
                eligibility.write(standing.version, next).await?;
                round.standing = Some(Standing::Eligible);
            } else {
                round.standing = Some(Standing::CatchingUp);
            }
            Ok(round)
        }
        Err(e) => {
            // Best effort: the standing stays conditional, so a concurrent change wins.
            let _ = eligibility.write(standing.version, standing.next(Standing::Ineligible)).await;
            Err(e)
        }
    }
}

/// Moves what `from`'s catch-up queue holds into `to`'s orders queue, deleting each order
/// only once sent; how many, and whether a receive came back empty.
async fn drain<P: CatchUpQueues, Q: OrderIntake>(
    parked: &P,
    from: &Region,
    intake: &Q,
    to: &Region,
) -> PortResult<(usize, bool)> {
    let mut moved = 0;
    for _ in 0..CATCH_UP_BATCHES {
        let batch = parked.receive(from).await?;
        if batch.is_empty() {
            return Ok((moved, true));
        }
        for order in batch {
            intake.enqueue(to, &order.body).await?;
            parked.delete(from, &order.receipt).await?;
            moved += 1;
        }
    }
    Ok((moved, false))
}

fn not_acknowledged(why: impl Into<String>) -> SwitchyardError {
    SwitchyardError::new(ErrorName::ServiceUnavailable, format!("not acknowledged: {}", why.into()))
}

fn not_durable(region: &Region, e: &SwitchyardError) -> SwitchyardError {
    not_acknowledged(format!("{region}'s orders queue did not take it ({e})"))
}

/// Runs two futures concurrently; both outputs. (The core links no async runtime.)
pub async fn both<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (Box::pin(a), Box::pin(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(move |cx| {
        if ra.is_none()
            && let std::task::Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let std::task::Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => std::task::Poll::Ready((x, y)),
            (x, y) => {
                (ra, rb) = (x, y);
                std::task::Poll::Pending
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::{
        ports::InMemoryClaimStore,
        testing::{claim, now},
    };

    #[test]
    fn the_standing_lives_on_the_claim() {
        let store = InMemoryClaimStore::new(claim(1, "us-east-1"));
        let standby = "us-east-2".parse().expect("region");
        now(contract::standing_on_the_claim(&store, &claim(1, "us-east-1"), &standby)).expect("contract holds");
    }

    #[derive(Default)]
    struct Queues {
        down: Mutex<Vec<Region>>,
        held: Mutex<Vec<(String, String)>>,
    }

    impl Queues {
        fn held(&self) -> Vec<(String, String)> {
            self.held.lock().expect("lock").clone()
        }
        fn set_down(&self, region: Option<&str>) {
            *self.down.lock().expect("lock") = region.map(|r| r.parse().expect("region")).into_iter().collect();
        }
        fn take(&self, to: String, region: &Region) -> PortResult<()> {
            if self.down.lock().expect("lock").contains(region) {
                return Err(SwitchyardError::new(ErrorName::ServiceUnavailable, format!("{region} unreachable")));
            }
            self.held.lock().expect("lock").push((to, String::new()));
            Ok(())
        }
    }

    impl OrderIntake for Queues {
        async fn enqueue(&self, region: &Region, _: &str) -> PortResult<()> {
            self.take(region.to_string(), region)
        }
        async fn enqueue_for_catch_up(&self, writer: &Region, _: &str) -> PortResult<()> {
            self.take(format!("catch-up@{writer}"), writer)
        }
    }

    struct Standings(Mutex<Eligibility>);

    impl EligibilityStore for Standings {
        async fn read(&self) -> PortResult<Option<Eligibility>> {
            Ok(Some(self.0.lock().expect("lock").clone()))
        }
        async fn write(&self, expected: u64, next: Eligibility) -> PortResult<()> {
            let mut e = self.0.lock().expect("lock");
            if e.version != expected || e.epoch > next.epoch {
                return Err(SwitchyardError::new(ErrorName::StaleEpoch, "moved"));
            }
            *e = next;
            Ok(())
        }
    }

    fn setup(standing: Standing) -> (RegionPair, InMemoryClaimStore, Standings, Queues) {
        let pair = RegionPair::new("us-east-1".parse().expect("r"), "us-east-2".parse().expect("r")).expect("pair");
        let e = Eligibility { version: 1, epoch: WriterEpoch(1), standby: "us-east-2".parse().expect("r"), standing };
        (pair, InMemoryClaimStore::new(claim(1, "us-east-1")), Standings(Mutex::new(e)), Queues::default())
    }

    fn r(s: &str) -> Region {
        s.parse().expect("region")
    }

    fn to(held: &[(String, String)]) -> Vec<&str> {
        held.iter().map(|(t, _)| t.as_str()).collect()
    }

    #[test]
    fn both_regions_hold_it_before_the_acknowledgement() {
        let (pair, claims, e, q) = setup(Standing::Eligible);
        let ack = now(acknowledge(&r("us-east-1"), &pair, &claims, &e, &q, "{}")).expect("ack");
        assert_eq!(ack.durable_in, [r("us-east-1"), r("us-east-2")]);
        assert_eq!(to(&q.held()), ["us-east-1", "us-east-2"]);
    }

    #[test]
    fn the_writer_drops_an_unreachable_standby_by_a_recorded_write_and_intake_goes_on() {
        let (pair, claims, e, q) = setup(Standing::Eligible);
        q.set_down(Some("us-east-2"));
        let ack = now(acknowledge(&r("us-east-1"), &pair, &claims, &e, &q, "{}")).expect("ack");
        assert_eq!((ack.durable_in.clone(), ack.standby_catching_up), (vec![r("us-east-1")], true));
        assert!(ack.dropped_standby.is_some_and(|why| why.contains("us-east-2 unreachable")));
        let recorded = now(e.read()).expect("read").expect("recorded");
        assert_eq!((recorded.version, recorded.standing), (2, Standing::Ineligible));
        assert!(!recorded.may_take_over(&r("us-east-2")), "no failover into a region that may lack orders");
        assert_eq!(to(&q.held()), ["us-east-1", "catch-up@us-east-1"], "in the catch-up queue before the drop");
        // While it is ineligible, orders go to the writer and its catch-up queue.
        let ack = now(acknowledge(&r("us-east-1"), &pair, &claims, &e, &q, "{}")).expect("ack");
        assert!(ack.standby_catching_up);
        assert_eq!(to(&q.held())[2..], ["us-east-1", "catch-up@us-east-1"]);
    }

    #[test]
    fn only_the_writer_s_region_may_drop_the_standby() {
        let (pair, claims, e, q) = setup(Standing::Eligible);
        q.set_down(Some("us-east-2"));
        let err = now(acknowledge(&r("us-east-2"), &pair, &claims, &e, &q, "{}")).expect_err("not acknowledged");
        assert_eq!(err.name, ErrorName::ServiceUnavailable);
        assert_eq!(now(e.read()).expect("read").expect("recorded").standing, Standing::Eligible);
    }

    #[test]
    fn nothing_is_acknowledged_that_the_writer_s_queue_did_not_take() {
        for standing in [Standing::Eligible, Standing::Ineligible, Standing::CatchingUp] {
            let (pair, claims, e, q) = setup(standing);
            q.set_down(Some("us-east-1"));
            let err = now(acknowledge(&r("us-east-1"), &pair, &claims, &e, &q, "{}")).expect_err("writer down");
            assert!(err.message.contains("us-east-1's orders queue"), "{standing:?}: {err}");
        }
    }

    #[test]
    fn while_catching_up_orders_must_reach_the_standby_again_and_it_may_not_take_over_yet() {
        let (pair, claims, e, q) = setup(Standing::CatchingUp);
        let ack = now(acknowledge(&r("us-east-1"), &pair, &claims, &e, &q, "{}")).expect("ack");
        assert_eq!(ack.durable_in, [r("us-east-1"), r("us-east-2")]);
        let recorded = now(e.read()).expect("read").expect("recorded");
        assert!(!recorded.may_take_over(&r("us-east-2")) && recorded.may_take_over(&r("us-east-1")));
    }

    /// The catch-up starts between this API's read of the standing and its sends: the drain
    /// may have looked at the catch-up queue before this order landed there, so the order
    /// goes to the standby directly too.
    #[test]
    fn an_order_racing_the_catch_up_reaches_the_standby_directly() {
        struct Flips(Mutex<Vec<Eligibility>>);
        impl EligibilityStore for Flips {
            async fn read(&self) -> PortResult<Option<Eligibility>> {
                let mut reads = self.0.lock().expect("lock");
                Ok(Some(if reads.len() > 1 { reads.remove(0) } else { reads[0].clone() }))
            }
            async fn write(&self, _: u64, _: Eligibility) -> PortResult<()> {
                Err(SwitchyardError::new(ErrorName::StaleEpoch, "not in this test"))
            }
        }
        let (pair, claims, e, q) = setup(Standing::Ineligible);
        let before = now(e.read()).expect("read").expect("recorded");
        let flips = Flips(Mutex::new(vec![before.clone(), before.next(Standing::CatchingUp)]));
        let ack = now(acknowledge(&r("us-east-1"), &pair, &claims, &flips, &q, "{}")).expect("ack");
        assert_eq!(ack.durable_in, [r("us-east-1"), r("us-east-2")]);
        assert_eq!(to(&q.held()), ["us-east-1", "catch-up@us-east-1", "us-east-2"]);
    }

    /// A handover since the record: the new writer's standby starts eligible, whatever the
    /// old epoch's record said (after two swaps an old record would otherwise apply again).
    #[test]
    fn a_standing_holds_only_for_its_writer_epoch() {
        let (pair, claims, e, q) = setup(Standing::Ineligible);
        claims.set(claim(2, "us-east-1"));
        let ack = now(acknowledge(&r("us-east-1"), &pair, &claims, &e, &q, "{}")).expect("ack");
        assert_eq!(ack.durable_in, [r("us-east-1"), r("us-east-2")], "an epoch-1 record held at epoch 2");
    }

    #[test]
    fn a_claim_that_cannot_be_proven_acknowledges_nothing() {
        let (pair, claims, e, q) = setup(Standing::Eligible);
        claims.set_unprovable(Some(SwitchyardError::new(ErrorName::ServiceUnavailable, "no majority")));
        assert!(now(acknowledge(&r("us-east-1"), &pair, &claims, &e, &q, "{}")).is_err());
        assert!(q.held().is_empty());
    }

    /// Queues with bodies: orders queues (what was sent where) and catch-up queues (what is
    /// parked, by receipt), some regions unreachable.
    #[derive(Default)]
    struct Parking {
        down: Mutex<Vec<Region>>,
        sent: Mutex<Vec<(Region, String)>>,
        parked: Mutex<Vec<(Region, String, String)>>,
    }

    impl Parking {
        fn park(&self, writer: &str, bodies: &[&str]) {
            let mut p = self.parked.lock().expect("lock");
            for b in bodies {
                let receipt = format!("rh-{}", p.len());
                p.push((r(writer), receipt, (*b).to_owned()));
            }
        }
        fn sent_to(&self, region: &str) -> Vec<String> {
            self.sent.lock().expect("lock").iter().filter(|(t, _)| *t == r(region)).map(|(_, b)| b.clone()).collect()
        }
        fn parked_at(&self, region: &str) -> usize {
            self.parked.lock().expect("lock").iter().filter(|(w, _, _)| *w == r(region)).count()
        }
        fn check(&self, region: &Region) -> PortResult<()> {
            if self.down.lock().expect("lock").contains(region) {
                return Err(SwitchyardError::new(ErrorName::ServiceUnavailable, format!("{region} unreachable")));
            }
            Ok(())
        }
    }

    impl OrderIntake for Parking {
        async fn enqueue(&self, region: &Region, order: &str) -> PortResult<()> {
            self.check(region)?;
            self.sent.lock().expect("lock").push((region.clone(), order.to_owned()));
            Ok(())
        }
        async fn enqueue_for_catch_up(&self, writer: &Region, order: &str) -> PortResult<()> {
            self.check(writer)?;
            self.park(writer.as_str(), &[order]);
            Ok(())
        }
    }

    impl CatchUpQueues for Parking {
        async fn receive(&self, writer: &Region) -> PortResult<Vec<Parked>> {
            self.check(writer)?;
            let p = self.parked.lock().expect("lock");
            Ok(p.iter()
                .filter(|(w, _, _)| w == writer)
                .take(10)
                .map(|(_, receipt, body)| Parked { body: body.clone(), receipt: receipt.clone() })
                .collect())
        }
        async fn delete(&self, writer: &Region, receipt: &str) -> PortResult<()> {
            self.check(writer)?;
            self.parked.lock().expect("lock").retain(|(w, rh, _)| !(w == writer && rh == receipt));
            Ok(())
        }
        async fn is_empty(&self, writer: &Region) -> PortResult<bool> {
            Ok(self.parked_at(writer.as_str()) == 0)
        }
        async fn reachable(&self, region: &Region) -> PortResult<()> {
            self.check(region)
        }
    }

    fn standing(e: &Standings) -> (u64, Standing) {
        let e = now(e.read()).expect("read").expect("recorded");
        (e.version, e.standing)
    }

    #[test]
    fn a_standby_that_answers_again_gets_every_parked_order_then_becomes_eligible() {
        let (pair, claims, e, _) = setup(Standing::Ineligible);
        let q = Parking::default();
        let bodies: Vec<String> = (0..23).map(|i| format!("o{i}")).collect();
        q.park("us-east-1", &bodies.iter().map(String::as_str).collect::<Vec<_>>());
        q.down.lock().expect("lock").push(r("us-east-2"));
        let round = now(catch_up(&r("us-east-1"), &pair, &claims, &e, &q, &q)).expect("round");
        assert_eq!((round.moved, round.standing), (0, Some(Standing::Ineligible)), "the standby does not answer");
        assert_eq!(standing(&e), (1, Standing::Ineligible));
        q.down.lock().expect("lock").clear();
        let round = now(catch_up(&r("us-east-1"), &pair, &claims, &e, &q, &q)).expect("round");
        assert_eq!((round.moved, round.standing), (23, Some(Standing::Eligible)));
        assert_eq!(standing(&e), (3, Standing::Eligible), "through CatchingUp (version 2)");
        assert_eq!(q.sent_to("us-east-2"), bodies, "every parked order, in order");
        assert_eq!(q.parked_at("us-east-1"), 0);
    }

    #[test]
    fn a_send_that_fails_mid_catch_up_keeps_the_order_parked_and_the_standby_ineligible() {
        let (pair, claims, e, _) = setup(Standing::CatchingUp);
        let q = Parking::default();
        q.park("us-east-1", &["o1"]);
        q.down.lock().expect("lock").push(r("us-east-2"));
        assert!(now(catch_up(&r("us-east-1"), &pair, &claims, &e, &q, &q)).is_err());
        assert_eq!(standing(&e), (2, Standing::Ineligible));
        assert_eq!(q.parked_at("us-east-1"), 1, "deleted before it reached the standby");
    }

    #[test]
    fn a_new_writer_takes_in_what_the_former_writer_parked_for_it() {
        // us-east-2 writes now; us-east-1 parked orders for it while it was the writer.
        let (pair, claims, e, _) = setup(Standing::Eligible);
        claims.set(claim(2, "us-east-2"));
        let q = Parking::default();
        q.park("us-east-1", &["o1", "o2"]);
        let round = now(catch_up(&r("us-east-2"), &pair, &claims, &e, &q, &q)).expect("round");
        assert_eq!((round.taken_over, round.moved), (2, 0));
        assert_eq!(q.sent_to("us-east-2"), ["o1", "o2"]);
        // The region that does not write does nothing.
        q.park("us-east-1", &["o3"]);
        let idle = now(catch_up(&r("us-east-1"), &pair, &claims, &e, &q, &q)).expect("round");
        assert_eq!((idle.taken_over, idle.standing), (0, None));
    }
}
