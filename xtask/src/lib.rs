//! Developer automation for switchyard, and the **sandbox**: two AWS regions on loopback
//! (moto for the AWS APIs, two real PostgreSQL servers joined by streaming replication).
//!
//! The library half is used by the `xtask` binary (`cargo xtask sandbox up|down|status`,
//! `cargo xtask test`, `cargo xtask drill`, `cargo xtask bench`) and by the integration tests in `tests/`, which
//! start their own sandbox instance and stop it when they finish.

pub mod bench;
pub mod package;
pub mod process;
pub mod sandbox;
pub mod stepfunctions;
pub mod synth;
pub mod tools;

use std::path::PathBuf;

/// The repository root (this crate lives in `<root>/xtask`).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
