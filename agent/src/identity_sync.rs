//! After the pivot, the cluster's cloud identity Secret is the copy the move made; the
//! original stays in the management cluster, where the controller keeps it current with the
//! CloudAccount. When the original changes (a rotated password or key), the agent copies its
//! data here again, so the providers in this cluster use the new credentials.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use strata_shared::management_access::SecretKey;
use strata_shared::contracts::field_managers::AGENT_FIELD_MANAGER;


#[derive(Debug, thiserror::Error)]
pub enum IdentitySyncError {
    #[error("cannot read the identity Secret {secret} in the management cluster: {source}")]
    Source {
        secret: SecretKey,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("cannot {action} the identity Secret {secret} in this cluster: {source}")]
    Target {
        action: &'static str,
        secret: SecretKey,
        #[source]
        source: Box<kube::Error>,
    },
}

/// Copies the data of `secret` from the management cluster into this one when they differ;
/// true when it did. A Secret not in this cluster yet is the move's to bring.
pub async fn sync(
    workload: &Client,
    management: &Client,
    secret: &SecretKey,
) -> Result<bool, IdentitySyncError> {
    let source: Api<Secret> = Api::namespaced(management.clone(), &secret.namespace);
    let original = source
        .get(&secret.name)
        .await
        .map_err(|e| IdentitySyncError::Source {
            secret: secret.clone(),
            source: Box::new(e),
        })?;
    let target: Api<Secret> = Api::namespaced(workload.clone(), &secret.namespace);
    let target_failed = |action| {
        let secret = secret.clone();
        move |e: kube::Error| IdentitySyncError::Target {
            action,
            secret,
            source: Box::new(e),
        }
    };
    let Some(copy) = target
        .get_opt(&secret.name)
        .await
        .map_err(target_failed("read"))?
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
    let params = PatchParams {
        field_manager: Some(AGENT_FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    target
        .patch(
            &secret.name,
            &params,
            &Patch::Merge(&json!({ "data": data })),
        )
        .await
        .map_err(target_failed("update"))?;
    tracing::info!(secret = %secret, "copied the changed cloud identity from the management cluster");
    Ok(true)
}
