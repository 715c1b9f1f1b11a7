//! The global stack, deployed first, in the primary region: the hosted zone, the failover
//! records and their health checks (Route 53 is global), and the Aurora global cluster that
//! both regional clusters join.

use serde_json::{Value, json};

use switchyard_model::{AURORA_ENGINE_VERSION, Deployment};

use crate::cfn::{Template, get_att, pascal, r#ref};

/// Seconds a resolver may keep the answer: short, so a failover reaches clients within the
/// RTO; the health checks, not the TTL, decide which answer is given.
pub const RECORD_TTL_SECONDS: u64 = switchyard_core::dns::RECORD_TTL.as_secs();

pub fn global_stack(d: &Deployment) -> Value {
    let mut t = Template::new(format!(
        "switchyard {}: global resources (hosted zone, failover records and health checks in {} mode, Aurora global cluster)",
        d.environment,
        d.dns_mode.as_str()
    ));
    t.resource(
        "GlobalCluster",
        json!({
            "Type": "AWS::RDS::GlobalCluster",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "GlobalClusterIdentifier": d.global_cluster(),
                "Engine": "aurora-postgresql",
                "EngineVersion": AURORA_ENGINE_VERSION,
                "StorageEncrypted": true,
                "DeletionProtection": true,
            }
        }),
    );
    t.resource(
        "HostedZone",
        json!({
            "Type": "AWS::Route53::HostedZone",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "Name": d.domain,
                "HostedZoneConfig": { "Comment": format!("switchyard {}: the trading API's failover records", d.environment) },
            }
        }),
    );
    for region in d.regions.iter() {
        let id = pascal(region.as_str());
        // Route 53's checkers call the region's claim-aware endpoint: only the active writer
        // answers 200 (both DNS modes; `records` also rewrites which record is PRIMARY).
        let config = d.writer_health_check(region).config();
        t.resource(
            &format!("{id}HealthCheck"),
            json!({ "Type": "AWS::Route53::HealthCheck", "Properties": { "HealthCheckConfig": config } }),
        );
        let failover = d.failover_role(region).as_str();
        t.resource(
            &format!("{id}Record"),
            json!({
                "Type": "AWS::Route53::RecordSet",
                "Properties": {
                    "HostedZoneId": r#ref("HostedZone"),
                    "Name": d.api_record(),
                    "Type": "CNAME",
                    "TTL": RECORD_TTL_SECONDS.to_string(),
                    "SetIdentifier": region.as_str(),
                    "Failover": failover,
                    "HealthCheckId": r#ref(&format!("{id}HealthCheck")),
                    "ResourceRecords": [d.regional_api_record(region)],
                }
            }),
        );
    }
    t.output("HostedZoneId", "parameter HostedZoneId of both regional stacks", r#ref("HostedZone"));
    t.output(
        "NameServers",
        "delegate the domain to these",
        json!({ "Fn::Join": [",", get_att("HostedZone", "NameServers")] }),
    );
    t.output(
        "GlobalClusterIdentifier",
        "the Aurora global cluster both regional clusters join",
        r#ref("GlobalCluster"),
    );
    t.finish(&d.tags())
}
