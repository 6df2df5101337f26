//! Pack archives: deterministic `.tar.gz` creation and safe unpacking.
//!
//! # Format
//!
//! A published pack is a gzip-compressed tar stream holding ONE top-level folder that
//! contains the pack (`istio/pack.json`, `istio/values.yaml`, `istio/charts/…`), i.e. what
//! `tar -czf istio-1.6.2.tar.gz istio/` produces. [`write_archive`] makes that stream a pure
//! function of the pack's content, so that one pack has exactly one sha256 digest:
//!
//! - the `root/` folder entry comes first, then every entry sorted by its relative path
//!   compared byte-wise (so a directory always precedes its contents and the order never
//!   depends on the filesystem);
//! - metadata is fixed: mtime 0, uid/gid 0, empty user/group names, mode 0o755 for
//!   directories and for regular files with any execute bit, 0o644 for other files, 0o777
//!   for symlinks;
//! - GNU headers, so paths longer than 100 bytes use `././@LongLink` entries;
//! - the gzip header has mtime 0, no file name and OS byte 255 ("unknown"), and the
//!   compression level is fixed. The bytes are therefore identical across runs and machines
//!   for a given flate2 backend version (pinned by `Cargo.lock`).
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
use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use flate2::bufread::MultiGzDecoder;
use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

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
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
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
    File,
    Symlink(PathBuf),
}

/// Writes `pack_dir` as a deterministic gzipped tarball whose entries all live under
/// `root_name/`, and returns `out` once the gzip stream is finished.
pub fn write_archive<W: Write>(
    pack_dir: &Path,
    root_name: &str,
    out: W,
) -> Result<W, ArchiveError> {
    validate_root_name(root_name)?;
    let items = collect_pack(pack_dir)?;
    let gzip = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(out, Compression::default());
    let mut builder = tar::Builder::new(gzip);
    append_entry(
        &mut builder,
        pack_dir,
        root_name,
        Path::new(""),
        &PackItem::Dir,
    )?;
    for (rel, item) in &items {
        append_entry(&mut builder, pack_dir, root_name, rel, item)?;
    }
    let gzip = builder
        .into_inner()
        .map_err(io_error(pack_dir, "finishing the tar stream of"))?;
    gzip.finish()
        .map_err(io_error(pack_dir, "finishing the gzip stream of"))
}

/// [`write_archive`] into memory.
pub fn archive_to_vec(pack_dir: &Path, root_name: &str) -> Result<Vec<u8>, ArchiveError> {
    write_archive(pack_dir, root_name, Vec::new())
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
                PackItem::File
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

fn append_entry<W: Write>(
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
        PackItem::File => {
            let mut file = File::open(&disk).map_err(io_error(&disk, "opening"))?;
            // Metadata of the open handle, so size and mode describe the bytes we read.
            let meta = file.metadata().map_err(io_error(&disk, "inspecting"))?;
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            let mut header = fixed_header(EntryType::Regular, mode, meta.len());
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
/// PAX records, skipped data), which never pass through our own copy loop.
struct BudgetReader<R> {
    inner: R,
    budget: Rc<Budget>,
}

impl<R: Read> Read for BudgetReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        let total = self.budget.read.get().saturating_add(read as u64);
        self.budget.read.set(total);
        if self.budget.exceeded() {
            return Err(io::Error::other("decompressed data exceeds its allowance"));
        }
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
        inner: MultiGzDecoder::new(BufReader::new(archive)),
        budget: Rc::clone(&budget),
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
    drain_trailer(&mut archive.into_inner(), last.as_deref(), &budget)?;
    staging.finish()
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
    fn finish(self) -> Result<(Unpacked, Option<PathBuf>), ArchiveError> {
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
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, SystemTime};

    fn write(path: &Path, content: &[u8], mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    fn sample_pack(dir: &Path) {
        write(&dir.join("pack.json"), br#"{"name":"istio"}"#, 0o644);
        write(&dir.join("values.yaml"), b"replicas: 2\n", 0o644);
        write(
            &dir.join("charts/istio/Chart.yaml"),
            b"name: istio\n",
            0o644,
        );
        write(&dir.join("scripts/install.sh"), b"#!/bin/sh\n", 0o755);
        fs::create_dir_all(dir.join("manifests")).unwrap();
    }

    fn gzip(tar_bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzBuilder::new().write(Vec::new(), Compression::default());
        encoder.write_all(tar_bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// One hand-made entry; the name goes into the raw header bytes so that `..` and
    /// absolute paths, which `Header::set_path` refuses, can be produced.
    struct Raw<'a> {
        name: &'a [u8],
        kind: EntryType,
        data: &'a [u8],
        link: &'a [u8],
    }

    fn file<'a>(name: &'a [u8], data: &'a [u8]) -> Raw<'a> {
        Raw {
            name,
            kind: EntryType::Regular,
            data,
            link: b"",
        }
    }

    fn dir(name: &[u8]) -> Raw<'_> {
        Raw {
            name,
            kind: EntryType::Directory,
            data: b"",
            link: b"",
        }
    }

    fn link<'a>(name: &'a [u8], kind: EntryType, target: &'a [u8]) -> Raw<'a> {
        Raw {
            name,
            kind,
            data: b"",
            link: target,
        }
    }

    fn raw_tar(entries: &[Raw<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for entry in entries {
            let mut header = Header::new_gnu();
            header.as_old_mut().name[..entry.name.len()].copy_from_slice(entry.name);
            header.as_old_mut().linkname[..entry.link.len()].copy_from_slice(entry.link);
            header.set_entry_type(entry.kind);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_size(entry.data.len() as u64);
            header.set_cksum();
            builder.append(&header, entry.data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn malicious(entries: &[Raw<'_>]) -> Vec<u8> {
        gzip(&raw_tar(entries))
    }

    /// Unpacks into a fresh `parent/out`, expecting failure, and checks nothing was left.
    fn refuse(archive: &[u8], limits: &ArchiveLimits) -> ArchiveError {
        let parent = tempfile::tempdir().unwrap();
        let dest = parent.path().join("out");
        let err = unpack_archive(archive, &dest, limits).expect_err("unpack must fail");
        assert!(
            fs::symlink_metadata(&dest).is_err(),
            "{err}: dest was created"
        );
        let leftovers: Vec<_> = fs::read_dir(parent.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "{err}: left {leftovers:?}");
        err
    }

    fn unpack_ok(archive: &[u8]) -> (tempfile::TempDir, PathBuf, Unpacked) {
        let parent = tempfile::tempdir().unwrap();
        let dest = parent.path().join("out");
        let unpacked = unpack_archive(archive, &dest, &ArchiveLimits::default()).unwrap();
        let names: Vec<_> = fs::read_dir(parent.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            [OsString::from("out")],
            "staging directory left behind"
        );
        (parent, dest, unpacked)
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn defaults_are_documented_values() {
        let limits = ArchiveLimits::default();
        assert_eq!(limits.max_total_bytes, 1024 * 1024 * 1024);
        assert_eq!(limits.max_entries, 100_000);
        assert_eq!(limits.max_file_bytes, 512 * 1024 * 1024);
    }

    #[test]
    fn digest_is_prefixed_lowercase_hex() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn same_folder_twice_gives_identical_bytes() {
        let pack = tempfile::tempdir().unwrap();
        sample_pack(pack.path());
        let first = archive_to_vec(pack.path(), "istio").unwrap();
        let second = archive_to_vec(pack.path(), "istio").unwrap();
        assert_eq!(first, second);
        assert_eq!(sha256_digest(&first), sha256_digest(&second));
    }

    #[test]
    fn creation_order_mtimes_and_non_exec_modes_do_not_matter() {
        let files: [(&str, &[u8], bool); 4] = [
            ("b/z.yaml", b"z", false),
            ("a.txt", b"a", false),
            ("a-b/x", b"x", false),
            ("run.sh", b"#!/bin/sh", true),
        ];
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        for (index, (name, content, exec)) in files.iter().enumerate() {
            write(
                &one.path().join(name),
                content,
                if *exec { 0o755 } else { 0o644 },
            );
            let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 * index as u64);
            File::options()
                .write(true)
                .open(one.path().join(name))
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        for (name, content, exec) in files.iter().rev() {
            write(
                &two.path().join(name),
                content,
                if *exec { 0o700 } else { 0o600 },
            );
        }
        fs::set_permissions(two.path().join("b"), Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            archive_to_vec(one.path(), "p").unwrap(),
            archive_to_vec(two.path(), "p").unwrap()
        );
    }

    #[test]
    fn headers_carry_fixed_metadata_in_sorted_order() {
        let pack = tempfile::tempdir().unwrap();
        sample_pack(pack.path());
        std::os::unix::fs::symlink("../values.yaml", pack.path().join("charts/values")).unwrap();
        let bytes = archive_to_vec(pack.path(), "istio").unwrap();
        // gzip header: no FNAME flag, mtime 0, OS "unknown".
        assert_eq!(bytes[3], 0);
        assert_eq!(&bytes[4..8], &[0, 0, 0, 0]);
        assert_eq!(bytes[9], 255);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.mtime().unwrap(), 0);
            assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
            assert_eq!(header.username().unwrap(), Some(""));
            assert_eq!(header.groupname().unwrap(), Some(""));
            assert!(header.as_gnu().is_some());
            seen.push((
                entry.path().unwrap().display().to_string(),
                header.mode().unwrap(),
            ));
        }
        let expected = [
            ("istio/", 0o755),
            ("istio/charts/", 0o755),
            ("istio/charts/istio/", 0o755),
            ("istio/charts/istio/Chart.yaml", 0o644),
            ("istio/charts/values", 0o777),
            ("istio/manifests/", 0o755),
            ("istio/pack.json", 0o644),
            ("istio/scripts/", 0o755),
            ("istio/scripts/install.sh", 0o755),
            ("istio/values.yaml", 0o644),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(p, m)| ((*p).to_owned(), *m))
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn round_trip_keeps_long_paths_symlinks_and_modes() {
        let pack = tempfile::tempdir().unwrap();
        sample_pack(pack.path());
        let long = format!("{}/{}/deep.yaml", "d".repeat(60), "e".repeat(70));
        write(&pack.path().join(&long), b"deep", 0o644);
        std::os::unix::fs::symlink("../values.yaml", pack.path().join("charts/values")).unwrap();
        let first = archive_to_vec(pack.path(), "istio").unwrap();
        let (_parent, dest, unpacked) = unpack_ok(&first);
        assert_eq!(
            unpacked,
            Unpacked {
                root_name: Some("istio".to_owned()),
                files: 5,
                bytes: 16 + 12 + 12 + 10 + 4
            }
        );
        assert_eq!(fs::read(dest.join(&long)).unwrap(), b"deep");
        assert_eq!(
            fs::read_link(dest.join("charts/values")).unwrap(),
            Path::new("../values.yaml")
        );
        assert_eq!(mode_of(&dest.join("scripts/install.sh")), 0o755);
        assert_eq!(mode_of(&dest.join("pack.json")), 0o644);
        assert_eq!(mode_of(&dest), 0o755);
        assert_eq!(archive_to_vec(&dest, "istio").unwrap(), first);
    }

    #[test]
    fn invalid_root_names_are_refused() {
        let pack = tempfile::tempdir().unwrap();
        for name in ["", ".", "..", "a/b", "/abs", "nul\0"] {
            let err = archive_to_vec(pack.path(), name).unwrap_err();
            assert!(
                matches!(err, ArchiveError::InvalidRootName { .. }),
                "{name:?}: {err}"
            );
        }
    }

    #[test]
    fn escaping_or_absolute_symlinks_in_the_pack_are_refused() {
        for target in ["../../outside", "/etc/passwd", "x/../.."] {
            let pack = tempfile::tempdir().unwrap();
            fs::create_dir(pack.path().join("sub")).unwrap();
            std::os::unix::fs::symlink(target, pack.path().join("sub/link")).unwrap();
            let err = archive_to_vec(pack.path(), "p").unwrap_err();
            assert!(
                matches!(&err, ArchiveError::UnsafeSymlink { path, target: found, .. }
                    if path == &pack.path().join("sub/link") && found == Path::new(target)),
                "{target}: {err}"
            );
        }
    }

    #[test]
    fn sockets_in_the_pack_are_refused() {
        let pack = tempfile::tempdir().unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(pack.path().join("sock")).unwrap();
        let err = archive_to_vec(pack.path(), "p").unwrap_err();
        assert!(
            matches!(&err, ArchiveError::UnsupportedType { path, kind } if path.ends_with("sock") && kind == "a socket"),
            "{err}"
        );
    }

    #[test]
    fn top_level_layout_and_dot_prefixes_unpack_as_is() {
        let archive = malicious(&[
            dir(b"./"),
            file(b"./pack.json", b"{}"),
            file(b"./charts/", b""),
            file(b"charts/./a.yaml", b"a: 1"),
        ]);
        let (_parent, dest, unpacked) = unpack_ok(&archive);
        assert_eq!(
            unpacked,
            Unpacked {
                root_name: None,
                files: 2,
                bytes: 6
            }
        );
        assert_eq!(fs::read(dest.join("pack.json")).unwrap(), b"{}");
        assert_eq!(fs::read(dest.join("charts/a.yaml")).unwrap(), b"a: 1");
    }

    #[test]
    fn implied_root_folder_is_stripped_and_pax_global_headers_skipped() {
        let archive = malicious(&[
            Raw {
                name: b"pax_global_header",
                kind: EntryType::XGlobalHeader,
                data: b"20 comment=strata\n",
                link: b"",
            },
            file(b"./istio/pack.json", b"{}"),
            file(b"istio/bin/run", b"x"),
        ]);
        let (_parent, dest, unpacked) = unpack_ok(&archive);
        assert_eq!(unpacked.root_name.as_deref(), Some("istio"));
        assert_eq!(fs::read(dest.join("pack.json")).unwrap(), b"{}");
        assert_eq!(mode_of(&dest.join("bin")), 0o755);
    }

    #[test]
    fn empty_existing_destination_is_replaced() {
        let pack = tempfile::tempdir().unwrap();
        sample_pack(pack.path());
        let parent = tempfile::tempdir().unwrap();
        let dest = parent.path().join("out");
        fs::create_dir(&dest).unwrap();
        let evil = malicious(&[file(b"p/ok", b"ok"), file(b"p/../x", b"x")]);
        unpack_archive(&evil[..], &dest, &ArchiveLimits::default()).unwrap_err();
        assert_eq!(
            fs::read_dir(&dest).unwrap().count(),
            0,
            "failed unpack touched dest"
        );
        assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 1);
        let archive = archive_to_vec(pack.path(), "istio").unwrap();
        unpack_archive(&archive[..], &dest, &ArchiveLimits::default()).unwrap();
        assert!(dest.join("pack.json").is_file());
    }

    #[test]
    fn non_empty_or_file_destination_is_refused_and_untouched() {
        let archive = malicious(&[file(b"p/pack.json", b"{}")]);
        let parent = tempfile::tempdir().unwrap();
        let dest = parent.path().join("out");
        write(&dest.join("keep.txt"), b"mine", 0o600);
        let err = unpack_archive(&archive[..], &dest, &ArchiveLimits::default()).unwrap_err();
        assert!(
            matches!(
                err,
                ArchiveError::DestinationExists {
                    found: "a non-empty directory",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(fs::read(dest.join("keep.txt")).unwrap(), b"mine");
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 1);
        assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 1);

        let file_dest = parent.path().join("file");
        fs::write(&file_dest, b"x").unwrap();
        let err = unpack_archive(&archive[..], &file_dest, &ArchiveLimits::default()).unwrap_err();
        assert!(
            matches!(
                err,
                ArchiveError::DestinationExists {
                    found: "a file",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(fs::read(&file_dest).unwrap(), b"x");
    }

    #[test]
    fn absolute_paths_are_refused() {
        let err = refuse(
            &malicious(&[file(b"/etc/cron.d/x", b"x")]),
            &ArchiveLimits::default(),
        );
        assert!(
            matches!(&err, ArchiveError::AbsolutePath { path } if path == Path::new("/etc/cron.d/x")),
            "{err}"
        );
    }

    #[test]
    fn parent_components_are_refused() {
        for name in [&b"p/../../evil"[..], b"../evil", b"p/a/.."] {
            let err = refuse(
                &malicious(&[file(b"p/ok", b"ok"), file(name, b"x")]),
                &ArchiveLimits::default(),
            );
            assert!(
                matches!(&err, ArchiveError::ParentComponent { path } if path.as_os_str().as_bytes() == name),
                "{err}"
            );
        }
    }

    #[test]
    fn absolute_symlinks_are_refused() {
        let archive = malicious(&[dir(b"p/"), link(b"p/etc", EntryType::Symlink, b"/etc")]);
        let err = refuse(&archive, &ArchiveLimits::default());
        assert!(
            matches!(&err, ArchiveError::UnsafeSymlink { path, reason: "the target is absolute", .. } if path == Path::new("p/etc")),
            "{err}"
        );
    }

    #[test]
    fn symlinks_leaving_the_stripped_root_are_refused() {
        // Inside the archive's top level, but outside the pack once `p/` is stripped.
        let archive = malicious(&[
            file(b"p/pack.json", b"{}"),
            link(b"p/up", EntryType::Symlink, b"../p/pack.json"),
        ]);
        let err = refuse(&archive, &ArchiveLimits::default());
        assert!(
            matches!(&err, ArchiveError::UnsafeSymlink { path, reason: "the target leaves the pack", .. } if path == Path::new("p/up")),
            "{err}"
        );
        let archive = malicious(&[
            link(b"p/a/self", EntryType::Symlink, b".."),
            link(b"p/b", EntryType::Symlink, b"a/self/../.."),
        ]);
        let err = refuse(&archive, &ArchiveLimits::default());
        assert!(
            matches!(&err, ArchiveError::UnsafeSymlink { path, .. } if path == Path::new("p/b")),
            "{err}"
        );
    }

    #[test]
    fn hard_links_are_refused() {
        let archive = malicious(&[file(b"p/a", b"a"), link(b"p/b", EntryType::Link, b"p/a")]);
        let err = refuse(&archive, &ArchiveLimits::default());
        assert!(
            matches!(&err, ArchiveError::HardLink { path, target } if path == Path::new("p/b") && target == Path::new("p/a")),
            "{err}"
        );
        assert!(err.to_string().contains("not supported in packs"));
    }

    #[test]
    fn devices_fifos_and_sparse_files_are_refused() {
        for (kind, word) in [
            (EntryType::Char, "character device"),
            (EntryType::Block, "block device"),
            (EntryType::Fifo, "FIFO"),
            (EntryType::new(b'V'), "tar type"),
        ] {
            let archive = malicious(&[
                dir(b"p/"),
                Raw {
                    name: b"p/dev",
                    kind,
                    data: b"",
                    link: b"",
                },
            ]);
            let err = refuse(&archive, &ArchiveLimits::default());
            assert!(
                matches!(&err, ArchiveError::UnsupportedType { path, kind } if path == Path::new("p/dev") && kind.contains(word)),
                "{err}"
            );
        }
    }

    #[test]
    fn sparse_files_are_refused() {
        // Declares no data but would expand to 8 MiB of zeros.
        let mut header = Header::new_gnu();
        header.as_old_mut().name[..8].copy_from_slice(b"p/sparse");
        header.set_entry_type(EntryType::GNUSparse);
        header.set_size(0);
        let gnu = header.as_gnu_mut().unwrap();
        gnu.set_real_size(8 << 20);
        gnu.sparse[0].set_offset(8 << 20);
        gnu.sparse[0].set_length(0);
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, io::empty()).unwrap();
        let err = refuse(
            &gzip(&builder.into_inner().unwrap()),
            &ArchiveLimits::default(),
        );
        assert!(
            matches!(&err, ArchiveError::UnsupportedType { path, kind } if path == Path::new("p/sparse") && kind.contains("sparse")),
            "{err}"
        );
    }

    #[test]
    fn duplicate_entries_are_refused() {
        for entries in [
            vec![file(b"p/a", b"1"), file(b"p/./a", b"2")],
            vec![dir(b"p/d/"), dir(b"p/d/")],
            vec![file(b"p/d/x", b"1"), link(b"p/d", EntryType::Symlink, b"x")],
        ] {
            let err = refuse(&malicious(&entries), &ArchiveLimits::default());
            assert!(matches!(err, ArchiveError::DuplicateEntry { .. }), "{err}");
        }
    }

    #[test]
    fn entries_beneath_an_archived_symlink_are_refused() {
        let archive = malicious(&[
            dir(b"p/real/"),
            link(b"p/l", EntryType::Symlink, b"real"),
            file(b"p/l/x", b"through the link"),
        ]);
        let err = refuse(&archive, &ArchiveLimits::default());
        assert!(
            matches!(&err, ArchiveError::BeneathSymlink { path, symlink } if path == Path::new("p/l/x") && symlink == Path::new("p/l")),
            "{err}"
        );
    }

    #[test]
    fn too_many_entries_are_refused() {
        let archive = malicious(&[file(b"p/a", b""), file(b"p/b", b""), file(b"p/c", b"")]);
        let limits = ArchiveLimits {
            max_entries: 2,
            ..ArchiveLimits::default()
        };
        let err = refuse(&archive, &limits);
        assert!(
            matches!(&err, ArchiveError::TooManyEntries { path, limit: 2 } if path == Path::new("p/c")),
            "{err}"
        );
    }

    /// Gzip-bomb-like pack: megabytes of zeros compress to a few kilobytes.
    fn zeros_pack(files: &[(&str, usize)]) -> Vec<u8> {
        let pack = tempfile::tempdir().unwrap();
        for (name, len) in files {
            write(&pack.path().join(name), &vec![0u8; *len], 0o644);
        }
        archive_to_vec(pack.path(), "p").unwrap()
    }

    #[test]
    fn files_over_the_per_file_limit_are_refused() {
        let archive = zeros_pack(&[("big", 4 << 20)]);
        assert!(archive.len() < 64 * 1024);
        let limits = ArchiveLimits {
            max_file_bytes: 1 << 20,
            ..ArchiveLimits::default()
        };
        let err = refuse(&archive, &limits);
        assert!(
            matches!(&err, ArchiveError::FileTooLarge { path, limit, .. } if path == Path::new("p/big") && *limit == 1 << 20),
            "{err}"
        );
    }

    #[test]
    fn content_over_the_total_limit_is_refused() {
        let archive = zeros_pack(&[("a", 600 << 10), ("b", 600 << 10)]);
        let limits = ArchiveLimits {
            max_total_bytes: 1 << 20,
            ..ArchiveLimits::default()
        };
        let err = refuse(&archive, &limits);
        assert!(
            matches!(&err, ArchiveError::TotalTooLarge { path, limit, .. } if path == Path::new("p/b") && *limit == 1 << 20),
            "{err}"
        );
    }

    #[test]
    fn data_hidden_behind_a_lying_header_is_cut_off() {
        // The header declares 4 bytes, then 8 MiB of zeros follow: none of it is file content,
        // so only counting the decompressed stream itself catches it.
        let mut tar_bytes = raw_tar(&[file(b"p/a", b"tiny")]);
        tar_bytes.truncate(1024);
        tar_bytes.extend(std::iter::repeat_n(0u8, 8 << 20));
        let err = refuse(&gzip(&tar_bytes), &ArchiveLimits::default());
        assert!(matches!(err, ArchiveError::StreamTooLarge { .. }), "{err}");

        let mut tar_bytes = raw_tar(&[file(b"p/a", b"tiny")]);
        tar_bytes.extend_from_slice(b"trailing garbage");
        let err = refuse(&gzip(&tar_bytes), &ArchiveLimits::default());
        assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn oversized_long_name_is_cut_off() {
        // A GNU long-name record is read into memory by tar; it must not be unbounded.
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::GNULongName);
        header.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        header.set_size(4 << 20);
        header.set_cksum();
        builder
            .append(&header, io::repeat(b'a').take(4 << 20))
            .unwrap();
        builder
            .append_data(
                &mut fixed_header(EntryType::Regular, 0o644, 1),
                "x",
                &b"x"[..],
            )
            .unwrap();
        let archive = gzip(&builder.into_inner().unwrap());
        let err = refuse(&archive, &ArchiveLimits::default());
        assert!(matches!(err, ArchiveError::StreamTooLarge { .. }), "{err}");
    }

    #[test]
    fn truncated_or_extended_archives_are_refused() {
        let pack = tempfile::tempdir().unwrap();
        // Incompressible content, so that cuts land inside file data as well as headers.
        let mut state = 0x2545_f491_u32;
        let noise: Vec<u8> = (0..27_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state.to_le_bytes()[0]
            })
            .collect();
        write(&pack.path().join("a.bin"), &noise[..20_000], 0o644);
        write(&pack.path().join("sub/b.bin"), &noise[20_000..], 0o644);
        let archive = archive_to_vec(pack.path(), "p").unwrap();
        let half = archive.len() / 2;
        let err = refuse(&archive[..half], &ArchiveLimits::default());
        assert!(
            matches!(
                err,
                ArchiveError::Corrupt { .. } | ArchiveError::Truncated { .. }
            ),
            "{err}"
        );
        for cut in (1..32)
            .map(|i| archive.len() * i / 32)
            .chain([archive.len() - 1])
        {
            let err = refuse(&archive[..cut], &ArchiveLimits::default());
            assert!(
                matches!(
                    err,
                    ArchiveError::Corrupt { .. } | ArchiveError::Truncated { .. }
                ),
                "cut {cut}: {err}"
            );
        }
        // Validly compressed, but the tar stream inside stops mid-file or mid-header.
        let tar_bytes = raw_tar(&[file(b"p/a", &[7u8; 1000])]);
        let err = refuse(&gzip(&tar_bytes[..700]), &ArchiveLimits::default());
        assert!(
            matches!(&err, ArchiveError::Truncated { path, expected: 1000, found: 188 } if path == Path::new("p/a")),
            "{err}"
        );
        let err = refuse(&gzip(&tar_bytes[..300]), &ArchiveLimits::default());
        assert!(
            matches!(err, ArchiveError::Corrupt { near: None, .. }),
            "{err}"
        );
        let mut extended = archive.clone();
        extended.extend_from_slice(b"not gzip");
        let err = refuse(&extended, &ArchiveLimits::default());
        assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err}");
    }

    #[derive(Debug, Clone)]
    enum Spec {
        Dir,
        File { content: Vec<u8>, exec: bool },
    }

    fn tree_strategy() -> impl Strategy<Value = Vec<(Vec<String>, Spec)>> {
        let name = "[a-zA-Z0-9_-]{1,6}(\\.[a-z]{1,3})?";
        let spec = prop_oneof![
            1 => Just(Spec::Dir),
            3 => (prop::collection::vec(any::<u8>(), 0..300), any::<bool>())
                .prop_map(|(content, exec)| Spec::File { content, exec }),
        ];
        prop::collection::vec((prop::collection::vec(name, 1..4), spec), 0..12)
    }

    fn materialize(root: &Path, specs: &[(Vec<String>, Spec)]) {
        for (parts, spec) in specs {
            let path: PathBuf = parts
                .iter()
                .fold(root.to_path_buf(), |path, part| path.join(part));
            // Generated paths may collide with an earlier file; such entries are dropped.
            if fs::symlink_metadata(&path).is_ok()
                || fs::create_dir_all(path.parent().unwrap()).is_err()
            {
                continue;
            }
            match spec {
                Spec::Dir => fs::create_dir(&path).unwrap(),
                Spec::File { content, exec } => {
                    write(&path, content, if *exec { 0o750 } else { 0o600 })
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn archive_unpack_archive_is_byte_identical(specs in tree_strategy()) {
            let pack = tempfile::tempdir().unwrap();
            materialize(pack.path(), &specs);
            let first = archive_to_vec(pack.path(), "pack").unwrap();
            let (_parent, dest, unpacked) = unpack_ok(&first);
            prop_assert_eq!(unpacked.root_name.as_deref(), Some("pack"));
            prop_assert_eq!(archive_to_vec(&dest, "pack").unwrap(), first);
        }
    }
}
