//! The readiness-tester Lambda function (hourly schedule in both regions, and on demand):
//! proves that the standby can take over *now*, with named rules and their evidence (see
//! `rules.rs` and ARCHITECTURE.md "Readiness report"). It reads and never changes anything it
//! checks; its outputs are the report, the `FailoverReady` metric and, when readiness
//! changed, one SNS message to the alerts topic.

mod config;
mod rules;
mod run;

use std::{collections::BTreeMap, sync::Arc};

use switchyard_aws::{
    control_table::ControlTable, db_secret::DbSecret, deployment_sdk_config, metrics::CloudWatchMetrics,
};
use switchyard_core::{SwitchyardError, health::NAMESPACE};
use switchyard_postgres::PgNode;

use crate::{
    config::{Engine, ReadinessConfig},
    rules::{Regional, Sources},
    run::Tester,
};

async fn tester() -> Result<Arc<Tester>, SwitchyardError> {
    let config = ReadinessConfig::from_lookup(switchyard_lambda::env)?;
    let d = &config.deployment;
    let mut regions = Vec::new();
    for region in d.regions.iter() {
        let c = deployment_sdk_config(d, region).await?;
        regions.push(Regional {
            region: region.clone(),
            claims: ControlTable::new(aws_sdk_dynamodb::Client::new(&c), config.names.regional(region).control_table),
            sqs: aws_sdk_sqs::Client::new(&c),
            ssm: aws_sdk_ssm::Client::new(&c),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&c),
            events: aws_sdk_eventbridge::Client::new(&c),
            sfn: aws_sdk_sfn::Client::new(&c),
            lambda: aws_sdk_lambda::Client::new(&c),
        });
    }
    let local = deployment_sdk_config(d, &d.local_region).await?;
    let mut databases = BTreeMap::new();
    if let Engine::Postgres { endpoints, secret_id, tls } = &config.engine {
        // Read once per cold start; a rotation takes effect at the next cold start.
        let credentials = match secret_id {
            Some(id) => Some(DbSecret::new(aws_sdk_secretsmanager::Client::new(&local), id).credentials().await?),
            None => None,
        };
        for (region, endpoint) in endpoints {
            let mut node = PgNode::new(endpoint.clone(), format!("readiness-tester-{}", d.local_region));
            node.access.credentials = credentials.clone();
            node.access.tls = tls.clone();
            databases.insert(region.clone(), node);
        }
    }
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&local);
    Ok(Arc::new(Tester {
        metrics: CloudWatchMetrics::new(cloudwatch.clone(), NAMESPACE),
        cloudwatch,
        sns: aws_sdk_sns::Client::new(&local),
        sources: Sources {
            rds: aws_sdk_rds::Client::new(&local),
            route53: aws_sdk_route53::Client::new(&local),
            config,
            regions,
            databases,
        },
    }))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    switchyard_lambda::serve_built("readiness-tester", tester().await, |tester, event, _deadline| async move {
        tester.handle(event).await
    })
    .await
}
