//! The emitted stacks: current with the model, clean for cfn-lint and cfn-guard (whose rules
//! each refuse a template broken their way), naming what the code uses, and the sandbox built
//! from the same model.

use std::collections::BTreeSet;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use serde_json::{Value, json};
use switchyard_aws::sdk_config;
use switchyard_model::{Deployment, FUNCTIONS, RuleTarget};
use switchyard_sandbox::{Sandbox, tools};
use switchyard_tests::{sandbox_trial, trial};
use xtask::synth::{self, Emitted};

pub fn trials() -> Vec<Trial> {
    vec![
        trial("infra::the_committed_templates_are_what_the_model_emits", || Box::pin(current())),
        trial("infra::cfn_lint_passes_every_template_in_its_region", || Box::pin(cfn_lint_clean())),
        trial("infra::cfn_guard_passes_every_template", || Box::pin(guard_clean())),
        trial("infra::each_cfn_guard_rule_refuses_a_template_broken_its_way", || Box::pin(guard_catches())),
        trial("infra::the_templates_name_what_the_code_uses", || Box::pin(names_match_the_code())),
        sandbox_trial("infra::the_sandbox_holds_the_stacks_resources_by_the_same_names", |sb| {
            Box::pin(sandbox_matches(sb))
        }),
    ]
}

async fn current() -> anyhow::Result<()> {
    let stale = synth::stale()?;
    ensure!(stale.is_empty(), "stale (run `cargo xtask synth`): {stale:?}");
    Ok(())
}

/// Every template of both reference sets, with the region it is deployed in.
fn all_templates() -> anyhow::Result<Vec<(Deployment, Emitted)>> {
    let mut all = Vec::new();
    for (d, _) in synth::reference_sets() {
        for e in synth::emit(&d)? {
            all.push((d.clone(), e));
        }
    }
    Ok(all)
}

fn scratch(name: &str, template: &Value) -> anyhow::Result<std::path::PathBuf> {
    let dir = switchyard_sandbox::workspace::repo_root().join("target/contract/templates");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(template)?)?;
    Ok(path)
}

pub(crate) fn cfn_lint(path: &std::path::Path, region: &str) -> anyhow::Result<std::process::Output> {
    Ok(std::process::Command::new(tools::venv_dir().join("bin/cfn-lint"))
        .args(["--regions", region, "--"])
        .arg(path)
        .output()?)
}

fn cfn_guard(path: &std::path::Path) -> anyhow::Result<std::process::Output> {
    Ok(std::process::Command::new(tools::ensure_cfn_guard()?)
        .args(["validate", "--show-summary", "fail", "--rules"])
        .arg(switchyard_sandbox::workspace::repo_root().join("infra/guard/switchyard.guard"))
        .arg("--data")
        .arg(path)
        .output()?)
}

/// cfn-lint, errors and warnings, each template in the region it is deployed in; and it does
/// fail: a function with an unknown property and a bad runtime is refused.
async fn cfn_lint_clean() -> anyhow::Result<()> {
    tools::ensure_python_tools()?;
    for (d, e) in all_templates()? {
        let path = scratch(&format!("{}-{}", d.dns_mode.as_str(), e.file), &e.template)?;
        let out = cfn_lint(&path, e.region.as_str())?;
        ensure!(out.status.success(), "cfn-lint on {}: {}", path.display(), String::from_utf8_lossy(&out.stdout));
    }
    let d = Deployment::sandbox();
    let mut broken = synth::emit(&d)?.remove(1).template;
    broken["Resources"]["RdsPromoterFunction"]["Properties"]["Runtime"] = json!("provided.al2");
    broken["Resources"]["RdsPromoterFunction"]["Properties"]["Colour"] = json!("blue");
    let path = scratch("broken-lint.template.json", &broken)?;
    ensure!(!cfn_lint(&path, "us-east-1")?.status.success(), "cfn-lint accepted a broken template");
    Ok(())
}

async fn guard_clean() -> anyhow::Result<()> {
    for (d, e) in all_templates()? {
        let path = scratch(&format!("{}-{}", d.dns_mode.as_str(), e.file), &e.template)?;
        let out = cfn_guard(&path)?;
        ensure!(out.status.success(), "cfn-guard on {}: {}", path.display(), String::from_utf8_lossy(&out.stdout));
    }
    Ok(())
}

type Breakage = (&'static str, usize, fn(&mut Value));

/// One way to break each rule: (rule, template index 0 global / 1 primary / 2 standby, the edit).
fn breakages() -> Vec<Breakage> {
    fn r<'a>(t: &'a mut Value, id: &str) -> &'a mut Value {
        &mut t["Resources"][id]["Properties"]
    }
    fn remove(v: &mut Value, key: &str) {
        v.as_object_mut().map(|o| o.remove(key));
    }
    vec![
        ("queues_encrypted_with_kms", 1, |t| remove(r(t, "OrdersQueue"), "KmsMasterKeyId")),
        ("topics_encrypted_with_kms", 1, |t| remove(r(t, "AlertsTopic"), "KmsMasterKeyId")),
        ("global_tables_encrypted_with_customer_keys", 2, |t| {
            remove(&mut r(t, "ControlTable")["Replicas"][1], "SSESpecification")
        }),
        ("claim_store_strongly_consistent", 2, |t| {
            r(t, "ControlTable")["TimeToLiveSpecification"] = json!({ "AttributeName": "expires", "Enabled": true })
        }),
        ("global_tables_tagged", 2, |t| remove(&mut r(t, "ControlTable")["Replicas"][0], "Tags")),
        ("log_groups_encrypted_and_bounded", 1, |t| remove(r(t, "HealthProbeLogGroup"), "KmsKeyId")),
        ("database_encrypted_protected_backed_up", 1, |t| r(t, "Cluster")["DeletionProtection"] = json!(false)),
        ("global_database_encrypted", 0, |t| r(t, "GlobalCluster")["StorageEncrypted"] = json!(false)),
        ("secrets_encrypted_with_kms", 1, |t| remove(r(t, "OrderConsumerDbSecret"), "KmsKeyId")),
        ("keys_rotate", 1, |t| r(t, "DataKey")["EnableKeyRotation"] = json!(false)),
        ("tagged", 1, |t| remove(r(t, "AlertsTopic"), "Tags")),
        ("parameters_tagged", 1, |t| remove(r(t, "ParameterDnsMode"), "Tags")),
        ("zones_tagged", 0, |t| remove(r(t, "HostedZone"), "HostedZoneTags")),
        ("health_checks_tagged", 0, |t| remove(r(t, "UsEast1HealthCheck"), "HealthCheckTags")),
        ("no_wildcard_actions_in_roles", 1, |t| {
            r(t, "RdsPromoterRole")["Policies"][0]["PolicyDocument"]["Statement"][0]["Action"] = json!(["rds:*"])
        }),
        ("wildcard_resources_say_why", 1, |t| {
            r(t, "OrderConsumerRole")["Policies"][0]["PolicyDocument"]["Statement"][0]["Resource"] = json!(["*"])
        }),
        ("no_wildcard_actions_in_key_policies", 1, |t| {
            r(t, "DataKey")["KeyPolicy"]["Statement"][0]["Action"] = json!(["kms:*"])
        }),
        ("queue_policies_scoped", 1, |t| {
            // The stacks have no queue policy (orders reach the queues from the API's role):
            // one that lets any SNS topic deliver must still be refused.
            t["Resources"]["OrdersQueuePolicy"] = json!({
                "Type": "AWS::SQS::QueuePolicy",
                "Properties": {
                    "Queues": [{ "Ref": "OrdersQueue" }],
                    "PolicyDocument": { "Version": "2012-10-17", "Statement": [{
                        "Effect": "Allow", "Principal": { "Service": "sns.amazonaws.com" },
                        "Action": ["sqs:SendMessage"], "Resource": "*"
                    }]}
                }
            })
        }),
        ("failover_records_well_formed", 0, |t| remove(r(t, "UsEast1Record"), "HealthCheckId")),
        ("one_primary_one_secondary", 0, |t| r(t, "UsEast2Record")["Failover"] = json!("PRIMARY")),
        ("no_plaintext_database_password", 1, |t| r(t, "Cluster")["MasterUserPassword"] = json!("hunter22")),
        ("secrets_generated_not_written", 1, |t| {
            r(t, "HealthProbeDbSecret")["SecretString"] = json!("{\"password\":\"x\"}")
        }),
        ("no_secrets_in_function_environment", 1, |t| {
            r(t, "OrderConsumerFunction")["Environment"]["Variables"]["DB_PASSWORD"] = json!("hunter22")
        }),
        ("functions_as_designed", 1, |t| r(t, "DnsSwitcherFunction")["Architectures"] = json!(["x86_64"])),
    ]
}

/// Every rule in the rule file has a breakage, and each breakage fails exactly its rule.
async fn guard_catches() -> anyhow::Result<()> {
    let rules_text =
        std::fs::read_to_string(switchyard_sandbox::workspace::repo_root().join("infra/guard/switchyard.guard"))?;
    let rules: BTreeSet<&str> = rules_text
        .lines()
        .filter_map(|l| l.strip_prefix("rule "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let broken: BTreeSet<&str> = breakages().iter().map(|(rule, _, _)| *rule).collect();
    ensure!(rules == broken, "rules without a breakage test: {:?}", rules.difference(&broken).collect::<Vec<_>>());
    let emitted = synth::emit(&Deployment::sandbox())?;
    for (rule, index, edit) in breakages() {
        let mut template = emitted[index].template.clone();
        edit(&mut template);
        let path = scratch(&format!("broken-{rule}.template.json"), &template)?;
        let out = cfn_guard(&path)?;
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        ensure!(!out.status.success(), "cfn-guard accepted a template breaking {rule}");
        let failed: BTreeSet<&str> = report
            .lines()
            .filter(|l| l.trim_end().ends_with("FAIL"))
            .filter_map(|l| l.split_whitespace().next()?.strip_prefix("switchyard.guard/"))
            .collect();
        ensure!(failed == BTreeSet::from([rule]), "breaking {rule} failed {failed:?}:\n{report}");
    }
    Ok(())
}

fn resources_of<'a>(template: &'a Value, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
    template["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(move |(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id, &r["Properties"]))
}

fn names_of(template: &Value, kind: &str, property: &str) -> BTreeSet<String> {
    resources_of(template, kind).filter_map(|(_, p)| p[property].as_str().map(str::to_owned)).collect()
}

/// The logical id whose `property` is `name`.
fn id_named(template: &Value, kind: &str, property: &str, name: &str) -> anyhow::Result<String> {
    resources_of(template, kind)
        .find(|(_, p)| p[property] == name)
        .map(|(id, _)| id.clone())
        .with_context(|| format!("no {kind} with {property} {name}"))
}

/// The functions, state machine substitutions, rules, queues, topics, tables, parameters and
/// alarms of each template carry the names `infra` gives the code, and the global stack's
/// health checks follow alarms the regional stacks create.
async fn names_match_the_code() -> anyhow::Result<()> {
    for (d, _) in synth::reference_sets() {
        let emitted = synth::emit(&d)?;
        let (global, regional) = (&emitted[0].template, &emitted[1..]);
        for e in regional {
            let (t, region) = (&e.template, &e.region);
            let n = d.regional_names(region);
            let functions: BTreeSet<String> = FUNCTIONS.iter().map(|f| d.names().function(f)).collect();
            ensure!(names_of(t, "AWS::Lambda::Function", "FunctionName") == functions, "{}: functions", e.file);
            for (_, p) in resources_of(t, "AWS::Lambda::Function") {
                let vars = p["Environment"]["Variables"].as_object().context("environment")?;
                for (key, value) in d.function_environment(region) {
                    if key == switchyard_core::config::keys::LOCAL_REGION {
                        continue;
                    }
                    ensure!(vars.get(key) == Some(&json!(value)), "{}: {key} is not {value}", p["FunctionName"]);
                }
            }
            // State machines: their names, their definitions as the files hold them, and
            // substitutions that are exactly the definitions' placeholders, naming functions
            // and the topic of this template.
            for (machine, name) in n.state_machines() {
                let id = id_named(t, "AWS::StepFunctions::StateMachine", "StateMachineName", name)?;
                let p = &t["Resources"][&id]["Properties"];
                let text = switchyard_sandbox::definitions::definition_text(machine)?;
                ensure!(
                    p["Definition"] == serde_json::from_str::<Value>(&text)?,
                    "{name}: definition differs from its file"
                );
                let subs = p["DefinitionSubstitutions"].as_object().context("substitutions")?;
                let keys: BTreeSet<String> = subs.keys().cloned().collect();
                ensure!(keys == switchyard_sandbox::definitions::placeholders(&text), "{name}: substitutions {keys:?}");
                for (key, value) in subs {
                    if key == switchyard_model::FAILOVER_ENTRY_SUBSTITUTION {
                        // The entry is the machine's: the alarm's failover is automatic.
                        let entry = if machine == "operator-failover" { "operator" } else { "automatic" };
                        ensure!(value == entry, "{name}: {key} = {value}");
                        continue;
                    }
                    let arn = value["Fn::Sub"].as_str().context("an ARN")?;
                    let last = arn.rsplit(':').next().unwrap_or_default();
                    let known = if key == "AlertsTopicArn" {
                        names_of(t, "AWS::SNS::Topic", "TopicName").contains(last)
                    } else {
                        functions.contains(last)
                    };
                    ensure!(
                        known && arn.contains(region.as_str()),
                        "{name}: {key} = {arn} names nothing in {}",
                        e.file
                    );
                }
            }
            // EventBridge rules: the model's, with targets that resolve to this template's
            // resources.
            let rules = d.event_rules(region);
            let names: BTreeSet<String> = rules.iter().map(|r| r.name.clone()).collect();
            ensure!(names_of(t, "AWS::Events::Rule", "Name") == names, "{}: rules", e.file);
            for rule in rules {
                let id = id_named(t, "AWS::Events::Rule", "Name", &rule.name)?;
                let target = &t["Resources"][&id]["Properties"]["Targets"][0];
                match rule.target {
                    RuleTarget::Function { function } => {
                        let fid = id_named(t, "AWS::Lambda::Function", "FunctionName", &d.names().function(&function))?;
                        ensure!(target["Arn"] == json!({ "Fn::GetAtt": [fid, "Arn"] }), "{}: {target}", rule.name);
                    }
                    RuleTarget::StateMachine { state_machine, .. } => {
                        let sid = id_named(t, "AWS::StepFunctions::StateMachine", "StateMachineName", &state_machine)?;
                        ensure!(target["Arn"] == json!({ "Ref": sid }), "{}: {target}", rule.name);
                    }
                    RuleTarget::PeerBus { region: peer } => {
                        let arn = target["Arn"]["Fn::Sub"].as_str().unwrap_or_default();
                        ensure!(arn.contains(&format!(":events:{peer}:")), "{}: {target}", rule.name);
                    }
                }
                if let Some(pattern) = &rule.pattern {
                    ensure!(&t["Resources"][&id]["Properties"]["EventPattern"] == pattern, "{}: pattern", rule.name);
                }
            }
            for (kind, property, expected) in [
                (
                    "AWS::SQS::Queue",
                    "QueueName",
                    vec![n.orders_queue.clone(), n.orders_dlq.clone(), n.orders_catch_up.clone()],
                ),
                ("AWS::SNS::Topic", "TopicName", vec![n.alerts_topic.clone()]),
                // The claim store is one global table, in the standby's stack (deployed last).
                ("AWS::DynamoDB::Table", "TableName", vec![]),
                (
                    "AWS::DynamoDB::GlobalTable",
                    "TableName",
                    if *region == d.regions.standby { vec![n.control_table.clone()] } else { vec![] },
                ),
                ("AWS::SSM::Parameter", "Name", d.shared_parameters().into_iter().map(|(k, _)| k).collect()),
                ("AWS::RDS::DBCluster", "DBClusterIdentifier", vec![n.db_cluster.clone()]),
            ] {
                ensure!(names_of(t, kind, property) == expected.into_iter().collect(), "{}: {kind}", e.file);
            }
            if *region == d.regions.standby {
                // One linearizable claim: replicas in the pair, the witness in the third region
                // of their Region set, strong consistency.
                let id = id_named(t, "AWS::DynamoDB::GlobalTable", "TableName", &n.control_table)?;
                let p = &t["Resources"][&id]["Properties"];
                let replicas: BTreeSet<&str> =
                    p["Replicas"].as_array().into_iter().flatten().filter_map(|r| r["Region"].as_str()).collect();
                let witness = d.claim_store_witness().context("no witness")?;
                ensure!(
                    replicas == BTreeSet::from([d.regions.primary.as_str(), d.regions.standby.as_str()])
                        && p["GlobalTableWitnesses"] == json!([{ "Region": witness.as_str() }])
                        && p["MultiRegionConsistency"] == "STRONG",
                    "{}: claim store {p}",
                    e.file
                );
            }
            let alarms = names_of(t, "AWS::CloudWatch::Alarm", "AlarmName");
            ensure!(alarms.contains(&n.failover_alarm), "{}: no failover alarm", e.file);
            // Break-glass (#18): the events role starts only the automatic failover; only the
            // operator role (MFA) starts the operator failover, the one that takes overrides.
            let starters = |machine: &str| -> BTreeSet<String> {
                resources_of(t, "AWS::IAM::Role")
                    .filter(|(_, p)| {
                        p["Policies"].as_array().into_iter().flatten().any(|policy| {
                            policy["PolicyDocument"]["Statement"].as_array().into_iter().flatten().any(|st| {
                                st["Action"].as_array().into_iter().flatten().any(|a| a == "states:StartExecution")
                                    && st["Resource"].to_string().contains(&format!("stateMachine:{machine}\""))
                            })
                        })
                    })
                    .map(|(_, p)| p["RoleName"].as_str().unwrap_or_default().to_owned())
                    .collect()
            };
            let role = |component: &str| d.names().role(component, region);
            ensure!(
                starters(&n.failover_state_machine) == BTreeSet::from([role("events"), role("operator")]),
                "{}: {} is started by {:?}",
                e.file,
                n.failover_state_machine,
                starters(&n.failover_state_machine)
            );
            ensure!(
                starters(&n.operator_failover_state_machine) == BTreeSet::from([role("operator")]),
                "{}: {} is started by {:?}",
                e.file,
                n.operator_failover_state_machine,
                starters(&n.operator_failover_state_machine)
            );
            let operator = id_named(t, "AWS::IAM::Role", "RoleName", &role("operator"))?;
            let trust = &t["Resources"][&operator]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0];
            ensure!(trust["Condition"]["Bool"]["aws:MultiFactorAuthPresent"] == "true", "{}: {trust}", e.file);
        }
        // The global stack's health checks (both modes): HTTPS on each region's claim-aware
        // endpoint, as the model says.
        let checks: BTreeSet<String> = resources_of(global, "AWS::Route53::HealthCheck")
            .map(|(_, p)| p["HealthCheckConfig"].to_string())
            .collect();
        let modelled: BTreeSet<String> =
            d.regions.iter().map(|r| d.writer_health_check(r).config().to_string()).collect();
        ensure!(checks == modelled, "health checks {checks:?}, the model's {modelled:?}");
        let records: BTreeSet<String> = names_of(global, "AWS::Route53::RecordSet", "Name");
        ensure!(records == BTreeSet::from([d.api_record()]), "records {records:?}");
    }
    Ok(())
}

/// The sandbox is provisioned from the same model: every queue, topic, table, parameter,
/// rule, state machine, function (with its configuration) and cluster of the regional stacks
/// exists in the sandbox under the same name.
async fn sandbox_matches(sb: &Sandbox) -> anyhow::Result<()> {
    let d = sb.deployment();
    for e in synth::emit(&d)?.into_iter().skip(1) {
        let (t, region) = (&e.template, &e.region);
        let config = sdk_config(&sb.aws_target(), region).await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let queues: BTreeSet<String> = sqs
            .list_queues()
            .send()
            .await?
            .queue_urls()
            .iter()
            .filter_map(|u| u.rsplit('/').next().map(str::to_owned))
            .collect();
        let topics: BTreeSet<String> = aws_sdk_sns::Client::new(&config)
            .list_topics()
            .send()
            .await?
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn()?.rsplit(':').next().map(str::to_owned))
            .collect();
        let tables: BTreeSet<String> =
            aws_sdk_dynamodb::Client::new(&config).list_tables().send().await?.table_names().iter().cloned().collect();
        let parameters: BTreeSet<String> = aws_sdk_ssm::Client::new(&config)
            .get_parameters_by_path()
            .path(d.ssm_prefix())
            .recursive(true)
            .send()
            .await?
            .parameters()
            .iter()
            .filter_map(|p| p.name().map(str::to_owned))
            .collect();
        let clusters: BTreeSet<String> = aws_sdk_rds::Client::new(&config)
            .describe_db_clusters()
            .send()
            .await?
            .db_clusters()
            .iter()
            .filter_map(|c| c.db_cluster_identifier().map(str::to_owned))
            .collect();
        for (kind, property, found) in [
            ("AWS::SQS::Queue", "QueueName", &queues),
            ("AWS::SNS::Topic", "TopicName", &topics),
            ("AWS::DynamoDB::Table", "TableName", &tables),
            ("AWS::DynamoDB::GlobalTable", "TableName", &tables),
            ("AWS::SSM::Parameter", "Name", &parameters),
            ("AWS::RDS::DBCluster", "DBClusterIdentifier", &clusters),
        ] {
            let wanted = names_of(t, kind, property);
            let missing: Vec<_> = wanted.difference(found).collect();
            ensure!(missing.is_empty(), "{region}: the sandbox lacks {kind} {missing:?}");
        }
        let lambda = aws_sdk_lambda::Client::new(&config);
        for (_, p) in resources_of(t, "AWS::Lambda::Function") {
            let name = p["FunctionName"].as_str().context("name")?;
            let f = lambda.get_function().function_name(name).send().await?;
            let c = f.configuration().context("configuration")?;
            ensure!(c.timeout() == p["Timeout"].as_i64().map(|v| v as i32), "{name}: timeout");
            ensure!(c.memory_size() == p["MemorySize"].as_i64().map(|v| v as i32), "{name}: memory");
            ensure!(c.runtime().map(|r| r.as_str()) == p["Runtime"].as_str(), "{name}: runtime");
            ensure!(c.handler() == p["Handler"].as_str(), "{name}: handler");
            let concurrency = lambda.get_function_concurrency().function_name(name).send().await?;
            ensure!(
                concurrency.reserved_concurrent_executions().map(i64::from)
                    == p["ReservedConcurrentExecutions"].as_i64(),
                "{name}: reserved concurrency"
            );
        }
    }
    Ok(())
}
