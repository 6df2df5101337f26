//! Pinning a profile's layers to digests from a registry.
//!
//! Composition is pure and synchronous; fetching is not. So the packs a set of profiles
//! names are fetched first ([`RegistryPacks::fetch`]), each pinned to its content digest
//! (the sha256 of its decompressed tar stream, computed here while unpacking the downloaded
//! layer: the same digest `strata pack inspect` gives a folder), and the
//! result is a [`PackSource`] that composition reads from memory. A pack that could not be
//! fetched keeps its error, reported at the layer that names it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::catalog::{PackSource, ResolveError, ResolvedPack};
use crate::registry::cache::PackCache;
use crate::registry::client::{PackDescriptor, PackRegistryClient, RegistryError};

/// Packs fetched from one registry, keyed by `name:version` as the layers name them.
pub struct RegistryPacks {
    registry: String,
    packs: BTreeMap<String, Result<ResolvedPack, ResolveError>>,
    pinned: BTreeMap<String, PinnedPack>,
}

/// Where a fetched pack is in its registry, and what it lists for air gaps: what copying
/// it elsewhere needs beyond the composed layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedPack {
    pub descriptor: PackDescriptor,
    /// `pack.content.images`, as the pack lists them.
    pub images: Vec<String>,
}

impl RegistryPacks {
    /// Fetches every `(name, version)` (duplicates once), verifying and caching the blobs,
    /// and unpacking each into a folder under `work_dir` to validate it.
    pub async fn fetch(
        client: &PackRegistryClient,
        cache: Option<&PackCache>,
        wanted: &[(String, String)],
        work_dir: &Path,
    ) -> RegistryPacks {
        let registry = client.address().to_string();
        let mut packs = BTreeMap::new();
        let mut pinned = BTreeMap::new();
        for (name, version) in wanted {
            let key = format!("{name}:{version}");
            if packs.contains_key(&key) {
                continue;
            }
            let dest = work_dir.join(format!("{name}-{version}"));
            let result = match client.pull(name, version, &dest, cache).await {
                Ok(pulled) => {
                    let (pack, findings) = crate::pack::Pack::load(&pulled.dir);
                    if let Some(pack) = &pack {
                        pinned.insert(
                            key.clone(),
                            PinnedPack {
                                descriptor: pulled.descriptor.clone(),
                                images: pack.values.images.clone(),
                            },
                        );
                    }
                    match pack {
                        Some(pack) => Ok(ResolvedPack::of(
                            &pack,
                            // Computed by the pull from the bytes it unpacked.
                            pulled.content_digest.clone(),
                            format!(
                                "{}@{}",
                                pulled.descriptor.reference, pulled.descriptor.manifest_digest
                            ),
                        )),
                        None => Err(ResolveError::InvalidPack {
                            reference: key.clone(),
                            origin: pulled.descriptor.reference.clone(),
                            problems: findings.errors().cloned().collect(),
                        }),
                    }
                }
                Err(error) => Err(resolve_error(&registry, name, version, error)),
            };
            packs.insert(key, result);
        }
        RegistryPacks {
            registry,
            packs,
            pinned,
        }
    }

    /// Where `name:version` is in the registry and the images it lists, or why it could not
    /// be fetched.
    pub fn pinned(&self, name: &str, version: &str) -> Result<&PinnedPack, ResolveError> {
        let key = format!("{name}:{version}");
        match self.pinned.get(&key) {
            Some(pinned) => Ok(pinned),
            None => Err(match self.packs.get(&key) {
                Some(Err(error)) => error.clone(),
                _ => ResolveError::Fetch {
                    reference: key,
                    origin: format!("registry {}", self.registry),
                    reason: "it was not among the packs fetched for these profiles".into(),
                },
            }),
        }
    }
}

fn resolve_error(registry: &str, name: &str, version: &str, error: RegistryError) -> ResolveError {
    match error {
        RegistryError::UnknownPack { available, .. } => ResolveError::UnknownPack {
            name: name.into(),
            source_name: format!("registry {registry}"),
            available,
        },
        RegistryError::UnknownVersion { available, .. } => ResolveError::UnknownVersion {
            name: name.into(),
            version: version.into(),
            source_name: format!("registry {registry}"),
            available,
        },
        other => ResolveError::Fetch {
            reference: format!("{name}:{version}"),
            origin: format!("registry {registry}"),
            reason: other.to_string(),
        },
    }
}

impl PackSource for RegistryPacks {
    fn resolve(
        &self,
        name: &str,
        version: &str,
        _registry: Option<&str>,
    ) -> Result<ResolvedPack, ResolveError> {
        match self.packs.get(&format!("{name}:{version}")) {
            Some(result) => result.clone(),
            // Only reachable when a caller resolves a layer it did not fetch.
            None => Err(ResolveError::Fetch {
                reference: format!("{name}:{version}"),
                origin: format!("registry {}", self.registry),
                reason: "it was not among the packs fetched for these profiles".into(),
            }),
        }
    }
}
