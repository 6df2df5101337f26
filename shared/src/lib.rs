//! Strata's adapters: the code of the domain that does I/O. The registry client and its
//! cache, the bounded kube writer, the lease loop, clients for workload clusters and the
//! management cluster, the agent's install objects that carry a kubeconfig, and rendering
//! packs with helm.
//!
//! The pure domain (packs, profiles, revisions, CAPI builders, the move plan, contracts, CRD
//! types) is `strata-core`; it is re-exported here under its old paths, so that
//! `strata_shared::pack::...` and the like keep working.

pub use strata_core::{
    bounded_text, capi, catalog, cloud_account, cluster, conditions, contracts, crd, finding,
    layer, pack, pack_registry, pivot, profile, provider, revision, values_merge, version,
    workload_singleton,
};

pub mod agent_install;
pub mod chart_release;
pub mod helm_cli;
pub mod journal_maps;
pub mod kube_writer;
pub mod layer_apply;
pub mod leader;
pub mod management_access;
pub mod pack_render;
pub mod probe_endpoints;
pub mod registry;
pub mod site_export_fetch;
pub mod workload_kubeconfig;
