//! The five function binaries, served over the real Lambda Runtime API by the sandbox.

use std::time::Duration;

use anyhow::ensure;
use libtest_mimic::Trial;
use switchyard_model::FUNCTIONS;
use switchyard_sandbox::{Sandbox, lambda, lambda::Invocation, process};
use switchyard_tests::sandbox_trial;

pub fn trials() -> Vec<Trial> {
    vec![
        sandbox_trial("functions::every_function_refuses_a_malformed_event_as_invalid_input_in_both_regions", |sb| {
            Box::pin(named_errors(sb))
        }),
        sandbox_trial("functions::a_misconfigured_function_names_every_problem", |sb| Box::pin(misconfigured(sb))),
        sandbox_trial("functions::a_function_answers_a_second_call_while_its_first_is_running", |sb| {
            Box::pin(concurrent_calls(sb))
        }),
    ]
}

/// Every function loads the configuration the model gives its region (no `MissingConfig`)
/// and refuses a malformed event with the stable name `InvalidInput`, never a Rust type name.
async fn named_errors(sb: &Sandbox) -> anyhow::Result<()> {
    for region in ["us-east-1", "us-east-2"] {
        let service = sb.lambda(region)?;
        for function in FUNCTIONS {
            let answer = service.invoke(function, &serde_json::json!({"source": "switchyard-tests"})).await?;
            let Invocation::FunctionError { error_type, error_message } = &answer else {
                anyhow::bail!("{function} in {region} accepted a malformed event: {answer:?}");
            };
            ensure!(error_type == "InvalidInput", "{function} in {region}: {error_type}: {error_message}");
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

/// AWS runs a function's calls side by side, in as many instances as its reserved concurrency
/// allows. The sandbox served one call per function at a time (`cargo lambda watch` defaults
/// to `--concurrency 1`), so the failover's health check queued behind the scheduled probe's
/// minute of rounds: 37–48 s between deciding and fencing, and once a `States.Timeout` (#20).
/// Asserted as an order of answers, not a duration: a short call made while a long one runs
/// answers first.
async fn concurrent_calls(sb: &Sandbox) -> anyhow::Result<()> {
    let service = sb.lambda("us-east-2")?;
    let malformed = serde_json::json!({"source": "switchyard-tests"});
    // Started once, so neither call below waits for the function's process to start.
    service.invoke("health-probe", &malformed).await?;
    let long = async {
        let answer = service.invoke("health-probe", &serde_json::json!({"rounds": 4, "intervalSeconds": 2})).await;
        (answer, std::time::Instant::now())
    };
    let short = async {
        // The long call is in by then: it waits 2 s between its rounds.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let answer = service.invoke("health-probe", &malformed).await;
        (answer, std::time::Instant::now())
    };
    let ((long, long_at), (short, short_at)) = tokio::join!(long, short);
    ensure!(matches!(long?, Invocation::Ok(_)), "the four rounds of probes did not answer");
    ensure!(
        matches!(short?, Invocation::FunctionError { error_type, .. } if error_type == "InvalidInput"),
        "the malformed call was not refused"
    );
    ensure!(
        short_at < long_at,
        "the second call waited for the first: it answered {:?} after it",
        short_at.duration_since(long_at)
    );
    Ok(())
}
