//! Provisions the sandbox's AWS resources in moto, in both regions, from the deployment model
//! (`switchyard-model`), so the sandbox and the emitted stacks share every name.
//!
//! moto starts empty each time its process starts, so provisioning runs against a fresh
//! server; it is not meant to converge an existing account.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, SseSpecification,
};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord, ResourceRecordSet,
    ResourceRecordSetFailover, RrType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde::{Deserialize, Serialize};
use switchyard_aws::{AwsTarget, sdk_config};
use switchyard_core::{Region, WriterClaim, health};
use switchyard_model::Deployment;
use switchyard_model::RuleTarget;
use switchyard_postgres::DbCredentials;

/// What one region holds after provisioning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionResources {
    pub orders_queue_url: String,
    pub orders_queue_arn: String,
    pub orders_dlq_url: String,
    pub alerts_topic_arn: String,
    pub control_table: String,
    pub db_cluster: String,
}

/// Global resources (Route 53 lives in us-east-1's API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalResources {
    pub hosted_zone_id: String,
    pub api_record: String,
    /// Health check id per region.
    pub health_checks: BTreeMap<String, String>,
    pub global_cluster: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub regions: BTreeMap<String, RegionResources>,
    pub global: GlobalResources,
}

/// `db_roles`: each function's database credentials, stored as its secret in both regions.
pub async fn provision(
    target: &AwsTarget,
    d: &Deployment,
    db_roles: &[(&'static str, DbCredentials)],
) -> Result<Resources> {
    let mut regions = BTreeMap::new();
    for region in d.regions.iter() {
        regions.insert(
            region.to_string(),
            provision_region(target, d, region).await.with_context(|| format!("provisioning {region}"))?,
        );
        for (function, credentials) in db_roles {
            store_db_secret(target, d, region, function, credentials)
                .await
                .with_context(|| format!("{function}'s secret in {region}"))?;
        }
    }
    let global = provision_global(target, d).await.context("provisioning global resources")?;
    crate::definitions::register(target, d).await.context("registering the state machines")?;
    let packages = crate::packages::sandbox_packages().context("packaging the functions for the sandbox")?;
    for region in d.regions.iter() {
        deploy_functions(target, d, region, &packages)
            .await
            .with_context(|| format!("deploying the functions in {region}"))?;
    }
    Ok(Resources { regions, global })
}

/// Registers the five functions in `region`'s Lambda API as the stack does (name, role,
/// runtime, architecture, memory, timeout, tracing, environment, reserved concurrency, tags)
/// with the sandbox's package, so readiness can compare code and configuration across
/// regions. moto neither runs them nor enforces the role's policy: `cargo lambda watch` runs
/// the code, and the policies are checked by cfn-lint and cfn-guard on the templates.
pub async fn deploy_functions(
    target: &AwsTarget,
    d: &Deployment,
    region: &Region,
    packages: &std::collections::BTreeMap<&'static str, std::path::PathBuf>,
) -> Result<()> {
    let config = sdk_config(target, region).await;
    let iam = aws_sdk_iam::Client::new(&config);
    let lambda = aws_sdk_lambda::Client::new(&config);
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Principal": { "Service": "lambda.amazonaws.com" }, "Action": "sts:AssumeRole" }],
    });
    let environment: std::collections::HashMap<String, String> = d
        .function_environment(region)
        .into_iter()
        // Lambda refuses its reserved keys in a configuration (it sets AWS_REGION itself).
        .filter(|(k, _)| *k != switchyard_core::config::keys::LOCAL_REGION)
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for spec in d.function_specs() {
        let role_name = d.names().role(spec.name, region);
        let mut req = iam.create_role().role_name(&role_name).assume_role_policy_document(trust.to_string());
        for (k, v) in d.tags() {
            req = req.tags(aws_sdk_iam::types::Tag::builder().key(k).value(v).build()?);
        }
        let role = req.send().await.with_context(|| format!("role {role_name}"))?;
        let role_arn = role.role.map(|r| r.arn).context("no role arn")?;
        let package = packages.get(spec.name).with_context(|| format!("no package for {}", spec.name))?;
        let zip = std::fs::read(package).with_context(|| format!("reading {}", package.display()))?;
        let name = d.names().function(spec.name);
        lambda
            .create_function()
            .function_name(&name)
            .description(spec.description)
            .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
            .architectures(aws_sdk_lambda::types::Architecture::Arm64)
            .handler("bootstrap")
            .role(role_arn)
            .code(aws_sdk_lambda::types::FunctionCode::builder().zip_file(zip.into()).build())
            .memory_size(spec.memory_mb as i32)
            .timeout(spec.timeout.as_secs() as i32)
            .tracing_config(
                aws_sdk_lambda::types::TracingConfig::builder()
                    .mode(aws_sdk_lambda::types::TracingMode::Active)
                    .build(),
            )
            .environment(aws_sdk_lambda::types::Environment::builder().set_variables(Some(environment.clone())).build())
            .set_tags(Some(d.tags().into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
            .send()
            .await
            .with_context(|| format!("function {name}"))?;
        lambda
            .put_function_concurrency()
            .function_name(&name)
            .reserved_concurrent_executions(spec.reserved_concurrency as i32)
            .send()
            .await
            .with_context(|| format!("reserved concurrency of {name}"))?;
    }
    Ok(())
}

/// A function's database credentials, in each region's Secrets Manager under the name the
/// model gives (a stack creates it with a generated password in AWS).
async fn store_db_secret(
    target: &AwsTarget,
    d: &Deployment,
    region: &Region,
    function: &str,
    c: &DbCredentials,
) -> Result<()> {
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config(target, region).await);
    let mut req = client
        .create_secret()
        .name(d.db_secret(function))
        .description(format!("{function} database credentials"))
        .secret_string(crate::postgres::secret_json(c));
    for (k, v) in d.tags() {
        req = req.tags(aws_sdk_secretsmanager::types::Tag::builder().key(k).value(v).build());
    }
    req.send().await?;
    Ok(())
}

async fn provision_region(target: &AwsTarget, d: &Deployment, region: &Region) -> Result<RegionResources> {
    let config = sdk_config(target, region).await;
    let names = d.regional_names(region);
    let tags = d.tags();

    // Queues: the orders queue redrives poison messages to its DLQ after 5 receives.
    let sqs = aws_sdk_sqs::Client::new(&config);
    let create_queue = |name: &str| {
        let mut req = sqs.create_queue().queue_name(name).attributes(QueueAttributeName::SqsManagedSseEnabled, "true");
        for (k, v) in &tags {
            req = req.tags(*k, v);
        }
        req
    };
    let dlq_url = create_queue(&names.orders_dlq)
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await?
        .queue_url
        .context("no DLQ url")?;
    let dlq_arn = queue_arn(&sqs, &dlq_url).await?;
    create_queue(&names.orders_catch_up)
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await?;
    let redrive = format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{}"}}"#, d.orders_max_receives);
    let queue_url = create_queue(&names.orders_queue)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::VisibilityTimeout, d.orders_visibility_timeout.as_secs().to_string())
        .send()
        .await?
        .queue_url
        .context("no queue url")?;
    let queue_arn = queue_arn(&sqs, &queue_url).await?;

    let sns = aws_sdk_sns::Client::new(&config);
    let mut alerts = sns.create_topic().name(&names.alerts_topic).attributes("KmsMasterKeyId", "alias/aws/sns");
    for (k, v) in &tags {
        alerts = alerts.tags(aws_sdk_sns::types::Tag::builder().key(*k).value(v).build()?);
    }
    let alerts_topic_arn = alerts.send().await?.topic_arn.context("no topic arn")?;

    // The control table: writer claim (conditional writes), lock, cooldown, timelines. In
    // AWS one global table with multi-Region strong consistency, replicas in the pair; the
    // sandbox's world keeps its one copy in the primary region's moto and routes both
    // regions' calls there (`world::front`), so it is created once.
    if *region == d.regions.primary {
        let ddb = aws_sdk_dynamodb::Client::new(&config);
        create_control_table(&ddb, &names.control_table, &tags, &d.initial_writer_claim()).await?;
    }

    // Configuration both regions must agree on.
    let ssm = aws_sdk_ssm::Client::new(&config);
    for (name, value) in d.shared_parameters() {
        let mut req = ssm.put_parameter().name(name).value(value).r#type(aws_sdk_ssm::types::ParameterType::String);
        for (k, v) in &tags {
            req = req.tags(aws_sdk_ssm::types::Tag::builder().key(*k).value(v).build()?);
        }
        req.send().await?;
    }

    // The failover alarm on the peer's health, and the rule that starts a failover when it
    // fires (moto evaluates neither: the drill does, from these same definitions).
    let alarm = d.failover_alarm(region);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    let mut req = cloudwatch
        .put_metric_alarm()
        .alarm_name(&alarm.name)
        .alarm_description(format!("{} unhealthy as seen from {region}: start a failover", alarm.watched_region))
        .namespace(health::NAMESPACE)
        .metric_name(health::metric::HEALTHY)
        .dimensions(Dimension::builder().name("Region").value(alarm.watched_region.as_str()).build())
        .statistic(Statistic::Minimum)
        .period(alarm.rule.period.as_secs() as i32)
        .evaluation_periods(alarm.rule.evaluation_periods as i32)
        .datapoints_to_alarm(alarm.rule.datapoints_to_alarm as i32)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::LessThanThreshold)
        .treat_missing_data("notBreaching")
        .actions_enabled(true);
    for (k, v) in &tags {
        req = req.tags(aws_sdk_cloudwatch::types::Tag::builder().key(*k).value(v).build());
    }
    req.send().await?;
    // The region's EventBridge rules and their targets, from the model. moto keeps them but
    // fires no schedule and routes no alarm: the drill and the tests start what they would.
    let events = aws_sdk_eventbridge::Client::new(&config);
    let account = crate::definitions::SANDBOX_ACCOUNT;
    for rule in d.event_rules(region) {
        let mut req = events
            .put_rule()
            .name(&rule.name)
            .description(&rule.description)
            .set_schedule_expression(rule.schedule.clone())
            .set_event_pattern(rule.pattern.as_ref().map(|p| p.to_string()))
            .state(aws_sdk_eventbridge::types::RuleState::Enabled);
        for (k, v) in &tags {
            req = req.tags(aws_sdk_eventbridge::types::Tag::builder().key(*k).value(v).build()?);
        }
        req.send().await.with_context(|| format!("rule {}", rule.name))?;
        let target = aws_sdk_eventbridge::types::Target::builder().id("target");
        let target = match &rule.target {
            RuleTarget::Function { function } => target.arn(d.function_arn(region, account, function)),
            RuleTarget::StateMachine { state_machine, input_paths, template } => target
                .arn(format!("arn:aws:states:{region}:{account}:stateMachine:{state_machine}"))
                .role_arn(format!("arn:aws:iam::{account}:role/{}-events", rule.name))
                .input_transformer(
                    aws_sdk_eventbridge::types::InputTransformer::builder()
                        .set_input_paths_map(serde_json::from_value(input_paths.clone())?)
                        .input_template(template)
                        .build()?,
                ),
            RuleTarget::PeerBus { region: peer } => target
                .arn(format!("arn:aws:events:{peer}:{account}:event-bus/default"))
                .role_arn(format!("arn:aws:iam::{account}:role/{}-events", rule.name)),
        };
        events.put_targets().rule(&rule.name).targets(target.build()?).send().await?;
    }

    // The regional Aurora cluster's metadata (the data plane is the sandbox's PostgreSQL).
    let rds = aws_sdk_rds::Client::new(&config);
    if *region == d.regions.primary {
        rds.create_global_cluster()
            .global_cluster_identifier(d.global_cluster())
            .engine("aurora-postgresql")
            .engine_version(switchyard_model::AURORA_ENGINE_VERSION)
            .storage_encrypted(true)
            .send()
            .await?;
    }
    let mut req = rds
        .create_db_cluster()
        .db_cluster_identifier(&names.db_cluster)
        .engine("aurora-postgresql")
        .engine_version(switchyard_model::AURORA_ENGINE_VERSION)
        .global_cluster_identifier(d.global_cluster())
        .storage_encrypted(true);
    if *region == d.regions.primary {
        // Only the writer's cluster has a master user; its password is managed by RDS in
        // Secrets Manager and appears nowhere here.
        req = req.master_username("switchyard").manage_master_user_password(true);
    }
    for (k, v) in &tags {
        req = req.tags(aws_sdk_rds::types::Tag::builder().key(*k).value(v).build());
    }
    req.send().await?;

    Ok(RegionResources {
        orders_queue_url: queue_url,
        orders_queue_arn: queue_arn,
        orders_dlq_url: dlq_url,
        alerts_topic_arn,
        control_table: names.control_table,
        db_cluster: names.db_cluster,
    })
}

/// Creates a control table holding `claim` (also used by tests for scratch tables).
pub async fn create_control_table(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    tags: &[(&'static str, String)],
    claim: &WriterClaim,
) -> Result<()> {
    let mut req = ddb
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("pk").attribute_type(ScalarAttributeType::S).build()?,
        )
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build()?)
        .billing_mode(BillingMode::PayPerRequest)
        .sse_specification(SseSpecification::builder().enabled(true).build());
    for (k, v) in tags {
        req = req.tags(aws_sdk_dynamodb::types::Tag::builder().key(*k).value(v).build()?);
    }
    req.send().await?;
    ddb.put_item()
        .table_name(name)
        .item("pk", AttributeValue::S("writer".into()))
        .item("epoch", AttributeValue::N(claim.epoch.to_string()))
        .item("writer", AttributeValue::S(claim.writer.to_string()))
        .item("phase", AttributeValue::S(claim.phase.to_string()))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await?;
    Ok(())
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String> {
    let attrs = sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::QueueArn).send().await?;
    attrs.attributes().and_then(|a| a.get(&QueueAttributeName::QueueArn)).cloned().context("no queue arn")
}

async fn provision_global(target: &AwsTarget, d: &Deployment) -> Result<GlobalResources> {
    let route53 = aws_sdk_route53::Client::new(&sdk_config(target, &d.regions.primary).await);
    let zone = route53
        .create_hosted_zone()
        .name(&d.domain)
        .caller_reference(format!("switchyard-{}-zone", d.environment))
        .send()
        .await?;
    let zone_id = zone.hosted_zone.map(|z| z.id).context("no hosted zone")?;
    let zone_id = zone_id.trim_start_matches("/hostedzone/").to_owned();

    let mut health_checks = BTreeMap::new();
    let mut changes = Vec::new();
    for region in d.regions.iter() {
        // HTTPS on the region's claim-aware endpoint, as the global stack emits it.
        let check = d.writer_health_check(region);
        let config = HealthCheckConfig::builder()
            .r#type(HealthCheckType::Https)
            .fully_qualified_domain_name(&check.fully_qualified_domain_name)
            .resource_path(check.resource_path)
            .port(i32::from(check.port))
            .request_interval(check.request_interval_seconds as i32)
            .failure_threshold(check.failure_threshold as i32)
            .enable_sni(true)
            .build()?;
        let hc = route53
            .create_health_check()
            .caller_reference(format!("switchyard-{}-{region}", d.environment))
            .health_check_config(config)
            .send()
            .await?;
        let id = hc.health_check.map(|h| h.id).context("no health check id")?;
        let failover = if *region == d.regions.primary {
            ResourceRecordSetFailover::Primary
        } else {
            ResourceRecordSetFailover::Secondary
        };
        changes.push(
            Change::builder()
                .action(ChangeAction::Upsert)
                .resource_record_set(
                    ResourceRecordSet::builder()
                        .name(d.api_record())
                        .r#type(RrType::Cname)
                        .set_identifier(region.as_str())
                        .failover(failover)
                        .ttl(15)
                        .health_check_id(&id)
                        .resource_records(ResourceRecord::builder().value(d.regional_api_record(region)).build()?)
                        .build()?,
                )
                .build()?,
        );
        health_checks.insert(region.to_string(), id);
    }
    route53
        .change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(ChangeBatch::builder().set_changes(Some(changes)).build()?)
        .send()
        .await?;
    Ok(GlobalResources {
        hosted_zone_id: zone_id,
        api_record: d.api_record(),
        health_checks,
        global_cluster: d.global_cluster(),
    })
}
