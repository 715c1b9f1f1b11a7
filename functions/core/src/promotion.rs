//! The lag gate: may an unplanned failover proceed, given how far behind the replica is?

use serde::{Deserialize, Serialize};

use crate::{ErrorName, LagVerdict, ReplicationLag, RpoBudget, SwitchyardError};

/// Why the writer moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailoverMode {
    /// Switchover on request: the old writer is fenced and the replica catches up first, so
    /// nothing is lost whatever the lag (it only makes the switchover slower).
    Planned,
    /// Failover after an outage: whatever the replica has not received is lost.
    Unplanned,
}

/// The gate's decision, recorded in the execution's evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateDecision {
    pub mode: FailoverMode,
    pub verdict: LagVerdict,
    pub lag: Option<ReplicationLag>,
    /// Orders the platform receives during `lag.seconds`: applied by the old writer and not in
    /// the target's database yet. Under the acknowledgement contract none is lost (each is
    /// still in the target's queue: a shadow lets an order go only once its replica holds it),
    /// but each is applied again there, under the new epoch and after orders that came later.
    pub orders_in_lag: Option<u64>,
    /// True when the gate let an above-budget or unknown lag through because data loss was
    /// explicitly allowed.
    pub data_loss_accepted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LagGate {
    pub budget: RpoBudget,
    pub orders_per_hour: u32,
}

impl LagGate {
    pub fn orders_in_lag(&self, lag: &ReplicationLag) -> u64 {
        (lag.seconds.max(0.0) * f64::from(self.orders_per_hour) / 3600.0).ceil() as u64
    }

    /// Planned: always passes. Unplanned: passes within budget; above budget or with unknown
    /// lag it fails with `LagAboveBudget` unless `allow_data_loss`.
    pub fn check(
        &self,
        mode: FailoverMode,
        lag: Option<ReplicationLag>,
        allow_data_loss: bool,
    ) -> Result<GateDecision, SwitchyardError> {
        let verdict = self.budget.judge(lag.as_ref());
        let orders_in_lag = lag.as_ref().map(|l| self.orders_in_lag(l));
        let risky = mode == FailoverMode::Unplanned && verdict != LagVerdict::WithinBudget;
        if risky && !allow_data_loss {
            let budget = self.budget.0.as_secs();
            let what = match (&lag, orders_in_lag) {
                (Some(l), Some(n)) => format!(
                    "replication lag {:.1} s ({} bytes) exceeds the RPO budget of {budget} s; about {n} orders in the lag (applied there, not yet here)",
                    l.seconds, l.bytes
                ),
                _ => format!("replication lag is unknown, so the RPO budget of {budget} s cannot be shown to hold"),
            };
            return Err(SwitchyardError::new(
                ErrorName::LagAboveBudget,
                format!("{what}; set allowDataLoss to fail over anyway"),
            ));
        }
        Ok(GateDecision { mode, verdict, lag, orders_in_lag, data_loss_accepted: risky })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const GATE: LagGate = LagGate { budget: RpoBudget(Duration::from_secs(60)), orders_per_hour: 10_000 };

    fn lag(seconds: f64) -> Option<ReplicationLag> {
        Some(ReplicationLag { bytes: 4096, seconds })
    }

    #[test]
    fn gate_table() {
        use FailoverMode::*;
        // (mode, lag, allow data loss, passes, data loss accepted)
        let table = [
            (Unplanned, lag(1.0), false, true, false),
            (Unplanned, lag(60.0), false, true, false),
            (Unplanned, lag(90.0), false, false, false),
            (Unplanned, lag(90.0), true, true, true),
            (Unplanned, None, false, false, false),
            (Unplanned, None, true, true, true),
            (Planned, lag(900.0), false, true, false),
            (Planned, None, false, true, false),
        ];
        for (mode, l, allow, passes, accepted) in table {
            match GATE.check(mode, l, allow) {
                Ok(d) => {
                    assert!(passes, "{mode:?} {l:?} allow={allow} passed");
                    assert_eq!(d.data_loss_accepted, accepted, "{mode:?} {l:?} allow={allow}");
                }
                Err(e) => {
                    assert!(!passes, "{mode:?} {l:?} allow={allow} refused: {e}");
                    assert_eq!(e.name, ErrorName::LagAboveBudget);
                }
            }
        }
    }

    #[test]
    fn refusal_states_lag_and_orders_in_lag() {
        // 10,000 orders an hour for 90 s is 250 orders.
        let e = GATE.check(FailoverMode::Unplanned, lag(90.0), false).expect_err("above budget");
        for needle in ["90.0 s", "4096 bytes", "60 s", "about 250 orders in the lag", "allowDataLoss"] {
            assert!(e.message.contains(needle), "{needle:?} not in {:?}", e.message);
        }
        assert_eq!(GATE.orders_in_lag(&ReplicationLag { bytes: 1, seconds: 0.1 }), 1);
        assert_eq!(GATE.orders_in_lag(&ReplicationLag::NONE), 0);
    }
}
