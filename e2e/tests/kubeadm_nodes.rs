//! The simulated kubelet's nodes behave like kubeadm's: the control plane's carry their
//! taint, every node is NotReady (and tainted so) until a pod of the CNI's DaemonSet runs
//! on it, pods go only where they tolerate the taints, and until the network is up only
//! hostNetwork pods start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use strata_e2e::control_plane::{ControlPlane, ControlPlaneOptions};
use strata_e2e::kubelet_sim::{
    CONTROL_PLANE_LABEL, CONTROL_PLANE_TAINT, KubeletSettings, NETWORK_NOT_READY_MESSAGE,
    NOT_READY_TAINT, SimNode, SimulatedKubelet,
};
use strata_e2e::wait::eventually;

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn deployment(name: &str, pod: serde_json::Value) -> Deployment {
    let mut spec = pod;
    spec["containers"] = json!([{ "name": name, "image": "example.invalid/app:1" }]);
    from_json(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": spec },
        },
    }))
}

fn taint_keys(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.key)
        .collect()
}

fn ready_condition(node: &Node) -> (String, String) {
    let condition = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    (condition.status, condition.message.unwrap_or_default())
}

/// The app's only pod, once it exists.
async fn pod_of(pods: &Api<Pod>, app: &str) -> Option<Pod> {
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .ok()?
        .items
        .into_iter()
        .next()
}

fn node_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref()?.node_name.clone()
}

fn phase_of(pod: &Pod) -> Option<String> {
    pod.status.as_ref()?.phase.clone()
}

#[tokio::test]
async fn nodes_wait_for_the_cni_and_pods_go_only_where_they_tolerate_the_taints() {
    let cp = ControlPlane::start(ControlPlaneOptions::named("kubeadm-nodes"))
        .await
        .unwrap();
    let client = cp.client();
    let mut first = SimNode::named("cp-1");
    first.labels = BTreeMap::from([(CONTROL_PLANE_LABEL.to_string(), String::new())]);
    let _kubelet = SimulatedKubelet::start_with(
        client.clone(),
        vec![first, SimNode::named("worker-1")],
        KubeletSettings::default(),
    )
    .await
    .unwrap();

    // Registered NotReady, waiting for the network, and tainted so. (The node lifecycle
    // controller may swap the not-ready taint for `unreachable` for a moment, while it
    // has not yet seen the node's first status: waited out.)
    for name in ["cp-1", "worker-1"] {
        let node = eventually(
            &format!("{name} NotReady with the not-ready taint"),
            Duration::from_secs(30),
            || async {
                let node = Api::<Node>::all(client.clone()).get(name).await.ok()?;
                taint_keys(&node)
                    .contains(&NOT_READY_TAINT.to_string())
                    .then_some(node)
            },
        )
        .await;
        assert_eq!(
            ready_condition(&node),
            ("False".to_string(), NETWORK_NOT_READY_MESSAGE.to_string())
        );
        let keys = taint_keys(&node);
        assert_eq!(
            keys.contains(&CONTROL_PLANE_TAINT.to_string()),
            name == "cp-1",
            "{name}: {keys:?}"
        );
    }

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Tolerates nothing: no node takes it yet.
    deployments
        .create(&PostParams::default(), &deployment("web", json!({})))
        .await
        .unwrap();
    // Tolerates the not-ready taint but needs the pod network: placed, never started.
    let not_ready = json!([{ "key": NOT_READY_TAINT, "operator": "Exists" }]);
    deployments
        .create(
            &PostParams::default(),
            &deployment("patient", json!({ "tolerations": not_ready })),
        )
        .await
        .unwrap();
    // What Strata's singletons are: on the host's network, tolerating both taints.
    let singleton = json!({
        "hostNetwork": true,
        "tolerations": [
            { "key": NOT_READY_TAINT, "operator": "Exists" },
            { "key": CONTROL_PLANE_TAINT, "operator": "Exists", "effect": "NoSchedule" },
        ],
        "nodeSelector": { CONTROL_PLANE_LABEL: "" },
    });
    deployments
        .create(&PostParams::default(), &deployment("singleton", singleton))
        .await
        .unwrap();
    let singleton = eventually(
        "the hostNetwork singleton Running on the control-plane node",
        Duration::from_secs(60),
        || async {
            let pod = pod_of(&pods, "singleton").await?;
            (phase_of(&pod).as_deref() == Some("Running")).then_some(pod)
        },
    )
    .await;
    assert_eq!(node_of(&singleton).as_deref(), Some("cp-1"));
    let patient = eventually(
        "the not-ready-tolerating pod placed",
        Duration::from_secs(60),
        || async {
            let pod = pod_of(&pods, "patient").await?;
            let waiting = pod
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .iter()
                .any(|c| c.state.as_ref().and_then(|s| s.waiting.as_ref()).is_some());
            (node_of(&pod).is_some() && waiting).then_some(pod)
        },
    )
    .await;
    assert_eq!(phase_of(&patient).as_deref(), Some("Pending"));
    // Several of the kubelet's passes later, still nowhere and still waiting.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let web = pod_of(&pods, "web").await.unwrap();
    assert_eq!(node_of(&web), None, "web tolerates no taint");
    let patient = pod_of(&pods, "patient").await.unwrap();
    assert_eq!(phase_of(&patient).as_deref(), Some("Pending"));

    // The CNI: a DaemonSet tolerating everything, as Calico's does.
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &from_json(json!({ "metadata": { "name": "calico-system" } })),
        )
        .await
        .unwrap();
    let cni: DaemonSet = from_json(json!({
        "metadata": { "name": "calico-node" },
        "spec": {
            "selector": { "matchLabels": { "k8s-app": "calico-node" } },
            "template": {
                "metadata": { "labels": { "k8s-app": "calico-node" } },
                "spec": {
                    "hostNetwork": true,
                    "tolerations": [
                        { "effect": "NoSchedule", "operator": "Exists" },
                        { "effect": "NoExecute", "operator": "Exists" },
                    ],
                    "containers": [{ "name": "calico-node", "image": "example.invalid/calico:1" }],
                },
            },
        },
    }));
    Api::<DaemonSet>::namespaced(client.clone(), "calico-system")
        .create(&PostParams::default(), &cni)
        .await
        .unwrap();
    for name in ["cp-1", "worker-1"] {
        let node = eventually(
            &format!("{name} Ready once the CNI runs on it"),
            Duration::from_secs(60),
            || async {
                let node = Api::<Node>::all(client.clone()).get(name).await.ok()?;
                (ready_condition(&node).0 == "True"
                    && !taint_keys(&node).contains(&NOT_READY_TAINT.to_string()))
                .then_some(node)
            },
        )
        .await;
        assert_eq!(
            taint_keys(&node).contains(&CONTROL_PLANE_TAINT.to_string()),
            name == "cp-1",
            "the control plane keeps its taint"
        );
    }
    // Now the rest run: web on the worker only, the patient pod where it was placed.
    for app in ["web", "patient"] {
        let pod = eventually(
            &format!("{app} Running"),
            Duration::from_secs(60),
            || async {
                let pod = pod_of(&pods, app).await?;
                (phase_of(&pod).as_deref() == Some("Running")).then_some(pod)
            },
        )
        .await;
        if app == "web" {
            assert_eq!(node_of(&pod).as_deref(), Some("worker-1"));
        }
    }
}
