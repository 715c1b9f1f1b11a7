//! The order-consumer Lambda function. Not built yet: it validates its configuration and answers every
//! invocation with the named error `NotImplemented` (issue #5: idempotent apply, shadow mode, partial batch failures).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    switchyard_lambda::serve_pending(
        "order-consumer",
        "issue #5: idempotent apply, shadow mode, partial batch failures",
    )
    .await
}
