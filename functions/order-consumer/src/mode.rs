//! Which mode a consumer runs in, from the writer claim. Pure: the consumer reads the claim
//! per invocation and asks here.
//!
//! | observed claim                               | mode                                     |
//! |----------------------------------------------|------------------------------------------|
//! | names this region, lease active              | **active**: apply, then delete           |
//! | names the other region, or is still pending  | **shadow**: delete only what the local database holds |
//! | older than, or conflicting with, one applied under | **halted**: keep everything, alarm |
//!
//! A consumer that was active and observes a newer epoch stops applying at once (it turns
//! shadow); the same rule makes a returning old writer's consumer shadow. The claim is read
//! strongly from the one claim store, so a region cut off from its majority reads nothing and
//! applies nothing.

use switchyard_core::{EpochCheck, Region, WriterClaim};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Active(WriterClaim),
    Shadow(WriterClaim),
    /// The claim store contradicts itself or went backwards: apply nothing, delete nothing.
    Halted(String),
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Active(_) => "active",
            Mode::Shadow(_) => "shadow",
            Mode::Halted(_) => "halted",
        }
    }
}

/// `previous`: the claim this process last ran under, if any.
pub fn decide(local: &Region, previous: Option<&WriterClaim>, observed: &WriterClaim) -> Mode {
    if let Some(mine) = previous
        && let EpochCheck::Inconsistent { observed } = EpochCheck::evaluate(mine, observed)
    {
        return Mode::Halted(format!(
            "the writer claim went from epoch {} ({}) to epoch {} ({}): the claim store is inconsistent",
            mine.epoch, mine.writer, observed.epoch, observed.writer
        ));
    }
    // A pending claim naming this region: the old writer may still commit within its window,
    // so this region waits for the activation (its database already holds what it deletes).
    if observed.lets_apply(local) { Mode::Active(observed.clone()) } else { Mode::Shadow(observed.clone()) }
}

#[cfg(test)]
mod tests {
    use switchyard_core::WriterEpoch;

    use super::*;

    fn claim(epoch: u64, writer: &str) -> WriterClaim {
        WriterClaim::active(WriterEpoch(epoch), writer.parse().expect("region"))
    }

    fn pending(epoch: u64, writer: &str) -> WriterClaim {
        WriterClaim::pending(WriterEpoch(epoch), writer.parse().expect("region"))
    }

    #[test]
    fn mode_follows_the_claim_and_stops_on_a_newer_epoch() {
        let east1: Region = "us-east-1".parse().expect("region");
        let table = [
            (None, claim(1, "us-east-1"), "active"),
            (None, claim(1, "us-east-2"), "shadow"),
            (Some(claim(1, "us-east-1")), claim(1, "us-east-1"), "active"),
            // Failover: the newer epoch names the other region; stop applying.
            (Some(claim(1, "us-east-1")), claim(2, "us-east-2"), "shadow"),
            // Failback: active again under the newer epoch.
            (Some(claim(2, "us-east-2")), claim(3, "us-east-1"), "active"),
            // Bumped but not yet activated: the lease keeps the new writer waiting.
            (Some(claim(1, "us-east-2")), pending(2, "us-east-1"), "shadow"),
            (None, pending(2, "us-east-1"), "shadow"),
            (Some(pending(2, "us-east-1")), claim(2, "us-east-1"), "active"),
            // The store went backwards, or split: never apply.
            (Some(claim(2, "us-east-2")), claim(1, "us-east-1"), "halted"),
            (Some(claim(2, "us-east-2")), claim(2, "us-east-1"), "halted"),
        ];
        for (previous, observed, mode) in table {
            assert_eq!(decide(&east1, previous.as_ref(), &observed).name(), mode, "{previous:?} → {observed:?}");
        }
    }
}
