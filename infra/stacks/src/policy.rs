//! Least-privilege IAM: what each function, the state machines and the EventBridge rules may
//! do, as policy documents. Every action is named (no `*` in an action); resources are
//! scoped to ARNs wherever the API allows it, and where it does not (`PutMetricData`,
//! `GetMetricData`, X-Ray, ENIs, `ListStateMachines`), the statement says so in its `Sid`
//! and a condition narrows it when one exists.

use serde_json::{Value, json};
use switchyard_core::{Region, health};

use switchyard_model::{Deployment, DnsMode, FUNCTIONS, FunctionSpec, RegionalNames};

use crate::cfn::{arn, get_att, pascal, r#ref};

/// One `Allow` statement.
fn allow(sid: &str, actions: &[&str], resources: Vec<Value>) -> Value {
    json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources })
}

fn document(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The trust policy of a role `service` assumes, limited to this account's resources.
pub fn trust(service: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": service },
            "Action": ["sts:AssumeRole"],
            "Condition": { "StringEquals": { "aws:SourceAccount": { "Ref": "AWS::AccountId" } } },
        }],
    })
}

/// The trust policy of the operator role: people of this account, signed in with MFA, assume
/// it to start the operator failover (break-glass) or a switchover. CloudTrail records who.
pub fn operator_trust() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": crate::cfn::sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root") },
            "Action": ["sts:AssumeRole"],
            "Condition": { "Bool": { "aws:MultiFactorAuthPresent": "true" } },
        }],
    })
}

/// What the stacks of one region know when writing policies.
pub struct Scope<'a> {
    pub d: &'a Deployment,
    pub region: &'a Region,
}

impl Scope<'_> {
    fn both(&self) -> impl Iterator<Item = &Region> {
        self.d.regions.iter()
    }

    fn names(&self, region: &Region) -> RegionalNames {
        self.d.regional_names(region)
    }

    fn control_tables(&self) -> Vec<Value> {
        self.both().map(|r| arn("dynamodb", r.as_str(), &format!("table/{}", self.names(r).control_table))).collect()
    }

    fn clusters(&self) -> Vec<Value> {
        self.both().map(|r| arn("rds", r.as_str(), &format!("cluster:{}", self.names(r).db_cluster))).collect()
    }

    fn global_cluster(&self) -> Value {
        crate::cfn::sub(format!(
            "arn:${{AWS::Partition}}:rds::${{AWS::AccountId}}:global-cluster:{}",
            self.d.global_cluster()
        ))
    }

    fn own_secret(&self, function: &str) -> Value {
        // Secrets Manager appends six random characters to a secret's name in its ARN.
        arn("secretsmanager", self.region.as_str(), &format!("secret:{}-??????", self.d.db_secret(function)))
    }

    /// The function's own database credentials (its role in the database).
    fn own_database_secret(&self, spec: &FunctionSpec) -> Value {
        allow("OwnDatabaseSecret", &["secretsmanager:GetSecretValue"], vec![self.own_secret(spec.name)])
    }

    fn queues(&self, regions: &[&Region]) -> Vec<Value> {
        regions
            .iter()
            .flat_map(|r| {
                let n = self.names(r);
                [n.orders_queue, n.orders_dlq, n.orders_catch_up].map(|q| arn("sqs", r.as_str(), &q))
            })
            .collect()
    }

    fn functions_everywhere(&self) -> Vec<Value> {
        self.both()
            .flat_map(|r| {
                FUNCTIONS.map(|f| arn("lambda", r.as_str(), &format!("function:{}", self.d.names().function(f))))
            })
            .collect()
    }

    fn data_key() -> Value {
        get_att("DataKey", "Arn")
    }

    fn alerts_topic() -> Value {
        r#ref("AlertsTopic")
    }

    /// `cloudwatch:PutMetricData` has no resource ARN; the namespace condition is the scope.
    fn put_switchyard_metrics() -> Value {
        json!({
            "Sid": "MetricsOfTheSwitchyardNamespaceOnlyNoResourceArnExists",
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricData"],
            "Resource": ["*"],
            "Condition": { "StringEquals": { "cloudwatch:namespace": health::NAMESPACE } },
        })
    }

    fn read_metrics() -> Value {
        allow("ReadMetricsNoResourceArnExists", &["cloudwatch:GetMetricData"], vec![json!("*")])
    }

    /// Every function: its log group, X-Ray, and (in the VPC) its network interfaces.
    fn baseline(&self, spec: &FunctionSpec) -> Vec<Value> {
        let mut s = vec![
            json!({
                "Sid": "OwnLogGroup",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [get_att(&format!("{}LogGroup", pascal(spec.name)), "Arn")],
            }),
            allow(
                "TracesNoResourceArnExists",
                &["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                vec![json!("*")],
            ),
        ];
        if spec.in_vpc {
            s.push(allow(
                "VpcNetworkInterfacesNoResourceArnExists",
                &[
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                vec![json!("*")],
            ));
        }
        s
    }

    /// The policy of `spec`'s execution role.
    pub fn function_policy(&self, spec: &FunctionSpec) -> Value {
        let own = self.names(self.region);
        let mut s = self.baseline(spec);
        let key = Self::data_key();
        match spec.name {
            "health-probe" => {
                s.push(Self::put_switchyard_metrics());
                s.push(Self::read_metrics());
                s.push(self.own_database_secret(spec));
                s.push(allow("DecryptOwnData", &["kms:Decrypt"], vec![key]));
                s.push(allow("OwnQueues", &["sqs:GetQueueUrl", "sqs:GetQueueAttributes"], self.queues(&[self.region])));
                // A failed asynchronous invocation goes to the alerts topic (its destination).
                s.push(allow("FailureDestination", &["sns:Publish"], vec![Self::alerts_topic()]));
                s.push(allow("EncryptForAlerts", &["kms:GenerateDataKey"], vec![Self::data_key()]));
            }
            "readiness-tester" => {
                let both: Vec<&Region> = self.both().collect();
                s.push(Self::put_switchyard_metrics());
                s.push(Self::read_metrics());
                s.push(self.own_database_secret(spec));
                s.push(allow("DecryptOwnData", &["kms:Decrypt", "kms:GenerateDataKey"], vec![key]));
                s.push(allow("GlobalDatabase", &["rds:DescribeGlobalClusters"], vec![self.global_cluster()]));
                s.push(allow("RegionalClusters", &["rds:DescribeDBClusters"], self.clusters()));
                s.push(allow(
                    "FunctionParity",
                    &["lambda:GetFunction", "lambda:GetFunctionConcurrency"],
                    self.functions_everywhere(),
                ));
                s.push(allow("QueuesBothRegions", &["sqs:GetQueueUrl", "sqs:GetQueueAttributes"], self.queues(&both)));
                let ssm_path = self.d.ssm_prefix();
                s.push(allow(
                    "ConfigurationBothRegions",
                    &["ssm:GetParametersByPath"],
                    self.both()
                        .flat_map(|r| {
                            let path = ssm_path.trim_matches('/');
                            [format!("parameter/{path}"), format!("parameter/{path}/*")]
                                .map(|p| arn("ssm", r.as_str(), &p))
                        })
                        .collect(),
                ));
                s.push(allow("WriterClaimBothRegions", &["dynamodb:GetItem"], self.control_tables()));
                s.push(allow(
                    "Dns",
                    &["route53:ListResourceRecordSets", "route53:GetHealthCheck"],
                    vec![
                        crate::cfn::sub("arn:${AWS::Partition}:route53:::hostedzone/${HostedZoneId}"),
                        crate::cfn::sub("arn:${AWS::Partition}:route53:::healthcheck/*"),
                    ],
                ));
                s.push(allow(
                    "FailoverAlarm",
                    &["cloudwatch:DescribeAlarms"],
                    vec![arn("cloudwatch", self.region.as_str(), &format!("alarm:{}", own.failover_alarm))],
                ));
                s.push(allow(
                    "FailoverRule",
                    &["events:DescribeRule"],
                    vec![arn("events", self.region.as_str(), &format!("rule/{}", own.failover_rule))],
                ));
                s.push(allow("ListStateMachinesNoResourceArnExists", &["states:ListStateMachines"], vec![json!("*")]));
                s.push(allow(
                    "StateMachineIdle",
                    &["states:ListExecutions"],
                    own.state_machines()
                        .map(|(_, m)| arn("states", self.region.as_str(), &format!("stateMachine:{m}")))
                        .to_vec(),
                ));
                s.push(allow("NotifyOnChange", &["sns:Publish"], vec![Self::alerts_topic()]));
            }
            "rds-promoter" => {
                s.push(Self::read_metrics());
                s.push(allow(
                    "BooksBothRegions",
                    &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                    self.control_tables(),
                ));
                s.push(allow("GlobalDatabaseRead", &["rds:DescribeGlobalClusters"], vec![self.global_cluster()]));
                s.push(allow("RegionalClustersRead", &["rds:DescribeDBClusters"], self.clusters()));
                let mut promote = self.clusters();
                promote.push(self.global_cluster());
                s.push(allow(
                    "PromoteGlobalDatabase",
                    &["rds:FailoverGlobalCluster", "rds:SwitchoverGlobalCluster"],
                    promote,
                ));
                // The page of an execution that timed out or was aborted (the
                // abandoned-execution rule), which no state of it sends any more.
                s.push(allow("PageAbandonedExecution", &["sns:Publish"], vec![Self::alerts_topic()]));
                // A publisher to an SSE topic needs both (Amazon SNS Developer Guide, "Key
                // management": "kms:GenerateDataKey" and "kms:Decrypt").
                s.push(allow("EncryptForAlerts", &["kms:GenerateDataKey", "kms:Decrypt"], vec![key]));
            }
            "dns-switcher" => {
                s.push(allow("WriterClaimBothRegions", &["dynamodb:GetItem"], self.control_tables()));
                if self.d.dns_mode == DnsMode::Records {
                    s.push(allow(
                        "FailoverRecords",
                        &["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
                        vec![crate::cfn::sub("arn:${AWS::Partition}:route53:::hostedzone/${HostedZoneId}")],
                    ));
                    s.push(allow(
                        "FailoverRecordsInSync",
                        &["route53:GetChange"],
                        vec![crate::cfn::sub("arn:${AWS::Partition}:route53:::change/*")],
                    ));
                }
            }
            "order-consumer" => {
                s.push(allow(
                    "OwnOrdersQueue",
                    &[
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                        "sqs:GetQueueAttributes",
                        "sqs:SendMessage",
                    ],
                    vec![get_att("OrdersQueue", "Arn")],
                ));
                s.push(allow("OwnData", &["kms:Decrypt", "kms:GenerateDataKey"], vec![key]));
                s.push(self.own_database_secret(spec));
                // The one claim store, through this region's replica only.
                let table = format!("table/{}", self.names(self.region).control_table);
                s.push(allow(
                    "WriterClaim",
                    &["dynamodb:GetItem"],
                    vec![arn("dynamodb", self.region.as_str(), &table)],
                ));
                // A shadow forwards a stranded order to the writer's queue: the peer's orders
                // queue, encrypted with the peer's key (named by its alias: the key's ARN is
                // not known in this stack).
                let peer = self.both().find(|r| *r != self.region).cloned().unwrap_or_else(|| self.region.clone());
                let peer_names = self.names(&peer);
                s.push(allow(
                    "ForwardStrandedToPeer",
                    &["sqs:GetQueueUrl", "sqs:SendMessage"],
                    vec![arn("sqs", peer.as_str(), &peer_names.orders_queue)],
                ));
                s.push(json!({
                    "Sid": "PeerDataKeyForForwarding",
                    "Effect": "Allow",
                    "Action": ["kms:GenerateDataKey"],
                    "Resource": [arn("kms", peer.as_str(), "key/*")],
                    "Condition": { "ForAnyValue:StringEquals": { "kms:ResourceAliases": peer_names.data_key_alias } }
                }));
            }
            other => unreachable!("no policy for function {other}"),
        }
        document(s)
    }

    /// The state machines invoke four functions and publish to the alerts topic.
    pub fn state_machine_policy(&self) -> Value {
        let invoked: Vec<Value> = FUNCTIONS
            .iter()
            .filter(|f| **f != "readiness-tester")
            .flat_map(|f| {
                let name = self.d.names().function(f);
                [format!("function:{name}"), format!("function:{name}:*")]
                    .map(|r| arn("lambda", self.region.as_str(), &r))
            })
            .collect();
        document(vec![
            allow("InvokeTheSteps", &["lambda:InvokeFunction"], invoked),
            allow("Page", &["sns:Publish"], vec![Self::alerts_topic()]),
            allow("EncryptThePage", &["kms:GenerateDataKey", "kms:Decrypt"], vec![Self::data_key()]),
            allow(
                "TracesNoResourceArnExists",
                &[
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                ],
                vec![json!("*")],
            ),
            // CloudWatch Logs delivery for vended logs has no resource-level permissions.
            allow(
                "ExecutionLogDeliveryNoResourceArnExists",
                &[
                    "logs:CreateLogDelivery",
                    "logs:GetLogDelivery",
                    "logs:UpdateLogDelivery",
                    "logs:DeleteLogDelivery",
                    "logs:ListLogDeliveries",
                    "logs:PutResourcePolicy",
                    "logs:DescribeResourcePolicies",
                    "logs:DescribeLogGroups",
                ],
                vec![json!("*")],
            ),
        ])
    }

    /// An operator starts and follows the region's state machines. It is the only principal
    /// the stacks let start `operator-failover` (the overrides) and `switchover`; the events
    /// role starts only the automatic `failover`. Step Functions authorizes `StartExecution`
    /// on the state machine ARN and `DescribeExecution`, `GetExecutionHistory` and
    /// `StopExecution` on execution ARNs (Service Authorization Reference, "Actions,
    /// resources, and condition keys for AWS Step Functions").
    pub fn operator_policy(&self) -> Value {
        let own = self.names(self.region);
        let machines: Vec<&str> = own.state_machines().iter().map(|(_, name)| *name).collect();
        let region = self.region.as_str();
        document(vec![
            allow(
                "StartFailoverAndSwitchover",
                &["states:StartExecution"],
                machines.iter().map(|m| arn("states", region, &format!("stateMachine:{m}"))).collect(),
            ),
            allow(
                "FollowExecutions",
                &["states:DescribeExecution", "states:GetExecutionHistory", "states:StopExecution"],
                machines.iter().map(|m| arn("states", region, &format!("execution:{m}:*"))).collect(),
            ),
        ])
    }

    /// EventBridge starts the failover state machine and forwards alarms to the peer's bus.
    pub fn events_policy(&self) -> Value {
        let own = self.names(self.region);
        let peer = self.d.regions.peer_of(self.region).cloned().unwrap_or_else(|_| self.region.clone());
        document(vec![
            allow(
                "StartFailover",
                &["states:StartExecution"],
                vec![arn("states", self.region.as_str(), &format!("stateMachine:{}", own.failover_state_machine))],
            ),
            allow("ForwardToPeerBus", &["events:PutEvents"], vec![arn("events", peer.as_str(), "event-bus/default")]),
        ])
    }
}
