//! The pivot: moving one cluster's Cluster API objects from one Kubernetes cluster into
//! another, as `clusterctl move` does, but resumable after a crash.
//!
//! This module is the pure half. [`plan`] decides from a snapshot of objects what moves,
//! what stays (and why) and in which order; [`target_object`] shapes the copy written to the
//! target; [`content_hash`] proves a copy equals its source. The executor in the agent reads
//! the snapshot, keeps the [`journal`] and does the writes.

mod graph;
pub mod journal;
pub mod journal_record;
mod objects;
mod order;
mod outside;
mod plan;
mod refs;
mod target;

pub use objects::{GroupKind, MoveKind, ObjectKind, ObjectRef, OwnerRef, SourceObject};
pub use outside::{WantedObject, unread_references};
pub use plan::{ExternalOwner, MovePlan, Stay, UnfollowedRef, plan};
pub use target::{admitted_namespace_labels, content_hash, target_object};

/// On a CRD: its kind belongs to Cluster API and is discovered for moves (any value).
pub const CLUSTERCTL_LABEL: &str = "clusterctl.cluster.x-k8s.io";
/// On an object or a CRD: move the object(s) even though no cluster owns them.
pub const MOVE_LABEL: &str = "clusterctl.cluster.x-k8s.io/move";
/// On an object or a CRD: move the object(s) together with everything they own.
pub const MOVE_HIERARCHY_LABEL: &str = crate::capi::MOVE_HIERARCHY_LABEL;
/// Set on a source object just before it is deleted, so that its controller's finalizer
/// lets it go without tearing down the infrastructure it describes.
pub const DELETE_FOR_MOVE_ANNOTATION: &str = "clusterctl.cluster.x-k8s.io/delete-for-move";
/// While any object carries it, a provider is still working and the move must wait.
pub const BLOCK_MOVE_ANNOTATION: &str = "clusterctl.cluster.x-k8s.io/block-move";

/// Why a move cannot be planned or an object cannot be copied. Objects are named as
/// `Kind namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "Cluster {namespace}/{name} was not found among the {objects_read} objects read from namespace {namespace}"
    )]
    ClusterNotFound {
        namespace: String,
        name: String,
        objects_read: usize,
    },
    #[error("{object}: {field} is missing or not a string")]
    MissingField { object: String, field: &'static str },
    #[error("uid {uid} is carried by both {first} and {second}; the snapshot is inconsistent")]
    DuplicateUid {
        uid: String,
        first: String,
        second: String,
    },
    #[error(
        "{cluster} is owned by {owner}, which does not move with it; the Cluster cannot move without its owner"
    )]
    ClusterOwnerStays { cluster: String, owner: String },
    #[error(
        "owner references of the objects to move form a cycle, so none of them can be created first: {}",
        objects.join(", ")
    )]
    OwnershipCycle { objects: Vec<String> },
    #[error(
        "{object}: its owner {owner} has no uid in the target yet; create the owner first (or map it, if it is not moved)"
    )]
    OwnerNotInTarget { object: String, owner: String },
    #[error("{object}: the object as read is not a JSON object")]
    NotAnObject { object: String },
    #[error("CRD {crd} has no version marked as the storage version")]
    NoStorageVersion { crd: String },
}
