//! The health-probe Lambda function. Not built yet: it validates its configuration and answers every
//! invocation with the named error `NotImplemented` (issue #3: probes of endpoint, database and queue).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    switchyard_lambda::serve_pending("health-probe", "issue #3: probes of endpoint, database and queue").await
}
