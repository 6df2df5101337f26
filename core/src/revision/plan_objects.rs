//! The Cluster API objects of two revisions, built as the controller and the agent build
//! them, compared by kind and name; and from the differences, the machines CAPI replaces.
//!
//! Templates are named after their content, so a changed template shows as one created
//! and one deleted, and the object that points at it as changed at its reference.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{ClusterRevisionSpec, ObjectAction, ObjectChange, PlanError, Replacement, RolloutStep};
use crate::capi::{BuildInput, control_plane_objects, worker_pool_objects};
use crate::contracts::capi::{KUBEADM_CONTROL_PLANE, MACHINE_DEPLOYMENT};
use crate::contracts::labels::{CONTROL_PLANE_POOL, REVISION_ANNOTATION};

/// Both revisions are built into the same namespace, which no object's content depends
/// on and the plan does not print.
const PLAN_NAMESPACE: &str = "plan";

/// The fields of a `KubeadmControlPlane` whose change makes CAPI replace its machines.
const CONTROL_PLANE_ROLLS: [(&str, &str); 3] = [
    ("spec.version", "Kubernetes version"),
    ("spec.machineTemplate", "machine template"),
    ("spec.kubeadmConfigSpec", "kubeadm config"),
];

/// The fields of a `MachineDeployment` whose change makes CAPI replace its machines.
const POOL_ROLLS: [(&str, &str); 3] = [
    ("spec.template.spec.version", "Kubernetes version"),
    ("spec.template.spec.infrastructureRef", "machine template"),
    ("spec.template.spec.bootstrap", "bootstrap config"),
];

struct Built {
    step: RolloutStep,
    kind: String,
    name: String,
    object: Value,
}

fn build(spec: &ClusterRevisionSpec) -> Result<Vec<Built>, PlanError> {
    let input = BuildInput {
        cluster_name: &spec.cluster_name,
        namespace: PLAN_NAMESPACE,
        revision: spec.number,
        desired: &spec.desired,
    };
    let failed = |source| PlanError::Objects {
        cluster: spec.cluster_name.clone(),
        revision: spec.number,
        source,
    };
    let control_plane = control_plane_objects(&input).map_err(failed)?;
    let workers = worker_pool_objects(&input).map_err(failed)?;
    let pools = &spec.desired.node_pools;
    Ok(control_plane
        .into_iter()
        .map(|o| (RolloutStep::ControlPlane, o))
        .chain(workers.into_iter().map(|o| (RolloutStep::Workers, o)))
        .map(|(step, mut object)| {
            // The revision number changes with every revision and rolls nothing.
            if let Some(annotations) = object
                .pointer_mut("/metadata/annotations")
                .and_then(Value::as_object_mut)
            {
                annotations.remove(REVISION_ANNOTATION);
            }
            // Built with one replica for the first node; after the pivot the agent sets
            // the pool's count, which is what a running cluster has.
            if text(&object, "/kind") == KUBEADM_CONTROL_PLANE.kind {
                object["spec"]["replicas"] = Value::from(pools.control_plane.count);
            }
            Built {
                step,
                kind: text(&object, "/kind").to_string(),
                name: text(&object, "/metadata/name").to_string(),
                object,
            }
        })
        .collect())
}

fn text<'v>(object: &'v Value, pointer: &str) -> &'v str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Objects created, changed (with the changed fields) and deleted from `from` to `to`:
/// created and changed in apply order, then deleted.
pub(super) fn object_changes(
    from: &ClusterRevisionSpec,
    to: &ClusterRevisionSpec,
) -> Result<Vec<ObjectChange>, PlanError> {
    let old = build(from)?;
    let new = build(to)?;
    let old_by_key: BTreeMap<(&str, &str), &Built> = old
        .iter()
        .map(|b| ((b.kind.as_str(), b.name.as_str()), b))
        .collect();
    let new_by_key: BTreeMap<(&str, &str), &Built> = new
        .iter()
        .map(|b| ((b.kind.as_str(), b.name.as_str()), b))
        .collect();
    let change = |b: &Built, action, fields| ObjectChange {
        step: b.step,
        kind: b.kind.clone(),
        name: b.name.clone(),
        action,
        fields,
    };
    let mut changes = Vec::new();
    for built in &new {
        match old_by_key.get(&(built.kind.as_str(), built.name.as_str())) {
            None => changes.push(change(built, ObjectAction::Created, Vec::new())),
            Some(before) => {
                let mut fields = Vec::new();
                changed_fields(&before.object, &built.object, "", &mut fields);
                if !fields.is_empty() {
                    changes.push(change(built, ObjectAction::Changed, fields));
                }
            }
        }
    }
    for built in &old {
        if !new_by_key.contains_key(&(built.kind.as_str(), built.name.as_str())) {
            changes.push(change(built, ObjectAction::Deleted, Vec::new()));
        }
    }
    Ok(changes)
}

/// The dotted paths where `a` and `b` differ; a list that differs is one path, since its
/// items have no names to tell them apart.
fn changed_fields(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = super::plan_values::join(path, key);
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => changed_fields(p, q, &child, out),
                    _ => out.push(child),
                }
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

/// The machines replaced: all of the control plane's when its `KubeadmControlPlane`
/// changes version, machine template or kubeadm config; all of a pool's when its
/// `MachineDeployment` changes version, machine template or bootstrap config. A count
/// change only adds or removes machines, and a new pool replaces nothing.
pub(super) fn replacements(
    from: &ClusterRevisionSpec,
    changes: &[ObjectChange],
) -> Vec<Replacement> {
    let pools = &from.desired.node_pools;
    let mut replaced = Vec::new();
    for change in changes.iter().filter(|c| c.action == ObjectAction::Changed) {
        let (rules, pool, machines) = if change.kind == KUBEADM_CONTROL_PLANE.kind {
            (
                &CONTROL_PLANE_ROLLS,
                CONTROL_PLANE_POOL.to_string(),
                pools.control_plane.count,
            )
        } else if change.kind == MACHINE_DEPLOYMENT.kind {
            let deployment = |name: &str| format!("{}-{name}", from.cluster_name);
            let Some(pool) = pools
                .workers
                .iter()
                .find(|p| deployment(&p.name) == change.name)
            else {
                continue;
            };
            (&POOL_ROLLS, pool.name.clone(), pool.count)
        } else {
            continue;
        };
        let reasons: Vec<String> = rules
            .iter()
            .filter(|(field, _)| {
                change
                    .fields
                    .iter()
                    .any(|f| f == field || f.starts_with(&format!("{field}.")))
            })
            .map(|(_, reason)| reason.to_string())
            .collect();
        if !reasons.is_empty() {
            replaced.push(Replacement {
                pool,
                control_plane: change.kind == KUBEADM_CONTROL_PLANE.kind,
                machines,
                reasons,
            });
        }
    }
    replaced
}
