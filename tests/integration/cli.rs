//! The `switchyard` CLI as a user runs it: the binary, against the run's sandbox.

use std::process::Command;

use anyhow::ensure;
use libtest_mimic::Trial;
use serde_json::Value;
use switchyard_sandbox::{
    Sandbox,
    workspace::{cargo, repo_root},
};
use switchyard_tests::{TestFuture, cli_binary, own_sandbox_trial, run_cli, sandbox_trial, trial};

pub fn trials() -> Vec<Trial> {
    vec![
        trial("cli::help_never_acts_and_unknown_flags_are_refused", || Box::pin(help_and_unknown_flags())),
        trial("cli::a_misspelt_synth_flag_writes_nothing", || Box::pin(misspelt_synth_flag())),
        sandbox_trial("cli::a_failed_execution_runs_its_catch_path_and_exits_1", |sb| Box::pin(caught(sb))),
        own_sandbox_trial("cli::crash_then_rejoin_makes_the_old_writer_a_replica_of_the_new", "crash-rejoin", |sb| {
            Box::pin(crash_and_rejoin(sb))
        }),
        own_sandbox_trial(
            "cli::switchover_and_failover_answer_with_a_summary_and_their_exit_code",
            "handover-cli",
            |sb| Box::pin(hand_over(sb)),
        ),
    ]
}

/// #19: `switchyard switchover|failover --to REGION`, as an operator types them: nothing to
/// do (3), an override without a reason (2), refused before anything changed (4), and a
/// switchover that streams one line per state and ends in a summary (0), in a few dozen
/// lines instead of the execution's whole history. The summary is JSON with `--output json`.
async fn hand_over(sb: &Sandbox) -> anyhow::Result<()> {
    let (code, out, err) = run_cli(sb, &["switchover", "--to", "us-east-1"])?;
    ensure!(code == 3 && err.contains("error: NothingToDo"), "switchover to the writer: exit {code}\n{out}{err}");
    let (code, out, err) = run_cli(sb, &["failover", "--to", "us-east-2", "--allow-data-loss"])?;
    ensure!(code == 2 && err.contains("--reason"), "an override without a reason: exit {code}\n{out}{err}");
    // Not armed: the automatic failover is refused in Begin, before anything changes.
    let (code, out, err) = run_cli(sb, &["failover", "--to", "us-east-2"])?;
    ensure!(code == 4 && err.contains("error: NotReady"), "an unarmed failover: exit {code}\n{out}{err}");
    ensure!(!out.contains("Fence"), "the refused failover went as far as the fence:\n{out}");

    // Two operators switch over at once: one does it, the other is told it is a duplicate.
    let second = {
        let mut cmd = Command::new(cli_binary()?);
        cmd.args(["--sandbox", &sb.instance, "switchover", "--to", "us-east-2", "--reason", "the second operator"]);
        cmd.env_remove("SWITCHYARD_SANDBOX").stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        cmd.spawn()?
    };
    let (code, out, err) = run_cli(sb, &["switchover", "--to", "us-east-2", "--reason", "#19 test"])?;
    let second = second.wait_with_output()?;
    let (second_code, second_err) = (second.status.code().unwrap_or(-1), String::from_utf8_lossy(&second.stderr));
    let (code, out, err, second_code, second_err) = if code == 0 {
        (code, out, err, second_code, second_err.into_owned())
    } else {
        (second_code, String::from_utf8_lossy(&second.stdout).into_owned(), second_err.into_owned(), code, err)
    };
    ensure!(code == 0, "switchover: exit {code}\n{out}{err}");
    ensure!(
        second_code == 3 && (second_err.contains("error: Duplicate") || second_err.contains("error: NothingToDo")),
        "the concurrent switchover: exit {second_code}: {second_err}"
    );
    for shown in
        ["Begin", "Fence", "Activate", "verdict       done (exit 0)", "writer        us-east-2 at epoch 2 (active)"]
    {
        ensure!(out.contains(shown), "the switchover's answer lacks {shown:?}:\n{out}");
    }
    ensure!(out.contains("RTO") && out.contains("old writer    us-east-1: fenced"), "{out}");
    ensure!(out.lines().count() <= 45, "{} lines:\n{out}", out.lines().count());
    // What the operator sees, in the test's log.
    eprintln!("\n{out}");

    // Back to us-east-1 is refused before anything changes: it is fenced, not a replica.
    let (code, out, err) = run_cli(sb, &["--output", "json", "switchover", "--to", "us-east-1"])?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| anyhow::anyhow!("not JSON ({e}): {out}{err}"))?;
    ensure!(
        code == 4 && v["verdict"] == "refused" && v["error"] == "NotReady" && v["writer"]["writer"] == "us-east-2",
        "failback without a rebuild: exit {code}: {v:#}"
    );
    after_the_switchover(sb).await
}

/// #19: what an operator reads after the switchover, through the read-only commands.
async fn after_the_switchover(sb: &Sandbox) -> anyhow::Result<()> {
    let json = |args: &[&str]| -> anyhow::Result<(i32, Value)> {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let (code, out, err) = run_cli(sb, &all)?;
        let v = serde_json::from_str(&out).map_err(|e| anyhow::anyhow!("{args:?}: not JSON ({e}): {out}{err}"))?;
        Ok((code, v))
    };
    // `sandbox status` reads the roles from the databases: the new writer, and the old one
    // fenced, not a replica. It used to measure us-east-1 -> us-east-2 and say UNHEALTHY.
    let (code, v) = json(&["sandbox", "status"])?;
    ensure!(
        code == 0 && v["replication"]["writer"] == "us-east-2" && v["replication"]["replica"].is_null(),
        "sandbox status after the switchover: exit {code}: {v:#}"
    );
    let (code, v) = json(&["status"])?;
    let regions = v["regions"].as_array().cloned().unwrap_or_default();
    let fenced = regions.iter().find(|r| r["region"] == "us-east-1").map(|r| r["database"]["status"]["fenced"].clone());
    ensure!(
        code == 0
            && v["agree"] == true
            && v["consistent"] == true
            && regions.iter().all(|r| r["claim"]["writer"] == "us-east-2" && r["claim"]["epoch"] == 2)
            && fenced == Some(Value::Bool(true))
            && v["dns"]["region"] == "us-east-2"
            // The last is the refused failback.
            && v["lastExecution"]["status"] == "failed"
            && v["lastExecution"]["to"] == "us-east-1",
        "status after the switchover: exit {code}: {v:#}"
    );
    let (code, v) = json(&["executions"])?;
    let all = v.as_array().cloned().unwrap_or_default();
    let done: Vec<&Value> = all.iter().filter(|t| t["status"] == "succeeded" && t["to"] == "us-east-2").collect();
    ensure!(code == 0 && all[0]["to"] == "us-east-1" && done.len() == 1, "executions: exit {code}: {v:#}");
    let execution = done[0]["execution"].as_str().unwrap_or_default().to_owned();
    let (code, out, err) = run_cli(sb, &["report", &execution])?;
    ensure!(
        code == 0 && out.contains("old writer    us-east-1: fenced (refuses writes)") && out.contains("traffic moved"),
        "report: exit {code}: {out}{err}"
    );
    let (code, _, err) = run_cli(sb, &["report", "no-such-execution"])?;
    ensure!(code == 4 && err.contains("no execution"), "report of nothing: exit {code}: {err}");

    // Readiness names the fenced old writer as the reason a failback is not ready.
    let (code, v) = json(&["readiness"])?;
    ensure!(
        code == 1 && v["candidate"] == "us-east-1" && v["notPassing"].to_string().contains("standby-replica"),
        "readiness with the old writer fenced: exit {code}: {v:#}"
    );
    // Functions by name, with a sample event by name.
    let (code, _, err) = run_cli(sb, &["invoke", "us-east-2", "no-such-function"])?;
    ensure!(code == 4 && err.contains("health-probe"), "an unknown function: exit {code}: {err}");
    let (code, _, err) = run_cli(sb, &["invoke", "us-east-2", "rds-promoter", "--event", "malformed-no-epoch"])?;
    ensure!(code == 2 && err.contains("InvalidInput"), "a malformed event: exit {code}: {err}");
    let (code, v) = json(&["invoke", "us-east-2", "health-probe", "--event", "on-demand-quick"])?;
    ensure!(code == 0 && v["verdicts"].is_object(), "the probe: exit {code}: {v:#}");

    // Rebuilt as a replica, the old writer replicates from the new one: the direction follows.
    let (code, out, err) = run_cli(sb, &["sandbox", "rejoin", "us-east-1"])?;
    ensure!(code == 0, "rejoin: exit {code}: {out}{err}");
    // (Its WAL receiver connects a moment after the server starts.)
    let v = switchyard_tests::eventually(std::time::Duration::from_secs(20), "the rebuilt replica streams", || async {
        let (code, v) = json(&["status"])?;
        Ok((code == 0 && v["replication"]["streaming"] == true).then_some(v))
    })
    .await?;
    ensure!(
        v["replication"]["writer"] == "us-east-2" && v["replication"]["replica"] == "us-east-1",
        "status after the rejoin: {v:#}"
    );
    // The sample readiness request names no candidate: it follows the writer. (Not armed;
    // the lag rule may also wait for the rebuilt replica's first replayed commit.)
    let (code, v) = json(&["invoke", "us-east-1", "readiness-tester", "--event", "on-demand"])?;
    let not_passing = v["notPassing"].to_string();
    ensure!(
        code == 0
            && v["candidate"] == "us-east-1"
            && not_passing.contains("arming")
            && !not_passing.contains("standby-replica"),
        "readiness of the rebuilt replica: exit {code}: {v:#}"
    );
    Ok(())
}

/// `sandbox crash` takes a region's database down hard; once the other region writes,
/// `sandbox rejoin` rebuilds the crashed one as its streaming replica. Rejoining the writer to
/// a replica is refused.
async fn crash_and_rejoin(sb: &Sandbox) -> anyhow::Result<()> {
    use switchyard_core::{
        DatabaseRole,
        ports::{DatabasePromoter, ReplicationMonitor, StepState},
    };
    let (code, stdout, stderr) = run_cli(sb, &["sandbox", "crash", "us-east-1", "--database"])?;
    ensure!(code == 0, "crash: exit {code}: {stdout}{stderr}");
    ensure!(sb.node("us-east-1")?.replication_status().await.is_err(), "us-east-1 still answers");
    let (code, _, _) = run_cli(sb, &["sandbox", "crash", "us-east-1"])?;
    ensure!(code == 3, "a second crash has nothing to do: exit {code}");
    // Until us-east-2 writes there is nothing to rejoin.
    let (code, _, stderr) = run_cli(sb, &["sandbox", "rejoin", "us-east-1"])?;
    ensure!(code == 4 && stderr.contains("does not accept writes"), "exit {code}: {stderr}");
    let east2 = sb.node("us-east-2")?;
    let mut promoted = false;
    for _ in 0..30 {
        if east2.promote().await.map_err(anyhow::Error::msg)? == StepState::Done {
            promoted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    ensure!(promoted, "us-east-2 never finished promoting");
    let (code, stdout, stderr) = run_cli(sb, &["sandbox", "rejoin", "us-east-1"])?;
    ensure!(code == 0, "rejoin: exit {code}: {stdout}{stderr}");
    let status = sb.node("us-east-1")?.replication_status().await.map_err(anyhow::Error::msg)?;
    ensure!(status.role == DatabaseRole::Replica, "us-east-1 after rejoin: {status:?}");
    switchyard_sandbox::postgres::canary(&east2, &sb.node("us-east-1")?, std::time::Duration::from_secs(20)).await?;
    // The writer's other parts crash and come back; its database is never replaced.
    let api = sb.world.api_url(&"us-east-2".parse()?, &"us-east-2".parse()?).unwrap_or_default();
    let port: u16 = api.rsplit(':').next().unwrap_or_default().parse()?;
    let (code, stdout, stderr) = run_cli(sb, &["sandbox", "crash", "us-east-2", "--api", "--functions"])?;
    ensure!(
        code == 0 && stdout.contains("order API") && stdout.contains("functions"),
        "crash parts: {code} {stdout}{stderr}"
    );
    ensure!(
        switchyard_sandbox::world::http::call(port, "GET", "/health", None).await.is_err(),
        "a crashed API answered"
    );
    ensure!(!switchyard_sandbox::process::is_alive(sb.lambda("us-east-2")?.pid), "crashed functions still run");
    let (code, stdout, stderr) = run_cli(sb, &["sandbox", "rejoin", "us-east-2"])?;
    ensure!(code == 0 && stdout.contains("functions restarted"), "rejoin parts: {code} {stdout}{stderr}");
    ensure!(switchyard_sandbox::world::http::call(port, "GET", "/health", None).await?.0 == 200);
    ensure!(sb.node("us-east-2")?.accepts_writes().await.unwrap_or(false), "the writer's database was replaced");
    let (code, stdout, stderr) = run_cli(sb, &["sandbox", "rejoin", "us-east-2"])?;
    ensure!(code == 3, "rejoining a whole writer: exit {code}: {stdout}{stderr}");
    Ok(())
}

fn run(cmd: &mut Command) -> anyhow::Result<(i32, String, String)> {
    let out = cmd.env_remove("SWITCHYARD_SANDBOX").output()?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr)))
}

/// As a user types them, through the binary: `--help` prints help and starts nothing (it
/// used to start a sandbox, or run the drill), and a misspelt flag is a usage error that
/// names it (it used to be ignored, acting on the `default` sandbox).
async fn help_and_unknown_flags() -> anyhow::Result<()> {
    let bin = cli_binary()?;
    let name = format!("help-{}", std::process::id());
    let dir = repo_root().join("target/sandbox").join(&name);
    // Every command has --help, which never acts, and refuses a flag it does not know.
    let commands: &[&[&str]] = &[
        &["status"],
        &["sandbox", "up"],
        &["sandbox", "down"],
        &["sandbox", "status"],
        &["sandbox", "env"],
        &["switchover"],
        &["failover"],
        &["execute"],
        &["readiness"],
        &["executions"],
        &["report"],
        &["invoke"],
        &["arm"],
        &["disarm"],
        &["drill"],
    ];
    for command in commands {
        let (code, stdout, _) = run(Command::new(&bin).args(["--sandbox", &name]).args(*command).arg("--help"))?;
        ensure!(
            code == 0 && stdout.contains("Usage:") && stdout.contains("Exit codes:"),
            "{command:?} --help: exit {code}, {stdout}"
        );
        ensure!(!dir.exists(), "{command:?} --help started sandbox {name}");
        let (code, _, stderr) = run(Command::new(&bin).args(*command).arg("--frobnicate"))?;
        ensure!(code == 2 && stderr.contains("--frobnicate"), "{command:?} --frobnicate: exit {code}, {stderr}");
    }
    // A sandbox that is not up: JSON stays JSON on stdout (exit 4, the error on stderr), and
    // `eval "$(switchyard sandbox env)"` fails instead of silently exporting nothing.
    let (code, stdout, stderr) = run(Command::new(&bin).args(["--sandbox", &name, "--output", "json", "status"]))?;
    let v: Value = serde_json::from_str(&stdout).map_err(|e| anyhow::anyhow!("not JSON ({e}): {stdout}"))?;
    ensure!(
        code == 4 && v["up"] == false && stderr.contains("is not up"),
        "status when down: exit {code}: {v} {stderr}"
    );
    let eval = format!("eval \"$('{}' --sandbox {name} sandbox env)\"", bin.display());
    let (code, _, stderr) = run(Command::new("bash").args(["-c", &eval]))?;
    ensure!(code != 0 && stderr.contains("is not up"), "eval of sandbox env when down: exit {code}: {stderr}");
    let (code, _, stderr) = run(Command::new(&bin).args(["sandbox", "status", "--instnace", "ux"]))?;
    ensure!(code == 2 && stderr.contains("--instnace"), "exit {code}: {stderr}");
    let (code, _, stderr) = run(Command::new(&bin).args(["sandbox", "stauts"]))?;
    ensure!(code == 2 && stderr.contains("status"), "no did-you-mean, exit {code}: {stderr}");
    // `cargo xtask sandbox …` forwards untouched, exit code included.
    let (code, stdout, _) = run(cargo().args(["xtask", "sandbox", "up", "--help", "--sandbox", &name]))?;
    ensure!(code == 0 && stdout.contains("Usage:"), "xtask forward: exit {code}, {stdout}");
    ensure!(!dir.exists(), "cargo xtask sandbox up --help started sandbox {name}");
    let (code, _, _) = run(cargo().args(["xtask", "sandbox", "stauts"]))?;
    ensure!(code == 2, "xtask forwards the CLI's exit code: {code}");
    Ok(())
}

/// `cargo xtask synth --out DIR --enviroment prod` used to write the sandbox's templates into
/// DIR with exit 0 (the misspelt flag ignored): a wrong deploy artefact.
async fn misspelt_synth_flag() -> anyhow::Result<()> {
    let out = std::env::temp_dir().join(format!("switchyard-synth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let (code, _, stderr) = run(cargo().args(["xtask", "synth", "--out"]).arg(&out).args(["--enviroment", "prod"]))?;
    let written = out.exists();
    let _ = std::fs::remove_dir_all(&out);
    ensure!(code == 2, "exit {code}: {stderr}");
    ensure!(stderr.contains("--enviroment") && stderr.contains("--environment"), "{stderr}");
    ensure!(!written, "templates written despite the usage error");
    Ok(())
}

/// An execution whose first task fails must go through its Catch: EndFailed closes the
/// ledger entry and releases the lock, NotifyFailure pages, and the verdict names the function's
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
