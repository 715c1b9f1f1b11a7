//! The sandbox's Lambda service: `cargo lambda watch` per region, serving the five function
//! binaries over the real Lambda Runtime API and the Lambda Invoke API on loopback. Each
//! region's instance gives its functions the environment the deployment model derives for
//! that region (plus the sandbox's AWS endpoint), as a deployed stack would.

use std::{path::Path, process::Command, time::Duration};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use switchyard_core::Region;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{process, tools, workspace::repo_root};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LambdaService {
    pub region: Region,
    pub port: u16,
    /// Leader of the process group: `cargo lambda watch` and the function processes it runs.
    pub pid: u32,
    pub log: std::path::PathBuf,
}

/// Serves the functions of `region` with exactly `env` (see `Sandbox::function_environment`;
/// tests change it to serve other configurations), once it listens. The caller stops the
/// process group.
pub fn start(region: &Region, env: &[(&str, String)], port: u16, log: &Path) -> Result<LambdaService> {
    let service = spawn(region, env, port, log)?;
    service.wait_ready()?;
    Ok(service)
}

/// Starts `cargo lambda watch` without waiting for it, so the caller can record its PID first.
pub fn spawn(region: &Region, env: &[(&str, String)], port: u16, log: &Path) -> Result<LambdaService> {
    let mut cmd = Command::new(tools::cargo_lambda());
    cmd.current_dir(repo_root()).args([
        "lambda",
        "watch",
        "--invoke-address",
        "127.0.0.1",
        "--invoke-port",
        &port.to_string(),
        "--ignore-changes",
        // AWS runs a function's calls side by side, up to its reserved concurrency; cargo lambda
        // defaults to one call per function at a time, and the failover's health check then
        // queued behind the scheduled probe's minute of rounds (#20). One limit for all five:
        // cargo lambda takes one, so each function gets at least its reserved concurrency.
        "--concurrency",
        &sandbox_concurrency().to_string(),
    ]);
    // An env file, not `--env-var`: cargo lambda splits `--env-var` values at commas, and the
    // database endpoints are a JSON map.
    let env_file = log.with_extension("env");
    let mut lines = String::new();
    for (k, v) in env {
        if v.contains('\'') || v.contains('\n') {
            anyhow::bail!("{k}: value cannot go into an env file: {v:?}");
        }
        lines += &format!("{k}='{v}'\n");
    }
    std::fs::write(&env_file, lines)?;
    cmd.arg("--env-file").arg(&env_file);
    let pid = process::spawn_detached(&mut cmd, log)?;
    Ok(LambdaService { region: region.clone(), port, pid, log: log.to_path_buf() })
}

/// The highest reserved concurrency the model gives a function: instances start on demand, so
/// a function that is called less often costs nothing more.
fn sandbox_concurrency() -> u32 {
    switchyard_model::Deployment::sandbox().function_specs().iter().map(|f| f.reserved_concurrency).max().unwrap_or(1)
}

/// What an invocation returned: the payload, or the function's error.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    Ok(serde_json::Value),
    FunctionError { error_type: String, error_message: String },
}

impl LambdaService {
    /// Waits until the service listens; stops it if it never does.
    pub fn wait_ready(&self) -> Result<()> {
        let ready = process::wait_for_port(
            self.port,
            Duration::from_secs(120),
            "cargo lambda watch",
            &self.log,
            Some(self.pid),
        );
        if ready.is_err() {
            let _ = process::stop_group(self.pid, "TERM", Duration::from_secs(10));
        }
        ready
    }

    /// `POST /2015-03-31/functions/{name}/invocations`, as Step Functions and the AWS SDK send
    /// it. The function is compiled on its first invocation, so allow for a build.
    pub async fn invoke(&self, function: &str, payload: &serde_json::Value) -> Result<Invocation> {
        let body = serde_json::to_vec(payload)?;
        let request = format!(
            "POST /2015-03-31/functions/{function}/invocations HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.port,
            body.len()
        );
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
            stream.write_all(request.as_bytes()).await?;
            stream.write_all(&body).await?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await?;
            anyhow::Ok(response)
        };
        let response = tokio::time::timeout(Duration::from_secs(300), exchange)
            .await
            .with_context(|| format!("invoking {function}: no answer within 300 s; see {}", self.log.display()))??;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text.split_once("\r\n\r\n").context("malformed HTTP response")?;
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no HTTP status")?;
        let function_error = head.lines().any(|l| l.to_ascii_lowercase().starts_with("x-amz-function-error"));
        let value: serde_json::Value =
            if body.trim().is_empty() { serde_json::Value::Null } else { serde_json::from_str(body)? };
        // cargo lambda answers function errors with HTTP 500; AWS with 200 and a header.
        if status == 500 || function_error {
            let field = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            return Ok(Invocation::FunctionError {
                error_type: field("errorType"),
                error_message: field("errorMessage"),
            });
        }
        if status != 200 {
            bail!("invoking {function}: HTTP {status}: {body}");
        }
        Ok(Invocation::Ok(value))
    }
}
