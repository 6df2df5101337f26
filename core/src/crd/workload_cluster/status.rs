//! What the controller (and, after the pivot, the agent) reports on a `WorkloadCluster`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClusterPhase>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions: Valid, RevisionPublished, ObjectsApplied,
    /// ControlPlaneInitialized, AgentInstalled, AgentConnected, Pivoted, Deleting, Ready
    /// (see `crate::contracts::conditions` for who writes each).
    // A map keyed by type, so the controller and the agent each own their conditions
    // under server-side apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The number of the `ClusterRevision` in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// The namespace of the management cluster that holds this cluster's CAPI objects
    /// and revisions, and nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ReplicaCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<ReplicaCounts>,
    /// Per-layer install state, reported by the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerState>,
    /// The agent image installed in the workload cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_image: Option<String>,
    /// What the agent last said about itself (written by the agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentReport>,
}

/// The agent's own report. Data from the site: shown, never acted on; the controller judges
/// whether the agent is connected by when it saw this change, on its own clock.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentReport {
    /// When the agent last reported (its own clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_report_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// When the agent's management token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// Where a cluster is in its life.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ClusterPhase {
    /// Seen, not yet validated.
    Pending,
    /// The spec or what it names is wrong; see the Valid condition. Nothing is created.
    Invalid,
    /// CAPI objects applied; the first control-plane node is coming up.
    Provisioning,
    /// The control plane answers; the agent is being installed.
    InstallingAgent,
    /// The agent runs in the workload cluster and takes it from here (pivot, scale-out).
    AgentInstalled,
    /// The agent is moving the CAPI objects into the workload cluster.
    Pivoting,
    /// The CAPI objects live in the workload cluster.
    Pivoted,
    Deleting,
}

impl ClusterPhase {
    pub fn as_str(&self) -> &'static str {
        match self {
            ClusterPhase::Pending => "Pending",
            ClusterPhase::Invalid => "Invalid",
            ClusterPhase::Provisioning => "Provisioning",
            ClusterPhase::InstallingAgent => "InstallingAgent",
            ClusterPhase::AgentInstalled => "AgentInstalled",
            ClusterPhase::Pivoting => "Pivoting",
            ClusterPhase::Pivoted => "Pivoted",
            ClusterPhase::Deleting => "Deleting",
        }
    }

    pub const ALL: [ClusterPhase; 8] = [
        ClusterPhase::Pending,
        ClusterPhase::Invalid,
        ClusterPhase::Provisioning,
        ClusterPhase::InstallingAgent,
        ClusterPhase::AgentInstalled,
        ClusterPhase::Pivoting,
        ClusterPhase::Pivoted,
        ClusterPhase::Deleting,
    ];
}

/// Desired and ready machine counts, with a `ready/desired` summary for `kubectl get`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCounts {
    pub desired: i64,
    pub ready: i64,
    pub summary: String,
}

impl ReplicaCounts {
    pub fn new(desired: i64, ready: i64) -> Self {
        ReplicaCounts {
            desired,
            ready,
            summary: format!("{ready}/{desired}"),
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayerState {
    pub name: String,
    pub version: String,
    /// Pending, Installing, Installed, Failed.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
