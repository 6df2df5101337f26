//! Publishing revisions: the desired state becomes `<cluster>-r<N>` in the cluster's
//! objects namespace when it differs from the latest revision, and never changes after.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use strata_shared::revision::{
    ClusterRevision, ClusterRevisionSpec, DesiredState, content_hash, revision_name,
};

use strata_shared::contracts::labels::{REVISION_CLUSTER_LABEL, REVISION_NUMBER_LABEL};

use super::context::WRITE_TIMEOUT;

#[derive(Debug, thiserror::Error)]
pub enum RevisionError {
    #[error(
        "cannot {action} the revisions of cluster {cluster} in namespace {namespace}: {source}"
    )]
    Api {
        action: &'static str,
        cluster: String,
        namespace: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("publishing revision {number} of cluster {cluster} took longer than {seconds} s")]
    Timeout {
        cluster: String,
        number: i64,
        seconds: u64,
    },
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
    client: &Client,
    namespace: &str,
    cluster: &str,
    desired: &DesiredState,
) -> Result<Published, RevisionError> {
    let api: Api<ClusterRevision> = Api::namespaced(client.clone(), namespace);
    let failed = |action: &'static str| {
        move |source: kube::Error| RevisionError::Api {
            action,
            cluster: cluster.to_string(),
            namespace: namespace.to_string(),
            source: Box::new(source),
        }
    };
    let existing = api
        .list(&ListParams::default().labels(&format!("{REVISION_CLUSTER_LABEL}={cluster}")))
        .await
        .map_err(failed("list"))?;
    let hash = content_hash(desired);
    let current = latest(&existing.items);
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
    match tokio::time::timeout(WRITE_TIMEOUT, api.create(&PostParams::default(), &revision)).await {
        Ok(Ok(_)) => Ok(Published { number, new: true }),
        Ok(Err(e)) => Err(failed("create")(e)),
        Err(_) => Err(RevisionError::Timeout {
            cluster: cluster.to_string(),
            number,
            seconds: WRITE_TIMEOUT.as_secs(),
        }),
    }
}
