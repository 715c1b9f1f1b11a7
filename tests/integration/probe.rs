//! The health-probe function against the sandbox: a stopped primary database is reported
//! unhealthy, with its reason, by the first round after the stop; a hanging endpoint is a
//! datapoint of its own that holds up no other probe.

use std::time::{Duration, SystemTime};

use anyhow::{Context, ensure};
use aws_sdk_cloudwatch::types::{Dimension, Metric};
use libtest_mimic::Trial;
use serde_json::{Value, json};
use switchyard_aws::{metrics::newest_value, sdk_config};
use switchyard_core::{config::keys, order::Timestamp, ports::ReplicationMonitor};
use switchyard_sandbox::{
    Sandbox,
    lambda::{self, Invocation, LambdaService},
    process,
};
use switchyard_tests::{eventually, sandbox_trial};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn trials() -> Vec<Trial> {
    vec![
        sandbox_trial("probe::a_stopped_primary_is_unhealthy_from_the_next_round_with_the_reason", |sb| {
            Box::pin(stopped_primary(sb))
        }),
        sandbox_trial("probe::a_hanging_endpoint_is_its_own_unhealthy_datapoint", |sb| Box::pin(hanging_endpoint(sb))),
    ]
}

async fn probe(service: &LambdaService, request: Value) -> anyhow::Result<Value> {
    match service.invoke("health-probe", &request).await? {
        Invocation::Ok(report) => Ok(report),
        Invocation::FunctionError { error_type, error_message } => anyhow::bail!("{error_type}: {error_message}"),
    }
}

fn verdict<'a>(round: &'a Value, region: &str) -> &'a Value {
    &round["verdicts"][region]
}

async fn stopped_primary(sb: &Sandbox) -> anyhow::Result<()> {
    let east1 = sb.lambda("us-east-1")?.clone();
    // Built and warm first: the first invocation compiles the function.
    probe(&east1, json!({"rounds": 1, "intervalSeconds": 1})).await?;
    let writer = sb.node("us-east-1")?.connect().await?;
    let beats = || async {
        let row = writer.query_one("SELECT COALESCE(sum(beats), 0)::int8 FROM switchyard_heartbeat", &[]).await?;
        anyhow::Ok(row.get::<_, i64>(0))
    };
    let before = beats().await?;
    // The invocation's first round finds the database up (its heartbeat lands); then the
    // database stops; every round starting after the stop must say so.
    let run = tokio::spawn(async move { probe(&east1, json!({"rounds": 4, "intervalSeconds": 2})).await });
    eventually(Duration::from_secs(30), "the first round's heartbeat", || async {
        Ok((beats().await? > before).then_some(()))
    })
    .await?;
    drop(writer);
    sb.stop_database("us-east-1")?;
    let stopped_at = Timestamp::from(SystemTime::now()).to_string();
    let outcome = async {
        let report = run.await??;
        let standby = probe(sb.lambda("us-east-2")?, json!({"rounds": 1, "intervalSeconds": 1})).await?;
        anyhow::Ok((report, standby))
    }
    .await;
    sb.start_database("us-east-1")?;
    let (report, standby) = outcome?;

    let rounds = report["rounds"].as_array().context("rounds")?;
    ensure!(rounds.len() == 4, "{report}");
    ensure!(verdict(&rounds[0], "us-east-1")["health"] == "healthy", "first round: {}", rounds[0]);
    let after: Vec<&Value> = rounds.iter().filter(|r| r["startedAt"].as_str() > Some(stopped_at.as_str())).collect();
    ensure!(!after.is_empty(), "no round started after the stop at {stopped_at}: {report}");
    for r in &after {
        let v = verdict(r, "us-east-1");
        ensure!(v["health"] == "unhealthy", "round at {} after the stop at {stopped_at}: {v}", r["startedAt"]);
        let reasons = v["reasons"].to_string();
        ensure!(reasons.contains("database: postgres unreachable"), "{reasons}");
    }
    eprintln!(
        "database stopped at {stopped_at}; the next round started at {} and reported {}",
        after[0]["startedAt"],
        verdict(after[0], "us-east-1")["reasons"]
    );
    // What the alarm sees: Healthy 0 in the probe's own region, and the datapoint is there.
    let alarm = &report["alarm"]["us-east-1"];
    ensure!(alarm["values"].as_array().and_then(|v| v.last()) == Some(&json!(0.0)), "{alarm}");
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk_config(&sb.aws_target(), &"us-east-1".parse()?).await);
    let metric = Metric::builder()
        .namespace("switchyard")
        .metric_name("Healthy")
        .dimensions(Dimension::builder().name("Region").value("us-east-1").build())
        .build();
    let newest = newest_value(&cloudwatch, metric, "Minimum", Duration::from_secs(300), 1).await?;
    ensure!(newest == Some(0.0), "newest Healthy datapoint {newest:?}");

    // The standby, meanwhile, still serves but has lost its stream.
    let v = verdict(&standby["rounds"][0], "us-east-2");
    ensure!(v["health"] == "degraded", "{v}");
    ensure!(v["reasons"].to_string().contains("does not stream from the writer"), "{v}");

    let replica = sb.node("us-east-2")?;
    eventually(Duration::from_secs(30), "the replica streams again", || async {
        Ok(replica.replication_status().await.ok().filter(|s| s.streaming_peers > 0).map(drop))
    })
    .await?;
    // #18: while it streams, the standby's probe publishes how far the writer's clock runs
    // ahead of the replica's, where the promoter reads it (one host here: about zero).
    probe(sb.lambda("us-east-2")?, json!({"rounds": 1, "intervalSeconds": 1})).await?;
    let east2 = "us-east-2".parse()?;
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk_config(&sb.aws_target(), &east2).await);
    let ahead = switchyard_aws::metrics::writer_clock_ahead(&cloudwatch, &east2).await?;
    ensure!(ahead.is_some_and(|a| a.abs() < 5.0), "the writer clock offset published: {ahead:?}");
    Ok(())
}

/// A loopback HTTP server standing in for the platform's `/health`: `/ok` answers 200,
/// `/down` 503, `/hang` never answers. Runs until the returned task is aborted.
async fn health_endpoints() -> anyhow::Result<(u16, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let status = if request.starts_with("GET /ok") {
                    "200 OK"
                } else if request.starts_with("GET /down") {
                    "503 Service Unavailable"
                } else {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                };
                let _ = stream
                    .write_all(
                        format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes(),
                    )
                    .await;
            });
        }
    });
    Ok((port, task))
}

async fn hanging_endpoint(sb: &Sandbox) -> anyhow::Result<()> {
    let (port, server) = health_endpoints().await?;
    let region = "us-east-1".parse()?;
    let mut env = sb.function_environment(&region);
    let urls = json!({ "us-east-1": format!("http://127.0.0.1:{port}/hang"), "us-east-2": format!("http://127.0.0.1:{port}/ok") });
    env.push((keys::HEALTH_URLS, urls.to_string()));
    let service = lambda::start(&region, &env, process::free_port()?, &sb.dir.join("lambda-probe-endpoints.log"))?;
    let outcome = async {
        let report = probe(&service, json!({"rounds": 2, "intervalSeconds": 1})).await?;
        for round in report["rounds"].as_array().context("rounds")? {
            let outcomes = round["outcomes"].as_array().context("outcomes")?;
            let find = |target: &str, region: &str| {
                outcomes.iter().find(|o| o["target"] == target && o["region"] == region).cloned().unwrap_or_default()
            };
            let hung = find("endpoint", "us-east-1");
            ensure!(hung["health"] == "unhealthy" && hung["error"] == "ServiceUnavailable", "{hung}");
            ensure!(hung["reason"].as_str().is_some_and(|r| r.contains("no answer within 750 ms")), "{hung}");
            // The other probes of the same round answered for themselves.
            ensure!(find("endpoint", "us-east-2")["health"] == "healthy", "{round}");
            ensure!(find("database", "us-east-1")["health"] == "healthy", "{round}");
            ensure!(find("queue", "us-east-1")["health"] == "healthy", "{round}");
            ensure!(verdict(round, "us-east-1")["health"] == "unhealthy", "{round}");
            ensure!(verdict(round, "us-east-2")["health"] == "healthy", "{round}");
        }
        anyhow::Ok(())
    }
    .await;
    process::stop_group(service.pid, "TERM", Duration::from_secs(10))?;
    server.abort();
    outcome
}
