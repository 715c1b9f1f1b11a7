//! The sandbox's tools, installed on first use into the repository (`.tools/`) from the
//! package registries: a Python venv with the pinned `moto[server]` and `cargo-lambda`
//! (infra/sandbox/requirements.txt), and PostgreSQL 15 server binaries (from Debian when missing).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{process::run, workspace::repo_root};

pub fn tools_dir() -> PathBuf {
    repo_root().join(".tools")
}

pub fn venv_dir() -> PathBuf {
    tools_dir().join("venv")
}

pub fn moto_server() -> PathBuf {
    venv_dir().join("bin/moto_server")
}

/// `cargo-lambda` from the venv (a cargo subcommand: invoked as `cargo-lambda lambda …`).
pub fn cargo_lambda() -> PathBuf {
    venv_dir().join("bin/cargo-lambda")
}

/// Creates or updates `.tools/venv` so that it holds exactly infra/sandbox/requirements.txt. A stamp
/// file holding the requirements' content makes repeated calls free.
pub fn ensure_python_tools() -> Result<()> {
    let requirements = repo_root().join("infra/sandbox/requirements.txt");
    let wanted =
        std::fs::read_to_string(&requirements).with_context(|| format!("reading {}", requirements.display()))?;
    let stamp = venv_dir().join(".switchyard-requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) && moto_server().exists() {
        return Ok(());
    }
    eprintln!("installing the sandbox's Python tools into {} (moto, cargo-lambda)…", venv_dir().display());
    std::fs::create_dir_all(tools_dir())?;
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
        .context("no python3 on PATH: the sandbox needs Python 3.9+ for moto")?;
    if !venv_dir().join("bin/pip").exists() {
        run(Command::new(python).args(["-m", "venv"]).arg(venv_dir()))?;
    }
    let pip = venv_dir().join("bin/pip");
    run(Command::new(&pip).args(["install", "--quiet", "--disable-pip-version-check", "-r"]).arg(&requirements))
        .context("installing infra/sandbox/requirements.txt from PyPI")?;
    std::fs::write(&stamp, wanted)?;
    Ok(())
}

/// The directory holding `initdb`, `pg_ctl`, `pg_basebackup` and `postgres` (PostgreSQL 15).
pub fn postgres_bindir() -> Result<PathBuf> {
    if let Some(dir) = find_postgres_bindir() {
        return Ok(dir);
    }
    if is_root() {
        eprintln!("PostgreSQL server binaries not found; installing Debian's postgresql-15…");
        apt_install("postgresql-15")?;
        if let Some(dir) = find_postgres_bindir() {
            return Ok(dir);
        }
    }
    bail!(
        "PostgreSQL 15 server binaries (initdb, pg_ctl) not found; install them (Debian: apt-get install postgresql-15)"
    )
}

fn find_postgres_bindir() -> Option<PathBuf> {
    let candidates = [PathBuf::from("/usr/lib/postgresql/15/bin")];
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).filter(|d| d.join("initdb").exists()).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain(from_path)
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists() && d.join("pg_basebackup").exists())
        .map(|d| {
            std::fs::canonicalize(d.join("initdb")).ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or(d)
        })
}

/// Installs a Debian package from the machine's package registry (root only).
fn apt_install(package: &str) -> Result<()> {
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}

/// Debian's Chromium, which renders the drill's report headless in its test; installed when
/// missing and root.
pub fn chromium() -> Result<PathBuf> {
    let path = PathBuf::from("/usr/bin/chromium");
    if !path.exists() && is_root() {
        eprintln!("chromium not found; installing Debian's chromium (the drill report's render test)…");
        apt_install("chromium")?;
    }
    if path.exists() {
        return Ok(path);
    }
    bail!("Chromium not found at /usr/bin/chromium; install it (Debian: apt-get install chromium)")
}

/// PostgreSQL refuses to run as root; as root the sandbox runs it as this user.
pub const POSTGRES_USER: &str = "postgres";

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// The pinned cfn-guard (AWS's policy-as-code tool; crates.io only ships its source).
pub const CFN_GUARD_VERSION: &str = "3.2.1";

pub fn cfn_guard() -> PathBuf {
    tools_dir().join("cfn-guard/bin/cfn-guard")
}

/// Installs cfn-guard into `.tools/cfn-guard` with `cargo install --locked` (about 90 s on
/// two cores, once). Its build directory lives beside the workspace's target, so a CI with a
/// persistent `CARGO_TARGET_DIR` reinstalls from compiled artifacts.
pub fn ensure_cfn_guard() -> Result<PathBuf> {
    let bin = cfn_guard();
    let version = Command::new(&bin).arg("--version").output().ok().filter(|o| o.status.success());
    if version.is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains(CFN_GUARD_VERSION)) {
        return Ok(bin);
    }
    eprintln!("installing cfn-guard {CFN_GUARD_VERSION} into {} (cargo install)…", tools_dir().display());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run(Command::new(cargo)
        .args(["install", "--quiet", "--locked", "cfn-guard", "--version", CFN_GUARD_VERSION, "--root"])
        .arg(tools_dir().join("cfn-guard"))
        .arg("--target-dir")
        .arg(crate::workspace::target_dir().join("cfn-guard-build")))
    .context("installing cfn-guard from crates.io")?;
    Ok(bin)
}
