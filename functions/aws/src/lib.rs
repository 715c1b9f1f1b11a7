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

/// SDK configuration for calls to `region` in `deployment`'s target (AWS, or the sandbox when
/// it names endpoints).
pub async fn deployment_sdk_config(
    deployment: &switchyard_core::DeploymentConfig,
    region: &Region,
) -> Result<SdkConfig, SwitchyardError> {
    let target = match &deployment.aws_endpoints {
        None => AwsTarget::Aws,
        Some(endpoints) => AwsTarget::Sandbox { endpoints: endpoints.clone() },
    };
    Ok(sdk_config(&target, region).await)
}

/// A sandbox region that no endpoint names is unreachable from here: its calls go to a
/// loopback port nothing listens on (TCP port 1), never to AWS.
const NO_PATH: &str = "http://127.0.0.1:1";

/// SDK configuration for calls to `region`.
pub async fn sdk_config(target: &AwsTarget, region: &Region) -> SdkConfig {
    let loader =
        aws_config::defaults(BehaviorVersion::latest()).region(aws_config::Region::new(region.as_str().to_owned()));
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
