//! OCI image layouts on disk (`oci-layout`, `index.json`, `blobs/sha256/<hex>`): one
//! image per layout, written from a [`RootFs`] and read back, every blob checked against
//! its digest, for pushing.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::elf::Arch;
use crate::rootfs::{RootFs, RootFsError};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation of `index.json` naming an image of the layout (its tag).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_VERSION: &str = "1.0.0";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the layer of {layout}: {source}")]
    Layer {
        layout: PathBuf,
        #[source]
        source: RootFsError,
    },
    #[error("cannot serialize {what} of {layout}: {source}")]
    Serialize {
        layout: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} is not a valid {what}: {source}")]
    Parse {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{layout} is not an image layout this tool wrote: {reason}")]
    Unexpected { layout: PathBuf, reason: String },
    #[error("{path} does not match its digest: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: String,
    manifests: Vec<Descriptor>,
}

/// What [`write_image`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenImage {
    pub layout: PathBuf,
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layer: Descriptor,
    /// sha256 of the uncompressed layer (the config's `rootfs.diff_ids`).
    pub diff_id: String,
    pub uncompressed_size: u64,
}

/// One image of a layout, its blobs checked, ready to push.
#[derive(Debug, Clone)]
pub struct StoredImage {
    pub manifest: Descriptor,
    pub manifest_bytes: Vec<u8>,
    /// The config and the layers, each with the file holding it.
    pub blobs: Vec<(Descriptor, PathBuf)>,
}

/// Writes an image of one layer (`rootfs`, every entry stamped `mtime`) as the layout
/// `layout`, replacing what was there. `config` makes the configuration from the layer's
/// diff id; `annotations` go on the manifest; `ref_name` names it in `index.json`.
pub fn write_image(
    layout: &Path,
    rootfs: &RootFs,
    mtime: u64,
    config: impl FnOnce(&str) -> Result<Vec<u8>, serde_json::Error>,
    annotations: &BTreeMap<String, String>,
    ref_name: &str,
    arch: Arch,
) -> Result<WrittenImage, LayoutError> {
    // Written beside the target and renamed at the end, so that an interrupted build
    // leaves the previous layout whole (or none) rather than a mixture.
    let name = layout
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let partial = layout.with_file_name(format!(".{name}.partial"));
    remove_dir_if_present(&partial)?;
    let blobs = partial.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|source| LayoutError::Write {
        path: blobs.clone(),
        source,
    })?;

    let (layer, diff_id, uncompressed_size) = write_layer(&partial, &blobs, rootfs, mtime)?;
    let serialize_error = |what| {
        let layout = layout.to_path_buf();
        move |source| LayoutError::Serialize {
            layout,
            what,
            source,
        }
    };
    let config_bytes = config(&diff_id).map_err(serialize_error("the configuration"))?;
    let config = write_blob(&blobs, &config_bytes, OCI_CONFIG)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: OCI_MANIFEST.into(),
        config: config.clone(),
        layers: vec![layer.clone()],
        annotations: Some(annotations.clone()),
    };
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(serialize_error("the manifest"))?;
    let mut manifest = write_blob(&blobs, &manifest_bytes, OCI_MANIFEST)?;
    manifest.annotations = Some(BTreeMap::from([(REF_NAME.into(), ref_name.into())]));
    manifest.platform = Some(Platform {
        architecture: arch.oci_name().into(),
        os: "linux".into(),
    });
    let index = Index {
        schema_version: 2,
        media_type: OCI_INDEX.into(),
        manifests: vec![manifest.clone()],
    };
    let index_bytes = serde_json::to_vec_pretty(&index).map_err(serialize_error("index.json"))?;
    write_file(&partial.join("index.json"), &index_bytes)?;
    write_file(
        &partial.join(LAYOUT_FILE),
        format!("{{\"imageLayoutVersion\":\"{LAYOUT_VERSION}\"}}").as_bytes(),
    )?;

    remove_dir_if_present(layout)?;
    fs::rename(&partial, layout).map_err(|source| LayoutError::Write {
        path: layout.to_path_buf(),
        source,
    })?;
    manifest.annotations = None;
    manifest.platform = None;
    Ok(WrittenImage {
        layout: layout.to_path_buf(),
        manifest,
        config,
        layer,
        diff_id,
        uncompressed_size,
    })
}

/// Reads the one image of `layout`, checking the size and digest of every blob.
pub fn read_image(layout: &Path) -> Result<StoredImage, LayoutError> {
    let unexpected = |reason: String| LayoutError::Unexpected {
        layout: layout.to_path_buf(),
        reason,
    };
    let marker = layout.join(LAYOUT_FILE);
    let marker_bytes = read_file(&marker)?;
    let marker_json: serde_json::Value =
        serde_json::from_slice(&marker_bytes).map_err(|source| LayoutError::Parse {
            path: marker.clone(),
            what: "oci-layout file",
            source,
        })?;
    if marker_json
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        != Some(LAYOUT_VERSION)
    {
        return Err(unexpected(format!(
            "{LAYOUT_FILE} does not say imageLayoutVersion {LAYOUT_VERSION}"
        )));
    }
    let index_path = layout.join("index.json");
    let index: Index =
        serde_json::from_slice(&read_file(&index_path)?).map_err(|source| LayoutError::Parse {
            path: index_path.clone(),
            what: "image index",
            source,
        })?;
    let [manifest] = index.manifests.as_slice() else {
        return Err(unexpected(format!(
            "index.json lists {} manifests, not one",
            index.manifests.len()
        )));
    };
    if manifest.media_type != OCI_MANIFEST {
        return Err(unexpected(format!(
            "index.json lists a {}, not an image manifest",
            manifest.media_type
        )));
    }
    let manifest_path = blob_path(layout, &manifest.digest)?;
    let manifest_bytes = read_file(&manifest_path)?;
    check(&manifest_path, manifest, &manifest_bytes)?;
    let parsed: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|source| LayoutError::Parse {
            path: manifest_path.clone(),
            what: "image manifest",
            source,
        })?;
    let mut blobs = Vec::new();
    for descriptor in std::iter::once(&parsed.config).chain(&parsed.layers) {
        let path = blob_path(layout, &descriptor.digest)?;
        let (size, digest) = hash_file(&path)?;
        check_parts(&path, descriptor, size, &digest)?;
        blobs.push((descriptor.clone(), path));
    }
    let mut manifest = manifest.clone();
    manifest.annotations = None;
    manifest.platform = None;
    Ok(StoredImage {
        manifest,
        manifest_bytes,
        blobs,
    })
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `<layout>/blobs/sha256/<hex>`; only sha256 digests of 64 lower-case hex digits, so
/// that a digest read from a file cannot name a path outside the layout.
fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf, LayoutError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(layout.join("blobs").join("sha256").join(hex))
        }
        _ => Err(LayoutError::Unexpected {
            layout: layout.to_path_buf(),
            reason: format!("{digest:?} is not a sha256 digest"),
        }),
    }
}

fn check(path: &Path, descriptor: &Descriptor, bytes: &[u8]) -> Result<(), LayoutError> {
    check_parts(path, descriptor, bytes.len() as u64, &sha256_digest(bytes))
}

fn check_parts(
    path: &Path,
    descriptor: &Descriptor,
    size: u64,
    digest: &str,
) -> Result<(), LayoutError> {
    if size != descriptor.size {
        return Err(LayoutError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("{size} bytes, the descriptor says {}", descriptor.size),
        });
    }
    if digest != descriptor.digest {
        return Err(LayoutError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("its content hashes to {digest}"),
        });
    }
    Ok(())
}

/// Counts and hashes what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    fn finish(self) -> (W, u64, String) {
        let digest = format!("sha256:{}", hex(&self.hasher.finalize()));
        (self.inner, self.len, digest)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streams the layer to disk: tar, hashed for the diff id, gzipped, hashed for the
/// blob's digest. Returns its descriptor, diff id and uncompressed size.
fn write_layer(
    layout: &Path,
    blobs: &Path,
    rootfs: &RootFs,
    mtime: u64,
) -> Result<(Descriptor, String, u64), LayoutError> {
    let partial = blobs.join(".layer.partial");
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LayoutError::Write { path, source }
    };
    let file = File::create(&partial).map_err(write_error(&partial))?;
    // No file name or time in the gzip header (flate2 writes neither unless asked):
    // the compressed bytes depend on the tar alone.
    let gzip = flate2::write::GzEncoder::new(
        Hashing::new(BufWriter::new(file)),
        flate2::Compression::default(),
    );
    let tar = rootfs
        .write_tar(Hashing::new(gzip), mtime)
        .map_err(|source| LayoutError::Layer {
            layout: layout.to_path_buf(),
            source,
        })?;
    let (gzip, uncompressed_size, diff_id) = tar.finish();
    let compressed = gzip.finish().map_err(write_error(&partial))?;
    let (buffered, size, digest) = compressed.finish();
    let file = buffered.into_inner().map_err(|e| LayoutError::Write {
        path: partial.clone(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(write_error(&partial))?;
    let path = blob_path(layout, &digest)?;
    fs::rename(&partial, &path).map_err(write_error(&path))?;
    Ok((
        Descriptor {
            media_type: OCI_LAYER.into(),
            digest,
            size,
            annotations: None,
            platform: None,
        },
        diff_id,
        uncompressed_size,
    ))
}

fn write_blob(blobs: &Path, bytes: &[u8], media_type: &str) -> Result<Descriptor, LayoutError> {
    let digest = sha256_digest(bytes);
    let hex = digest.trim_start_matches("sha256:");
    write_file(&blobs.join(hex), bytes)?;
    Ok(Descriptor {
        media_type: media_type.into(),
        digest,
        size: bytes.len() as u64,
        annotations: None,
        platform: None,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    fs::write(path, bytes).map_err(|source| LayoutError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, LayoutError> {
    fs::read(path).map_err(|source| LayoutError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn hash_file(path: &Path) -> Result<(u64, String), LayoutError> {
    let read_error = |source| LayoutError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let mut hashing = Hashing::new(io::sink());
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(read_error)?;
        if read == 0 {
            break;
        }
        hashing.write_all(&buffer[..read]).map_err(read_error)?;
    }
    let (_, size, digest) = hashing.finish();
    Ok((size, digest))
}

fn remove_dir_if_present(path: &Path) -> Result<(), LayoutError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LayoutError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::rootfs::{Content, Owner};

    fn tree() -> RootFs {
        let mut fs = RootFs::new();
        fs.file(
            "/usr/local/bin/strata",
            Content::Bytes(b"program".to_vec()),
            0o755,
        )
        .unwrap();
        fs.dir("/tmp", 0o1777, Owner::ROOT).unwrap();
        fs
    }

    fn write(layout: &Path) -> WrittenImage {
        let config = |diff_id: &str| serde_json::to_vec(&serde_json::json!({"diff": diff_id}));
        write_image(
            layout,
            &tree(),
            0,
            config,
            &BTreeMap::from([("a".to_string(), "b".to_string())]),
            "1.0.0",
            Arch::Amd64,
        )
        .unwrap()
    }

    #[test]
    fn the_same_tree_gives_the_same_image() {
        let dir = tempfile::tempdir().unwrap();
        let first = write(&dir.path().join("one"));
        let second = write(&dir.path().join("two"));
        assert_eq!(first.manifest, second.manifest);
        assert_eq!(first.layer, second.layer);
        assert_eq!(first.diff_id, second.diff_id);
        // Rewriting a layout replaces it whole.
        let again = write(&dir.path().join("one"));
        assert_eq!(again.manifest, first.manifest);
        let blobs: Vec<_> = fs::read_dir(dir.path().join("one/blobs/sha256"))
            .unwrap()
            .collect();
        assert_eq!(blobs.len(), 3);
        assert!(!dir.path().join(".one.partial").exists());
    }

    #[test]
    fn a_written_layout_reads_back_and_its_layer_is_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("strata");
        let written = write(&layout);
        let stored = read_image(&layout).unwrap();
        assert_eq!(stored.manifest, written.manifest);
        assert_eq!(
            sha256_digest(&stored.manifest_bytes),
            written.manifest.digest
        );
        assert_eq!(stored.blobs[0].0, written.config);
        assert_eq!(stored.blobs[1].0, written.layer);
        let manifest: Manifest = serde_json::from_slice(&stored.manifest_bytes).unwrap();
        assert_eq!(manifest.layers[0].media_type, OCI_LAYER);
        assert_eq!(manifest.config.media_type, OCI_CONFIG);
        assert_eq!(manifest.annotations.unwrap()["a"], "b");

        let compressed = fs::read(&stored.blobs[1].1).unwrap();
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(compressed.as_slice())
            .read_to_end(&mut tar_bytes)
            .unwrap();
        assert_eq!(sha256_digest(&tar_bytes), written.diff_id);
        assert_eq!(tar_bytes, tree().write_tar(Vec::new(), 0).unwrap());
        let config: serde_json::Value =
            serde_json::from_slice(&fs::read(&stored.blobs[0].1).unwrap()).unwrap();
        assert_eq!(config["diff"], written.diff_id.as_str());

        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["annotations"][REF_NAME], "1.0.0");
        assert_eq!(index["manifests"][0]["platform"]["architecture"], "amd64");
    }

    #[test]
    fn a_damaged_blob_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("strata");
        let written = write(&layout);
        let layer = blob_path(&layout, &written.layer.digest).unwrap();
        let mut bytes = fs::read(&layer).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&layer, bytes).unwrap();
        let message = read_image(&layout).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{} does not match its digest", layer.display())),
            "{message}"
        );
    }

    #[test]
    fn digests_cannot_name_paths_outside_the_layout() {
        assert!(blob_path(Path::new("/l"), "sha256:../../etc/passwd").is_err());
        assert!(blob_path(Path::new("/l"), "sha512:00").is_err());
    }
}
