//! The Cluster API objects of a cluster revision, built without I/O as JSON ready for
//! server-side apply: the `Cluster`, the cloud's cluster kind, the `KubeadmControlPlane`
//! and its machine template (applied by the controller, with one replica), the worker
//! pools (applied by the agent after the pivot), and the provider identity with its Secret.
//!
//! Field names and nesting follow the upstream storage versions of the kinds in
//! [`crate::contracts::capi`], as checked against the real CRDs by `e2e/tests/capi_build.rs`:
//! the apiserver prunes a misspelled field silently, so nothing is written here that those
//! schemas do not declare.

mod aws;
mod azure;
mod identity;
mod kubeadm;
mod self_healing;
mod sim;
mod vsphere;

#[cfg(test)]
mod self_healing_tests;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::cluster::{ClusterCloud, MachineShape};
use crate::revision::DesiredState;

use crate::contracts::capi::{
    CLUSTER, CapiKind, KUBEADM_CONFIG_TEMPLATE, KUBEADM_CONTROL_PLANE, MACHINE_DEPLOYMENT,
};
use crate::contracts::labels::{
    CAPI_CLUSTER_NAME_LABEL, CAPI_DEPLOYMENT_NAME_LABEL, CLOUD_TYPE_LABEL, CONTROL_PLANE_POOL,
    NODE_POOL_LABEL, PROFILES_ANNOTATION, REVISION_ANNOTATION, WORKLOAD_CLUSTER_LABEL,
};

pub use identity::{IdentityInput, identity_name, identity_objects, identity_secret_name};

const API_SERVER_PORT: u16 = 6443;

pub struct BuildInput<'a> {
    /// The `WorkloadCluster`'s name, which is also the CAPI `Cluster`'s.
    pub cluster_name: &'a str,
    /// The cluster's own namespace in the management cluster.
    pub namespace: &'a str,
    /// The revision number, recorded on the `Cluster` as `strata.dev/revision`.
    pub revision: i64,
    pub desired: &'a DesiredState,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("a {cloud} cluster needs its placement (desired.{cloud}), but the revision has none")]
    MissingPlacement { cloud: ClusterCloud },
    #[error(
        "a {cloud} cluster needs its cloud account's settings (desired.account), but the revision has none"
    )]
    MissingAccount { cloud: ClusterCloud },
    #[error("cloud account {account} has no {section} settings; a {cloud} cluster needs {what}")]
    MissingAccountSettings {
        account: String,
        cloud: ClusterCloud,
        section: &'static str,
        what: &'static str,
    },
    #[error("os layer {pack} {version} has no annotation {key}; on {cloud} it gives {what}")]
    MissingImageAnnotation {
        pack: String,
        version: String,
        cloud: ClusterCloud,
        key: &'static str,
        what: &'static str,
    },
    #[error("{pool} has no {field}; {cloud} machines are sized by it")]
    MissingMachineField {
        pool: String,
        cloud: ClusterCloud,
        field: &'static str,
    },
    #[error(
        "the Secret of cloud account {account} has no key {key}; the {cloud} provider reads {required} from it"
    )]
    MissingSecretKey {
        account: String,
        cloud: ClusterCloud,
        key: String,
        required: String,
    },
}

/// The machines a template is for, which decides a few per-cloud settings (AWS instance
/// profile, Azure cloud config key, vSphere kube-vip) and names the pool in errors.
#[derive(Debug, Clone, Copy)]
enum Role<'a> {
    ControlPlane,
    Worker(&'a str),
}

impl Role<'_> {
    /// Where the pool is in the revision, for error messages.
    fn subject(&self) -> String {
        match self {
            Role::ControlPlane => "nodePools.controlPlane.machine".to_string(),
            Role::Worker(pool) => format!("nodePools.workers[{pool}].machine"),
        }
    }
}

/// The infrastructure kinds of one cloud.
struct InfraKinds {
    cluster: CapiKind,
    machine_template: CapiKind,
}

fn infra_kinds(cloud: ClusterCloud) -> InfraKinds {
    match cloud {
        ClusterCloud::Vsphere => vsphere::KINDS,
        ClusterCloud::Aws => aws::KINDS,
        ClusterCloud::Azure => azure::KINDS,
        ClusterCloud::Sim => sim::KINDS,
    }
}

fn infra_cluster_spec(input: &BuildInput) -> Result<Value, BuildError> {
    match input.desired.cloud_type {
        ClusterCloud::Vsphere => vsphere::cluster_spec(input),
        ClusterCloud::Aws => aws::cluster_spec(input),
        ClusterCloud::Azure => azure::cluster_spec(input),
        ClusterCloud::Sim => Ok(sim::cluster_spec()),
    }
}

/// The machine template's whole `spec` (`{template: {spec: …}}`), which is what its name
/// is hashed from.
fn machine_template_spec(
    input: &BuildInput,
    role: Role,
    machine: &MachineShape,
) -> Result<Value, BuildError> {
    let machine = match input.desired.cloud_type {
        ClusterCloud::Vsphere => vsphere::machine_spec(input, machine)?,
        ClusterCloud::Aws => aws::machine_spec(input, role, machine)?,
        ClusterCloud::Azure => azure::machine_spec(input, role, machine)?,
        ClusterCloud::Sim => sim::machine_spec(input.desired, machine),
    };
    Ok(json!({ "template": { "spec": machine } }))
}

fn cloud_kubeadm(input: &BuildInput, role: Role, machine_template: &str) -> kubeadm::CloudKubeadm {
    match input.desired.cloud_type {
        ClusterCloud::Vsphere => vsphere::kubeadm(input.desired, role),
        ClusterCloud::Aws => aws::kubeadm(),
        ClusterCloud::Azure => azure::kubeadm(role, machine_template),
        ClusterCloud::Sim => kubeadm::CloudKubeadm::default(),
    }
}

/// The objects the controller applies before the first node exists, in apply order:
/// `Cluster`, the cloud's cluster, the control-plane machine template, the
/// `KubeadmControlPlane` with one replica (the agent raises it after the pivot) and the
/// control plane's `MachineHealthCheck`.
pub fn control_plane_objects(input: &BuildInput) -> Result<Vec<Value>, BuildError> {
    let desired = input.desired;
    let cluster = input.cluster_name;
    let kinds = infra_kinds(desired.cloud_type);
    let template_spec = machine_template_spec(
        input,
        Role::ControlPlane,
        &desired.node_pools.control_plane.machine,
    )?;
    let template_name = control_plane_template_name(cluster, &template_spec);
    let infra_cluster = infra_cluster_spec(input)?;
    let cloud = cloud_kubeadm(input, Role::ControlPlane, &template_name);
    let kcp_name = control_plane_name(cluster);

    let mut labels = cluster_labels(cluster);
    labels[CLOUD_TYPE_LABEL] = json!(desired.cloud_type.as_str());
    labels[WORKLOAD_CLUSTER_LABEL] = json!(cluster);
    let cluster_object = json!({
        "apiVersion": CLUSTER.api_version,
        "kind": CLUSTER.kind,
        "metadata": {
            "name": cluster,
            "namespace": input.namespace,
            "labels": labels,
            "annotations": {
                REVISION_ANNOTATION: input.revision.to_string(),
                PROFILES_ANNOTATION: desired.profiles.join(","),
            },
        },
        "spec": {
            "clusterNetwork": cluster_network(desired),
            "controlPlaneRef": reference(&KUBEADM_CONTROL_PLANE, &kcp_name),
            "infrastructureRef": reference(&kinds.cluster, cluster),
        },
    });
    let kcp = json!({
        "apiVersion": KUBEADM_CONTROL_PLANE.api_version,
        "kind": KUBEADM_CONTROL_PLANE.kind,
        "metadata": metadata(input, &kcp_name, cluster_labels(cluster)),
        "spec": {
            "replicas": 1,
            "version": desired.kubernetes_version,
            "machineTemplate": {
                "metadata": { "labels": { NODE_POOL_LABEL: CONTROL_PLANE_POOL } },
                "spec": {
                    "infrastructureRef": reference(&kinds.machine_template, &template_name),
                },
            },
            "kubeadmConfigSpec": kubeadm::control_plane_spec(desired, &cloud),
            "remediation": self_healing::control_plane_remediation(desired),
            "rollout": self_healing::control_plane_rollout(desired),
        },
    });
    Ok(vec![
        cluster_object,
        object(
            &kinds.cluster,
            metadata(input, cluster, cluster_labels(cluster)),
            infra_cluster,
        ),
        object(
            &kinds.machine_template,
            metadata(input, &template_name, cluster_labels(cluster)),
            template_spec,
        ),
        kcp,
        self_healing::control_plane_health_check(input),
    ])
}

/// For each worker pool, in apply order: its machine template, `KubeadmConfigTemplate`,
/// `MachineDeployment` at the pool's full count, and `MachineHealthCheck`. The agent applies these after the
/// pivot, so they are never scaled down to wait for it.
pub fn worker_pool_objects(input: &BuildInput) -> Result<Vec<Value>, BuildError> {
    let desired = input.desired;
    let cluster = input.cluster_name;
    let kinds = infra_kinds(desired.cloud_type);
    let mut objects = Vec::new();
    for pool in &desired.node_pools.workers {
        let role = Role::Worker(&pool.name);
        let deployment = format!("{cluster}-{}", pool.name);
        let template_spec = machine_template_spec(input, role, &pool.machine)?;
        let machine_template = template_name(&deployment, &template_spec);
        let cloud = cloud_kubeadm(input, role, &machine_template);
        let selector = json!({
            CAPI_CLUSTER_NAME_LABEL: cluster,
            CAPI_DEPLOYMENT_NAME_LABEL: deployment,
        });
        let mut machine_labels = selector.clone();
        machine_labels[NODE_POOL_LABEL] = json!(pool.name);
        let mut deployment_labels = cluster_labels(cluster);
        deployment_labels[NODE_POOL_LABEL] = json!(pool.name);

        objects.push(object(
            &kinds.machine_template,
            metadata(input, &machine_template, cluster_labels(cluster)),
            template_spec,
        ));
        // Named after its content like the machine template: CAPI rolls a
        // MachineDeployment only when a template reference changes, so a changed kubelet
        // flag must be a new KubeadmConfigTemplate.
        let config_spec = json!({ "template": { "spec": kubeadm::worker_spec(desired, &cloud) } });
        let config_name = template_name(&deployment, &config_spec);
        objects.push(object(
            &KUBEADM_CONFIG_TEMPLATE,
            metadata(input, &config_name, cluster_labels(cluster)),
            config_spec,
        ));
        let mut deployment_spec = json!({
            "clusterName": cluster,
            "replicas": pool.count,
            "selector": { "matchLabels": selector },
            "template": {
                "metadata": { "labels": machine_labels },
                "spec": {
                    "clusterName": cluster,
                    "version": desired.kubernetes_version,
                    "bootstrap": {
                        "configRef": reference(&KUBEADM_CONFIG_TEMPLATE, &config_name),
                    },
                    "infrastructureRef": reference(&kinds.machine_template, &machine_template),
                },
            },
        });
        if let Some(rollout) = self_healing::pool_rollout(pool) {
            deployment_spec["rollout"] = rollout;
        }
        objects.push(object(
            &MACHINE_DEPLOYMENT,
            metadata(input, &deployment, deployment_labels),
            deployment_spec,
        ));
        objects.push(self_healing::pool_health_check(
            input,
            &deployment,
            &selector,
            pool,
        ));
    }
    Ok(objects)
}

/// The control plane's size once the agent has pivoted the cluster into itself.
pub fn full_control_plane_replicas(desired: &DesiredState) -> i64 {
    i64::from(desired.node_pools.control_plane.count)
}

/// `<cluster>-control-plane-<8 hex>`: machine templates are immutable, so a changed
/// template must be a new object, and pointing the `KubeadmControlPlane` at it rolls the
/// control plane; an unchanged one keeps its name, so re-applying changes nothing.
pub fn control_plane_template_name(cluster: &str, template_spec: &Value) -> String {
    template_name(&control_plane_name(cluster), template_spec)
}

/// `<cluster>-control-plane`, the `KubeadmControlPlane`'s name.
pub fn control_plane_name(cluster: &str) -> String {
    format!("{cluster}-control-plane")
}

fn template_name(base: &str, template_spec: &Value) -> String {
    let digest = Sha256::digest(sorted(template_spec).to_string().as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{base}-{hex}")
}

/// A copy with every object's keys in order, so that the hash does not depend on how the
/// JSON was built (serde_json keeps insertion order when `preserve_order` is enabled
/// anywhere in the dependency graph).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn cluster_network(desired: &DesiredState) -> Value {
    let network = &desired.network;
    let mut spec = Map::new();
    spec.insert("apiServerPort".into(), json!(API_SERVER_PORT));
    spec.insert("serviceDomain".into(), json!(network.service_domain));
    // The schema requires at least one CIDR where the block is present.
    if !network.pod_cidrs.is_empty() {
        spec.insert("pods".into(), json!({ "cidrBlocks": network.pod_cidrs }));
    }
    if !network.service_cidrs.is_empty() {
        spec.insert(
            "services".into(),
            json!({ "cidrBlocks": network.service_cidrs }),
        );
    }
    Value::Object(spec)
}

fn cluster_labels(cluster: &str) -> Value {
    json!({ CAPI_CLUSTER_NAME_LABEL: cluster })
}

fn metadata(input: &BuildInput, name: &str, labels: Value) -> Value {
    json!({ "name": name, "namespace": input.namespace, "labels": labels })
}

fn object(kind: &CapiKind, metadata: Value, spec: Value) -> Value {
    json!({ "apiVersion": kind.api_version, "kind": kind.kind, "metadata": metadata, "spec": spec })
}

/// A v1beta2 contract reference: group, kind and name (the namespace is the referrer's).
fn reference(kind: &CapiKind, name: &str) -> Value {
    json!({ "apiGroup": kind.group, "kind": kind.kind, "name": name })
}

fn image_annotation<'d>(
    desired: &'d DesiredState,
    key: &'static str,
    what: &'static str,
) -> Result<&'d str, BuildError> {
    desired
        .os
        .annotation(key)
        .ok_or_else(|| BuildError::MissingImageAnnotation {
            pack: desired.os.pack.clone(),
            version: desired.os.version.clone(),
            cloud: desired.cloud_type,
            key,
            what,
        })
}

fn insert_some<T: Into<Value>>(map: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(value) = value {
        map.insert(key.into(), value.into());
    }
}
