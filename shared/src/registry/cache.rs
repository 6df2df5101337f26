//! A content-addressed cache of pack archives, shared by the controller and the agent (and
//! by several processes at once).
//!
//! Layout: `<root>/sha256/<64 hex digits>`, one immutable file per blob, named by its
//! layer digest (the sha256 of the compressed archive, as a registry serves it). Writers go
//! through a `.tmp-*` file in the same folder and `rename(2)` it into place, so a blob under
//! its final name is always complete, and concurrent writers of the same blob simply
//! replace one complete file with another. Every read re-hashes the bytes: a blob that does
//! not match its name (disk corruption, tampering) is deleted and reported as absent, so
//! the caller downloads it again. A blob's mtime records when it was last used, for garbage
//! collection.
//!
//! # The content index
//!
//! Revisions pin a pack's content digest (the sha256 of the decompressed tar stream), which
//! a blob's name does not give. `<root>/content/<64 hex digits>` holds, for a content
//! digest, the layer digest of a blob that unpacked to it, written (atomically, like a
//! blob) by whoever unpacked it. The index is a hint, never a proof: the blob it names is
//! verified against its layer digest when read, and what it unpacks to against the content
//! digest by the reader ([`crate::registry::client::PackRegistryClient::pull_pinned`]), so
//! a damaged or forged entry costs a download and is dropped, never installs anything.
//! Blobs cached before the index existed are indexed on first need
//! ([`PackCache::index_unindexed`]): they are decompressed and hashed, nothing trusted.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::{debug, warn};

use crate::pack::archive::{content_digest_of, sha256_digest};

const ALGORITHM_DIR: &str = "sha256";
/// The content index (see the module docs).
const CONTENT_DIR: &str = "content";
const TEMP_PREFIX: &str = ".tmp-";
/// A temporary file this old is a leftover of a crashed writer, not a write in progress
/// (even a 1 GiB blob is written in seconds).
const STALE_TEMP_AGE: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{digest:?} is not a pack digest: {reason}; expected sha256:<64 lowercase hex digits>")]
    InvalidDigest {
        digest: String,
        reason: &'static str,
    },
    #[error("refusing to cache {size} bytes as {digest}: they hash to {found}")]
    Mismatch {
        digest: String,
        found: String,
        size: u64,
    },
    #[error("pack cache: {action} {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> CacheError {
    let path = path.to_path_buf();
    move |source| CacheError::Io {
        path,
        action,
        source,
    }
}

/// One cached blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub digest: String,
    pub size: u64,
    /// When the blob was last written or read.
    pub last_used: SystemTime,
}

/// What [`PackCache::collect_garbage`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Digests of the removed blobs.
    pub removed: Vec<String>,
    /// Bytes freed, including stale temporary files.
    pub freed_bytes: u64,
}

/// A pack blob cache rooted at a folder. Cheap to clone (it is only the path).
#[derive(Debug, Clone)]
pub struct PackCache {
    root: PathBuf,
    blobs: PathBuf,
    content: PathBuf,
}

impl PackCache {
    /// Opens (creating if needed) the cache at `root`.
    pub fn open(root: &Path) -> Result<Self, CacheError> {
        let blobs = root.join(ALGORITHM_DIR);
        fs::create_dir_all(&blobs).map_err(io_error(&blobs, "creating"))?;
        let content = root.join(CONTENT_DIR);
        fs::create_dir_all(&content).map_err(io_error(&content, "creating"))?;
        Ok(PackCache {
            root: root.to_path_buf(),
            blobs,
            content,
        })
    }

    /// `$STRATA_CACHE_DIR/packs`, else `$HOME/.cache/strata/packs`, else (no home, as in
    /// some containers) `<temp dir>/strata/packs`.
    pub fn default_root() -> PathBuf {
        let base = std::env::var_os("STRATA_CACHE_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|home| PathBuf::from(home).join(".cache").join("strata"))
            })
            .unwrap_or_else(|| std::env::temp_dir().join("strata"));
        base.join("packs")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` is (or would be) stored.
    pub fn path_of(&self, digest: &str) -> Result<PathBuf, CacheError> {
        let hex = check_digest(digest)?;
        Ok(self.blobs.join(hex))
    }

    /// The blob's bytes, verified against `digest`; `None` when absent or corrupt (a
    /// corrupt blob is deleted).
    pub fn get(&self, digest: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let path = self.path_of(digest)?;
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CacheError::Io {
                    path,
                    action: "opening",
                    source,
                });
            }
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io_error(&path, "reading"))?;
        let found = sha256_digest(&bytes);
        if found != digest {
            warn!(
                path = %path.display(),
                expected = digest,
                found,
                "cached pack blob is corrupt; removing it"
            );
            match fs::remove_file(&path) {
                Ok(()) => {}
                // Another process removed (or replaced) it first.
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(CacheError::Io {
                        path,
                        action: "removing corrupt blob",
                        source,
                    });
                }
            }
            return Ok(None);
        }
        // Best effort: the mtime only orders garbage collection, and another user's blob
        // may not be ours to touch.
        if let Err(error) = file.set_modified(SystemTime::now()) {
            debug!(path = %path.display(), %error, "cannot record the use of a cached blob");
        }
        Ok(Some(bytes))
    }

    /// Stores `bytes` as `digest` after checking that they hash to it (nothing is written
    /// otherwise). Returns the blob's path.
    pub fn put(&self, digest: &str, bytes: &[u8]) -> Result<PathBuf, CacheError> {
        let path = self.path_of(digest)?;
        let found = sha256_digest(bytes);
        if found != digest {
            return Err(CacheError::Mismatch {
                digest: digest.to_owned(),
                found,
                size: bytes.len() as u64,
            });
        }
        // Readable by the other Strata processes sharing the cache; never rewritten.
        write_in_place(&self.blobs, &path, bytes, 0o444)?;
        debug!(path = %path.display(), size = bytes.len(), "cached pack blob");
        Ok(path)
    }

    /// Whether a blob is stored under `digest` (not verified; [`PackCache::get`] does).
    pub fn contains(&self, digest: &str) -> bool {
        self.path_of(digest).is_ok_and(|path| path.is_file())
    }

    /// Records that the blob `layer_digest` unpacked to `content_digest` (computed from its
    /// bytes by the caller). Replaces what the index held for that content digest.
    pub fn record_content(
        &self,
        content_digest: &str,
        layer_digest: &str,
    ) -> Result<(), CacheError> {
        let path = self.content.join(check_digest(content_digest)?);
        check_digest(layer_digest)?;
        // Rewritten when the same content is cached from another layer.
        write_in_place(&self.content, &path, layer_digest.as_bytes(), 0o644)?;
        debug!(
            content_digest,
            layer_digest, "indexed a cached pack blob by its content"
        );
        Ok(())
    }

    /// The layer digest the index holds for `content_digest`, if any: a hint, whose blob
    /// the caller reads with [`PackCache::get`] and whose content it verifies. An entry that
    /// is not a digest is removed and reported as absent.
    pub fn layer_of_content(&self, content_digest: &str) -> Result<Option<String>, CacheError> {
        let path = self.content.join(check_digest(content_digest)?);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CacheError::Io {
                    path,
                    action: "reading",
                    source,
                });
            }
        };
        let layer = String::from_utf8(text).unwrap_or_default();
        if check_digest(&layer).is_err() {
            warn!(path = %path.display(), "pack cache index entry is not a digest; removing it");
            self.forget_content(content_digest)?;
            return Ok(None);
        }
        Ok(Some(layer))
    }

    /// Drops the index entry of `content_digest` (the blob, if any, stays).
    pub fn forget_content(&self, content_digest: &str) -> Result<(), CacheError> {
        let path = self.content.join(check_digest(content_digest)?);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CacheError::Io {
                path,
                action: "removing",
                source,
            }),
        }
    }

    /// Every index entry: content digest and the layer digest it names.
    fn index_entries(&self) -> Result<Vec<(String, String)>, CacheError> {
        let mut out = Vec::new();
        for (name, _) in list(&self.content)? {
            let content_digest = format!("{ALGORITHM_DIR}:{name}");
            if name.starts_with(TEMP_PREFIX) || check_digest(&content_digest).is_err() {
                continue;
            }
            if let Some(layer) = self.layer_of_content(&content_digest)? {
                out.push((content_digest, layer));
            }
        }
        Ok(out)
    }

    /// Indexes every blob no index entry names (blobs cached before the index existed, or by
    /// `fetch`, which does not unpack): each is read (verified), decompressed and hashed, at
    /// most `max_bytes` of it. A blob that is not a gzip stream is left as it is. Returns how
    /// many were indexed.
    pub fn index_unindexed(&self, max_bytes: u64) -> Result<usize, CacheError> {
        let named: BTreeSet<String> = self
            .index_entries()?
            .into_iter()
            .map(|(_, layer)| layer)
            .collect();
        let mut indexed = 0;
        for entry in self.entries()? {
            if named.contains(&entry.digest) {
                continue;
            }
            let Some(bytes) = self.get(&entry.digest)? else {
                continue;
            };
            match content_digest_of(bytes.as_slice(), max_bytes) {
                Ok(content_digest) => {
                    self.record_content(&content_digest, &entry.digest)?;
                    indexed += 1;
                }
                Err(error) => {
                    debug!(digest = %entry.digest, %error, "cached blob is not a pack archive; not indexed");
                }
            }
        }
        Ok(indexed)
    }

    /// Every stored blob, sorted by digest.
    pub fn entries(&self) -> Result<Vec<CacheEntry>, CacheError> {
        let mut entries = Vec::new();
        for (name, path) in self.list()? {
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let digest = format!("{ALGORITHM_DIR}:{name}");
            if check_digest(&digest).is_err() {
                // Not ours; left alone.
                continue;
            }
            let meta = match fs::metadata(&path) {
                Ok(meta) => meta,
                // Removed by a concurrent garbage collection.
                Err(error) if error.kind() == ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(CacheError::Io {
                        path,
                        action: "inspecting",
                        source,
                    });
                }
            };
            entries.push(CacheEntry {
                digest,
                size: meta.len(),
                last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
        entries.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(entries)
    }

    /// Removes every blob not in `keep`, and temporary files left by crashed writers. `keep`
    /// holds pins: layer digests (legacy pins) or content digests, whose blobs the index
    /// names; index entries of content digests not kept, or of removed blobs, go too.
    pub fn collect_garbage(&self, keep: &BTreeSet<String>) -> Result<GcReport, CacheError> {
        let mut report = GcReport::default();
        let index = self.index_entries()?;
        let mut keep_blobs = keep.clone();
        keep_blobs.extend(
            index
                .iter()
                .filter(|(content, _)| keep.contains(content))
                .map(|(_, layer)| layer.clone()),
        );
        for (content, layer) in &index {
            if !keep.contains(content) || !keep_blobs.contains(layer) {
                self.forget_content(content)?;
            }
        }
        for entry in self.entries()? {
            if keep_blobs.contains(&entry.digest) {
                continue;
            }
            let path = self.path_of(&entry.digest)?;
            match fs::remove_file(&path) {
                Ok(()) => {
                    report.freed_bytes += entry.size;
                    report.removed.push(entry.digest);
                }
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(CacheError::Io {
                        path,
                        action: "removing",
                        source,
                    });
                }
            }
        }
        let now = SystemTime::now();
        let mut listed = self.list()?;
        listed.extend(list(&self.content)?);
        for (name, path) in listed {
            if !name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .unwrap_or_default();
            // A young temporary file belongs to a write in progress in another process.
            if age < STALE_TEMP_AGE {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => {
                    debug!(path = %path.display(), "removed a stale temporary file");
                    report.freed_bytes += meta.len();
                }
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(CacheError::Io {
                        path,
                        action: "removing stale temporary file",
                        source,
                    });
                }
            }
        }
        Ok(report)
    }

    /// Temporary files currently in the cache (writes in progress or leftovers).
    pub fn temp_files(&self) -> Result<Vec<PathBuf>, CacheError> {
        let mut listed = self.list()?;
        listed.extend(list(&self.content)?);
        Ok(listed
            .into_iter()
            .filter(|(name, _)| name.starts_with(TEMP_PREFIX))
            .map(|(_, path)| path)
            .collect())
    }

    fn list(&self) -> Result<Vec<(String, PathBuf)>, CacheError> {
        list(&self.blobs)
    }
}

/// The files of `folder` whose names are text.
fn list(folder: &Path) -> Result<Vec<(String, PathBuf)>, CacheError> {
    let listing = fs::read_dir(folder).map_err(io_error(folder, "listing"))?;
    let mut out = Vec::new();
    for dirent in listing {
        let dirent = dirent.map_err(io_error(folder, "listing"))?;
        if let Some(name) = dirent.file_name().to_str() {
            out.push((name.to_owned(), dirent.path()));
        }
    }
    Ok(out)
}

/// The hex part of a `sha256:<hex>` digest. Strict, because it becomes a file name.
fn check_digest(digest: &str) -> Result<&str, CacheError> {
    let fail = |reason| CacheError::InvalidDigest {
        digest: digest.to_owned(),
        reason,
    };
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| fail("it does not start with sha256:"))?;
    if hex.len() != 64 {
        return Err(fail("the hex part is not 64 characters long"));
    }
    if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(fail("the hex part has characters other than 0-9 and a-f"));
    }
    Ok(hex)
}

/// Writes `bytes` to `path` (in `dir`) through a temporary file there, synced and given
/// `mode` before it is renamed into place: a crash leaves the old file or the whole new one,
/// never a short one under the final name.
fn write_in_place(dir: &Path, path: &Path, bytes: &[u8], mode: u32) -> Result<(), CacheError> {
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(io_error(dir, "creating a temporary file in"))?;
    let temp_path = temp.path().to_path_buf();
    temp.write_all(bytes)
        .map_err(io_error(&temp_path, "writing"))?;
    temp.as_file()
        .sync_all()
        .map_err(io_error(&temp_path, "syncing"))?;
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_error(&temp_path, "setting permissions of"))?;
    temp.persist(path).map_err(|e| CacheError::Io {
        path: path.to_path_buf(),
        action: "moving a temporary file into place as",
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn cache() -> (tempfile::TempDir, PackCache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = PackCache::open(&dir.path().join("packs")).unwrap();
        (dir, cache)
    }

    #[test]
    fn put_then_get() {
        let (_dir, cache) = cache();
        let bytes = b"pack archive bytes".to_vec();
        let digest = sha256_digest(&bytes);
        assert!(!cache.contains(&digest));
        assert_eq!(cache.get(&digest).unwrap(), None);
        let path = cache.put(&digest, &bytes).unwrap();
        assert_eq!(path, cache.path_of(&digest).unwrap());
        assert!(cache.contains(&digest));
        assert_eq!(cache.get(&digest).unwrap(), Some(bytes.clone()));
        // Putting it again is harmless.
        cache.put(&digest, &bytes).unwrap();
        let entries = cache.entries().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].digest, digest);
        assert_eq!(entries[0].size, bytes.len() as u64);
        assert!(cache.temp_files().unwrap().is_empty());
    }

    #[test]
    fn refuses_mismatched_bytes_and_writes_nothing() {
        let (_dir, cache) = cache();
        let digest = sha256_digest(b"expected");
        let error = cache.put(&digest, b"something else").unwrap_err();
        assert!(matches!(error, CacheError::Mismatch { .. }), "{error}");
        assert!(error.to_string().contains(&digest));
        assert!(!cache.contains(&digest));
        assert!(cache.entries().unwrap().is_empty());
        assert_eq!(
            fs::read_dir(cache.root().join("sha256")).unwrap().count(),
            0
        );
    }

    #[test]
    fn refuses_malformed_digests() {
        let (_dir, cache) = cache();
        for digest in [
            "sha256:../../etc/passwd",
            "md5:0123",
            "sha256:ABCDEF",
            &format!("sha256:{}", "G".repeat(64)),
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert!(matches!(
                cache.get(digest).unwrap_err(),
                CacheError::InvalidDigest { .. }
            ));
            assert!(matches!(
                cache.put(digest, b"x").unwrap_err(),
                CacheError::InvalidDigest { .. }
            ));
            assert!(!cache.contains(digest));
        }
    }

    #[test]
    fn corrupt_blob_is_detected_and_removed() {
        let (_dir, cache) = cache();
        let bytes = b"good bytes".to_vec();
        let digest = sha256_digest(&bytes);
        let path = cache.put(&digest, &bytes).unwrap();
        let mut permissions = fs::metadata(&path).unwrap().permissions();
        permissions.set_mode(0o644);
        fs::set_permissions(&path, permissions).unwrap();
        fs::write(&path, b"bad bytes!").unwrap();
        assert_eq!(cache.get(&digest).unwrap(), None);
        assert!(!path.exists());
        assert!(!cache.contains(&digest));
    }

    #[test]
    fn concurrent_puts_of_the_same_and_different_blobs() {
        let (_dir, cache) = cache();
        let blobs: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 256 * 1024]).collect();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                for blob in &blobs {
                    let cache = cache.clone();
                    scope.spawn(move || {
                        let digest = sha256_digest(blob);
                        cache.put(&digest, blob).unwrap();
                        // Whatever interleaving: a reader sees the whole blob or nothing.
                        if let Some(read) = cache.get(&digest).unwrap() {
                            assert_eq!(&read, blob);
                        }
                    });
                }
            }
        });
        for blob in &blobs {
            assert_eq!(
                cache.get(&sha256_digest(blob)).unwrap().as_ref(),
                Some(blob)
            );
        }
        assert_eq!(cache.entries().unwrap().len(), 4);
        assert!(cache.temp_files().unwrap().is_empty());
    }

    #[test]
    fn garbage_collection_keeps_listed_blobs_and_removes_stale_temp_files() {
        let (_dir, cache) = cache();
        let keep_bytes = b"keep me".to_vec();
        let drop_bytes = b"drop me, 16 byte".to_vec();
        let keep = sha256_digest(&keep_bytes);
        let dropped = sha256_digest(&drop_bytes);
        cache.put(&keep, &keep_bytes).unwrap();
        cache.put(&dropped, &drop_bytes).unwrap();
        let blobs = cache.root().join("sha256");
        let stale = blobs.join(".tmp-crashed");
        fs::write(&stale, b"half a blob").unwrap();
        File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(2 * 60 * 60))
            .unwrap();
        let fresh = blobs.join(".tmp-in-progress");
        fs::write(&fresh, b"being written").unwrap();
        let foreign = blobs.join("README");
        fs::write(&foreign, b"not a blob").unwrap();

        let report = cache
            .collect_garbage(&BTreeSet::from([keep.clone()]))
            .unwrap();
        assert_eq!(report.removed, vec![dropped.clone()]);
        assert_eq!(
            report.freed_bytes,
            drop_bytes.len() as u64 + b"half a blob".len() as u64
        );
        assert!(cache.contains(&keep));
        assert!(!cache.contains(&dropped));
        assert!(!stale.exists());
        assert!(fresh.exists(), "a write in progress must survive");
        assert!(foreign.exists(), "files that are not blobs are left alone");
        assert_eq!(cache.get(&keep).unwrap(), Some(keep_bytes));
    }

    /// A pack archive (gzip of a tar stream) and its content digest.
    fn archive(text: &str) -> (Vec<u8>, String) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("pack.json"), text).unwrap();
        let archive = crate::pack::archive::archive_pack(
            dir.path(),
            "p",
            crate::pack::archive::PACK_COMPRESSION,
        )
        .unwrap();
        (archive.bytes, archive.content_digest)
    }

    #[test]
    fn the_content_index_names_a_blob_and_is_only_a_hint() {
        let (_dir, cache) = cache();
        let (bytes, content) = archive("{}");
        let layer = sha256_digest(&bytes);
        assert_eq!(cache.layer_of_content(&content).unwrap(), None);
        cache.put(&layer, &bytes).unwrap();
        cache.record_content(&content, &layer).unwrap();
        assert_eq!(
            cache.layer_of_content(&content).unwrap(),
            Some(layer.clone())
        );
        // Blobs stay what they were: named by layer digest, only blobs in sha256/.
        assert_eq!(cache.entries().unwrap().len(), 1);
        assert_eq!(cache.entries().unwrap()[0].digest, layer);
        assert!(cache.temp_files().unwrap().is_empty());
        // An entry that is not a digest is dropped, never followed.
        let entry = cache
            .root()
            .join("content")
            .join(content.trim_start_matches("sha256:"));
        fs::write(&entry, "../../etc/passwd").unwrap();
        assert_eq!(cache.layer_of_content(&content).unwrap(), None);
        assert!(!entry.exists());
        // Forgetting an entry leaves the blob.
        cache.record_content(&content, &layer).unwrap();
        cache.forget_content(&content).unwrap();
        assert_eq!(cache.layer_of_content(&content).unwrap(), None);
        assert!(cache.contains(&layer));
        // Malformed digests are refused as for blobs.
        assert!(matches!(
            cache.record_content("sha256:../x", &layer).unwrap_err(),
            CacheError::InvalidDigest { .. }
        ));
        assert!(matches!(
            cache.record_content(&content, "md5:00").unwrap_err(),
            CacheError::InvalidDigest { .. }
        ));
    }

    #[test]
    fn blobs_cached_before_the_index_are_indexed_from_their_bytes() {
        let (_dir, cache) = cache();
        let (old_bytes, old_content) = archive("{\"old\": true}");
        let old_layer = sha256_digest(&old_bytes);
        // As the cache held it before content digests: a blob, no index entry.
        cache.put(&old_layer, &old_bytes).unwrap();
        let not_gzip = b"not a pack archive".to_vec();
        cache.put(&sha256_digest(&not_gzip), &not_gzip).unwrap();
        assert_eq!(cache.index_unindexed(1 << 20).unwrap(), 1);
        assert_eq!(
            cache.layer_of_content(&old_content).unwrap(),
            Some(old_layer)
        );
        // Once indexed, nothing more to do.
        assert_eq!(cache.index_unindexed(1 << 20).unwrap(), 0);
        // A blob that decompresses past the bound is not indexed.
        let (_bounded_dir, bounded) = super::tests::cache();
        let (bytes, content) = archive(&"x".repeat(10_000));
        bounded.put(&sha256_digest(&bytes), &bytes).unwrap();
        assert_eq!(bounded.index_unindexed(1_000).unwrap(), 0);
        assert_eq!(bounded.layer_of_content(&content).unwrap(), None);
    }

    #[test]
    fn garbage_collection_keeps_the_blobs_of_content_pins_and_legacy_pins() {
        let (_dir, cache) = cache();
        let (pinned_bytes, pinned_content) = archive("{\"pinned\": 1}");
        let (legacy_bytes, legacy_content) = archive("{\"legacy\": 1}");
        let (dropped_bytes, dropped_content) = archive("{\"dropped\": 1}");
        let mut layers = Vec::new();
        for (bytes, content) in [
            (&pinned_bytes, &pinned_content),
            (&legacy_bytes, &legacy_content),
            (&dropped_bytes, &dropped_content),
        ] {
            let layer = sha256_digest(bytes);
            cache.put(&layer, bytes).unwrap();
            cache.record_content(content, &layer).unwrap();
            layers.push(layer);
        }
        // A revision pinning one pack by content digest and one by layer digest (legacy).
        let keep = BTreeSet::from([pinned_content.clone(), layers[1].clone()]);
        let report = cache.collect_garbage(&keep).unwrap();
        assert_eq!(report.removed, vec![layers[2].clone()]);
        assert!(cache.contains(&layers[0]) && cache.contains(&layers[1]));
        assert!(!cache.contains(&layers[2]));
        assert_eq!(
            cache.layer_of_content(&pinned_content).unwrap(),
            Some(layers[0].clone())
        );
        // Index entries of content not kept go (the legacy pack's too: it is kept by its
        // layer digest, and is indexed again when next unpacked).
        assert_eq!(cache.layer_of_content(&dropped_content).unwrap(), None);
        assert_eq!(cache.layer_of_content(&legacy_content).unwrap(), None);
    }

    #[test]
    fn reads_update_last_used() {
        let (_dir, cache) = cache();
        let bytes = b"used".to_vec();
        let digest = sha256_digest(&bytes);
        let path = cache.put(&digest, &bytes).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::open(&path).unwrap().set_modified(old).unwrap();
        assert_eq!(cache.entries().unwrap()[0].last_used, old);
        cache.get(&digest).unwrap().unwrap();
        assert!(cache.entries().unwrap()[0].last_used > old);
    }
}
