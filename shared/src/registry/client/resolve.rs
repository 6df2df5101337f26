//! Resolving `name:version` to its manifest and pack layer.

use oci_client::Reference;
use tracing::{Instrument, debug, info_span};

use super::manifest::{pack_layer, parse_pack_manifest};
use super::{PackDescriptor, PackRegistryClient, RegistryError};
use crate::registry::failure::Failure;

impl PackRegistryClient {
    /// Finds the manifest of `name:version` and its pack layer.
    pub async fn resolve(
        &self,
        name: &str,
        version: &str,
    ) -> Result<PackDescriptor, RegistryError> {
        let reference = self.address.reference(name, version)?;
        let whole = reference.whole();
        let span = info_span!("registry.resolve", reference = %whole);
        self.within_deadline(&whole, self.resolve_inner(name, version, &reference))
            .instrument(span)
            .await
    }

    pub(super) async fn resolve_inner(
        &self,
        name: &str,
        version: &str,
        reference: &Reference,
    ) -> Result<PackDescriptor, RegistryError> {
        let context = self.context(reference);
        let found = self
            .retrying("fetching the manifest", || self.manifest_once(reference))
            .await;
        let (body, manifest_digest) = match found {
            Ok(found) => found,
            Err(Failure::NotFound(_)) => return Err(self.unknown(name, version, reference).await),
            Err(failure) => return Err(context.error(failure)),
        };
        let manifest = parse_pack_manifest(&body).map_err(|f| context.error(f))?;
        let (layer, file_name) =
            pack_layer(&manifest).map_err(|reason| RegistryError::NotAPack {
                reference: context.reference.clone(),
                reason: reason.to_string(),
            })?;
        let descriptor = PackDescriptor {
            reference: context.reference,
            manifest_digest,
            layer_digest: layer.digest.clone(),
            // Known only once the layer is read: the annotation Strata pushes is not
            // evidence of anything.
            content_digest: None,
            layer_size: u64::try_from(layer.size).unwrap_or_default(),
            file_name,
        };
        debug!(?descriptor, "resolved");
        Ok(descriptor)
    }
}
