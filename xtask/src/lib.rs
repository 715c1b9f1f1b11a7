//! Developer automation for switchyard (`cargo xtask …`): the test command, the reference
//! templates (`synth`), the release packages (`package`) and the benchmarks (`bench`). User
//! commands live in the `switchyard` CLI (`infra/cli`); `cargo xtask drill|sandbox …` forward
//! to it untouched.

pub mod bench;
pub mod cli;
pub mod package;
pub mod synth;
