//! Installs the Cluster API provider components into the agent's own cluster before
//! anything moves there: the CRDs labelled for clusterctl, copied from the management
//! cluster (the provider versions the cluster's objects were written for), and the
//! provider controllers' Deployment when the management controller named one.

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::ListParams;
use serde_json::{Value, json};
use strata_shared::contracts::labels::CLUSTERCTL_LABEL;
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::provider_components::{ProviderController, provider_objects};

use crate::crd_outline;

/// How long the copied CRDs may take to be served.
const ESTABLISH_WAIT: Duration = Duration::from_secs(60);
/// Annotations that describe how an object was applied in the management cluster, not
/// the object.
const NOT_COPIED_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

#[derive(Debug, thiserror::Error)]
pub enum ProviderInstallError {
    #[error("in the management cluster: {0}")]
    ListSource(#[source] WriteError),
    #[error(
        "the management cluster has no CRDs labelled {CLUSTERCTL_LABEL}: it has no Cluster API to copy"
    )]
    NothingToCopy,
    #[error("in this cluster: {0}")]
    Apply(#[source] WriteError),
    #[error(
        "no provider controllers were named for this cluster's cloud (strata controller --provider-image CLOUD=IMAGE): the objects stay in the management cluster, where CAPI runs"
    )]
    NoControllers,
    #[error("CRDs not served in this cluster after {waited:?}: {names}")]
    NotEstablished { names: String, waited: Duration },
}

/// What was installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub crds: usize,
    /// The provider controllers' image.
    pub controllers: String,
}

/// The CRD as this cluster should have it: the management cluster's spec, name, labels
/// and annotations, nothing of its server-side state.
fn crd_copy(crd: &CustomResourceDefinition) -> Value {
    let annotations: serde_json::Map<String, Value> = crd
        .annotations()
        .iter()
        .filter(|(k, _)| !NOT_COPIED_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": crd.name_any(),
            "labels": crd.labels(),
            "annotations": annotations,
        },
        "spec": crd.spec,
    })
}

/// Copies the CRDs and deploys the provider controllers; idempotent, so it runs at every
/// start of an agent whose move has not begun. Without provider controllers for the
/// cluster's cloud nothing is installed, and the move does not start.
pub async fn install(
    workload: &KubeWriter,
    management: &KubeWriter,
    controllers: Option<&ProviderController>,
) -> Result<Installed, ProviderInstallError> {
    // Objects moved where no controller acts on them would leave the cluster unmanaged.
    let controllers = controllers.ok_or(ProviderInstallError::NoControllers)?;
    // One CRD at a time: Cluster API's schemas run to megabytes, and a list of them whole
    // was the agent's highest heap.
    let listed = crd_outline::list(management, &ListParams::default().labels(CLUSTERCTL_LABEL))
        .await
        .map_err(ProviderInstallError::ListSource)?;
    if listed.is_empty() {
        return Err(ProviderInstallError::NothingToCopy);
    }
    let source = management.cluster_scoped::<CustomResourceDefinition>();
    let mut names = Vec::new();
    for outline in listed {
        // One deleted since the list has nothing left to copy.
        let Some(crd) = source
            .get(outline.name())
            .await
            .map_err(ProviderInstallError::ListSource)?
        else {
            continue;
        };
        workload
            .apply_json(&crd_copy(&crd))
            .await
            .map_err(ProviderInstallError::Apply)?;
        names.push(outline.name().to_string());
    }
    let started = Instant::now();
    loop {
        let mut waiting = Vec::new();
        for name in &names {
            if !crd_outline::is_established(workload, name).await {
                waiting.push(name.clone());
            }
        }
        if waiting.is_empty() {
            break;
        }
        if started.elapsed() >= ESTABLISH_WAIT {
            return Err(ProviderInstallError::NotEstablished {
                names: waiting.join(", "),
                waited: ESTABLISH_WAIT,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tracing::info!(crds = names.len(), "provider CRDs installed");

    let objects = provider_objects(controllers);
    let applied = async {
        workload.apply(&objects.namespace).await?;
        workload.apply(&objects.service_account).await?;
        workload.apply(&objects.binding).await?;
        workload.apply(&objects.deployment).await
    };
    applied.await.map_err(ProviderInstallError::Apply)?;
    tracing::info!(image = %controllers.image, "provider controllers deployed");
    Ok(Installed {
        crds: names.len(),
        controllers: controllers.image.clone(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_crd_keeps_its_schema_and_labels_but_not_server_state() {
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": "machines.cluster.x-k8s.io",
                "uid": "u-1",
                "resourceVersion": "42",
                "labels": { CLUSTERCTL_LABEL: "", "cluster.x-k8s.io/provider": "cluster-api" },
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "controller-gen.kubebuilder.io/version": "v0.18.0",
                },
                "managedFields": [{ "manager": "kubectl" }],
            },
            "spec": {
                "group": "cluster.x-k8s.io",
                "names": { "kind": "Machine", "plural": "machines" },
                "scope": "Namespaced",
                "versions": [{ "name": "v1beta2", "served": true, "storage": true }],
            },
            "status": { "acceptedNames": { "kind": "Machine", "plural": "machines" }, "storedVersions": ["v1beta2"] },
        }))
        .unwrap();
        let copy = crd_copy(&crd);
        assert_eq!(copy["metadata"]["name"], "machines.cluster.x-k8s.io");
        assert!(copy["metadata"]["labels"].get(CLUSTERCTL_LABEL).is_some());
        let annotations = copy["metadata"]["annotations"].as_object().unwrap();
        assert_eq!(annotations.len(), 1, "{annotations:?}");
        for absent in ["uid", "resourceVersion", "managedFields"] {
            assert!(copy["metadata"].get(absent).is_none(), "{absent}");
        }
        assert!(copy.get("status").is_none());
        assert_eq!(copy["spec"]["versions"][0]["name"], "v1beta2");
    }
}
