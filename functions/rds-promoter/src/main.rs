//! The rds-promoter Lambda function: moves the writer role to the region it runs in, one
//! idempotent action per invocation (see `promoter.rs`), for a state machine to sequence,
//! retry and poll.
//!
//! Database engine (`SWITCHYARD_DB_ENGINE`): `postgres` (the sandbox, self-managed
//! PostgreSQL) or `aurora` (an Aurora Global Database, through the RDS and CloudWatch APIs of
//! the region the function runs in): `switchyard_postgres::engine`, `switchyard_aws::aurora_engine`.

mod ledger;
mod promoter;

use switchyard_aws::{aurora_engine::AuroraEngine, control_table::ControlTable, deployment_sdk_config};
use switchyard_core::{SwitchyardError, ports::PromotionEngine};
use switchyard_postgres::engine::PostgresEngine;

use crate::promoter::{EngineConfig, Promoter, PromoterConfig};

type Deployed<E> = Promoter<ControlTable, ControlTable, E>;

/// The promoter as configured (`SWITCHYARD_DB_ENGINE`): one engine or the other.
enum Built {
    Postgres(Deployed<PostgresEngine>),
    Aurora(Deployed<AuroraEngine>),
}

/// Built once per cold start; configuration problems are answered per invocation, by name.
async fn promoter() -> Result<Built, SwitchyardError> {
    let config = PromoterConfig::from_lookup(switchyard_lambda::env)?;
    let d = &config.deployment;
    let sdk = deployment_sdk_config(d, &d.local_region).await?;
    let table = ControlTable::new(aws_sdk_dynamodb::Client::new(&sdk), &config.control_table);
    let pager = config.alerts_topic_arn.clone().map(|topic| (aws_sdk_sns::Client::new(&sdk), topic));
    Ok(match config.engine.clone() {
        EngineConfig::Postgres(endpoints) => {
            let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
            let p = Promoter::new(config, table.clone(), table, PostgresEngine { endpoints });
            Built::Postgres(paging(p, pager).with_writer_clocks(cloudwatch))
        }
        EngineConfig::Aurora { global_cluster, cluster_arns } => {
            let engine = AuroraEngine {
                global_cluster,
                cluster_arns,
                rds: aws_sdk_rds::Client::new(&sdk),
                cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            };
            Built::Aurora(paging(Promoter::new(config, table.clone(), table, engine), pager))
        }
    })
}

/// Pages an execution that ended uncaught on the alerts topic, when one is configured.
fn paging<E: PromotionEngine>(p: Deployed<E>, pager: Option<(aws_sdk_sns::Client, String)>) -> Deployed<E> {
    match pager {
        Some((sns, topic)) => p.with_pager(sns, topic),
        None => p,
    }
}

async fn serve<E: PromotionEngine + Clone>(
    built: Result<Deployed<E>, SwitchyardError>,
) -> Result<(), lambda_runtime::Error> {
    switchyard_lambda::serve_built("rds-promoter", built, |promoter, input, _deadline| async move {
        promoter.handle_any(input).await
    })
    .await
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    match promoter().await {
        Ok(Built::Postgres(p)) => serve(Ok(p)).await,
        Ok(Built::Aurora(p)) => serve(Ok(p)).await,
        // Answered per invocation; the engine type does not matter then.
        Err(e) => serve::<PostgresEngine>(Err(e)).await,
    }
}
