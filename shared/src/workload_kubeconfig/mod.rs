//! Kubeconfigs that come from workload clusters are data, never code.
//!
//! The controller reaches a workload cluster through `<cluster>-kubeconfig`, a Secret in
//! the cluster's objects namespace. CAPI writes it, but the site's agent can write there
//! too, so its content is controlled by the site. kube's own loader
//! (`Config::from_custom_kubeconfig`) treats a kubeconfig as a program: `exec` and
//! `auth-provider` run commands, `tokenFile`, `client-key` and `certificate-authority`
//! read files from the reader's disk, `insecure-skip-tls-verify` and `proxy-url` redirect
//! or unprotect its traffic, `as`/`as-groups` change who it acts as. Given to the
//! controller, each of these would let a site run code in the management cluster, read
//! the controller's files (its own service-account token among them) or steer its
//! requests.
//!
//! So this module reads the YAML itself, into strict structs of its own, and accepts only
//! what CAPI writes: an `https://` server, an inline CA (`certificate-authority-data`) and
//! an inline credential (`client-certificate-data` with `client-key-data`, or a `token`).
//! Every other field of a cluster, user or context entry is refused with a finding naming
//! where it was (`users[0].user.exec`), including fields this module does not know: a new
//! field in a later kubeconfig format could mean new behaviour, and refusing is the only
//! safe reading of something unknown. Only `extensions`, `preferences`, `apiVersion`,
//! `kind`, a context's `namespace` (never applied: the controller names its namespaces)
//! and `insecure-skip-tls-verify: false` are tolerated. A refused field is refused
//! whatever its value, `null` included. The server must be `https://host[:port]` with no
//! path (CAPI writes none, and a path would prefix every request), user information,
//! query or fragment.
//!
//! The document itself is bounded: at most [`MAX_KUBECONFIG_BYTES`], one YAML document,
//! no repeated keys, and serde_yaml's own limits on alias expansion and nesting depth.
//!
//! What this cannot judge is whether the server and CA are the right ones: both come from
//! the site. Comparing `server` with the Cluster's control-plane endpoint, or
//! [`WorkloadAccess::ca_fingerprint`] with a pinned one, is the caller's.
//!
//! [`WorkloadAccess::to_kube_config`] then builds a `kube::Config` field by field, so that
//! none of kube's code that reads files or runs commands is reachable from it.
//!
//! Errors never carry secret material: findings name fields, not values, and the YAML
//! parser's own messages are passed on with quoted values blanked.

mod document;
mod material;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// The condition reason for every refusal of this module.
pub const UNSAFE_KUBECONFIG_REASON: &str = "UnsafeKubeconfig";

/// Far larger than any kubeconfig CAPI writes (a few KiB), small enough that parsing a
/// hostile one costs little.
pub const MAX_KUBECONFIG_BYTES: usize = 256 * 1024;

/// Why a kubeconfig was refused. `at` is the place in the document
/// (`clusters[0].cluster.proxy-url`); names and other values quoted here are cut to a
/// short excerpt, and key, certificate and token material is never included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeKubeconfig {
    #[error("the kubeconfig is {size} bytes, more than the {limit} accepted")]
    TooLarge { size: usize, limit: usize },
    #[error("the kubeconfig is not YAML of the expected shape: {detail}")]
    Malformed { detail: String },
    #[error("{at}: an exec credential plugin would run a command in the controller")]
    Exec { at: String },
    #[error("{at}: an auth-provider plugin can run commands or fetch tokens for the controller")]
    AuthProvider { at: String },
    #[error("{at}: names a file on the controller's disk; only inline *-data is accepted")]
    FilePath { at: String },
    #[error("{at}: would turn off verification of the server's certificate")]
    InsecureSkipTlsVerify { at: String },
    #[error("{at}: would send the controller's requests through a proxy")]
    ProxyUrl { at: String },
    #[error("{at}: would check the server's certificate against another name than the server's")]
    TlsServerName { at: String },
    #[error("{at}: basic authentication (username, password) is not accepted")]
    BasicAuth { at: String },
    #[error("{at}: impersonation would change who the controller acts as")]
    Impersonation { at: String },
    #[error("{at}: not a field accepted in a workload kubeconfig")]
    UnknownField { at: String },
    #[error("two {section} entries are named {name:?}; which one is meant is ambiguous")]
    DuplicateName { section: &'static str, name: String },
    #[error("the kubeconfig has no context")]
    NoContext,
    #[error("there is no current-context and {count} contexts to choose from")]
    AmbiguousContext { count: usize },
    #[error("current-context is {name:?}, but no context has that name")]
    UnknownContext { name: String },
    #[error("{at}: names the {section} entry {name:?}, which does not exist")]
    UnknownReference {
        at: String,
        section: &'static str,
        name: String,
    },
    #[error("{at}: missing; the server's https:// URL is required")]
    MissingServer { at: String },
    #[error("{at}: the server must be an https:// URL, not {scheme}://")]
    NotHttps { at: String, scheme: String },
    #[error("{at}: not a usable server URL: {problem}")]
    BadServer { at: String, problem: String },
    #[error("{at}: missing; the CA that signs the server's certificate must be inline")]
    MissingCertificateAuthority { at: String },
    #[error("{at}: not valid base64")]
    NotBase64 { at: String },
    #[error("{at}: not usable PEM: {problem}")]
    BadPem { at: String, problem: String },
    #[error("{at}: not a usable certificate: {problem}")]
    BadCertificate { at: String, problem: String },
    #[error("{at}: not a usable private key: {problem}")]
    BadPrivateKey { at: String, problem: String },
    #[error("{at}: the client key does not belong to the client certificate")]
    KeyMismatch { at: String },
    #[error("{at}: has neither client-certificate-data with client-key-data nor a token")]
    MissingCredential { at: String },
    #[error("{at}: {missing} is missing; a client certificate comes with its key")]
    IncompleteClientCertificate { at: String, missing: &'static str },
    #[error("{at}: has both a client certificate and a token; only one credential is accepted")]
    TwoCredentials { at: String },
    #[error("{at}: not a usable bearer token: {problem}")]
    BadToken { at: String, problem: &'static str },
    #[error("the server {server} cannot be made a kube URI: {problem}")]
    ServerUri { server: String, problem: String },
}

impl UnsafeKubeconfig {
    /// The condition reason, the same for every refusal: the message says which.
    pub fn reason(&self) -> &'static str {
        UNSAFE_KUBECONFIG_REASON
    }
}

/// How a client of a workload cluster authenticates, as found inline in its kubeconfig.
#[derive(Clone, PartialEq, Eq)]
pub enum WorkloadCredential {
    /// PEM, exactly as decoded from `client-certificate-data` and `client-key-data`:
    /// certificates only (leaf first), and exactly one private key.
    ClientCertificate { cert_pem: Vec<u8>, key_pem: Vec<u8> },
    /// A bearer token: visible ASCII, so it is a valid header value.
    Token(String),
}

impl fmt::Debug for WorkloadCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkloadCredential::ClientCertificate { cert_pem, .. } => f
                .debug_struct("ClientCertificate")
                .field("cert_pem", &format_args!("<{} bytes>", cert_pem.len()))
                .field("key_pem", &format_args!("<redacted>"))
                .finish(),
            WorkloadCredential::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// A workload cluster's API server and credential, checked to hold nothing but data.
/// Only [`parse`] makes one, so holding one means the checks passed.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkloadAccess {
    server: String,
    ca_pem: Vec<u8>,
    /// The CA certificates of `ca_pem`, in order.
    ca_der: Vec<Vec<u8>>,
    credential: WorkloadCredential,
}

impl fmt::Debug for WorkloadAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadAccess")
            .field("server", &self.server)
            .field("ca_fingerprint", &self.ca_fingerprint())
            .field("credential", &self.credential)
            .finish()
    }
}

/// Limits for a workload cluster's client, so that an unreachable or stalling cluster
/// costs a bounded wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
}

impl ClientTimeouts {
    /// The same limit for connecting, reading and writing.
    pub fn uniform(limit: Duration) -> Self {
        ClientTimeouts {
            connect: limit,
            read: limit,
            write: limit,
        }
    }
}

/// Reads a kubeconfig written for a workload cluster, accepting only inline data (see the
/// module documentation). The context used is `current-context`, or the only context
/// when `current-context` is absent or empty.
pub fn parse(text: &str) -> Result<WorkloadAccess, UnsafeKubeconfig> {
    within_size(text.as_bytes())?;
    let document = document::Document::from_yaml(text)?;
    let selected = document.select()?;
    let server = material::server_url(&selected.cluster_at, selected.server)?;
    let (ca_pem, ca_der) =
        material::certificate_authority(&selected.cluster_at, selected.certificate_authority_data)?;
    let credential = material::credential(&selected.user_at, selected.user)?;
    Ok(WorkloadAccess {
        server,
        ca_pem,
        ca_der,
        credential,
    })
}

/// [`parse`] for a Secret's value as it comes, bytes that should be UTF-8 text; the size
/// is checked before anything else is done with them.
pub fn parse_bytes(bytes: &[u8]) -> Result<WorkloadAccess, UnsafeKubeconfig> {
    within_size(bytes)?;
    let text = std::str::from_utf8(bytes).map_err(|error| UnsafeKubeconfig::Malformed {
        detail: format!(
            "it is not UTF-8 text (invalid byte at offset {})",
            error.valid_up_to()
        ),
    })?;
    parse(text)
}

fn within_size(bytes: &[u8]) -> Result<(), UnsafeKubeconfig> {
    if bytes.len() > MAX_KUBECONFIG_BYTES {
        return Err(UnsafeKubeconfig::TooLarge {
            size: bytes.len(),
            limit: MAX_KUBECONFIG_BYTES,
        });
    }
    Ok(())
}

impl WorkloadAccess {
    /// `https://host[:port]`, without a trailing slash; the port is left out when it is
    /// 443.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The CA bundle as decoded from `certificate-authority-data`: PEM holding only
    /// certificates, at least one.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    pub fn credential(&self) -> &WorkloadCredential {
        &self.credential
    }

    /// Lowercase hex SHA-256 over the DER of the CA certificates, concatenated in bundle
    /// order. DER rather than PEM so that line breaks and comments in the PEM do not change
    /// the pin; for a bundle of one CA it is that certificate's usual SHA-256 fingerprint.
    pub fn ca_fingerprint(&self) -> String {
        let mut digest = Sha256::new();
        for der in &self.ca_der {
            digest.update(der);
        }
        digest
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// A `kube::Config` for this cluster, built field by field.
    ///
    /// Checked in kube-client 5.0.0: files are read only through `root_cert_file`
    /// (`ReloadingVerifier`), `auth_info.token_file` (`TokenFile`) and
    /// `auth_info.client_certificate`/`client_key` (`load_from_base64_or_file`, reached
    /// only when the matching `*_data` is `None`); commands run only through
    /// `auth_info.exec` and `auth_info.auth_provider` (`Auth::try_from`); the environment
    /// is read only by `Config::infer`/`apply_debug_overrides`, which `Config::new` does
    /// not call. All of those are `None` here, TLS verification stays on, and no proxy or
    /// `tls_server_name` is set, so the client can only do TLS to `server` with the inline
    /// CA and credential.
    pub fn to_kube_config(
        &self,
        timeouts: ClientTimeouts,
    ) -> Result<kube::Config, UnsafeKubeconfig> {
        let uri: http::Uri = self
            .server
            .parse()
            .map_err(|error: http::uri::InvalidUri| UnsafeKubeconfig::ServerUri {
                server: excerpt(&self.server),
                problem: error.to_string(),
            })?;
        let mut config = kube::Config::new(uri);
        config.root_cert = Some(self.ca_der.clone());
        config.root_cert_file = None;
        config.accept_invalid_certs = false;
        config.proxy_url = None;
        config.tls_server_name = None;
        config.headers = Vec::new();
        config.connect_timeout = Some(timeouts.connect);
        config.read_timeout = Some(timeouts.read);
        config.write_timeout = Some(timeouts.write);
        config.auth_info = self.auth_info();
        Ok(config)
    }

    /// Every field spelled out, without `..Default::default()`: when kube adds a field to
    /// `AuthInfo` (possibly a new way to fetch credentials), this stops compiling and the
    /// new field gets a decision instead of a default.
    fn auth_info(&self) -> kube::config::AuthInfo {
        let (client_certificate_data, client_key_data, token) = match &self.credential {
            // kube decodes `*_data` as base64 of PEM, like the kubeconfig fields.
            WorkloadCredential::ClientCertificate { cert_pem, key_pem } => (
                Some(STANDARD.encode(cert_pem)),
                Some(STANDARD.encode(key_pem).into()),
                None,
            ),
            WorkloadCredential::Token(token) => (None, None, Some(token.clone().into())),
        };
        kube::config::AuthInfo {
            username: None,
            password: None,
            token,
            token_file: None,
            client_certificate: None,
            client_certificate_data,
            client_key: None,
            client_key_data,
            impersonate: None,
            impersonate_uid: None,
            impersonate_groups: None,
            impersonate_user_extra: None,
            extensions: None,
            auth_provider: None,
            exec: None,
            other: BTreeMap::new(),
        }
    }
}

/// At most 64 characters of a value chosen by the site, for messages.
fn excerpt(value: &str) -> String {
    excerpt_to(value, 64)
}

/// At most `limit` characters of `text`, control characters replaced, so that a message
/// stays one readable line of bounded length.
fn excerpt_to(text: &str, limit: usize) -> String {
    let mut cut: String = text
        .chars()
        .take(limit)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(limit).is_some() {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests;
