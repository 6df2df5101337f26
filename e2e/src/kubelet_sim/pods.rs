//! The simulated kubelet's pods: binding pending pods to its nodes (the scheduler's part:
//! node affinity, nodeSelector, taints), reporting them running, and finishing their
//! deletion.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::node_rules::{host_network, is_cni_pod, may_start, merged_taints, tolerates_all};
use super::{Shared, SimNode, lock, now};

pub(super) async fn watch_pods(shared: std::sync::Arc<Shared>) {
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

pub(super) async fn resync_pods(shared: std::sync::Arc<Shared>) {
    let pods: Api<Pod> = Api::all(shared.client.clone());
    loop {
        tokio::time::sleep(super::RESYNC).await;
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

/// A node's taints as the scheduler sees them: what the apiserver has (others may have
/// added some), with the kubelet's own as it last decided them.
async fn taints_of(shared: &Shared, node: &SimNode) -> Vec<k8s_openapi::api::core::v1::Taint> {
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let current = nodes
        .get_opt(&node.name)
        .await
        .ok()
        .flatten()
        .and_then(|n| n.spec)
        .and_then(|s| s.taints)
        .unwrap_or_default();
    merged_taints(&current, &shared.own_taints(node))
}

/// Picks a node for a pending pod: the one its node affinity names (DaemonSet pods),
/// else one whose labels match its nodeSelector, round-robin among nodes that are not
/// held NotReady by a fault and whose taints the pod tolerates.
async fn choose_node(shared: &Shared, pod: &Pod) -> Option<String> {
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
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    let mut candidates: Vec<&SimNode> = Vec::new();
    for node in nodes
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
    {
        if tolerates_all(&tolerations, &taints_of(shared, node).await) {
            candidates.push(node);
        }
    }
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
    let Some(node) = choose_node(shared, pod).await else {
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

fn containers_of(pod: &Pod) -> &[k8s_openapi::api::core::v1::Container] {
    pod.spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
}

/// A pod on a node without a network, as the kubelet leaves it: its sandbox cannot be
/// made, so it stays Pending with its containers waiting.
async fn report_waiting_for_network(
    shared: &Shared,
    pod: &Pod,
    namespace: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let status = pod.status.as_ref();
    if status.and_then(|s| s.phase.as_deref()) == Some("Pending")
        && status.and_then(|s| s.container_statuses.as_ref()).is_some()
    {
        return Ok(());
    }
    let now = now();
    let containers: Vec<serde_json::Value> = containers_of(pod)
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "image": c.image.clone().unwrap_or_default(),
                "imageID": "",
                "ready": false,
                "started": false,
                "restartCount": 0,
                "state": { "waiting": { "reason": "ContainerCreating" } },
            })
        })
        .collect();
    let patch = json!({
        "status": {
            "phase": "Pending",
            "hostIP": "127.0.0.1",
            "startTime": now,
            "conditions": [
                { "type": "Initialized", "status": "True", "lastTransitionTime": now },
                { "type": "PodScheduled", "status": "True", "lastTransitionTime": now },
                { "type": "ContainersReady", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": now },
                { "type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": now },
            ],
            "containerStatuses": containers,
        }
    });
    tracing::debug!(pod = %format!("{namespace}/{name}"), "pod waits for the node's network");
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), namespace);
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

async fn report_running(
    shared: &Shared,
    pod: &Pod,
    namespace: &str,
    name: &str,
    node: &str,
) -> Result<(), kube::Error> {
    let host_network = host_network(pod);
    if !may_start(host_network, shared.network_ready(node)) {
        return report_waiting_for_network(shared, pod, namespace, name).await;
    }
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
    let cni = is_cni_pod(pod, &shared.settings.cni_daemon_sets);
    if already_running && ready_now != never_ready {
        if cni {
            shared.network_up(node).await;
        }
        return Ok(());
    }
    let ready = if never_ready { "False" } else { "True" };
    let now = now();
    let containers: Vec<serde_json::Value> = containers_of(pod)
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
    // A hostNetwork pod has its node's address.
    let ip = if host_network {
        "127.0.0.1".to_string()
    } else {
        pod_ip(name)
    };
    let patch = json!({
        "status": {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": ip,
            "podIPs": [{ "ip": ip }],
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
        .await?;
    if cni {
        shared.network_up(node).await;
    }
    Ok(())
}

async fn finish_deletion(shared: &Shared, namespace: &str, name: &str) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), namespace);
    pods.delete(name, &DeleteParams::default().grace_period(0))
        .await
        .map(|_| ())
}
