//! The answers of the functions' actions, as the state machines read them: **one type per
//! action result**, serialized by the function that answers and deserialized by whatever
//! reads it (`end`, the CLI, the tests). A contract test resolves every JSONPath the ASL files
//! read against these types' serialized form, so a renamed field fails there, not in an
//! execution.
//!
//! | state (ResultPath)            | function · action        | answer                          |
//! |-------------------------------|--------------------------|---------------------------------|
//! | Begin (`$.steps.begin`)       | rds-promoter · `begin`   | [`BeginAnswer`]                 |
//! | Gate (`$.steps.gate`)         | rds-promoter · `gate`    | [`StepAnswer`]`<`[`GateResult`]`>` |
//! | Fence (`$.steps.fence`)       | rds-promoter · `fence`   | [`StepAnswer`]`<`[`FenceResult`]`>` |
//! | CatchUp (`$.steps.catchUp`)   | rds-promoter · `catchUp` | [`StepAnswer`]`<`[`CatchUpResult`]`>` |
//! | Promote (`$.steps.promote`)   | rds-promoter · `promote` | [`StepAnswer`]`<`[`PromoteResult`]`>` |
//! | Record (`$.steps.record`)     | rds-promoter · `record`  | [`StepAnswer`]`<`[`RecordResult`]`>` |
//! | SwitchTraffic (`$.steps.switch`) | dns-switcher          | [`SwitchAnswer`]                |
//! | AwaitConsumer (`$.steps.consumer`) | order-consumer · activation | [`ActivationAnswer`]   |
//! | VerifyHealth (`$.steps.health`) | health-probe          | [`HealthAnswer`] (selected)     |
//! | EndSucceeded/EndFailed (`$.summary`) | rds-promoter · `end` | [`EndAnswer`]          |
//!
//! Optional fields serialize as `null`, never as a missing key, so a Choice's `IsNull` reads
//! them and a JSONPath into them always resolves.

use serde::{Deserialize, Serialize};

use crate::{
    FailoverMode, GateDecision, Region, WriterClaim, WriterEpoch,
    health::{Health, RegionVerdict},
    ledger::Timeline,
    order::Timestamp,
    ports::StepState,
};

/// The rds-promoter's step actions (every action but `begin` and `end`, which keep the ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PromoterAction {
    /// The cooldown and the lag gate (state `Gate`).
    Gate,
    /// Make the old writer refuse writes where it answers (state `Fence`; the drain of a planned switchover).
    Fence,
    /// Planned only: wait until the replica has replayed everything.
    CatchUp,
    Promote,
    /// Bump the writer epoch to the promoted region (state `Record`); the claim is pending.
    Record,
    /// After the state machine waited the lease (state `WaitForLease`): mark the claim
    /// active, which lets the new writer's consumer apply (state `Activate`).
    Activate,
}

/// The envelope of a promoter step's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepAnswer<T> {
    pub action: PromoterAction,
    pub target_region: Region,
    /// When the promoter answered (Unix ms).
    pub at_ms: u64,
    pub result: T,
}

/// Whether the handover a step was asked about still has to happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HandoverPlan {
    /// The epoch is still the expected one: the handover is to come.
    Bump,
    /// The requested handover happened already (a re-run): nothing to do.
    AlreadyDone,
}

/// Where the lag the gate judged was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LagSource {
    /// The old writer and the replica (WAL positions, replay lag).
    Both,
    /// The replica alone: the old writer did not answer (the age of its last replayed commit).
    Target,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateResult {
    pub handover: HandoverPlan,
    /// The claim as read now (the handover's, when already done).
    pub claim: WriterClaim,
    /// The lag gate's decision; `None` when the handover is already done.
    pub gate: Option<GateDecision>,
    pub lag_measured_from: Option<LagSource>,
}

/// A fence step's state: a step's, or `unreachable` when an unplanned failover's old writer
/// does not answer (it is fenced when it returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FenceState {
    Done,
    InProgress,
    Unreachable,
}

impl From<StepState> for FenceState {
    fn from(s: StepState) -> FenceState {
        match s {
            StepState::Done => FenceState::Done,
            StepState::InProgress => FenceState::InProgress,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FenceResult {
    pub state: FenceState,
    /// The region fenced; `None` when unreachable.
    pub fenced: Option<Region>,
    /// Why it could not be fenced.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatchUpResult {
    pub state: StepState,
    pub handover: HandoverPlan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromoteResult {
    pub state: StepState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordResult {
    pub state: StepState,
    /// The claim now recorded.
    pub claim: WriterClaim,
    /// False when the bump had happened already (a re-run).
    pub changed: bool,
    /// How long the state machine waits before `activate` (`switchyard_core::WRITER_LEASE`):
    /// the `Wait` takes its length from here, so it cannot drift from the consumers' window.
    pub lease_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivateResult {
    pub state: StepState,
    /// The claim now recorded: active.
    pub claim: WriterClaim,
    /// False when it was active already (a re-run).
    pub changed: bool,
}

/// What the promoter's scheduled re-fence did (EventBridge, every minute, in each region).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RefenceOutcome {
    /// This region holds the active claim and the peer's database refuses writes now
    /// (fenced now, or already fenced, or a replica).
    Fenced,
    /// The peer's database did not answer: the next minute tries again.
    Unreachable,
    /// This region does not hold the active claim: nothing to fence from here.
    NotWriter,
    /// An execution holds the failover lock: it may be moving the writer, so this round
    /// fences nothing.
    LockHeld,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefenceAnswer {
    pub outcome: RefenceOutcome,
    pub region: Region,
    pub peer: Region,
    /// The claim read (under the lock when one was taken), when it could be read.
    pub claim: WriterClaim,
    pub reason: Option<String>,
}

/// What `begin` concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BeginOutcome {
    /// This execution holds the lock: it does the work.
    Acquired,
    /// Another execution handles this incident: this one ends, successfully, doing nothing.
    Duplicate,
    /// This region writes already.
    NothingToDo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BeginAnswer {
    pub execution: String,
    pub incident: String,
    pub mode: FailoverMode,
    /// The region the writer moves to: the one the execution runs in.
    pub target_region: Region,
    pub old_writer: Region,
    pub allow_data_loss: bool,
    /// An operator failover within the cooldown: the gate does not hold it back.
    pub ignore_cooldown: bool,
    pub outcome: BeginOutcome,
    /// The claim as `begin` read it.
    pub claim: WriterClaim,
    /// `acquired`: the epoch every later step is conditional on.
    pub expected_epoch: Option<WriterEpoch>,
    pub lock_expires_at: Option<Timestamp>,
    /// `duplicate`: why (which execution handles the incident). `acquired`: whose abandoned
    /// lock this execution took over, if it did.
    pub cause: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwitchAnswer {
    pub state: StepState,
    pub mode: crate::DnsMode,
    pub claim: WriterClaim,
    /// `records` mode: the region whose record was PRIMARY before. `health-check` mode:
    /// none, since nothing is written (the checks follow each region's claim-aware endpoint).
    pub previous_target: Option<Region>,
    /// Whether this call rewrote the records (always false in `health-check` mode).
    pub changed: bool,
    /// When the switch was done (meaningful when `state` is done): in `records` mode the
    /// change's INSYNC, in `health-check` mode the confirmation of the active claim. Not when
    /// traffic moved: that is Route 53's answer ([`crate::dns::traffic_moved`]).
    pub at: Timestamp,
}

/// The consumer's answer to `{"activation": {"epoch": N}}`: it runs active under N.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivationAnswer {
    pub region: Region,
    pub epoch: WriterEpoch,
    /// The first order it applied under the epoch, if any yet: the timeline's "first order
    /// applied" mark.
    pub first_applied_at: Option<Timestamp>,
    pub applied_under_epoch: u64,
}

/// What the state machines read of the health probe's answer (state `VerifyHealth`, through
/// its `ResultSelector`): the last round's verdicts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthAnswer {
    /// Each probed region's verdict in the last round.
    pub verdicts: std::collections::BTreeMap<Region, RegionVerdict>,
    /// The probing region's own health in the last round (`verdicts[probedFrom]`), under a
    /// fixed name so a `Choice` can read it.
    pub own_health: Option<Health>,
    /// The other region's health as the probing region saw it in the last round (its
    /// endpoint): the failover's confirmation reads it (state `ConfirmOutage`).
    #[serde(default)]
    pub peer_health: Option<Health>,
}

/// `end`'s answer, at `$.summary`: what the notification says and the execution's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndAnswer {
    pub timeline: Timeline,
    pub lock_released: bool,
    /// The claim after the execution, if it could be read.
    pub writer: Option<WriterClaim>,
    pub subject: String,
    pub message: String,
}

/// What `end` reads of `$.steps`: the marks the promoter did not see itself. Other steps are
/// ignored; a step that did not run is `None`, and so is one whose answer has another shape
/// (a function of another version during a deploy): `end` must close the ledger entry and
/// release the lock whatever it finds here, so a mark is lost rather than the lock kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepsSoFar {
    #[serde(default, deserialize_with = "lenient")]
    pub switch: Option<SwitchAnswer>,
    #[serde(default, deserialize_with = "lenient")]
    pub consumer: Option<ActivationAnswer>,
}

fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

impl StepsSoFar {
    /// The switch, if it is done: traffic follows the writer (in `records` mode from the
    /// change's INSYNC, `at`).
    pub fn switch_done(&self) -> Option<&SwitchAnswer> {
        self.switch.as_ref().filter(|s| s.state == StepState::Done)
    }

    /// When traffic moved ([`crate::dns::traffic_moved`]), given the activation: only a switch
    /// that is done counts. Without the activation's mark (lost to a failed write), the
    /// switch's own time bounds it: the switch runs only once the claim is active.
    pub fn traffic_moved(&self, activated: Option<Timestamp>) -> Option<Timestamp> {
        let switch = self.switch_done()?;
        let in_sync = (switch.mode == crate::DnsMode::Records).then_some(switch.at);
        Some(crate::dns::traffic_moved(activated.unwrap_or(switch.at), in_sync))
    }

    pub fn first_order_applied(&self) -> Option<Timestamp> {
        self.consumer.as_ref().and_then(|c| c.first_applied_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_in_progress_moves_no_traffic() {
        let steps: StepsSoFar = serde_json::from_value(serde_json::json!({
            "begin": { "anything": 1 },
            "switch": {
                "state": "inProgress", "mode": "records", "claim": { "epoch": 2, "writer": "us-east-2" },
                "previousTarget": "us-east-1", "changed": true, "at": "2026-12-01T10:00:00Z"
            },
            "consumer": {
                "region": "us-east-2", "epoch": 2, "firstAppliedAt": "2026-12-01T10:00:05Z", "appliedUnderEpoch": 3
            }
        }))
        .expect("typed");
        assert_eq!(steps.traffic_moved("2026-12-01T10:00:01Z".parse().ok()), None);
        assert_eq!(steps.first_order_applied(), "2026-12-01T10:00:05Z".parse().ok());
        assert_eq!(StepsSoFar::default().traffic_moved("2026-12-01T10:00:01Z".parse().ok()), None);
        // An answer of another shape loses its mark, never the whole `end`.
        let odd: StepsSoFar =
            serde_json::from_value(serde_json::json!({ "switch": { "state": "done" }, "consumer": 7 }))
                .expect("lenient");
        assert_eq!(odd, StepsSoFar::default());
    }

    #[test]
    fn step_states_are_camel_case_on_the_wire() {
        assert_eq!(serde_json::to_value(StepState::InProgress).ok(), Some(serde_json::json!("inProgress")));
        assert_eq!(serde_json::to_value(FenceState::Unreachable).ok(), Some(serde_json::json!("unreachable")));
        assert_eq!(serde_json::to_value(PromoterAction::CatchUp).ok(), Some(serde_json::json!("catchUp")));
    }
}
