//! The plan of a revision: what changes from the revision a cluster runs to the next one,
//! and what that does to it. Layers added, removed, upgraded and reconfigured (values by
//! dotted path, secrets masked), the Kubernetes version and OS image, node pools, the
//! Cluster API objects created, changed and deleted, the machines CAPI will replace, and
//! the steps the agent takes in its order: control plane, workers, layers. Computed from
//! the two revisions alone, so it changes nothing and reads nothing.

#[path = "plan_layers.rs"]
mod plan_layers;
#[path = "plan_objects.rs"]
mod plan_objects;
#[path = "plan_text.rs"]
mod plan_text;
#[path = "plan_values.rs"]
mod plan_values;

use serde::Serialize;

use super::{ClusterRevisionSpec, OsImage};
use crate::capi::BuildError;
use crate::cluster::MachineShape;
use crate::contracts::labels::CONTROL_PLANE_POOL;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "revision {from_number} is of cluster {from}, revision {to_number} of cluster {to}; a plan compares two revisions of one cluster"
    )]
    DifferentClusters {
        from: String,
        from_number: i64,
        to: String,
        to_number: i64,
    },
    #[error(
        "revision {revision} of cluster {cluster}: layer {layer}: its values are not YAML: {message}"
    )]
    Values {
        cluster: String,
        revision: i64,
        layer: String,
        message: String,
    },
    #[error(
        "revision {revision} of cluster {cluster}: its Cluster API objects cannot be built: {source}"
    )]
    Objects {
        cluster: String,
        revision: i64,
        #[source]
        source: BuildError,
    },
}

/// A value before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change<T> {
    pub from: T,
    pub to: T,
}

impl<T: PartialEq + Clone> Change<T> {
    fn between(from: &T, to: &T) -> Option<Change<T>> {
        (from != to).then(|| Change {
            from: from.clone(),
            to: to.clone(),
        })
    }
}

/// One changed leaf of a layer's values or of the kubeadm settings, as printed (JSON
/// scalars; `<secret>` for a masked value); `from` absent when added, `to` when removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueChange {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LayerAction {
    Added,
    Removed,
    /// A newer version, or the same version with another pack archive (digest).
    Upgraded,
    /// An older version: a rollback.
    Downgraded,
    /// The same pack with other values or secrets.
    Reconfigured,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerChange {
    pub name: String,
    /// os, kernel, k8s, cni, csi or addon.
    pub layer: String,
    pub action: LayerAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_version: Option<String>,
    /// The pack's pinned digest (its content digest), when both revisions have the layer
    /// and it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Change<String>>,
    /// Changed values of a layer in both revisions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<ValueChange>,
    /// A secret value changed; which one and to what is never shown.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub secrets_changed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PoolAction {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolChange {
    /// The worker pool's name, or `control-plane`.
    pub pool: String,
    pub control_plane: bool,
    pub action: PoolAction,
    /// Machines before and after; 0 on the side where the pool is absent.
    pub count: Change<u32>,
    /// The machine shape, when the pool is in both revisions and it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<Change<MachineShape>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ObjectAction {
    Created,
    Changed,
    Deleted,
}

/// The agent's steps a plan's work falls in (never `ScaleOut`: a plan is of a later
/// revision).
pub use crate::cluster::RolloutStep;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectChange {
    /// The step that applies it.
    pub step: RolloutStep,
    pub kind: String,
    pub name: String,
    pub action: ObjectAction,
    /// For a changed object, the dotted paths of the fields that change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// Machines CAPI replaces one by one (a rolling update).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replacement {
    pub pool: String,
    pub control_plane: bool,
    /// How many machines the pool has now, every one of which is replaced.
    pub machines: u32,
    /// What changed that makes CAPI replace them ("Kubernetes version", "machine template").
    pub reasons: Vec<String>,
}

/// One step of the agent's and the work it has in this plan (none: it passes straight on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanStep {
    pub step: RolloutStep,
    pub work: Vec<String>,
}

/// What applying revision `to` does to a cluster that runs revision `from`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionPlan {
    pub cluster: String,
    pub from: i64,
    pub to: i64,
    /// The earlier revision whose content `to` republishes, when it is a rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<i64>,
    /// One line: "2 layers upgraded, 1 removed; control plane rolls (3 machines); …".
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Change<Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<Change<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_image: Option<Change<OsImage>>,
    /// The kubeadm settings the layers give (extra args by key; commands and files, whose
    /// content may be secret, only as changed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kubeadm: Vec<ValueChange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_pools: Vec<PoolChange>,
    /// Layers in the next revision's install order, then the removed ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerChange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectChange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<Replacement>,
    pub steps: Vec<PlanStep>,
}

impl RevisionPlan {
    /// The plan from revision `from` to revision `to` of one cluster (either way: a plan
    /// back to an earlier revision is a rollback's).
    pub fn between(
        from: &ClusterRevisionSpec,
        to: &ClusterRevisionSpec,
    ) -> Result<RevisionPlan, PlanError> {
        if from.cluster_name != to.cluster_name {
            return Err(PlanError::DifferentClusters {
                from: from.cluster_name.clone(),
                from_number: from.number,
                to: to.cluster_name.clone(),
                to_number: to.number,
            });
        }
        let (a, b) = (&from.desired, &to.desired);
        let objects = plan_objects::object_changes(from, to)?;
        let replaced = plan_objects::replacements(from, &objects);
        let mut plan = RevisionPlan {
            cluster: to.cluster_name.clone(),
            from: from.number,
            to: to.number,
            rollback_of: to.rollback_of,
            summary: String::new(),
            profiles: Change::between(&a.profiles, &b.profiles),
            kubernetes_version: Change::between(&a.kubernetes_version, &b.kubernetes_version),
            os_image: Change::between(&a.os, &b.os),
            kubeadm: plan_layers::kubeadm_changes(&a.kubeadm, &b.kubeadm),
            node_pools: pool_changes(from, to),
            layers: plan_layers::layer_changes(from, to)?,
            objects,
            replaced,
            steps: Vec::new(),
        };
        plan.steps = plan_text::steps(&plan);
        plan.summary = plan_text::summary(&plan);
        Ok(plan)
    }

    /// Nothing to apply: the two revisions build the same cluster.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_none()
            && self.kubernetes_version.is_none()
            && self.os_image.is_none()
            && self.kubeadm.is_empty()
            && self.node_pools.is_empty()
            && self.layers.is_empty()
            && self.objects.is_empty()
    }
}

fn pool_changes(from: &ClusterRevisionSpec, to: &ClusterRevisionSpec) -> Vec<PoolChange> {
    let (a, b) = (&from.desired.node_pools, &to.desired.node_pools);
    let mut changes = Vec::new();
    let changed = |pool: &str, control_plane: bool, count: Change<u32>, machine| PoolChange {
        pool: pool.to_string(),
        control_plane,
        action: PoolAction::Changed,
        count,
        machine,
    };
    let cp_machine = Change::between(&a.control_plane.machine, &b.control_plane.machine);
    if a.control_plane.count != b.control_plane.count || cp_machine.is_some() {
        changes.push(changed(
            CONTROL_PLANE_POOL,
            true,
            Change {
                from: a.control_plane.count,
                to: b.control_plane.count,
            },
            cp_machine,
        ));
    }
    for pool in &b.workers {
        match a.workers.iter().find(|p| p.name == pool.name) {
            None => changes.push(PoolChange {
                pool: pool.name.clone(),
                control_plane: false,
                action: PoolAction::Added,
                count: Change {
                    from: 0,
                    to: pool.count,
                },
                machine: None,
            }),
            Some(before) => {
                let machine = Change::between(&before.machine, &pool.machine);
                if before.count != pool.count || machine.is_some() {
                    changes.push(changed(
                        &pool.name,
                        false,
                        Change {
                            from: before.count,
                            to: pool.count,
                        },
                        machine,
                    ));
                }
            }
        }
    }
    for pool in a
        .workers
        .iter()
        .filter(|p| !b.workers.iter().any(|q| q.name == p.name))
    {
        changes.push(PoolChange {
            pool: pool.name.clone(),
            control_plane: false,
            action: PoolAction::Removed,
            count: Change {
                from: pool.count,
                to: 0,
            },
            machine: None,
        });
    }
    changes
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod plan_tests;
