//! The order-consumer Lambda function (SQS event source, both regions): applies each
//! acknowledged trade order exactly once to the writer region's database, and in the standby
//! region deletes only what replication already delivered (see `consumer.rs`, `mode.rs`).
//!
//! The event source mapping must enable `ReportBatchItemFailures`: the answer lists the
//! messages that stay on the queue, never fails the whole batch for one bad order.

mod consumer;
mod mode;
mod pg_store;

use std::sync::Arc;

use switchyard_aws::{
    control_table::ControlTable, db_secret::DbSecret, deployment_sdk_config, order_queue::OrderQueue,
};
use switchyard_core::{ErrorName, SwitchyardError};

use crate::{
    consumer::{Consumer, ConsumerConfig, ConsumerInput},
    pg_store::PgOrderStore,
};

/// The consumer as deployed: PostgreSQL, SQS, the claim store (this region's replica).
type Deployed = Consumer<PgOrderStore, OrderQueue, ControlTable>;

/// Built once per cold start: SDK clients and the database connection are reused across
/// invocations. Configuration problems are answered per invocation, by name.
async fn consumer() -> Result<Arc<Deployed>, SwitchyardError> {
    let config = ConsumerConfig::from_lookup(switchyard_lambda::env)?;
    let d = &config.deployment;
    let local = deployment_sdk_config(d, &d.local_region).await?;
    let peer = deployment_sdk_config(d, d.regions.peer_of(&d.local_region)?).await?;
    let claims = ControlTable::new(aws_sdk_dynamodb::Client::new(&local), &config.control_table);
    // The orders queue has the same name in both regions: a stranded order goes to the
    // writer's (see `Consumer::forward_stranded`).
    let queue_name = config.queue_url.rsplit('/').next().unwrap_or_default().to_owned();
    let queue = OrderQueue::new(aws_sdk_sqs::Client::new(&local), &config.queue_url).with_peer(
        d.regions.peer_of(&d.local_region)?.clone(),
        aws_sdk_sqs::Client::new(&peer),
        queue_name,
    );
    let secret = config.db_secret_id.as_ref().map(|id| DbSecret::new(aws_sdk_secretsmanager::Client::new(&local), id));
    let store = PgOrderStore::new(&config, secret);
    Ok(Arc::new(Consumer::new(config, claims, queue, store)))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    switchyard_lambda::serve_built("order-consumer", consumer().await, |consumer, input, deadline| async move {
        match input {
            ConsumerInput::Batch(event) => serde_json::to_value(consumer.handle(event, deadline).await?)
                .map_err(|e| SwitchyardError::new(ErrorName::Internal, e.to_string())),
            ConsumerInput::Activation { activation } => serde_json::to_value(consumer.activation(activation).await?)
                .map_err(|e| SwitchyardError::new(ErrorName::Internal, e.to_string())),
        }
    })
    .await
}
