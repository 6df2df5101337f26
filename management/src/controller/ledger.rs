//! Reading and recording the controller's decisions about a cluster (see
//! `strata_shared::cluster::ledger`): always read fresh from the API server, never from a
//! cache, and written as a JSON patch guarded by the resourceVersion they were decided on,
//! so that two decisions taken on the same state cannot both land.

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use serde_json::{Value, json};
use strata_shared::cluster::ledger::ClusterLedger;
use strata_shared::kube_writer::{KubeWriter, WriteError};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot read the cluster's ledger: {0}")]
    Read(#[source] WriteError),
    #[error("cannot record {decision}: {source}")]
    Record {
        decision: String,
        #[source]
        source: WriteError,
    },
}

/// What recording a decision found.
#[derive(Debug)]
pub enum Recorded {
    /// The decision is recorded; the namespace as it is now.
    Done(Box<Namespace>),
    /// The namespace changed since it was read (another decision, another writer): nothing
    /// was written; decide again from a fresh read.
    Stale,
}

/// The namespace as the API server has it now.
pub async fn read(writer: &KubeWriter, namespace: &str) -> Result<Option<Namespace>, LedgerError> {
    writer
        .cluster_scoped::<Namespace>()
        .get(namespace)
        .await
        .map_err(LedgerError::Read)
}

/// The ledger of a namespace (an absent namespace has recorded nothing).
pub fn of(namespace: Option<&Namespace>) -> ClusterLedger {
    ClusterLedger::read(namespace.and_then(|n| n.metadata.annotations.as_ref()))
}

/// The JSON patch that records `entries` on `namespace` if it is still at the
/// resourceVersion it was read at.
fn patch_for(namespace: &Namespace, entries: &[(&str, &str)]) -> Value {
    let mut ops = vec![json!({
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": namespace.resource_version(),
    })];
    if namespace.metadata.annotations.is_none() {
        ops.push(json!({ "op": "add", "path": "/metadata/annotations", "value": {} }));
    }
    for (key, value) in entries {
        // JSON pointer escapes: `~` as `~0`, `/` as `~1`.
        let key = key.replace('~', "~0").replace('/', "~1");
        ops.push(
            json!({ "op": "add", "path": format!("/metadata/annotations/{key}"), "value": value }),
        );
    }
    Value::Array(ops)
}

/// Records `entries` (annotation, value) on `namespace`, as it was read.
pub async fn record(
    writer: &KubeWriter,
    namespace: &Namespace,
    entries: &[(&str, &str)],
) -> Result<Recorded, LedgerError> {
    let name = namespace.name_any();
    let decision = entries
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let namespaces = writer.cluster_scoped::<Namespace>();
    match namespaces
        .json_patch(&name, &patch_for(namespace, entries))
        .await
    {
        Ok(updated) => {
            tracing::info!(namespace = %name, %decision, "recorded");
            Ok(Recorded::Done(Box::new(updated)))
        }
        // A failed `test` (409 from newer servers, 422 or 500 from older ones) or a
        // conflict: the namespace moved on since it was read.
        Err(e) if matches!(e.code(), Some(409 | 422 | 500)) => {
            tracing::info!(namespace = %name, %decision, code = e.code(), "the namespace changed since it was read; deciding again");
            Ok(Recorded::Stale)
        }
        Err(source) => Err(LedgerError::Record { decision, source }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn a_decision_is_guarded_by_the_version_it_was_read_at() {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some("strata-wc-a-b-1".into()),
                resource_version: Some("42".into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let patch = patch_for(&namespace, &[("strata.dev/pivot", "granted")]);
        assert_eq!(
            patch,
            json!([
                { "op": "test", "path": "/metadata/resourceVersion", "value": "42" },
                { "op": "add", "path": "/metadata/annotations", "value": {} },
                { "op": "add", "path": "/metadata/annotations/strata.dev~1pivot", "value": "granted" },
            ])
        );
        serde_json::from_value::<json_patch::Patch>(patch).unwrap();
    }
}
