//! The typed model of one switchyard deployment: regions, budgets, names, function specs, the
//! failover alarm and the EventBridge rules. Pure: no I/O, no AWS type.
//!
//! **Names are derived, never copied.** Every resource name, every environment variable a
//! function receives and every initial value comes from a [`Deployment`]; the sandbox is
//! provisioned from it and the CloudFormation stacks (`switchyard-stacks`) are emitted from it,
//! so the two cannot drift apart. Functions compute the names of what they check from it.

use std::time::Duration;

use serde::Serialize;
pub mod dns;

pub use switchyard_core::DnsMode;
use switchyard_core::{
    Region, RegionPair, RpoBudget, WriterClaim,
    config::{EnvironmentName, keys},
    health::AlarmRule,
    ledger::FailoverEntry,
};

/// The five functions, by the one name used everywhere (crate, binary, `events/<name>/`).
pub const FUNCTIONS: [&str; 5] = ["health-probe", "readiness-tester", "rds-promoter", "dns-switcher", "order-consumer"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    pub environment: EnvironmentName,
    pub regions: RegionPair,
    pub rpo_budget: RpoBudget,
    /// How often a health-probe invocation probes.
    pub probe_interval: Duration,
    pub dns_mode: DnsMode,
    /// The hosted zone clients resolve, without trailing dot.
    pub domain: String,
    /// Orders per hour the platform expects; turns replication lag into "orders in the lag".
    pub orders_per_hour: u32,
    /// The orders queues' redrive `maxReceiveCount`: how often a message is delivered before
    /// the DLQ takes it. The consumer re-enqueues valid orders before that (it is told this
    /// number), so only poison reaches the DLQ.
    pub orders_max_receives: u32,
    /// The orders queues' visibility timeout: how long a kept message waits before its next
    /// delivery. AWS asks for at least six times the consumer's timeout.
    pub orders_visibility_timeout: Duration,
    /// No automatic failover this long after a handover (anti-flap).
    pub failover_cooldown: Duration,
}

/// The alarm that starts a failover (see [`Deployment::failover_alarm`]): ALARM when the
/// watched region's `Healthy` (namespace `switchyard`) is below 1 by `rule`. Missing data is
/// not breaching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailoverAlarm {
    pub name: String,
    pub watched_region: Region,
    pub rule: AlarmRule,
}

/// The Route 53 health check of a region's failover record, in both DNS modes: HTTPS on the
/// region's API record, path [`switchyard_core::dns::WRITER_HEALTH_PATH`] (claim-aware: 200
/// only where the region holds the active claim). Route 53 API Reference, `HealthCheckConfig`:
/// `RequestInterval` is 10 or 30 seconds, `FailureThreshold` 1 to 10 consecutive checks
/// (<https://docs.aws.amazon.com/Route53/latest/APIReference/API_HealthCheckConfig.html>).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriterHealthCheck {
    pub fully_qualified_domain_name: String,
    pub resource_path: &'static str,
    pub port: u16,
    pub request_interval_seconds: u32,
    pub failure_threshold: u32,
}

impl WriterHealthCheck {
    /// What Route 53 accepts; moto accepts anything, so the model refuses it here.
    pub fn route53_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if ![10, 30].contains(&self.request_interval_seconds) {
            problems.push(format!(
                "{}: RequestInterval must be 10 or 30 seconds, not {} (Route 53 API Reference, HealthCheckConfig)",
                self.fully_qualified_domain_name, self.request_interval_seconds
            ));
        }
        if !(1..=10).contains(&self.failure_threshold) {
            problems.push(format!(
                "{}: FailureThreshold must be 1 to 10, not {} (Route 53 API Reference, HealthCheckConfig)",
                self.fully_qualified_domain_name, self.failure_threshold
            ));
        }
        problems
    }

    /// The `HealthCheckConfig` of a template (and of the sandbox's `CreateHealthCheck`).
    pub fn config(&self) -> serde_json::Value {
        serde_json::json!({
            "Type": "HTTPS",
            "FullyQualifiedDomainName": self.fully_qualified_domain_name,
            "ResourcePath": self.resource_path,
            "Port": self.port,
            "RequestInterval": self.request_interval_seconds,
            "FailureThreshold": self.failure_threshold,
            "EnableSNI": true,
        })
    }
}

/// A resource that exists once per region under the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionalNames {
    pub orders_queue: String,
    /// Orders acknowledged while the standby was not eligible, waiting for it (see
    /// `switchyard_core::ingress`); drained into the standby's orders queue.
    pub orders_catch_up: String,
    pub orders_dlq: String,
    /// The regional API publishes acknowledged orders here; it fans out to both regions' queues.
    pub alerts_topic: String,
    /// Writer claim (conditional writes), failover lock, cooldown, timelines.
    pub control_table: String,
    pub db_cluster: String,
    /// The order consumer's database credentials (Secrets Manager).
    pub consumer_db_secret: String,
    /// The failover alarm on the peer region's `Healthy` (as this region's probe sees it),
    /// in this region's CloudWatch.
    pub failover_alarm: String,
    /// The EventBridge rule that starts the failover state machine when that alarm fires.
    pub failover_rule: String,
    /// Sends the promoter each execution that timed out or was aborted (Step Functions'
    /// status change events): it closes the ledger and pages, as `EndFailed` would have.
    pub abandoned_rule: String,
    pub failover_state_machine: String,
    /// The failover's operator entry (same definition): the overrides, with a reason; only
    /// the operator role may start it.
    pub operator_failover_state_machine: String,
    pub switchover_state_machine: String,
    /// EventBridge schedules: the readiness tester hourly, the health probe every minute.
    pub readiness_schedule: String,
    pub probe_schedule: String,
    /// Every minute: the promoter fences the peer's database if it writes while this region
    /// holds the active claim (a returning old writer).
    pub refence_schedule: String,
    /// Forwards this region's switchyard alarm state changes to the peer region's default bus.
    pub forward_rule: String,
    /// Alarms beside the failover alarm: Aurora replication lag above the RPO budget, order
    /// consumer errors, anything in the orders DLQ.
    pub replication_lag_alarm: String,
    pub consumer_errors_alarm: String,
    pub dlq_depth_alarm: String,
    pub dashboard: String,
    /// The customer-managed KMS key of the region's data (queues, topics, table, secrets,
    /// logs, database).
    pub data_key_alias: String,
}

impl RegionalNames {
    /// Each of [`STATE_MACHINES`] with its deployed name.
    pub fn state_machines(&self) -> [(&'static str, &str); 3] {
        [
            ("failover", &self.failover_state_machine),
            ("operator-failover", &self.operator_failover_state_machine),
            ("switchover", &self.switchover_state_machine),
        ]
    }
}

/// How one function is deployed (the same in both regions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionSpec {
    /// One of [`FUNCTIONS`].
    pub name: &'static str,
    pub description: &'static str,
    pub memory_mb: u32,
    pub timeout: Duration,
    /// Reserved concurrency: a bound on what the function can take from the account, and a
    /// guarantee that a busy account cannot starve a failover.
    pub reserved_concurrency: u32,
    /// Connects to a database: runs in the VPC's private subnets.
    pub in_vpc: bool,
}

/// The state machines, by the name `infra` and the sandbox know them, and their definition
/// files (loaded as `Definition` objects with `DefinitionSubstitutions`, never copied inline).
/// `failover` and `operator-failover` share one definition and differ in its
/// `${FailoverEntry}` ([`switchyard_core::ledger::FailoverEntry`]).
pub const STATE_MACHINES: [(&str, &str); 3] = [
    ("failover", "statemachines/failover.asl.json"),
    ("operator-failover", "statemachines/failover.asl.json"),
    ("switchover", "statemachines/switchover.asl.json"),
];

/// The substitution that tells the failover definition which of its two state machines runs
/// it: not an ARN, a word.
pub const FAILOVER_ENTRY_SUBSTITUTION: &str = "FailoverEntry";

/// The `${...}` substitution naming a function's ARN in the definitions: `rds-promoter` →
/// `RdsPromoterFunctionArn`.
pub fn function_arn_substitution(function: &str) -> String {
    format!("{}FunctionArn", pascal(function))
}

/// `rds-promoter` → `RdsPromoter`: CloudFormation logical ids and substitutions from model names.
pub fn pascal(name: &str) -> String {
    name.split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Where the RDS CA bundle lies inside each function's package (`cargo xtask package
/// --ca-bundle` puts it there); TLS to Aurora trusts only it.
pub const DB_CA_BUNDLE_PATH: &str = "/var/task/rds-global-bundle.pem";

/// The Aurora PostgreSQL engine version of the global cluster: the minor version the sandbox's
/// PostgreSQL 15 runs, and one cfn-lint does not list as deprecated.
pub const AURORA_ENGINE_VERSION: &str = "15.18";

/// What an EventBridge rule sends its events to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum RuleTarget {
    /// One of [`FUNCTIONS`], in the rule's region.
    Function { function: String },
    /// With an input transformer: `input_paths` picks from the event, `template` shapes the
    /// execution input.
    StateMachine { state_machine: String, input_paths: serde_json::Value, template: String },
    /// The peer region's default event bus.
    PeerBus { region: Region },
}

/// One EventBridge rule of a region, as the stack emits it and the sandbox provisions it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRule {
    pub name: String,
    pub description: String,
    pub schedule: Option<String>,
    pub pattern: Option<serde_json::Value>,
    pub target: RuleTarget,
}

/// Every resource name of a deployment, derived from its environment name alone, so a
/// function can compute the names of what it checks from its own configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(environment: &EnvironmentName) -> Self {
        Names { prefix: format!("switchyard-{environment}") }
    }

    pub fn regional(&self, region: &Region) -> RegionalNames {
        let p = &self.prefix;
        RegionalNames {
            orders_queue: format!("{p}-orders"),
            orders_dlq: format!("{p}-orders-dlq"),
            orders_catch_up: format!("{p}-orders-catchup"),
            alerts_topic: format!("{p}-alerts"),
            control_table: format!("{p}-control"),
            db_cluster: format!("{p}-{region}"),
            consumer_db_secret: self.db_secret("order-consumer"),
            failover_alarm: format!("{p}-peer-unhealthy"),
            failover_rule: format!("{p}-failover-on-alarm"),
            abandoned_rule: format!("{p}-execution-abandoned"),
            failover_state_machine: format!("{p}-failover"),
            operator_failover_state_machine: format!("{p}-operator-failover"),
            switchover_state_machine: format!("{p}-switchover"),
            readiness_schedule: format!("{p}-readiness-hourly"),
            probe_schedule: format!("{p}-probe-every-minute"),
            refence_schedule: format!("{p}-refence-every-minute"),
            forward_rule: format!("{p}-alarms-to-peer"),
            replication_lag_alarm: format!("{p}-replication-lag"),
            consumer_errors_alarm: format!("{p}-consumer-errors"),
            dlq_depth_alarm: format!("{p}-orders-dlq-not-empty"),
            dashboard: format!("{p}-{region}"),
            data_key_alias: format!("alias/{p}-data"),
        }
    }

    /// An IAM role's name: IAM is global, so a regional role carries its region.
    pub fn role(&self, component: &str, region: &Region) -> String {
        format!("{}-{component}-{region}", self.prefix)
    }

    /// The Secrets Manager secret holding `function`'s own database credentials (each
    /// function that reaches a database has its own role).
    pub fn db_secret(&self, function: &str) -> String {
        format!("{}/{function}/db", self.prefix)
    }

    /// A function's deployed name.
    pub fn function(&self, function: &str) -> String {
        format!("{}-{function}", self.prefix)
    }

    pub fn global_cluster(&self) -> String {
        self.prefix.clone()
    }

    /// SSM path under which the configuration both regions must agree on lives. Keys under
    /// its `regional/` sub-path may differ between regions.
    pub fn ssm_prefix(&self) -> String {
        format!("/{}/", self.prefix.replacen('-', "/", 1))
    }
}

impl Deployment {
    /// The sandbox's deployment: us-east-1 primary, us-east-2 standby, the platform's budgets.
    pub fn sandbox() -> Self {
        Deployment {
            environment: "sandbox".parse().unwrap_or_else(|_| unreachable!("valid literal")),
            regions: RegionPair::new(region("us-east-1"), region("us-east-2"))
                .unwrap_or_else(|_| unreachable!("distinct literals")),
            rpo_budget: RpoBudget(Duration::from_secs(60)),
            probe_interval: Duration::from_secs(10),
            dns_mode: DnsMode::HealthCheck,
            domain: "trading.example.com".to_owned(),
            orders_per_hour: 10_000,
            orders_max_receives: 5,
            orders_visibility_timeout: Duration::from_secs(60),
            failover_cooldown: Duration::from_secs(3600),
        }
    }

    /// How each function is deployed. Timeouts follow what invokes them: the probe covers a
    /// minute of rounds, the promoter the longest state machine task (90 s), the consumer a
    /// sixth of the queue's visibility timeout (AWS's rule for SQS event sources).
    pub fn function_specs(&self) -> Vec<FunctionSpec> {
        let probe_minute = Duration::from_secs(60).max(self.probe_interval);
        vec![
            FunctionSpec {
                name: "health-probe",
                description: "probes the regional endpoint, database and queue several times a minute",
                memory_mb: 256,
                timeout: probe_minute + Duration::from_secs(15),
                // The schedule starts one a minute; the state machine's health check is another.
                reserved_concurrency: 3,
                in_vpc: true,
            },
            FunctionSpec {
                name: "readiness-tester",
                description: "hourly read-only proof that this region can take over",
                memory_mb: 256,
                timeout: Duration::from_secs(60),
                reserved_concurrency: 2,
                in_vpc: true,
            },
            FunctionSpec {
                name: "rds-promoter",
                description: "lag gate, fence, promotion and writer epoch of a failover",
                memory_mb: 256,
                timeout: Duration::from_secs(90),
                reserved_concurrency: 5,
                in_vpc: true,
            },
            FunctionSpec {
                name: "dns-switcher",
                description: "moves traffic to the new writer region",
                memory_mb: 128,
                timeout: Duration::from_secs(60),
                reserved_concurrency: 5,
                in_vpc: false,
            },
            FunctionSpec {
                name: "order-consumer",
                description: "applies acknowledged orders once, in the region holding the writer role",
                memory_mb: 512,
                timeout: self.orders_visibility_timeout / 6,
                reserved_concurrency: 10,
                in_vpc: true,
            },
        ]
    }

    /// The tags on every resource of the stacks and the sandbox.
    pub fn tags(&self) -> Vec<(&'static str, String)> {
        vec![("project", "switchyard".to_owned()), ("environment", self.environment.to_string())]
    }

    /// Every name, derived from the environment alone.
    pub fn names(&self) -> Names {
        Names::new(&self.environment)
    }

    pub fn regional_names(&self, region: &Region) -> RegionalNames {
        self.names().regional(region)
    }

    pub fn db_secret(&self, function: &str) -> String {
        self.names().db_secret(function)
    }

    pub fn global_cluster(&self) -> String {
        self.names().global_cluster()
    }

    pub fn ssm_prefix(&self) -> String {
        self.names().ssm_prefix()
    }

    /// Parameters that must be identical in both regions (readiness checks that they are).
    pub fn shared_parameters(&self) -> Vec<(String, String)> {
        let p = self.names().ssm_prefix();
        let dns_mode = self.dns_mode.as_str();
        vec![
            (format!("{p}rpo-budget-seconds"), self.rpo_budget.0.as_secs().to_string()),
            (format!("{p}probe-interval-seconds"), self.probe_interval.as_secs().to_string()),
            (format!("{p}dns-mode"), dns_mode.to_owned()),
            (format!("{p}orders-per-hour"), self.orders_per_hour.to_string()),
        ]
    }

    /// The claim a new deployment starts with: the primary region writes, epoch 1.
    pub fn initial_writer_claim(&self) -> WriterClaim {
        WriterClaim::initial(self.regions.primary.clone())
    }

    /// The public name clients resolve, and the regional names it fails over between.
    pub fn api_record(&self) -> String {
        format!("api.{}", self.domain)
    }

    pub fn regional_api_record(&self, region: &Region) -> String {
        format!("api.{region}.{}", self.domain)
    }

    /// The health check of `region`'s failover record (both DNS modes). Two failed checks
    /// 10 s apart turn a record unhealthy, and two passed ones healthy again: one slow strong
    /// read does not flip traffic, and a new writer's record turns healthy at most 20 s after
    /// its activation (`switchyard_core::dns::traffic_moved`).
    pub fn writer_health_check(&self, region: &Region) -> WriterHealthCheck {
        WriterHealthCheck {
            fully_qualified_domain_name: self.regional_api_record(region),
            resource_path: switchyard_core::dns::WRITER_HEALTH_PATH,
            port: 443,
            request_interval_seconds: switchyard_core::dns::CHECK_REQUEST_INTERVAL.as_secs() as u32,
            failure_threshold: switchyard_core::dns::CHECK_FAILURE_THRESHOLD,
        }
    }

    /// The role of `region`'s failover record: the primary region's is PRIMARY. The roles of
    /// the records never change; the health checks decide which one answers.
    pub fn failover_role(&self, region: &Region) -> dns::RecordRole {
        if *region == self.regions.primary { dns::RecordRole::Primary } else { dns::RecordRole::Secondary }
    }

    /// Which region `api.<domain>` answers with, given each region's record health (both
    /// records have a health check in both DNS modes).
    pub fn dns_answer(&self, health: impl Fn(&Region) -> dns::CheckStatus) -> Region {
        let (p, s) = (&self.regions.primary, &self.regions.standby);
        match dns::failover_answer(Some(health(p)), Some(health(s))) {
            dns::RecordRole::Primary => p.clone(),
            dns::RecordRole::Secondary => s.clone(),
        }
    }

    /// What AWS would refuse or ignore in this deployment, by documented constraint; empty
    /// when none. Templates are emitted and the sandbox is provisioned only from a valid one.
    pub fn validate(&self) -> Vec<String> {
        let mut problems: Vec<String> =
            self.regions.iter().flat_map(|r| self.writer_health_check(r).route53_problems()).collect();
        if self.claim_store_witness().is_none() {
            problems.push(format!(
                "{} and {} are not in one DynamoDB multi-Region strong consistency Region set, so the writer claim \
                 has no witness (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-dynamodb-globaltable-globaltablewitness.html)",
                self.regions.primary, self.regions.standby
            ));
        }
        problems
    }

    /// The third region of the writer-claim store: a DynamoDB MRSC global table has replicas
    /// in the pair and a witness in the third region of their Region set. "The witness must be
    /// in a different Region than the replicas and within the same Region set" (US: us-east-1,
    /// us-east-2, us-west-2; EU: eu-west-1, eu-west-2, eu-west-3, eu-central-1; AP:
    /// ap-northeast-1, -2, -3):
    /// <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-dynamodb-globaltable-globaltablewitness.html>.
    /// The first member of the set outside the pair; `None` when the pair spans no one set.
    pub fn claim_store_witness(&self) -> Option<Region> {
        const REGION_SETS: [&[&str]; 3] = [
            &["us-east-1", "us-east-2", "us-west-2"],
            &["eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1"],
            &["ap-northeast-1", "ap-northeast-2", "ap-northeast-3"],
        ];
        let (p, s) = (self.regions.primary.as_str(), self.regions.standby.as_str());
        let set = REGION_SETS.iter().find(|set| set.contains(&p) && set.contains(&s))?;
        set.iter().find(|r| **r != p && **r != s).and_then(|r| r.parse().ok())
    }

    /// The failover alarm of `region`: it watches the peer region's `Healthy` as `region`'s
    /// own probe publishes it, so the region that would take over decides, with nothing
    /// needed from the one that failed.
    pub fn failover_alarm(&self, region: &Region) -> FailoverAlarm {
        let peer = self.regions.peer_of(region).cloned().unwrap_or_else(|_| region.clone());
        FailoverAlarm {
            name: self.regional_names(region).failover_alarm,
            watched_region: peer,
            rule: AlarmRule::failover(self.probe_interval),
        }
    }

    /// The EventBridge pattern of `region`'s failover rule: its failover alarm entering ALARM.
    /// The alarm has the same name in both regions, and the peer forwards its alarm changes
    /// here: `region` in the pattern keeps the peer's "my peer is unhealthy" (which is about
    /// *this* region) from starting a failover to this region.
    /// Step Functions' status change of an execution that timed out or was aborted: the two
    /// ends no state of a definition can catch
    /// (<https://docs.aws.amazon.com/step-functions/latest/dg/eventbridge-integration.html>).
    /// Every state machine of the region matches; the promoter leaves alone an execution its
    /// ledger does not hold open.
    pub fn abandoned_rule_pattern() -> serde_json::Value {
        serde_json::json!({
            "source": ["aws.states"],
            "detail-type": ["Step Functions Execution Status Change"],
            "detail": { "status": ["TIMED_OUT", "ABORTED"] },
        })
    }

    pub fn failover_rule_pattern(&self, region: &Region) -> serde_json::Value {
        serde_json::json!({
            "source": ["aws.cloudwatch"],
            "detail-type": ["CloudWatch Alarm State Change"],
            "region": [region],
            "detail": {
                "alarmName": [self.regional_names(region).failover_alarm],
                "state": { "value": ["ALARM"] },
            },
        })
    }

    /// `region`'s EventBridge rules: the two schedules, the alarm → failover rule, and the
    /// forwarding of this environment's alarm state changes to the peer's bus (evidence for
    /// the surviving region; the failover rule ignores forwarded events by their `region`).
    pub fn event_rules(&self, region: &Region) -> Vec<EventRule> {
        let n = self.regional_names(region);
        let peer = self.regions.peer_of(region).cloned().unwrap_or_else(|_| region.clone());
        vec![
            EventRule {
                name: n.readiness_schedule.clone(),
                description: "hourly readiness report of this region as the standby".into(),
                schedule: Some("rate(1 hour)".into()),
                pattern: None,
                target: RuleTarget::Function { function: "readiness-tester".into() },
            },
            EventRule {
                name: n.probe_schedule.clone(),
                description: format!(
                    "health probes every {} s for a minute, from this region",
                    self.probe_interval.as_secs()
                ),
                schedule: Some("rate(1 minute)".into()),
                pattern: None,
                target: RuleTarget::Function { function: "health-probe".into() },
            },
            EventRule {
                name: n.refence_schedule.clone(),
                description: format!(
                    "fence {peer}'s database whenever it writes while {region} holds the active claim"
                ),
                schedule: Some("rate(1 minute)".into()),
                pattern: None,
                target: RuleTarget::Function { function: "rds-promoter".into() },
            },
            EventRule {
                name: n.abandoned_rule.clone(),
                description: format!(
                    "a state machine execution in {region} timed out or was aborted: the promoter closes its ledger entry and pages"
                ),
                schedule: None,
                pattern: Some(Self::abandoned_rule_pattern()),
                target: RuleTarget::Function { function: "rds-promoter".into() },
            },
            EventRule {
                name: n.failover_rule.clone(),
                description: format!("{} fires: start {} in {region}", n.failover_alarm, n.failover_state_machine),
                schedule: None,
                pattern: Some(self.failover_rule_pattern(region)),
                target: RuleTarget::StateMachine {
                    state_machine: n.failover_state_machine.clone(),
                    input_paths: serde_json::json!({
                        "time": "$.time", "alarm": "$.detail.alarmName", "reason": "$.detail.state.reason"
                    }),
                    template: r#"{"detectedAt": <time>, "trigger": <alarm>, "reason": <reason>}"#.into(),
                },
            },
            EventRule {
                name: n.forward_rule.clone(),
                description: format!("this environment's alarm state changes, to {peer}'s bus"),
                schedule: None,
                pattern: Some(serde_json::json!({
                    "source": ["aws.cloudwatch"],
                    "detail-type": ["CloudWatch Alarm State Change"],
                    "region": [region],
                    "detail": { "alarmName": [{ "prefix": format!("switchyard-{}-", self.environment) }] },
                })),
                target: RuleTarget::PeerBus { region: peer },
            },
        ]
    }

    /// The ARN of `function` (a name of [`FUNCTIONS`]) as deployed in `region`.
    pub fn function_arn(&self, region: &Region, account: &str, function: &str) -> String {
        format!("arn:aws:lambda:{region}:{account}:function:{}", self.names().function(function))
    }

    /// The `DefinitionSubstitutions` of `machine` (one of [`STATE_MACHINES`]) in `region`:
    /// every function's ARN, the alerts topic, and a failover's entry.
    pub fn state_machine_substitutions(
        &self,
        region: &Region,
        account: &str,
        machine: &str,
    ) -> std::collections::BTreeMap<String, String> {
        let mut subs: std::collections::BTreeMap<String, String> = FUNCTIONS
            .iter()
            // The readiness tester runs on its schedule; no state machine invokes it.
            .filter(|f| **f != "readiness-tester")
            .map(|f| (function_arn_substitution(f), self.function_arn(region, account, f)))
            .collect();
        subs.insert(
            "AlertsTopicArn".into(),
            format!("arn:aws:sns:{region}:{account}:{}", self.regional_names(region).alerts_topic),
        );
        let entry = match machine {
            "failover" => Some(FailoverEntry::Automatic),
            "operator-failover" => Some(FailoverEntry::Operator),
            _ => None,
        };
        if let Some(entry) = entry {
            subs.insert(FAILOVER_ENTRY_SUBSTITUTION.into(), entry.as_str().into());
        }
        subs
    }

    /// The environment every function in `region` receives (names from `core::config::keys`).
    pub fn function_environment(&self, region: &Region) -> Vec<(&'static str, String)> {
        vec![
            (keys::ENVIRONMENT, self.environment.to_string()),
            (keys::LOCAL_REGION, region.to_string()),
            (keys::PRIMARY_REGION, self.regions.primary.to_string()),
            (keys::STANDBY_REGION, self.regions.standby.to_string()),
            (keys::RPO_BUDGET_SECONDS, self.rpo_budget.0.as_secs().to_string()),
            (keys::CONTROL_TABLE, self.regional_names(region).control_table),
            (keys::ORDERS_PER_HOUR, self.orders_per_hour.to_string()),
            (keys::ORDERS_MAX_RECEIVES, self.orders_max_receives.to_string()),
            (keys::DB_SECRET_ID, self.regional_names(region).consumer_db_secret),
            (keys::PROBE_DB_SECRET_ID, self.db_secret("health-probe")),
            (keys::READINESS_DB_SECRET_ID, self.db_secret("readiness-tester")),
            (keys::PROBE_INTERVAL_SECONDS, self.probe_interval.as_secs().to_string()),
            (keys::API_RECORD, self.api_record()),
            (keys::DNS_MODE, self.dns_mode.as_str().to_owned()),
            (keys::FAILOVER_COOLDOWN_SECONDS, self.failover_cooldown.as_secs().to_string()),
        ]
    }
}

/// `docs/schemas/<name>.schema.json`: the order API's request and the queued order (JSON
/// Schema, from `switchyard_core::order`). Generated (`cargo xtask synth`); a test keeps the
/// committed files current.
pub fn order_schemas() -> Vec<(String, String)> {
    switchyard_core::order::json_schemas()
        .into_iter()
        .map(|(name, schema)| {
            let text = serde_json::to_string_pretty(&sorted(schema)).unwrap_or_default() + "\n";
            (format!("docs/schemas/{name}.schema.json"), text)
        })
        .collect()
}

/// `value` with every object's keys in sorted order, so its text is the same whether or not a
/// build unifies serde_json's `preserve_order` feature in (the tests' build does).
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// `docs/configuration.md`: every variable the functions read ([`keys::ALL`]), who reads
/// it, what it means, and what the sandbox's deployment sets it to. Generated (`cargo xtask
/// synth`); a test keeps the committed file current.
pub fn configuration_reference() -> String {
    let d = Deployment::sandbox();
    let sandbox = d.function_environment(&d.regions.standby);
    let mut out = String::from(
        "<!-- Generated by `cargo xtask synth` from the model (switchyard_core::config::keys, \
         switchyard_model::Deployment): do not edit. -->\n\
         # Configuration of the functions\n\n\
         Every function reads its configuration from its environment, once per cold start, and \
         reports every problem at once as the named error `MissingConfig`. The stacks and the \
         sandbox set these from the model (`Deployment::function_environment`, plus the \
         stack's own: database endpoints, cluster ARNs, health URLs, the CA bundle path).\n\n\
         | variable | read by | meaning | the sandbox's us-east-2 |\n|---|---|---|---|\n",
    );
    for k in keys::ALL {
        let value =
            sandbox.iter().find(|(name, _)| *name == k.name).map_or("–".to_owned(), |(_, v)| format!("`{v}`"));
        out += &format!("| `{}` | {} | {} | {value} |\n", k.name, k.read_by, k.meaning);
    }
    out
}

fn region(s: &str) -> Region {
    s.parse().unwrap_or_else(|_| unreachable!("known region literal {s}"))
}

#[cfg(test)]
mod tests {
    use switchyard_core::DeploymentConfig;

    use super::*;

    #[test]
    fn function_environment_is_what_the_functions_read() {
        let d = Deployment::sandbox();
        for r in d.regions.iter() {
            let env = d.function_environment(r);
            let config =
                DeploymentConfig::from_lookup(|k| env.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone()))
                    .expect("the model's environment satisfies the functions' config");
            assert_eq!(&config.local_region, r);
            assert_eq!(config.regions, d.regions);
            assert_eq!(config.rpo_budget, d.rpo_budget);
        }
    }

    #[test]
    fn the_claim_store_witness_is_the_third_region_of_the_pair_s_region_set() {
        let mut d = Deployment::sandbox();
        assert_eq!(d.claim_store_witness().map(|r| r.to_string()).as_deref(), Some("us-west-2"));
        assert!(d.validate().is_empty(), "{:?}", d.validate());
        d.regions = RegionPair::new("us-east-1".parse().expect("test value"), "eu-west-1".parse().expect("test value"))
            .expect("test value");
        assert_eq!(d.claim_store_witness(), None);
        assert!(d.validate().iter().any(|p| p.contains("Region set")), "{:?}", d.validate());
    }

    #[test]
    fn a_forwarded_peer_alarm_never_starts_a_failover_here() {
        let d = Deployment::sandbox();
        let (east1, east2) = (&d.regions.primary, &d.regions.standby);
        // us-east-1 forwards its alarm changes to us-east-2's bus, where the failover rule
        // listens for an alarm of the same name: the region keeps them apart.
        let forward = d.event_rules(east1).into_iter().find(|r| r.name.ends_with("alarms-to-peer")).expect("rule");
        assert_eq!(forward.target, RuleTarget::PeerBus { region: east2.clone() });
        assert_eq!(forward.pattern.expect("pattern")["region"], serde_json::json!([east1]));
        assert_eq!(d.failover_rule_pattern(east2)["region"], serde_json::json!([east2]));
        let rules = d.event_rules(east2);
        let schedules: Vec<_> = rules.iter().filter_map(|r| r.schedule.as_deref()).collect();
        assert_eq!(schedules, ["rate(1 hour)", "rate(1 minute)", "rate(1 minute)"]);
        let to_failover = rules.iter().find(|r| matches!(r.target, RuleTarget::StateMachine { .. })).expect("rule");
        assert_eq!(to_failover.name, d.regional_names(east2).failover_rule);
    }

    #[test]
    fn the_sandbox_model_is_what_aws_accepts() {
        for dns_mode in [DnsMode::HealthCheck, DnsMode::Records] {
            let d = Deployment { dns_mode, ..Deployment::sandbox() };
            assert_eq!(d.validate(), Vec::<String>::new(), "{dns_mode:?}");
        }
        let d = Deployment::sandbox();
        let slow = WriterHealthCheck { request_interval_seconds: 15, ..d.writer_health_check(&d.regions.primary) };
        assert!(slow.route53_problems().iter().any(|p| p.contains("RequestInterval")), "{slow:?}");
        let never = WriterHealthCheck { failure_threshold: 0, ..d.writer_health_check(&d.regions.primary) };
        assert_eq!(never.route53_problems().len(), 1);
    }

    /// #17 schedule 5, as the model sees it: only the active writer's endpoint is healthy, so
    /// after any history the answer is the writer's region, whichever record is PRIMARY.
    #[test]
    fn traffic_follows_the_active_writer_whatever_the_history() {
        use dns::CheckStatus;
        let d = Deployment::sandbox();
        let (east1, east2) = (d.regions.primary.clone(), d.regions.standby.clone());
        let serving = |writer: &Region| {
            let writer = writer.clone();
            move |r: &Region| if *r == writer { CheckStatus::Healthy } else { CheckStatus::Unhealthy }
        };
        for writer in [&east2, &east1, &east2] {
            assert_eq!(d.dns_answer(serving(writer)), *writer);
        }
        assert_eq!(d.failover_role(&east2), dns::RecordRole::Secondary);
    }

    #[test]
    fn names_carry_the_environment() {
        let d = Deployment::sandbox();
        let n = d.regional_names(&d.regions.standby);
        assert_eq!(n.orders_queue, "switchyard-sandbox-orders");
        assert_eq!(n.db_cluster, "switchyard-sandbox-us-east-2");
        assert!(d.shared_parameters().iter().all(|(k, _)| k.starts_with("/switchyard/sandbox/")));
    }
}
