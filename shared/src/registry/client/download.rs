//! Downloading a pack blob: streamed, bounded by the manifest's size and
//! `max_pack_bytes`, hashed while it arrives and compared with the layer digest; and, for
//! a pull, unpacked while it arrives ([`PackRegistryClient::download_unpacking`]).

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use oci_client::Reference;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::debug;

use super::manifest::is_sha256_digest;
use super::unpack::{ChannelReader, UnpackJob};
use super::{PackDescriptor, PackRegistryClient, RegistryError};
use crate::registry::failure::{Failure, error_chain};
use crate::registry::transport::Scope;

/// Pieces of a download in flight to the unpacker: enough to keep both sides busy.
const PIECES_IN_FLIGHT: usize = 64;

/// A download that was unpacked while it arrived.
pub(super) struct Downloaded {
    /// The verified blob (empty when streamed without `keep`).
    pub(super) bytes: Vec<u8>,
    /// The unpack of the first attempt, waiting for the word that the download verified
    /// before it moves the pack into place; `None` when the download took more than one
    /// attempt (the caller unpacks `bytes` then).
    pub(super) unpacking: Option<StreamedUnpack>,
}

/// An unpack that ran while the blob arrived.
pub(super) struct StreamedUnpack {
    task: JoinHandle<Result<String, RegistryError>>,
    verified: oneshot::Sender<()>,
    reference: String,
}

impl StreamedUnpack {
    /// Tells the unpack that the download verified, and waits for it: the content digest
    /// of what it moved into place. Not to be run within the fetch deadline: once told, the
    /// unpack moves the pack into place whatever its caller does.
    pub(super) async fn finish(self) -> Result<String, RegistryError> {
        // The unpack may have failed and gone already; its error is in the task.
        let _ = self.verified.send(());
        self.task.await.map_err(|e| RegistryError::Protocol {
            reference: self.reference,
            message: format!("the background task unpacking the pack failed: {e}"),
        })?
    }

    /// Stops the unpack (nothing is moved into place) and waits until it is gone.
    async fn abandon(self) {
        drop(self.verified);
        let _ = self.task.await;
    }
}

impl PackRegistryClient {
    /// Downloads and verifies the pack layer; caches nothing.
    pub(super) async fn download(
        &self,
        descriptor: &PackDescriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let reference = self.descriptor_reference(descriptor)?;
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

    /// Downloads and verifies the pack layer as `download` does, and unpacks it with `job`
    /// into `dest` while it arrives: decompressing, hashing and unpacking overlap the
    /// network instead of following it. The bytes reach the unpacker before the layer
    /// digest is checked (it treats every archive as hostile anyway), but the pack is only
    /// moved into place once [`StreamedUnpack::finish`] says the download verified: a
    /// failed, mismatched or abandoned download (the deadline, a dropped future) leaves
    /// nothing. Only the first attempt streams; when it is retried, the caller unpacks the
    /// bytes of the attempt that succeeded. Without `keep` (nothing to cache) a streamed
    /// blob is not held in memory: `bytes` is empty then.
    pub(super) async fn download_unpacking(
        &self,
        descriptor: &PackDescriptor,
        job: UnpackJob,
        dest: PathBuf,
        keep: bool,
    ) -> Result<Downloaded, RegistryError> {
        let reference = self.descriptor_reference(descriptor)?;
        let (pieces, received) = mpsc::channel::<Bytes>(PIECES_IN_FLIGHT);
        let (verified, verdict) = oneshot::channel::<()>();
        let task = tokio::task::spawn_blocking(move || {
            job.pull_from(ChannelReader::new(received), &dest, || {
                verdict
                    .blocking_recv()
                    .map_err(|_| RegistryError::Protocol {
                        reference: job.reference.clone(),
                        message: "the download stopped before it was verified".to_owned(),
                    })
            })
        });
        let unpack = StreamedUnpack {
            task,
            verified,
            reference: descriptor.reference.clone(),
        };
        let context = self.context(&reference);
        let first = Mutex::new(Some(pieces));
        let attempts = AtomicUsize::new(0);
        let downloaded = self
            .retrying("downloading the pack", || {
                attempts.fetch_add(1, Ordering::Relaxed);
                // The first attempt feeds the unpacker; the channel closes when it ends.
                let pieces = first.lock().ok().and_then(|mut first| first.take());
                self.download_once_to(&reference, descriptor, pieces, !keep)
            })
            .await
            .map_err(|f| context.error(f));
        match downloaded {
            Ok(bytes) if attempts.load(Ordering::Relaxed) == 1 => {
                debug!(
                    size = bytes.len(),
                    "downloaded and verified while unpacking"
                );
                Ok(Downloaded {
                    bytes,
                    unpacking: Some(unpack),
                })
            }
            Ok(bytes) => {
                unpack.abandon().await;
                debug!(size = bytes.len(), "downloaded and verified");
                Ok(Downloaded {
                    bytes,
                    unpacking: None,
                })
            }
            Err(error) => {
                unpack.abandon().await;
                Err(error)
            }
        }
    }

    async fn download_once(
        &self,
        reference: &Reference,
        descriptor: &PackDescriptor,
    ) -> Result<Vec<u8>, Failure> {
        self.download_once_to(reference, descriptor, None, false)
            .await
    }

    /// One attempt; every piece also goes to `pieces` while its receiver is there. With
    /// `only_streamed` and `pieces`, the blob is not kept (an empty `Vec` comes back).
    async fn download_once_to(
        &self,
        reference: &Reference,
        descriptor: &PackDescriptor,
        mut pieces: Option<mpsc::Sender<Bytes>>,
        only_streamed: bool,
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
        // The blob is kept unless the caller only streams it (no cache to put it in).
        let keep = !only_streamed || pieces.is_none();
        let capacity = usize::try_from(expected.min(limit)).unwrap_or_default();
        let mut data = Vec::with_capacity(if keep { capacity } else { 0 });
        let mut received_bytes = 0u64;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let received = received_bytes + chunk.len() as u64;
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
                    received_bytes = received;
                    if keep {
                        data.extend_from_slice(&chunk);
                    }
                    // An unpacker that stopped (a hostile archive) needs no more; the
                    // download goes on, so that its verdict comes first.
                    if let Some(sender) = &pieces
                        && sender.send(chunk).await.is_err()
                    {
                        pieces = None;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let found = received_bytes;
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
        let found = received_bytes;
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

    /// The OCI reference of a descriptor this client's registry produced, once its
    /// declared layer size is within the limit (nothing is downloaded otherwise).
    fn descriptor_reference(
        &self,
        descriptor: &PackDescriptor,
    ) -> Result<Reference, RegistryError> {
        let limit = self.options.max_pack_bytes;
        if descriptor.layer_size > limit {
            return Err(RegistryError::TooLarge {
                reference: descriptor.reference.clone(),
                size: descriptor.layer_size,
                limit,
            });
        }
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
