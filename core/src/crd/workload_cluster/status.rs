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
    /// The number of the latest `ClusterRevision` published for this cluster (the
    /// controller's): what the cluster is to become.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// The number of the revision the cluster runs, every step of it done (control plane,
    /// workers, layers Ready). Reported by the agent after the pivot; data from the site,
    /// shown, never acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_revision: Option<i64>,
    /// Where the agent is in applying a revision newer than `appliedRevision` (written by
    /// the agent; absent when none is being applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutReport>,
    /// The namespace of the management cluster that holds this cluster's CAPI objects
    /// and revisions, and nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ReplicaCounts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<ReplicaCounts>,
    /// Per-layer install state, reported by the agent, in install order.
    // A map keyed by name, so that each layer's entry is merged on its own under
    // server-side apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub layers: Vec<LayerState>,
    /// `ready/total` of `layers`, for `kubectl get` (`4/4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_summary: Option<String>,
    /// The agent image installed in the workload cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_image: Option<String>,
    /// What the agent last said about itself (written by the agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentReport>,
    /// The latest revision while the cluster does not run it yet, with its plan's summary
    /// (the controller's; `strata cluster plan` prints it in full). Absent when the cluster
    /// runs its latest revision, and before the pivot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingRevision>,
    /// What the site did by itself, newest last, with the times it happened (written by
    /// the agent, also what it did while management was out of reach): node replacements,
    /// drift set back, layer changes, agent restarts, the link lost and back. The latest 50
    /// (the site keeps more, in its ConfigMap `strata-site-log`). A report to read, never a
    /// ground for the controller's decisions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub site_events: Vec<SiteEvent>,
}

/// How many of the site's events its status carries.
pub const SITE_EVENTS_IN_STATUS: usize = 50;
/// The longest message of a site event, in bytes, before its `… (cut)` mark (the schema
/// allows 512 characters).
pub const SITE_EVENT_MESSAGE_LIMIT: usize = 500;

/// One thing the site did by itself.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteEvent {
    /// When it happened, on the site's clock.
    pub time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
    /// `MachineRemediated`, `MachineCreated`, `MachineDeleted`, `DriftCorrected`,
    /// `LayerChanged`, `AgentStarted`, `LinkLost`, `LinkRestored`.
    #[schemars(length(max = 64))]
    pub kind: String,
    #[schemars(length(max = 512))]
    pub message: String,
}

/// A revision published and not yet applied, and what applying it will do.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingRevision {
    /// The revision to apply (the latest published).
    pub revision: i64,
    /// The revision the plan starts from: the one the agent reports applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// The plan's one line ("pool general resized 2 → 4; …"), or why there is none.
    pub summary: String,
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

/// The agent's progress through a revision: the step it is at and how that step goes.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutReport {
    /// The revision being applied.
    pub revision: i64,
    /// `ControlPlane`, `Workers` or `Layers`, in that order.
    pub step: String,
    /// `InProgress`, or `Failed` when the step cannot go on (it is tried again).
    pub state: String,
    /// What the step waits for, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the step started (the agent's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// A step of applying a revision, in the agent's order: the `step` of
/// [`RolloutReport`]. `ScaleOut` is the first revision after the pivot (the control plane
/// and the pools raised to their counts); every later revision goes `ControlPlane`,
/// `Workers`, `Layers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum RolloutStep {
    ScaleOut,
    ControlPlane,
    Workers,
    Layers,
}

impl RolloutStep {
    pub fn as_str(&self) -> &'static str {
        match self {
            RolloutStep::ScaleOut => "ScaleOut",
            RolloutStep::ControlPlane => "ControlPlane",
            RolloutStep::Workers => "Workers",
            RolloutStep::Layers => "Layers",
        }
    }
}

impl std::fmt::Display for RolloutStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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

/// One layer as the agent last saw it in its cluster. Data from the site: shown, never acted
/// on by the controller.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayerState {
    /// The pack's name.
    pub name: String,
    pub version: String,
    /// The pack's digest the revision pins: its content digest (`sha256:` of its
    /// uncompressed tar stream), or in revisions made before content digests the digest of
    /// its compressed archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub state: LayerPhase,
    /// Why the layer is not Ready: the object and the cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `state` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// How many times the agent set back an object or field of the layer that had changed
    /// or gone.
    #[serde(default)]
    pub drift_corrections: i64,
}

/// Where a layer is in its install.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum LayerPhase {
    /// Waiting for the layers before it.
    Pending,
    /// Being applied, or applied and not yet ready.
    Installing,
    /// Every object of the layer is ready.
    Ready,
    /// Applying failed or the layer did not become ready in time; retried with backoff.
    Failed,
}

impl LayerPhase {
    pub fn as_str(&self) -> &'static str {
        match self {
            LayerPhase::Pending => "Pending",
            LayerPhase::Installing => "Installing",
            LayerPhase::Ready => "Ready",
            LayerPhase::Failed => "Failed",
        }
    }
}

/// `ready/total` of `layers`: the `Layers` column.
pub fn layers_summary(layers: &[LayerState]) -> String {
    let ready = layers
        .iter()
        .filter(|layer| layer.state == LayerPhase::Ready)
        .count();
    format!("{ready}/{}", layers.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn layer(name: &str, state: LayerPhase) -> LayerState {
        LayerState {
            name: name.into(),
            version: "1.0.0".into(),
            digest: None,
            state,
            message: None,
            last_transition_time: None,
            drift_corrections: 0,
        }
    }

    #[test]
    fn the_layers_column_counts_the_ready_ones() {
        assert_eq!(layers_summary(&[]), "0/0");
        let layers = [
            layer("cni", LayerPhase::Ready),
            layer("csi", LayerPhase::Ready),
            layer("app", LayerPhase::Failed),
            layer("web", LayerPhase::Pending),
        ];
        assert_eq!(layers_summary(&layers), "2/4");
    }

    #[test]
    fn a_layer_reads_as_the_status_writes_it() {
        let mut failed = layer("app", LayerPhase::Failed);
        failed.message = Some("Deployment shop/web: 0 of 2 replicas available".into());
        failed.drift_corrections = 3;
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "app", "version": "1.0.0", "state": "Failed",
                "message": "Deployment shop/web: 0 of 2 replicas available",
                "driftCorrections": 3,
            })
        );
        assert_eq!(serde_json::from_value::<LayerState>(json).unwrap(), failed);
    }
}
