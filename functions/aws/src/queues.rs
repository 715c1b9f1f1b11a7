//! What a queue looks like from outside, without touching its messages: depth, redrive
//! policy, encryption. The health probe reads depths; the readiness tester reads the rest.
//! (Receiving to peek would bump receive counts and walk messages towards the DLQ.)

use aws_sdk_sqs::{Client, types::QueueAttributeName};
use switchyard_core::{ErrorName, SwitchyardError, ports::PortResult};

use crate::errors::classify;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDescription {
    pub url: String,
    pub arn: String,
    /// Messages waiting (ApproximateNumberOfMessages).
    pub visible: u64,
    /// Messages received and not yet deleted (ApproximateNumberOfMessagesNotVisible).
    pub in_flight: u64,
    pub redrive: Option<Redrive>,
    /// Server-side encryption: SQS-managed or KMS.
    pub encrypted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    pub dead_letter_arn: String,
    pub max_receive_count: u32,
}

/// Describes the queue at `url`.
pub async fn describe(client: &Client, url: &str) -> PortResult<QueueDescription> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| classify("GetQueueAttributes", &e))?;
    let attrs = out.attributes.unwrap_or_default();
    let get = |name: QueueAttributeName| attrs.get(&name).cloned();
    let count = |name: QueueAttributeName| get(name).and_then(|v| v.parse().ok()).unwrap_or(0);
    let redrive = get(QueueAttributeName::RedrivePolicy).map(|text| parse_redrive(url, &text)).transpose()?;
    Ok(QueueDescription {
        url: url.to_owned(),
        arn: get(QueueAttributeName::QueueArn).unwrap_or_default(),
        visible: count(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        redrive,
        encrypted: get(QueueAttributeName::SqsManagedSseEnabled).is_some_and(|v| v == "true")
            || get(QueueAttributeName::KmsMasterKeyId).is_some_and(|v| !v.is_empty()),
    })
}

fn parse_redrive(url: &str, text: &str) -> PortResult<Redrive> {
    let bad = || SwitchyardError::new(ErrorName::Internal, format!("{url}: unreadable RedrivePolicy {text:?}"));
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| bad())?;
    let arn = v["deadLetterTargetArn"].as_str().ok_or_else(bad)?.to_owned();
    // AWS answers the count as a number; some emulators as a string.
    let count = v["maxReceiveCount"].as_u64().or_else(|| v["maxReceiveCount"].as_str().and_then(|s| s.parse().ok()));
    Ok(Redrive { dead_letter_arn: arn, max_receive_count: count.ok_or_else(bad)? as u32 })
}

/// The URL of the queue named `name` (`ResourceNotFound` if it does not exist).
pub async fn url_of(client: &Client, name: &str) -> PortResult<String> {
    let out = client.get_queue_url().queue_name(name).send().await.map_err(|e| classify("GetQueueUrl", &e))?;
    out.queue_url.ok_or_else(|| SwitchyardError::new(ErrorName::ResourceNotFound, format!("no URL for queue {name}")))
}

/// The queue name in a queue ARN (`arn:aws:sqs:region:account:name`).
pub fn name_in_arn(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::{
        error::ErrorMetadata,
        operation::{
            get_queue_attributes::{GetQueueAttributesError, GetQueueAttributesOutput},
            get_queue_url::GetQueueUrlError,
        },
        types::error::QueueDoesNotExist,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    #[tokio::test]
    async fn reads_depths_and_redrive_policy() {
        let attrs = mock!(Client::get_queue_attributes).then_output(|| {
            GetQueueAttributesOutput::builder()
                .attributes(QueueAttributeName::QueueArn, "arn:aws:sqs:us-east-1:1:q")
                .attributes(QueueAttributeName::ApproximateNumberOfMessages, "7")
                .attributes(QueueAttributeName::ApproximateNumberOfMessagesNotVisible, "2")
                .attributes(
                    QueueAttributeName::RedrivePolicy,
                    r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:q-dlq","maxReceiveCount":5}"#,
                )
                .attributes(QueueAttributeName::SqsManagedSseEnabled, "true")
                .build()
        });
        let client = mock_client!(aws_sdk_sqs, [&attrs]);
        let d = describe(&client, "https://q").await.expect("described");
        assert_eq!((d.visible, d.in_flight, d.encrypted), (7, 2, true));
        assert_eq!(
            d.redrive,
            Some(Redrive { dead_letter_arn: "arn:aws:sqs:us-east-1:1:q-dlq".into(), max_receive_count: 5 })
        );
        assert_eq!(name_in_arn("arn:aws:sqs:us-east-1:1:q-dlq"), "q-dlq");
    }

    #[tokio::test]
    async fn errors_are_named() {
        let throttled = mock!(Client::get_queue_attributes)
            .then_error(|| GetQueueAttributesError::generic(ErrorMetadata::builder().code("RequestThrottled").build()));
        let denied = mock!(Client::get_queue_attributes)
            .then_error(|| GetQueueAttributesError::generic(ErrorMetadata::builder().code("AccessDenied").build()));
        let missing = mock!(Client::get_queue_url).then_error(|| {
            GetQueueUrlError::QueueDoesNotExist(
                QueueDoesNotExist::builder()
                    .meta(ErrorMetadata::builder().code("AWS.SimpleQueueService.NonExistentQueue").build())
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_sqs, RuleMode::Sequential, [&throttled, &denied, &missing]);
        let name = |r: PortResult<QueueDescription>| r.map(|_| ()).map_err(|e| e.name);
        assert_eq!(name(describe(&client, "u").await), Err(ErrorName::Throttled));
        assert_eq!(name(describe(&client, "u").await), Err(ErrorName::AccessDenied));
        assert_eq!(url_of(&client, "q").await.map_err(|e| e.name), Err(ErrorName::ResourceNotFound));
    }
}
