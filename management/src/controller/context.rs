//! What every reconcile shares: the client, the settings, the metrics, the pack resolver.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::runtime::reflector::Store;
use strata_shared::cluster::ClusterCloud;
use strata_shared::kube_writer::KubeWriter;
use strata_shared::pack_registry::PackRegistry;
use strata_shared::profile::ClusterProfile;

use super::cluster_story::ClusterStory;
use super::fleet_gate::FleetGate;
use super::link_watch::LinkWatch;
use super::metrics::Metrics;
use super::packs::PackResolver;
use super::providers::ProviderInventoryReader;
use super::recent_writes::RecentWrites;

/// Every write is bounded: a hung apiserver must not hold a reconcile forever.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings from the command line, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub system_namespace: String,
    pub agent_image: String,
    pub management_server: String,
    pub management_ca_pem: String,
    pub agent_token_seconds: i64,
    /// The longest silence of an agent that still counts as connected.
    pub agent_silence: Duration,
    /// The controller's service account in the system namespace.
    pub controller_account: String,
    pub vsphere_provider_namespace: String,
    pub aws_provider_namespace: String,
    pub resync: Duration,
    /// The PackRegistry provider packs come from; the default registry when unset.
    pub provider_registry: Option<String>,
}

impl Settings {
    /// Where the provider of `cloud` reads its identity Secrets, for clouds whose identity
    /// is cluster-scoped; None when the Secret lives beside the cluster (Azure) or there is
    /// none (sim).
    pub fn provider_namespace(&self, cloud: ClusterCloud) -> Option<&str> {
        match cloud {
            ClusterCloud::Vsphere => Some(&self.vsphere_provider_namespace),
            ClusterCloud::Aws => Some(&self.aws_provider_namespace),
            ClusterCloud::Azure | ClusterCloud::Sim => None,
        }
    }
}

pub struct Context {
    /// For watches, discovery and events; every other call goes through `writer`.
    pub client: Client,
    /// The management cluster, under the controller's field manager and [`WRITE_TIMEOUT`].
    pub writer: KubeWriter,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub packs: PackResolver,
    /// The management cluster's clusterctl inventory, read at most twice a minute.
    pub provider_inventory: ProviderInventoryReader,
    /// Every ClusterProfile and PackRegistry, kept current by watches: read by every
    /// reconcile, so not listed by every reconcile.
    pub profiles: Store<ClusterProfile>,
    pub registries: Store<PackRegistry>,
    /// When each agent's report last changed.
    pub link: LinkWatch,
    /// The rollout gate of the profiles' policies.
    pub fleet: FleetGate,
    /// Each cluster's phases, failures and recoveries, as Events.
    pub story: ClusterStory,
    /// What passes wrote lately, so that the same write is not sent again and again.
    pub recent: RecentWrites,
}
