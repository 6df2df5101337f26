//! Azure (CAPZ, still `v1beta1`): `AzureCluster` and `AzureMachineTemplate`. Unlike the
//! core and other providers' types, CAPZ refers to its identity with a v1 `ObjectReference`
//! (apiVersion, kind, name, namespace).

use serde_json::{Map, Value, json};

use super::kubeadm::CloudKubeadm;
use super::{
    BuildError, BuildInput, InfraKinds, Role, identity_name, image_annotation, insert_some,
};
use crate::cluster::{AzurePlacement, ClusterCloud, MachineShape};
use crate::contracts::capi::{AZURE_CLUSTER, AZURE_CLUSTER_IDENTITY, AZURE_MACHINE_TEMPLATE};
use crate::revision::DesiredState;

pub(super) const KINDS: InfraKinds = InfraKinds {
    cluster: AZURE_CLUSTER,
    machine_template: AZURE_MACHINE_TEMPLATE,
};

const DEFAULT_OS_DISK_GIB: u64 = 128;
const CLOUD_CONFIG: &str = "/etc/kubernetes/azure.json";

fn placement(desired: &DesiredState) -> Result<&AzurePlacement, BuildError> {
    desired.azure.as_ref().ok_or(BuildError::MissingPlacement {
        cloud: ClusterCloud::Azure,
    })
}

pub(super) fn cluster_spec(input: &BuildInput) -> Result<Value, BuildError> {
    let placement = placement(input.desired)?;
    Ok(json!({
        "location": placement.location,
        "resourceGroup": placement.resource_group,
        "subscriptionID": placement.subscription_id,
        "identityRef": {
            "apiVersion": AZURE_CLUSTER_IDENTITY.api_version,
            "kind": AZURE_CLUSTER_IDENTITY.kind,
            "name": identity_name(input.namespace),
            "namespace": input.namespace,
        },
    }))
}

pub(super) fn machine_spec(
    input: &BuildInput,
    role: Role,
    machine: &MachineShape,
) -> Result<Value, BuildError> {
    let desired = input.desired;
    let placement = placement(desired)?;
    let vm_size = machine
        .vm_size
        .as_deref()
        .ok_or_else(|| BuildError::MissingMachineField {
            pool: role.subject(),
            cloud: ClusterCloud::Azure,
            field: "vmSize",
        })?;
    const WHAT: &str = "the marketplace image of the machines";
    let marketplace = json!({
        "publisher": image_annotation(desired, "imagePublisher", WHAT)?,
        "offer": image_annotation(desired, "imageOffer", WHAT)?,
        "sku": image_annotation(desired, "imageSKU", WHAT)?,
        "version": desired.os.annotation("imageVersion").unwrap_or("latest"),
    });
    let mut spec = Map::new();
    spec.insert("vmSize".into(), json!(vm_size));
    spec.insert(
        "osDisk".into(),
        json!({
            "osType": "Linux",
            "diskSizeGB": machine.disk_gib.unwrap_or(DEFAULT_OS_DISK_GIB),
            "managedDisk": { "storageAccountType": "Premium_LRS" },
        }),
    );
    spec.insert("image".into(), json!({ "marketplace": marketplace }));
    // Optional in the schema: CAPZ generates a key pair for machines that have none.
    insert_some(
        &mut spec,
        "sshPublicKey",
        placement.ssh_public_key.as_deref(),
    );
    Ok(Value::Object(spec))
}

/// Kubernetes 1.20's in-tree Azure provider reads its configuration from
/// `/etc/kubernetes/azure.json`, which CAPZ renders into a Secret named after the machine
/// template (`<template>-azure-json`, one key for control-plane machines and one for
/// workers). The file is written on every machine, and the API server and controller
/// manager static pods mount it.
pub(super) fn kubeadm(role: Role, machine_template: &str) -> CloudKubeadm {
    let key = match role {
        Role::ControlPlane => "control-plane-azure.json",
        Role::Worker(_) => "worker-node-azure.json",
    };
    CloudKubeadm {
        args: vec![("cloud-provider", "azure"), ("cloud-config", CLOUD_CONFIG)],
        node_name: Some(r#"{{ ds.meta_data["local_hostname"] }}"#),
        volumes: vec![json!({
            "name": "cloud-config",
            "hostPath": CLOUD_CONFIG,
            "mountPath": CLOUD_CONFIG,
            "readOnly": true,
        })],
        files: vec![json!({
            "path": CLOUD_CONFIG,
            "owner": "root:root",
            "permissions": "0644",
            "contentFrom": {
                "secret": { "name": format!("{machine_template}-azure-json"), "key": key },
            },
        })],
        users: Vec::new(),
    }
}
