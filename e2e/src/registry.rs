//! An OCI registry for tests: Debian's `docker-registry` (CNCF distribution 2.8) on a
//! loopback port, with TLS from a test CA of its own, htpasswd (bcrypt) users and storage
//! in a temporary folder. Each instance is independent, so several can run at once.
//!
//! With [`RegistryAuthMode::Token`] the registry takes bearer tokens instead of Basic
//! credentials (distribution's `auth: token`), issued by a
//! [`TokenServer`](crate::token_server::TokenServer) of its own that knows the same users
//! and grants each the access its rules allow.

use std::collections::hash_map::RandomState;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::binaries::{self, BinaryError};
use crate::pki::{CertUse, PkiError, TestCa};
use crate::token_server::{
    AccessRule, DEFAULT_TOKEN_LIFETIME, KeyHeader, TokenServer, TokenServerError,
    TokenServerOptions, TokenSigner, TokenUser,
};

/// bcrypt cost for the htpasswd file; the minimum the crate allows keeps start-up fast,
/// and the passwords only guard a loopback registry for one test.
const BCRYPT_COST: u32 = 5;
/// How many log lines errors and panics show.
const LOG_TAIL_LINES: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("a test registry needs at least one user (htpasswd authentication is always on)")]
    NoUsers,
    #[error(
        "registry user name {name:?} cannot be written to htpasswd (empty, or contains ':' or a line break)"
    )]
    InvalidUserName { name: String },
    #[error("cannot create a temporary folder for a test registry: {source}")]
    TempDir {
        #[source]
        source: io::Error,
    },
    #[error("cannot create the test registry's certificates in {dir}: {source}")]
    Pki {
        dir: PathBuf,
        #[source]
        source: PkiError,
    },
    #[error("cannot hash the password of registry user {user}: {source}")]
    Hash {
        user: String,
        #[source]
        source: bcrypt::BcryptError,
    },
    #[error("cannot serialize the registry configuration for {path}: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot find the docker-registry binary: {source}")]
    Binary {
        #[source]
        source: BinaryError,
    },
    #[error("cannot start {binary} (log {log}): {source}")]
    Spawn {
        binary: PathBuf,
        log: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the test registry exited during start-up with {status} (log {log}); last lines:\n{tail}"
    )]
    Exited {
        status: ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("cannot check whether the test registry (pid {pid}) is still running: {source}")]
    Wait {
        pid: u32,
        #[source]
        source: io::Error,
    },
    #[error(
        "the test registry was not ready within {timeout:?}: {waiting_for} (log {log}); last lines:\n{tail}"
    )]
    NotReady {
        timeout: Duration,
        waiting_for: String,
        log: PathBuf,
        tail: String,
    },
    #[error("cannot build an HTTP client for the test registry at {url}: {source}")]
    HttpClient {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot build an HTTP client trusting a test CA: {source}")]
    TrustingClient {
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot install the rustls crypto provider for reqwest: {reason}")]
    CryptoProvider { reason: String },
    #[error("cannot stop the test registry (pid {pid}): {source}")]
    Stop {
        pid: u32,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the token server of a test registry: {source}")]
    TokenServer {
        #[source]
        source: TokenServerError,
    },
}

/// A user of the registry's htpasswd file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryUser {
    pub name: String,
    pub password: String,
}

impl RegistryUser {
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> Self {
        RegistryUser {
            name: name.into(),
            password: password.into(),
        }
    }
}

/// How clients authenticate to a test registry.
#[derive(Debug, Clone, Default)]
pub enum RegistryAuthMode {
    /// Basic credentials checked against an htpasswd file (distribution's
    /// `auth: htpasswd`); every user may do everything.
    #[default]
    Htpasswd,
    /// Bearer tokens from a token server started with the registry (distribution's
    /// `auth: token`); the users log in to the token server, which grants what
    /// [`TokenAuth`] allows them.
    Token(TokenAuth),
}

/// The token server's rules for a registry in [`RegistryAuthMode::Token`].
///
/// `Default`: every user may do everything, requests without credentials are refused,
/// tokens name their key with `kid` and live five minutes.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    /// What the tokens of particular users may grant (by user name).
    pub access: Vec<(String, Vec<AccessRule>)>,
    /// What the tokens of the other users may grant.
    pub default_access: Vec<AccessRule>,
    /// What requests without credentials get; None: 401 from the token server.
    pub anonymous: Option<Vec<AccessRule>>,
    /// How tokens name their signing key (both are accepted by distribution 2.8).
    pub key_header: KeyHeader,
    pub lifetime: Duration,
}

impl Default for TokenAuth {
    fn default() -> Self {
        TokenAuth {
            access: Vec::new(),
            default_access: vec![AccessRule::everything()],
            anonymous: None,
            key_header: KeyHeader::default(),
            lifetime: DEFAULT_TOKEN_LIFETIME,
        }
    }
}

impl TokenAuth {
    /// Sets what `user`'s tokens may grant (replacing the default for that user).
    pub fn grant(mut self, user: impl Into<String>, rules: Vec<AccessRule>) -> Self {
        let user = user.into();
        self.access.retain(|(name, _)| *name != user);
        self.access.push((user, rules));
        self
    }

    fn rules_for(&self, user: &str) -> Vec<AccessRule> {
        self.access
            .iter()
            .find(|(name, _)| name == user)
            .map_or_else(|| self.default_access.clone(), |(_, rules)| rules.clone())
    }
}

/// The `service` a token-auth registry announces (and the audience of its tokens).
pub const TOKEN_SERVICE: &str = "strata-test-registry";
/// The issuer of the tokens a token-auth registry trusts.
pub const TOKEN_ISSUER: &str = "strata-test-token-server";

/// How to run a test registry. `Default`: TLS, htpasswd, one user `strata` with a random
/// password.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// The users (htpasswd, or the token server's); the first is the one
    /// `username()`/`password()` return.
    pub users: Vec<RegistryUser>,
    /// Serve HTTPS with a certificate from the registry's own test CA (else plain HTTP).
    /// A token server serves HTTPS from the same CA when this is set.
    pub tls: bool,
    /// How clients authenticate.
    pub auth: RegistryAuthMode,
    /// How long start() waits for the registry to answer.
    pub ready_timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            users: vec![RegistryUser::new("strata", random_password())],
            tls: true,
            auth: RegistryAuthMode::Htpasswd,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

impl RegistryOptions {
    /// The default options, over plain HTTP.
    pub fn plain_http() -> Self {
        RegistryOptions {
            tls: false,
            ..RegistryOptions::default()
        }
    }

    /// The default options (TLS, one user), with bearer tokens from a token server.
    pub fn token(auth: TokenAuth) -> Self {
        RegistryOptions {
            auth: RegistryAuthMode::Token(auth),
            ..RegistryOptions::default()
        }
    }
}

/// 32 hex digits from the standard library's per-process random hash keys (with a
/// counter, so two calls never collide); no need for a random-number crate for a
/// loopback test password.
pub fn random_password() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(32);
    for _ in 0..2 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out
}

/// reqwest is compiled with `rustls-no-provider`, so building a client panics unless a
/// process-wide rustls crypto provider is installed. rustls is not a direct dependency;
/// kube's rustls path calls `rustls::ClientConfig::builder()`, which installs the one
/// provider compiled in (ring, via kube's `ring` feature) as the process default. Call
/// this before building any reqwest client; it is idempotent and cheap after the first
/// call.
pub fn ensure_rustls_provider() -> Result<(), RegistryError> {
    use kube::client::ConfigExt;
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            // The URL plays no part in building the TLS configuration.
            let mut config = kube::Config::new(Default::default());
            // An empty trust store: builds without consulting the platform's roots.
            config.root_cert = Some(Vec::new());
            config
                .rustls_client_config()
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|reason| RegistryError::CryptoProvider { reason })
}

/// A reqwest client that trusts only the CA in `ca_pem`: no system roots, so a server
/// signed by any other CA fails the TLS handshake.
pub fn client_trusting(ca_pem: &str) -> Result<reqwest::Client, RegistryError> {
    ensure_rustls_provider()?;
    let build = || -> Result<reqwest::Client, reqwest::Error> {
        let certificate = reqwest::Certificate::from_pem(ca_pem.as_bytes())?;
        reqwest::Client::builder()
            .tls_certs_only([certificate])
            .build()
    };
    build().map_err(|source| RegistryError::TrustingClient { source })
}

/// A running registry; stopped (killed and reaped) on drop.
pub struct TestRegistry {
    child: Option<Child>,
    // Option so that Drop can keep the folder (logs, config, storage) after a failure.
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    log_path: PathBuf,
    addr: SocketAddr,
    host: String,
    url: String,
    ca: Option<TestCa>,
    users: Vec<RegistryUser>,
    // Declared after `child`: dropped after the registry is killed.
    token_server: Option<TokenServer>,
}

impl std::fmt::Debug for TestRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRegistry")
            .field("url", &self.url)
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("dir", &self.dir_path)
            .finish()
    }
}

impl TestRegistry {
    /// Starts a registry and waits until `GET /v2/` answers.
    pub async fn start(options: RegistryOptions) -> Result<TestRegistry, RegistryError> {
        if options.users.is_empty() {
            return Err(RegistryError::NoUsers);
        }
        for user in &options.users {
            if user.name.is_empty() || user.name.contains([':', '\n', '\r']) {
                return Err(RegistryError::InvalidUserName {
                    name: user.name.clone(),
                });
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("strata-registry-")
            .tempdir()
            .map_err(|source| RegistryError::TempDir { source })?;
        let dir_path = dir.path().to_path_buf();

        let tls = if options.tls {
            let pki_dir = dir_path.join("pki");
            let pki_error = |source| RegistryError::Pki {
                dir: pki_dir.clone(),
                source,
            };
            let ca = TestCa::new(&pki_dir, "strata-test-registry-ca").map_err(pki_error)?;
            let serving = ca
                .issue("registry", CertUse::Server { dns_names: &[] })
                .map_err(pki_error)?;
            Some((ca, serving))
        } else {
            None
        };

        let token_server = match &options.auth {
            RegistryAuthMode::Htpasswd => None,
            RegistryAuthMode::Token(auth) => Some(start_token_server(
                &dir_path.join("pki"),
                tls.as_ref().map(|(ca, _)| ca),
                &options.users,
                auth,
            )?),
        };
        let auth = match &token_server {
            None => {
                let htpasswd_path = dir_path.join("htpasswd");
                write_file(&htpasswd_path, &htpasswd(&options.users)?)?;
                serde_json::json!({
                    "htpasswd": { "realm": "strata-test-registry", "path": htpasswd_path },
                })
            }
            Some((server, root_cert_bundle)) => serde_json::json!({
                "token": {
                    "realm": server.realm(),
                    "service": server.service(),
                    "issuer": server.issuer(),
                    "rootcertbundle": root_cert_bundle,
                },
            }),
        };
        let token_server = token_server.map(|(server, _)| server);

        let storage = dir_path.join("storage");
        fs::create_dir_all(&storage).map_err(|source| RegistryError::Write {
            path: storage.clone(),
            source,
        })?;

        let mut http = serde_json::json!({
            // Port 0: the registry binds a free port itself and logs it, so there is no
            // window between choosing a port and binding it for another test to steal.
            "addr": "127.0.0.1:0",
            // Fixed so that the "no HTTP secret" warning does not clutter the log.
            "secret": random_password(),
        });
        if let Some((_, serving)) = &tls {
            http["tls"] = serde_json::json!({
                "certificate": serving.cert_file,
                "key": serving.key_file,
            });
        }
        let config = serde_json::json!({
            "version": "0.1",
            "log": { "level": "info", "formatter": "text" },
            "storage": {
                "filesystem": { "rootdirectory": storage },
                // Lets tests delete manifests and blobs.
                "delete": { "enabled": true },
                // The purger runs in the background and only matters for long-lived
                // registries.
                "maintenance": { "uploadpurging": { "enabled": false } },
            },
            "http": http,
            "auth": auth,
        });
        let config_path = dir_path.join("config.yml");
        let yaml = serde_yaml::to_string(&config).map_err(|source| RegistryError::Config {
            path: config_path.clone(),
            source,
        })?;
        write_file(&config_path, &yaml)?;

        let binary =
            binaries::docker_registry().map_err(|source| RegistryError::Binary { source })?;
        let log_path = dir_path.join("registry.log");
        let log_error = |source| RegistryError::Write {
            path: log_path.clone(),
            source,
        };
        let log = File::create(&log_path).map_err(log_error)?;
        let log_err = log.try_clone().map_err(log_error)?;
        let mut command = Command::new(&binary);
        command
            .arg("serve")
            .arg(&config_path)
            .current_dir(&dir_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // distribution overrides any configuration key from REGISTRY_* variables
        // (REGISTRY_HTTP_ADDR, ...); one set in the developer's shell must not leak in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("REGISTRY_") {
                command.env_remove(key);
            }
        }
        let child = command.spawn().map_err(|source| RegistryError::Spawn {
            binary: binary.clone(),
            log: log_path.clone(),
            source,
        })?;
        debug!(pid = child.id(), config = %config_path.display(), "docker-registry started");

        // The serving certificate stays on disk for the registry; only the CA is kept.
        let ca = tls.map(|(ca, _)| ca);
        // From here on the registry is owned by `registry`, so every early return kills it.
        let mut registry = TestRegistry {
            child: Some(child),
            dir: Some(dir),
            dir_path,
            log_path,
            // Replaced once the registry has logged the port it bound.
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            host: String::new(),
            url: String::new(),
            ca,
            users: options.users,
            token_server,
        };
        let deadline = Instant::now() + options.ready_timeout;
        let addr = registry
            .wait_for_listen_addr(deadline, options.ready_timeout)
            .await?;
        let scheme = if registry.ca.is_some() {
            "https"
        } else {
            "http"
        };
        registry.addr = addr;
        registry.host = addr.to_string();
        registry.url = format!("{scheme}://{addr}");
        registry
            .wait_until_ready(deadline, options.ready_timeout)
            .await?;
        info!(url = %registry.url, log = %registry.log_path.display(), "test registry ready");
        Ok(registry)
    }

    /// `127.0.0.1:PORT`, as image references and docker config files name it.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://` without TLS).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `127.0.0.1:PORT/<repository>:<tag>`.
    pub fn image_ref(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.host)
    }

    /// The CA that signed the serving certificate (None over plain HTTP).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca.as_ref().map(|ca| ca.cert_pem.as_str())
    }

    /// The file holding `ca_pem()`.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca.as_ref().map(|ca| ca.cert_file.as_path())
    }

    /// The CA itself, to issue more certificates from it (e.g. client certificates).
    pub fn ca(&self) -> Option<&TestCa> {
        self.ca.as_ref()
    }

    /// The token server, in [`RegistryAuthMode::Token`].
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token_server.as_ref()
    }

    /// The first user's name.
    pub fn username(&self) -> &str {
        // start() refuses an empty user list.
        self.users.first().map_or("", |u| u.name.as_str())
    }

    /// The first user's password.
    pub fn password(&self) -> &str {
        self.users.first().map_or("", |u| u.password.as_str())
    }

    pub fn users(&self) -> &[RegistryUser] {
        &self.users
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The folder holding config, htpasswd, certificates, storage and log.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// The registry's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A reqwest client that trusts only this registry's CA (no credentials attached;
    /// use `.basic_auth(registry.username(), Some(registry.password()))`).
    pub fn http_client(&self) -> Result<reqwest::Client, RegistryError> {
        match self.ca_pem() {
            Some(pem) => client_trusting(pem),
            None => {
                ensure_rustls_provider()?;
                reqwest::Client::builder()
                    .build()
                    .map_err(|source| RegistryError::HttpClient {
                        url: self.url.clone(),
                        source,
                    })
            }
        }
    }

    /// A docker `config.json` with the first user's credentials for this registry, as
    /// image pull secrets (`.dockerconfigjson`) and `helm registry login` expect.
    pub fn docker_config_json(&self) -> String {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.username(),
            self.password()
        ));
        serde_json::json!({
            "auths": {
                self.host.as_str(): {
                    "username": self.username(),
                    "password": self.password(),
                    "auth": auth,
                }
            }
        })
        .to_string()
    }

    /// The last lines of the registry's log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }

    /// Kills the registry and reaps it.
    pub fn stop(mut self) -> Result<(), RegistryError> {
        self.kill()
    }

    fn kill(&mut self) -> Result<(), RegistryError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        // SIGKILL: nothing in a throwaway registry needs a graceful shutdown, and it makes
        // the reaping wait below short.
        match child.kill() {
            Ok(()) => {}
            // Already exited (InvalidInput): still reap it below.
            Err(error) if error.kind() == io::ErrorKind::InvalidInput => {}
            Err(source) => return Err(RegistryError::Stop { pid, source }),
        }
        child
            .wait()
            .map_err(|source| RegistryError::Stop { pid, source })?;
        debug!(pid, "test registry stopped");
        Ok(())
    }

    /// Waits for the "listening on 127.0.0.1:PORT" line distribution logs after binding.
    async fn wait_for_listen_addr(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<SocketAddr, RegistryError> {
        loop {
            if let Some(addr) = fs::read_to_string(&self.log_path)
                .ok()
                .and_then(|text| parse_listen_addr(&text))
            {
                return Ok(addr);
            }
            self.check_running()?;
            if Instant::now() >= deadline {
                return Err(self.not_ready(timeout, "the \"listening on\" log line".to_string()));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls `GET /v2/` until it answers 401 with the challenge of its auth mode (Basic or
    /// Bearer) or 200.
    async fn wait_until_ready(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), RegistryError> {
        let client = self.http_client()?;
        let url = format!("{}/v2/", self.url);
        let scheme = if self.token_server.is_some() {
            "Bearer"
        } else {
            "Basic"
        };
        loop {
            let answer = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            let last = match answer {
                Ok(response) => {
                    let status = response.status();
                    let challenge = response
                        .headers()
                        .get(reqwest::header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    if status == reqwest::StatusCode::OK
                        || (status == reqwest::StatusCode::UNAUTHORIZED
                            && challenge.starts_with(scheme))
                    {
                        return Ok(());
                    }
                    format!("GET {url} answered {status} (WWW-Authenticate {challenge:?})")
                }
                Err(error) => format!("GET {url} failed: {}", error_chain(&error)),
            };
            self.check_running()?;
            if Instant::now() >= deadline {
                return Err(self.not_ready(timeout, last));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn check_running(&mut self) -> Result<(), RegistryError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let pid = child.id();
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                // Reaped by try_wait; nothing left for Drop to kill.
                self.child = None;
                Err(RegistryError::Exited {
                    status,
                    log: self.log_path.clone(),
                    tail: log_tail(&self.log_path),
                })
            }
            Err(source) => Err(RegistryError::Wait { pid, source }),
        }
    }

    fn not_ready(&self, timeout: Duration, waiting_for: String) -> RegistryError {
        RegistryError::NotReady {
            timeout,
            waiting_for,
            log: self.log_path.clone(),
            tail: log_tail(&self.log_path),
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Err(error) = self.kill() {
            warn!(%error, "cannot stop the test registry");
        }
        if std::thread::panicking() {
            // Keep the folder so the log (and storage) can be read after the test.
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!(
                    "test registry {} log kept at {}; last lines:\n{}",
                    self.url,
                    kept.join("registry.log").display(),
                    log_tail(&self.log_path)
                );
            }
        }
    }
}

/// Starts the token server of a token-auth registry: a signing key certified by `ca` (the
/// registry's CA; a CA of its own over plain HTTP), and HTTPS from `ca` when there is
/// one. Returns it with the path of the `rootcertbundle` for distribution's
/// configuration, which holds the CA (for tokens with `x5c`) and the signing
/// certificate (for tokens with `kid`, which distribution looks up among the public keys
/// of the bundle's certificates).
fn start_token_server(
    pki_dir: &Path,
    ca: Option<&TestCa>,
    users: &[RegistryUser],
    auth: &TokenAuth,
) -> Result<(TokenServer, PathBuf), RegistryError> {
    let pki_error = |source| RegistryError::Pki {
        dir: pki_dir.to_path_buf(),
        source,
    };
    let own_ca;
    let signing_ca = match ca {
        Some(ca) => ca,
        None => {
            own_ca = TestCa::new(pki_dir, "strata-test-token-ca").map_err(pki_error)?;
            &own_ca
        }
    };
    let signing = signing_ca
        .issue(
            "token-signer",
            CertUse::Client {
                user: TOKEN_ISSUER,
                groups: &[],
            },
        )
        .map_err(pki_error)?;
    let chain = format!("{}{}", signing.cert_pem, signing_ca.cert_pem);
    let signer = TokenSigner::from_pem(&signing.key_pem, &chain)
        .map_err(|source| RegistryError::TokenServer { source })?;
    let bundle_path = pki_dir.join("token-rootcerts.pem");
    write_file(
        &bundle_path,
        &format!("{}{}", signing_ca.cert_pem, signing.cert_pem),
    )?;
    let tls = match ca {
        Some(ca) => {
            let serving = ca
                .issue("token-server", CertUse::Server { dns_names: &[] })
                .map_err(pki_error)?;
            Some((serving.cert_pem, serving.key_pem))
        }
        None => None,
    };
    let options = TokenServerOptions {
        service: TOKEN_SERVICE.to_string(),
        issuer: TOKEN_ISSUER.to_string(),
        users: users
            .iter()
            .map(|user| TokenUser {
                name: user.name.clone(),
                password: user.password.clone(),
                access: auth.rules_for(&user.name),
            })
            .collect(),
        anonymous: auth.anonymous.clone(),
        key_header: auth.key_header,
        lifetime: auth.lifetime,
        tls,
    };
    let server = TokenServer::start(options, signer)
        .map_err(|source| RegistryError::TokenServer { source })?;
    Ok((server, bundle_path))
}

fn write_file(path: &Path, text: &str) -> Result<(), RegistryError> {
    fs::write(path, text).map_err(|source| RegistryError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// An htpasswd file with bcrypt hashes, the only scheme distribution accepts.
fn htpasswd(users: &[RegistryUser]) -> Result<String, RegistryError> {
    let mut out = String::new();
    for user in users {
        let hash =
            bcrypt::hash(&user.password, BCRYPT_COST).map_err(|source| RegistryError::Hash {
                user: user.name.clone(),
                source,
            })?;
        out.push_str(&format!("{}:{hash}\n", user.name));
    }
    Ok(out)
}

/// Finds the address in distribution's `msg="listening on 127.0.0.1:PORT"` (with
/// `, tls` appended when serving TLS).
fn parse_listen_addr(log: &str) -> Option<SocketAddr> {
    const MARKER: &str = "listening on ";
    log.lines().find_map(|line| {
        let start = line.find(MARKER)? + MARKER.len();
        let rest = &line[start..];
        let end = rest.find([',', '"', ' ']).unwrap_or(rest.len());
        rest[..end].parse().ok()
    })
}

/// The last lines of a log, read from its end so a large log costs little.
fn log_tail(path: &Path) -> String {
    const MAX_BYTES: u64 = 64 * 1024;
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

/// An error and its causes on one line (reqwest hides the TLS reason in the sources).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
