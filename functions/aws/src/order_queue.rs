//! The region's orders queue, as the order consumer writes to it: re-enqueueing a copy of a
//! valid order that could not be applied yet, before the queue's redrive policy would move
//! the original into the DLQ (see order-consumer's docs). Receiving and deleting belong to
//! the Lambda event source mapping, not to us.

use aws_sdk_sqs::{
    Client,
    types::{ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue, SendMessageBatchRequestEntry},
};
pub use switchyard_core::ports::Requeue;
use switchyard_core::{
    ErrorName, Region, SwitchyardError,
    ports::{OrderRequeue, PortResult},
};

use crate::errors::classify;

/// The message attribute a copy carries: the id of the message it replaces.
pub const REQUEUED_FROM: &str = "switchyard-requeued-from";

#[derive(Debug, Clone)]
pub struct OrderQueue {
    client: Client,
    url: String,
    /// Other regions' orders queues: their SQS client and the queue's name (the same name
    /// in every region; its URL is asked for when first needed).
    peers: Vec<(Region, Client, String)>,
}

impl OrderQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        OrderQueue { client, url: url.into(), peers: Vec::new() }
    }

    /// Adds the orders queue of `region` (named `queue_name` there), for [`OrderRequeue::forward`].
    pub fn with_peer(mut self, region: Region, client: Client, queue_name: impl Into<String>) -> Self {
        self.peers.push((region, client, queue_name.into()));
        self
    }
}

impl OrderRequeue for OrderQueue {
    /// Sends a copy of each message (at most 10: one SQS batch). Returns the ids of the
    /// messages whose copy the queue accepted; the caller deletes only those originals.
    async fn requeue(&self, messages: &[Requeue<'_>]) -> PortResult<Vec<String>> {
        send_copies(&self.client, &self.url, messages).await
    }

    async fn forward(&self, region: &Region, messages: &[Requeue<'_>]) -> PortResult<Vec<String>> {
        let (_, client, name) = self.peers.iter().find(|(r, _, _)| r == region).ok_or_else(|| {
            SwitchyardError::new(ErrorName::MissingConfig, format!("no orders queue of {region} to forward to"))
        })?;
        let url = client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| classify("GetQueueUrl", &e))?
            .queue_url
            .ok_or_else(|| SwitchyardError::new(ErrorName::ResourceNotFound, format!("{name} in {region}")))?;
        send_copies(client, &url, messages).await
    }

    /// `ChangeMessageVisibilityBatch`, ten entries a call (SQS's limit for batch actions).
    async fn redeliver_after(&self, receipt_handles: &[&str], after: std::time::Duration) -> PortResult<usize> {
        let seconds = i32::try_from(after.as_secs()).unwrap_or(i32::MAX);
        let mut moved = 0;
        for chunk in receipt_handles.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .receipt_handle(*handle)
                        .visibility_timeout(seconds)
                        .build()
                        .map_err(|e| SwitchyardError::new(ErrorName::Internal, e.to_string()))
                })
                .collect::<PortResult<Vec<_>>>()?;
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("ChangeMessageVisibilityBatch", &e))?;
            for failed in out.failed() {
                tracing::warn!(entry = failed.id(), code = failed.code(), message = ?failed.message(), "visibility not changed");
            }
            moved += out.successful().len();
        }
        Ok(moved)
    }
}

/// Sends a copy of each message to `url` (at most 10: one SQS batch), each naming the message
/// it copies; the ids of the messages whose copy the queue accepted.
async fn send_copies(client: &Client, url: &str, messages: &[Requeue<'_>]) -> PortResult<Vec<String>> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let mut entries = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let from = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(m.message_id)
            .build()
            .map_err(|e| SwitchyardError::new(ErrorName::Internal, e.to_string()))?;
        let entry = SendMessageBatchRequestEntry::builder()
            .id(format!("m{i}"))
            .message_body(m.body)
            .message_attributes(REQUEUED_FROM, from)
            .build()
            .map_err(|e| SwitchyardError::new(ErrorName::Internal, e.to_string()))?;
        entries.push(entry);
    }
    let out = client
        .send_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| classify("SendMessageBatch", &e))?;
    for failed in out.failed() {
        tracing::error!(entry = failed.id(), code = failed.code(), message = ?failed.message(), "requeue refused");
    }
    Ok(out
        .successful()
        .iter()
        .filter_map(|ok| ok.id().strip_prefix('m')?.parse::<usize>().ok())
        .filter_map(|i| messages.get(i).map(|m| m.message_id.to_owned()))
        .collect())
}
