//! CAPI core's Machine controller: copies bootstrap data and the provider ID from the
//! bootstrap config and infrastructure machine, registers the Machine's Node in the
//! workload cluster once the instance runs, and reports the phase (Pending → Provisioning
//! → Provisioned → Running, or Failed), addresses, nodeRef and v1beta2 conditions. On
//! deletion it removes the Node, the infrastructure machine and the bootstrap data, then
//! its finalizer.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};

use super::health_check::Verdict;
use super::infra_machine;
use super::kinds::{KUBEADM_CONFIG, MACHINE};
use super::objects::{
    Cond, DELETE_FOR_MOVE_ANNOTATION, MACHINE_FINALIZER, annotation, finalizers, generation,
    is_deleting, is_paused, metav1_conditions, name, now, str_at, uid,
};
use super::providers;
use super::snapshot::ClusterView;
use super::workload::Workload;
use super::workload_nodes::{self, NodeSpec};
use super::{Shared, SimError};

/// What a Machine's reconcile needs beyond the Machine.
pub struct Env<'a> {
    pub view: &'a ClusterView<'a>,
    pub workload: Option<&'a Workload>,
    pub nodes: Option<&'a BTreeMap<String, Node>>,
    /// Machine name → whether it matches its owner's current spec (from KCP and MDs).
    pub up_to_date: &'a BTreeMap<String, bool>,
    /// Machine name → what its MachineHealthCheck found, for the machines one selects.
    pub health: &'a BTreeMap<String, Verdict>,
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub async fn reconcile(shared: &Shared, env: &Env<'_>, machine: &Value) -> Result<(), SimError> {
    let kube = &shared.kube;
    if is_paused(machine) {
        return Ok(());
    }
    if is_deleting(machine) {
        return finalize(shared, env.view, env.workload, machine).await;
    }
    if !finalizers(machine).iter().any(|f| f == MACHINE_FINALIZER) {
        let mut wanted = finalizers(machine);
        wanted.push(MACHINE_FINALIZER.into());
        kube.set_finalizers(&MACHINE, machine, wanted).await?;
    }
    let machine_name = name(machine);
    // Bootstrap data: from the config's status, or given directly in the spec.
    let mut data_secret = str_at(machine, "/spec/bootstrap/dataSecretName").map(String::from);
    if data_secret.is_none()
        && let Some(secret) = env
            .view
            .config(machine)
            .and_then(|c| str_at(c, "/status/dataSecretName"))
    {
        kube.merge(
            &MACHINE,
            machine,
            json!({ "spec": { "bootstrap": { "dataSecretName": secret } } }),
        )
        .await?;
        data_secret = Some(secret.to_string());
    }
    let infra = env.view.infra_machine(machine);
    let infra_ready = infra.is_some_and(|(p, i)| providers::is_provisioned(p, i));
    let failure = infra.and_then(|(_, i)| infra_machine::failure(i));
    let provider_id = infra
        .filter(|_| infra_ready)
        .and_then(|(_, i)| str_at(i, "/spec/providerID"));
    if let Some(id) = provider_id
        && str_at(machine, "/spec/providerID") != Some(id)
    {
        kube.merge(&MACHINE, machine, json!({ "spec": { "providerID": id } }))
            .await?;
    }
    // The Node: registered once the instance has run for `node_delay`.
    let node = env.nodes.and_then(|n| n.get(machine_name));
    let spec = |id, provider, infra| {
        let (cpus, memory_mib) = providers::size(provider, infra);
        NodeSpec {
            name: machine_name,
            provider_id: id,
            control_plane: ClusterView::is_control_plane(machine),
            cpus,
            memory_mib,
            version: str_at(machine, "/spec/version"),
        }
    };
    if let (Some(node), Some(workload), Some(id), Some((provider, infra))) =
        (node, env.workload, provider_id, infra)
        && !workload.kubelet().owns(machine_name)
    {
        workload_nodes::adopt_node(workload, spec(id, provider, infra), node_ready(node));
    }
    if node.is_none()
        && let (Some(workload), Some(nodes), Some(id), Some((provider, infra))) =
            (env.workload, env.nodes, provider_id, infra)
        && !nodes.contains_key(machine_name)
        && shared.waited(uid(machine), "node", shared.options.node_delay, false)
    {
        tracing::info!(machine = %machine_name, provider_id = %id, "registering the node");
        workload_nodes::register_node(workload, spec(id, provider, infra)).await?;
    }
    let ready_node = node.is_some_and(node_ready);
    let up_to_date = env.up_to_date.get(machine_name).copied().unwrap_or(true);
    let phase = if failure.is_some() {
        "Failed"
    } else if node.is_some() {
        "Running"
    } else if infra_ready {
        "Provisioned"
    } else if data_secret.is_some() {
        "Provisioning"
    } else {
        "Pending"
    };
    let generation = generation(machine);
    let failure_message = failure
        .as_ref()
        .map(|(_, m)| m.as_str())
        .unwrap_or_default();
    let bootstrap_ready = data_secret.is_some();
    let ready = bootstrap_ready && infra_ready && ready_node;
    let node_message = match node {
        None => "the node has not registered yet",
        Some(_) if !ready_node => "the node is not ready",
        Some(_) => "",
    };
    let mut conditions = vec![
        Cond::new("Available", ready, "Available", "NotAvailable", ""),
        Cond::new("Ready", ready, "Ready", "NotReady", node_message),
        Cond::new("UpToDate", up_to_date, "UpToDate", "NotUpToDate", ""),
        Cond::new(
            "BootstrapConfigReady",
            bootstrap_ready,
            "Ready",
            "NotReady",
            "",
        ),
        Cond {
            kind: "InfrastructureReady",
            status: infra_ready,
            reason: match &failure {
                Some((reason, _)) => reason.clone(),
                None if infra_ready => "Ready".into(),
                None => "NotReady".into(),
            },
            message: failure_message.into(),
        },
        Cond::new(
            "NodeReady",
            ready_node,
            "NodeReady",
            "NodeNotReady",
            node_message,
        ),
        Cond::new(
            "NodeHealthy",
            ready_node,
            "NodeHealthy",
            "NodeNotHealthy",
            node_message,
        ),
        Cond::new("Deleting", false, "", "NotDeleting", ""),
        Cond::new("Paused", false, "", "NotPaused", ""),
    ];
    if let Some(verdict) = env.health.get(machine_name) {
        conditions.extend(verdict.conditions());
    }
    let phase_changed = str_at(machine, "/status/phase") != Some(phase);
    let mut status = json!({
        "phase": phase,
        "observedGeneration": generation,
        "initialization": {
            "bootstrapDataSecretCreated": bootstrap_ready,
            "infrastructureProvisioned": infra_ready,
        },
        "conditions": metav1_conditions(machine.pointer("/status/conditions"), &conditions, generation),
    });
    // Kept while the phase stays, so an unchanged machine writes nothing.
    status["lastUpdated"] = match str_at(machine, "/status/lastUpdated") {
        Some(at) if !phase_changed => json!(at),
        _ => json!(now()),
    };
    if infra_ready && let Some(addresses) = infra.and_then(|(_, i)| i.pointer("/status/addresses"))
    {
        status["addresses"] = addresses.clone();
    }
    if let Some(node) = node {
        status["nodeRef"] = json!({ "name": machine_name });
        if let Some(info) = node.status.as_ref().and_then(|s| s.node_info.as_ref()) {
            status["nodeInfo"] = serde_json::to_value(info).unwrap_or_default();
        }
    }
    if let Some((_, message)) = &failure {
        status["deprecated"] = json!({ "v1beta1": {
            "failureReason": "CreateError",
            "failureMessage": message,
        }});
    }
    if kube.apply_status(&MACHINE, machine, status).await? && phase_changed {
        tracing::info!(machine = %machine_name, phase, "machine phase");
    }
    Ok(())
}

/// A deleted Machine: its Node leaves the workload cluster, its infrastructure machine and
/// bootstrap data are deleted, then CAPI's finalizer is removed. A Machine deleted by
/// clusterctl move keeps its Node: the machine lives on in the move's target.
pub async fn finalize(
    shared: &Shared,
    view: &ClusterView<'_>,
    workload: Option<&Workload>,
    machine: &Value,
) -> Result<(), SimError> {
    let kube = &shared.kube;
    let machine_name = name(machine);
    let remaining: Vec<String> = finalizers(machine)
        .into_iter()
        .filter(|f| f != MACHINE_FINALIZER)
        .collect();
    if annotation(machine, DELETE_FOR_MOVE_ANNOTATION).is_some() {
        return kube.set_finalizers(&MACHINE, machine, remaining).await;
    }
    if !finalizers(machine).iter().any(|f| f == MACHINE_FINALIZER) {
        return Ok(());
    }
    // The deletion is done within this pass; the phase is shown for the watchers, merged
    // so the rest of the status stays as the last reconcile wrote it.
    // The finalizer is then removed against this patch's resource version.
    let mut current = machine.clone();
    if str_at(machine, "/status/phase") != Some("Deleting") {
        let api = kube.api(&MACHINE, view.namespace);
        let patch = json!({ "status": { "phase": "Deleting" } });
        let params = kube::api::PatchParams {
            field_manager: Some(super::api::FIELD_MANAGER.into()),
            ..Default::default()
        };
        match api
            .patch_status(machine_name, &params, &kube::api::Patch::Merge(&patch))
            .await
        {
            Ok(patched) => {
                if let Some(version) = patched.metadata.resource_version {
                    current["metadata"]["resourceVersion"] = json!(version);
                }
            }
            Err(e) => {
                tracing::debug!(machine = %machine_name, error = %e, "cannot show the Deleting phase")
            }
        }
    }
    if let Some(workload) = workload {
        tracing::info!(machine = %machine_name, "removing the node");
        workload_nodes::remove_node(workload, machine_name).await?;
    }
    if let Some((provider, infra)) = view.infra_machine(machine) {
        kube.delete(&provider.machine_kind(), view.namespace, name(infra))
            .await?;
    }
    if let Some(config) = view.config(machine) {
        kube.delete(&KUBEADM_CONFIG, view.namespace, name(config))
            .await?;
    }
    shared.forget(uid(machine));
    tracing::info!(machine = %machine_name, "machine deleted");
    kube.set_finalizers(&MACHINE, &current, remaining).await
}

/// Nodes the simulated kubelet registered for machines that no longer exist (deleted
/// while the simulator was not watching) are removed.
pub async fn remove_orphan_nodes(
    view: &ClusterView<'_>,
    workload: &Workload,
    nodes: Option<&BTreeMap<String, Node>>,
) -> Result<(), SimError> {
    let machines: BTreeSet<&str> = view.machines.iter().map(|m| name(m)).collect();
    let registered = workload.kubelet().node_names();
    for node in registered {
        if !machines.contains(node.as_str()) && nodes.is_some_and(|n| n.contains_key(&node)) {
            tracing::info!(node = %node, "removing the node of a machine that is gone");
            workload_nodes::remove_node(workload, &node).await?;
        }
    }
    Ok(())
}
