//! How fast the agent's layer installer applies and checks a manifest layer, against
//! `kubectl apply --server-side` of the same files, and how much memory the agent holds
//! with every sample layer installed and watched. A benchmark, not a test: nothing is
//! asserted about time or memory.
//!
//!     cargo build --release -p strata-agent -p strata-management -p strata-e2e --bins
//!     cargo bench -p strata-e2e --bench layer_install
//!
//! The first line builds the binaries the memory part runs (`strata-agent`, `strata`,
//! `strata-sim-cloud`, `helm`) in the profile the bench runs from (`target/release`):
//! `cargo bench` builds only this package's bins, and the process kubelet runs the
//! `strata-agent` next to the running program. `STRATA_AGENT_BIN` points elsewhere; the
//! report says which binary and profile were measured. `STRATA_BENCH_RUNS` changes the
//! number of rounds (default 3). `STRATA_BENCH_ONLY=memory` runs the memory part alone
//! (no control plane of its own, no apply rounds: a few minutes less when only the agent's
//! memory is in question).
//!
//! # Apply: one layer of 500 objects
//!
//! One control plane (kube-apiserver 1.20 and etcd, no controller manager: nothing here
//! needs Deployments to roll out, and two cores are shared). The layer is 500 objects as
//! a Helm chart renders them, one YAML stream: a Namespace, a ConfigMap of its own, and 83
//! apps of a ServiceAccount, a ConfigMap, a Service, a Deployment, a Role and a
//! RoleBinding each, every namespaced object naming its namespace (kubectl, unlike the
//! installer, does not take a default namespace from the layer).
//!
//! Each round renders it into fresh namespaces, so that every tool creates all 500:
//!
//! - strata: `layer_apply::apply_manifest_layer` under the agent's field manager, as the
//!   agent applies a layer (discovery, install order, the ApplySet parent written before
//!   and after, prune check), into a fresh layer name and namespace;
//! - kubectl: `kubectl apply --server-side --force-conflicts -f <file>` of the same
//!   rendering (the process timed from spawn to exit; its discovery cache warm);
//! - floor: the same 500 server-side applies as plain sequential API calls with a client
//!   that knows every resource beforehand (no discovery, no parsing, no parent): what no
//!   applier of one object at a time can avoid.
//!
//! then each tool applies its own rendering again unchanged. The order of the tools
//! changes each round. A warm-up round (not timed) goes first, so that the apiserver and
//! kubectl's discovery cache are warm.
//!
//! # Drift: one pass with nothing changed
//!
//! `layer_apply::correct_drift` over the layer strata installed in that round, twice per
//! round; compared with the unchanged re-apply (the work a pass that compared nothing
//! would do) and with the floor of its reads alone: one list per kind of the layer by the
//! ApplySet's label, across namespaces.
//!
//! # Memory: the agent in steady state
//!
//! The full substrate as `e2e/tests/layers.rs` runs it: the management cluster, the
//! sample sim cluster `clusters/sim-demo.yaml`, the controller; the pivoted cluster's agent
//! installs the four sample layers. Once `status.layers` shows them all Ready, the bench
//! waits 75 s (drift passes run every 30 s), sampling the agent's VmRSS every 5 s, then
//! reads VmRSS and VmHWM (the peak since the process started, the install included) from
//! `/proc/<pid>/status`, against the goal of 30 MiB, and the resident memory of each of its
//! mappings from `/proc/<pid>/smaps` (the binary and each library; `[heap]`, the allocator's
//! arena; `[anon]`, thread stacks and large allocations).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use serde_json::{Value, json};
use strata_e2e::bench_table::BenchRow;
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::control_plane::{ControlPlane, ControlPlaneOptions};
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, ensure_namespace,
};
use strata_e2e::process_kubelet::default_agent_binary;
use strata_e2e::samples::apply_sample;
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{cluster, wait_phase};
use strata_shared::cluster::{ClusterPhase, LayerPhase};
use strata_shared::contracts::field_managers::AGENT_FIELD_MANAGER;
use strata_shared::contracts::names::{AGENT_NAME, AGENT_NAMESPACE, objects_namespace};
use strata_shared::layer::applyset::LayerApplySet;
use strata_shared::layer_apply::{ManifestLayer, apply_manifest_layer, correct_drift};

/// Apps of six objects each; with the Namespace and the layer's own ConfigMap, 500.
const APPS: usize = 83;
const OBJECTS: usize = 1 + 1 + 6 * APPS;
const DRIFT_PASSES_PER_ROUND: usize = 2;
const FLOOR_MANAGER: &str = "bench-floor";
const TYPE_WAIT: Duration = Duration::from_secs(30);
const GOAL_MIB: f64 = 30.0;

const DEMO_NS: &str = "strata-demo";
const DEMO_NAME: &str = "demo";
const SAMPLE_LAYERS: [&str; 4] = [
    "cni-calico",
    "csi-hostpath",
    "hello-chart",
    "hello-manifests",
];
/// After every layer is Ready: more than two drift passes (every 30 s).
const STEADY_WAIT: Duration = Duration::from_secs(75);
const RSS_SAMPLE_EVERY: Duration = Duration::from_secs(5);

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

/// The layer's 500 objects, every namespaced one in `ns`, in the order a chart renders
/// them (the Namespace first, then app by app).
fn layer_objects(ns: &str) -> Vec<Value> {
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "layer-settings", "namespace": ns},
            "data": {"logLevel": "info", "region": "site-a", "apps": APPS.to_string()},
        }),
    ];
    for i in 0..APPS {
        let app = format!("app-{i:03}");
        let labels = json!({"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "bench"});
        objects.extend([
            json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": app, "namespace": ns, "labels": labels},
            }),
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("{app}-config"), "namespace": ns, "labels": labels},
                "data": {
                    "config.yaml": format!("listen: 0.0.0.0:8080\nname: {app}\nreplicas: 2\nfeatures:\n  metrics: true\n  tracing: false\n"),
                    "LOG_LEVEL": "info",
                },
            }),
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": app, "namespace": ns, "labels": labels},
                "spec": {
                    "type": "ClusterIP",
                    "selector": {"app.kubernetes.io/name": app},
                    "ports": [
                        {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                        {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"},
                    ],
                },
            }),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": app, "namespace": ns, "labels": labels},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "serviceAccountName": app,
                            "containers": [{
                                "name": "server",
                                "image": "registry.example/bench/server:1.4.2",
                                "args": ["--config=/etc/app/config.yaml"],
                                "ports": [
                                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                    {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                                ],
                                "env": [{
                                    "name": "LOG_LEVEL",
                                    "valueFrom": {"configMapKeyRef": {"name": format!("{app}-config"), "key": "LOG_LEVEL"}},
                                }],
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi"},
                                    "limits": {"cpu": "500m", "memory": "256Mi"},
                                },
                                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
                            }],
                            "volumes": [{"name": "config", "configMap": {"name": format!("{app}-config")}}],
                        },
                    },
                },
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": app, "namespace": ns, "labels": labels},
                "rules": [
                    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
                    {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get"]},
                ],
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": app, "namespace": ns, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": app},
                "subjects": [{"kind": "ServiceAccount", "name": app, "namespace": ns}],
            }),
        ]);
    }
    assert_eq!(objects.len(), OBJECTS);
    objects
}

/// The `---`-separated YAML stream of `objects`, as `helm template` writes it.
fn render(objects: &[Value]) -> String {
    let mut text = String::new();
    for object in objects {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(object).unwrap());
    }
    text
}

fn resource_of(object: &Value) -> ApiResource {
    let (group, version) = match object["apiVersion"].as_str().unwrap().split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", object["apiVersion"].as_str().unwrap()),
    };
    let kind = object["kind"].as_str().unwrap();
    let plural = match kind {
        "Namespace" => "namespaces",
        "ConfigMap" => "configmaps",
        "ServiceAccount" => "serviceaccounts",
        "Service" => "services",
        "Deployment" => "deployments",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        other => panic!("no plural for {other}"),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The floor: each object server-side applied with a resource known beforehand.
async fn floor_apply(client: &Client, objects: &[Value]) {
    let params = PatchParams::apply(FLOOR_MANAGER).force();
    for object in objects {
        let resource = resource_of(object);
        let name = object["metadata"]["name"].as_str().unwrap();
        let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .unwrap_or_else(|e| panic!("floor apply of {name}: {e}"));
    }
}

/// The reads of a drift pass alone: one list per kind of the layer, by its set's label.
async fn floor_lists(client: &Client, layer: &str, objects: &[Value]) -> usize {
    let selector = LayerApplySet::for_layer(layer).unwrap().member_selector();
    let mut kinds: Vec<ApiResource> = Vec::new();
    for object in objects {
        let resource = resource_of(object);
        if !kinds.iter().any(|k| k.kind == resource.kind) {
            kinds.push(resource);
        }
    }
    let mut listed = 0;
    for resource in &kinds {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
        listed += api
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
            .items
            .len();
    }
    listed
}

struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    /// `kubectl apply --server-side` of `file`; the number of objects it reports applied.
    fn apply(&self, file: &Path) -> usize {
        let output = Command::new(&self.binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kubectl apply --server-side -f {}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| l.contains("serverside-applied"))
            .count()
    }
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

struct Row {
    label: &'static str,
    times: Vec<Duration>,
}

impl Row {
    fn new(label: &'static str) -> Row {
        Row {
            label,
            times: Vec::new(),
        }
    }

    fn median(&self) -> f64 {
        median(&self.times).as_secs_f64()
    }

    fn print(&self) {
        let mut line = format!("{:<58}", self.label);
        for time in &self.times {
            write!(line, "{:>8.3}s", time.as_secs_f64()).unwrap();
        }
        write!(
            line,
            "   median {:>7.3}s  {:>6.0} objects/s",
            self.median(),
            OBJECTS as f64 / self.median()
        )
        .unwrap();
        println!("{line}");
    }
}

struct ApplyResults {
    rounds: usize,
    strata_create: Row,
    kubectl_create: Row,
    floor_create: Row,
    strata_reapply: Row,
    kubectl_reapply: Row,
    floor_reapply: Row,
    drift: Row,
    drift_lists: Row,
}

async fn measure_apply(rounds: usize) -> ApplyResults {
    eprintln!("apply: starting a control plane (apiserver and etcd)…");
    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("layer-install")
    })
    .await
    .unwrap();
    let client = cp.client();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": AGENT_NAMESPACE}})).unwrap(),
        )
        .await
        .unwrap();
    let work = tempfile::Builder::new()
        .prefix("strata-bench-layers-")
        .tempdir()
        .unwrap();
    let kubectl = Kubectl {
        binary: strata_e2e::binaries::kubectl().unwrap_or_else(|e| panic!("{e}")),
        kubeconfig: cp.kubeconfig_path().to_path_buf(),
        cache: work.path().join("kubectl-cache"),
    };

    let mut results = ApplyResults {
        rounds,
        strata_create: Row::new("strata apply_manifest_layer, create"),
        kubectl_create: Row::new("kubectl apply --server-side, create"),
        floor_create: Row::new("floor: 500 plain server-side applies, create"),
        strata_reapply: Row::new("strata apply_manifest_layer, unchanged"),
        kubectl_reapply: Row::new("kubectl apply --server-side, unchanged"),
        floor_reapply: Row::new("floor: 500 plain server-side applies, unchanged"),
        drift: Row::new("strata correct_drift, nothing changed"),
        drift_lists: Row::new("floor: the drift pass's lists alone"),
    };

    // Round 0 warms up the apiserver and kubectl's discovery cache; it is not recorded.
    for round in 0..=rounds {
        let record = round > 0;
        eprintln!(
            "apply: {}",
            if record {
                format!("round {round}/{rounds}")
            } else {
                "warm-up round".into()
            }
        );
        let strata_ns = format!("bench-strata-{round}");
        let kubectl_ns = format!("bench-kubectl-{round}");
        let floor_ns = format!("bench-floor-{round}");
        let strata_objects = layer_objects(&strata_ns);
        let strata_rendered = render(&strata_objects);
        let kubectl_file = work.path().join(format!("{kubectl_ns}.yaml"));
        std::fs::write(&kubectl_file, render(&layer_objects(&kubectl_ns))).unwrap();
        let floor_objects = layer_objects(&floor_ns);
        let layer = ManifestLayer {
            name: &strata_ns,
            namespace: &strata_ns,
            rendered: &strata_rendered,
        };

        // Three tools, in an order that turns each round.
        for pass in ["create", "unchanged"] {
            for turn in 0..3 {
                let started = Instant::now();
                let row = match (turn + round) % 3 {
                    0 => {
                        let report =
                            apply_manifest_layer(&client, &layer, AGENT_FIELD_MANAGER, TYPE_WAIT)
                                .await
                                .unwrap();
                        let took = started.elapsed();
                        assert_eq!(report.applied.len(), OBJECTS);
                        assert!(report.pruned.is_empty());
                        match pass {
                            "create" => (&mut results.strata_create, took),
                            _ => (&mut results.strata_reapply, took),
                        }
                    }
                    1 => {
                        let applied = kubectl.apply(&kubectl_file);
                        let took = started.elapsed();
                        assert_eq!(applied, OBJECTS, "kubectl's report of {pass}");
                        match pass {
                            "create" => (&mut results.kubectl_create, took),
                            _ => (&mut results.kubectl_reapply, took),
                        }
                    }
                    _ => {
                        floor_apply(&client, &floor_objects).await;
                        let took = started.elapsed();
                        match pass {
                            "create" => (&mut results.floor_create, took),
                            _ => (&mut results.floor_reapply, took),
                        }
                    }
                };
                if record {
                    row.0.times.push(row.1);
                }
            }
        }

        for _ in 0..DRIFT_PASSES_PER_ROUND {
            let started = Instant::now();
            let report = correct_drift(&client, &layer, AGENT_FIELD_MANAGER)
                .await
                .unwrap();
            let took = started.elapsed();
            assert_eq!(report.checked, OBJECTS);
            assert!(report.corrections.is_empty(), "{:?}", report.corrections);
            if record {
                results.drift.times.push(took);
            }
            let started = Instant::now();
            let listed = floor_lists(&client, &strata_ns, &strata_objects).await;
            let took = started.elapsed();
            assert_eq!(listed, OBJECTS);
            if record {
                results.drift_lists.times.push(took);
            }
        }
    }
    results
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct MemoryResults {
    binary: PathBuf,
    profile: &'static str,
    rss_kib: u64,
    hwm_kib: u64,
    /// RssAnon, RssFile (the mapped binary and libraries), Threads.
    breakdown: (u64, u64, u64),
    /// The resident KiB of each mapping, biggest first (`/proc/<pid>/smaps`).
    mappings: Vec<(String, u64)>,
    samples_kib: Vec<u64>,
    ready_after: Duration,
}

fn profile_of(binary: &Path) -> &'static str {
    let parent = binary
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    match parent {
        "release" => "release (the bench profile's target/release)",
        "debug" => "debug (target/debug)",
        _ => "unknown (STRATA_AGENT_BIN)",
    }
}

async fn measure_memory() -> MemoryResults {
    let _stop = StopWorkloads;
    let binary = default_agent_binary();
    assert!(
        binary.is_file(),
        "no strata-agent at {}: build it first with \
         `cargo build --release -p strata-agent -p strata-management -p strata-e2e --bins`",
        binary.display()
    );
    eprintln!(
        "memory: the agent under test is {} ({})",
        binary.display(),
        profile_of(&binary)
    );
    eprintln!("memory: starting the management cluster, registry and simulated cloud…");
    let env = ManagementEnv::start(ManagementOptions::named("bench-layers"))
        .await
        .unwrap();
    let client = env.client();
    let objects = objects_namespace(DEMO_NS, DEMO_NAME);
    ensure_namespace(&client, DEMO_NS).await.unwrap();
    apply_sample(&client, "clusters/sim-demo.yaml", DEMO_NS, |_| {}).await;
    let mut controller = ControllerProcess::start(
        env.control_plane.kubeconfig_path(),
        env.dir.path(),
        "controller",
        // The pivoted cluster's simulator runs fast: its provider pack says so
        // (`ManagementOptions::provider_speed`).
        &[],
    )
    .unwrap();
    let started = Instant::now();
    eprintln!("memory: waiting for the sample cluster to pivot…");
    wait_phase(
        &env,
        &controller,
        DEMO_NS,
        DEMO_NAME,
        ClusterPhase::Pivoted,
        Duration::from_secs(600),
    )
    .await;
    eprintln!("memory: waiting for the four sample layers to be Ready…");
    eventually(
        "the four sample layers Ready",
        Duration::from_secs(600),
        || async {
            let wc = cluster(&client, DEMO_NS, DEMO_NAME).await?;
            let layers = wc.status?.layers;
            (layers.len() == SAMPLE_LAYERS.len()
                && layers
                    .iter()
                    .zip(SAMPLE_LAYERS)
                    .all(|(l, n)| l.name == n && l.state == LayerPhase::Ready))
            .then_some(())
        },
    )
    .await;
    let ready_after = started.elapsed();
    let agents = env.agents_of(&objects, DEMO_NAME).unwrap();
    let deployment = format!("{AGENT_NAMESPACE}/{AGENT_NAME}");
    let agent = agents
        .processes()
        .into_iter()
        .find(|p| p.deployment == deployment)
        .unwrap();
    let pid = agent.pid.unwrap();
    eprintln!(
        "memory: all Ready after {:.0} s; agent pid {pid}, {} restarts; steady state for {} s…",
        ready_after.as_secs_f64(),
        agent.restarts,
        STEADY_WAIT.as_secs()
    );
    let steady = Instant::now();
    let mut samples_kib = Vec::new();
    while steady.elapsed() < STEADY_WAIT {
        tokio::time::sleep(RSS_SAMPLE_EVERY).await;
        samples_kib.push(proc_status_kib(pid, "VmRSS:").unwrap());
    }
    let rss_kib = proc_status_kib(pid, "VmRSS:").unwrap();
    let hwm_kib = proc_status_kib(pid, "VmHWM:").unwrap();
    let mappings = resident_mappings(pid);
    let breakdown = (
        proc_status_kib(pid, "RssAnon:").unwrap(),
        proc_status_kib(pid, "RssFile:").unwrap(),
        proc_status_kib(pid, "Threads:").unwrap(),
    );
    // Still the same process, still Ready: the figures are of the steady state.
    let now = agents
        .processes()
        .into_iter()
        .find(|p| p.deployment == deployment)
        .unwrap();
    assert_eq!(now.pid, Some(pid), "the agent restarted while measured");
    let wc = cluster(&client, DEMO_NS, DEMO_NAME).await.unwrap();
    let layers = wc.status.unwrap().layers;
    assert!(
        layers.iter().all(|l| l.state == LayerPhase::Ready),
        "{layers:?}"
    );
    controller.terminate(Duration::from_secs(10));
    MemoryResults {
        binary,
        profile: profile_of(&default_agent_binary()),
        rss_kib,
        hwm_kib,
        breakdown,
        mappings,
        samples_kib,
        ready_after,
    }
}

/// Resident KiB per mapped file, and for anonymous memory per kind: `[heap]` (the brk
/// arena), `[stack]`, and `[anon]` (mmap'd: thread stacks, large allocations).
fn resident_mappings(pid: u32) -> Vec<(String, u64)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by_name = std::collections::BTreeMap::<String, u64>::new();
    let mut current = String::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            let path = fields.nth(4).unwrap_or("[anon]");
            current = Path::new(path)
                .file_name()
                .filter(|_| path.starts_with('/'))
                .map_or(path.to_string(), |n| n.to_string_lossy().into_owned());
        } else if first == "Rss:" {
            let kib: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            *by_name.entry(current.clone()).or_default() += kib;
        }
    }
    let mut mappings: Vec<(String, u64)> = by_name.into_iter().filter(|(_, k)| *k > 0).collect();
    mappings.sort_by_key(|(_, kib)| std::cmp::Reverse(*kib));
    mappings
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let rounds = env_number("STRATA_BENCH_RUNS", 3);
    let memory_only = std::env::var("STRATA_BENCH_ONLY").is_ok_and(|v| v == "memory");
    let apply = if memory_only {
        None
    } else {
        Some(measure_apply(rounds).await)
    };
    let memory = measure_memory().await;
    if let Some(apply) = &apply {
        print_apply_rows(apply);
    }
    println!();
    let samples: Vec<String> = memory
        .samples_kib
        .iter()
        .map(|k| format!("{:.1}", mib(*k)))
        .collect();
    println!(
        "agent: {} [{}]; four sample layers Ready {:.0} s after the controller started; \
         VmRSS every {} s over the next {} s (MiB): {}",
        memory.binary.display(),
        memory.profile,
        memory.ready_after.as_secs_f64(),
        RSS_SAMPLE_EVERY.as_secs(),
        STEADY_WAIT.as_secs(),
        samples.join(" ")
    );

    println!();
    println!(
        "{:<44}{:>12}  {:<36}{:>12}{:>9}  goal",
        "measure", "strata", "peer or floor", "peer", "ratio"
    );
    if let Some(apply) = &apply {
        print_apply_ratios(apply);
    }
    for (what, kib) in [
        ("agent VmRSS, steady state", memory.rss_kib),
        ("agent VmHWM (peak since start)", memory.hwm_kib),
    ] {
        println!(
            "{what:<44}{:>8.1} MiB  {:<36}{:>8.1} MiB{:>9.2}  <= 1.0",
            mib(kib),
            "goal",
            GOAL_MIB,
            mib(kib) / GOAL_MIB
        );
        BenchRow {
            what,
            figure: format!("{:.1} MiB", mib(kib)),
            against: "goal",
            against_figure: format!("{GOAL_MIB:.0} MiB"),
            ratio: mib(kib) / GOAL_MIB,
            goal: "≤ 1.0×",
        }
        .print();
    }
    let (anon, file, threads) = memory.breakdown;
    let size = std::fs::metadata(&memory.binary).map_or(0, |m| m.len());
    println!(
        "(agent measured: {}; of its VmRSS {:.1} MiB anonymous, {:.1} MiB file-backed; \
         {threads} threads; binary {:.1} MiB)",
        memory.profile,
        mib(anon),
        mib(file),
        size as f64 / 1048576.0
    );
    let mappings: Vec<String> = memory
        .mappings
        .iter()
        .take(8)
        .map(|(name, kib)| format!("{name} {:.1}", mib(*kib)))
        .collect();
    println!("(resident by mapping, MiB: {})", mappings.join(", "));
}

fn print_apply_rows(apply: &ApplyResults) {
    println!();
    println!(
        "layer_install: one manifest layer of {OBJECTS} objects (1 Namespace, {} ConfigMaps, \
         {APPS} each of ServiceAccount, Service, Deployment, Role, RoleBinding), \
         kube-apiserver 1.20 + etcd on loopback, {} rounds + 1 warm-up, fresh namespaces per round",
        APPS + 1,
        apply.rounds
    );
    println!();
    for row in [
        &apply.strata_create,
        &apply.kubectl_create,
        &apply.floor_create,
        &apply.strata_reapply,
        &apply.kubectl_reapply,
        &apply.floor_reapply,
        &apply.drift,
        &apply.drift_lists,
    ] {
        row.print();
    }
}

fn print_apply_ratios(apply: &ApplyResults) {
    // The last label printed, so that a continuation line's table row names its measure.
    let named = std::cell::RefCell::new(String::new());
    let line = |what: &str, strata: f64, peer: &str, peer_value: f64, goal: &str| {
        println!(
            "{what:<44}{:>11.3}s  {peer:<36}{:>11.3}s{:>9.2}  {goal}",
            strata,
            peer_value,
            strata / peer_value
        );
        if !what.is_empty() {
            *named.borrow_mut() = format!("layer: {}", what.trim_end_matches(" (median)"));
        }
        BenchRow {
            what: &named.borrow(),
            figure: format!("{strata:.3} s"),
            against: peer,
            against_figure: format!("{peer_value:.3} s"),
            ratio: strata / peer_value,
            goal: if goal.is_empty() { "" } else { "≤ 1.0×" },
        }
        .print();
    };
    line(
        "apply 500 objects, create (median)",
        apply.strata_create.median(),
        "kubectl apply --server-side",
        apply.kubectl_create.median(),
        "<= 1.0",
    );
    line(
        "",
        apply.strata_create.median(),
        "floor: plain server-side applies",
        apply.floor_create.median(),
        "",
    );
    line(
        "apply 500 objects, unchanged (median)",
        apply.strata_reapply.median(),
        "kubectl apply --server-side",
        apply.kubectl_reapply.median(),
        "<= 1.0",
    );
    line(
        "",
        apply.strata_reapply.median(),
        "floor: plain server-side applies",
        apply.floor_reapply.median(),
        "",
    );
    line(
        "drift pass, nothing changed (median)",
        apply.drift.median(),
        "strata unchanged re-apply",
        apply.strata_reapply.median(),
        "",
    );
    line(
        "",
        apply.drift.median(),
        "kubectl unchanged re-apply",
        apply.kubectl_reapply.median(),
        "",
    );
    line(
        "",
        apply.drift.median(),
        "floor: its lists alone",
        apply.drift_lists.median(),
        "",
    );
}
