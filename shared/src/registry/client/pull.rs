//! Fetching a pack's archive, and pulling or inspecting a pack: from the cache when it is
//! there, else downloaded within the deadline; unpacked off the async runtime, computing
//! the pack's content digest on the way.

use std::path::Path;

use oci_client::Reference;
use tracing::{Instrument, debug, info, info_span, warn};

use super::unpack::{
    CachedBy, UnpackJob, blocking, cached, cached_pin, check_destination, forget_content, index,
    store, store_blob,
};
use super::{PackDescriptor, PackRegistryClient, PinnedPull, PulledPack, RegistryError};
use crate::pack::archive::ArchiveLimits;
use crate::pack::manifest::PackManifest;
use crate::registry::cache::PackCache;

impl PackRegistryClient {
    /// The pack archive `descriptor` names: from `cache` when there (verified), else
    /// downloaded (within the deadline), verified and put in `cache`.
    pub async fn fetch(
        &self,
        descriptor: &PackDescriptor,
        cache: Option<&PackCache>,
    ) -> Result<Vec<u8>, RegistryError> {
        let span = info_span!("registry.fetch", reference = %descriptor.reference);
        async {
            if let Some(bytes) = cached(descriptor, cache).await? {
                return Ok(bytes);
            }
            let bytes = self
                .within_deadline(&descriptor.reference, self.download(descriptor))
                .await?;
            // Not unpacked here, so not indexed by content: pulls index what they unpack.
            store_blob(&descriptor.layer_digest, bytes, cache).await
        }
        .instrument(span)
        .await
    }

    /// Downloads `name:version` and unpacks it into `dest` (missing or an empty folder),
    /// which only ever appears holding a complete, valid pack: everything happens in a
    /// staging folder next to it, renamed into place at the end.
    pub async fn pull(
        &self,
        name: &str,
        version: &str,
        dest: &Path,
        cache: Option<&PackCache>,
    ) -> Result<PulledPack, RegistryError> {
        let reference = self.address.reference(name, version)?;
        let span =
            info_span!("registry.pull", reference = %reference.whole(), dest = %dest.display());
        async {
            let reference_text = reference.whole();
            check_destination(dest).map_err(|source| RegistryError::Archive {
                reference: reference_text.clone(),
                source,
            })?;
            let (descriptor, content_digest, bytes, from_cache) = self
                .resolve_and_unpack(name, version, &reference, None, dest, cache)
                .await?;
            if from_cache {
                index(&descriptor.layer_digest, &content_digest, cache).await?;
            } else {
                store(&descriptor.layer_digest, &content_digest, bytes, cache).await?;
            }
            info!(%content_digest, layer_digest = %descriptor.layer_digest, "pulled pack");
            Ok(PulledPack {
                descriptor: PackDescriptor {
                    content_digest: Some(content_digest.clone()),
                    ..descriptor
                },
                dir: dest.to_path_buf(),
                content_digest,
            })
        }
        .instrument(span)
        .await
    }

    /// Pulls `name:version` pinned to the content digest `pinned` (`sha256:…`, as a
    /// revision holds it) into `dest`, as `pull` does, and only if what it unpacks to hashes
    /// to the pin ([`RegistryError::PinChanged`] otherwise, before anything is at `dest` or
    /// cached). The cache is asked first by the pin alone, so a site whose registry is
    /// unreachable still gets every pack it cached; otherwise the tag is resolved, the layer
    /// downloaded (verified against the layer digest its manifest names), decompressed,
    /// hashed and unpacked in one pass. Whatever the manifest's annotations claim is not
    /// looked at.
    ///
    /// Migration: revisions published before content digests pin the layer digest (the
    /// compressed archive's). Such a pin is still honoured when it is exactly the layer the
    /// cache or the registry holds (the download is verified against it), so clusters keep
    /// installing until the controller publishes revisions with content digests.
    pub async fn pull_pinned(
        &self,
        name: &str,
        version: &str,
        pinned: &str,
        dest: &Path,
        cache: Option<&PackCache>,
    ) -> Result<PinnedPull, RegistryError> {
        let reference = self.address.reference(name, version)?;
        let reference_text = reference.whole();
        let span = info_span!("registry.pull_pinned", reference = %reference_text, %pinned);
        async {
            check_destination(dest).map_err(|source| RegistryError::Archive {
                reference: reference_text.clone(),
                source,
            })?;
            let job = |expected_content: Option<&str>| UnpackJob {
                reference: reference_text.clone(),
                name: name.to_owned(),
                version: version.to_owned(),
                limits: self.archive_limits(),
                expected_content: expected_content.map(str::to_owned),
            };
            let max_bytes = self.options.max_pack_bytes;
            if let Some((bytes, by)) = cached_pin(&reference_text, pinned, cache, max_bytes).await?
            {
                let legacy_pin = by == CachedBy::Layer;
                // A blob stored under the pin is that exact layer (verified on read); one
                // the content index names must still unpack to the pin.
                let job = job((!legacy_pin).then_some(pinned));
                let dest_owned = dest.to_path_buf();
                match blocking(&reference_text, move || job.pull_into(&bytes, &dest_owned)).await {
                    Ok(content_digest) => {
                        if legacy_pin {
                            debug!(%content_digest, "pinned by a legacy layer digest (cache)");
                        }
                        info!(from_cache = true, %content_digest, "pulled pinned pack");
                        return Ok(PinnedPull {
                            dir: dest.to_path_buf(),
                            from_cache: true,
                            content_digest,
                            legacy_pin,
                        });
                    }
                    // The index named a blob of other content (damaged on disk): forget it,
                    // and ask the registry as if nothing were cached.
                    Err(RegistryError::PinChanged { found, .. }) if !legacy_pin => {
                        warn!(
                            %found,
                            "the pack cache's index named a blob of other content; ignoring it"
                        );
                        forget_content(&reference_text, pinned, cache).await?;
                    }
                    Err(error) => return Err(error),
                }
            }
            // A blob the cache held under the manifest's layer digest is reused (`pull` and
            // `fetch` cache blobs too); the registry was asked all the same.
            let (descriptor, content_digest, bytes, blob_cached) = self
                .resolve_and_unpack(name, version, &reference, Some(pinned), dest, cache)
                .await?;
            // The blob was verified against the manifest's layer digest; a pin equal to it
            // is a legacy pin of exactly these bytes.
            let legacy_pin = descriptor.layer_digest == pinned;
            if legacy_pin {
                debug!(layer_digest = %descriptor.layer_digest, "pinned by a legacy layer digest");
            }
            // Cached only once it proved to be a valid pack of this name and version, and
            // the pinned one.
            if blob_cached {
                index(&descriptor.layer_digest, &content_digest, cache).await?;
            } else {
                store(&descriptor.layer_digest, &content_digest, bytes, cache).await?;
            }
            info!(from_cache = false, blob_cached, %content_digest, "pulled pinned pack");
            Ok(PinnedPull {
                dir: dest.to_path_buf(),
                from_cache: false,
                content_digest,
                legacy_pin,
            })
        }
        .instrument(span)
        .await
    }

    /// The descriptor and pack.json of `name:version`, validated like `pull` does.
    pub async fn inspect(
        &self,
        name: &str,
        version: &str,
        cache: Option<&PackCache>,
    ) -> Result<(PackDescriptor, PackManifest), RegistryError> {
        let reference = self.address.reference(name, version)?;
        let span = info_span!("registry.inspect", reference = %reference.whole());
        async {
            let (descriptor, bytes, from_cache) = self
                .resolved_bytes(name, version, &reference, cache)
                .await?;
            let job = UnpackJob {
                reference: descriptor.reference.clone(),
                name: name.to_owned(),
                version: version.to_owned(),
                limits: self.archive_limits(),
                expected_content: None,
            };
            let (manifest, content_digest, bytes) = blocking(&descriptor.reference, move || {
                job.inspect(&bytes)
                    .map(|(manifest, content_digest)| (manifest, content_digest, bytes))
            })
            .await?;
            if from_cache {
                index(&descriptor.layer_digest, &content_digest, cache).await?;
            } else {
                store(&descriptor.layer_digest, &content_digest, bytes, cache).await?;
            }
            let descriptor = PackDescriptor {
                content_digest: Some(content_digest),
                ..descriptor
            };
            Ok((descriptor, manifest))
        }
        .instrument(span)
        .await
    }

    /// Resolves `name:version` and unpacks its blob into `dest`: from the cache (by layer
    /// digest) when there, else unpacked while it downloads. With a `pin`, what it unpacks
    /// to must hash to it ([`RegistryError::PinChanged`]), unless the pin is the layer
    /// digest itself (a legacy pin: the blob is verified against it). Resolving and
    /// downloading are within the deadline; the last step of the unpack, moving the pack
    /// into place once the download verified, is not (it could not be stopped, and would
    /// move the pack after the error). The descriptor, the content digest, the blob, and
    /// whether the cache held it.
    async fn resolve_and_unpack(
        &self,
        name: &str,
        version: &str,
        reference: &Reference,
        pin: Option<&str>,
        dest: &Path,
        cache: Option<&PackCache>,
    ) -> Result<(PackDescriptor, String, Vec<u8>, bool), RegistryError> {
        let job = |descriptor: &PackDescriptor| UnpackJob {
            reference: descriptor.reference.clone(),
            name: name.to_owned(),
            version: version.to_owned(),
            limits: self.archive_limits(),
            expected_content: pin
                .filter(|pin| *pin != descriptor.layer_digest)
                .map(str::to_owned),
        };
        let work = async {
            let descriptor = self.resolve_inner(name, version, reference).await?;
            if let Some(bytes) = cached(&descriptor, cache).await? {
                return Ok((descriptor, bytes, None));
            }
            // Without a cache, nothing needs the blob once it is unpacked.
            let keep = cache.is_some();
            let downloaded = self
                .download_unpacking(&descriptor, job(&descriptor), dest.to_path_buf(), keep)
                .await?;
            Ok((descriptor, downloaded.bytes, Some(downloaded.unpacking)))
        };
        let (descriptor, bytes, streamed) = self.within_deadline(&reference.whole(), work).await?;
        let from_cache = streamed.is_none();
        if let Some(Some(unpack)) = streamed {
            let content_digest = unpack.finish().await?;
            return Ok((descriptor, content_digest, bytes, false));
        }
        // From the cache, or downloaded in more than one attempt: unpacked now.
        let job = job(&descriptor);
        let dest_owned = dest.to_path_buf();
        let (content_digest, bytes) = blocking(&descriptor.reference, move || {
            job.pull_into(&bytes, &dest_owned)
                .map(|content_digest| (content_digest, bytes))
        })
        .await?;
        Ok((descriptor, content_digest, bytes, from_cache))
    }

    /// The descriptor of `name:version` and its blob, from the cache or downloaded (and
    /// not yet cached: pull and inspect cache it once it proved to be a valid pack),
    /// within the deadline. Unpacking stays outside it: a job cut off mid-way could not
    /// be stopped, and would still move a pack into place after the error.
    async fn resolved_bytes(
        &self,
        name: &str,
        version: &str,
        reference: &Reference,
        cache: Option<&PackCache>,
    ) -> Result<(PackDescriptor, Vec<u8>, bool), RegistryError> {
        let work = async {
            let descriptor = self.resolve_inner(name, version, reference).await?;
            if let Some(bytes) = cached(&descriptor, cache).await? {
                return Ok((descriptor, bytes, true));
            }
            let bytes = self.download(&descriptor).await?;
            Ok((descriptor, bytes, false))
        };
        self.within_deadline(&reference.whole(), work).await
    }

    /// The blob limit bounds the unpacked content too, so a small gzip bomb cannot
    /// expand past what a pack may be.
    fn archive_limits(&self) -> ArchiveLimits {
        let defaults = ArchiveLimits::default();
        ArchiveLimits {
            max_total_bytes: self.options.max_pack_bytes,
            max_file_bytes: defaults.max_file_bytes.min(self.options.max_pack_bytes),
            max_entries: defaults.max_entries,
        }
    }
}
