//! The integration test binary: contract, sandbox and function tests. It starts one sandbox
//! for the run (on first use) and stops it at the end, pass or fail.
//!
//! Sandbox tests run one at a time by default: some pause the replica's replay, which would
//! disturb a neighbour measuring replication. Pass `--test-threads N` to override.

mod cli;
mod consumer;
mod contract;
mod control;
mod docs;
mod drill;
mod failover;
mod functions;
mod infra;
mod lifecycle;
mod probe;
mod promoter;
mod provisioning;
mod readiness;
mod replication;
mod statemachines;
mod switcher;
mod world;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = libtest_mimic::Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(1);
    }
    let trials: Vec<_> = [
        contract::trials(),
        cli::trials(),
        infra::trials(),
        world::trials(),
        replication::trials(),
        failover::trials(),
        control::trials(),
        promoter::trials(),
        switcher::trials(),
        consumer::trials(),
        provisioning::trials(),
        readiness::trials(),
        probe::trials(),
        statemachines::trials(),
        functions::trials(),
        lifecycle::trials(),
        docs::trials(),
        drill::trials(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if let Err(e) = switchyard_tests::finish() {
        eprintln!("error: stopping the test sandbox: {e}");
        return ExitCode::FAILURE;
    }
    conclusion.exit_code()
}
