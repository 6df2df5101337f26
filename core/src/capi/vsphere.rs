//! vSphere (CAPV): `VSphereCluster` and `VSphereMachineTemplate`.

use serde_json::{Map, Value, json};

use super::kubeadm::CloudKubeadm;
use super::{
    API_SERVER_PORT, BuildError, BuildInput, InfraKinds, Role, identity_name, image_annotation,
    insert_some,
};
use crate::cloud_account::VsphereAccount;
use crate::cluster::{ClusterCloud, MachineShape, VspherePlacement};
use crate::contracts::capi::{VSPHERE_CLUSTER, VSPHERE_CLUSTER_IDENTITY, VSPHERE_MACHINE_TEMPLATE};
use crate::revision::DesiredState;

pub(super) const KINDS: InfraKinds = InfraKinds {
    cluster: VSPHERE_CLUSTER,
    machine_template: VSPHERE_MACHINE_TEMPLATE,
};

const KUBE_VIP_IMAGE: &str = "ghcr.io/kube-vip/kube-vip:v0.3.8";
/// The login user of CAPV's machine images, which its own templates give the SSH keys to.
const SSH_USER: &str = "capv";

fn placement(desired: &DesiredState) -> Result<&VspherePlacement, BuildError> {
    desired
        .vsphere
        .as_ref()
        .ok_or(BuildError::MissingPlacement {
            cloud: ClusterCloud::Vsphere,
        })
}

/// vCenter's address and thumbprint, which every CAPV object repeats.
fn account(desired: &DesiredState) -> Result<&VsphereAccount, BuildError> {
    let account = desired.account.as_ref().ok_or(BuildError::MissingAccount {
        cloud: ClusterCloud::Vsphere,
    })?;
    account
        .vsphere
        .as_ref()
        .ok_or_else(|| BuildError::MissingAccountSettings {
            account: account.name.clone(),
            cloud: ClusterCloud::Vsphere,
            section: "vsphere",
            what: "vCenter's server and thumbprint",
        })
}

pub(super) fn cluster_spec(input: &BuildInput) -> Result<Value, BuildError> {
    let placement = placement(input.desired)?;
    let account = account(input.desired)?;
    let mut spec = Map::new();
    spec.insert("server".into(), json!(account.server));
    spec.insert("thumbprint".into(), json!(account.thumbprint));
    spec.insert(
        "identityRef".into(),
        json!({ "kind": VSPHERE_CLUSTER_IDENTITY.kind, "name": identity_name(input.namespace) }),
    );
    if let Some(host) = &placement.control_plane_endpoint {
        spec.insert(
            "controlPlaneEndpoint".into(),
            json!({ "host": host, "port": API_SERVER_PORT }),
        );
    }
    Ok(Value::Object(spec))
}

pub(super) fn machine_spec(
    input: &BuildInput,
    machine: &MachineShape,
) -> Result<Value, BuildError> {
    let desired = input.desired;
    let placement = placement(desired)?;
    let account = account(desired)?;
    // A VM template's name or path: validation refused OVA URLs, which CAPV cannot clone.
    let template = image_annotation(
        desired,
        "imageId",
        "the VM template or OVA the machines are cloned from",
    )?;
    let mut spec = Map::new();
    spec.insert("server".into(), json!(account.server));
    spec.insert("thumbprint".into(), json!(account.thumbprint));
    spec.insert("datacenter".into(), json!(placement.datacenter));
    spec.insert("datastore".into(), json!(placement.datastore));
    spec.insert("folder".into(), json!(placement.folder));
    spec.insert("resourcePool".into(), json!(placement.resource_pool));
    insert_some(
        &mut spec,
        "storagePolicyName",
        placement.storage_policy.as_deref(),
    );
    spec.insert("template".into(), json!(template));
    insert_some(&mut spec, "numCPUs", machine.cpus);
    insert_some(&mut spec, "memoryMiB", machine.memory_mib);
    insert_some(&mut spec, "diskGiB", machine.disk_gib);
    spec.insert(
        "network".into(),
        json!({ "devices": [{ "networkName": placement.network, "dhcp4": true }] }),
    );
    Ok(Value::Object(spec))
}

/// The cloud provider is external (vSphere's CPI is a layer), and nodes are named after
/// the VM. When the placement fixes the control-plane endpoint, a kube-vip static pod on
/// each control-plane machine holds that address: kubeadm init waits on the endpoint, so
/// it must answer before any add-on layer could provide a load balancer.
pub(super) fn kubeadm(desired: &DesiredState, role: Role) -> CloudKubeadm {
    let endpoint = desired
        .vsphere
        .as_ref()
        .and_then(|p| p.control_plane_endpoint.as_deref());
    let files = match (role, endpoint) {
        (Role::ControlPlane, Some(address)) => vec![kube_vip_file(address)],
        _ => Vec::new(),
    };
    let keys = desired
        .vsphere
        .as_ref()
        .map(|p| p.ssh_authorized_keys.as_slice())
        .unwrap_or_default();
    let users = if keys.is_empty() {
        Vec::new()
    } else {
        vec![json!({
            "name": SSH_USER,
            "sshAuthorizedKeys": keys,
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
        })]
    };
    CloudKubeadm {
        args: vec![("cloud-provider", "external")],
        node_name: Some("{{ ds.meta_data.hostname }}"),
        volumes: Vec::new(),
        files,
        users,
    }
}

fn kube_vip_file(address: &str) -> Value {
    let content = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: kube-vip
  namespace: kube-system
spec:
  hostNetwork: true
  containers:
    - name: kube-vip
      image: {KUBE_VIP_IMAGE}
      args: ["manager"]
      env:
        - name: vip_address
          value: "{address}"
        - name: cp_enable
          value: "true"
      securityContext:
        capabilities:
          add: ["NET_ADMIN", "NET_RAW"]
      volumeMounts:
        - mountPath: /etc/kubernetes/admin.conf
          name: kubeconfig
  volumes:
    - hostPath:
        path: /etc/kubernetes/admin.conf
      name: kubeconfig
"#
    );
    json!({
        "path": "/etc/kubernetes/manifests/kube-vip.yaml",
        "owner": "root:root",
        "permissions": "0644",
        "content": content,
    })
}
