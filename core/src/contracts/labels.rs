//! Every label and annotation key Strata writes or reads, each with who writes it and who
//! reads it. A key is defined here once; the code on both sides names the constant.
//!
//! Strata has made no release, so no stored object carries a key this module no longer
//! defines (`strata.dev/cluster-namespace`, `strata.dev/managed-by`,
//! `strata.dev/owner-namespace` and `strata.dev/owner-name` were renamed before any
//! release): nothing is migrated.

// Strata's own keys.

/// On a cluster's objects namespace, the cluster's CAPI `Cluster` and every object of the
/// agent in the management cluster: the WorkloadCluster's name. Written by the controller;
/// read by the controller (whether a namespace or an object is this cluster's before it
/// adopts or deletes it) and by people.
pub const WORKLOAD_CLUSTER_LABEL: &str = "strata.dev/workload-cluster";
/// Beside [`WORKLOAD_CLUSTER_LABEL`], on the same objects: the WorkloadCluster's namespace.
/// Written by the controller; read by the controller (its watch on CAPI `Cluster`s finds the
/// WorkloadCluster by it, and deletion removes only what carries both labels).
pub const WORKLOAD_CLUSTER_NAMESPACE_LABEL: &str = "strata.dev/workload-cluster-namespace";
/// On a cluster's objects namespace and its identity objects: the objects namespace's own
/// name. Written by the controller (and the identity builder); read by CAPV, whose
/// `VSphereClusterIdentity` admits namespaces by label selector only (Kubernetes 1.20 has no
/// `kubernetes.io/metadata.name`), and by the move, which gives the target namespace the
/// labels its identities select.
pub const OBJECTS_NAMESPACE_LABEL: &str = "strata.dev/objects-namespace";
/// On everything Strata creates outside a cluster's CAPI objects (the agent's and the
/// providers' objects, identities, static roles, objects namespaces), valued [`MANAGED_BY`].
/// Written by the controller and the agent; read by people and tools.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "strata";
/// On the agent's and the providers' objects in a workload cluster: the application's name.
/// Written by the controller and the agent; read by their Deployments' selectors.
pub const APP_NAME_LABEL: &str = "app.kubernetes.io/name";

/// On the CAPI `Cluster`: the cloud (`vsphere`, `aws`, `azure`, `sim`). Written by the
/// builders; read by people.
pub const CLOUD_TYPE_LABEL: &str = "strata.dev/cloud-type";
/// On the machines of a pool (their template's labels): the pool's name, or
/// [`CONTROL_PLANE_POOL`]. Written by the builders; read by people and the simulated cloud.
pub const NODE_POOL_LABEL: &str = "strata.dev/node-pool";
/// The [`NODE_POOL_LABEL`] value of control-plane machines.
pub const CONTROL_PLANE_POOL: &str = "control-plane";
/// On the CAPI `Cluster`: the number of the revision it was built from. Written by the
/// builders; read by people and tests.
pub const REVISION_ANNOTATION: &str = "strata.dev/revision";
/// On the CAPI `Cluster`: the profiles of that revision, comma-separated. Written by the
/// builders; read by people.
pub const PROFILES_ANNOTATION: &str = "strata.dev/profiles";
/// On a cluster-scoped identity (vSphere, AWS): the namespace of the Secret it names, which
/// the identity itself does not say. Written by the identity builder; read by the move, to
/// copy the Secret where the workload cluster's provider looks for it.
pub const SECRET_NAMESPACE_ANNOTATION: &str = "strata.dev/secret-namespace";

/// On every `ClusterRevision`: its cluster's name. Written by the controller; read by the
/// controller and the agent, which list a cluster's revisions by it.
pub const REVISION_CLUSTER_LABEL: &str = "strata.dev/cluster";
/// On every `ClusterRevision`: its number. Written by the controller; read by people.
pub const REVISION_NUMBER_LABEL: &str = "strata.dev/revision";

/// On both Secrets of the agent's management access (the credential Secret and the link
/// Secret): when the token expires (RFC 3339). Written by the controller (and by the agent
/// when it takes a renewed token); read by the agent and by `strata cluster rekey`.
pub const TOKEN_EXPIRES_ANNOTATION: &str = "strata.dev/token-expires";

/// On the source CAPI `Cluster` a move paused: the cluster's name. Written by the move (the
/// agent); read by a resumed move, which so knows the pause is its own and not an operator's.
pub const PAUSED_BY_MOVE_ANNOTATION: &str = "strata.dev/paused-by-move";

// The ledger: the controller's decisions, on the objects namespace (see
// `crate::cluster::ledger`). Only the controller writes them; the agent reads them and may
// not write the namespace.

/// `granted`: the agent may take the CAPI objects; `returned`: they are back for the
/// cluster's deletion; `reclaimed`: an operator restored them from the site's export and gave
/// them back to the controller (`strata cluster reclaim`). Read by the controller and the
/// agent.
pub const PIVOT_ANNOTATION: &str = "strata.dev/pivot";
/// Which pivot of the cluster this is: absent for the first, `2` after the first reclaim,
/// and so on. Read by the controller, which hands it to the agent it installs; the agent
/// keeps a move journal of an earlier round aside instead of resuming it.
pub const PIVOT_ROUND_ANNOTATION: &str = "strata.dev/pivot-round";
/// On each part ConfigMap of a move journal too large for one (see
/// `crate::pivot::journal_parts`): the journal it belongs to (its ConfigMap's name, or a
/// digest of a name too long for a label). Written and read by the agent's journal store.
pub const JOURNAL_PART_OF_LABEL: &str = "strata.dev/journal-part-of";
/// On each journal part: the round of the journal it belongs to.
pub const JOURNAL_PART_ROUND_LABEL: &str = "strata.dev/journal-round";
/// On each journal part: which version of the journal its writer replaced (a digest of the
/// resourceVersion, `new` for a first write); tells an abandoned part from one a writer may
/// still commit.
pub const JOURNAL_PART_BASE_LABEL: &str = "strata.dev/journal-base";
/// `decided`: the cluster is deleted where it is; no move may start. Read by the controller
/// and the agent.
pub const DELETION_ANNOTATION: &str = "strata.dev/deletion";
/// The controller applied the CAPI objects once and never creates them again. Read by the
/// controller.
pub const OBJECTS_APPLIED_ANNOTATION: &str = "strata.dev/objects-applied";
/// The workload API server the cluster's kubeconfig named when the controller first used
/// it. Read by the controller.
pub const WORKLOAD_SERVER_ANNOTATION: &str = "strata.dev/workload-server";
/// The SHA-256 of the workload CA that kubeconfig carried then. Read by the controller.
pub const WORKLOAD_CA_ANNOTATION: &str = "strata.dev/workload-ca-sha256";

// Cluster API's keys, as Strata writes and reads them.

/// On every CAPI object of a cluster: the CAPI `Cluster`'s name. Written by the builders
/// (and by CAPI); read by CAPI, by the move (the Secrets CAPI made for the cluster belong to
/// it) and by the agent (the cluster's Machines).
pub const CAPI_CLUSTER_NAME_LABEL: &str = "cluster.x-k8s.io/cluster-name";
/// On a `MachineDeployment`'s selector and machines: its name. Written by the builders; read
/// by CAPI.
pub const CAPI_DEPLOYMENT_NAME_LABEL: &str = "cluster.x-k8s.io/deployment-name";

// clusterctl's keys, which the move honours as `clusterctl move` does.

/// On a CRD: its kind belongs to Cluster API and is discovered for moves (any value). Set
/// by the providers; read by the agent (which kinds move, which CRDs it copies).
pub const CLUSTERCTL_LABEL: &str = "clusterctl.cluster.x-k8s.io";
/// On an object or a CRD: move the object(s) even though no cluster owns them. Read by the
/// move.
pub const MOVE_LABEL: &str = "clusterctl.cluster.x-k8s.io/move";
/// On an object or a CRD: move the object(s) together with everything they own. Written by
/// the identity builder (Azure's identity and Secret); read by the move.
pub const MOVE_HIERARCHY_LABEL: &str = "clusterctl.cluster.x-k8s.io/move-hierarchy";
/// Set by the move on a source object just before it deletes it, so that its controller's
/// finalizer lets it go without tearing down the infrastructure it describes. Read by the
/// providers.
pub const DELETE_FOR_MOVE_ANNOTATION: &str = "clusterctl.cluster.x-k8s.io/delete-for-move";
/// Set by a provider still working on an object: the move waits while any object carries it.
pub const BLOCK_MOVE_ANNOTATION: &str = "clusterctl.cluster.x-k8s.io/block-move";
