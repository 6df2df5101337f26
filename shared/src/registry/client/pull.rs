//! Fetching a pack's archive, and pulling or inspecting a pack: from the cache when it is
//! there, else downloaded within the deadline; unpacked off the async runtime.

use std::path::Path;

use oci_client::Reference;
use tracing::{Instrument, info, info_span};

use super::unpack::{UnpackJob, blocking, cached, check_destination, store};
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
            store(&descriptor.layer_digest, bytes, cache).await
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
            let (descriptor, bytes, from_cache) = self
                .resolved_bytes(name, version, &reference, cache)
                .await?;
            let limits = self.archive_limits();
            let job = UnpackJob {
                reference: descriptor.reference.clone(),
                name: name.to_owned(),
                version: version.to_owned(),
                limits,
            };
            let dest_owned = dest.to_path_buf();
            let bytes = blocking(&descriptor.reference, move || {
                job.pull_into(&bytes, &dest_owned).map(|()| bytes)
            })
            .await?;
            if !from_cache {
                store(&descriptor.layer_digest, bytes, cache).await?;
            }
            info!(digest = %descriptor.layer_digest, "pulled pack");
            Ok(PulledPack {
                descriptor,
                dir: dest.to_path_buf(),
            })
        }
        .instrument(span)
        .await
    }

    /// Pulls `name:version` pinned to the archive digest `pinned` (`sha256:…`, as a
    /// revision holds it) into `dest`, as `pull` does. The cache is asked first by the
    /// pinned digest alone, so a site whose registry is unreachable still gets every pack it
    /// cached; otherwise the registry's archive must be exactly the pinned one, or nothing is
    /// downloaded ([`RegistryError::PinChanged`]). Returns whether the cache served it.
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
            let by_pin = PackDescriptor {
                reference: reference_text.clone(),
                manifest_digest: String::new(),
                layer_digest: pinned.to_owned(),
                layer_size: 0,
                file_name: String::new(),
            };
            let (bytes, from_cache) = match cached(&by_pin, cache).await? {
                Some(bytes) => (bytes, true),
                None => {
                    let work = async {
                        let descriptor = self.resolve_inner(name, version, &reference).await?;
                        if descriptor.layer_digest != pinned {
                            return Err(RegistryError::PinChanged {
                                reference: reference_text.clone(),
                                pinned: pinned.to_owned(),
                                found: descriptor.layer_digest,
                            });
                        }
                        self.download(&descriptor).await
                    };
                    (self.within_deadline(&reference_text, work).await?, false)
                }
            };
            let job = UnpackJob {
                reference: reference_text.clone(),
                name: name.to_owned(),
                version: version.to_owned(),
                limits: self.archive_limits(),
            };
            let dest_owned = dest.to_path_buf();
            let bytes = blocking(&reference_text, move || {
                job.pull_into(&bytes, &dest_owned).map(|()| bytes)
            })
            .await?;
            // Cached only once it proved to be a valid pack of this name and version.
            if !from_cache {
                store(pinned, bytes, cache).await?;
            }
            info!(from_cache, "pulled pinned pack");
            Ok(PinnedPull {
                dir: dest.to_path_buf(),
                from_cache,
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
            };
            let (manifest, bytes) = blocking(&descriptor.reference, move || {
                job.inspect(&bytes).map(|manifest| (manifest, bytes))
            })
            .await?;
            if !from_cache {
                store(&descriptor.layer_digest, bytes, cache).await?;
            }
            Ok((descriptor, manifest))
        }
        .instrument(span)
        .await
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
