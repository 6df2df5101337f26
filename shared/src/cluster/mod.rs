//! `WorkloadCluster`: an operator's request for a cluster: its cloud and account, its
//! profiles, node pools with the machine shape and placement its cloud needs, the cluster
//! network and per-layer value overrides. The controller reports on it in its status.

pub mod ledger;
mod machine;
mod network;
mod status;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::profile::ProfileCloud;

pub use machine::{MachineShape, known_instance_size};
pub use network::{ClusterNetwork, ResolvedNetwork, check_network};
pub use status::{
    AGENT_CONNECTED_CONDITION, AgentReport, ClusterPhase, LayerState, PIVOTED_CONDITION,
    REASON_MOVE_REQUESTED, REASON_MOVED, REASON_MOVED_BACK, REASON_MOVING, REASON_MOVING_BACK,
    ReplicaCounts, WorkloadClusterStatus,
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
    printcolumn = r#"{"name":"Control plane","type":"string","jsonPath":".status.controlPlane.summary"}"#,
    printcolumn = r#"{"name":"Workers","type":"string","jsonPath":".status.workers.summary"}"#,
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
    #[serde(default, skip_serializing_if = "DeletionPolicy::is_default")]
    pub deletion_policy: DeletionPolicy,
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

/// The prefix every objects namespace starts with: names that begin with it are Strata's,
/// and a namespace of that name that does not carry the cluster's labels is never adopted.
pub const OBJECTS_NAMESPACE_PREFIX: &str = "strata-wc-";

/// The namespace of the management cluster that holds a cluster's CAPI objects and
/// revisions and nothing else, so that RBAC can give its agent that namespace alone:
/// `strata-wc-<namespace>-<name>-<hash>`, the readable part shortened to fit 63 characters.
///
/// The hash (of `namespace/name`, where `/` cannot occur in either) is what makes the name
/// unique: joined with `-` alone, `b/c-a` and `b-c/a` would share one, and `capv/system`
/// would take the provider's own `capv-system`. The prefix keeps the names apart from
/// every namespace people make by hand.
pub fn objects_namespace(namespace: &str, name: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{namespace}/{name}").as_bytes());
    // 48 bits: a collision among a million clusters has odds of about 1 in 500.
    let hash: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let room = 63 - OBJECTS_NAMESPACE_PREFIX.len() - 1 - hash.len();
    let readable = format!("{namespace}-{name}");
    let readable = readable[..readable.len().min(room)].trim_end_matches('-');
    format!("{OBJECTS_NAMESPACE_PREFIX}{readable}-{hash}")
}

/// Values for one layer of the composed stack, overriding the profile's.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct LayerOverride {
    /// The pack name of the layer.
    pub pack: String,
    /// YAML text merged over the layer's values (Helm merge rules).
    pub values: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label(name: &str) -> bool {
        name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    }

    #[test]
    fn objects_namespaces_do_not_collide_where_joined_names_would() {
        let a = objects_namespace("b", "c-a");
        let b = objects_namespace("b-c", "a");
        assert_ne!(a, b);
        assert!(a.starts_with("strata-wc-b-c-a-"), "{a}");
        // A cluster named like a provider's namespace gets a namespace of its own.
        assert_ne!(objects_namespace("capv", "system"), "capv-system");
        let long = "x".repeat(63);
        let name = objects_namespace(&long, &long);
        assert!(is_dns_label(&name), "{name}");
    }

    proptest::proptest! {
        #[test]
        fn objects_namespaces_are_valid_unique_and_reserved(
            pairs in proptest::collection::vec(
                ("[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?", "[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?"),
                2..40,
            )
        ) {
            let mut seen = std::collections::BTreeMap::new();
            for (namespace, name) in &pairs {
                let objects = objects_namespace(namespace, name);
                proptest::prop_assert!(is_dns_label(&objects), "{}", objects);
                proptest::prop_assert!(objects.starts_with(OBJECTS_NAMESPACE_PREFIX));
                if let Some(other) = seen.insert(objects.clone(), (namespace, name)) {
                    proptest::prop_assert_eq!(other, (namespace, name), "{} is shared", objects);
                }
            }
        }

        /// Every way of cutting one dashed name into a namespace and a name gives its own
        /// objects namespace: the collisions a plain join would make.
        #[test]
        fn every_split_of_a_dashed_name_is_distinct(
            segments in proptest::collection::vec("[a-z0-9]{1,6}", 2..8)
        ) {
            let mut seen = std::collections::BTreeSet::new();
            for cut in 1..segments.len() {
                let namespace = segments[..cut].join("-");
                let name = segments[cut..].join("-");
                proptest::prop_assert!(seen.insert(objects_namespace(&namespace, &name)));
            }
        }
    }
}
