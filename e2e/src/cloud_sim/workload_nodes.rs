//! The Nodes of a workload cluster, as each Machine's kubelet registers its own: the
//! simulator's kubelet in the cluster registers them, takes over those another
//! simulator's process registered before the machines moved here, and removes them with
//! their machines.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use super::SimError;
use super::workload::Workload;
use crate::kubelet_sim::SimNode;

/// The workload cluster's Nodes by name.
pub async fn nodes(workload: &Workload) -> Result<BTreeMap<String, Node>, SimError> {
    let api: Api<Node> = Api::all(workload.client());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|source| SimError::List {
            kind: format!("Node of workload {}", workload.id()),
            source: Box::new(source),
        })?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|n| Some((n.metadata.name.clone()?, n)))
        .collect())
}

/// What a registered Node looks like.
pub struct NodeSpec<'a> {
    pub name: &'a str,
    pub provider_id: &'a str,
    pub control_plane: bool,
    pub cpus: u32,
    pub memory_mib: u64,
    pub version: Option<&'a str>,
}

impl NodeSpec<'_> {
    fn sim_node(&self) -> SimNode {
        let mut labels = BTreeMap::new();
        if self.control_plane {
            // Both names: 1.20 still uses `master`, newer tooling `control-plane`.
            labels.insert(
                "node-role.kubernetes.io/control-plane".to_string(),
                String::new(),
            );
            labels.insert("node-role.kubernetes.io/master".to_string(), String::new());
        }
        SimNode {
            name: self.name.into(),
            labels,
            provider_id: Some(self.provider_id.into()),
            cpus: self.cpus,
            memory_mib: self.memory_mib,
        }
    }
}

/// A registered Node this process's kubelet does not serve (its machine was run by
/// another simulator before it moved here) made its own.
pub fn adopt_node(workload: &Workload, node: NodeSpec<'_>, ready: bool) {
    workload.kubelet().adopt_node(node.sim_node(), ready);
}

/// Registers a Node as its kubelet would, reporting the Machine's Kubernetes version.
pub async fn register_node(workload: &Workload, node: NodeSpec<'_>) -> Result<(), SimError> {
    let sim_node = node.sim_node();
    let node_error = |reason: String| SimError::Workload {
        cluster: workload.id().to_string(),
        action: "register a node",
        reason,
    };
    workload
        .kubelet()
        .add_node(sim_node)
        .await
        .map_err(|e| node_error(e.to_string()))?;
    if let Some(version) = node.version {
        // The simulated kubelet reports 1.20.2; the kubelet a machine would run has the
        // machine's version, which is what rollouts are checked by.
        let api: Api<Node> = Api::all(workload.client());
        let patch = json!({ "status": { "nodeInfo": {
            "kubeletVersion": version,
            "kubeProxyVersion": version,
        }}});
        api.patch_status(node.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| node_error(e.to_string()))?;
    }
    Ok(())
}

pub async fn remove_node(workload: &Workload, node: &str) -> Result<(), SimError> {
    workload
        .kubelet()
        .remove_node(node)
        .await
        .map_err(|e| SimError::Workload {
            cluster: workload.id().to_string(),
            action: "remove a node",
            reason: e.to_string(),
        })
}
