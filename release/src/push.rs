//! Pushes the images of a layout folder to a registry with `oci-client`: blobs the
//! registry lacks, then the manifest exactly as stored (so its digest is the layout's),
//! then a check that the registry serves that digest for the tag.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderValue;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::layout::{OCI_MANIFEST, StoredImage};

const USER_AGENT: &str = concat!("strata-image/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{reference:?} is not a valid image reference: {reason}")]
    Reference { reference: String, reason: String },
    #[error("cannot read the CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up a client for {registry}: {reason}")]
    Client { registry: String, reason: String },
    #[error("cannot authenticate to {registry} for pushing {reference}: {reason}")]
    Auth {
        registry: String,
        reference: String,
        reason: String,
    },
    #[error("cannot read the blob {path} to push to {reference}: {source}")]
    ReadBlob {
        reference: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pushing the blob {digest} to {reference} failed: {reason}")]
    Blob {
        reference: String,
        digest: String,
        reason: String,
    },
    #[error("pushing the manifest {reference} failed: {reason}")]
    Manifest { reference: String, reason: String },
    #[error("{reference} was pushed as {pushed}, but the registry now serves {served}")]
    DigestMismatch {
        reference: String,
        pushed: String,
        served: String,
    },
}

/// Where and how to push.
#[derive(Debug, Clone)]
pub struct Destination {
    /// `REGISTRY/PREFIX`: images go to `REGISTRY/PREFIX/<name>:<tag>`.
    pub to: String,
    pub tag: String,
    pub ca_file: Option<PathBuf>,
    pub plain_http: bool,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Pushes images to one registry.
pub struct Pusher {
    client: Client,
    auth: RegistryAuth,
    destination: Destination,
}

impl Pusher {
    pub fn new(destination: Destination) -> Result<Pusher, PushError> {
        let registry = registry_of(&destination.to).to_owned();
        let mut extra_root_certificates = Vec::new();
        if let Some(path) = &destination.ca_file {
            let data = std::fs::read(path).map_err(|source| PushError::CaFile {
                path: path.clone(),
                source,
            })?;
            extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        // reqwest is built without a crypto provider and panics without a process-wide
        // one; Err means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = ClientConfig {
            protocol: if destination.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates,
            platform_resolver: None,
            // One PUT per blob: every registry takes it, and there is no chunk size to
            // get wrong.
            use_monolithic_push: true,
            connect_timeout: Some(Duration::from_secs(10)),
            // Between reads, not for a whole upload.
            read_timeout: Some(Duration::from_secs(120)),
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        };
        // try_from, not new: new() falls back to a default configuration, without the
        // CA, when this one is unusable.
        let client = Client::try_from(config).map_err(|e| PushError::Client {
            registry: registry.clone(),
            reason: error_chain(&e),
        })?;
        let auth = match (&destination.username, &destination.password) {
            (Some(user), password) => {
                RegistryAuth::Basic(user.clone(), password.clone().unwrap_or_default())
            }
            (None, _) => RegistryAuth::Anonymous,
        };
        Ok(Pusher {
            client,
            auth,
            destination,
        })
    }

    /// `REGISTRY/PREFIX/<name>:<tag>`.
    pub fn reference_text(&self, name: &str) -> String {
        format!("{}/{name}:{}", self.destination.to, self.destination.tag)
    }

    /// Pushes `image` as `<to>/<name>:<tag>`; the manifest's digest.
    pub async fn push(&self, name: &str, image: &StoredImage) -> Result<String, PushError> {
        let text = self.reference_text(name);
        let reference: Reference = text.parse().map_err(|e| PushError::Reference {
            reference: text.clone(),
            reason: error_chain(&e),
        })?;
        let registry = reference.resolve_registry().to_owned();
        // Explicitly, so that an unreachable registry or refused credentials are an error
        // of their own: oci-client otherwise drops authentication errors, and the push
        // fails later with a bare 401.
        self.client
            .auth(&reference, &self.auth, RegistryOperation::Push)
            .await
            .map_err(|e| PushError::Auth {
                registry: registry.clone(),
                reference: text.clone(),
                reason: error_chain(&e),
            })?;
        for (descriptor, path) in &image.blobs {
            let blob_error = |e: &dyn std::error::Error| PushError::Blob {
                reference: text.clone(),
                digest: descriptor.digest.clone(),
                reason: error_chain(e),
            };
            let present = self
                .client
                .blob_exists(&reference, &descriptor.digest)
                .await
                .map_err(|e| blob_error(&e))?;
            if present {
                eprintln!("  {} already in {registry}", short(&descriptor.digest));
                continue;
            }
            let data = read(&text, path).await?;
            eprintln!(
                "  pushing {} ({})",
                short(&descriptor.digest),
                human_size(descriptor.size)
            );
            self.client
                .push_blob(&reference, data, &descriptor.digest)
                .await
                .map_err(|e| blob_error(&e))?;
        }
        self.client
            .push_manifest_raw(
                &reference,
                image.manifest_bytes.clone(),
                HeaderValue::from_static(OCI_MANIFEST),
            )
            .await
            .map_err(|e| PushError::Manifest {
                reference: text.clone(),
                reason: error_chain(&e),
            })?;
        let served = self
            .client
            .fetch_manifest_digest(&reference, &self.auth)
            .await
            .map_err(|e| PushError::Manifest {
                reference: text.clone(),
                reason: format!("reading the tag back: {}", error_chain(&e)),
            })?;
        if served != image.manifest.digest {
            return Err(PushError::DigestMismatch {
                reference: text,
                pushed: image.manifest.digest.clone(),
                served,
            });
        }
        Ok(served)
    }
}

/// The registry part of `REGISTRY/PREFIX` (all of it without a prefix).
fn registry_of(to: &str) -> &str {
    to.split_once('/').map_or(to, |(registry, _)| registry)
}

async fn read(reference: &str, path: &Path) -> Result<Vec<u8>, PushError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| PushError::ReadBlob {
            reference: reference.to_owned(),
            path: path.to_path_buf(),
            source,
        })
}

/// `sha256:0123456789ab`: enough to tell blobs apart in progress lines.
fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

pub fn human_size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB)
    }
}

/// An error and its causes on one line (the TLS or HTTP reason is in the sources).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_the_first_part_of_the_destination() {
        assert_eq!(registry_of("127.0.0.1:5000/strata"), "127.0.0.1:5000");
        assert_eq!(registry_of("registry.local/a/b"), "registry.local");
        assert_eq!(registry_of("registry.local"), "registry.local");
    }

    #[test]
    fn sizes_are_readable() {
        assert_eq!(human_size(512), "0.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
    }
}
