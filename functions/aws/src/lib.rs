//! AWS adapter. **Only this crate (and the sandbox tooling) configures the AWS SDK.**
//!
//! It holds the one place where SDK configuration is built: real AWS (default credential
//! chain, the function's own region) or the sandbox (a loopback endpoint with fixed dummy
//! credentials); the classification of SDK errors into error names ([`errors`]); and the
//! adapters of the ports over `aws-sdk-*`, each behind the crate feature of its SDK so a
//! function links only the clients its IAM role may call (`dynamodb`: [`control_table`]; `rds`: [`global_cluster`] (with `cloudwatch`: [`aurora_engine`]); `route53`: [`route53_records`]; `sqs`: [`order_queue`], [`queues`]; `secretsmanager`: [`db_secret`]).

#[cfg(all(feature = "rds", feature = "cloudwatch"))]
pub mod aurora_engine;
#[cfg(feature = "cloudwatch")]
pub mod aurora_lag;
#[cfg(feature = "dynamodb")]
pub mod control_table;
#[cfg(feature = "secretsmanager")]
pub mod db_secret;
pub mod errors;
#[cfg(feature = "rds")]
pub mod global_cluster;
#[cfg(feature = "cloudwatch")]
pub mod metrics;
#[cfg(feature = "sqs")]
pub mod order_queue;
#[cfg(feature = "sqs")]
pub mod queues;
#[cfg(feature = "route53")]
pub mod route53_records;

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig, timeout::TimeoutConfig};
use aws_credential_types::Credentials;
use switchyard_core::{ErrorName, Region, SwitchyardError, config::AwsEndpoints};

/// Where AWS API calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsTarget {
    /// Real AWS: credentials from the environment (the Lambda execution role).
    Aws,
    /// The sandbox: each region's AWS APIs at a loopback URL (a link the sandbox can cut).
    Sandbox { endpoints: AwsEndpoints },
}

impl AwsTarget {
    /// The sandbox, every region at one loopback URL (the operator's view: no links).
    pub fn sandbox_everywhere(url: &str, regions: impl IntoIterator<Item = Region>) -> Result<Self, SwitchyardError> {
        let map = regions.into_iter().map(|r| (r, url.trim_end_matches('/').to_owned())).collect();
        let endpoints = AwsEndpoints::new(map).map_err(|e| SwitchyardError::new(ErrorName::MissingConfig, e))?;
        Ok(AwsTarget::Sandbox { endpoints })
    }
}

/// How long one AWS call of a function may take, whatever the function. An AWS API that is
/// up answers in milliseconds; one that does not answer (a regional brownout, a blackholed
/// link) must end as a named error (`ServiceUnavailable`, from the SDK's timeout) while the
/// function still has time to act on it, never as the timeout of the whole invocation: the
/// consumer, whose timeout is the shortest (10 s), decides in 8 s. Each attempt has
/// `attempt`, and all of an operation's attempts (the SDK retries throttling and transient
/// errors) together `operation`. The handler as a whole stays bounded by its invocation's
/// deadline (`switchyard_lambda`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTimeouts {
    pub connect: Duration,
    pub attempt: Duration,
    pub operation: Duration,
}

pub const FUNCTION_CALL_TIMEOUTS: CallTimeouts = CallTimeouts {
    connect: Duration::from_secs(2),
    attempt: Duration::from_secs(3),
    operation: Duration::from_secs(6),
};

impl CallTimeouts {
    fn config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// SDK configuration for a function's calls to `region` in `deployment`'s target (AWS, or the
/// sandbox when it names endpoints), every call bounded by [`FUNCTION_CALL_TIMEOUTS`].
pub async fn deployment_sdk_config(
    deployment: &switchyard_core::DeploymentConfig,
    region: &Region,
) -> Result<SdkConfig, SwitchyardError> {
    let target = match &deployment.aws_endpoints {
        None => AwsTarget::Aws,
        Some(endpoints) => AwsTarget::Sandbox { endpoints: endpoints.clone() },
    };
    Ok(sdk_config_with(&target, region, Some(FUNCTION_CALL_TIMEOUTS)).await)
}

/// A sandbox region that no endpoint names is unreachable from here: its calls go to a
/// loopback port nothing listens on (TCP port 1), never to AWS.
const NO_PATH: &str = "http://127.0.0.1:1";

/// SDK configuration for calls to `region`, with the SDK's default timeouts (the operator's
/// tools and the sandbox's; functions use [`deployment_sdk_config`]).
pub async fn sdk_config(target: &AwsTarget, region: &Region) -> SdkConfig {
    sdk_config_with(target, region, None).await
}

async fn sdk_config_with(target: &AwsTarget, region: &Region, timeouts: Option<CallTimeouts>) -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(aws_config::Region::new(region.as_str().to_owned()));
    if let Some(t) = timeouts {
        loader = loader.timeout_config(t.config());
    }
    match target {
        AwsTarget::Aws => loader.load().await,
        AwsTarget::Sandbox { endpoints } => {
            loader
                .endpoint_url(endpoints.0.get(region).map_or(NO_PATH, String::as_str))
                .credentials_provider(Credentials::from_keys("sandbox", "sandbox", None))
                .load()
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review of #16: an AWS call that hangs (a blackholed link: the connection opens, no
    /// answer ever comes) had no deadline but the invocation's; it must end as a named error.
    #[cfg(feature = "dynamodb")]
    #[tokio::test]
    async fn an_aws_call_that_hangs_ends_as_service_unavailable_within_its_timeouts() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        // Accepts every connection and never answers.
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                open.push(conn);
            }
        });
        let region: Region = "us-east-1".parse().expect("region");
        let target = AwsTarget::sandbox_everywhere(&url, [region.clone()]).expect("loopback");
        let quick = CallTimeouts {
            connect: Duration::from_millis(200),
            attempt: Duration::from_millis(300),
            operation: Duration::from_millis(800),
        };
        let client = aws_sdk_dynamodb::Client::new(&sdk_config_with(&target, &region, Some(quick)).await);
        let started = tokio::time::Instant::now();
        let call = client.describe_table().table_name("t").send();
        let answer = tokio::time::timeout(Duration::from_secs(5), call).await.expect("the call hung past 5 s");
        let err = errors::classify("DescribeTable", &answer.expect_err("no answer"));
        assert_eq!(err.name, ErrorName::ServiceUnavailable, "{err}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        held.abort();
    }

    #[tokio::test]
    async fn functions_bound_every_aws_call_well_inside_the_shortest_function_timeout() {
        let d = switchyard_core::DeploymentConfig::from_lookup(|k| match k {
            "SWITCHYARD_ENV" => Some("t".into()),
            "AWS_REGION" | "SWITCHYARD_PRIMARY_REGION" => Some("us-east-1".into()),
            "SWITCHYARD_STANDBY_REGION" => Some("us-east-2".into()),
            "SWITCHYARD_AWS_ENDPOINTS" => Some(r#"{"us-east-1":"http://127.0.0.1:1"}"#.into()),
            _ => None,
        })
        .expect("config");
        let config = deployment_sdk_config(&d, &d.local_region).await.expect("sdk config");
        let t = config.timeout_config().expect("timeouts");
        assert_eq!(t.operation_timeout(), Some(FUNCTION_CALL_TIMEOUTS.operation));
        assert_eq!(t.operation_attempt_timeout(), Some(FUNCTION_CALL_TIMEOUTS.attempt));
        assert_eq!(t.connect_timeout(), Some(FUNCTION_CALL_TIMEOUTS.connect));
        // The consumer's timeout is the shortest; it decides until 2 s before it.
        assert!(FUNCTION_CALL_TIMEOUTS.operation <= Duration::from_secs(8));
    }

    #[test]
    fn sandbox_endpoints_are_loopback_only() {
        let regions = || ["us-east-1".parse::<Region>().expect("test value")];
        for (url, ok) in [
            ("http://127.0.0.1:5000", true),
            ("http://localhost:5000/", true),
            ("https://sqs.us-east-1.amazonaws.com", false),
            ("http://10.0.0.2:5000", false),
            ("http://127.0.0.1.evil.example:5000", false),
        ] {
            assert_eq!(AwsTarget::sandbox_everywhere(url, regions()).is_ok(), ok, "{url:?}");
        }
    }
}
