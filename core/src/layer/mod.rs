//! The pure rules of installing a cluster's layers (packs) into its workload cluster:
//! what identifies an object ([`object_key`]), which objects a layer's rendered text
//! holds and in which order they are applied ([`install_order`]), how they are tracked as one ApplySet so that what leaves a layer is
//! pruned ([`applyset`]), whether a live object still holds what its layer renders
//! ([`drift`]), when an applied object is ready ([`readiness`]), the system
//! macros in layer values ([`macros`]) and the Helm release name of a layer's chart
//! ([`release`]). No client and no I/O: the agent's installer applies these rules.
//! `docs/layers.md` is the operator's version.

pub mod applyset;
pub mod drift;
pub mod install_order;
pub mod macro_chart;
pub mod macros;
pub mod object_key;
pub mod readiness;
pub mod release;
