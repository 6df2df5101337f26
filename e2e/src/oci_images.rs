//! Small container images in a [`TestRegistry`], pushed and read over the distribution API
//! by hand (no Strata code), so that tests of `strata pack mirror` have images to copy and
//! an independent view of what each registry holds, and the images test can pull back
//! what `scripts/images.sh` pushed.

use ring::digest::{SHA256, digest};
use serde_json::json;

use crate::registry::{RegistryError, TestRegistry};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum OciImageError {
    #[error("cannot build a client for {registry}: {source}")]
    Client {
        registry: String,
        #[source]
        source: RegistryError,
    },
    #[error("{what} at {registry} failed: {source}")]
    Request {
        registry: String,
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what} at {registry}: answered {status}: {body}")]
    Status {
        registry: String,
        what: String,
        status: u16,
        body: String,
    },
    #[error("{what} at {registry}: the answer has no Location header")]
    NoLocation { registry: String, what: String },
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    let hash = digest(&SHA256, data);
    let mut text = String::from("sha256:");
    for byte in hash.as_ref() {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// A manifest as a registry serves it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    /// The `Content-Type` of the answer.
    pub media_type: String,
    /// The registry's `Docker-Content-Digest`, when it sends one.
    pub digest: Option<String>,
}

/// An image manifest pushed, and its parts.
#[derive(Debug, Clone)]
pub struct PushedImage {
    pub digest: String,
    pub size: usize,
    pub media_type: &'static str,
    /// Config first, then the layers.
    pub blobs: Vec<String>,
}

/// The format of an image manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Oci,
    Docker,
}

/// Pushes to and reads from one test registry, as its first user.
pub struct OciImages<'a> {
    registry: &'a TestRegistry,
    http: reqwest::Client,
}

impl<'a> OciImages<'a> {
    pub fn new(registry: &'a TestRegistry) -> Result<Self, OciImageError> {
        let http = registry
            .http_client()
            .map_err(|source| OciImageError::Client {
                registry: registry.host().to_owned(),
                source,
            })?;
        Ok(OciImages { registry, http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.registry.url())
    }

    async fn send(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, OciImageError> {
        let response = request
            .basic_auth(self.registry.username(), Some(self.registry.password()))
            .send()
            .await
            .map_err(|source| OciImageError::Request {
                registry: self.registry.host().to_owned(),
                what: what.to_owned(),
                source,
            })?;
        Ok(response)
    }

    async fn expect_success(
        &self,
        what: &str,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, OciImageError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        Err(OciImageError::Status {
            registry: self.registry.host().to_owned(),
            what: what.to_owned(),
            status: status.as_u16(),
            body: response.text().await.unwrap_or_default(),
        })
    }

    /// Uploads `data` as a blob of `repository` (one POST, one PUT); its digest.
    pub async fn push_blob(&self, repository: &str, data: &[u8]) -> Result<String, OciImageError> {
        let blob_digest = sha256(data);
        let what = format!("uploading {blob_digest} to {repository}");
        let started = self
            .send(
                &what,
                self.http
                    .post(self.url(&format!("/v2/{repository}/blobs/uploads/"))),
            )
            .await?;
        let started = self.expect_success(&what, started).await?;
        let location = started
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| OciImageError::NoLocation {
                registry: self.registry.host().to_owned(),
                what: what.clone(),
            })?;
        let mut url = if location.starts_with("http") {
            location.to_owned()
        } else {
            self.url(location)
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("digest=");
        url.push_str(&blob_digest);
        let put = self
            .send(
                &what,
                self.http
                    .put(url)
                    .header("content-type", "application/octet-stream")
                    .body(data.to_vec()),
            )
            .await?;
        self.expect_success(&what, put).await?;
        Ok(blob_digest)
    }

    /// PUTs `bytes` as the manifest `repository:reference`; its digest.
    pub async fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, OciImageError> {
        let what = format!("pushing the manifest {repository}:{reference}");
        let response = self
            .send(
                &what,
                self.http
                    .put(self.url(&format!("/v2/{repository}/manifests/{reference}")))
                    .header("content-type", media_type)
                    .body(bytes.to_vec()),
            )
            .await?;
        self.expect_success(&what, response).await?;
        Ok(sha256(bytes))
    }

    /// Pushes an image of `layers` (its config names `arch`) as `repository:tag`, or by
    /// digest only when `tag` is None.
    pub async fn push_image(
        &self,
        repository: &str,
        tag: Option<&str>,
        format: ImageFormat,
        arch: &str,
        layers: &[&[u8]],
    ) -> Result<PushedImage, OciImageError> {
        let (media_type, config_type, layer_type) = match format {
            ImageFormat::Oci => (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
            ImageFormat::Docker => (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
        };
        let layer_digests: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": layer_digests},
        })
        .to_string();
        let config_digest = self.push_blob(repository, config.as_bytes()).await?;
        let mut blobs = vec![config_digest.clone()];
        let mut descriptors = Vec::new();
        for layer in layers {
            let layer_digest = self.push_blob(repository, layer).await?;
            descriptors.push(
                json!({"mediaType": layer_type, "digest": layer_digest, "size": layer.len()}),
            );
            blobs.push(layer_digest);
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
            "layers": descriptors,
        })
        .to_string();
        let manifest_digest = sha256(manifest.as_bytes());
        let reference = tag.unwrap_or(&manifest_digest).to_owned();
        self.push_manifest(repository, &reference, media_type, manifest.as_bytes())
            .await?;
        Ok(PushedImage {
            digest: manifest_digest,
            size: manifest.len(),
            media_type,
            blobs,
        })
    }

    /// Pushes an OCI index of `children` (pushed before, in `repository`) as
    /// `repository:tag`; its digest.
    pub async fn push_index(
        &self,
        repository: &str,
        tag: &str,
        children: &[(&PushedImage, &str)],
    ) -> Result<String, OciImageError> {
        let manifests: Vec<serde_json::Value> = children
            .iter()
            .map(|(child, arch)| {
                json!({
                    "mediaType": child.media_type,
                    "digest": child.digest,
                    "size": child.size,
                    "platform": {"architecture": arch, "os": "linux"},
                })
            })
            .collect();
        let index =
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).to_string();
        self.push_manifest(repository, tag, OCI_INDEX, index.as_bytes())
            .await
    }

    /// The digest of the manifest `repository:reference` (tag or digest), as the registry
    /// computes it (`Docker-Content-Digest` of a HEAD); None when it has none.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>, OciImageError> {
        let what = format!("looking up {repository}:{reference}");
        let response = self
            .send(
                &what,
                self.http
                    .head(self.url(&format!("/v2/{repository}/manifests/{reference}")))
                    .header("accept", ACCEPT),
            )
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.expect_success(&what, response).await?;
        Ok(response
            .headers()
            .get("docker-content-digest")
            .and_then(|d| d.to_str().ok())
            .map(str::to_owned))
    }

    /// Whether `repository` holds the blob `digest`.
    pub async fn has_blob(&self, repository: &str, digest: &str) -> Result<bool, OciImageError> {
        let what = format!("looking up the blob {digest} in {repository}");
        let response = self
            .send(
                &what,
                self.http
                    .head(self.url(&format!("/v2/{repository}/blobs/{digest}"))),
            )
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(false);
        }
        self.expect_success(&what, response).await?;
        Ok(true)
    }

    /// GETs the manifest `repository:reference` (tag or digest) whole.
    pub async fn fetch_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, OciImageError> {
        let what = format!("reading the manifest {repository}:{reference}");
        let response = self
            .send(
                &what,
                self.http
                    .get(self.url(&format!("/v2/{repository}/manifests/{reference}")))
                    .header("accept", ACCEPT),
            )
            .await?;
        let response = self.expect_success(&what, response).await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let media_type = header("content-type").unwrap_or_default();
        let digest = header("docker-content-digest");
        let bytes = self.body(&what, response).await?;
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// GETs the blob `digest` of `repository` whole (not checked: callers compare it with
    /// the digest and size they expect).
    pub async fn fetch_blob(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Vec<u8>, OciImageError> {
        let what = format!("reading the blob {digest} of {repository}");
        let response = self
            .send(
                &what,
                self.http
                    .get(self.url(&format!("/v2/{repository}/blobs/{digest}"))),
            )
            .await?;
        let response = self.expect_success(&what, response).await?;
        self.body(&what, response).await
    }

    async fn body(
        &self,
        what: &str,
        response: reqwest::Response,
    ) -> Result<Vec<u8>, OciImageError> {
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|source| OciImageError::Request {
                registry: self.registry.host().to_owned(),
                what: what.to_owned(),
                source,
            })
    }
}
