//! Publishing revisions: the desired state becomes `<cluster>-r<N>` in the cluster's
//! objects namespace when it differs from the latest revision, and never changes after.
//! The latest revision is the one the cluster runs (management's own record, never what
//! the site reports), and a change the upgrade rules refuse publishes nothing: the
//! cluster stays on it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use strata_shared::contracts::labels::{REVISION_CLUSTER_LABEL, REVISION_NUMBER_LABEL};
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::revision::{
    ClusterRevision, ClusterRevisionSpec, DesiredState, UpgradeConstraint, UpgradeRefused,
    check_upgrade, content_hash, revision_name,
};

#[derive(Debug, thiserror::Error)]
#[error("cannot publish the revision of cluster {cluster}: {source}")]
pub struct RevisionError {
    pub cluster: String,
    #[source]
    pub source: WriteError,
}

/// The revision in force after publishing: its number, whether it is new, and its desired
/// state, which is not the one asked for when the change was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub number: i64,
    pub new: bool,
    pub desired: DesiredState,
    /// Why the asked-for desired state was not published.
    pub refused: Option<UpgradeRefused>,
}

/// The latest revision of a cluster, among `revisions`.
pub fn latest(revisions: &[ClusterRevision]) -> Option<&ClusterRevision> {
    revisions.iter().max_by_key(|r| r.spec.number)
}

/// Publishes `desired` as the next revision of `cluster` unless it is the latest one's
/// already, or the upgrade rules refuse the move from the latest one to it (`constraints`
/// are the `upgrade` dependencies of `desired`'s packs). The first revision has no rule to
/// meet.
pub async fn publish(
    writer: &KubeWriter,
    namespace: &str,
    cluster: &str,
    desired: &DesiredState,
    constraints: &[UpgradeConstraint],
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
            desired: current.spec.desired.clone(),
            refused: None,
        });
    }
    if let Some(current) = current
        && let Err(refused) = check_upgrade(&current.spec.desired, desired, constraints)
    {
        return Ok(Published {
            number: current.spec.number,
            new: false,
            desired: current.spec.desired.clone(),
            refused: Some(refused),
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
    Ok(Published {
        number,
        new: true,
        desired: desired.clone(),
        refused: None,
    })
}
