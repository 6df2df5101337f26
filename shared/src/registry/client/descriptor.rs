//! What the client reports about a pack in a registry.

use std::path::PathBuf;

use serde::Serialize;

/// A pack version in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackDescriptor {
    /// `host/repository:tag`.
    pub reference: String,
    /// Digest of the manifest the tag pointed to.
    pub manifest_digest: String,
    /// Digest of the layer blob, the compressed archive as it travels: what the registry
    /// stores and serves it under. Another compressor gives another layer digest for the
    /// same pack, so this is not the pack's identity.
    pub layer_digest: String,
    /// The pack's identity (`Pack::digest`, what a revision pins): the sha256 of the
    /// archive's decompressed tar stream, computed here from the bytes. `None` until the
    /// layer was read (`resolve` alone reads no layer). Never taken from the registry's
    /// annotation.
    pub content_digest: Option<String>,
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
    /// Its `content_digest` is set.
    pub descriptor: PackDescriptor,
    /// The folder the pack is in (the `dest` given to `pull`).
    pub dir: PathBuf,
    /// The pack's content digest, computed from the bytes unpacked into `dir`.
    pub content_digest: String,
}

/// A pack pulled by its pinned digest (`PackRegistryClient::pull_pinned`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedPull {
    /// The folder the pack is in (the `dest` given).
    pub dir: PathBuf,
    /// The site's cache served it; the registry was not asked.
    pub from_cache: bool,
    /// The content digest of what was unpacked (computed while unpacking).
    pub content_digest: String,
    /// The pin was a layer digest, as revisions published before content digests pin
    /// (accepted when the layer is exactly that blob).
    pub legacy_pin: bool,
}
