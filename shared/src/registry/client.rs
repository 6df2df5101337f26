//! The pack registry client: push, list, resolve, fetch and pull packs over the OCI
//! distribution API (through `oci-client`).
//!
//! # What is pushed
//!
//! One OCI image manifest per `<name>:<version>`, shaped like `oras push` makes it for a
//! file, so that existing tooling reads Strata's packs and Strata reads theirs:
//!
//! - config: media type `application/vnd.unknown.config.v1+json`, content `{}`;
//! - one layer: the pack's deterministic archive (`.tar.gz`), media type
//!   `application/vnd.oci.image.layer.v1.tar` (what oras gives files, gzip or not), with
//!   `org.opencontainers.image.title: <name>-<version>.tar.gz`;
//! - no timestamp annotations: pushing the same pack twice gives the same manifest digest.
//!
//! # Errors and retries
//!
//! `oci-client`'s errors are classified once ([`classify`]): 401 and token refusals mean
//! wrong or missing credentials, 403 means the user may not access the repository, 404
//! and `*_UNKNOWN` codes mean "not there" (turned into [`RegistryError::UnknownPack`] or
//! [`RegistryError::UnknownVersion`] listing what does exist), connection failures,
//! timeouts and 5xx answers are transient and retried with exponential backoff and
//! jitter; every other 4xx and every malformed answer fails at once. Once the attempts
//! are spent, a transient failure becomes [`RegistryError::Unreachable`] with the last
//! error.
//!
//! # Downloads
//!
//! Blobs are streamed with the size bounded by the manifest's size and
//! [`RegistryOptions::max_pack_bytes`], hashed while they arrive, and compared with the
//! layer digest; only verified bytes reach the [`PackCache`]. `pull` and `inspect` go
//! further and cache a blob only once it unpacked safely into a valid pack.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::finding::Finding;
use crate::pack::Pack;
use crate::pack::archive::{
    ArchiveError, ArchiveLimits, archive_to_vec, sha256_digest, unpack_archive,
};
use crate::pack::manifest::PackManifest;
use crate::registry::address::{AddressError, RegistryAddress};
use crate::registry::cache::{CacheError, PackCache};
use crate::registry::catalog::{CatalogFailure, CatalogReader};
use crate::registry::credentials::Credentials;
use crate::version::PackVersion;

/// The pack layer's media type: what `oras push` gives a file.
pub const PACK_LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// The config's media type, as `oras push` writes it.
pub const PACK_CONFIG_MEDIA_TYPE: &str = "application/vnd.unknown.config.v1+json";
/// The annotation holding the layer's file name.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
const PACK_CONFIG: &[u8] = b"{}";
/// Catalog and tag list page size; small enough that no registry refuses it.
const PAGE_SIZE: usize = 100;
/// Guards against a registry whose pagination never ends.
const MAX_PAGES: usize = 10_000;
const USER_AGENT: &str = concat!("strata/", env!("CARGO_PKG_VERSION"));

/// How transient failures are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (0 counts as 1).
    pub attempts: usize,
    /// The first delay; each next one doubles, plus random jitter.
    pub min_delay: Duration,
    /// The longest base delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 200 ms doubling to at most 2 s: rides out a registry restart or a
    /// dropped connection without making a real outage take long to report.
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// How to talk to a registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// HTTP instead of HTTPS.
    pub plain_http: bool,
    /// A CA (PEM) to trust in addition to the system's, for a registry with a private CA.
    pub ca_pem: Option<String>,
    pub credentials: Credentials,
    pub retry: RetryPolicy,
    /// The largest pack archive accepted, compressed; also the most its content may
    /// unpack to. Default 1 GiB.
    pub max_pack_bytes: u64,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            plain_http: false,
            ca_pem: None,
            credentials: Credentials::Anonymous,
            retry: RetryPolicy::default(),
            max_pack_bytes: 1 << 30,
        }
    }
}

/// A pack version in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackDescriptor {
    /// `host/repository:tag`.
    pub reference: String,
    /// Digest of the manifest the tag pointed to.
    pub manifest_digest: String,
    /// Digest of the pack archive: the pack's identity (`Pack::digest`).
    pub layer_digest: String,
    pub layer_size: u64,
    /// The layer's title annotation, e.g. `istio-1.6.2.tar.gz`.
    pub file_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedPack {
    pub descriptor: PackDescriptor,
    /// The tag existed and pointed to a different manifest (only possible with `force`).
    pub replaced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledPack {
    pub descriptor: PackDescriptor,
    /// The folder the pack is in (the `dest` given to `pull`).
    pub dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("wrong or missing credentials for {registry}{}", as_user(username))]
    Unauthorized {
        registry: String,
        username: Option<String>,
    },
    #[error(
        "{} may not access {repository} on {registry}: the credentials are valid, the permission is missing",
        who(username)
    )]
    Forbidden {
        registry: String,
        repository: String,
        username: Option<String>,
    },
    #[error(
        "no pack named {name:?} in {registry}{}",
        list_suffix("packs there", available)
    )]
    UnknownPack {
        registry: String,
        name: String,
        available: Vec<String>,
    },
    #[error(
        "pack {name:?} has no version {version:?} in {registry}{}",
        list_suffix("versions there", available)
    )]
    UnknownVersion {
        registry: String,
        name: String,
        version: String,
        available: Vec<String>,
    },
    #[error("{reference} already exists; push with force to replace it")]
    Exists { reference: String },
    #[error("cannot reach {registry} (after {attempts} attempt(s)): {last_error}")]
    Unreachable {
        registry: String,
        attempts: usize,
        last_error: String,
    },
    #[error("{reference}: downloaded content hashes to {found}, expected {expected}")]
    DigestMismatch {
        reference: String,
        expected: String,
        found: String,
    },
    #[error("{reference}: the download ended after {found} of {expected} bytes")]
    Truncated {
        reference: String,
        expected: u64,
        found: u64,
    },
    #[error("{reference} is {size} bytes, over the {limit}-byte limit for packs")]
    TooLarge {
        reference: String,
        size: u64,
        limit: u64,
    },
    #[error("{reference} is not a pack: {reason}")]
    NotAPack { reference: String, reason: String },
    #[error("{reference}: cannot use the pack archive: {source}")]
    Archive {
        reference: String,
        #[source]
        source: ArchiveError,
    },
    #[error("pack {reference} is not valid: {}", first_problems(problems))]
    InvalidPack {
        reference: String,
        problems: Vec<Finding>,
    },
    #[error("{reference}: unexpected answer from the registry: {message}")]
    Protocol { reference: String, message: String },
    #[error("cannot set up a client for {registry}: {reason}")]
    Setup { registry: String, reason: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

fn as_user(username: &Option<String>) -> String {
    match username {
        Some(user) => format!(" (user {user:?})"),
        None => " (no credentials given)".to_owned(),
    }
}

fn who(username: &Option<String>) -> String {
    match username {
        Some(user) => format!("user {user:?}"),
        None => "an anonymous user".to_owned(),
    }
}

fn list_suffix(what: &str, items: &[String]) -> String {
    if items.is_empty() {
        format!("; there are no {what}")
    } else {
        format!("; {what}: {}", items.join(", "))
    }
}

fn first_problems(problems: &[Finding]) -> String {
    let shown: Vec<String> = problems.iter().take(3).map(ToString::to_string).collect();
    match problems.len().saturating_sub(shown.len()) {
        0 => shown.join("; "),
        more => format!("{} (and {more} more)", shown.join("; ")),
    }
}

/// What one attempt of a registry operation ran into, before it is put into the words of
/// the operation (which repository, which pack).
#[derive(Debug)]
enum Failure {
    /// Worth another attempt. `exhausted` replaces Unreachable once attempts run out
    /// (a truncated download is retried, but reported as truncated).
    Transient {
        message: String,
        exhausted: Option<Box<RegistryError>>,
    },
    Unauthorized,
    Forbidden,
    NotFound(String),
    NotAPack(String),
    Mismatch {
        expected: String,
        found: String,
    },
    /// The TLS handshake failed on certificates or protocol: retrying cannot help.
    Tls(String),
    Protocol(String),
    Final(Box<RegistryError>),
}

impl Failure {
    fn is_transient(&self) -> bool {
        matches!(self, Failure::Transient { .. })
    }

    fn final_error(error: RegistryError) -> Failure {
        Failure::Final(Box::new(error))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transient { message, .. }
            | Failure::NotFound(message)
            | Failure::NotAPack(message)
            | Failure::Tls(message)
            | Failure::Protocol(message) => f.write_str(message),
            Failure::Unauthorized => f.write_str("401 Unauthorized"),
            Failure::Forbidden => f.write_str("403 Forbidden"),
            Failure::Mismatch { expected, found } => {
                write!(f, "content hashes to {found}, expected {expected}")
            }
            Failure::Final(error) => write!(f, "{error}"),
        }
    }
}

/// Sorts `oci-client`'s errors into what Strata reports. See the module docs.
fn classify(error: OciDistributionError) -> Failure {
    use OciDistributionError as E;
    match error {
        // A token server refusing the credentials, or a 401 from the registry.
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => Failure::Unauthorized,
        // Only built from 4xx answers with an OCI error body.
        E::RegistryError { envelope, url } => {
            let has = |code: OciErrorCode| envelope.errors.iter().any(|e| e.code == code);
            if has(OciErrorCode::Unauthorized) {
                Failure::Unauthorized
            } else if has(OciErrorCode::Denied) {
                Failure::Forbidden
            } else if has(OciErrorCode::ManifestUnknown)
                || has(OciErrorCode::NameUnknown)
                || has(OciErrorCode::NotFound)
                || has(OciErrorCode::BlobUnknown)
            {
                Failure::NotFound(format!("{url}: {envelope}"))
            } else {
                Failure::Protocol(format!("{url}: {envelope}"))
            }
        }
        E::ServerError { code, url, message } => {
            let message = format!("{url} answered {code}: {}", shorten(&message));
            status_failure(code, message)
        }
        E::ImageManifestNotFoundError(message) => Failure::NotFound(message),
        E::RequestError(error) => {
            let message = error_chain(&error);
            if let Some(status) = error.status() {
                status_failure(status.as_u16(), message)
            } else if has_tls_error(&error) {
                Failure::Tls(message)
            } else if error.is_builder() || error.is_decode() || error.is_redirect() {
                Failure::Protocol(message)
            } else {
                // Connecting, sending, timeouts, a body cut off: the network's doing.
                Failure::Transient {
                    message,
                    exhausted: None,
                }
            }
        }
        E::IoError(error) => io_failure(&error),
        E::DigestError(DigestError::VerificationError { expected, actual }) => Failure::Mismatch {
            expected,
            found: actual,
        },
        E::UnsupportedMediaTypeError(media_type) => Failure::NotAPack(format!(
            "its manifest has media type {media_type:?}; expected an OCI image manifest"
        )),
        E::UnsupportedSchemaVersionError(version) => Failure::NotAPack(format!(
            "its manifest has schema version {version}; expected 2"
        )),
        E::ImageIndexParsingNoPlatformResolverError => Failure::NotAPack(
            "it is an image index (a list of manifests); expected one pack manifest".to_owned(),
        ),
        E::IncompatibleLayerMediaTypeError(media_type) => {
            Failure::NotAPack(format!("it has a layer of media type {media_type:?}"))
        }
        E::PullNoLayersError => Failure::NotAPack("its manifest has no layers".to_owned()),
        other => Failure::Protocol(other.to_string()),
    }
}

fn status_failure(code: u16, message: String) -> Failure {
    match code {
        401 => Failure::Unauthorized,
        403 => Failure::Forbidden,
        404 => Failure::NotFound(message),
        500..=599 => Failure::Transient {
            message,
            exhausted: None,
        },
        _ => Failure::Protocol(message),
    }
}

fn io_failure(error: &std::io::Error) -> Failure {
    use std::io::ErrorKind as K;
    let message = error_chain(error);
    match error.kind() {
        K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::BrokenPipe
        | K::TimedOut
        | K::UnexpectedEof
        | K::Interrupted => Failure::Transient {
            message,
            exhausted: None,
        },
        _ => Failure::Protocol(message),
    }
}

/// Whether a rustls error (bad certificate, not TLS at all) is behind `error`. io::Error
/// hides its payload from `source()`, so it is opened explicitly.
fn has_tls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && (inner.is::<rustls::Error>() || has_tls_error(inner))
        {
            return true;
        }
        current = error.source();
    }
    false
}

/// An error and its causes on one line: reqwest keeps the reason (refused, reset, bad
/// certificate) in the sources.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Registry error bodies can be whole HTML pages; the start says enough.
fn shorten(message: &str) -> String {
    const MAX: usize = 300;
    let message = message.trim();
    match message.char_indices().nth(MAX) {
        Some((index, _)) => format!("{}…", &message[..index]),
        None => message.to_owned(),
    }
}

/// The manifest exactly as pushed. Own types rather than `OciImageManifest` so that the
/// bytes (and so the digest) depend on nothing but the pack.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u8,
    media_type: &'a str,
    config: DescriptorOut<'a>,
    layers: [DescriptorOut<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorOut<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'a str, &'a str>>,
}

/// The context an error is reported in.
struct Context<'a> {
    client: &'a PackRegistryClient,
    reference: String,
    repository: String,
}

impl Context<'_> {
    fn error(&self, failure: Failure) -> RegistryError {
        let registry = self.client.address.host.clone();
        let username = self
            .client
            .options
            .credentials
            .username()
            .map(str::to_owned);
        match failure {
            Failure::Transient { message, .. } | Failure::Tls(message) => {
                RegistryError::Unreachable {
                    registry,
                    attempts: 1,
                    last_error: message,
                }
            }
            Failure::Unauthorized => RegistryError::Unauthorized { registry, username },
            Failure::Forbidden => RegistryError::Forbidden {
                registry,
                repository: self.repository.clone(),
                username,
            },
            Failure::NotFound(message) => RegistryError::Protocol {
                reference: self.reference.clone(),
                message: format!("not found: {message}"),
            },
            Failure::NotAPack(reason) => RegistryError::NotAPack {
                reference: self.reference.clone(),
                reason,
            },
            Failure::Mismatch { expected, found } => RegistryError::DigestMismatch {
                reference: self.reference.clone(),
                expected,
                found,
            },
            Failure::Protocol(message) => RegistryError::Protocol {
                reference: self.reference.clone(),
                message,
            },
            Failure::Final(error) => *error,
        }
    }
}

/// A client for one pack registry.
pub struct PackRegistryClient {
    address: RegistryAddress,
    options: RegistryOptions,
    auth: RegistryAuth,
    client: Client,
}

impl std::fmt::Debug for PackRegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackRegistryClient")
            .field("address", &self.address)
            .field("options", &self.options)
            .finish()
    }
}

impl PackRegistryClient {
    pub fn new(address: RegistryAddress, options: RegistryOptions) -> Result<Self, RegistryError> {
        // oci-client's reqwest is built without a crypto provider; without a process-wide
        // one, building the client panics. Err means one is installed already: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let setup = |reason: String| RegistryError::Setup {
            registry: address.host.clone(),
            reason,
        };
        let mut extra_root_certificates = Vec::new();
        if let Some(pem) = &options.ca_pem {
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(setup(
                    "the CA given is not a PEM certificate (no \"-----BEGIN CERTIFICATE-----\")"
                        .to_owned(),
                ));
            }
            extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.as_bytes().to_vec(),
            });
        }
        let config = ClientConfig {
            protocol: if options.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates,
            // An index is not a pack; resolve() reports it instead of picking a platform.
            platform_resolver: None,
            // One PUT per blob: fewer round trips than chunks, and every registry takes it.
            use_monolithic_push: true,
            connect_timeout: Some(Duration::from_secs(10)),
            // Between reads, not for a whole download: large packs take what they take.
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        };
        // try_from, not new: new() silently falls back to a default configuration (which
        // would drop the CA) when the configuration is unusable.
        let client = Client::try_from(config).map_err(|e| setup(error_chain(&e)))?;
        let auth = match &options.credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
        };
        Ok(PackRegistryClient {
            address,
            options,
            auth,
            client,
        })
    }

    pub fn address(&self) -> &RegistryAddress {
        &self.address
    }

    fn context(&self, reference: &Reference) -> Context<'_> {
        Context {
            client: self,
            reference: reference.whole(),
            repository: reference.repository().to_owned(),
        }
    }

    /// Runs `operation` until it succeeds, fails for good, or the attempts are spent.
    async fn retrying<T, F, Fut>(&self, what: &str, mut operation: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let policy = &self.options.retry;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.attempts.saturating_sub(1))
            .with_jitter();
        let attempts = AtomicUsize::new(0);
        let result = (|| {
            attempts.fetch_add(1, Ordering::Relaxed);
            operation()
        })
        .retry(backoff)
        .when(Failure::is_transient)
        .notify(|failure, delay| {
            warn!(
                registry = %self.address.host,
                what,
                attempt = attempts.load(Ordering::Relaxed),
                ?delay,
                error = %failure,
                "transient registry failure; retrying"
            );
        })
        .await;
        let made = attempts.load(Ordering::Relaxed);
        result.map_err(|failure| match failure {
            Failure::Transient {
                exhausted: Some(error),
                ..
            } => Failure::Final(error),
            Failure::Transient { message, .. } | Failure::Tls(message) => {
                Failure::final_error(RegistryError::Unreachable {
                    registry: self.address.host.clone(),
                    attempts: made,
                    last_error: message,
                })
            }
            other => other,
        })
    }

    /// Pushes `pack` as `<name>:<version>`; refuses to replace an existing tag unless
    /// `force`.
    pub async fn push(&self, pack: &Pack, force: bool) -> Result<PushedPack, RegistryError> {
        let name = pack.manifest.name.clone();
        let version = pack.manifest.version.clone();
        let reference = self.address.reference(&name, &version)?;
        let span = info_span!("registry.push", reference = %reference.whole());
        self.push_inner(pack.dir.clone(), name, version, reference, force)
            .instrument(span)
            .await
    }

    async fn push_inner(
        &self,
        dir: PathBuf,
        name: String,
        version: String,
        reference: Reference,
        force: bool,
    ) -> Result<PushedPack, RegistryError> {
        let context = self.context(&reference);
        let root = name.clone();
        let archive = tokio::task::spawn_blocking(move || archive_to_vec(&dir, &root))
            .await
            .map_err(|e| RegistryError::Protocol {
                reference: context.reference.clone(),
                message: format!("archiving the pack was interrupted: {e}"),
            })?
            .map_err(|source| RegistryError::Archive {
                reference: context.reference.clone(),
                source,
            })?;
        let size = archive.len() as u64;
        if size > self.options.max_pack_bytes {
            return Err(RegistryError::TooLarge {
                reference: context.reference,
                size,
                limit: self.options.max_pack_bytes,
            });
        }
        let layer_digest = sha256_digest(&archive);
        let config_digest = sha256_digest(PACK_CONFIG);
        let file_name = format!("{name}-{version}.tar.gz");
        let manifest = serde_json::to_vec(&ManifestOut {
            schema_version: 2,
            media_type: OCI_IMAGE_MEDIA_TYPE,
            config: DescriptorOut {
                media_type: PACK_CONFIG_MEDIA_TYPE,
                digest: &config_digest,
                size: PACK_CONFIG.len() as u64,
                annotations: None,
            },
            layers: [DescriptorOut {
                media_type: PACK_LAYER_MEDIA_TYPE,
                digest: &layer_digest,
                size,
                annotations: Some(BTreeMap::from([(TITLE_ANNOTATION, file_name.as_str())])),
            }],
        })
        .map_err(|e| RegistryError::Protocol {
            reference: context.reference.clone(),
            message: format!("cannot serialize the manifest: {e}"),
        })?;
        let manifest_digest = sha256_digest(&manifest);

        // Check-then-push: two pushers racing on one tag can both pass; the registry
        // keeps the last, as it would with force.
        let existing = self
            .retrying("checking whether the tag exists", || async {
                match self
                    .client
                    .fetch_manifest_digest(&reference, &self.auth)
                    .await
                {
                    Ok(digest) => Ok(Some(digest)),
                    Err(error) => match classify(error) {
                        Failure::NotFound(_) => Ok(None),
                        failure => Err(failure),
                    },
                }
            })
            .await
            .map_err(|f| context.error(f))?;
        if existing.is_some() && !force {
            return Err(RegistryError::Exists {
                reference: context.reference,
            });
        }

        let layer = Bytes::from(archive);
        let manifest = Bytes::from(manifest);
        self.retrying("uploading", || async {
            self.client
                .push_blob(&reference, layer.clone(), &layer_digest)
                .await
                .map_err(classify)?;
            self.client
                .push_blob(&reference, Bytes::from_static(PACK_CONFIG), &config_digest)
                .await
                .map_err(classify)?;
            let content_type = OCI_IMAGE_MEDIA_TYPE
                .parse()
                .map_err(|e| Failure::Protocol(format!("invalid content type: {e}")))?;
            self.client
                .push_manifest_raw(&reference, manifest.clone(), content_type)
                .await
                .map_err(classify)
        })
        .await
        // The existence check just succeeded with these credentials, so a 401 now is a
        // token registry refusing the push scope: the account may read, not write.
        .map_err(|f| match f {
            Failure::Unauthorized => context.error(Failure::Forbidden),
            other => context.error(other),
        })?;

        let replaced = existing.is_some_and(|digest| digest != manifest_digest);
        info!(%manifest_digest, %layer_digest, size, replaced, "pushed pack");
        Ok(PushedPack {
            descriptor: PackDescriptor {
                reference: context.reference,
                manifest_digest,
                layer_digest,
                layer_size: size,
                file_name,
            },
            replaced,
        })
    }

    /// The versions of pack `name`, oldest first. Tags that are not versions are left out.
    pub async fn versions(&self, name: &str) -> Result<Vec<String>, RegistryError> {
        let reference = self.address.reference(name, "latest")?;
        let span = info_span!("registry.versions", reference = %reference.whole());
        async {
            match self.tags(&reference).await {
                Ok(tags) if !tags.is_empty() => Ok(sort_versions(tags)),
                Ok(_) | Err(Failure::NotFound(_)) => Err(self.unknown_pack(name).await),
                Err(failure) => Err(self.context(&reference).error(failure)),
            }
        }
        .instrument(span)
        .await
    }

    /// Every pack and its versions: the catalog's repositories under the archive prefix.
    pub async fn list(&self) -> Result<BTreeMap<String, Vec<String>>, RegistryError> {
        let span = info_span!("registry.list", registry = %self.address);
        async {
            let mut packs = BTreeMap::new();
            for name in self.pack_names().await? {
                let reference = self.address.reference(&name, "latest")?;
                match self.tags(&reference).await {
                    Ok(tags) if !tags.is_empty() => {
                        packs.insert(name, sort_versions(tags));
                    }
                    // Deleted since the catalog was read, or every tag deleted.
                    Ok(_) | Err(Failure::NotFound(_)) => {}
                    Err(failure) => return Err(self.context(&reference).error(failure)),
                }
            }
            Ok(packs)
        }
        .instrument(span)
        .await
    }

    /// Names of the packs in the catalog (sorted).
    async fn pack_names(&self) -> Result<Vec<String>, RegistryError> {
        let prefix = format!("{}/", self.address.archive_prefix());
        let context = Context {
            client: self,
            reference: format!("{}/v2/_catalog", self.address.host),
            repository: "the catalog".to_owned(),
        };
        let reader = CatalogReader::new(
            &self.address.host,
            self.options.plain_http,
            self.options.ca_pem.as_deref(),
            self.options.credentials.clone(),
        )
        .map_err(|reason| RegistryError::Setup {
            registry: self.address.host.clone(),
            reason,
        })?;
        let repositories = self
            .paginate("listing the catalog", |last| {
                let reader = &reader;
                async move {
                    reader
                        .page(PAGE_SIZE, last.as_deref())
                        .await
                        .map_err(|failure| match failure {
                            CatalogFailure::Unauthorized => Failure::Unauthorized,
                            CatalogFailure::Forbidden => Failure::Forbidden,
                            CatalogFailure::NotFound => Failure::NotFound("/v2/_catalog".into()),
                            CatalogFailure::Transient(message) => Failure::Transient {
                                message,
                                exhausted: None,
                            },
                            CatalogFailure::Protocol(message) => Failure::Protocol(message),
                        })
                }
            })
            .await
            .map_err(|failure| match failure {
                Failure::NotFound(message) => RegistryError::Protocol {
                    reference: context.reference.clone(),
                    message: format!(
                        "the registry does not offer the catalog API, so packs cannot be \
                         listed ({message})"
                    ),
                },
                other => context.error(other),
            })?;
        Ok(repositories
            .into_iter()
            .filter_map(|repository| {
                let name = repository.strip_prefix(&prefix)?;
                (!name.contains('/')).then(|| name.to_owned())
            })
            .collect())
    }

    /// Every tag of `reference`'s repository.
    async fn tags(&self, reference: &Reference) -> Result<BTreeSet<String>, Failure> {
        self.paginate("listing tags", |last| async move {
            self.client
                .list_tags(reference, &self.auth, Some(PAGE_SIZE), last.as_deref())
                .await
                .map(|page| page.tags)
                .map_err(classify)
        })
        .await
    }

    /// Collects pages until one is empty or adds nothing new (a registry that ignores
    /// `last` answers the same page again), each page retried on its own.
    async fn paginate<F, Fut>(&self, what: &str, mut page: F) -> Result<BTreeSet<String>, Failure>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: Future<Output = Result<Vec<String>, Failure>>,
    {
        let mut all = BTreeSet::new();
        let mut last: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let items = self.retrying(what, || page(last.clone())).await?;
            let before = all.len();
            let page_last = items.last().cloned();
            all.extend(items);
            if all.len() == before {
                break;
            }
            last = page_last;
        }
        Ok(all)
    }

    /// UnknownPack listing what exists; the list is best effort (some registries refuse
    /// the catalog), the error is what matters.
    async fn unknown_pack(&self, name: &str) -> RegistryError {
        let available = match self.pack_names().await {
            Ok(names) => names,
            Err(error) => {
                debug!(%error, "cannot list the packs for the error message");
                Vec::new()
            }
        };
        RegistryError::UnknownPack {
            registry: self.address.to_string(),
            name: name.to_owned(),
            available,
        }
    }

    /// Finds the manifest of `name:version` and its pack layer.
    pub async fn resolve(
        &self,
        name: &str,
        version: &str,
    ) -> Result<PackDescriptor, RegistryError> {
        let reference = self.address.reference(name, version)?;
        let span = info_span!("registry.resolve", reference = %reference.whole());
        self.resolve_inner(name, version, &reference)
            .instrument(span)
            .await
    }

    async fn resolve_inner(
        &self,
        name: &str,
        version: &str,
        reference: &Reference,
    ) -> Result<PackDescriptor, RegistryError> {
        let context = self.context(reference);
        let found = self
            .retrying("fetching the manifest", || async {
                self.client
                    .pull_manifest(reference, &self.auth)
                    .await
                    .map_err(classify)
            })
            .await;
        let (manifest, manifest_digest) = match found {
            Ok(found) => found,
            Err(Failure::NotFound(_)) => return Err(self.unknown(name, version, reference).await),
            Err(failure) => return Err(context.error(failure)),
        };
        let manifest = match manifest {
            OciManifest::Image(manifest) => manifest,
            OciManifest::ImageIndex(_) => {
                return Err(RegistryError::NotAPack {
                    reference: context.reference,
                    reason: "it is an image index (a list of manifests); expected one pack \
                             manifest"
                        .to_owned(),
                });
            }
        };
        let (layer, file_name) =
            pack_layer(&manifest).map_err(|reason| RegistryError::NotAPack {
                reference: context.reference.clone(),
                reason,
            })?;
        let descriptor = PackDescriptor {
            reference: context.reference,
            manifest_digest,
            layer_digest: layer.digest.clone(),
            layer_size: u64::try_from(layer.size).unwrap_or_default(),
            file_name,
        };
        debug!(?descriptor, "resolved");
        Ok(descriptor)
    }

    /// The error for a manifest that is not there: which of name and version is unknown.
    async fn unknown(&self, name: &str, version: &str, reference: &Reference) -> RegistryError {
        match self.tags(reference).await {
            Ok(tags) if !tags.is_empty() => RegistryError::UnknownVersion {
                registry: self.address.to_string(),
                name: name.to_owned(),
                version: version.to_owned(),
                available: sort_versions(tags),
            },
            Ok(_) | Err(Failure::NotFound(_)) => self.unknown_pack(name).await,
            Err(failure) => self.context(reference).error(failure),
        }
    }

    /// The pack archive `descriptor` names: from `cache` when there (verified), else
    /// downloaded, verified and put in `cache`.
    pub async fn fetch(
        &self,
        descriptor: &PackDescriptor,
        cache: Option<&PackCache>,
    ) -> Result<Vec<u8>, RegistryError> {
        let span = info_span!("registry.fetch", reference = %descriptor.reference);
        async {
            if let Some(bytes) = cached(descriptor, cache).await? {
                return Ok(bytes);
            }
            let bytes = self.download(descriptor).await?;
            store(&descriptor.layer_digest, bytes, cache).await
        }
        .instrument(span)
        .await
    }

    /// Downloads and verifies the pack layer; caches nothing.
    async fn download(&self, descriptor: &PackDescriptor) -> Result<Vec<u8>, RegistryError> {
        let reference = self.descriptor_reference(descriptor)?;
        let limit = self.options.max_pack_bytes;
        if descriptor.layer_size > limit {
            return Err(RegistryError::TooLarge {
                reference: descriptor.reference.clone(),
                size: descriptor.layer_size,
                limit,
            });
        }
        let context = self.context(&reference);
        let bytes = self
            .retrying("downloading the pack", || {
                self.download_once(&reference, descriptor)
            })
            .await
            .map_err(|f| context.error(f))?;
        debug!(size = bytes.len(), "downloaded and verified");
        Ok(bytes)
    }

    async fn download_once(
        &self,
        reference: &Reference,
        descriptor: &PackDescriptor,
    ) -> Result<Vec<u8>, Failure> {
        let expected = descriptor.layer_size;
        let limit = self.options.max_pack_bytes;
        let truncated = |found: u64, message: String| Failure::Transient {
            message,
            exhausted: Some(Box::new(RegistryError::Truncated {
                reference: descriptor.reference.clone(),
                expected,
                found,
            })),
        };
        // A bare digest, not the manifest's descriptor: its `urls` could send the request
        // (and nothing else here) to another host.
        let mut stream = self
            .client
            .pull_blob_stream(reference, descriptor.layer_digest.as_str())
            .await
            .map_err(classify)?;
        if let Some(length) = stream.content_length
            && length > limit
        {
            return Err(Failure::final_error(RegistryError::TooLarge {
                reference: descriptor.reference.clone(),
                size: length,
                limit,
            }));
        }
        let mut hasher = Sha256::new();
        let capacity = usize::try_from(expected.min(limit)).unwrap_or_default();
        let mut data = Vec::with_capacity(capacity);
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    let received = (data.len() + chunk.len()) as u64;
                    if received > limit {
                        return Err(Failure::final_error(RegistryError::TooLarge {
                            reference: descriptor.reference.clone(),
                            size: received,
                            limit,
                        }));
                    }
                    if received > expected {
                        return Err(Failure::Protocol(format!(
                            "the registry sent more than the {expected} bytes the manifest \
                             declares for {}",
                            descriptor.layer_digest
                        )));
                    }
                    hasher.update(&chunk);
                    data.extend_from_slice(&chunk);
                }
                // oci-client's own check at the end of the stream; ours below says more.
                Err(error)
                    if error
                        .get_ref()
                        .is_some_and(|inner| inner.is::<DigestError>()) =>
                {
                    break;
                }
                Err(error) => {
                    let found = data.len() as u64;
                    let message = format!(
                        "the download broke off after {found} of {expected} bytes: {}",
                        error_chain(&error)
                    );
                    if found < expected {
                        return Err(truncated(found, message));
                    }
                    return Err(Failure::Transient {
                        message,
                        exhausted: None,
                    });
                }
            }
        }
        let found = data.len() as u64;
        if found < expected {
            return Err(truncated(
                found,
                format!("the registry sent {found} of {expected} bytes"),
            ));
        }
        let mut hex = String::with_capacity(64);
        for byte in hasher.finalize() {
            hex.push_str(&format!("{byte:02x}"));
        }
        let actual = format!("sha256:{hex}");
        if actual != descriptor.layer_digest {
            return Err(Failure::Mismatch {
                expected: descriptor.layer_digest.clone(),
                found: actual,
            });
        }
        Ok(data)
    }

    /// The OCI reference of a descriptor this client's registry produced.
    fn descriptor_reference(
        &self,
        descriptor: &PackDescriptor,
    ) -> Result<Reference, RegistryError> {
        let protocol = |message: String| RegistryError::Protocol {
            reference: descriptor.reference.clone(),
            message,
        };
        if !is_sha256_digest(&descriptor.layer_digest) {
            return Err(RegistryError::NotAPack {
                reference: descriptor.reference.clone(),
                reason: format!(
                    "its layer digest {:?} is not sha256:<64 hex digits>",
                    descriptor.layer_digest
                ),
            });
        }
        // Split by hand: parsing would misread a dot-less host as a Docker Hub path.
        let rest = descriptor
            .reference
            .strip_prefix(&self.address.host)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| {
                protocol(format!(
                    "the descriptor is for another registry; this client talks to {}",
                    self.address.host
                ))
            })?;
        let (repository, tag) = rest
            .rsplit_once(':')
            .ok_or_else(|| protocol("the descriptor's reference has no tag".to_owned()))?;
        Ok(Reference::with_tag(
            self.address.host.clone(),
            repository.to_owned(),
            tag.to_owned(),
        ))
    }

    /// Downloads `name:version` and unpacks it into `dest` (missing or an empty folder),
    /// which only ever appears holding a complete, valid pack: everything happens in a
    /// staging folder next to it, renamed into place at the end.
    pub async fn pull(
        &self,
        name: &str,
        version: &str,
        dest: &Path,
        cache: Option<&PackCache>,
    ) -> Result<PulledPack, RegistryError> {
        let reference = self.address.reference(name, version)?;
        let span =
            info_span!("registry.pull", reference = %reference.whole(), dest = %dest.display());
        async {
            let reference_text = reference.whole();
            check_destination(dest).map_err(|source| RegistryError::Archive {
                reference: reference_text.clone(),
                source,
            })?;
            let descriptor = self.resolve_inner(name, version, &reference).await?;
            let (bytes, from_cache) = self.bytes_for(&descriptor, cache).await?;
            let limits = self.archive_limits();
            let job = UnpackJob {
                reference: descriptor.reference.clone(),
                name: name.to_owned(),
                version: version.to_owned(),
                limits,
            };
            let dest_owned = dest.to_path_buf();
            let bytes = blocking(&descriptor.reference, move || {
                job.pull_into(&bytes, &dest_owned).map(|()| bytes)
            })
            .await?;
            if !from_cache {
                store(&descriptor.layer_digest, bytes, cache).await?;
            }
            info!(digest = %descriptor.layer_digest, "pulled pack");
            Ok(PulledPack {
                descriptor,
                dir: dest.to_path_buf(),
            })
        }
        .instrument(span)
        .await
    }

    /// The descriptor and pack.json of `name:version`, validated like `pull` does.
    pub async fn inspect(
        &self,
        name: &str,
        version: &str,
        cache: Option<&PackCache>,
    ) -> Result<(PackDescriptor, PackManifest), RegistryError> {
        let reference = self.address.reference(name, version)?;
        let span = info_span!("registry.inspect", reference = %reference.whole());
        async {
            let descriptor = self.resolve_inner(name, version, &reference).await?;
            let (bytes, from_cache) = self.bytes_for(&descriptor, cache).await?;
            let job = UnpackJob {
                reference: descriptor.reference.clone(),
                name: name.to_owned(),
                version: version.to_owned(),
                limits: self.archive_limits(),
            };
            let (manifest, bytes) = blocking(&descriptor.reference, move || {
                job.inspect(&bytes).map(|manifest| (manifest, bytes))
            })
            .await?;
            if !from_cache {
                store(&descriptor.layer_digest, bytes, cache).await?;
            }
            Ok((descriptor, manifest))
        }
        .instrument(span)
        .await
    }

    /// The blob from the cache, or downloaded (and not yet cached: pull and inspect cache
    /// it once it proved to be a valid pack).
    async fn bytes_for(
        &self,
        descriptor: &PackDescriptor,
        cache: Option<&PackCache>,
    ) -> Result<(Vec<u8>, bool), RegistryError> {
        if let Some(bytes) = cached(descriptor, cache).await? {
            return Ok((bytes, true));
        }
        Ok((self.download(descriptor).await?, false))
    }

    /// The blob limit bounds the unpacked content too, so a small gzip bomb cannot
    /// expand past what a pack may be.
    fn archive_limits(&self) -> ArchiveLimits {
        let defaults = ArchiveLimits::default();
        ArchiveLimits {
            max_total_bytes: self.options.max_pack_bytes,
            max_file_bytes: defaults.max_file_bytes.min(self.options.max_pack_bytes),
            max_entries: defaults.max_entries,
        }
    }
}

/// The pack layer of a manifest and its file name: the layer titled `*.tar.gz`, or the
/// only layer.
fn pack_layer(manifest: &OciImageManifest) -> Result<(&OciDescriptor, String), String> {
    let title = |layer: &OciDescriptor| {
        layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(TITLE_ANNOTATION))
            .cloned()
    };
    let candidates: Vec<&OciDescriptor> = manifest
        .layers
        .iter()
        .filter(|layer| title(layer).is_some_and(|t| t.ends_with(".tar.gz")))
        .collect();
    let layer = match (candidates.as_slice(), manifest.layers.as_slice()) {
        ([only], _) => *only,
        ([], []) => return Err("its manifest has no layers".to_owned()),
        ([], [only]) => only,
        ([], layers) => {
            let titles: Vec<String> = layers
                .iter()
                .map(|l| title(l).unwrap_or_else(|| "(untitled)".to_owned()))
                .collect();
            return Err(format!(
                "none of its {} layers is titled *.tar.gz (titles: {}); expected one pack \
                 archive",
                layers.len(),
                titles.join(", ")
            ));
        }
        (several, _) => {
            let titles: Vec<String> = several.iter().filter_map(|l| title(l)).collect();
            return Err(format!(
                "{} layers are titled *.tar.gz ({}); expected exactly one pack archive",
                several.len(),
                titles.join(", ")
            ));
        }
    };
    if !is_sha256_digest(&layer.digest) {
        return Err(format!(
            "its pack layer digest {:?} is not sha256:<64 hex digits>",
            layer.digest
        ));
    }
    if layer.size < 0 {
        return Err(format!("its pack layer has a negative size {}", layer.size));
    }
    let file_name = title(layer).unwrap_or_else(|| format!("{}.tar.gz", layer.digest));
    Ok((layer, file_name))
}

fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Tags that are versions, oldest first (equal versions such as `1.28` and `1.28.0` by
/// text).
fn sort_versions(tags: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut versions: Vec<(PackVersion, String)> = tags
        .into_iter()
        .filter_map(|tag| match PackVersion::parse(&tag) {
            Ok(version) => Some((version, tag)),
            Err(_) => {
                debug!(tag, "ignoring a tag that is not a version");
                None
            }
        })
        .collect();
    versions.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    versions.into_iter().map(|(_, tag)| tag).collect()
}

async fn cached(
    descriptor: &PackDescriptor,
    cache: Option<&PackCache>,
) -> Result<Option<Vec<u8>>, RegistryError> {
    let Some(cache) = cache.cloned() else {
        return Ok(None);
    };
    let digest = descriptor.layer_digest.clone();
    let found = blocking(&descriptor.reference, move || {
        cache.get(&digest).map_err(RegistryError::from)
    })
    .await?;
    if found.is_some() {
        debug!(digest = %descriptor.layer_digest, "pack blob from the cache");
    }
    Ok(found)
}

/// Puts verified bytes in the cache (when there is one) and hands them back.
async fn store(
    digest: &str,
    bytes: Vec<u8>,
    cache: Option<&PackCache>,
) -> Result<Vec<u8>, RegistryError> {
    let Some(cache) = cache.cloned() else {
        return Ok(bytes);
    };
    // Hashing and writing up to a gigabyte would stall the async workers.
    let digest_owned = digest.to_owned();
    blocking(digest, move || {
        cache.put(&digest_owned, &bytes)?;
        Ok(bytes)
    })
    .await
}

/// Runs filesystem and hashing work off the async workers.
async fn blocking<T, F>(reference: &str, work: F) -> Result<T, RegistryError>
where
    F: FnOnce() -> Result<T, RegistryError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RegistryError::Protocol {
            reference: reference.to_owned(),
            message: format!("the background task handling the pack failed: {e}"),
        })?
}

fn check_destination(dest: &Path) -> Result<(), ArchiveError> {
    match std::fs::symlink_metadata(dest) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ArchiveError::Io {
            path: dest.to_path_buf(),
            action: "inspecting",
            source,
        }),
        Ok(meta) if meta.is_dir() => {
            let mut listing = std::fs::read_dir(dest).map_err(|source| ArchiveError::Io {
                path: dest.to_path_buf(),
                action: "listing",
                source,
            })?;
            if listing.next().is_none() {
                Ok(())
            } else {
                Err(ArchiveError::DestinationExists {
                    path: dest.to_path_buf(),
                    found: "a non-empty directory",
                })
            }
        }
        Ok(meta) => Err(ArchiveError::DestinationExists {
            path: dest.to_path_buf(),
            found: if meta.file_type().is_symlink() {
                "a symlink"
            } else {
                "a file"
            },
        }),
    }
}

/// Unpacking and validating a downloaded archive (blocking work).
struct UnpackJob {
    reference: String,
    name: String,
    version: String,
    limits: ArchiveLimits,
}

impl UnpackJob {
    fn archive_error(&self, source: ArchiveError) -> RegistryError {
        RegistryError::Archive {
            reference: self.reference.clone(),
            source,
        }
    }

    /// Unpacks into `<staging>/pack` and loads it as a pack named as requested.
    fn unpack_and_load(&self, bytes: &[u8], staging: &Path) -> Result<Pack, RegistryError> {
        let dir = staging.join("pack");
        let unpacked = unpack_archive(Cursor::new(bytes), &dir, &self.limits)
            .map_err(|e| self.archive_error(e))?;
        if !dir.join("pack.json").is_file() {
            let mut top: Vec<String> = std::fs::read_dir(&dir)
                .map(|listing| {
                    listing
                        .filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            top.sort();
            let shown = if top.is_empty() {
                "nothing".to_owned()
            } else {
                top.join(", ")
            };
            let root = unpacked
                .root_name
                .map(|root| format!(" (in its top-level folder {root:?})"))
                .unwrap_or_default();
            return Err(RegistryError::NotAPack {
                reference: self.reference.clone(),
                reason: format!("its archive holds no pack.json{root}; found {shown}"),
            });
        }
        let (pack, findings) = Pack::load(&dir);
        let Some(pack) = pack else {
            return Err(RegistryError::InvalidPack {
                reference: self.reference.clone(),
                problems: findings.errors().cloned().collect(),
            });
        };
        let mut problems = Vec::new();
        if pack.manifest.name != self.name {
            problems.push(Finding::error(
                "pack.json: name",
                format!(
                    "is {:?}, but the registry holds it as pack {:?}",
                    pack.manifest.name, self.name
                ),
            ));
        }
        if pack.manifest.version != self.version {
            problems.push(Finding::error(
                "pack.json: version",
                format!(
                    "is {:?}, but the registry holds it as version {:?}",
                    pack.manifest.version, self.version
                ),
            ));
        }
        if !problems.is_empty() {
            return Err(RegistryError::InvalidPack {
                reference: self.reference.clone(),
                problems,
            });
        }
        Ok(pack)
    }

    fn pull_into(&self, bytes: &[u8], dest: &Path) -> Result<(), RegistryError> {
        let parent = match dest.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        // Dropped (and so removed) on every return: nothing is left behind on failure.
        let staging = tempfile::Builder::new()
            .prefix(".strata-pull-")
            .tempdir_in(parent)
            .map_err(|source| {
                self.archive_error(ArchiveError::Io {
                    path: parent.to_path_buf(),
                    action: "creating a staging folder in",
                    source,
                })
            })?;
        let pack = self.unpack_and_load(bytes, staging.path())?;
        // rename(2) replaces an empty folder and refuses a non-empty one, so a folder
        // filled concurrently is never merged into.
        std::fs::rename(&pack.dir, dest).map_err(|source| {
            self.archive_error(ArchiveError::Io {
                path: dest.to_path_buf(),
                action: "moving the pulled pack to",
                source,
            })
        })
    }

    fn inspect(&self, bytes: &[u8]) -> Result<PackManifest, RegistryError> {
        let staging = tempfile::Builder::new()
            .prefix("strata-inspect-")
            .tempdir()
            .map_err(|source| {
                self.archive_error(ArchiveError::Io {
                    path: std::env::temp_dir(),
                    action: "creating a staging folder in",
                    source,
                })
            })?;
        Ok(self.unpack_and_load(bytes, staging.path())?.manifest)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use oci_client::errors::{OciEnvelope, OciError};

    fn envelope(code: OciErrorCode) -> OciDistributionError {
        OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![OciError {
                    code,
                    message: "m".into(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "http://h/v2/x".into(),
        }
    }

    fn server(code: u16) -> OciDistributionError {
        OciDistributionError::ServerError {
            code,
            url: "http://h/v2/x".into(),
            message: "body".into(),
        }
    }

    fn kind(failure: &Failure) -> &'static str {
        match failure {
            Failure::Transient { .. } => "transient",
            Failure::Unauthorized => "unauthorized",
            Failure::Forbidden => "forbidden",
            Failure::NotFound(_) => "not found",
            Failure::NotAPack(_) => "not a pack",
            Failure::Mismatch { .. } => "mismatch",
            Failure::Tls(_) => "tls",
            Failure::Protocol(_) => "protocol",
            Failure::Final(_) => "final",
        }
    }

    #[test]
    fn classifies_every_oci_client_error() {
        use OciDistributionError as E;
        let io = |kind| E::IoError(std::io::Error::new(kind, "x"));
        let cases: Vec<(OciDistributionError, &str)> = vec![
            (E::AuthenticationFailure("no".into()), "unauthorized"),
            (E::UnauthorizedError { url: "u".into() }, "unauthorized"),
            (envelope(OciErrorCode::Unauthorized), "unauthorized"),
            (envelope(OciErrorCode::Denied), "forbidden"),
            (envelope(OciErrorCode::ManifestUnknown), "not found"),
            (envelope(OciErrorCode::NameUnknown), "not found"),
            (envelope(OciErrorCode::NotFound), "not found"),
            (envelope(OciErrorCode::BlobUnknown), "not found"),
            (envelope(OciErrorCode::NameInvalid), "protocol"),
            // A 4xx, so never retried, even "too many requests".
            (envelope(OciErrorCode::Toomanyrequests), "protocol"),
            (server(401), "unauthorized"),
            (server(403), "forbidden"),
            (server(404), "not found"),
            (server(400), "protocol"),
            (server(409), "protocol"),
            (server(429), "protocol"),
            (server(500), "transient"),
            (server(502), "transient"),
            (server(503), "transient"),
            (server(599), "transient"),
            (server(302), "protocol"),
            (E::ImageManifestNotFoundError("x".into()), "not found"),
            (io(std::io::ErrorKind::ConnectionRefused), "transient"),
            (io(std::io::ErrorKind::ConnectionReset), "transient"),
            (io(std::io::ErrorKind::TimedOut), "transient"),
            (io(std::io::ErrorKind::UnexpectedEof), "transient"),
            (io(std::io::ErrorKind::PermissionDenied), "protocol"),
            (
                E::DigestError(DigestError::VerificationError {
                    expected: "a".into(),
                    actual: "b".into(),
                }),
                "mismatch",
            ),
            (
                E::DigestError(DigestError::UnsupportedAlgorithm("md5".into())),
                "protocol",
            ),
            (E::UnsupportedMediaTypeError("x".into()), "not a pack"),
            (E::UnsupportedSchemaVersionError(1), "not a pack"),
            (E::ImageIndexParsingNoPlatformResolverError, "not a pack"),
            (E::IncompatibleLayerMediaTypeError("x".into()), "not a pack"),
            (E::PullNoLayersError, "not a pack"),
            (E::ManifestParsingError("x".into()), "protocol"),
            (E::VersionedParsingError("x".into()), "protocol"),
            (E::SpecViolationError("x".into()), "protocol"),
            (E::RegistryNoLocationError, "protocol"),
            (E::RegistryNoDigestError, "protocol"),
            (E::RegistryTokenDecodeError("x".into()), "protocol"),
            (E::GenericError(None), "protocol"),
            (E::UrlParseError("x".into()), "protocol"),
            (E::PushNoDataError, "protocol"),
        ];
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            let failure = classify(error);
            assert_eq!(kind(&failure), expected, "{shown}");
        }
    }

    #[tokio::test]
    async fn classifies_request_errors_from_a_real_connection() {
        // Connection refused: a port that was just free.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let address: RegistryAddress = format!("127.0.0.1:{port}").parse().unwrap();
        let client = PackRegistryClient::new(
            address.clone(),
            RegistryOptions {
                plain_http: true,
                ..RegistryOptions::default()
            },
        )
        .unwrap();
        let reference = address.reference("p", "1.0").unwrap();
        let error = client
            .client
            .pull_manifest(&reference, &RegistryAuth::Anonymous)
            .await
            .unwrap_err();
        assert!(
            matches!(error, OciDistributionError::RequestError(_)),
            "{error:?}"
        );
        assert_eq!(kind(&classify(error)), "transient");

        // TLS against something that is not TLS: a certificate/protocol failure, which
        // retrying cannot fix.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let address: RegistryAddress = format!("127.0.0.1:{port}").parse().unwrap();
        let client = PackRegistryClient::new(address.clone(), RegistryOptions::default()).unwrap();
        let error = client
            .client
            .pull_manifest(
                &address.reference("p", "1.0").unwrap(),
                &RegistryAuth::Anonymous,
            )
            .await
            .unwrap_err();
        let failure = classify(error);
        assert_eq!(kind(&failure), "tls", "{failure}");
        server.abort();
    }

    #[test]
    fn refuses_a_ca_that_is_not_pem() {
        let error = PackRegistryClient::new(
            "h:1".parse().unwrap(),
            RegistryOptions {
                ca_pem: Some("not a certificate".into()),
                ..RegistryOptions::default()
            },
        )
        .unwrap_err();
        assert!(matches!(error, RegistryError::Setup { .. }), "{error}");
    }

    #[test]
    fn error_messages_carry_their_context() {
        let unauthorized = RegistryError::Unauthorized {
            registry: "h:1".into(),
            username: Some("u".into()),
        };
        assert_eq!(
            unauthorized.to_string(),
            "wrong or missing credentials for h:1 (user \"u\")"
        );
        let forbidden = RegistryError::Forbidden {
            registry: "h:1".into(),
            repository: "spectro-packs/archive/p".into(),
            username: Some("u".into()),
        };
        assert_eq!(
            forbidden.to_string(),
            "user \"u\" may not access spectro-packs/archive/p on h:1: the credentials are valid, the permission is missing"
        );
        let unknown = RegistryError::UnknownVersion {
            registry: "h:1".into(),
            name: "p".into(),
            version: "9".into(),
            available: vec!["1.0".into(), "2.0".into()],
        };
        assert!(unknown.to_string().ends_with("versions there: 1.0, 2.0"));
    }

    fn descriptor(title: Option<&str>, digest_byte: char) -> OciDescriptor {
        OciDescriptor {
            media_type: PACK_LAYER_MEDIA_TYPE.into(),
            digest: format!("sha256:{}", digest_byte.to_string().repeat(64)),
            size: 10,
            annotations: title
                .map(|t| BTreeMap::from([(TITLE_ANNOTATION.to_owned(), t.to_owned())])),
            ..OciDescriptor::default()
        }
    }

    fn manifest(layers: Vec<OciDescriptor>) -> OciImageManifest {
        OciImageManifest {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_MEDIA_TYPE.into()),
            config: OciDescriptor::default(),
            layers,
            subject: None,
            artifact_type: None,
            annotations: None,
        }
    }

    #[test]
    fn picks_the_pack_layer() {
        let m = manifest(vec![
            descriptor(Some("README.md"), 'a'),
            descriptor(Some("p-1.tar.gz"), 'b'),
        ]);
        let (layer, name) = pack_layer(&m).unwrap();
        assert!(layer.digest.ends_with('b'));
        assert_eq!(name, "p-1.tar.gz");

        let m = manifest(vec![descriptor(None, 'c')]);
        let (layer, name) = pack_layer(&m).unwrap();
        assert!(layer.digest.ends_with('c'));
        assert!(name.ends_with(".tar.gz"));

        let m = manifest(vec![
            descriptor(Some("a.tar.gz"), 'a'),
            descriptor(Some("b.tar.gz"), 'b'),
        ]);
        let reason = pack_layer(&m).unwrap_err();
        assert!(reason.contains("2 layers are titled"), "{reason}");

        let m = manifest(vec![descriptor(Some("a.txt"), 'a'), descriptor(None, 'b')]);
        let reason = pack_layer(&m).unwrap_err();
        assert!(reason.contains("none of its 2 layers"), "{reason}");

        let reason = pack_layer(&manifest(vec![])).unwrap_err();
        assert!(reason.contains("no layers"), "{reason}");

        let mut bad = descriptor(Some("p.tar.gz"), 'a');
        bad.digest = "sha512:00".into();
        let reason = pack_layer(&manifest(vec![bad])).unwrap_err();
        assert!(reason.contains("not sha256"), "{reason}");
    }

    #[test]
    fn sorts_versions_numerically_and_drops_other_tags() {
        let tags = [
            "1.10.0",
            "latest",
            "1.9.0",
            "1.28",
            "1.28.0",
            "v1.2.0",
            "1.3.0-rc.1",
            "1.3.0",
        ];
        assert_eq!(
            sort_versions(tags.iter().map(|t| (*t).to_owned())),
            vec![
                "v1.2.0",
                "1.3.0-rc.1",
                "1.3.0",
                "1.9.0",
                "1.10.0",
                "1.28",
                "1.28.0"
            ]
        );
    }

    #[test]
    fn retry_policy_default() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.attempts, 4);
        assert_eq!(policy.min_delay, Duration::from_millis(200));
        assert_eq!(policy.max_delay, Duration::from_secs(2));
        assert_eq!(RegistryOptions::default().max_pack_bytes, 1 << 30);
    }
}
