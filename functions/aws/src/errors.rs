//! Classification of AWS SDK errors into switchyard error names. Never flatten an SDK error
//! into a string without deciding first whether it is worth a retry.

use std::fmt::Debug;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use switchyard_core::{ErrorName, SwitchyardError};

/// The name for an AWS error code (the `Code` of a service error), by AWS's conventions.
pub fn name_for_code(code: &str) -> ErrorName {
    const THROTTLING: &[&str] = &[
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TransactionInProgressException",
        "PriorRequestNotComplete",
        // MRSC: a write in another region changed the item first; retry-safe (the SDK's
        // DynamoDB error docs). Our writes are conditional, so the retry decides afresh.
        "ReplicatedWriteConflictException",
    ];
    const UNAVAILABLE: &[&str] = &[
        "InternalFailure",
        "InternalServerError",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    ];
    const DENIED: &[&str] =
        &["AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException"];
    // Aurora: the global cluster is busy with another operation (a failover in progress).
    const BUSY: &[&str] = &["InvalidGlobalClusterStateFault", "InvalidDBClusterStateFault", "ResourceInUseException"];
    if THROTTLING.contains(&code) {
        ErrorName::Throttled
    } else if UNAVAILABLE.contains(&code) {
        ErrorName::ServiceUnavailable
    } else if DENIED.contains(&code) {
        ErrorName::AccessDenied
    } else if BUSY.contains(&code) {
        ErrorName::OperationInProgress
    } else if code.starts_with("NoSuch")
        || code == "QueueDoesNotExist"
        || code.ends_with(".NonExistentQueue")
        || code.ends_with("NotFound")
        || code.ends_with("NotFoundFault")
        || code.ends_with("NotFoundException")
    {
        ErrorName::ResourceNotFound
    } else if code == "ValidationException" || code.starts_with("InvalidParameter") {
        ErrorName::InvalidInput
    } else {
        ErrorName::Internal
    }
}

/// Classifies an SDK error from operation `operation`.
pub fn classify<E, R>(operation: &str, err: &SdkError<E, R>) -> SwitchyardError
where
    E: ProvideErrorMetadata + std::error::Error,
    R: Debug,
{
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown");
            SwitchyardError::new(
                name_for_code(code),
                format!("{operation}: {code}: {}", e.message().unwrap_or("no message")),
            )
        }
        // No answer from the service (connection, timeout, unparsable response).
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            SwitchyardError::new(ErrorName::ServiceUnavailable, format!("{operation}: {err}"))
        }
        _ => SwitchyardError::new(ErrorName::Internal, format!("{operation}: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let table = [
            ("ThrottlingException", ErrorName::Throttled),
            ("ProvisionedThroughputExceededException", ErrorName::Throttled),
            ("Throttling", ErrorName::Throttled),
            ("ReplicatedWriteConflictException", ErrorName::Throttled),
            ("AccessDeniedException", ErrorName::AccessDenied),
            ("InvalidGlobalClusterStateFault", ErrorName::OperationInProgress),
            ("GlobalClusterNotFoundFault", ErrorName::ResourceNotFound),
            ("ResourceNotFoundException", ErrorName::ResourceNotFound),
            ("NoSuchHostedZone", ErrorName::ResourceNotFound),
            ("AWS.SimpleQueueService.NonExistentQueue", ErrorName::ResourceNotFound),
            ("InternalServerError", ErrorName::ServiceUnavailable),
            ("ValidationException", ErrorName::InvalidInput),
            ("SomethingNew", ErrorName::Internal),
        ];
        for (code, name) in table {
            assert_eq!(name_for_code(code), name, "{code}");
        }
    }
}
