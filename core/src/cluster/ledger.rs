//! The controller's decisions about one cluster, kept as annotations on the cluster's objects
//! namespace in the management cluster. The agent may read that namespace (its grant is there)
//! but not write it, and tenants do not own it: so no site can forge a decision or take one
//! back, whatever it writes into the WorkloadCluster's status.
//!
//! Two of the decisions exclude each other, and each is written with the namespace's
//! resourceVersion as a precondition: either the controller grants the agent its move (from
//! then on the controller never applies or deletes the cluster's CAPI objects), or it decides
//! to delete the cluster where it is (from then on the agent never starts a move).

use std::collections::BTreeMap;

use crate::contracts::labels::{
    DELETION_ANNOTATION, OBJECTS_APPLIED_ANNOTATION, PIVOT_ANNOTATION, WORKLOAD_CA_ANNOTATION,
    WORKLOAD_SERVER_ANNOTATION,
};

const GRANTED: &str = "granted";
const RETURNED: &str = "returned";
const DECIDED: &str = "decided";

/// Who may act on the cluster's CAPI objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PivotLatch {
    /// The controller: no move was granted.
    NotGranted,
    /// The agent: the move was granted (the objects may be anywhere from here on).
    Granted,
    /// The controller again: the objects came back for the cluster's deletion.
    Returned,
}

/// The API server and CA the controller pinned for a cluster's workload kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadPin {
    pub server: String,
    pub ca_sha256: String,
}

/// The controller's recorded decisions about one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterLedger {
    pub pivot: PivotLatch,
    pub deletion_decided: bool,
    pub objects_applied: bool,
    pub pin: Option<WorkloadPin>,
}

impl ClusterLedger {
    /// The ledger of these annotation pairs (the form the ledger's writes take, as
    /// `grant_move()` gives them).
    pub fn of_pairs(pairs: &[(&str, &str)]) -> ClusterLedger {
        let annotations: BTreeMap<String, String> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        ClusterLedger::read(Some(&annotations))
    }

    /// The ledger in a namespace's annotations. A value the controller never writes (an
    /// edit by hand) reads as the cautious choice: an unknown pivot value means the agent
    /// may hold the objects.
    pub fn read(annotations: Option<&BTreeMap<String, String>>) -> ClusterLedger {
        let empty = BTreeMap::new();
        let annotations = annotations.unwrap_or(&empty);
        let get = |key: &str| annotations.get(key).map(String::as_str);
        let pivot = match get(PIVOT_ANNOTATION) {
            None => PivotLatch::NotGranted,
            Some(RETURNED) => PivotLatch::Returned,
            Some(_) => PivotLatch::Granted,
        };
        let pin = match (get(WORKLOAD_SERVER_ANNOTATION), get(WORKLOAD_CA_ANNOTATION)) {
            (Some(server), Some(ca)) => Some(WorkloadPin {
                server: server.to_string(),
                ca_sha256: ca.to_string(),
            }),
            _ => None,
        };
        ClusterLedger {
            pivot,
            // Any value: only the controller writes it, and only one.
            deletion_decided: get(DELETION_ANNOTATION).is_some(),
            objects_applied: get(OBJECTS_APPLIED_ANNOTATION).is_some(),
            pin,
        }
    }

    /// Whether the agent may hold the CAPI objects, so the controller must not apply or
    /// delete them.
    pub fn agent_holds_the_objects(&self) -> bool {
        self.pivot == PivotLatch::Granted
    }

    /// Whether the controller may grant the agent its move now.
    pub fn may_grant_move(&self) -> bool {
        self.pivot == PivotLatch::NotGranted && !self.deletion_decided
    }

    /// Whether the controller may decide to delete the cluster where it is.
    pub fn may_decide_deletion(&self) -> bool {
        self.pivot != PivotLatch::Granted
    }
}

/// The annotations that record a decision.
pub fn grant_move() -> (&'static str, &'static str) {
    (PIVOT_ANNOTATION, GRANTED)
}

pub fn objects_returned() -> (&'static str, &'static str) {
    (PIVOT_ANNOTATION, RETURNED)
}

pub fn decide_deletion() -> (&'static str, &'static str) {
    (DELETION_ANNOTATION, DECIDED)
}

pub fn objects_applied() -> (&'static str, &'static str) {
    (OBJECTS_APPLIED_ANNOTATION, "true")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(pairs: &[(&str, &str)]) -> ClusterLedger {
        ClusterLedger::of_pairs(pairs)
    }

    #[test]
    fn a_grant_and_a_deletion_exclude_each_other() {
        let fresh = ledger(&[]);
        assert!(fresh.may_grant_move() && fresh.may_decide_deletion());
        assert!(!fresh.agent_holds_the_objects());
        let granted = ledger(&[grant_move()]);
        assert!(granted.agent_holds_the_objects());
        assert!(!granted.may_grant_move() && !granted.may_decide_deletion());
        let deleting = ledger(&[decide_deletion()]);
        assert!(!deleting.may_grant_move());
        assert!(deleting.may_decide_deletion());
        let returned = ledger(&[objects_returned(), decide_deletion()]);
        assert_eq!(returned.pivot, PivotLatch::Returned);
        assert!(!returned.agent_holds_the_objects() && !returned.may_grant_move());
    }

    #[test]
    fn an_unknown_value_is_read_cautiously() {
        assert!(ledger(&[(PIVOT_ANNOTATION, "maybe")]).agent_holds_the_objects());
        assert!(ledger(&[(DELETION_ANNOTATION, "")]).deletion_decided);
        assert_eq!(ClusterLedger::read(None), ledger(&[]));
    }

    #[test]
    fn the_pin_needs_both_halves() {
        assert_eq!(
            ledger(&[(WORKLOAD_SERVER_ANNOTATION, "https://a")]).pin,
            None
        );
        assert_eq!(
            ledger(&[
                (WORKLOAD_SERVER_ANNOTATION, "https://a"),
                (WORKLOAD_CA_ANNOTATION, "ab")
            ])
            .pin,
            Some(WorkloadPin {
                server: "https://a".into(),
                ca_sha256: "ab".into()
            })
        );
    }
}
