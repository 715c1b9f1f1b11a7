//! The five function binaries, served over the real Lambda Runtime API by the sandbox.

use std::time::Duration;

use anyhow::ensure;
use libtest_mimic::Trial;
use switchyard_infra::FUNCTIONS;
use switchyard_tests::sandbox_trial;
use xtask::{
    process,
    sandbox::{Sandbox, lambda, lambda::Invocation},
};

pub fn trials() -> Vec<Trial> {
    vec![
        sandbox_trial("functions::every_function_answers_in_both_regions_with_a_named_error", |sb| {
            Box::pin(named_errors(sb))
        }),
        sandbox_trial("functions::a_misconfigured_function_names_every_problem", |sb| Box::pin(misconfigured(sb))),
    ]
}

/// Functions not built yet must load the configuration the model gives their region (no
/// `MissingConfig`) and refuse with the stable name `NotImplemented`; built ones must refuse a
/// malformed event as `InvalidInput`. Never a Rust type name. Update as each function lands.
async fn named_errors(sb: &Sandbox) -> anyhow::Result<()> {
    const BUILT: &[&str] = &["rds-promoter", "dns-switcher", "order-consumer"];
    for region in ["us-east-1", "us-east-2"] {
        let service = sb.lambda(region)?;
        for function in FUNCTIONS {
            let answer = service.invoke(function, &serde_json::json!({"source": "switchyard-tests"})).await?;
            let Invocation::FunctionError { error_type, error_message } = &answer else {
                anyhow::bail!("{function} in {region} accepted a malformed event: {answer:?}");
            };
            let expected = if BUILT.contains(&function) { "InvalidInput" } else { "NotImplemented" };
            ensure!(error_type == expected, "{function} in {region}: {error_type}: {error_message}");
        }
    }
    Ok(())
}

/// Served with no `SWITCHYARD_ENV` and a region outside the deployment, a function must say
/// both, by name, in one `MissingConfig` answer: a broken stack is fixed in one deploy.
async fn misconfigured(sb: &Sandbox) -> anyhow::Result<()> {
    let region = "eu-west-1".parse()?;
    let env = [
        ("AWS_REGION", "eu-west-1".to_owned()),
        ("SWITCHYARD_PRIMARY_REGION", "us-east-1".to_owned()),
        ("SWITCHYARD_STANDBY_REGION", "us-east-2".to_owned()),
    ];
    let service = lambda::start(&region, &env, process::free_port()?, &sb.dir.join("lambda-misconfigured.log"))?;
    let answer = service.invoke("health-probe", &serde_json::json!({})).await;
    process::stop_group(service.pid, "TERM", Duration::from_secs(10))?;
    let Invocation::FunctionError { error_type, error_message } = answer? else {
        anyhow::bail!("a misconfigured function claimed success");
    };
    ensure!(error_type == "MissingConfig", "{error_type}: {error_message}");
    for needle in ["SWITCHYARD_ENV is not set", "AWS_REGION=\"eu-west-1\" is invalid"] {
        ensure!(error_message.contains(needle), "{needle:?} missing from {error_message:?}");
    }
    Ok(())
}
