//! After the pivot, the cluster's cloud identity Secret is the copy the move made; the
//! original stays in the management cluster, where the controller keeps it current with the
//! CloudAccount. When the original changes (a rotated password or key), the agent copies its
//! data here again, so the providers in this cluster use the new credentials.

use k8s_openapi::api::core::v1::Secret;
use serde_json::json;
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::management_access::SecretKey;

#[derive(Debug, thiserror::Error)]
pub enum IdentitySyncError {
    #[error("in the management cluster: {0}")]
    Source(#[source] WriteError),
    #[error("the identity Secret {secret} is not in the management cluster")]
    SourceMissing { secret: SecretKey },
    #[error("in this cluster: {0}")]
    Target(#[source] WriteError),
}

/// Copies the data of `secret` from the management cluster into this one when they differ;
/// true when it did. A Secret not in this cluster yet is the move's to bring.
pub async fn sync(
    workload: &KubeWriter,
    management: &KubeWriter,
    secret: &SecretKey,
) -> Result<bool, IdentitySyncError> {
    let original = management
        .namespaced::<Secret>(&secret.namespace)
        .get(&secret.name)
        .await
        .map_err(IdentitySyncError::Source)?
        .ok_or_else(|| IdentitySyncError::SourceMissing {
            secret: secret.clone(),
        })?;
    let copies = workload.namespaced::<Secret>(&secret.namespace);
    let Some(copy) = copies
        .get(&secret.name)
        .await
        .map_err(IdentitySyncError::Target)?
    else {
        return Ok(false);
    };
    if copy.data == original.data {
        return Ok(false);
    }
    // A merge of the data alone: the copy keeps its own metadata, and a key removed from
    // the original goes (null).
    let mut data = serde_json::Map::new();
    for key in copy.data.iter().flatten().map(|(k, _)| k) {
        data.insert(key.clone(), serde_json::Value::Null);
    }
    for (key, value) in original.data.iter().flatten() {
        data.insert(key.clone(), json!(value));
    }
    copies
        .merge_patch(&secret.name, &json!({ "data": data }))
        .await
        .map_err(IdentitySyncError::Target)?;
    tracing::info!(secret = %secret, "copied the changed cloud identity from the management cluster");
    Ok(true)
}
