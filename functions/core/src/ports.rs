//! Ports: the narrow interfaces the domain needs from the outside world. Adapters implement
//! them (`switchyard-postgres` over PostgreSQL, `switchyard-aws` over the AWS SDK); handlers
//! are generic over them, so tests can substitute an in-memory implementation.
//!
//! Every method returns [`SwitchyardError`], whose name tells the caller (and Step Functions)
//! whether to retry. Adapters must classify, never flatten errors into strings.

use std::{future::Future, sync::Mutex};

use serde::{Deserialize, Serialize};

use crate::{ErrorName, Region, ReplicationStatus, SwitchyardError, WriterClaim, WriterEpoch};

pub type PortResult<T> = Result<T, SwitchyardError>;

/// Reads the replication state of one regional database node. Read-only.
pub trait ReplicationMonitor: Send + Sync {
    fn replication_status(&self) -> impl Future<Output = PortResult<ReplicationStatus>> + Send;
}

/// Outcome of a promotion or fencing step. Steps are idempotent: asking again after success
/// reports `Done`, asking while the engine is still working reports `InProgress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepState {
    InProgress,
    Done,
}

/// Changes which node of a regional database pair is the writer.
pub trait DatabasePromoter: Send + Sync {
    /// Makes this region's replica the writer.
    fn promote(&self) -> impl Future<Output = PortResult<StepState>> + Send;
    /// Stops the old writer from accepting writes (where it is reachable).
    fn fence(&self) -> impl Future<Output = PortResult<StepState>> + Send;
}

/// The store of the writer claim. Implementations must make `replace` a conditional write:
/// **an older epoch can never win**.
pub trait WriterRegistry: Send + Sync {
    fn current(&self) -> impl Future<Output = PortResult<WriterClaim>> + Send;
    /// Replaces the claim only if the stored epoch is still `expected`; otherwise `StaleEpoch`.
    fn replace(&self, expected: WriterEpoch, next: WriterClaim) -> impl Future<Output = PortResult<()>> + Send;
}

/// Moves client traffic to the writer's region.
pub trait TrafficRouter: Send + Sync {
    fn route_to(&self, claim: &WriterClaim) -> impl Future<Output = PortResult<StepState>> + Send;
    fn current_target(&self) -> impl Future<Output = PortResult<Region>> + Send;
}

/// One metric observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Datapoint {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub dimensions: Vec<(String, String)>,
}

pub trait MetricsSink: Send + Sync {
    fn publish(&self, datapoints: &[Datapoint]) -> impl Future<Output = PortResult<()>> + Send;
}

/// The reference semantics of [`WriterRegistry`], for domain tests. Adapters must behave the
/// same way (their tests reuse the same cases).
#[derive(Debug)]
pub struct InMemoryWriterRegistry {
    claim: Mutex<WriterClaim>,
}

impl InMemoryWriterRegistry {
    pub fn new(claim: WriterClaim) -> Self {
        InMemoryWriterRegistry { claim: Mutex::new(claim) }
    }

    fn lock(&self) -> PortResult<std::sync::MutexGuard<'_, WriterClaim>> {
        self.claim.lock().map_err(|_| SwitchyardError::new(ErrorName::Internal, "writer registry lock poisoned"))
    }
}

impl WriterRegistry for InMemoryWriterRegistry {
    async fn current(&self) -> PortResult<WriterClaim> {
        Ok(self.lock()?.clone())
    }

    async fn replace(&self, expected: WriterEpoch, next: WriterClaim) -> PortResult<()> {
        let mut claim = self.lock()?;
        if claim.epoch != expected || next.epoch <= expected {
            return Err(SwitchyardError::new(
                ErrorName::StaleEpoch,
                format!("stored epoch is {}, request expected {expected} and offered {}", claim.epoch, next.epoch),
            ));
        }
        *claim = next;
        Ok(())
    }
}

/// Behaviour every [`WriterRegistry`] must show, checked against the in-memory reference in
/// this crate's tests and against each adapter in its own. `registry` must hold `initial`.
pub mod contract {
    use super::WriterRegistry;
    use crate::{ErrorName, Region, WriterClaim, WriterEpoch};

    pub async fn writer_registry(
        registry: &impl WriterRegistry,
        initial: &WriterClaim,
        other: &Region,
    ) -> Result<(), String> {
        let current = registry.current().await.map_err(|e| format!("reading the initial claim: {e}"))?;
        if current != *initial {
            return Err(format!("holds {current:?}, expected {initial:?}"));
        }
        let next = WriterClaim { epoch: initial.epoch.next(), writer: other.clone() };
        registry.replace(initial.epoch, next.clone()).await.map_err(|e| format!("first handover: {e}"))?;
        // Every later attempt from a stale view loses, whatever it offers.
        let stale = [
            (initial.epoch, WriterClaim { epoch: next.epoch, writer: initial.writer.clone() }),
            (initial.epoch, WriterClaim { epoch: next.epoch.next(), writer: initial.writer.clone() }),
            (next.epoch, WriterClaim { epoch: next.epoch, writer: initial.writer.clone() }),
            (WriterEpoch(0), WriterClaim { epoch: WriterEpoch(99), writer: initial.writer.clone() }),
        ];
        for (expected, offered) in stale {
            match registry.replace(expected, offered.clone()).await {
                Err(e) if e.name == ErrorName::StaleEpoch => {}
                other => {
                    return Err(format!("expected {expected}, offered {offered:?}: got {other:?}, not StaleEpoch"));
                }
            }
        }
        let last = registry.current().await.map_err(|e| format!("reading the final claim: {e}"))?;
        if last != next {
            return Err(format!("holds {last:?} after the handover, expected {next:?}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::claim;

    /// Drives a future that never waits (the in-memory port) without an async runtime.
    fn now<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("in-memory port must not wait"),
        }
    }

    #[test]
    fn an_older_epoch_never_wins() {
        let reg = InMemoryWriterRegistry::new(claim(1, "us-east-1"));
        let other = "us-east-2".parse().expect("region");
        now(contract::writer_registry(&reg, &claim(1, "us-east-1"), &other)).expect("contract holds");
    }
}
