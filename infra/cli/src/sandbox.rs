//! `switchyard sandbox up|down|status|list|env`.

use anyhow::Result;
use switchyard_sandbox::{Sandbox, instance, postgres};

use crate::{Exit, Global, Output, Refused, SandboxCommand, loaded_sandbox, not_up, refuse_aws_flags};

pub async fn run(g: &Global, command: SandboxCommand) -> Result<Exit> {
    refuse_aws_flags(g)?;
    let name = g.sandbox();
    let name = name.as_str();
    match command {
        SandboxCommand::Up => {
            let sb = Sandbox::up(name).await?;
            let status = sb.status().await;
            print_status(g.output, &status)?;
            if g.output == Output::Table {
                println!("endpoints: {}", sb.dir.join("sandbox.json").display());
            }
            Ok(if status.healthy { Exit::Done } else { Exit::Failed })
        }
        SandboxCommand::Status => {
            let Some(sb) = Sandbox::load(name)? else {
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
        SandboxCommand::Crash { region, database: _ } => {
            let sb = loaded_sandbox(g)?;
            let data_dir = &sb.region(&region).map_err(|e| Refused(e.to_string()))?.data_dir;
            if postgres::postmaster_pid(data_dir).is_none() {
                println!("{region}'s database is not running; nothing to crash");
                return Ok(Exit::NothingToDo);
            }
            sb.crash_database(&region)?;
            println!(
                "crashed {region}'s database (immediate shutdown: no checkpoint, nothing more sent to the replica)"
            );
            Ok(Exit::Done)
        }
        SandboxCommand::Rejoin { region } => {
            let sb = loaded_sandbox(g)?;
            sb.region(&region).map_err(|e| Refused(e.to_string()))?;
            let d = sb.deployment();
            let writer = d.regions.iter().find(|r| r.as_str() != region).map(|r| r.to_string()).unwrap_or_default();
            // Follow only a writer that writes: never replace a database with a copy of a replica.
            let writes = sb.node(&writer)?.accepts_writes().await.unwrap_or(false);
            if !writes {
                return Err(Refused(format!(
                    "{writer} does not accept writes: {region} can rejoin only a writer (promote {writer} first)"
                ))
                .into());
            }
            sb.rejoin_as_replica(&region, &writer)?;
            println!("{region} rebuilt as a streaming replica of {writer}");
            Ok(Exit::Done)
        }
        SandboxCommand::Env => {
            // Refused (stderr, non-zero) when not up, so `eval "$(…)"` fails loudly.
            let sb = loaded_sandbox(g)?;
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
