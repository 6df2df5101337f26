//! The registry's catalog (`/v2/_catalog`), fetched directly rather than through
//! oci-client: a token registry grants the catalog only for the scope
//! `registry:catalog:*`, which oci-client never asks for (it asks for a repository's pull
//! scope), so listing packs would fail on every bearer-token registry.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};

use crate::registry::credentials::Credentials;

/// Why a catalog page could not be read.
#[derive(Debug)]
pub(crate) enum CatalogFailure {
    Unauthorized,
    Forbidden,
    NotFound,
    /// Network trouble or a 5xx: worth another attempt.
    Transient(String),
    Protocol(String),
}

pub(crate) struct CatalogReader {
    http: reqwest::Client,
    base_url: String,
    credentials: Credentials,
}

fn transient(error: reqwest::Error) -> CatalogFailure {
    CatalogFailure::Transient(crate::registry::client::error_chain(&error))
}

impl CatalogReader {
    pub(crate) fn new(
        host: &str,
        plain_http: bool,
        ca_pem: Option<&str>,
        credentials: Credentials,
    ) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60));
        if let Some(pem) = ca_pem {
            let certificate = reqwest::Certificate::from_pem(pem.as_bytes())
                .map_err(|e| format!("the CA is not usable: {e}"))?;
            builder = builder.tls_certs_only([certificate]);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let scheme = if plain_http { "http" } else { "https" };
        Ok(CatalogReader {
            http,
            base_url: format!("{scheme}://{host}"),
            credentials,
        })
    }

    fn with_basic(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
            Credentials::Anonymous => request,
        }
    }

    /// One page of repository names after `last`.
    pub(crate) async fn page(
        &self,
        size: usize,
        last: Option<&str>,
    ) -> Result<Vec<String>, CatalogFailure> {
        let mut url = format!("{}/v2/_catalog?n={size}", self.base_url);
        if let Some(last) = last {
            url.push_str(&format!("&last={last}"));
        }
        let response = self
            .with_basic(self.http.get(&url))
            .send()
            .await
            .map_err(transient)?;
        let response = if response.status() == StatusCode::UNAUTHORIZED {
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            match bearer_challenge(&challenge) {
                Some((realm, service)) => {
                    let token = self.token(&realm, &service).await?;
                    self.http
                        .get(&url)
                        .header(AUTHORIZATION, format!("Bearer {token}"))
                        .send()
                        .await
                        .map_err(transient)?
                }
                None => return Err(CatalogFailure::Unauthorized),
            }
        } else {
            response
        };
        let status = response.status();
        match status {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED => return Err(CatalogFailure::Unauthorized),
            StatusCode::FORBIDDEN => return Err(CatalogFailure::Forbidden),
            StatusCode::NOT_FOUND => return Err(CatalogFailure::NotFound),
            s if s.is_server_error() => {
                return Err(CatalogFailure::Transient(format!("{url}: {s}")));
            }
            s => return Err(CatalogFailure::Protocol(format!("{url}: unexpected {s}"))),
        }
        let body = json(response).await?;
        let repositories = body
            .get("repositories")
            .and_then(|r| r.as_array())
            .ok_or_else(|| {
                CatalogFailure::Protocol(format!("{url}: the answer has no repositories list"))
            })?;
        Ok(repositories
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect())
    }

    async fn token(&self, realm: &str, service: &str) -> Result<String, CatalogFailure> {
        let request = self
            .http
            .get(realm)
            .query(&[("service", service), ("scope", "registry:catalog:*")]);
        let response = self.with_basic(request).send().await.map_err(transient)?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED => return Err(CatalogFailure::Unauthorized),
            StatusCode::FORBIDDEN => return Err(CatalogFailure::Forbidden),
            s if s.is_server_error() => {
                return Err(CatalogFailure::Transient(format!(
                    "token server {realm}: {s}"
                )));
            }
            s => {
                return Err(CatalogFailure::Protocol(format!(
                    "token server {realm}: unexpected {s}"
                )));
            }
        }
        let body = json(response).await?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                CatalogFailure::Protocol(format!("token server {realm}: no token in its answer"))
            })
    }
}

async fn json(response: reqwest::Response) -> Result<serde_json::Value, CatalogFailure> {
    let bytes = response.bytes().await.map_err(transient)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| CatalogFailure::Protocol(format!("the answer is not JSON: {e}")))
}

/// `Bearer realm="…",service="…",…` → (realm, service).
fn bearer_challenge(header: &str) -> Option<(String, String)> {
    let rest = header.trim().strip_prefix("Bearer ")?;
    let mut realm = None;
    let mut service = None;
    for part in split_params(rest) {
        if let Some((key, value)) = part.split_once('=') {
            let value = value.trim().trim_matches('"').to_string();
            match key.trim() {
                "realm" => realm = Some(value),
                "service" => service = Some(value),
                _ => {}
            }
        }
    }
    Some((realm?, service.unwrap_or_default()))
}

/// Splits `a="x,y",b=z` on the commas outside quotes.
fn split_params(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let header = r#"Bearer realm="https://127.0.0.1:5001/token",service="registry",scope="repository:a:pull,push",error="insufficient_scope""#;
        assert_eq!(
            bearer_challenge(header),
            Some(("https://127.0.0.1:5001/token".into(), "registry".into()))
        );
        assert_eq!(bearer_challenge(r#"Basic realm="x""#), None);
        assert_eq!(bearer_challenge("Bearer service=\"s\""), None);
    }
}
