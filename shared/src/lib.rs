//! Strata's domain model: packs, cluster profiles, their composition and constraints,
//! and the custom resource types. Pure logic with as little I/O as possible (reading a
//! pack folder and writing archives are the exceptions), so that it is unit-tested
//! without a cluster.

pub mod agent_install;
pub mod capi;
pub mod catalog;
pub mod cloud_account;
pub mod cluster;
pub mod conditions;
pub mod contracts;
pub mod crds;
pub mod finding;
pub mod kube_writer;
pub mod leader;
pub mod management_access;
pub mod pack;
pub mod pack_registry;
pub mod pivot;
pub mod profile;
pub mod provider_components;
pub mod registry;
pub mod revision;
pub mod values_merge;
pub mod version;
pub mod workload_kubeconfig;
pub mod workload_singleton;
