//! How traffic moves to the writer's region.

use serde::{Deserialize, Serialize};

/// How traffic is moved on failover (see ARCHITECTURE.md for the trade-off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsMode {
    /// Flip the CloudWatch metric that the Route 53 health checks follow: data plane only,
    /// works with us-east-1 down. The default.
    HealthCheck,
    /// UPSERT the records through the Route 53 control plane (lives in us-east-1).
    Records,
}

impl DnsMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            DnsMode::HealthCheck => "health-check",
            DnsMode::Records => "records",
        }
    }
}

impl std::str::FromStr for DnsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "health-check" => Ok(DnsMode::HealthCheck),
            "records" => Ok(DnsMode::Records),
            _ => Err("expected health-check or records".to_owned()),
        }
    }
}
