//! Function packages.
//!
//! - **For AWS** (`cargo xtask package`): `cargo lambda build --release --arm64 --output-format
//!   zip`, one `bootstrap.zip` per function, optionally with the RDS CA bundle beside the
//!   binary (the functions trust only it for TLS to Aurora).
//! - **For the sandbox** ([`sandbox_packages`]): the same binaries `cargo lambda watch` serves
//!   (host architecture, dev profile), each zipped as `bootstrap` with fixed timestamps, so
//!   one build gives one code hash in both regions, as one release does in AWS. moto holds
//!   the package and its configuration; it cannot run it (that needs Docker), `cargo lambda
//!   watch` does.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail, ensure};
use switchyard_infra::FUNCTIONS;

use crate::{repo_root, tools};

/// Where cargo puts its output (the CI keeps a persistent `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    c.current_dir(repo_root());
    c
}

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

/// The sandbox's package of each function: its dev binary zipped as `bootstrap`, rebuilt
/// only when the binary changed.
pub fn sandbox_packages() -> Result<BTreeMap<&'static str, PathBuf>> {
    let mut build = cargo();
    build.arg("build").arg("--quiet");
    for f in FUNCTIONS {
        build.args(["--bin", f]);
    }
    let status = build.status().context("building the functions")?;
    if !status.success() {
        bail!("cargo build of the functions failed");
    }
    let dir = target_dir().join("sandbox-packages");
    std::fs::create_dir_all(&dir)?;
    let mut zips = BTreeMap::new();
    for f in FUNCTIONS {
        let binary = target_dir().join("debug").join(f);
        let zip = dir.join(format!("{f}.zip"));
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if modified(&zip).is_none() || modified(&zip) < modified(&binary) {
            zip_as_bootstrap(&binary, &zip)?;
        }
        zips.insert(f, zip);
    }
    Ok(zips)
}

/// A deterministic zip holding `binary` as an executable `bootstrap` (Python's zipfile: the
/// venv is there already, and a zip writer is not worth a dependency).
fn zip_as_bootstrap(binary: &Path, zip: &Path) -> Result<()> {
    let script = r#"
import sys, zipfile
binary, out = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
info.external_attr = 0o100755 << 16
info.compress_type = zipfile.ZIP_DEFLATED
with open(binary, "rb") as f, zipfile.ZipFile(out + ".tmp", "w") as z:
    z.writestr(info, f.read(), compresslevel=1)
import os; os.replace(out + ".tmp", out)
"#;
    let status = Command::new(tools::venv_dir().join("bin/python"))
        .args(["-c", script])
        .arg(binary)
        .arg(zip)
        .status()
        .context("running python to zip a function")?;
    ensure!(status.success(), "zipping {} failed", binary.display());
    Ok(())
}
