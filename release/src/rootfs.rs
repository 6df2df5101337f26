//! An image's file tree, assembled entry by entry and written as one reproducible tar
//! layer: entries in path order, every time stamp the same, owners by number only, and
//! nothing of the build machine but the bytes and modes of the files copied from it.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// How many symbolic links one host path may pass through (the kernel's limit).
const MAX_LINK_HOPS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum RootFsError {
    #[error("cannot read {path} from the build machine: {source}")]
    ReadHost {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} on the build machine is neither a file, a folder nor a symbolic link")]
    UnsupportedHostFile { path: PathBuf },
    #[error("{path} on the build machine passes through more than {MAX_LINK_HOPS} symbolic links")]
    LinkLoop { path: PathBuf },
    #[error("{path} is not an absolute path without '..' above the root")]
    BadPath { path: PathBuf },
    #[error("/{path} is added to the image twice, as {first} and as {second}")]
    Conflict {
        path: String,
        first: String,
        second: String,
    },
    #[error("cannot write the entry /{path} of the layer: {source}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// The numeric owner of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u64,
    pub gid: u64,
}

impl Owner {
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

/// What a file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Bytes(Vec<u8>),
    /// A file of the build machine, read when the layer is written.
    Host(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32, owner: Owner },
    File { content: Content, mode: u32 },
    Symlink { target: PathBuf },
}

impl Node {
    fn describe(&self) -> String {
        match self {
            Node::Dir { mode, owner } => {
                format!(
                    "a folder (mode {mode:o}, owner {}:{})",
                    owner.uid, owner.gid
                )
            }
            Node::File {
                content: Content::Host(path),
                mode,
            } => format!("a copy of {} (mode {mode:o})", path.display()),
            Node::File {
                content: Content::Bytes(bytes),
                mode,
            } => format!("a file of {} bytes (mode {mode:o})", bytes.len()),
            Node::Symlink { target } => format!("a link to {}", target.display()),
        }
    }
}

/// A file tree, by path relative to `/` (`usr/local/bin/strata`). Parents are added as
/// root-owned 0755 folders when not added otherwise.
#[derive(Debug, Default, Clone)]
pub struct RootFs {
    entries: BTreeMap<String, Node>,
}

impl RootFs {
    pub fn new() -> Self {
        RootFs::default()
    }

    pub fn entries(&self) -> &BTreeMap<String, Node> {
        &self.entries
    }

    /// A folder. Adding one that exists (e.g. created as a parent) sets its mode and owner.
    pub fn dir(&mut self, path: &str, mode: u32, owner: Owner) -> Result<(), RootFsError> {
        let key = key_of(Path::new(path))?;
        self.parents(&key)?;
        let node = Node::Dir { mode, owner };
        match self.entries.get(&key) {
            None | Some(Node::Dir { .. }) => {
                self.entries.insert(key, node);
                Ok(())
            }
            Some(existing) => Err(conflict(&key, existing, &node)),
        }
    }

    pub fn file(&mut self, path: &str, content: Content, mode: u32) -> Result<(), RootFsError> {
        let key = key_of(Path::new(path))?;
        self.insert(key, Node::File { content, mode })
    }

    // Links come from the host (copy_from_host); this is for tests to build trees by hand.
    #[cfg(test)]
    pub fn symlink(&mut self, path: &str, target: &Path) -> Result<(), RootFsError> {
        let key = key_of(Path::new(path))?;
        self.insert(
            key,
            Node::Symlink {
                target: target.to_path_buf(),
            },
        )
    }

    /// Copies the build machine's file at the absolute `path` to the same path in the
    /// image, with every symbolic link met on the way (in a folder of the path or the
    /// file itself) reproduced as a link, so that the image resolves the path as the
    /// build machine does: `/lib64/ld-linux-x86-64.so.2` on a merged-/usr system becomes
    /// the links `lib64 -> usr/lib64`, `usr/lib64/ld-linux-x86-64.so.2 ->
    /// /lib/x86_64-linux-gnu/...`, `lib -> usr/lib` and the file under `usr/lib/`.
    pub fn copy_from_host(&mut self, path: &Path) -> Result<(), RootFsError> {
        let mut pending = path.to_path_buf();
        let mut hops = 0;
        'resolve: loop {
            if !pending.is_absolute() {
                return Err(RootFsError::BadPath { path: pending });
            }
            let components: Vec<Component<'_>> = pending.components().collect();
            let mut current = PathBuf::from("/");
            for (index, component) in components.iter().enumerate() {
                match component {
                    Component::RootDir | Component::CurDir => continue,
                    // `current` holds no link (each one restarts the walk), so its parent
                    // is the physical one.
                    Component::ParentDir => {
                        current.pop();
                        continue;
                    }
                    Component::Prefix(_) => {
                        return Err(RootFsError::BadPath { path: pending });
                    }
                    Component::Normal(name) => current.push(name),
                }
                let last = index + 1 == components.len();
                let metadata = std::fs::symlink_metadata(&current).map_err(|source| {
                    RootFsError::ReadHost {
                        path: current.clone(),
                        source,
                    }
                })?;
                let key = key_of(&current)?;
                let kind = metadata.file_type();
                if kind.is_symlink() {
                    let target =
                        std::fs::read_link(&current).map_err(|source| RootFsError::ReadHost {
                            path: current.clone(),
                            source,
                        })?;
                    self.insert(
                        key,
                        Node::Symlink {
                            target: target.clone(),
                        },
                    )?;
                    hops += 1;
                    if hops > MAX_LINK_HOPS {
                        return Err(RootFsError::LinkLoop {
                            path: path.to_path_buf(),
                        });
                    }
                    let base = current.parent().unwrap_or(Path::new("/"));
                    let mut resolved = base.join(target);
                    for rest in &components[index + 1..] {
                        resolved.push(rest.as_os_str());
                    }
                    pending = resolved;
                    continue 'resolve;
                }
                if kind.is_dir() {
                    if !self.entries.contains_key(&key) {
                        self.dir(&key, 0o755, Owner::ROOT)?;
                    }
                    if last {
                        return Ok(());
                    }
                    continue;
                }
                if kind.is_file() && last {
                    // Readable and runnable by the image's user; never writable but by root.
                    let mode = metadata.permissions().mode() & 0o755;
                    return self.insert(
                        key,
                        Node::File {
                            content: Content::Host(current.clone()),
                            mode,
                        },
                    );
                }
                return Err(RootFsError::UnsupportedHostFile { path: current });
            }
            return Ok(());
        }
    }

    fn insert(&mut self, key: String, node: Node) -> Result<(), RootFsError> {
        self.parents(&key)?;
        match self.entries.get(&key) {
            None => {
                self.entries.insert(key, node);
                Ok(())
            }
            Some(existing) if *existing == node => Ok(()),
            Some(existing) => Err(conflict(&key, existing, &node)),
        }
    }

    /// Adds the missing folders above `key`; a parent that is a link or a file conflicts.
    fn parents(&mut self, key: &str) -> Result<(), RootFsError> {
        let mut end = 0;
        while let Some(slash) = key[end..].find('/') {
            let parent = &key[..end + slash];
            match self.entries.get(parent) {
                None => {
                    self.entries.insert(
                        parent.to_owned(),
                        Node::Dir {
                            mode: 0o755,
                            owner: Owner::ROOT,
                        },
                    );
                }
                Some(Node::Dir { .. }) => {}
                Some(existing) => {
                    return Err(conflict(
                        parent,
                        existing,
                        &Node::Dir {
                            mode: 0o755,
                            owner: Owner::ROOT,
                        },
                    ));
                }
            }
            end += slash + 1;
        }
        Ok(())
    }

    /// Writes the tree as a tar stream (ending with the two zero blocks) into `out`;
    /// every entry has the time stamp `mtime` (seconds since the epoch).
    pub fn write_tar<W: Write>(&self, out: W, mtime: u64) -> Result<W, RootFsError> {
        let mut builder = tar::Builder::new(out);
        for (path, node) in &self.entries {
            let write_error = |source: io::Error| RootFsError::Write {
                path: path.clone(),
                source,
            };
            let mut header = tar::Header::new_gnu();
            header.set_mtime(mtime);
            match node {
                Node::Dir { mode, owner } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_uid(owner.uid);
                    header.set_gid(owner.gid);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, format!("{path}/"), io::empty())
                        .map_err(write_error)?;
                }
                Node::File { content, mode } => {
                    let bytes = match content {
                        Content::Bytes(bytes) => std::borrow::Cow::Borrowed(bytes),
                        Content::Host(host) => {
                            std::borrow::Cow::Owned(std::fs::read(host).map_err(|source| {
                                RootFsError::ReadHost {
                                    path: host.clone(),
                                    source,
                                }
                            })?)
                        }
                    };
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_uid(0);
                    header.set_gid(0);
                    header.set_size(bytes.len() as u64);
                    builder
                        .append_data(&mut header, path, bytes.as_slice())
                        .map_err(write_error)?;
                }
                Node::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_uid(0);
                    header.set_gid(0);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, path, target)
                        .map_err(write_error)?;
                }
            }
        }
        builder.into_inner().map_err(|source| RootFsError::Write {
            path: "(end of archive)".into(),
            source,
        })
    }
}

/// `usr/lib` for `/usr/lib` (or `usr/lib`): the tree's key.
fn key_of(path: &Path) -> Result<String, RootFsError> {
    let mut parts: Vec<&str> = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => match name.to_str() {
                Some(name) => parts.push(name),
                None => {
                    return Err(RootFsError::BadPath {
                        path: path.to_path_buf(),
                    });
                }
            },
            Component::ParentDir | Component::Prefix(_) => {
                return Err(RootFsError::BadPath {
                    path: path.to_path_buf(),
                });
            }
        }
    }
    if parts.is_empty() {
        return Err(RootFsError::BadPath {
            path: path.to_path_buf(),
        });
    }
    Ok(parts.join("/"))
}

fn conflict(path: &str, first: &Node, second: &Node) -> RootFsError {
    RootFsError::Conflict {
        path: path.to_owned(),
        first: first.describe(),
        second: second.describe(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Read;

    /// (path, type, mode, uid, gid, mtime, link target, bytes) of every entry.
    type Listed = (String, char, u32, u64, u64, u64, String, Vec<u8>);

    fn list(tar_bytes: &[u8]) -> Vec<Listed> {
        let mut archive = tar::Archive::new(tar_bytes);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let kind = match header.entry_type() {
                tar::EntryType::Directory => 'd',
                tar::EntryType::Regular => 'f',
                tar::EntryType::Symlink => 'l',
                other => panic!("unexpected entry type {other:?}"),
            };
            let target = entry
                .link_name()
                .unwrap()
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            out.push((
                entry.path().unwrap().display().to_string(),
                kind,
                header.mode().unwrap(),
                header.uid().unwrap(),
                header.gid().unwrap(),
                header.mtime().unwrap(),
                target,
                bytes,
            ));
        }
        out
    }

    fn sample(host_file: &Path) -> RootFs {
        let mut fs = RootFs::new();
        // Added out of order on purpose.
        fs.file(
            "/usr/local/bin/strata",
            Content::Host(host_file.into()),
            0o755,
        )
        .unwrap();
        fs.dir("/tmp", 0o1777, Owner::ROOT).unwrap();
        fs.file(
            "/etc/passwd",
            Content::Bytes(b"root:x:0:0\n".to_vec()),
            0o644,
        )
        .unwrap();
        fs.dir(
            "/var/cache/strata",
            0o755,
            Owner {
                uid: 65532,
                gid: 65532,
            },
        )
        .unwrap();
        fs.symlink("/lib", Path::new("usr/lib")).unwrap();
        fs
    }

    #[test]
    fn entries_are_sorted_with_parents_first_and_fixed_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("strata");
        std::fs::write(&host, b"\x7fELF binary").unwrap();
        let tar_bytes = sample(&host).write_tar(Vec::new(), 1_700_000_000).unwrap();
        let listed = list(&tar_bytes);
        let paths: Vec<&str> = listed.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            paths,
            [
                "etc/",
                "etc/passwd",
                "lib",
                "tmp/",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/strata",
                "var/",
                "var/cache/",
                "var/cache/strata/",
            ]
        );
        for entry in &listed {
            assert_eq!(entry.5, 1_700_000_000, "{}", entry.0);
        }
        let find = |p: &str| listed.iter().find(|e| e.0 == p).unwrap();
        assert_eq!(find("tmp/").2, 0o1777);
        assert_eq!(
            (find("var/cache/strata/").3, find("var/cache/strata/").4),
            (65532, 65532)
        );
        assert_eq!((find("var/cache/").3, find("var/cache/").2), (0, 0o755));
        let binary = find("usr/local/bin/strata");
        assert_eq!((binary.1, binary.2, binary.3, binary.4), ('f', 0o755, 0, 0));
        assert_eq!(binary.7, b"\x7fELF binary");
        let link = find("lib");
        assert_eq!((link.1, link.6.as_str()), ('l', "usr/lib"));
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("strata");
        std::fs::write(&host, b"program").unwrap();
        let first = sample(&host).write_tar(Vec::new(), 0).unwrap();
        // The host file's own time stamp and mode play no part.
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(&host, b"program").unwrap();
        let second = sample(&host).write_tar(Vec::new(), 0).unwrap();
        assert_eq!(first, second);
        let other_time = sample(&host).write_tar(Vec::new(), 1).unwrap();
        assert_ne!(first, other_time);
    }

    #[test]
    fn host_links_are_reproduced_and_the_file_stored_at_its_real_path() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        // A merged-/usr layout: lib -> usr/lib, lib64 -> usr/lib64, and the loader
        // linked absolutely into lib/.
        std::fs::create_dir_all(base.join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(base.join("usr/lib64")).unwrap();
        std::os::unix::fs::symlink("usr/lib", base.join("lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib64", base.join("lib64")).unwrap();
        let loader = base.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
        std::fs::write(&loader, b"loader").unwrap();
        std::fs::set_permissions(&loader, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::symlink(
            base.join("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
            base.join("usr/lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();

        let mut fs = RootFs::new();
        fs.copy_from_host(&base.join("lib64/ld-linux-x86-64.so.2"))
            .unwrap();
        // A second path to the same file adds nothing new and conflicts with nothing.
        fs.copy_from_host(&base.join("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"))
            .unwrap();
        let under = |p: &str| key_of(&base.join(p)).unwrap();
        let entries = fs.entries();
        assert_eq!(
            entries.get(&under("lib64")),
            Some(&Node::Symlink {
                target: "usr/lib64".into()
            })
        );
        assert_eq!(
            entries.get(&under("lib")),
            Some(&Node::Symlink {
                target: "usr/lib".into()
            })
        );
        assert_eq!(
            entries.get(&under("usr/lib64/ld-linux-x86-64.so.2")),
            Some(&Node::Symlink {
                target: base.join("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
            })
        );
        assert_eq!(
            entries.get(&under("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")),
            Some(&Node::File {
                content: Content::Host(loader.clone()),
                // Group and others lose write.
                mode: 0o755,
            })
        );
        assert!(matches!(
            entries.get(&under("usr/lib")),
            Some(Node::Dir { .. })
        ));
    }

    #[test]
    fn a_path_added_as_two_different_things_is_refused() {
        let mut fs = RootFs::new();
        fs.symlink("/lib", Path::new("usr/lib")).unwrap();
        let message = fs
            .file("/lib/libc.so.6", Content::Bytes(Vec::new()), 0o755)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("/lib is added to the image twice"),
            "{message}"
        );
        assert!(fs.symlink("/lib", Path::new("usr/lib")).is_ok());
        assert!(fs.symlink("/lib", Path::new("other")).is_err());
        assert!(fs.dir("/lib", 0o755, Owner::ROOT).is_err());
        assert!(
            fs.file("/../etc", Content::Bytes(Vec::new()), 0o644)
                .is_err()
        );
    }

    #[test]
    fn a_link_loop_on_the_host_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(root.path().join("b"), root.path().join("a")).unwrap();
        std::os::unix::fs::symlink(root.path().join("a"), root.path().join("b")).unwrap();
        let message = RootFs::new()
            .copy_from_host(&root.path().join("a"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("more than 40 symbolic links"), "{message}");
    }
}
