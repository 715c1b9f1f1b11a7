//! The readiness-tester Lambda function. Not built yet: it validates its configuration and answers every
//! invocation with the named error `NotImplemented` (issue #3: readiness rules and report).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    switchyard_lambda::serve_pending("readiness-tester", "issue #3: readiness rules and report").await
}
