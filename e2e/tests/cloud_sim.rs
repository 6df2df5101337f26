//! The simulated cloud against real control planes: clusters of every cloud converge
//! (three control-plane machines, two pools of three workers, a real workload apiserver
//! with one Node per machine), scale, roll one machine at a time on a version change,
//! stand still while paused, continue after their objects move to another apiserver, show
//! the faults asked of them, and take their workload control plane with them when deleted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Api, Client, Config};
use serde::Deserialize;
use serde_json::{Value, json};
use strata_e2e::capi_crds::{self, CrdSet};
use strata_e2e::cloud_sim::kinds::{
    CLUSTER, KUBEADM_CONFIG, KUBEADM_CONFIG_TEMPLATE, KUBEADM_CONTROL_PLANE, Kind, MACHINE,
    MACHINE_DEPLOYMENT, MACHINE_HEALTH_CHECK, MACHINE_SET, Provider,
};
use strata_e2e::cloud_sim::{CloudSimulator, SimOptions, sim_crds, workload};
use strata_e2e::control_plane::{ControlPlane, ControlPlaneOptions};
use strata_e2e::kubelet_sim::KubeletSettings;

const NS: &str = "strata-demo";
const TEST_MANAGER: &str = "strata-e2e-test";
const OLD: &str = "v1.20.2";
const NEW: &str = "v1.21.0";

/// Stops the process-wide workload control planes when the test ends, passed or not.
struct StopWorkloads;

impl Drop for StopWorkloads {
    fn drop(&mut self) {
        workload::stop_all();
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The simulator as these tests need it: no CNI is ever installed here, so nodes come up
/// with their network (the kubeadm-like nodes are `kubeadm_nodes.rs`' and `layers.rs`').
fn nodes_with_network() -> SimOptions {
    SimOptions {
        workload_nodes: KubeletSettings::network_preinstalled(),
        ..SimOptions::fast()
    }
}

/// Polls `check` until it returns Ok; on timeout fails with the last reason it gave.
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(reason) => assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; last: {reason}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the simulator has completed `n` more full passes.
async fn wait_passes(sim: &CloudSimulator, n: u64) {
    let target = sim.passes() + n;
    wait_for("simulator passes", Duration::from_secs(60), || async {
        (sim.passes() >= target)
            .then_some(())
            .ok_or_else(|| format!("{} passes", sim.passes()))
    })
    .await;
}

async fn management(name: &str) -> (ControlPlane, Client) {
    let cp = ControlPlane::start(ControlPlaneOptions::named(name))
        .await
        .unwrap();
    let client = cp.client();
    let set = capi_crds::install(&client).await.unwrap();
    assert!(
        matches!(set, CrdSet::Upstream(_)),
        "these tests need the upstream CAPI CRDs: {set:?}"
    );
    sim_crds::install(&client).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": NS } })).unwrap(),
        )
        .await
        .unwrap();
    (cp, client)
}

// ---- objects -------------------------------------------------------------------------

fn all_kinds() -> Vec<Kind> {
    let mut kinds = vec![
        CLUSTER,
        KUBEADM_CONTROL_PLANE,
        MACHINE_DEPLOYMENT,
        MACHINE_SET,
        MACHINE,
        KUBEADM_CONFIG,
        KUBEADM_CONFIG_TEMPLATE,
        MACHINE_HEALTH_CHECK,
    ];
    for p in Provider::ALL {
        kinds.extend([p.cluster_kind(), p.machine_kind(), p.template_kind()]);
    }
    kinds
}

fn kind_named(kind: &str) -> Kind {
    all_kinds()
        .into_iter()
        .find(|k| k.kind == kind)
        .unwrap_or_else(|| panic!("unknown kind {kind}"))
}

fn api(client: &Client, kind: &Kind) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), NS, &kind.api_resource())
}

async fn list(client: &Client, kind: &Kind) -> Vec<Value> {
    api(client, kind)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect()
}

async fn get(client: &Client, kind: &Kind, name: &str) -> Value {
    serde_json::to_value(api(client, kind).get(name).await.unwrap()).unwrap()
}

async fn merge(client: &Client, kind: &Kind, name: &str, patch: Value) {
    api(client, kind)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn apply_objects(client: &Client, objects: &[Value]) {
    for object in objects {
        let kind = kind_named(s(object, "/kind"));
        api(client, &kind)
            .patch(
                s(object, "/metadata/name"),
                &PatchParams::apply(TEST_MANAGER),
                &Patch::Apply(object),
            )
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot apply {} {}: {e}",
                    kind.kind, object["metadata"]["name"]
                )
            });
    }
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn i(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(-1)
}

fn name(v: &Value) -> &str {
    s(v, "/metadata/name")
}

fn condition<'a>(v: &'a Value, kind: &str) -> Option<&'a Value> {
    v.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn is_true(v: &Value, kind: &str) -> bool {
    condition(v, kind).is_some_and(|c| c["status"] == "True")
}

/// The sample objects of a cloud (`tests/fixtures/capi/<cloud>.yaml`), sized for the test:
/// 3 control-plane machines and two pools of 3 workers (the sample's pool and a copy).
fn cloud_objects(cloud: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/capi/{cloud}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let object = Value::deserialize(document).unwrap();
        let kind = s(&object, "/kind");
        if object.is_null() || kind.ends_with("Identity") || kind == "MachineHealthCheck" {
            continue;
        }
        objects.push(object);
    }
    let mut extra = Vec::new();
    for object in &mut objects {
        match s(object, "/kind") {
            "KubeadmControlPlane" => object["spec"]["replicas"] = json!(3),
            "MachineDeployment" => {
                object["spec"]["replicas"] = json!(3);
                let general = name(object).to_string();
                let text = serde_json::to_string(object).unwrap();
                // A second pool: the same templates under another deployment name.
                let copy = text.replace(
                    &format!("\"{general}\""),
                    &format!("\"{}\"", general.replace("general", "extra")),
                );
                let mut copy: Value = serde_json::from_str(&copy).unwrap();
                // The templates keep their names.
                copy["spec"]["template"]["spec"]["bootstrap"]["configRef"]["name"] = json!(general);
                copy["spec"]["template"]["spec"]["infrastructureRef"]["name"] = json!(general);
                extra.push(copy);
            }
            _ => {}
        }
    }
    objects.extend(extra);
    objects
}

/// A cluster of the simulator's own `sim` provider.
fn sim_objects(cluster: &str, cp: i64, workers: i64) -> Vec<Value> {
    let labels = json!({ "cluster.x-k8s.io/cluster-name": cluster });
    let pool = format!("{cluster}-workers");
    let pool_labels = json!({
        "cluster.x-k8s.io/cluster-name": cluster,
        "cluster.x-k8s.io/deployment-name": pool,
    });
    let meta = |name: &str| json!({ "name": name, "namespace": NS, "labels": labels });
    let infra = "infrastructure.cluster.x-k8s.io";
    vec![
        json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster", "metadata": meta(cluster),
            "spec": {
                "clusterNetwork": { "pods": { "cidrBlocks": ["192.168.0.0/16"] } },
                "controlPlaneRef": { "apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": format!("{cluster}-control-plane") },
                "infrastructureRef": { "apiGroup": infra, "kind": "SimCluster", "name": cluster },
            },
        }),
        json!({ "apiVersion": format!("{infra}/v1beta2"), "kind": "SimCluster", "metadata": meta(cluster), "spec": {} }),
        json!({
            "apiVersion": format!("{infra}/v1beta2"), "kind": "SimMachineTemplate",
            "metadata": meta(&format!("{cluster}-control-plane")),
            "spec": { "template": { "spec": { "cpus": 4, "memoryMiB": 8192, "image": "ubuntu-2204-kube-v1.20.2" } } },
        }),
        json!({
            "apiVersion": format!("{infra}/v1beta2"), "kind": "SimMachineTemplate", "metadata": meta(&pool),
            "spec": { "template": { "spec": { "cpus": 2, "memoryMiB": 4096, "image": "ubuntu-2204-kube-v1.20.2" } } },
        }),
        json!({
            "apiVersion": "controlplane.cluster.x-k8s.io/v1beta2", "kind": "KubeadmControlPlane",
            "metadata": meta(&format!("{cluster}-control-plane")),
            "spec": {
                "replicas": cp,
                "version": OLD,
                "machineTemplate": { "spec": { "infrastructureRef": { "apiGroup": infra, "kind": "SimMachineTemplate", "name": format!("{cluster}-control-plane") } } },
                "kubeadmConfigSpec": { "clusterConfiguration": { "imageRepository": "registry.k8s.io" } },
            },
        }),
        json!({
            "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfigTemplate", "metadata": meta(&pool),
            "spec": { "template": { "spec": { "joinConfiguration": { "nodeRegistration": { "criSocket": "/run/containerd/containerd.sock" } } } } },
        }),
        json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineDeployment", "metadata": meta(&pool),
            "spec": {
                "clusterName": cluster,
                "replicas": workers,
                "selector": { "matchLabels": pool_labels },
                "template": {
                    "metadata": { "labels": pool_labels },
                    "spec": {
                        "clusterName": cluster,
                        "version": OLD,
                        "bootstrap": { "configRef": { "apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "KubeadmConfigTemplate", "name": pool } },
                        "infrastructureRef": { "apiGroup": infra, "kind": "SimMachineTemplate", "name": pool },
                    },
                },
            },
        }),
    ]
}

// ---- what a converged cluster looks like ----------------------------------------------

struct Want<'a> {
    cluster: &'a str,
    control_plane: i64,
    control_plane_version: &'a str,
    /// MachineDeployment name, replicas.
    pools: Vec<(String, i64)>,
    worker_version: &'a str,
}

/// Ok when the cluster, its control plane and pools report exactly what `want` asks, and
/// every machine runs the wanted version with a node.
async fn converged(client: &Client, want: &Want<'_>) -> Result<(), String> {
    let cluster = get(client, &CLUSTER, want.cluster).await;
    if s(&cluster, "/status/phase") != "Provisioned" || !is_true(&cluster, "Available") {
        return Err(format!(
            "cluster phase {:?}, conditions {}",
            s(&cluster, "/status/phase"),
            cluster["status"]["conditions"]
        ));
    }
    let kcp = get(
        client,
        &KUBEADM_CONTROL_PLANE,
        s(&cluster, "/spec/controlPlaneRef/name"),
    )
    .await;
    let n = want.control_plane;
    let counts = |o: &Value| {
        (
            i(o, "/status/replicas"),
            i(o, "/status/readyReplicas"),
            i(o, "/status/availableReplicas"),
            i(o, "/status/upToDateReplicas"),
        )
    };
    if counts(&kcp) != (n, n, n, n)
        || !is_true(&kcp, "Available")
        || s(&kcp, "/status/version") != want.control_plane_version
    {
        return Err(format!(
            "KCP counts {:?} version {}",
            counts(&kcp),
            s(&kcp, "/status/version")
        ));
    }
    for (pool, n) in &want.pools {
        let md = get(client, &MACHINE_DEPLOYMENT, pool).await;
        let n = *n;
        if counts(&md) != (n, n, n, n)
            || s(&md, "/status/phase") != "Running"
            || i(&md, "/status/observedGeneration") != i(&md, "/metadata/generation")
        {
            return Err(format!(
                "{pool} counts {:?} phase {}",
                counts(&md),
                s(&md, "/status/phase")
            ));
        }
    }
    let machines = list(client, &MACHINE).await;
    let expected = n + want.pools.iter().map(|(_, n)| n).sum::<i64>();
    if machines.len() as i64 != expected {
        return Err(format!("{} machines, want {expected}", machines.len()));
    }
    for m in &machines {
        let control_plane = m
            .pointer("/metadata/labels/cluster.x-k8s.io~1control-plane")
            .is_some();
        let version = if control_plane {
            want.control_plane_version
        } else {
            want.worker_version
        };
        if s(m, "/status/phase") != "Running"
            || s(m, "/spec/version") != version
            || s(m, "/status/nodeRef/name") != name(m)
        {
            return Err(format!(
                "machine {} phase {} version {}",
                name(m),
                s(m, "/status/phase"),
                s(m, "/spec/version")
            ));
        }
    }
    Ok(())
}

async fn wait_converged(client: &Client, want: &Want<'_>, timeout: Duration) {
    wait_for(
        &format!("cluster {} to converge", want.cluster),
        timeout,
        || converged(client, want),
    )
    .await
}

/// A client of the workload cluster, from `<cluster>-kubeconfig` as CAPI writes it.
async fn workload_client(client: &Client, cluster: &str) -> (Client, String) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let secret = secrets.get(&format!("{cluster}-kubeconfig")).await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
    assert_eq!(
        secret
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .get("cluster.x-k8s.io/cluster-name")
            .map(String::as_str),
        Some(cluster)
    );
    let text = String::from_utf8(secret.data.unwrap()["value"].0.clone()).unwrap();
    let kubeconfig = Kubeconfig::from_yaml(&text).unwrap();
    let server = kubeconfig.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .server
        .clone()
        .unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    (Client::try_from(config).unwrap(), server)
}

async fn node_provider_ids(workload: &Client) -> BTreeMap<String, String> {
    let nodes: Api<Node> = Api::all(workload.clone());
    nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| {
            (
                n.metadata.name.unwrap(),
                n.spec.and_then(|s| s.provider_id).unwrap_or_default(),
            )
        })
        .collect()
}

async fn machine_provider_ids(client: &Client) -> BTreeMap<String, String> {
    list(client, &MACHINE)
        .await
        .iter()
        .map(|m| (name(m).to_string(), s(m, "/spec/providerID").to_string()))
        .collect()
}

/// Everything the contracts promise about a converged cluster of `provider`.
async fn check_contracts(client: &Client, provider: Provider, cluster_name: &str) {
    let (workload, server) = workload_client(client, cluster_name).await;
    let port: i64 = server.rsplit(':').next().unwrap().parse().unwrap();
    // Nodes: one per machine, same provider ID, the machine's kubelet version.
    let machines = list(client, &MACHINE).await;
    let nodes = node_provider_ids(&workload).await;
    assert_eq!(
        nodes,
        machine_provider_ids(client).await,
        "nodes and machines differ"
    );
    let prefix = match provider {
        Provider::VSphere => "vsphere://",
        Provider::Aws => "aws:///us-east-1a/i-",
        Provider::Azure => "azure:///subscriptions/",
        Provider::Sim => "sim://",
    };
    for m in &machines {
        let id = s(m, "/spec/providerID");
        assert!(id.starts_with(prefix), "{} has provider ID {id}", name(m));
        if provider == Provider::Azure {
            assert!(
                id.ends_with(&format!(
                    "/providers/Microsoft.Compute/virtualMachines/{}",
                    name(m)
                )),
                "{id}"
            );
        }
        assert!(
            m["status"]["addresses"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        );
        assert_eq!(
            m["status"]["initialization"],
            json!({"bootstrapDataSecretCreated": true, "infrastructureProvisioned": true})
        );
        for c in [
            "Ready",
            "Available",
            "UpToDate",
            "BootstrapConfigReady",
            "InfrastructureReady",
            "NodeReady",
            "NodeHealthy",
        ] {
            assert!(
                is_true(m, c),
                "{} condition {c}: {:?}",
                name(m),
                condition(m, c)
            );
        }
        // Infrastructure machine: the provider ID and the provider's ready field.
        let infra_kind = kind_named(s(m, "/spec/infrastructureRef/kind"));
        let infra = get(client, &infra_kind, s(m, "/spec/infrastructureRef/name")).await;
        assert_eq!(s(&infra, "/spec/providerID"), id);
        match provider {
            Provider::VSphere | Provider::Sim => {
                assert_eq!(infra["status"]["initialization"]["provisioned"], true)
            }
            Provider::Aws | Provider::Azure => assert_eq!(infra["status"]["ready"], true),
        }
        if provider == Provider::Aws {
            assert!(id.ends_with(s(&infra, "/spec/instanceID")));
            assert_eq!(infra["status"]["instanceState"], "running");
        }
        // Bootstrap data: the config's secret, key `value`, type cluster.x-k8s.io/secret.
        let config = get(
            client,
            &KUBEADM_CONFIG,
            s(m, "/spec/bootstrap/configRef/name"),
        )
        .await;
        let data_secret = s(&config, "/status/dataSecretName");
        assert_eq!(s(m, "/spec/bootstrap/dataSecretName"), data_secret);
        let secret = Api::<Secret>::namespaced(client.clone(), NS)
            .get(data_secret)
            .await
            .unwrap();
        assert_eq!(secret.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
        assert!(!secret.data.unwrap()["value"].0.is_empty());
    }
    let workload_nodes: Api<Node> = Api::all(workload.clone());
    for node in workload_nodes.list(&ListParams::default()).await.unwrap() {
        let machine = machines
            .iter()
            .find(|m| name(m) == node.metadata.name.as_deref().unwrap())
            .unwrap();
        assert_eq!(
            node.status.unwrap().node_info.unwrap().kubelet_version,
            s(machine, "/spec/version")
        );
    }
    // The endpoint: the workload apiserver, in the infrastructure cluster and the Cluster.
    let cluster = get(client, &CLUSTER, cluster_name).await;
    assert_eq!(
        cluster["spec"]["controlPlaneEndpoint"],
        json!({"host": "127.0.0.1", "port": port})
    );
    let infra = get(
        client,
        &provider.cluster_kind(),
        s(&cluster, "/spec/infrastructureRef/name"),
    )
    .await;
    assert_eq!(
        infra["spec"]["controlPlaneEndpoint"],
        json!({"host": "127.0.0.1", "port": port})
    );
    assert_eq!(
        cluster["status"]["initialization"],
        json!({"infrastructureProvisioned": true, "controlPlaneInitialized": true})
    );
    for c in [
        "InfrastructureReady",
        "ControlPlaneInitialized",
        "ControlPlaneAvailable",
        "WorkersAvailable",
        "RemoteConnectionProbe",
        "Available",
    ] {
        assert!(is_true(&cluster, c), "cluster condition {c}");
    }
    // The other cluster secrets.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    for suffix in ["ca", "etcd", "sa", "proxy"] {
        let secret = secrets
            .get(&format!("{cluster_name}-{suffix}"))
            .await
            .unwrap();
        assert_eq!(secret.type_.as_deref(), Some("cluster.x-k8s.io/secret"));
        assert!(secret.data.unwrap().contains_key("tls.crt"), "{suffix}");
    }
}

/// Every object's resource version in the namespace (the CAPI kinds and Secrets).
async fn resource_versions(client: &Client) -> BTreeMap<(String, String), String> {
    let mut versions = BTreeMap::new();
    for kind in all_kinds() {
        for o in list(client, &kind).await {
            versions.insert(
                (kind.kind.to_string(), name(&o).to_string()),
                s(&o, "/metadata/resourceVersion").to_string(),
            );
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    for secret in secrets.list(&ListParams::default()).await.unwrap() {
        versions.insert(
            ("Secret".into(), secret.metadata.name.unwrap()),
            secret.metadata.resource_version.unwrap(),
        );
    }
    versions
}

/// A converged cluster makes the simulator write nothing: its statuses are idempotent and
/// nothing it writes is pruned by the schemas (else it would write again every pass).
async fn assert_quiet(client: &Client, sim: &CloudSimulator) {
    // Aggregates (the Cluster's worker counts) follow their sources one pass later.
    wait_passes(sim, 3).await;
    let before = resource_versions(client).await;
    let statuses_before = statuses(client).await;
    wait_passes(sim, 5).await;
    let after = resource_versions(client).await;
    let changed: Vec<_> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    let statuses_after = statuses(client).await;
    for key in &changed {
        eprintln!(
            "{key:?} changed\nbefore: {}\nafter:  {}",
            statuses_before.get(*key).unwrap_or(&Value::Null),
            statuses_after.get(*key).unwrap_or(&Value::Null)
        );
    }
    assert!(
        changed.is_empty(),
        "a converged cluster changed: {changed:?}"
    );
}

// ---- watching a rollout --------------------------------------------------------------

#[derive(Debug, Default)]
struct RolloutStats {
    /// Per owner (control plane or deployment): most machines alive at once.
    max_live: BTreeMap<String, usize>,
    /// Per owner: most live machines not Ready at once.
    max_unready: BTreeMap<String, usize>,
    seen: BTreeSet<String>,
}

fn owner_of(m: &Value) -> String {
    let labels = &m["metadata"]["labels"];
    labels["cluster.x-k8s.io/control-plane-name"]
        .as_str()
        .or(labels["cluster.x-k8s.io/deployment-name"].as_str())
        .unwrap_or("none")
        .to_string()
}

/// Watches Machines and records, after every event, how many each owner has alive and
/// not ready.
fn observe_rollout(client: &Client) -> (Arc<Mutex<RolloutStats>>, tokio::task::JoinHandle<()>) {
    let stats = Arc::new(Mutex::new(RolloutStats::default()));
    let api = api(client, &MACHINE);
    let recorded = stats.clone();
    let task = tokio::spawn(async move {
        let mut machines: BTreeMap<String, Value> = BTreeMap::new();
        let mut events = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    let v = serde_json::to_value(o).unwrap();
                    machines.insert(name(&v).to_string(), v);
                }
                Ok(watcher::Event::Delete(o)) => {
                    machines.remove(o.metadata.name.as_deref().unwrap_or_default());
                }
                _ => continue,
            }
            let mut live: BTreeMap<String, usize> = BTreeMap::new();
            let mut unready: BTreeMap<String, usize> = BTreeMap::new();
            for m in machines
                .values()
                .filter(|m| m.pointer("/metadata/deletionTimestamp").is_none())
            {
                *live.entry(owner_of(m)).or_default() += 1;
                if !is_true(m, "Ready") {
                    *unready.entry(owner_of(m)).or_default() += 1;
                }
            }
            let mut stats = recorded.lock().unwrap();
            stats.seen.extend(machines.keys().cloned());
            for (owner, n) in live {
                let max = stats.max_live.entry(owner).or_default();
                *max = (*max).max(n);
            }
            for (owner, n) in unready {
                let max = stats.max_unready.entry(owner).or_default();
                *max = (*max).max(n);
            }
        }
    });
    (stats, task)
}

/// Changes the Kubernetes version of the control plane and every pool, waits for the
/// rollout, and checks it replaced each machine exactly once, one at a time.
async fn roll_version(
    client: &Client,
    want: &mut Want<'_>,
    kcp: &str,
    replicas_by_owner: &BTreeMap<String, usize>,
) {
    let before: BTreeSet<String> = list(client, &MACHINE)
        .await
        .iter()
        .map(|m| name(m).to_string())
        .collect();
    let (stats, watch) = observe_rollout(client);
    merge(
        client,
        &KUBEADM_CONTROL_PLANE,
        kcp,
        json!({ "spec": { "version": NEW } }),
    )
    .await;
    for (pool, _) in &want.pools {
        merge(
            client,
            &MACHINE_DEPLOYMENT,
            pool,
            json!({ "spec": { "template": { "spec": { "version": NEW } } } }),
        )
        .await;
    }
    want.control_plane_version = NEW;
    want.worker_version = NEW;
    wait_converged(client, want, Duration::from_secs(300)).await;
    watch.abort();
    let after: BTreeSet<String> = list(client, &MACHINE)
        .await
        .iter()
        .map(|m| name(m).to_string())
        .collect();
    let stats = stats.lock().unwrap();
    assert!(
        before.is_disjoint(&after),
        "machines kept through the rollout: {:?}",
        before.intersection(&after).collect::<Vec<_>>()
    );
    let created: BTreeSet<&String> = stats.seen.difference(&before).collect();
    assert_eq!(
        created.len(),
        before.len(),
        "each machine replaced exactly once; new: {created:?}"
    );
    for (owner, replicas) in replicas_by_owner {
        assert!(
            stats.max_live[owner] <= replicas + 1,
            "{owner}: up to {} machines at once",
            stats.max_live[owner]
        );
        assert!(
            stats.max_unready[owner] <= 1,
            "{owner}: up to {} machines not ready at once",
            stats.max_unready[owner]
        );
    }
    eprintln!("rollout: {stats:?}");
}

async fn cloud_test(cloud: &str, provider: Provider, scale: bool) {
    init_tracing();
    let _stop = StopWorkloads;
    let started = Instant::now();
    let (_cp, client) = management(&format!("sim-{cloud}")).await;
    let sim = CloudSimulator::start(client.clone(), nodes_with_network());
    apply_objects(&client, &cloud_objects(cloud)).await;
    let cluster = format!("demo-{cloud}");
    let kcp = format!("demo-{cloud}-control-plane");
    let (general, extra) = (
        format!("demo-{cloud}-general"),
        format!("demo-{cloud}-extra"),
    );
    let mut want = Want {
        cluster: &cluster,
        control_plane: 3,
        control_plane_version: OLD,
        pools: vec![(general.clone(), 3), (extra.clone(), 3)],
        worker_version: OLD,
    };
    wait_converged(&client, &want, Duration::from_secs(240)).await;
    eprintln!("{cloud}: converged after {:?}", started.elapsed());
    check_contracts(&client, provider, &cluster).await;
    assert_quiet(&client, &sim).await;
    let (workload, server) = workload_client(&client, &cluster).await;

    if scale {
        merge(
            &client,
            &KUBEADM_CONTROL_PLANE,
            &kcp,
            json!({ "spec": { "replicas": 5 } }),
        )
        .await;
        merge(
            &client,
            &MACHINE_DEPLOYMENT,
            &general,
            json!({ "spec": { "replicas": 5 } }),
        )
        .await;
        want.control_plane = 5;
        want.pools[0].1 = 5;
        wait_converged(&client, &want, Duration::from_secs(120)).await;
        assert_eq!(node_provider_ids(&workload).await.len(), 13);
        merge(
            &client,
            &KUBEADM_CONTROL_PLANE,
            &kcp,
            json!({ "spec": { "replicas": 3 } }),
        )
        .await;
        merge(
            &client,
            &MACHINE_DEPLOYMENT,
            &general,
            json!({ "spec": { "replicas": 2 } }),
        )
        .await;
        want.control_plane = 3;
        want.pools[0].1 = 2;
        wait_converged(&client, &want, Duration::from_secs(120)).await;
        // Deleted machines took their nodes with them.
        wait_for(
            "nodes to follow machines",
            Duration::from_secs(20),
            || async {
                let (nodes, machines) = (
                    node_provider_ids(&workload).await,
                    machine_provider_ids(&client).await,
                );
                (nodes == machines)
                    .then_some(())
                    .ok_or_else(|| format!("{} nodes, {} machines", nodes.len(), machines.len()))
            },
        )
        .await;
        eprintln!("{cloud}: scaled up and down after {:?}", started.elapsed());
    }

    let replicas: BTreeMap<String, usize> = [(kcp.clone(), want.control_plane as usize)]
        .into_iter()
        .chain(want.pools.iter().map(|(p, n)| (p.clone(), *n as usize)))
        .collect();
    roll_version(&client, &mut want, &kcp, &replicas).await;
    check_contracts(&client, provider, &cluster).await;
    // The same workload cluster throughout.
    assert_eq!(workload_client(&client, &cluster).await.1, server);
    eprintln!("{cloud}: rolled to {NEW} after {:?}", started.elapsed());
    sim.stop();
}

#[tokio::test]
async fn vsphere_cluster_converges_scales_and_rolls() {
    cloud_test("vsphere", Provider::VSphere, true).await;
}

#[tokio::test]
async fn aws_cluster_converges_and_rolls() {
    cloud_test("aws", Provider::Aws, false).await;
}

#[tokio::test]
async fn azure_cluster_converges_and_rolls() {
    cloud_test("azure", Provider::Azure, false).await;
}

// ---- pause ---------------------------------------------------------------------------

/// Status of every object, and the set of objects.
async fn statuses(client: &Client) -> BTreeMap<(String, String), Value> {
    let mut all = BTreeMap::new();
    for kind in all_kinds() {
        for o in list(client, &kind).await {
            all.insert(
                (kind.kind.to_string(), name(&o).to_string()),
                o["status"].clone(),
            );
        }
    }
    all
}

#[tokio::test]
async fn a_paused_cluster_sees_no_change() {
    init_tracing();
    let _stop = StopWorkloads;
    let (_cp, client) = management("sim-pause").await;
    let sim = CloudSimulator::start(client.clone(), nodes_with_network());
    apply_objects(&client, &sim_objects("paused", 1, 2)).await;
    let mut want = Want {
        cluster: "paused",
        control_plane: 1,
        control_plane_version: OLD,
        pools: vec![("paused-workers".into(), 2)],
        worker_version: OLD,
    };
    wait_converged(&client, &want, Duration::from_secs(240)).await;
    check_contracts(&client, Provider::Sim, "paused").await;
    let (workload, _) = workload_client(&client, "paused").await;

    merge(
        &client,
        &CLUSTER,
        "paused",
        json!({ "spec": { "paused": true } }),
    )
    .await;
    wait_passes(&sim, 3).await;
    let versions_before = resource_versions(&client).await;
    let statuses_before = statuses(&client).await;
    let nodes_before = node_provider_ids(&workload).await;
    // Requests that would scale the pool and roll the control plane.
    merge(
        &client,
        &MACHINE_DEPLOYMENT,
        "paused-workers",
        json!({ "spec": { "replicas": 3 } }),
    )
    .await;
    merge(
        &client,
        &KUBEADM_CONTROL_PLANE,
        "paused-control-plane",
        json!({ "spec": { "version": NEW } }),
    )
    .await;
    wait_passes(&sim, 10).await;
    let versions_after = resource_versions(&client).await;
    let changed: Vec<_> = versions_after
        .iter()
        .filter(|(k, v)| versions_before.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(
        changed,
        vec![
            (
                "KubeadmControlPlane".to_string(),
                "paused-control-plane".to_string()
            ),
            (
                "MachineDeployment".to_string(),
                "paused-workers".to_string()
            ),
        ],
        "only the objects the test changed may change while paused"
    );
    assert_eq!(
        versions_before.len(),
        versions_after.len(),
        "no object may appear or go"
    );
    assert_eq!(
        statuses(&client).await,
        statuses_before,
        "no status may change while paused"
    );
    assert_eq!(node_provider_ids(&workload).await, nodes_before);

    // The annotation pauses as spec.paused does; and one object alone can be paused.
    merge(
        &client,
        &CLUSTER,
        "paused",
        json!({
            "spec": { "paused": false },
            "metadata": { "annotations": { "cluster.x-k8s.io/paused": "" } },
        }),
    )
    .await;
    wait_passes(&sim, 5).await;
    assert_eq!(
        statuses(&client).await,
        statuses_before,
        "the paused annotation must pause too"
    );
    merge(
        &client,
        &MACHINE_DEPLOYMENT,
        "paused-workers",
        json!({ "metadata": { "annotations": { "cluster.x-k8s.io/paused": "" } } }),
    )
    .await;
    merge(
        &client,
        &CLUSTER,
        "paused",
        json!({ "metadata": { "annotations": { "cluster.x-k8s.io/paused": null } } }),
    )
    .await;
    want.control_plane_version = NEW;
    wait_for(
        "the control plane to roll while the pool stays paused",
        Duration::from_secs(120),
        || async {
            let kcp = get(&client, &KUBEADM_CONTROL_PLANE, "paused-control-plane").await;
            (s(&kcp, "/status/version") == NEW
                && i(&kcp, "/status/readyReplicas") == 1
                && i(&kcp, "/status/replicas") == 1)
                .then_some(())
                .ok_or_else(|| format!("KCP {}", kcp["status"]))
        },
    )
    .await;
    let sets = list(&client, &MACHINE_SET).await;
    assert_eq!(sets.len(), 1);
    assert_eq!(
        i(&sets[0], "/spec/replicas"),
        2,
        "a paused MachineDeployment does not scale"
    );
    merge(
        &client,
        &MACHINE_DEPLOYMENT,
        "paused-workers",
        json!({ "metadata": { "annotations": { "cluster.x-k8s.io/paused": null } } }),
    )
    .await;
    want.pools[0].1 = 3;
    wait_converged(&client, &want, Duration::from_secs(120)).await;
    sim.stop();
}

// ---- move ----------------------------------------------------------------------------

fn strip_for_copy(object: &mut Value, uids: &BTreeMap<String, String>) {
    let meta = object["metadata"].as_object_mut().unwrap();
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
        "generation",
        "selfLink",
    ] {
        meta.remove(field);
    }
    if let Some(refs) = meta
        .get_mut("ownerReferences")
        .and_then(Value::as_array_mut)
    {
        refs.retain(|r| uids.contains_key(r["uid"].as_str().unwrap_or_default()));
        for r in refs.iter_mut() {
            r["uid"] = json!(uids[r["uid"].as_str().unwrap()]);
        }
    }
}

/// Copies the cluster's objects with their status from `from` to `to`, owners first,
/// owner references rewritten to the new UIDs (as clusterctl move does).
async fn copy_cluster(from: &Client, to: &Client) {
    let mut uids: BTreeMap<String, String> = BTreeMap::new();
    let order = [
        CLUSTER,
        Provider::Sim.cluster_kind(),
        KUBEADM_CONTROL_PLANE,
        Provider::Sim.template_kind(),
        KUBEADM_CONFIG_TEMPLATE,
        MACHINE_DEPLOYMENT,
        MACHINE_SET,
        MACHINE,
        KUBEADM_CONFIG,
        Provider::Sim.machine_kind(),
    ];
    for kind in order {
        for mut object in list(from, &kind).await {
            let old_uid = s(&object, "/metadata/uid").to_string();
            let status = object.as_object_mut().unwrap().remove("status");
            strip_for_copy(&mut object, &uids);
            let dynamic: DynamicObject = serde_json::from_value(object.clone()).unwrap();
            let created = api(to, &kind)
                .create(&PostParams::default(), &dynamic)
                .await
                .unwrap();
            uids.insert(old_uid, created.metadata.uid.clone().unwrap());
            if let Some(status) = status {
                api(to, &kind)
                    .patch_status(
                        name(&object),
                        &PatchParams::default(),
                        &Patch::Merge(&json!({ "status": status })),
                    )
                    .await
                    .unwrap();
            }
        }
    }
    let secrets_from: Api<Secret> = Api::namespaced(from.clone(), NS);
    let secrets_to: Api<Secret> = Api::namespaced(to.clone(), NS);
    for secret in secrets_from
        .list(&ListParams::default().labels("cluster.x-k8s.io/cluster-name"))
        .await
        .unwrap()
    {
        let mut object = serde_json::to_value(secret).unwrap();
        strip_for_copy(&mut object, &uids);
        secrets_to
            .create(
                &PostParams::default(),
                &serde_json::from_value(object).unwrap(),
            )
            .await
            .unwrap();
    }
}

/// Deletes the moved objects from the source as clusterctl does: marked delete-for-move,
/// finalizers removed.
async fn delete_moved(client: &Client) {
    for kind in all_kinds() {
        for object in list(client, &kind).await {
            let patch = json!({ "metadata": {
                "annotations": { "clusterctl.cluster.x-k8s.io/delete-for-move": "" },
                "finalizers": null,
            }});
            merge(client, &kind, name(&object), patch).await;
        }
    }
    for kind in all_kinds() {
        for object in list(client, &kind).await {
            let _ = api(client, &kind)
                .delete(name(&object), &DeleteParams::default())
                .await;
        }
    }
}

#[tokio::test]
async fn a_moved_cluster_is_continued_without_replacing_machines() {
    init_tracing();
    let _stop = StopWorkloads;
    let (_source_cp, source) = management("sim-move-source").await;
    let source_sim = CloudSimulator::start(source.clone(), nodes_with_network());
    apply_objects(&source, &sim_objects("moved", 1, 2)).await;
    let mut want = Want {
        cluster: "moved",
        control_plane: 1,
        control_plane_version: OLD,
        pools: vec![("moved-workers".into(), 2)],
        worker_version: OLD,
    };
    wait_converged(&source, &want, Duration::from_secs(240)).await;
    check_contracts(&source, Provider::Sim, "moved").await;
    let machines_before = machine_provider_ids(&source).await;
    let (workload, server) = workload_client(&source, "moved").await;
    let nodes_before = node_provider_ids(&workload).await;

    // clusterctl move: pause the source, copy, unpause the target, delete the source.
    merge(
        &source,
        &CLUSTER,
        "moved",
        json!({ "spec": { "paused": true } }),
    )
    .await;
    wait_passes(&source_sim, 3).await;
    let (_target_cp, target) = management("sim-move-target").await;
    copy_cluster(&source, &target).await;
    let target_sim = CloudSimulator::start(target.clone(), nodes_with_network());
    merge(
        &target,
        &CLUSTER,
        "moved",
        json!({ "spec": { "paused": false } }),
    )
    .await;
    delete_moved(&source).await;
    wait_passes(&target_sim, 10).await;
    wait_passes(&source_sim, 3).await;

    wait_converged(&target, &want, Duration::from_secs(60)).await;
    assert_eq!(
        machine_provider_ids(&target).await,
        machines_before,
        "no machine may be replaced"
    );
    assert_eq!(
        workload_client(&target, "moved").await.1,
        server,
        "the same workload apiserver"
    );
    assert_eq!(node_provider_ids(&workload).await, nodes_before);
    assert!(
        list(&source, &MACHINE).await.is_empty(),
        "the source keeps no machine"
    );
    check_contracts(&target, Provider::Sim, "moved").await;

    // The target's simulator carries on: a new worker joins the same workload cluster.
    merge(
        &target,
        &MACHINE_DEPLOYMENT,
        "moved-workers",
        json!({ "spec": { "replicas": 3 } }),
    )
    .await;
    want.pools[0].1 = 3;
    wait_converged(&target, &want, Duration::from_secs(120)).await;
    assert_eq!(
        node_provider_ids(&workload).await,
        machine_provider_ids(&target).await
    );
    assert_eq!(node_provider_ids(&workload).await.len(), 4);
    source_sim.stop();
    target_sim.stop();
}

/// `strata-agent backup` or `restore` with `args`: whether it succeeded, and its output.
fn recovery_command(args: &[&std::ffi::OsStr]) -> (bool, String) {
    strata_e2e::cli_run::run(
        std::process::Command::new(strata_e2e::process_kubelet::default_agent_binary()).args(args),
    )
}

/// Disaster recovery by hand: the cluster's objects written to a directory with
/// `strata-agent backup`, its management cluster then lost; a corrupt
/// copy and another cluster's name refused without a write; `strata-agent restore` into a
/// new management cluster, paused, statuses as backed up, a rerun creating nothing; and once
/// unpaused, the simulator there adopts every machine without replacing one.
#[tokio::test]
async fn a_cluster_restored_from_its_backup_is_continued_without_replacing_machines() {
    init_tracing();
    let _stop = StopWorkloads;
    let (source_cp, source) = management("sim-dr-source").await;
    let source_sim = CloudSimulator::start(source.clone(), nodes_with_network());
    apply_objects(&source, &sim_objects("dr", 1, 2)).await;
    let want = Want {
        cluster: "dr",
        control_plane: 1,
        control_plane_version: OLD,
        pools: vec![("dr-workers".into(), 2)],
        worker_version: OLD,
    };
    wait_converged(&source, &want, Duration::from_secs(240)).await;
    let machines_before = machine_provider_ids(&source).await;
    let (workload, server) = workload_client(&source, "dr").await;
    let nodes_before = node_provider_ids(&workload).await;

    // Its last backup, taken once it stands still (as a site's CAPI stands still once its
    // control plane is gone); a second one into the same directory is refused.
    merge(
        &source,
        &CLUSTER,
        "dr",
        json!({ "spec": { "paused": true } }),
    )
    .await;
    wait_passes(&source_sim, 3).await;
    let backed_up = statuses(&source).await;
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("dr");
    let source_kubeconfig = source_cp.kubeconfig_path();
    let backup_args = [
        "backup".as_ref(),
        "--kubeconfig".as_ref(),
        source_kubeconfig.as_os_str(),
        "--namespace".as_ref(),
        NS.as_ref(),
        "--cluster".as_ref(),
        "dr".as_ref(),
        "--to-directory".as_ref(),
        backup.as_os_str(),
    ];
    let (ok, text) = recovery_command(&backup_args);
    assert!(ok, "{text}");
    let bytes: u64 = std::fs::read_dir(backup.join("objects"))
        .unwrap()
        .map(|f| f.unwrap().metadata().unwrap().len())
        .sum();
    eprintln!("{} ({bytes} bytes of objects)", text.trim());
    assert!(
        text.contains(&format!(
            "objects of Cluster {NS}/dr to {}",
            backup.display()
        )),
        "{text}"
    );
    let (ok, again) = recovery_command(&backup_args);
    assert!(
        !ok && again.contains("exists already; a backup goes to a new directory"),
        "{again}"
    );

    // The management cluster is lost.
    let (target_cp, target) = management("sim-dr-target").await;
    let target_kubeconfig = target_cp.kubeconfig_path();
    let restore = |from: &std::path::Path, cluster: &str| {
        recovery_command(&[
            "restore".as_ref(),
            "--kubeconfig".as_ref(),
            target_kubeconfig.as_os_str(),
            "--from-directory".as_ref(),
            from.as_os_str(),
            "--cluster".as_ref(),
            format!("{NS}/{cluster}").as_ref(),
        ])
    };

    // A corrupt copy, or a backup of another cluster: refused, and nothing is written.
    let corrupt = dir.path().join("corrupt");
    std::fs::create_dir_all(corrupt.join("objects")).unwrap();
    let mut edited = None;
    for entry in std::fs::read_dir(&backup)
        .unwrap()
        .chain(std::fs::read_dir(backup.join("objects")).unwrap())
    {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue;
        }
        let relative = path.strip_prefix(&backup).unwrap().to_path_buf();
        let mut bytes = std::fs::read(&path).unwrap();
        if edited.is_none() && relative.to_string_lossy().contains("machine-") {
            bytes.extend_from_slice(b"\n");
            edited = Some(relative.clone());
        }
        std::fs::write(corrupt.join(&relative), bytes).unwrap();
    }
    let edited = edited.unwrap();
    let (ok, text) = restore(&corrupt, "dr");
    assert!(
        !ok && text.contains(&format!("{}: sha256 is", edited.display()))
            && text.contains("the file is corrupt or was edited"),
        "{text}"
    );
    let (ok, text) = restore(&backup, "other");
    assert!(
        !ok && text.contains(&format!(
            "the backup is of cluster {NS}/dr, not of {NS}/other"
        )),
        "{text}"
    );
    assert!(list(&target, &CLUSTER).await.is_empty());
    assert!(list(&target, &MACHINE).await.is_empty());

    // Restored: paused, each status as it was backed up; a rerun creates nothing.
    let (ok, text) = restore(&backup, "dr");
    assert!(
        ok && text.contains("paused: ") && text.contains(" created, 0 restored before"),
        "{text}"
    );
    let cluster = get(&target, &CLUSTER, "dr").await;
    assert_eq!(cluster["spec"]["paused"], json!(true));
    assert_eq!(statuses(&target).await, backed_up);
    let (ok, text) = restore(&backup, "dr");
    assert!(ok && text.contains(": 0 created, "), "{text}");
    // An object of the same name that is not from this backup stops a restore there,
    // naming it, and changes nothing.
    let secrets: Api<Secret> = Api::namespaced(target.clone(), NS);
    let mark = |value: &str| json!({ "metadata": { "annotations": { "strata.dev/restored-from": value } } });
    let kubeconfig_secret = "dr-kubeconfig";
    let ours = secrets
        .get(kubeconfig_secret)
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap()["strata.dev/restored-from"]
        .clone();
    secrets
        .patch(
            kubeconfig_secret,
            &PatchParams::default(),
            &Patch::Merge(mark("someone else")),
        )
        .await
        .unwrap();
    let (ok, text) = restore(&backup, "dr");
    assert!(
        !ok && text.contains(&format!(
            "Secret {NS}/{kubeconfig_secret} exists in the target and is not from this backup; the restore stops there (0 object(s) created before it"
        )),
        "{text}"
    );
    secrets
        .patch(
            kubeconfig_secret,
            &PatchParams::default(),
            &Patch::Merge(mark(&ours)),
        )
        .await
        .unwrap();
    assert_eq!(statuses(&target).await, backed_up);

    // Unpaused, the new management cluster's simulator carries on with the same machines,
    // in the same workload cluster.
    let target_sim = CloudSimulator::start(target.clone(), nodes_with_network());
    merge(
        &target,
        &CLUSTER,
        "dr",
        json!({ "spec": { "paused": false } }),
    )
    .await;
    wait_passes(&target_sim, 10).await;
    wait_converged(&target, &want, Duration::from_secs(60)).await;
    assert_eq!(
        machine_provider_ids(&target).await,
        machines_before,
        "no machine may be replaced"
    );
    assert_eq!(workload_client(&target, "dr").await.1, server);
    assert_eq!(node_provider_ids(&workload).await, nodes_before);
    source_sim.stop();
    target_sim.stop();
}

// ---- faults --------------------------------------------------------------------------

#[tokio::test]
async fn faults_on_request() {
    init_tracing();
    let _stop = StopWorkloads;
    let (_cp, client) = management("sim-faults").await;
    let sim = CloudSimulator::start(client.clone(), nodes_with_network());
    apply_objects(&client, &sim_objects("faulty", 1, 2)).await;
    let mut want = Want {
        cluster: "faulty",
        control_plane: 1,
        control_plane_version: OLD,
        pools: vec![("faulty-workers".into(), 2)],
        worker_version: OLD,
    };
    wait_converged(&client, &want, Duration::from_secs(240)).await;
    let md_ready = |client: Client| async move {
        i(
            &get(&client, &MACHINE_DEPLOYMENT, "faulty-workers").await,
            "/status/readyReplicas",
        )
    };

    // A node that goes NotReady: its Machine stops being Ready, the pool counts one less.
    let worker = list(&client, &MACHINE)
        .await
        .into_iter()
        .find(|m| owner_of(m) == "faulty-workers")
        .unwrap();
    let worker = name(&worker).to_string();
    sim.node_not_ready(NS, &worker).await.unwrap();
    wait_for(
        "the machine to report its node not ready",
        Duration::from_secs(30),
        || async {
            let m = get(&client, &MACHINE, &worker).await;
            let ready = md_ready(client.clone()).await;
            (!is_true(&m, "Ready") && !is_true(&m, "NodeReady") && ready == 1)
                .then_some(())
                .ok_or_else(|| format!("Ready {:?}, pool ready {ready}", condition(&m, "Ready")))
        },
    )
    .await;
    sim.node_ready(NS, &worker).await.unwrap();
    wait_converged(&client, &want, Duration::from_secs(30)).await;

    // A slow machine: provisioning takes the extra time.
    sim.slow_provisioning(NS, "faulty-workers-", Duration::from_secs(5));
    let before: BTreeSet<String> = machine_provider_ids(&client).await.into_keys().collect();
    merge(
        &client,
        &MACHINE_DEPLOYMENT,
        "faulty-workers",
        json!({ "spec": { "replicas": 3 } }),
    )
    .await;
    let new_machine = wait_for("the new machine", Duration::from_secs(30), || async {
        let now: BTreeSet<String> = machine_provider_ids(&client).await.into_keys().collect();
        now.difference(&before)
            .next()
            .cloned()
            .ok_or_else(|| "none yet".to_string())
    })
    .await;
    let appeared = Instant::now();
    want.pools[0].1 = 3;
    wait_converged(&client, &want, Duration::from_secs(60)).await;
    assert!(
        appeared.elapsed() >= Duration::from_secs(5),
        "the slow machine ran after {:?}",
        appeared.elapsed()
    );
    eprintln!(
        "slow machine {new_machine} ran after {:?}",
        appeared.elapsed()
    );
    sim.clear_faults();

    // A machine that fails to provision: Failed with the reason, the pool not available.
    sim.fail_provisioning(NS, "faulty-workers-", "InsufficientCapacity");
    merge(
        &client,
        &MACHINE_DEPLOYMENT,
        "faulty-workers",
        json!({ "spec": { "replicas": 4 } }),
    )
    .await;
    let failed = wait_for("a failed machine", Duration::from_secs(60), || async {
        list(&client, &MACHINE)
            .await
            .into_iter()
            .find(|m| s(m, "/status/phase") == "Failed")
            .ok_or_else(|| "no failed machine yet".to_string())
    })
    .await;
    let reason = condition(&failed, "InfrastructureReady").unwrap();
    assert_eq!(reason["status"], "False");
    assert_eq!(reason["reason"], "InsufficientCapacity");
    assert_eq!(
        failed["status"]["deprecated"]["v1beta1"]["failureReason"],
        "CreateError"
    );
    let infra = get(&client, &Provider::Sim.machine_kind(), name(&failed)).await;
    assert_eq!(infra["status"]["state"], "Failed");
    assert!(s(&failed, "/spec/providerID").is_empty());
    wait_for(
        "the pool to report the failure",
        Duration::from_secs(30),
        || async {
            let md = get(&client, &MACHINE_DEPLOYMENT, "faulty-workers").await;
            (s(&md, "/status/phase") == "Failed" && i(&md, "/status/readyReplicas") == 3)
                .then_some(())
                .ok_or_else(|| format!("{}", md["status"]))
        },
    )
    .await;
    // Once the fault is gone, deleting the failed machine lets the set replace it.
    sim.clear_faults();
    api(&client, &MACHINE)
        .delete(name(&failed), &DeleteParams::default())
        .await
        .unwrap();
    want.pools[0].1 = 4;
    wait_converged(&client, &want, Duration::from_secs(60)).await;

    // Deleting the Cluster deletes its machines and stops its workload control plane.
    let cluster = get(&client, &CLUSTER, "faulty").await;
    let id = s(&cluster, "/metadata/annotations/sim.strata.dev~1cluster-id").to_string();
    assert!(workload::running(&id).is_some());
    let (workload_api, _) = workload_client(&client, "faulty").await;
    api(&client, &CLUSTER)
        .delete("faulty", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        "the cluster to be gone",
        Duration::from_secs(60),
        || async {
            match api(&client, &CLUSTER).get_opt("faulty").await.unwrap() {
                None => Ok(()),
                Some(c) => Err(format!(
                    "finalizers {:?}, {} machines",
                    c.metadata.finalizers,
                    list(&client, &MACHINE).await.len()
                )),
            }
        },
    )
    .await;
    assert!(list(&client, &MACHINE).await.is_empty());
    assert!(
        list(&client, &Provider::Sim.machine_kind())
            .await
            .is_empty()
    );
    assert!(
        list(&client, &Provider::Sim.cluster_kind())
            .await
            .is_empty()
    );
    assert!(workload::running(&id).is_none());
    wait_for(
        "the workload apiserver to stop",
        Duration::from_secs(30),
        || async {
            let nodes: Api<Node> = Api::all(workload_api.clone());
            match nodes.list(&ListParams::default()).await {
                Err(_) => Ok(()),
                Ok(list) => Err(format!("still serving {} nodes", list.items.len())),
            }
        },
    )
    .await;
    sim.stop();
}

// ---- the binary ----------------------------------------------------------------------

/// Health checks as Strata builds them (`strata_core::capi`), with a short unhealthy
/// timeout: one for the control plane and one for the pool.
fn health_checks(cluster: &str, unhealthy_seconds: i64) -> Vec<Value> {
    let check = |name: String, selector: Value| {
        json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineHealthCheck",
            "metadata": { "name": name, "namespace": NS, "labels": { "cluster.x-k8s.io/cluster-name": cluster } },
            "spec": {
                "clusterName": cluster,
                "selector": { "matchLabels": selector },
                "checks": {
                    "nodeStartupTimeoutSeconds": 600,
                    "unhealthyNodeConditions": [
                        { "type": "Ready", "status": "Unknown", "timeoutSeconds": unhealthy_seconds },
                        { "type": "Ready", "status": "False", "timeoutSeconds": unhealthy_seconds },
                    ],
                },
                "remediation": { "triggerIf": { "unhealthyLessThanOrEqualTo": "40%" } },
            },
        })
    };
    vec![
        check(
            format!("{cluster}-control-plane"),
            json!({
                "cluster.x-k8s.io/cluster-name": cluster,
                "cluster.x-k8s.io/control-plane-name": format!("{cluster}-control-plane"),
            }),
        ),
        check(
            format!("{cluster}-workers"),
            json!({
                "cluster.x-k8s.io/cluster-name": cluster,
                "cluster.x-k8s.io/deployment-name": format!("{cluster}-workers"),
            }),
        ),
    ]
}

fn reason<'a>(v: &'a Value, kind: &str) -> &'a str {
    condition(v, kind).map_or("", |c| s(c, "/reason"))
}

/// A worker whose node stays NotReady past its health check's timeout is replaced; while
/// more of the pool is unhealthy than the check allows (two of three, over 40%), none is.
#[tokio::test]
async fn unhealthy_machines_are_replaced_only_while_few_are() {
    init_tracing();
    let _stop = StopWorkloads;
    let (_cp, client) = management("sim-health").await;
    let sim = CloudSimulator::start(client.clone(), nodes_with_network());
    let mut objects = sim_objects("healing", 1, 3);
    objects.extend(health_checks("healing", 2));
    apply_objects(&client, &objects).await;
    let want = Want {
        cluster: "healing",
        control_plane: 1,
        control_plane_version: OLD,
        pools: vec![("healing-workers".into(), 3)],
        worker_version: OLD,
    };
    wait_converged(&client, &want, Duration::from_secs(240)).await;
    let pool_check = "healing-workers";
    wait_for(
        "every machine checked healthy",
        Duration::from_secs(30),
        || async {
            let machines = list(&client, &MACHINE).await;
            let check = get(&client, &MACHINE_HEALTH_CHECK, pool_check).await;
            let unchecked: Vec<&str> = machines
                .iter()
                .filter(|m| !is_true(m, "HealthCheckSucceeded"))
                .map(name)
                .collect();
            (unchecked.is_empty()
                && i(&check, "/status/expectedMachines") == 3
                && i(&check, "/status/currentHealthy") == 3
                && i(&check, "/status/remediationsAllowed") == 1
                && is_true(&check, "RemediationAllowed"))
            .then_some(())
            .ok_or_else(|| format!("unchecked {unchecked:?}, check status {}", check["status"]))
        },
    )
    .await;
    // The Cluster owns its checks, which is how a move finds them.
    let cluster_uid = s(&get(&client, &CLUSTER, "healing").await, "/metadata/uid").to_string();
    for check in list(&client, &MACHINE_HEALTH_CHECK).await {
        assert_eq!(
            s(&check, "/metadata/ownerReferences/0/uid"),
            cluster_uid,
            "{}",
            name(&check)
        );
    }
    let control_plane: Vec<String> = list(&client, &MACHINE)
        .await
        .iter()
        .filter(|m| owner_of(m) != "healing-workers")
        .map(|m| name(m).to_string())
        .collect();

    // Two of three workers go NotReady while the check is paused, so that it first sees
    // them unhealthy together: over 40%, it marks them and remediates neither.
    merge(
        &client,
        &MACHINE_HEALTH_CHECK,
        pool_check,
        json!({ "metadata": { "annotations": { "cluster.x-k8s.io/paused": "" } } }),
    )
    .await;
    wait_passes(&sim, 2).await;
    let workers: Vec<String> = list(&client, &MACHINE)
        .await
        .iter()
        .filter(|m| owner_of(m) == "healing-workers")
        .map(|m| name(m).to_string())
        .collect();
    assert_eq!(workers.len(), 3);
    let (failing, recovering) = (workers[0].clone(), workers[1].clone());
    sim.node_not_ready(NS, &failing).await.unwrap();
    sim.node_not_ready(NS, &recovering).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    merge(
        &client,
        &MACHINE_HEALTH_CHECK,
        pool_check,
        json!({ "metadata": { "annotations": { "cluster.x-k8s.io/paused": null } } }),
    )
    .await;
    wait_for(
        "two machines marked unhealthy",
        Duration::from_secs(30),
        || async {
            let check = get(&client, &MACHINE_HEALTH_CHECK, pool_check).await;
            let mut reasons = Vec::new();
            for m in [&failing, &recovering] {
                let machine = get(&client, &MACHINE, m).await;
                reasons.push(reason(&machine, "HealthCheckSucceeded").to_string());
            }
            (reasons == ["UnhealthyNode", "UnhealthyNode"]
                && reason(&check, "RemediationAllowed") == "TooManyUnhealthy"
                && i(&check, "/status/currentHealthy") == 1
                && i(&check, "/status/remediationsAllowed") == 0)
                .then_some(())
                .ok_or_else(|| format!("machines {reasons:?}, check status {}", check["status"]))
        },
    )
    .await;
    wait_passes(&sim, 5).await;
    let machines = list(&client, &MACHINE).await;
    assert_eq!(
        machines.len(),
        4,
        "a machine was remediated over the threshold"
    );
    for m in &machines {
        assert!(
            m.pointer("/metadata/deletionTimestamp").is_none(),
            "{} is being deleted",
            name(m)
        );
        assert!(
            condition(m, "OwnerRemediated").is_none(),
            "{} was marked for its owner",
            name(m)
        );
    }

    // One recovers: one of three is within 40%, so the other is replaced by its MachineSet.
    sim.node_ready(NS, &recovering).await.unwrap();
    wait_for(
        "the failing machine to go",
        Duration::from_secs(60),
        || async {
            let names: Vec<String> = list(&client, &MACHINE)
                .await
                .iter()
                .map(|m| name(m).to_string())
                .collect();
            (!names.contains(&failing))
                .then_some(())
                .ok_or_else(|| format!("machines {names:?}"))
        },
    )
    .await;
    wait_converged(&client, &want, Duration::from_secs(120)).await;
    let now: Vec<String> = list(&client, &MACHINE)
        .await
        .iter()
        .map(|m| name(m).to_string())
        .collect();
    assert!(
        now.contains(&recovering),
        "the recovered machine stays: {now:?}"
    );
    for m in &control_plane {
        assert!(
            now.contains(m),
            "control-plane machine {m} was replaced: {now:?}"
        );
    }
    wait_for(
        "the pool checked healthy again",
        Duration::from_secs(30),
        || async {
            let check = get(&client, &MACHINE_HEALTH_CHECK, pool_check).await;
            (i(&check, "/status/currentHealthy") == 3 && is_true(&check, "RemediationAllowed"))
                .then_some(())
                .ok_or_else(|| format!("check status {}", check["status"]))
        },
    )
    .await;
    sim.stop();
}

#[tokio::test]
async fn the_binary_watches_an_apiserver_and_stops_its_workloads_on_sigterm() {
    init_tracing();
    let (cp, client) = management("sim-binary").await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strata-sim-cloud"))
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .args(["--namespace", NS, "--fast", "--nodes-with-network"])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    apply_objects(&client, &sim_objects("binary", 1, 1)).await;
    let want = Want {
        cluster: "binary",
        control_plane: 1,
        control_plane_version: OLD,
        pools: vec![("binary-workers".into(), 1)],
        worker_version: OLD,
    };
    wait_converged(&client, &want, Duration::from_secs(240)).await;
    let (workload, _) = workload_client(&client, "binary").await;
    assert_eq!(
        node_provider_ids(&workload).await,
        machine_provider_ids(&client).await
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the binary did not exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.success(), "{status}");
    let nodes: Api<Node> = Api::all(workload);
    assert!(
        nodes.list(&ListParams::default()).await.is_err(),
        "the workload apiserver outlived the binary"
    );
}
