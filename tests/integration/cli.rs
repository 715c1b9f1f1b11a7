//! The `switchyard` CLI as a user runs it: the binary, against the run's sandbox.

use anyhow::ensure;
use libtest_mimic::Trial;
use serde_json::Value;
use switchyard_sandbox::Sandbox;
use switchyard_tests::{TestFuture, run_cli, sandbox_trial};

pub fn trials() -> Vec<Trial> {
    vec![sandbox_trial("cli::a_failed_execution_runs_its_catch_path_and_exits_1", |sb| Box::pin(caught(sb)))]
}

/// An execution whose first task fails must go through its Catch: EndFailed closes the
/// books and releases the lock, NotifyFailure pages, and the verdict names the function's
/// error. It used to end `FAILED TypeError` with none of that (the runner was told `null`
/// overrides and crashed in its retry logic).
fn caught(sb: &'static Sandbox) -> TestFuture {
    Box::pin(async move {
        let (code, stdout, stderr) =
            run_cli(sb, &["--output", "json", "execute", "failover", "us-east-2", "--input", r#"{"form":"a typo"}"#])?;
        let x: Value = serde_json::from_str(&stdout).map_err(|e| anyhow::anyhow!("{e}: {stdout}\n{stderr}"))?;
        ensure!(x["status"] == "FAILED", "{x:#}");
        ensure!(x["error"] == "InvalidInput", "the function's error is the verdict, not the runner's: {x:#}");
        let path: Vec<&str> = x["path"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        ensure!(path.contains(&"EndFailed"), "the Catch path ran: {path:?}");
        ensure!(path.iter().any(|s| s.starts_with("Notify")), "a page went out: {path:?}");
        ensure!(code == 1, "exit code {code}, expected 1 (failed)");
        Ok(())
    })
}
