//! The pack registry client: push, list, resolve, fetch and pull packs over the OCI
//! distribution API. Reads go through Strata's own HTTP layer
//! ([`crate::registry::transport`]), uploads through `oci-client`.
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
//! Answers are classified once ([`crate::registry::failure`]): 401 and token refusals mean
//! wrong or missing credentials, 403 means the user may not access the repository, 404
//! and `*_UNKNOWN` codes mean "not there" (turned into [`RegistryError::UnknownPack`] or
//! [`RegistryError::UnknownVersion`] listing what does exist), connection failures,
//! timeouts and 5xx answers are transient and retried with exponential backoff and
//! jitter; every other 4xx and every malformed answer fails at once. Once the attempts
//! are spent, a transient failure becomes [`RegistryError::Unreachable`] with the last
//! error.
//!
//! # Limits
//!
//! A registry cannot make a client read without end or wait forever:
//!
//! - manifests, tag list and catalog pages and token answers are read up to a size limit
//!   ([`ResponseLimits`]), lists up to a number of entries;
//! - each small request has a time limit for its whole answer
//!   ([`RegistryOptions::request_timeout`]);
//! - resolving and downloading one pack has a deadline ([`RegistryOptions::fetch_deadline`]),
//!   retries included;
//! - credentials are never sent over plain HTTP, nor to a token realm on another host
//!   ([`crate::registry::challenge`]).
//!
//! # Downloads
//!
//! Blobs are streamed with the size bounded by the manifest's size and
//! [`RegistryOptions::max_pack_bytes`], hashed while they arrive, and compared with the
//! layer digest; only verified bytes reach the [`PackCache`]. `pull` and `inspect` go
//! further and cache a blob only once it unpacked safely into a valid pack.

mod download;
mod listing;
mod manifest;
mod push;
mod unpack;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use oci_client::Reference;
use serde::Serialize;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::finding::Finding;
use crate::pack::Pack;
use crate::pack::archive::{ArchiveError, ArchiveLimits};
use crate::pack::manifest::PackManifest;
use crate::registry::address::{AddressError, RegistryAddress};
use crate::registry::cache::{CacheError, PackCache};
use crate::registry::credentials::Credentials;
use crate::registry::failure::Failure;
use crate::registry::transport::Transport;
use manifest::{pack_layer, parse_pack_manifest};
use unpack::{UnpackJob, blocking, cached, check_destination, store};

/// The pack layer's media type: what `oras push` gives a file.
pub const PACK_LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// The config's media type, as `oras push` writes it.
pub const PACK_CONFIG_MEDIA_TYPE: &str = "application/vnd.unknown.config.v1+json";
/// The annotation holding the layer's file name.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
const PACK_CONFIG: &[u8] = b"{}";
pub(crate) const USER_AGENT: &str = concat!("strata/", env!("CARGO_PKG_VERSION"));

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

/// The most a registry's answers (other than pack blobs) may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseLimits {
    /// A manifest or image index, in bytes. Default 4 MiB, distribution's own limit.
    pub manifest_bytes: u64,
    /// One page of a tag list or of the catalog, in bytes. Default 4 MiB (a registry may
    /// ignore the page size asked for and answer everything at once).
    pub list_page_bytes: u64,
    /// Names in a whole tag list or catalog, all pages together. Default 100,000.
    pub list_entries: usize,
}

impl Default for ResponseLimits {
    fn default() -> Self {
        ResponseLimits {
            manifest_bytes: 4 << 20,
            list_page_bytes: 4 << 20,
            list_entries: 100_000,
        }
    }
}

/// How to talk to a registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// HTTP instead of HTTPS; anonymous only (credentials with it are refused).
    pub plain_http: bool,
    /// A CA (PEM) to trust in addition to the system's, for a registry with a private CA.
    pub ca_pem: Option<String>,
    pub credentials: Credentials,
    pub retry: RetryPolicy,
    /// The largest pack archive accepted, compressed; also the most its content may
    /// unpack to. Default 1 GiB.
    pub max_pack_bytes: u64,
    /// The longest resolving and downloading one pack may take, retries included
    /// (`resolve`, `fetch`, the network part of `pull` and `inspect`, `versions`).
    /// Default 5 minutes.
    pub fetch_deadline: Duration,
    /// The longest one small request (a manifest, a list page, a token) may take, its
    /// whole answer included. Default 30 s.
    pub request_timeout: Duration,
    pub limits: ResponseLimits,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            plain_http: false,
            ca_pem: None,
            credentials: Credentials::Anonymous,
            retry: RetryPolicy::default(),
            max_pack_bytes: 1 << 30,
            fetch_deadline: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            limits: ResponseLimits::default(),
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
    #[error(
        "{registry} sent a {what} for {reference} of {}, over the {limit}-byte limit for a {what}",
        size_text(*size, *declared, *limit)
    )]
    ResponseTooLarge {
        registry: String,
        reference: String,
        /// What the body was: `manifest`, `tag list page`, `catalog page`, …
        what: &'static str,
        size: u64,
        /// `size` is what the answer declared; else it is what had arrived when reading
        /// stopped, and the answer was longer still.
        declared: bool,
        limit: u64,
    },
    #[error(
        "the {what} of {reference} in {registry} has more than {limit} entries; refusing to \
         read further"
    )]
    ListTooLong {
        registry: String,
        what: &'static str,
        reference: String,
        limit: usize,
    },
    #[error(
        "fetching {reference} from {registry} took longer than {} (the deadline for one \
         pack): the registry is too slow or stalled",
        crate::registry::transport::seconds(*deadline)
    )]
    DeadlineExceeded {
        registry: String,
        reference: String,
        deadline: Duration,
    },
    #[error(
        "{registry} names the token realm {realm:?}, which {reason}; Strata sends \
         credentials only over HTTPS to the registry's own host name, and fetches tokens \
         over plain HTTP only for plain HTTP registries"
    )]
    RealmRefused {
        registry: String,
        realm: String,
        reason: String,
    },
    #[error(
        "credentials are configured for {registry}{} but it is reached over plain HTTP \
         (--plain-http, or spec.plainHttp of a PackRegistry); credentials are only sent \
         over HTTPS: use HTTPS, or no credentials",
        as_user(username)
    )]
    CredentialsOverPlainHttp {
        registry: String,
        username: Option<String>,
    },
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

fn size_text(size: u64, declared: bool, limit: u64) -> String {
    if declared {
        format!("{size} bytes")
    } else {
        // Reading stopped at the first piece past the limit: all that is known.
        format!("more than {limit} bytes")
    }
}

fn first_problems(problems: &[Finding]) -> String {
    let shown: Vec<String> = problems.iter().take(3).map(ToString::to_string).collect();
    match problems.len().saturating_sub(shown.len()) {
        0 => shown.join("; "),
        more => format!("{} (and {more} more)", shown.join("; ")),
    }
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
    transport: Transport,
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
        if options.plain_http && options.credentials != Credentials::Anonymous {
            return Err(RegistryError::CredentialsOverPlainHttp {
                registry: address.host.clone(),
                username: options.credentials.username().map(str::to_owned),
            });
        }
        let setup = |reason: String| RegistryError::Setup {
            registry: address.host.clone(),
            reason,
        };
        if let Some(pem) = &options.ca_pem
            && !pem.contains("-----BEGIN CERTIFICATE-----")
        {
            return Err(setup(
                "the CA given is not a PEM certificate (no \"-----BEGIN CERTIFICATE-----\")"
                    .to_owned(),
            ));
        }
        let transport = Transport::new(&address.host, &options).map_err(setup)?;
        Ok(PackRegistryClient {
            address,
            options,
            transport,
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

    /// `work` within [`RegistryOptions::fetch_deadline`].
    async fn within_deadline<T>(
        &self,
        reference: &str,
        work: impl Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        let deadline = self.options.fetch_deadline;
        match tokio::time::timeout(deadline, work).await {
            Ok(result) => result,
            Err(_) => {
                warn!(registry = %self.address.host, reference, ?deadline, "registry deadline exceeded");
                Err(RegistryError::DeadlineExceeded {
                    registry: self.address.host.clone(),
                    reference: reference.to_owned(),
                    deadline,
                })
            }
        }
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

    /// The versions of pack `name`, oldest first. Tags that are not versions are left out.
    pub async fn versions(&self, name: &str) -> Result<Vec<String>, RegistryError> {
        let reference = self.address.reference(name, "latest")?;
        let listed = format!("{}/{}", self.address.host, reference.repository());
        let span = info_span!("registry.versions", reference = %listed);
        self.within_deadline(&listed, self.versions_inner(name))
            .instrument(span)
            .await
    }

    /// Every pack and its versions: the catalog's repositories under the archive prefix.
    /// Each request is bounded; the whole listing has no deadline (it grows with the
    /// registry).
    pub async fn list(&self) -> Result<BTreeMap<String, Vec<String>>, RegistryError> {
        let span = info_span!("registry.list", registry = %self.address);
        self.list_inner().instrument(span).await
    }

    /// Finds the manifest of `name:version` and its pack layer.
    pub async fn resolve(
        &self,
        name: &str,
        version: &str,
    ) -> Result<PackDescriptor, RegistryError> {
        let reference = self.address.reference(name, version)?;
        let whole = reference.whole();
        let span = info_span!("registry.resolve", reference = %whole);
        self.within_deadline(&whole, self.resolve_inner(name, version, &reference))
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
            .retrying("fetching the manifest", || self.manifest_once(reference))
            .await;
        let (body, manifest_digest) = match found {
            Ok(found) => found,
            Err(Failure::NotFound(_)) => return Err(self.unknown(name, version, reference).await),
            Err(failure) => return Err(context.error(failure)),
        };
        let manifest = parse_pack_manifest(&body).map_err(|f| context.error(f))?;
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

    /// The pack archive `descriptor` names: from `cache` when there (verified), else
    /// downloaded (within the deadline), verified and put in `cache`.
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
            let bytes = self
                .within_deadline(&descriptor.reference, self.download(descriptor))
                .await?;
            store(&descriptor.layer_digest, bytes, cache).await
        }
        .instrument(span)
        .await
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
            let (descriptor, bytes, from_cache) = self
                .resolved_bytes(name, version, &reference, cache)
                .await?;
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
            let (descriptor, bytes, from_cache) = self
                .resolved_bytes(name, version, &reference, cache)
                .await?;
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

    /// The descriptor of `name:version` and its blob, from the cache or downloaded (and
    /// not yet cached: pull and inspect cache it once it proved to be a valid pack),
    /// within the deadline. Unpacking stays outside it: a job cut off mid-way could not
    /// be stopped, and would still move a pack into place after the error.
    async fn resolved_bytes(
        &self,
        name: &str,
        version: &str,
        reference: &Reference,
        cache: Option<&PackCache>,
    ) -> Result<(PackDescriptor, Vec<u8>, bool), RegistryError> {
        let work = async {
            let descriptor = self.resolve_inner(name, version, reference).await?;
            if let Some(bytes) = cached(&descriptor, cache).await? {
                return Ok((descriptor, bytes, true));
            }
            let bytes = self.download(&descriptor).await?;
            Ok((descriptor, bytes, false))
        };
        self.within_deadline(&reference.whole(), work).await
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn request_failures_from_real_connections() {
        // Connection refused: a port that was just free. Transient, so retried, then
        // Unreachable.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let address: RegistryAddress = format!("127.0.0.1:{port}").parse().unwrap();
        let no_wait = RetryPolicy {
            attempts: 2,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let client = PackRegistryClient::new(
            address,
            RegistryOptions {
                plain_http: true,
                retry: no_wait.clone(),
                ..RegistryOptions::default()
            },
        )
        .unwrap();
        let error = client.resolve("p", "1.0").await.unwrap_err();
        assert!(
            matches!(error, RegistryError::Unreachable { attempts: 2, .. }),
            "{error:?}"
        );

        // TLS against something that is not TLS: a certificate/protocol failure, which
        // retrying cannot fix (one attempt).
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
        let client = PackRegistryClient::new(
            address,
            RegistryOptions {
                retry: no_wait,
                ..RegistryOptions::default()
            },
        )
        .unwrap();
        let error = client.resolve("p", "1.0").await.unwrap_err();
        assert!(
            matches!(error, RegistryError::Unreachable { attempts: 1, .. }),
            "{error:?}"
        );
        server.abort();
    }

    #[test]
    fn refuses_credentials_over_plain_http() {
        let error = PackRegistryClient::new(
            "registry.example:5000".parse().unwrap(),
            RegistryOptions {
                plain_http: true,
                credentials: Credentials::Basic {
                    username: "u".into(),
                    password: "secret".into(),
                },
                ..RegistryOptions::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(error, RegistryError::CredentialsOverPlainHttp { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("--plain-http"), "{message}");
        assert!(message.contains("spec.plainHttp"), "{message}");
        assert!(!message.contains("secret"), "{message}");
        // Anonymous over plain HTTP is fine.
        PackRegistryClient::new(
            "registry.example:5000".parse().unwrap(),
            RegistryOptions {
                plain_http: true,
                ..RegistryOptions::default()
            },
        )
        .unwrap();
    }

    #[test]
    fn limit_errors_name_the_registry_the_reference_and_the_limit() {
        let declared = RegistryError::ResponseTooLarge {
            registry: "h:1".into(),
            reference: "h:1/spectro-packs/archive/p:1".into(),
            what: "manifest",
            size: 5_000_000,
            declared: true,
            limit: 4_194_304,
        };
        assert_eq!(
            declared.to_string(),
            "h:1 sent a manifest for h:1/spectro-packs/archive/p:1 of 5000000 bytes, over \
             the 4194304-byte limit for a manifest"
        );
        let grown = RegistryError::ResponseTooLarge {
            registry: "h:1".into(),
            reference: "r".into(),
            what: "tag list page",
            size: 4_194_305,
            declared: false,
            limit: 4_194_304,
        };
        assert!(
            grown.to_string().contains("of more than 4194304 bytes"),
            "{grown}"
        );
        let late = RegistryError::DeadlineExceeded {
            registry: "h:1".into(),
            reference: "h:1/spectro-packs/archive/p:1".into(),
            deadline: Duration::from_secs(300),
        };
        assert_eq!(
            late.to_string(),
            "fetching h:1/spectro-packs/archive/p:1 from h:1 took longer than 300 s (the \
             deadline for one pack): the registry is too slow or stalled"
        );
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

    #[test]
    fn retry_policy_default() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.attempts, 4);
        assert_eq!(policy.min_delay, Duration::from_millis(200));
        assert_eq!(policy.max_delay, Duration::from_secs(2));
        let options = RegistryOptions::default();
        assert_eq!(options.max_pack_bytes, 1 << 30);
        assert_eq!(options.fetch_deadline, Duration::from_secs(300));
        assert_eq!(options.request_timeout, Duration::from_secs(30));
        assert_eq!(options.limits.manifest_bytes, 4 << 20);
    }
}
