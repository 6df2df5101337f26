//! How a reconcile ended, as a value, and the one function that turns it into the cluster's
//! phase, the conditions that end the pass, and when to look again ([`decide`]). The steps
//! before the end add their own conditions as they pass (Valid, RevisionPublished,
//! ObjectsApplied, ControlPlaneInitialized); the outcome adds the last ones.

use std::time::Duration;

use strata_shared::cluster::ClusterPhase;
use strata_shared::conditions::ConditionUpdate;
use strata_shared::contracts::conditions::{
    AGENT_INSTALLED, CONTROL_PLANE_INITIALIZED, OBJECTS_APPLIED, READY, VALID,
};
use strata_shared::finding::{FindingKind, Findings};

use super::workload_access::UNSAFE_KUBECONFIG;

/// How often a cluster waiting for its kubeconfig or its agent is looked at again.
pub const WAITING: Duration = Duration::from_secs(5);
/// How often a cluster waiting for CAPI is looked at again, besides the changes of its
/// CAPI Cluster that wake it (see `wakes`): provisioning takes minutes, and a thousand
/// clusters polled every minute took most of the controller's passes (issue 19's
/// benchmark), crowding out the clusters with work to do. The controller's default resync.
pub const WAITING_FOR_CAPI: Duration = Duration::from_secs(300);
/// How often an invalid cluster is looked at again: what it names may appear.
pub const INVALID_RETRY: Duration = Duration::from_secs(30);
/// How soon a pass that lost a race (a ledger changed under it, a kubeconfig being
/// rewritten) is tried again.
pub const RACE_RETRY: Duration = Duration::from_secs(1);

/// Why a cluster is not valid: the reason of its Valid condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    InvalidSpec,
    NamespaceConflict,
    CloudAccountNotFound,
    CloudAccountInvalid,
    CloudAccountNotCopyable,
    ProfileNotFound,
    CloudMismatch,
    PackUnresolved,
    ConstraintsNotMet,
    InvalidProfile,
    InvalidStack,
    ProvidersUnresolved,
}

impl InvalidReason {
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::InvalidSpec => "InvalidSpec",
            InvalidReason::NamespaceConflict => "NamespaceConflict",
            InvalidReason::CloudAccountNotFound => "CloudAccountNotFound",
            InvalidReason::CloudAccountInvalid => "CloudAccountInvalid",
            InvalidReason::CloudAccountNotCopyable => "CloudAccountNotCopyable",
            InvalidReason::ProfileNotFound => "ProfileNotFound",
            InvalidReason::CloudMismatch => "CloudMismatch",
            InvalidReason::PackUnresolved => "PackUnresolved",
            InvalidReason::ConstraintsNotMet => "ConstraintsNotMet",
            InvalidReason::InvalidProfile => "InvalidProfile",
            InvalidReason::InvalidStack => "InvalidStack",
            InvalidReason::ProvidersUnresolved => "ProvidersUnresolved",
        }
    }

    /// The reason a failed composition gives, from the kinds of its error findings: the
    /// first of these that any error has wins.
    pub fn of_composition(findings: &Findings) -> InvalidReason {
        let has = |kind: FindingKind| findings.errors().any(|f| f.kind == kind);
        [
            (FindingKind::ProfileNotFound, InvalidReason::ProfileNotFound),
            (FindingKind::CloudMismatch, InvalidReason::CloudMismatch),
            (FindingKind::PackUnresolved, InvalidReason::PackUnresolved),
            (
                FindingKind::ConstraintNotMet,
                InvalidReason::ConstraintsNotMet,
            ),
        ]
        .into_iter()
        .find(|(kind, _)| has(*kind))
        .map_or(InvalidReason::InvalidProfile, |(_, reason)| reason)
    }
}

/// What was wrong with a cluster, for its Valid condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub reason: InvalidReason,
    pub message: String,
}

impl Invalid {
    pub fn new(reason: InvalidReason, message: impl Into<String>) -> Self {
        Invalid {
            reason,
            message: message.into(),
        }
    }

    /// Invalid for `reason`, the message summing up the error findings.
    pub fn from_findings(reason: InvalidReason, findings: &Findings) -> Self {
        Invalid::new(reason, summarize(findings))
    }
}

/// Up to five errors, `subject: message`, for a condition message.
pub fn summarize(findings: &Findings) -> String {
    let errors: Vec<String> = findings.errors().map(|f| f.to_string()).collect();
    let shown = errors
        .iter()
        .take(5)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > 5 {
        format!("{shown} (and {} more)", errors.len() - 5)
    } else {
        shown
    }
}

/// How one reconcile of a cluster that is not being deleted ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing is created for an invalid cluster.
    Invalid(Invalid),
    /// The agent holds the CAPI objects; `moved` once it says the move is done.
    HandedOver {
        moved: bool,
    },
    /// The ledger changed under this pass (another replica, another decision).
    LedgerChanged,
    /// The CAPI Cluster was applied once and is gone; it is not created again.
    ObjectsGone {
        message: String,
    },
    WaitingForControlPlane,
    WaitingForKubeconfig {
        message: String,
    },
    /// The kubeconfig Secret could not be read as it is now; read again soon.
    KubeconfigInFlux,
    UnsafeKubeconfig {
        message: String,
    },
    /// The pass ends with an error after this status is written.
    AgentInstallFailed {
        message: &'static str,
    },
    AgentStarting {
        image: String,
    },
    AgentRunning {
        image: String,
    },
}

/// Whether the pass's node counts are kept in the status or left to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counts {
    Keep,
    LeftToAgent,
}

/// What an outcome makes of the status, and when the cluster is looked at again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub phase: ClusterPhase,
    /// Added after the conditions the steps set, replacing any of the same type.
    pub conditions: Vec<ConditionUpdate<'static>>,
    pub requeue: Duration,
    /// False when the pass lost a race: the status is written by the next one.
    pub write_status: bool,
    pub counts: Counts,
}

impl Decision {
    fn written(phase: ClusterPhase, requeue: Duration) -> Self {
        Decision {
            phase,
            conditions: Vec::new(),
            requeue,
            write_status: true,
            counts: Counts::Keep,
        }
    }

    fn with(mut self, condition: ConditionUpdate<'static>) -> Self {
        self.conditions.push(condition);
        self
    }
}

const PROVISIONING_MESSAGE: &str = "CAPI is provisioning the first control-plane machine";

/// The status and requeue of `outcome`; `link_recheck` is how often a cluster with an agent
/// is looked at, so that the agent's silence shows in time.
// Longer than 80 lines: one arm per outcome, read as a table; splitting it would hide that.
pub fn decide(outcome: &Outcome, link_recheck: Duration) -> Decision {
    use ClusterPhase::{AgentInstalled, InstallingAgent, Pending, Pivoted, Pivoting, Provisioning};
    match outcome {
        Outcome::Invalid(invalid) => Decision::written(ClusterPhase::Invalid, INVALID_RETRY)
            .with(ConditionUpdate::not(
                VALID,
                invalid.reason.as_str(),
                invalid.message.clone(),
            ))
            .with(ConditionUpdate::not(
                READY,
                invalid.reason.as_str(),
                "the cluster is not valid; see the Valid condition",
            )),
        Outcome::HandedOver { moved: true } => Decision {
            counts: Counts::LeftToAgent,
            ..Decision::written(Pivoted, link_recheck).with(ConditionUpdate::ok(
                READY,
                "Pivoted",
                "the cluster's CAPI objects live in the workload cluster, whose agent manages it",
            ))
        },
        Outcome::HandedOver { moved: false } => Decision {
            counts: Counts::LeftToAgent,
            ..Decision::written(Pivoting, link_recheck).with(ConditionUpdate::not(
                READY,
                "Pivoting",
                "the agent was granted its move of the CAPI objects into the workload cluster",
            ))
        },
        Outcome::LedgerChanged => Decision {
            write_status: false,
            ..Decision::written(Pending, RACE_RETRY)
        },
        Outcome::ObjectsGone { message } => Decision::written(Provisioning, WAITING_FOR_CAPI)
            .with(ConditionUpdate::not(
                OBJECTS_APPLIED,
                "ObjectsGone",
                message.clone(),
            ))
            .with(ConditionUpdate::not(READY, "ObjectsGone", message.clone())),
        Outcome::WaitingForControlPlane => Decision::written(Provisioning, WAITING_FOR_CAPI)
            .with(ConditionUpdate::not(
                CONTROL_PLANE_INITIALIZED,
                "WaitingForControlPlane",
                PROVISIONING_MESSAGE,
            ))
            .with(ConditionUpdate::not(
                AGENT_INSTALLED,
                "WaitingForControlPlane",
                PROVISIONING_MESSAGE,
            ))
            .with(ConditionUpdate::not(
                READY,
                "Provisioning",
                PROVISIONING_MESSAGE,
            )),
        Outcome::WaitingForKubeconfig { message } => {
            waiting_for_workload("WaitingForKubeconfig", message, WAITING)
        }
        Outcome::KubeconfigInFlux => Decision {
            write_status: false,
            ..Decision::written(Provisioning, RACE_RETRY)
        },
        Outcome::UnsafeKubeconfig { message } => {
            waiting_for_workload(UNSAFE_KUBECONFIG, message, INVALID_RETRY)
        }
        Outcome::AgentInstallFailed { message } => Decision::written(InstallingAgent, WAITING)
            .with(ConditionUpdate::not(
                AGENT_INSTALLED,
                "AgentInstallFailed",
                *message,
            ))
            .with(ConditionUpdate::not(
                READY,
                "InstallingAgent",
                "the agent is not installed yet",
            )),
        Outcome::AgentStarting { image } => {
            let message = format!("the agent Deployment ({image}) has no available replica yet");
            Decision::written(InstallingAgent, WAITING)
                .with(ConditionUpdate::not(
                    AGENT_INSTALLED,
                    "AgentStarting",
                    message.clone(),
                ))
                .with(ConditionUpdate::not(READY, "InstallingAgent", message))
        }
        Outcome::AgentRunning { image } => Decision::written(AgentInstalled, link_recheck)
            .with(ConditionUpdate::ok(
                AGENT_INSTALLED,
                "Running",
                format!("the agent ({image}) runs in the workload cluster"),
            ))
            .with(ConditionUpdate::ok(
                READY,
                "AgentInstalled",
                "the agent takes the cluster from here",
            )),
    }
}

fn waiting_for_workload(reason: &'static str, message: &str, requeue: Duration) -> Decision {
    Decision::written(ClusterPhase::Provisioning, requeue)
        .with(ConditionUpdate::not(AGENT_INSTALLED, reason, message))
        .with(ConditionUpdate::not(READY, "Provisioning", message))
}

#[cfg(test)]
#[path = "outcome_tests.rs"]
mod tests;
