//! Replication state of a regional database and the RPO budget it is judged against.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseRole {
    /// Accepts writes.
    Writer,
    /// Read-only, replaying the writer's log.
    Replica,
}

/// How far a replica is behind its writer.
///
/// `bytes` is the distance in the write-ahead log between what the writer has written and
/// what the replica has replayed; `seconds` is how old the newest replayed change is while the
/// replica is behind (zero when caught up). Bytes measure the amount at risk, seconds the RPO.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReplicationLag {
    pub bytes: u64,
    pub seconds: f64,
}

impl ReplicationLag {
    pub const NONE: ReplicationLag = ReplicationLag { bytes: 0, seconds: 0.0 };
}

/// A lag bound taken from the replica alone (its clock minus its last replayed commit's
/// time on the writer's clock), corrected for the writer's clock running ahead: `ahead`
/// seconds at least, as the replica's WAL receiver last measured it (the probe's
/// `WriterClockAheadSeconds`). Without the correction a writer clock S seconds ahead
/// understates the lag by S, and the gate could pass above the budget (#18). A writer clock
/// behind only overstates it (the safe side): nothing is subtracted. `None` (never measured)
/// leaves the bound as it is; what is left uncorrected is the measurement's own error, the
/// one-way delay of the WAL sender's last message.
pub fn skew_corrected(lag: ReplicationLag, ahead: Option<f64>) -> ReplicationLag {
    ReplicationLag { seconds: lag.seconds + ahead.unwrap_or(0.0).max(0.0), ..lag }
}

/// What one database node reports about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationStatus {
    pub role: DatabaseRole,
    /// Current log position as the engine prints it (e.g. PostgreSQL `0/3000148`).
    pub log_position: String,
    /// For a writer: the lag of its most-behind replica, if any replica is connected.
    /// For a replica: its own lag behind the writer, if it knows the writer's position.
    pub lag: Option<ReplicationLag>,
    /// For a writer: how many replicas stream from it. For a replica: 1 if its WAL receiver
    /// is streaming, 0 otherwise.
    pub streaming_peers: u32,
    /// A writer that refuses writes: fenced (always false for a replica, which refuses them by
    /// nature).
    #[serde(default)]
    pub fenced: bool,
}

/// The recovery point objective: how much time of acknowledged writes a failover may lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpoBudget(#[serde(with = "seconds")] pub Duration);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LagVerdict {
    WithinBudget,
    AboveBudget,
    /// No lag figure is available (replica unreachable, not streaming): the gate cannot
    /// prove the budget holds, so it must be treated like `AboveBudget` by a safe caller.
    Unknown,
}

impl RpoBudget {
    pub fn judge(&self, lag: Option<&ReplicationLag>) -> LagVerdict {
        match lag {
            None => LagVerdict::Unknown,
            Some(l) if l.seconds <= self.0.as_secs_f64() => LagVerdict::WithinBudget,
            Some(_) => LagVerdict::AboveBudget,
        }
    }
}

/// Serde for a `Duration` as whole seconds.
pub(crate) mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_clock_ahead_is_added_to_the_replica_s_own_bound_and_one_behind_is_not_subtracted() {
        let age = ReplicationLag { bytes: 0, seconds: 20.0 };
        // The writer's clock 50 s ahead: its last replayed commit looked 20 s old, it is 70.
        assert_eq!(skew_corrected(age, Some(50.0)).seconds, 70.0);
        assert_eq!(skew_corrected(age, Some(-50.0)).seconds, 20.0);
        assert_eq!(skew_corrected(age, None).seconds, 20.0);
        let budget = RpoBudget(Duration::from_secs(60));
        assert_eq!(budget.judge(Some(&skew_corrected(age, Some(50.0)))), LagVerdict::AboveBudget);
    }

    #[test]
    fn lag_gate() {
        let budget = RpoBudget(Duration::from_secs(60));
        let lag = |seconds| ReplicationLag { bytes: 1, seconds };
        let table = [
            (Some(lag(0.0)), LagVerdict::WithinBudget),
            (Some(lag(59.9)), LagVerdict::WithinBudget),
            (Some(lag(60.0)), LagVerdict::WithinBudget),
            (Some(lag(60.1)), LagVerdict::AboveBudget),
            (None, LagVerdict::Unknown),
        ];
        for (l, verdict) in table {
            assert_eq!(budget.judge(l.as_ref()), verdict, "{l:?}");
        }
    }
}
