//! Database credentials from Secrets Manager: the secret RDS manages for a cluster
//! (`ManageMasterUserPassword`) or one shaped like it, a JSON object with `username` and
//! `password`. Read when a connection is opened, never stored in the environment or code, so
//! a rotation takes effect at the next connection.

use aws_sdk_secretsmanager::Client;
use switchyard_core::DbCredentials;
use switchyard_core::{ErrorName, SwitchyardError, ports::PortResult};

use crate::errors::classify;

#[derive(Debug, Clone)]
pub struct DbSecret {
    client: Client,
    secret_id: String,
}

impl DbSecret {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        DbSecret { client, secret_id: secret_id.into() }
    }

    pub async fn credentials(&self) -> PortResult<DbCredentials> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| classify("GetSecretValue", &e))?;
        parse(&self.secret_id, out.secret_string())
    }
}

fn parse(secret_id: &str, text: Option<&str>) -> PortResult<DbCredentials> {
    // Never echo the secret's text in an error.
    let bad = |what: &str| SwitchyardError::new(ErrorName::MissingConfig, format!("secret {secret_id}: {what}"));
    let value: serde_json::Value =
        serde_json::from_str(text.ok_or_else(|| bad("no SecretString"))?).map_err(|_| bad("not a JSON object"))?;
    let field = |k: &str| value.get(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty()).map(str::to_owned);
    match (field("username"), field("password")) {
        (Some(username), Some(password)) => Ok(DbCredentials { username, password }),
        _ => Err(bad("needs non-empty string fields username and password")),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_secretsmanager::{
        error::ErrorMetadata, operation::get_secret_value::GetSecretValueError,
        operation::get_secret_value::GetSecretValueOutput,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    #[tokio::test]
    async fn reads_the_rds_managed_shape_and_never_leaks_the_password() {
        let ok = mock!(Client::get_secret_value).then_output(|| {
            GetSecretValueOutput::builder()
                .secret_string(r#"{"username":"order_consumer","password":"hunter2"}"#)
                .build()
        });
        let client = mock_client!(aws_sdk_secretsmanager, RuleMode::Sequential, [&ok]);
        let c = DbSecret::new(client, "db").credentials().await.expect("credentials");
        assert_eq!(c.username, "order_consumer");
        assert!(!format!("{c:?}").contains("hunter2"));

        let err = parse("db", Some(r#"{"username":"u","password":"p4ss"#)).expect_err("not JSON");
        assert!(!err.message.contains("p4ss"), "{}", err.message);
        assert_eq!(parse("db", Some(r#"{"username":"u"}"#)).map_err(|e| e.name), Err(ErrorName::MissingConfig));
    }

    #[tokio::test]
    async fn denied_and_throttled_are_named() {
        let denied = mock!(Client::get_secret_value).then_error(|| {
            GetSecretValueError::generic(ErrorMetadata::builder().code("AccessDeniedException").build())
        });
        let throttled = mock!(Client::get_secret_value)
            .then_error(|| GetSecretValueError::generic(ErrorMetadata::builder().code("ThrottlingException").build()));
        let client = mock_client!(aws_sdk_secretsmanager, RuleMode::Sequential, [&denied, &throttled]);
        let secret = DbSecret::new(client, "db");
        assert_eq!(secret.credentials().await.map_err(|e| e.name), Err(ErrorName::AccessDenied));
        assert_eq!(secret.credentials().await.map_err(|e| e.name), Err(ErrorName::Throttled));
    }
}
