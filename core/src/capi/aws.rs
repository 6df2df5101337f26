//! AWS (CAPA): `AWSCluster` and `AWSMachineTemplate`.

use serde_json::{Map, Value, json};

use super::kubeadm::CloudKubeadm;
use super::{
    BuildError, BuildInput, InfraKinds, Role, identity_name, image_annotation, insert_some,
};
use crate::cluster::{AwsPlacement, AwsSubnet, ClusterCloud, MachineShape};
use crate::contracts::capi::{AWS_CLUSTER, AWS_CLUSTER_STATIC_IDENTITY, AWS_MACHINE_TEMPLATE};
use crate::revision::DesiredState;

pub(super) const KINDS: InfraKinds = InfraKinds {
    cluster: AWS_CLUSTER,
    machine_template: AWS_MACHINE_TEMPLATE,
};

const DEFAULT_ROOT_VOLUME_GIB: u64 = 80;
/// The instance profiles `clusterawsadm bootstrap iam` creates for CAPA.
const CONTROL_PLANE_PROFILE: &str = "control-plane.cluster-api-provider-aws.sigs.k8s.io";
const NODES_PROFILE: &str = "nodes.cluster-api-provider-aws.sigs.k8s.io";

fn placement(desired: &DesiredState) -> Result<&AwsPlacement, BuildError> {
    desired.aws.as_ref().ok_or(BuildError::MissingPlacement {
        cloud: ClusterCloud::Aws,
    })
}

pub(super) fn cluster_spec(input: &BuildInput) -> Result<Value, BuildError> {
    let placement = placement(input.desired)?;
    let mut spec = Map::new();
    spec.insert("region".into(), json!(placement.region));
    spec.insert("sshKeyName".into(), json!(placement.ssh_key_name));
    spec.insert(
        "identityRef".into(),
        json!({ "kind": AWS_CLUSTER_STATIC_IDENTITY.kind, "name": identity_name(input.namespace) }),
    );
    let mut network = Map::new();
    if let Some(vpc) = &placement.vpc_id {
        network.insert("vpc".into(), json!({ "id": vpc }));
    }
    if !placement.subnets.is_empty() {
        let subnets = placement.subnets.iter().map(subnet).collect();
        network.insert("subnets".into(), Value::Array(subnets));
    }
    // Without a network section CAPA creates the VPC and subnets itself.
    if !network.is_empty() {
        spec.insert("network".into(), Value::Object(network));
    }
    Ok(Value::Object(spec))
}

fn subnet(subnet: &AwsSubnet) -> Value {
    let mut spec = Map::new();
    spec.insert("id".into(), json!(subnet.id));
    insert_some(
        &mut spec,
        "availabilityZone",
        subnet.availability_zone.as_deref(),
    );
    insert_some(&mut spec, "isPublic", subnet.is_public);
    Value::Object(spec)
}

pub(super) fn machine_spec(
    input: &BuildInput,
    role: Role,
    machine: &MachineShape,
) -> Result<Value, BuildError> {
    let desired = input.desired;
    let placement = placement(desired)?;
    let instance_type =
        machine
            .instance_type
            .as_deref()
            .ok_or_else(|| BuildError::MissingMachineField {
                pool: role.subject(),
                cloud: ClusterCloud::Aws,
                field: "instanceType",
            })?;
    let ami = image_annotation(desired, "imageId", "the AMI of the machines")?;
    let profile = match role {
        Role::ControlPlane => CONTROL_PLANE_PROFILE,
        Role::Worker(_) => NODES_PROFILE,
    };
    let mut spec = Map::new();
    spec.insert("instanceType".into(), json!(instance_type));
    spec.insert("ami".into(), json!({ "id": ami }));
    spec.insert("sshKeyName".into(), json!(placement.ssh_key_name));
    spec.insert("iamInstanceProfile".into(), json!(profile));
    spec.insert(
        "rootVolume".into(),
        json!({
            "size": machine.disk_gib.unwrap_or(DEFAULT_ROOT_VOLUME_GIB),
            "type": "gp3",
        }),
    );
    // Machines stay off the internet: the first private subnet, else the first given.
    let chosen = placement
        .subnets
        .iter()
        .find(|s| s.is_public != Some(true))
        .or_else(|| placement.subnets.first());
    if let Some(subnet) = chosen {
        spec.insert("subnet".into(), json!({ "id": subnet.id }));
    }
    Ok(Value::Object(spec))
}

/// Kubernetes 1.20's in-tree AWS provider, which names nodes after the instance's
/// private DNS name: kubeadm must register them under that name.
pub(super) fn kubeadm() -> CloudKubeadm {
    CloudKubeadm {
        args: vec![("cloud-provider", "aws")],
        node_name: Some("{{ ds.meta_data.local_hostname }}"),
        ..CloudKubeadm::default()
    }
}
