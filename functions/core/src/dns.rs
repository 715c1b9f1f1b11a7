//! How traffic moves to the writer's region.
//!
//! Each region's failover record has a Route 53 HTTPS health check on that region's
//! **claim-aware** endpoint, [`WRITER_HEALTH_PATH`]: it answers 200 only where a strong read
//! of the one claim store shows this region holds the active claim ([`writer_health`]). So
//! at most one record is healthy, it is the writer's, and after any history of switches the
//! answer follows the claim using only the surviving region and the claim store (a region
//! cut off from the store's majority cannot read the claim, so it reports unhealthy).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Region, order::Timestamp, ports::ClaimRead};

/// How traffic is moved on failover (see ARCHITECTURE.md for the trade-off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsMode {
    /// Nothing to write: the health checks follow the claim-aware endpoints, so the
    /// activation of the claim is what moves traffic; the switcher confirms the claim. Data
    /// plane only, works with us-east-1 down. The default.
    HealthCheck,
    /// Also UPSERT the records (the writer's PRIMARY) through the Route 53 control plane
    /// (lives in us-east-1), so that with both checks unhealthy Route 53 answers the writer.
    Records,
}

/// The path of the claim-aware health endpoint of each region's order API.
pub const WRITER_HEALTH_PATH: &str = "/writer";

/// The Route 53 health checks on [`WRITER_HEALTH_PATH`] (the model emits them with these):
/// one `RequestInterval` apart, and a status changes after `FailureThreshold` consecutive
/// results against it (10 or 30 s, and 1 to 10, are what Route 53 accepts).
pub const CHECK_REQUEST_INTERVAL: Duration = Duration::from_secs(10);
pub const CHECK_FAILURE_THRESHOLD: u32 = 2;

/// The failover records' TTL: how long a resolver may still hand out the old answer once
/// Route 53 gives the new one. Short, so that clients follow within the RTO's minute.
pub const RECORD_TTL: Duration = Duration::from_secs(15);

/// How long one check may take: a checker must connect within 4 s and get the status within
/// 2 s more (Route 53 Developer Guide, "How Amazon Route 53 determines whether a health check
/// is healthy"). `RequestInterval` runs from one response to the next request, so a cycle is
/// the interval plus the check's own time.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(6);

/// The most a check's status lags its endpoint, as modelled: `FailureThreshold` results, one
/// cycle (interval plus a check's time) each. How long Route 53 then takes to answer with the
/// new status is not documented, which is why the figure is a model's.
pub fn check_follows_within() -> Duration {
    (CHECK_REQUEST_INTERVAL + CHECK_TIMEOUT) * CHECK_FAILURE_THRESHOLD
}

/// When **traffic moved** to a new writer: the moment Route 53 answers with its record, at
/// the latest (the end of the RTO, which is defined once: detected → traffic moved).
///
/// The writer's `/writer` answers 200 from its activation, so its check is healthy by
/// `activated` + [`check_follows_within`]. The old writer's `/writer` stopped answering 200
/// at the bump, before the activation, so its check is unhealthy no later. Route 53's
/// failover rule then answers the writer's record whichever of the two is PRIMARY. In
/// `records` mode the record must also have been made PRIMARY (`records_in_sync`: the
/// change's INSYNC). Resolvers may hold the old answer up to [`RECORD_TTL`] more: that is not
/// in the figure, and every output says so.
pub fn traffic_moved(activated: Timestamp, records_in_sync: Option<Timestamp>) -> Timestamp {
    let healthy = Timestamp::from_unix_millis(activated.unix_millis() + check_follows_within().as_millis() as i64);
    records_in_sync.map_or(healthy, |r| r.max(healthy))
}

/// What [`WRITER_HEALTH_PATH`] answers in `region`, from a strong read of the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterHealth {
    /// HTTP 200 when true, 503 otherwise.
    pub serving: bool,
    pub detail: String,
}

/// Serving only where the claim store proves `region` holds the **active** claim: not while
/// the claim is pending (the old writer's last commits may still land), not when the store
/// cannot prove any claim (no majority), not where another region writes.
pub fn writer_health(region: &Region, read: &ClaimRead) -> WriterHealth {
    match read {
        ClaimRead::Claim(c) if c.lets_apply(region) => {
            WriterHealth { serving: true, detail: format!("{region} writes at epoch {}", c.epoch) }
        }
        ClaimRead::Claim(c) => WriterHealth {
            serving: false,
            detail: format!(
                "the claim is epoch {} held by {} ({}): {region} does not write",
                c.epoch, c.writer, c.phase
            ),
        },
        ClaimRead::CannotProve(e) => {
            WriterHealth { serving: false, detail: format!("the claim cannot be proven from {region}: {e}") }
        }
    }
}

impl DnsMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            DnsMode::HealthCheck => "health-check",
            DnsMode::Records => "records",
        }
    }
}

impl std::str::FromStr for DnsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "health-check" => Ok(DnsMode::HealthCheck),
            "records" => Ok(DnsMode::Records),
            _ => Err("expected health-check or records".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorName, SwitchyardError, WriterClaim, WriterEpoch, testing::claim};

    #[test]
    fn only_the_active_writer_serves() {
        let east1: Region = "us-east-1".parse().expect("region");
        let cases = [
            (ClaimRead::Claim(claim(1, "us-east-1")), true),
            (ClaimRead::Claim(claim(2, "us-east-2")), false),
            (ClaimRead::Claim(WriterClaim::pending(WriterEpoch(3), east1.clone())), false),
            (ClaimRead::CannotProve(SwitchyardError::new(ErrorName::ServiceUnavailable, "no majority")), false),
        ];
        for (read, serving) in cases {
            assert_eq!(writer_health(&east1, &read).serving, serving, "{read:?}");
        }
    }
}
