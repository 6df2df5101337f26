//! `ClusterRevision`: the resolved desired state of a cluster, published immutable and
//! numbered in the cluster's own namespace. Every layer is pinned by digest with its
//! merged values; node pools, network, placement, Kubernetes version and OS image are
//! decided. The controller builds the CAPI objects from it, and the agent, which can read
//! nothing but its cluster's namespace, works from it after the pivot. A change of intent
//! publishes the next number; an unchanged intent is recognised by its content hash.

mod kubeadm_values;
mod plan;
mod resolve;
mod upgrade_rules;
mod validate;

pub use crate::crd::cluster_revision::*;

pub use plan::{
    Change, LayerAction, LayerChange, ObjectAction, ObjectChange, PlanError, PlanStep, PoolAction,
    PoolChange, Replacement, RevisionPlan, RolloutStep, ValueChange,
};
pub use resolve::{content_hash, desired_state, revision_name};
pub use upgrade_rules::{
    UpgradeConstraint, UpgradeRefused, UpgradeRule, UpgradeViolation, check_upgrade,
};
pub use validate::{validate_account, validate_placement};
