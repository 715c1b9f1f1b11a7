//! The dns-switcher Lambda function. Not built yet: it validates its configuration and answers every
//! invocation with the named error `NotImplemented` (issue #4: records and health-check modes).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    switchyard_lambda::serve_pending("dns-switcher", "issue #4: records and health-check modes").await
}
