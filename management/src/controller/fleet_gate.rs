//! The rollout gate of the profiles a cluster uses: whether its next revision may be
//! published now ([`strata_shared::profile::fleet_rollout`] decides; this module gathers the
//! fleet from the controller's own store and keeps the decisions of concurrent reconciles
//! apart).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use strata_shared::cluster::{ClusterPhase, WorkloadCluster};
use strata_shared::profile::fleet_rollout::{cluster_key, rollout_name, uses};
use strata_shared::profile::{
    APPROVAL_ANNOTATION, ClusterProfile, FleetMember, Hold, RolloutGate, RolloutPolicy,
};
use tokio::sync::{Mutex, MutexGuard};

/// How long a reconcile waits for the controller's store to be filled before it holds.
const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The clusters this controller released (published a revision for) whose status may not
/// show it yet, by `namespace/name`, with the revision published.
type Released = BTreeMap<String, i64>;

/// Shared by every reconcile.
#[derive(Default)]
pub struct FleetGate {
    /// The controller's store of WorkloadClusters, set once its watch exists.
    clusters: OnceLock<Store<WorkloadCluster>>,
    /// Held from the decision to the revision's creation: two reconciles never both take
    /// the last place of a rollout.
    released: Mutex<Released>,
}

/// A cluster admitted: keep it until its revision is created, then [`Admitted::published`].
pub struct Admitted<'a> {
    released: MutexGuard<'a, Released>,
    cluster: String,
}

impl Admitted<'_> {
    pub fn published(mut self, revision: i64) {
        self.released.insert(self.cluster, revision);
    }
}

impl FleetGate {
    pub fn watch(&self, clusters: Store<WorkloadCluster>) {
        // Set once, when the controller starts; a second call has nothing new to give.
        let _ = self.clusters.set(clusters);
    }

    /// Whether the store holds every cluster: an empty one would open every gate.
    async fn ready(&self) -> bool {
        let Some(store) = self.clusters.get() else {
            return false;
        };
        matches!(
            tokio::time::timeout(STORE_WAIT, store.wait_until_ready()).await,
            Ok(Ok(()))
        )
    }

    /// Whether `cluster` may publish its next revision now, as the rollouts of `gating`
    /// (the profiles whose change it is, with their policies) allow. A cluster before the
    /// pivot always may.
    pub async fn admit<'a>(
        &'a self,
        cluster: &WorkloadCluster,
        gating: Vec<(&ClusterProfile, RolloutPolicy)>,
    ) -> Result<Admitted<'a>, Hold> {
        let key = cluster_key(cluster);
        let mut released = self.released.lock().await;
        let fleet: Vec<std::sync::Arc<WorkloadCluster>> =
            self.clusters.get().map(Store::state).unwrap_or_default();
        // Released clusters whose status has caught up are judged by it again.
        released.retain(|key, revision| {
            fleet
                .iter()
                .find(|c| cluster_key(c) == *key)
                .is_some_and(|c| c.status.as_ref().and_then(|s| s.revision) < Some(*revision))
        });
        if phase(cluster) == Some(ClusterPhase::Pivoted) {
            let released_keys: BTreeSet<String> = released.keys().cloned().collect();
            for (profile, policy) in &gating {
                let name = rollout_name(profile);
                if !self.ready().await {
                    return Err(Hold::Busy {
                        profile: name,
                        applying: vec!["the controller's list of clusters, still loading".into()],
                        max: policy.max_in_flight(),
                    });
                }
                let members: Vec<FleetMember> = fleet
                    .iter()
                    .filter(|c| uses(c, profile))
                    .map(|c| FleetMember::of(c, &name))
                    .collect();
                let gate = RolloutGate {
                    profile: name,
                    policy,
                    generation: profile.metadata.generation.unwrap_or(0),
                    approval: profile
                        .annotations()
                        .get(APPROVAL_ANNOTATION)
                        .map(String::as_str),
                    members: &members,
                    released: &released_keys,
                };
                gate.decide(&key)?;
            }
        }
        Ok(Admitted {
            released,
            cluster: key,
        })
    }
}

fn phase(cluster: &WorkloadCluster) -> Option<ClusterPhase> {
    cluster.status.as_ref().and_then(|s| s.phase)
}

#[cfg(test)]
#[path = "fleet_gate_tests.rs"]
mod tests;
