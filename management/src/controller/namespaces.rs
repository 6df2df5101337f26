//! The namespaces the controller makes: a cluster's objects namespace, labelled as the
//! cluster's, and a provider's namespace for its identity Secrets, made only when missing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use strata_shared::contracts::labels::{
    MANAGED_BY, MANAGED_BY_LABEL, OBJECTS_NAMESPACE_LABEL, WORKLOAD_CLUSTER_LABEL,
    WORKLOAD_CLUSTER_NAMESPACE_LABEL,
};
use strata_shared::kube_writer::{KubeWriter, WriteError};

/// The labels that mark a namespace as a cluster's objects namespace.
pub fn namespace_labels(
    cluster_namespace: &str,
    cluster: &str,
    objects_namespace: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            WORKLOAD_CLUSTER_NAMESPACE_LABEL.to_string(),
            cluster_namespace.to_string(),
        ),
        (WORKLOAD_CLUSTER_LABEL.to_string(), cluster.to_string()),
        (
            OBJECTS_NAMESPACE_LABEL.to_string(),
            objects_namespace.to_string(),
        ),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
    ])
}

/// Whether an existing namespace is this cluster's (by its labels).
pub fn namespace_belongs_to(namespace: &Namespace, cluster_namespace: &str, cluster: &str) -> bool {
    let labels = namespace.labels();
    labels
        .get(WORKLOAD_CLUSTER_NAMESPACE_LABEL)
        .map(String::as_str)
        == Some(cluster_namespace)
        && labels.get(WORKLOAD_CLUSTER_LABEL).map(String::as_str) == Some(cluster)
}

/// The cluster's objects namespace, as the controller applies it.
pub fn namespace_object(
    cluster_namespace: &str,
    cluster: &str,
    objects_namespace: &str,
) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(objects_namespace.to_string()),
            labels: Some(namespace_labels(
                cluster_namespace,
                cluster,
                objects_namespace,
            )),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// Makes sure a namespace exists (a provider's, for its identity secrets), without
/// taking over any of its fields when it does.
pub async fn ensure_plain_namespace(writer: &KubeWriter, name: &str) -> Result<(), WriteError> {
    let namespaces = writer.cluster_scoped::<Namespace>();
    if namespaces.get(name).await?.is_some() {
        return Ok(());
    }
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    // Created meanwhile by someone else: what we wanted.
    namespaces.create_or_adopt(&namespace).await.map(|_| ())
}
