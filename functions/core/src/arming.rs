//! Arming: an automatic failover moves the writer only into a region an operator armed as
//! the takeover target. An alarm can fire for reasons that are not an outage (an endpoint
//! blip seen from one side, a partition); arming is the person's standing decision that this
//! region may take over on its own.
//!
//! The arming lives in the claim store (`pk = arming`), written by the operator's command
//! (`switchyard arm`), checked by `begin` of every unplanned failover. **It holds only for
//! the writer epoch it was armed under**: a handover voids it, so after a failover the old
//! region is disarmed (no automatic failback, whatever the cooldown) until someone arms it
//! again. A freshly seeded claim store has no arming: a new deployment is disarmed.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::{ErrorName, Region, SwitchyardError, WriterEpoch, order::Timestamp, ports::PortResult};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arming {
    /// The region that may take over automatically.
    pub target: Region,
    /// The writer epoch it was armed under.
    pub epoch: WriterEpoch,
    /// Who armed it (a person, a drill).
    pub armed_by: String,
    pub at: Timestamp,
}

/// The arming, in the claim store.
pub trait ArmingStore: Send + Sync {
    /// The recorded arming (strongly consistent), if any.
    fn armed(&self) -> impl Future<Output = PortResult<Option<Arming>>> + Send;
    fn arm(&self, arming: &Arming) -> impl Future<Output = PortResult<()>> + Send;
    fn disarm(&self) -> impl Future<Output = PortResult<()>> + Send;
}

/// Whether an automatic failover into `target` may start while the claim is at `epoch`:
/// `NotReady` (a person decides) unless `target` is armed under this very epoch.
pub fn check(armed: Option<&Arming>, target: &Region, epoch: WriterEpoch) -> Result<(), SwitchyardError> {
    let refuse = |why: String| {
        SwitchyardError::new(
            ErrorName::NotReady,
            format!(
                "{target} is not armed as the takeover target ({why}): an automatic failover does not move the writer; arm it with `switchyard arm {target}`, or switch over by hand"
            ),
        )
    };
    match armed {
        Some(a) if a.target == *target && a.epoch == epoch => Ok(()),
        Some(a) if a.target == *target => Err(refuse(format!(
            "armed by {} at epoch {}, and a handover since made epoch {epoch}",
            a.armed_by, a.epoch
        ))),
        Some(a) => Err(refuse(format!("{} is armed, by {}", a.target, a.armed_by))),
        None => Err(refuse("nothing is armed".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_armed_region_under_the_current_epoch_takes_over_automatically() {
        let r = |s: &str| s.parse::<Region>().expect("region");
        let armed =
            Arming { target: r("us-east-2"), epoch: WriterEpoch(1), armed_by: "sre".into(), at: Timestamp::now() };
        assert!(check(Some(&armed), &r("us-east-2"), WriterEpoch(1)).is_ok());
        for (arming, target, epoch) in [
            (None, "us-east-2", 1),
            (Some(&armed), "us-east-1", 1),
            // The failover to us-east-2 made epoch 2: the arming is void, no failback.
            (Some(&armed), "us-east-2", 2),
        ] {
            let err = check(arming, &r(target), WriterEpoch(epoch)).expect_err("refused");
            assert_eq!(err.name, ErrorName::NotReady, "{err}");
            assert!(err.message.contains("switchyard arm"), "{err}");
        }
    }
}
