//! Downloading a pack blob: streamed, bounded by the manifest's size and
//! `max_pack_bytes`, hashed while it arrives and compared with the layer digest.

use oci_client::Reference;
use sha2::{Digest, Sha256};
use tracing::debug;

use super::manifest::is_sha256_digest;
use super::{PackDescriptor, PackRegistryClient, RegistryError};
use crate::registry::failure::{Failure, error_chain};
use crate::registry::transport::Scope;

impl PackRegistryClient {
    /// Downloads and verifies the pack layer; caches nothing.
    pub(super) async fn download(
        &self,
        descriptor: &PackDescriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let reference = self.descriptor_reference(descriptor)?;
        let limit = self.options.max_pack_bytes;
        if descriptor.layer_size > limit {
            return Err(RegistryError::TooLarge {
                reference: descriptor.reference.clone(),
                size: descriptor.layer_size,
                limit,
            });
        }
        let context = self.context(&reference);
        let bytes = self
            .retrying("downloading the pack", || {
                self.download_once(&reference, descriptor)
            })
            .await
            .map_err(|f| context.error(f))?;
        debug!(size = bytes.len(), "downloaded and verified");
        Ok(bytes)
    }

    async fn download_once(
        &self,
        reference: &Reference,
        descriptor: &PackDescriptor,
    ) -> Result<Vec<u8>, Failure> {
        let expected = descriptor.layer_size;
        let limit = self.options.max_pack_bytes;
        let truncated = |found: u64, message: String| Failure::Transient {
            message,
            exhausted: Some(Box::new(RegistryError::Truncated {
                reference: descriptor.reference.clone(),
                expected,
                found,
            })),
        };
        let too_large = |size: u64| {
            Failure::final_error(RegistryError::TooLarge {
                reference: descriptor.reference.clone(),
                size,
                limit,
            })
        };
        let repository = reference.repository();
        // A bare digest, not the manifest's descriptor: its `urls` could send the request
        // to another host.
        let path = format!("/v2/{repository}/blobs/{}", descriptor.layer_digest);
        // Not a small request: a large pack takes what it takes, within the deadline.
        let mut response = self
            .transport
            .get(&path, &[], None, Scope::Pull(repository), false)
            .await?;
        if let Some(length) = response.content_length()
            && length > limit
        {
            return Err(too_large(length));
        }
        let mut hasher = Sha256::new();
        let capacity = usize::try_from(expected.min(limit)).unwrap_or_default();
        let mut data = Vec::with_capacity(capacity);
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let received = (data.len() + chunk.len()) as u64;
                    if received > limit {
                        return Err(too_large(received));
                    }
                    if received > expected {
                        return Err(Failure::Protocol(format!(
                            "the registry sent more than the {expected} bytes the manifest \
                             declares for {}",
                            descriptor.layer_digest
                        )));
                    }
                    hasher.update(&chunk);
                    data.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(error) => {
                    let found = data.len() as u64;
                    let message = format!(
                        "the download broke off after {found} of {expected} bytes: {}",
                        error_chain(&error)
                    );
                    if found < expected {
                        return Err(truncated(found, message));
                    }
                    return Err(Failure::Transient {
                        message,
                        exhausted: None,
                    });
                }
            }
        }
        let found = data.len() as u64;
        if found < expected {
            return Err(truncated(
                found,
                format!("the registry sent {found} of {expected} bytes"),
            ));
        }
        let mut hex = String::with_capacity(64);
        for byte in hasher.finalize() {
            hex.push_str(&format!("{byte:02x}"));
        }
        let actual = format!("sha256:{hex}");
        if actual != descriptor.layer_digest {
            return Err(Failure::Mismatch {
                expected: descriptor.layer_digest.clone(),
                found: actual,
            });
        }
        Ok(data)
    }

    /// The OCI reference of a descriptor this client's registry produced.
    fn descriptor_reference(
        &self,
        descriptor: &PackDescriptor,
    ) -> Result<Reference, RegistryError> {
        let protocol = |message: String| RegistryError::Protocol {
            reference: descriptor.reference.clone(),
            message,
        };
        if !is_sha256_digest(&descriptor.layer_digest) {
            return Err(RegistryError::NotAPack {
                reference: descriptor.reference.clone(),
                reason: format!(
                    "its layer digest {:?} is not sha256:<64 hex digits>",
                    descriptor.layer_digest
                ),
            });
        }
        // Split by hand: parsing would misread a dot-less host as a Docker Hub path.
        let rest = descriptor
            .reference
            .strip_prefix(&self.address.host)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| {
                protocol(format!(
                    "the descriptor is for another registry; this client talks to {}",
                    self.address.host
                ))
            })?;
        let (repository, tag) = rest
            .rsplit_once(':')
            .ok_or_else(|| protocol("the descriptor's reference has no tag".to_owned()))?;
        Ok(Reference::with_tag(
            self.address.host.clone(),
            repository.to_owned(),
            tag.to_owned(),
        ))
    }
}
