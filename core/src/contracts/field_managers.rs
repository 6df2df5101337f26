//! Who wrote what: the server-side apply field manager of each of Strata's writers, and the
//! controller's finalizer. Each writer owns the fields it applies under its own manager, so
//! the controller and the agent never take each other's fields.

/// Everything the controller writes (the CAPI objects, the agent's install, its own status
/// fields and conditions).
pub const CONTROLLER_FIELD_MANAGER: &str = "strata.dev/controller";
/// Everything the agent writes, in its own cluster and in the management cluster (its
/// conditions, node counts and reports on the WorkloadCluster's status).
pub const AGENT_FIELD_MANAGER: &str = "strata.dev/agent";
/// What `strata` commands write (the link Secret `strata cluster rekey` carries to a site).
pub const CLI_FIELD_MANAGER: &str = "strata.dev/cli";

/// The controller's finalizer on WorkloadClusters: it holds a cluster until the controller
/// has torn it down.
pub const CONTROLLER_FINALIZER: &str = "strata.dev/controller";
