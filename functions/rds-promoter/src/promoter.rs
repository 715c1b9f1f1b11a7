//! The promoter's actions. A failover runs them in order; each is idempotent, so a retried
//! or repeated execution changes nothing that is already done:
//!
//! | action    | does                                                                    |
//! |-----------|-------------------------------------------------------------------------|
//! | `check`   | epoch still as expected, then the lag gate (unplanned) → gate decision  |
//! | `fence`   | make the old writer refuse writes (unplanned: only where reachable)     |
//! | `catchUp` | planned only: `done` once the replica has replayed the fenced writer    |
//! | `promote` | make this region's database the writer (`inProgress` → poll again)      |
//! | `record`  | bump the writer epoch (conditional write) to this region                |
//!
//! The promoter runs in the region it promotes (static stability: a failover never depends
//! on the failed region). The writer claim is read on every invocation, never cached.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchyard_core::{
    ConfigReader, DeploymentConfig, ErrorName, FailoverMode, Handover, LagGate, Region, SwitchyardError, WriterEpoch,
    config::{ConfigError, keys},
    ports::{DatabasePromoter, StepState, WriterRegistry},
};
use switchyard_postgres::{DbEndpoints, PgNode, catch_up, pair_lag};

#[derive(Debug, Clone)]
pub struct PromoterConfig {
    pub deployment: DeploymentConfig,
    pub control_table: String,
    pub databases: DbEndpoints,
    pub orders_per_hour: u32,
}

impl PromoterConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + Clone) -> Result<Self, ConfigError> {
        let deployment = DeploymentConfig::from_lookup(lookup.clone());
        let mut r = ConfigReader::new(lookup);
        let control_table = r.required::<String>(keys::CONTROL_TABLE);
        let databases = r.required::<DbEndpoints>(keys::DB_ENDPOINTS);
        let orders_per_hour = r.optional::<u32>(keys::ORDERS_PER_HOUR).unwrap_or(10_000);
        if let (Ok(d), Some(dbs)) = (&deployment, &databases) {
            for region in d.regions.iter() {
                if !dbs.0.contains_key(region) {
                    r.invalid(keys::DB_ENDPOINTS, "", format!("no endpoint for {region}"));
                }
            }
        }
        // Report the deployment's problems and ours together.
        let mut problems = deployment.as_ref().err().map(|e| e.problems.clone()).unwrap_or_default();
        if let Err(e) = r.finish() {
            problems.extend(e.problems);
        }
        match (deployment, control_table, databases) {
            (Ok(deployment), Some(control_table), Some(databases)) if problems.is_empty() => {
                Ok(PromoterConfig { deployment, control_table, databases, orders_per_hour })
            }
            _ => Err(ConfigError { problems }),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Check,
    Fence,
    CatchUp,
    Promote,
    Record,
}

/// The task input a state machine sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromoteRequest {
    pub action: Action,
    /// The region to become the writer: the one this function runs in.
    pub target_region: Region,
    pub mode: FailoverMode,
    /// The epoch the execution saw when it decided to fail over.
    pub expected_epoch: WriterEpoch,
    #[serde(default)]
    pub allow_data_loss: bool,
}

#[derive(Debug, Clone)]
pub struct Promoter<R> {
    config: PromoterConfig,
    registry: R,
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default()
}

fn state_str(s: StepState) -> &'static str {
    match s {
        StepState::Done => "done",
        StepState::InProgress => "inProgress",
    }
}

impl<R: WriterRegistry> Promoter<R> {
    pub fn new(config: PromoterConfig, registry: R) -> Self {
        Promoter { config, registry }
    }

    fn node(&self, region: &Region) -> Result<PgNode, SwitchyardError> {
        let endpoint = self.config.databases.0.get(region).ok_or_else(|| {
            SwitchyardError::new(ErrorName::MissingConfig, format!("no database endpoint for {region}"))
        })?;
        let mut node = PgNode::new(endpoint.clone(), format!("rds-promoter-{region}"));
        node.timeout = Duration::from_secs(5);
        Ok(node)
    }

    pub async fn handle(&self, req: PromoteRequest) -> Result<Value, SwitchyardError> {
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
        let (target, old) = (self.node(&req.target_region)?, self.node(&old_writer)?);
        let detail = match req.action {
            Action::Check => self.check(&req, &old, &target).await?,
            Action::Fence => match (old.fence().await, req.mode) {
                (Ok(s), _) => json!({ "state": state_str(s), "fenced": old_writer }),
                // Unplanned: the old writer is usually unreachable. Fence it when it returns.
                (Err(e), FailoverMode::Unplanned) if e.name == ErrorName::ServiceUnavailable => {
                    json!({ "state": "unreachable", "fenced": Value::Null, "reason": e.message })
                }
                (Err(e), _) => return Err(e),
            },
            Action::CatchUp => {
                if req.mode != FailoverMode::Planned {
                    return Err(SwitchyardError::new(
                        ErrorName::InvalidInput,
                        "catchUp belongs to a planned switchover; an unplanned failover cannot wait for a failed writer",
                    ));
                }
                // After the handover is recorded the replica is the writer: nothing to catch up.
                let claim = self.registry.current().await?;
                if let Handover::AlreadyDone(_) = claim.plan_handover(req.expected_epoch, &req.target_region)? {
                    json!({ "state": "done", "handover": "alreadyDone" })
                } else {
                    json!({ "state": state_str(catch_up(&old, &target).await?) })
                }
            }
            Action::Promote => json!({ "state": state_str(target.promote().await?) }),
            Action::Record => self.record(&req, &target).await?,
        };
        tracing::info!(action = ?req.action, target = %req.target_region, mode = ?req.mode, %detail, "rds-promoter");
        Ok(
            json!({ "action": req.action, "targetRegion": req.target_region, "atMs": now_ms() as u64, "result": detail }),
        )
    }

    async fn check(&self, req: &PromoteRequest, old: &PgNode, target: &PgNode) -> Result<Value, SwitchyardError> {
        let claim = self.registry.current().await?;
        if let Handover::AlreadyDone(claim) = claim.plan_handover(req.expected_epoch, &req.target_region)? {
            return Ok(json!({ "handover": "alreadyDone", "claim": claim }));
        }
        let lag = match pair_lag(old, target).await {
            Ok(lag) => Some(lag),
            // Planned switchover needs the current writer. Otherwise an unreachable writer or an
            // unmeasurable lag is an unknown lag, which the gate treats as above budget.
            Err(e) if req.mode == FailoverMode::Planned && e.name == ErrorName::ServiceUnavailable => return Err(e),
            Err(e) if matches!(e.name, ErrorName::ServiceUnavailable | ErrorName::NotReady) => {
                tracing::warn!(error = %e, "lag unknown");
                None
            }
            Err(e) => return Err(e),
        };
        let gate = LagGate { budget: self.config.deployment.rpo_budget, orders_per_hour: self.config.orders_per_hour };
        let decision = gate.check(req.mode, lag, req.allow_data_loss)?;
        Ok(json!({ "handover": "bump", "claim": claim, "gate": decision }))
    }

    async fn record(&self, req: &PromoteRequest, target: &PgNode) -> Result<Value, SwitchyardError> {
        let claim = self.registry.current().await?;
        match claim.plan_handover(req.expected_epoch, &req.target_region)? {
            Handover::AlreadyDone(claim) => Ok(json!({ "state": "done", "claim": claim, "changed": false })),
            Handover::Bump(next) => {
                // Never name a writer that cannot write.
                if !target.accepts_writes().await? {
                    return Err(SwitchyardError::new(
                        ErrorName::NotReady,
                        format!("{} does not accept writes yet: promote before recording", req.target_region),
                    ));
                }
                self.registry.replace(req.expected_epoch, next.clone()).await?;
                Ok(json!({ "state": "done", "claim": next, "changed": true }))
            }
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
        let seen = switchyard_lambda::check_sample_events::<PromoteRequest>(&dir).expect("sample events");
        assert!(seen >= 8, "only {seen} sample events");
    }

    #[test]
    fn requests_are_strict() {
        let ok = serde_json::json!({"action": "catchUp", "targetRegion": "us-east-2", "mode": "planned", "expectedEpoch": 1});
        let req: PromoteRequest = serde_json::from_value(ok).expect("valid");
        assert_eq!((req.action, req.allow_data_loss), (Action::CatchUp, false));
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
}
