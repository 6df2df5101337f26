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
//!   `org.opencontainers.image.title: <name>-<version>.tar.gz` and, informational only,
//!   [`CONTENT_DIGEST_ANNOTATION`];
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
//!
//! # Two digests
//!
//! The layer digest names the compressed blob (transport); the content digest, the sha256
//! of the decompressed tar stream, is the pack's identity, what revisions pin. Unpacking
//! computes it from the bytes (decompressing, hashing and unpacking are one pass), so a
//! pack pushed by any tool, at any gzip level, has one content digest.
//! [`PackRegistryClient::pull_pinned`] accepts a pin that is the layer digest too: that is
//! what revisions published before content digests hold.

mod archive_chunks;
mod descriptor;
mod download;
mod listing;
mod manifest;
pub(crate) mod objects;
mod pull;
mod push;
mod resolve;
mod retry;
mod unpack;

use std::collections::BTreeMap;

use oci_client::Reference;
use tracing::{Instrument, info_span};

use crate::pack::Pack;
use crate::registry::address::RegistryAddress;
use crate::registry::credentials::Credentials;
pub use crate::registry::error::RegistryError;
use crate::registry::failure::Context;
pub(crate) use crate::registry::options::USER_AGENT;
pub use crate::registry::options::{RegistryOptions, ResponseLimits, RetryPolicy};
use crate::registry::transport::Transport;
pub use descriptor::{PackDescriptor, PinnedPull, PulledPack, PushedPack};

/// The pack layer's media type: what `oras push` gives a file.
pub const PACK_LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// The config's media type, as `oras push` writes it.
pub const PACK_CONFIG_MEDIA_TYPE: &str = "application/vnd.unknown.config.v1+json";
/// The annotation holding the layer's file name.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// The annotation Strata adds to the pack layer it pushes: the pack's content digest (the
/// sha256 of the uncompressed tar stream), for people and tools reading the manifest.
/// Informational only: a registry is not trusted, so every reader that pins or verifies
/// computes the content digest from the bytes; packs pushed by other tools lack it.
pub const CONTENT_DIGEST_ANNOTATION: &str = "dev.strata.pack.content-digest";
const PACK_CONFIG: &[u8] = b"{}";

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
        let transport =
            Transport::new(&address.host, &options).map_err(|error| setup(error.to_string()))?;
        Ok(PackRegistryClient {
            address,
            options,
            transport,
        })
    }

    pub fn address(&self) -> &RegistryAddress {
        &self.address
    }

    fn context(&self, reference: &Reference) -> Context {
        self.context_of(reference.whole(), reference.repository().to_owned())
    }

    /// The context errors about `reference` (in `repository`) are reported in.
    fn context_of(&self, reference: String, repository: String) -> Context {
        Context {
            registry: self.address.host.clone(),
            username: self.options.credentials.username().map(str::to_owned),
            reference,
            repository,
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
}

#[cfg(test)]
mod tests;
