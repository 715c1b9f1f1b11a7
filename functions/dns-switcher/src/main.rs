//! The dns-switcher Lambda function: moves client traffic to the region that holds the writer
//! claim, and only there (see `switcher.rs`).

mod switcher;

use switchyard_aws::{
    AwsTarget, control_table::ControlTable, route53_records::FailoverRecords, sdk_config, serving_signal::ServingSignal,
};
use switchyard_core::SwitchyardError;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let switcher = match switcher::SwitcherConfig::from_env() {
        Ok(config) => match AwsTarget::from_endpoint(config.deployment.aws_endpoint_url.as_deref()) {
            Ok(target) => {
                let sdk = sdk_config(&target, &config.deployment.local_region).await;
                let table = ControlTable::new(aws_sdk_dynamodb::Client::new(&sdk), &config.control_table);
                let records = FailoverRecords::new(
                    aws_sdk_route53::Client::new(&sdk),
                    &config.hosted_zone_id,
                    &config.api_record,
                );
                let local = config.deployment.local_region.clone();
                let peer = config.deployment.regions.peer_of(&local)?.clone();
                let peer_sdk = sdk_config(&target, &peer).await;
                let signal = ServingSignal::new(
                    local,
                    aws_sdk_cloudwatch::Client::new(&sdk),
                    peer,
                    aws_sdk_cloudwatch::Client::new(&peer_sdk),
                );
                Ok(switcher::Switcher::new(config, table, records, signal))
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(SwitchyardError::from(e)),
    };
    switchyard_lambda::serve("dns-switcher", move |event| {
        let switcher = switcher.clone();
        async move {
            let request = switchyard_lambda::parse_event(event)?;
            switcher?.handle(request).await
        }
    })
    .await
}
