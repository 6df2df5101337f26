//! The revision the cluster runs, kept in the cluster itself: a restarted agent rolls the
//! next revision out from it, step by step, instead of taking the next one for done.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use strata_shared::contracts::names::{AGENT_NAMESPACE, APPLIED_REVISION_CONFIG_MAP};
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::revision::{ClusterRevision, ClusterRevisionSpec};

const KEY: &str = "revision.json";

#[derive(Debug, thiserror::Error)]
pub enum AppliedError {
    #[error("cannot read or write ConfigMap {AGENT_NAMESPACE}/{APPLIED_REVISION_CONFIG_MAP}: {0}")]
    Api(#[from] WriteError),
    #[error(
        "ConfigMap {AGENT_NAMESPACE}/{APPLIED_REVISION_CONFIG_MAP}: {KEY} is not a revision: {0}"
    )]
    Unreadable(serde_json::Error),
    #[error("cannot write revision {number} as JSON: {source}")]
    Unwritable {
        number: i64,
        source: serde_json::Error,
    },
}

/// The applied revision, `None` before the first one is done.
pub async fn load(
    workload: &KubeWriter,
    cluster: &str,
) -> Result<Option<ClusterRevision>, AppliedError> {
    let Some(config) = workload
        .namespaced::<ConfigMap>(AGENT_NAMESPACE)
        .get(APPLIED_REVISION_CONFIG_MAP)
        .await?
    else {
        return Ok(None);
    };
    let Some(text) = config.data.and_then(|mut d| d.remove(KEY)) else {
        return Ok(None);
    };
    let spec: ClusterRevisionSpec =
        serde_json::from_str(&text).map_err(AppliedError::Unreadable)?;
    Ok(Some(ClusterRevision::new(cluster, spec)))
}

/// Records `revision` as the one the cluster runs.
pub async fn save(workload: &KubeWriter, revision: &ClusterRevision) -> Result<(), AppliedError> {
    let text =
        serde_json::to_string(&revision.spec).map_err(|source| AppliedError::Unwritable {
            number: revision.spec.number,
            source,
        })?;
    let config = ConfigMap {
        metadata: ObjectMeta {
            name: Some(APPLIED_REVISION_CONFIG_MAP.into()),
            namespace: Some(AGENT_NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(KEY.to_string(), text)])),
        ..ConfigMap::default()
    };
    workload.apply(&config).await?;
    Ok(())
}
