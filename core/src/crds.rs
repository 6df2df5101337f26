//! Every CustomResourceDefinition Strata owns, generated from the Rust types.
//! `strata crds` prints them; `manifests/crds/` holds the output and a test fails when
//! the two differ.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::cloud_account::CloudAccount;
use crate::cluster::WorkloadCluster;
use crate::pack_registry::PackRegistry;
use crate::profile::ClusterProfile;
use crate::revision::ClusterRevision;

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
        }
    }
}
