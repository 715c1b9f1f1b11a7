//! The rds-promoter Lambda function: moves the writer role to the region it runs in, one
//! idempotent action per invocation (see `promoter.rs`), for a state machine to sequence,
//! retry and poll.
//!
//! Database engine (`SWITCHYARD_DB_ENGINE`): `postgres` (the sandbox, self-managed
//! PostgreSQL) or `aurora` (an Aurora Global Database, through the RDS and CloudWatch APIs of
//! the region the function runs in). See `engine.rs`.

mod engine;
mod ledger;
mod promoter;

use switchyard_aws::{control_table::ControlTable, deployment_sdk_config};
use switchyard_core::SwitchyardError;

use crate::{
    engine::{Aurora, Engine},
    promoter::{EngineConfig, Promoter, PromoterConfig},
};

/// Built once per cold start; configuration problems are answered per invocation, by name.
async fn promoter() -> Result<Promoter<ControlTable, ControlTable>, SwitchyardError> {
    let config = PromoterConfig::from_env()?;
    let d = &config.deployment;
    let sdk = deployment_sdk_config(d, &d.local_region).await?;
    let table = ControlTable::new(aws_sdk_dynamodb::Client::new(&sdk), &config.control_table);
    let peer_sdk = deployment_sdk_config(d, d.regions.peer_of(&d.local_region)?).await?;
    let peer = ControlTable::new(aws_sdk_dynamodb::Client::new(&peer_sdk), &config.control_table);
    let engine = match &config.engine {
        EngineConfig::Postgres(dbs) => Engine::Postgres(dbs.clone()),
        EngineConfig::Aurora { global_cluster, cluster_arns } => Engine::Aurora(Aurora {
            global_cluster: global_cluster.clone(),
            cluster_arns: cluster_arns.clone(),
            rds: aws_sdk_rds::Client::new(&sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
        }),
    };
    Ok(Promoter::new(config, table.clone(), table, Some((peer.clone(), peer)), engine))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    switchyard_lambda::serve_built("rds-promoter", promoter().await, |promoter, input| async move {
        promoter.handle_any(input).await
    })
    .await
}
