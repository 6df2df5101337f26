//! The local side of a pull: the cache, and unpacking a verified archive into a folder
//! that only ever appears holding a complete, valid pack.

use std::io::{Cursor, Read};
use std::path::Path;

use bytes::Bytes;
use tokio::sync::mpsc;

use tracing::debug;

use super::{PackDescriptor, RegistryError};
use crate::finding::Finding;
use crate::pack::Pack;
use crate::pack::archive::{ArchiveError, ArchiveLimits, unpack_archive};
use crate::pack::manifest::PackManifest;
use crate::registry::cache::PackCache;

/// The blob `descriptor` names (by its layer digest), from `cache`, verified.
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

/// How the cache holds a blob for a pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CachedBy {
    /// The content index named the blob: what it unpacks to must still be checked.
    Content,
    /// A blob stored under the pin itself: a legacy pin (a layer digest), the blob verified
    /// against it.
    Layer,
}

/// The blob `pinned` names in `cache`: through the content index (the pin is a content
/// digest), else stored under the pin itself (a legacy layer-digest pin). The blob is
/// verified against its layer digest; what it unpacks to is the caller's to check.
pub(super) async fn cached_pin(
    reference: &str,
    pinned: &str,
    cache: Option<&PackCache>,
    max_bytes: u64,
) -> Result<Option<(Vec<u8>, CachedBy)>, RegistryError> {
    let Some(cache) = cache.cloned() else {
        return Ok(None);
    };
    let pinned = pinned.to_owned();
    blocking(reference, move || {
        let mut layer = cache.layer_of_content(&pinned)?;
        if layer.is_none() {
            // Blobs cached before the index existed are indexed now (once each), so that a
            // site upgraded offline still finds its packs by their content digests.
            let indexed = cache.index_unindexed(max_bytes)?;
            if indexed > 0 {
                layer = cache.layer_of_content(&pinned)?;
            }
        }
        if let Some(layer) = layer
            && let Some(bytes) = cache.get(&layer)?
        {
            debug!(%pinned, %layer, "pack blob from the cache, by its content digest");
            return Ok(Some((bytes, CachedBy::Content)));
        }
        if let Some(bytes) = cache.get(&pinned)? {
            debug!(%pinned, "pack blob from the cache, by a legacy layer-digest pin");
            return Ok(Some((bytes, CachedBy::Layer)));
        }
        Ok(None)
    })
    .await
}

/// Puts verified bytes in the cache (when there is one) under `layer_digest`, indexes them
/// under `content_digest` (computed from them while unpacking), and hands them back.
pub(super) async fn store(
    layer_digest: &str,
    content_digest: &str,
    bytes: Vec<u8>,
    cache: Option<&PackCache>,
) -> Result<Vec<u8>, RegistryError> {
    let Some(cache) = cache.cloned() else {
        return Ok(bytes);
    };
    // Hashing and writing up to a gigabyte would stall the async workers.
    let layer_owned = layer_digest.to_owned();
    let content_owned = content_digest.to_owned();
    blocking(layer_digest, move || {
        cache.put(&layer_owned, &bytes)?;
        cache.record_content(&content_owned, &layer_owned)?;
        Ok(bytes)
    })
    .await
}

/// Puts verified bytes in the cache under `layer_digest` alone (not unpacked: what they
/// unpack to is not known).
pub(super) async fn store_blob(
    layer_digest: &str,
    bytes: Vec<u8>,
    cache: Option<&PackCache>,
) -> Result<Vec<u8>, RegistryError> {
    let Some(cache) = cache.cloned() else {
        return Ok(bytes);
    };
    let layer_owned = layer_digest.to_owned();
    blocking(layer_digest, move || {
        cache.put(&layer_owned, &bytes)?;
        Ok(bytes)
    })
    .await
}

/// Indexes the cached blob `layer_digest` under `content_digest`, computed from it while
/// unpacking (a blob cached by `fetch`, or before the index existed).
pub(super) async fn index(
    layer_digest: &str,
    content_digest: &str,
    cache: Option<&PackCache>,
) -> Result<(), RegistryError> {
    let Some(cache) = cache.cloned() else {
        return Ok(());
    };
    let layer_owned = layer_digest.to_owned();
    let content_owned = content_digest.to_owned();
    blocking(layer_digest, move || {
        cache.record_content(&content_owned, &layer_owned)?;
        Ok(())
    })
    .await
}

/// Forgets that the cache's content index names a blob for `content_digest` (it unpacked
/// to something else: the index was damaged); the blob stays, valid for its layer digest.
pub(super) async fn forget_content(
    reference: &str,
    content_digest: &str,
    cache: Option<&PackCache>,
) -> Result<(), RegistryError> {
    let Some(cache) = cache.cloned() else {
        return Ok(());
    };
    let content_digest = content_digest.to_owned();
    blocking(reference, move || {
        cache.forget_content(&content_digest)?;
        Ok(())
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

/// The pieces of a download as they arrive, read on a blocking thread: the end of the
/// stream when the download ends (or stops).
pub(super) struct ChannelReader {
    pieces: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    pub(super) fn new(pieces: mpsc::Receiver<Bytes>) -> Self {
        Self {
            pieces,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.pieces.blocking_recv() {
                Some(piece) => self.current = piece,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Unpacking and validating a downloaded archive (blocking work).
pub(super) struct UnpackJob {
    pub(super) reference: String,
    pub(super) name: String,
    pub(super) version: String,
    pub(super) limits: ArchiveLimits,
    /// The content digest the archive must unpack to (a pin), checked before the pack is
    /// loaded or moved anywhere: [`RegistryError::PinChanged`] otherwise.
    pub(super) expected_content: Option<String>,
}

impl UnpackJob {
    fn archive_error(&self, source: ArchiveError) -> RegistryError {
        RegistryError::Archive {
            reference: self.reference.clone(),
            source,
        }
    }

    /// Unpacks into `<staging>/pack` (computing the content digest on the way), checks the
    /// pin, and loads it as a pack named as requested.
    fn unpack_and_load<R: Read>(
        &self,
        archive: R,
        staging: &Path,
    ) -> Result<(Pack, String), RegistryError> {
        let dir = staging.join("pack");
        let unpacked =
            unpack_archive(archive, &dir, &self.limits).map_err(|e| self.archive_error(e))?;
        if let Some(pinned) = &self.expected_content
            && *pinned != unpacked.content_digest
        {
            return Err(RegistryError::PinChanged {
                reference: self.reference.clone(),
                pinned: pinned.clone(),
                found: unpacked.content_digest,
            });
        }
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
        Ok((pack, unpacked.content_digest))
    }

    /// Unpacks and validates `bytes` into `dest`; the content digest of what was unpacked.
    pub(super) fn pull_into(&self, bytes: &[u8], dest: &Path) -> Result<String, RegistryError> {
        self.pull_from(Cursor::new(bytes), dest, || Ok(()))
    }

    /// Unpacks and validates what `archive` yields into `dest`, once `ready` agrees (the
    /// download it comes from verified); the content digest of what was unpacked.
    pub(super) fn pull_from<R: Read>(
        &self,
        archive: R,
        dest: &Path,
        ready: impl FnOnce() -> Result<(), RegistryError>,
    ) -> Result<String, RegistryError> {
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
        let (pack, content_digest) = self.unpack_and_load(archive, staging.path())?;
        ready()?;
        // rename(2) replaces an empty folder and refuses a non-empty one, so a folder
        // filled concurrently is never merged into.
        std::fs::rename(&pack.dir, dest).map_err(|source| {
            self.archive_error(ArchiveError::Io {
                path: dest.to_path_buf(),
                action: "moving the pulled pack to",
                source,
            })
        })?;
        Ok(content_digest)
    }

    /// pack.json and the content digest of `bytes`, validated as `pull_into` does.
    pub(super) fn inspect(&self, bytes: &[u8]) -> Result<(PackManifest, String), RegistryError> {
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
        let (pack, content_digest) = self.unpack_and_load(Cursor::new(bytes), staging.path())?;
        Ok((pack.manifest, content_digest))
    }
}
