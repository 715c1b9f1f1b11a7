//! The promoter's ledger actions, which open and close an execution's entry in the ledger
//! (lock, timeline):
//!
//! | action  | does                                                                           |
//! |---------|--------------------------------------------------------------------------------|
//! | `begin` | reads the claim; takes the lock for the incident; starts the timeline → `acquired`, `duplicate` (another execution has this incident) or `nothingToDo` (this region already writes) |
//! | `end`   | closes the timeline (succeeded/failed, with the cause), releases the lock, and words the notification |
//!
//! They live in the promoter because the ledger is kept in the control table of the region
//! being promoted, which the promoter is already the one writer of on the failover path; a
//! sixth function would add a cold start to the worst day. See `switchyard_core::ledger`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_core::{
    ErrorName, FailoverMode, LeasePhase, Region, SwitchyardError, WriterClaim, WriterEpoch,
    arming::{self, ArmingStore},
    ledger::{ExecutionLedger, ExecutionStatus, FailoverEntry, Lock, LockOutcome, Overrides, Timeline, incident},
    order::Timestamp,
    ports::ClaimStore,
    steps::{BeginAnswer, BeginOutcome, EndAnswer, StepsSoFar},
};

/// What a state machine was started with: the alarm's state change (through the EventBridge
/// rule's input transformer) or an operator's `StartExecution`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecutionInput {
    /// When the outage was detected (the alarm's state change time); defaults to the start.
    pub detected_at: Option<Timestamp>,
    /// What started it: an alarm name, `manual`, …
    pub trigger: Option<String>,
    pub reason: Option<String>,
    /// Unplanned, operator entry only: fail over even above the RPO budget (a person decided).
    #[serde(default)]
    pub allow_data_loss: bool,
    /// Unplanned, operator entry only: fail over within the cooldown (the new writer failed
    /// soon after the last handover).
    #[serde(default)]
    pub ignore_cooldown: bool,
    /// Switchover: the direction, checked against the claim and the region it runs in.
    pub from: Option<Region>,
    pub to: Option<Region>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BeginRequest {
    pub mode: FailoverMode,
    /// The state machine's entry, fixed by its definition's substitution.
    pub entry: FailoverEntry,
    /// `$$.Execution.Name`: the lock's owner and the timeline's key.
    pub execution: String,
    /// `$$.Execution.StartTime`.
    pub started_at: Timestamp,
    #[serde(default)]
    pub input: ExecutionInput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EndOutcome {
    Succeeded,
    Failed,
}

/// What a `Catch` puts at its `ResultPath`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caught {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

impl Caught {
    /// The message inside a Lambda error's `Cause` (`{"errorType", "errorMessage"}`), or the
    /// cause as it is.
    pub fn message(&self) -> String {
        let cause = self.cause.clone().unwrap_or_default();
        serde_json::from_str::<Value>(&cause)
            .ok()
            .and_then(|v| v.get("errorMessage").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(cause)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndRequest {
    pub execution: String,
    pub outcome: EndOutcome,
    /// The caught error, on the failure path.
    pub error: Option<Caught>,
    /// The results of the execution's steps so far (`$.steps`), from which the marks the
    /// promoter did not see itself are taken: the switch and the first order applied.
    #[serde(default)]
    pub steps: StepsSoFar,
}

/// Opens an execution. Never fails for a held lock of the same incident: that execution does
/// the work and this one bows out (`duplicate`).
pub async fn begin<R: ClaimStore + ArmingStore, L: ExecutionLedger>(
    registry: &R,
    ledger: &L,
    local: &Region,
    peer: &Region,
    req: BeginRequest,
) -> Result<BeginAnswer, SwitchyardError> {
    let input = &req.input;
    if let Some(to) = &input.to
        && to != local
    {
        return Err(SwitchyardError::new(
            ErrorName::InvalidInput,
            format!("this execution runs in {local} and can only move the writer here, not to {to}: start it in {to}"),
        ));
    }
    if let Some(from) = &input.from
        && from != peer
    {
        return Err(SwitchyardError::new(
            ErrorName::InvalidInput,
            format!("the writer can move to {local} only from {peer}, not from {from}"),
        ));
    }
    let overrides = Overrides { allow_data_loss: input.allow_data_loss, ignore_cooldown: input.ignore_cooldown };
    overrides.check(req.entry, req.mode, input.reason.as_deref())?;
    if !overrides.names().is_empty() {
        tracing::warn!(execution = %req.execution, overrides = ?overrides.names(), reason = ?input.reason, "operator overrides");
    }
    let claim: WriterClaim = registry.strong_read().await.proven()?;
    // A handover to this region recorded but never activated (its execution ended between
    // Record and Activate): no region applies until it is, so this execution finishes it.
    // Every step finds its work done up to Activate; the epoch it expected is the one before.
    let resuming = claim.writer == *local && claim.phase == LeasePhase::Pending;
    let expected = if resuming { WriterEpoch(claim.epoch.0.saturating_sub(1)) } else { claim.epoch };
    let incident = incident(expected, local);
    let detected = input.detected_at.unwrap_or(req.started_at);
    let existing = ledger.timeline(&req.execution).await?;
    let mut timeline = existing.clone().unwrap_or_else(|| Timeline {
        entry: Some(req.entry),
        reason: input.reason.clone(),
        overrides: overrides.names(),
        ..Timeline::start(&req.execution, &incident, req.mode, claim.writer.clone(), local.clone(), detected)
    });
    let timeline_incident = timeline.incident.clone();
    let answer = |outcome: BeginOutcome| BeginAnswer {
        execution: req.execution.clone(),
        incident: timeline_incident.clone(),
        mode: req.mode,
        target_region: local.clone(),
        old_writer: peer.clone(),
        allow_data_loss: input.allow_data_loss,
        ignore_cooldown: input.ignore_cooldown,
        outcome,
        claim: claim.clone(),
        expected_epoch: None,
        lock_expires_at: None,
        cause: None,
    };
    // A retried `begin` whose first attempt bowed out answers the same; one that took the
    // lock takes it again (it is its own).
    match existing.as_ref().map(|t| t.status) {
        Some(ExecutionStatus::Duplicate) => {
            return Ok(BeginAnswer { cause: timeline.cause.clone(), ..answer(BeginOutcome::Duplicate) });
        }
        Some(ExecutionStatus::NothingToDo) => return Ok(answer(BeginOutcome::NothingToDo)),
        Some(ExecutionStatus::Succeeded | ExecutionStatus::Failed) => {
            return Err(SwitchyardError::new(
                ErrorName::InvalidInput,
                format!("execution {} has ended ({}); start a new execution", req.execution, timeline.status),
            ));
        }
        Some(ExecutionStatus::Running) | None => {}
    }
    if claim.writer == *local && !resuming {
        timeline.finish(ExecutionStatus::NothingToDo, Timestamp::now());
        ledger.save_timeline(&timeline).await?;
        return Ok(answer(BeginOutcome::NothingToDo));
    }
    // An automatic (unplanned) failover moves the writer only into a region armed as the
    // takeover target under this epoch: after a handover nothing is armed, so an alarm in the
    // old region (a blip seen from a replica) never fails back on its own.
    if req.mode == FailoverMode::Unplanned && !resuming {
        arming::check(registry.armed().await?.as_ref(), local, claim.epoch)?;
    }
    let now = Timestamp::now();
    let lock = Lock::take(&req.execution, &incident, now);
    // A lock its execution stopped renewing (timed out, aborted) is taken over, loudly: the
    // dead execution's timeline is closed as failed, and this one says whose lock it took.
    let abandoned = ledger.held_lock().await?.filter(|h| h.owner != req.execution && h.expires_at <= now);
    match ledger.acquire(&lock).await? {
        LockOutcome::Acquired => {
            let mut cause = None;
            if let Some(dead) = abandoned {
                let why = format!(
                    "took over the failover lock of execution {} (incident {}), which stopped renewing it: it expired at {}",
                    dead.owner, dead.incident, dead.expires_at
                );
                tracing::warn!(execution = %req.execution, "{why}");
                if let Some(mut old) =
                    ledger.timeline(&dead.owner).await?.filter(|t| t.status == ExecutionStatus::Running)
                {
                    old.cause = Some(format!(
                        "abandoned: its lock expired at {}; {} took it over",
                        dead.expires_at, req.execution
                    ));
                    old.finish(ExecutionStatus::Failed, now);
                    ledger.save_timeline(&old).await?;
                    // Its promotion may still complete: this execution never lifts a fence then.
                    timeline.promotion_started = timeline.promotion_started.or(old.promotion_started);
                }
                timeline.took_over_from = Some(dead.owner);
                cause = Some(why);
            }
            ledger.save_timeline(&timeline).await?;
            Ok(BeginAnswer {
                expected_epoch: Some(expected),
                lock_expires_at: Some(lock.expires_at),
                cause,
                ..answer(BeginOutcome::Acquired)
            })
        }
        LockOutcome::Duplicate { owner } => {
            timeline.finish(ExecutionStatus::Duplicate, now);
            let cause = format!("execution {owner} handles incident {incident}");
            timeline.cause = Some(cause.clone());
            ledger.save_timeline(&timeline).await?;
            Ok(BeginAnswer { cause: Some(cause), ..answer(BeginOutcome::Duplicate) })
        }
        // The scheduled re-fence holds the lock for a moment: retry, this is no other incident.
        LockOutcome::HeldBy { owner, incident: theirs } if switchyard_core::ledger::is_refence(&theirs) => {
            Err(SwitchyardError::new(
                ErrorName::OperationInProgress,
                format!("{owner} (the scheduled re-fence) holds the failover lock for a moment; retry"),
            ))
        }
        LockOutcome::HeldBy { owner, incident: theirs } => Err(SwitchyardError::new(
            ErrorName::LockHeld,
            format!("execution {owner} holds the failover lock for incident {theirs}; {incident} waits for it"),
        )),
    }
}

/// Closes an execution: the timeline is final, the lock is free, the notification is worded.
/// Safe to retry, and safe on a failure path that never got the lock.
pub async fn end<R: ClaimStore, L: ExecutionLedger>(
    registry: &R,
    ledger: &L,
    environment: &str,
    local: &Region,
    peer: &Region,
    req: EndRequest,
) -> Result<EndAnswer, SwitchyardError> {
    let now = Timestamp::now();
    let mut timeline = match ledger.timeline(&req.execution).await? {
        Some(t) => t,
        // Failed before `begin` kept any ledger entry (bad input, a held lock).
        None => Timeline::start(&req.execution, "unknown", FailoverMode::Unplanned, peer.clone(), local.clone(), now),
    };
    timeline.traffic_moved = timeline.traffic_moved.or_else(|| req.steps.traffic_moved(timeline.activated));
    timeline.first_order_applied = timeline.first_order_applied.or_else(|| req.steps.first_order_applied());
    let status = match req.outcome {
        EndOutcome::Succeeded => ExecutionStatus::Succeeded,
        EndOutcome::Failed => ExecutionStatus::Failed,
    };
    if timeline.status == ExecutionStatus::Running
        && let Some(caught) = &req.error
    {
        timeline.error = Some(caught.error.clone());
        timeline.cause = Some(caught.message());
    }
    timeline.finish(status, now);
    ledger.save_timeline(&timeline).await?;
    let released = ledger.release(&req.execution).await?;
    let writer = registry.strong_read().await.proven().ok();
    let message = notification(&timeline, writer.as_ref());
    Ok(EndAnswer { subject: timeline.headline(environment), timeline, lock_released: released, writer, message })
}

/// The error names an execution closed by the abandoned-execution rule gets: Step Functions'
/// own for a timeout, and one for an abort (which has no error of its own).
pub const TIMED_OUT: &str = "States.Timeout";
pub const ABORTED: &str = "ExecutionAborted";

/// Closed by the abandoned-execution rule (a timeout or an abort), not by the execution.
fn ended_uncaught(t: &Timeline) -> bool {
    t.error.as_deref().is_some_and(|e| e == TIMED_OUT || e == ABORTED)
}

/// The notification's body: what happened, where the writer is now, what a person must do.
fn notification(t: &Timeline, writer: Option<&WriterClaim>) -> String {
    let mut lines = vec![format!("execution {} ({}), incident {}", t.execution, t.status, t.incident)];
    let marks = [
        ("detected", Some(t.detected)),
        ("decided", t.decided),
        ("promoted", t.promoted),
        ("traffic moved", t.traffic_moved),
        ("activated", t.activated),
        ("first order applied", t.first_order_applied),
        ("ended", t.ended),
    ];
    for (name, at) in marks {
        lines.push(format!("{name:>20}: {}", at.map_or("-".to_owned(), |a| a.to_string())));
    }
    if t.entry == Some(FailoverEntry::Operator) && t.mode == FailoverMode::Unplanned {
        let overrides = if t.overrides.is_empty() { "none".to_owned() } else { t.overrides.join(", ") };
        lines.push(format!(
            "started through the operator entry (who: CloudTrail's StartExecution); reason: {}; overrides: {overrides}",
            t.reason.as_deref().unwrap_or("-")
        ));
    }
    if let Some(dead) = &t.took_over_from {
        lines.push(format!("took over the failover lock of execution {dead}, which had stopped renewing it"));
    }
    if let Some(rto) = t.rto_seconds {
        lines.push(format!(
            "RTO {rto:.1} s (detected → traffic moved: Route 53 answers the new writer, at the latest as \
             modelled from its health checks; resolvers may keep the old answer up to {} s more)",
            switchyard_core::dns::RECORD_TTL.as_secs()
        ));
        if let Some(first) = t.first_order_applied {
            lines.push(format!("first order applied {:.1} s after detection", first.seconds_since(&t.detected)));
        }
    }
    if let Some(rpo) = &t.rpo {
        let lag = rpo.lag_seconds.map_or("unknown".to_owned(), |l| format!("{l:.1} s"));
        let known = |n: Option<u64>| n.map_or("unknown".to_owned(), |n| n.to_string());
        lines.push(format!(
            "RPO: lag {lag} (about {} orders applied again from the queue), acknowledged orders at risk {}, data loss accepted: {}",
            known(rpo.orders_in_lag),
            known(rpo.orders_at_risk),
            rpo.data_loss_accepted
        ));
    }
    if let (Some(e), Some(c)) = (&t.error, &t.cause) {
        lines.push(format!("stopped by {e}: {c}"));
    }
    match writer {
        Some(w) => lines.push(format!("the writer now: {} (epoch {}, {})", w.writer, w.epoch, w.phase)),
        None => lines.push("the writer now: unknown (control table unreadable)".to_owned()),
    }
    if t.status == ExecutionStatus::Failed {
        // Moved when the claim names the target, even if the mark was never written (a bump
        // whose handover write kept failing).
        let moved = t.promoted.is_some() || writer.is_some_and(|w| w.writer == t.to);
        let pending = writer.is_some_and(|w| w.writer == t.to && w.phase == LeasePhase::Pending);
        lines.push(if pending {
            format!(
                "ACTION: the claim for {} is recorded but still pending, so NO region applies orders (they wait in the queues): \
                 start the {} state machine in {} again; its begin resumes this handover and activates it after the lease",
                t.to,
                if t.mode == FailoverMode::Planned { "switchover" } else { "failover" },
                t.to
            )
        } else if moved && t.traffic_moved.is_none() && ended_uncaught(t) {
            // The switch's answer was in the stopped execution's state, which nobody read.
            format!(
                "ACTION: {} writes; whether traffic moved is unknown (the execution ended uncaught): check that the DNS \
                 answer names {}, else run the dns-switcher",
                t.to, t.to
            )
        } else if moved && t.traffic_moved.is_none() {
            format!("ACTION: {} writes but traffic was not moved: run the dns-switcher or fix its cause", t.to)
        } else if !moved && t.fence_lifted.is_some() {
            format!(
                "the writer role did not move to {}; this switchover had fenced {}, and lifted the fence: {} writes again; the lock is released",
                t.to, t.from, t.from
            )
        } else if !moved && t.promotion_started.is_some() {
            format!(
                "ACTION: a promotion of {} was requested and may complete, but the claim still names {}{}: no region \
                 applies orders. Check {}'s database: if it writes, start the {} in {} again to record it; never lift \
                 a fence on {} while {} may write",
                t.to,
                t.from,
                if t.fenced.is_some() { format!(" ({} was fenced)", t.from) } else { String::new() },
                t.to,
                if t.mode == FailoverMode::Planned { "switchover" } else { "failover" },
                t.to,
                t.from,
                t.to
            )
        } else if !moved && t.fenced.is_some() && t.mode == FailoverMode::Planned {
            format!(
                "ACTION: {} may be FENCED (read-only) and {} was not promoted, so no region may apply orders: lift the \
                 fence on {} (ALTER SYSTEM RESET default_transaction_read_only; SELECT pg_reload_conf()) or finish the \
                 switchover",
                t.from, t.to, t.from
            )
        } else if !moved {
            format!("the writer role did not move to {}; the lock is released", t.to)
        } else {
            "ACTION: check the consumer and health of the new writer".to_owned()
        });
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use switchyard_core::{WriterEpoch, ledger::InMemoryLedger, ports::InMemoryClaimStore};

    use super::*;

    fn region(s: &str) -> Region {
        s.parse().expect("region")
    }

    /// Review of #17: the bump succeeded but the handover write kept failing through every
    /// retry, so the timeline has no `promoted` mark; the page said "did not move" while its
    /// own "writer now" line named the target. Whether the writer moved is the claim's to say.
    #[test]
    fn a_failed_execution_whose_bump_landed_pages_that_the_writer_moved() {
        let mut t = Timeline::start(
            "x",
            "epoch-1-to-us-east-2",
            FailoverMode::Unplanned,
            region("us-east-1"),
            region("us-east-2"),
            Timestamp::now(),
        );
        t.finish(ExecutionStatus::Failed, Timestamp::now());
        let moved = WriterClaim::active(WriterEpoch(2), region("us-east-2"));
        let page = notification(&t, Some(&moved));
        assert!(page.contains("ACTION: us-east-2 writes but traffic was not moved"), "{page}");
        let stayed = WriterClaim::active(WriterEpoch(1), region("us-east-1"));
        assert!(notification(&t, Some(&stayed)).contains("did not move"));
        let pending = WriterClaim::pending(WriterEpoch(2), region("us-east-2"));
        let page = notification(&t, Some(&pending));
        assert!(
            page.contains("NO region applies orders") && page.contains("failover state machine in us-east-2"),
            "{page}"
        );
    }

    fn begin_req(execution: &str) -> BeginRequest {
        BeginRequest {
            mode: FailoverMode::Unplanned,
            entry: FailoverEntry::Automatic,
            execution: execution.into(),
            started_at: Timestamp::now(),
            input: ExecutionInput::default(),
        }
    }

    #[tokio::test]
    async fn one_execution_per_incident_and_the_lock_is_released_at_the_end() {
        let (e1, e2) = (region("us-east-1"), region("us-east-2"));
        let registry = InMemoryClaimStore::new(WriterClaim::active(WriterEpoch(1), e1.clone()))
            .armed_for(&"us-east-2".parse().expect("region"));
        let ledger = InMemoryLedger::default();
        let first = begin(&registry, &ledger, &e2, &e1, begin_req("a")).await.expect("begin");
        assert_eq!((first.outcome, first.expected_epoch), (BeginOutcome::Acquired, Some(WriterEpoch(1))));
        let second = begin(&registry, &ledger, &e2, &e1, begin_req("b")).await.expect("begin");
        assert_eq!(second.outcome, BeginOutcome::Duplicate);
        assert!(second.cause.as_deref().is_some_and(|c| c.contains("execution a ")), "{second:?}");

        let end_req = EndRequest {
            execution: "a".into(),
            outcome: EndOutcome::Failed,
            error: Some(Caught {
                error: "LagAboveBudget".into(),
                cause: Some(r#"{"errorType":"LagAboveBudget","errorMessage":"lag 90 s"}"#.into()),
            }),
            steps: StepsSoFar::default(),
        };
        let ended = end(&registry, &ledger, "t", &e2, &e1, end_req.clone()).await.expect("end");
        assert!(ended.lock_released);
        assert_eq!(ended.timeline.cause.as_deref(), Some("lag 90 s"));
        assert!(ended.message.contains("did not move"), "{ended:?}");
        // Retried: nothing changes, the lock stays free.
        let again = end(&registry, &ledger, "t", &e2, &e1, end_req).await.expect("end");
        assert_eq!((again.lock_released, again.timeline.status), (false, ExecutionStatus::Failed));
        // Another incident may take the lock now.
        let third = begin(&registry, &ledger, &e2, &e1, begin_req("c")).await.expect("begin");
        assert_eq!(third.outcome, BeginOutcome::Acquired);
    }

    /// #18: RTO is detected → traffic moved, and traffic moves when Route 53 answers the new
    /// writer: its check on the writer's `/writer` turns healthy FailureThreshold cycles
    /// (2 × (10 s + a check's 6 s)) after the activation at the latest. A health-check-mode
    /// switch is only the confirmation of the claim, a moment after the activation: it used
    /// to be the RTO's end, 20 s early. In records mode the change's INSYNC may be later.
    #[tokio::test]
    async fn the_rto_ends_when_route_53_answers_the_new_writer_not_at_the_switch_call() {
        let (e1, e2) = (region("us-east-1"), region("us-east-2"));
        let registry = InMemoryClaimStore::new(WriterClaim::active(WriterEpoch(2), e2.clone()));
        let at = |s: &str| -> Timestamp { s.parse().expect("timestamp") };
        // Two results of one cycle each (10 s apart, 6 s for a check at most): by 32 s.
        for (mode, switch_at, rto) in
            [("health-check", "2026-12-01T10:00:30.500Z", 62.0), ("records", "2026-12-01T10:01:10Z", 70.0)]
        {
            let ledger = InMemoryLedger::default();
            let mut t = Timeline::start(
                "x",
                "epoch-1-to-us-east-2",
                FailoverMode::Unplanned,
                e1.clone(),
                e2.clone(),
                at("2026-12-01T10:00:00Z"),
            );
            t.activated = Some(at("2026-12-01T10:00:30Z"));
            ledger.save_timeline(&t).await.expect("saved");
            let steps: StepsSoFar = serde_json::from_value(serde_json::json!({
                "switch": {
                    "state": "done", "mode": mode, "claim": { "epoch": 2, "writer": "us-east-2" },
                    "previousTarget": null, "changed": false, "at": switch_at
                }
            }))
            .expect("steps");
            let req = EndRequest { execution: "x".into(), outcome: EndOutcome::Succeeded, error: None, steps };
            let ended = end(&registry, &ledger, "t", &e2, &e1, req).await.expect("end");
            assert_eq!(ended.timeline.rto_seconds, Some(rto), "{mode}: {:?}", ended.timeline);
        }
    }

    #[tokio::test]
    async fn a_region_that_writes_already_has_nothing_to_do_and_directions_are_checked() {
        let (e1, e2) = (region("us-east-1"), region("us-east-2"));
        let registry = InMemoryClaimStore::new(WriterClaim::active(WriterEpoch(2), e2.clone()));
        let ledger = InMemoryLedger::default();
        let done = begin(&registry, &ledger, &e2, &e1, begin_req("a")).await.expect("begin");
        assert_eq!(done.outcome, BeginOutcome::NothingToDo);
        let mut wrong = begin_req("b");
        wrong.input.to = Some(e1.clone());
        let err = begin(&registry, &ledger, &e2, &e1, wrong).await.expect_err("wrong region");
        assert_eq!(err.name, ErrorName::InvalidInput);
    }
}
