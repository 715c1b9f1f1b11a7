//! The stack of one region. Primary and standby come from the same code: what differs is
//! derived from the region's place in the model (the writer's cluster has the master user and
//! the database).

use serde_json::{Value, json};
use switchyard_core::{Region, config::keys, health};

use switchyard_model::{AURORA_ENGINE_VERSION, DB_CA_BUNDLE_PATH, Deployment, FUNCTIONS, RegionalNames, RuleTarget};

use crate::{
    cfn::{Template, arn, get_att, pascal, r#ref, sub},
    policy::{Scope, trust},
};

/// The database the orders live in, on the writer's cluster.
pub const DATABASE_NAME: &str = "trading";

/// The template of `region`'s stack. `definitions`: the state machines' definitions by name
/// (see [`switchyard_model::STATE_MACHINES`]), embedded as `Definition` objects.
pub fn regional_stack(d: &Deployment, region: &Region, definitions: &[(&str, Value)]) -> Value {
    let role = if *region == d.regions.primary { "primary" } else { "standby" };
    let mut t = Template::new(format!(
        "switchyard {env}: the {role} region {region} (functions, state machines, queues, alarms, Aurora cluster)",
        env = d.environment
    ));
    let stack = Regional { d, region, peer: d.regions.peer_of(region).cloned().unwrap_or_else(|_| region.clone()) };
    stack.parameters(&mut t);
    stack.data_key(&mut t);
    stack.queues_and_topics(&mut t);
    stack.control_table_and_configuration(&mut t);
    stack.database(&mut t);
    stack.functions(&mut t);
    stack.state_machines(&mut t, definitions);
    stack.event_rules(&mut t);
    stack.alarms_and_dashboard(&mut t);
    t.output("OrdersQueueUrl", "The orders queue the order consumer drains", r#ref("OrdersQueue"));
    t.output("AlertsTopicArn", "Subscribe the on-call pager here", r#ref("AlertsTopic"));
    t.output("ClusterEndpoint", "The regional Aurora cluster endpoint", get_att("Cluster", "Endpoint.Address"));
    t.output(
        "FailoverStateMachineArn",
        "The automatic failover (its alarm's rule starts it; it takes no override)",
        r#ref("FailoverStateMachine"),
    );
    t.output(
        "OperatorFailoverStateMachineArn",
        "Break-glass: a failover with allowDataLoss or ignoreCooldown and a reason (assume the operator role)",
        r#ref("OperatorFailoverStateMachine"),
    );
    t.output(
        "OperatorRoleArn",
        "Assume with MFA to start the operator failover or a switchover",
        get_att("OperatorRole", "Arn"),
    );
    t.finish(&d.tags())
}

struct Regional<'a> {
    d: &'a Deployment,
    region: &'a Region,
    peer: Region,
}

impl Regional<'_> {
    fn names(&self) -> RegionalNames {
        self.d.regional_names(self.region)
    }

    fn is_primary(&self) -> bool {
        *self.region == self.d.regions.primary
    }

    fn scope(&self) -> Scope<'_> {
        Scope { d: self.d, region: self.region }
    }

    /// What a user supplies per region (README, "Deploying to an AWS account").
    fn parameters(&self, t: &mut Template) {
        let parameters = [
            (
                "CodeBucket",
                "String",
                None,
                "S3 bucket in this region holding the function packages (cargo xtask package)",
            ),
            ("CodeKeyPrefix", "String", Some("switchyard/"), "key prefix of <function>.zip in CodeBucket"),
            ("HostedZoneId", "AWS::Route53::HostedZone::Id", None, "output HostedZoneId of the global stack"),
            (
                "PrivateSubnetIds",
                "List<AWS::EC2::Subnet::Id>",
                None,
                "private subnets (with a route to the AWS APIs) for the functions that reach the database",
            ),
            (
                "FunctionSecurityGroupId",
                "AWS::EC2::SecurityGroup::Id",
                None,
                "security group of those functions; the database's group admits it on 5432",
            ),
            ("DbSubnetGroupName", "String", None, "DB subnet group of the Aurora cluster"),
            ("DbSecurityGroupId", "AWS::EC2::SecurityGroup::Id", None, "security group of the Aurora cluster"),
            (
                "DbInstanceClass",
                "String",
                Some("db.r6g.large"),
                "Aurora instance class (global databases need r-class or larger)",
            ),
        ];
        for (name, kind, default, description) in parameters {
            let mut spec = json!({ "Type": kind, "Description": description });
            if let Some(d) = default {
                spec["Default"] = json!(d);
            }
            t.parameter(name, spec);
        }
    }

    /// The region's customer-managed key. Its policy names every action (no `kms:*`): the
    /// account administers and uses it through IAM; services that deliver into encrypted
    /// resources on the stack's behalf (SNS into the queues, CloudWatch into the topics, Logs)
    /// may use it for exactly that.
    fn data_key(&self, t: &mut Template) {
        let region = self.region.as_str();
        t.resource(
            "DataKey",
            json!({
                "Type": "AWS::KMS::Key",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "Description": format!("switchyard {} data in {region}", self.d.environment),
                    "EnableKeyRotation": true,
                    "PendingWindowInDays": 30,
                    "KeyPolicy": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "AccountAdministersAndUsesThroughIam",
                                "Effect": "Allow",
                                "Principal": { "AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root") },
                                "Action": [
                                    "kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:GetKeyRotationStatus",
                                    "kms:EnableKeyRotation", "kms:DisableKeyRotation", "kms:EnableKey", "kms:DisableKey",
                                    "kms:UpdateKeyDescription", "kms:ListResourceTags", "kms:TagResource", "kms:UntagResource",
                                    "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:UpdateAlias",
                                    "kms:DeleteAlias", "kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant", "kms:RetireGrant",
                                    "kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
                                    "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext"
                                ],
                                "Resource": "*"
                            },
                            {
                                "Sid": "ServicesDeliverIntoEncryptedQueuesAndTopics",
                                "Effect": "Allow",
                                "Principal": { "Service": ["sns.amazonaws.com", "cloudwatch.amazonaws.com", "events.amazonaws.com"] },
                                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                                "Resource": "*",
                                "Condition": { "StringEquals": { "aws:SourceAccount": r#ref("AWS::AccountId") } }
                            },
                            {
                                "Sid": "LogsEncryptTheLogGroups",
                                "Effect": "Allow",
                                "Principal": { "Service": format!("logs.{region}.amazonaws.com") },
                                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:DescribeKey"],
                                "Resource": "*",
                                "Condition": { "ArnLike": { "kms:EncryptionContext:aws:logs:arn": sub(format!("arn:${{AWS::Partition}}:logs:{region}:${{AWS::AccountId}}:log-group:*")) } }
                            }
                        ]
                    }
                }
            }),
        );
        t.resource(
            "DataKeyAlias",
            json!({
                "Type": "AWS::KMS::Alias",
                "Properties": { "AliasName": self.names().data_key_alias, "TargetKeyId": r#ref("DataKey") }
            }),
        );
    }

    /// The orders queue, its DLQ and the catch-up queue, and the alerts topic. Orders reach
    /// the queues from the order API (`core::ingress`: both regions' queues in parallel), not
    /// through a topic: an SNS publish acknowledged before delivery promised less than the
    /// acknowledgement does.
    fn queues_and_topics(&self, t: &mut Template) {
        let n = self.names();
        let key = get_att("DataKey", "Arn");
        t.resource(
            "OrdersDlq",
            json!({
                "Type": "AWS::SQS::Queue",
                // It holds acknowledged orders: deleting the stack must not drop them.
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "QueueName": n.orders_dlq,
                    "KmsMasterKeyId": key,
                    "MessageRetentionPeriod": 1_209_600,
                }
            }),
        );
        t.resource(
            "OrdersCatchUpQueue",
            json!({
                "Type": "AWS::SQS::Queue",
                // It holds acknowledged orders on their way to the standby.
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "QueueName": n.orders_catch_up,
                    "KmsMasterKeyId": key,
                    "KmsDataKeyReusePeriodSeconds": 300,
                    "MessageRetentionPeriod": 1_209_600,
                }
            }),
        );
        t.resource(
            "OrdersQueue",
            json!({
                "Type": "AWS::SQS::Queue",
                // It holds acknowledged orders: deleting the stack must not drop them.
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "QueueName": n.orders_queue,
                    "KmsMasterKeyId": key,
                    "KmsDataKeyReusePeriodSeconds": 300,
                    "VisibilityTimeout": self.d.orders_visibility_timeout.as_secs(),
                    "MessageRetentionPeriod": 1_209_600,
                    "RedrivePolicy": {
                        "deadLetterTargetArn": get_att("OrdersDlq", "Arn"),
                        "maxReceiveCount": self.d.orders_max_receives,
                    },
                }
            }),
        );
        t.resource(
            "AlertsTopic",
            json!({
                "Type": "AWS::SNS::Topic",
                "Properties": { "TopicName": n.alerts_topic, "KmsMasterKeyId": r#ref("DataKey") }
            }),
        );
    }

    /// The claim store (writer claim, standing, lock, handovers, timelines) and the
    /// configuration both regions must agree on.
    ///
    /// The claim store is **one** DynamoDB global table with multi-Region strong consistency
    /// (MRSC): a replica in each region of the pair and a witness in the third region of their
    /// Region set, so a region cut off from the other two can neither read nor write a claim
    /// strongly, and the two regions can never disagree on it. The **standby's** stack holds it,
    /// because it is deployed last: a replica's key "must be created in the same region as the
    /// replica" (ReplicaSSESpecification), and the primary's `DataKey` exists by then, named by
    /// its alias; and a GlobalTable's "Replicas section must contain an entry for the current
    /// region". MRSC supports no TTL, LSIs or transactions (the guard refuses the first two;
    /// the sandbox's claim store refuses all three): `record` is conditional writes only.
    /// Pages: AWS::DynamoDB::GlobalTable GlobalTableWitness and ReplicaSSESpecification in the
    /// CloudFormation reference; the developer guide's "multi-Region strong consistency".
    fn control_table_and_configuration(&self, t: &mut Template) {
        if !self.is_primary() {
            let witness = self.d.claim_store_witness().map(|w| w.to_string()).unwrap_or_default();
            let replica = |region: &Region, key: Value| {
                json!({
                    "Region": region.as_str(),
                    "SSESpecification": { "KMSMasterKeyId": key },
                    "PointInTimeRecoverySpecification": { "PointInTimeRecoveryEnabled": true },
                    "DeletionProtectionEnabled": true,
                })
            };
            let peer_key = arn("kms", self.peer.as_str(), self.d.regional_names(&self.peer).data_key_alias.as_str());
            t.resource(
                "ControlTable",
                json!({
                    "Type": "AWS::DynamoDB::GlobalTable",
                    "DeletionPolicy": "Retain",
                    "UpdateReplacePolicy": "Retain",
                    "Properties": {
                        "TableName": self.names().control_table,
                        "BillingMode": "PAY_PER_REQUEST",
                        "AttributeDefinitions": [{ "AttributeName": "pk", "AttributeType": "S" }],
                        "KeySchema": [{ "AttributeName": "pk", "KeyType": "HASH" }],
                        "SSESpecification": { "SSEEnabled": true, "SSEType": "KMS" },
                        "MultiRegionConsistency": "STRONG",
                        "GlobalTableWitnesses": [{ "Region": witness }],
                        "Replicas": [
                            replica(self.region, get_att("DataKey", "Arn")),
                            replica(&self.peer, peer_key),
                        ],
                    }
                }),
            );
        }
        for (name, value) in self.d.shared_parameters() {
            let id = format!("Parameter{}", pascal(name.rsplit('/').next().unwrap_or(&name)));
            t.resource(
                &id,
                json!({
                    "Type": "AWS::SSM::Parameter",
                    "Properties": {
                        "Name": name,
                        "Type": "String",
                        "Value": value,
                        "Description": "switchyard configuration; must equal the peer region's (readiness checks)",
                    }
                }),
            );
        }
    }

    /// The regional Aurora PostgreSQL cluster in the global cluster (from the global stack),
    /// encrypted with the region's key. Only the writer's cluster has a master user, whose
    /// password RDS manages in Secrets Manager (it appears nowhere). The functions' own
    /// database credentials are generated secrets, replicated to the standby.
    fn database(&self, t: &mut Template) {
        let n = self.names();
        let mut cluster = json!({
            "Type": "AWS::RDS::DBCluster",
            "DeletionPolicy": "Snapshot",
            "UpdateReplacePolicy": "Snapshot",
            "Properties": {
                "DBClusterIdentifier": n.db_cluster,
                "Engine": "aurora-postgresql",
                "EngineVersion": AURORA_ENGINE_VERSION,
                "GlobalClusterIdentifier": self.d.global_cluster(),
                "StorageEncrypted": true,
                "KmsKeyId": get_att("DataKey", "Arn"),
                "DeletionProtection": true,
                "BackupRetentionPeriod": 14,
                "CopyTagsToSnapshot": true,
                "DBSubnetGroupName": r#ref("DbSubnetGroupName"),
                "VpcSecurityGroupIds": [r#ref("DbSecurityGroupId")],
                "EnableCloudwatchLogsExports": ["postgresql"],
            }
        });
        if self.is_primary() {
            let p = &mut cluster["Properties"];
            p["MasterUsername"] = json!("switchyard");
            p["ManageMasterUserPassword"] = json!(true);
            p["MasterUserSecret"] = json!({ "KmsKeyId": r#ref("DataKey") });
            p["DatabaseName"] = json!(DATABASE_NAME);
        }
        t.resource("Cluster", cluster);
        t.resource(
            "ClusterInstance",
            json!({
                "Type": "AWS::RDS::DBInstance",
                "DeletionPolicy": "Delete",
                "UpdateReplacePolicy": "Delete",
                "Properties": {
                    "DBClusterIdentifier": r#ref("Cluster"),
                    "Engine": "aurora-postgresql",
                    "DBInstanceClass": r#ref("DbInstanceClass"),
                    "PubliclyAccessible": false,
                    "AutoMinorVersionUpgrade": true,
                }
            }),
        );
        if self.is_primary() {
            for function in ["health-probe", "readiness-tester", "order-consumer"] {
                t.resource(
                    &format!("{}DbSecret", pascal(function)),
                    json!({
                        "Type": "AWS::SecretsManager::Secret",
                        "DeletionPolicy": "Retain",
                        "UpdateReplacePolicy": "Retain",
                        "Properties": {
                            "Name": self.d.db_secret(function),
                            "Description": format!("{function}'s own database role (create the role with this password on the writer)"),
                            "KmsKeyId": r#ref("DataKey"),
                            "GenerateSecretString": {
                                "SecretStringTemplate": json!({ "username": function.replace('-', "_") }).to_string(),
                                "GenerateStringKey": "password",
                                "PasswordLength": 32,
                                "ExcludePunctuation": true,
                            },
                            // The database (and so the role's password) is global: the standby
                            // reads the same secret. Its key there is the AWS managed one: the
                            // standby's own key does not exist yet when this stack is created.
                            "ReplicaRegions": [{ "Region": self.peer.as_str() }],
                        }
                    }),
                );
            }
        }
    }

    fn function_environment(&self) -> Value {
        let mut env = serde_json::Map::new();
        for (key, value) in self.d.function_environment(self.region) {
            // Lambda sets AWS_REGION itself and refuses it in a function's configuration.
            if key != keys::LOCAL_REGION {
                env.insert(key.to_owned(), json!(value));
            }
        }
        let cluster_arns: serde_json::Map<String, Value> = self
            .d
            .regions
            .iter()
            .map(|r| {
                let cluster = self.d.regional_names(r).db_cluster;
                (r.to_string(), json!(format!("arn:${{AWS::Partition}}:rds:{r}:${{AWS::AccountId}}:cluster:{cluster}")))
            })
            .collect();
        let health_urls: serde_json::Map<String, Value> = self
            .d
            .regions
            .iter()
            .map(|r| (r.to_string(), json!(format!("https://{}/health", self.d.regional_api_record(r)))))
            .collect();
        let extra = [
            (keys::ORDERS_QUEUE_URL, r#ref("OrdersQueue")),
            (keys::ALERTS_TOPIC_ARN, r#ref("AlertsTopic")),
            (keys::HOSTED_ZONE_ID, r#ref("HostedZoneId")),
            (keys::DB_ENGINE, json!("aurora")),
            (keys::GLOBAL_CLUSTER, json!(self.d.global_cluster())),
            (keys::DB_CLUSTER_ARNS, sub(crate::cfn::compact(&Value::Object(cluster_arns)))),
            // Only this region's cluster: the aurora engine moves the writer through the RDS
            // API, so no function connects to the peer's database.
            (
                keys::DB_ENDPOINTS,
                sub(format!(
                    r#"{{"{}":{{"host":"${{Cluster.Endpoint.Address}}","port":5432,"user":"switchyard","dbname":"{DATABASE_NAME}"}}}}"#,
                    self.region
                )),
            ),
            (keys::DB_CA_BUNDLE, json!(DB_CA_BUNDLE_PATH)),
            (keys::HEALTH_URLS, json!(crate::cfn::compact(&Value::Object(health_urls)))),
        ];
        for (k, v) in extra {
            env.insert(k.to_owned(), v);
        }
        Value::Object(env)
    }

    /// The five functions, each with its own role, log group and reserved concurrency; the
    /// probe's and the readiness tester's failed asynchronous invocations page.
    fn functions(&self, t: &mut Template) {
        let env = self.function_environment();
        for spec in self.d.function_specs() {
            let id = pascal(spec.name);
            let name = self.d.names().function(spec.name);
            t.resource(
                &format!("{id}LogGroup"),
                json!({
                    "Type": "AWS::Logs::LogGroup",
                    "DeletionPolicy": "Retain",
                    "UpdateReplacePolicy": "Retain",
                    "Properties": {
                        "LogGroupName": format!("/aws/lambda/{name}"),
                        "RetentionInDays": 90,
                        "KmsKeyId": get_att("DataKey", "Arn"),
                    }
                }),
            );
            t.resource(
                &format!("{id}Role"),
                json!({
                    "Type": "AWS::IAM::Role",
                    "Properties": {
                        "RoleName": self.d.names().role(spec.name, self.region),
                        "Description": format!("{}: least privilege", spec.name),
                        "AssumeRolePolicyDocument": trust("lambda.amazonaws.com"),
                        "Policies": [{ "PolicyName": "least-privilege", "PolicyDocument": self.scope().function_policy(&spec) }],
                    }
                }),
            );
            let mut function = json!({
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": name,
                    "Description": spec.description,
                    "Runtime": "provided.al2023",
                    "Architectures": ["arm64"],
                    "Handler": "bootstrap",
                    "Code": { "S3Bucket": r#ref("CodeBucket"), "S3Key": sub(format!("${{CodeKeyPrefix}}{}.zip", spec.name)) },
                    "MemorySize": spec.memory_mb,
                    "Timeout": spec.timeout.as_secs(),
                    "ReservedConcurrentExecutions": spec.reserved_concurrency,
                    "Role": get_att(&format!("{id}Role"), "Arn"),
                    "Environment": { "Variables": env.clone() },
                    "TracingConfig": { "Mode": "Active" },
                    "LoggingConfig": {
                        "LogFormat": "JSON",
                        "LogGroup": r#ref(&format!("{id}LogGroup")),
                        "ApplicationLogLevel": "INFO",
                        "SystemLogLevel": "WARN",
                    },
                }
            });
            if spec.in_vpc {
                function["Properties"]["VpcConfig"] = json!({
                    "SubnetIds": r#ref("PrivateSubnetIds"),
                    "SecurityGroupIds": [r#ref("FunctionSecurityGroupId")],
                });
            }
            t.resource(&format!("{id}Function"), function);
        }
        for (function, retries) in [("health-probe", 0), ("readiness-tester", 1)] {
            t.resource(
                &format!("{}InvokeConfig", pascal(function)),
                json!({
                    "Type": "AWS::Lambda::EventInvokeConfig",
                    "Properties": {
                        "FunctionName": r#ref(&format!("{}Function", pascal(function))),
                        "Qualifier": "$LATEST",
                        "MaximumRetryAttempts": retries,
                        "DestinationConfig": { "OnFailure": { "Destination": r#ref("AlertsTopic") } },
                    }
                }),
            );
        }
        let consumer = self.d.function_specs().into_iter().find(|s| s.name == "order-consumer");
        let concurrency = consumer.map_or(2, |s| s.reserved_concurrency.max(2));
        t.resource(
            "OrdersEventSource",
            json!({
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": get_att("OrdersQueue", "Arn"),
                    "FunctionName": r#ref("OrderConsumerFunction"),
                    "BatchSize": 10,
                    "MaximumBatchingWindowInSeconds": 1,
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    "ScalingConfig": { "MaximumConcurrency": concurrency },
                    "Enabled": true,
                }
            }),
        );
    }

    fn state_machines(&self, t: &mut Template, definitions: &[(&str, Value)]) {
        let n = self.names();
        t.resource(
            "StateMachineLogGroup",
            json!({
                "Type": "AWS::Logs::LogGroup",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "LogGroupName": format!("/aws/vendedlogs/states/switchyard-{}-{}", self.d.environment, self.region),
                    "RetentionInDays": 365,
                    "KmsKeyId": get_att("DataKey", "Arn"),
                }
            }),
        );
        t.resource(
            "StateMachineRole",
            json!({
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": self.d.names().role("states", self.region),
                    "Description": "the failover and switchover state machines: invoke the steps, page",
                    "AssumeRolePolicyDocument": trust("states.amazonaws.com"),
                    "Policies": [{ "PolicyName": "least-privilege", "PolicyDocument": self.scope().state_machine_policy() }],
                }
            }),
        );
        t.resource(
            "OperatorRole",
            json!({
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": self.d.names().role("operator", self.region),
                    "Description": "people (with MFA): start the operator failover (overrides, with a reason) or a switchover",
                    "AssumeRolePolicyDocument": crate::policy::operator_trust(),
                    "Policies": [{ "PolicyName": "least-privilege", "PolicyDocument": self.scope().operator_policy() }],
                }
            }),
        );
        let functions: Vec<String> = FUNCTIONS.iter().map(|f| format!("{}Function", pascal(f))).collect();
        for (machine, name) in n.state_machines() {
            // ARNs take the stack's account and partition; the failover's entry is a word.
            let substitutions: serde_json::Map<String, Value> = self
                .d
                .state_machine_substitutions(self.region, "${AWS::AccountId}", machine)
                .into_iter()
                .map(|(k, v)| match v.strip_prefix("arn:aws:") {
                    Some(rest) => (k, sub(format!("arn:${{AWS::Partition}}:{rest}"))),
                    None => (k, json!(v)),
                })
                .collect();
            let definition = definitions
                .iter()
                .find(|(m, _)| *m == machine)
                .map(|(_, d)| d.clone())
                .unwrap_or_else(|| panic!("no definition given for the {machine} state machine"));
            let mut depends_on = functions.clone();
            depends_on.push("AlertsTopic".into());
            t.resource(
                &format!("{}StateMachine", pascal(machine)),
                json!({
                    "Type": "AWS::StepFunctions::StateMachine",
                    "DependsOn": depends_on,
                    "Properties": {
                        "StateMachineName": name,
                        "StateMachineType": "STANDARD",
                        "RoleArn": get_att("StateMachineRole", "Arn"),
                        "Definition": definition,
                        "DefinitionSubstitutions": substitutions,
                        "LoggingConfiguration": {
                            "Level": "ALL",
                            "IncludeExecutionData": true,
                            "Destinations": [{ "CloudWatchLogsLogGroup": { "LogGroupArn": get_att("StateMachineLogGroup", "Arn") } }],
                        },
                        "TracingConfiguration": { "Enabled": true },
                    }
                }),
            );
        }
    }

    fn event_rules(&self, t: &mut Template) {
        t.resource(
            "EventsRole",
            json!({
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": self.d.names().role("events", self.region),
                    "Description": "EventBridge: start the failover, forward alarms to the peer's bus",
                    "AssumeRolePolicyDocument": trust("events.amazonaws.com"),
                    "Policies": [{ "PolicyName": "least-privilege", "PolicyDocument": self.scope().events_policy() }],
                }
            }),
        );
        for rule in self.d.event_rules(self.region) {
            let id =
                format!("{}Rule", pascal(rule.name.trim_start_matches(&format!("switchyard-{}-", self.d.environment))));
            let target = match &rule.target {
                RuleTarget::Function { function } => {
                    t.resource(
                        &format!("{id}InvokePermission"),
                        json!({
                            "Type": "AWS::Lambda::Permission",
                            "Properties": {
                                "FunctionName": r#ref(&format!("{}Function", pascal(function))),
                                "Action": "lambda:InvokeFunction",
                                "Principal": "events.amazonaws.com",
                                "SourceArn": get_att(&id, "Arn"),
                                "SourceAccount": r#ref("AWS::AccountId"),
                            }
                        }),
                    );
                    json!({ "Id": function, "Arn": get_att(&format!("{}Function", pascal(function)), "Arn") })
                }
                RuleTarget::StateMachine { state_machine, input_paths, template } => {
                    let names = self.names();
                    let (machine, _) = names
                        .state_machines()
                        .into_iter()
                        .find(|(_, name)| name == state_machine)
                        .unwrap_or_else(|| panic!("rule {} targets no state machine of the model", rule.name));
                    json!({
                        "Id": "failover",
                        "Arn": r#ref(&format!("{}StateMachine", pascal(machine))),
                        "RoleArn": get_att("EventsRole", "Arn"),
                        "InputTransformer": { "InputPathsMap": input_paths, "InputTemplate": template },
                    })
                }
                RuleTarget::PeerBus { region } => json!({
                    "Id": "peer-bus",
                    "Arn": arn("events", region.as_str(), "event-bus/default"),
                    "RoleArn": get_att("EventsRole", "Arn"),
                }),
            };
            let mut properties = json!({
                "Name": rule.name,
                "Description": rule.description,
                "State": "ENABLED",
                "Targets": [target],
            });
            if let Some(s) = &rule.schedule {
                properties["ScheduleExpression"] = json!(s);
            }
            if let Some(p) = &rule.pattern {
                properties["EventPattern"] = p.clone();
            }
            t.resource(&id, json!({ "Type": "AWS::Events::Rule", "Properties": properties }));
        }
    }

    fn alarm(name: &str, description: String, metric: Value, threshold: f64, comparison: &str) -> Value {
        let mut properties = json!({
            "AlarmName": name,
            "AlarmDescription": description,
            "Threshold": threshold,
            "ComparisonOperator": comparison,
            "ActionsEnabled": true,
            "AlarmActions": [r#ref("AlertsTopic")],
            "OKActions": [r#ref("AlertsTopic")],
        });
        for (k, v) in metric.as_object().into_iter().flatten() {
            properties[k] = v.clone();
        }
        json!({ "Type": "AWS::CloudWatch::Alarm", "Properties": properties })
    }

    /// The failover alarm (the peer's `Healthy`, as this region's probe sees it), replication
    /// lag, consumer errors and DLQ depth; a dashboard of the same.
    fn alarms_and_dashboard(&self, t: &mut Template) {
        let n = self.names();
        let failover = self.d.failover_alarm(self.region);
        t.resource(
            "FailoverAlarm",
            Self::alarm(
                &failover.name,
                format!("{} unhealthy as seen from {}: start a failover", failover.watched_region, self.region),
                json!({
                    "Namespace": health::NAMESPACE,
                    "MetricName": health::metric::HEALTHY,
                    "Dimensions": [{ "Name": "Region", "Value": failover.watched_region.as_str() }],
                    "Statistic": "Minimum",
                    "Period": failover.rule.period.as_secs(),
                    "EvaluationPeriods": failover.rule.evaluation_periods,
                    "DatapointsToAlarm": failover.rule.datapoints_to_alarm,
                    "TreatMissingData": "notBreaching",
                }),
                1.0,
                "LessThanThreshold",
            ),
        );
        t.resource(
            "ReplicationLagAlarm",
            Self::alarm(
                &n.replication_lag_alarm,
                format!(
                    "Aurora replication into {} is behind the RPO budget; a failover would be refused",
                    self.region
                ),
                json!({
                    "Namespace": "AWS/RDS",
                    "MetricName": "AuroraGlobalDBReplicationLag",
                    "Dimensions": [{ "Name": "DBClusterIdentifier", "Value": n.db_cluster }],
                    "Statistic": "Maximum",
                    "Period": 60,
                    "EvaluationPeriods": 3,
                    "DatapointsToAlarm": 2,
                    "TreatMissingData": "notBreaching",
                }),
                self.d.rpo_budget.0.as_millis() as f64,
                "GreaterThanThreshold",
            ),
        );
        t.resource(
            "ConsumerErrorsAlarm",
            Self::alarm(
                &n.consumer_errors_alarm,
                "the order consumer failed invocations (not rejected orders: those are partial batch failures)".into(),
                json!({
                    "Namespace": "AWS/Lambda",
                    "MetricName": "Errors",
                    "Dimensions": [{ "Name": "FunctionName", "Value": self.d.names().function("order-consumer") }],
                    "Statistic": "Sum",
                    "Period": 300,
                    "EvaluationPeriods": 1,
                    "TreatMissingData": "notBreaching",
                }),
                0.0,
                "GreaterThanThreshold",
            ),
        );
        t.resource(
            "DlqDepthAlarm",
            Self::alarm(
                &n.dlq_depth_alarm,
                "poison orders reached the DLQ: read the consumer's to_dlq log lines".into(),
                json!({
                    "Namespace": "AWS/SQS",
                    "MetricName": "ApproximateNumberOfMessagesVisible",
                    "Dimensions": [{ "Name": "QueueName", "Value": n.orders_dlq }],
                    "Statistic": "Maximum",
                    "Period": 300,
                    "EvaluationPeriods": 1,
                    "TreatMissingData": "notBreaching",
                }),
                0.0,
                "GreaterThanThreshold",
            ),
        );
        let region = self.region.as_str();
        let metric_widget = |title: &str, metrics: Value, y: u32| {
            json!({
                "type": "metric", "x": 0, "y": y, "width": 24, "height": 6,
                "properties": { "title": title, "region": region, "metrics": metrics, "period": 60, "stat": "Minimum" }
            })
        };
        let healthy: Vec<Value> = self
            .d
            .regions
            .iter()
            .map(|r| json!([health::NAMESPACE, health::metric::HEALTHY, "Region", r.as_str()]))
            .collect();
        let body = json!({
            "widgets": [
                metric_widget(&format!("Healthy, as {region}'s probe sees it"), json!(healthy), 0),
                metric_widget(
                    "Aurora replication lag (ms)",
                    json!([["AWS/RDS", "AuroraGlobalDBReplicationLag", "DBClusterIdentifier", n.db_cluster, { "stat": "Maximum" }]]),
                    6,
                ),
                metric_widget(
                    "Order consumer errors, orders DLQ depth",
                    json!([
                        ["AWS/Lambda", "Errors", "FunctionName", self.d.names().function("order-consumer"), { "stat": "Sum" }],
                        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", n.orders_dlq, { "stat": "Maximum" }]
                    ]),
                    12,
                ),
                metric_widget(
                    "FailoverReady",
                    json!([[health::NAMESPACE, health::metric::FAILOVER_READY, "Region", region]]),
                    18,
                ),
            ]
        });
        t.resource(
            "Dashboard",
            json!({
                "Type": "AWS::CloudWatch::Dashboard",
                "Properties": { "DashboardName": n.dashboard, "DashboardBody": crate::cfn::compact(&body) }
            }),
        );
    }
}
