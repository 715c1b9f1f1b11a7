//! AWS adapter. **Only this crate (and the sandbox tooling) configures the AWS SDK.**
//!
//! It holds the one place where SDK configuration is built: real AWS (default credential
//! chain, the function's own region) or the sandbox (a loopback endpoint with fixed dummy
//! credentials); the classification of SDK errors into error names ([`errors`]); and the
//! adapters of the ports over `aws-sdk-*`, each behind the crate feature of its SDK so a
//! function links only the clients its IAM role may call (`dynamodb`: [`control_table`]; `rds`: [`global_cluster`] (with `cloudwatch`: [`aurora_engine`]); `route53`: [`route53_records`]; `cloudwatch`: [`serving_signal`]; `sqs`: [`order_queue`], [`queues`]; `secretsmanager`: [`db_secret`]).

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
#[cfg(feature = "cloudwatch")]
pub mod serving_signal;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use switchyard_core::{ErrorName, Region, SwitchyardError};

/// Where AWS API calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsTarget {
    /// Real AWS: credentials from the environment (the Lambda execution role).
    Aws,
    /// The sandbox's API emulator at a loopback URL.
    Sandbox { endpoint_url: String },
}

impl AwsTarget {
    /// `None` means real AWS. A sandbox URL must be loopback: the sandbox never sends
    /// traffic anywhere else, and its dummy credentials must never reach a real endpoint.
    pub fn from_endpoint(endpoint_url: Option<&str>) -> Result<Self, SwitchyardError> {
        let Some(url) = endpoint_url else {
            return Ok(AwsTarget::Aws);
        };
        let rest = url.strip_prefix("http://").unwrap_or("");
        let host = rest.split([':', '/']).next().unwrap_or("");
        if host == "127.0.0.1" || host == "localhost" {
            Ok(AwsTarget::Sandbox { endpoint_url: url.trim_end_matches('/').to_owned() })
        } else {
            Err(SwitchyardError::new(
                ErrorName::MissingConfig,
                format!("sandbox endpoint {url:?} must be http://127.0.0.1:PORT or http://localhost:PORT"),
            ))
        }
    }
}

/// SDK configuration for calls to `region` in `deployment`'s target (AWS, or the sandbox when
/// it names an endpoint).
pub async fn deployment_sdk_config(
    deployment: &switchyard_core::DeploymentConfig,
    region: &Region,
) -> Result<SdkConfig, SwitchyardError> {
    let target = AwsTarget::from_endpoint(deployment.aws_endpoint_url.as_deref())?;
    Ok(sdk_config(&target, region).await)
}

/// SDK configuration for calls to `region`.
pub async fn sdk_config(target: &AwsTarget, region: &Region) -> SdkConfig {
    let loader =
        aws_config::defaults(BehaviorVersion::latest()).region(aws_config::Region::new(region.as_str().to_owned()));
    match target {
        AwsTarget::Aws => loader.load().await,
        AwsTarget::Sandbox { endpoint_url } => {
            loader
                .endpoint_url(endpoint_url)
                .credentials_provider(Credentials::from_keys("sandbox", "sandbox", None))
                .load()
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_endpoints_are_loopback_only() {
        let table = [
            (None, Some(AwsTarget::Aws)),
            (Some("http://127.0.0.1:5000"), Some(AwsTarget::Sandbox { endpoint_url: "http://127.0.0.1:5000".into() })),
            (Some("http://localhost:5000/"), Some(AwsTarget::Sandbox { endpoint_url: "http://localhost:5000".into() })),
            (Some("https://sqs.us-east-1.amazonaws.com"), None),
            (Some("http://10.0.0.2:5000"), None),
            (Some("http://127.0.0.1.evil.example:5000"), None),
        ];
        for (input, expected) in table {
            assert_eq!(AwsTarget::from_endpoint(input).ok(), expected, "{input:?}");
        }
    }
}
