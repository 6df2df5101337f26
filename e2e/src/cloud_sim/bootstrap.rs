//! The kubeadm bootstrap provider: a KubeadmConfig's bootstrap data becomes a Secret named
//! after it (type `cluster.x-k8s.io/secret`, keys `value` and `format`), referenced from
//! `status.dataSecretName`. As in CAPI, one control-plane machine initializes the cluster
//! once the infrastructure is provisioned (CAPI takes a lock; here the oldest live
//! control-plane machine holds it), and every other machine joins once the control plane
//! is initialized.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{Value, json};

use super::kinds::KUBEADM_CONFIG;
use super::objects::{
    CLUSTER_NAME_LABEL, Cond, creation, generation, is_deleting, is_paused, metav1_conditions,
    name, str_at, uid,
};
use super::snapshot::ClusterView;
use super::workload::CAPI_SECRET_TYPE;
use super::{Shared, SimError};

/// The KubeadmConfigs of the cluster's live machines, each with its machine.
pub fn configs<'a>(view: &'a ClusterView<'a>) -> Vec<(&'a Value, &'a Value)> {
    view.machines
        .iter()
        .filter(|m| !is_deleting(m))
        .filter_map(|m| Some((*m, view.config(m)?)))
        .collect()
}

fn cloud_config(machine: &Value, config: &Value, init: bool) -> String {
    let step = if init { "init" } else { "join" };
    format!(
        "## template: jinja\n#cloud-config\n# Simulated bootstrap data: kubeadm {step} for machine {} ({}).\nruncmd:\n  - kubeadm {step} --config /run/kubeadm/kubeadm.yaml\nwrite_files:\n  - path: /run/cluster-api/bootstrap-config\n    content: {}\n",
        name(machine),
        str_at(machine, "/spec/version").unwrap_or("unknown version"),
        serde_json::to_string(config.get("spec").unwrap_or(&Value::Null)).unwrap_or_default(),
    )
}

/// This machine's bootstrap initializes the cluster (`kubeadm init`) rather than joining.
fn is_init(view: &ClusterView<'_>, machine: &Value) -> bool {
    if !ClusterView::is_control_plane(machine) || view.control_plane_initialized() {
        return false;
    }
    let oldest = view
        .machines
        .iter()
        .filter(|m| ClusterView::is_control_plane(m) && !is_deleting(m))
        .min_by_key(|m| (creation(m).to_string(), name(m).to_string()));
    oldest.is_some_and(|m| name(m) == name(machine))
}

pub async fn reconcile(
    shared: &Shared,
    view: &ClusterView<'_>,
    machine: &Value,
    config: &Value,
) -> Result<(), SimError> {
    if is_paused(config) || str_at(config, "/status/dataSecretName").is_some() {
        return Ok(());
    }
    let init = is_init(view, machine);
    let (turn, waiting_for) = if init {
        (view.infra_provisioned(), "the cluster's infrastructure")
    } else {
        (
            view.control_plane_initialized(),
            "the control plane to be initialized",
        )
    };
    let generation = generation(config);
    let existing = config.pointer("/status/conditions");
    if !turn
        || !shared.waited(
            uid(config),
            "bootstrap",
            shared.options.bootstrap_delay,
            false,
        )
    {
        let message = format!("waiting for {waiting_for}");
        let status = json!({
            "observedGeneration": generation,
            "initialization": { "dataSecretCreated": false },
            "conditions": metav1_conditions(existing, &[
                Cond::new("Ready", false, "Ready", "NotReady", &message),
                Cond::new("DataSecretAvailable", false, "Available", "NotAvailable", &message),
            ], generation),
        });
        shared
            .kube
            .apply_status(&KUBEADM_CONFIG, config, status)
            .await?;
        return Ok(());
    }
    let secret_name = name(config).to_string();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.clone()),
            namespace: Some(view.namespace.into()),
            labels: Some(BTreeMap::from([(
                CLUSTER_NAME_LABEL.to_string(),
                view.name.to_string(),
            )])),
            owner_references: Some(vec![OwnerReference {
                api_version: KUBEADM_CONFIG.api_version(),
                kind: KUBEADM_CONFIG.kind.into(),
                name: secret_name.clone(),
                uid: uid(config).into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        type_: Some(CAPI_SECRET_TYPE.into()),
        data: Some(BTreeMap::from([
            (
                "value".to_string(),
                ByteString(cloud_config(machine, config, init).into_bytes()),
            ),
            ("format".to_string(), ByteString(b"cloud-config".to_vec())),
        ])),
        ..Secret::default()
    };
    tracing::info!(config = %secret_name, init, "bootstrap data ready");
    shared.kube.apply_secret(view.namespace, &secret).await?;
    let status = json!({
        "observedGeneration": generation,
        "dataSecretName": secret_name,
        "initialization": { "dataSecretCreated": true },
        "conditions": metav1_conditions(existing, &[
            Cond::new("Ready", true, "Ready", "NotReady", ""),
            Cond::new("DataSecretAvailable", true, "Available", "NotAvailable", ""),
            Cond::new("CertificatesAvailable", true, "Available", "NotAvailable", ""),
        ], generation),
    });
    shared
        .kube
        .apply_status(&KUBEADM_CONFIG, config, status)
        .await?;
    Ok(())
}
