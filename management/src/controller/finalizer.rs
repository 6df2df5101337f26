//! The controller's finalizer on WorkloadClusters. Adding and removing it are JSON
//! patches guarded by the resourceVersion they were decided on, so a concurrent change to
//! the finalizer list (another controller's) is never overwritten.

use kube::ResourceExt;
use serde_json::json;
use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::field_managers::CONTROLLER_FINALIZER;
use strata_shared::kube_writer::{KubeWriter, WriteError};

#[derive(Debug, thiserror::Error)]
#[error("cannot {action} the controller's finalizer: {source}")]
pub struct FinalizerError {
    pub action: &'static str,
    #[source]
    pub source: WriteError,
}

pub fn has(cluster: &WorkloadCluster) -> bool {
    cluster
        .finalizers()
        .iter()
        .any(|f| f == CONTROLLER_FINALIZER)
}

async fn set(
    writer: &KubeWriter,
    cluster: &WorkloadCluster,
    finalizers: Vec<String>,
    action: &'static str,
) -> Result<(), FinalizerError> {
    let patch = json!([
        { "op": "test", "path": "/metadata/resourceVersion", "value": cluster.resource_version() },
        { "op": "add", "path": "/metadata/finalizers", "value": finalizers },
    ]);
    let clusters = writer.namespaced::<WorkloadCluster>(&cluster.namespace().unwrap_or_default());
    match clusters.json_patch(&cluster.name_any(), &patch).await {
        Ok(_) => Ok(()),
        // Gone already: nothing holds it any more.
        Err(e) if e.is_gone() => Ok(()),
        Err(source) => Err(FinalizerError { action, source }),
    }
}

pub async fn add(writer: &KubeWriter, cluster: &WorkloadCluster) -> Result<(), FinalizerError> {
    let mut finalizers = cluster.finalizers().to_vec();
    finalizers.push(CONTROLLER_FINALIZER.to_string());
    set(writer, cluster, finalizers, "add").await
}

pub async fn remove(writer: &KubeWriter, cluster: &WorkloadCluster) -> Result<(), FinalizerError> {
    let finalizers: Vec<String> = cluster
        .finalizers()
        .iter()
        .filter(|f| *f != CONTROLLER_FINALIZER)
        .cloned()
        .collect();
    set(writer, cluster, finalizers, "remove").await
}
