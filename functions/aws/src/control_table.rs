//! The control table (the claim store: one DynamoDB global table with multi-Region strong
//! consistency, read and written through this region's replica): the writer claim, with conditional writes so
//! that **an older epoch never wins**, and the ledger of failover and switchover executions.
//!
//! | item `pk`          | attributes                                   | written by            |
//! |--------------------|----------------------------------------------|-----------------------|
//! | `writer`           | `epoch` (N), `writer` (S), `phase` (S: `pending`/`active`; absent = active); the standby's standing under this claim: `standing` (JSON), `standingVersion` (N), `standingName`, `standbyRegion` (S) | promoter `record`, `activate`; the order API's acknowledgement and the catch-up (the standing) |
//! | `lock`             | `owner`, `incident`, `expiresAtMs` (N), `lock` (JSON) | promoter `begin`/`end` |
//! | `handover`         | `epoch` (N), `record` (JSON)                 | promoter `record`     |
//! | `execution#<name>` | `status`, `timeline` (JSON)                  | promoter, every action of an execution |
//! | `arming`           | `arming` (JSON)                              | the operator (`switchyard arm`, `disarm`) |

use aws_sdk_dynamodb::{Client, types::AttributeValue};
use switchyard_core::{
    ErrorName, LeasePhase, SwitchyardError, WriterClaim, WriterEpoch,
    arming::{Arming, ArmingStore},
    ingress::{Eligibility, EligibilityStore, Standing},
    ledger::{ExecutionLedger, HandoverRecord, Lock, LockOutcome, Timeline},
    ports::{ClaimRead, ClaimStore, PortResult, TakeoverGuard},
};

use crate::errors::classify;

const WRITER_KEY: &str = "writer";
const LOCK_KEY: &str = "lock";
const HANDOVER_KEY: &str = "handover";
const ARMING_KEY: &str = "arming";

#[derive(Debug, Clone)]
pub struct ControlTable {
    client: Client,
    table: String,
}

impl ControlTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        ControlTable { client, table: table.into() }
    }

    fn key() -> AttributeValue {
        AttributeValue::S(WRITER_KEY.to_owned())
    }
}

fn parse_claim(item: &std::collections::HashMap<String, AttributeValue>) -> PortResult<WriterClaim> {
    let bad = |what: &str| SwitchyardError::new(ErrorName::Internal, format!("malformed writer claim item: {what}"));
    let epoch = match item.get("epoch") {
        Some(AttributeValue::N(n)) => n.parse::<u64>().map_err(|_| bad("epoch is not a whole number"))?,
        _ => return Err(bad("no numeric epoch")),
    };
    let writer = match item.get("writer") {
        Some(AttributeValue::S(s)) => s.parse().map_err(|_| bad("writer is not a known region"))?,
        _ => return Err(bad("no writer region")),
    };
    let phase = match item.get("phase") {
        None => LeasePhase::Active,
        Some(AttributeValue::S(s)) if s == "pending" => LeasePhase::Pending,
        Some(AttributeValue::S(s)) if s == "active" => LeasePhase::Active,
        Some(_) => return Err(bad("phase is neither pending nor active")),
    };
    Ok(WriterClaim { epoch: WriterEpoch(epoch), writer, phase })
}

impl ClaimStore for ControlTable {
    /// A `GetItem` with `ConsistentRead`; any failure, or no claim item, cannot prove.
    async fn strong_read(&self) -> ClaimRead {
        self.read_claim().await.into()
    }

    /// A `PutItem` conditional on the stored epoch.
    /// A `PutItem` conditional on the stored epoch (and, guarded, on the standing kept on the
    /// same item).
    async fn bump(&self, expected: WriterEpoch, next: WriterClaim, guard: TakeoverGuard) -> PortResult<()> {
        self.write_claim(expected, next, guard).await
    }

    /// An `UpdateItem` of the phase, conditional on the stored epoch and writer.
    async fn activate(&self, claim: &WriterClaim) -> PortResult<()> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", Self::key())
            .update_expression("SET phase = :active")
            .condition_expression("epoch = :epoch AND writer = :writer")
            .expression_attribute_values(":active", s(LeasePhase::Active.to_string()))
            .expression_attribute_values(":epoch", AttributeValue::N(claim.epoch.to_string()))
            .expression_attribute_values(":writer", s(claim.writer.to_string()))
            .send()
            .await;
        match update {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(SwitchyardError::new(
                    ErrorName::StaleEpoch,
                    format!("the stored claim is no longer epoch {} ({}): not activated", claim.epoch, claim.writer),
                ))
            }
            Err(e) => Err(classify("UpdateItem", &e)),
        }
    }
}

/// The standby's standing for the acknowledgement (`switchyard_core::ingress`), kept **on the
/// claim item** (`standing` JSON, and `standingVersion`, `standingName`, `standbyRegion` for
/// conditions): read strongly, written conditionally on its version and on the claim's
/// epoch, so a drop of the standby and a bump into it are one item's conditional writes
/// (MRSC has no transactions). A bump replaces the item: a new claim starts with no standing.
impl EligibilityStore for ControlTable {
    async fn read(&self) -> PortResult<Option<Eligibility>> {
        match self.get(WRITER_KEY).await? {
            Some(item) if item.contains_key("standing") => from_json(&item, "standing").map(Some),
            _ => Ok(None),
        }
    }

    async fn write(&self, expected: u64, next: Eligibility) -> PortResult<()> {
        let version =
            if expected == 0 { "attribute_not_exists(standingVersion)" } else { "standingVersion = :expected" };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", Self::key())
            .update_expression(
                "SET standing = :standing, standingVersion = :version, standingName = :name, standbyRegion = :standby",
            )
            .condition_expression(format!("epoch = :epoch AND {version}"))
            .expression_attribute_values(":standing", json_of(&next)?)
            .expression_attribute_values(":version", AttributeValue::N(next.version.to_string()))
            .expression_attribute_values(":name", s(standing_name(next.standing)))
            .expression_attribute_values(":standby", s(next.standby.to_string()))
            .expression_attribute_values(":epoch", AttributeValue::N(next.epoch.0.to_string()));
        if expected != 0 {
            update = update.expression_attribute_values(":expected", AttributeValue::N(expected.to_string()));
        }
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(SwitchyardError::new(
                    ErrorName::StaleEpoch,
                    format!(
                        "the standby's standing is no longer version {expected} under epoch {}, or the claim moved",
                        next.epoch
                    ),
                ))
            }
            Err(e) => Err(classify("UpdateItem", &e)),
        }
    }
}

fn standing_name(standing: Standing) -> &'static str {
    match standing {
        Standing::Eligible => "eligible",
        Standing::Ineligible => "ineligible",
        Standing::CatchingUp => "catchingUp",
    }
}

/// The takeover target an operator armed (`switchyard_core::arming`): read strongly.
impl ArmingStore for ControlTable {
    async fn armed(&self) -> PortResult<Option<Arming>> {
        self.get(ARMING_KEY).await?.map(|item| from_json(&item, "arming")).transpose()
    }

    async fn arm(&self, arming: &Arming) -> PortResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(ARMING_KEY))
            .item("arming", json_of(arming)?)
            .send()
            .await
            .map_err(|e| classify("PutItem", &e))?;
        Ok(())
    }

    async fn disarm(&self) -> PortResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(ARMING_KEY))
            .send()
            .await
            .map_err(|e| classify("DeleteItem", &e))?;
        Ok(())
    }
}

impl ControlTable {
    async fn read_claim(&self) -> PortResult<WriterClaim> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", Self::key())
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", &e))?;
        let item = out.item.ok_or_else(|| {
            SwitchyardError::new(ErrorName::ResourceNotFound, format!("{} holds no writer claim", self.table))
        })?;
        parse_claim(&item)
    }

    async fn write_claim(&self, expected: WriterEpoch, next: WriterClaim, guard: TakeoverGuard) -> PortResult<()> {
        if next.epoch <= expected {
            return Err(SwitchyardError::new(
                ErrorName::StaleEpoch,
                format!("offered epoch {} is not newer than the expected {expected}", next.epoch),
            ));
        }
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", Self::key())
            .item("epoch", AttributeValue::N(next.epoch.to_string()))
            .item("writer", AttributeValue::S(next.writer.to_string()))
            .item("phase", s(next.phase.to_string()))
            .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()));
        let put = match guard {
            TakeoverGuard::Waived => put.condition_expression("epoch = :expected"),
            TakeoverGuard::TargetEligible => put
                .condition_expression(
                    "epoch = :expected AND (attribute_not_exists(standingName) OR standingName = :eligible \
                     OR standbyRegion <> :target)",
                )
                .expression_attribute_values(":eligible", s(standing_name(Standing::Eligible)))
                .expression_attribute_values(":target", s(next.writer.to_string())),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                // Which condition failed: the epoch, or the standing.
                let now = self.read_claim().await?;
                if now.epoch == expected {
                    let standing = self.read().await?.map(|e| e.standing);
                    return Err(SwitchyardError::new(
                        ErrorName::NotReady,
                        format!(
                            "{} is {standing:?} for the acknowledgement (recorded under epoch {expected}): not bumped",
                            next.writer
                        ),
                    ));
                }
                Err(SwitchyardError::new(
                    ErrorName::StaleEpoch,
                    format!("the stored epoch is no longer {expected}: another handover won"),
                ))
            }
            Err(e) => Err(classify("PutItem", &e)),
        }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn json_of<T: serde::Serialize>(v: &T) -> PortResult<AttributeValue> {
    serde_json::to_string(v)
        .map(AttributeValue::S)
        .map_err(|e| SwitchyardError::new(ErrorName::Internal, format!("cannot encode a control table item: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(
    item: &std::collections::HashMap<String, AttributeValue>,
    attribute: &str,
) -> PortResult<T> {
    match item.get(attribute) {
        Some(AttributeValue::S(text)) => serde_json::from_str(text).map_err(|e| {
            SwitchyardError::new(ErrorName::Internal, format!("malformed control table item ({attribute}): {e}"))
        }),
        _ => Err(SwitchyardError::new(ErrorName::Internal, format!("control table item without {attribute}"))),
    }
}

fn lost_condition<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(
    e: &aws_sdk_dynamodb::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> bool {
    e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException")
}

impl ControlTable {
    async fn get(&self, pk: &str) -> PortResult<Option<std::collections::HashMap<String, AttributeValue>>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", &e))?;
        Ok(out.item)
    }
}

impl ControlTable {
    /// Every execution's timeline the table holds, the most recently detected first. A
    /// strongly consistent Scan, paged: for the operator's `executions` and `status`, never on
    /// a function's path (the table holds a handful of items and one per execution).
    pub async fn timelines(&self) -> PortResult<Vec<Timeline>> {
        let mut timelines = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :execution)")
                .expression_attribute_values(":execution", s("execution#"))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("Scan", &e))?;
            for item in page.items() {
                timelines.push(from_json::<Timeline>(item, "timeline")?);
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        timelines.sort_by(|a, b| b.detected.cmp(&a.detected).then_with(|| b.execution.cmp(&a.execution)));
        Ok(timelines)
    }
}

impl ControlTable {
    /// The write of the lock's item, whole; the caller adds its condition (`#owner` and
    /// `:owner` are bound).
    fn put_lock(
        &self,
        lock: &Lock,
    ) -> PortResult<aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder> {
        Ok(self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(LOCK_KEY))
            .item("owner", s(&lock.owner))
            .item("incident", s(&lock.incident))
            .item("expiresAtMs", AttributeValue::N(lock.expires_at.unix_millis().to_string()))
            .item("lock", json_of(lock)?)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(&lock.owner)))
    }
}

impl ExecutionLedger for ControlTable {
    async fn held_lock(&self) -> PortResult<Option<Lock>> {
        self.get(LOCK_KEY).await?.map(|item| from_json(&item, "lock")).transpose()
    }

    async fn acquire(&self, lock: &Lock) -> PortResult<LockOutcome> {
        // Twice: a lock released between the refused write and the read is worth one retry.
        for _ in 0..2 {
            let put = self
                .put_lock(lock)?
                .condition_expression("attribute_not_exists(pk) OR #owner = :owner OR expiresAtMs <= :now")
                .expression_attribute_values(":now", AttributeValue::N(lock.acquired_at.unix_millis().to_string()))
                .send()
                .await;
            match put {
                Ok(_) => return Ok(LockOutcome::Acquired),
                Err(e) if lost_condition(&e) => {
                    if let Some(held) = self.held_lock().await? {
                        return Ok(Lock::refusal(&held, &lock.incident));
                    }
                }
                Err(e) => return Err(classify("PutItem", &e)),
            }
        }
        Err(SwitchyardError::new(ErrorName::Throttled, "the failover lock changed hands twice while being taken"))
    }

    async fn renew(&self, lock: &Lock) -> PortResult<bool> {
        let put = self.put_lock(lock)?.condition_expression("#owner = :owner").send().await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if lost_condition(&e) => Ok(false),
            Err(e) => Err(classify("PutItem", &e)),
        }
    }

    async fn release(&self, owner: &str) -> PortResult<bool> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(LOCK_KEY))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match delete {
            Ok(_) => Ok(true),
            Err(e) if lost_condition(&e) => Ok(false),
            Err(e) => Err(classify("DeleteItem", &e)),
        }
    }

    async fn last_handover(&self) -> PortResult<Option<HandoverRecord>> {
        self.get(HANDOVER_KEY).await?.map(|item| from_json(&item, "record")).transpose()
    }

    async fn record_handover(&self, record: &HandoverRecord) -> PortResult<()> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(HANDOVER_KEY))
            .item("epoch", AttributeValue::N(record.epoch.to_string()))
            .item("record", json_of(record)?)
            .condition_expression("attribute_not_exists(pk) OR epoch <= :epoch")
            .expression_attribute_values(":epoch", AttributeValue::N(record.epoch.to_string()))
            .send()
            .await;
        match put {
            // A newer handover is already recorded: it stays.
            Ok(_) => Ok(()),
            Err(e) if lost_condition(&e) => Ok(()),
            Err(e) => Err(classify("PutItem", &e)),
        }
    }

    async fn timeline(&self, execution: &str) -> PortResult<Option<Timeline>> {
        self.get(&format!("execution#{execution}")).await?.map(|item| from_json(&item, "timeline")).transpose()
    }

    async fn save_timeline(&self, timeline: &Timeline) -> PortResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("execution#{}", timeline.execution)))
            .item("status", s(timeline.status.to_string()))
            .item("timeline", json_of(timeline)?)
            .send()
            .await
            .map_err(|e| classify("PutItem", &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::{
        error::ErrorMetadata,
        operation::{
            get_item::{GetItemError, GetItemOutput},
            put_item::PutItemError,
        },
        types::error::{ConditionalCheckFailedException, ProvisionedThroughputExceededException},
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn claim(epoch: u64, writer: &str) -> WriterClaim {
        WriterClaim::active(WriterEpoch(epoch), writer.parse().expect("region"))
    }

    #[tokio::test]
    async fn reads_the_claim_and_names_its_absence() {
        let found = mock!(Client::get_item).then_output(|| {
            GetItemOutput::builder()
                .item("pk", AttributeValue::S("writer".into()))
                .item("epoch", AttributeValue::N("7".into()))
                .item("writer", AttributeValue::S("us-east-2".into()))
                .build()
        });
        let table = ControlTable::new(mock_client!(aws_sdk_dynamodb, [&found]), "t");
        assert_eq!(table.strong_read().await.proven(), Ok(claim(7, "us-east-2")));

        let missing = mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let table = ControlTable::new(mock_client!(aws_sdk_dynamodb, [&missing]), "t");
        assert_eq!(table.strong_read().await.proven().map_err(|e| e.name), Err(ErrorName::ResourceNotFound));
    }

    #[tokio::test]
    async fn a_lost_condition_is_a_stale_epoch() {
        let lost = mock!(Client::put_item).then_error(|| {
            PutItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build())
        });
        // Which condition failed is read back: the epoch moved on.
        let moved = mock!(Client::get_item).then_output(|| {
            GetItemOutput::builder()
                .item("pk", AttributeValue::S("writer".into()))
                .item("epoch", AttributeValue::N("3".into()))
                .item("writer", AttributeValue::S("us-east-1".into()))
                .build()
        });
        let table = ControlTable::new(mock_client!(aws_sdk_dynamodb, [&lost, &moved]), "t");
        let got = table.bump(WriterEpoch(1), claim(2, "us-east-2"), TakeoverGuard::Waived).await.map_err(|e| e.name);
        assert_eq!(got, Err(ErrorName::StaleEpoch));
    }

    #[tokio::test]
    async fn throttling_and_denial_are_classified() {
        let throttled = mock!(Client::get_item).then_error(|| {
            GetItemError::ProvisionedThroughputExceededException(
                // As the SDK parses it from a response: the code travels in the metadata.
                ProvisionedThroughputExceededException::builder()
                    .message("slow down")
                    .meta(ErrorMetadata::builder().code("ProvisionedThroughputExceededException").build())
                    .build(),
            )
        });
        let denied = mock!(Client::put_item).then_error(|| {
            PutItemError::generic(ErrorMetadata::builder().code("AccessDeniedException").message("not allowed").build())
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&throttled, &denied]);
        let table = ControlTable::new(client, "t");
        assert_eq!(table.strong_read().await.proven().map_err(|e| e.name), Err(ErrorName::Throttled));
        let got = table.bump(WriterEpoch(1), claim(2, "us-east-2"), TakeoverGuard::Waived).await.map_err(|e| e.name);
        assert_eq!(got, Err(ErrorName::AccessDenied));
    }
}
