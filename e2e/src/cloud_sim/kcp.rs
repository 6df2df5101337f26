//! The kubeadm control-plane provider (KubeadmControlPlane): Machines with KubeadmConfigs
//! and infrastructure machines cloned from `spec.machineTemplate.spec.infrastructureRef`,
//! one at a time as KCP does (the first one initializes the cluster, each further one
//! waits for every existing one to be ready); a rolling replacement with a surge of one
//! when the version or the template changes; scale down oldest-outdated first.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::kinds::{KUBEADM_CONTROL_PLANE, MACHINE};
use super::new_machine::{self, Bootstrap, NewMachine};
use super::objects::{
    CLONED_FROM_NAME, CLUSTER_NAME_LABEL, CONTROL_PLANE_LABEL, CONTROL_PLANE_NAME_LABEL, Cond,
    annotation, bool_at, condition_true, creation, generation, i64_at, is_deleting, is_paused,
    labels_of, metav1_conditions, name, owner_reference, random_suffix, str_at, version_key,
};
use super::snapshot::ClusterView;
use super::{Shared, SimError};

fn ready(machine: &Value) -> bool {
    condition_true(machine, "/status/conditions", "Ready")
}

/// Reconciles the cluster's KCP; returns, for each of its machines, whether it matches the
/// KCP's current version and template.
pub async fn reconcile(
    shared: &Shared,
    view: &ClusterView<'_>,
) -> Result<BTreeMap<String, bool>, SimError> {
    let Some(kcp) = view.kcp else {
        return Ok(BTreeMap::new());
    };
    let kcp_name = name(kcp);
    let machines: Vec<&Value> = view
        .machines
        .iter()
        .copied()
        .filter(|m| super::objects::label(m, CONTROL_PLANE_NAME_LABEL) == Some(kcp_name))
        .collect();
    let version = str_at(kcp, "/spec/version").unwrap_or_default();
    let template_name = str_at(kcp, "/spec/machineTemplate/spec/infrastructureRef/name");
    let up_to_date: BTreeMap<String, bool> = machines
        .iter()
        .map(|m| {
            let cloned_from = view
                .infra_machine(m)
                .and_then(|(_, infra)| annotation(infra, CLONED_FROM_NAME));
            let current = str_at(m, "/spec/version") == Some(version)
                && (cloned_from.is_none() || cloned_from == template_name);
            (name(m).to_string(), current)
        })
        .collect();
    if is_paused(kcp) || is_deleting(kcp) {
        return Ok(up_to_date);
    }
    let live: Vec<&Value> = machines
        .iter()
        .copied()
        .filter(|m| !is_deleting(m))
        .collect();
    let desired = i64_at(kcp, "/spec/replicas").unwrap_or(1).max(0) as usize;
    let initialized = bool_at(kcp, "/status/initialization/controlPlaneInitialized")
        || live.iter().any(|m| m.pointer("/status/nodeRef").is_some());

    if view.infra_provisioned() {
        for m in live.iter().filter(|m| new_machine::incomplete(view, m)) {
            new_machine::ensure(
                &shared.kube,
                machine_for(view, kcp, name(m), live.len() == 1 && !initialized)?,
            )
            .await?;
        }
        let busy = machines.iter().any(|m| is_deleting(m));
        let all_ready = live.iter().all(|m| ready(m));
        let outdated: Vec<&Value> = live
            .iter()
            .copied()
            .filter(|m| !up_to_date.get(name(m)).copied().unwrap_or(true))
            .collect();
        if !busy && live.len() > desired {
            // Outdated machines go first, oldest first; the rest must be ready, so a
            // rollout never removes a machine before its replacement serves.
            let mut candidates = if outdated.is_empty() {
                live.clone()
            } else {
                outdated.clone()
            };
            candidates.sort_by_key(|m| (creation(m).to_string(), name(m).to_string()));
            if let Some(victim) = candidates.first() {
                let others_ready = live
                    .iter()
                    .filter(|m| name(m) != name(victim))
                    .all(|m| ready(m));
                if others_ready {
                    tracing::info!(kcp = %kcp_name, machine = %name(victim), "scaling the control plane down");
                    shared
                        .kube
                        .delete(&MACHINE, view.namespace, name(victim))
                        .await?;
                }
            }
        } else if !busy
            && (live.len() < desired || (!outdated.is_empty() && live.len() == desired))
            && (live.is_empty() || (all_ready && initialized))
        {
            let machine_name = format!("{kcp_name}-{}", random_suffix());
            tracing::info!(kcp = %kcp_name, machine = %machine_name, rollout = !outdated.is_empty(), "creating a control-plane machine");
            new_machine::ensure(
                &shared.kube,
                machine_for(view, kcp, &machine_name, live.is_empty())?,
            )
            .await?;
        }
    }
    write_status(shared, view, kcp, &machines, &up_to_date, initialized).await?;
    Ok(up_to_date)
}

/// The Machine KCP creates: the first one's KubeadmConfig initializes the cluster, the
/// others' join it.
fn machine_for<'a>(
    view: &'a ClusterView<'a>,
    kcp: &'a Value,
    machine_name: &str,
    init: bool,
) -> Result<NewMachine<'a>, SimError> {
    let infrastructure_ref = kcp
        .pointer("/spec/machineTemplate/spec/infrastructureRef")
        .ok_or_else(|| SimError::Invalid {
            what: format!("KubeadmControlPlane {}/{}", view.namespace, name(kcp)),
            reason: "it has no spec.machineTemplate.spec.infrastructureRef".into(),
        })?;
    let mut labels = labels_of(kcp, "/spec/machineTemplate/metadata/labels");
    labels.insert(CLUSTER_NAME_LABEL.into(), view.name.into());
    labels.insert(CONTROL_PLANE_LABEL.into(), String::new());
    labels.insert(CONTROL_PLANE_NAME_LABEL.into(), name(kcp).into());
    let mut config = kcp
        .pointer("/spec/kubeadmConfigSpec")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(spec) = config.as_object_mut() {
        if init {
            spec.remove("joinConfiguration");
        } else {
            spec.remove("initConfiguration");
            spec.remove("clusterConfiguration");
            // KCP marks every joining machine as a control-plane join.
            let join = spec.entry("joinConfiguration").or_insert_with(|| json!({}));
            if let Some(join) = join.as_object_mut() {
                join.entry("controlPlane").or_insert_with(|| json!({}));
            }
        }
        // The schema wants a non-empty spec; `format` is the field's default.
        if spec.is_empty() {
            spec.insert("format".into(), json!("cloud-config"));
        }
    }
    let mut extra_spec = json!({});
    if let Some(deletion) = kcp.pointer("/spec/machineTemplate/spec/deletion") {
        extra_spec["deletion"] = deletion.clone();
    }
    Ok(NewMachine {
        name: machine_name.to_string(),
        view,
        version: str_at(kcp, "/spec/version").map(String::from),
        labels,
        annotations: labels_of(kcp, "/spec/machineTemplate/metadata/annotations"),
        owner: owner_reference(&KUBEADM_CONTROL_PLANE, kcp),
        infrastructure_ref,
        bootstrap: Bootstrap::Config(config),
        extra_spec,
    })
}

/// Machines per version, lowest first.
pub fn versions(machines: &[&Value]) -> Vec<Value> {
    let mut counts: BTreeMap<Vec<u64>, (String, i64)> = BTreeMap::new();
    for m in machines {
        if let Some(v) = str_at(m, "/spec/version") {
            counts.entry(version_key(v)).or_insert((v.to_string(), 0)).1 += 1;
        }
    }
    counts
        .into_values()
        .map(|(version, replicas)| json!({ "version": version, "replicas": replicas }))
        .collect()
}

async fn write_status(
    shared: &Shared,
    view: &ClusterView<'_>,
    kcp: &Value,
    machines: &[&Value],
    up_to_date: &BTreeMap<String, bool>,
    initialized: bool,
) -> Result<(), SimError> {
    let count = |f: &dyn Fn(&Value) -> bool| machines.iter().filter(|m| f(m)).count() as i64;
    let replicas = machines.len() as i64;
    let ready_count = count(&ready);
    let available = count(&|m| condition_true(m, "/status/conditions", "Available"));
    let current = count(&|m| up_to_date.get(name(m)).copied().unwrap_or(false));
    let desired = i64_at(kcp, "/spec/replicas").unwrap_or(1);
    let live = machines.iter().filter(|m| !is_deleting(m)).count() as i64;
    let quorum = live / 2 + 1;
    let is_available = initialized && ready_count >= quorum;
    let generation = generation(kcp);
    let versions = versions(machines);
    let conditions = [
        Cond::new("Available", is_available, "Available", "NotAvailable", ""),
        Cond::new(
            "Initialized",
            initialized,
            "Initialized",
            "NotInitialized",
            "",
        ),
        Cond::new(
            "CertificatesAvailable",
            true,
            "Available",
            "NotAvailable",
            "",
        ),
        Cond::new(
            "EtcdClusterHealthy",
            is_available,
            "Healthy",
            "NotHealthy",
            "",
        ),
        Cond::new(
            "ControlPlaneComponentsHealthy",
            is_available,
            "Healthy",
            "NotHealthy",
            "",
        ),
        Cond::new(
            "MachinesReady",
            ready_count == replicas,
            "Ready",
            "NotReady",
            "",
        ),
        Cond::new(
            "MachinesUpToDate",
            current == replicas,
            "UpToDate",
            "NotUpToDate",
            "",
        ),
        Cond::new(
            "RollingOut",
            current < replicas,
            "RollingOut",
            "NotRollingOut",
            "",
        ),
        Cond::new("ScalingUp", live < desired, "ScalingUp", "NotScalingUp", ""),
        Cond::new(
            "ScalingDown",
            live > desired,
            "ScalingDown",
            "NotScalingDown",
            "",
        ),
        Cond::new("Deleting", false, "", "NotDeleting", ""),
        Cond::new("Paused", false, "", "NotPaused", ""),
    ];
    let mut status = json!({
        "observedGeneration": generation,
        "selector": format!("{CLUSTER_NAME_LABEL}={},{CONTROL_PLANE_LABEL}", view.name),
        "replicas": replicas,
        "readyReplicas": ready_count,
        "availableReplicas": available,
        "upToDateReplicas": current,
        "initialization": { "controlPlaneInitialized": initialized },
        "conditions": metav1_conditions(kcp.pointer("/status/conditions"), &conditions, generation),
        "deprecated": { "v1beta1": {
            "readyReplicas": ready_count,
            "updatedReplicas": current,
            "unavailableReplicas": replicas - available,
        }},
    });
    // The schema wants at least one item, and 1.20's apply cannot send an empty list.
    if let Some(lowest) = versions.first() {
        status["version"] = lowest["version"].clone();
        status["versions"] = json!(versions);
    }
    shared
        .kube
        .apply_status(&KUBEADM_CONTROL_PLANE, kcp, status)
        .await?;
    Ok(())
}
