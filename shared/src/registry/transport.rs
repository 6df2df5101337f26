//! HTTP to one registry for everything but uploads: manifests, tag lists, the catalog,
//! blobs, and the token dance in front of them.
//!
//! Done here rather than through `oci-client`, which reads every answer whole with no
//! size limit and sends the credentials to whatever token realm a registry names. Here:
//!
//! - every body but a blob is read up to a limit, checked against `Content-Length` before
//!   reading and counted while reading when there is none ([`Transport::read_limited`]);
//! - small requests (manifests, list pages, tokens) have a time limit for the whole
//!   answer, body included; blobs are bounded by the caller's deadline instead;
//! - a `401` is answered as its `WWW-Authenticate` asks, Basic or Bearer, with the realm
//!   checked first ([`crate::registry::challenge`]): nothing is sent to a realm the
//!   rule refuses;
//! - redirects are followed (reqwest drops the `Authorization` header when one leaves
//!   the host, port or scheme), but never from HTTPS down to plain HTTP.
//!
//! A pack's layer is uploaded here as it is archived ([`upload`]); the rest of an upload
//! stays with `oci-client` (see [`Transport::upload_auth`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oci_client::secrets::RegistryAuth;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH};
use reqwest::{RequestBuilder, Response, StatusCode};
use tracing::debug;

use crate::registry::challenge::{Challenge, challenge_of, check_realm};
use crate::registry::credentials::Credentials;
use crate::registry::error::{RegistryError, seconds};
use crate::registry::failure::{Failure, answer_failure, error_chain, request_failure};
use crate::registry::options::{RegistryOptions, USER_AGENT};

/// The most of an error answer read for its message: the start says enough.
const ERROR_BODY_BYTES: u64 = 64 * 1024;
/// The largest token server answer accepted (tokens are a few kilobytes).
const TOKEN_ANSWER_BYTES: u64 = 1024 * 1024;
/// How long a token without `expires_in` is kept (the token specification's default).
const DEFAULT_TOKEN_SECONDS: u64 = 60;
const MAX_REDIRECTS: usize = 10;

mod upload;

/// What a request needs access to, as a token scope.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    Pull(&'a str),
    PullPush(&'a str),
    /// `/v2/_catalog`: distribution grants it only for `registry:catalog:*`.
    Catalog,
}

impl Scope<'_> {
    fn text(&self) -> String {
        match self {
            Scope::Pull(repository) => format!("repository:{repository}:pull"),
            Scope::PullPush(repository) => format!("repository:{repository}:pull,push"),
            Scope::Catalog => "registry:catalog:*".to_owned(),
        }
    }
}

/// What goes in the `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Authorization {
    Basic,
    Bearer(String),
}

#[derive(Default)]
struct AuthState {
    /// What the registry's last `401` asked for.
    challenge: Option<Challenge>,
    /// Tokens by scope, with when to stop using them.
    tokens: HashMap<String, (String, Instant)>,
}

pub(crate) struct Transport {
    http: reqwest::Client,
    /// `scheme://host[:port]`.
    base_url: String,
    /// `host[:port]`, for messages and the realm rule.
    host: String,
    plain_http: bool,
    credentials: Credentials,
    request_timeout: Duration,
    auth: Mutex<AuthState>,
}

fn lock(state: &Mutex<AuthState>) -> std::sync::MutexGuard<'_, AuthState> {
    // Plain values: a panic elsewhere cannot leave them half-updated.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why no HTTP client could be built for a registry; the registry is named by the caller.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportSetupError {
    #[error("the CA is not usable: {chain}")]
    UnusableCa { chain: String },
    #[error("cannot build an HTTP client: {chain}")]
    HttpClient { chain: String },
}

impl Transport {
    /// A client for `host` with the TLS settings of `options`.
    pub(crate) fn new(
        host: &str,
        options: &RegistryOptions,
    ) -> Result<Transport, TransportSetupError> {
        // reqwest is built without a crypto provider; without a process-wide one,
        // building a client panics. Err means one is installed already: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let downgrade = attempt.url().scheme() != "https"
                && attempt.previous().iter().any(|url| url.scheme() == "https");
            if downgrade {
                attempt.error("the registry redirected from HTTPS to plain HTTP")
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(10))
            // Between reads; whole answers are bounded per request or by the deadline.
            .read_timeout(Duration::from_secs(60))
            .redirect(redirects);
        if let Some(pem) = &options.ca_pem {
            let certificates =
                reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                    TransportSetupError::UnusableCa {
                        chain: error_chain(&e),
                    }
                })?;
            builder = builder.tls_certs_merge(certificates);
        }
        let http = builder
            .build()
            .map_err(|e| TransportSetupError::HttpClient {
                chain: error_chain(&e),
            })?;
        let scheme = if options.plain_http { "http" } else { "https" };
        Ok(Transport {
            http,
            base_url: format!("{scheme}://{host}"),
            host: host.to_owned(),
            plain_http: options.plain_http,
            credentials: options.credentials.clone(),
            request_timeout: options.request_timeout,
            auth: Mutex::new(AuthState::default()),
        })
    }

    /// `scheme://host/<path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// GET `path` with `query`, authenticated for `scope`: the answer when it is a 2xx,
    /// else the failure it means. `small`: the whole answer must come within the
    /// per-request time limit (everything but blobs).
    pub(crate) async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        accept: Option<&str>,
        scope: Scope<'_>,
        small: bool,
    ) -> Result<Response, Failure> {
        self.request(
            reqwest::Method::GET,
            self.url(path),
            query,
            accept,
            scope,
            small,
        )
        .await
    }

    /// HEAD `path`, authenticated for `scope`: the answer when it is a 2xx (its headers
    /// say what the registry holds), else the failure it means (404: `NotFound`).
    pub(crate) async fn head(
        &self,
        path: &str,
        accept: Option<&str>,
        scope: Scope<'_>,
    ) -> Result<Response, Failure> {
        self.request(
            reqwest::Method::HEAD,
            self.url(path),
            &[],
            accept,
            scope,
            true,
        )
        .await
    }

    /// `method` to `url` (on this registry) with `query` and an empty body, answering a
    /// `401` as it asks.
    async fn request(
        &self,
        method: reqwest::Method,
        url: String,
        query: &[(&str, String)],
        accept: Option<&str>,
        scope: Scope<'_>,
        small: bool,
    ) -> Result<Response, Failure> {
        let build = || {
            let mut request = self.http.request(method.clone(), &url).query(query);
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if method == reqwest::Method::POST || method == reqwest::Method::PUT {
                request = request.header(CONTENT_LENGTH, 0).body(Vec::new());
            }
            if small {
                request = request.timeout(self.request_timeout);
            }
            request
        };
        let first = self.authorization(scope, false).await?;
        let response = self.send(build(), first.as_ref()).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return self.success(response, &url).await;
        }
        let Some(challenge) = challenge_of(response.headers()) else {
            return Err(Failure::Unauthorized);
        };
        debug!(registry = %self.host, ?challenge, "the registry asks for authentication");
        lock(&self.auth).challenge = Some(challenge);
        let second = match self.authorization(scope, true).await? {
            None => return Err(Failure::Unauthorized),
            // The same credentials again cannot fare better.
            Some(Authorization::Basic) if first == Some(Authorization::Basic) => {
                return Err(Failure::Unauthorized);
            }
            Some(second) => second,
        };
        let response = self.send(build(), Some(&second)).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(Failure::Unauthorized);
        }
        self.success(response, &url).await
    }

    async fn send(
        &self,
        request: RequestBuilder,
        authorization: Option<&Authorization>,
    ) -> Result<Response, Failure> {
        let request = match (authorization, &self.credentials) {
            (Some(Authorization::Bearer(token)), _) => {
                request.header(AUTHORIZATION, format!("Bearer {token}"))
            }
            (Some(Authorization::Basic), Credentials::Basic { username, password }) => {
                request.basic_auth(username, Some(password))
            }
            _ => request,
        };
        request.send().await.map_err(|e| self.request_failure(&e))
    }

    fn request_failure(&self, error: &reqwest::Error) -> Failure {
        if error.is_timeout() {
            return Failure::Transient {
                message: format!(
                    "no complete answer within {} (the limit for one request): {}",
                    seconds(self.request_timeout),
                    error_chain(error)
                ),
                exhausted: None,
            };
        }
        request_failure(error)
    }

    /// The answer when it is a success; else the failure its status and body mean.
    async fn success(&self, response: Response, url: &str) -> Result<Response, Failure> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = read_start(response, ERROR_BODY_BYTES).await;
        Err(answer_failure(status.as_u16(), &body, url))
    }

    /// The body of `response`, refused once it is more than `limit` bytes: before reading
    /// when it says so in `Content-Length`, while reading when it does not.
    pub(crate) async fn read_limited(
        &self,
        mut response: Response,
        limit: u64,
        what: &'static str,
        reference: &str,
    ) -> Result<Vec<u8>, Failure> {
        let too_large = |size: u64, declared: bool| {
            Failure::final_error(RegistryError::ResponseTooLarge {
                registry: self.host.clone(),
                reference: reference.to_owned(),
                what,
                size,
                declared,
                limit,
            })
        };
        if let Some(length) = response.content_length()
            && length > limit
        {
            return Err(too_large(length, true));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.request_failure(&e))?
        {
            let received = (body.len() + chunk.len()) as u64;
            if received > limit {
                return Err(too_large(received, false));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// What to send for `scope`, from the last challenge: nothing before the registry
    /// asked for anything. `fresh`: a new token even when one is cached (the cached one
    /// was just refused).
    async fn authorization(
        &self,
        scope: Scope<'_>,
        fresh: bool,
    ) -> Result<Option<Authorization>, Failure> {
        let key = scope.text();
        let challenge = {
            let state = lock(&self.auth);
            if !fresh
                && let Some((token, until)) = state.tokens.get(&key)
                && Instant::now() < *until
            {
                return Ok(Some(Authorization::Bearer(token.clone())));
            }
            state.challenge.clone()
        };
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(match self.credentials {
                Credentials::Basic { .. } => Some(Authorization::Basic),
                Credentials::Anonymous => None,
            }),
            Some(Challenge::Bearer { realm, service }) => {
                let (token, lifetime) = self.token(&realm, service.as_deref(), &key).await?;
                lock(&self.auth)
                    .tokens
                    .insert(key, (token.clone(), Instant::now() + lifetime));
                Ok(Some(Authorization::Bearer(token)))
            }
        }
    }

    /// A token for `scope` from `realm`, and how long to use it.
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Duration), Failure> {
        let sends_credentials = matches!(self.credentials, Credentials::Basic { .. });
        let url = check_realm(&self.host, self.plain_http, sends_credentials, realm).map_err(
            |problem| {
                Failure::final_error(RegistryError::RealmRefused {
                    registry: self.host.clone(),
                    realm: realm.to_owned(),
                    reason: problem.reason(&self.host),
                })
            },
        )?;
        let mut query = vec![("scope", scope)];
        if let Some(service) = service {
            query.push(("service", service));
        }
        let request = self
            .http
            .get(url)
            .query(&query)
            .timeout(self.request_timeout);
        let authorization = sends_credentials.then_some(Authorization::Basic);
        let response = self.send(request, authorization.as_ref()).await?;
        let status = response.status();
        match status {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED => return Err(Failure::Unauthorized),
            StatusCode::FORBIDDEN => return Err(Failure::Forbidden),
            s if s.is_server_error() => {
                return Err(Failure::Transient {
                    message: format!("the token server {realm} answered {s}"),
                    exhausted: None,
                });
            }
            s => {
                return Err(Failure::Protocol(format!(
                    "the token server {realm} answered {s}"
                )));
            }
        }
        let body = self
            .read_limited(response, TOKEN_ANSWER_BYTES, "token server answer", realm)
            .await?;
        let answer: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            Failure::Protocol(format!("the token server {realm} answered no JSON: {e}"))
        })?;
        let token = answer
            .get("token")
            .or_else(|| answer.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Failure::Protocol(format!("the token server {realm} answered no token"))
            })?;
        let seconds = answer
            .get("expires_in")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(DEFAULT_TOKEN_SECONDS)
            .max(1);
        // Renewed a little before it runs out, so that it does not expire in flight.
        Ok((token.to_owned(), Duration::from_secs(seconds) * 9 / 10))
    }

    /// How `oci-client` should authenticate an upload to `repository`: a token fetched
    /// here (the realm checked) for a token registry, so that `oci-client` never runs its
    /// own token dance; Basic for a Basic registry, which receives the password itself
    /// anyway; nothing for a registry that asks for nothing.
    pub(crate) async fn upload_auth(&self, repository: &str) -> Result<RegistryAuth, Failure> {
        let known = lock(&self.auth).challenge.clone();
        let challenge = match known {
            Some(challenge) => Some(challenge),
            None => {
                let url = self.url("/v2/");
                let response = self
                    .send(self.http.get(&url).timeout(self.request_timeout), None)
                    .await?;
                let challenge = (response.status() == StatusCode::UNAUTHORIZED)
                    .then(|| challenge_of(response.headers()))
                    .flatten();
                lock(&self.auth).challenge = challenge.clone();
                challenge
            }
        };
        Ok(match (challenge, &self.credentials) {
            (None, _) | (Some(Challenge::Basic), Credentials::Anonymous) => RegistryAuth::Anonymous,
            (Some(Challenge::Basic), Credentials::Basic { username, password }) => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            (Some(Challenge::Bearer { .. }), _) => {
                match self
                    .authorization(Scope::PullPush(repository), false)
                    .await?
                {
                    Some(Authorization::Bearer(token)) => RegistryAuth::Bearer(token),
                    _ => RegistryAuth::Anonymous,
                }
            }
        })
    }
}

/// Up to `limit` bytes of the body, for a message; whatever arrived when reading fails.
async fn read_start(mut response: Response, limit: u64) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() as u64 >= limit {
            break;
        }
    }
    body
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A plain HTTP server answering every connection with `answer` (then closing).
    async fn answering(answer: &'static [u8]) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(answer).await;
                let _ = socket.shutdown().await;
            }
        });
        (host, task)
    }

    fn transport(host: &str) -> Transport {
        Transport::new(
            host,
            &RegistryOptions {
                plain_http: true,
                ..RegistryOptions::default()
            },
        )
        .unwrap()
    }

    async fn read(host: &str, limit: u64) -> Result<Vec<u8>, Failure> {
        let transport = transport(host);
        let response = transport
            .get("/v2/x/manifests/1", &[], None, Scope::Pull("x"), true)
            .await?;
        transport
            .read_limited(response, limit, "manifest", "h/x:1")
            .await
    }

    fn too_large(result: Result<Vec<u8>, Failure>) -> (u64, bool, u64) {
        match result {
            Err(Failure::Final(error)) => match *error {
                RegistryError::ResponseTooLarge {
                    size,
                    declared,
                    limit,
                    ..
                } => (size, declared, limit),
                other => panic!("expected ResponseTooLarge, got {other:?}"),
            },
            other => panic!("expected ResponseTooLarge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn refuses_a_declared_length_over_the_limit_before_reading() {
        let (host, task) =
            answering(b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\nconnection: close\r\n\r\n")
                .await;
        assert_eq!(too_large(read(&host, 100).await), (5000, true, 100));
        task.abort();
    }

    #[tokio::test]
    async fn refuses_an_undeclared_body_that_grows_past_the_limit() {
        static ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n\
            0123456789012345678901234567890123456789012345678901234567890123456789";
        let (host, task) = answering(ANSWER).await;
        let (size, declared, limit) = too_large(read(&host, 10).await);
        assert!(size > 10 && !declared && limit == 10, "{size} {declared}");
        // Within the limit, the same answer is read whole.
        assert_eq!(read(&host, 1000).await.unwrap().len(), 70);
        task.abort();
    }

    #[tokio::test]
    async fn error_answers_become_failures() {
        let (host, task) = answering(
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n\
              {\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"no\"}]}",
        )
        .await;
        assert!(matches!(read(&host, 100).await, Err(Failure::NotFound(_))));
        task.abort();
        let (host, task) =
            answering(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n").await;
        assert!(matches!(read(&host, 100).await, Err(Failure::Unauthorized)));
        task.abort();
    }

    #[test]
    fn seconds_reads_well() {
        assert_eq!(seconds(Duration::from_secs(300)), "300 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }
}
