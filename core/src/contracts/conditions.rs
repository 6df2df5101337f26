//! The condition types on a WorkloadCluster's status, and the reasons that cross the crates,
//! each with its one writer. Under server-side apply the controller and the agent each own
//! the conditions they send (`status.conditions` is a map keyed by type), so a condition
//! has exactly one writer; the other side reads it, and never decides from it what only its
//! own records may decide (see `crate::cluster::ledger`).

// Written by the controller.

/// Whether the spec and everything it names make a cluster.
pub const VALID: &str = "Valid";
/// Whether the revision of the spec is published in the objects namespace.
pub const REVISION_PUBLISHED: &str = "RevisionPublished";
/// RevisionPublished=False: the upgrade rules refuse the move from the running revision to
/// the spec's (the message names each rule, what was found and what to do); nothing is
/// published and the cluster stays on its revision.
pub const REASON_UPGRADE_REFUSED: &str = "UpgradeRefused";
/// Whether the CAPI objects of the revision are applied.
pub const OBJECTS_APPLIED: &str = "ObjectsApplied";
/// Whether CAPI has brought up the first control-plane node.
pub const CONTROL_PLANE_INITIALIZED: &str = "ControlPlaneInitialized";
/// Whether the agent runs in the workload cluster.
pub const AGENT_INSTALLED: &str = "AgentInstalled";
/// Whether the agent reports: False once it has been silent longer than the controller's
/// threshold, judged on the controller's clock.
pub const AGENT_CONNECTED: &str = "AgentConnected";
/// Where a deletion is.
pub const DELETING: &str = "Deleting";
/// The summary: whether the cluster is where it should be.
pub const READY: &str = "Ready";

// Written by the agent (field manager `strata.dev/agent`). It is the site's report, shown to
// people; the controller reads [`REASON_MOVE_REQUESTED`] as a request and
// [`REASON_MOVED_BACK`] as a claim it checks, and decides from its own ledger.

/// Where the CAPI objects are.
pub const PIVOTED: &str = "Pivoted";
/// Pivoted=False: the agent installs the Cluster API providers in its cluster (the
/// message says which, or what stops it); it asks for the move once they are ready.
pub const REASON_INSTALLING_PROVIDERS: &str = "InstallingProviders";
/// Pivoted=False: the agent is ready to move the objects and waits for the controller's grant.
pub const REASON_MOVE_REQUESTED: &str = "MoveRequested";
/// Pivoted=False: the objects are moving into the workload cluster.
pub const REASON_MOVING: &str = "Moving";
/// Pivoted=True: the objects live in the workload cluster.
pub const REASON_MOVED: &str = "Moved";
/// Pivoted=True: the cluster is being deleted and the objects are moving back.
pub const REASON_MOVING_BACK: &str = "MovingBack";
/// Pivoted=False: the objects are back in the management cluster, for CAPI there to
/// delete the cluster.
pub const REASON_MOVED_BACK: &str = "MovedBack";
/// A move stopped on an error (the message says which object and why). The agent retries;
/// the condition stays until the move ends (False for a pivot, True for a move back, since
/// the objects are still partly in the workload cluster).
pub const REASON_MOVE_STOPPED: &str = "MoveStopped";
