//! CAPI core's Cluster controller: adopts the cluster (identity, finalizer, owner
//! references on what it references), copies the control-plane endpoint from the
//! infrastructure cluster, reports phases, replica counts and v1beta2 conditions, and on
//! deletion tears everything down and stops the workload control plane.

use serde_json::{Value, json};

use super::api::merge_into;
use super::kinds::{CLUSTER, KUBEADM_CONTROL_PLANE, MACHINE, MACHINE_DEPLOYMENT, MACHINE_SET};
use super::objects::{
    CLUSTER_FINALIZER, CLUSTER_ID_ANNOTATION, Cond, DELETE_FOR_MOVE_ANNOTATION, annotation,
    condition_true, finalizers, generation, has_owner, i64_at, is_deleting, is_paused,
    metav1_conditions, name, owner_reference, str_at, uid,
};
use super::snapshot::ClusterView;
use super::{Shared, SimError, machine, workload};

/// Makes the Cluster the simulator's: its identity annotation, CAPI's finalizer, and its
/// owner reference on the infrastructure cluster, control plane and MachineDeployments
/// (which clusterctl move follows). Returns the identity, or None when it was only just
/// set.
pub async fn adopt(shared: &Shared, view: &ClusterView<'_>) -> Result<Option<String>, SimError> {
    let kube = &shared.kube;
    let cluster = view.cluster;
    let Some(id) = annotation(cluster, CLUSTER_ID_ANNOTATION) else {
        let id = format!("{}/{}/{}", view.namespace, view.name, uid(cluster));
        tracing::info!(%id, "adopting the cluster");
        kube.merge(
            &CLUSTER,
            cluster,
            json!({ "metadata": { "annotations": { CLUSTER_ID_ANNOTATION: id } } }),
        )
        .await?;
        return Ok(None);
    };
    if !is_deleting(cluster) && !finalizers(cluster).iter().any(|f| f == CLUSTER_FINALIZER) {
        let mut wanted = finalizers(cluster);
        wanted.push(CLUSTER_FINALIZER.into());
        kube.set_finalizers(&CLUSTER, cluster, wanted).await?;
    }
    let owner = owner_reference(&CLUSTER, cluster);
    let mut owned: Vec<(super::kinds::Kind, &Value)> = Vec::new();
    if let Some((provider, infra)) = view.infra {
        owned.push((provider.cluster_kind(), infra));
    }
    if let Some(kcp) = view.kcp {
        owned.push((KUBEADM_CONTROL_PLANE, kcp));
    }
    owned.extend(view.mds.iter().map(|md| (MACHINE_DEPLOYMENT, *md)));
    for (kind, object) in owned {
        if !has_owner(object, uid(cluster)) && !is_paused(object) && !is_deleting(object) {
            let mut reference = owner.clone();
            // The Cluster owns these but does not control them.
            reference["controller"] = json!(false);
            let mut references = object
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            references.push(reference);
            kube.guarded_merge(
                &kind,
                object,
                json!({ "metadata": { "ownerReferences": references } }),
            )
            .await?;
        }
    }
    Ok(Some(id.to_string()))
}

/// Deleting a Cluster: everything of it is deleted, machines release their nodes, and
/// once no machine is left the workload control plane stops and the finalizer goes. A
/// Cluster deleted by clusterctl move (`delete-for-move`) is only let go: its machines
/// and control plane carry on wherever it was moved to.
pub async fn delete(shared: &Shared, view: &ClusterView<'_>, id: &str) -> Result<(), SimError> {
    let kube = &shared.kube;
    let cluster = view.cluster;
    let release = |object: &Value| {
        finalizers(object)
            .into_iter()
            .filter(|f| f != CLUSTER_FINALIZER)
            .collect::<Vec<_>>()
    };
    if annotation(cluster, DELETE_FOR_MOVE_ANNOTATION).is_some() {
        return kube
            .set_finalizers(&CLUSTER, cluster, release(cluster))
            .await;
    }
    tracing::info!("deleting the cluster");
    if let Some(kcp) = view.kcp.filter(|k| !is_deleting(k)) {
        kube.delete(&KUBEADM_CONTROL_PLANE, view.namespace, name(kcp))
            .await?;
    }
    for md in view.mds.iter().filter(|o| !is_deleting(o)) {
        kube.delete(&MACHINE_DEPLOYMENT, view.namespace, name(md))
            .await?;
    }
    for ms in view.mss.iter().filter(|o| !is_deleting(o)) {
        kube.delete(&MACHINE_SET, view.namespace, name(ms)).await?;
    }
    let workload = workload::running(id);
    for m in &view.machines {
        if is_deleting(m) {
            machine::finalize(shared, view, workload.as_deref(), m).await?;
        } else {
            kube.delete(&MACHINE, view.namespace, name(m)).await?;
        }
    }
    if !view.machines.is_empty() {
        return Ok(());
    }
    if let Some((provider, infra)) = view.infra {
        kube.delete(&provider.cluster_kind(), view.namespace, name(infra))
            .await?;
    }
    tracing::info!(%id, "stopping the workload control plane");
    workload::stop(id);
    kube.set_finalizers(&CLUSTER, cluster, release(cluster))
        .await
}

/// Sums of replica counts over objects' status fields.
fn sum(objects: &[&Value], pointer: &str) -> i64 {
    objects.iter().filter_map(|o| i64_at(o, pointer)).sum()
}

/// The Cluster's endpoint, phase, replica counts and conditions.
pub async fn reconcile_status(
    shared: &Shared,
    view: &ClusterView<'_>,
    workload_running: bool,
) -> Result<(), SimError> {
    let kube = &shared.kube;
    let cluster = view.cluster;
    // CAPI core copies the infrastructure cluster's endpoint into the Cluster's spec.
    let endpoint = view
        .infra
        .and_then(|(_, infra)| infra.pointer("/spec/controlPlaneEndpoint"))
        .filter(|e| str_at(e, "/host").is_some_and(|h| !h.is_empty()));
    if let Some(endpoint) = endpoint {
        kube.merge_if_changed(
            &CLUSTER,
            cluster,
            json!({ "spec": { "controlPlaneEndpoint": {
                "host": str_at(endpoint, "/host"),
                "port": i64_at(endpoint, "/port").unwrap_or(6443),
            }}}),
        )
        .await?;
    }
    let infra_provisioned = view.infra_provisioned();
    let initialized = view.control_plane_initialized();
    let cp_available = view
        .kcp
        .is_some_and(|kcp| condition_true(kcp, "/status/conditions", "Available"));
    let workers_available = view
        .mds
        .iter()
        .all(|md| condition_true(md, "/status/conditions", "Available"));
    let phase = if endpoint.is_some() && infra_provisioned {
        "Provisioned"
    } else if view.infra.is_some() {
        "Provisioning"
    } else {
        "Pending"
    };
    let generation = generation(cluster);
    let conditions = [
        Cond::new(
            "InfrastructureReady",
            infra_provisioned,
            "Ready",
            "NotReady",
            "",
        ),
        Cond::new(
            "ControlPlaneInitialized",
            initialized,
            "Initialized",
            "NotInitialized",
            "",
        ),
        Cond::new(
            "ControlPlaneAvailable",
            cp_available,
            "Available",
            "NotAvailable",
            "",
        ),
        Cond::new(
            "WorkersAvailable",
            workers_available,
            "Available",
            "NotAvailable",
            "",
        ),
        Cond::new(
            "RemoteConnectionProbe",
            workload_running,
            "ProbeSucceeded",
            "ProbeFailed",
            if workload_running {
                ""
            } else {
                "the workload API server is not running yet"
            },
        ),
        Cond::new(
            "Available",
            infra_provisioned
                && initialized
                && cp_available
                && workers_available
                && workload_running,
            "Available",
            "NotAvailable",
            "",
        ),
    ];
    let mut status = json!({
        "phase": phase,
        "observedGeneration": generation,
        "initialization": {
            "infrastructureProvisioned": infra_provisioned,
            "controlPlaneInitialized": initialized,
        },
        "conditions": metav1_conditions(cluster.pointer("/status/conditions"), &conditions, generation),
    });
    if let Some(kcp) = view.kcp {
        merge_into(
            &mut status,
            json!({ "controlPlane": {
                "desiredReplicas": i64_at(kcp, "/spec/replicas").unwrap_or(1),
                "replicas": i64_at(kcp, "/status/replicas").unwrap_or(0),
                "readyReplicas": i64_at(kcp, "/status/readyReplicas").unwrap_or(0),
                "availableReplicas": i64_at(kcp, "/status/availableReplicas").unwrap_or(0),
                "upToDateReplicas": i64_at(kcp, "/status/upToDateReplicas").unwrap_or(0),
            }}),
        );
    }
    merge_into(
        &mut status,
        json!({ "workers": {
            "desiredReplicas": sum(&view.mds, "/spec/replicas"),
            "replicas": sum(&view.mds, "/status/replicas"),
            "readyReplicas": sum(&view.mds, "/status/readyReplicas"),
            "availableReplicas": sum(&view.mds, "/status/availableReplicas"),
            "upToDateReplicas": sum(&view.mds, "/status/upToDateReplicas"),
        }}),
    );
    if kube.apply_status(&CLUSTER, cluster, status).await? {
        tracing::debug!(phase, "cluster status updated");
    }
    Ok(())
}
