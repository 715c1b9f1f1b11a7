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

/// The `switchyard` binary, which serves the sandbox's world (`switchyard sandbox world`):
/// `$SWITCHYARD_BIN`, else the running binary if it is `switchyard`, else the one beside it
/// or in cargo's target dir (tests: `target/debug/deps/…` → `target/debug/switchyard`).
pub fn switchyard_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SWITCHYARD_BIN") {
        return Ok(PathBuf::from(path));
    }
    let current = std::env::current_exe()?;
    if current.file_name().is_some_and(|n| n == "switchyard") {
        return Ok(current);
    }
    let beside = current.ancestors().skip(1).take(2).map(|dir| dir.join("switchyard"));
    let candidates: Vec<PathBuf> = beside.chain([target_dir().join("debug/switchyard")]).collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "the sandbox's world runs from the switchyard binary, which is not built (looked at {}): \
             run `cargo build -p switchyard-cli` (`cargo xtask test` does)",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}
