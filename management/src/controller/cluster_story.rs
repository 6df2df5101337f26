//! A WorkloadCluster's story as Kubernetes Events, so that `kubectl describe wc` tells it:
//! each phase the cluster enters, each failure (one of its health conditions turning False,
//! or False for a new reason) and each recovery (one turning True again). The events are
//! derived from the status before and after a write, so a pass that changes nothing tells
//! nothing, and the recorder folds repeats into one event with a count.
//!
//! The conditions the agent writes (`Pivoted`) are the site's words: they are not retold
//! here as the controller's. The phases it leads to are.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use strata_shared::cluster::{ClusterPhase, WorkloadCluster, WorkloadClusterStatus};
use strata_shared::conditions::ConditionUpdate;
use strata_shared::contracts::conditions::{
    AGENT_CONNECTED, AGENT_INSTALLED, OBJECTS_APPLIED, READY, REVISION_PUBLISHED, VALID,
};
use strata_shared::contracts::field_managers::CONTROLLER_FIELD_MANAGER;

/// Conditions whose turning False is a failure, and turning True again a recovery. The
/// others say where provisioning is, which the phases tell.
const HEALTH: [&str; 5] = [
    VALID,
    REVISION_PUBLISHED,
    OBJECTS_APPLIED,
    AGENT_INSTALLED,
    AGENT_CONNECTED,
];

/// Reasons of a health condition's False that say where provisioning is, not that anything
/// failed: the phases tell them, and their end is no recovery.
const PROGRESS: [&str; 3] = [
    "WaitingForControlPlane",
    "WaitingForKubeconfig",
    "AgentStarting",
];

/// One event of the story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryEvent {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

/// What changed between `previous` and what a pass writes (`phase`, `updates`), as events.
pub fn story(
    previous: Option<&WorkloadClusterStatus>,
    phase: Option<ClusterPhase>,
    updates: &[ConditionUpdate<'_>],
) -> Vec<StoryEvent> {
    let mut events = Vec::new();
    let before = previous.and_then(|s| s.phase);
    if let Some(phase) = phase
        && before != Some(phase)
    {
        let ready = updates
            .iter()
            .find(|c| c.type_ == READY)
            .map(|c| format!(": {}", c.message))
            .unwrap_or_default();
        // The note names only the phase entered: the recorder folds an event of the same
        // reason into the first one (a count and the last time), keeping its note.
        events.push(StoryEvent {
            warning: phase == ClusterPhase::Invalid,
            reason: phase.as_str().to_string(),
            note: format!("phase {}{ready}", phase.as_str()),
        });
    }
    for update in updates.iter().filter(|c| HEALTH.contains(&c.type_)) {
        let was = previous.and_then(|s| s.conditions.iter().find(|c| c.type_ == update.type_));
        // False for a failure, not on the way.
        let was_false =
            was.is_some_and(|c| c.status == "False" && !PROGRESS.contains(&c.reason.as_str()));
        let failing = !PROGRESS.contains(&update.reason);
        match update.status {
            Some(false)
                if failing && (!was_false || was.is_some_and(|c| c.reason != update.reason)) =>
            {
                events.push(StoryEvent {
                    warning: true,
                    reason: update.reason.to_string(),
                    note: format!("{} is False: {}", update.type_, update.message),
                });
            }
            Some(true) if was_false => {
                let reason = was.map(|c| c.reason.as_str()).unwrap_or_default();
                // One reason per condition: recoveries of two conditions are not folded.
                events.push(StoryEvent {
                    warning: false,
                    reason: format!("{}Recovered", update.type_),
                    note: format!(
                        "{} is True again ({}), after {reason}: {}",
                        update.type_, update.reason, update.message
                    ),
                });
            }
            _ => {}
        }
    }
    events
}

/// Publishes a cluster's story events (one recorder for the controller's life, so that
/// repeats are folded).
pub struct ClusterStory {
    recorder: Recorder,
}

impl ClusterStory {
    pub fn new(client: kube::Client) -> ClusterStory {
        ClusterStory {
            recorder: Recorder::new(
                client,
                Reporter {
                    controller: CONTROLLER_FIELD_MANAGER.into(),
                    instance: None,
                },
            ),
        }
    }

    /// Tells `events` of `cluster`.
    pub async fn tell(&self, cluster: &WorkloadCluster, events: Vec<StoryEvent>) {
        for told in events {
            let event = Event {
                type_: if told.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: told.reason,
                note: Some(told.note),
                action: "Reconcile".into(),
                secondary: None,
            };
            self.publish(cluster, &event).await;
        }
    }

    /// Publishes one event of `cluster`. An event that cannot be written is logged, not an
    /// error: the status already says it.
    pub async fn publish(&self, cluster: &WorkloadCluster, event: &Event) {
        let reference: ObjectReference = cluster.object_ref(&());
        if let Err(e) = self.recorder.publish(event, &reference).await {
            tracing::info!(error = %e, reason = %event.reason, "cannot record the cluster's event");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn status(phase: ClusterPhase, conditions: &[(&str, &str, &str)]) -> WorkloadClusterStatus {
        WorkloadClusterStatus {
            phase: Some(phase),
            conditions: conditions
                .iter()
                .map(|(type_, status, reason)| Condition {
                    type_: type_.to_string(),
                    status: status.to_string(),
                    reason: reason.to_string(),
                    message: String::new(),
                    last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                    observed_generation: None,
                })
                .collect(),
            ..WorkloadClusterStatus::default()
        }
    }

    #[test]
    fn a_new_phase_is_told_with_the_ready_message() {
        let before = status(ClusterPhase::Provisioning, &[]);
        let told = story(
            Some(&before),
            Some(ClusterPhase::InstallingAgent),
            &[ConditionUpdate::not(
                READY,
                "InstallingAgent",
                "the agent is being installed",
            )],
        );
        assert_eq!(
            told,
            [StoryEvent {
                warning: false,
                reason: "InstallingAgent".into(),
                note: "phase InstallingAgent: the agent is being installed".into(),
            }]
        );
        assert!(story(Some(&before), Some(ClusterPhase::Provisioning), &[]).is_empty());
        let first = story(None, Some(ClusterPhase::Pending), &[]);
        assert_eq!(first[0].note, "phase Pending");
    }

    #[test]
    fn a_failure_is_a_warning_once_and_its_recovery_is_told() {
        let healthy = status(
            ClusterPhase::Pivoted,
            &[(AGENT_CONNECTED, "True", "Reporting")],
        );
        let silent = [ConditionUpdate::not(
            AGENT_CONNECTED,
            "AgentSilent",
            "no report for 95 s",
        )];
        let told = story(Some(&healthy), Some(ClusterPhase::Pivoted), &silent);
        assert_eq!(
            told,
            [StoryEvent {
                warning: true,
                reason: "AgentSilent".into(),
                note: "AgentConnected is False: no report for 95 s".into(),
            }]
        );
        // Still silent, for the same reason: nothing new.
        let still = status(
            ClusterPhase::Pivoted,
            &[(AGENT_CONNECTED, "False", "AgentSilent")],
        );
        assert!(story(Some(&still), Some(ClusterPhase::Pivoted), &silent).is_empty());
        // Back.
        let back = [ConditionUpdate::ok(
            AGENT_CONNECTED,
            "Reporting",
            "reported 3 s ago",
        )];
        let told = story(Some(&still), Some(ClusterPhase::Pivoted), &back);
        assert_eq!(told.len(), 1);
        assert!(!told[0].warning);
        assert_eq!(told[0].reason, "AgentConnectedRecovered");
        assert_eq!(
            told[0].note,
            "AgentConnected is True again (Reporting), after AgentSilent: reported 3 s ago"
        );
    }

    #[test]
    fn a_new_reason_for_a_failure_is_told_and_progress_conditions_are_not() {
        let refused = status(
            ClusterPhase::Pivoted,
            &[(REVISION_PUBLISHED, "False", "UpgradeRefused")],
        );
        let other = [ConditionUpdate::not(
            REVISION_PUBLISHED,
            "RolloutHeld",
            "held by the rollout",
        )];
        let told = story(Some(&refused), Some(ClusterPhase::Pivoted), &other);
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].reason, "RolloutHeld");
        let waiting = [ConditionUpdate::not(
            strata_shared::contracts::conditions::CONTROL_PLANE_INITIALIZED,
            "WaitingForControlPlane",
            "",
        )];
        assert!(story(None, None, &waiting).is_empty());
    }

    #[test]
    fn provisioning_on_its_way_is_no_failure_and_its_end_no_recovery() {
        let starting = [ConditionUpdate::not(
            AGENT_INSTALLED,
            "AgentStarting",
            "no replica yet",
        )];
        assert!(story(None, None, &starting).is_empty());
        let was_starting = status(
            ClusterPhase::InstallingAgent,
            &[(AGENT_INSTALLED, "False", "AgentStarting")],
        );
        let running = [ConditionUpdate::ok(AGENT_INSTALLED, "Running", "runs")];
        assert!(story(Some(&was_starting), None, &running).is_empty());
        // A failure after it is one.
        let failed = [ConditionUpdate::not(
            AGENT_INSTALLED,
            "AgentInstallFailed",
            "forbidden",
        )];
        assert_eq!(story(Some(&was_starting), None, &failed).len(), 1);
    }

    #[test]
    fn an_invalid_cluster_is_a_warning() {
        let told = story(
            None,
            Some(ClusterPhase::Invalid),
            &[ConditionUpdate::not(
                VALID,
                "ProfileNotFound",
                "ClusterProfile a/b does not exist",
            )],
        );
        assert!(told.iter().all(|e| e.warning), "{told:?}");
        assert_eq!(
            told[1].note,
            "Valid is False: ClusterProfile a/b does not exist"
        );
    }
}
