//! The **sandbox**: a two-region switchyard deployment on loopback, built from the model. moto
//! for the AWS APIs, two real PostgreSQL servers joined by streaming replication, the real
//! function binaries under `cargo lambda watch`, and the state machines executed by
//! `aws-local-stepfunctions`. Used by the `switchyard` CLI (`switchyard sandbox …`), the
//! integration tests (each starts its own instance and stops it) and the benchmarks.
//!
//! Modules, lowest first (each uses only those above it):
//! - [`workspace`]: the checkout, cargo's target dir; [`process`]: PIDs, ports, process groups;
//! - [`tools`]: what the sandbox installs into `.tools/` (Python venv, PostgreSQL, cfn-guard);
//! - [`packages`]: the functions' zips for moto's Lambda API;
//! - [`postgres`], [`lambda`], [`definitions`];
//! - [`world`]: the three places and the links between them, the AWS fronts (with the
//!   claim store's majority rule), the order APIs and the clock (the daemon's
//!   contents, bound to nothing above it);
//! - [`aws`] (provisioning from the model);
//! - [`instance`]: one sandbox's lifecycle (`up`, `down`, `status`) and its endpoints file;
//! - [`dns`] (where `api.<domain>` answers now), [`runner`] (Step Functions executions),
//!   [`event_source`] (the SQS event source mapping's stand-in), [`smoke`];
//! - [`daemon`]: the world's process, its clock's targets bound to the runner and Lambda.

pub mod aws;
pub mod daemon;
pub mod definitions;
pub mod dns;
pub mod drill;
pub mod event_source;
pub mod instance;
pub mod lambda;
pub mod packages;
pub mod postgres;
pub mod process;
pub mod runner;
pub mod smoke;
pub mod tools;
pub mod workspace;
pub mod world;

pub use instance::Sandbox;
