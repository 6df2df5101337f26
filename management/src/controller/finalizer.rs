//! The controller's finalizer on WorkloadClusters. Adding and removing it are JSON
//! patches guarded by the resourceVersion they were decided on, so a concurrent change to
//! the finalizer list (another controller's) is never overwritten.

use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use strata_shared::cluster::WorkloadCluster;

use strata_shared::contracts::field_managers::CONTROLLER_FINALIZER;

use super::context::WRITE_TIMEOUT;

#[derive(Debug, thiserror::Error)]
#[error("cannot {action} the finalizer of WorkloadCluster {cluster}: {reason}")]
pub struct FinalizerError {
    pub action: &'static str,
    pub cluster: String,
    pub reason: String,
}

pub fn has(cluster: &WorkloadCluster) -> bool {
    cluster.finalizers().iter().any(|f| f == CONTROLLER_FINALIZER)
}

async fn set(
    client: &Client,
    cluster: &WorkloadCluster,
    finalizers: Vec<String>,
    action: &'static str,
) -> Result<(), FinalizerError> {
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let failed = |reason: String| FinalizerError {
        action,
        cluster: format!("{namespace}/{name}"),
        reason,
    };
    let patch: json_patch::Patch = serde_json::from_value(json!([
        { "op": "test", "path": "/metadata/resourceVersion", "value": cluster.resource_version() },
        { "op": "add", "path": "/metadata/finalizers", "value": finalizers },
    ]))
    .map_err(|e| failed(e.to_string()))?;
    let api: Api<WorkloadCluster> = Api::namespaced(client.clone(), &namespace);
    match tokio::time::timeout(
        WRITE_TIMEOUT,
        api.patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        // Gone already: nothing holds it any more.
        Ok(Err(kube::Error::Api(e))) if e.code == 404 => Ok(()),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(_) => Err(failed(format!(
            "no answer in {} s",
            WRITE_TIMEOUT.as_secs()
        ))),
    }
}

pub async fn add(client: &Client, cluster: &WorkloadCluster) -> Result<(), FinalizerError> {
    let mut finalizers = cluster.finalizers().to_vec();
    finalizers.push(CONTROLLER_FINALIZER.to_string());
    set(client, cluster, finalizers, "add").await
}

pub async fn remove(client: &Client, cluster: &WorkloadCluster) -> Result<(), FinalizerError> {
    let finalizers: Vec<String> = cluster
        .finalizers()
        .iter()
        .filter(|f| *f != CONTROLLER_FINALIZER)
        .cloned()
        .collect();
    set(client, cluster, finalizers, "remove").await
}
