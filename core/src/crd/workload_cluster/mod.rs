//! `WorkloadCluster`: an operator's request for a cluster: its cloud and account, its
//! profiles, node pools with the machine shape and placement its cloud needs, the cluster
//! network and per-layer value overrides. The controller reports on it in its status.

mod machine;
mod network;
mod self_healing;
mod status;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crd::cluster_profile::ProfileCloud;

pub use machine::{MachineShape, known_instance_size};
pub use network::{ClusterNetwork, ResolvedNetwork, check_network};
pub use self_healing::{
    ControlPlaneRemediation, DEFAULT_CERTIFICATES_EXPIRY_DAYS, DEFAULT_MAX_RETRY,
    DEFAULT_MAX_UNHEALTHY, DEFAULT_NODE_STARTUP_SECONDS, DEFAULT_UNHEALTHY_SECONDS, HealthCheck,
    PoolRollout, capi_amount, certificates_expiry_days, check_self_healing,
};
pub use status::{
    AgentReport, ClusterPhase, LayerPhase, LayerState, PendingRevision, ReplicaCounts,
    RolloutReport, RolloutStep, SITE_EVENT_MESSAGE_LIMIT, SITE_EVENTS_IN_STATUS, SiteEvent,
    WorkloadClusterStatus, layers_summary,
};

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "strata.dev",
    version = "v1alpha1",
    kind = "WorkloadCluster",
    plural = "workloadclusters",
    shortname = "wc",
    namespaced,
    status = "WorkloadClusterStatus",
    printcolumn = r#"{"name":"Cloud","type":"string","jsonPath":".spec.cloudType"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Revision","type":"integer","jsonPath":".status.revision"}"#,
    printcolumn = r#"{"name":"Applied","type":"integer","jsonPath":".status.appliedRevision"}"#,
    printcolumn = r#"{"name":"Pending","type":"string","priority":1,"jsonPath":".status.pending.summary"}"#,
    printcolumn = r#"{"name":"Control plane","type":"string","jsonPath":".status.controlPlane.summary"}"#,
    printcolumn = r#"{"name":"Workers","type":"string","jsonPath":".status.workers.summary"}"#,
    printcolumn = r#"{"name":"Layers","type":"string","jsonPath":".status.layersSummary"}"#,
    printcolumn = r#"{"name":"Agent","type":"string","jsonPath":".status.conditions[?(@.type==\"AgentConnected\")].status"}"#,
    printcolumn = r#"{"name":"Last report","type":"date","jsonPath":".status.agent.lastReportTime"}"#,
    printcolumn = r#"{"name":"Namespace","type":"string","priority":1,"jsonPath":".status.namespace"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadClusterSpec {
    /// `vsphere`, `aws`, `azure` or `sim`.
    pub cloud_type: ClusterCloud,
    /// The `CloudAccount` (in this namespace) whose credentials provision the cluster.
    /// Required for vsphere, aws and azure; the sim cloud needs none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_account_ref: Option<LocalObjectReference>,
    /// One infra or full profile and any add-on profiles, each at a version.
    pub profiles: Vec<ProfileRef>,
    pub node_pools: NodePools,
    /// Pod and service ranges; the Kubernetes layer's values, then Kubernetes' usual
    /// ranges, when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_network: Option<ClusterNetwork>,
    /// Where the machines go on vSphere (required when cloudType is vsphere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsphere: Option<VspherePlacement>,
    /// Where the machines go on AWS (required when cloudType is aws).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsPlacement>,
    /// Where the machines go on Azure (required when cloudType is azure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzurePlacement>,
    /// Per-layer value overrides, applied over the profile's values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<LayerOverride>,
    /// The control plane rolls a machine whose certificates expire within this many
    /// days (7 to 364); 21 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates_expiry_days: Option<u32>,
    #[serde(default, skip_serializing_if = "DeletionPolicy::is_default")]
    pub deletion_policy: DeletionPolicy,
    /// Roll the cluster back to the content of this earlier revision (its layers, values,
    /// pack versions and pools): republished as a new revision and applied through the same
    /// ordered path as any other. The profiles and pools of this spec wait until it is
    /// unset. A rollback that would take Kubernetes down is refused like any downgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub rollback_to: Option<i64>,
}

/// What deleting this WorkloadCluster does to the cluster: `Delete` (the default) deletes
/// its machines through Cluster API, moving its objects back from the workload cluster
/// first; `Orphan` forgets it without the move back and leaves every cloud resource as it
/// is (for a cluster whose agent is gone). May be changed while the deletion waits.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Orphan,
}

impl DeletionPolicy {
    pub fn is_default(&self) -> bool {
        *self == DeletionPolicy::Delete
    }
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClusterCloud {
    Vsphere,
    Aws,
    Azure,
    Sim,
}

impl ClusterCloud {
    pub fn as_profile_cloud(&self) -> ProfileCloud {
        match self {
            ClusterCloud::Vsphere => ProfileCloud::Vsphere,
            ClusterCloud::Aws => ProfileCloud::Aws,
            ClusterCloud::Azure => ProfileCloud::Azure,
            ClusterCloud::Sim => ProfileCloud::Sim,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ClusterCloud::Vsphere => "vsphere",
            ClusterCloud::Aws => "aws",
            ClusterCloud::Azure => "azure",
            ClusterCloud::Sim => "sim",
        }
    }
}

impl std::fmt::Display for ClusterCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct LocalObjectReference {
    pub name: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ProfileRef {
    pub name: String,
    pub version: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePools {
    pub control_plane: ControlPlanePool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerPool>,
}

impl NodePools {
    /// The pools with each machine's [`MachineShape::effective`] size.
    pub fn effective(&self, cloud: ClusterCloud) -> NodePools {
        let mut pools = self.clone();
        pools.control_plane.machine = pools.control_plane.machine.effective(cloud);
        for pool in &mut pools.workers {
            pool.machine = pool.machine.effective(cloud);
        }
        pools
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlanePool {
    /// 1, 3 or 5 (etcd needs an odd count for quorum).
    pub count: u32,
    #[serde(default)]
    pub machine: MachineShape,
    /// When a control-plane machine is unhealthy; the defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// How the control plane replaces an unhealthy machine; 3 retries when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<ControlPlaneRemediation>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPool {
    pub name: String,
    pub count: u32,
    #[serde(default)]
    pub machine: MachineShape,
    /// When a machine of the pool is unhealthy and replaced; the defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// How the pool rolls when its machines change; Cluster API's defaults (one machine
    /// above the count, none unavailable) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<PoolRollout>,
}

/// vSphere placement shared by every machine of the cluster.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VspherePlacement {
    pub datacenter: String,
    pub datastore: String,
    /// The port group, e.g. `/dc-east/network/VM Network`.
    pub network: String,
    pub resource_pool: String,
    pub folder: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_policy: Option<String>,
    /// The control-plane endpoint (a free address on the network, kube-vip's); the
    /// provider picks one when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_endpoint: Option<String>,
    /// OpenSSH public keys (`ssh-ed25519 AAAA… comment`) for the machines' `capv` user,
    /// CAPV's login user with passwordless sudo: how an operator reaches a node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_authorized_keys: Vec<String>,
}

/// AWS placement shared by every machine of the cluster.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsPlacement {
    pub region: String,
    pub ssh_key_name: String,
    /// An existing VPC; CAPA creates one when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// Existing subnets; machines go in the first private one (the first one when none
    /// is marked public or private).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<AwsSubnet>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSubnet {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_public: Option<bool>,
}

/// Azure placement shared by every machine of the cluster.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzurePlacement {
    pub location: String,
    pub resource_group: String,
    pub subscription_id: String,
    /// Base64 of an OpenSSH public key for the machines' admin user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_public_key: Option<String>,
}

/// Values for one layer of the composed stack, overriding the profile's.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct LayerOverride {
    /// The pack name of the layer.
    pub pack: String,
    /// YAML text merged over the layer's values (Helm merge rules); `""` for an override
    /// that only chooses presets.
    pub values: String,
    /// Presets of the pack's presets.yaml to apply (`name` or `Group:name`); each replaces
    /// the profile's choice in its group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presets: Option<Vec<String>>,
}
