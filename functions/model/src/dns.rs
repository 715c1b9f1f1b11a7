//! Which region `api.<domain>` answers with: Route 53's documented failover rule applied to the
//! model's two failover records and their health checks. moto's health status is canned, so
//! the sandbox and the tests ask here ("where would traffic go now?") instead.

use serde::Serialize;

/// A failover record's role (`Failover` of the record set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordRole {
    Primary,
    Secondary,
}

impl RecordRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordRole::Primary => "PRIMARY",
            RecordRole::Secondary => "SECONDARY",
        }
    }
}

/// A Route 53 health check's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CheckStatus {
    Healthy,
    Unhealthy,
}

/// Which record of a failover pair Route 53 answers with, given each record's health check
/// status (`None`: the record has no health check). Route 53 API Reference, `ResourceRecordSet`,
/// `Failover` (<https://docs.aws.amazon.com/Route53/latest/APIReference/API_ResourceRecordSet.html>):
/// - the primary healthy: the primary, whatever the secondary;
/// - the primary unhealthy and the secondary healthy: the secondary;
/// - the secondary unhealthy: the primary, whatever the primary;
/// - no health check on the secondary and the primary unhealthy: the secondary;
/// - a record without a health check is treated as healthy.
pub fn failover_answer(primary: Option<CheckStatus>, secondary: Option<CheckStatus>) -> RecordRole {
    match (primary.unwrap_or(CheckStatus::Healthy), secondary) {
        (CheckStatus::Healthy, _) => RecordRole::Primary,
        (CheckStatus::Unhealthy, None | Some(CheckStatus::Healthy)) => RecordRole::Secondary,
        (CheckStatus::Unhealthy, Some(CheckStatus::Unhealthy)) => RecordRole::Primary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failover_rule_in_every_health_combination() {
        use CheckStatus::{Healthy, Unhealthy};
        use RecordRole::{Primary, Secondary};
        let table = [
            (Some(Healthy), Some(Healthy), Primary),
            (Some(Healthy), Some(Unhealthy), Primary),
            (Some(Unhealthy), Some(Healthy), Secondary),
            // Both unhealthy: the secondary is unhealthy, so the primary answers.
            (Some(Unhealthy), Some(Unhealthy), Primary),
            (Some(Unhealthy), None, Secondary),
            (Some(Healthy), None, Primary),
            (None, Some(Unhealthy), Primary),
            (None, Some(Healthy), Primary),
        ];
        for (primary, secondary, expected) in table {
            assert_eq!(failover_answer(primary, secondary), expected, "primary {primary:?}, secondary {secondary:?}");
        }
    }
}
