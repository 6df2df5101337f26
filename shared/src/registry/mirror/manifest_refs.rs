//! What a manifest refers to, read from its bytes: an index lists child manifests, an
//! image manifest its config and layers. Only what a copy needs is read; the bytes
//! themselves are copied untouched.

use serde::Deserialize;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A blob or manifest a manifest points to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Referenced {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    /// Where a non-distributable layer is fetched from instead; such a layer is not
    /// copied (registries serve it from those URLs, not from themselves).
    #[serde(default)]
    pub urls: Vec<String>,
}

impl Referenced {
    /// A layer registries do not hold (Windows base layers and the like).
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty()
            || self.media_type.contains("foreign")
            || self.media_type.contains("nondistributable")
    }
}

/// What a manifest refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRefs {
    Index { manifests: Vec<Referenced> },
    Image { blobs: Vec<Referenced> },
}

/// A manifest, its media type and what it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadManifest {
    /// The body's `mediaType`, else the answer's `Content-Type`, else what the body's
    /// shape says.
    pub media_type: String,
    pub refs: ManifestRefs,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestRefsError {
    #[error("the manifest is not JSON: {reason}")]
    NotJson { reason: String },
    #[error("the manifest has schema version {version}; only version 2 can be copied by digest")]
    SchemaVersion { version: i64 },
    #[error("the manifest's media type {media_type:?} is neither an image manifest nor an index")]
    MediaType { media_type: String },
    #[error("the manifest cannot be read: {reason}")]
    Shape { reason: String },
    #[error("the manifest refers to {digest:?}, which is not sha256:<64 hex digits>")]
    Digest { digest: String },
    #[error("the manifest gives {digest} the negative size {size}")]
    Size { digest: String, size: i64 },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shape {
    schema_version: Option<i64>,
    media_type: Option<String>,
    manifests: Option<Vec<Referenced>>,
    config: Option<Referenced>,
    layers: Option<Vec<Referenced>>,
}

/// Reads `bytes` (served with `content_type`, if any).
pub fn read_manifest(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<ReadManifest, ManifestRefsError> {
    let shape: Shape = serde_json::from_slice(bytes).map_err(|e| {
        if serde_json::from_slice::<serde_json::Value>(bytes).is_ok() {
            ManifestRefsError::Shape {
                reason: e.to_string(),
            }
        } else {
            ManifestRefsError::NotJson {
                reason: e.to_string(),
            }
        }
    })?;
    match shape.schema_version {
        Some(2) => {}
        Some(version) => return Err(ManifestRefsError::SchemaVersion { version }),
        None => {
            return Err(ManifestRefsError::Shape {
                reason: "it has no schemaVersion".to_owned(),
            });
        }
    }
    let media_type = shape
        .media_type
        .clone()
        .or_else(|| content_type.map(str::to_owned))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| {
            // OCI allows leaving mediaType out; the shape tells.
            if shape.manifests.is_some() {
                OCI_INDEX.to_owned()
            } else {
                OCI_MANIFEST.to_owned()
            }
        });
    let refs = match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => ManifestRefs::Index {
            manifests: shape.manifests.ok_or_else(|| ManifestRefsError::Shape {
                reason: "an index without a manifests list".to_owned(),
            })?,
        },
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = shape.config.ok_or_else(|| ManifestRefsError::Shape {
                reason: "an image manifest without a config".to_owned(),
            })?;
            let mut blobs = vec![config];
            blobs.extend(shape.layers.unwrap_or_default());
            ManifestRefs::Image { blobs }
        }
        other => {
            return Err(ManifestRefsError::MediaType {
                media_type: other.to_owned(),
            });
        }
    };
    let referenced = match &refs {
        ManifestRefs::Index { manifests } => manifests,
        ManifestRefs::Image { blobs } => blobs,
    };
    for item in referenced {
        if !is_sha256(&item.digest) {
            return Err(ManifestRefsError::Digest {
                digest: item.digest.clone(),
            });
        }
        if item.size < 0 {
            return Err(ManifestRefsError::Size {
                digest: item.digest.clone(),
                size: item.size,
            });
        }
    }
    Ok(ReadManifest { media_type, refs })
}

/// Only sha256 is copied: it is what every registry computes, so the target's check of an
/// upload is the same check.
pub fn is_sha256(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn reads_an_image_manifest_config_first() {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": digest('a'), "size": 10},
            "layers": [
                {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": digest('b'), "size": 20},
                {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": digest('c'), "size": 30, "urls": ["https://example.com/c"]},
            ],
        });
        let read = read_manifest(body.to_string().as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(read.media_type, DOCKER_MANIFEST, "the body's own type wins");
        let ManifestRefs::Image { blobs } = read.refs else {
            panic!("expected an image manifest");
        };
        let digests: Vec<&str> = blobs.iter().map(|b| b.digest.as_str()).collect();
        assert_eq!(digests, [digest('a'), digest('b'), digest('c')]);
        assert!(!blobs[1].is_foreign());
        assert!(blobs[2].is_foreign());
    }

    #[test]
    fn reads_an_index_and_media_types_from_elsewhere() {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest('d'), "size": 5}],
        });
        let read = read_manifest(body.to_string().as_bytes(), None).unwrap();
        assert_eq!(read.media_type, OCI_INDEX);
        assert_eq!(
            read.refs,
            ManifestRefs::Index {
                manifests: vec![Referenced {
                    media_type: OCI_MANIFEST.into(),
                    digest: digest('d'),
                    size: 5,
                    urls: vec![],
                }]
            }
        );
        let list = read_manifest(body.to_string().as_bytes(), Some(DOCKER_LIST)).unwrap();
        assert_eq!(
            list.media_type, DOCKER_LIST,
            "Content-Type when the body has none"
        );
    }

    #[test]
    fn refuses_what_cannot_be_copied_by_digest() {
        let error = |body: serde_json::Value| {
            read_manifest(body.to_string().as_bytes(), None)
                .unwrap_err()
                .to_string()
        };
        assert!(
            error(serde_json::json!({"schemaVersion": 1, "fsLayers": []}))
                .contains("schema version 1")
        );
        assert!(
            error(serde_json::json!({"schemaVersion": 2, "mediaType": "text/plain"}))
                .contains("text/plain")
        );
        assert!(
            error(serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}))
                .contains("without a config")
        );
        assert!(error(serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "md5:00", "size": 1}})).contains("md5:00"));
        assert!(error(serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": digest('a'), "size": -1}})).contains("negative size"));
        assert!(matches!(
            read_manifest(b"<html>", None),
            Err(ManifestRefsError::NotJson { .. })
        ));
    }
}
