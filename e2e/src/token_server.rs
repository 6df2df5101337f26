//! A token server for tests: the "Docker token authentication" that registries with
//! bearer tokens use (distribution's `auth: token`, Harbor, the big cloud registries).
//!
//! The flow it serves:
//!
//! 1. a client calls the registry without a token and gets `401` with
//!    `WWW-Authenticate: Bearer realm="<this server>/token",service="…",scope="repository:NAME:pull,push"`;
//! 2. it asks the realm, `GET /token?service=…&scope=…` with Basic credentials (or
//!    `POST /token` with an OAuth2 form, `grant_type=password`, as containerd does);
//! 3. this server checks the user, grants the requested actions its rules allow (the
//!    intersection, possibly empty: asking for more than allowed is not an error here, the
//!    registry refuses the request later), and answers
//!    `{"token": JWT, "access_token": JWT, "expires_in": …}`;
//! 4. the client repeats its call with `Authorization: Bearer JWT`.
//!
//! Unknown users and wrong passwords get `401` from this server. Requests without
//! credentials get `401` too, unless anonymous access is configured.
//!
//! The JWT is signed ES256 (ECDSA P-256, SHA-256, `r || s` signature) with a key whose
//! certificate comes from the test CA. Its header names the key in one of the two ways
//! distribution 2.8 (`registry/auth/token/token.go`, `VerifySigningKey`) accepts without
//! extra configuration:
//!
//! - [`KeyHeader::Kid`]: `kid` is the libtrust fingerprint of the public key (SHA-256 of
//!   the DER SubjectPublicKeyInfo, first 240 bits, base32, in 12 groups of 4 joined by
//!   `:`); distribution looks it up among the public keys of the certificates in its
//!   `rootcertbundle`, so the signing certificate itself must be in the bundle;
//! - [`KeyHeader::X5c`]: `x5c` carries the certificate chain (base64 DER, leaf first);
//!   distribution verifies it up to a certificate of the bundle (any key usage), so the
//!   CA is enough there.
//!
//! (A third form, `jwk`, is also accepted by distribution but adds nothing for tests.)
//! Distribution 2.8 also requires `iss` = its configured issuer, `aud` = its configured
//! service (a JSON string, not an array), and `exp`/`nbf` within 60 s of leeway.
//!
//! The server runs on a thread of its own with its own Tokio runtime, so it answers even
//! while a test blocks its own runtime (e.g. waiting for a subprocess).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tracing::{debug, warn};

/// How long tokens are valid unless configured otherwise.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// The path of the realm on this server.
pub const TOKEN_PATH: &str = "/token";
/// Limits on what a client may send; these are tests, not a public service.
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_BODY_BYTES: usize = 64 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TokenServerError {
    #[error("cannot listen on 127.0.0.1 for the token server: {source}")]
    Bind {
        #[source]
        source: io::Error,
    },
    #[error("unusable token signing key: {reason}")]
    SigningKey { reason: String },
    #[error("unusable certificate for the token server: {reason}")]
    Certificate { reason: String },
    #[error("cannot configure TLS for the token server: {source}")]
    Tls {
        #[source]
        source: rustls::Error,
    },
    #[error("cannot start the token server's runtime: {source}")]
    Runtime {
        #[source]
        source: io::Error,
    },
}

/// What a rule allows: `actions` on resources of `resource_type` whose name matches
/// `name`. The three fields are patterns where `*` matches any run of characters
/// (including `/`); an action `*` allows every action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl AccessRule {
    pub fn new(
        resource_type: impl Into<String>,
        name: impl Into<String>,
        actions: &[&str],
    ) -> AccessRule {
        AccessRule {
            resource_type: resource_type.into(),
            name: name.into(),
            actions: actions.iter().map(|a| (*a).to_string()).collect(),
        }
    }

    /// Everything: every action on every repository, and the catalog.
    pub fn everything() -> AccessRule {
        AccessRule::new("*", "*", &["*"])
    }

    /// Pull from the repositories matching `name`.
    pub fn pull(name: impl Into<String>) -> AccessRule {
        AccessRule::new("repository", name, &["pull"])
    }

    /// Pull from and push to the repositories matching `name`.
    pub fn pull_push(name: impl Into<String>) -> AccessRule {
        AccessRule::new("repository", name, &["pull", "push"])
    }

    /// The repository list (`GET /v2/_catalog` needs `registry:catalog:*`).
    pub fn catalog() -> AccessRule {
        AccessRule::new("registry", "catalog", &["*"])
    }

    fn allows(&self, resource_type: &str, name: &str, action: &str) -> bool {
        glob_match(&self.resource_type, resource_type)
            && glob_match(&self.name, name)
            && self.actions.iter().any(|a| a == "*" || a == action)
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and how much of the text it has swallowed.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A user of the token server and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    pub name: String,
    pub password: String,
    pub access: Vec<AccessRule>,
}

/// How the JWT header names the signing key (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyHeader {
    /// `kid`: the libtrust fingerprint of the key; its certificate must be in the
    /// registry's `rootcertbundle`.
    #[default]
    Kid,
    /// `x5c`: the certificate chain, verified up to the `rootcertbundle`.
    X5c,
}

/// A scope as clients send it and tokens grant it: `type:name:action,action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Scope {
    /// Parses `type:name:actions`. The name may itself contain `:` (a registry host
    /// with a port), so the type ends at the first `:` and the actions start after the
    /// last one.
    pub fn parse(text: &str) -> Option<Scope> {
        let (resource_type, rest) = text.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if resource_type.is_empty() || name.is_empty() {
            return None;
        }
        Some(Scope {
            resource_type: resource_type.to_string(),
            name: name.to_string(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.resource_type,
            self.name,
            self.actions.join(",")
        )
    }
}

/// One request the server answered, for tests to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The user named in the credentials (None without credentials).
    pub user: Option<String>,
    /// The scopes asked for.
    pub requested: Vec<Scope>,
    /// What the token grants (empty when no token was issued).
    pub granted: Vec<Scope>,
    /// The HTTP status of the answer.
    pub status: u16,
}

/// The key that signs tokens, with its certificate chain (leaf first).
#[derive(Clone)]
pub struct TokenSigner {
    key: Arc<EcdsaKeyPair>,
    spki_der: Vec<u8>,
    chain_der: Vec<Vec<u8>>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.key_id())
            .finish()
    }
}

impl TokenSigner {
    /// `key_pem`: a PKCS#8 ECDSA P-256 private key (as `pki::TestCa::issue` writes);
    /// `chain_pem`: its certificate, then the certificates up to (and possibly including)
    /// the root, concatenated.
    pub fn from_pem(key_pem: &str, chain_pem: &str) -> Result<TokenSigner, TokenServerError> {
        let key_error = |reason: String| TokenServerError::SigningKey { reason };
        let pkcs8 = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()) {
            Ok(PrivateKeyDer::Pkcs8(der)) => der.secret_pkcs8_der().to_vec(),
            Ok(_) => return Err(key_error("not a PKCS#8 key".to_string())),
            Err(error) => return Err(key_error(format!("cannot read the PEM: {error}"))),
        };
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|error| key_error(format!("not an ECDSA P-256 PKCS#8 key: {error}")))?;
        // The public half as DER SubjectPublicKeyInfo, which is what Go's
        // x509.MarshalPKIXPublicKey (and so libtrust's fingerprint) hashes.
        let spki_der = rcgen::KeyPair::from_pem(key_pem)
            .map(|pair| rcgen::PublicKeyData::subject_public_key_info(&pair))
            .map_err(|error| key_error(format!("cannot read the public key: {error}")))?;
        let chain_der = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .map(|cert| cert.map(|c| c.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TokenServerError::Certificate {
                reason: format!("cannot read the signing certificate chain: {error}"),
            })?;
        if chain_der.is_empty() {
            return Err(TokenServerError::Certificate {
                reason: "no certificate in the signing chain".to_string(),
            });
        }
        Ok(TokenSigner {
            key: Arc::new(key),
            spki_der,
            chain_der,
        })
    }

    /// The libtrust fingerprint of the public key, as distribution expects in `kid`.
    pub fn key_id(&self) -> String {
        libtrust_key_id(&self.spki_der)
    }

    /// A signed JWT (compact serialization) with these claims.
    pub fn sign(
        &self,
        header: KeyHeader,
        claims: &serde_json::Value,
    ) -> Result<String, TokenServerError> {
        let mut jose = serde_json::json!({ "typ": "JWT", "alg": "ES256" });
        match header {
            KeyHeader::Kid => jose["kid"] = self.key_id().into(),
            KeyHeader::X5c => {
                jose["x5c"] = self
                    .chain_der
                    .iter()
                    .map(|der| STANDARD.encode(der))
                    .collect::<Vec<_>>()
                    .into();
            }
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(jose.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|error| TokenServerError::SigningKey {
                reason: format!("cannot sign: {error}"),
            })?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

/// libtrust's key fingerprint: SHA-256 of the DER SubjectPublicKeyInfo, truncated to
/// 240 bits, base32 (RFC 4648, no padding: exactly 48 characters), in groups of 4
/// joined by `:`.
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    let encoded = base32(&digest.as_ref()[..30]);
    encoded
        .as_bytes()
        .chunks(4)
        .map(|group| String::from_utf8_lossy(group).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 4648 base32 without padding.
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// How to run a token server.
#[derive(Debug, Clone)]
pub struct TokenServerOptions {
    /// The `service` of the challenge; becomes the token's audience.
    pub service: String,
    /// The token's issuer.
    pub issuer: String,
    pub users: Vec<TokenUser>,
    /// What requests without credentials get; None: 401.
    pub anonymous: Option<Vec<AccessRule>>,
    pub key_header: KeyHeader,
    pub lifetime: Duration,
    /// Serve HTTPS with this certificate and key (PEM) instead of plain HTTP.
    pub tls: Option<(String, String)>,
}

struct State {
    options: TokenServerOptions,
    signer: TokenSigner,
    log: Mutex<Vec<TokenRequest>>,
}

/// A running token server; stopped on drop.
pub struct TokenServer {
    addr: SocketAddr,
    realm: String,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("realm", &self.realm)
            .finish()
    }
}

impl TokenServer {
    /// Binds a free loopback port and starts serving on a thread of its own.
    pub fn start(
        options: TokenServerOptions,
        signer: TokenSigner,
    ) -> Result<TokenServer, TokenServerError> {
        let tls = match &options.tls {
            Some((cert_pem, key_pem)) => Some(tls_acceptor(cert_pem, key_pem)?),
            None => None,
        };
        let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|source| TokenServerError::Bind { source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| TokenServerError::Bind { source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| TokenServerError::Bind { source })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let realm = format!("{scheme}://{addr}{TOKEN_PATH}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| TokenServerError::Runtime { source })?;
        let state = Arc::new(State {
            options,
            signer,
            log: Mutex::new(Vec::new()),
        });
        let (shutdown, mut stop) = watch::channel(false);
        let serving = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("token-server-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            warn!(%error, "token server cannot listen");
                            return;
                        }
                    };
                    loop {
                        tokio::select! {
                            _ = stop.changed() => break,
                            accepted = listener.accept() => {
                                let (stream, peer) = match accepted {
                                    Ok(pair) => pair,
                                    Err(error) => {
                                        debug!(%error, "token server accept failed");
                                        continue;
                                    }
                                };
                                let state = serving.clone();
                                let tls = tls.clone();
                                tokio::spawn(async move {
                                    let result = match tls {
                                        Some(acceptor) => match tokio::time::timeout(
                                            IO_TIMEOUT,
                                            acceptor.accept(stream),
                                        )
                                        .await
                                        {
                                            Ok(Ok(stream)) => serve(stream, &state).await,
                                            Ok(Err(error)) => Err(error),
                                            Err(_) => Err(io::ErrorKind::TimedOut.into()),
                                        },
                                        None => serve(stream, &state).await,
                                    };
                                    if let Err(error) = result {
                                        debug!(%peer, %error, "token server connection failed");
                                    }
                                });
                            }
                        }
                    }
                });
            })
            .map_err(|source| TokenServerError::Runtime { source })?;
        debug!(%realm, "token server started");
        Ok(TokenServer {
            addr,
            realm,
            state,
            shutdown,
            thread: Some(thread),
        })
    }

    /// `https://127.0.0.1:PORT/token` (or `http://`).
    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn service(&self) -> &str {
        &self.state.options.service
    }

    pub fn issuer(&self) -> &str {
        &self.state.options.issuer
    }

    pub fn signer(&self) -> &TokenSigner {
        &self.state.signer
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state
            .log
            .lock()
            .map(|log| log.clone())
            .unwrap_or_default()
    }

    /// A token for `user` (no password check) granting `scopes` as the rules allow,
    /// exactly as the server would issue it; for tests that want a token without the
    /// HTTP round trip, or with another key header.
    pub fn token_for(
        &self,
        user: Option<&str>,
        scopes: &[Scope],
        key_header: KeyHeader,
    ) -> Result<String, TokenServerError> {
        let rules = match user {
            Some(name) => self
                .state
                .options
                .users
                .iter()
                .find(|u| u.name == name)
                .map(|u| u.access.clone())
                .unwrap_or_default(),
            None => self.state.options.anonymous.clone().unwrap_or_default(),
        };
        let granted = grant(&rules, scopes);
        issue(&self.state, user, &granted, key_header)
    }

    /// Stops serving and joins the thread.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!("the token server thread panicked");
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

fn tls_acceptor(
    cert_pem: &str,
    key_pem: &str,
) -> Result<tokio_rustls::TlsAcceptor, TokenServerError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TokenServerError::Certificate {
            reason: format!("cannot read the serving certificate: {error}"),
        })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|error| {
        TokenServerError::Certificate {
            reason: format!("cannot read the serving key: {error}"),
        }
    })?;
    // The ring provider explicitly: the process default may not be installed yet.
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|source| TokenServerError::Tls { source })?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|source| TokenServerError::Tls { source })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The actions of `requested` that `rules` allow, scope by scope; scopes left with no
/// action are dropped.
fn grant(rules: &[AccessRule], requested: &[Scope]) -> Vec<Scope> {
    requested
        .iter()
        .filter_map(|scope| {
            let actions: Vec<String> = scope
                .actions
                .iter()
                .filter(|action| {
                    rules
                        .iter()
                        .any(|rule| rule.allows(&scope.resource_type, &scope.name, action))
                })
                .cloned()
                .collect();
            (!actions.is_empty()).then(|| Scope {
                actions,
                ..scope.clone()
            })
        })
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn issue(
    state: &State,
    user: Option<&str>,
    granted: &[Scope],
    key_header: KeyHeader,
) -> Result<String, TokenServerError> {
    let now = unix_now();
    let mut jti = [0u8; 16];
    SystemRandom::new()
        .fill(&mut jti)
        .map_err(|_| TokenServerError::SigningKey {
            reason: "no randomness for the token id".to_string(),
        })?;
    let access: Vec<serde_json::Value> = granted
        .iter()
        .map(|scope| {
            serde_json::json!({
                "type": scope.resource_type,
                "name": scope.name,
                "actions": scope.actions,
            })
        })
        .collect();
    let claims = serde_json::json!({
        "iss": state.options.issuer,
        "sub": user.unwrap_or(""),
        // A string: distribution 2.8 unmarshals `aud` into a Go string, and a JSON array
        // there makes the whole token malformed.
        "aud": state.options.service,
        "exp": now + state.options.lifetime.as_secs(),
        "nbf": now,
        "iat": now,
        "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "access": access,
    });
    state.signer.sign(key_header, &claims)
}

/// One request read off a connection.
struct Request {
    method: String,
    target: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

/// Reads one request, answers it and closes the connection (`Connection: close` keeps
/// this server free of keep-alive bookkeeping; clients reconnect).
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, state: &State) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let request = match tokio::time::timeout(IO_TIMEOUT, read_request(&mut reader)).await {
        Ok(Ok(Some(request))) => request,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(error)) if error.kind() == io::ErrorKind::InvalidData => {
            let response = Response::error(400, "bad_request", &error.to_string());
            return write_response(reader.get_mut(), &response).await;
        }
        Ok(Err(error)) => return Err(error),
        Err(_) => return Err(io::ErrorKind::TimedOut.into()),
    };
    let response = handle(state, &request);
    write_response(reader.get_mut(), &response).await
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// Reads one line of the request head into `line`, counting against the head's limit.
async fn read_head_line<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    line: &mut String,
    head_bytes: &mut usize,
) -> io::Result<usize> {
    line.clear();
    let n = reader
        .take((MAX_HEAD_BYTES - *head_bytes) as u64)
        .read_line(line)
        .await?;
    *head_bytes += n;
    if *head_bytes >= MAX_HEAD_BYTES {
        return Err(invalid("request head too large"));
    }
    Ok(n)
}

async fn read_request<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> io::Result<Option<Request>> {
    let mut head_bytes = 0usize;
    let mut line = String::new();
    if read_head_line(reader, &mut line, &mut head_bytes).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(invalid("malformed request line"));
    };
    let (method, target) = (method.to_string(), target.to_string());
    let mut authorization = None;
    let mut content_length = 0usize;
    loop {
        if read_head_line(reader, &mut line, &mut head_bytes).await? == 0 {
            return Err(invalid("connection closed in the request head"));
        }
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(invalid("malformed header"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            content_length = value
                .parse()
                .map_err(|_| invalid("malformed Content-Length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked request bodies are not supported"));
        }
    }
    if content_length > MAX_BODY_BYTES {
        return Err(invalid("request body too large"));
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body).await?;
    Ok(Some(Request {
        method,
        target,
        authorization,
        body,
    }))
}

struct Response {
    status: u16,
    body: String,
    challenge: bool,
}

impl Response {
    fn json(status: u16, body: serde_json::Value) -> Response {
        Response {
            status,
            body: body.to_string(),
            challenge: false,
        }
    }

    /// An error in the shape distribution uses, plus OAuth2's `error` fields.
    fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(
            status,
            serde_json::json!({
                "errors": [{ "code": code.to_ascii_uppercase(), "message": message }],
                "error": code,
                "error_description": message,
            }),
        )
    }

    fn unauthorized(message: &str) -> Response {
        Response {
            challenge: true,
            ..Response::error(401, "unauthorized", message)
        }
    }
}

async fn write_response<W: AsyncWrite + Unpin>(
    writer: &mut W,
    response: &Response,
) -> io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        response.status,
        response.body.len()
    );
    if response.challenge {
        head.push_str("WWW-Authenticate: Basic realm=\"strata-test-token-server\"\r\n");
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes()).await?;
    writer.write_all(response.body.as_bytes()).await?;
    writer.flush().await?;
    writer.shutdown().await
}

/// The parameters of a query string or a form body (`+` is a space there).
fn form_pairs(encoded: &str) -> Vec<(String, String)> {
    // reqwest's Url is the url crate's, whose query parser is the form one.
    reqwest::Url::parse(&format!("http://localhost/?{encoded}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

fn handle(state: &State, request: &Request) -> Response {
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((&request.target, ""));
    let mut record = TokenRequest {
        method: request.method.clone(),
        user: None,
        requested: Vec::new(),
        granted: Vec::new(),
        status: 0,
    };
    let response = answer(state, request, path, query, &mut record);
    record.status = response.status;
    debug!(
        method = %record.method,
        user = ?record.user,
        requested = ?record.requested.iter().map(Scope::to_string).collect::<Vec<_>>(),
        granted = ?record.granted.iter().map(Scope::to_string).collect::<Vec<_>>(),
        status = record.status,
        "token request"
    );
    if let Ok(mut log) = state.log.lock() {
        log.push(record);
    }
    response
}

fn answer(
    state: &State,
    request: &Request,
    path: &str,
    query: &str,
    record: &mut TokenRequest,
) -> Response {
    if path != TOKEN_PATH {
        return Response::error(404, "not_found", "no such path; the realm is /token");
    }
    // GET: parameters in the query, credentials in Basic auth (the Docker token
    // protocol). POST: an OAuth2 form with the credentials in it (grant_type=password),
    // as containerd sends when it has a password.
    let (params, credentials) = match request.method.as_str() {
        "GET" => {
            let params = form_pairs(query);
            let credentials = match request.authorization.as_deref() {
                None => None,
                Some(header) => match parse_basic(header) {
                    Some(pair) => Some(pair),
                    None => {
                        return Response::unauthorized(
                            "the Authorization header is not Basic credentials",
                        );
                    }
                },
            };
            (params, credentials)
        }
        "POST" => {
            let params = form_pairs(&String::from_utf8_lossy(&request.body));
            let value = |key: &str| {
                params
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            match value("grant_type").as_deref() {
                Some("password") => {}
                Some(other) => {
                    return Response::error(
                        400,
                        "unsupported_grant_type",
                        &format!("grant_type {other:?} is not supported (only \"password\")"),
                    );
                }
                None => return Response::error(400, "invalid_request", "no grant_type"),
            }
            let credentials = value("username").zip(value("password"));
            (params, credentials)
        }
        _ => return Response::error(405, "unsupported", "only GET and POST"),
    };
    for (key, value) in &params {
        if key == "service" && value != &state.options.service {
            return Response::error(
                400,
                "invalid_request",
                &format!(
                    "unknown service {value:?} (this server issues tokens for {:?})",
                    state.options.service
                ),
            );
        }
    }
    for (key, value) in &params {
        if key == "scope" {
            // One parameter may hold several scopes separated by spaces.
            for text in value.split(' ').filter(|s| !s.is_empty()) {
                match Scope::parse(text) {
                    Some(scope) => record.requested.push(scope),
                    None => {
                        return Response::error(
                            400,
                            "invalid_scope",
                            &format!("malformed scope {text:?}"),
                        );
                    }
                }
            }
        }
    }

    let rules = match &credentials {
        Some((name, password)) => {
            record.user = Some(name.clone());
            match state
                .options
                .users
                .iter()
                .find(|u| &u.name == name && &u.password == password)
            {
                Some(user) => user.access.clone(),
                None => return Response::unauthorized("unknown user or wrong password"),
            }
        }
        None => match &state.options.anonymous {
            Some(rules) => rules.clone(),
            None => return Response::unauthorized("credentials required"),
        },
    };
    record.granted = grant(&rules, &record.requested);
    match issue(
        state,
        record.user.as_deref(),
        &record.granted,
        state.options.key_header,
    ) {
        Ok(token) => Response::json(
            200,
            serde_json::json!({
                "token": token,
                "access_token": token,
                "expires_in": state.options.lifetime.as_secs(),
                "scope": record.granted.iter().map(Scope::to_string).collect::<Vec<_>>().join(" "),
            }),
        ),
        Err(error) => Response::error(500, "internal", &error.to_string()),
    }
}

fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The claims of a JWT, decoded without checking the signature (for tests).
pub fn decode_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// The header of a JWT, decoded (for tests).
pub fn decode_header(token: &str) -> Option<serde_json::Value> {
    let header = token.split('.').next()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn base32_matches_rfc_4648_vectors() {
        // RFC 4648 section 10, padding stripped.
        for (input, expected) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn key_ids_have_the_libtrust_shape() {
        let kid = libtrust_key_id(b"any bytes");
        let groups: Vec<&str> = kid.split(':').collect();
        assert_eq!(groups.len(), 12, "{kid}");
        assert!(groups.iter().all(|g| g.len() == 4), "{kid}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "a/b/c"));
        assert!(glob_match("team/*", "team/x/y"));
        assert!(!glob_match("team/*", "other/x"));
        assert!(glob_match("a*c", "abbbc"));
        assert!(!glob_match("a*c", "abbbd"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn scopes_parse_with_colons_in_names() {
        let scope = Scope::parse("repository:host:5000/a/b:pull,push").unwrap();
        assert_eq!(scope.resource_type, "repository");
        assert_eq!(scope.name, "host:5000/a/b");
        assert_eq!(scope.actions, ["pull", "push"]);
        assert_eq!(scope.to_string(), "repository:host:5000/a/b:pull,push");
        assert_eq!(Scope::parse("registry:catalog:*").unwrap().actions, ["*"]);
        assert!(Scope::parse("nonsense").is_none());
    }

    #[test]
    fn grants_are_the_intersection() {
        let rules = [AccessRule::pull("*"), AccessRule::pull_push("mine/*")];
        let requested = [
            Scope::parse("repository:theirs/x:pull,push").unwrap(),
            Scope::parse("repository:mine/x:pull,push,delete").unwrap(),
            Scope::parse("registry:catalog:*").unwrap(),
        ];
        let granted: Vec<String> = grant(&rules, &requested)
            .iter()
            .map(Scope::to_string)
            .collect();
        assert_eq!(
            granted,
            ["repository:theirs/x:pull", "repository:mine/x:pull,push"]
        );
        let everything: Vec<String> = grant(&[AccessRule::everything()], &requested)
            .iter()
            .map(Scope::to_string)
            .collect();
        assert_eq!(
            everything,
            [
                "repository:theirs/x:pull,push",
                "repository:mine/x:pull,push,delete",
                "registry:catalog:*"
            ]
        );
    }
}
