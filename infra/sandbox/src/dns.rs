//! "Which region does `api.<domain>` answer now?": Route 53's failover routing rule
//! ([`switchyard_model::dns`]) applied to the records and health checks in moto's Route 53,
//! whose own health status is canned. Each `HTTP`/`HTTPS` health check's status is what the
//! world's stand-in for Route 53's checkers reports ([`crate::world::checkers`]): the
//! regional order API's answer on the check's path (the claim-aware `/writer`) every
//! `RequestInterval`, healthy on a 2xx or 3xx status, changed only after `FailureThreshold`
//! consecutive results against it
//! (<https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-determining-health-of-endpoints.html>).
//! Route 53's checkers stand outside both regions: a partition between the pair does not
//! blind them. So the answer moves when Route 53's would (give or take one interval: one
//! checker stands for the fleet). Not modelled: the record's TTL in resolvers, which the
//! RTO's figure leaves out and every output names.

use anyhow::{Context, Result};
use serde::Serialize;
use switchyard_aws::sdk_config;
use switchyard_core::Region;
use switchyard_model::dns::{self, CheckStatus, RecordRole};

use crate::Sandbox;

/// One failover record and what its health check says.
#[derive(Debug, Clone, Serialize)]
pub struct RecordHealth {
    pub region: Region,
    pub role: &'static str,
    pub value: String,
    /// What the health check looked at: `alarm NAME in REGION: STATE` or `GET URL: STATUS`.
    pub evidence: String,
    pub healthy: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DnsAnswer {
    pub record: String,
    /// The region whose record Route 53 answers with.
    pub region: Region,
    pub value: String,
    pub records: Vec<RecordHealth>,
}

impl std::fmt::Display for DnsAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} answers {} ({})", self.record, self.value, self.region)?;
        for r in &self.records {
            let status = if r.healthy { "healthy" } else { "UNHEALTHY" };
            writeln!(f, "  {:<9} {:<10} {status:<9} {}", r.role, r.region, r.evidence)?;
        }
        Ok(())
    }
}

/// The answer now.
pub async fn answer(sb: &Sandbox) -> Result<DnsAnswer> {
    let d = sb.deployment();
    let resources = sb.resources.as_ref().context("the sandbox is not provisioned")?;
    let global = d.regions.primary.clone();
    let route53 = aws_sdk_route53::Client::new(&sdk_config(&sb.aws_target(), &global).await);
    let listed = route53
        .list_resource_record_sets()
        .hosted_zone_id(&resources.global.hosted_zone_id)
        .send()
        .await
        .context("ListResourceRecordSets")?;
    let mut records = Vec::new();
    for rrs in listed.resource_record_sets() {
        if rrs.name().trim_end_matches('.') != d.api_record() {
            continue;
        }
        let (Some(failover), Some(region)) = (rrs.failover(), rrs.set_identifier()) else { continue };
        let region: Region = region.parse().map_err(anyhow::Error::msg)?;
        let role = match failover.as_str() {
            "PRIMARY" => RecordRole::Primary,
            _ => RecordRole::Secondary,
        };
        let value = rrs.resource_records().first().map(|r| r.value().to_owned()).unwrap_or_default();
        let (evidence, healthy) = match rrs.health_check_id() {
            None => ("no health check: always healthy".to_owned(), true),
            Some(id) => check(sb, &route53, id, &region).await?,
        };
        records.push((role, RecordHealth { region, role: role.as_str(), value, evidence, healthy }));
    }
    let status = |role: RecordRole| {
        records
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, h)| if h.healthy { CheckStatus::Healthy } else { CheckStatus::Unhealthy })
    };
    let role = dns::failover_answer(status(RecordRole::Primary), status(RecordRole::Secondary));
    let chosen = records.iter().find(|(r, _)| *r == role).map(|(_, h)| h.clone()).context("no failover record")?;
    Ok(DnsAnswer {
        record: d.api_record(),
        region: chosen.region,
        value: chosen.value,
        records: records.into_iter().map(|(_, h)| h).collect(),
    })
}

async fn check(sb: &Sandbox, route53: &aws_sdk_route53::Client, id: &str, region: &Region) -> Result<(String, bool)> {
    let hc = route53.get_health_check().health_check_id(id).send().await.context("GetHealthCheck")?;
    let config = hc.health_check().and_then(|h| h.health_check_config()).context("no health check config")?;
    match config.r#type().as_str() {
        "HTTP" | "HTTPS" => {
            let checks = crate::world::control::dns_checks(sb.world.control_port).await?;
            let Some(c) = checks.get(region) else {
                return Ok(("Route 53's checkers have not checked it yet: unhealthy".to_owned(), false));
            };
            let status = if c.healthy { "healthy" } else { "unhealthy" };
            Ok((format!("{status} since {} (last {} at {})", c.since, c.last, c.last_at), c.healthy))
        }
        other => Ok((format!("{other} checks are not modelled: healthy"), true)),
    }
}
