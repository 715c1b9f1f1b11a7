//! The sandbox's package of each function: the same binary `cargo lambda watch` serves (host
//! architecture, dev profile), zipped as `bootstrap` with fixed timestamps, so one build gives
//! one code hash in both regions, as one release does in AWS. moto holds the package and its
//! configuration; it cannot run it (that needs Docker), `cargo lambda watch` does.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail, ensure};
use switchyard_model::FUNCTIONS;

use crate::{
    tools,
    workspace::{cargo, target_dir},
};

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
