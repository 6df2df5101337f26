//! Pushing a pack: the archive, the `{}` config and the manifest. The archive is made in
//! one pass that also yields both its digests (content and layer), and uploaded as it is
//! made (`Transport::start_upload`), so that the upload takes little longer than the
//! archiving or the transfer alone. Kept in memory as well: a registry that refuses the
//! streamed upload, or a failed attempt, gets it whole from `oci-client`, which also
//! uploads the config and the manifest, with authentication decided here (see
//! `Transport::upload_auth`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use bytes::Bytes;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::manifest::OCI_IMAGE_MEDIA_TYPE;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use super::archive_chunks::{ArchiveChunks, CHUNKS_AHEAD, ChunkItem};
use super::{
    CONTENT_DIGEST_ANNOTATION, PACK_CONFIG, PACK_CONFIG_MEDIA_TYPE, PACK_LAYER_MEDIA_TYPE,
    PackDescriptor, PackRegistryClient, PushedPack, RegistryError, TITLE_ANNOTATION, USER_AGENT,
};
use crate::pack::archive::{PACK_COMPRESSION, archive_pack_to, sha256_digest};
use crate::registry::failure::{Failure, classify, error_chain};

/// The manifest exactly as pushed. Own types rather than `OciImageManifest` so that the
/// bytes (and so the digest) depend on nothing but the pack.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u8,
    media_type: &'a str,
    config: DescriptorOut<'a>,
    layers: [DescriptorOut<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorOut<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'a str, &'a str>>,
}

/// An `oci-client` for one upload attempt. A fresh one each time: `oci-client` keeps the
/// first authentication it is given per registry, and a token is for one repository.
pub(super) async fn upload_client(
    config: ClientConfig,
    reference: &Reference,
    auth: RegistryAuth,
) -> Result<Client, Failure> {
    // try_from, not new: new() silently falls back to a default configuration (which
    // would drop the CA) when the configuration is unusable.
    let client = Client::try_from(config).map_err(|e| {
        Failure::Protocol(format!(
            "cannot set up the upload client: {}",
            error_chain(&e)
        ))
    })?;
    client
        .store_auth_if_needed(reference.resolve_registry(), &auth)
        .await;
    Ok(client)
}

impl PackRegistryClient {
    /// The `oci-client` configuration for uploads: this registry's scheme and CA.
    pub(super) fn upload_config(&self) -> ClientConfig {
        let mut extra_root_certificates = Vec::new();
        if let Some(pem) = &self.options.ca_pem {
            extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.as_bytes().to_vec(),
            });
        }
        ClientConfig {
            protocol: if self.options.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates,
            platform_resolver: None,
            // One PUT per blob: fewer round trips than chunks, and every registry takes it.
            use_monolithic_push: true,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            // Between reads, not for a whole upload: large packs take what they take.
            read_timeout: Some(std::time::Duration::from_secs(60)),
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        }
    }

    pub(super) async fn push_inner(
        &self,
        dir: PathBuf,
        name: String,
        version: String,
        reference: Reference,
        force: bool,
    ) -> Result<PushedPack, RegistryError> {
        let context = self.context(&reference);
        let root = name.clone();
        let limit = self.options.max_pack_bytes;
        let (chunk_sender, chunks) = mpsc::channel(CHUNKS_AHEAD);
        let (digest_sender, layer_digest_at_end) = oneshot::channel();
        // Both digests come out of the one pass that archives the pack; the bytes go to
        // the streamed upload as they are made.
        let archiving = async {
            tokio::task::spawn_blocking(move || {
                let sink = ArchiveChunks::new(chunk_sender, limit);
                let written = archive_pack_to(&dir, &root, PACK_COMPRESSION, sink)?;
                let kept = written.out.finish();
                if kept.size <= limit {
                    // The upload may be gone already (it failed): the kept chunks serve.
                    let _ = digest_sender.send(written.layer_digest.clone());
                }
                Ok((kept, written.content_digest, written.layer_digest))
            })
            .await
            .map_err(|e| RegistryError::Protocol {
                reference: context.reference.clone(),
                message: format!("archiving the pack was interrupted: {e}"),
            })?
            .map_err(|source| RegistryError::Archive {
                reference: context.reference.clone(),
                source,
            })
        };
        // Check-then-push: two pushers racing on one tag can both pass; the registry
        // keeps the last, as it would with force. Nothing is uploaded before the check.
        let checking_then_streaming = async {
            let existing = self
                .retrying("checking whether the tag exists", || async {
                    match self.manifest_once(&reference).await {
                        Ok((_, digest)) => Ok(Some(digest)),
                        Err(Failure::NotFound(_)) => Ok(None),
                        Err(failure) => Err(failure),
                    }
                })
                .await;
            let streamed = match &existing {
                Ok(None) => true,
                Ok(Some(_)) => force,
                Err(_) => false,
            };
            if !streamed {
                return (existing, None);
            }
            let upload = self
                .stream_layer(&reference, chunks, layer_digest_at_end)
                .await;
            (existing, Some(upload))
        };
        // The first whole-blob upload's client and credentials; the attempt sets them up
        // itself when this failed (and reports why).
        let preparing = async {
            let auth = self.transport.upload_auth(reference.repository()).await?;
            upload_client(self.upload_config(), &reference, auth).await
        };
        // None waits for the others: the registry's round trips, the client's set-up and
        // the layer's upload happen while the pack is archived, not after.
        let (archive, (existing, streamed), prepared) =
            tokio::join!(archiving, checking_then_streaming, preparing);
        let (kept, content_digest, layer_digest) = archive?;
        let size = kept.size;
        if size > limit {
            return Err(RegistryError::TooLarge {
                reference: context.reference,
                size,
                limit,
            });
        }
        let config_digest = sha256_digest(PACK_CONFIG);
        let file_name = format!("{name}-{version}.tar.gz");
        let manifest = serde_json::to_vec(&ManifestOut {
            schema_version: 2,
            media_type: OCI_IMAGE_MEDIA_TYPE,
            config: DescriptorOut {
                media_type: PACK_CONFIG_MEDIA_TYPE,
                digest: &config_digest,
                size: PACK_CONFIG.len() as u64,
                annotations: None,
            },
            layers: [DescriptorOut {
                media_type: PACK_LAYER_MEDIA_TYPE,
                digest: &layer_digest,
                size,
                annotations: Some(BTreeMap::from([
                    (TITLE_ANNOTATION, file_name.as_str()),
                    (CONTENT_DIGEST_ANNOTATION, content_digest.as_str()),
                ])),
            }],
        })
        .map_err(|e| RegistryError::Protocol {
            reference: context.reference.clone(),
            message: format!("cannot serialize the manifest: {e}"),
        })?;
        let manifest_digest = sha256_digest(&manifest);

        let existing = existing.map_err(|f| context.error(f))?;
        if existing.is_some() && !force {
            return Err(RegistryError::Exists {
                reference: context.reference,
            });
        }
        let layer_uploaded = match streamed {
            Some(Ok(())) => true,
            Some(Err(failure)) => {
                info!(error = %failure, "the registry did not take the layer as a stream; uploading it whole");
                false
            }
            None => false,
        };
        let layer = (!layer_uploaded).then(|| kept.whole());
        drop(kept);

        let manifest = Bytes::from(manifest);
        let prepared = Mutex::new(prepared.ok());
        self.retrying("uploading", || async {
            let first = prepared.lock().ok().and_then(|mut first| first.take());
            let uploader = match first {
                Some(uploader) => uploader,
                // Each further attempt: the token may have expired during a slow upload.
                None => {
                    let auth = self.transport.upload_auth(reference.repository()).await?;
                    upload_client(self.upload_config(), &reference, auth).await?
                }
            };
            if let Some(layer) = &layer {
                uploader
                    .push_blob(&reference, layer.clone(), &layer_digest)
                    .await
                    .map_err(classify)?;
            }
            uploader
                .push_blob(&reference, Bytes::from_static(PACK_CONFIG), &config_digest)
                .await
                .map_err(classify)?;
            let content_type = OCI_IMAGE_MEDIA_TYPE
                .parse()
                .map_err(|e| Failure::Protocol(format!("invalid content type: {e}")))?;
            uploader
                .push_manifest_raw(&reference, manifest.clone(), content_type)
                .await
                .map_err(classify)
        })
        .await
        // The existence check just succeeded with these credentials, so a 401 now is a
        // token registry refusing the push scope: the account may read, not write.
        .map_err(|f| match f {
            Failure::Unauthorized => context.error(Failure::Forbidden),
            other => context.error(other),
        })?;

        let replaced = existing.is_some_and(|digest| digest != manifest_digest);
        info!(%manifest_digest, %content_digest, %layer_digest, size, replaced, "pushed pack");
        Ok(PushedPack {
            descriptor: PackDescriptor {
                reference: context.reference,
                manifest_digest,
                layer_digest,
                content_digest: Some(content_digest),
                layer_size: size,
                file_name,
            },
            replaced,
        })
    }

    /// The layer uploaded as it is archived: the upload opened, the chunks sent in one
    /// request as they come, then committed under the digest known once the last one is
    /// made. A failure leaves nothing committed; the caller then uploads the blob whole.
    async fn stream_layer(
        &self,
        reference: &Reference,
        chunks: mpsc::Receiver<ChunkItem>,
        layer_digest_at_end: oneshot::Receiver<String>,
    ) -> Result<(), Failure> {
        let repository = reference.repository();
        let location = self.transport.start_upload(repository).await?;
        let stream = futures_util::stream::unfold(chunks, |mut chunks| async move {
            chunks.recv().await.map(|item| (item, chunks))
        });
        let location = self
            .transport
            .send_upload(&location, repository, reqwest::Body::wrap_stream(stream))
            .await?;
        let digest = layer_digest_at_end.await.map_err(|_| {
            Failure::Protocol("the archive was not finished; nothing committed".to_owned())
        })?;
        self.transport
            .commit_upload(&location, repository, &digest)
            .await
    }
}
