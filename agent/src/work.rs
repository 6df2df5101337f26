//! What the leading agent does: pivot the cluster's CAPI objects into its own cluster,
//! scale it to its revision, and report back whenever the management cluster answers.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DynamicObject, ListParams};
use serde_json::json;
use strata_shared::capi::{
    BuildInput, control_plane_name, full_control_plane_replicas, worker_pool_objects,
};
use strata_shared::cluster::{ReplicaCounts, WorkloadCluster};
use strata_shared::contracts::capi::{CLUSTER, CapiKind, KUBEADM_CONTROL_PLANE};
use strata_shared::contracts::capi_views::ClusterView;
use strata_shared::contracts::conditions::{REASON_MOVED, REASON_MOVED_BACK, REASON_MOVING};
use strata_shared::contracts::labels::REVISION_CLUSTER_LABEL;
use strata_shared::contracts::names::{AGENT_NAMESPACE, REVISION_COPY_CONFIG_MAP};
use strata_shared::kube_writer::{BoundedApi, KubeWriter};
use strata_shared::pivot::journal::Direction;
use strata_shared::provider_components::ProviderController;
use strata_shared::revision::ClusterRevision;

use crate::management_link::ManagementLink;
use crate::move_attempt::{prepare_attempt, run_attempt};
use crate::move_grant::{self, Grant};
use crate::pivot::JournalStore;
use crate::status_report::StatusReport;
use crate::{identity_sync, link_keeper, move_back, provider_install};

const RETRY: Duration = Duration::from_secs(5);
const REPORT_EVERY: Duration = Duration::from_secs(10);

fn capi(workload: &KubeWriter, namespace: &str, kind: &CapiKind) -> BoundedApi<DynamicObject> {
    workload.dynamic(&kind.api_resource(), Some(namespace))
}

/// The cluster's CAPI Cluster, in its own cluster.
async fn target_cluster(
    workload: &KubeWriter,
    link: &ManagementLink,
) -> Result<ClusterView, String> {
    let clusters = capi(workload, &link.objects_namespace, &CLUSTER);
    match clusters.get(&link.cluster).await {
        Ok(Some(cluster)) => Ok(ClusterView::of(&cluster)),
        Ok(None) => Err(format!(
            "{} is not in this cluster",
            clusters.target(&link.cluster)
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs until the task is dropped (on losing the lease or stopping).
pub async fn run(
    workload: KubeWriter,
    link: ManagementLink,
    providers: Option<ProviderController>,
) {
    let report = StatusReport::default();
    if let Ok(management) = link.management().await
        && let Ok(Some(cluster)) = management
            .namespaced::<WorkloadCluster>(&link.cluster_namespace)
            .get(&link.cluster)
            .await
    {
        report.seed(&cluster);
    }
    // The link is kept whatever the work is doing: reports, and a renewed token.
    let keeper = tokio::spawn(link_keeper::run(
        workload.clone(),
        link.clone(),
        report.clone(),
    ));
    let _stop_keeper = AbortOnDrop(keeper);
    // A restart after a move back has started finishes it first: the objects may be
    // half in each cluster.
    if move_back::requested(&workload, &link).await != Some(true)
        && !pivot(&workload, &link, providers.as_ref(), &report).await
    {
        tracing::info!("the cluster is being deleted before its objects moved here; nothing to do");
        std::future::pending::<()>().await;
    }
    let mut revision: Option<ClusterRevision> = None;
    let mut scaled = false;
    loop {
        if move_back::requested(&workload, &link).await == Some(true) {
            move_back::move_back(&workload, &link, &report).await;
            // The cluster is CAPI's in the management cluster to delete now.
            std::future::pending::<()>().await;
        }
        if revision.is_none() {
            match latest_revision(&workload, &link).await {
                Ok(found) => revision = Some(found),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the cluster's revision; retrying")
                }
            }
        }
        if let Some(revision) = &revision {
            if !scaled {
                match scale_out(&workload, &link, revision).await {
                    Ok(()) => scaled = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot scale the cluster to its revision; retrying")
                    }
                }
            }
            if scaled && let Err(e) = report_counts(&workload, &link, revision, &report).await {
                tracing::info!(error = %e, "cannot report to the management cluster; will try again");
            }
        }
        sync_identity(&workload, &link).await;
        tokio::time::sleep(if scaled { REPORT_EVERY } else { RETRY }).await;
    }
}

/// Aborts a task when dropped: the link keeper ends with the work.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Copies a changed cloud identity from the management cluster (failures are the next
/// round's to retry).
async fn sync_identity(workload: &KubeWriter, link: &ManagementLink) {
    let Ok(data) = link.data().await else {
        return;
    };
    let Some(secret) = &data.identity_secret else {
        return;
    };
    let Ok(management) = link.management().await else {
        return;
    };
    if let Err(e) = identity_sync::sync(workload, &management, secret).await {
        tracing::info!(error = %e, "cannot copy the cloud identity; will try again");
    }
}

/// Moves the objects here; false when the cluster is being deleted before a move started.
async fn pivot(
    workload: &KubeWriter,
    link: &ManagementLink,
    providers: Option<&ProviderController>,
    report: &StatusReport,
) -> bool {
    // A move is journaled only once the providers are installed and the move granted: a
    // restarted agent goes straight on with it, and a cluster that has moved needs nothing
    // of the management cluster to carry on.
    let mut providers_installed = move_started(workload, link).await;
    loop {
        if !providers_installed {
            match install_providers(workload, link, providers).await {
                Ok(()) => providers_installed = true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the provider components; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        // A new move is planned only once granted: from the grant on, the controller leaves
        // the objects alone, so the plan's snapshot stays true.
        if !move_started(workload, link).await {
            let management = match link.management().await {
                Ok(management) => management,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the management cluster; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            match move_grant::ask(&management, link, report).await {
                Grant::Granted => {}
                Grant::Refused => return false,
                Grant::Pending => continue,
            }
        }
        let Some(attempt) = prepare_attempt(workload, link, Direction::Pivot).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        if attempt.prepared.is_done() {
            return true;
        }
        if attempt.prepared.is_new() {
            // A deletion that came after the grant finds nothing moved yet: say so, and the
            // controller deletes the cluster where it is.
            match move_back::deletion_requested(link).await {
                Some(false) => {}
                Some(true) => {
                    nothing_moved(&attempt.management, link, report).await;
                    return false;
                }
                None => {
                    tracing::warn!("cannot tell whether the cluster is being deleted; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
            // Tell the controller before anything is touched.
            report.set_pivoted(
                "False",
                REASON_MOVING,
                "the agent is moving the CAPI objects into the workload cluster",
            );
            if let Err(e) = report.send(&attempt.management, link).await {
                tracing::warn!(error = %e, "cannot tell the management cluster the move starts; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        }
        if run_attempt(attempt, link, "False", report).await {
            tracing::info!(cluster = %link.cluster, "the cluster's CAPI objects live in the cluster now");
            return true;
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The move was granted but the cluster was deleted before anything moved: the objects
/// never left the management cluster.
async fn nothing_moved(management: &KubeWriter, link: &ManagementLink, report: &StatusReport) {
    report.set_pivoted(
        "False",
        REASON_MOVED_BACK,
        "the cluster was deleted before anything moved; its CAPI objects never left the management cluster",
    );
    while let Err(e) = report.send(management, link).await {
        tracing::warn!(error = %e, "cannot tell the management cluster nothing moved; retrying");
        tokio::time::sleep(RETRY).await;
    }
}

async fn install_providers(
    workload: &KubeWriter,
    link: &ManagementLink,
    providers: Option<&ProviderController>,
) -> Result<(), String> {
    let management = link.management().await.map_err(|e| e.to_string())?;
    let installed = provider_install::install(workload, &management, providers)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(crds = installed.crds, controllers = %installed.controllers, "provider components installed");
    Ok(())
}

async fn move_started(workload: &KubeWriter, link: &ManagementLink) -> bool {
    let store = JournalStore::new(workload, &link.cluster, Direction::Pivot);
    matches!(store.load().await, Ok(Some(_)))
}

/// The latest revision: from the management cluster (kept locally too), else the local
/// copy, so a cluster cut off from the management cluster still knows what it should be.
async fn latest_revision(
    workload: &KubeWriter,
    link: &ManagementLink,
) -> Result<ClusterRevision, String> {
    let from_management = async {
        let management = link.management().await.map_err(|e| e.to_string())?;
        let list = management
            .namespaced::<ClusterRevision>(&link.objects_namespace)
            .list(
                &ListParams::default()
                    .labels(&format!("{REVISION_CLUSTER_LABEL}={}", link.cluster)),
            )
            .await
            .map_err(|e| e.to_string())?;
        list.into_iter()
            .max_by_key(|r| r.spec.number)
            .ok_or_else(|| {
                format!(
                    "no revision of {} in {}",
                    link.cluster, link.objects_namespace
                )
            })
    };
    match from_management.await {
        Ok(revision) => {
            let copy = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(REVISION_COPY_CONFIG_MAP.into()),
                    namespace: Some(AGENT_NAMESPACE.into()),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([(
                    "revision.json".to_string(),
                    serde_json::to_string(&revision.spec).map_err(|e| e.to_string())?,
                )])),
                ..ConfigMap::default()
            };
            workload
                .apply(&copy)
                .await
                .map_err(|e| format!("cannot keep the revision locally: {e}"))?;
            Ok(revision)
        }
        Err(reason) => {
            let local = workload
                .namespaced::<ConfigMap>(AGENT_NAMESPACE)
                .get(REVISION_COPY_CONFIG_MAP)
                .await
                .map_err(|e| e.to_string())?;
            let text = local
                .and_then(|c| c.data)
                .and_then(|mut d| d.remove("revision.json"))
                .ok_or(reason)?;
            let spec = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            Ok(ClusterRevision::new(&link.cluster, spec))
        }
    }
}

/// The control plane to its full count, and the worker pools created.
async fn scale_out(
    workload: &KubeWriter,
    link: &ManagementLink,
    revision: &ClusterRevision,
) -> Result<(), String> {
    let namespace = &link.objects_namespace;
    let desired = &revision.spec.desired;
    let cluster = target_cluster(workload, link).await?;
    let kcp = capi(workload, namespace, &KUBEADM_CONTROL_PLANE);
    let replicas = full_control_plane_replicas(desired);
    let patch = json!({ "spec": { "replicas": replicas } });
    kcp.merge_patch(&control_plane_name(&link.cluster), &patch)
        .await
        .map_err(|e| format!("cannot scale the control plane to {replicas}: {e}"))?;
    let owner = json!([{
        "apiVersion": CLUSTER.api_version,
        "kind": CLUSTER.kind,
        "name": link.cluster,
        "uid": cluster.uid,
        "blockOwnerDeletion": true,
    }]);
    let objects = worker_pool_objects(&BuildInput {
        cluster_name: &link.cluster,
        namespace,
        revision: revision.spec.number,
        desired,
    })
    .map_err(|e| e.to_string())?;
    for mut object in objects {
        object["metadata"]["ownerReferences"] = owner.clone();
        workload
            .apply_json(&object)
            .await
            .map_err(|e| e.to_string())?;
    }
    tracing::info!(
        control_plane = replicas,
        pools = desired.node_pools.workers.len(),
        "scaled the cluster to its revision"
    );
    Ok(())
}

/// Pivoted, and the node counts, on the WorkloadCluster's status.
async fn report_counts(
    workload: &KubeWriter,
    link: &ManagementLink,
    revision: &ClusterRevision,
    report: &StatusReport,
) -> Result<(), String> {
    let cluster = target_cluster(workload, link).await?;
    let pools = &revision.spec.desired.node_pools;
    report.set_counts(
        ReplicaCounts::new(
            i64::from(pools.control_plane.count),
            cluster.control_plane_ready,
        ),
        ReplicaCounts::new(
            pools.workers.iter().map(|w| i64::from(w.count)).sum(),
            cluster.workers_ready,
        ),
    );
    report.set_pivoted(
        "True",
        REASON_MOVED,
        &format!(
            "the CAPI objects live in the workload cluster (namespace {})",
            link.objects_namespace
        ),
    );
    let management = link.management().await.map_err(|e| e.to_string())?;
    report
        .send(&management, link)
        .await
        .map_err(|e| e.to_string())
}
