//! CAPI core's MachineDeployment controller: one MachineSet per distinct machine template
//! (named by a hash of `spec.template.spec`), and a rolling update from the old sets to
//! the new one within `maxSurge` / `maxUnavailable` (CAPI's defaults 1 and 0: one extra
//! machine at a time, none removed before its replacement is ready).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::kinds::{MACHINE_DEPLOYMENT, MACHINE_SET};
use super::machine_set;
use super::objects::{
    CLUSTER_NAME_LABEL, Cond, DEPLOYMENT_NAME_LABEL, TEMPLATE_HASH_LABEL, bool_at, condition_true,
    creation, generation, i64_at, is_deleting, is_paused, label, labels_of, metav1_conditions,
    name, owner_reference, random_suffix, selector_string, stable_hash,
};
use super::snapshot::ClusterView;
use super::{Shared, SimError};

/// The hash of what makes machines different: the template's spec without the fields CAPI
/// propagates in place (deletion timeouts, readiness settings).
pub fn template_hash(md: &Value) -> String {
    let mut spec = md
        .pointer("/spec/template/spec")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(spec) = spec.as_object_mut() {
        for field in ["deletion", "minReadySeconds", "readinessGates"] {
            spec.remove(field);
        }
    }
    format!("{:010x}", stable_hash(&spec.to_string()) % 0xff_ffff_ffff)
}

fn int_or(value: Option<&Value>, default: i64) -> i64 {
    // Percentages are read as one machine: enough for a simulated rollout.
    value.and_then(Value::as_i64).unwrap_or(default)
}

/// Reconciles the MachineDeployments, then every MachineSet; returns, for each MachineSet
/// machine, whether it belongs to its deployment's current template.
pub async fn reconcile(
    shared: &Shared,
    view: &ClusterView<'_>,
) -> Result<BTreeMap<String, bool>, SimError> {
    let mut current_sets: BTreeMap<String, bool> = BTreeMap::new();
    for md in &view.mds {
        let sets: Vec<&Value> = view
            .mss
            .iter()
            .copied()
            .filter(|ms| label(ms, DEPLOYMENT_NAME_LABEL) == Some(name(md)))
            .collect();
        let hash = template_hash(md);
        for ms in &sets {
            current_sets.insert(
                name(ms).into(),
                label(ms, TEMPLATE_HASH_LABEL) == Some(hash.as_str()),
            );
        }
        if is_paused(md) || bool_at(md, "/spec/paused") || is_deleting(md) {
            continue;
        }
        rollout(shared, view, md, &sets, &hash).await?;
        write_status(shared, view, md, &sets, &hash).await?;
    }
    let mut up_to_date = BTreeMap::new();
    for ms in &view.mss {
        let current = current_sets.get(name(ms)).copied().unwrap_or(true);
        for m in machine_set::reconcile(shared, view, ms, current).await? {
            up_to_date.insert(m, current);
        }
    }
    Ok(up_to_date)
}

fn machines_of<'a>(view: &ClusterView<'a>, set: &Value) -> Vec<&'a Value> {
    view.machines
        .iter()
        .copied()
        .filter(|m| machine_set::belongs(m, set))
        .collect()
}

fn ready_count(machines: &[&Value]) -> i64 {
    machines
        .iter()
        .filter(|m| !is_deleting(m) && condition_true(m, "/status/conditions", "Ready"))
        .count() as i64
}

async fn set_replicas(shared: &Shared, set: &Value, replicas: i64) -> Result<(), SimError> {
    if i64_at(set, "/spec/replicas") == Some(replicas) {
        return Ok(());
    }
    tracing::info!(machine_set = %name(set), replicas, "scaling a machine set");
    shared
        .kube
        .merge(
            &MACHINE_SET,
            set,
            json!({ "spec": { "replicas": replicas } }),
        )
        .await
}

async fn rollout(
    shared: &Shared,
    view: &ClusterView<'_>,
    md: &Value,
    sets: &[&Value],
    hash: &str,
) -> Result<(), SimError> {
    let desired = i64_at(md, "/spec/replicas").unwrap_or(1).max(0);
    let spec_replicas = |s: &Value| i64_at(s, "/spec/replicas").unwrap_or(0);
    let current = sets
        .iter()
        .copied()
        .find(|s| label(s, TEMPLATE_HASH_LABEL) == Some(hash) && !is_deleting(s));
    let mut olds: Vec<&Value> = sets
        .iter()
        .copied()
        .filter(|s| label(s, TEMPLATE_HASH_LABEL) != Some(hash))
        .collect();
    olds.sort_by_key(|s| (creation(s).to_string(), name(s).to_string()));
    let old_total: i64 = olds.iter().map(|s| spec_replicas(s)).sum();
    let Some(current) = current else {
        let replicas = if old_total == 0 { desired } else { 0 };
        return create_set(shared, view, md, hash, replicas).await;
    };
    if old_total == 0 {
        set_replicas(shared, current, desired).await?;
        // Old sets that have let go of all their machines are no longer needed.
        for old in olds
            .iter()
            .filter(|s| !is_deleting(s) && machines_of(view, s).is_empty())
        {
            shared
                .kube
                .delete(&MACHINE_SET, view.namespace, name(old))
                .await?;
        }
        return Ok(());
    }
    let rolling = md.pointer("/spec/rollout/strategy/rollingUpdate");
    let max_surge = int_or(rolling.and_then(|r| r.get("maxSurge")), 1);
    let max_unavailable = int_or(rolling.and_then(|r| r.get("maxUnavailable")), 0);
    // Counted against what exists as well as what is asked: a set told to shrink still
    // has its machines until its next reconcile, and must not make room twice.
    let live = |s: &Value| {
        machines_of(view, s)
            .iter()
            .filter(|m| !is_deleting(m))
            .count() as i64
    };
    let total: i64 = sets
        .iter()
        .filter(|s| !is_deleting(s))
        .map(|s| spec_replicas(s).max(live(s)))
        .sum();
    let available: i64 = sets
        .iter()
        .map(|s| spec_replicas(s).min(ready_count(&machines_of(view, s))))
        .sum();
    // Scale the new set up within the surge.
    let room = (desired + max_surge - total).min(desired - spec_replicas(current));
    if room > 0 {
        set_replicas(shared, current, spec_replicas(current) + room).await?;
    } else if spec_replicas(current) > desired {
        set_replicas(shared, current, desired).await?;
    }
    // Scale old sets down as far as availability allows.
    let current_machines = machines_of(view, current);
    let new_unavailable = spec_replicas(current) - ready_count(&current_machines);
    let mut removable = available - (desired - max_unavailable) - new_unavailable.max(0);
    for old in olds {
        if removable <= 0 {
            break;
        }
        let replicas = spec_replicas(old);
        let cut = replicas.min(removable);
        if cut > 0 {
            set_replicas(shared, old, replicas - cut).await?;
            removable -= cut;
        }
    }
    Ok(())
}

async fn create_set(
    shared: &Shared,
    view: &ClusterView<'_>,
    md: &Value,
    hash: &str,
    replicas: i64,
) -> Result<(), SimError> {
    let set_name = format!("{}-{}", name(md), random_suffix());
    let mut labels = labels_of(md, "/spec/template/metadata/labels");
    labels.insert(CLUSTER_NAME_LABEL.into(), view.name.into());
    labels.insert(DEPLOYMENT_NAME_LABEL.into(), name(md).into());
    labels.insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    let mut selector = labels_of(md, "/spec/selector/matchLabels");
    selector.insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    let mut template = md
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    template["metadata"]["labels"] = json!(labels);
    let mut spec = json!({
        "clusterName": view.name,
        "replicas": replicas,
        "selector": { "matchLabels": selector },
        "template": template,
    });
    if let Some(deletion) = md.pointer("/spec/deletion") {
        spec["deletion"] = deletion.clone();
    }
    tracing::info!(md = %name(md), machine_set = %set_name, replicas, "creating a machine set");
    shared
        .kube
        .create(
            &MACHINE_SET,
            json!({
                "apiVersion": MACHINE_SET.api_version(),
                "kind": MACHINE_SET.kind,
                "metadata": {
                    "name": set_name,
                    "namespace": view.namespace,
                    "labels": labels,
                    "ownerReferences": [owner_reference(&MACHINE_DEPLOYMENT, md)],
                },
                "spec": spec,
            }),
        )
        .await?;
    Ok(())
}

async fn write_status(
    shared: &Shared,
    view: &ClusterView<'_>,
    md: &Value,
    sets: &[&Value],
    hash: &str,
) -> Result<(), SimError> {
    let machines: Vec<&Value> = sets.iter().flat_map(|s| machines_of(view, s)).collect();
    let desired = i64_at(md, "/spec/replicas").unwrap_or(1);
    let replicas = machines.len() as i64;
    let ready = ready_count(&machines);
    let available = machines
        .iter()
        .filter(|m| !is_deleting(m) && condition_true(m, "/status/conditions", "Available"))
        .count() as i64;
    let up_to_date = sets
        .iter()
        .filter(|s| label(s, TEMPLATE_HASH_LABEL) == Some(hash))
        .flat_map(|s| machines_of(view, s))
        .filter(|m| !is_deleting(m))
        .count() as i64;
    let max_unavailable = int_or(
        md.pointer("/spec/rollout/strategy/rollingUpdate/maxUnavailable"),
        0,
    );
    let is_available = available >= desired - max_unavailable;
    let phase = if replicas < desired {
        "ScalingUp"
    } else if replicas > desired {
        "ScalingDown"
    } else if machines
        .iter()
        .any(|m| super::objects::str_at(m, "/status/phase") == Some("Failed"))
    {
        "Failed"
    } else {
        "Running"
    };
    let generation = generation(md);
    let conditions = [
        Cond::new("Available", is_available, "Available", "NotAvailable", ""),
        Cond::new("MachinesReady", ready == replicas, "Ready", "NotReady", ""),
        Cond::new(
            "MachinesUpToDate",
            up_to_date == replicas,
            "UpToDate",
            "NotUpToDate",
            "",
        ),
        Cond::new(
            "RollingOut",
            up_to_date < replicas,
            "RollingOut",
            "NotRollingOut",
            "",
        ),
        Cond::new(
            "ScalingUp",
            replicas < desired,
            "ScalingUp",
            "NotScalingUp",
            "",
        ),
        Cond::new(
            "ScalingDown",
            replicas > desired,
            "ScalingDown",
            "NotScalingDown",
            "",
        ),
        Cond::new("Deleting", false, "", "NotDeleting", ""),
        Cond::new("Paused", false, "", "NotPaused", ""),
    ];
    let mut status = json!({
        "observedGeneration": generation,
        "phase": phase,
        "selector": selector_string(&labels_of(md, "/spec/selector/matchLabels")),
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": available,
        "upToDateReplicas": up_to_date,
        "conditions": metav1_conditions(md.pointer("/status/conditions"), &conditions, generation),
        "deprecated": { "v1beta1": {
            "readyReplicas": ready,
            "availableReplicas": available,
            "updatedReplicas": up_to_date,
            "unavailableReplicas": (desired - available).max(0),
        }},
    });
    let versions = super::kcp::versions(&machines);
    if !versions.is_empty() {
        status["versions"] = json!(versions);
    }
    shared
        .kube
        .apply_status(&MACHINE_DEPLOYMENT, md, status)
        .await?;
    Ok(())
}
