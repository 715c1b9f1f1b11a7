//! The rds-promoter Lambda function. Not built yet: it validates its configuration and answers every
//! invocation with the named error `NotImplemented` (issue #4: lag gate, promotion, fencing, epoch bump).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    switchyard_lambda::serve_pending(
        "rds-promoter",
        "issue #4: lag gate, promotion, fencing, epoch bump",
    )
    .await
}
