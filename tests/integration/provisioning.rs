//! The sandbox's AWS resources exist in both regions as the deployment model says.

use anyhow::{Context, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use libtest_mimic::Trial;
use switchyard_aws::sdk_config;
use switchyard_sandbox::{Sandbox, smoke};
use switchyard_tests::sandbox_trial;

pub fn trials() -> Vec<Trial> {
    vec![
        sandbox_trial("provisioning::each_region_has_queues_table_and_parameters", |sb| {
            Box::pin(regional_resources(sb))
        }),
        sandbox_trial("provisioning::an_order_acknowledged_by_either_api_is_in_both_regions_queues", |sb| {
            Box::pin(acknowledgement_path(sb))
        }),
        sandbox_trial("provisioning::dns_fails_over_between_the_regions", |sb| Box::pin(dns_records(sb))),
        sandbox_trial("provisioning::global_cluster_has_its_writer_in_the_primary", |sb| Box::pin(global_cluster(sb))),
        sandbox_trial("sandbox::up_again_changes_nothing", |sb| Box::pin(up_is_idempotent(sb))),
    ]
}

async fn regional_resources(sb: &Sandbox) -> anyhow::Result<()> {
    let d = sb.deployment();
    let resources = sb.resources.as_ref().context("not provisioned")?;
    let mut parameters_by_region = Vec::new();
    for region in d.regions.iter() {
        let config = sdk_config(&sb.aws_target(), region).await;
        let mine = &resources.regions[region.as_str()];

        let sqs = aws_sdk_sqs::Client::new(&config);
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&mine.orders_queue_url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await?;
        let redrive =
            attrs.attributes().and_then(|a| a.get(&QueueAttributeName::RedrivePolicy)).context("no redrive policy")?;
        let redrive: serde_json::Value = serde_json::from_str(redrive)?;
        ensure!(
            redrive["deadLetterTargetArn"].as_str().is_some_and(|a| a.ends_with(&d.regional_names(region).orders_dlq)),
            "{region}: {redrive}"
        );
        ensure!(
            redrive["maxReceiveCount"].to_string().trim_matches('"') == d.orders_max_receives.to_string(),
            "{region}: {redrive}"
        );

        let ddb = aws_sdk_dynamodb::Client::new(&config);
        let item = ddb
            .get_item()
            .table_name(&mine.control_table)
            .key("pk", AttributeValue::S("writer".into()))
            .consistent_read(true)
            .send()
            .await?
            .item
            .context("no writer claim")?;
        let claim = d.initial_writer_claim();
        ensure!(item.get("epoch") == Some(&AttributeValue::N(claim.epoch.to_string())), "{region}: {item:?}");
        ensure!(item.get("writer") == Some(&AttributeValue::S(claim.writer.to_string())), "{region}: {item:?}");

        let ssm = aws_sdk_ssm::Client::new(&config);
        let params = ssm.get_parameters_by_path().path(d.ssm_prefix()).recursive(true).send().await?;
        let mut found: Vec<(String, String)> = params
            .parameters()
            .iter()
            .map(|p| (p.name().unwrap_or_default().to_owned(), p.value().unwrap_or_default().to_owned()))
            .collect();
        found.sort();
        parameters_by_region.push(found);

        let rds = aws_sdk_rds::Client::new(&config);
        let clusters = rds.describe_db_clusters().db_cluster_identifier(&mine.db_cluster).send().await?;
        ensure!(clusters.db_clusters().len() == 1, "{region}: cluster {} missing", mine.db_cluster);
    }
    let mut expected = d.shared_parameters();
    expected.sort();
    ensure!(
        parameters_by_region.iter().all(|p| *p == expected),
        "SSM parameters differ from the model: {parameters_by_region:?}"
    );
    Ok(())
}

async fn acknowledgement_path(sb: &Sandbox) -> anyhow::Result<()> {
    for from in ["us-east-1", "us-east-2"] {
        let id = format!("smoke-{}-{from}", std::process::id());
        let deliveries = smoke::acknowledgement(sb, from, &id).await?;
        let regions: Vec<&str> = deliveries.iter().map(|(r, _)| r.as_str()).collect();
        ensure!(regions == ["us-east-1", "us-east-2"], "acknowledged in {from}, in the queues of {regions:?}");
    }
    Ok(())
}

async fn dns_records(sb: &Sandbox) -> anyhow::Result<()> {
    let d = sb.deployment();
    let global = &sb.resources.as_ref().context("not provisioned")?.global;
    let route53 = aws_sdk_route53::Client::new(&sdk_config(&sb.aws_target(), &d.regions.primary).await);
    let listed = route53.list_resource_record_sets().hosted_zone_id(&global.hosted_zone_id).send().await?;
    let mut records: Vec<(String, String, String, String)> = listed
        .resource_record_sets()
        .iter()
        .filter(|r| r.name().trim_end_matches('.') == d.api_record())
        .map(|r| {
            (
                r.set_identifier().unwrap_or_default().to_owned(),
                r.failover().map(|f| f.as_str().to_owned()).unwrap_or_default(),
                r.health_check_id().unwrap_or_default().to_owned(),
                r.resource_records().first().map(|v| v.value().to_owned()).unwrap_or_default(),
            )
        })
        .collect();
    records.sort();
    let expected: Vec<_> = [("us-east-1", "PRIMARY"), ("us-east-2", "SECONDARY")]
        .iter()
        .map(|(region, role)| {
            let region = region.parse().unwrap_or_else(|_| unreachable!());
            (
                region_str(&region),
                role.to_string(),
                global.health_checks[region.as_str()].clone(),
                d.regional_api_record(&region),
            )
        })
        .collect();
    ensure!(records == expected, "records {records:?}\nexpected {expected:?}");
    Ok(())
}

fn region_str(r: &switchyard_core::Region) -> String {
    r.to_string()
}

async fn global_cluster(sb: &Sandbox) -> anyhow::Result<()> {
    let d = sb.deployment();
    let rds = aws_sdk_rds::Client::new(&sdk_config(&sb.aws_target(), &d.regions.primary).await);
    // moto ignores the identifier filter (TOOLING.md), so select by id ourselves.
    let all = rds.describe_global_clusters().global_cluster_identifier(d.global_cluster()).send().await?;
    let ours = all
        .global_clusters()
        .iter()
        .find(|g| g.global_cluster_identifier() == Some(d.global_cluster().as_str()))
        .context("global cluster missing")?;
    let writers: Vec<&str> = ours
        .global_cluster_members()
        .iter()
        .filter(|m| m.is_writer() == Some(true))
        .filter_map(|m| m.db_cluster_arn())
        .collect();
    ensure!(
        writers.len() == 1
            && writers[0].contains(":us-east-1:")
            && writers[0].ends_with(&d.regional_names(&d.regions.primary).db_cluster),
        "writers: {writers:?}"
    );
    Ok(())
}

async fn up_is_idempotent(sb: &Sandbox) -> anyhow::Result<()> {
    let again = Sandbox::up(&sb.instance).await?;
    ensure!(again.ports() == sb.ports(), "ports changed: {:?} -> {:?}", sb.ports(), again.ports());
    ensure!(again.live_pids() == sb.live_pids(), "processes changed: {:?} -> {:?}", sb.live_pids(), again.live_pids());
    ensure!(again.resources == sb.resources, "resources were provisioned again");
    Ok(())
}
