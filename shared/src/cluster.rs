//! `WorkloadCluster`: an operator's request for a cluster. This holds what composing and
//! rendering a cluster's stack needs (its cloud, profiles, node pools and per-layer value
//! overrides); the controller's fields (cloud account, per-cloud machine placement,
//! status) are added by the controller work.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::profile::ProfileCloud;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "strata.dev",
    version = "v1alpha1",
    kind = "WorkloadCluster",
    plural = "workloadclusters",
    shortname = "wc",
    namespaced,
    printcolumn = r#"{"name":"Cloud","type":"string","jsonPath":".spec.cloudType"}"#,
    printcolumn = r#"{"name":"Control plane","type":"integer","jsonPath":".spec.nodePools.controlPlane.count"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadClusterSpec {
    /// `vsphere`, `aws`, `azure` or `sim`.
    pub cloud_type: ClusterCloud,
    /// One infra or full profile and any add-on profiles, each at a version.
    pub profiles: Vec<ProfileRef>,
    pub node_pools: NodePools,
    /// Per-layer value overrides, applied over the profile's values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<LayerOverride>,
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

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ControlPlanePool {
    /// 1, 3 or 5 (etcd needs an odd count for quorum).
    pub count: u32,
    #[serde(default)]
    pub machine: MachineShape,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct WorkerPool {
    pub name: String,
    pub count: u32,
    #[serde(default)]
    pub machine: MachineShape,
}

/// A machine's size, which pack resource minimums are checked against.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineShape {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_gib: Option<u64>,
}

/// Values for one layer of the composed stack, overriding the profile's.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct LayerOverride {
    /// The pack name of the layer.
    pub pack: String,
    /// YAML text merged over the layer's values (Helm merge rules).
    pub values: String,
}
