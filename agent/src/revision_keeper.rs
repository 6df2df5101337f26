//! Once the objects live here: the cluster's revisions followed (and the latest kept
//! locally), the first one scaled out to (the control plane to its full count, the worker
//! pools created) and the node counts reported. Later revisions roll out in order
//! ([`crate::rollout`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DynamicObject, ListParams};
use serde_json::json;
use strata_shared::capi::{
    BuildInput, control_plane_name, full_control_plane_replicas, worker_pool_objects,
};
use strata_shared::cluster::ReplicaCounts;
use strata_shared::contracts::capi::{CLUSTER, CapiKind, KUBEADM_CONTROL_PLANE};
use strata_shared::contracts::capi_views::ClusterView;
use strata_shared::contracts::conditions::REASON_MOVED;
use strata_shared::contracts::labels::{REVISION_CLUSTER_LABEL, REVISION_NUMBER_LABEL};
use strata_shared::contracts::names::{AGENT_NAMESPACE, REVISION_COPY_CONFIG_MAP};
use strata_shared::kube_writer::{BoundedApi, KubeWriter, Operation, Target, WriteError};
use strata_shared::revision::{ClusterRevision, revision_name};

use crate::agent_error::{AgentError, Step};
use crate::management_link::{LinkError, ManagementLink};
use crate::status_report::StatusReport;

fn capi(workload: &KubeWriter, namespace: &str, kind: &CapiKind) -> BoundedApi<DynamicObject> {
    workload.dynamic(&kind.api_resource(), Some(namespace))
}

fn api_failed(link: &ManagementLink, step: Step) -> impl FnOnce(WriteError) -> AgentError + '_ {
    move |source| AgentError::Api {
        cluster: link.cluster.clone(),
        step,
        source,
    }
}

fn unreachable(link: &ManagementLink, step: Step) -> impl FnOnce(LinkError) -> AgentError + '_ {
    move |source| AgentError::Management {
        cluster: link.cluster.clone(),
        step,
        source,
    }
}

/// The cluster's CAPI Cluster, in its own cluster.
async fn target_cluster(
    workload: &KubeWriter,
    link: &ManagementLink,
) -> Result<ClusterView, AgentError> {
    let clusters = capi(workload, &link.objects_namespace, &CLUSTER);
    match clusters
        .get(&link.cluster)
        .await
        .map_err(api_failed(link, Step::ReadCluster))?
    {
        Some(cluster) => Ok(ClusterView::of(&cluster)),
        None => Err(AgentError::Missing {
            cluster: link.cluster.clone(),
            step: Step::ReadCluster,
            object: clusters.target(&link.cluster).to_string(),
        }),
    }
}

/// The numbers of the cluster's revisions in the management cluster, from their metadata
/// alone: a round that finds nothing new reads no revision.
async fn revision_numbers(link: &ManagementLink) -> Result<Vec<i64>, AgentError> {
    let management = link
        .management()
        .await
        .map_err(unreachable(link, Step::ReadRevision))?;
    let api: kube::Api<ClusterRevision> =
        kube::Api::namespaced(management.client().clone(), &link.objects_namespace);
    let params =
        ListParams::default().labels(&format!("{REVISION_CLUSTER_LABEL}={}", link.cluster));
    let listed = management
        .bounded(
            Operation::List,
            Target::kind("ClusterRevision", Some(&link.objects_namespace)),
            api.list_metadata(&params),
        )
        .await
        .map_err(api_failed(link, Step::ReadRevision))?;
    Ok(listed
        .items
        .iter()
        .filter_map(|r| {
            r.metadata
                .labels
                .as_ref()?
                .get(REVISION_NUMBER_LABEL)?
                .parse()
                .ok()
        })
        .collect())
}

/// Revision `number` in the management cluster.
async fn revision_in_management(
    link: &ManagementLink,
    number: i64,
) -> Result<Option<ClusterRevision>, AgentError> {
    let management = link
        .management()
        .await
        .map_err(unreachable(link, Step::ReadRevision))?;
    management
        .namespaced::<ClusterRevision>(&link.objects_namespace)
        .get(&revision_name(&link.cluster, number))
        .await
        .map_err(api_failed(link, Step::ReadRevision))
}

/// The copy of the latest revision this cluster keeps, so that a cluster cut off from the
/// management cluster still knows what it should be.
async fn local_copy(
    workload: &KubeWriter,
    link: &ManagementLink,
) -> Result<Option<ClusterRevision>, AgentError> {
    let local = workload
        .namespaced::<ConfigMap>(AGENT_NAMESPACE)
        .get(REVISION_COPY_CONFIG_MAP)
        .await
        .map_err(api_failed(link, Step::ReadLocalRevision))?;
    let Some(text) = local
        .and_then(|c| c.data)
        .and_then(|mut d| d.remove("revision.json"))
    else {
        return Ok(None);
    };
    let spec = serde_json::from_str(&text).map_err(|source| AgentError::RevisionCopy {
        cluster: link.cluster.clone(),
        step: Step::ReadLocalRevision,
        source,
    })?;
    Ok(Some(ClusterRevision::new(&link.cluster, spec)))
}

async fn keep_locally(
    workload: &KubeWriter,
    link: &ManagementLink,
    revision: &ClusterRevision,
) -> Result<(), AgentError> {
    let text =
        serde_json::to_string(&revision.spec).map_err(|source| AgentError::RevisionCopy {
            cluster: link.cluster.clone(),
            step: Step::KeepRevisionLocally,
            source,
        })?;
    let copy = ConfigMap {
        metadata: ObjectMeta {
            name: Some(REVISION_COPY_CONFIG_MAP.into()),
            namespace: Some(AGENT_NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("revision.json".to_string(), text)])),
        ..ConfigMap::default()
    };
    workload
        .apply(&copy)
        .await
        .map_err(api_failed(link, Step::KeepRevisionLocally))?;
    Ok(())
}

/// Follows the cluster's latest revision: read from the management cluster when it can be
/// reached (and kept locally whenever a newer one appears), else the local copy.
#[derive(Debug, Default)]
pub struct RevisionFollower {
    /// The latest revision read from the management cluster by this process (and kept
    /// locally).
    latest: Option<ClusterRevision>,
}

impl RevisionFollower {
    pub async fn latest(
        &mut self,
        workload: &KubeWriter,
        link: &ManagementLink,
    ) -> Result<ClusterRevision, AgentError> {
        let unreached = match self.read_management(workload, link).await {
            Ok(latest) => return Ok(latest),
            Err(e) => e,
        };
        match local_copy(workload, link).await? {
            Some(copy) => Ok(copy),
            None => Err(unreached),
        }
    }

    async fn read_management(
        &mut self,
        workload: &KubeWriter,
        link: &ManagementLink,
    ) -> Result<ClusterRevision, AgentError> {
        let no_revision = || AgentError::NoRevision {
            cluster: link.cluster.clone(),
            step: Step::ReadRevision,
            namespace: link.objects_namespace.clone(),
        };
        let newest = revision_numbers(link)
            .await?
            .into_iter()
            .max()
            .ok_or_else(no_revision)?;
        if let Some(latest) = self.latest.as_ref().filter(|r| r.spec.number == newest) {
            return Ok(latest.clone());
        }
        let latest = revision_in_management(link, newest)
            .await?
            .ok_or_else(no_revision)?;
        keep_locally(workload, link, &latest).await?;
        self.latest = Some(latest.clone());
        Ok(latest)
    }
}

/// Revision `number` of the cluster: from the management cluster, else the local copy when
/// it is that one; `None` when neither has it.
pub async fn revision_numbered(
    workload: &KubeWriter,
    link: &ManagementLink,
    number: i64,
) -> Result<Option<ClusterRevision>, AgentError> {
    match revision_in_management(link, number).await {
        Ok(found) => Ok(found),
        Err(unreached) => match local_copy(workload, link).await? {
            Some(copy) if copy.spec.number == number => Ok(Some(copy)),
            _ => Err(unreached),
        },
    }
}

/// The control plane to its full count, and the worker pools created.
pub async fn scale_out(
    workload: &KubeWriter,
    link: &ManagementLink,
    revision: &ClusterRevision,
) -> Result<(), AgentError> {
    let namespace = &link.objects_namespace;
    let desired = &revision.spec.desired;
    let cluster = target_cluster(workload, link).await?;
    let kcp = capi(workload, namespace, &KUBEADM_CONTROL_PLANE);
    let replicas = full_control_plane_replicas(desired);
    let patch = json!({ "spec": { "replicas": replicas } });
    kcp.merge_patch(&control_plane_name(&link.cluster), &patch)
        .await
        .map_err(api_failed(link, Step::ScaleControlPlane))?;
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
    .map_err(|source| AgentError::WorkerPools {
        cluster: link.cluster.clone(),
        step: Step::ApplyWorkerPools,
        revision: revision.spec.number,
        source,
    })?;
    for mut object in objects {
        object["metadata"]["ownerReferences"] = owner.clone();
        workload
            .apply_json(&object)
            .await
            .map_err(api_failed(link, Step::ApplyWorkerPools))?;
    }
    tracing::info!(
        control_plane = replicas,
        pools = desired.node_pools.workers.len(),
        "scaled the cluster to its revision"
    );
    Ok(())
}

/// Pivoted, and the node counts, on the WorkloadCluster's status.
pub async fn report_counts(
    workload: &KubeWriter,
    link: &ManagementLink,
    revision: &ClusterRevision,
    report: &StatusReport,
) -> Result<(), AgentError> {
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
    let management = link
        .management()
        .await
        .map_err(unreachable(link, Step::Report))?;
    report
        .send(&management, link)
        .await
        .map_err(api_failed(link, Step::Report))
}
