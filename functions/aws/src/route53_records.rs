//! Traffic by Route 53 failover records (the dns-switcher's `records` mode): the writer's
//! region gets the PRIMARY record, the other region SECONDARY.
//!
//! This calls the Route 53 **control plane**, which lives in us-east-1: it is the mode to use
//! when us-east-1 is healthy (planned switchover, failback, a database-only failover). The
//! `health-check` mode is the one that needs no us-east-1 API.

use std::time::{Duration, Instant};

use aws_sdk_route53::{
    Client,
    types::{Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecordSet, ResourceRecordSetFailover},
};
use switchyard_core::{
    ErrorName, Region, SwitchyardError, WriterClaim,
    ports::{PortResult, StepState, TrafficRouter},
};

use crate::errors::classify;

/// How long one `route_to` call waits for INSYNC by default: short, so that the state
/// machines' bounded traffic polls stay within the execution's timeout.
pub const SYNC_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct FailoverRecords {
    client: Client,
    hosted_zone_id: String,
    /// The name clients resolve, e.g. `api.trading.example.com` (no trailing dot).
    record_name: String,
    /// How long one `route_to` call waits for the change to be INSYNC before answering
    /// `InProgress` (the caller polls again).
    pub sync_wait: Duration,
}

impl FailoverRecords {
    pub fn new(client: Client, hosted_zone_id: impl Into<String>, record_name: impl Into<String>) -> Self {
        FailoverRecords {
            client,
            hosted_zone_id: hosted_zone_id.into(),
            record_name: record_name.into(),
            sync_wait: SYNC_WAIT,
        }
    }

    /// The failover records of `record_name`, one per region (set identifier = region).
    pub async fn records(&self) -> PortResult<Vec<ResourceRecordSet>> {
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(&self.hosted_zone_id)
            .start_record_name(&self.record_name)
            .send()
            .await
            .map_err(|e| classify("ListResourceRecordSets", &e))?;
        let wanted = self.record_name.trim_end_matches('.');
        Ok(out
            .resource_record_sets
            .into_iter()
            .filter(|r| r.name().trim_end_matches('.') == wanted && r.failover().is_some())
            .collect())
    }

    async fn wait_in_sync(&self, change_id: &str) -> PortResult<bool> {
        let start = Instant::now();
        loop {
            let change = self.client.get_change().id(change_id).send().await.map_err(|e| classify("GetChange", &e))?;
            if change.change_info().map(|c| c.status()) == Some(&ChangeStatus::Insync) {
                return Ok(true);
            }
            if start.elapsed() >= self.sync_wait {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn region_of(record: &ResourceRecordSet) -> Option<Region> {
    record.set_identifier()?.parse().ok()
}

impl TrafficRouter for FailoverRecords {
    async fn current_target(&self) -> PortResult<Region> {
        self.records()
            .await?
            .iter()
            .find(|r| r.failover() == Some(&ResourceRecordSetFailover::Primary))
            .and_then(region_of)
            .ok_or_else(|| {
                SwitchyardError::new(
                    ErrorName::ResourceNotFound,
                    format!("no PRIMARY failover record for {}", self.record_name),
                )
            })
    }

    /// Makes the claim's writer PRIMARY and every other region SECONDARY, keeping each
    /// record's value, TTL and health check. Already so: `Done`, nothing sent.
    async fn route_to(&self, claim: &WriterClaim) -> PortResult<StepState> {
        let records = self.records().await?;
        if !records.iter().any(|r| region_of(r).as_ref() == Some(&claim.writer)) {
            return Err(SwitchyardError::new(
                ErrorName::ResourceNotFound,
                format!("no failover record for {} under {}", claim.writer, self.record_name),
            ));
        }
        let mut changes = Vec::new();
        for record in &records {
            let role = if region_of(record).as_ref() == Some(&claim.writer) {
                ResourceRecordSetFailover::Primary
            } else {
                ResourceRecordSetFailover::Secondary
            };
            if record.failover() != Some(&role) {
                let mut updated = record.clone();
                updated.failover = Some(role);
                changes.push(
                    Change::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(updated)
                        .build()
                        .map_err(|e| SwitchyardError::new(ErrorName::Internal, format!("building the change: {e}")))?,
                );
            }
        }
        if changes.is_empty() {
            return Ok(StepState::Done);
        }
        let batch = ChangeBatch::builder()
            .comment(format!("switchyard: writer epoch {} in {}", claim.epoch, claim.writer))
            .set_changes(Some(changes))
            .build()
            .map_err(|e| SwitchyardError::new(ErrorName::Internal, format!("building the change batch: {e}")))?;
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(&self.hosted_zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| classify("ChangeResourceRecordSets", &e))?;
        let in_sync = match out.change_info() {
            Some(info) => self.wait_in_sync(info.id()).await?,
            None => false,
        };
        // Read back: the records must now say what we asked for.
        let now = self.current_target().await?;
        if now != claim.writer {
            return Err(SwitchyardError::new(
                ErrorName::ServiceUnavailable,
                format!("after the change {} is still PRIMARY, not {}", now, claim.writer),
            ));
        }
        tracing::info!(record = %self.record_name, writer = %claim.writer, epoch = %claim.epoch, in_sync, "failover records switched");
        Ok(if in_sync { StepState::Done } else { StepState::InProgress })
    }
}
