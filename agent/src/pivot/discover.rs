//! What can move and what is there: kinds from the target's CRDs, the source's objects,
//! and whether the source cluster is ready to be moved.

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use serde_json::Value;
use strata_shared::pivot::{CLUSTERCTL_LABEL, MoveKind, SourceObject};

use super::PivotError;

/// How long the source may take to have every machine's node before the move gives up.
const PREFLIGHT_WAIT: Duration = Duration::from_secs(600);

pub fn resource(kind: &MoveKind) -> ApiResource {
    let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
    ApiResource::from_gvk_with_plural(&gvk, &kind.plural)
}

/// The movable kinds: CRDs labelled for clusterctl, plus Secrets and ConfigMaps.
pub async fn kinds(target: &Client, namespace: &str) -> Result<Vec<MoveKind>, PivotError> {
    let crds: Api<CustomResourceDefinition> = Api::all(target.clone());
    let list = crds
        .list(&ListParams::default().labels(CLUSTERCTL_LABEL))
        .await
        .map_err(|e| PivotError::Api {
            action: "list",
            what: "the clusterctl CRDs".into(),
            side: "target",
            source: Box::new(e),
        })?;
    let mut kinds = vec![MoveKind::secret(), MoveKind::config_map()];
    for crd in list.items {
        let json = serde_json::to_value(&crd).unwrap_or(Value::Null);
        match MoveKind::from_crd(&json) {
            Ok(kind) => kinds.push(kind),
            Err(e) => {
                tracing::warn!(error = %e, "a clusterctl CRD cannot be read; its kind does not move")
            }
        }
    }
    if !kinds
        .iter()
        .any(|k| k.group == "cluster.x-k8s.io" && k.kind == "Cluster")
    {
        return Err(PivotError::NotReady {
            what: format!("the target cluster for namespace {namespace}"),
            waited: Duration::ZERO,
            reason: "the Cluster API CRDs are not installed there yet (no Cluster kind labelled clusterctl.cluster.x-k8s.io)".into(),
        });
    }
    Ok(kinds)
}

fn api_error(action: &'static str, what: String) -> impl FnOnce(kube::Error) -> PivotError {
    move |e| PivotError::Api {
        action,
        what,
        side: "source",
        source: Box::new(e),
    }
}

/// Every object of the movable kinds in the source namespace (and cluster-scoped ones
/// the source lets the agent read).
pub async fn snapshot(
    source: &Client,
    namespace: &str,
    kinds: &[MoveKind],
) -> Result<Vec<SourceObject>, PivotError> {
    let mut objects = Vec::new();
    for kind in kinds.iter().filter(|k| k.is_movable()) {
        let resource = resource(kind);
        let api: Api<DynamicObject> = if kind.namespaced {
            Api::namespaced_with(source.clone(), namespace, &resource)
        } else {
            Api::all_with(source.clone(), &resource)
        };
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            // Cluster-scoped identities are shared and not the agent's to read in the
            // management cluster: references to them are reported by the plan.
            Err(kube::Error::Api(e)) if !kind.namespaced && e.code == 403 => {
                tracing::info!(kind = %kind.kind, "cluster-scoped kind not readable in the source; not moved");
                continue;
            }
            Err(e) => {
                return Err(api_error(
                    "list",
                    format!("{} in namespace {namespace}", kind.plural),
                )(e));
            }
        };
        for item in list.items {
            let mut json = serde_json::to_value(&item).unwrap_or(Value::Null);
            json["apiVersion"] = Value::from(resource.api_version.clone());
            json["kind"] = Value::from(kind.kind.clone());
            match SourceObject::from_json(json) {
                Ok(object) => objects.push(object),
                Err(e) => tracing::warn!(error = %e, "an object cannot be read; it stays"),
            }
        }
    }
    Ok(objects)
}

fn cluster_api(client: &Client, namespace: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("cluster.x-k8s.io", "v1beta2", kind);
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// Why the source cluster cannot be moved yet, if it cannot.
async fn not_ready(
    source: &Client,
    namespace: &str,
    cluster: &str,
) -> Result<Option<String>, PivotError> {
    let clusters = cluster_api(source, namespace, "Cluster", "clusters");
    let Some(found) = clusters
        .get_opt(cluster)
        .await
        .map_err(api_error("read", format!("Cluster {namespace}/{cluster}")))?
    else {
        return Ok(Some(format!(
            "Cluster {namespace}/{cluster} does not exist"
        )));
    };
    let flag = |pointer: &str| {
        found
            .data
            .pointer(pointer)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    if !flag("/status/initialization/infrastructureProvisioned") {
        return Ok(Some("its infrastructure is not provisioned".into()));
    }
    if !flag("/status/initialization/controlPlaneInitialized") {
        return Ok(Some("its control plane is not initialized".into()));
    }
    let machines = cluster_api(source, namespace, "Machine", "machines")
        .list(&ListParams::default().labels(&format!("cluster.x-k8s.io/cluster-name={cluster}")))
        .await
        .map_err(api_error(
            "list",
            format!("the Machines of {namespace}/{cluster}"),
        ))?;
    let waiting: Vec<String> = machines
        .items
        .iter()
        .filter(|m| m.data.pointer("/status/nodeRef/name").is_none())
        .map(|m| m.metadata.name.clone().unwrap_or_default())
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
pub async fn preflight(source: &Client, namespace: &str, cluster: &str) -> Result<(), PivotError> {
    let started = Instant::now();
    loop {
        match not_ready(source, namespace, cluster).await? {
            None => return Ok(()),
            Some(reason) if started.elapsed() >= PREFLIGHT_WAIT => {
                return Err(PivotError::NotReady {
                    what: format!("Cluster {namespace}/{cluster}"),
                    waited: PREFLIGHT_WAIT,
                    reason,
                });
            }
            Some(reason) => {
                tracing::info!(%reason, "waiting before the move");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
