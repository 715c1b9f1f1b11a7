//! The writer epoch: **one writer, always**.
//!
//! A monotonically increasing number names which region holds the writer role. Every
//! promotion moves the claim to `epoch + 1`; an older epoch can never win. A consumer applies
//! orders under the claim it read; as soon as it observes any other claim it stops applying.

use std::fmt;

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

/// "Region R is the writer as of epoch E."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterClaim {
    pub epoch: WriterEpoch,
    pub writer: Region,
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
        WriterClaim { epoch: WriterEpoch::INITIAL, writer }
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
            return Ok(Handover::Bump(WriterClaim { epoch: expected.next(), writer: target.clone() }));
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
        assert_eq!(next, claim(2, "us-east-2"));
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
