//! How a function reaches the regional databases, read from its configuration: the
//! endpoints, its own Secrets Manager secret, and the CA bundle for TLS. One reader for every
//! function, so the rule "beyond loopback: TLS and a secret, or nothing" is written once.

use std::sync::Arc;

use switchyard_core::{ConfigReader, Region, config::keys};

use crate::{DbEndpoints, PgEndpoint, is_loopback, tls_trusting};

#[derive(Debug, Clone)]
pub struct DbSettings {
    pub endpoints: Option<DbEndpoints>,
    /// The function's own secret (each function has its own database role).
    pub secret_id: Option<String>,
    secret_key: &'static str,
    /// TLS to the databases, trusting the configured CA bundle.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    ca_configured: bool,
}

impl DbSettings {
    /// Reads `SWITCHYARD_DB_ENDPOINTS`, the CA bundle and the secret id under `secret_key`,
    /// recording every problem in `r`.
    pub fn read<F: Fn(&str) -> Option<String>>(r: &mut ConfigReader<F>, secret_key: &'static str) -> Self {
        let endpoints = r.required::<DbEndpoints>(keys::DB_ENDPOINTS);
        let secret_id = r.optional::<String>(secret_key);
        let ca_bundle = r.optional::<String>(keys::DB_CA_BUNDLE);
        let tls = match ca_bundle.as_deref().map(|path| (path, std::fs::read(path))) {
            None => None,
            Some((path, Err(e))) => {
                r.invalid(keys::DB_CA_BUNDLE, path, e.to_string());
                None
            }
            Some((path, Ok(pem))) => match tls_trusting(&pem) {
                Ok(tls) => Some(tls),
                Err(e) => {
                    r.invalid(keys::DB_CA_BUNDLE, path, e.message);
                    None
                }
            },
        };
        DbSettings { endpoints, secret_id, secret_key, tls, ca_configured: ca_bundle.is_some() }
    }

    /// The endpoint of `region`'s database, recording a problem if there is none, or if it is
    /// beyond loopback without both TLS and a secret.
    pub fn endpoint<F: Fn(&str) -> Option<String>>(
        &self,
        r: &mut ConfigReader<F>,
        region: &Region,
    ) -> Option<PgEndpoint> {
        let endpoint = self.endpoints.as_ref()?.0.get(region).cloned();
        match &endpoint {
            None => r.invalid(keys::DB_ENDPOINTS, "", format!("no endpoint for {region}")),
            Some(ep) if !is_loopback(&ep.host) => {
                if !self.ca_configured {
                    r.invalid(keys::DB_CA_BUNDLE, "", format!("{} is not loopback: TLS is required", ep.host));
                }
                if self.secret_id.is_none() {
                    r.invalid(
                        self.secret_key,
                        "",
                        format!("{} is not loopback: credentials come from Secrets Manager", ep.host),
                    );
                }
            }
            Some(_) => {}
        }
        endpoint
    }
}
