//! The health-probe Lambda function (EventBridge schedule, once a minute, both regions).
//!
//! Each invocation probes several times (default 6 rounds, 10 s apart), so detection never
//! waits for the schedule: the region's `/health` endpoints (both regions'), its database (a
//! heartbeat write on the writer; stream and lag on a replica) and its orders queue. Every
//! round publishes high-resolution datapoints with `PutMetricData` (namespace `switchyard`,
//! dimensions `Region` and `Target`; see ARCHITECTURE.md for why not EMF) and the invocation
//! answers the verdicts, with reasons, and what the failover alarm would conclude.

mod config;
mod probes;
mod run;

use std::sync::Arc;

use switchyard_aws::{db_secret::DbSecret, deployment_sdk_config};
use switchyard_core::SwitchyardError;

use crate::{config::ProbeConfig, run::Prober};

async fn prober() -> Result<Arc<Prober>, SwitchyardError> {
    let config = ProbeConfig::from_lookup(switchyard_lambda::env)?;
    let local = deployment_sdk_config(&config.deployment, &config.deployment.local_region).await;
    let local = local?;
    let secret = config.db_secret_id.as_ref().map(|id| DbSecret::new(aws_sdk_secretsmanager::Client::new(&local), id));
    Prober::new(config, aws_sdk_sqs::Client::new(&local), aws_sdk_cloudwatch::Client::new(&local), secret)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    switchyard_lambda::serve_built("health-probe", prober().await, |prober, event, _deadline| async move {
        prober.handle(event).await
    })
    .await
}
