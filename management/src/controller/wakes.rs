//! Which watch events wake a cluster's reconcile.
//!
//! Every write the controller makes to a cluster comes back to it as a watch event: its
//! status, its finalizer, the CAPI Cluster it applied. Waking on those would run a second
//! pass that finds what the first one left, for every cluster, every time; at a fleet's
//! scale that doubles the controller's work and the apiserver's. So an event wakes a
//! cluster only when something the controller did not write, and reads, changed:
//!
//! - a WorkloadCluster: its spec (generation), deletion, labels and annotations, and the
//!   part of its status the agent writes (its conditions, layers, report, rollout, site
//!   events); not the controller's own status fields and conditions, nor its finalizer;
//! - a CAPI Cluster: what the controller reads of it (of [`ClusterView`], whether the
//!   control plane is initialized and the ready replicas), its generation (an edit of its
//!   spec is set back) and its deletion; not its first sighting, which is the
//!   controller's own apply (or the controller starting, when every WorkloadCluster wakes
//!   anyway);
//! - a cluster's objects namespace: its ledger's decisions (see [`ledger_fingerprint`]),
//!   which another replica or the CLI may record; not its first sighting.
//!
//! Deleted objects always wake. Nothing is lost by a filtered event: the reflector's store
//! still holds the latest object, and every cluster is looked at again on its requeue.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::DynamicObject;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::capi_views::ClusterView;
use strata_shared::contracts::conditions::{
    AGENT_CONNECTED, AGENT_INSTALLED, CONTROL_PLANE_INITIALIZED, DELETING, OBJECTS_APPLIED, READY,
    REVISION_PUBLISHED, VALID,
};
use strata_shared::contracts::labels::{
    DELETION_ANNOTATION, PIVOT_ANNOTATION, PIVOT_ROUND_ANNOTATION,
};

/// The condition types the controller writes (see `strata_shared::contracts::conditions`).
const CONTROLLER_CONDITIONS: [&str; 8] = [
    VALID,
    REVISION_PUBLISHED,
    OBJECTS_APPLIED,
    CONTROL_PLANE_INITIALIZED,
    AGENT_INSTALLED,
    AGENT_CONNECTED,
    DELETING,
    READY,
];

/// What of a WorkloadCluster, when it changes, is worth a pass: everything but what the
/// controller itself writes.
pub fn cluster_fingerprint(cluster: &WorkloadCluster) -> u64 {
    let mut hasher = DefaultHasher::new();
    let meta = cluster.meta();
    meta.generation.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    // A status the controller has not written yet is the same as one it has: empty of
    // anything foreign.
    {
        let mut foreign = cluster.status.clone().unwrap_or_default();
        // The controller's own fields. `controlPlane` and `workers` are the agent's after
        // the pivot, but shown only: nothing is decided from them.
        foreign.phase = None;
        foreign.observed_generation = None;
        foreign.revision = None;
        foreign.namespace = None;
        foreign.control_plane = None;
        foreign.workers = None;
        foreign.agent_image = None;
        foreign.pending = None;
        foreign
            .conditions
            .retain(|c| !CONTROLLER_CONDITIONS.contains(&c.type_.as_str()));
        // Serialized, as the status's types do not all implement `Hash`; a failure (none
        // is possible for these types) only makes every event wake.
        match serde_json::to_vec(&foreign) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(_) => meta.resource_version.hash(&mut hasher),
        }
    }
    hasher.finish()
}

/// What of a CAPI Cluster, when it changes, is worth a pass of its WorkloadCluster.
pub fn capi_fingerprint(capi: &DynamicObject) -> u64 {
    let view = ClusterView::of(capi);
    let mut hasher = DefaultHasher::new();
    capi.meta().generation.hash(&mut hasher);
    capi.meta().deletion_timestamp.is_some().hash(&mut hasher);
    // The controller's passes read these three of the view, and nothing else.
    view.control_plane_initialized().hash(&mut hasher);
    view.control_plane_ready.hash(&mut hasher);
    view.workers_ready.hash(&mut hasher);
    hasher.finish()
}

/// What of a cluster's objects namespace, when it changes, is worth a pass: the ledger's
/// decisions (whose turn it is with the objects, the pivot round, a deletion decided),
/// which another replica or `strata cluster reclaim` may record, and its deletion. Not the
/// record of the first apply, which only the controller's own pass writes.
pub fn ledger_fingerprint(namespace: &Namespace) -> u64 {
    let mut hasher = DefaultHasher::new();
    namespace
        .meta()
        .deletion_timestamp
        .is_some()
        .hash(&mut hasher);
    let annotations = namespace.meta().annotations.as_ref();
    for key in [
        PIVOT_ANNOTATION,
        PIVOT_ROUND_ANNOTATION,
        DELETION_ANNOTATION,
    ] {
        annotations.and_then(|a| a.get(key)).hash(&mut hasher);
    }
    hasher.finish()
}

/// Whether an object seen for the first time wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstSight {
    Wakes,
    /// Only recorded: the object is one the controller just wrote, or one whose owner
    /// wakes on its own first sighting.
    Recorded,
}

/// The fingerprints last seen, per object: an event wakes only when its object's
/// fingerprint changed.
pub struct WakeFilter<K: Resource> {
    seen: HashMap<(String, String), u64>,
    first_sight: FirstSight,
    fingerprint: fn(&K) -> u64,
}

impl<K: Resource + Clone> WakeFilter<K> {
    pub fn new(fingerprint: fn(&K) -> u64, first_sight: FirstSight) -> Self {
        WakeFilter {
            seen: HashMap::new(),
            first_sight,
            fingerprint,
        }
    }

    /// The object a watch event wakes a reconcile for, if any. A restarted watch lists
    /// every object again; those unchanged since they were last seen stay asleep.
    pub fn wakes(&mut self, event: &watcher::Event<K>) -> Option<K> {
        match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                let key = key_of(object);
                let fingerprint = (self.fingerprint)(object);
                match self.seen.insert(key, fingerprint) {
                    Some(before) if before == fingerprint => None,
                    Some(_) => Some(object.clone()),
                    None => (self.first_sight == FirstSight::Wakes).then(|| object.clone()),
                }
            }
            watcher::Event::Delete(object) => {
                self.seen.remove(&key_of(object));
                Some(object.clone())
            }
            watcher::Event::Init | watcher::Event::InitDone => None,
        }
    }

    /// How many objects it remembers (for tests).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.seen.len()
    }
}

/// Namespace and name: the key of an object of one kind.
fn key_of<K: Resource>(object: &K) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

#[cfg(test)]
#[path = "wakes_tests.rs"]
mod tests;
