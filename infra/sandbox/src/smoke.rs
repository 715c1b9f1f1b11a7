//! End-to-end checks of the sandbox's wiring, shared by `switchyard drill` and the tests.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use switchyard_aws::sdk_config;

use crate::{instance::Sandbox, world::http};

/// Sends `request` (an order as a client sends it: no `acknowledgedAt`) to the order API of
/// `api_region`, as a client in that region would; the HTTP status and the answer.
pub async fn post_order(sandbox: &Sandbox, api_region: &str, request: &Value) -> Result<(u16, Value)> {
    let port = sandbox.world.apis.iter().find(|a| a.target.as_str() == api_region).context("no order API")?.port;
    http::call(port, "POST", "/orders", Some(request)).await
}

/// An order as a client sends it to the API: the queued order without the API's stamp.
pub fn request_of(order: &switchyard_core::Order) -> Value {
    let mut request = order.to_json();
    if let Some(fields) = request.as_object_mut() {
        fields.remove("acknowledgedAt");
    }
    request
}

/// Sends one order to `from_region`'s order API and waits until it is in every region's
/// orders queue (then deletes it there): the acknowledgement's path end to end. Returns the
/// per-region times from the request.
pub async fn acknowledgement(sandbox: &Sandbox, from_region: &str, order_id: &str) -> Result<Vec<(String, Duration)>> {
    let resources = sandbox.resources.as_ref().context("sandbox not provisioned")?;
    let request = serde_json::json!({
        "orderId": order_id, "account": "smoke", "instrument": "SMOKE", "side": "buy", "quantity": 1,
        "price": "1", "submittedAt": switchyard_core::order::Timestamp::now().to_string(),
    });
    let start = Instant::now();
    let (status, answer) = post_order(sandbox, from_region, &request).await?;
    ensure!(status == 202, "{from_region}'s order API answered {status}: {answer}");

    let mut deliveries = Vec::new();
    for r in &sandbox.regions {
        let sqs = aws_sdk_sqs::Client::new(&sdk_config(&sandbox.aws_target(), &r.region).await);
        let url = &resources.regions[r.region.as_str()].orders_queue_url;
        loop {
            let got =
                sqs.receive_message().queue_url(url).max_number_of_messages(10).wait_time_seconds(1).send().await?;
            let mut found = false;
            for m in got.messages() {
                let body: Value = serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or_default();
                if body["orderId"] == order_id {
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
                bail!("order {order_id} acknowledged in {from_region} ({answer}) is not in {}'s queue", r.region);
            }
        }
    }
    Ok(deliveries)
}
