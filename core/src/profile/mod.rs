//! Cluster profiles: ordered stacks of layers, each layer one pack.
//!
//! A profile is `infra` (OS, optional kernel, Kubernetes, CNI, CSI), `add-on` (add-on
//! layers only) or `full` (both). A cluster uses one infra or full profile plus any add-on
//! profiles; [`compose`] turns them into one install-ordered stack with merged values.

pub mod compose;
pub mod constraints;
pub mod fleet_rollout;
pub mod layer_values;
pub mod resource_demand;
pub mod rules;
pub mod selection;

pub use crate::crd::cluster_profile::*;
pub use compose::{ComposedStack, StackLayer, compose};
pub use fleet_rollout::{
    APPROVAL_ANNOTATION, FleetMember, Hold, RolloutGate, RolloutPolicy, RolloutStrategy,
};
pub use selection::{SelectionError, select_profile, versions_of};

#[cfg(test)]
pub(crate) mod fixtures;
