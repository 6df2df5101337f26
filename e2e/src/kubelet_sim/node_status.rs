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
