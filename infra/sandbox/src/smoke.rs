//! End-to-end checks of the sandbox's wiring, shared by `switchyard drill` and the tests.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use switchyard_aws::sdk_config;

use crate::instance::Sandbox;

/// Publishes one message to `from_region`'s orders topic and waits until it arrives in every
/// region's orders queue (then deletes it there). Returns the per-region delivery times.
pub async fn fan_out(sandbox: &Sandbox, from_region: &str, body: &str) -> Result<Vec<(String, Duration)>> {
    let resources = sandbox.resources.as_ref().context("sandbox not provisioned")?;
    let from = sandbox.region(from_region)?;
    let topic = &resources.regions[from_region].orders_topic_arn;
    let sns = aws_sdk_sns::Client::new(&sdk_config(&sandbox.aws_target(), &from.region).await);
    let start = Instant::now();
    sns.publish().topic_arn(topic).message(body).send().await.context("SNS Publish")?;

    let mut deliveries = Vec::new();
    for r in &sandbox.regions {
        let sqs = aws_sdk_sqs::Client::new(&sdk_config(&sandbox.aws_target(), &r.region).await);
        let url = &resources.regions[r.region.as_str()].orders_queue_url;
        loop {
            let got =
                sqs.receive_message().queue_url(url).max_number_of_messages(10).wait_time_seconds(1).send().await?;
            let mut found = false;
            for m in got.messages() {
                if m.body() == Some(body) {
                    found = true;
                    deliveries.push((r.region.to_string(), start.elapsed()));
                }
                if let Some(handle) = m.receipt_handle() {
                    // Only our own messages are in a sandbox queue during a check.
                    sqs.delete_message().queue_url(url).receipt_handle(handle).send().await?;
                }
            }
            if found {
                break;
            }
            if start.elapsed() > Duration::from_secs(15) {
                bail!("message published in {from_region} never reached {}'s queue", r.region);
            }
        }
    }
    Ok(deliveries)
}
