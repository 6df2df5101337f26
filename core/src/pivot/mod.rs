//! The pivot: moving one cluster's Cluster API objects from one Kubernetes cluster into
//! another, as `clusterctl move` does, but resumable after a crash.
//!
//! This module is the pure half. [`plan`] decides from a snapshot of objects what moves,
//! what stays (and why) and in which order; [`target_object`] shapes the copy written to the
//! target; [`content_hash`] proves a copy equals its source. The executor in the agent reads
//! the snapshot, keeps the [`journal`] and does the writes.

pub mod backup;
mod graph;
pub mod journal;
pub mod journal_parts;
pub mod journal_record;
mod objects;
mod order;
mod outside;
mod plan;
mod refs;
pub mod site_export;
pub mod site_export_parts;
mod target;

pub use objects::{
    GroupKind, MoveKind, ObjectKind, ObjectRef, OwnerRef, SourceObject, UnfollowedRef,
};
pub use outside::{WantedObject, unread_references};
pub use plan::{ExternalOwner, MovePlan, Stay, plan};
pub use target::{admitted_namespace_labels, content_hash, target_object};

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
