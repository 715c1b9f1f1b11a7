//! Which mode a consumer runs in, from the writer claim. Pure: the consumer reads the claim
//! per invocation and asks here.
//!
//! | observed claim                               | mode                                     |
//! |----------------------------------------------|------------------------------------------|
//! | names this region                            | **active**: apply, then delete           |
//! | names the other region                       | **shadow**: delete only what the local replica holds |
//! | older than, or conflicting with, one applied under | **halted**: keep everything, alarm |
//!
//! A consumer that was active and observes a newer epoch stops applying at once (it turns
//! shadow); the same rule makes a returning old writer's consumer shadow, as long as it can
//! read the new claim.

use switchyard_core::ports::{ClaimRead, ClaimStore};
use switchyard_core::{EpochCheck, Region, WriterClaim, ports::PortResult};

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
    if observed.writer == *local { Mode::Active(observed.clone()) } else { Mode::Shadow(observed.clone()) }
}

/// The newest claim of the local control table and, best effort, the peer region's.
///
/// The epoch bump after a failover is written in the new writer's region. The old writer's
/// region may come back with its own table still naming itself; reading the peer's table
/// too is what makes its consumer turn shadow. The peer read is bounded and optional
/// (static stability): an unreachable peer leaves the local claim in force.
pub async fn newest_claim<L: ClaimStore, P: ClaimStore>(
    local: &L,
    peer: Option<&P>,
    peer_timeout: std::time::Duration,
) -> PortResult<(WriterClaim, Option<String>)> {
    let mine = local.strong_read().await.proven()?;
    let Some(peer) = peer else { return Ok((mine, None)) };
    match tokio::time::timeout(peer_timeout, peer.strong_read()).await.map(ClaimRead::proven) {
        Ok(Ok(theirs)) if theirs.epoch > mine.epoch => Ok((theirs, None)),
        Ok(Ok(theirs)) if theirs.epoch == mine.epoch && theirs.writer != mine.writer => {
            Err(switchyard_core::SwitchyardError::new(
                switchyard_core::ErrorName::Internal,
                format!(
                    "split claim: epoch {} names {} here and {} in the peer region",
                    mine.epoch, mine.writer, theirs.writer
                ),
            ))
        }
        Ok(Ok(_)) => Ok((mine, None)),
        Ok(Err(e)) => Ok((mine, Some(format!("peer claim unreadable: {e}")))),
        Err(_) => Ok((mine, Some(format!("peer claim not read within {peer_timeout:?}")))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use switchyard_core::{ErrorName, WriterEpoch, ports::InMemoryClaimStore};

    use super::*;

    fn claim(epoch: u64, writer: &str) -> WriterClaim {
        WriterClaim { epoch: WriterEpoch(epoch), writer: writer.parse().expect("region") }
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
            // The store went backwards, or split: never apply.
            (Some(claim(2, "us-east-2")), claim(1, "us-east-1"), "halted"),
            (Some(claim(2, "us-east-2")), claim(2, "us-east-1"), "halted"),
        ];
        for (previous, observed, mode) in table {
            assert_eq!(decide(&east1, previous.as_ref(), &observed).name(), mode, "{previous:?} → {observed:?}");
        }
    }

    #[tokio::test]
    async fn the_newest_of_both_tables_wins_and_the_peer_is_optional() {
        let local = InMemoryClaimStore::new(claim(1, "us-east-1"));
        let peer = InMemoryClaimStore::new(claim(2, "us-east-2"));
        let t = Duration::from_secs(1);
        assert_eq!(newest_claim(&local, Some(&peer), t).await.expect("read").0, claim(2, "us-east-2"));
        assert_eq!(newest_claim(&peer, Some(&local), t).await.expect("read").0, claim(2, "us-east-2"));
        assert_eq!(
            newest_claim::<_, InMemoryClaimStore>(&local, None, t).await.expect("read").0,
            claim(1, "us-east-1")
        );
        let split = InMemoryClaimStore::new(claim(1, "us-east-2"));
        let err = newest_claim(&local, Some(&split), t).await.expect_err("split claim");
        assert_eq!(err.name, ErrorName::Internal);
    }
}
