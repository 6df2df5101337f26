//! A simulated kubelet, in the spirit of kwok: it registers Node objects, binds pending
//! pods to its nodes (there is no scheduler unless a test asks for one), and reports the
//! pods on its nodes Running and Ready, so that Deployments, StatefulSets and DaemonSets
//! become available through the real controller-manager. No container runs.
//!
//! Its nodes behave like kubeadm's:
//!
//! - a control-plane node (labelled `node-role.kubernetes.io/control-plane` or `master`)
//!   carries the `node-role.kubernetes.io/control-plane:NoSchedule` taint;
//! - with [`KubeletSettings::cni_daemon_sets`] set (the default is the sample CNI,
//!   `calico-system/calico-node`), a node registers `Ready=False` (`KubeletNotReady`,
//!   "container runtime network not ready … cni config uninitialized") with the
//!   `node.kubernetes.io/not-ready:NoSchedule` taint, and turns Ready (the taint removed)
//!   once a pod of one of those DaemonSets is Running on it; from then on it stays
//!   network-ready, as a node keeps its CNI config. With the list empty
//!   ([`KubeletSettings::network_preinstalled`], what [`SimulatedKubelet::start`] uses) a
//!   node is Ready when it registers, as with a node image that carries its CNI;
//! - a pending pod is bound only to a node whose `NoSchedule` and `NoExecute` taints it
//!   tolerates (Kubernetes' matching: key, `Exists`/`Equal`, value, effect; an empty key
//!   with `Exists` tolerates all), a DaemonSet's pod pinned by node affinity included. The
//!   DaemonSet controller adds only the `NoExecute` not-ready/unreachable tolerations
//!   itself, so a CNI DaemonSet must tolerate `not-ready:NoSchedule`, as real ones do. A
//!   pod created with `nodeName` set skips the scheduler and its taints, as on a real node;
//! - while a node is not network-ready only hostNetwork pods run on it: any other pod
//!   stays `Pending` with its containers `ContainerCreating`, never Ready. A hostNetwork
//!   pod's IP is its node's (127.0.0.1).
//!
//! It also does the kubelet's part of deletion (a terminating pod on its node is removed),
//! keeps its nodes' leases and Ready conditions fresh so the node lifecycle controller does
//! not evict anything, and on request makes chosen pods never become ready or a node go
//! NotReady.

mod node_rules;
mod node_status;
mod pods;

pub use node_rules::{
    CONTROL_PLANE_LABEL, CONTROL_PLANE_TAINT, NETWORK_NOT_READY_MESSAGE, NOT_READY_TAINT,
    NodeReadiness, tolerates, tolerates_all,
};
pub use node_status::KUBELET_STOPPED_ANNOTATION;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::task::JoinHandle;

use node_rules::{is_control_plane, own_taints};

const FIELD_MANAGER: &str = "strata-sim-kubelet";
/// How often node leases and Ready conditions are renewed; well inside the node lifecycle
/// controller's 40-second grace period.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// A full pass over all pods, for events a watch restart may have missed.
const RESYNC: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("cannot register node {node}: {source}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
}

/// A node the simulated kubelet owns.
#[derive(Debug, Clone)]
pub struct SimNode {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `spec.providerID`, as a cloud provider would set it.
    pub provider_id: Option<String>,
    pub cpus: u32,
    pub memory_mib: u64,
}

impl SimNode {
    pub fn named(name: &str) -> Self {
        SimNode {
            name: name.into(),
            labels: BTreeMap::new(),
            provider_id: None,
            cpus: 8,
            memory_mib: 32 * 1024,
        }
    }
}

/// How the simulated kubelet's nodes come up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletSettings {
    /// The DaemonSets (namespace, name) of the cluster's CNI: a node is network-ready, and
    /// so Ready, once a pod of one of them runs on it. Empty: nodes are network-ready when
    /// they register.
    pub cni_daemon_sets: Vec<(String, String)>,
}

impl Default for KubeletSettings {
    /// A kubeadm node waiting for the sample CNI (`manifests/samples/packs/cni-calico`).
    fn default() -> Self {
        KubeletSettings {
            cni_daemon_sets: vec![("calico-system".into(), "calico-node".into())],
        }
    }
}

impl KubeletSettings {
    /// Nodes whose network is up when they register (kwok's nodes, or an image with its
    /// CNI baked in).
    pub fn network_preinstalled() -> Self {
        KubeletSettings {
            cni_daemon_sets: Vec::new(),
        }
    }
}

#[derive(Default)]
struct Faults {
    /// Pods whose name starts with one of these (per namespace) never become ready.
    never_ready: BTreeSet<(String, String)>,
    not_ready_nodes: BTreeSet<String>,
}

struct Shared {
    client: Client,
    settings: KubeletSettings,
    nodes: Mutex<Vec<SimNode>>,
    /// Nodes a CNI pod has run on.
    networked: Mutex<BTreeSet<String>>,
    faults: Mutex<Faults>,
    next_node: AtomicUsize,
}

impl Shared {
    fn network_ready(&self, node: &str) -> bool {
        self.settings.cni_daemon_sets.is_empty() || lock(&self.networked).contains(node)
    }

    fn readiness(&self, node: &str) -> NodeReadiness {
        let fault = lock(&self.faults).not_ready_nodes.contains(node);
        NodeReadiness::of(self.network_ready(node), fault)
    }

    fn own_taints(&self, node: &SimNode) -> Vec<Taint> {
        own_taints(
            is_control_plane(&node.labels),
            self.readiness(&node.name).is_ready(),
        )
    }

    /// A CNI pod runs on `node`: it is Ready from now on (unless a fault holds it).
    async fn network_up(&self, node: &str) {
        if !lock(&self.networked).insert(node.to_string()) {
            return;
        }
        tracing::info!(node, "a CNI pod runs on the node: its network is ready");
        if let Err(e) = self.publish_readiness(node).await {
            tracing::debug!(node, error = %e, "cannot report the node Ready; the heartbeat will");
        }
    }

    /// Writes the node's Ready condition and its own taints as they stand.
    async fn publish_readiness(&self, name: &str) -> Result<(), kube::Error> {
        let Some(node) = lock(&self.nodes).iter().find(|n| n.name == name).cloned() else {
            return Ok(());
        };
        node_status::set_node_ready(&self.client, name, self.readiness(name)).await?;
        node_status::sync_taints(&self.client, name, &self.own_taints(&node)).await
    }
}

/// A running simulated kubelet; it stops when dropped.
pub struct SimulatedKubelet {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimulatedKubelet {
    /// Registers `nodes`, network-ready at once
    /// ([`KubeletSettings::network_preinstalled`]), and starts serving the pods bound to
    /// them.
    pub async fn start(
        client: Client,
        nodes: Vec<SimNode>,
    ) -> Result<SimulatedKubelet, KubeletError> {
        Self::start_with(client, nodes, KubeletSettings::network_preinstalled()).await
    }

    /// Registers `nodes`, which come up as `settings` says, and starts serving the pods
    /// bound to them.
    pub async fn start_with(
        client: Client,
        nodes: Vec<SimNode>,
        settings: KubeletSettings,
    ) -> Result<SimulatedKubelet, KubeletError> {
        let shared = Arc::new(Shared {
            client,
            settings,
            nodes: Mutex::new(Vec::new()),
            networked: Mutex::new(BTreeSet::new()),
            faults: Mutex::new(Faults::default()),
            next_node: AtomicUsize::new(0),
        });
        for node in nodes {
            register_node(&shared, node).await?;
        }
        let tasks = vec![
            tokio::spawn(pods::watch_pods(shared.clone())),
            tokio::spawn(pods::resync_pods(shared.clone())),
            tokio::spawn(node_status::heartbeat(shared.clone())),
        ];
        Ok(SimulatedKubelet { shared, tasks })
    }

    /// Registers one more node.
    pub async fn add_node(&self, node: SimNode) -> Result<(), KubeletError> {
        register_node(&self.shared, node).await
    }

    /// Takes over a node another kubelet registered (the simulator that ran its machine
    /// before it moved here): its heartbeat and its pods are this kubelet's from now on.
    /// A node that was Ready keeps its network, as a node keeps its CNI config.
    pub fn adopt_node(&self, node: SimNode, network_ready: bool) {
        if self.owns(&node.name) {
            return;
        }
        if network_ready {
            lock(&self.shared.networked).insert(node.name.clone());
        }
        tracing::info!(node = %node.name, network_ready, "adopting a node another kubelet registered");
        lock(&self.shared.nodes).push(node);
    }

    /// Whether the node is one of this kubelet's.
    pub fn owns(&self, name: &str) -> bool {
        lock(&self.shared.nodes).iter().any(|n| n.name == name)
    }

    /// Removes a node: the Node object is deleted and its pods are no longer served.
    pub async fn remove_node(&self, name: &str) -> Result<(), kube::Error> {
        lock(&self.shared.nodes).retain(|n| n.name != name);
        lock(&self.shared.networked).remove(name);
        let nodes: Api<Node> = Api::all(self.shared.client.clone());
        match nodes.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn node_names(&self) -> Vec<String> {
        lock(&self.shared.nodes)
            .iter()
            .map(|n| n.name.clone())
            .collect()
    }

    /// Whether a CNI pod has run on the node (always, with the network preinstalled).
    pub fn network_ready(&self, name: &str) -> bool {
        self.shared.network_ready(name)
    }

    /// Pods in `namespace` whose name starts with `name_prefix` will run but never be Ready.
    pub fn never_ready(&self, namespace: &str, name_prefix: &str) {
        lock(&self.shared.faults)
            .never_ready
            .insert((namespace.into(), name_prefix.into()));
    }

    /// Marks a node NotReady (its heartbeat stops) until [`SimulatedKubelet::node_ready`].
    pub async fn node_not_ready(&self, name: &str) -> Result<(), kube::Error> {
        lock(&self.shared.faults)
            .not_ready_nodes
            .insert(name.into());
        self.shared.publish_readiness(name).await
    }

    /// Ends [`SimulatedKubelet::node_not_ready`]: the node is Ready again if its network is.
    pub async fn node_ready(&self, name: &str) -> Result<(), kube::Error> {
        lock(&self.shared.faults).not_ready_nodes.remove(name);
        self.shared.publish_readiness(name).await
    }
}

impl Drop for SimulatedKubelet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The simulation's locks guard plain data; a panic while holding one cannot leave it
/// half-updated, so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now() -> Time {
    Time(Timestamp::now())
}

async fn register_node(shared: &Shared, node: SimNode) -> Result<(), KubeletError> {
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let mut labels = node.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), node.name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), "amd64".into());
    labels.insert("strata.dev/simulated".into(), "true".into());
    let readiness = shared.readiness(&node.name);
    // Tainted from the first moment (as `--register-with-taints` does), so that no
    // DaemonSet or pod lands on it before the taints are there.
    let taints = own_taints(is_control_plane(&node.labels), readiness.is_ready());
    let object = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": node.name, "labels": labels },
        "spec": { "providerID": node.provider_id, "taints": taints },
    });
    let register = |source| KubeletError::Register {
        node: node.name.clone(),
        source,
    };
    nodes
        .patch(
            &node.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(register)?;
    lock(&shared.nodes).push(node.clone());
    node_status::write_node_status(&shared.client, &node, readiness)
        .await
        .map_err(register)?;
    node_status::renew_lease(&shared.client, &node.name)
        .await
        .map_err(register)?;
    Ok(())
}
