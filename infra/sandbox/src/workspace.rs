//! Where the sandbox finds the checkout it runs: the repository root, cargo's target
//! directory and cargo itself.

use std::{path::PathBuf, process::Command};

/// The repository root (this crate lives in `<root>/infra/sandbox`). The sandbox runs the
/// functions from source (`cargo lambda watch`), so it needs the checkout.
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).map(PathBuf::from).unwrap_or(manifest)
}

/// Where cargo puts its output (the CI keeps a persistent `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from)
}

/// `cargo` (the one running us, if any), in the repository root.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    c.current_dir(repo_root());
    c
}
