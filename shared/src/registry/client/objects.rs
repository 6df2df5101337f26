//! Manifests and blobs of any repository of this client's registry, by tag or digest: what
//! copying between registries needs (`crate::registry::mirror`). Each call is one attempt;
//! the caller retries, because a blob copy spans two registries and one attempt has to
//! cover both.
//!
//! Reads go through Strata's transport (size limits, checked token realms); uploads through
//! `oci-client`, as pack pushes do.

use bytes::Bytes;
use futures_util::Stream;
use oci_client::Reference;
use reqwest::Response;

use super::manifest::ACCEPTED;
use super::push::upload_client;
use super::{PackRegistryClient, RegistryError};
use crate::pack::archive::sha256_digest;
use crate::registry::failure::{Failure, classify};
use crate::registry::options::RetryPolicy;
use crate::registry::transport::Scope;

const DIGEST_HEADER: &str = "docker-content-digest";

/// A manifest or index exactly as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawManifest {
    pub(crate) bytes: Bytes,
    /// From the `Content-Type` of the answer; the caller prefers the body's `mediaType`.
    pub(crate) content_type: Option<String>,
    /// sha256 of `bytes`: computed here, never taken from a header.
    pub(crate) digest: String,
}

/// What a HEAD of a manifest found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ManifestPresence {
    Absent,
    /// There; `digest` is what the registry says it is (None when it says nothing).
    Present {
        digest: Option<String>,
    },
}

/// Whether `reference` is a digest rather than a tag.
pub(crate) fn is_digest(reference: &str) -> bool {
    reference.contains(':')
}

impl PackRegistryClient {
    /// `host[:port]` of the registry this client talks to.
    pub(crate) fn host(&self) -> &str {
        &self.address.host
    }

    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.options.retry
    }

    fn manifest_path(repository: &str, reference: &str) -> String {
        format!("/v2/{repository}/manifests/{reference}")
    }

    /// GET the manifest `repository` holds under `reference` (a tag or a digest). The
    /// digest is computed from the bytes; when the request named a digest, or the answer
    /// announces one, the bytes must hash to it.
    pub(crate) async fn raw_manifest_once(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<RawManifest, Failure> {
        let response = self
            .transport
            .get(
                &Self::manifest_path(repository, reference),
                &[],
                Some(ACCEPTED),
                Scope::Pull(repository),
                true,
            )
            .await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let announced = header(DIGEST_HEADER);
        // Parameters such as charset are not part of a media type.
        let content_type = header(reqwest::header::CONTENT_TYPE.as_str())
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
            .filter(|value| !value.is_empty());
        let whole = format!("{}/{repository}:{reference}", self.address.host);
        let body = self
            .transport
            .read_limited(
                response,
                self.options.limits.manifest_bytes,
                "manifest",
                &whole,
            )
            .await?;
        let digest = sha256_digest(&body);
        let expected = if is_digest(reference) {
            Some(reference.to_owned())
        } else {
            announced.filter(|announced| announced.starts_with("sha256:"))
        };
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(Failure::Mismatch {
                expected,
                found: digest,
            });
        }
        Ok(RawManifest {
            bytes: Bytes::from(body),
            content_type,
            digest,
        })
    }

    /// HEAD the manifest `repository` holds under `reference`.
    pub(crate) async fn manifest_presence_once(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<ManifestPresence, Failure> {
        // With an Accept header: without one, distribution 2.8 answers 404 for an OCI
        // manifest and converts a Docker one.
        match self
            .transport
            .head(
                &Self::manifest_path(repository, reference),
                Some(ACCEPTED),
                Scope::Pull(repository),
            )
            .await
        {
            Ok(response) => Ok(ManifestPresence::Present {
                digest: response
                    .headers()
                    .get(DIGEST_HEADER)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned),
            }),
            Err(Failure::NotFound(_)) => Ok(ManifestPresence::Absent),
            Err(failure) => Err(failure),
        }
    }

    /// Whether `repository` holds the blob `digest` (HEAD).
    pub(crate) async fn has_blob_once(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<bool, Failure> {
        match self
            .transport
            .head(
                &format!("/v2/{repository}/blobs/{digest}"),
                None,
                Scope::Pull(repository),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(Failure::NotFound(_)) => Ok(false),
            Err(failure) => Err(failure),
        }
    }

    /// GET the blob `digest` of `repository`, its body not read yet: the caller streams
    /// it. No time limit for the whole answer (a layer takes what it takes); a connection
    /// that sends nothing for a minute fails.
    pub(crate) async fn blob_response_once(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Response, Failure> {
        self.transport
            .get(
                &format!("/v2/{repository}/blobs/{digest}"),
                &[],
                None,
                Scope::Pull(repository),
                false,
            )
            .await
    }

    /// Uploads the blob `digest` of `size` bytes to `repository` from `data`, in one PUT
    /// whose body is the stream: nothing is held in memory but the piece in flight. The
    /// registry commits the blob only once it received `size` bytes hashing to `digest`.
    pub(crate) async fn push_blob_stream_once<S>(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        data: S,
    ) -> Result<(), Failure>
    where
        S: Stream<Item = oci_client::errors::Result<Bytes>> + Send + 'static,
    {
        let reference = Reference::with_digest(
            self.address.host.clone(),
            repository.to_owned(),
            digest.to_owned(),
        );
        let auth = self.transport.upload_auth(repository).await?;
        let uploader = upload_client(self.upload_config(), &reference, auth).await?;
        uploader
            .push_blob_stream(&reference, data, digest, Some(size))
            .await
            .map(drop)
            .map_err(classify)
    }

    /// PUTs `bytes` as the manifest `repository` holds under `reference` (a tag or the
    /// digest of `bytes`), with `media_type`: the bytes as they are, so the digest is the
    /// same at both ends.
    pub(crate) async fn push_raw_manifest_once(
        &self,
        repository: &str,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<(), Failure> {
        let host = self.address.host.clone();
        let oci_reference = if is_digest(reference) {
            Reference::with_digest(host, repository.to_owned(), reference.to_owned())
        } else {
            Reference::with_tag(host, repository.to_owned(), reference.to_owned())
        };
        let content_type = media_type
            .parse()
            .map_err(|e| Failure::Protocol(format!("invalid media type {media_type:?}: {e}")))?;
        let auth = self.transport.upload_auth(repository).await?;
        let uploader = upload_client(self.upload_config(), &oci_reference, auth).await?;
        uploader
            .push_manifest_raw(&oci_reference, bytes, content_type)
            .await
            .map(drop)
            .map_err(classify)
    }
}

/// A registry error about `reference` in `repository` of `client`'s registry, in the
/// words the rest of the client uses.
pub(crate) fn object_error(
    client: &PackRegistryClient,
    repository: &str,
    reference: String,
    failure: Failure,
) -> RegistryError {
    client
        .context_of(reference, repository.to_owned())
        .error(failure)
}
