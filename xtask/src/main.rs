//! `cargo xtask …`: developer automation (test, synth, package, bench). `drill` and `sandbox`
//! are forwarded untouched to the `switchyard` CLI. See `cargo xtask --help`.

use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use switchyard_sandbox::{runner, tools, workspace::repo_root};
use xtask::cli::{self, Bench, SynthArgs};

fn main() -> ExitCode {
    let parsed = match cli::parse(std::env::args_os()) {
        Ok(x) => x,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(parsed.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: cli::Command) -> Result<ExitCode> {
    match command {
        cli::Command::Test { args } => test(&args),
        cli::Command::Drill { args } => forward("drill", &args),
        cli::Command::Sandbox { args } => forward("sandbox", &args),
        cli::Command::Package { ca_bundle } => {
            if ca_bundle.is_none() {
                eprintln!(
                    "note: no --ca-bundle: the functions that reach Aurora will refuse to connect until \
                     {} exists in their package",
                    switchyard_model::DB_CA_BUNDLE_PATH
                );
            }
            for (function, zip, size) in xtask::package::release(ca_bundle.as_deref())? {
                println!("{function:<17} {:>8.1} KiB  {}", size as f64 / 1024.0, zip.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Synth(args) => {
            match &args.out {
                None => xtask::synth::reference(args.check)?,
                Some(out) => {
                    let d = deployment_from_flags(&args)?;
                    for path in xtask::synth::write(&d, out)? {
                        println!("{}", path.display());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Bench(Bench::Consumer { orders, rounds }) => bench_consumer(orders, rounds).await,
    }
}

/// `cargo xtask drill|sandbox ARGS` is `switchyard drill|sandbox ARGS`, built and run by cargo.
fn forward(command: &str, args: &[String]) -> Result<ExitCode> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .current_dir(repo_root())
        .args(["run", "--quiet", "--package", "switchyard-cli", "--bin", "switchyard", "--", command])
        .args(args)
        .status()
        .context("running the switchyard CLI")?;
    Ok(status.code().and_then(|c| u8::try_from(c).ok()).map_or(ExitCode::FAILURE, ExitCode::from))
}

/// A deployment: the sandbox's model with what the flags change. Unknown regions, environment
/// names and DNS modes are refused by name.
fn deployment_from_flags(args: &SynthArgs) -> Result<switchyard_model::Deployment> {
    let mut d = switchyard_model::Deployment::sandbox();
    let invalid = |flag: &str, e: String| anyhow::anyhow!("{flag}: {e}");
    if let Some(v) = &args.environment {
        d.environment = v.parse().map_err(|e: String| invalid("--environment", e))?;
    }
    if let Some(v) = &args.domain {
        d.domain = v.trim_end_matches('.').to_owned();
    }
    if let Some(v) = &args.dns_mode {
        d.dns_mode = v.parse().map_err(|e: String| invalid("--dns-mode", e))?;
    }
    let region = |flag: &str, v: &Option<String>| -> Result<Option<switchyard_core::Region>> {
        v.as_deref().map(|v| v.parse().map_err(|e| invalid(flag, format!("{e}")))).transpose()
    };
    let (primary, standby) = (region("--primary", &args.primary)?, region("--standby", &args.standby)?);
    if primary.is_some() || standby.is_some() {
        let primary = primary.unwrap_or_else(|| d.regions.primary.clone());
        let standby = standby.unwrap_or_else(|| d.regions.standby.clone());
        d.regions =
            switchyard_core::RegionPair::new(primary, standby).map_err(|e| invalid("--standby", format!("{e}")))?;
    }
    if let Some(v) = &args.rpo_seconds {
        let secs: u64 = v.parse().map_err(|_| invalid("--rpo-seconds", format!("{v:?} is not a number of seconds")))?;
        d.rpo_budget = switchyard_core::RpoBudget(std::time::Duration::from_secs(secs));
    }
    Ok(d)
}

/// The test command: tools first (so the first test does not pay for a pip install inside a
/// timeout), then the whole workspace's tests.
fn test(extra: &[String]) -> Result<ExitCode> {
    tools::ensure_python_tools()?;
    tools::postgres_bindir()?;
    runner::ensure_node_tools()?;
    tools::ensure_cfn_guard()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    // The CLI binary the tests run as a user would (the same build `cargo xtask sandbox`
    // forwards to).
    let built = Command::new(&cargo)
        .current_dir(repo_root())
        .args(["build", "--quiet", "--package", "switchyard-cli", "--bin", "switchyard"])
        .status()
        .context("building the switchyard CLI")?;
    if !built.success() {
        return Ok(ExitCode::FAILURE);
    }
    let status = Command::new(cargo)
        .current_dir(repo_root())
        // All features: every SDK adapter of switchyard-aws is tested, linked by a function or not.
        .args(["test", "--workspace", "--all-features"])
        .args(extra)
        .status()
        .context("running cargo test")?;
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn bench_consumer(orders: usize, rounds: usize) -> Result<ExitCode> {
    println!("bench consumer: {rounds} rounds of {orders} orders, batches of 10, one consumer process\n");
    let report = xtask::bench::consumer(orders, rounds).await?;
    let out = repo_root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("consumer.json"), serde_json::to_string_pretty(&report)?)?;
    println!(
        "\nmedian: consumer {:.1} orders/s, baseline (plain batched INSERT, same server) {:.1} orders/s\n\
         ratio consumer/baseline: {:.2}\nheadroom over the platform's need ({:.1} orders/s): {:.0}x\n\
         per invocation: {:.1} ms for 10 orders, {:.1} ms with no record (Invoke API + claim reads)\n\
         consumer build: {}\nreport: target/bench/consumer.json",
        report.consumer_median,
        report.baseline_median,
        report.ratio,
        xtask::bench::NEED_ORDERS_PER_SECOND,
        report.headroom,
        report.batch_invocation_ms,
        report.empty_invocation_ms,
        report.consumer_build
    );
    Ok(ExitCode::SUCCESS)
}
