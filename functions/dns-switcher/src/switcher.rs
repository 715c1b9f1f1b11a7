//! Moving traffic, safely:
//!
//! - **Only to the active writer.** The request names the epoch the execution recorded; the
//!   switcher reads the claim strongly and refuses an older epoch (`StaleEpoch`), a newer one
//!   not yet recorded or a claim not yet activated (`NotReady`), and any region the claim does
//!   not name. It therefore never fails traffic back on its own: only a recorded handover
//!   moves traffic.
//! - **Idempotent.** Traffic already at the writer is `done` without a change.
//! - **Two modes** (`switchyard_core::dns`). In both, each record's Route 53 health check
//!   follows its region's claim-aware endpoint, so only the active writer's record is
//!   healthy. `health-check`, the default, writes nothing: the activation moved traffic, and
//!   the switcher confirms the claim (data plane only, works with us-east-1 down). `records`
//!   also makes the writer's record PRIMARY through the Route 53 control plane (us-east-1).

use serde::Deserialize;
use switchyard_core::{
    DeploymentConfig, DnsMode, ErrorName, Region, SwitchyardError, WriterEpoch,
    config::{ConfigError, keys},
    order::Timestamp,
    ports::{ClaimStore, StepState, TrafficRouter},
    steps::SwitchAnswer,
};

#[derive(Debug, Clone)]
pub struct SwitcherConfig {
    pub deployment: DeploymentConfig,
    pub control_table: String,
    pub hosted_zone_id: String,
    pub api_record: String,
    pub dns_mode: DnsMode,
}

impl SwitcherConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + Clone) -> Result<Self, ConfigError> {
        DeploymentConfig::read_with(lookup, |r, _| {
            let control_table = r.required::<String>(keys::CONTROL_TABLE);
            let hosted_zone_id = r.required::<String>(keys::HOSTED_ZONE_ID);
            let api_record = r.required::<String>(keys::API_RECORD);
            let dns_mode = r.optional::<DnsMode>(keys::DNS_MODE).unwrap_or(DnsMode::HealthCheck);
            let (control_table, hosted_zone_id, api_record) = (control_table?, hosted_zone_id?, api_record?);
            Some(move |deployment| SwitcherConfig { deployment, control_table, hosted_zone_id, api_record, dns_mode })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SwitchRequest {
    /// The region that must receive traffic: the writer recorded at `epoch`.
    pub target_region: Region,
    pub epoch: WriterEpoch,
    /// Overrides the configured mode (e.g. `records` for a planned failback).
    #[serde(default, deserialize_with = "mode")]
    pub mode: Option<DnsMode>,
}

fn mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DnsMode>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| s.parse().map_err(serde::de::Error::custom)).transpose()
}

#[derive(Debug, Clone)]
pub struct Switcher<W, R> {
    config: SwitcherConfig,
    registry: W,
    /// `records` mode.
    records: R,
}

impl<W: ClaimStore, R: TrafficRouter> Switcher<W, R> {
    pub fn new(config: SwitcherConfig, registry: W, records: R) -> Self {
        Switcher { config, registry, records }
    }

    pub async fn handle(&self, req: SwitchRequest) -> Result<SwitchAnswer, SwitchyardError> {
        self.config.deployment.regions.check(&req.target_region)?;
        let claim = self.registry.strong_read().await.proven()?;
        if req.epoch < claim.epoch {
            return Err(SwitchyardError::new(
                ErrorName::StaleEpoch,
                format!("request for epoch {} but the claim is epoch {} ({})", req.epoch, claim.epoch, claim.writer),
            ));
        }
        if req.epoch > claim.epoch {
            return Err(SwitchyardError::new(
                ErrorName::NotReady,
                format!(
                    "epoch {} is not recorded yet (the claim is epoch {}): record before switching",
                    req.epoch, claim.epoch
                ),
            ));
        }
        if claim.writer != req.target_region {
            return Err(SwitchyardError::new(
                ErrorName::InvalidInput,
                format!(
                    "epoch {} names {} as writer, not {}: traffic goes only to the writer",
                    claim.epoch, claim.writer, req.target_region
                ),
            ));
        }
        if !claim.lets_apply(&req.target_region) {
            return Err(SwitchyardError::new(
                ErrorName::NotReady,
                format!(
                    "epoch {} is {}: traffic moves only to an active writer (activate first)",
                    claim.epoch, claim.phase
                ),
            ));
        }
        let mode = req.mode.unwrap_or(self.config.dns_mode);
        let (before, state) = match mode {
            DnsMode::Records => (Some(self.records.current_target().await?), self.records.route_to(&claim).await?),
            // The health checks follow the claim-aware endpoints: the claim read above,
            // active and naming the target, is what makes its record the healthy one.
            DnsMode::HealthCheck => (None, StepState::Done),
        };
        Ok(SwitchAnswer {
            state,
            mode,
            changed: before.as_ref().is_some_and(|b| *b != claim.writer),
            previous_target: before,
            claim,
            // When the switch was done; traffic moves when Route 53 answers the writer
            // (`dns::traffic_moved`, computed by `end` from the activation).
            at: Timestamp::now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use switchyard_core::{
        WriterClaim,
        ports::{InMemoryClaimStore, PortResult, StepState},
    };

    use super::*;

    /// Traffic held in memory: the region that is PRIMARY.
    #[derive(Debug)]
    struct Traffic(Mutex<Region>);

    impl TrafficRouter for Traffic {
        async fn route_to(&self, claim: &WriterClaim) -> PortResult<StepState> {
            *self.0.lock().expect("lock") = claim.writer.clone();
            Ok(StepState::Done)
        }
        async fn current_target(&self) -> PortResult<Region> {
            Ok(self.0.lock().expect("lock").clone())
        }
    }

    fn region(s: &str) -> Region {
        s.parse().expect("region")
    }

    fn switcher(claim_epoch: u64, writer: &str) -> Switcher<InMemoryClaimStore, Traffic> {
        let config = SwitcherConfig::from_lookup(|k| {
            Some(
                match k {
                    "SWITCHYARD_ENV" => "t",
                    "AWS_REGION" | "SWITCHYARD_STANDBY_REGION" => "us-east-2",
                    "SWITCHYARD_PRIMARY_REGION" => "us-east-1",
                    "SWITCHYARD_CONTROL_TABLE" => "t-control",
                    "SWITCHYARD_HOSTED_ZONE_ID" => "Z1",
                    "SWITCHYARD_API_RECORD" => "api.example.com",
                    "SWITCHYARD_DNS_MODE" => "records",
                    _ => return None,
                }
                .to_owned(),
            )
        })
        .expect("config");
        let claim = WriterClaim::active(WriterEpoch(claim_epoch), region(writer));
        Switcher::new(config, InMemoryClaimStore::new(claim), Traffic(Mutex::new(region("us-east-1"))))
    }

    fn request(target: &str, epoch: u64) -> SwitchRequest {
        SwitchRequest { target_region: region(target), epoch: WriterEpoch(epoch), mode: Some(DnsMode::Records) }
    }

    #[tokio::test]
    async fn traffic_goes_only_to_the_recorded_writer() {
        // (claim epoch, claim writer, request target, request epoch, outcome)
        let table = [
            (2, "us-east-2", "us-east-2", 2, Ok(())),
            (2, "us-east-2", "us-east-2", 1, Err(ErrorName::StaleEpoch)),
            (1, "us-east-1", "us-east-2", 2, Err(ErrorName::NotReady)),
            (2, "us-east-2", "us-east-1", 2, Err(ErrorName::InvalidInput)),
            (3, "us-east-1", "us-east-2", 2, Err(ErrorName::StaleEpoch)),
        ];
        for (epoch, writer, target, req_epoch, outcome) in table {
            let s = switcher(epoch, writer);
            let got = s.handle(request(target, req_epoch)).await.map(|_| ()).map_err(|e| e.name);
            assert_eq!(got, outcome, "claim {epoch}/{writer}, request {req_epoch}/{target}");
            let routed = s.records.current_target().await.expect("read");
            let expected = if outcome.is_ok() { target } else { "us-east-1" };
            assert_eq!(routed, region(expected), "traffic after claim {epoch}/{writer}, request {req_epoch}/{target}");
        }
    }

    #[tokio::test]
    async fn health_check_mode_writes_nothing_and_needs_an_active_claim() {
        let s = switcher(2, "us-east-2");
        let mut req = request("us-east-2", 2);
        req.mode = Some(DnsMode::HealthCheck);
        let answer = s.handle(req.clone()).await.expect("health-check");
        assert_eq!((answer.state, answer.changed, answer.previous_target), (StepState::Done, false, None));
        assert_eq!(s.records.current_target().await.ok(), Some(region("us-east-1")), "records untouched");
        s.registry.set(WriterClaim::pending(WriterEpoch(3), region("us-east-2")));
        req.epoch = WriterEpoch(3);
        assert_eq!(s.handle(req).await.map_err(|e| e.name).err(), Some(ErrorName::NotReady), "pending");
    }

    #[tokio::test]
    async fn a_second_identical_request_changes_nothing() {
        let s = switcher(2, "us-east-2");
        let first = s.handle(request("us-east-2", 2)).await.expect("switch");
        let second = s.handle(request("us-east-2", 2)).await.expect("again");
        assert_eq!((first.changed, second.changed), (true, false));
    }

    #[test]
    fn sample_events() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/dns-switcher");
        let seen = switchyard_lambda::check_sample_events::<SwitchRequest>(&dir).expect("sample events");
        assert!(seen >= 4, "only {seen} sample events");
    }

    #[test]
    fn requests_are_strict() {
        let ok: SwitchRequest =
            serde_json::from_value(json!({"targetRegion": "us-east-2", "epoch": 2, "mode": "records"})).expect("valid");
        assert_eq!(ok.mode, Some(DnsMode::Records));
        let default: SwitchRequest =
            serde_json::from_value(json!({"targetRegion": "us-east-2", "epoch": 2})).expect("valid");
        assert_eq!(default.mode, None);
        for bad in [
            json!({"targetRegion": "us-east-2", "epoch": 2, "mode": "dns"}),
            json!({"targetRegion": "us-east-2"}),
            json!({"targetRegion": "mars-1", "epoch": 2}),
            json!({"targetRegion": "us-east-2", "epoch": 2, "failback": true}),
        ] {
            assert!(serde_json::from_value::<SwitchRequest>(bad.clone()).is_err(), "{bad}");
        }
    }
}
