//! `switchyard sandbox up|down|status|list|env|crash|rejoin|partition|heal|sicken` (and the
//! hidden `world`, the daemon `up` starts).

use anyhow::Result;
use switchyard_core::Region;
use switchyard_sandbox::{
    Sandbox, instance, postgres,
    world::{self, CutMode, Links, Shape},
};

use crate::{BadValue, Exit, Global, Output, Refused, SandboxCommand, loaded_sandbox, not_up, refuse_aws_flags};

pub async fn run(g: &Global, command: SandboxCommand) -> Result<Exit> {
    refuse_aws_flags(g)?;
    let name = g.sandbox();
    let name = name.as_str();
    match command {
        SandboxCommand::Up => {
            // What ran before: if `up` finds it all running, it says so instead of starting.
            let before = Sandbox::load(name)?.map(|p| p.live_pids());
            // Progress on stderr (stdout stays the answer, JSON with --output json).
            let sb = Sandbox::up_reporting(name, &|line| eprintln!("  {line}")).await?;
            if before.is_some_and(|pids| !pids.is_empty() && pids == sb.live_pids()) {
                let said = format!(
                    "sandbox {name:?} already up since {}: nothing started",
                    sb.up_since.as_deref().unwrap_or("an earlier `up`")
                );
                match g.output {
                    Output::Table => println!("{said}"),
                    Output::Json => eprintln!("  {said}"),
                }
            }
            let status = sb.status().await;
            print_status(g.output, &status)?;
            if g.output == Output::Table {
                println!("endpoints: {}", sb.dir.join("sandbox.json").display());
            }
            Ok(if status.healthy { Exit::Done } else { Exit::Failed })
        }
        SandboxCommand::Status => {
            let Some(sb) = Sandbox::load(name)?.filter(Sandbox::is_up) else {
                if g.output == Output::Json {
                    println!("{}", serde_json::json!({ "instance": name, "up": false }));
                }
                return Err(Refused(not_up(name)).into());
            };
            let status = sb.status().await;
            print_status(g.output, &status)?;
            Ok(if status.healthy { Exit::Done } else { Exit::Failed })
        }
        SandboxCommand::Down => {
            let (exit, said) = match Sandbox::load(name)? {
                Some(sb) => {
                    sb.down()?;
                    (Exit::Done, "stopped; no process or port left")
                }
                None if instance::stop_interrupted(name)? => {
                    (Exit::Done, "stopped what an interrupted `up` had started")
                }
                None => (Exit::NothingToDo, "is not up; nothing to stop"),
            };
            match g.output {
                Output::Json => println!("{}", serde_json::json!({ "instance": name, "stopped": exit == Exit::Done })),
                Output::Table => println!("sandbox {name:?} {said}"),
            }
            Ok(exit)
        }
        SandboxCommand::List => {
            let all = instance::list();
            match g.output {
                Output::Json => {
                    let rows: Vec<_> =
                        all.iter().map(|(n, up)| serde_json::json!({ "instance": n, "up": up })).collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                }
                Output::Table if all.is_empty() => println!("no sandbox (start one: switchyard sandbox up)"),
                Output::Table => {
                    for (n, up) in &all {
                        println!(
                            "{n:<24} {}",
                            if *up { "up" } else { "down (files left behind: `sandbox down` removes them)" }
                        );
                    }
                }
            }
            Ok(Exit::Done)
        }
        SandboxCommand::Crash { region, database, api, functions } => {
            let sb = loaded_sandbox(g)?;
            let data_dir = &sb.region(&region).map_err(|e| Refused(e.to_string()))?.data_dir;
            let database = database || !(api || functions);
            let mut crashed = Vec::new();
            if database && postgres::postmaster_pid(data_dir).is_some() {
                sb.crash_database(&region)?;
                crashed.push("its database (immediate shutdown: no checkpoint, nothing more sent to the replica)");
            }
            if api {
                sb.set_api(&region, false).await?;
                crashed.push("its order API (connections refused)");
            }
            if functions && sb.crash_functions(&region)? {
                crashed.push("its functions (the Lambda service stopped)");
            }
            if crashed.is_empty() {
                println!("nothing of {region} was running; nothing to crash");
                return Ok(Exit::NothingToDo);
            }
            println!("crashed {region}: {}", crashed.join("; "));
            Ok(Exit::Done)
        }
        SandboxCommand::Rejoin { region } => {
            let mut sb = loaded_sandbox(g)?;
            sb.region(&region).map_err(|e| Refused(e.to_string()))?;
            let d = sb.deployment();
            let writer = d.regions.iter().find(|r| r.as_str() != region).map(|r| r.to_string()).unwrap_or_default();
            let other_writes = sb.node(&writer)?.accepts_writes().await.unwrap_or(false);
            let self_writes = sb.node(&region)?.accepts_writes().await.unwrap_or(false);
            // Follow only a writer that writes: never replace a database with a copy of a
            // replica, nor pick between two writers.
            let rebuild = match (other_writes, self_writes) {
                (true, false) => true,
                (false, true) => false,
                (true, true) => {
                    return Err(Refused(format!(
                        "both {region} and {writer} accept writes: decide which one writes (fence the other) before a rejoin"
                    ))
                    .into());
                }
                (false, false) => {
                    return Err(Refused(format!(
                        "{writer} does not accept writes: {region} can rejoin only a writer (promote {writer} first)"
                    ))
                    .into());
                }
            };
            let api_was_up = sb.set_api(&region, true).await?;
            let restarted = sb.restart_functions(&region)?;
            if rebuild {
                sb.rejoin_as_replica(&region, &writer)?;
                println!("{region} rebuilt as a streaming replica of {writer}");
            }
            if !api_was_up {
                println!("{region}'s order API serves again");
            }
            if restarted {
                println!("{region}'s functions restarted");
            }
            if !rebuild && api_was_up && !restarted {
                println!("{region} writes, and its order API and functions run: nothing to rejoin");
                return Ok(Exit::NothingToDo);
            }
            Ok(Exit::Done)
        }
        SandboxCommand::Partition(args) => {
            let sb = loaded_sandbox(g)?;
            let mode: CutMode = args.mode.parse().map_err(|e: String| BadValue(e))?;
            let region = |s: &str| s.parse::<Region>().map_err(|e| BadValue(format!("{s:?}: {e}")));
            let mut links = world::control::links(sb.world.control_port).await?;
            let mut shapes = Vec::new();
            if let Some(r) = &args.isolate {
                shapes.push(Shape::Isolate(region(r)?));
            }
            if let Some(pair) = &args.link {
                let (a, b) = pair.split_once(':').ok_or_else(|| BadValue(format!("--link {pair}: expected A:B")))?;
                shapes.push(Shape::Link(region(a)?, region(b)?));
            }
            if args.witness_down {
                shapes.push(Shape::WitnessDown);
            }
            if let Some(cut) = &args.service {
                let (r, service) =
                    cut.split_once(':').ok_or_else(|| BadValue(format!("--service {cut}: expected REGION:SERVICE")))?;
                shapes.push(Shape::Service(region(r)?, service.to_owned()));
            }
            for shape in &shapes {
                links.apply(shape, mode, &sb.world.places, sb.world.witness()).map_err(Refused)?;
            }
            if let Some(ms) = args.delay_ms {
                links.delay_ms = ms;
            }
            let links = world::control::set_links(sb.world.control_port, &links).await?;
            print_links(g.output, &sb, &links)?;
            Ok(Exit::Done)
        }
        SandboxCommand::Heal => {
            let sb = loaded_sandbox(g)?;
            let links = world::control::set_links(sb.world.control_port, &Links::default()).await?;
            print_links(g.output, &sb, &links)?;
            Ok(Exit::Done)
        }
        SandboxCommand::Sicken { region, fault, undo } => {
            let sb = loaded_sandbox(g)?;
            sb.region(&region).map_err(|e| Refused(e.to_string()))?;
            match (fault, undo) {
                (_, true) => {
                    sb.cure_database(&region).await?;
                    println!("{region}'s database cured");
                }
                (Some(fault), false) => {
                    let sickness: postgres::Sickness = fault.parse().map_err(|e: String| BadValue(e))?;
                    sb.sicken_database(&region, sickness).await.map_err(|e| Refused(format!("{e:#}")))?;
                    println!(
                        "{region}'s database is sick: {fault} (cure it: switchyard sandbox sicken {region} --undo)"
                    );
                }
                (None, false) => return Err(BadValue("give --fault KIND or --undo".into()).into()),
            }
            Ok(Exit::Done)
        }
        SandboxCommand::Dns => {
            let sb = loaded_sandbox(g)?;
            let answer = switchyard_sandbox::dns::answer(&sb).await?;
            match g.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&answer)?),
                Output::Table => print!("{answer}"),
            }
            Ok(Exit::Done)
        }
        SandboxCommand::Clock { action, compression } => {
            let sb = loaded_sandbox(g)?;
            let port = sb.world.control_port;
            let report = match action.as_str() {
                "start" | "stop" => {
                    let settings =
                        world::clock::ClockSettings { running: action == "start", compression: f64::from(compression) };
                    world::control::set_clock(port, &settings).await.map_err(|e| BadValue(format!("{e:#}")))?
                }
                "tick" => serde_json::json!({ "changes": world::control::tick(port).await? }),
                _ => world::control::clock(port).await?,
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(Exit::Done)
        }
        SandboxCommand::World { plan } => {
            switchyard_sandbox::daemon::serve(&plan).await?;
            Ok(Exit::Done)
        }
        SandboxCommand::Env => {
            // Refused (stderr, exit 4) when not up. Inside `eval "$(…)"` the exit code is lost
            // and an empty output exports nothing, silently: so when stdout is not a terminal
            // the answer is a shell line that fails, and `eval` (and `set -e`) fails with it.
            let sb = loaded_sandbox(g).inspect_err(|_| {
                use std::io::IsTerminal;
                if !std::io::stdout().is_terminal() {
                    println!("# switchyard: sandbox {name:?} is not up (see the error above)\nfalse");
                }
            })?;
            print!("{}", sb.shell_env());
            Ok(Exit::Done)
        }
    }
}

fn print_status(output: Output, status: &instance::SandboxStatus) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(status)?),
        Output::Table => print!("{status}"),
    }
    Ok(())
}

/// Prints every link of the three places: open, or cut and how.
fn print_links(output: Output, sb: &Sandbox, links: &Links) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(links)?),
        Output::Table => {
            let places = &sb.world.places;
            for (i, a) in places.iter().enumerate() {
                for b in &places[i + 1..] {
                    let state = links.between(a, b).map_or("open", CutMode::as_str);
                    println!("{a:<10} ↔ {b:<10} {state}");
                }
            }
            for c in &links.services {
                println!("{:<10} {:<23} {}", c.region, c.service, c.mode.as_str());
            }
            for r in &links.write_conflicts {
                println!("{r:<10} claim-table writes refused: ReplicatedWriteConflictException");
            }
            println!("cross-region delay: {} ms", links.delay_ms);
            for r in places {
                let majority = links.reaches_majority(r, places);
                println!("{r:<10} {}", if majority { "reaches a majority" } else { "cut off from the majority" });
            }
        }
    }
    Ok(())
}
