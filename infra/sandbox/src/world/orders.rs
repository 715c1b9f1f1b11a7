//! The regional order APIs and the relay that carries orders across regions.
//!
//! - `POST /orders`: validates the order (the schema of `switchyard_core::order`), stamps
//!   `acknowledgedAt`, publishes it to the region's orders topic and answers 202: the
//!   acknowledgement is "published to the region's topic" (today's contract).
//! - `GET /health`: 200 while the region's database answers, 503 otherwise.
//! - The **relay**: each orders topic delivers to its own region's queue directly and to the
//!   other region's through an `http` subscription to the relay, which sends it on only while
//!   the link between the two is open. Like SNS, it retries until delivered (a cut delays
//!   delivery, it does not lose the order), and a lost acknowledgement (`drop-response`)
//!   means one more delivery after the link heals: at-least-once, as SNS promises.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use switchyard_aws::{AwsTarget, sdk_config};
use switchyard_core::{Region, order, ports::ReplicationMonitor};
use switchyard_postgres::PgNode;
use tokio::net::TcpStream;

use super::{CutMode, World, front, http};

const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// An order the relay holds for a link.
#[derive(Debug)]
pub struct InFlight {
    from: Region,
    to: Region,
    message: String,
    /// Sent while the link dropped answers: sent again once it heals.
    sent_unacknowledged: bool,
}

pub async fn serve_api(world: Arc<World>, region: Region, mut client: TcpStream) {
    if world.is_down(&region) {
        return front::reset(client);
    }
    let Ok(Some(request)) = http::read_request(&mut client).await else {
        return;
    };
    let (status, body) = match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/health") => health(&world, &region).await,
        ("POST", "/orders") => accept_order(&world, &region, &request.body).await,
        _ => (404, json!({ "error": "NotFound", "detail": "GET /health or POST /orders" })),
    };
    let _ = http::respond_json(&mut client, status, &body).await;
}

async fn health(world: &World, region: &Region) -> (u16, Value) {
    let Some(endpoint) = world.plan.databases.get(region) else {
        return (503, json!({ "region": region, "error": "no database" }));
    };
    let node = PgNode::new(endpoint.clone(), format!("order-api-{region}"));
    match tokio::time::timeout(CALL_DEADLINE, node.replication_status()).await {
        Ok(Ok(status)) => (200, json!({ "region": region, "database": status.role })),
        Ok(Err(e)) => (503, json!({ "region": region, "error": e.to_string() })),
        Err(_) => (503, json!({ "region": region, "error": "the database did not answer in time" })),
    }
}

async fn accept_order(world: &World, region: &Region, body: &[u8]) -> (u16, Value) {
    let parsed: Result<serde_json::Map<String, Value>, String> =
        serde_json::from_slice(body).map_err(|e| format!("NotJson: {e}"));
    let mut map = match parsed {
        Ok(map) => map,
        Err(e) => return (400, json!({ "error": "InvalidOrder", "detail": e })),
    };
    if map.contains_key("acknowledgedAt") {
        return (400, json!({ "error": "InvalidOrder", "detail": "acknowledgedAt is set by the API, not the client" }));
    }
    map.insert("acknowledgedAt".into(), Value::String(order::Timestamp::now().to_string()));
    let order = match order::parse_order(&map) {
        Ok(o) => o,
        Err(rejection) => return (400, json!({ "error": "InvalidOrder", "detail": rejection.to_string() })),
    };
    let d = &world.deployment;
    let topic = format!(
        "arn:aws:sns:{region}:{}:{}",
        crate::definitions::SANDBOX_ACCOUNT,
        d.regional_names(region).orders_topic
    );
    let target = AwsTarget::Sandbox { endpoints: world.plan.aws_endpoints(region) };
    let sns = aws_sdk_sns::Client::new(&sdk_config(&target, region).await);
    let message = order.to_json().to_string();
    match tokio::time::timeout(CALL_DEADLINE, sns.publish().topic_arn(&topic).message(message).send()).await {
        Ok(Ok(_)) => (202, json!({ "orderId": order.order_id, "region": region, "acknowledged": true })),
        Ok(Err(e)) => (503, json!({ "error": "NotAcknowledged", "detail": format!("publishing to {topic}: {e}") })),
        Err(_) => (503, json!({ "error": "NotAcknowledged", "detail": format!("publishing to {topic} timed out") })),
    }
}

/// moto's SNS posts here (`POST /relay/FROM/TO`); the relay answers at once and delivers later.
pub async fn serve_relay(world: Arc<World>, mut client: TcpStream) {
    let Ok(Some(request)) = http::read_request(&mut client).await else {
        return;
    };
    let parts: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let route = match parts.as_slice() {
        ["relay", from, to] => from.parse::<Region>().ok().zip(to.parse::<Region>().ok()),
        _ => None,
    };
    let envelope: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    match (route, envelope["Message"].as_str()) {
        (Some((from, to)), Some(message)) => {
            if let Ok(mut relay) = world.relay.lock() {
                relay.push_back(InFlight { from, to, message: message.to_owned(), sent_unacknowledged: false });
            }
            let _ = http::respond_json(&mut client, 200, &json!({ "relayed": true })).await;
        }
        _ => {
            let _ = http::respond_json(
                &mut client,
                400,
                &json!({ "error": "expected POST /relay/FROM/TO with an SNS notification" }),
            )
            .await;
        }
    }
}

/// Delivers what the relay holds, in order, while each link allows.
pub async fn deliver_relayed(world: Arc<World>) {
    let operator =
        AwsTarget::sandbox_everywhere(&format!("http://127.0.0.1:{}", world.plan.moto_port), world.plan.places.clone());
    let Ok(operator) = operator else { return };
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let pending: Vec<(usize, Region, Region, String, bool)> = match world.relay.lock() {
            Ok(relay) => relay
                .iter()
                .enumerate()
                .map(|(i, f)| (i, f.from.clone(), f.to.clone(), f.message.clone(), f.sent_unacknowledged))
                .collect(),
            Err(_) => return,
        };
        let mut done = Vec::new();
        let mut sent = Vec::new();
        for (i, from, to, message, sent_before) in pending {
            match world.cut(&from, &to) {
                None => {
                    tokio::time::sleep(world.delay()).await;
                    if send(&world, &operator, &to, &message).await {
                        done.push(i);
                    }
                }
                Some(CutMode::DropResponse) if !sent_before => {
                    if send(&world, &operator, &to, &message).await {
                        sent.push(i);
                    }
                }
                Some(_) => {}
            }
        }
        if let Ok(mut relay) = world.relay.lock() {
            for i in sent {
                if let Some(f) = relay.get_mut(i) {
                    f.sent_unacknowledged = true;
                }
            }
            let mut index = 0;
            relay.retain(|_| {
                let keep = !done.contains(&index);
                index += 1;
                keep
            });
        }
    }
}

async fn send(world: &World, operator: &AwsTarget, to: &Region, message: &str) -> bool {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config(operator, to).await);
    let queue = world.deployment.regional_names(to).orders_queue;
    let url = match sqs.get_queue_url().queue_name(&queue).send().await {
        Ok(r) => r.queue_url.unwrap_or_default(),
        Err(_) => return false,
    };
    sqs.send_message().queue_url(url).message_body(message).send().await.is_ok()
}
