//! The AWS fronts: every AWS call of a region crosses one on its way to moto, so the link it
//! stands for can be cut. They also stand in for the writer-claim store, a DynamoDB global
//! table with multi-Region strong consistency (MRSC) — which moto does not have:
//! - **One table.** moto keeps a control table per region; the fronts send every call on a
//!   claim table (the model's control table) to the one in the backing region, whichever
//!   replica region it was addressed to.
//! - **A majority or nothing.** "The local Region accepts all read and write operations as
//!   long as a second Region that hosts a replica or witness is available to establish
//!   quorum. If a second Region isn't available, the local Region can service only eventually
//!   consistent reads." (AWS Prescriptive Guidance, *Key facts about MRSC*,
//!   <https://docs.aws.amazon.com/prescriptive-guidance/latest/dynamodb-global-tables/overview.html>).
//!   While a replica region does not reach a majority of the three places, its strongly
//!   consistent reads and its writes fail (AWS documents that they "will return errors", not
//!   which; the sandbox answers `InternalServerError`, HTTP 500), and its eventually
//!   consistent `GetItem` and `Scan` answer from the table as it was when it lost the
//!   majority: code that forgets `ConsistentRead` reads a stale claim here, as it could in AWS.
//! - **What MRSC refuses**, moto accepts; the fronts refuse it with a `ValidationException`:
//!   transactions ("Global tables configured for multi-Region strong consistency (MRSC) do
//!   not support transaction operations, and will return an error if those operations are
//!   invoked on an MRSC replica"), Time to Live ("Time to Live (TTL) is not supported for
//!   MRSC global tables") and local secondary indexes ("Local secondary indexes (LSIs) are
//!   not supported for MRSC global tables"), all from
//!   <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html>.
//! - **Write conflicts**, on demand (`Links::write_conflicts`): a replica's writes refused
//!   with `ReplicatedWriteConflictException`, as MRSC refuses a write to an item another
//!   region is modifying; the drill's campaign injects them around a failover.
//! - **Latency.** "With MRSC, latencies are higher for write operations and for strongly
//!   consistent read operations. These operations require cross-Region communication"
//!   (Prescriptive Guidance, above): they pay the links' delay even in the caller's region.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};
use switchyard_core::Region;
use tokio::{io::AsyncReadExt, net::TcpStream};

use super::{CutMode, World, http};

/// How long a blackholed or answer-dropped connection is held before the world lets go
/// (callers have given up long before: every call has a deadline).
pub const HOLD: Duration = Duration::from_secs(600);

const DYNAMODB: &str = "DynamoDB_20120810.";
const UPSTREAM_DEADLINE: Duration = Duration::from_secs(60);

/// Operations an MRSC table refuses (see the module docs for the page).
const MRSC_UNSUPPORTED: [&str; 3] = ["TransactWriteItems", "TransactGetItems", "UpdateTimeToLive"];
const WRITES: [&str; 4] = ["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"];

/// Serves one connection: `caller` and `target` are `None` on the operator's front (no
/// links; the target region is the one the request is signed for).
pub async fn serve(world: Arc<World>, caller: Option<Region>, target: Option<Region>, mut client: TcpStream) {
    let crossing = match (&caller, &target) {
        (Some(c), Some(t)) if c != t => Some((c.clone(), t.clone())),
        _ => None,
    };
    if let Some((c, t)) = &crossing {
        match world.cut(c, t) {
            Some(CutMode::Refuse) => return reset(client),
            Some(CutMode::Blackhole) => return hold(client).await,
            _ => {}
        }
    }
    let Ok(Some(mut request)) = http::read_request(&mut client).await else {
        return;
    };
    let drop_response = crossing.as_ref().is_some_and(|(c, t)| world.cut(c, t) == Some(CutMode::DropResponse));
    if crossing.is_some() && !drop_response {
        tokio::time::sleep(world.delay()).await;
    }
    let region = target.clone().or_else(|| signed_region(&request));
    // A service of the target region browned out, for every caller in the regions.
    if caller.is_some()
        && let (Some(r), Some(service)) = (&region, signed_service(&request))
    {
        match world.service_cut(r, &service) {
            Some(CutMode::Refuse) => return reset(client),
            Some(CutMode::Blackhole) => return hold(client).await,
            Some(CutMode::DropResponse) => {
                let _ = http::exchange(world.plan.moto_port, &request.to_bytes(), UPSTREAM_DEADLINE).await;
                return hold(client).await;
            }
            None => {}
        }
    }
    if let Some(call) = ClaimCall::classify(&world, &request)
        && let Some(region) = region.clone().filter(|r| world.plan.replicas().contains(r))
    {
        if let Some(op) = call.unsupported() {
            let message = format!(
                "{op} is not supported on a table with multi-Region strong consistency \
                 (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/V2globaltables_HowItWorks.html)"
            );
            return answer(client, 400, "com.amazon.coral.validate#ValidationException", &message, drop_response).await;
        }
        if caller.is_some() {
            if !world.reaches_majority(&region) {
                if call.strong {
                    let message = format!(
                        "the {region} replica cannot reach a second region of its multi-Region strongly consistent \
                         table (sandbox partition): strongly consistent reads and writes fail until it does"
                    );
                    return answer(
                        client,
                        500,
                        "com.amazonaws.dynamodb.v20120810#InternalServerError",
                        &message,
                        drop_response,
                    )
                    .await;
                }
                let body = call.answer_from_snapshot(&world, &region);
                return match body {
                    Ok(body) if !drop_response => {
                        let _ =
                            http::respond(&mut client, 200, "application/x-amz-json-1.0", body.to_string().as_bytes())
                                .await;
                    }
                    Ok(_) => hold(client).await,
                    Err(message) => {
                        answer(
                            client,
                            500,
                            "com.amazonaws.dynamodb.v20120810#InternalServerError",
                            &message,
                            drop_response,
                        )
                        .await
                    }
                };
            }
            if WRITES.contains(&call.op.as_str()) && world.links().write_conflicts.contains(&region) {
                let message = "The request was rejected because one or more items in the request are being \
                               modified by a request in another Region. (sandbox: a write conflict injected)";
                let error = "com.amazonaws.dynamodb.v20120810#ReplicatedWriteConflictException";
                return answer(client, 400, error, message, drop_response).await;
            }
            if call.strong {
                // A round trip to the nearest other member of the table.
                tokio::time::sleep(world.delay()).await;
            }
        }
        resign(&mut request, &region, world.plan.backing());
    }
    let response = http::exchange(world.plan.moto_port, &request.to_bytes(), UPSTREAM_DEADLINE).await;
    if drop_response {
        return hold(client).await;
    }
    // A replica region lists the global table as its own, as AWS does.
    let lists_tables = request.header("x-amz-target") == Some("DynamoDB_20120810.ListTables");
    let response = match (response, region) {
        (Ok(raw), Some(r)) if lists_tables && world.plan.replicas().contains(&r) && r != *world.plan.backing() => {
            Ok(with_claim_tables(&world, raw))
        }
        (response, _) => response,
    };
    match response {
        Ok(raw) => {
            let _ = tokio::io::AsyncWriteExt::write_all(&mut client, &raw).await;
        }
        Err(_) => reset(client),
    }
}

/// A `ListTables` answer with the claim tables added (one page: the sandbox has few tables).
fn with_claim_tables(world: &World, raw: Vec<u8>) -> Vec<u8> {
    let Some((200, body)) = http::split_response(&raw) else { return raw };
    let Ok(mut listed) = serde_json::from_slice::<Value>(body) else { return raw };
    let mut names: Vec<String> =
        listed["TableNames"].as_array().into_iter().flatten().filter_map(|n| n.as_str().map(str::to_owned)).collect();
    names.extend(claim_tables(world));
    names.sort();
    names.dedup();
    listed["TableNames"] = json!(names);
    let body = listed.to_string();
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A DynamoDB call on a claim table.
struct ClaimCall {
    op: String,
    body: Value,
    strong: bool,
}

impl ClaimCall {
    fn classify(world: &World, request: &http::Request) -> Option<ClaimCall> {
        let op = request.header("x-amz-target")?.strip_prefix(DYNAMODB)?.to_owned();
        let body: Value = serde_json::from_slice(&request.body).ok()?;
        let claim_tables = claim_tables(world);
        let mut tables: Vec<&str> = body["TableName"].as_str().into_iter().collect();
        if let Some(items) = body["RequestItems"].as_object() {
            tables.extend(items.keys().map(String::as_str));
        }
        for item in body["TransactItems"].as_array().into_iter().flatten() {
            if let Some(part) = item.as_object() {
                tables.extend(part.values().filter_map(|p| p["TableName"].as_str()));
            }
        }
        if !tables.iter().any(|t| claim_tables.iter().any(|c| c == t)) {
            return None;
        }
        let consistent = body["ConsistentRead"].as_bool() == Some(true)
            || body["RequestItems"]
                .as_object()
                .is_some_and(|items| items.values().any(|i| i["ConsistentRead"].as_bool() == Some(true)));
        let strong = WRITES.contains(&op.as_str()) || consistent;
        Some(ClaimCall { op, body, strong })
    }

    fn unsupported(&self) -> Option<String> {
        let lsi = matches!(self.op.as_str(), "CreateTable" | "UpdateTable")
            && self.body.get("LocalSecondaryIndexes").is_some();
        if MRSC_UNSUPPORTED.contains(&self.op.as_str()) {
            Some(self.op.clone())
        } else if lsi {
            Some(format!("{} with LocalSecondaryIndexes", self.op))
        } else {
            None
        }
    }

    /// An eventually consistent read of an isolated replica: the snapshot's answer.
    fn answer_from_snapshot(&self, world: &World, region: &Region) -> Result<Value, String> {
        let table = self.body["TableName"].as_str().unwrap_or_default();
        let items = world.snapshot(region, table).unwrap_or_default();
        match self.op.as_str() {
            "GetItem" => {
                let key = self.body["Key"].as_object().cloned().unwrap_or_default();
                let found = items.into_iter().find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)));
                Ok(found.map_or_else(|| json!({}), |item| json!({ "Item": item })))
            }
            "Scan" => Ok(json!({ "Count": items.len(), "ScannedCount": items.len(), "Items": items })),
            "DescribeTable" | "ListTables" => {
                Err(format!("{} is answered only while {region} reaches a majority", self.op))
            }
            other => Err(format!(
                "the sandbox answers an isolated replica's eventually consistent reads for GetItem and Scan only, not {other}"
            )),
        }
    }
}

fn claim_tables(world: &World) -> Vec<String> {
    let mut tables: Vec<String> =
        world.deployment.regions.iter().map(|r| world.deployment.regional_names(r).control_table).collect();
    tables.dedup();
    tables
}

/// The region a SigV4 request is signed for (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`).
fn signed_region(request: &http::Request) -> Option<Region> {
    let auth = request.header("authorization")?;
    let credential = auth.split("Credential=").nth(1)?;
    credential.split('/').nth(2)?.parse().ok()
}

/// The service a SigV4 request is signed for (`dynamodb`, `sqs`, …).
fn signed_service(request: &http::Request) -> Option<String> {
    let auth = request.header("authorization")?;
    let credential = auth.split("Credential=").nth(1)?;
    credential.split('/').nth(3).map(|s| s.trim_end_matches(',').to_owned())
}

/// Sends a claim-table call to the backing region's table. moto does not check signatures;
/// it reads the region from the credential scope.
fn resign(request: &mut http::Request, from: &Region, to: &Region) {
    for (name, value) in &mut request.headers {
        if name.eq_ignore_ascii_case("authorization") {
            *value = value.replace(&format!("/{from}/dynamodb/"), &format!("/{to}/dynamodb/"));
        }
    }
}

/// The claim tables as they are now, read in the backing region (moto, no links).
pub async fn snapshot_claim_tables(world: &World) -> anyhow::Result<std::collections::BTreeMap<String, Vec<Value>>> {
    let mut snapshot = std::collections::BTreeMap::new();
    for table in claim_tables(world) {
        let (status, body) =
            dynamodb(world.plan.moto_port, world.plan.backing(), "Scan", &json!({ "TableName": table })).await?;
        match status {
            200 => {
                snapshot.insert(table, body["Items"].as_array().cloned().unwrap_or_default());
            }
            // Not provisioned yet: nothing to remember.
            400 if body["__type"].as_str().is_some_and(|t| t.ends_with("ResourceNotFoundException")) => {}
            _ => anyhow::bail!("scanning {table} for the snapshot: {status} {body}"),
        }
    }
    Ok(snapshot)
}

/// One DynamoDB call straight to moto (the world's own view, outside every region).
pub async fn dynamodb(moto_port: u16, region: &Region, op: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let body = body.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{moto_port}\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: {DYNAMODB}{op}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=sandbox/20260101/{region}/dynamodb/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let raw = http::exchange(moto_port, request.as_bytes(), UPSTREAM_DEADLINE).await?;
    let (status, body) = http::split_response(&raw).ok_or_else(|| anyhow::anyhow!("moto: not an HTTP response"))?;
    Ok((status, serde_json::from_slice(body).unwrap_or(Value::Null)))
}

async fn answer(mut client: TcpStream, status: u16, error_type: &str, message: &str, drop_response: bool) {
    if drop_response {
        return hold(client).await;
    }
    let body = json!({ "__type": error_type, "message": message });
    let _ = http::respond(&mut client, status, "application/x-amz-json-1.0", body.to_string().as_bytes()).await;
}

/// Closes with a reset: the caller sees its connection refused or reset, at once.
pub fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Keeps the connection open and silent until the caller gives up (or [`HOLD`] passes).
pub async fn hold(mut stream: TcpStream) {
    let _ = tokio::time::timeout(HOLD, async {
        let mut sink = [0u8; 4096];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
