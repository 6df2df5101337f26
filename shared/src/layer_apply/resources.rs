//! The kinds a layer's objects are of, as the cluster serves them: each asked of
//! discovery once, with its scope; and the waits for kinds not served yet.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{Scope, pinned_kind};
use tracing::debug;

use strata_core::layer::install_order::{GroupKind, ObjectKey};

use super::LayerApplyError;

/// Discovered kinds, each asked once: its resource and whether it is namespaced.
#[derive(Default)]
pub(super) struct Resources(BTreeMap<(String, String, String), (ApiResource, bool)>);

impl Resources {
    pub(super) async fn get(
        &mut self,
        client: &kube::Client,
        layer: &str,
        key: &ObjectKey,
    ) -> Result<(ApiResource, bool), LayerApplyError> {
        let id = (key.group.clone(), key.version.clone(), key.kind.clone());
        if let Some(found) = self.0.get(&id) {
            return Ok(found.clone());
        }
        let gvk = GroupVersionKind::gvk(&key.group, &key.version, &key.kind);
        let (resource, capabilities) =
            pinned_kind(client, &gvk)
                .await
                .map_err(|source| LayerApplyError::Discovery {
                    layer: layer.to_string(),
                    object: key.to_string(),
                    source: Box::new(source),
                })?;
        let found = (resource, capabilities.scope == Scope::Namespaced);
        self.0.insert(id, found.clone());
        Ok(found)
    }

    /// As [`Resources::get`], waiting up to `wait` for a kind the cluster does not serve
    /// yet.
    pub(super) async fn served(
        &mut self,
        client: &kube::Client,
        layer: &str,
        key: &ObjectKey,
        wait: Duration,
    ) -> Result<(ApiResource, bool), LayerApplyError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.get(client, layer, key).await {
                Err(LayerApplyError::Discovery { source, .. })
                    if not_served(&source) && tokio::time::Instant::now() < deadline =>
                {
                    debug!(object = %key, "kind not served yet; waiting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(LayerApplyError::Discovery { source, .. }) if not_served(&source) => {
                    return Err(LayerApplyError::KindNotServed {
                        layer: layer.to_string(),
                        object: key.to_string(),
                        seconds: wait.as_secs(),
                    });
                }
                other => return other,
            }
        }
    }

    pub(super) async fn api(
        &mut self,
        client: &kube::Client,
        layer: &str,
        key: &ObjectKey,
    ) -> Result<Api<DynamicObject>, LayerApplyError> {
        let (resource, namespaced) = self.get(client, layer, key).await?;
        Ok(match (&key.namespace, namespaced) {
            (Some(namespace), true) => Api::namespaced_with(client.clone(), namespace, &resource),
            _ => Api::all_with(client.clone(), &resource),
        })
    }
}

pub(super) async fn preferred_version(
    client: &kube::Client,
    layer: &str,
    kind: &GroupKind,
) -> Result<String, LayerApplyError> {
    let discovered = kube::discovery::group(client, &kind.group)
        .await
        .map_err(|source| LayerApplyError::Discovery {
            layer: layer.to_string(),
            object: kind.to_string(),
            source: Box::new(source),
        })?;
    Ok(discovered.preferred_version_or_latest().to_string())
}

/// Whether discovery failed because the cluster does not serve the group, version or kind
/// (yet), rather than because it could not be asked.
pub(super) fn not_served(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 404,
        kube::Error::Discovery(_) => true,
        _ => false,
    }
}
