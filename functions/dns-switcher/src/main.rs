//! The dns-switcher Lambda function: moves client traffic to the region that holds the writer
//! claim, and only there (see `switcher.rs`).

mod switcher;

use switchyard_aws::{control_table::ControlTable, deployment_sdk_config, route53_records::FailoverRecords};
use switchyard_core::SwitchyardError;

use crate::switcher::{Switcher, SwitcherConfig};

/// Built once per cold start; configuration problems are answered per invocation, by name.
async fn switcher() -> Result<Switcher<ControlTable, FailoverRecords>, SwitchyardError> {
    let config = SwitcherConfig::from_lookup(switchyard_lambda::env)?;
    let sdk = deployment_sdk_config(&config.deployment, &config.deployment.local_region).await?;
    let table = ControlTable::new(aws_sdk_dynamodb::Client::new(&sdk), &config.control_table);
    let records = FailoverRecords::new(aws_sdk_route53::Client::new(&sdk), &config.hosted_zone_id, &config.api_record);
    Ok(Switcher::new(config, table, records))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    switchyard_lambda::serve_built("dns-switcher", switcher().await, |switcher, input, _deadline| async move {
        switcher.handle(input).await
    })
    .await
}
