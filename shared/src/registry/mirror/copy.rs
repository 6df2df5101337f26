//! Copying one pack or image, manifest tree and blobs, from a repository of one registry to
//! a repository of another, by digest:
//!
//! - manifests and indexes are copied as the bytes the source served, with their media
//!   type, so their digest is the same at the target; an index's child manifests go first,
//!   an image manifest's config and layers before the manifest (registries refuse a
//!   manifest whose parts they lack);
//! - blobs are streamed from source to target, never held whole, and checked while they
//!   flow ([`super::verified_stream`]);
//! - whatever the target already holds (HEAD) is skipped: a manifest the target has under
//!   the same digest (and tag) was only pushed after its parts, so its whole tree is
//!   skipped; that is what makes a rerun resume.

use std::future::Future;
use std::pin::Pin;

use tracing::{Instrument, debug, info_span};

use crate::registry::client::objects::{ManifestPresence, RawManifest, is_digest, object_error};
use crate::registry::client::{PackRegistryClient, RegistryError};
use crate::registry::failure::Failure;
use crate::registry::mirror::manifest_refs::{
    ManifestRefs, ManifestRefsError, Referenced, read_manifest,
};
use crate::registry::mirror::progress::{MirrorEvent, Tally};
use crate::registry::mirror::retry::{Hosts, Side, SidedFailure, retrying};
use crate::registry::mirror::verified_stream::{
    StreamProblem, StreamReport, response_pieces, verified,
};

/// Why a pack or image could not be copied. `object` names it (`pack istio:1.6.2`, `image
/// docker.io/library/nginx:1.25`).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{object}: {registry} has no {reference} (looked for in {repository})")]
    Missing {
        object: String,
        registry: String,
        repository: String,
        reference: String,
    },
    #[error(
        "{object}: {registry} serves bytes for the {what} {expected} that hash to {found}; \
         nothing of it was written to the target"
    )]
    DigestMismatch {
        object: String,
        registry: String,
        /// `manifest`, `blob`.
        what: &'static str,
        expected: String,
        found: String,
    },
    #[error("{object}: reading {reference} from {registry} failed: {source}")]
    Source {
        object: String,
        registry: String,
        reference: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("{object}: {action} at the target {registry} failed{}: {source}", http_status(*status))]
    Target {
        object: String,
        registry: String,
        /// `pushing the blob sha256:…`, `pushing the manifest sha256:… as :1.25`, …
        action: String,
        /// The HTTP status of the refusal, when it was one.
        status: Option<u16>,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("{object}: its manifest {digest} in {registry} cannot be copied: {source}")]
    NotCopyable {
        object: String,
        registry: String,
        digest: String,
        #[source]
        source: Box<ManifestRefsError>,
    },
}

fn http_status(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

/// `host/repository:tag` or `host/repository@digest`.
pub fn whole_reference(host: &str, repository: &str, reference: &str) -> String {
    let separator = if is_digest(reference) { '@' } else { ':' };
    format!("{host}/{repository}{separator}{reference}")
}

/// What to do with a manifest, given what the target holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManifestAction {
    /// The target holds it (under its tag, when it has one): nothing to do.
    Skip,
    /// The target holds it, but the tag is missing or points elsewhere: put the tag.
    Tag,
    /// The target lacks it: copy its tree.
    Copy,
}

/// `by_digest`: a HEAD of the manifest's digest at the target; `by_tag`: a HEAD of the tag
/// it goes under (None when it goes under its digest only).
pub(crate) fn manifest_action(
    digest: &str,
    by_digest: &ManifestPresence,
    by_tag: Option<&ManifestPresence>,
) -> ManifestAction {
    match (by_digest, by_tag) {
        (ManifestPresence::Absent, _) => ManifestAction::Copy,
        (ManifestPresence::Present { .. }, None) => ManifestAction::Skip,
        (
            ManifestPresence::Present { .. },
            Some(ManifestPresence::Present {
                digest: Some(tagged),
            }),
        ) if tagged == digest => ManifestAction::Skip,
        // A registry that does not say what a tag points to gets the tag again: cheap,
        // and a PUT of the same bytes changes nothing.
        (ManifestPresence::Present { .. }, Some(_)) => ManifestAction::Tag,
    }
}

/// One pack or image's way from a source repository to a target repository.
pub(crate) struct Route<'a> {
    pub(crate) object: String,
    pub(crate) source: &'a PackRegistryClient,
    pub(crate) source_repository: String,
    pub(crate) target: &'a PackRegistryClient,
    pub(crate) target_repository: String,
}

type Step<'a, T> = Pin<Box<dyn Future<Output = Result<T, CopyError>> + Send + 'a>>;

impl Route<'_> {
    fn hosts(&self) -> Hosts<'_> {
        Hosts {
            source: self.source.host(),
            target: self.target.host(),
        }
    }

    fn source_error(&self, reference: &str, failure: Failure) -> CopyError {
        let registry = self.source.host().to_owned();
        match failure {
            Failure::NotFound(_) => CopyError::Missing {
                object: self.object.clone(),
                registry,
                repository: self.source_repository.clone(),
                reference: reference.to_owned(),
            },
            Failure::Mismatch { expected, found } => CopyError::DigestMismatch {
                object: self.object.clone(),
                registry,
                what: "manifest",
                expected,
                found,
            },
            other => {
                let whole = whole_reference(&registry, &self.source_repository, reference);
                CopyError::Source {
                    object: self.object.clone(),
                    source: Box::new(object_error(
                        self.source,
                        &self.source_repository,
                        whole.clone(),
                        other,
                    )),
                    reference: whole,
                    registry,
                }
            }
        }
    }

    /// `pushing`: the failure answered a push, made after the same credentials read the
    /// target.
    fn target_error(&self, action: String, failure: Failure, pushing: bool) -> CopyError {
        let registry = self.target.host().to_owned();
        let reference = format!("{registry}/{}", self.target_repository);
        let status = match &failure {
            Failure::Unauthorized => Some(401),
            Failure::Forbidden => Some(403),
            Failure::NotFound(_) => Some(404),
            _ => None,
        };
        let failure = if pushing {
            refused_push(failure)
        } else {
            failure
        };
        CopyError::Target {
            object: self.object.clone(),
            source: Box::new(object_error(
                self.target,
                &self.target_repository,
                reference,
                failure,
            )),
            registry,
            action,
            status,
        }
    }

    fn sided_error(
        &self,
        reference: &str,
        action: String,
        pushing: bool,
        sided: SidedFailure,
    ) -> CopyError {
        match sided.side {
            Side::Source => self.source_error(reference, sided.failure),
            Side::Target => self.target_error(action, sided.failure, pushing),
        }
    }

    /// The manifest the source holds under `reference` (a tag or a digest), checked.
    async fn fetch_manifest(&self, reference: &str) -> Result<RawManifest, CopyError> {
        retrying(
            self.source.retry_policy(),
            &self.hosts(),
            "fetching a manifest",
            || async {
                self.source
                    .raw_manifest_once(&self.source_repository, reference)
                    .await
                    .map_err(SidedFailure::source)
            },
        )
        .await
        .map_err(|sided| self.source_error(reference, sided.failure))
    }

    async fn target_presence(&self, reference: &str) -> Result<ManifestPresence, CopyError> {
        retrying(
            self.target.retry_policy(),
            &self.hosts(),
            "checking the target",
            || async {
                self.target
                    .manifest_presence_once(&self.target_repository, reference)
                    .await
                    .map_err(SidedFailure::target)
            },
        )
        .await
        .map_err(|sided| {
            self.target_error(
                format!("looking up the manifest {reference}"),
                sided.failure,
                false,
            )
        })
    }

    async fn put_manifest(
        &self,
        manifest: &RawManifest,
        media_type: &str,
        reference: &str,
    ) -> Result<(), CopyError> {
        let action = if reference == manifest.digest {
            format!("pushing the manifest {}", manifest.digest)
        } else {
            format!("pushing the manifest {} as :{reference}", manifest.digest)
        };
        retrying(
            self.target.retry_policy(),
            &self.hosts(),
            "pushing a manifest",
            || async {
                self.target
                    .push_raw_manifest_once(
                        &self.target_repository,
                        reference,
                        manifest.bytes.clone(),
                        media_type,
                    )
                    .await
                    .map_err(SidedFailure::target)
            },
        )
        .await
        .map_err(|sided| self.target_error(action, sided.failure, true))
    }
}

/// A push refused with 401 after the same credentials just read the target (the HEAD
/// before it) is a registry refusing the push: the account may read, not write.
fn refused_push(failure: Failure) -> Failure {
    match failure {
        Failure::Unauthorized => Failure::Forbidden,
        other => other,
    }
}

/// Copies routes, counting and reporting as it goes.
pub(crate) struct Copier<'o> {
    pub(crate) observer: &'o (dyn Fn(&MirrorEvent) + Send + Sync),
    pub(crate) tally: Tally,
}

impl Copier<'_> {
    /// Copies what the source holds under `source_reference` (tag or digest) to the target,
    /// under `target_reference` (tag or digest); the manifest's digest.
    pub(crate) async fn copy(
        &mut self,
        route: &Route<'_>,
        source_reference: &str,
        target_reference: &str,
    ) -> Result<String, CopyError> {
        let span = info_span!(
            "mirror.copy",
            object = %route.object,
            source = %route.source.host(),
            target = %route.target.host(),
        );
        async {
            let manifest = route.fetch_manifest(source_reference).await?;
            let digest = manifest.digest.clone();
            self.copy_tree(route, manifest, target_reference.to_owned())
                .await?;
            Ok(digest)
        }
        .instrument(span)
        .await
    }

    /// A manifest and everything below it; boxed, as an index recurses into its children.
    fn copy_tree<'a>(
        &'a mut self,
        route: &'a Route<'_>,
        manifest: RawManifest,
        target_reference: String,
    ) -> Step<'a, ()> {
        Box::pin(async move {
            let by_digest = route.target_presence(&manifest.digest).await?;
            let by_tag = if target_reference == manifest.digest {
                None
            } else if by_digest == ManifestPresence::Absent {
                // Absent by digest: copied whatever the tag says.
                Some(ManifestPresence::Absent)
            } else {
                Some(route.target_presence(&target_reference).await?)
            };
            let action = manifest_action(&manifest.digest, &by_digest, by_tag.as_ref());
            let size = manifest.bytes.len() as u64;
            if action == ManifestAction::Skip {
                self.tally.manifests_skipped += 1;
                self.tally.bytes_skipped += size;
                (self.observer)(&MirrorEvent::ManifestSkipped {
                    digest: manifest.digest.clone(),
                });
                return Ok(());
            }
            let read = read_manifest(&manifest.bytes, manifest.content_type.as_deref()).map_err(
                |source| CopyError::NotCopyable {
                    object: route.object.clone(),
                    registry: route.source.host().to_owned(),
                    digest: manifest.digest.clone(),
                    source: Box::new(source),
                },
            )?;
            if action == ManifestAction::Copy {
                match &read.refs {
                    ManifestRefs::Index { manifests } => {
                        for child in manifests {
                            let child_manifest = route.fetch_manifest(&child.digest).await?;
                            let digest = child_manifest.digest.clone();
                            self.copy_tree(route, child_manifest, digest).await?;
                        }
                    }
                    ManifestRefs::Image { blobs } => {
                        for blob in blobs {
                            self.copy_blob(route, blob).await?;
                        }
                    }
                }
            }
            route
                .put_manifest(&manifest, &read.media_type, &target_reference)
                .await?;
            self.tally.manifests_copied += 1;
            self.tally.bytes_copied += size;
            (self.observer)(&MirrorEvent::ManifestCopied {
                digest: manifest.digest.clone(),
                reference: target_reference,
            });
            Ok(())
        })
    }

    async fn copy_blob(&mut self, route: &Route<'_>, blob: &Referenced) -> Result<(), CopyError> {
        let size = u64::try_from(blob.size).unwrap_or_default();
        if blob.is_foreign() {
            debug!(digest = %blob.digest, "a non-distributable layer: not copied");
            return Ok(());
        }
        let hosts = route.hosts();
        let exists = retrying(
            route.target.retry_policy(),
            &hosts,
            "checking the target for a blob",
            || async {
                route
                    .target
                    .has_blob_once(&route.target_repository, &blob.digest)
                    .await
                    .map_err(SidedFailure::target)
            },
        )
        .await
        .map_err(|sided| {
            route.sided_error(
                &blob.digest,
                format!("looking up the blob {}", blob.digest),
                false,
                sided,
            )
        })?;
        if exists {
            self.tally.blobs_skipped += 1;
            self.tally.bytes_skipped += size;
            (self.observer)(&MirrorEvent::BlobSkipped {
                digest: blob.digest.clone(),
                bytes: size,
            });
            return Ok(());
        }
        let copied = retrying(
            route.target.retry_policy(),
            &hosts,
            "copying a blob",
            || stream_blob_once(route, &blob.digest, size),
        )
        .await;
        match copied {
            Ok(()) => {}
            Err(SidedFailure {
                side: Side::Source,
                failure: Failure::Mismatch { expected, found },
            }) => {
                return Err(CopyError::DigestMismatch {
                    object: route.object.clone(),
                    registry: route.source.host().to_owned(),
                    what: "blob",
                    expected,
                    found,
                });
            }
            Err(sided) => {
                let action = format!("pushing the blob {}", blob.digest);
                return Err(route.sided_error(&blob.digest, action, true, sided));
            }
        }
        self.tally.blobs_copied += 1;
        self.tally.bytes_copied += size;
        (self.observer)(&MirrorEvent::BlobCopied {
            digest: blob.digest.clone(),
            bytes: size,
        });
        Ok(())
    }
}

/// One attempt at streaming a blob from the source into the target.
async fn stream_blob_once(route: &Route<'_>, digest: &str, size: u64) -> Result<(), SidedFailure> {
    let response = route
        .source
        .blob_response_once(&route.source_repository, digest)
        .await
        .map_err(SidedFailure::source)?;
    if let Some(length) = response.content_length()
        && length != size
    {
        return Err(SidedFailure::source(Failure::Protocol(format!(
            "the source announces {length} bytes for the blob {digest}, whose manifest declares {size}"
        ))));
    }
    let report = StreamReport::default();
    let data = verified(response_pieces(response), digest, size, report.clone());
    let pushed = route
        .target
        .push_blob_stream_once(&route.target_repository, digest, size, data)
        .await;
    // What the stream saw explains a failed upload better than the upload's own error.
    match (report.problem(), pushed) {
        (Some(StreamProblem::Mismatch { found }), _) => {
            Err(SidedFailure::source(Failure::Mismatch {
                expected: digest.to_owned(),
                found,
            }))
        }
        (Some(StreamProblem::Source { received, reason }), _) => {
            Err(SidedFailure::source(Failure::Transient {
                message: format!(
                    "the blob {digest} broke off after {received} of {size} bytes: {reason}"
                ),
                exhausted: None,
            }))
        }
        (Some(StreamProblem::Short { received }), _) => {
            Err(SidedFailure::source(Failure::Transient {
                message: format!("the source sent {received} of the {size} bytes of {digest}"),
                exhausted: None,
            }))
        }
        (Some(StreamProblem::Long { received }), _) => {
            Err(SidedFailure::source(Failure::Protocol(format!(
                "the source sent {received} bytes or more for {digest}, whose manifest declares {size}"
            ))))
        }
        (None, Err(failure)) => Err(SidedFailure::target(failure)),
        (None, Ok(())) => {
            debug!(digest, size, received = report.received(), "blob copied");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const D: &str = "sha256:aaaa";

    fn present(digest: Option<&str>) -> ManifestPresence {
        ManifestPresence::Present {
            digest: digest.map(str::to_owned),
        }
    }

    #[test]
    fn copies_what_the_target_lacks_and_skips_what_it_holds() {
        use ManifestAction::*;
        let absent = ManifestPresence::Absent;
        // Not there: copied, whatever the tag.
        assert_eq!(manifest_action(D, &absent, None), Copy);
        assert_eq!(manifest_action(D, &absent, Some(&present(Some(D)))), Copy);
        // There by digest, wanted by digest only.
        assert_eq!(manifest_action(D, &present(Some(D)), None), Skip);
        // There, and the tag points to it.
        assert_eq!(
            manifest_action(D, &present(None), Some(&present(Some(D)))),
            Skip
        );
        // There, but the tag is missing, elsewhere, or not said.
        assert_eq!(manifest_action(D, &present(None), Some(&absent)), Tag);
        assert_eq!(
            manifest_action(D, &present(None), Some(&present(Some("sha256:bbbb")))),
            Tag
        );
        assert_eq!(
            manifest_action(D, &present(None), Some(&present(None))),
            Tag
        );
    }
}
