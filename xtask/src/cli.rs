//! `cargo xtask`'s command line. clap, like the `switchyard` CLI: it is in the build for the
//! CLI already, so xtask gets per-command help, refused unknown flags and did-you-mean for
//! the cost of its own derive code (see ARCHITECTURE.md, "Build time").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "switchyard's developer automation. User commands live in the `switchyard` CLI \
             (`cargo switchyard --help`); `drill` and `sandbox` are forwarded to it.",
    after_help = "Exit codes: 0 done, 1 failed, 2 usage (forwarded commands: see `cargo switchyard --help`)."
)]
pub struct Xtask {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install what the tests need, then run the whole test suite (ARGS go to `cargo test`).
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Emit the CloudFormation templates: the reference set into infra/templates/ (the
    /// sandbox model, both DNS modes), or, with --out, your deployment's three.
    Synth(SynthArgs),
    /// The five release packages for AWS (cargo lambda build --release --arm64
    /// --output-format zip), with their sizes.
    Package {
        /// The RDS CA bundle (PEM), put beside each binary.
        #[arg(long, value_name = "PEM")]
        ca_bundle: Option<PathBuf>,
    },
    /// Benchmarks, side by side with a baseline.
    #[command(subcommand)]
    Bench(Bench),
    /// `switchyard drill …` (forwarded untouched).
    #[command(disable_help_flag = true)]
    Drill {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// `switchyard sandbox …` (forwarded untouched).
    #[command(disable_help_flag = true)]
    Sandbox {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct SynthArgs {
    /// Only say whether infra/templates/ is stale.
    #[arg(long, conflicts_with = "out")]
    pub check: bool,
    /// Write your deployment's templates here instead of the reference set.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The environment name (resource names derive from it).
    #[arg(long, requires = "out")]
    pub environment: Option<String>,
    /// The hosted zone clients resolve.
    #[arg(long, requires = "out")]
    pub domain: Option<String>,
    /// health-check or records.
    #[arg(long, requires = "out")]
    pub dns_mode: Option<String>,
    #[arg(long, requires = "out", value_name = "REGION")]
    pub primary: Option<String>,
    #[arg(long, requires = "out", value_name = "REGION")]
    pub standby: Option<String>,
    #[arg(long, requires = "out", value_name = "N")]
    pub rpo_seconds: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Orders/s of one order-consumer against the sandbox's PostgreSQL, beside a plain
    /// batched INSERT baseline.
    Consumer {
        #[arg(long, default_value_t = 1000)]
        orders: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

/// What a command line means (`Err`: help or a usage error, to print and exit with).
pub fn parse<I, T>(args: I) -> Result<Xtask, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Xtask::try_parse_from(args)
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    fn parsed(args: &[&str]) -> Result<Xtask, clap::Error> {
        parse(std::iter::once("xtask").chain(args.iter().copied()))
    }

    #[test]
    fn a_misspelt_synth_flag_writes_nothing() {
        // It used to write switchyard-sandbox-* templates with exit 0.
        let e = parsed(&["synth", "--out", "deploy", "--enviroment", "prod"]).expect_err("refused");
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::UnknownArgument, 2));
        assert!(e.to_string().contains("--environment"), "did you mean: {e}");
        assert_eq!(parsed(&["synth", "--help"]).expect_err("help").kind(), ErrorKind::DisplayHelp);
        assert_eq!(parsed(&["synth", "--environment", "prod"]).expect_err("needs --out").exit_code(), 2);
    }

    #[test]
    fn forwarded_commands_keep_every_argument_for_the_cli() {
        let Command::Sandbox { args } = parsed(&["sandbox", "up", "--help"]).expect("forwarded").command else {
            panic!("not forwarded")
        };
        assert_eq!(args, ["up", "--help"]);
        let Command::Drill { args } = parsed(&["drill", "--sandbox", "x"]).expect("forwarded").command else {
            panic!("not forwarded")
        };
        assert_eq!(args, ["--sandbox", "x"]);
    }
}
