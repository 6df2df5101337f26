//! Tests of `archive.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use flate2::GzBuilder;
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

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
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
            bytes: 16 + 12 + 12 + 10 + 4,
            content_digest: content_digest(pack.path(), "istio").unwrap(),
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
            // The stream as the tool wrote it, whatever tool: its own bytes are its identity.
            content_digest: sha256_digest(&gunzip(&archive)),
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

#[test]
fn files_in_memory_archive_as_the_same_folder_on_disk_would() {
    let files = vec![
        (
            "objects/0002-machine-b.json".to_string(),
            b"{\"b\":1}".to_vec(),
        ),
        ("backup.json".to_string(), b"{}".to_vec()),
        (
            "objects/0001-cluster-a.json".to_string(),
            b"{\"a\":1}".to_vec(),
        ),
    ];
    let archive = archive_of_files("backup", &files).unwrap();
    let mut reversed = files.clone();
    reversed.reverse();
    assert_eq!(
        archive,
        archive_of_files("backup", &reversed).unwrap(),
        "the order the files are given in does not matter"
    );
    let disk = tempfile::tempdir().unwrap();
    for (path, bytes) in &files {
        write(&disk.path().join(path), bytes, 0o644);
    }
    assert_eq!(
        archive,
        archive_to_vec(disk.path(), "backup").unwrap(),
        "the same bytes as the folder's archive"
    );
    let (_parent, dest, unpacked) = unpack_ok(&archive);
    assert_eq!(unpacked.root_name.as_deref(), Some("backup"));
    assert_eq!(unpacked.files, 3);
    assert_eq!(
        fs::read(dest.join("objects/0001-cluster-a.json")).unwrap(),
        b"{\"a\":1}"
    );
}

#[test]
fn a_file_name_leading_out_of_the_root_is_not_archived() {
    let escape = vec![("../outside.json".to_string(), b"{}".to_vec())];
    assert!(matches!(
        archive_of_files("backup", &escape),
        Err(ArchiveError::ParentComponent { .. })
    ));
    let absolute = vec![("/etc/passwd".to_string(), b"x".to_vec())];
    assert!(matches!(
        archive_of_files("backup", &absolute),
        Err(ArchiveError::AbsolutePath { .. })
    ));
}

/// Bytes no compressor can shrink, from a fixed seed (xorshift), so tests are repeatable.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// A pack with text, and a chart archive (gzip of noise) as packs have them.
fn pack_with_a_chart_archive(dir: &Path) {
    sample_pack(dir);
    write(
        &dir.join("manifests/app.yaml"),
        "kind: ConfigMap\ndata:\n  greeting: hello\n"
            .repeat(2000)
            .as_bytes(),
        0o644,
    );
    write(
        &dir.join("charts/app-1.0.0.tgz"),
        &gzip(&noise(300_000, 7)),
        0o644,
    );
}

#[test]
fn the_content_digest_does_not_depend_on_the_compressor() {
    let pack = tempfile::tempdir().unwrap();
    pack_with_a_chart_archive(pack.path());
    let fast = archive_pack(pack.path(), "istio", Compression::fast()).unwrap();
    let best = archive_pack(pack.path(), "istio", Compression::best()).unwrap();
    // Two levels: other bytes, other layer digests, one content digest.
    assert_ne!(fast.bytes, best.bytes);
    assert_ne!(fast.layer_digest, best.layer_digest);
    assert_eq!(fast.layer_digest, sha256_digest(&fast.bytes));
    assert_eq!(best.layer_digest, sha256_digest(&best.bytes));
    assert_eq!(fast.content_digest, best.content_digest);
    // It is the sha256 of the canonical tar stream, which hashing alone computes too.
    let tar = write_tar(pack.path(), "istio", Vec::new()).unwrap();
    assert_eq!(fast.content_digest, sha256_digest(&tar));
    assert_eq!(
        content_digest(pack.path(), "istio").unwrap(),
        fast.content_digest
    );
    // The default archive and archive_pack_to agree with it, and name the bytes written.
    let written = archive_pack_to(pack.path(), "istio", PACK_COMPRESSION, Vec::new()).unwrap();
    assert_eq!(written.out, archive_to_vec(pack.path(), "istio").unwrap());
    assert_eq!(written.content_digest, fast.content_digest);
    assert_eq!(written.layer_digest, sha256_digest(&written.out));
    // Another tool's gzip of the same tar stream (one member, default level): the same.
    let other_tool = gzip(&tar);
    assert_ne!(other_tool, fast.bytes);
    // Whoever reads any of them computes the same content digest from the bytes.
    for bytes in [&fast.bytes, &best.bytes, &written.out, &other_tool] {
        let (_parent, dest, unpacked) = unpack_ok(bytes);
        assert_eq!(unpacked.content_digest, fast.content_digest);
        assert_eq!(
            content_digest_of(bytes.as_slice(), 1 << 30).unwrap(),
            fast.content_digest
        );
        // And the unpacked folder archives to the same identity again.
        assert_eq!(content_digest(&dest, "istio").unwrap(), fast.content_digest);
    }
}

#[test]
fn the_content_digest_changes_with_the_content() {
    let pack = tempfile::tempdir().unwrap();
    sample_pack(pack.path());
    let before = content_digest(pack.path(), "istio").unwrap();
    write(&pack.path().join("values.yaml"), b"replicas: 3\n", 0o644);
    assert_ne!(content_digest(pack.path(), "istio").unwrap(), before);
    // The root folder's name is part of the stream.
    assert_ne!(
        content_digest(pack.path(), "other").unwrap(),
        content_digest(pack.path(), "istio").unwrap()
    );
}

#[test]
fn compressed_files_are_stored_in_one_gzip_member_and_text_is_deflated() {
    let pack = tempfile::tempdir().unwrap();
    pack_with_a_chart_archive(pack.path());
    let archive = archive_pack(pack.path(), "istio", PACK_COMPRESSION).unwrap();
    let tar = write_tar(pack.path(), "istio", Vec::new()).unwrap();
    // One member: a single-member decoder reads the whole tar stream, and nothing follows.
    let mut decoder = flate2::read::GzDecoder::new(archive.bytes.as_slice());
    let mut decoded = Vec::new();
    decoder.read_to_end(&mut decoded).unwrap();
    assert_eq!(decoded, tar);
    assert!(
        decoder.into_inner().is_empty(),
        "data after the gzip member"
    );
    // The chart archive (300 kB, incompressible) is stored, not deflated again; the 84 kB
    // of YAML shrink to almost nothing. So the archive is the chart plus a little.
    let chart = fs::metadata(pack.path().join("charts/app-1.0.0.tgz"))
        .unwrap()
        .len();
    let size = archive.bytes.len() as u64;
    assert!(
        size > chart && size < chart + 4_096,
        "{size} for a {chart}-byte chart"
    );
    // Deflating the chart again, as a plain gzip at level 1 does, makes it larger.
    let mut plain = GzBuilder::new().write(Vec::new(), Compression::fast());
    plain.write_all(&tar).unwrap();
    assert!(plain.finish().unwrap().len() as u64 > size);
}

#[test]
fn content_digest_of_stops_a_gzip_bomb() {
    let bomb = gzip(&vec![0u8; 4 << 20]);
    assert!(bomb.len() < 64 << 10);
    let error = content_digest_of(bomb.as_slice(), 1 << 20).unwrap_err();
    assert!(
        matches!(error, ArchiveError::StreamTooLarge { allowed, .. } if allowed == 1 << 20),
        "{error:?}"
    );
    assert!(content_digest_of(b"not gzip".as_slice(), 1 << 20).is_err());
    assert_eq!(
        content_digest_of(bomb.as_slice(), 4 << 20).unwrap(),
        sha256_digest(&vec![0u8; 4 << 20])
    );
}
