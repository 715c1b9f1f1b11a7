//! The `switchyard` binary: see the library for the commands and their contract.

use std::process::ExitCode;

fn main() -> ExitCode {
    match switchyard_cli::parse(std::env::args_os()) {
        Ok(cli) => switchyard_cli::run(cli),
        // Help and version print to stdout and exit 0; usage errors to stderr, exit 2.
        Err(e) => e.exit(),
    }
}
