//! The docs' command blocks tagged `sh sandbox` run as written, in a sandbox of their own: a
//! README example that fails as written is a failing test, not a user's lost hour (#19).

use std::process::Command;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use switchyard_sandbox::{Sandbox, workspace::repo_root};
use switchyard_tests::{INSTANCE_PREFIX, TestFuture, cli_binary, trial};

/// The documents whose tagged blocks run, in this order (each document's blocks in theirs).
const DOCUMENTS: &[&str] = &["README.md", "docs/sandbox.md"];

/// The info string of a block that runs: `sh` for the highlighter, `sandbox` for this test.
const TAG: &str = "```sh sandbox";

pub fn trials() -> Vec<Trial> {
    vec![
        trial("docs::blocks_are_found_by_their_tag_only", blocks_are_found_by_their_tag_only),
        trial("docs::the_command_blocks_tagged_for_the_sandbox_run_as_written", tagged_blocks).with_kind("sandbox"),
    ]
}

/// The tagged blocks of a Markdown text, with the line each starts on.
fn tagged_blocks_of(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match &mut current {
            None if line.trim_end() == TAG => current = Some((i + 1, String::new())),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    blocks
}

fn tagged_blocks() -> TestFuture {
    Box::pin(async {
        cli_binary()?;
        let instance = format!("{INSTANCE_PREFIX}{}-docs", std::process::id());
        let outcome = run_all(&instance);
        // Whatever the blocks did, nothing of theirs outlives the test.
        let stopped = match Sandbox::load(&instance)? {
            Some(sb) => sb.down(),
            None => Ok(()),
        };
        outcome?;
        stopped
    })
}

fn run_all(instance: &str) -> anyhow::Result<()> {
    let mut ran = 0;
    for document in DOCUMENTS {
        let text =
            std::fs::read_to_string(repo_root().join(document)).with_context(|| format!("reading {document}"))?;
        for (line, block) in tagged_blocks_of(&text) {
            let started = std::time::Instant::now();
            // As a reader pastes it into bash, stopping at the first command that fails.
            let out = Command::new("bash")
                .args(["-c", &format!("set -euo pipefail\n{block}")])
                .current_dir(repo_root())
                .env("SWITCHYARD_SANDBOX", instance)
                .output()?;
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            ensure!(
                out.status.success(),
                "{document}:{line}: the block failed (exit {:?}):\n{block}\n--- stdout\n{}\n--- stderr\n{}",
                out.status.code(),
                text(&out.stdout),
                text(&out.stderr)
            );
            eprintln!("{document}:{line}: ran in {:.1} s\n{}", started.elapsed().as_secs_f64(), text(&out.stdout));
            ran += 1;
        }
    }
    ensure!(ran >= 3, "only {ran} tagged blocks in {DOCUMENTS:?}: the tag is `{TAG}`");
    Ok(())
}

/// The tag finds exactly the tagged blocks, continuation lines kept.
fn blocks_are_found_by_their_tag_only() -> TestFuture {
    Box::pin(async {
        let md = "text\n```sh sandbox\na\nb \\\n  c\n```\n```sh\nnot this\n```\n```sh sandbox\nd\n```\n";
        let blocks = tagged_blocks_of(md);
        ensure!(blocks == vec![(2, "a\nb \\\n  c\n".to_owned()), (10, "d\n".to_owned())], "{blocks:?}");
        Ok(())
    })
}
