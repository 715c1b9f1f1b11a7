//! The regional order APIs and the catch-up.
//!
//! - `POST /orders`: validates the request (the order without `acknowledgedAt`), stamps
//!   `acknowledgedAt`, and acknowledges (202) by `switchyard_core::ingress::acknowledge`: once
//!   the writer's orders queue and, while it is eligible, the standby's hold it, sent in
//!   parallel over the region's links. The writer's region drops an unreachable standby by a
//!   recorded write of its standing and sends to its catch-up queue instead; 503
//!   `NotAcknowledged` otherwise (the client retries; the order id makes it idempotent).
//! - `GET /health`: 200 while the region's database serves its role, 503 otherwise (what the
//!   health probes watch, and the failover's confirmation trusts): a replica that answers, a
//!   writer that takes a write (tried in a transaction rolled back: out of disk, fenced or
//!   read-only is unhealthy). An application's own `/health` must mean as much: the failover
//!   stops on its 200 from the old writer's region.
//! - `GET /writer`: the claim-aware endpoint Route 53's health checks call
//!   (`switchyard_core::dns::writer_health`): 200 only while a strong read of the claim, through
//!   this region's replica, shows this region holds the active claim; 503 otherwise. In AWS
//!   the ingress function behind the API would answer it the same way (not in the stacks).
//! - **The catch-up** (each region's API, while it writes; a scheduled function would do it
//!   in AWS): a standby that is not eligible and answers again is marked `CatchingUp`, the
//!   catch-up queue is moved into its orders queue, and it is marked `Eligible` when that is
//!   empty.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use switchyard_aws::{AwsTarget, control_table::ControlTable, sdk_config};
use switchyard_core::{
    ErrorName, Region, SwitchyardError, dns, ingress,
    ingress::{CatchUpQueues, OrderIntake, Parked},
    order,
    ports::{ClaimRead, ClaimStore, PortResult, ReplicationMonitor},
};
use switchyard_postgres::PgNode;
use tokio::net::TcpStream;

use super::{World, front, http};

const CALL_DEADLINE: Duration = Duration::from_secs(5);

pub async fn serve_api(world: Arc<World>, region: Region, mut client: TcpStream) {
    if world.is_down(&region) {
        return front::reset(client);
    }
    let Ok(Some(request)) = http::read_request(&mut client).await else {
        return;
    };
    let (status, body) = match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/health") => health(&world, &region).await,
        ("GET", dns::WRITER_HEALTH_PATH) => writer(&world, &region).await,
        ("POST", "/orders") => accept_order(&world, &region, &request.body).await,
        _ => (404, json!({ "error": "NotFound", "detail": "GET /health, GET /writer or POST /orders" })),
    };
    let _ = http::respond_json(&mut client, status, &body).await;
}

async fn health(world: &World, region: &Region) -> (u16, Value) {
    let Some(endpoint) = world.plan.databases.get(region) else {
        return (503, json!({ "region": region, "error": "no database" }));
    };
    let node = PgNode::new(endpoint.clone(), format!("order-api-{region}"));
    let serves = async {
        let status = node.replication_status().await?;
        if status.role == switchyard_core::DatabaseRole::Writer {
            // The write is the check: nothing stays.
            let client = node.connect().await?;
            let write = "BEGIN; INSERT INTO switchyard_heartbeat (region, beat_at) VALUES ('order-api-health', now())
                         ON CONFLICT (region) DO NOTHING; ROLLBACK;";
            switchyard_postgres::bounded(CALL_DEADLINE, "health write", client.batch_execute(write)).await?;
        }
        Ok::<_, switchyard_core::SwitchyardError>(status)
    };
    match tokio::time::timeout(CALL_DEADLINE, serves).await {
        Ok(Ok(status)) => (200, json!({ "region": region, "database": status.role })),
        Ok(Err(e)) => (503, json!({ "region": region, "error": e.to_string() })),
        Err(_) => (503, json!({ "region": region, "error": "the database did not answer in time" })),
    }
}

async fn writer(world: &World, region: &Region) -> (u16, Value) {
    let (claims, _) = region_view(world, region).await;
    let read = match tokio::time::timeout(CALL_DEADLINE, claims.strong_read()).await {
        Ok(read) => read,
        Err(_) => ClaimRead::CannotProve(unavailable("the claim store did not answer in time".into())),
    };
    let health = dns::writer_health(region, &read);
    (
        if health.serving { 200 } else { 503 },
        json!({ "region": region, "serving": health.serving, "detail": health.detail }),
    )
}

async fn accept_order(world: &World, region: &Region, body: &[u8]) -> (u16, Value) {
    let request: serde_json::Map<String, Value> = match serde_json::from_slice(body) {
        Ok(map) => map,
        Err(e) => return (400, json!({ "error": "InvalidOrder", "detail": format!("NotJson: {e}") })),
    };
    let order = match order::acknowledge_request(request, order::Timestamp::now()) {
        Ok(o) => o,
        Err(rejection) => return (400, json!({ "error": "InvalidOrder", "detail": rejection.to_string() })),
    };
    let message = order.to_json().to_string();
    let (claims, queues) = region_view(world, region).await;
    let acknowledged = ingress::acknowledge(region, &world.deployment.regions, &claims, &claims, &queues, &message);
    match tokio::time::timeout(CALL_DEADLINE * 3, acknowledged).await {
        Ok(Ok(ack)) => {
            if let Some(why) = &ack.dropped_standby {
                eprintln!("order API {region}: {why}");
            }
            (
                202,
                json!({
                    "orderId": order.order_id, "region": region, "acknowledged": true,
                    "durableIn": ack.durable_in, "standbyCatchingUp": ack.standby_catching_up,
                }),
            )
        }
        Ok(Err(e)) => (503, json!({ "error": "NotAcknowledged", "detail": e.to_string() })),
        Err(_) => (503, json!({ "error": "NotAcknowledged", "detail": "the acknowledgement did not finish in time" })),
    }
}

/// The claim store and the orders queues as `region`'s API reaches them (its links): made
/// once per region and kept, as a function keeps its clients across invocations.
async fn region_view(world: &World, region: &Region) -> (ControlTable, Queues) {
    let mut views = world.views.lock().await;
    if let Some(view) = views.get(region) {
        return view.clone();
    }
    let target = AwsTarget::Sandbox { endpoints: world.plan.aws_endpoints(region) };
    let own = sdk_config(&target, region).await;
    let claims =
        ControlTable::new(aws_sdk_dynamodb::Client::new(&own), world.deployment.regional_names(region).control_table);
    let mut sqs = std::collections::BTreeMap::new();
    for r in world.deployment.regions.iter() {
        sqs.insert(r.clone(), aws_sdk_sqs::Client::new(&sdk_config(&target, r).await));
    }
    let view = (claims, Queues { sqs, deployment: world.deployment.clone(), urls: Arc::default() });
    views.insert(region.clone(), view.clone());
    view
}

fn unavailable(what: String) -> SwitchyardError {
    SwitchyardError::new(ErrorName::ServiceUnavailable, what)
}

/// The orders queues of both regions, as one region's API reaches them; every call bounded.
#[derive(Debug, Clone)]
pub struct Queues {
    sqs: std::collections::BTreeMap<Region, aws_sdk_sqs::Client>,
    deployment: switchyard_model::Deployment,
    /// Queue URLs already asked for, by (region, name).
    urls: Arc<std::sync::Mutex<std::collections::BTreeMap<(Region, String), String>>>,
}

impl Queues {
    /// `region`'s SQS client and the URL of its queue `queue` (asked once, then kept).
    async fn queue(&self, region: &Region, queue: &str) -> PortResult<(&aws_sdk_sqs::Client, String)> {
        let sqs = self.sqs.get(region).ok_or_else(|| unavailable(format!("no path to {region}")))?;
        let key = (region.clone(), queue.to_owned());
        if let Some(url) = self.urls.lock().ok().and_then(|u| u.get(&key).cloned()) {
            return Ok((sqs, url));
        }
        let asked = tokio::time::timeout(CALL_DEADLINE, sqs.get_queue_url().queue_name(queue).send())
            .await
            .map_err(|_| unavailable(format!("{queue} in {region} did not answer in {CALL_DEADLINE:?}")))?
            .map_err(|e| unavailable(format!("{queue} in {region}: GetQueueUrl: {e}")))?;
        let url = asked.queue_url.unwrap_or_default();
        if let Ok(mut urls) = self.urls.lock() {
            urls.insert(key, url.clone());
        }
        Ok((sqs, url))
    }

    async fn send(&self, region: &Region, queue: &str, body: &str) -> PortResult<()> {
        let (sqs, url) = self.queue(region, queue).await?;
        match tokio::time::timeout(CALL_DEADLINE, sqs.send_message().queue_url(url).message_body(body).send()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unavailable(format!("{queue} in {region}: SendMessage: {e}"))),
            Err(_) => Err(unavailable(format!("{queue} in {region} did not answer in {CALL_DEADLINE:?}"))),
        }
    }
}

impl CatchUpQueues for Queues {
    async fn receive(&self, writer: &Region) -> PortResult<Vec<Parked>> {
        let (sqs, url) = self.queue(writer, &self.deployment.regional_names(writer).orders_catch_up).await?;
        let receive = sqs.receive_message().queue_url(&url).max_number_of_messages(10).visibility_timeout(30).send();
        let got = tokio::time::timeout(CALL_DEADLINE, receive)
            .await
            .map_err(|_| unavailable(format!("{writer}'s catch-up queue did not answer in {CALL_DEADLINE:?}")))?
            .map_err(|e| unavailable(format!("{writer}'s catch-up queue: ReceiveMessage: {e}")))?;
        Ok(got
            .messages()
            .iter()
            .map(|m| Parked {
                body: m.body().unwrap_or_default().to_owned(),
                receipt: m.receipt_handle().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    async fn delete(&self, writer: &Region, receipt: &str) -> PortResult<()> {
        let (sqs, url) = self.queue(writer, &self.deployment.regional_names(writer).orders_catch_up).await?;
        let delete = sqs.delete_message().queue_url(&url).receipt_handle(receipt).send();
        match tokio::time::timeout(CALL_DEADLINE, delete).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unavailable(format!("{writer}'s catch-up queue: DeleteMessage: {e}"))),
            Err(_) => Err(unavailable(format!("{writer}'s catch-up queue did not answer in {CALL_DEADLINE:?}"))),
        }
    }

    /// Visible plus in-flight messages, from SQS's approximate counts: exact in moto; in AWS
    /// "empty" needs the counts to stay zero over a minute (they are eventually consistent).
    async fn is_empty(&self, writer: &Region) -> PortResult<bool> {
        use aws_sdk_sqs::types::QueueAttributeName::{
            ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible,
        };
        let (sqs, url) = self.queue(writer, &self.deployment.regional_names(writer).orders_catch_up).await?;
        let asked = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(ApproximateNumberOfMessages)
            .attribute_names(ApproximateNumberOfMessagesNotVisible)
            .send();
        let attrs = tokio::time::timeout(CALL_DEADLINE, asked)
            .await
            .map_err(|_| unavailable(format!("{writer}'s catch-up queue did not answer in {CALL_DEADLINE:?}")))?
            .map_err(|e| unavailable(format!("{writer}'s catch-up queue: GetQueueAttributes: {e}")))?;
        Ok(attrs.attributes().into_iter().flatten().filter_map(|(_, v)| v.parse::<u64>().ok()).sum::<u64>() == 0)
    }

    async fn reachable(&self, region: &Region) -> PortResult<()> {
        let sqs = self.sqs.get(region).ok_or_else(|| unavailable(format!("no path to {region}")))?;
        match tokio::time::timeout(CALL_DEADLINE, sqs.list_queues().send()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unavailable(format!("{region}'s SQS: {e}"))),
            Err(_) => Err(unavailable(format!("{region}'s SQS did not answer in {CALL_DEADLINE:?}"))),
        }
    }
}

impl OrderIntake for Queues {
    async fn enqueue(&self, region: &Region, order: &str) -> PortResult<()> {
        self.send(region, &self.deployment.regional_names(region).orders_queue, order).await
    }

    async fn enqueue_for_catch_up(&self, writer: &Region, order: &str) -> PortResult<()> {
        self.send(writer, &self.deployment.regional_names(writer).orders_catch_up, order).await
    }
}

/// The catch-up, in each region's API (the stand-in for a scheduled function in AWS): one
/// round of `core::ingress::catch_up` a second.
pub async fn catch_up(world: Arc<World>, region: Region) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Err(e) = catch_up_once(&world, &region).await {
            eprintln!("catch-up in {region}: {e}");
        }
    }
}

async fn catch_up_once(world: &World, region: &Region) -> PortResult<()> {
    // A crashed order API (its function, in AWS) catches nothing up.
    if world.is_down(region) {
        return Ok(());
    }
    let (claims, queues) = region_view(world, region).await;
    let round = ingress::catch_up(region, &world.deployment.regions, &claims, &claims, &queues, &queues);
    let round = tokio::time::timeout(CALL_DEADLINE * 6, round)
        .await
        .map_err(|_| unavailable("the catch-up round did not finish in time".to_owned()))??;
    if let Some(problem) = &round.parked_problem {
        eprintln!("catch-up in {region}: {problem}");
    }
    if round.moved + round.taken_over > 0 {
        eprintln!(
            "catch-up in {region}: {} orders to the standby, {} parked orders taken in; standby {:?}",
            round.moved, round.taken_over, round.standing
        );
    }
    Ok(())
}
