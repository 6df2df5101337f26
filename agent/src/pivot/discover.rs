//! What can move and what is there: kinds from the target's CRDs, the source's objects
//! (and the identity outside the namespace they name), and whether the source cluster is
//! ready to be moved.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;
use strata_shared::contracts::capi::{CLUSTER, CapiKind, MACHINE};
use strata_shared::contracts::capi_views::{ClusterView, MachineView};
use strata_shared::contracts::labels::{CAPI_CLUSTER_NAME_LABEL, CLUSTERCTL_LABEL};
use strata_shared::kube_writer::{BoundedApi, KubeWriter, WriteError};
use strata_shared::pivot::{MoveKind, SourceObject, WantedObject, unread_references};
use strata_shared::provider::inventory::CORE_LABEL as INVENTORY_CORE_LABEL;

use super::PivotError;
use crate::crd_outline;

/// How long the source may take to have every machine's node before the move gives up.
const PREFLIGHT_WAIT: Duration = Duration::from_secs(600);
/// Lists of the source in flight at once while it is read.
const PARALLEL_LISTS: usize = 8;

pub fn resource(kind: &MoveKind) -> ApiResource {
    let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
    ApiResource::from_gvk_with_plural(&gvk, &kind.plural)
}

/// The movable kinds: CRDs labelled for clusterctl (but clusterctl's own inventory, which
/// stays where it is), plus Secrets and ConfigMaps.
pub async fn kinds(target: &KubeWriter, namespace: &str) -> Result<Vec<MoveKind>, PivotError> {
    // Outlines: the kinds are all a move needs of the CRDs, and their schemas are most of
    // their size.
    let crds = crd_outline::list(target, &ListParams::default().labels(CLUSTERCTL_LABEL))
        .await
        .map_err(|source| PivotError::Api {
            side: "target",
            source,
        })?;
    let mut kinds = vec![MoveKind::secret(), MoveKind::config_map()];
    let inventory = |crd: &crd_outline::CrdOutline| {
        crd.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(INVENTORY_CORE_LABEL))
    };
    for crd in crds.iter().filter(|c| !inventory(c)) {
        match MoveKind::from_crd(&crd.to_json()) {
            Ok(kind) => kinds.push(kind),
            Err(e) => {
                tracing::warn!(error = %e, "a clusterctl CRD cannot be read; its kind does not move")
            }
        }
    }
    if !kinds
        .iter()
        .any(|k| k.group == CLUSTER.group && k.kind == CLUSTER.kind)
    {
        return Err(PivotError::NotReady {
            what: format!("the target cluster for namespace {namespace}"),
            waited: Duration::ZERO,
            reason: format!(
                "the Cluster API CRDs are not installed there yet (no Cluster kind labelled {CLUSTERCTL_LABEL})"
            ),
        });
    }
    Ok(kinds)
}

fn in_source(source: WriteError) -> PivotError {
    PivotError::Api {
        side: "source",
        source,
    }
}

/// Every object of the movable kinds in the source namespace, then, one by one by name,
/// the objects outside it that those reference: the cluster's identity when it is
/// cluster-scoped, and the Secret it reads in the provider's namespace. The agent may
/// `get` its own cluster's identity and Secret in the management cluster, and list no one's.
pub async fn snapshot(
    source: &KubeWriter,
    namespace: &str,
    kinds: &[MoveKind],
) -> Result<Vec<SourceObject>, PivotError> {
    // One list per kind, several at once: a small move is mostly this fixed cost (some
    // thirty kinds with the upstream CRDs), and the order of the result stays the kinds'.
    // Boxed, so that the futures' type names no closure: spawned callers need it `Send`
    // for every lifetime.
    let lists: Vec<BoxFuture<'_, Result<Vec<SourceObject>, PivotError>>> = kinds
        .iter()
        .filter(|k| k.is_movable() && k.namespaced)
        .map(|kind| {
            async move {
                let resource = resource(kind);
                let items = match source
                    .dynamic(&resource, Some(namespace))
                    .list(&ListParams::default())
                    .await
                {
                    Ok(items) => items,
                    // The kinds are the target's: a kind the source does not serve (another
                    // cloud's, on a move back into the management cluster) has nothing to move.
                    Err(e) if e.code() == Some(404) => Vec::new(),
                    Err(e) => return Err(in_source(e)),
                };
                Ok(items
                    .into_iter()
                    .filter_map(|item| source_object(item, &resource, kind))
                    .collect::<Vec<_>>())
            }
            .boxed()
        })
        .collect();
    let mut objects: Vec<SourceObject> = futures::stream::iter(lists)
        .buffered(PARALLEL_LISTS)
        .try_collect::<Vec<Vec<SourceObject>>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    // An identity fetched in one round names its Secret only in the next.
    let mut tried = BTreeSet::new();
    loop {
        let wanted: Vec<WantedObject> = unread_references(namespace, kinds, &objects)
            .into_iter()
            .filter(|wanted| tried.insert(wanted.to_string()))
            .collect();
        if wanted.is_empty() {
            return Ok(objects);
        }
        for wanted in wanted {
            if let Some(object) = fetch(source, &wanted).await? {
                objects.push(object);
            }
        }
    }
}

/// One object outside the namespace, by name; None when it is absent or not the agent's
/// to read (the plan then reports the reference as not followed).
#[tracing::instrument(skip_all, fields(object = %wanted))]
async fn fetch(
    source: &KubeWriter,
    wanted: &WantedObject,
) -> Result<Option<SourceObject>, PivotError> {
    let resource = resource(&wanted.kind);
    let objects = source.dynamic(&resource, wanted.namespace.as_deref());
    match objects.get(&wanted.name).await {
        Ok(Some(item)) => Ok(source_object(item, &resource, &wanted.kind)),
        Ok(None) => {
            tracing::info!("a referenced object does not exist in the source; not moved");
            Ok(None)
        }
        Err(e) if e.is_forbidden() => {
            tracing::info!(reason = %e, "a referenced object is not the agent's to read; not moved");
            Ok(None)
        }
        Err(e) => Err(in_source(e)),
    }
}

fn source_object(
    item: DynamicObject,
    resource: &ApiResource,
    kind: &MoveKind,
) -> Option<SourceObject> {
    let mut json = serde_json::to_value(&item).unwrap_or(Value::Null);
    json["apiVersion"] = Value::from(resource.api_version.clone());
    json["kind"] = Value::from(kind.kind.clone());
    match SourceObject::from_json(json) {
        Ok(object) => Some(object),
        Err(e) => {
            tracing::warn!(error = %e, "an object cannot be read; it stays");
            None
        }
    }
}

fn cluster_api(source: &KubeWriter, namespace: &str, kind: &CapiKind) -> BoundedApi<DynamicObject> {
    source.dynamic(&kind.api_resource(), Some(namespace))
}

/// Why the source cluster cannot be moved yet, if it cannot.
async fn not_ready(
    source: &KubeWriter,
    namespace: &str,
    cluster: &str,
) -> Result<Option<String>, PivotError> {
    let clusters = cluster_api(source, namespace, &CLUSTER);
    let Some(found) = clusters.get(cluster).await.map_err(in_source)? else {
        return Ok(Some(format!(
            "Cluster {namespace}/{cluster} does not exist"
        )));
    };
    // The v1beta2 flags: the move waits for both, whatever the conditions say.
    let initialization = ClusterView::of(&found).initialization;
    if !initialization.infrastructure_provisioned {
        return Ok(Some("its infrastructure is not provisioned".into()));
    }
    if !initialization.control_plane_initialized {
        return Ok(Some("its control plane is not initialized".into()));
    }
    let machines = cluster_api(source, namespace, &MACHINE)
        .list(&ListParams::default().labels(&format!("{CAPI_CLUSTER_NAME_LABEL}={cluster}")))
        .await
        .map_err(in_source)?;
    let waiting: Vec<String> = machines
        .iter()
        .map(MachineView::of)
        .filter(|m| m.node.is_none())
        .map(|m| m.name)
        .collect();
    if !waiting.is_empty() {
        return Ok(Some(format!(
            "machines without a node: {}",
            waiting.join(", ")
        )));
    }
    Ok(None)
}

/// Waits (bounded) until the source cluster is provisioned and every machine has its node.
/// How the source was found ready to be moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preflight {
    /// At the first look.
    Ready,
    /// After waiting: whatever was read of it meanwhile is out of date.
    ReadyAfterWaiting,
}

pub async fn preflight(
    source: &KubeWriter,
    namespace: &str,
    cluster: &str,
) -> Result<Preflight, PivotError> {
    let started = Instant::now();
    let mut waited = false;
    loop {
        match not_ready(source, namespace, cluster).await? {
            None if waited => return Ok(Preflight::ReadyAfterWaiting),
            None => return Ok(Preflight::Ready),
            Some(reason) if started.elapsed() >= PREFLIGHT_WAIT => {
                return Err(PivotError::NotReady {
                    what: format!("Cluster {namespace}/{cluster}"),
                    waited: PREFLIGHT_WAIT,
                    reason,
                });
            }
            Some(reason) => {
                tracing::info!(%reason, "waiting before the move");
                waited = true;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
