//! Contracts between crates: one name everywhere.

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use switchyard_infra::FUNCTIONS;
use switchyard_tests::trial;

pub fn trials() -> Vec<Trial> {
    vec![trial("contract::each_model_function_is_a_crate_of_the_same_name", || Box::pin(function_crates()))]
}

/// `rds-promoter` is the crate dir, the package, the binary and the model's name.
async fn function_crates() -> anyhow::Result<()> {
    let root = xtask::repo_root();
    for name in FUNCTIONS {
        let manifest = root.join("functions").join(name).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).with_context(|| format!("{} missing", manifest.display()))?;
        ensure!(
            text.contains(&format!("name = \"{name}\"")),
            "{} does not name the package {name}",
            manifest.display()
        );
        ensure!(root.join("functions").join(name).join("src/main.rs").exists(), "{name} is not a binary crate");
    }
    let dirs: Vec<String> = std::fs::read_dir(root.join("functions"))?
        .flatten()
        .filter(|e| e.path().join("src/main.rs").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ensure!(dirs.len() == FUNCTIONS.len(), "binary crates {dirs:?} differ from the model's {FUNCTIONS:?}");
    Ok(())
}
