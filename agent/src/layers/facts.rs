//! The cluster's facts for its values' system macros (`docs/layers.md`): from the revision,
//! the CAPI Cluster (which lives here after the pivot) and, for its uid, the WorkloadCluster
//! when the management cluster answers.

use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::capi::CLUSTER;
use strata_shared::kube_writer::KubeWriter;
use strata_shared::layer::macros::ClusterFacts;
use strata_shared::revision::ClusterRevision;

use crate::management_link::ManagementLink;

/// The cluster's facts for its values' system macros.
pub async fn cluster_facts(
    workload: &KubeWriter,
    link: &ManagementLink,
    revision: &ClusterRevision,
    cluster_uid: &mut Option<String>,
) -> ClusterFacts {
    if cluster_uid.is_none()
        && let Ok(management) = link.management().await
        && let Ok(Some(cluster)) = management
            .namespaced::<WorkloadCluster>(&link.cluster_namespace)
            .get(&link.cluster)
            .await
    {
        *cluster_uid = cluster.metadata.uid.clone();
    }
    let desired = &revision.spec.desired;
    let (endpoint_host, endpoint_port) = endpoint(workload, link).await;
    ClusterFacts {
        name: link.cluster.clone(),
        namespace: link.objects_namespace.clone(),
        uid: cluster_uid.clone().unwrap_or_default(),
        pod_cidrs: desired.network.pod_cidrs.clone(),
        service_cidrs: desired.network.service_cidrs.clone(),
        endpoint_host,
        endpoint_port,
        kubernetes_version: desired.kubernetes_version.clone(),
        cloud_type: desired.cloud_type,
    }
}

/// The control-plane endpoint of the CAPI Cluster, which lives here after the pivot.
async fn endpoint(workload: &KubeWriter, link: &ManagementLink) -> (String, u16) {
    let clusters = workload.dynamic(&CLUSTER.api_resource(), Some(&link.objects_namespace));
    let Ok(Some(cluster)) = clusters.get(&link.cluster).await else {
        return (String::new(), 0);
    };
    let endpoint = &cluster.data["spec"]["controlPlaneEndpoint"];
    let host = endpoint["host"].as_str().unwrap_or_default().to_string();
    let port = endpoint["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(0);
    (host, port)
}
