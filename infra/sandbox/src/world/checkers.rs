//! Route 53's health checkers, as the sandbox stands them in: every `RequestInterval` each
//! region's claim-aware `/writer` is called on the region's own order API (Route 53's
//! checkers stand outside both regions, so a cut between the pair does not blind them), and
//! a check's status changes only after `FailureThreshold` consecutive results against it.
//! Healthy is a 2xx or 3xx status within Route 53's deadlines (a connection within 4 s, the
//! status within 2 s more) (Route 53 Developer Guide, "How Amazon Route 53 determines whether
//! a health check is healthy",
//! <https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-determining-health-of-endpoints.html>).
//!
//! One checker stands for Route 53's fleet, which decides by the share of its checkers that
//! report healthy (more than 18 %): a status here changes between `FailureThreshold − 1`
//! and `FailureThreshold` intervals after its endpoint did (its checks take no time), within
//! the bound the timeline's "traffic moved" uses (`switchyard_core::dns::traffic_moved`). A
//! new check takes its first result as its status.

use std::{collections::BTreeMap, sync::Arc};

use serde::{Deserialize, Serialize};
use switchyard_core::{Region, dns, order::Timestamp};

use super::{World, http};

/// One region's check, as Route 53 would report it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckStatus {
    pub healthy: bool,
    /// When the status last changed (or was first taken).
    pub since: Timestamp,
    /// Consecutive results against the status so far (it changes at the threshold).
    pub against: u32,
    /// The last call: `GET URL: STATUS` or why it failed.
    pub last: String,
    pub last_at: Timestamp,
}

impl CheckStatus {
    /// The status after one more result.
    fn next(previous: Option<&CheckStatus>, passed: bool, last: String, now: Timestamp) -> CheckStatus {
        let Some(p) = previous else {
            return CheckStatus { healthy: passed, since: now, against: 0, last, last_at: now };
        };
        if passed == p.healthy {
            return CheckStatus { against: 0, last, last_at: now, ..p.clone() };
        }
        let against = p.against + 1;
        if against >= dns::CHECK_FAILURE_THRESHOLD {
            CheckStatus { healthy: passed, since: now, against: 0, last, last_at: now }
        } else {
            CheckStatus { against, last, last_at: now, ..p.clone() }
        }
    }
}

/// Checks every region's `/writer` each `RequestInterval`, until the process ends.
pub async fn run(world: Arc<World>) {
    let mut tick = tokio::time::interval(dns::CHECK_REQUEST_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Both regions at once: a slow one does not delay the other's result.
        let mut calls = tokio::task::JoinSet::new();
        for api in world.plan.apis.iter().filter(|a| a.caller == a.target) {
            let (port, region) = (api.port, api.target.clone());
            calls.spawn(async move {
                let url = format!("http://127.0.0.1:{port}{}", dns::WRITER_HEALTH_PATH);
                let answer =
                    tokio::time::timeout(dns::CHECK_TIMEOUT, http::call(port, "GET", dns::WRITER_HEALTH_PATH, None))
                        .await;
                let (passed, last) = match answer {
                    Ok(Ok((status, _))) => ((200..400).contains(&status), format!("GET {url}: {status}")),
                    Ok(Err(e)) => (false, format!("GET {url}: {e:#}")),
                    Err(_) => (false, format!("GET {url}: no answer within {:?}", dns::CHECK_TIMEOUT)),
                };
                (region, passed, last)
            });
        }
        let results = calls.join_all().await;
        let now = Timestamp::now();
        if let Ok(mut checks) = world.checks.lock() {
            for (region, passed, last) in results {
                let next = CheckStatus::next(checks.get(&region), passed, last, now);
                checks.insert(region, next);
            }
        }
    }
}

/// Every region's check now.
pub fn report(world: &World) -> BTreeMap<Region, CheckStatus> {
    world.checks.lock().map(|c| c.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_changes_after_the_threshold_of_results_against_it() {
        let t = |s: u64| Timestamp::from_unix_millis(s as i64 * 1000);
        let first = CheckStatus::next(None, true, "200".into(), t(0));
        assert!(first.healthy);
        let one_fail = CheckStatus::next(Some(&first), false, "503".into(), t(10));
        assert!(one_fail.healthy && one_fail.against == 1 && one_fail.since == t(0), "{one_fail:?}");
        let recovered = CheckStatus::next(Some(&one_fail), true, "200".into(), t(20));
        assert!(recovered.healthy && recovered.against == 0, "one failure between passes changes nothing");
        let a = CheckStatus::next(Some(&recovered), false, "503".into(), t(30));
        let b = CheckStatus::next(Some(&a), false, "503".into(), t(40));
        assert!(!b.healthy && b.since == t(40), "{b:?}");
    }
}
