//! Pack archives: deterministic `.tar.gz` creation and safe unpacking.
//!
//! # Format
//!
//! A published pack is a gzip-compressed tar stream holding ONE top-level folder that
//! contains the pack (`istio/pack.json`, `istio/values.yaml`, `istio/charts/…`), i.e. what
//! `tar -czf istio-1.6.2.tar.gz istio/` produces. [`write_tar`] makes the tar stream a pure
//! function of the pack's content, and the sha256 of that **uncompressed** stream is the
//! pack's identity, its *content digest* (as OCI's `diff_id` is a layer's): what a revision
//! pins. The gzip around it is only how the pack travels: another level, another backend
//! or another compressor gives other archive bytes (another layer digest) and the same
//! content digest. The tar stream is:
//!
//! - the `root/` folder entry comes first, then every entry sorted by its relative path
//!   compared byte-wise (so a directory always precedes its contents and the order never
//!   depends on the filesystem);
//! - metadata is fixed: mtime 0, uid/gid 0, empty user/group names, mode 0o755 for
//!   directories and for regular files with any execute bit, 0o644 for other files, 0o777
//!   for symlinks;
//! - GNU headers, so paths longer than 100 bytes use `././@LongLink` entries;
//!
//! [`write_archive`] gzips it as one gzip member: header mtime 0, no file name, OS byte 255
//! ("unknown"); files that are compressed already (chart `.tgz`, images) stored, the rest at
//! [`PACK_COMPRESSION`] (see [`super::gzip_segments`]). Those bytes are identical across
//! runs and machines for a given flate2 backend version (pinned by `Cargo.lock`), but
//! nothing depends on that any more.
//! Reading an archive ([`unpack_archive`], [`content_digest_of`]) hashes the decompressed
//! stream as it goes, so whoever reads a pack computes its content digest itself, whatever
//! tool compressed it.
//!
//! Only directories, regular files and relative symlinks that stay inside the pack can be
//! archived; anything else in the pack folder is an error.
//!
//! # Safety rules when unpacking
//!
//! [`unpack_archive`] treats archives as hostile:
//!
//! - the destination must be missing or an empty directory, and it only ever appears fully
//!   unpacked: everything is written into a `.strata-unpack-*` staging directory next to it
//!   and renamed into place at the end; any error removes the staging directory;
//! - absolute paths, `..` components, hard links, devices, FIFOs, sparse files and other
//!   special entries, duplicate paths and entries beneath an archived symlink are refused;
//! - symlinks must be relative and resolve (lexically, from their location inside the pack)
//!   to a path inside the pack; `..` may only lead a target, because `x/..` could leave the
//!   pack through another symlink `x`. Symlinks are created only after every file has been
//!   written, so nothing is ever written through one;
//! - [`ArchiveLimits`] caps the entry count, each file's size and the total size, counted on
//!   the bytes actually decompressed; tar metadata (headers, long names, padding) gets a
//!   fixed allowance per entry, so a gzip bomb hidden in metadata is cut off as well;
//! - a truncated or corrupt stream, or non-zero data after the end-of-archive marker, is an
//!   error rather than a partial unpack.
//!
//! If every entry lives under one top-level folder, that folder is stripped and its name
//! reported; archives with the pack files at the top level unpack as they are.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufReader, ErrorKind, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use flate2::Compression;
use flate2::bufread::MultiGzDecoder;

use super::gzip_segments::{GzipSegments, looks_compressed};
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

/// The gzip level of a pack's entries that are not compressed already; chart archives,
/// images and other compressed files are stored as they are ([`super::gzip_segments`]).
/// Level 6 (gzip's default), chosen by measurement (docs/benchmarks.md, "Registry push and
/// pull"): on 4.4 MB of YAML, Markdown and Rust, zlib-rs makes 0.80 MB in 51 ms at level
/// 6, 0.86 MB in 29 ms at level 3, 1.21 MB in 17 ms at level 1, 0.79 MB in 93 ms at level
/// 9. A pack is pushed once and pulled by every site, often over slow links: bytes weigh
/// more than those milliseconds. Changing it changes the archive's bytes and layer digest,
/// never the pack's content digest.
pub const PACK_COMPRESSION: Compression = Compression::new(6);

const STAGING_PREFIX: &str = ".strata-unpack-";
/// Tar metadata allowed per entry: a 512-byte header, padding, and GNU long name/link or
/// PAX records for paths up to Linux's PATH_MAX with room to spare.
const METADATA_PER_ENTRY: u64 = 16 * 1024;
/// End-of-archive blocks plus record padding (10 KiB for GNU tar and bsdtar), generously.
const TRAILER_ALLOWANCE: u64 = 1024 * 1024;

/// Resource limits for [`unpack_archive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Maximum total bytes of file content. Default: 1 GiB.
    pub max_total_bytes: u64,
    /// Maximum number of entries (files, directories, symlinks). Default: 100 000.
    pub max_entries: u64,
    /// Maximum size of a single file. Default: 512 MiB.
    pub max_file_bytes: u64,
}

impl Default for ArchiveLimits {
    /// 1 GiB in total, 100 000 entries, 512 MiB per file: well above real packs (charts and
    /// manifests are kilobytes to megabytes) while bounding what a hostile archive can cost.
    fn default() -> Self {
        Self {
            max_total_bytes: 1 << 30,
            max_entries: 100_000,
            max_file_bytes: 512 << 20,
        }
    }
}

/// What [`unpack_archive`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The stripped top-level folder, or `None` when the pack was at the archive's top level.
    pub root_name: Option<String>,
    /// Regular files written.
    pub files: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// sha256 of the whole decompressed stream (trailer included): the content digest of
    /// what was unpacked, computed while unpacking.
    pub content_digest: String,
}

/// Why a pack could not be archived or unpacked. Paths are on disk for the pack folder and
/// destination, and as written in the archive for entries.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(
        "archive root name {name:?} must be a single normal path component (no `/`, not `.` or `..`, not empty)"
    )]
    InvalidRootName { name: String },
    #[error("{action} {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("symlink {} -> {}: {reason}; pack symlinks must be relative and stay inside the pack", .path.display(), .target.display())]
    UnsafeSymlink {
        path: PathBuf,
        target: PathBuf,
        reason: &'static str,
    },
    #[error("{}: {kind} is not allowed in a pack (only directories, regular files and relative symlinks)", .path.display())]
    UnsupportedType { path: PathBuf, kind: String },
    #[error("hard link {} -> {}: hard links are not supported in packs", .path.display(), .target.display())]
    HardLink { path: PathBuf, target: PathBuf },
    #[error("archive entry {} has an absolute path", .path.display())]
    AbsolutePath { path: PathBuf },
    #[error("archive entry {} contains a `..` component", .path.display())]
    ParentComponent { path: PathBuf },
    #[error("archive entry {} ({found}) repeats the path of an earlier {existing}", .path.display())]
    DuplicateEntry {
        path: PathBuf,
        found: &'static str,
        existing: &'static str,
    },
    #[error("archive entry {} would be written beneath the archived symlink {}", .path.display(), .symlink.display())]
    BeneathSymlink { path: PathBuf, symlink: PathBuf },
    #[error("archive entry {}: {reason}", .path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("archive has more than {limit} entries (limit reached at {})", .path.display())]
    TooManyEntries { path: PathBuf, limit: u64 },
    #[error("archive entry {} is at least {size} bytes, over the {limit}-byte limit per file", .path.display())]
    FileTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("archive content reaches {total} bytes at entry {}, over the {limit}-byte total limit", .path.display())]
    TotalTooLarge {
        path: PathBuf,
        total: u64,
        limit: u64,
    },
    #[error("archive decompresses to more than {allowed} bytes of tar data {} (file content plus a per-entry metadata allowance)", position(.near))]
    StreamTooLarge { near: Option<PathBuf>, allowed: u64 },
    #[error("archive entry {} is truncated: header declares {expected} bytes, found {found}", .path.display())]
    Truncated {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("corrupt or truncated archive {}: {source}", position(.near))]
    Corrupt {
        near: Option<PathBuf>,
        #[source]
        source: io::Error,
    },
    #[error("cannot unpack into {}: found {found}, expected a missing path or an empty directory", .path.display())]
    DestinationExists { path: PathBuf, found: &'static str },
}

fn position(near: &Option<PathBuf>) -> String {
    match near {
        Some(path) => format!("near entry {}", path.display()),
        None => "at its start".to_owned(),
    }
}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = path.to_path_buf();
    move |source| ArchiveError::Io {
        path,
        action,
        source,
    }
}

/// `"sha256:<64 lowercase hex>"` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    digest_text(Sha256::digest(bytes).as_slice())
}

fn digest_text(digest: &[u8]) -> String {
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for &byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

/// Hashes what passes through it on the way to `inner`: the tar stream on its way into the
/// compressor, the compressed bytes on their way into memory. One pass over the data
/// instead of one more per digest.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> (W, String) {
        (self.inner, digest_text(self.hasher.finalize().as_slice()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Returns why a symlink at `link` (relative to the pack root) pointing to `target` could
/// leave the pack, or `None` when it stays inside.
fn symlink_escape(link: &Path, target: &Path) -> Option<&'static str> {
    if target.as_os_str().is_empty() {
        return Some("the target is empty");
    }
    let mut depth = link
        .parent()
        .map_or(0, |parent| parent.components().count());
    let mut named = false;
    for component in target.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => return Some("the target is absolute"),
            Component::CurDir => {}
            Component::ParentDir if named => {
                return Some("`..` after a name could leave the pack through another symlink");
            }
            Component::ParentDir if depth == 0 => return Some("the target leaves the pack"),
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => {
                named = true;
                depth += 1;
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

enum PackItem {
    Dir,
    /// With its size when listed, to size the archive's buffer.
    File(u64),
    Symlink(PathBuf),
}

/// A pack's archive as it travels, and the digests that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackArchive {
    /// The gzipped tar stream.
    pub bytes: Vec<u8>,
    /// sha256 of the uncompressed tar stream: the pack's identity ([`write_tar`]).
    pub content_digest: String,
    /// sha256 of `bytes`: the registry layer's digest, which depends on the compressor.
    pub layer_digest: String,
}

/// Where a tar stream goes; told before each file whether its content is compressed
/// already, so that a compressor can store it rather than deflate it again.
trait TarSink: Write {
    fn before_file(&mut self, _compressed: bool) -> io::Result<()> {
        Ok(())
    }
}

/// The tar stream as it is.
struct Plain<W>(W);

impl<W: Write> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> TarSink for Plain<W> {}

/// The tar stream hashed (content digest), then gzipped: compressed files stored, the rest
/// at `level`.
struct GzipSink<W: Write> {
    inner: HashingWriter<GzipSegments<W>>,
    level: Compression,
}

impl<W: Write> Write for GzipSink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> TarSink for GzipSink<W> {
    fn before_file(&mut self, compressed: bool) -> io::Result<()> {
        let level = if compressed {
            Compression::none()
        } else {
            self.level
        };
        self.inner.inner.set_level(level)
    }
}

/// Writes `pack_dir` as the canonical tar stream (see the module docs) whose entries all
/// live under `root_name/`, and returns `out` once the stream is finished.
pub fn write_tar<W: Write>(pack_dir: &Path, root_name: &str, out: W) -> Result<W, ArchiveError> {
    validate_root_name(root_name)?;
    let items = collect_pack(pack_dir)?;
    Ok(tar_items(pack_dir, root_name, &items, Plain(out))?.0)
}

fn tar_items<W: TarSink>(
    pack_dir: &Path,
    root_name: &str,
    items: &[(PathBuf, PackItem)],
    out: W,
) -> Result<W, ArchiveError> {
    let mut builder = tar::Builder::new(out);
    append_entry(
        &mut builder,
        pack_dir,
        root_name,
        Path::new(""),
        &PackItem::Dir,
    )?;
    for (rel, item) in items {
        append_entry(&mut builder, pack_dir, root_name, rel, item)?;
    }
    builder
        .into_inner()
        .map_err(io_error(pack_dir, "finishing the tar stream of"))
}

/// The content digest of `pack_dir` archived under `root_name/`: the sha256 of its
/// canonical tar stream, computed without compressing anything.
pub fn content_digest(pack_dir: &Path, root_name: &str) -> Result<String, ArchiveError> {
    let hashing = write_tar(pack_dir, root_name, HashingWriter::new(io::sink()))?;
    Ok(hashing.finish().1)
}

/// Whether `file`'s content starts like a compressed format; the file is read from its
/// start again afterwards.
fn starts_compressed(file: &mut File) -> io::Result<bool> {
    let mut head = [0u8; 12];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    file.seek(io::SeekFrom::Start(0))?;
    Ok(looks_compressed(&head[..filled]))
}

/// Writes `pack_dir` as a deterministic gzipped tarball whose entries all live under
/// `root_name/` (level [`PACK_COMPRESSION`]), and returns `out` once the gzip stream is
/// finished.
pub fn write_archive<W: Write>(
    pack_dir: &Path,
    root_name: &str,
    out: W,
) -> Result<W, ArchiveError> {
    Ok(archive_pack_to(pack_dir, root_name, PACK_COMPRESSION, out)?.out)
}

fn gzip_items<W: Write>(
    pack_dir: &Path,
    root_name: &str,
    items: &[(PathBuf, PackItem)],
    out: W,
    level: Compression,
) -> Result<(W, String), ArchiveError> {
    let gzip =
        GzipSegments::new(out, level).map_err(io_error(pack_dir, "starting the gzip stream of"))?;
    let sink = GzipSink {
        inner: HashingWriter::new(gzip),
        level,
    };
    let sink = tar_items(pack_dir, root_name, items, sink)?;
    let (gzip, content_digest) = sink.inner.finish();
    let out = gzip
        .finish()
        .map_err(io_error(pack_dir, "finishing the gzip stream of"))?;
    Ok((out, content_digest))
}

/// [`write_archive`] into memory.
pub fn archive_to_vec(pack_dir: &Path, root_name: &str) -> Result<Vec<u8>, ArchiveError> {
    write_archive(pack_dir, root_name, Vec::new())
}

/// The archive of `pack_dir` at `level` in memory, with both its digests, in one pass over
/// the pack: the tar stream hashed on its way into the compressor, the compressed bytes on
/// their way into a buffer sized for them up front.
pub fn archive_pack(
    pack_dir: &Path,
    root_name: &str,
    level: Compression,
) -> Result<PackArchive, ArchiveError> {
    validate_root_name(root_name)?;
    let items = collect_pack(pack_dir)?;
    // Content plus a header per entry: about what a pack of already compressed charts
    // compresses to, so the buffer rarely grows (each growth copies what it holds).
    let hint = items.iter().fold(0u64, |sum, (_, item)| {
        let size = match item {
            PackItem::File(size) => size.div_ceil(512) * 512,
            PackItem::Dir | PackItem::Symlink(_) => 0,
        };
        sum.saturating_add(size).saturating_add(1024)
    });
    let buffer = Vec::with_capacity(usize::try_from(hint).unwrap_or_default().min(1 << 30));
    let written = gzip_items_hashed(pack_dir, root_name, &items, buffer, level)?;
    Ok(PackArchive {
        bytes: written.out,
        content_digest: written.content_digest,
        layer_digest: written.layer_digest,
    })
}

/// A pack's archive written to a writer, and the digests that name it.
#[derive(Debug)]
pub struct ArchiveWritten<W> {
    pub out: W,
    /// sha256 of the uncompressed tar stream: the pack's identity.
    pub content_digest: String,
    /// sha256 of what was written to `out`: the registry layer's digest.
    pub layer_digest: String,
}

/// [`archive_pack`] into `out` as the archive is made, for a writer that hands the bytes
/// on while the rest is still being compressed (an upload that runs alongside).
pub fn archive_pack_to<W: Write>(
    pack_dir: &Path,
    root_name: &str,
    level: Compression,
    out: W,
) -> Result<ArchiveWritten<W>, ArchiveError> {
    validate_root_name(root_name)?;
    let items = collect_pack(pack_dir)?;
    gzip_items_hashed(pack_dir, root_name, &items, out, level)
}

fn gzip_items_hashed<W: Write>(
    pack_dir: &Path,
    root_name: &str,
    items: &[(PathBuf, PackItem)],
    out: W,
    level: Compression,
) -> Result<ArchiveWritten<W>, ArchiveError> {
    let (compressed, content_digest) =
        gzip_items(pack_dir, root_name, items, HashingWriter::new(out), level)?;
    let (out, layer_digest) = compressed.finish();
    Ok(ArchiveWritten {
        out,
        content_digest,
        layer_digest,
    })
}

/// Files held in memory (paths relative to the root, `/`-separated) as a gzipped tarball
/// under `root_name/`, made the way [`write_archive`] makes a pack's: each folder's entry
/// before its contents, byte-wise path order, fixed metadata (files 0o644). For content
/// that is not a folder on disk, such as a cluster's backup; [`unpack_archive`] reads it.
pub fn archive_of_files(
    root_name: &str,
    files: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, ArchiveError> {
    validate_root_name(root_name)?;
    let mut entries: std::collections::BTreeMap<PathBuf, Option<&[u8]>> =
        std::collections::BTreeMap::new();
    entries.insert(PathBuf::new(), None);
    for (path, bytes) in files {
        let rel = normalize(Path::new(path))?;
        for folder in rel.ancestors().skip(1) {
            entries.insert(folder.to_path_buf(), None);
        }
        entries.insert(rel, Some(bytes.as_slice()));
    }
    let root = Path::new(root_name);
    let gzip = GzipSegments::new(Vec::new(), PACK_COMPRESSION)
        .map_err(io_error(root, "starting the gzip stream of"))?;
    let mut builder = tar::Builder::new(gzip);
    for (rel, content) in &entries {
        let name = root.join(rel);
        let appended = match content {
            None => {
                // With the trailing slash, as write_archive names folders.
                let mut folder = name.clone().into_os_string();
                folder.push("/");
                let mut header = fixed_header(EntryType::Directory, 0o755, 0);
                builder.append_data(&mut header, PathBuf::from(folder), io::empty())
            }
            Some(bytes) => {
                // As write_archive does, so that the bytes are the same.
                let level = if looks_compressed(bytes) {
                    Compression::none()
                } else {
                    PACK_COMPRESSION
                };
                let mut header = fixed_header(EntryType::Regular, 0o644, bytes.len() as u64);
                builder
                    .get_mut()
                    .set_level(level)
                    .and_then(|()| builder.append_data(&mut header, &name, *bytes))
            }
        };
        appended.map_err(io_error(&name, "archiving"))?;
    }
    let gzip = builder
        .into_inner()
        .map_err(io_error(root, "finishing the tar stream of"))?;
    gzip.finish()
        .map_err(io_error(root, "finishing the gzip stream of"))
}

fn validate_root_name(name: &str) -> Result<(), ArchiveError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(ArchiveError::InvalidRootName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Every entry below `pack_dir`, sorted byte-wise by relative path.
fn collect_pack(pack_dir: &Path) -> Result<Vec<(PathBuf, PackItem)>, ArchiveError> {
    let meta = fs::metadata(pack_dir).map_err(io_error(pack_dir, "reading pack folder"))?;
    if !meta.is_dir() {
        return Err(ArchiveError::Io {
            path: pack_dir.to_path_buf(),
            action: "reading pack folder",
            source: io::Error::new(ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let mut items = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel_dir) = pending.pop() {
        let disk_dir = pack_dir.join(&rel_dir);
        let listing = fs::read_dir(&disk_dir).map_err(io_error(&disk_dir, "listing"))?;
        for dirent in listing {
            let dirent = dirent.map_err(io_error(&disk_dir, "listing"))?;
            let disk = dirent.path();
            let rel = rel_dir.join(dirent.file_name());
            // `DirEntry::file_type` does not follow symlinks, so a symlinked directory is
            // archived as a link instead of being walked into.
            let file_type = dirent.file_type().map_err(io_error(&disk, "inspecting"))?;
            let item = if file_type.is_dir() {
                pending.push(rel.clone());
                PackItem::Dir
            } else if file_type.is_file() {
                // A hint only: the size archived is the open file's (append_entry).
                PackItem::File(dirent.metadata().map_or(0, |meta| meta.len()))
            } else if file_type.is_symlink() {
                let target = fs::read_link(&disk).map_err(io_error(&disk, "reading symlink"))?;
                if let Some(reason) = symlink_escape(&rel, &target) {
                    return Err(ArchiveError::UnsafeSymlink {
                        path: disk,
                        target,
                        reason,
                    });
                }
                PackItem::Symlink(target)
            } else {
                return Err(ArchiveError::UnsupportedType {
                    path: disk,
                    kind: describe_file_type(file_type).to_owned(),
                });
            };
            items.push((rel, item));
        }
    }
    items.sort_by(|a, b| a.0.as_os_str().as_bytes().cmp(b.0.as_os_str().as_bytes()));
    Ok(items)
}

fn describe_file_type(file_type: fs::FileType) -> &'static str {
    if file_type.is_socket() {
        "a socket"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

fn fixed_header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
}

fn append_entry<W: TarSink>(
    builder: &mut tar::Builder<W>,
    pack_dir: &Path,
    root_name: &str,
    rel: &Path,
    item: &PackItem,
) -> Result<(), ArchiveError> {
    let disk = pack_dir.join(rel);
    let mut name = OsString::from(root_name);
    if !rel.as_os_str().is_empty() {
        name.push("/");
        name.push(rel.as_os_str());
    }
    match item {
        PackItem::Dir => {
            // The trailing slash marks a directory for tools that ignore the type flag.
            name.push("/");
            let mut header = fixed_header(EntryType::Directory, 0o755, 0);
            builder
                .append_data(&mut header, PathBuf::from(name), io::empty())
                .map_err(io_error(&disk, "archiving directory"))
        }
        PackItem::Symlink(target) => {
            let mut header = fixed_header(EntryType::Symlink, 0o777, 0);
            builder
                .append_link(&mut header, PathBuf::from(name), target)
                .map_err(io_error(&disk, "archiving symlink"))
        }
        PackItem::File(_) => {
            let mut file = File::open(&disk).map_err(io_error(&disk, "opening"))?;
            // Metadata of the open handle, so size and mode describe the bytes we read.
            let meta = file.metadata().map_err(io_error(&disk, "inspecting"))?;
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            let mut header = fixed_header(EntryType::Regular, mode, meta.len());
            let compressed = starts_compressed(&mut file).map_err(io_error(&disk, "reading"))?;
            builder
                .get_mut()
                .before_file(compressed)
                .map_err(io_error(&disk, "archiving"))?;
            let reader = ExactReader {
                file: &mut file,
                remaining: meta.len(),
            };
            builder
                .append_data(&mut header, PathBuf::from(name), reader)
                .map_err(io_error(&disk, "archiving"))?;
            // A file that grew since its size went into the header would be silently cut.
            let mut probe = [0u8; 1];
            if file.read(&mut probe).map_err(io_error(&disk, "reading"))? != 0 {
                return Err(ArchiveError::Io {
                    path: disk,
                    action: "archiving",
                    source: io::Error::other("file grew while it was being archived"),
                });
            }
            Ok(())
        }
    }
}

/// Yields exactly `remaining` bytes: tar's builder trusts the header size, so a file that
/// shrank mid-read must fail instead of producing a corrupt archive.
struct ExactReader<'a> {
    file: &'a mut File,
    remaining: u64,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let cap = usize::try_from(self.remaining).map_or(buf.len(), |left| left.min(buf.len()));
        let read = self.file.read(&mut buf[..cap])?;
        if read == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "file shrank while it was being archived",
            ));
        }
        self.remaining -= read as u64;
        Ok(read)
    }
}

// ---------------------------------------------------------------------------------------
// Unpacking
// ---------------------------------------------------------------------------------------

/// Safely unpacks a gzipped pack tarball into `dest` (see the module docs for the rules).
/// `dest` must not exist or be an empty directory; its parent must exist.
pub fn unpack_archive<R: Read>(
    archive: R,
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<Unpacked, ArchiveError> {
    check_destination(dest)?;
    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // Dropping `staging` on any early return removes everything written so far.
    let staging = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempdir_in(parent)
        .map_err(io_error(parent, "creating a staging directory in"))?;
    let tree = staging.path().join("tree");
    fs::create_dir(&tree).map_err(io_error(&tree, "creating"))?;
    set_mode(&tree, 0o755)?;
    let (unpacked, root) = extract(archive, &tree, limits)?;
    let source = match root {
        Some(root) => tree.join(root),
        None => tree,
    };
    // rename(2) atomically replaces an empty directory and refuses a non-empty one, so a
    // destination created concurrently is never merged into.
    fs::rename(&source, dest).map_err(io_error(dest, "moving the unpacked pack to"))?;
    Ok(unpacked)
}

fn check_destination(dest: &Path) -> Result<(), ArchiveError> {
    let meta = match fs::symlink_metadata(dest) {
        Ok(meta) => meta,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_error(dest, "inspecting")(err)),
    };
    let found = if meta.is_dir() {
        let mut listing = fs::read_dir(dest).map_err(io_error(dest, "listing"))?;
        if listing.next().is_none() {
            return Ok(());
        }
        "a non-empty directory"
    } else if meta.file_type().is_symlink() {
        "a symlink"
    } else {
        "a file"
    };
    Err(ArchiveError::DestinationExists {
        path: dest.to_path_buf(),
        found,
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ArchiveError> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(io_error(path, "setting permissions of"))
}

/// Decompressed bytes read so far versus bytes the entries seen so far justify.
#[derive(Default)]
struct Budget {
    read: Cell<u64>,
    allowed: Cell<u64>,
}

impl Budget {
    fn grant(&self, bytes: u64) {
        self.allowed.set(self.allowed.get().saturating_add(bytes));
    }

    fn exceeded(&self) -> bool {
        self.read.get() > self.allowed.get()
    }
}

/// Counts every decompressed byte, including the ones tar reads internally (long names,
/// PAX records, skipped data), which never pass through our own copy loop; and hashes them,
/// in order, for the content digest: decompressing, hashing and unpacking are one pass.
struct BudgetReader<R> {
    inner: R,
    budget: Rc<Budget>,
    hasher: Sha256,
}

impl<R: Read> Read for BudgetReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        let total = self.budget.read.get().saturating_add(read as u64);
        self.budget.read.set(total);
        if self.budget.exceeded() {
            return Err(io::Error::other("decompressed data exceeds its allowance"));
        }
        self.hasher.update(&buf[..read]);
        Ok(read)
    }
}

fn stream_error(source: io::Error, near: Option<&Path>, budget: &Budget) -> ArchiveError {
    let near = near.map(Path::to_path_buf);
    if budget.exceeded() {
        ArchiveError::StreamTooLarge {
            near,
            allowed: budget.allowed.get(),
        }
    } else {
        ArchiveError::Corrupt { near, source }
    }
}

fn extract<R: Read>(
    archive: R,
    tree: &Path,
    limits: &ArchiveLimits,
) -> Result<(Unpacked, Option<PathBuf>), ArchiveError> {
    let budget = Rc::new(Budget::default());
    budget.grant(TRAILER_ALLOWANCE + METADATA_PER_ENTRY);
    let reader = BudgetReader {
        // Multi-member, so that a concatenated second member is not silently ignored.
        // 64 KiB reads of the compressed input: fewer, larger calls into the decompressor.
        inner: MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, archive)),
        budget: Rc::clone(&budget),
        hasher: Sha256::new(),
    };
    let mut archive = tar::Archive::new(reader);
    let mut staging = Staging::new(tree);
    let mut last: Option<PathBuf> = None;
    let mut count = 0u64;
    let entries = archive
        .entries()
        .map_err(|err| stream_error(err, None, &budget))?;
    for entry in entries {
        let mut entry = entry.map_err(|err| stream_error(err, last.as_deref(), &budget))?;
        if entry.header().entry_type().is_pax_global_extensions() {
            continue;
        }
        let raw = entry
            .path()
            .map_err(|err| stream_error(err, last.as_deref(), &budget))?
            .into_owned();
        count += 1;
        if count > limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                path: raw,
                limit: limits.max_entries,
            });
        }
        budget.grant(METADATA_PER_ENTRY);
        staging.add(&mut entry, &raw, limits, &budget)?;
        last = Some(raw);
    }
    let mut rest = archive.into_inner();
    drain_trailer(&mut rest, last.as_deref(), &budget)?;
    let content_digest = digest_text(rest.hasher.finalize().as_slice());
    staging.finish(content_digest)
}

/// The content digest of a gzipped archive: the sha256 of its decompressed stream, read to
/// its end (gzip's own checksums included) without unpacking anything. At most `max_bytes`
/// are decompressed, so a gzip bomb costs no more than that.
pub fn content_digest_of<R: Read>(archive: R, max_bytes: u64) -> Result<String, ArchiveError> {
    let budget = Rc::new(Budget::default());
    budget.grant(max_bytes);
    let mut reader = BudgetReader {
        inner: MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, archive)),
        budget: Rc::clone(&budget),
        hasher: Sha256::new(),
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(stream_error(err, None, &budget)),
        }
    }
    Ok(digest_text(reader.hasher.finalize().as_slice()))
}

/// Reads what follows the end-of-archive marker: padding must be zeros, and reaching the
/// end makes gzip verify its checksum and length trailer.
fn drain_trailer<R: Read>(
    rest: &mut R,
    near: Option<&Path>,
    budget: &Budget,
) -> Result<(), ArchiveError> {
    let mut buf = [0u8; 8192];
    loop {
        let read = match rest.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(stream_error(err, near, budget)),
        };
        if buf[..read].iter().any(|&byte| byte != 0) {
            return Err(ArchiveError::Corrupt {
                near: near.map(Path::to_path_buf),
                source: io::Error::new(
                    ErrorKind::InvalidData,
                    "non-zero data after the end-of-archive marker",
                ),
            });
        }
    }
}

/// Entry path relative to the archive root; `.` components vanish, anything that could
/// leave it is refused.
fn normalize(raw: &Path) -> Result<PathBuf, ArchiveError> {
    let mut rel = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(name) => rel.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(ArchiveError::ParentComponent {
                    path: raw.to_path_buf(),
                });
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::AbsolutePath {
                    path: raw.to_path_buf(),
                });
            }
        }
    }
    Ok(rel)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir { explicit: bool },
    File,
    Symlink,
}

impl Node {
    fn describe(self) -> &'static str {
        match self {
            Node::Dir { .. } => "directory",
            Node::File => "regular file",
            Node::Symlink => "symlink",
        }
    }
}

struct PendingLink {
    raw: PathBuf,
    rel: PathBuf,
    target: PathBuf,
}

/// What has been unpacked into the staging tree so far. Every path is tracked so that
/// conflicts are decided here rather than by whatever the filesystem happens to do.
struct Staging<'a> {
    tree: &'a Path,
    nodes: HashMap<PathBuf, Node>,
    links: Vec<PendingLink>,
    files: u64,
    bytes: u64,
}

impl<'a> Staging<'a> {
    fn new(tree: &'a Path) -> Self {
        Self {
            tree,
            nodes: HashMap::new(),
            links: Vec::new(),
            files: 0,
            bytes: 0,
        }
    }

    fn add<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &Path,
        limits: &ArchiveLimits,
        budget: &Budget,
    ) -> Result<(), ArchiveError> {
        let kind = entry.header().entry_type();
        let node = match kind {
            // Pre-POSIX tars mark directories only by a trailing slash.
            EntryType::Regular if entry.path_bytes().ends_with(b"/") => {
                Node::Dir { explicit: true }
            }
            EntryType::Regular | EntryType::Continuous => Node::File,
            EntryType::Directory => Node::Dir { explicit: true },
            EntryType::Symlink => Node::Symlink,
            EntryType::Link => {
                let target = entry.link_name().ok().flatten().unwrap_or_default();
                return Err(ArchiveError::HardLink {
                    path: raw.to_path_buf(),
                    target: target.into_owned(),
                });
            }
            other => {
                return Err(ArchiveError::UnsupportedType {
                    path: raw.to_path_buf(),
                    kind: describe_entry_type(other),
                });
            }
        };
        let rel = normalize(raw)?;
        if node != Node::File && entry.size() != 0 {
            return Err(ArchiveError::Malformed {
                path: raw.to_path_buf(),
                reason: format!(
                    "a {} carrying {} bytes of data",
                    node.describe(),
                    entry.size()
                ),
            });
        }
        if rel.as_os_str().is_empty() {
            // `./` names the archive root itself, which the staging tree already is.
            if matches!(node, Node::Dir { .. }) {
                return Ok(());
            }
            return Err(ArchiveError::Malformed {
                path: raw.to_path_buf(),
                reason: format!("a {} with an empty path", node.describe()),
            });
        }
        self.create_parents(raw, &rel)?;
        if !self.claim(raw, &rel, node)? {
            return Ok(());
        }
        match node {
            Node::Dir { .. } => {
                let disk = self.tree.join(&rel);
                fs::create_dir(&disk).map_err(io_error(&disk, "creating"))?;
                set_mode(&disk, 0o755)
            }
            Node::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|err| ArchiveError::Malformed {
                        path: raw.to_path_buf(),
                        reason: format!("unreadable symlink target: {err}"),
                    })?
                    .ok_or_else(|| ArchiveError::Malformed {
                        path: raw.to_path_buf(),
                        reason: "a symlink without a target".to_owned(),
                    })?
                    .into_owned();
                self.links.push(PendingLink {
                    raw: raw.to_path_buf(),
                    rel,
                    target,
                });
                Ok(())
            }
            Node::File => self.write_file(entry, raw, &rel, limits, budget),
        }
    }

    /// Creates missing parent directories of `rel`, refusing to go beneath a file or an
    /// archived symlink.
    fn create_parents(&mut self, raw: &Path, rel: &Path) -> Result<(), ArchiveError> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        let mut prefix = PathBuf::new();
        for component in parent.components() {
            prefix.push(component);
            match self.nodes.get(&prefix) {
                Some(Node::Dir { .. }) => {}
                Some(Node::Symlink) => {
                    return Err(ArchiveError::BeneathSymlink {
                        path: raw.to_path_buf(),
                        symlink: prefix,
                    });
                }
                Some(Node::File) => {
                    return Err(ArchiveError::Malformed {
                        path: raw.to_path_buf(),
                        reason: format!("its parent {} is a regular file", prefix.display()),
                    });
                }
                None => {
                    let disk = self.tree.join(&prefix);
                    fs::create_dir(&disk).map_err(io_error(&disk, "creating"))?;
                    set_mode(&disk, 0o755)?;
                    self.nodes
                        .insert(prefix.clone(), Node::Dir { explicit: false });
                }
            }
        }
        Ok(())
    }

    /// Records `rel` as `node`; `Ok(false)` when an implied directory is now declared.
    fn claim(&mut self, raw: &Path, rel: &Path, node: Node) -> Result<bool, ArchiveError> {
        match self.nodes.get_mut(rel) {
            None => {
                self.nodes.insert(rel.to_path_buf(), node);
                Ok(true)
            }
            Some(existing @ Node::Dir { explicit: false }) if matches!(node, Node::Dir { .. }) => {
                *existing = node;
                Ok(false)
            }
            Some(existing) => Err(ArchiveError::DuplicateEntry {
                path: raw.to_path_buf(),
                found: node.describe(),
                existing: existing.describe(),
            }),
        }
    }

    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &Path,
        rel: &Path,
        limits: &ArchiveLimits,
        budget: &Budget,
    ) -> Result<(), ArchiveError> {
        let declared = entry.size();
        self.check_size(raw, declared, limits)?;
        budget.grant(declared);
        let mode = entry
            .header()
            .mode()
            .map_err(|err| ArchiveError::Malformed {
                path: raw.to_path_buf(),
                reason: format!("unreadable mode: {err}"),
            })?;
        let disk = self.tree.join(rel);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&disk)
            .map_err(io_error(&disk, "creating"))?;
        let mut buf = [0u8; 16 * 1024];
        let mut written = 0u64;
        loop {
            let read = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(read) => read,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(stream_error(err, Some(raw), budget)),
            };
            written += read as u64;
            // Checked on the bytes actually read, whatever the header claimed.
            self.check_size(raw, written, limits)?;
            if written > declared {
                return Err(ArchiveError::Malformed {
                    path: raw.to_path_buf(),
                    reason: format!("more than the {declared} bytes its header declares"),
                });
            }
            file.write_all(&buf[..read])
                .map_err(io_error(&disk, "writing"))?;
        }
        if written < declared {
            return Err(ArchiveError::Truncated {
                path: raw.to_path_buf(),
                expected: declared,
                found: written,
            });
        }
        let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(io_error(&disk, "setting permissions of"))?;
        self.files += 1;
        self.bytes += written;
        Ok(())
    }

    fn check_size(
        &self,
        raw: &Path,
        size: u64,
        limits: &ArchiveLimits,
    ) -> Result<(), ArchiveError> {
        if size > limits.max_file_bytes {
            return Err(ArchiveError::FileTooLarge {
                path: raw.to_path_buf(),
                size,
                limit: limits.max_file_bytes,
            });
        }
        let total = self.bytes.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(ArchiveError::TotalTooLarge {
                path: raw.to_path_buf(),
                total,
                limit: limits.max_total_bytes,
            });
        }
        Ok(())
    }

    /// Picks the pack root, then validates and creates the symlinks, which is only possible
    /// now: whether a link escapes depends on whether a top-level folder gets stripped.
    fn finish(self, content_digest: String) -> Result<(Unpacked, Option<PathBuf>), ArchiveError> {
        let mut top_level = self
            .nodes
            .iter()
            .filter(|(path, _)| path.components().count() == 1);
        let root = match (top_level.next(), top_level.next()) {
            (Some((only, Node::Dir { .. })), None) => Some(only.clone()),
            _ => None,
        };
        for link in &self.links {
            let in_pack = match &root {
                Some(root) => link.rel.strip_prefix(root).unwrap_or(&link.rel),
                None => &link.rel,
            };
            if let Some(reason) = symlink_escape(in_pack, &link.target) {
                return Err(ArchiveError::UnsafeSymlink {
                    path: link.raw.clone(),
                    target: link.target.clone(),
                    reason,
                });
            }
        }
        for link in &self.links {
            let disk = self.tree.join(&link.rel);
            std::os::unix::fs::symlink(&link.target, &disk)
                .map_err(io_error(&disk, "creating symlink"))?;
        }
        let unpacked = Unpacked {
            root_name: root
                .as_ref()
                .map(|root| root.to_string_lossy().into_owned()),
            files: self.files,
            bytes: self.bytes,
            content_digest,
        };
        Ok((unpacked, root))
    }
}

fn describe_entry_type(kind: EntryType) -> String {
    match kind {
        EntryType::Char => "a character device".to_owned(),
        EntryType::Block => "a block device".to_owned(),
        EntryType::Fifo => "a FIFO".to_owned(),
        EntryType::GNUSparse => "a GNU sparse file".to_owned(),
        other => format!("an entry of tar type {:?}", char::from(other.as_byte())),
    }
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
