//! The sandbox's stand-in for a Lambda SQS event source mapping, which moto does not run:
//! receive a batch, invoke the function with the event Lambda would send, then delete every
//! message the answer does not list in `batchItemFailures` (`ReportBatchItemFailures`). A
//! function error deletes nothing, as in AWS. Kept messages come back after the visibility
//! timeout with a higher receive count; the queue's redrive policy moves them to the DLQ.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{Value, json};
use switchyard_aws::sdk_config;

use crate::{
    instance::Sandbox,
    lambda::{Invocation, LambdaService},
};

/// The function the orders queues trigger.
pub const CONSUMER: &str = "order-consumer";

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Poll {
    pub received: usize,
    pub deleted: usize,
    /// Message ids the function asked to keep.
    pub kept: Vec<String>,
    /// `(errorType, errorMessage)` when the invocation failed as a whole.
    pub function_error: Option<(String, String)>,
    /// The function's answer.
    pub answer: Value,
}

/// One region's orders queue wired to that region's consumer.
#[derive(Debug, Clone)]
pub struct OrdersEventSource<'a> {
    pub region: String,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
    pub lambda: &'a LambdaService,
    /// Overrides the queue's visibility timeout for the messages a poll receives, so tests
    /// need not wait the production timeout to see a kept message again.
    pub visibility: Option<Duration>,
}

impl<'a> OrdersEventSource<'a> {
    pub async fn new(sandbox: &'a Sandbox, region: &str) -> Result<Self> {
        let resources = sandbox.resources.as_ref().context("sandbox not provisioned")?;
        let r = resources.regions.get(region).with_context(|| format!("no resources in {region}"))?;
        let sqs = aws_sdk_sqs::Client::new(&sdk_config(&sandbox.aws_target(), &sandbox.region(region)?.region).await);
        Ok(OrdersEventSource {
            region: region.to_owned(),
            sqs,
            queue_url: r.orders_queue_url.clone(),
            queue_arn: r.orders_queue_arn.clone(),
            dlq_url: r.orders_dlq_url.clone(),
            lambda: sandbox.lambda(region)?,
            visibility: None,
        })
    }

    /// Receives up to 10 messages (the default batch size) and runs them through the
    /// consumer. Returns `received: 0` when nothing was visible.
    pub async fn poll(&self) -> Result<Poll> {
        let mut receive = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All");
        if let Some(v) = self.visibility {
            receive = receive.visibility_timeout(v.as_secs() as i32);
        }
        let got = receive.send().await.context("ReceiveMessage")?;
        let messages = got.messages();
        if messages.is_empty() {
            return Ok(Poll::default());
        }
        let records: Vec<Value> = messages.iter().map(|m| self.record(m)).collect();
        let invocation = self.lambda.invoke(CONSUMER, &json!({ "Records": records })).await?;
        let mut poll = Poll { received: messages.len(), ..Poll::default() };
        let keep: Vec<String> = match invocation {
            Invocation::Ok(answer) => {
                let kept = answer["batchItemFailures"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                poll.answer = answer;
                kept
            }
            Invocation::FunctionError { error_type, error_message } => {
                poll.function_error = Some((error_type, error_message));
                messages.iter().filter_map(|m| m.message_id().map(str::to_owned)).collect()
            }
        };
        for m in messages {
            let id = m.message_id().unwrap_or_default();
            if keep.iter().any(|k| k == id) {
                poll.kept.push(id.to_owned());
            } else if let Some(handle) = m.receipt_handle() {
                self.sqs.delete_message().queue_url(&self.queue_url).receipt_handle(handle).send().await?;
                poll.deleted += 1;
            }
        }
        Ok(poll)
    }

    /// Polls until a poll receives nothing; returns every poll.
    pub async fn drain(&self, max_polls: usize) -> Result<Vec<Poll>> {
        let mut polls = Vec::new();
        for _ in 0..max_polls {
            let poll = self.poll().await?;
            if poll.received == 0 {
                break;
            }
            polls.push(poll);
        }
        Ok(polls)
    }

    /// Visible plus in-flight messages of a queue (SQS's approximate counts, exact in moto).
    pub async fn depth(&self, url: &str) -> Result<u64> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let attrs = out.attributes().cloned().unwrap_or_default();
        let n = |k: QueueAttributeName| attrs.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(n(QueueAttributeName::ApproximateNumberOfMessages)
            + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
    }

    /// The record of one message, shaped as Lambda's SQS event (field names as AWS sends).
    fn record(&self, m: &aws_sdk_sqs::types::Message) -> Value {
        let attributes: serde_json::Map<String, Value> = m
            .attributes()
            .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone()))).collect())
            .unwrap_or_default();
        let message_attributes: serde_json::Map<String, Value> = m
            .message_attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| {
                        (k.clone(), json!({ "stringValue": v.string_value(), "dataType": v.data_type(), "stringListValues": [], "binaryListValues": [] }))
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "messageId": m.message_id(),
            "receiptHandle": m.receipt_handle(),
            "body": m.body(),
            "attributes": attributes,
            "messageAttributes": message_attributes,
            "md5OfBody": m.md5_of_body(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        })
    }
}
