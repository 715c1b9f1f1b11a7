//! The writer epoch: **one writer, always**.
//!
//! A monotonically increasing number names which region holds the writer role. Every
//! promotion moves the claim to `epoch + 1`; an older epoch can never win. A consumer applies
//! orders under the claim it read; as soon as it observes any other claim it stops applying.
//!
//! **The two-phase lease.** A bump writes the new claim [`LeasePhase::Pending`]; the state
//! machine waits [`WRITER_LEASE`], then marks it [`LeasePhase::Active`]. A consumer commits
//! only under an active claim naming its region, and only within [`COMMIT_WINDOW`] of the
//! start of the strong read that showed it, on its own monotonic clock (and its database
//! refuses a commit past the same window on the database's own clock). So the old writer's
//! last commit precedes the bump by at most the window, and the new writer's first commit
//! follows the bump by at least the lease: no moment has two writers, and no decision
//! compares two hosts' clocks.

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{ErrorName, Region, SwitchyardError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WriterEpoch(pub u64);

impl WriterEpoch {
    /// The epoch of a freshly created deployment, whose primary region is the writer.
    pub const INITIAL: WriterEpoch = WriterEpoch(1);

    pub fn next(self) -> WriterEpoch {
        WriterEpoch(self.0 + 1)
    }
}

impl fmt::Display for WriterEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// L: how long a bumped claim stays pending before it may be activated. It must exceed
/// [`COMMIT_WINDOW`] by a margin: the clock-rate difference between the hosts that measure
/// the two (the consumer's and its database's against the state machine's), and the time a
/// commit takes between the database's last check and its commit record.
pub const WRITER_LEASE: Duration = Duration::from_secs(6);

/// How long after the start of its last strong read a consumer may still commit.
pub const COMMIT_WINDOW: Duration = Duration::from_secs(5);

/// The permission a strong read showing this region's active claim gives: to commit within
/// [`COMMIT_WINDOW`] of the moment the read **started**, on this process's monotonic clock.
/// Start it before sending the read.
#[derive(Debug, Clone, Copy)]
pub struct CommitWindow {
    read_started: std::time::Instant,
}

impl CommitWindow {
    pub fn start() -> Self {
        CommitWindow { read_started: std::time::Instant::now() }
    }

    /// `LeaseLapsed` once the window has passed: the commit must not be sent.
    pub fn check(&self) -> Result<(), SwitchyardError> {
        let elapsed = self.read_started.elapsed();
        if elapsed < COMMIT_WINDOW {
            return Ok(());
        }
        Err(SwitchyardError::new(
            ErrorName::LeaseLapsed,
            format!(
                "{elapsed:?} since the strong read that allowed this commit, past the {COMMIT_WINDOW:?} window: not committed"
            ),
        ))
    }
}

/// Where a claim is in the two-phase lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LeasePhase {
    /// Just bumped: nobody applies orders under it yet (the old writer's last commits may
    /// still land, within their window).
    Pending,
    /// At least [`WRITER_LEASE`] after the bump: its writer applies. A claim item written
    /// before the lease existed (no phase) is active: it was the only writer's.
    #[default]
    Active,
}

impl fmt::Display for LeasePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LeasePhase::Pending => "pending",
            LeasePhase::Active => "active",
        })
    }
}

/// "Region R is the writer as of epoch E" (and where the claim is in the lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterClaim {
    pub epoch: WriterEpoch,
    pub writer: Region,
    #[serde(default)]
    pub phase: LeasePhase,
}

/// What a handover request amounts to, given the claim currently recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// Write this claim (conditionally on the current epoch still being the expected one).
    Bump(WriterClaim),
    /// The requested handover already happened: re-running it changes nothing.
    AlreadyDone(WriterClaim),
}

impl WriterClaim {
    pub fn initial(writer: Region) -> Self {
        WriterClaim::active(WriterEpoch::INITIAL, writer)
    }

    pub fn active(epoch: WriterEpoch, writer: Region) -> Self {
        WriterClaim { epoch, writer, phase: LeasePhase::Active }
    }

    pub fn pending(epoch: WriterEpoch, writer: Region) -> Self {
        WriterClaim { epoch, writer, phase: LeasePhase::Pending }
    }

    /// Whether `region` may apply orders under this claim.
    pub fn lets_apply(&self, region: &Region) -> bool {
        self.writer == *region && self.phase == LeasePhase::Active
    }

    /// The same claim, active (what activation writes).
    pub fn activated(&self) -> Self {
        WriterClaim { phase: LeasePhase::Active, ..self.clone() }
    }

    /// Plans moving the writer role to `target`, for a request made when the caller saw
    /// `expected` as the current epoch.
    ///
    /// Idempotent: if the claim already is `expected + 1` held by `target`, the request is
    /// the one that produced it, so it is reported done. Any other mismatch is `StaleEpoch`.
    pub fn plan_handover(&self, expected: WriterEpoch, target: &Region) -> Result<Handover, SwitchyardError> {
        if self.epoch == expected {
            if self.writer == *target {
                return Err(SwitchyardError::new(
                    ErrorName::InvalidInput,
                    format!("{target} already holds the writer role at epoch {expected}; nothing to hand over"),
                ));
            }
            return Ok(Handover::Bump(WriterClaim::pending(expected.next(), target.clone())));
        }
        if self.epoch == expected.next() && self.writer == *target {
            return Ok(Handover::AlreadyDone(self.clone()));
        }
        Err(SwitchyardError::new(
            ErrorName::StaleEpoch,
            format!(
                "request expected epoch {expected} but the current claim is epoch {} held by {}",
                self.epoch, self.writer
            ),
        ))
    }
}

/// What a consumer applying under claim `mine` must do after observing claim `observed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EpochCheck {
    /// Same claim: keep applying.
    Current,
    /// A newer epoch exists: stop applying at once, another region is (or is becoming) writer.
    Superseded { by: WriterClaim },
    /// The store returned an older epoch, or the same epoch with another writer. This cannot
    /// happen with conditional writes; treat as a broken store and stop applying.
    Inconsistent { observed: WriterClaim },
}

impl EpochCheck {
    pub fn evaluate(mine: &WriterClaim, observed: &WriterClaim) -> EpochCheck {
        match observed.epoch.cmp(&mine.epoch) {
            std::cmp::Ordering::Greater => EpochCheck::Superseded { by: observed.clone() },
            std::cmp::Ordering::Equal if observed.writer == mine.writer => EpochCheck::Current,
            _ => EpochCheck::Inconsistent { observed: observed.clone() },
        }
    }

    /// Only the current claim permits applying orders.
    pub fn may_apply(&self) -> bool {
        matches!(self, EpochCheck::Current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::claim;

    #[test]
    fn consumer_stops_on_any_other_claim() {
        let mine = claim(3, "us-east-1");
        let table = [
            (claim(3, "us-east-1"), true, "same claim"),
            (claim(4, "us-east-2"), false, "newer epoch elsewhere"),
            (claim(4, "us-east-1"), false, "newer epoch even for my own region"),
            (claim(2, "us-east-1"), false, "older epoch: store regressed"),
            (claim(3, "us-east-2"), false, "same epoch, other writer: split brain"),
        ];
        for (observed, may_apply, why) in table {
            assert_eq!(EpochCheck::evaluate(&mine, &observed).may_apply(), may_apply, "{why}");
        }
        assert!(matches!(EpochCheck::evaluate(&mine, &claim(4, "us-east-2")), EpochCheck::Superseded { .. }));
        assert!(matches!(EpochCheck::evaluate(&mine, &claim(2, "us-east-1")), EpochCheck::Inconsistent { .. }));
    }

    #[test]
    fn handover_bumps_once_and_is_idempotent() {
        let east2: Region = "us-east-2".parse().expect("region");
        let current = claim(1, "us-east-1");
        let Ok(Handover::Bump(next)) = current.plan_handover(WriterEpoch(1), &east2) else {
            panic!("expected a bump");
        };
        assert_eq!(next, WriterClaim::pending(WriterEpoch(2), east2.clone()));
        // Re-running the same request after it succeeded is a no-op.
        assert_eq!(next.plan_handover(WriterEpoch(1), &east2), Ok(Handover::AlreadyDone(next.clone())));
    }

    #[test]
    fn handover_refuses_stale_requests() {
        let east1: Region = "us-east-1".parse().expect("region");
        let east2: Region = "us-east-2".parse().expect("region");
        let table = [
            // (current, expected, target, error)
            (claim(3, "us-east-2"), 1, &east2, ErrorName::StaleEpoch),
            (claim(3, "us-east-2"), 2, &east1, ErrorName::StaleEpoch),
            (claim(3, "us-east-2"), 4, &east1, ErrorName::StaleEpoch),
            (claim(3, "us-east-2"), 3, &east2, ErrorName::InvalidInput),
        ];
        for (current, expected, target, error) in table {
            let got = current.plan_handover(WriterEpoch(expected), target).map_err(|e| e.name);
            assert_eq!(got, Err(error), "current {current:?} expected {expected} target {target}");
        }
    }
}
