//! A simulated kubelet, in the spirit of kwok: it registers Node objects, binds pending
//! pods to its nodes (there is no scheduler unless a test asks for one), and reports the
//! pods on its nodes Running and Ready, so that Deployments, StatefulSets and DaemonSets
//! become available through the real controller-manager. No container runs.
//!
//! It also does the kubelet's part of deletion (a terminating pod on its node is removed),
//! keeps its nodes' leases and Ready conditions fresh so the node lifecycle controller does
//! not evict anything, and on request makes chosen pods never become ready or a node go
//! NotReady.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;

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

#[derive(Default)]
struct Faults {
    /// Pods whose name starts with one of these (per namespace) never become ready.
    never_ready: BTreeSet<(String, String)>,
    not_ready_nodes: BTreeSet<String>,
}

struct Shared {
    client: Client,
    nodes: Mutex<Vec<SimNode>>,
    faults: Mutex<Faults>,
    next_node: AtomicUsize,
}

/// A running simulated kubelet; it stops when dropped.
pub struct SimulatedKubelet {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimulatedKubelet {
    /// Registers `nodes` and starts serving the pods bound to them.
    pub async fn start(
        client: Client,
        nodes: Vec<SimNode>,
    ) -> Result<SimulatedKubelet, KubeletError> {
        let shared = Arc::new(Shared {
            client,
            nodes: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
            next_node: AtomicUsize::new(0),
        });
        for node in nodes {
            register_node(&shared, node).await?;
        }
        let tasks = vec![
            tokio::spawn(watch_pods(shared.clone())),
            tokio::spawn(resync_pods(shared.clone())),
            tokio::spawn(heartbeat(shared.clone())),
        ];
        Ok(SimulatedKubelet { shared, tasks })
    }

    /// Registers one more node.
    pub async fn add_node(&self, node: SimNode) -> Result<(), KubeletError> {
        register_node(&self.shared, node).await
    }

    /// Removes a node: the Node object is deleted and its pods are no longer served.
    pub async fn remove_node(&self, name: &str) -> Result<(), kube::Error> {
        lock(&self.shared.nodes).retain(|n| n.name != name);
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
        set_node_ready(&self.shared.client, name, false).await
    }

    pub async fn node_ready(&self, name: &str) -> Result<(), kube::Error> {
        lock(&self.shared.faults).not_ready_nodes.remove(name);
        set_node_ready(&self.shared.client, name, true).await
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
    let object = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": node.name, "labels": labels },
        "spec": { "providerID": node.provider_id },
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
    write_node_status(&shared.client, &node, true)
        .await
        .map_err(register)?;
    renew_lease(&shared.client, &node.name)
        .await
        .map_err(register)?;
    Ok(())
}

async fn write_node_status(
    client: &Client,
    node: &SimNode,
    ready: bool,
) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let capacity = json!({
        "cpu": node.cpus.to_string(),
        "memory": format!("{}Mi", node.memory_mib),
        "pods": "110",
        "ephemeral-storage": "100Gi",
    });
    let status = json!({
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": node_conditions(ready),
            "addresses": [
                { "type": "InternalIP", "address": "127.0.0.1" },
                { "type": "Hostname", "address": node.name },
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.20.2",
                "kubeProxyVersion": "v1.20.2",
                "containerRuntimeVersion": "strata-sim://1",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "simulated",
                "kernelVersion": "simulated",
                "machineID": node.name,
                "systemUUID": node.name,
                "bootID": node.name,
            },
        }
    });
    nodes
        .patch_status(&node.name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map(|_| ())
}

fn node_conditions(ready: bool) -> serde_json::Value {
    let now = now();
    let fine = |kind: &str, reason: &str| json!({ "type": kind, "status": "False", "reason": reason, "lastHeartbeatTime": now, "lastTransitionTime": now });
    json!([
        {
            "type": "Ready",
            "status": if ready { "True" } else { "False" },
            "reason": if ready { "KubeletReady" } else { "KubeletNotReady" },
            "message": if ready { "simulated kubelet is posting ready status" } else { "simulated fault: node not ready" },
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        },
        fine("MemoryPressure", "KubeletHasSufficientMemory"),
        fine("DiskPressure", "KubeletHasNoDiskPressure"),
        fine("PIDPressure", "KubeletHasSufficientPID"),
    ])
}

async fn set_node_ready(client: &Client, name: &str, ready: bool) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({ "status": { "conditions": node_conditions(ready) } });
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map(|_| ())
}

async fn renew_lease(client: &Client, node: &str) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(node.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.into()),
            lease_duration_seconds: Some(40),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..LeaseSpec::default()
        }),
    };
    leases
        .patch(
            node,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&lease),
        )
        .await
        .map(|_| ())
}

async fn heartbeat(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        let nodes = lock(&shared.nodes).clone();
        for node in nodes {
            if lock(&shared.faults).not_ready_nodes.contains(&node.name) {
                continue;
            }
            if let Err(e) = renew_lease(&shared.client, &node.name).await {
                tracing::debug!(node = %node.name, error = %e, "cannot renew the node lease");
            }
            if let Err(e) = set_node_ready(&shared.client, &node.name, true).await {
                tracing::debug!(node = %node.name, error = %e, "cannot refresh the node status");
            }
        }
    }
}

async fn watch_pods(shared: Arc<Shared>) {
    let pods: Api<Pod> = Api::all(shared.client.clone());
    let mut stream = watcher(pods, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                serve_pod(&shared, pod).await
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "pod watch error; the watcher retries");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn resync_pods(shared: Arc<Shared>) {
    let pods: Api<Pod> = Api::all(shared.client.clone());
    loop {
        tokio::time::sleep(RESYNC).await;
        if let Ok(list) = pods.list(&Default::default()).await {
            for pod in list {
                serve_pod(&shared, pod).await;
            }
        }
    }
}

/// Moves one pod one step along its life: bind it, report it running, or finish its
/// deletion. Errors are logged; the next event or resync tries again.
async fn serve_pod(shared: &Shared, pod: Pod) {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let result = match node_name {
        None if pod.metadata.deletion_timestamp.is_none() => {
            bind(shared, &pod, &namespace, &name).await
        }
        None => Ok(()),
        Some(node) if !lock(&shared.nodes).iter().any(|n| n.name == node) => Ok(()),
        Some(_) if pod.metadata.deletion_timestamp.is_some() => {
            finish_deletion(shared, &namespace, &name).await
        }
        Some(node) => report_running(shared, &pod, &namespace, &name, &node).await,
    };
    if let Err(e) = result {
        match e {
            // The pod changed or went away meanwhile; its next event brings the new state.
            kube::Error::Api(ref api) if api.code == 404 || api.code == 409 => {}
            other => {
                tracing::debug!(pod = %format!("{namespace}/{name}"), error = %other, "cannot serve pod")
            }
        }
    }
}

/// Picks a node for a pending pod: the one its node affinity names (DaemonSet pods),
/// else one whose labels match its nodeSelector, round-robin among ready nodes.
fn choose_node(shared: &Shared, pod: &Pod) -> Option<String> {
    let nodes = lock(&shared.nodes).clone();
    let not_ready = lock(&shared.faults).not_ready_nodes.clone();
    let spec = pod.spec.as_ref()?;
    let pinned: Option<Vec<String>> = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|selector| {
            selector
                .node_selector_terms
                .iter()
                .flat_map(|term| term.match_fields.iter().flatten())
                .filter(|f| f.key == "metadata.name" && f.operator == "In")
                .flat_map(|f| f.values.clone().unwrap_or_default())
                .collect()
        })
        .filter(|names: &Vec<String>| !names.is_empty());
    let selector = spec.node_selector.clone().unwrap_or_default();
    let candidates: Vec<&SimNode> = nodes
        .iter()
        .filter(|n| !not_ready.contains(&n.name))
        .filter(|n| pinned.as_ref().is_none_or(|names| names.contains(&n.name)))
        .filter(|n| {
            selector.iter().all(|(k, v)| {
                n.labels.get(k) == Some(v)
                    || (k == "kubernetes.io/hostname" && v == &n.name)
                    || (k == "kubernetes.io/os" && v == "linux")
            })
        })
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let index = shared.next_node.fetch_add(1, Ordering::Relaxed) % candidates.len();
    Some(candidates[index].name.clone())
}

async fn bind(shared: &Shared, pod: &Pod, namespace: &str, name: &str) -> Result<(), kube::Error> {
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .is_some_and(|s| s != "default-scheduler")
    {
        return Ok(());
    }
    let Some(node) = choose_node(shared, pod) else {
        return Ok(());
    };
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), namespace);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node),
            ..ObjectReference::default()
        },
    };
    let _: serde_json::Value = pods
        .create_subresource("binding", name, &PostParams::default(), &binding)
        .await?;
    Ok(())
}

fn pod_ip(name: &str) -> String {
    // A stable fake address per pod; nothing routes to it.
    let hash = name
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("10.244.{}.{}", (hash >> 8) % 250 + 1, hash % 250 + 2)
}

async fn report_running(
    shared: &Shared,
    pod: &Pod,
    namespace: &str,
    name: &str,
    node: &str,
) -> Result<(), kube::Error> {
    let never_ready = lock(&shared.faults)
        .never_ready
        .iter()
        .any(|(ns, prefix)| ns == namespace && name.starts_with(prefix.as_str()));
    let status = pod.status.as_ref();
    let already_running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
    let ready_now = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    if already_running && ready_now != never_ready {
        return Ok(());
    }
    let ready = if never_ready { "False" } else { "True" };
    let now = now();
    let containers: Vec<serde_json::Value> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "image": c.image.clone().unwrap_or_default(),
                "imageID": format!("strata-sim://{}", c.image.clone().unwrap_or_default()),
                "containerID": format!("strata-sim://{namespace}/{name}/{}", c.name),
                "ready": !never_ready,
                "started": true,
                "restartCount": 0,
                "state": { "running": { "startedAt": now } },
            })
        })
        .collect();
    let patch = json!({
        "status": {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": pod_ip(name),
            "podIPs": [{ "ip": pod_ip(name) }],
            "startTime": now,
            "conditions": [
                { "type": "Initialized", "status": "True", "lastTransitionTime": now },
                { "type": "PodScheduled", "status": "True", "lastTransitionTime": now },
                { "type": "ContainersReady", "status": ready, "lastTransitionTime": now },
                { "type": "Ready", "status": ready, "lastTransitionTime": now },
            ],
            "containerStatuses": containers,
        }
    });
    tracing::debug!(pod = %format!("{namespace}/{name}"), node, ready, "pod running");
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), namespace);
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

async fn finish_deletion(shared: &Shared, namespace: &str, name: &str) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), namespace);
    pods.delete(name, &DeleteParams::default().grace_period(0))
        .await
        .map(|_| ())
}
