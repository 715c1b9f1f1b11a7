//! `switchyard`: the operator's command, and the one place user commands live.
//!
//! The contract, which later commands extend and never redefine:
//! - global flags in the AWS CLI's spelling: `--region`, `--profile`, `--endpoint-url`, plus
//!   `--output json|table` and `--sandbox[=NAME]` (default `$SWITCHYARD_SANDBOX`, then
//!   `default`); every command has `--help`, and `--help` never acts;
//! - unknown flags and commands are usage errors, with a did-you-mean where one is close;
//! - one exit-code table ([`Exit`]), printed by `switchyard --help`.
//!
//! [`parse`] is separate from [`run`] so the tests check what a command line means without
//! running it.

mod arm;
mod drill;
mod execute;
mod handover;
mod invoke;
mod report;
mod sandbox;
mod status;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The exit codes of every `switchyard` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// The command did what it was asked.
    Done = 0,
    /// It ran and failed, or what it checked is not healthy.
    Failed = 1,
    /// The command line is wrong (unknown flag or command, bad value).
    Usage = 2,
    /// Nothing to do: already so (the writer is already there, a duplicate execution, a
    /// sandbox that is not up was asked to stop).
    NothingToDo = 3,
    /// Refused by a precondition: the target is not there (no such sandbox), or a gate said
    /// no (lag above budget, lock held, cooldown, stale epoch, not ready).
    Refused = 4,
}

pub const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  failed (or not healthy)
  2  usage: unknown flag or command, bad value
  3  nothing to do: already so, or a duplicate
  4  refused: the target is not there, or a precondition (lag, lock, cooldown, epoch) said no";

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// An error that is a refusal (exit 4), not a failure.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// A bad value that only a command can tell (an `--input` that is not JSON): exit 2, like the
/// usage errors clap finds.
#[derive(Debug)]
pub struct BadValue(pub String);

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadValue {}

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "switchyard: the failover control plane of a two-region AWS application",
    after_help = EXIT_CODES,
    infer_subcommands = false
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes, in the AWS CLI's spelling where it has one.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The AWS region a command acts in, for commands that act in one (`execute`: the region
    /// whose state machine runs, when REGION is not given).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// An AWS profile: act on a real deployment instead of a sandbox.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// An AWS API endpoint to use instead of the default (loopback only, for emulators).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// How to print the answer.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// The sandbox to act on: NAME, or with no NAME `$SWITCHYARD_SANDBOX`, then `default`.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_SANDBOX",
        default_value = "default",
        num_args = 0..=1,
        default_missing_value = "",
        value_name = "NAME"
    )]
    sandbox: String,
}

impl Global {
    /// The sandbox's name: `--sandbox NAME`; a bare `--sandbox`, or none, means
    /// `$SWITCHYARD_SANDBOX`, then `default`.
    pub fn sandbox(&self) -> String {
        match self.sandbox.as_str() {
            "" => {
                std::env::var("SWITCHYARD_SANDBOX").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "default".into())
            }
            name => name.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The deployment at a glance (read-only): the writer claim as each region reads it, each
    /// database's role and fence, the replication's direction and lag, the DNS answer, what is
    /// armed, the lock, the last execution. Exit 1 when the regions or the databases disagree.
    #[command(after_help = EXIT_CODES)]
    Status,
    /// The sandbox: a two-region deployment on loopback (moto, two PostgreSQL, the functions).
    #[command(subcommand)]
    #[command(after_help = EXIT_CODES)]
    Sandbox(SandboxCommand),
    /// Move the writer to --to without losing data (the switchover state machine there):
    /// one line per state, then the summary.
    #[command(after_help = EXIT_CODES)]
    Switchover(handover::SwitchoverArgs),
    /// Fail the writer over to --to (the failover state machine there; with an override, the
    /// operator failover): one line per state, then the summary.
    #[command(after_help = EXIT_CODES)]
    Failover(handover::FailoverArgs),
    /// Run a state machine of REGION in the sandbox, with its real waits and retries: its
    /// whole history (`switchover`/`failover` summarize).
    #[command(after_help = EXIT_CODES)]
    Execute(execute::ExecuteArgs),
    /// The readiness tester's report as a rule table: is the region that would take over
    /// ready to? Exit 0 ready, 1 not.
    #[command(after_help = EXIT_CODES)]
    Readiness(invoke::ReadinessArgs),
    /// The executions the claim store keeps a timeline of, the most recently detected first.
    #[command(after_help = EXIT_CODES)]
    Executions(report::ExecutionsArgs),
    /// One execution's timeline: each mark and its offset from detection, RTO, data, fence.
    #[command(after_help = EXIT_CODES)]
    Report(report::ReportArgs),
    /// Invoke a function of REGION through its Lambda service's Invoke API, with a sample
    /// event by name (`--event on-demand`: events/FUNCTION/on-demand.json) or --input.
    #[command(after_help = EXIT_CODES)]
    Invoke(invoke::InvokeArgs),
    /// The main job, in a fresh sandbox of its own named `drill` that it always stops: every
    /// scenario with orders flowing, the invariants from the data, target/drill/report.html.
    /// With --campaign N: N fault schedules drawn from --seed instead.
    #[command(after_help = EXIT_CODES)]
    Drill(drill::DrillArgs),
    /// Arm REGION as the takeover target: an automatic failover moves the writer only into an
    /// armed region, and only under the epoch it was armed at (a handover disarms).
    #[command(after_help = EXIT_CODES)]
    Arm {
        region: String,
        /// Who arms it (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// Disarm: no automatic failover moves the writer until a region is armed again.
    #[command(after_help = EXIT_CODES)]
    Disarm,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum SandboxCommand {
    /// Start the sandbox (or keep the one that runs): both regions, provisioned from the model.
    #[command(after_help = EXIT_CODES)]
    Up,
    /// Stop every process the sandbox started and remove its files.
    #[command(after_help = EXIT_CODES)]
    Down,
    /// Health of its processes, the databases' roles and the replication.
    #[command(after_help = EXIT_CODES)]
    Status,
    /// The sandboxes of this checkout and whether they run.
    #[command(after_help = EXIT_CODES)]
    List,
    /// `export` lines for a shell (`eval "$(switchyard sandbox env)"`).
    #[command(after_help = EXIT_CODES)]
    Env,
    /// Crash a region's part as a sudden regional failure would: its database (the default:
    /// immediate shutdown, no checkpoint, nothing more sent to the replica), its order API
    /// (connections refused) or its functions (their Lambda service stops).
    #[command(after_help = EXIT_CODES)]
    Crash {
        region: String,
        #[arg(long)]
        database: bool,
        #[arg(long)]
        api: bool,
        #[arg(long)]
        functions: bool,
    },
    /// Bring a crashed region back: its order API and functions restart, and its database is
    /// rebuilt as a streaming replica of the other region's writer (a fresh base backup: what
    /// the region wrote since it lost the writer role is discarded).
    #[command(after_help = EXIT_CODES)]
    Rejoin { region: String },
    /// Cut links between the three places (the pair and the claim store's witness region).
    /// Cuts add up until `heal`.
    #[command(after_help = EXIT_CODES)]
    Partition(PartitionArgs),
    /// Open every link again (and set the cross-region delay back to 0).
    #[command(after_help = EXIT_CODES)]
    Heal,
    /// Make a region's database sick but answering, for failure-path tests (`--undo` cures it).
    #[command(after_help = EXIT_CODES)]
    Sicken {
        region: String,
        /// `connection-slots` (the functions' roles get "too many connections"), `reject-auth`
        /// (pg_hba rejects them) or `disk-full` (every write fails with SQLSTATE 53100).
        #[arg(long, value_parser = ["connection-slots", "reject-auth", "disk-full"], required_unless_present = "undo")]
        fault: Option<String>,
        /// Cure every sickness of the region's database.
        #[arg(long, conflicts_with = "fault")]
        undo: bool,
    },
    /// Which region `api.<domain>` answers now, by Route 53's failover rule over the records
    /// and their health checks (each region's claim-aware `/writer`).
    #[command(after_help = EXIT_CODES)]
    Dns,
    /// Alarms, rules and schedules: `start` them firing on their own (schedules `--compression`
    /// times faster), `stop` them, `tick` (evaluate every alarm once, now) or `show` what fired.
    #[command(after_help = EXIT_CODES)]
    Clock {
        #[arg(value_parser = ["start", "stop", "tick", "show"])]
        action: String,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        compression: u32,
    },
    /// Serve the world (links, AWS fronts, order APIs) of a sandbox: started by `sandbox up`.
    #[command(hide = true)]
    #[command(after_help = EXIT_CODES)]
    World {
        #[arg(long)]
        plan: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(group(clap::ArgGroup::new("shape").args(["isolate", "link", "witness_down", "service", "delay_ms"]).multiple(true).required(true)))]
pub struct PartitionArgs {
    /// Cut every link of REGION (from the other region and from the witness).
    #[arg(long, value_name = "REGION")]
    pub isolate: Option<String>,
    /// Cut the link between two places, e.g. `us-east-1:us-east-2`.
    #[arg(long, value_name = "A:B")]
    pub link: Option<String>,
    /// Cut every link of the witness region.
    #[arg(long)]
    pub witness_down: bool,
    /// Cut one service of a region for every caller in the regions (a regional brownout):
    /// `us-east-1:dynamodb`, `us-east-1:sqs`, `us-east-1:postgres` (its database)…
    #[arg(long, value_name = "REGION:SERVICE")]
    pub service: Option<String>,
    /// What a cut does: `refuse` (connections reset at once), `blackhole` (calls hang until
    /// the caller's deadline) or `drop-response` (the request is applied, the answer lost).
    #[arg(long, default_value = "refuse", value_parser = ["refuse", "blackhole", "drop-response"])]
    pub mode: String,
    /// Milliseconds every crossing of an open link between two places pays (real strongly
    /// consistent reads pay tens of ms).
    #[arg(long, value_name = "MS")]
    pub delay_ms: Option<u64>,
}

/// What a command line means; `Err` for help, version and usage errors (print it with
/// `clap::Error::print` and exit with `clap::Error::exit_code`).
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args)
}

/// Runs a parsed command line to its exit code. Errors are printed here, as `error: …`.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return Exit::Failed.into();
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<Refused>().is_some() {
                Exit::Refused.into()
            } else if e.downcast_ref::<BadValue>().is_some() {
                Exit::Usage.into()
            } else {
                Exit::Failed.into()
            }
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    let g = &cli.global;
    match cli.command {
        Command::Status => status::run(g).await,
        Command::Sandbox(c) => sandbox::run(g, c).await,
        Command::Execute(args) => execute::run(g, args).await,
        Command::Switchover(args) => handover::switchover(g, args).await,
        Command::Failover(args) => handover::failover(g, args).await,
        Command::Readiness(args) => invoke::readiness(g, args).await,
        Command::Executions(args) => report::executions(g, args).await,
        Command::Report(args) => report::report(g, args).await,
        Command::Invoke(args) => invoke::invoke(g, args).await,
        Command::Arm { region, by } => arm::arm(g, &region, by).await,
        Command::Disarm => arm::disarm(g).await,
        Command::Drill(args) => {
            refuse_aws_flags(g)?;
            drill::run(g, &args).await
        }
    }
}

/// An `--input`'s JSON: given inline, or read from `file://PATH`. Bad JSON or an unreadable
/// file is a bad value (exit 2).
pub(crate) fn input_json(flag: &str, text: &str) -> anyhow::Result<serde_json::Value> {
    let (what, text) = match text.strip_prefix("file://") {
        Some(path) => (
            format!("{flag} file://{path}"),
            std::fs::read_to_string(path).map_err(|e| BadValue(format!("{flag} file://{path}: {e}")))?,
        ),
        None => (flag.to_owned(), text.to_owned()),
    };
    Ok(serde_json::from_str(&text).map_err(|e| BadValue(format!("{what} is not JSON: {e}")))?)
}

/// The sandbox a command acts on: `--sandbox`, refused when it is not up (naming the ones
/// that are).
pub(crate) fn loaded_sandbox(g: &Global) -> anyhow::Result<switchyard_sandbox::Sandbox> {
    refuse_aws_flags(g)?;
    let name = g.sandbox();
    match switchyard_sandbox::Sandbox::load(&name)?.filter(switchyard_sandbox::Sandbox::is_up) {
        Some(sb) => Ok(sb),
        None => Err(Refused(not_up(&name)).into()),
    }
}

/// "sandbox X is not up", with the ones that are and how to start it.
pub(crate) fn not_up(name: &str) -> String {
    let running: Vec<String> =
        switchyard_sandbox::instance::list().into_iter().filter(|(_, up)| *up).map(|(n, _)| n).collect();
    let hint = if running.is_empty() {
        "none is up".to_owned()
    } else {
        format!("up: {} (pick one with --sandbox NAME or SWITCHYARD_SANDBOX)", running.join(", "))
    };
    format!("sandbox {name:?} is not up ({hint}); start it with `switchyard --sandbox {name} sandbox up`")
}

/// The sandbox commands run against loopback only: a profile or a foreign endpoint is a
/// mistake, not something to ignore.
pub(crate) fn refuse_aws_flags(g: &Global) -> anyhow::Result<()> {
    if let Some(p) = &g.profile {
        return Err(Refused(format!(
            "--profile {p}: this command acts on a sandbox; real deployments are not reachable from here"
        ))
        .into());
    }
    if let Some(url) = &g.endpoint_url {
        return Err(Refused(format!(
            "--endpoint-url {url}: this command acts on a sandbox, which knows its own endpoint"
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    fn kind(args: &[&str]) -> Result<Cli, ErrorKind> {
        parse(std::iter::once("switchyard").chain(args.iter().copied())).map_err(|e| e.kind())
    }

    #[test]
    fn help_never_acts() {
        // `sandbox up --help` used to start a sandbox, `drill --help` to run the drill.
        for args in [
            &["sandbox", "up", "--help"][..],
            &["drill", "--help"],
            &["sandbox", "status", "--help"],
            &["execute", "--help"],
            &["--help"],
            &["help", "sandbox"],
        ] {
            assert_eq!(kind(args).err(), Some(ErrorKind::DisplayHelp), "{args:?}");
        }
    }

    #[test]
    fn unknown_flags_and_commands_are_usage_errors_with_a_suggestion() {
        for (args, expected) in [
            (&["sandbox", "up", "--instnace", "ux"][..], "--instnace"),
            (&["--sandbx", "ux", "status"], "--sandbox"),
            (&["sandbox", "stauts"], "status"),
            (&["exectue", "failover", "us-east-2"], "execute"),
        ] {
            let e = parse(std::iter::once("switchyard").chain(args.iter().copied())).expect_err("refused");
            assert_eq!(e.exit_code(), Exit::Usage as i32, "{args:?}");
            assert!(e.to_string().contains(expected), "{args:?}: {e}");
        }
        assert_eq!(kind(&["execute"]).err(), Some(ErrorKind::MissingRequiredArgument));
        assert_eq!(kind(&["execute", "failvoer", "us-east-2"]).err(), Some(ErrorKind::InvalidValue));
    }

    #[test]
    fn the_sandbox_flag_takes_an_optional_name() {
        let cli = kind(&["--sandbox", "ux", "sandbox", "status"]).expect("parses");
        assert_eq!(cli.global.sandbox(), "ux");
        let cli = kind(&["sandbox", "status", "--sandbox=ci", "--output", "json"]).expect("parses");
        assert_eq!((cli.global.sandbox().as_str(), cli.global.output), ("ci", Output::Json));
        // A bare --sandbox is the default (the environment's, else `default`).
        let cli = kind(&["status", "--sandbox"]).expect("parses");
        let expected = std::env::var("SWITCHYARD_SANDBOX").ok().filter(|s| !s.is_empty());
        assert_eq!(cli.global.sandbox(), expected.unwrap_or_else(|| "default".into()));
    }
}
