//! One SQS batch, start to finish: parse every message, decide the mode from the writer
//! claim, apply (active) or reconcile against the local replica (shadow), and answer which
//! messages must stay on the queue (`batchItemFailures`).
//!
//! What happens to each message:
//!
//! | verdict        | when                                                 | on the queue            |
//! |----------------|------------------------------------------------------|-------------------------|
//! | applied        | active, inserted now                                 | deleted                 |
//! | already applied| active, the order id holds this very order           | deleted                 |
//! | replicated     | shadow, the local replica holds this very order      | deleted                 |
//! | poison         | not an order, or an order id reused for other content| kept → DLQ after max receives |
//! | kept           | valid but not applied yet (shadow and not replicated yet, database or claim unavailable, claim changed mid-batch) | kept, re-enqueued before its last receive; a shadow's back after [`SHADOW_RECHECK`] |
//!
//! **The DLQ only ever receives poison.** A valid order that keeps failing because of an
//! outage is copied back onto the queue before its last receive (the copy starts with a
//! fresh receive count) and the original deleted, so an outage longer than the redrive
//! window cannot move acknowledged orders into the DLQ.

use std::{collections::HashMap, time::Duration};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use switchyard_core::{
    CommitWindow, DeploymentConfig, ErrorName, Order, Region, Rejection, SwitchyardError, WriterClaim,
    config::{ConfigError, keys},
    order::{SHADOW_RECHECK, parse_body},
    ports::{Applied, ClaimStore, Delivery, OrderRequeue, OrderStore, PortResult, Presence, Requeue},
    steps::ActivationAnswer,
};
use switchyard_lambda::{ANSWER_MARGIN, Deadline};
use switchyard_postgres::{DbSettings, PgEndpoint};

use crate::mode::{Mode, decide};

/// A shadow's kept order acknowledged this long ago is stranded: the writer would have
/// applied it and the replica would hold it by now had it reached the writer's queue (the
/// API sends to both queues at once). It goes to the writer's queue too. Measured from the
/// order's own `acknowledgedAt`, which every copy keeps (a receive count restarts with each
/// re-enqueued copy).
const STRANDED_AFTER: Duration = Duration::from_secs(60);
/// Deciding a batch stops this long before the invocation's deadline, leaving the time to
/// copy kept orders back onto the queue (one `SendMessageBatch`) and answer.
const REQUEUE_RESERVE: Duration = Duration::from_secs(2);

/// What the consumer is asked: an SQS batch (its event source), or, from a state machine,
/// whether it runs active under an epoch.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum ConsumerInput {
    Activation { activation: ActivationRequest },
    Batch(SqsEvent),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivationRequest {
    pub epoch: switchyard_core::WriterEpoch,
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub deployment: DeploymentConfig,
    pub control_table: String,
    /// This region's database.
    pub database: PgEndpoint,
    pub queue_url: String,
    pub max_receives: u32,
    /// Where the database credentials live (never in the environment).
    pub db_secret_id: Option<String>,
    /// TLS to the database, trusting the configured CA bundle.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl ConsumerConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + Clone) -> Result<Self, ConfigError> {
        DeploymentConfig::read_with(lookup, |r, d| {
            let control_table = r.required::<String>(keys::CONTROL_TABLE);
            let queue_url = r.required::<String>(keys::ORDERS_QUEUE_URL);
            let max_receives = r.optional::<u32>(keys::ORDERS_MAX_RECEIVES).unwrap_or(5);
            let db = DbSettings::read(r, keys::DB_SECRET_ID);
            if max_receives < 2 {
                r.invalid(
                    keys::ORDERS_MAX_RECEIVES,
                    max_receives.to_string(),
                    "at least 2: one delivery, one re-enqueue",
                );
            }
            let database = d.and_then(|d| db.endpoint(r, &d.local_region));
            let DbSettings { secret_id: db_secret_id, tls, .. } = db;
            let (control_table, queue_url, database) = (control_table?, queue_url?, database?);
            Some(move |deployment| ConsumerConfig {
                deployment,
                control_table,
                database,
                queue_url,
                max_receives,
                db_secret_id,
                tls,
            })
        })
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Applied,
    AlreadyApplied,
    Replicated,
    Poison(String),
    Kept(String),
    /// Kept, but copied back onto the queue before its last receive.
    Requeued,
}

impl Verdict {
    /// Whether the message stays on the queue (a `batchItemFailures` entry).
    pub fn stays(&self) -> bool {
        matches!(self, Verdict::Poison(_) | Verdict::Kept(_))
    }
}

/// An SQS record as the consumer needs it.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub receive_count: u32,
    /// What the queue needs to change the message's visibility (every record of a real event
    /// has one).
    pub receipt_handle: Option<String>,
}

impl Message {
    pub fn from_event(event: SqsEvent) -> PortResult<Vec<Message>> {
        event
            .records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let id = r.message_id.filter(|id| !id.is_empty()).ok_or_else(|| {
                    SwitchyardError::new(ErrorName::InvalidInput, format!("record {i} has no messageId"))
                })?;
                let receive_count =
                    r.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1);
                Ok(Message { id, body: r.body.unwrap_or_default(), receive_count, receipt_handle: r.receipt_handle })
            })
            .collect()
    }
}

/// The batch, sorted: rejected messages, first deliveries of each order id, and later
/// copies of an order id within the same batch (which follow their first's verdict).
#[derive(Debug, Default)]
pub struct Sorted {
    pub rejected: Vec<(usize, Rejection)>,
    pub firsts: Vec<(usize, Order)>,
    /// (index, index of the first delivery of the same order)
    pub copies: Vec<(usize, usize)>,
    /// (index, why): an order id repeated in the batch with other content.
    pub conflicts: Vec<(usize, String)>,
}

pub fn sort(messages: &[Message]) -> Sorted {
    let mut s = Sorted::default();
    let mut first_of: HashMap<String, usize> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        match parse_body(&m.body) {
            Err(r) => s.rejected.push((i, r)),
            Ok(order) => match first_of.get(&order.order_id) {
                None => {
                    first_of.insert(order.order_id.clone(), s.firsts.len());
                    s.firsts.push((i, order));
                }
                Some(&k) => {
                    let (first, first_order) = &s.firsts[k];
                    if first_order.fingerprint() == order.fingerprint() {
                        s.copies.push((i, *first));
                    } else {
                        s.conflicts
                            .push((i, format!("order id {} repeated in the batch with other content", order.order_id)));
                    }
                }
            },
        }
    }
    s
}

/// Messages to re-enqueue: kept ones at their last or second-to-last receive (the receive
/// count is approximate; one spare receive costs one extra copy at most).
pub fn due_for_requeue(messages: &[Message], verdicts: &[Verdict], max_receives: u32) -> Vec<usize> {
    (0..messages.len())
        .filter(|&i| matches!(verdicts[i], Verdict::Kept(_)) && messages[i].receive_count + 1 >= max_receives)
        .collect()
}

#[derive(Debug, Default)]
struct State {
    /// The claim the last batch ran under.
    previous: Option<WriterClaim>,
}

/// The consumer of one region, over its ports: the orders database `S`, the queue `Q` (for
/// re-enqueueing) and the writer claim `C`: the one claim store (a DynamoDB global table with
/// multi-Region strong consistency), read through this region's replica.
#[derive(Debug)]
pub struct Consumer<S, Q, C> {
    config: ConsumerConfig,
    claims: C,
    queue: Q,
    store: S,
    state: std::sync::Mutex<State>,
}

impl<S: OrderStore, Q: OrderRequeue, C: ClaimStore> Consumer<S, Q, C> {
    pub fn new(config: ConsumerConfig, claims: C, queue: Q, store: S) -> Self {
        Consumer { config, claims, queue, store, state: std::sync::Mutex::new(State::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub async fn handle(&self, event: SqsEvent, deadline: Deadline) -> PortResult<SqsBatchResponse> {
        let messages = Message::from_event(event)?;
        let sorted = sort(&messages);
        let mut verdicts: Vec<Verdict> = vec![Verdict::Kept("undecided".into()); messages.len()];
        for (i, r) in &sorted.rejected {
            verdicts[*i] = Verdict::Poison(r.to_string());
        }
        for (i, why) in &sorted.conflicts {
            verdicts[*i] = Verdict::Poison(why.clone());
        }

        // Everything that can hang (the claim, the database) must end in time to copy kept
        // orders back onto the queue: a function that times out makes no copy, and each such
        // receive walks a valid order closer to the DLQ.
        let decided = tokio::time::timeout_at(deadline.before(REQUEUE_RESERVE), async {
            let mode = self.mode().await;
            let outcome = match &mode {
                Ok(Mode::Active(claim)) => self.apply(&messages, &sorted.firsts, claim).await,
                Ok(Mode::Shadow(_)) => self.reconcile(&sorted.firsts).await,
                Ok(Mode::Halted(why)) => Err(SwitchyardError::new(ErrorName::Internal, why.clone())),
                Err(e) => Err(e.clone()),
            };
            (mode, outcome)
        })
        .await;
        let (mode, outcome) = decided.unwrap_or_else(|_| {
            let late = SwitchyardError::new(
                ErrorName::ServiceUnavailable,
                format!(
                    "the claim or the database did not answer within the invocation's time (deciding stops {} ms before its deadline)",
                    REQUEUE_RESERVE.as_millis()
                ),
            );
            (Err(late.clone()), Err(late))
        });
        let epoch = match &mode {
            Ok(Mode::Active(c) | Mode::Shadow(c)) => Some(c.epoch.0),
            _ => None,
        };
        let outcome_ok = outcome.is_ok();
        match outcome {
            Ok(firsts) => {
                for ((i, _), v) in sorted.firsts.iter().zip(firsts) {
                    verdicts[*i] = v;
                }
            }
            Err(e) => {
                tracing::error!(error_type = e.name.as_str(), "{}; keeping every valid order", e.message);
                for (i, _) in &sorted.firsts {
                    verdicts[*i] = Verdict::Kept(e.to_string());
                }
            }
        }
        let shadow_reconciled = matches!(mode, Ok(Mode::Shadow(_))) && outcome_ok;
        if let Ok(Mode::Shadow(claim)) = &mode {
            self.forward_stranded(&messages, &sorted.firsts, &verdicts, &claim.writer, deadline).await;
        }
        for (i, first) in &sorted.copies {
            verdicts[*i] = verdicts[*first].clone();
        }
        self.requeue(&messages, &mut verdicts, deadline).await;
        if shadow_reconciled {
            self.recheck_soon(&messages, &verdicts, deadline).await;
        }
        self.report(&messages, &verdicts, mode.as_ref().map(Mode::name).unwrap_or("unknown"), epoch);
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = messages
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| v.stays())
            .map(|(m, _)| {
                let mut f = BatchItemFailure::default();
                f.item_identifier = m.id.clone();
                f
            })
            .collect();
        Ok(response)
    }

    /// A state machine's `AwaitConsumer` step, after the epoch bump: confirms that this
    /// region's consumer now runs **active** under `epoch` (the bump is what activates it)
    /// and reports the first order it applied under that epoch, if any yet.
    pub async fn activation(&self, request: ActivationRequest) -> PortResult<ActivationAnswer> {
        let local = &self.config.deployment.local_region;
        let claim = match self.mode().await? {
            Mode::Active(claim) if claim.epoch == request.epoch => claim,
            Mode::Halted(why) => return Err(SwitchyardError::new(ErrorName::Internal, why)),
            Mode::Active(claim) | Mode::Shadow(claim) => {
                return Err(SwitchyardError::new(
                    ErrorName::NotReady,
                    format!(
                        "the consumer in {local} sees epoch {} held by {}, not epoch {} held by {local}",
                        claim.epoch, claim.writer, request.epoch
                    ),
                ));
            }
        };
        let first = self.store.first_applied(local, claim.epoch).await?;
        Ok(ActivationAnswer {
            region: local.clone(),
            epoch: claim.epoch,
            first_applied_at: first.as_ref().map(|f| f.at),
            applied_under_epoch: first.as_ref().map_or(0, |f| f.count),
        })
    }

    /// The writer claim, by a strong read of the one claim store. A replica cut off from the
    /// store's majority cannot answer one (the read fails), so no claim older than the newest
    /// is ever acted on: there is no local fallback.
    async fn claim(&self) -> PortResult<WriterClaim> {
        self.claims.strong_read().await.proven()
    }

    async fn mode(&self) -> PortResult<Mode> {
        let observed = self.claim().await?;
        let local = &self.config.deployment.local_region;
        let mut state = self.state();
        let mode = decide(local, state.previous.as_ref(), &observed);
        match (&state.previous, &mode) {
            (Some(before), Mode::Shadow(now)) if before.lets_apply(local) => tracing::warn!(
                region = %local, from_epoch = before.epoch.0, epoch = now.epoch.0, writer = %now.writer,
                "a newer epoch names another writer: stopped applying, now shadow"
            ),
            (Some(before), Mode::Active(now)) if before != now => tracing::warn!(
                region = %local, from_epoch = before.epoch.0, epoch = now.epoch.0, "this region is the writer now: applying"
            ),
            _ => {}
        }
        if !matches!(mode, Mode::Halted(_)) {
            state.previous = Some(observed);
        }
        Ok(mode)
    }

    /// Active: insert every new order in one transaction, under `claim`, and commit only if
    /// the claim is still `claim` just before the commit. An order the database refuses (a
    /// constraint the parser does not check) would fail its whole batch on every redelivery:
    /// then each order is applied alone, and only the refused one goes (to the DLQ).
    async fn apply(
        &self,
        messages: &[Message],
        firsts: &[(usize, Order)],
        claim: &WriterClaim,
    ) -> PortResult<Vec<Verdict>> {
        let refused = |e: SwitchyardError| Verdict::Poison(format!("the database refuses this order: {e}"));
        match self.apply_together(messages, firsts, claim).await {
            Err(e) if e.name == ErrorName::InvalidInput && firsts.len() == 1 => Ok(vec![refused(e)]),
            Err(e) if e.name == ErrorName::InvalidInput => {
                tracing::warn!(error = %e, orders = firsts.len(), "the database refused the batch: applying its orders one by one");
                let mut verdicts = Vec::with_capacity(firsts.len());
                for first in firsts {
                    verdicts.push(match self.apply_together(messages, std::slice::from_ref(first), claim).await {
                        Ok(mut one) => one.pop().unwrap_or_else(|| Verdict::Kept("no outcome".into())),
                        Err(e) if e.name == ErrorName::InvalidInput => refused(e),
                        Err(e) => Verdict::Kept(e.to_string()),
                    });
                }
                // Every order refused alone: the fault is the database's (a bad migration, a
                // constraint no order can meet), not theirs. Keep them all; nothing for the DLQ.
                if verdicts.iter().all(|v| matches!(v, Verdict::Poison(_))) {
                    tracing::error!(error = %e, "the database refuses every order of the batch alone: keeping them all");
                    return Err(e);
                }
                Ok(verdicts)
            }
            other => other,
        }
    }

    /// [`Consumer::apply`]'s one transaction.
    async fn apply_together(
        &self,
        messages: &[Message],
        firsts: &[(usize, Order)],
        claim: &WriterClaim,
    ) -> PortResult<Vec<Verdict>> {
        if firsts.is_empty() {
            return Ok(Vec::new());
        }
        let deliveries: Vec<Delivery<'_>> =
            firsts.iter().map(|(i, o)| Delivery { message_id: &messages[*i].id, order: o }).collect();
        // Read again just before the commit: a claim that moved during the batch applies nothing,
        // and the commit must follow this read's start within the lease's commit window.
        let still_current = async {
            let window = CommitWindow::start();
            let now = self.claim().await?;
            if now == *claim {
                Ok(window)
            } else {
                Err(SwitchyardError::new(
                    ErrorName::StaleEpoch,
                    format!("the claim moved to epoch {} ({}) during the batch: not applied", now.epoch, now.writer),
                ))
            }
        };
        Ok(self
            .store
            .apply(&deliveries, claim, still_current)
            .await?
            .into_iter()
            .zip(firsts)
            .map(|(a, (_, o))| match a {
                Applied::Inserted => Verdict::Applied,
                Applied::AlreadyPresent => Verdict::AlreadyApplied,
                Applied::Conflict => {
                    Verdict::Poison(format!("order id {} already holds an order with other content", o.order_id))
                }
            })
            .collect())
    }

    /// Shadow: delete what the local replica already holds, keep the rest.
    async fn reconcile(&self, firsts: &[(usize, Order)]) -> PortResult<Vec<Verdict>> {
        if firsts.is_empty() {
            return Ok(Vec::new());
        }
        let orders: Vec<&Order> = firsts.iter().map(|(_, o)| o).collect();
        Ok(self
            .store
            .presence(&orders)
            .await?
            .into_iter()
            .zip(firsts)
            .map(|(p, (_, o))| match p {
                Presence::Same => Verdict::Replicated,
                Presence::Different => {
                    Verdict::Poison(format!("order id {} already holds an order with other content", o.order_id))
                }
                Presence::Absent => Verdict::Kept("not in the local replica yet".into()),
            })
            .collect())
    }

    /// Shadow: an order kept here and acknowledged over [`STRANDED_AFTER`] ago is not in the
    /// replica, so the writer has not applied it: perhaps it never reached the writer's queue
    /// (a lost send of the API). A copy goes to the writer's queue, where it is applied once
    /// (order ids are idempotent); this region keeps its own until the replica holds the order.
    /// Said at error level: a stranded order is worth a look.
    async fn forward_stranded(
        &self,
        messages: &[Message],
        firsts: &[(usize, Order)],
        verdicts: &[Verdict],
        writer: &Region,
        deadline: Deadline,
    ) {
        let now = switchyard_core::order::Timestamp::now();
        let stranded: Vec<Requeue<'_>> = firsts
            .iter()
            .filter(|(i, o)| {
                matches!(verdicts[*i], Verdict::Kept(_))
                    && now.seconds_since(&o.acknowledged_at) >= STRANDED_AFTER.as_secs_f64()
            })
            .map(|(i, _)| Requeue { message_id: &messages[*i].id, body: &messages[*i].body })
            .collect();
        if stranded.is_empty() {
            return;
        }
        let ids: Vec<&str> = stranded.iter().map(|m| m.message_id).collect();
        let sent =
            tokio::time::timeout_at(deadline.before(REQUEUE_RESERVE / 2), self.queue.forward(writer, &stranded)).await;
        match sent {
            Ok(Ok(forwarded)) => tracing::error!(
                stranded = forwarded.len(),
                writer = %writer,
                "stranded orders (kept here, not in the replica {} s after their acknowledgement) copied to the writer's queue: {forwarded:?}",
                STRANDED_AFTER.as_secs()
            ),
            Ok(Err(e)) => tracing::error!(
                stranded = ids.len(),
                error_type = e.name.as_str(),
                "stranded orders could not reach the writer's queue: {}; kept here: {ids:?}",
                e.message
            ),
            Err(_) => {
                tracing::error!(stranded = ids.len(), "the writer's queue did not answer in time; kept here: {ids:?}")
            }
        }
    }

    /// Shadow: what it kept (not in the replica yet) comes back after [`SHADOW_RECHECK`], not
    /// after the queue's visibility timeout. Best effort: a message whose visibility did not
    /// change still comes back, later. Not a message near its last receive: one still kept
    /// there is one whose re-enqueue failed, and two quick receives more would take it to the
    /// DLQ; it waits the visibility timeout for the queue to recover.
    async fn recheck_soon(&self, messages: &[Message], verdicts: &[Verdict], deadline: Deadline) {
        let handles: Vec<&str> = messages
            .iter()
            .zip(verdicts)
            .filter(|(m, v)| matches!(v, Verdict::Kept(_)) && m.receive_count + 1 < self.config.max_receives)
            .filter_map(|(m, _)| m.receipt_handle.as_deref())
            .collect();
        if handles.is_empty() {
            return;
        }
        let moved = tokio::time::timeout_at(
            deadline.before(ANSWER_MARGIN),
            self.queue.redeliver_after(&handles, SHADOW_RECHECK),
        )
        .await;
        match moved {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(
                error_type = e.name.as_str(),
                "kept orders wait the full visibility timeout: {}",
                e.message
            ),
            Err(_) => tracing::warn!("kept orders wait the full visibility timeout: the queue did not answer in time"),
        }
    }

    /// Copies kept messages that are near their last receive back onto the queue.
    async fn requeue(&self, messages: &[Message], verdicts: &mut [Verdict], deadline: Deadline) {
        let due = due_for_requeue(messages, verdicts, self.config.max_receives);
        if due.is_empty() {
            return;
        }
        let batch: Vec<Requeue<'_>> =
            due.iter().map(|&i| Requeue { message_id: &messages[i].id, body: &messages[i].body }).collect();
        let copied = tokio::time::timeout_at(deadline.before(ANSWER_MARGIN), self.queue.requeue(&batch)).await;
        let copied = copied.unwrap_or_else(|_| {
            Err(SwitchyardError::new(ErrorName::ServiceUnavailable, "the queue did not take the copies in time"))
        });
        match copied {
            Ok(copied) => {
                for &i in &due {
                    if copied.contains(&messages[i].id) {
                        verdicts[i] = Verdict::Requeued;
                    }
                }
            }
            Err(e) => tracing::error!(
                error_type = e.name.as_str(),
                "re-enqueue failed: {}; these orders may reach the DLQ: {:?}",
                e.message,
                due.iter().map(|&i| &messages[i].id).collect::<Vec<_>>()
            ),
        }
    }

    /// One line per poison message (its reason, and whether the DLQ takes it now), one
    /// summary line per batch.
    fn report(&self, messages: &[Message], verdicts: &[Verdict], mode: &str, epoch: Option<u64>) {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (m, v) in messages.iter().zip(verdicts) {
            let name = match v {
                Verdict::Applied => "applied",
                Verdict::AlreadyApplied => "already_applied",
                Verdict::Replicated => "replicated",
                Verdict::Poison(reason) => {
                    let to_dlq = m.receive_count >= self.config.max_receives;
                    tracing::warn!(message_id = %m.id, receive_count = m.receive_count, to_dlq, "poison message: {reason}");
                    "poison"
                }
                Verdict::Kept(_) => "kept",
                Verdict::Requeued => "requeued",
            };
            *counts.entry(name).or_default() += 1;
        }
        let n = |k: &str| counts.get(k).copied().unwrap_or(0);
        tracing::info!(
            region = %self.config.deployment.local_region,
            mode,
            epoch,
            messages = messages.len(),
            applied = n("applied"),
            already_applied = n("already_applied"),
            replicated = n("replicated"),
            kept = n("kept"),
            requeued = n("requeued"),
            poison = n("poison"),
            "batch done"
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn order(id: &str, quantity: u64) -> String {
        json!({
            "orderId": id, "account": "A1", "instrument": "AAPL", "side": "buy", "quantity": quantity,
            "price": "1.5", "submittedAt": "2026-11-22T09:30:00Z", "acknowledgedAt": "2026-11-22T09:30:00Z"
        })
        .to_string()
    }

    fn message(id: &str, body: String, receive_count: u32) -> Message {
        Message { id: id.into(), body, receive_count, receipt_handle: None }
    }

    #[test]
    fn a_batch_sorts_into_rejects_firsts_copies_and_conflicts() {
        let batch = [
            message("m0", order("o1", 1), 1),
            message("m1", "{".into(), 1),
            message("m2", order("o1", 1), 1),
            message("m3", order("o2", 1), 1),
            message("m4", order("o1", 2), 1),
        ];
        let s = sort(&batch);
        assert_eq!(s.rejected.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1]);
        assert_eq!(s.firsts.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 3]);
        assert_eq!(s.copies, [(2, 0)]);
        assert_eq!(s.conflicts.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn only_kept_orders_near_their_last_receive_are_requeued() {
        let messages: Vec<Message> = (1..=5).map(|c| message(&format!("m{c}"), String::new(), c)).collect();
        let kept = vec![Verdict::Kept("x".into()); 5];
        assert_eq!(due_for_requeue(&messages, &kept, 5), [3, 4]);
        let poison = vec![Verdict::Poison("x".into()); 5];
        assert!(due_for_requeue(&messages, &poison, 5).is_empty(), "poison goes to the DLQ");
    }

    #[test]
    fn sample_events_parse_and_sort_as_documented() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/order-consumer");
        let seen = switchyard_lambda::check_sample_events::<ConsumerInput>(&dir).expect("sample events");
        assert_eq!(seen, 5);
        let sorted = |file: &str| {
            let text = std::fs::read_to_string(dir.join(file)).expect("sample");
            let event: SqsEvent = serde_json::from_str(&text).expect("event");
            sort(&Message::from_event(event).expect("messages"))
        };
        let good = sorted("good-batch.json");
        assert_eq!((good.firsts.len(), good.rejected.len()), (3, 0));
        let mixed = sorted("mixed-batch-with-poison.json");
        let reasons: Vec<&str> = mixed.rejected.iter().map(|(_, r)| r.reason.as_str()).collect();
        assert_eq!((mixed.firsts.len(), reasons), (2, vec!["NotJson", "BadPrice", "UnknownField"]));
        let dup = sorted("duplicate-delivery.json");
        assert_eq!((dup.firsts.len(), dup.copies.len()), (2, 1));
    }

    #[test]
    fn records_without_a_message_id_are_invalid_input() {
        let event: SqsEvent = serde_json::from_value(json!({"Records": [{"body": "{}"}]})).expect("event");
        assert_eq!(Message::from_event(event).map(|_| ()).map_err(|e| e.name), Err(ErrorName::InvalidInput));
    }

    #[test]
    fn inputs_are_a_batch_or_an_activation_and_nothing_else() {
        let parse = |v: serde_json::Value| serde_json::from_value::<ConsumerInput>(v);
        assert!(matches!(parse(serde_json::json!({"Records": []})), Ok(ConsumerInput::Batch(_))));
        assert!(matches!(
            parse(serde_json::json!({"activation": {"epoch": 2}})),
            Ok(ConsumerInput::Activation { activation }) if activation.epoch.0 == 2
        ));
        for bad in [
            serde_json::json!({"activation": {"epoch": "two"}}),
            serde_json::json!({"activation": {"epoch": 2, "force": true}}),
            serde_json::json!({"orders": []}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_remote_database_needs_tls_and_a_secret() {
        let lookup = |ca: Option<&str>| {
            let ca = ca.map(str::to_owned);
            move |k: &str| {
                match k {
                "SWITCHYARD_ENV" => Some("t".into()),
                "AWS_REGION" | "SWITCHYARD_PRIMARY_REGION" => Some("us-east-1".into()),
                "SWITCHYARD_STANDBY_REGION" => Some("us-east-2".into()),
                "SWITCHYARD_CONTROL_TABLE" | "SWITCHYARD_ORDERS_QUEUE_URL" => Some("x".into()),
                "SWITCHYARD_DB_CA_BUNDLE" => ca.clone(),
                "SWITCHYARD_DB_ENDPOINTS" => Some(
                    r#"{"us-east-1":{"host":"db.cluster-x.us-east-1.rds.amazonaws.com","port":5432,"user":"u","dbname":"d"}}"#
                        .into(),
                ),
                _ => None,
            }
            }
        };
        let text = ConsumerConfig::from_lookup(lookup(None)).expect_err("plain text to a remote host").to_string();
        for needle in ["SWITCHYARD_DB_CA_BUNDLE", "TLS is required", "SWITCHYARD_DB_SECRET_ID", "Secrets Manager"] {
            assert!(text.contains(needle), "{needle} not in {text}");
        }
        let text = ConsumerConfig::from_lookup(lookup(Some("/nonexistent/ca.pem"))).expect_err("no bundle").to_string();
        assert!(text.contains("/nonexistent/ca.pem"), "{text}");
    }

    #[test]
    fn config_names_every_problem() {
        let err = ConsumerConfig::from_lookup(|k| match k {
            "SWITCHYARD_ENV" => Some("t".into()),
            "AWS_REGION" | "SWITCHYARD_PRIMARY_REGION" => Some("us-east-1".into()),
            "SWITCHYARD_STANDBY_REGION" => Some("us-east-2".into()),
            "SWITCHYARD_ORDERS_MAX_RECEIVES" => Some("1".into()),
            "SWITCHYARD_DB_ENDPOINTS" => {
                Some(r#"{"us-east-2":{"host":"127.0.0.1","port":1,"user":"u","dbname":"d"}}"#.into())
            }
            _ => None,
        })
        .expect_err("incomplete");
        let text = err.to_string();
        for needle in
            ["SWITCHYARD_CONTROL_TABLE", "SWITCHYARD_ORDERS_QUEUE_URL", "SWITCHYARD_ORDERS_MAX_RECEIVES", "us-east-1"]
        {
            assert!(text.contains(needle), "{needle} not in {text}");
        }
    }

    /// `Consumer::handle` over the in-memory twins of its ports, one table row per case.
    mod with_twins {
        use switchyard_core::{
            Region, WriterEpoch,
            ports::{
                ClaimRead, InMemoryClaimStore,
                memory::{InMemoryOrderStore, InMemoryQueue},
            },
        };

        use super::*;

        type Twin = Consumer<InMemoryOrderStore, InMemoryQueue, InMemoryClaimStore>;

        fn claim(epoch: u64, writer: &str) -> WriterClaim {
            WriterClaim::active(WriterEpoch(epoch), writer.parse().expect("region"))
        }

        fn consumer(local: &str, claim: WriterClaim) -> Twin {
            let local = local.to_owned();
            let config = ConsumerConfig::from_lookup(move |k| match k {
                "SWITCHYARD_ENV" => Some("t".into()),
                "AWS_REGION" => Some(local.clone()),
                "SWITCHYARD_PRIMARY_REGION" => Some("us-east-1".into()),
                "SWITCHYARD_STANDBY_REGION" => Some("us-east-2".into()),
                "SWITCHYARD_CONTROL_TABLE" | "SWITCHYARD_ORDERS_QUEUE_URL" => Some("x".into()),
                "SWITCHYARD_ORDERS_MAX_RECEIVES" => Some("5".into()),
                "SWITCHYARD_DB_ENDPOINTS" => Some(
                    r#"{"us-east-1":{"host":"127.0.0.1","port":1,"user":"u","dbname":"d"},"us-east-2":{"host":"127.0.0.1","port":2,"user":"u","dbname":"d"}}"#.into(),
                ),
                _ => None,
            })
            .expect("config");
            Consumer::new(
                config,
                InMemoryClaimStore::new(claim),
                InMemoryQueue::default(),
                InMemoryOrderStore::default(),
            )
        }

        fn event(batch: &[(&str, String, u32)]) -> SqsEvent {
            let records: Vec<serde_json::Value> = batch
                .iter()
                .map(|(id, body, count)| {
                    json!({ "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body, "attributes": { "ApproximateReceiveCount": count.to_string() } })
                })
                .collect();
            serde_json::from_value(json!({ "Records": records })).expect("event")
        }

        fn parsed(body: &str) -> Order {
            parse_body(body).expect("an order")
        }

        struct Case {
            name: &'static str,
            /// The consumer's region, and the claim the store holds.
            local: &'static str,
            claim: WriterClaim,
            setup: fn(&Twin),
            batch: Vec<(&'static str, String, u32)>,
            /// Message ids that stay on the queue (`batchItemFailures`).
            stays: &'static [&'static str],
            /// Order ids the database holds afterwards, applied by this consumer (not replicated).
            applied: &'static [&'static str],
            requeued: &'static [&'static str],
        }

        fn cases() -> Vec<Case> {
            let e1 = || claim(1, "us-east-1");
            vec![
                Case {
                    name: "active applies new orders once and lets them go",
                    local: "us-east-1",
                    claim: e1(),
                    setup: |_| {},
                    batch: vec![("m1", order("o1", 1), 1), ("m2", order("o2", 1), 1), ("m3", order("o1", 1), 1)],
                    stays: &[],
                    applied: &["o1", "o2"],
                    requeued: &[],
                },
                Case {
                    name: "a redelivery goes, an id reused for other content is poison",
                    local: "us-east-1",
                    claim: e1(),
                    setup: |c| {
                        let r: Region = "us-east-1".parse().expect("region");
                        c.store.replicate(&parsed(&order("o1", 1)), &r, WriterEpoch(1));
                        c.store.replicate(&parsed(&order("o2", 1)), &r, WriterEpoch(1));
                    },
                    batch: vec![("m1", order("o1", 1), 1), ("m2", order("o2", 7), 1)],
                    stays: &["m2"],
                    applied: &[],
                    requeued: &[],
                },
                Case {
                    name: "an order the database refuses stays for the DLQ, the rest of its batch is applied",
                    local: "us-east-1",
                    claim: e1(),
                    setup: |c| c.store.refuse("o2"),
                    batch: vec![("m1", order("o1", 1), 1), ("m2", order("o2", 1), 1), ("m3", order("o3", 1), 1)],
                    stays: &["m2"],
                    applied: &["o1", "o3"],
                    requeued: &[],
                },
                Case {
                    name: "a database that refuses every order alone keeps them all (its fault, not theirs)",
                    local: "us-east-1",
                    claim: e1(),
                    setup: |c| {
                        c.store.refuse("o1");
                        c.store.refuse("o2");
                    },
                    batch: vec![("m1", order("o1", 1), 1), ("m2", order("o2", 1), 1)],
                    stays: &["m1", "m2"],
                    applied: &[],
                    requeued: &[],
                },
                Case {
                    name: "not an order stays for the DLQ, the rest is applied",
                    local: "us-east-1",
                    claim: e1(),
                    setup: |_| {},
                    batch: vec![("m1", "{".into(), 1), ("m2", order("o1", 1), 1)],
                    stays: &["m1"],
                    applied: &["o1"],
                    requeued: &[],
                },
                Case {
                    name: "shadow lets go only what the replica holds",
                    local: "us-east-2",
                    claim: e1(),
                    setup: |c| {
                        c.store.replicate(
                            &parsed(&order("o1", 1)),
                            &"us-east-1".parse().expect("region"),
                            WriterEpoch(1),
                        )
                    },
                    batch: vec![("m1", order("o1", 1), 1), ("m2", order("o2", 1), 1)],
                    stays: &["m2"],
                    applied: &[],
                    requeued: &[],
                },
                Case {
                    name: "a kept order near its last receive is re-enqueued, not dead-lettered",
                    local: "us-east-2",
                    claim: e1(),
                    setup: |_| {},
                    batch: vec![("m1", order("o1", 1), 4), ("m2", order("o2", 1), 2)],
                    stays: &["m2"],
                    applied: &[],
                    requeued: &["m1"],
                },
                Case {
                    name: "a failed re-enqueue keeps the message",
                    local: "us-east-2",
                    claim: e1(),
                    setup: |c| c.queue.set_failing(Some(SwitchyardError::new(ErrorName::Throttled, "slow down"))),
                    batch: vec![("m1", order("o1", 1), 4)],
                    stays: &["m1"],
                    applied: &[],
                    requeued: &[],
                },
                Case {
                    name: "a claim that moves during the batch applies nothing",
                    local: "us-east-1",
                    claim: e1(),
                    setup: |c| {
                        c.claims
                            .script([ClaimRead::Claim(claim(1, "us-east-1")), ClaimRead::Claim(claim(2, "us-east-2"))])
                    },
                    batch: vec![("m1", order("o1", 1), 1), ("m2", order("o2", 1), 1)],
                    stays: &["m1", "m2"],
                    applied: &[],
                    requeued: &[],
                },
                Case {
                    name: "cut off from the claim store's majority (#17 schedule 1): applies nothing, keeps everything",
                    local: "us-east-1",
                    claim: e1(),
                    setup: |c| {
                        c.claims
                            .set_unprovable(Some(SwitchyardError::new(ErrorName::ServiceUnavailable, "no majority")))
                    },
                    batch: vec![("m1", order("o1", 1), 1)],
                    stays: &["m1"],
                    applied: &[],
                    requeued: &[],
                },
                Case {
                    name: "a database that does not answer keeps everything",
                    local: "us-east-1",
                    claim: e1(),
                    setup: |c| {
                        c.store.set_unavailable(Some(SwitchyardError::new(ErrorName::ServiceUnavailable, "down")))
                    },
                    batch: vec![("m1", order("o1", 1), 1), ("m2", "{".into(), 1)],
                    stays: &["m1", "m2"],
                    applied: &[],
                    requeued: &[],
                },
                Case {
                    name: "a fenced writer keeps everything",
                    local: "us-east-1",
                    claim: e1(),
                    setup: |c| c.store.set_read_only(true),
                    batch: vec![("m1", order("o1", 1), 1)],
                    stays: &["m1"],
                    applied: &[],
                    requeued: &[],
                },
                Case {
                    name: "a returning old writer reads the newer epoch and applies nothing",
                    local: "us-east-1",
                    claim: claim(2, "us-east-2"),
                    setup: |_| {},
                    batch: vec![("m1", order("o1", 1), 1)],
                    stays: &["m1"],
                    applied: &[],
                    requeued: &[],
                },
            ]
        }

        #[tokio::test]
        async fn each_batch_ends_as_its_row_says() {
            for case in cases() {
                let c = consumer(case.local, case.claim.clone());
                (case.setup)(&c);
                let held_before = c.store.orders();
                let answer =
                    c.handle(event(&case.batch), Deadline::after(Duration::from_secs(10))).await.expect(case.name);
                let stays: Vec<String> = answer.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
                assert_eq!(stays, case.stays, "{}: messages that stay", case.name);
                let applied: Vec<String> =
                    c.store.orders().into_keys().filter(|id| !held_before.contains_key(id)).collect();
                assert_eq!(applied, case.applied, "{}: orders applied", case.name);
                let requeued: Vec<String> = c.queue.copies().into_iter().map(|(id, _)| id).collect();
                assert_eq!(requeued, case.requeued, "{}: copies re-enqueued", case.name);
            }
        }

        /// A claim store that never answers (a DynamoDB brownout whose calls hang).
        struct Hanging;

        impl ClaimStore for Hanging {
            async fn strong_read(&self) -> ClaimRead {
                std::future::pending().await
            }
            async fn bump(
                &self,
                _: WriterEpoch,
                _: WriterClaim,
                _: switchyard_core::ports::TakeoverGuard,
            ) -> PortResult<()> {
                std::future::pending().await
            }
            async fn activate(&self, _: &WriterClaim) -> PortResult<()> {
                std::future::pending().await
            }
        }

        #[tokio::test]
        async fn a_claim_that_hangs_ends_before_the_deadline_and_copies_the_order_back() {
            let Twin { config, queue, store, .. } = consumer("us-east-1", claim(1, "us-east-1"));
            let c = Consumer::new(config, Hanging, queue, store);
            // Deciding stops REQUEUE_RESERVE (2 s) before the deadline: one second of hanging.
            let deadline = Deadline::after(Duration::from_secs(3));
            let answer = c.handle(event(&[("m1", order("o1", 1), 4)]), deadline).await.expect("an answer");
            assert!(deadline.remaining() >= ANSWER_MARGIN, "answered too late: {:?} left", deadline.remaining());
            assert!(answer.batch_item_failures.is_empty(), "kept without a copy");
            assert_eq!(c.queue.copies().into_iter().map(|(id, _)| id).collect::<Vec<_>>(), ["m1"]);
            assert!(c.store.orders().is_empty());
        }

        /// An order as the API stamps it, acknowledged `ago` before now.
        fn acknowledged(id: &str, ago: Duration) -> String {
            let at = switchyard_core::order::Timestamp::from_unix_millis(
                switchyard_core::order::Timestamp::now().unix_millis() - ago.as_millis() as i64,
            );
            let mut o: serde_json::Value = serde_json::from_str(&order(id, 1)).expect("order");
            o["submittedAt"] = json!(at.to_string());
            o["acknowledgedAt"] = json!(at.to_string());
            o.to_string()
        }

        #[tokio::test]
        async fn a_shadow_forwards_an_order_kept_a_minute_after_its_acknowledgement_and_keeps_its_own() {
            let c = consumer("us-east-2", claim(1, "us-east-1"));
            let soon = || Deadline::after(Duration::from_secs(10));
            // Received many times but acknowledged just now: the writer has it on its way.
            let fresh = c.handle(event(&[("m1", acknowledged("o1", Duration::ZERO), 3)]), soon()).await.expect("fresh");
            assert_eq!(fresh.batch_item_failures.len(), 1, "kept");
            assert!(c.queue.forwarded().is_empty(), "forwarded an order acknowledged just now");
            // A re-enqueued copy (receive count 1 again) of an order acknowledged 61 s ago.
            let old = c.handle(event(&[("m2", acknowledged("o2", Duration::from_secs(61)), 1)]), soon()).await;
            assert_eq!(old.expect("old").batch_item_failures.len(), 1, "still kept here until the replica holds it");
            let forwarded: Vec<(String, String)> =
                c.queue.forwarded().into_iter().map(|(r, id, _)| (r.to_string(), id)).collect();
            assert_eq!(forwarded, [("us-east-1".to_owned(), "m2".to_owned())]);
        }

        /// Review of #16: orders a shadow kept reappear only after the queue's 60 s visibility
        /// timeout, which a failover to this region then waits out before applying them.
        #[tokio::test]
        async fn a_shadow_sees_what_it_kept_again_within_seconds_and_a_writer_s_errors_wait() {
            let c = consumer("us-east-2", claim(1, "us-east-1"));
            let batch = [("m1", order("o1", 1), 1), ("m2", "{".into(), 1), ("m3", order("o3", 1), 4)];
            c.handle(event(&batch), Deadline::after(Duration::from_secs(10))).await.expect("batch");
            // m1 kept (back soon), m2 poison (left to the redrive policy), m3 re-enqueued.
            assert_eq!(c.queue.redelivered(), [("rh-m1".to_owned(), SHADOW_RECHECK)]);
            assert!(SHADOW_RECHECK < Duration::from_secs(10), "{SHADOW_RECHECK:?}");
            // A writer whose database does not answer keeps the order for the whole timeout.
            let w = consumer("us-east-1", claim(1, "us-east-1"));
            w.store.set_unavailable(Some(SwitchyardError::new(ErrorName::ServiceUnavailable, "down")));
            w.handle(event(&[("m1", order("o1", 1), 1)]), Deadline::after(Duration::from_secs(10))).await.expect("b");
            assert!(w.queue.redelivered().is_empty());
        }

        /// Review of this change: a kept order whose re-enqueue failed near its last receive
        /// must not come back in 2 s (two quick failures would walk it into the DLQ): it waits
        /// the queue's visibility timeout, as before.
        #[tokio::test]
        async fn an_order_near_its_last_receive_is_not_rechecked_soon() {
            let c = consumer("us-east-2", claim(1, "us-east-1"));
            c.queue.set_failing(Some(SwitchyardError::new(ErrorName::Throttled, "slow down")));
            c.handle(event(&[("m1", order("o1", 1), 4)]), Deadline::after(Duration::from_secs(10))).await.expect("b");
            assert!(c.queue.copies().is_empty(), "the re-enqueue failed");
            assert!(c.queue.redelivered().is_empty(), "rechecked in 2 s after a failed re-enqueue");
        }

        /// A claim store whose reads after the first take longer than the commit window (a
        /// brownout between the mode's read and the one before COMMIT).
        struct SlowAfterFirst {
            inner: InMemoryClaimStore,
            reads: std::sync::atomic::AtomicUsize,
        }

        impl ClaimStore for SlowAfterFirst {
            async fn strong_read(&self) -> ClaimRead {
                if self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
                    tokio::time::sleep(switchyard_core::COMMIT_WINDOW + Duration::from_millis(100)).await;
                }
                self.inner.strong_read().await
            }
            async fn bump(
                &self,
                expected: WriterEpoch,
                next: WriterClaim,
                guard: switchyard_core::ports::TakeoverGuard,
            ) -> PortResult<()> {
                self.inner.bump(expected, next, guard).await
            }
            async fn activate(&self, claim: &WriterClaim) -> PortResult<()> {
                self.inner.activate(claim).await
            }
        }

        #[tokio::test]
        async fn a_commit_later_than_the_window_after_the_claim_s_read_applies_nothing() {
            let Twin { config, queue, store, .. } = consumer("us-east-1", claim(1, "us-east-1"));
            let claims = SlowAfterFirst { inner: InMemoryClaimStore::new(claim(1, "us-east-1")), reads: 0.into() };
            let c = Consumer::new(config, claims, queue, store);
            let answer = c
                .handle(event(&[("m1", order("o1", 1), 1)]), Deadline::after(Duration::from_secs(30)))
                .await
                .expect("batch");
            assert!(c.store.orders().is_empty(), "committed after the window: {:?}", c.store.orders());
            assert_eq!(answer.batch_item_failures.len(), 1, "the order is kept for a retry");
        }

        #[tokio::test]
        async fn an_order_is_applied_under_the_claim_it_was_checked_against() {
            let c = consumer("us-east-2", claim(3, "us-east-2"));
            c.handle(event(&[("m1", order("o1", 1), 1)]), Deadline::after(Duration::from_secs(10)))
                .await
                .expect("batch");
            let held = c.store.orders();
            let o1 = held.get("o1").expect("applied");
            assert_eq!((o1.region.as_str(), o1.epoch, o1.message_id.as_str()), ("us-east-2", WriterEpoch(3), "m1"));
            let first = c.activation(ActivationRequest { epoch: WriterEpoch(3) }).await.expect("active");
            assert_eq!((first.applied_under_epoch, first.first_applied_at.is_some()), (1, true));
            let stale = c.activation(ActivationRequest { epoch: WriterEpoch(2) }).await.expect_err("not epoch 2");
            assert_eq!(stale.name, ErrorName::NotReady);
        }
    }
}
