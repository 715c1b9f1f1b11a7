//! The five function binaries, served over the real Lambda Runtime API by the sandbox.

use anyhow::ensure;
use libtest_mimic::Trial;
use switchyard_infra::FUNCTIONS;
use switchyard_tests::sandbox_trial;
use xtask::sandbox::{Sandbox, lambda::Invocation};

pub fn trials() -> Vec<Trial> {
    vec![sandbox_trial(
        "functions::every_function_answers_in_both_regions_with_a_named_error",
        |sb| Box::pin(named_errors(sb)),
    )]
}

/// None of the functions is built yet: each must load the configuration the model gives its
/// region (no `MissingConfig`) and refuse with the stable name `NotImplemented`, never a Rust
/// type name. Update this test as each function lands.
async fn named_errors(sb: &Sandbox) -> anyhow::Result<()> {
    for region in ["us-east-1", "us-east-2"] {
        let service = sb.lambda(region)?;
        for function in FUNCTIONS {
            let answer = service
                .invoke(function, &serde_json::json!({"source": "switchyard-tests"}))
                .await?;
            let Invocation::FunctionError {
                error_type,
                error_message,
            } = &answer
            else {
                anyhow::bail!("{function} in {region} claims success: {answer:?}");
            };
            ensure!(
                error_type == "NotImplemented",
                "{function} in {region}: {error_type}: {error_message}"
            );
            ensure!(
                error_message.contains(function),
                "{function} in {region}: message {error_message:?}"
            );
        }
    }
    Ok(())
}
