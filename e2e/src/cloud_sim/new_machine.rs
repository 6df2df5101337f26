//! Creating a Machine as KCP and MachineSets do: the Machine (owned by its controller),
//! its infrastructure machine cloned from the referenced template's `spec.template.spec`
//! (with CAPI's cloned-from annotations) and its KubeadmConfig, both owned by the Machine.
//! Creating is idempotent, so a pass interrupted halfway is completed by the next one.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::SimError;
use super::api::{Kube, merge_into};
use super::kinds::{BOOTSTRAP_GROUP, INFRA_GROUP, KUBEADM_CONFIG, MACHINE, Provider};
use super::objects::{CLONED_FROM_GROUP_KIND, CLONED_FROM_NAME, owner_reference, str_at};
use super::snapshot::ClusterView;

/// Where a Machine's bootstrap data comes from.
pub enum Bootstrap {
    /// A KubeadmConfig with this spec, named after the Machine.
    Config(Value),
    /// Data the user already provides.
    DataSecret(String),
}

pub struct NewMachine<'a> {
    pub name: String,
    pub view: &'a ClusterView<'a>,
    pub version: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The controller owner reference (KCP or MachineSet).
    pub owner: Value,
    /// `{apiGroup, kind, name}` of the infrastructure machine template.
    pub infrastructure_ref: &'a Value,
    pub bootstrap: Bootstrap,
    /// Further Machine spec fields (deletion timeouts, failure domain…).
    pub extra_spec: Value,
}

pub async fn ensure(kube: &Kube, new: NewMachine<'_>) -> Result<(), SimError> {
    let ns = new.view.namespace;
    let invalid = |reason: String| SimError::Invalid {
        what: format!("the template of machine {ns}/{}", new.name),
        reason,
    };
    let template_kind_name = str_at(new.infrastructure_ref, "/kind").unwrap_or_default();
    let template_name = str_at(new.infrastructure_ref, "/name").unwrap_or_default();
    let provider = Provider::of_kind(template_kind_name)
        .filter(|p| p.template_kind().kind == template_kind_name)
        .ok_or_else(|| {
            invalid(format!(
                "{template_kind_name} is not a machine template kind the simulator plays"
            ))
        })?;
    let template_kind = provider.template_kind();
    let template = kube
        .get(&template_kind, ns, template_name)
        .await?
        .ok_or_else(|| {
            invalid(format!(
                "{template_kind_name} {template_name} does not exist"
            ))
        })?;
    let machine_kind = provider.machine_kind();

    let bootstrap = match &new.bootstrap {
        Bootstrap::Config(_) => json!({ "configRef": {
            "apiGroup": BOOTSTRAP_GROUP,
            "kind": KUBEADM_CONFIG.kind,
            "name": new.name,
        }}),
        Bootstrap::DataSecret(secret) => json!({ "dataSecretName": secret }),
    };
    let mut spec = json!({
        "clusterName": new.view.name,
        "bootstrap": bootstrap,
        "infrastructureRef": {
            "apiGroup": INFRA_GROUP,
            "kind": machine_kind.kind,
            "name": new.name,
        },
    });
    if let Some(version) = &new.version {
        spec["version"] = json!(version);
    }
    merge_into(&mut spec, new.extra_spec.clone());
    let machine = json!({
        "apiVersion": MACHINE.api_version(),
        "kind": MACHINE.kind,
        "metadata": {
            "name": new.name,
            "namespace": ns,
            "labels": new.labels,
            "annotations": new.annotations,
            "ownerReferences": [new.owner],
        },
        "spec": spec,
    });
    let machine = kube.create(&MACHINE, machine).await?;
    let owned_by_machine = owner_reference(&MACHINE, &machine);

    let mut infra_annotations = BTreeMap::from([
        (CLONED_FROM_NAME.to_string(), template_name.to_string()),
        (
            CLONED_FROM_GROUP_KIND.to_string(),
            format!("{}.{}", template_kind.kind, template_kind.group),
        ),
    ]);
    if let Some(extra) = template
        .pointer("/spec/template/metadata/annotations")
        .and_then(Value::as_object)
    {
        for (k, v) in extra {
            if let Some(v) = v.as_str() {
                infra_annotations.insert(k.clone(), v.to_string());
            }
        }
    }
    let infra = json!({
        "apiVersion": machine_kind.api_version(),
        "kind": machine_kind.kind,
        "metadata": {
            "name": new.name,
            "namespace": ns,
            "labels": new.labels,
            "annotations": infra_annotations,
            "ownerReferences": [owned_by_machine],
        },
        "spec": template.pointer("/spec/template/spec").cloned().unwrap_or_else(|| json!({})),
    });
    kube.create(&machine_kind, infra).await?;

    if let Bootstrap::Config(config_spec) = new.bootstrap {
        let config = json!({
            "apiVersion": KUBEADM_CONFIG.api_version(),
            "kind": KUBEADM_CONFIG.kind,
            "metadata": {
                "name": new.name,
                "namespace": ns,
                "labels": new.labels,
                "ownerReferences": [owned_by_machine],
            },
            "spec": config_spec,
        });
        kube.create(&KUBEADM_CONFIG, config).await?;
    }
    Ok(())
}

/// The Machine lacks a child it should have and has not got an instance yet: creating it
/// again completes an interrupted creation.
pub fn incomplete(view: &ClusterView<'_>, machine: &Value) -> bool {
    let missing_config =
        machine.pointer("/spec/bootstrap/configRef").is_some() && view.config(machine).is_none();
    let missing_infra = view.infra_machine(machine).is_none();
    (missing_config || missing_infra) && str_at(machine, "/spec/providerID").is_none()
}
