//! The five release packages for AWS (`cargo xtask package`): `cargo lambda build --release
//! --arm64 --output-format zip`, one `bootstrap.zip` per function, optionally with the RDS CA
//! bundle beside the binary (the functions trust only it for TLS to Aurora). The sandbox's own
//! packages are `switchyard_sandbox::packages`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, ensure};
use switchyard_model::FUNCTIONS;
use switchyard_sandbox::{
    tools,
    workspace::{repo_root, target_dir},
};

/// `cargo xtask package [--ca-bundle PEM]`: the five release packages for arm64; returns
/// each zip with its size.
pub fn release(ca_bundle: Option<&Path>) -> Result<Vec<(String, PathBuf, u64)>> {
    tools::ensure_python_tools()?;
    let target = "aarch64-unknown-linux-gnu";
    let rustup = Command::new("rustup").args(["target", "add", target]).status();
    ensure!(
        rustup.is_ok_and(|s| s.success()),
        "`rustup target add {target}` failed: the arm64 packages need that target from the Rust \
         distribution server (crates.io alone does not carry it)"
    );
    if let Some(pem) = ca_bundle {
        ensure!(pem.is_file(), "--ca-bundle {}: no such file", pem.display());
    }
    let mut cmd = Command::new(tools::cargo_lambda());
    cmd.current_dir(repo_root()).args(["lambda", "build", "--release", "--arm64", "--output-format", "zip"]);
    for f in FUNCTIONS {
        cmd.args(["--bin", f]);
    }
    if let Some(pem) = ca_bundle {
        // Lands at /var/task/<file name>; the stack points SWITCHYARD_DB_CA_BUNDLE there.
        cmd.arg("--include").arg(pem);
    }
    let path = format!("{}:{}", tools::venv_dir().join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let status = cmd.env("PATH", path).status().context("running cargo lambda build")?;
    ensure!(status.success(), "cargo lambda build failed");
    FUNCTIONS
        .iter()
        .map(|f| {
            let zip = target_dir().join("lambda").join(f).join("bootstrap.zip");
            let size = std::fs::metadata(&zip).with_context(|| format!("{} missing", zip.display()))?.len();
            Ok(((*f).to_owned(), zip, size))
        })
        .collect()
}
