//! The substrate against the real components: control planes, the simulated kubelet,
//! the process kubelet running the real agent, and the fault proxy on a real watch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;
use strata_e2e::control_plane::{ControlPlane, ControlPlaneOptions};
use strata_e2e::fault_proxy::FaultProxy;
use strata_e2e::kubelet_sim::{SimNode, SimulatedKubelet};
use strata_e2e::process_kubelet::{ClusterAccess, ProcessKubelet, default_agent_binary};
use strata_e2e::wait::eventually;

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn labels(app: &str) -> serde_json::Value {
    json!({ "app": app })
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    from_json(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": labels(name) },
            "template": {
                "metadata": { "labels": labels(name) },
                "spec": { "containers": [{ "name": "app", "image": "example.invalid/app:1" }] },
            },
        },
    }))
}

async fn available_replicas(api: &Api<Deployment>, name: &str) -> i32 {
    api.get(name)
        .await
        .ok()
        .and_then(|d| d.status)
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

#[tokio::test]
async fn workloads_become_available_through_the_real_controller_manager() {
    let cp = ControlPlane::start(ControlPlaneOptions::named("workloads"))
        .await
        .unwrap();
    let client = cp.client();
    let kubelet = SimulatedKubelet::start(
        client.clone(),
        vec![SimNode::named("node-a"), SimNode::named("node-b")],
    )
    .await
    .unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .create(&PostParams::default(), &deployment("web", 3))
        .await
        .unwrap();
    eventually(
        "deployment web to have 3 available replicas",
        Duration::from_secs(60),
        || async { (available_replicas(&deployments, "web").await == 3).then_some(()) },
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let running = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let on_nodes: std::collections::BTreeSet<String> = running
        .items
        .iter()
        .map(|p| p.spec.as_ref().unwrap().node_name.clone().unwrap())
        .collect();
    assert_eq!(
        on_nodes.len(),
        2,
        "pods are spread over both simulated nodes"
    );

    // Scaling down deletes pods; the simulated kubelet finishes their termination.
    let scale = json!({ "spec": { "replicas": 1 } });
    deployments
        .patch(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&scale),
        )
        .await
        .unwrap();
    eventually(
        "web to scale down to one pod",
        Duration::from_secs(60),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            (list.items.len() == 1).then_some(())
        },
    )
    .await;

    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let ds: DaemonSet = from_json(json!({
        "metadata": { "name": "agent" },
        "spec": {
            "selector": { "matchLabels": labels("agent") },
            "template": {
                "metadata": { "labels": labels("agent") },
                "spec": { "containers": [{ "name": "agent", "image": "example.invalid/agent:1" }] },
            },
        },
    }));
    daemon_sets
        .create(&PostParams::default(), &ds)
        .await
        .unwrap();
    eventually(
        "daemon set agent ready on both nodes",
        Duration::from_secs(60),
        || async {
            let status = daemon_sets.get("agent").await.ok()?.status?;
            (status.number_ready == 2 && status.desired_number_scheduled == 2).then_some(())
        },
    )
    .await;

    let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let sts: StatefulSet = from_json(json!({
        "metadata": { "name": "db" },
        "spec": {
            "replicas": 2,
            "serviceName": "db",
            "selector": { "matchLabels": labels("db") },
            "template": {
                "metadata": { "labels": labels("db") },
                "spec": { "containers": [{ "name": "db", "image": "example.invalid/db:1" }] },
            },
        },
    }));
    stateful_sets
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();
    eventually(
        "stateful set db to have 2 ready replicas",
        Duration::from_secs(60),
        || async {
            let status = stateful_sets.get("db").await.ok()?.status?;
            (status.ready_replicas == Some(2)).then_some(())
        },
    )
    .await;

    // Faults: a pod that never becomes ready keeps its Deployment unavailable.
    kubelet.never_ready("default", "stuck-");
    deployments
        .create(&PostParams::default(), &deployment("stuck", 1))
        .await
        .unwrap();
    let stuck_pod = eventually(
        "the stuck pod to be running",
        Duration::from_secs(60),
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=stuck"))
                .await
                .ok()?;
            let pod = list.items.into_iter().next()?;
            (pod.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(pod)
        },
    )
    .await;
    let ready = stuck_pod
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(available_replicas(&deployments, "stuck").await, 0);

    // Faults: a node that goes NotReady.
    kubelet.node_not_ready("node-b").await.unwrap();
    let node = nodes.get("node-b").await.unwrap();
    let condition = node
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(condition.status, "False");
}

async fn agent_rbac(client: &Client, namespace: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &from_json(json!({ "metadata": { "name": namespace } })),
        )
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    accounts
        .create(
            &PostParams::default(),
            &from_json(json!({ "metadata": { "name": "strata-agent" } })),
        )
        .await
        .unwrap();
    let roles: Api<Role> = Api::namespaced(client.clone(), namespace);
    roles
        .create(
            &PostParams::default(),
            &from_json(json!({
                "metadata": { "name": "strata-agent" },
                "rules": [{ "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"] }],
            })),
        )
        .await
        .unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
    bindings
        .create(
            &PostParams::default(),
            &from_json(json!({
                "metadata": { "name": "strata-agent" },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "strata-agent" },
                "subjects": [{ "kind": "ServiceAccount", "name": "strata-agent", "namespace": namespace }],
            })),
        )
        .await
        .unwrap();
}

fn agent_deployment(settings: &str) -> Deployment {
    from_json(json!({
        "metadata": { "name": "strata-agent", "labels": { "app.kubernetes.io/name": "strata-agent" } },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app.kubernetes.io/name": "strata-agent" } },
            "template": {
                "metadata": { "labels": { "app.kubernetes.io/name": "strata-agent" } },
                "spec": {
                    "serviceAccountName": "strata-agent",
                    "containers": [{
                        "name": "agent",
                        "image": "registry.invalid/strata/strata-agent:dev",
                        "args": ["--lease-seconds=6"],
                        "env": [
                            { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                            { "name": "POD_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
                            // The agent serves its endpoints on its pod's IP: each replica
                            // its own loopback address here.
                            { "name": "POD_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
                            { "name": "STRATA_SETTING", "valueFrom": { "configMapKeyRef": { "name": settings, "key": "setting" } } },
                            { "name": "RUST_LOG", "value": "info" },
                        ],
                    }],
                },
            },
        },
    }))
}

async fn lease_renewed_by(
    leases: &Api<Lease>,
    holder: &str,
    after: k8s_openapi::jiff::Timestamp,
) -> Option<()> {
    let spec = leases.get_opt("strata-agent").await.ok()??.spec?;
    let renewed = spec.renew_time?.0;
    (spec.holder_identity.as_deref() == Some(holder) && renewed > after).then_some(())
}

#[tokio::test]
async fn the_agent_runs_as_a_local_process_with_its_service_account_and_restarts() {
    let cp = ControlPlane::start(ControlPlaneOptions::named("agent"))
        .await
        .unwrap();
    let client = cp.client();
    let _kubelet = SimulatedKubelet::start(client.clone(), vec![SimNode::named("node-a")])
        .await
        .unwrap();
    let processes = ProcessKubelet::start(ClusterAccess::of(&cp), default_agent_binary()).unwrap();
    let namespace = "strata-system";
    agent_rbac(&client, namespace).await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    maps.create(
        &PostParams::default(),
        &from_json(
            json!({ "metadata": { "name": "agent-settings" }, "data": { "setting": "on" } }),
        ),
    )
    .await
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    deployments
        .create(&PostParams::default(), &agent_deployment("agent-settings"))
        .await
        .unwrap();

    // The agent reaches the apiserver with its own token: RBAC lets only its service
    // account write the lease, and the lease names the pod it was started as.
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let started = k8s_openapi::jiff::Timestamp::now();
    eventually(
        "the agent to hold its lease",
        Duration::from_secs(60),
        || lease_renewed_by(&leases, "strata-agent-0", started),
    )
    .await;
    let first = processes.processes();
    assert_eq!(first.len(), 1);
    let first_pid = first[0].pid.expect("the agent is running");
    let lease = leases.get("strata-agent").await.unwrap();
    let managers: Vec<String> = lease
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(!managers.is_empty());

    // kill -9: the process kubelet starts it again and the lease keeps being renewed.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let killed_at = k8s_openapi::jiff::Timestamp::now();
    let restarted = eventually(
        "the agent to be restarted",
        Duration::from_secs(30),
        || async {
            let now = processes.processes();
            let p = now.first()?;
            (p.pid.is_some() && p.pid != Some(first_pid) && p.restarts >= 1).then(|| p.clone())
        },
    )
    .await;
    eventually(
        "the restarted agent to renew its lease",
        Duration::from_secs(30),
        || lease_renewed_by(&leases, "strata-agent-0", killed_at),
    )
    .await;
    let log = std::fs::read_to_string(&restarted.log).unwrap();
    assert!(
        log.matches("--- starting").count() >= 2,
        "the log shows both starts:\n{log}"
    );

    // Deleting the Deployment stops the process.
    deployments
        .delete("strata-agent", &DeleteParams::default())
        .await
        .unwrap();
    let pid = restarted.pid.unwrap();
    eventually(
        "the agent process to stop",
        Duration::from_secs(30),
        || async {
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None)
                .is_ok()
                && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| !s.contains(") Z "));
            (!alive && processes.processes().is_empty()).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn the_fault_proxy_cuts_and_restores_a_watch() {
    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("proxy")
    })
    .await
    .unwrap();
    let upstream: std::net::SocketAddr = format!("127.0.0.1:{}", cp.apiserver_port())
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let via_proxy = cp.client_via(proxy.addr()).await.unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(via_proxy, "default");
    let direct: Api<ConfigMap> = Api::namespaced(cp.client(), "default");

    let mut events = watcher(maps.clone(), watcher::Config::default()).boxed();
    let create = |name: &str| {
        let map: ConfigMap = from_json(json!({ "metadata": { "name": name } }));
        let direct = direct.clone();
        async move { direct.create(&PostParams::default(), &map).await.unwrap() }
    };
    let mut seen: BTreeMap<String, bool> = BTreeMap::new();
    create("before-cut").await;
    let wait_for = |name: &'static str, timeout: Duration| {
        let deadline = Instant::now() + timeout;
        (name, deadline)
    };
    let (name, deadline) = wait_for("before-cut", Duration::from_secs(30));
    while !seen.contains_key(name) {
        let event = tokio::time::timeout_at(deadline.into(), events.next())
            .await
            .expect("watch event")
            .unwrap();
        if let Ok(watcher::Event::Apply(m) | watcher::Event::InitApply(m)) = event {
            seen.insert(m.metadata.name.unwrap(), true);
        }
    }

    proxy.cut();
    // The watch breaks: the stream yields an error once the connection is gone.
    let broke = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.next().await {
                Some(Err(_)) | None => return true,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(broke, "the watch reported the cut connection");
    assert!(
        maps.get_opt("before-cut").await.is_err(),
        "requests fail while cut"
    );
    create("during-cut").await;

    proxy.restore();
    let (name, deadline) = wait_for("during-cut", Duration::from_secs(60));
    while !seen.contains_key(name) {
        let event = tokio::time::timeout_at(deadline.into(), events.next())
            .await
            .expect("watch event after restore");
        if let Some(Ok(watcher::Event::Apply(m) | watcher::Event::InitApply(m))) = event {
            seen.insert(m.metadata.name.unwrap(), true);
        }
    }
    assert!(
        seen.contains_key("during-cut"),
        "the watch resumed and saw what happened during the cut"
    );
}

#[tokio::test]
async fn control_planes_run_side_by_side_and_leave_nothing_behind() {
    let (a, b) = tokio::join!(
        ControlPlane::start(ControlPlaneOptions::named("side-a")),
        ControlPlane::start(ControlPlaneOptions {
            scheduler: true,
            ..ControlPlaneOptions::named("side-b")
        })
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.apiserver_port(), b.apiserver_port());
    let maps_a: Api<ConfigMap> = Api::namespaced(a.client(), "default");
    let maps_b: Api<ConfigMap> = Api::namespaced(b.client(), "default");
    maps_a
        .create(
            &PostParams::default(),
            &from_json(json!({ "metadata": { "name": "only-in-a" } })),
        )
        .await
        .unwrap();
    assert!(
        maps_b.get_opt("only-in-a").await.unwrap().is_none(),
        "separate etcds"
    );
    let memory: u64 = a.resident_memory().iter().map(|(_, bytes)| bytes).sum();
    assert!(memory > 0);
    eprintln!(
        "control plane resident memory: {} MiB ({:?})",
        memory / (1024 * 1024),
        a.resident_memory()
    );

    let pids: Vec<String> = a
        .logs()
        .iter()
        .map(|l| l.process.clone())
        .chain(b.logs().iter().map(|l| l.process.clone()))
        .collect();
    assert!(pids.contains(&"kube-scheduler".to_string()));
    let dir_a = a.dir().to_path_buf();
    let port_a = a.apiserver_port();
    let all_pids: Vec<u32> = a.pids().into_iter().chain(b.pids()).collect();
    drop(a);
    drop(b);
    for pid in all_pids {
        // Reaped children are gone from /proc entirely.
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} is still there after the control plane was dropped"
        );
    }
    assert!(!dir_a.exists(), "the control plane's folder is removed");
    let still_listening = std::net::TcpStream::connect(("127.0.0.1", port_a)).is_ok();
    assert!(
        !still_listening,
        "nothing listens on the old apiserver port"
    );
}
