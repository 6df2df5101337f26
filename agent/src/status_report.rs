//! Everything the agent says on its WorkloadCluster's status, in one place: the `Pivoted`
//! condition, the node counts once it holds the cluster, the layers, the revision applied and
//! the one being applied, the site's events, and its own report (last report time, token
//! expiry). Server-side apply under one field manager owns exactly what is sent, so every
//! write sends all of it; the parts of the agent that change it only set it here.

use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use strata_shared::cluster::{
    LayerState, ReplicaCounts, RolloutReport, SiteEvent, WorkloadCluster, layers_summary,
};
use strata_shared::contracts::conditions::PIVOTED;
use strata_shared::kube_writer::{KubeWriter, WriteError};

use crate::management_link::ManagementLink;

#[derive(Debug, Default, Clone)]
struct AgentStatus {
    pivoted: Option<Condition>,
    counts: Option<(ReplicaCounts, ReplicaCounts)>,
    token_expires: Option<Timestamp>,
    layers: Option<Vec<LayerState>>,
    applied_revision: Option<i64>,
    rollout: Option<RolloutReport>,
    site_events: Option<Vec<SiteEvent>>,
}

/// The agent's status, shared by its tasks.
#[derive(Debug, Clone, Default)]
pub struct StatusReport {
    inner: Arc<Mutex<AgentStatus>>,
}

impl StatusReport {
    fn with<T>(&self, change: impl FnOnce(&mut AgentStatus) -> T) -> T {
        // Plain values: a panic elsewhere cannot leave them half-updated.
        let mut status = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut status)
    }

    /// Starts from the `Pivoted` condition and the layers the status carries (a restarted
    /// agent's own last report), so the first write does not take them away. Layers matter
    /// most: a write without them drops every item this field manager owned, and the list
    /// server-side apply leaves behind is refused by the CRD, as a reclaimed agent's first
    /// reports were, until the layer installer has read its states again.
    pub fn seed(&self, cluster: &WorkloadCluster) {
        let reported = cluster.status.as_ref();
        let pivoted =
            reported.and_then(|s| s.conditions.iter().find(|c| c.type_ == PIVOTED).cloned());
        let layers = reported
            .map(|s| s.layers.clone())
            .filter(|layers| !layers.is_empty());
        self.with(|status| {
            if status.pivoted.is_none() {
                status.pivoted = pivoted;
            }
            if status.layers.is_none() {
                status.layers = layers;
            }
        });
    }

    /// Sets the `Pivoted` condition; its transition time moves only when its status does.
    pub fn set_pivoted(&self, condition_status: &str, reason: &str, message: &str) {
        self.with(|status| {
            let since = status
                .pivoted
                .as_ref()
                .filter(|c| c.status == condition_status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(Timestamp::now()));
            status.pivoted = Some(Condition {
                type_: PIVOTED.into(),
                status: condition_status.into(),
                reason: reason.into(),
                message: message.into(),
                last_transition_time: since,
                observed_generation: None,
            });
        });
    }

    /// The node counts, once the agent holds the cluster.
    pub fn set_counts(&self, control_plane: ReplicaCounts, workers: ReplicaCounts) {
        self.with(|status| status.counts = Some((control_plane, workers)));
    }

    /// Each layer's state, in install order, once the layer installer has read them.
    pub fn set_layers(&self, layers: Vec<LayerState>) {
        self.with(|status| status.layers = Some(layers));
    }

    /// The revision the cluster runs, every step of it done.
    pub fn set_applied(&self, revision: Option<i64>) {
        self.with(|status| status.applied_revision = revision);
    }

    /// Where the revision being applied is; `None` when none is.
    pub fn set_rollout(&self, rollout: Option<RolloutReport>) {
        self.with(|status| status.rollout = rollout);
    }

    /// The site's latest events ([`crate::site_log`]).
    pub fn set_site_events(&self, events: Vec<SiteEvent>) {
        self.with(|status| status.site_events = Some(events));
    }

    pub fn set_token_expiry(&self, expires: Timestamp) {
        self.with(|status| status.token_expires = Some(expires));
    }

    /// Sends all of it, with the time of this report.
    pub async fn send(
        &self,
        management: &KubeWriter,
        link: &ManagementLink,
    ) -> Result<(), WriteError> {
        let patch = json!({
            "apiVersion": "strata.dev/v1alpha1",
            "kind": "WorkloadCluster",
            "status": self.body(),
        });
        management
            .namespaced::<WorkloadCluster>(&link.cluster_namespace)
            .apply_status(&link.cluster, &patch)
            .await
            .map(|_| ())
    }

    /// The status this report sends, stamped now.
    fn body(&self) -> serde_json::Value {
        let status = self.with(|status| status.clone());
        let mut body = json!({
            "agent": {
                "lastReportTime": Time(Timestamp::now()),
            },
        });
        if let Some(expires) = status.token_expires {
            body["agent"]["tokenExpires"] = json!(Time(expires));
        }
        if let Some(condition) = &status.pivoted {
            body["conditions"] = json!([condition]);
        }
        if let Some(layers) = &status.layers {
            body["layers"] = json!(layers);
            body["layersSummary"] = json!(layers_summary(layers));
        }
        if let Some(applied) = status.applied_revision {
            body["appliedRevision"] = json!(applied);
        }
        if let Some(rollout) = &status.rollout {
            body["rollout"] = json!(rollout);
        }
        if let Some(events) = &status.site_events {
            body["siteEvents"] = json!(events);
        }
        if let Some((control_plane, workers)) = &status.counts {
            body["controlPlane"] = json!(control_plane);
            body["workers"] = json!(workers);
        }
        body
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_transition_time_stays_while_the_status_does() {
        let report = StatusReport::default();
        report.set_pivoted("False", "MoveRequested", "waiting");
        let first = report.with(|s| s.pivoted.clone().unwrap().last_transition_time);
        std::thread::sleep(std::time::Duration::from_millis(5));
        report.set_pivoted("False", "Moving", "moving");
        let second = report.with(|s| s.pivoted.clone().unwrap());
        assert_eq!(second.last_transition_time, first);
        assert_eq!(second.reason, "Moving");
        report.set_pivoted("True", "Moved", "moved");
        let third = report.with(|s| s.pivoted.clone().unwrap().last_transition_time);
        assert!(third.0 > first.0);
    }

    #[test]
    fn a_restarted_agent_reports_its_last_layers_until_it_reads_them_again() {
        let cluster: WorkloadCluster = serde_json::from_value(json!({
            "apiVersion": "strata.dev/v1alpha1",
            "kind": "WorkloadCluster",
            "metadata": {"name": "edge", "namespace": "shops"},
            "spec": {"cloudType": "sim", "profiles": [{"name": "p", "version": "1.0.0"}],
                     "nodePools": {"controlPlane": {"count": 1}}},
            "status": {
                "conditions": [{"type": "Pivoted", "status": "True", "reason": "Moved",
                                "message": "m", "lastTransitionTime": "2026-12-01T00:00:00Z"}],
                "layers": [{"name": "cni-calico", "version": "3.19.0",
                            "state": "Ready"}],
            },
        }))
        .unwrap();
        let report = StatusReport::default();
        report.seed(&cluster);
        let body = report.body();
        assert_eq!(body["layers"][0]["name"], "cni-calico", "{body}");
        assert_eq!(body["layersSummary"], "1/1", "{body}");
        assert_eq!(body["conditions"][0]["reason"], "Moved", "{body}");
        // What the installer reads replaces the seed, even when it is empty.
        report.set_layers(Vec::new());
        assert_eq!(report.body()["layers"], json!([]), "{}", report.body());

        // Nothing reported before (a new or reclaimed cluster): nothing seeded.
        let mut fresh = cluster.clone();
        fresh.status = None;
        let report = StatusReport::default();
        report.seed(&fresh);
        assert!(report.body().get("layers").is_none());
    }
}
