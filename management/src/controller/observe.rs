//! Observing what CAPI made of a cluster's objects: whether its CAPI Cluster is there, and
//! how many of its machines are ready.

use kube::api::DynamicObject;
use strata_shared::cluster::{ReplicaCounts, WorkloadCluster};
use strata_shared::contracts::capi::CLUSTER;
use strata_shared::contracts::capi_views::ClusterView;
use strata_shared::contracts::names::ClusterLocation;
use strata_shared::kube_writer::{KubeWriter, WriteError};

use super::failure_reason::write_reason;

#[derive(Debug, thiserror::Error)]
#[error("cannot read the CAPI Cluster of cluster {cluster}: {source}")]
pub struct ObserveError {
    pub cluster: String,
    #[source]
    pub source: WriteError,
}

impl ObserveError {
    /// A short, stable label for metrics.
    pub fn reason(&self) -> &'static str {
        write_reason(&self.source)
    }
}

/// The cluster's CAPI Cluster, when it exists.
pub async fn capi_cluster(
    writer: &KubeWriter,
    location: &ClusterLocation,
) -> Result<Option<DynamicObject>, ObserveError> {
    writer
        .dynamic(&CLUSTER.api_resource(), Some(&location.objects_namespace))
        .get(&location.cluster)
        .await
        .map_err(|source| ObserveError {
            cluster: location.key(),
            source,
        })
}

/// The wanted and ready control-plane and worker nodes.
pub fn node_counts(
    cluster: &WorkloadCluster,
    capi: &ClusterView,
) -> (ReplicaCounts, ReplicaCounts) {
    let pools = &cluster.spec.node_pools;
    let control_plane = ReplicaCounts::new(
        i64::from(pools.control_plane.count),
        capi.control_plane_ready,
    );
    let workers = ReplicaCounts::new(
        pools.workers.iter().map(|w| i64::from(w.count)).sum(),
        capi.workers_ready,
    );
    (control_plane, workers)
}
