//! The rds-promoter Lambda function: moves the writer role to the region it runs in, one
//! idempotent action per invocation (see `promoter.rs`), for a state machine to sequence,
//! retry and poll.
//!
//! Database engine (`SWITCHYARD_DB_ENGINE`): `postgres` (the sandbox, self-managed
//! PostgreSQL) or `aurora` (an Aurora Global Database, through the RDS and CloudWatch APIs of
//! the region the function runs in). See `engine.rs`.

mod engine;
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
                let engine = match &config.engine {
                    promoter::EngineConfig::Postgres(dbs) => engine::Engine::Postgres(dbs.clone()),
                    promoter::EngineConfig::Aurora { global_cluster, cluster_arns } => {
                        engine::Engine::Aurora(engine::Aurora {
                            global_cluster: global_cluster.clone(),
                            cluster_arns: cluster_arns.clone(),
                            rds: aws_sdk_rds::Client::new(&sdk),
                            cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
                        })
                    }
                };
                Ok(promoter::Promoter::new(config, table, engine))
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
