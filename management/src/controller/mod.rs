//! `strata controller`: turns each `WorkloadCluster` into its revision and Cluster API
//! objects, and once CAPI has brought up the first control-plane node, installs the agent
//! into the new cluster (steps 1–4 of the order of operations).
//!
//! One reconcile is a pipeline, a module per step: [`dereference`] → [`validate`] →
//! [`resolve`] → [`apply`] (revision, identities, CAPI objects built by [`build`]) →
//! [`observe`] → [`install`] the agent; it ends in an [`outcome`], from which the status and
//! the requeue are derived ([`reconcile`] runs it; [`deletion`] is the other path). The pure
//! parts live in `strata-shared`. Only the replica holding the `strata-controller` Lease
//! reconciles.

mod agent_installer;
mod apply;
mod build;
mod cluster_story;
mod context;
mod credentials;
mod deletion;
mod dereference;
mod failure_reason;
mod finalizer;
mod fleet_gate;
mod health;
mod install;
pub(crate) mod ledger;
mod link;
mod link_watch;
mod metrics;
pub(crate) mod namespaces;
mod observe;
mod outcome;
mod packs;
mod providers;
mod recent_writes;
mod reconcile;
mod resolve;
mod revisions;
mod run;
mod site_registries;
mod status;
mod validate;
mod wakes;
mod workload_access;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use run::run;

/// `strata controller` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ControllerArgs {
    /// The management cluster's kubeconfig; else $KUBECONFIG, ~/.kube/config or the
    /// in-cluster service account.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Watch WorkloadClusters in this namespace only; all namespaces when unset.
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Where shared ClusterProfiles, PackRegistries and the leader Lease live; profiles
    /// and registries in a cluster's own namespace win over these.
    #[arg(long, env = "POD_NAMESPACE", default_value = "strata-system")]
    pub system_namespace: String,
    /// Clusters reconciled at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
    /// The agent image installed into workload clusters; changing it rolls the agents.
    #[arg(long, default_value = concat!("strata-agent:", env!("CARGO_PKG_VERSION")))]
    pub agent_image: String,
    /// The PackRegistry (in the system namespace) that serves the provider packs: the
    /// Cluster API providers of the clusterctl inventory here, as packs
    /// (docs/providers.md). The default registry when unset.
    #[arg(long, value_name = "NAME")]
    pub provider_registry: Option<String>,
    /// The management API server's URL as the agents reach it; the kubeconfig's server
    /// when unset (inside a cluster that is a service address agents cannot reach: set it).
    #[arg(long, value_name = "URL")]
    pub management_server: Option<String>,
    /// The CA (PEM) of that server, for the agents; the kubeconfig's when unset.
    #[arg(long, value_name = "FILE")]
    pub management_ca_file: Option<PathBuf>,
    /// How long an agent's management token lives (600 to 604800); a new one is minted
    /// when a third is left, and the agent fetches it.
    #[arg(long, default_value_t = 86_400, value_name = "SECONDS", value_parser = clap::value_parser!(i64).range(600..=604_800))]
    pub agent_token_seconds: i64,
    /// After how long without a report an agent counts as disconnected (AgentConnected=False).
    #[arg(long, default_value_t = 90, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(10..))]
    pub agent_silence_seconds: u64,
    /// The controller's own service account (in the system namespace), which it binds to
    /// its writes in each namespace it manages.
    #[arg(long, env = "POD_SERVICE_ACCOUNT", default_value = "strata-controller")]
    pub service_account: String,
    /// Where CAPV reads VSphereClusterIdentity secrets.
    #[arg(long, default_value = "capv-system")]
    pub vsphere_provider_namespace: String,
    /// Where CAPA reads AWSClusterStaticIdentity secrets.
    #[arg(long, default_value = "capa-system")]
    pub aws_provider_namespace: String,
    /// /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub http_address: SocketAddr,
    /// Reconcile a cluster at least this often, even when nothing it watches changed.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub resync_seconds: u64,
    /// Turn off leader election (one replica only).
    #[arg(long)]
    pub no_leader_election: bool,
    /// This replica's identity in the Lease; $POD_NAME, else the host name and pid.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// The pack cache folder; the user cache folder when unset.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}
