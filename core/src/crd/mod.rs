//! Every custom resource type Strata owns, one module each, and their
//! CustomResourceDefinitions generated from the types. `strata crds` prints them;
//! `manifests/crds/` holds the output and a test fails when the two differ.
//!
//! The domain logic around each type lives with its concern (`profile` composes profiles,
//! `revision` resolves revisions, `cluster::ledger` records decisions) and re-exports the
//! type under its own path.

pub mod cloud_account;
pub mod cluster_profile;
pub mod cluster_revision;
pub mod pack_registry;
pub mod workload_cluster;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use cloud_account::CloudAccount;
use cluster_profile::ClusterProfile;
use cluster_revision::ClusterRevision;
use pack_registry::PackRegistry;
use workload_cluster::WorkloadCluster;

/// The CRDs, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        CloudAccount::crd(),
        ClusterProfile::crd(),
        ClusterRevision::crd(),
        PackRegistry::crd(),
        WorkloadCluster::crd(),
    ]
}

/// The file name a CRD is kept under in `manifests/crds/`: `<plural>.<group>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default())
}

#[derive(Debug, thiserror::Error)]
#[error("CRD {name} cannot be written as YAML: {source}")]
pub struct CrdRenderError {
    pub name: String,
    #[source]
    pub source: serde_yaml::Error,
}

/// One CRD as a YAML document.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, CrdRenderError> {
    serde_yaml::to_string(crd).map_err(|source| CrdRenderError {
        name: crd.metadata.name.clone().unwrap_or_default(),
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn schemas_have_nothing_kubernetes_1_20_refuses() {
        for crd in all() {
            let json = serde_json::to_string(&crd).unwrap();
            // 1.20 reads an empty-string default as null and refuses the CRD.
            assert!(!json.contains(r#""default":"""#), "{}", file_name(&crd));
            // 1.20 refuses a CRD whose enum lists null (it says "per-version schemas may
            // not all be set to identical values").
            assert!(!json.contains(r#",null]"#), "{}", file_name(&crd));
            // CEL rules arrived in 1.23; a typed apply on 1.20 refuses the field.
            assert!(
                !json.contains("x-kubernetes-validations"),
                "{}",
                file_name(&crd)
            );
            // 1.20 cannot build the server-side apply model of a CRD with an
            // int-or-string (or any anyOf) field: it falls back to treating every list as
            // atomic, and the controller's status conditions then replace the agent's.
            for refused in ["x-kubernetes-int-or-string", r#""anyOf""#, r#""oneOf""#] {
                assert!(!json.contains(refused), "{}: {refused}", file_name(&crd));
            }
        }
    }

    /// What the agent writes of its site's events is bounded by the apiserver, whatever
    /// the agent sends: the number of events and the length of each field.
    #[test]
    fn site_events_are_bounded_by_the_schema() {
        let crd = serde_json::to_value(
            all()
                .into_iter()
                .find(|c| c.spec.names.kind == "WorkloadCluster")
                .unwrap(),
        )
        .unwrap();
        let events = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
            ["properties"]["siteEvents"];
        assert_eq!(events["maxItems"], 50, "{events}");
        assert_eq!(
            events["maxItems"].as_u64().unwrap() as usize,
            crate::cluster::SITE_EVENTS_IN_STATUS
        );
        let item = &events["items"]["properties"];
        assert_eq!(item["kind"]["maxLength"], 64, "{events}");
        assert_eq!(item["message"]["maxLength"], 512, "{events}");
        assert!(crate::cluster::SITE_EVENT_MESSAGE_LIMIT + "… (cut)".chars().count() <= 512);
    }
}
