//! CAPI core's MachineSet controller: as many Machines as `spec.replicas`, created from
//! `spec.template` (bootstrap config from the referenced KubeadmConfigTemplate,
//! infrastructure machine from the machine template), removed not-ready first, then
//! newest first.

use serde_json::{Value, json};

use super::kinds::{BOOTSTRAP_GROUP, KUBEADM_CONFIG_TEMPLATE, MACHINE, MACHINE_SET};
use super::new_machine::{self, Bootstrap, NewMachine};
use super::objects::{
    CLUSTER_NAME_LABEL, Cond, DEPLOYMENT_NAME_LABEL, SET_NAME_LABEL, TEMPLATE_HASH_LABEL,
    condition_true, creation, generation, has_owner, i64_at, is_deleting, is_paused, label,
    labels_of, metav1_conditions, name, owner_reference, random_suffix, selector_string, str_at,
    uid,
};
use super::snapshot::ClusterView;
use super::{Shared, SimError};

/// The Machine belongs to the set (by CAPI's set-name label or owner reference).
pub fn belongs(machine: &Value, set: &Value) -> bool {
    label(machine, SET_NAME_LABEL) == Some(name(set)) || has_owner(machine, uid(set))
}

fn ready(machine: &Value) -> bool {
    condition_true(machine, "/status/conditions", "Ready")
}

/// Reconciles one MachineSet; returns the names of its machines.
pub async fn reconcile(
    shared: &Shared,
    view: &ClusterView<'_>,
    set: &Value,
    current: bool,
) -> Result<Vec<String>, SimError> {
    let machines: Vec<&Value> = view
        .machines
        .iter()
        .copied()
        .filter(|m| belongs(m, set))
        .collect();
    let names = machines.iter().map(|m| name(m).to_string()).collect();
    if is_paused(set) || is_deleting(set) {
        return Ok(names);
    }
    let mut live: Vec<&Value> = machines
        .iter()
        .copied()
        .filter(|m| !is_deleting(m))
        .collect();
    let desired = i64_at(set, "/spec/replicas").unwrap_or(1).max(0) as usize;
    for m in live.iter().filter(|m| new_machine::incomplete(view, m)) {
        new_machine::ensure(&shared.kube, machine_for(shared, view, set, name(m)).await?).await?;
    }
    if live.len() < desired {
        for _ in live.len()..desired {
            let machine_name = format!("{}-{}", name(set), random_suffix());
            tracing::info!(machine_set = %name(set), machine = %machine_name, "creating a machine");
            new_machine::ensure(
                &shared.kube,
                machine_for(shared, view, set, &machine_name).await?,
            )
            .await?;
        }
    } else if live.len() > desired {
        // Not-ready machines go first, then the newest.
        live.sort_by_key(|m| {
            (
                ready(m),
                std::cmp::Reverse((creation(m).to_string(), name(m).to_string())),
            )
        });
        for victim in &live[..live.len() - desired] {
            tracing::info!(machine_set = %name(set), machine = %name(victim), "deleting a machine");
            shared
                .kube
                .delete(&MACHINE, view.namespace, name(victim))
                .await?;
        }
    }
    write_status(shared, set, &machines, current).await?;
    Ok(names)
}

async fn machine_for<'a>(
    shared: &Shared,
    view: &'a ClusterView<'a>,
    set: &'a Value,
    machine_name: &str,
) -> Result<NewMachine<'a>, SimError> {
    let invalid = |reason: String| SimError::Invalid {
        what: format!("MachineSet {}/{}", view.namespace, name(set)),
        reason,
    };
    let infrastructure_ref = set
        .pointer("/spec/template/spec/infrastructureRef")
        .ok_or_else(|| invalid("it has no spec.template.spec.infrastructureRef".into()))?;
    let bootstrap = match (
        set.pointer("/spec/template/spec/bootstrap/configRef"),
        str_at(set, "/spec/template/spec/bootstrap/dataSecretName"),
    ) {
        (Some(config_ref), _) => {
            let template_name = str_at(config_ref, "/name").unwrap_or_default();
            if str_at(config_ref, "/kind") != Some(KUBEADM_CONFIG_TEMPLATE.kind)
                || str_at(config_ref, "/apiGroup").is_some_and(|g| g != BOOTSTRAP_GROUP)
            {
                return Err(invalid(
                    "its bootstrap config is not a KubeadmConfigTemplate".into(),
                ));
            }
            let template = shared
                .kube
                .get(&KUBEADM_CONFIG_TEMPLATE, view.namespace, template_name)
                .await?
                .ok_or_else(|| {
                    invalid(format!(
                        "KubeadmConfigTemplate {template_name} does not exist"
                    ))
                })?;
            let mut spec = template
                .pointer("/spec/template/spec")
                .cloned()
                .unwrap_or_else(|| json!({}));
            if let Some(spec) = spec.as_object_mut() {
                spec.remove("initConfiguration");
            }
            Bootstrap::Config(spec)
        }
        (None, Some(secret)) => Bootstrap::DataSecret(secret.into()),
        (None, None) => return Err(invalid("its template has no bootstrap".into())),
    };
    let mut labels = labels_of(set, "/spec/template/metadata/labels");
    labels.insert(CLUSTER_NAME_LABEL.into(), view.name.into());
    labels.insert(SET_NAME_LABEL.into(), name(set).into());
    for key in [DEPLOYMENT_NAME_LABEL, TEMPLATE_HASH_LABEL] {
        if let Some(value) = label(set, key) {
            labels.insert(key.into(), value.into());
        }
    }
    let mut extra_spec = json!({});
    for field in [
        "deletion",
        "failureDomain",
        "minReadySeconds",
        "readinessGates",
    ] {
        if let Some(value) = set.pointer(&format!("/spec/template/spec/{field}")) {
            extra_spec[field] = value.clone();
        }
    }
    Ok(NewMachine {
        name: machine_name.to_string(),
        view,
        version: str_at(set, "/spec/template/spec/version").map(String::from),
        labels,
        annotations: labels_of(set, "/spec/template/metadata/annotations"),
        owner: owner_reference(&MACHINE_SET, set),
        infrastructure_ref,
        bootstrap,
        extra_spec,
    })
}

async fn write_status(
    shared: &Shared,
    set: &Value,
    machines: &[&Value],
    current: bool,
) -> Result<(), SimError> {
    let desired = i64_at(set, "/spec/replicas").unwrap_or(1);
    let replicas = machines.len() as i64;
    let live = machines.iter().filter(|m| !is_deleting(m)).count() as i64;
    let ready_count = machines.iter().filter(|m| ready(m)).count() as i64;
    let available = machines
        .iter()
        .filter(|m| condition_true(m, "/status/conditions", "Available"))
        .count() as i64;
    let up_to_date = if current { live } else { 0 };
    let generation = generation(set);
    let conditions = [
        Cond::new(
            "MachinesReady",
            ready_count == replicas,
            "Ready",
            "NotReady",
            "",
        ),
        Cond::new(
            "MachinesUpToDate",
            up_to_date == replicas,
            "UpToDate",
            "NotUpToDate",
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
        "selector": selector_string(&labels_of(set, "/spec/selector/matchLabels")),
        "replicas": replicas,
        "readyReplicas": ready_count,
        "availableReplicas": available,
        "upToDateReplicas": up_to_date,
        "conditions": metav1_conditions(set.pointer("/status/conditions"), &conditions, generation),
    });
    let versions = super::kcp::versions(machines);
    if !versions.is_empty() {
        status["versions"] = json!(versions);
    }
    shared.kube.apply_status(&MACHINE_SET, set, status).await?;
    Ok(())
}
