//! Fixtures for the integration tests: one sandbox instance per test run, started on first
//! use, stopped by [`finish`] whatever the tests did.

use std::{future::Future, pin::Pin, sync::OnceLock};

use libtest_mimic::{Failed, Trial};
use switchyard_sandbox::Sandbox;
use tokio::runtime::Runtime;

/// Prefix of the tests' sandbox instances; the suffix is the test process's PID.
pub const INSTANCE_PREFIX: &str = "test-";

pub type TestFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
    })
}

static SANDBOX: OnceLock<Result<Sandbox, String>> = OnceLock::new();

/// The run's sandbox, brought up by the first test that needs it.
pub fn sandbox() -> Result<&'static Sandbox, Failed> {
    let result = SANDBOX.get_or_init(|| {
        if let Ok(reaped) = Sandbox::reap_orphans(INSTANCE_PREFIX) {
            for name in reaped {
                eprintln!("stopped sandbox {name} left behind by an earlier, killed test run");
            }
        }
        let instance = format!("{INSTANCE_PREFIX}{}", std::process::id());
        // The sandbox's world runs from the switchyard binary.
        cli_binary().map_err(|e| format!("{e:#}"))?;
        runtime().block_on(Sandbox::up(&instance)).map_err(|e| format!("sandbox up failed: {e:#}"))
    });
    result.as_ref().map_err(|e| Failed::from(e.as_str()))
}

/// Stops the run's sandbox if a test started it.
pub fn finish() -> Result<(), String> {
    match SANDBOX.get() {
        Some(Ok(sb)) => sb.down().map_err(|e| format!("{e:#}")),
        _ => Ok(()),
    }
}

/// A test on a sandbox of its own (for tests that change roles: promote, crash, fence),
/// started under `instance` and stopped whatever the test's outcome (its error reported first).
pub type OwnSandboxTest = for<'a> fn(&'a Sandbox) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

pub fn own_sandbox_trial(name: &str, instance: &'static str, test: OwnSandboxTest) -> Trial {
    Trial::test(name, move || {
        runtime()
            .block_on(async {
                cli_binary()?;
                let sb = Sandbox::up(&format!("{INSTANCE_PREFIX}{}-{instance}", std::process::id())).await?;
                let outcome = test(&sb).await;
                let stopped = sb.down();
                outcome?;
                stopped
            })
            .map_err(|e| Failed::from(format!("{e:#}")))
    })
    .with_kind("sandbox")
}

/// A test that needs the sandbox.
pub fn sandbox_trial(name: &str, test: fn(&'static Sandbox) -> TestFuture) -> Trial {
    Trial::test(name, move || {
        let sb = sandbox()?;
        runtime().block_on(test(sb)).map_err(|e| Failed::from(format!("{e:#}")))
    })
    .with_kind("sandbox")
}

/// A test that manages its own resources.
pub fn trial(name: &str, test: fn() -> TestFuture) -> Trial {
    Trial::test(name, move || runtime().block_on(test()).map_err(|e| Failed::from(format!("{e:#}"))))
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: std::time::Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            anyhow::bail!("{what}: not within {timeout:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The `switchyard` binary, as a user runs it (`cargo xtask test` builds it first; built here
/// when missing or stale, which cargo makes a no-op otherwise).
pub fn cli_binary() -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    let status = switchyard_sandbox::workspace::cargo()
        .args(["build", "--quiet", "--package", "switchyard-cli", "--bin", "switchyard"])
        .status()
        .context("building the switchyard CLI")?;
    anyhow::ensure!(status.success(), "cargo build of the switchyard CLI failed");
    Ok(switchyard_sandbox::workspace::target_dir().join("debug/switchyard"))
}

/// Runs `switchyard ARGS` against `sb`; returns its exit code, stdout and stderr.
pub fn run_cli(sb: &Sandbox, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let out = std::process::Command::new(cli_binary()?)
        .arg("--sandbox")
        .arg(&sb.instance)
        .args(args)
        .env_remove("SWITCHYARD_SANDBOX")
        .output()?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr)))
}

/// Arms `region` as the takeover target, as an operator does (`switchyard arm`): an
/// unplanned failover moves the writer only into an armed region.
pub fn arm(sb: &Sandbox, region: &str) -> anyhow::Result<()> {
    let (code, stdout, stderr) = run_cli(sb, &["arm", region, "--by", "test"])?;
    anyhow::ensure!(code == 0, "switchyard arm {region}: exit {code}: {stdout}{stderr}");
    Ok(())
}
