//! Strata's pure domain: packs, cluster profiles, their composition and constraints,
//! revisions, the Cluster API objects built per cloud, the move plan and its journal, the
//! contracts between the crates (labels, names, typed views of CAPI objects) and the custom
//! resource types.
//!
//! Nothing here talks to a network or needs an async runtime, so all of it is unit-tested
//! without a cluster; `tests/no_io_dependencies.rs` fails if a client or runtime crate
//! arrives among the dependencies. Reading a pack folder and writing pack archives are the
//! file-system exceptions. The adapters that do I/O (registry client and cache, the bounded
//! kube writer, the lease loop, kube clients) are in `strata-shared`.

pub mod bounded_text;
pub mod capi;
pub mod catalog;
pub mod cluster;
pub mod conditions;
pub mod contracts;
pub mod crd;
pub mod finding;
pub mod layer;
pub mod pack;
pub mod pivot;
pub mod profile;
pub mod provider;
pub mod quantity;
pub mod revision;
pub mod values_merge;
pub mod version;
pub mod workload_singleton;

// The custom resource types' older paths.
pub use crd::{cloud_account, pack_registry};
