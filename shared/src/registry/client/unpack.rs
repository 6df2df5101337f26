//! The local side of a pull: the cache, and unpacking a verified archive into a folder
//! that only ever appears holding a complete, valid pack.

use std::io::Cursor;
use std::path::Path;

use tracing::debug;

use super::{PackDescriptor, RegistryError};
use crate::finding::Finding;
use crate::pack::Pack;
use crate::pack::archive::{ArchiveError, ArchiveLimits, unpack_archive};
use crate::pack::manifest::PackManifest;
use crate::registry::cache::PackCache;

pub(super) async fn cached(
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
pub(super) async fn store(
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
pub(super) async fn blocking<T, F>(reference: &str, work: F) -> Result<T, RegistryError>
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

pub(super) fn check_destination(dest: &Path) -> Result<(), ArchiveError> {
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
pub(super) struct UnpackJob {
    pub(super) reference: String,
    pub(super) name: String,
    pub(super) version: String,
    pub(super) limits: ArchiveLimits,
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

    pub(super) fn pull_into(&self, bytes: &[u8], dest: &Path) -> Result<(), RegistryError> {
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

    pub(super) fn inspect(&self, bytes: &[u8]) -> Result<PackManifest, RegistryError> {
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
