//! Domain core of switchyard.
//!
//! **Invariant: this crate does no I/O and knows no AWS or PostgreSQL types.** It holds the
//! vocabulary every other crate shares — regions and their roles, the writer epoch, the
//! configuration reader, the error names that Step Functions matches on — and the ports
//! (traits) that the adapters implement.

pub mod arming;
pub mod config;
pub mod dns;
pub mod epoch;
pub mod error;
pub mod health;
pub mod ingress;
pub mod ledger;
pub mod order;
pub mod ports;
pub mod promotion;
pub mod readiness;
pub mod region;
pub mod replication;
pub mod steps;

pub use config::{ConfigError, ConfigProblem, ConfigReader, DbCredentials, DeploymentConfig};
pub use dns::DnsMode;
pub use epoch::{
    COMMIT_WINDOW, CommitWindow, EpochCheck, Handover, LeasePhase, WRITER_LEASE, WriterClaim, WriterEpoch,
};
pub use error::{ErrorCategory, ErrorName, SwitchyardError};
pub use order::{Order, RejectReason, Rejection};
pub use promotion::{FailoverMode, GateDecision, LagGate};
pub use region::{Region, RegionPair};
pub use replication::{DatabaseRole, LagVerdict, ReplicationLag, ReplicationStatus, RpoBudget};

/// Helpers shared by this crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use crate::{WriterClaim, WriterEpoch};

    /// `claim(2, "us-east-2")`: region `us-east-2` writes at epoch 2.
    pub fn claim(epoch: u64, writer: &str) -> WriterClaim {
        WriterClaim::active(WriterEpoch(epoch), writer.parse().expect("region"))
    }

    /// Drives a future that never waits (an in-memory port) without an async runtime.
    pub fn now<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("an in-memory port must not wait"),
        }
    }
}
