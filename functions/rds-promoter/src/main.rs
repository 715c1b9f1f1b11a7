//! The rds-promoter Lambda function: moves the writer role to the region it runs in, one
//! idempotent action per invocation (see `promoter.rs`), for a state machine to sequence,
//! retry and poll.
//!
//! Database engine: PostgreSQL (the sandbox, self-managed PostgreSQL). The Aurora Global
//! Database adapter (`SwitchoverGlobalCluster` / `FailoverGlobalCluster`) is not built yet.

mod promoter;

use switchyard_aws::{AwsTarget, control_table::ControlTable, sdk_config};
use switchyard_core::SwitchyardError;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let promoter = match promoter::PromoterConfig::from_env() {
        Ok(config) => match AwsTarget::from_endpoint(config.deployment.aws_endpoint_url.as_deref()) {
            Ok(target) => {
                let sdk = sdk_config(&target, &config.deployment.local_region).await;
                let table = ControlTable::new(aws_sdk_dynamodb::Client::new(&sdk), &config.control_table);
                Ok(promoter::Promoter::new(config, table))
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(SwitchyardError::from(e)),
    };
    switchyard_lambda::serve("rds-promoter", move |event| {
        let promoter = promoter.clone();
        async move {
            let request = switchyard_lambda::parse_event(event)?;
            promoter?.handle(request).await
        }
    })
    .await
}
