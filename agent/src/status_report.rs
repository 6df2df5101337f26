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

    /// Starts from the `Pivoted` condition the status carries (a restarted agent's), so the
    /// first write does not take it away.
    pub fn seed(&self, cluster: &WorkloadCluster) {
        let pivoted = cluster
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == PIVOTED).cloned());
        self.with(|status| {
            if status.pivoted.is_none() {
                status.pivoted = pivoted;
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
        let patch = json!({
            "apiVersion": "strata.dev/v1alpha1",
            "kind": "WorkloadCluster",
            "status": body,
        });
        management
            .namespaced::<WorkloadCluster>(&link.cluster_namespace)
            .apply_status(&link.cluster, &patch)
            .await
            .map(|_| ())
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
}
