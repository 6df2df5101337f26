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

/// A pack pulled by its pinned digest (`PackRegistryClient::pull_pinned`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedPull {
    /// The folder the pack is in (the `dest` given).
    pub dir: PathBuf,
    /// The site's cache served it; the registry was not asked.
    pub from_cache: bool,
}
