//! Publishing revisions: the desired state becomes `<cluster>-r<N>` in the cluster's
//! objects namespace when it differs from the latest revision, and never changes after.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use strata_shared::contracts::labels::{REVISION_CLUSTER_LABEL, REVISION_NUMBER_LABEL};
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::revision::{
    ClusterRevision, ClusterRevisionSpec, DesiredState, content_hash, revision_name,
};

#[derive(Debug, thiserror::Error)]
#[error("cannot publish the revision of cluster {cluster}: {source}")]
pub struct RevisionError {
    pub cluster: String,
    #[source]
    pub source: WriteError,
}

/// The revision in force after publishing: its number and whether it is new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub number: i64,
    pub new: bool,
}

/// The latest revision of a cluster, among `revisions`.
pub fn latest(revisions: &[ClusterRevision]) -> Option<&ClusterRevision> {
    revisions.iter().max_by_key(|r| r.spec.number)
}

pub async fn publish(
    writer: &KubeWriter,
    namespace: &str,
    cluster: &str,
    desired: &DesiredState,
) -> Result<Published, RevisionError> {
    let revisions = writer.namespaced::<ClusterRevision>(namespace);
    let failed = |source: WriteError| RevisionError {
        cluster: cluster.to_string(),
        source,
    };
    let existing = revisions
        .list(&ListParams::default().labels(&format!("{REVISION_CLUSTER_LABEL}={cluster}")))
        .await
        .map_err(failed)?;
    let hash = content_hash(desired);
    let current = latest(&existing);
    if let Some(current) = current.filter(|r| r.spec.content_hash == hash) {
        return Ok(Published {
            number: current.spec.number,
            new: false,
        });
    }
    let number = current.map_or(1, |r| r.spec.number + 1);
    let revision = ClusterRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(cluster, number)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (REVISION_CLUSTER_LABEL.to_string(), cluster.to_string()),
                (REVISION_NUMBER_LABEL.to_string(), number.to_string()),
            ])),
            ..ObjectMeta::default()
        },
        spec: ClusterRevisionSpec {
            cluster_name: cluster.to_string(),
            number,
            content_hash: hash,
            desired: desired.clone(),
        },
    };
    // Create, never apply: a revision that exists is never rewritten. Losing a race to
    // another writer of the same number fails with a conflict and the next reconcile
    // sees the winner.
    revisions.create(&revision).await.map_err(failed)?;
    Ok(Published { number, new: true })
}
