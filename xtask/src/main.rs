//! `cargo xtask …`: the sandbox, the drill and the test command. See README.md.

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use xtask::{repo_root, sandbox::Sandbox, tools};

const USAGE: &str = "\
usage: cargo xtask <command>

  drill                     run the main job in a fresh sandbox (today: the sandbox smoke
                            check; the failover drill arrives with the state machines)
  test [ARGS…]              install what the tests need, then run the whole test suite
                            (ARGS go to `cargo test`)
  bench consumer [--orders N] [--rounds N]  orders/s of one order-consumer against the
                            sandbox's PostgreSQL, beside a plain batched INSERT baseline
  sandbox up     [--instance NAME]          start (or keep) the two-region sandbox
  sandbox status [--instance NAME] [--json] health, replication lag, canary row
  sandbox down   [--instance NAME]          stop every process it started, remove its files
  sandbox env    [--instance NAME]          shell `export` lines for the sandbox's endpoints
  synth [--check]           emit the CloudFormation templates into infra/templates/ (the
                            sandbox model, both DNS modes); --check only says if stale
  synth --out DIR [--environment NAME] [--domain NAME] [--dns-mode health-check|records]
        [--primary REGION] [--standby REGION] [--rpo-seconds N]
                            emit the three templates of your deployment into DIR
  package [--ca-bundle PEM] the five release packages for AWS (cargo lambda build --release
                            --arm64 --output-format zip), with their sizes; PEM (the RDS CA
                            bundle) goes beside each binary
  execute failover|switchover REGION [--input JSON] [--name NAME] [--instance NAME]
                            run a state machine of REGION in the sandbox (real waits and
                            retries), print its history and output
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(&args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn flag_value(args: &[String], flag: &str) -> Result<Option<String>> {
    match args.iter().position(|a| a == flag) {
        None => Ok(None),
        Some(i) => args.get(i + 1).cloned().map(Some).with_context(|| format!("{flag} needs a value")),
    }
}

async fn dispatch(args: &[String]) -> Result<ExitCode> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["sandbox", sub, rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            let instance = flag_value(&rest, "--instance")?.unwrap_or_else(|| "default".to_owned());
            sandbox(sub, &instance, rest.iter().any(|a| a == "--json")).await
        }
        ["test", rest @ ..] => test(rest),
        ["execute", machine @ ("failover" | "switchover"), region, rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            let instance = flag_value(&rest, "--instance")?.unwrap_or_else(|| "default".to_owned());
            let sb = Sandbox::load(&instance)?.with_context(|| format!("sandbox {instance:?} is not up"))?;
            let input: serde_json::Value = match flag_value(&rest, "--input")? {
                Some(text) => serde_json::from_str(&text).context("--input is not JSON")?,
                None => serde_json::json!({ "trigger": "manual" }),
            };
            let name = flag_value(&rest, "--name")?
                .unwrap_or_else(|| format!("{machine}-{}", switchyard_core::order::Timestamp::now().unix_millis()));
            let machine: &'static str = if *machine == "failover" { "failover" } else { "switchover" };
            let mut start = xtask::stepfunctions::Start::new(machine, region, name, input)?;
            (start.wait_ms, start.retry_ms) = (None, None);
            let x = xtask::stepfunctions::execute(&sb, &start).await?;
            println!("{}", x.history());
            if let Some(output) = &x.output {
                println!("{}", serde_json::to_string_pretty(output)?);
            }
            Ok(if x.succeeded() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ["drill", ..] => drill().await,
        ["package", rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            let ca = flag_value(&rest, "--ca-bundle")?.map(std::path::PathBuf::from);
            if ca.is_none() {
                eprintln!(
                    "note: no --ca-bundle: the functions that reach Aurora will refuse to connect until \
                     {} exists in their package",
                    switchyard_infra::DB_CA_BUNDLE_PATH
                );
            }
            for (function, zip, size) in xtask::package::release(ca.as_deref())? {
                println!("{function:<17} {:>8.1} KiB  {}", size as f64 / 1024.0, zip.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        ["synth", rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            match flag_value(&rest, "--out")? {
                None => xtask::synth::reference(rest.iter().any(|a| a == "--check"))?,
                Some(out) => {
                    let d = deployment_from_flags(&rest)?;
                    for path in xtask::synth::write(&d, std::path::Path::new(&out))? {
                        println!("{}", path.display());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ["bench", "consumer", rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            let number = |flag: &str, default: usize| -> Result<usize> {
                flag_value(&rest, flag)?.map_or(Ok(default), |v| v.parse().with_context(|| format!("{flag} {v}")))
            };
            bench_consumer(number("--orders", 1000)?, number("--rounds", 3)?).await
        }
        ["help" | "--help" | "-h"] | [] => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprint!("unknown command {:?}\n\n{USAGE}", args.join(" "));
            Ok(ExitCode::from(2))
        }
    }
}

/// A deployment: the sandbox's model with what the flags change. Unknown regions, environment
/// names and DNS modes are refused by name.
fn deployment_from_flags(args: &[String]) -> Result<switchyard_infra::Deployment> {
    let mut d = switchyard_infra::Deployment::sandbox();
    let invalid = |flag: &str, e: String| anyhow::anyhow!("{flag}: {e}");
    if let Some(v) = flag_value(args, "--environment")? {
        d.environment = v.parse().map_err(|e: String| invalid("--environment", e))?;
    }
    if let Some(v) = flag_value(args, "--domain")? {
        d.domain = v.trim_end_matches('.').to_owned();
    }
    if let Some(v) = flag_value(args, "--dns-mode")? {
        d.dns_mode = v.parse().map_err(|e: String| invalid("--dns-mode", e))?;
    }
    let region = |flag: &str| -> Result<Option<switchyard_core::Region>> {
        flag_value(args, flag)?.map(|v| v.parse().map_err(|e| invalid(flag, format!("{e}")))).transpose()
    };
    if region("--primary")?.is_some() || region("--standby")?.is_some() {
        let primary = region("--primary")?.unwrap_or_else(|| d.regions.primary.clone());
        let standby = region("--standby")?.unwrap_or_else(|| d.regions.standby.clone());
        d.regions =
            switchyard_core::RegionPair::new(primary, standby).map_err(|e| invalid("--standby", format!("{e}")))?;
    }
    if let Some(v) = flag_value(args, "--rpo-seconds")? {
        let secs: u64 = v.parse().map_err(|_| invalid("--rpo-seconds", format!("{v:?} is not a number of seconds")))?;
        d.rpo_budget = switchyard_core::RpoBudget(std::time::Duration::from_secs(secs));
    }
    Ok(d)
}

async fn sandbox(sub: &str, instance: &str, json: bool) -> Result<ExitCode> {
    match sub {
        "up" => {
            let sb = Sandbox::up(instance).await?;
            let status = sb.status().await;
            print!("{status}");
            println!("endpoints: {}", sb.dir.join("sandbox.json").display());
            Ok(if status.healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        "status" => {
            let Some(sb) = Sandbox::load(instance)? else {
                println!("sandbox {instance:?} is not up (cargo xtask sandbox up)");
                return Ok(ExitCode::FAILURE);
            };
            let status = sb.status().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{status}");
            }
            Ok(if status.healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        "down" => {
            match Sandbox::load(instance)? {
                Some(sb) => {
                    sb.down()?;
                    println!("sandbox {instance:?} stopped; no process or port left");
                }
                None if xtask::sandbox::stop_interrupted(instance)? => {
                    println!("sandbox {instance:?}: stopped what an interrupted `up` had started")
                }
                None => println!("sandbox {instance:?} is not up"),
            }
            Ok(ExitCode::SUCCESS)
        }
        "env" => {
            let sb = Sandbox::load(instance)?.with_context(|| format!("sandbox {instance:?} is not up"))?;
            print!("{}", sb.shell_env());
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown sandbox command {other:?}\n\n{USAGE}"),
    }
}

/// The test command: tools first (so the first test does not pay for a pip install inside a
/// timeout), then the whole workspace's tests.
fn test(extra: &[&str]) -> Result<ExitCode> {
    tools::ensure_python_tools()?;
    tools::postgres_bindir()?;
    xtask::stepfunctions::ensure_node_tools()?;
    tools::ensure_cfn_guard()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
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
    let out = xtask::repo_root().join("target/bench");
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

/// The main job. Until the failover state machine lands it honestly runs the sandbox smoke
/// check: both regions up, replication proven with a row, orders fanned out to both queues.
async fn drill() -> Result<ExitCode> {
    println!("switchyard drill — sandbox smoke check (the failover drill itself is not built yet)\n");
    let sb = Sandbox::up("drill").await?;
    let outcome = async {
        let status = sb.status().await;
        print!("{status}");
        if !status.healthy {
            bail!("sandbox unhealthy");
        }
        let body = format!(r#"{{"smoke":"drill-{}"}}"#, std::process::id());
        for (region, took) in xtask::sandbox::smoke::fan_out(&sb, "us-east-1", &body).await? {
            println!(
                "  ok   order published in us-east-1 reached {region}'s queue after {:.0} ms",
                took.as_secs_f64() * 1000.0
            );
        }
        Ok(())
    }
    .await;
    let stopped = sb.down();
    outcome?;
    stopped?;
    println!("\nsmoke check passed; sandbox stopped, nothing left running");
    Ok(ExitCode::SUCCESS)
}
