//! The controller's decisions about one cluster, kept as annotations on the cluster's objects
//! namespace in the management cluster. The agent may read that namespace (its grant is there)
//! but not write it, and tenants do not own it: so no site can forge a decision or take one
//! back, whatever it writes into the WorkloadCluster's status.
//!
//! Two of the decisions exclude each other, and each is written with the namespace's
//! resourceVersion as a precondition: either the controller grants the agent its move (from
//! then on the controller never applies or deletes the cluster's CAPI objects), or it decides
//! to delete the cluster where it is (from then on the agent never starts a move).
//!
//! A cluster whose site was lost and whose objects an operator restored into the management
//! cluster is *reclaimed* (`strata cluster reclaim`): the controller holds the objects again,
//! in a new round, and may grant the next agent a move of its own.

use std::collections::BTreeMap;

use crate::contracts::labels::{
    DELETION_ANNOTATION, OBJECTS_APPLIED_ANNOTATION, PIVOT_ANNOTATION, PIVOT_ROUND_ANNOTATION,
    WORKLOAD_CA_ANNOTATION, WORKLOAD_SERVER_ANNOTATION,
};

const GRANTED: &str = "granted";
const RETURNED: &str = "returned";
const DECIDED: &str = "decided";
const RECLAIMED: &str = "reclaimed";

/// Who may act on the cluster's CAPI objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PivotLatch {
    /// The controller: no move was granted.
    NotGranted,
    /// The agent: the move was granted (the objects may be anywhere from here on).
    Granted,
    /// The controller again: the objects came back for the cluster's deletion.
    Returned,
    /// The controller again: an operator restored the objects from the site's export and
    /// reclaimed them. They are the site's objects, never applied over; a new agent may be
    /// granted a new move.
    Reclaimed,
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
    /// Which pivot this is: 1 until the cluster is first reclaimed.
    pub round: u32,
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
            Some(RECLAIMED) => PivotLatch::Reclaimed,
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
            // Only the controller and `strata cluster reclaim` write it; a value edited into
            // nonsense reads as the first round, which keeps every journal the agent has.
            round: get(PIVOT_ROUND_ANNOTATION)
                .and_then(|r| r.parse().ok())
                .filter(|r| *r >= 1)
                .unwrap_or(1),
        }
    }

    /// Whether the agent may hold the CAPI objects, so the controller must not apply or
    /// delete them.
    pub fn agent_holds_the_objects(&self) -> bool {
        self.pivot == PivotLatch::Granted
    }

    /// Whether the controller may grant the agent its move now.
    pub fn may_grant_move(&self) -> bool {
        matches!(self.pivot, PivotLatch::NotGranted | PivotLatch::Reclaimed)
            && !self.deletion_decided
    }

    /// Whether an operator may reclaim the objects (after restoring them from the site's
    /// export): only while the agent holds them and no deletion was decided.
    pub fn may_reclaim(&self) -> bool {
        self.pivot == PivotLatch::Granted && !self.deletion_decided
    }

    /// Whether the objects in the management cluster are a site's, restored and reclaimed:
    /// what CAPI and the site made of them is kept, so the controller does not apply its
    /// own over them.
    pub fn objects_are_reclaimed(&self) -> bool {
        self.pivot == PivotLatch::Reclaimed
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

/// The annotations that record a reclaim: the controller holds the objects again, in
/// `next_round` (one more than the ledger's round).
pub fn reclaim(next_round: &str) -> [(&'static str, &str); 2] {
    [
        (PIVOT_ANNOTATION, RECLAIMED),
        (PIVOT_ROUND_ANNOTATION, next_round),
    ]
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
    fn a_reclaimed_cluster_is_the_controllers_in_a_new_round() {
        let granted = ledger(&[grant_move()]);
        assert!(granted.may_reclaim());
        assert_eq!(granted.round, 1);
        let reclaimed = ledger(&[grant_move(), reclaim("2")[0], reclaim("2")[1]]);
        assert_eq!(reclaimed.pivot, PivotLatch::Reclaimed);
        assert_eq!(reclaimed.round, 2);
        assert!(reclaimed.objects_are_reclaimed() && !reclaimed.agent_holds_the_objects());
        assert!(reclaimed.may_grant_move() && reclaimed.may_decide_deletion());
        assert!(!reclaimed.may_reclaim(), "reclaimed once per round");
        // Granted again in round 2: the agent holds them, and may be reclaimed again.
        let again = ledger(&[reclaim("2")[1], grant_move()]);
        assert!(again.agent_holds_the_objects() && again.may_reclaim());
        assert_eq!(again.round, 2);
        // A deletion decided stops both a reclaim and a grant.
        let deleting = ledger(&[reclaim("2")[0], decide_deletion()]);
        assert!(!deleting.may_grant_move() && !deleting.may_reclaim());
        assert!(!ledger(&[grant_move(), decide_deletion()]).may_reclaim());
        assert!(!ledger(&[]).may_reclaim() && !ledger(&[objects_returned()]).may_reclaim());
    }

    #[test]
    fn a_round_that_is_not_a_positive_number_reads_as_the_first() {
        for bad in ["", "0", "-1", "two", "99999999999"] {
            assert_eq!(ledger(&[(PIVOT_ROUND_ANNOTATION, bad)]).round, 1, "{bad:?}");
        }
        assert_eq!(ledger(&[(PIVOT_ROUND_ANNOTATION, "7")]).round, 7);
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
