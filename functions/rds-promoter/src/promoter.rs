//! The promoter's actions. A failover runs them in order; each is idempotent, so a retried
//! or repeated execution changes nothing that is already done:
//!
//! | action    | does                                                                    |
//! |-----------|-------------------------------------------------------------------------|
//! | `gate`    | epoch still as expected, then the cooldown and the lag gate (unplanned) → gate decision |
//! | `fence`   | make the old writer refuse writes (unplanned: only where reachable)     |
//! | `catchUp` | planned only: `done` once the replica has replayed the fenced writer    |
//! | `promote` | make this region's database the writer (`inProgress` → poll again)      |
//! | `record`  | bump the writer epoch (conditional write) to this region, here and (best effort) in the peer's table |
//!
//! Each answers a [`StepAnswer`] of its own result type (`switchyard_core::steps`). With
//! `execution` set (a state machine passes `$$.Execution.Name`), `gate` and `record` add their
//! marks to that execution's timeline; `begin` and `end` (see `ledger.rs`) open and close it.
//!
//! The promoter runs in the region it promotes (static stability: a failover never depends
//! on the failed region). The writer claim is read on every invocation, never cached.

use std::{
    collections::BTreeMap,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_core::{
    ConfigReader, DeploymentConfig, ErrorName, FailoverMode, Handover, LagGate, Region, SwitchyardError, WriterClaim,
    WriterEpoch,
    config::{ConfigError, keys},
    ledger::{Cooldown, ExecutionLedger, HandoverRecord, RpoFigure, Timeline},
    order::Timestamp,
    ports::{ClaimStore, StepState},
    steps::{
        BeginAnswer, CatchUpResult, EndAnswer, FenceResult, FenceState, GateResult, HandoverPlan, LagSource,
        PeerTableWrite, PromoteResult, PromoterAction, RecordResult, StepAnswer,
    },
};
use switchyard_postgres::DbEndpoints;

use crate::{
    engine::Engine,
    ledger::{self, BeginRequest, EndRequest},
};

/// Which database engine the promoter acts on, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineConfig {
    /// `SWITCHYARD_DB_ENGINE=postgres` (default): `SWITCHYARD_DB_ENDPOINTS`.
    Postgres(DbEndpoints),
    /// `SWITCHYARD_DB_ENGINE=aurora`: `SWITCHYARD_GLOBAL_CLUSTER` and `SWITCHYARD_DB_CLUSTER_ARNS`.
    Aurora { global_cluster: String, cluster_arns: BTreeMap<Region, String> },
}

/// A JSON map region → regional cluster ARN.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
struct ClusterArns(BTreeMap<Region, String>);

impl std::str::FromStr for ClusterArns {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_str(s).map_err(|e| format!("expected a JSON map of region to cluster ARN: {e}"))
    }
}

#[derive(Debug, Clone)]
pub struct PromoterConfig {
    pub deployment: DeploymentConfig,
    pub control_table: String,
    pub engine: EngineConfig,
    pub orders_per_hour: u32,
    pub cooldown: Cooldown,
}

impl PromoterConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + Clone) -> Result<Self, ConfigError> {
        let deployment = DeploymentConfig::from_lookup(lookup.clone());
        let mut r = ConfigReader::new(lookup);
        let control_table = r.required::<String>(keys::CONTROL_TABLE);
        let orders_per_hour = r.optional::<u32>(keys::ORDERS_PER_HOUR).unwrap_or(10_000);
        let cooldown = r
            .optional::<u64>(keys::FAILOVER_COOLDOWN_SECONDS)
            .map_or(Cooldown::DEFAULT, |s| Cooldown(std::time::Duration::from_secs(s)));
        let engine = match r.optional::<String>(keys::DB_ENGINE).as_deref().unwrap_or("postgres") {
            "postgres" => r.required::<DbEndpoints>(keys::DB_ENDPOINTS).map(EngineConfig::Postgres),
            "aurora" => {
                let global_cluster = r.required::<String>(keys::GLOBAL_CLUSTER);
                let arns = r.required::<ClusterArns>(keys::DB_CLUSTER_ARNS);
                global_cluster
                    .zip(arns)
                    .map(|(global_cluster, arns)| EngineConfig::Aurora { global_cluster, cluster_arns: arns.0 })
            }
            other => {
                r.invalid(keys::DB_ENGINE, other, "expected postgres or aurora");
                None
            }
        };
        if let (Ok(d), Some(engine)) = (&deployment, &engine) {
            for region in d.regions.iter() {
                let (known, key) = match engine {
                    EngineConfig::Postgres(dbs) => (dbs.0.contains_key(region), keys::DB_ENDPOINTS),
                    EngineConfig::Aurora { cluster_arns, .. } => {
                        (cluster_arns.contains_key(region), keys::DB_CLUSTER_ARNS)
                    }
                };
                if !known {
                    r.invalid(key, "", format!("no endpoint for {region}"));
                }
            }
        }
        r.finish_after(deployment.as_ref().err())?;
        match (deployment, control_table, engine) {
            (Ok(deployment), Some(control_table), Some(engine)) => {
                Ok(PromoterConfig { deployment, control_table, engine, orders_per_hour, cooldown })
            }
            // finish_after returned Ok, so every required value was read.
            _ => Err(ConfigError { problems: Vec::new() }),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// The task input a state machine sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromoteRequest {
    pub action: PromoterAction,
    /// The region to become the writer: the one this function runs in.
    pub target_region: Region,
    pub mode: FailoverMode,
    /// The epoch the execution saw when it decided to fail over.
    pub expected_epoch: WriterEpoch,
    #[serde(default)]
    pub allow_data_loss: bool,
    /// The execution whose timeline gets this step's mark (`$$.Execution.Name`).
    #[serde(default)]
    pub execution: Option<String>,
}

/// Every request the promoter takes, by `action`.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Step(PromoteRequest),
    Begin(BeginRequest),
    End(EndRequest),
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Request::parse(Value::deserialize(d)?).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl Request {
    pub fn parse(mut event: Value) -> Result<Request, SwitchyardError> {
        let bad =
            |e: serde_json::Error| SwitchyardError::new(ErrorName::InvalidInput, format!("malformed request: {e}"));
        match event.get("action").and_then(Value::as_str) {
            Some(ledger @ ("begin" | "end")) => {
                let begin = ledger == "begin";
                if let Some(o) = event.as_object_mut() {
                    o.remove("action");
                }
                if begin {
                    serde_json::from_value(event).map(Request::Begin).map_err(bad)
                } else {
                    serde_json::from_value(event).map(Request::End).map_err(bad)
                }
            }
            _ => serde_json::from_value(event).map(Request::Step).map_err(bad),
        }
    }
}

/// How long the peer region's control table may take to update; the failover never waits
/// on the failed region (static stability).
const PEER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Promoter<R, L> {
    config: PromoterConfig,
    registry: R,
    ledger: L,
    /// The peer region's control table, written best effort by `record`.
    peer: Option<(R, L)>,
    engine: Engine,
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default()
}

/// A step's result in its envelope.
fn envelope<T>(req: &PromoteRequest, result: T) -> StepAnswer<T> {
    StepAnswer { action: req.action, target_region: req.target_region.clone(), at_ms: now_ms() as u64, result }
}

/// A promoter answer: one type per action (`switchyard_core::steps`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Begin(BeginAnswer),
    Gate(StepAnswer<GateResult>),
    Fence(StepAnswer<FenceResult>),
    CatchUp(StepAnswer<CatchUpResult>),
    Promote(StepAnswer<PromoteResult>),
    Record(StepAnswer<RecordResult>),
    End(Box<EndAnswer>),
}

impl<R: ClaimStore, L: ExecutionLedger> Promoter<R, L> {
    pub fn new(config: PromoterConfig, registry: R, ledger: L, peer: Option<(R, L)>, engine: Engine) -> Self {
        Promoter { config, registry, ledger, peer, engine }
    }

    pub async fn handle_any(&self, event: Value) -> Result<Answer, SwitchyardError> {
        let d = &self.config.deployment;
        let local = &d.local_region;
        let peer = d.regions.peer_of(local)?;
        match Request::parse(event)? {
            Request::Step(req) => self.handle(req).await,
            Request::Begin(req) => {
                ledger::begin(&self.registry, &self.ledger, local, peer, req).await.map(Answer::Begin)
            }
            Request::End(req) => ledger::end(&self.registry, &self.ledger, d.environment.as_str(), local, peer, req)
                .await
                .map(|a| Answer::End(Box::new(a))),
        }
    }

    pub async fn handle(&self, req: PromoteRequest) -> Result<Answer, SwitchyardError> {
        let d = &self.config.deployment;
        d.regions.check(&req.target_region)?;
        if req.target_region != d.local_region {
            return Err(SwitchyardError::new(
                ErrorName::InvalidInput,
                format!(
                    "the promoter in {} promotes its own region only, not {} (a failover must not depend on the other region)",
                    d.local_region, req.target_region
                ),
            ));
        }
        let old_writer = d.regions.peer_of(&req.target_region)?.clone();
        let (target, old) = (&req.target_region, &old_writer);
        let answer = match req.action {
            PromoterAction::Gate => Answer::Gate(envelope(&req, self.gate(&req, old, target).await?)),
            PromoterAction::Fence => Answer::Fence(envelope(
                &req,
                match (self.engine.fence(old).await, req.mode) {
                    (Ok(s), _) => FenceResult { state: s.into(), fenced: Some(old_writer.clone()), reason: None },
                    // Unplanned: the old writer is usually unreachable. Fence it when it returns.
                    (Err(e), FailoverMode::Unplanned) if e.name == ErrorName::ServiceUnavailable => {
                        FenceResult { state: FenceState::Unreachable, fenced: None, reason: Some(e.message) }
                    }
                    (Err(e), _) => return Err(e),
                },
            )),
            PromoterAction::CatchUp => {
                if req.mode != FailoverMode::Planned {
                    return Err(SwitchyardError::new(
                        ErrorName::InvalidInput,
                        "catchUp belongs to a planned switchover; an unplanned failover cannot wait for a failed writer",
                    ));
                }
                // After the handover is recorded the replica is the writer: nothing to catch up.
                let claim = self.registry.strong_read().await.proven()?;
                Answer::CatchUp(envelope(
                    &req,
                    match claim.plan_handover(req.expected_epoch, &req.target_region)? {
                        Handover::AlreadyDone(_) => {
                            CatchUpResult { state: StepState::Done, handover: HandoverPlan::AlreadyDone }
                        }
                        Handover::Bump(_) => CatchUpResult {
                            state: self.engine.catch_up(old, target).await?,
                            handover: HandoverPlan::Bump,
                        },
                    },
                ))
            }
            PromoterAction::Promote => {
                Answer::Promote(envelope(&req, PromoteResult { state: self.engine.promote(target, req.mode).await? }))
            }
            PromoterAction::Record => Answer::Record(envelope(&req, self.record(&req, target).await?)),
        };
        tracing::info!(action = ?req.action, target = %req.target_region, mode = ?req.mode, ?answer, "rds-promoter");
        Ok(answer)
    }

    /// Adds marks to the request's execution timeline, if it names one that exists.
    async fn mark(&self, req: &PromoteRequest, change: impl FnOnce(&mut Timeline)) -> Result<(), SwitchyardError> {
        let Some(execution) = &req.execution else { return Ok(()) };
        if let Some(mut t) = self.ledger.timeline(execution).await? {
            change(&mut t);
            self.ledger.save_timeline(&t).await?;
        }
        Ok(())
    }

    async fn gate(&self, req: &PromoteRequest, old: &Region, target: &Region) -> Result<GateResult, SwitchyardError> {
        let claim = self.registry.strong_read().await.proven()?;
        if let Handover::AlreadyDone(claim) = claim.plan_handover(req.expected_epoch, &req.target_region)? {
            return Ok(GateResult { handover: HandoverPlan::AlreadyDone, claim, gate: None, lag_measured_from: None });
        }
        let last = self.ledger.last_handover().await?;
        self.config.cooldown.check(req.mode, last.as_ref(), Timestamp::now())?;
        let mut lag_source = LagSource::Both;
        let lag = match self.engine.lag(old, target).await {
            Ok(lag) => lag,
            // Planned switchover needs the current writer.
            Err(e) if req.mode == FailoverMode::Planned && e.name == ErrorName::ServiceUnavailable => return Err(e),
            // The old writer is unreachable (the usual unplanned case): the replica's own
            // account bounds the lag from above. Nothing at all is an unknown lag, which the
            // gate treats as above budget.
            Err(e) if matches!(e.name, ErrorName::ServiceUnavailable | ErrorName::NotReady) => {
                lag_source = LagSource::Target;
                let fallback = self.engine.lag_from_target(target).await.unwrap_or_else(|e2| {
                    tracing::warn!(error = %e2, "lag from the target alone unknown too");
                    None
                });
                if fallback.is_none() {
                    tracing::warn!(error = %e, "lag unknown");
                }
                fallback
            }
            Err(e) => return Err(e),
        };
        let gate = LagGate { budget: self.config.deployment.rpo_budget, orders_per_hour: self.config.orders_per_hour };
        let decision = gate.check(req.mode, lag, req.allow_data_loss)?;
        self.mark(req, |t| {
            t.decided = Some(Timestamp::now());
            t.rpo = Some(RpoFigure::from(&decision));
        })
        .await?;
        Ok(GateResult {
            handover: HandoverPlan::Bump,
            claim,
            gate: Some(decision),
            lag_measured_from: Some(lag_source),
        })
    }

    async fn record(&self, req: &PromoteRequest, target: &Region) -> Result<RecordResult, SwitchyardError> {
        let claim = self.registry.strong_read().await.proven()?;
        match claim.plan_handover(req.expected_epoch, &req.target_region)? {
            Handover::AlreadyDone(claim) => {
                Ok(RecordResult { state: StepState::Done, claim, changed: false, peer_table: None })
            }
            Handover::Bump(next) => {
                // Never name a writer that cannot write.
                if !self.engine.accepts_writes(target).await? {
                    return Err(SwitchyardError::new(
                        ErrorName::NotReady,
                        format!("{} does not accept writes yet: promote before recording", req.target_region),
                    ));
                }
                self.registry.bump(req.expected_epoch, next.clone()).await?;
                let handover = HandoverRecord {
                    epoch: next.epoch,
                    writer: next.writer.clone(),
                    at: Timestamp::now(),
                    execution: req.execution.clone().unwrap_or_else(|| "direct-invocation".to_owned()),
                    mode: req.mode,
                };
                self.ledger.record_handover(&handover).await?;
                self.mark(req, |t| {
                    t.promoted = Some(handover.at);
                    t.epoch = Some(next.epoch);
                })
                .await?;
                let peer = self.tell_peer(req.expected_epoch, &next, &handover).await;
                Ok(RecordResult { state: StepState::Done, claim: next, changed: true, peer_table: Some(peer) })
            }
        }
    }

    /// Writes the new claim and handover into the peer region's table too, so a returning old
    /// writer finds them in its own region. Best effort and bounded: the peer is usually the
    /// failed region.
    async fn tell_peer(&self, expected: WriterEpoch, next: &WriterClaim, handover: &HandoverRecord) -> PeerTableWrite {
        let not = |reason: String| PeerTableWrite { updated: false, reason: Some(reason) };
        let Some((registry, ledger)) = &self.peer else {
            return not("no peer table".to_owned());
        };
        let write = async {
            match registry.bump(expected, next.clone()).await {
                Ok(()) => {}
                // Already there (a retried record): fine. Anything else is reported.
                Err(e)
                    if e.name == ErrorName::StaleEpoch
                        && registry.strong_read().await.proven().as_ref() == Ok(next) => {}
                Err(e) => return Err(e),
            }
            ledger.record_handover(handover).await
        };
        match tokio::time::timeout(PEER_TIMEOUT, write).await {
            Ok(Ok(())) => PeerTableWrite { updated: true, reason: None },
            Ok(Err(e)) => not(e.to_string()),
            Err(_) => not(format!("no answer within {PEER_TIMEOUT:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Clone {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn config_reports_everything_missing_at_once() {
        let e = PromoterConfig::from_lookup(env(&[(keys::ENVIRONMENT, "t")])).expect_err("incomplete");
        let text = e.to_string();
        for key in [keys::LOCAL_REGION, keys::PRIMARY_REGION, keys::CONTROL_TABLE, keys::DB_ENDPOINTS] {
            assert!(text.contains(key), "{key} not reported: {text}");
        }
    }

    #[test]
    fn config_needs_an_endpoint_per_region() {
        let e = PromoterConfig::from_lookup(env(&[
            (keys::ENVIRONMENT, "t"),
            (keys::LOCAL_REGION, "us-east-2"),
            (keys::PRIMARY_REGION, "us-east-1"),
            (keys::STANDBY_REGION, "us-east-2"),
            (keys::CONTROL_TABLE, "t-control"),
            (keys::DB_ENDPOINTS, r#"{"us-east-2":{"host":"127.0.0.1","port":5432,"user":"u","dbname":"d"}}"#),
        ]))
        .expect_err("us-east-1 missing");
        assert!(e.to_string().contains("no endpoint for us-east-1"), "{e}");
    }

    #[test]
    fn sample_events() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/rds-promoter");
        let seen = switchyard_lambda::check_sample_events::<Request>(&dir).expect("sample events");
        assert!(seen >= 12, "only {seen} sample events");
    }

    #[test]
    fn requests_are_strict() {
        let ok = serde_json::json!({"action": "catchUp", "targetRegion": "us-east-2", "mode": "planned", "expectedEpoch": 1});
        let req: PromoteRequest = serde_json::from_value(ok).expect("valid");
        assert_eq!((req.action, req.allow_data_loss), (PromoterAction::CatchUp, false));
        let bad = [
            serde_json::json!({"action": "promote", "targetRegion": "us-east-9", "mode": "planned", "expectedEpoch": 1}),
            serde_json::json!({"action": "promote", "targetRegion": "us-east-2", "mode": "sideways", "expectedEpoch": 1}),
            serde_json::json!({"action": "promote", "targetRegion": "us-east-2", "mode": "planned"}),
            serde_json::json!({"action": "promote", "targetRegion": "us-east-2", "mode": "planned", "expectedEpoch": 1, "force": true}),
            serde_json::json!({"action": "demote", "targetRegion": "us-east-2", "mode": "planned", "expectedEpoch": 1}),
        ];
        for event in bad {
            assert!(serde_json::from_value::<PromoteRequest>(event.clone()).is_err(), "{event}");
        }
    }

    mod aurora {
        use aws_sdk_cloudwatch::{operation::get_metric_data::GetMetricDataOutput, types::MetricDataResult};
        use aws_sdk_rds::{
            operation::{
                describe_global_clusters::DescribeGlobalClustersOutput,
                failover_global_cluster::FailoverGlobalClusterOutput,
            },
            types::{GlobalCluster, GlobalClusterMember},
        };
        use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
        use switchyard_core::{WriterClaim, ledger::InMemoryLedger, ports::InMemoryClaimStore};

        use super::*;
        use crate::engine::{Aurora, Engine};

        const EAST1: &str = "arn:aws:rds:us-east-1:123456789012:cluster:switchyard-prod-us-east-1";
        const EAST2: &str = "arn:aws:rds:us-east-2:123456789012:cluster:switchyard-prod-us-east-2";

        fn config() -> PromoterConfig {
            let arns = format!(r#"{{"us-east-1":"{EAST1}","us-east-2":"{EAST2}"}}"#);
            PromoterConfig::from_lookup(env(&[
                (keys::ENVIRONMENT, "prod"),
                (keys::LOCAL_REGION, "us-east-2"),
                (keys::PRIMARY_REGION, "us-east-1"),
                (keys::STANDBY_REGION, "us-east-2"),
                (keys::CONTROL_TABLE, "switchyard-prod-control"),
                (keys::DB_ENGINE, "aurora"),
                (keys::GLOBAL_CLUSTER, "switchyard-prod"),
                (keys::DB_CLUSTER_ARNS, arns.as_str()),
            ]))
            .expect("aurora config")
        }

        fn lag_ms(values: &'static [f64]) -> Rule {
            mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_output(move || {
                GetMetricDataOutput::builder()
                    .metric_data_results(
                        MetricDataResult::builder().id("lag").set_values(Some(values.to_vec())).build(),
                    )
                    .build()
            })
        }

        fn writer_is(arn: &'static str) -> Rule {
            mock!(aws_sdk_rds::Client::describe_global_clusters).then_output(move || {
                let member = |a: &str| GlobalClusterMember::builder().db_cluster_arn(a).is_writer(a == arn).build();
                DescribeGlobalClustersOutput::builder()
                    .global_clusters(
                        GlobalCluster::builder()
                            .global_cluster_identifier("switchyard-prod")
                            .status("available")
                            .global_cluster_members(member(EAST1))
                            .global_cluster_members(member(EAST2))
                            .build(),
                    )
                    .build()
            })
        }

        fn promoter(rds: &[&Rule], cloudwatch: &[&Rule]) -> Promoter<InMemoryClaimStore, InMemoryLedger> {
            let config = config();
            let EngineConfig::Aurora { global_cluster, cluster_arns } = config.engine.clone() else { panic!("aurora") };
            let engine = Engine::Aurora(Aurora {
                global_cluster,
                cluster_arns,
                rds: mock_client!(aws_sdk_rds, RuleMode::MatchAny, rds),
                cloudwatch: mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, cloudwatch),
            });
            let claim = WriterClaim { epoch: WriterEpoch(1), writer: "us-east-1".parse().expect("region") };
            Promoter::new(config, InMemoryClaimStore::new(claim), InMemoryLedger::default(), None, engine)
        }

        fn request(action: PromoterAction, allow_data_loss: bool) -> PromoteRequest {
            PromoteRequest {
                action,
                target_region: "us-east-2".parse().expect("region"),
                mode: FailoverMode::Unplanned,
                expected_epoch: WriterEpoch(1),
                allow_data_loss,
                execution: None,
            }
        }

        #[tokio::test]
        async fn the_lag_gate_reads_aurora_lag_from_cloudwatch() {
            // 90 s of lag against a 60 s budget: refused, then allowed with allowDataLoss.
            let p = promoter(&[], &[&lag_ms(&[90_000.0])]);
            let err = p.handle(request(PromoterAction::Gate, false)).await.expect_err("above budget");
            assert_eq!(err.name, ErrorName::LagAboveBudget, "{err}");
            assert!(err.message.contains("250 orders at risk"), "{err}");
            let Answer::Gate(ok) = p.handle(request(PromoterAction::Gate, true)).await.expect("allowed") else {
                panic!("not a gate answer")
            };
            assert!(ok.result.gate.is_some_and(|g| g.data_loss_accepted));
            // No datapoint: unknown lag, refused.
            let p = promoter(&[], &[&lag_ms(&[])]);
            let err = p.handle(request(PromoterAction::Gate, false)).await.expect_err("unknown");
            assert!(err.name == ErrorName::LagAboveBudget && err.message.contains("unknown"), "{err}");
            // Within budget: passes.
            let p = promoter(&[], &[&lag_ms(&[800.0])]);
            assert!(p.handle(request(PromoterAction::Gate, false)).await.is_ok());
        }

        #[tokio::test]
        async fn promote_fails_over_once_and_record_waits_for_the_writer() {
            let failover = mock!(aws_sdk_rds::Client::failover_global_cluster)
                .then_output(|| FailoverGlobalClusterOutput::builder().build());
            let before = writer_is(EAST1);
            let p = promoter(&[&before, &failover], &[]);
            let fenced = p.handle(request(PromoterAction::Fence, false)).await.expect("done");
            assert!(matches!(fenced, Answer::Fence(f) if f.result.state == FenceState::Done));
            let promoted = p.handle(request(PromoterAction::Promote, false)).await.expect("promote");
            assert!(matches!(promoted, Answer::Promote(p) if p.result.state == StepState::InProgress));
            assert_eq!(failover.num_calls(), 1);
            // The target is not the writer yet: recording must wait.
            let err = p.handle(request(PromoterAction::Record, false)).await.expect_err("not yet");
            assert_eq!(err.name, ErrorName::NotReady);

            let after = writer_is(EAST2);
            let p = promoter(&[&after, &failover], &[]);
            let promoted = p.handle(request(PromoterAction::Promote, false)).await.expect("done");
            assert!(matches!(promoted, Answer::Promote(p) if p.result.state == StepState::Done));
            assert_eq!(failover.num_calls(), 1, "a finished failover was started again");
            let Answer::Record(recorded) = p.handle(request(PromoterAction::Record, false)).await.expect("record")
            else {
                panic!("not a record answer")
            };
            assert!(recorded.result.changed);
            assert_eq!(recorded.result.claim.writer.as_str(), "us-east-2");
        }
    }
}
