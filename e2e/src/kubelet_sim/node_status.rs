//! What the simulated kubelet tells the apiserver about its nodes: their status and Ready
//! condition, its own taints, and the lease and status it renews every heartbeat.

use std::sync::Arc;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use super::node_rules::{NodeReadiness, merged_taints};
use super::{FIELD_MANAGER, HEARTBEAT, Shared, SimNode, lock, now};

pub(super) async fn write_node_status(
    client: &Client,
    node: &SimNode,
    readiness: NodeReadiness,
) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let capacity = json!({
        "cpu": node.cpus.to_string(),
        "memory": format!("{}Mi", node.memory_mib),
        "pods": "110",
        "ephemeral-storage": "100Gi",
    });
    let status = json!({
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": node_conditions(readiness),
            "addresses": [
                { "type": "InternalIP", "address": "127.0.0.1" },
                { "type": "Hostname", "address": node.name },
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.20.2",
                "kubeProxyVersion": "v1.20.2",
                "containerRuntimeVersion": "strata-sim://1",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "simulated",
                "kernelVersion": "simulated",
                "machineID": node.name,
                "systemUUID": node.name,
                "bootID": node.name,
            },
        }
    });
    nodes
        .patch_status(&node.name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map(|_| ())
}

fn node_conditions(readiness: NodeReadiness) -> serde_json::Value {
    let now = now();
    let fine = |kind: &str, reason: &str| json!({ "type": kind, "status": "False", "reason": reason, "lastHeartbeatTime": now, "lastTransitionTime": now });
    let (status, reason, message) = readiness.condition();
    json!([
        {
            "type": "Ready",
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        },
        fine("MemoryPressure", "KubeletHasSufficientMemory"),
        fine("DiskPressure", "KubeletHasNoDiskPressure"),
        fine("PIDPressure", "KubeletHasSufficientPID"),
    ])
}

pub(super) async fn set_node_ready(
    client: &Client,
    name: &str,
    readiness: NodeReadiness,
) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({ "status": { "conditions": node_conditions(readiness) } });
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map(|_| ())
}

/// Sets the kubelet's own taints on the node and keeps everyone else's (the node lifecycle
/// controller's `NoExecute` ones, a test's). The list is replaced whole, guarded by the
/// resourceVersion read, so a concurrent change is not lost: a conflict is retried by the
/// next heartbeat.
pub(super) async fn sync_taints(
    client: &Client,
    name: &str,
    own: &[Taint],
) -> Result<(), kube::Error> {
    // The node lifecycle controller writes taints too; a conflict is read again at once,
    // so that a test's `node_ready` does not fail on a race it did not cause.
    let mut attempt = 0;
    loop {
        match sync_taints_once(client, name, own).await {
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < 4 => attempt += 1,
            other => return other,
        }
    }
}

async fn sync_taints_once(client: &Client, name: &str, own: &[Taint]) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let Some(node) = nodes.get_opt(name).await? else {
        return Ok(());
    };
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let wanted = merged_taints(&current, own);
    let same = wanted.len() == current.len() && wanted.iter().all(|t| current.contains(t));
    if same {
        return Ok(());
    }
    let patch = json!({
        "metadata": { "resourceVersion": node.metadata.resource_version },
        "spec": { "taints": wanted },
    });
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

pub(super) async fn renew_lease(client: &Client, node: &str) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(node.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.into()),
            lease_duration_seconds: Some(40),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..LeaseSpec::default()
        }),
    };
    leases
        .patch(
            node,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&lease),
        )
        .await
        .map(|_| ())
}

pub(super) async fn heartbeat(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        stop_requested_kubelets(&shared).await;
        let nodes = lock(&shared.nodes).clone();
        for node in nodes {
            if lock(&shared.faults).not_ready_nodes.contains(&node.name) {
                continue;
            }
            if let Err(e) = renew_lease(&shared.client, &node.name).await {
                tracing::debug!(node = %node.name, error = %e, "cannot renew the node lease");
            }
            if let Err(e) = shared.publish_readiness(&node.name).await {
                tracing::debug!(node = %node.name, error = %e, "cannot refresh the node status");
            }
        }
    }
}

/// A test asks for a node's kubelet to stop (as a crashed kubelet would) by annotating the
/// Node with [`KUBELET_STOPPED_ANNOTATION`]: the kubelet that runs it, in whichever process
/// (the test's, or a simulator's after a pivot), stops posting its status, and the node goes
/// NotReady as the node lifecycle controller sees the silence. For good: a stopped kubelet
/// does not come back, its machine is replaced.
async fn stop_requested_kubelets(shared: &Shared) {
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let Ok(list) = nodes.list_metadata(&Default::default()).await else {
        return;
    };
    for node in list.items {
        let name = node.metadata.name.unwrap_or_default();
        let requested = node
            .metadata
            .annotations
            .is_some_and(|a| a.contains_key(KUBELET_STOPPED_ANNOTATION));
        let owned = lock(&shared.nodes).iter().any(|n| n.name == name);
        if requested && owned && lock(&shared.faults).not_ready_nodes.insert(name.clone()) {
            tracing::info!(node = %name, "the kubelet stops, as asked");
            if let Err(e) = shared.publish_readiness(&name).await {
                tracing::debug!(node = %name, error = %e, "cannot report the node NotReady");
            }
        }
    }
}

/// See [`stop_requested_kubelets`].
pub const KUBELET_STOPPED_ANNOTATION: &str = "sim.strata.dev/kubelet-stopped";
