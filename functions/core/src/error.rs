//! The error taxonomy. **Error names are API**: Step Functions matches `Retry`/`Catch` on the
//! `errorType` a Lambda returns, and that is [`ErrorName::as_str`]. Renaming one is a breaking
//! change to every state machine; the contract test in `tests/` checks that the ASL files and
//! this list agree.

use std::fmt;

/// How a caller should react to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// Retrying the same request later can succeed (throttling, a node restarting, an
    /// operation still in progress). State machines retry these with backoff.
    Transient,
    /// The request was well formed but the world is not in a state that allows it (lag above
    /// budget, a newer epoch, a held lock, a cooldown). Retrying blindly will not help; a
    /// person or a later execution decides.
    Precondition,
    /// The request or the deployment is wrong (bad input, missing config, unknown region,
    /// missing resource, no permission). Needs a fix, never a retry.
    Fatal,
}

macro_rules! error_names {
    ($( $(#[$doc:meta])* $variant:ident => $category:ident ),+ $(,)?) => {
        /// Stable names of every error a switchyard function can return.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorName { $( $(#[$doc])* $variant ),+ }

        impl ErrorName {
            /// Every name, for contract tests and documentation.
            pub const ALL: &'static [ErrorName] = &[ $( ErrorName::$variant ),+ ];

            /// The `errorType` string seen by Step Functions and in logs.
            pub const fn as_str(self) -> &'static str {
                match self { $( ErrorName::$variant => stringify!($variant) ),+ }
            }

            pub const fn category(self) -> ErrorCategory {
                match self { $( ErrorName::$variant => ErrorCategory::$category ),+ }
            }
        }
    };
}

error_names! {
    /// An AWS API or the database asked us to slow down.
    Throttled => Transient,
    /// A dependency did not answer or answered with a server error.
    ServiceUnavailable => Transient,
    /// A long operation (promotion, switchover, DNS change) has started and is not finished.
    OperationInProgress => Transient,
    /// A consumer's commit came too late after the strong read that allowed it (the writer
    /// lease's commit window): nothing was applied; the batch comes back and reads again.
    LeaseLapsed => Transient,
    /// Replication lag exceeds the RPO budget and data loss was not explicitly allowed.
    LagAboveBudget => Precondition,
    /// The request names a writer epoch older than the current one.
    StaleEpoch => Precondition,
    /// Another execution holds the failover lock.
    LockHeld => Precondition,
    /// A failover happened too recently; automatic failover waits for the cooldown.
    CooldownActive => Precondition,
    /// A readiness rule failed, so the standby cannot take over now.
    NotReady => Precondition,
    /// Another execution holds the failover lock for the same incident and does the work:
    /// this one did nothing (an execution's outcome, not a function's error).
    Duplicate => Precondition,
    /// The writer is already where the request asks: nothing was done (an execution's
    /// outcome, not a function's error).
    NothingToDo => Precondition,
    /// A step a state machine polls (catch-up, promotion, traffic) was not done within its
    /// bound of polls: the execution fails on its failure path instead of running into its
    /// own timeout, which nothing catches.
    StepTimedOut => Precondition,
    /// A destructive step (fence, promote, record) outside an execution that holds the failover lock
    /// and whose gate recorded its decision for this epoch and target.
    Ungated => Precondition,
    /// The event or request is malformed.
    InvalidInput => Fatal,
    /// Required configuration is absent or unparsable.
    MissingConfig => Fatal,
    /// A region that is not one of the deployment's two regions.
    UnknownRegion => Fatal,
    /// A resource the deployment needs does not exist.
    ResourceNotFound => Fatal,
    /// The function's role may not perform the call.
    AccessDenied => Fatal,
    /// The function does not implement this request yet. Never retried.
    NotImplemented => Fatal,
    /// A bug or an unclassified failure.
    Internal => Fatal,
}

impl ErrorName {
    /// Parses an `errorType` back into a name (for ASL contract tests and clients).
    pub fn parse(s: &str) -> Option<ErrorName> {
        ErrorName::ALL.iter().copied().find(|n| n.as_str() == s)
    }

    pub const fn is_transient(self) -> bool {
        matches!(self.category(), ErrorCategory::Transient)
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a stable name and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct SwitchyardError {
    pub name: ErrorName,
    pub message: String,
}

impl SwitchyardError {
    pub fn new(name: ErrorName, message: impl Into<String>) -> Self {
        SwitchyardError { name, message: message.into() }
    }

    pub fn category(&self) -> ErrorCategory {
        self.name.category()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for name in ErrorName::ALL {
            assert!(seen.insert(name.as_str()), "duplicate error name {name}");
            assert_eq!(ErrorName::parse(name.as_str()), Some(*name));
        }
        assert_eq!(ErrorName::parse("States.ALL"), None);
    }

    #[test]
    fn categories() {
        let table = [
            (ErrorName::Throttled, ErrorCategory::Transient),
            (ErrorName::OperationInProgress, ErrorCategory::Transient),
            (ErrorName::LagAboveBudget, ErrorCategory::Precondition),
            (ErrorName::StaleEpoch, ErrorCategory::Precondition),
            (ErrorName::MissingConfig, ErrorCategory::Fatal),
            (ErrorName::UnknownRegion, ErrorCategory::Fatal),
            (ErrorName::NotImplemented, ErrorCategory::Fatal),
        ];
        for (name, category) in table {
            assert_eq!(name.category(), category, "{name}");
        }
    }

    #[test]
    fn display_leads_with_the_name() {
        let e = SwitchyardError::new(ErrorName::LagAboveBudget, "lag 90 s > budget 60 s");
        assert_eq!(e.to_string(), "LagAboveBudget: lag 90 s > budget 60 s");
    }
}
