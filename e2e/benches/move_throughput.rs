//! How fast `strata-agent move` moves one cluster's Cluster API objects between two real
//! apiservers, against the floor of the same work done as plain API calls.
//!
//! Two control planes (kube-apiserver 1.20 and etcd, no controller manager: nothing here
//! needs one, and two cores are shared) get the CAPI and sim CRDs. For each size (10, 100
//! and 500 Machines unless `STRATA_BENCH_MACHINES=10,100` says otherwise) the source gets
//! one sim cluster as CAPI leaves it once provisioned: the Cluster, SimCluster,
//! KubeadmControlPlane, templates and MachineDeployment Strata's controller builds (the
//! sim golden file of `core/src/capi/golden/`), a MachineSet, 3 control-plane Machines
//! owned by the KubeadmControlPlane and the rest owned by the MachineSet, and per Machine
//! its SimMachine and KubeadmConfig (owned by the Machine) and bootstrap-data Secret (owned
//! by the KubeadmConfig), plus the cluster's CA and kubeconfig Secrets. Owner references,
//! labels, finalizers and statuses (every Machine with its `nodeRef`) are CAPI's; nothing
//! written is pruned by the real CRD schemas (checked on every write).
//!
//! The move is the built `strata-agent move` process, timed from spawn to exit: discovery,
//! preflight, plan, journal and every step. It is then checked: every object in the target,
//! none left in the source. The floor, measured in the same run on the same apiservers
//! from a second copy of the cluster in a fresh namespace, is the work no move can avoid:
//! one list per kind in the source; per group (owners first) every object created in the
//! target with its owner references rewritten and its status written, 32 at a time as the
//! executor creates a group; then, dependents first, every object deleted from the source
//! (and its finalizers cleared), 32 at a time. Both apiservers serve every CRD once, and
//! one move and floor of a small cluster write every kind once, before anything is timed
//! (see `warm_up`).
//!
//! Printed per size: objects, the move's and the floor's seconds and objects per second,
//! their ratio, the size of the move's journal (one ConfigMap, capped at 1 MiB), and what
//! the cluster's disaster-recovery copies weigh: its `strata-agent backup` (the object
//! files) and the export its agent keeps in the management cluster (the same without
//! shared objects, gzipped, into one Secret of at most 900 KiB).
//!
//! `cargo build --release -p strata-agent && cargo bench -p strata-e2e --bench move_throughput`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use serde_json::{Value, json};
use strata_e2e::bench_table::BenchRow;
use strata_e2e::capi_crds::{self, pruned_fields};
use strata_e2e::cloud_sim::kinds::{
    CLUSTER, KUBEADM_CONFIG, KUBEADM_CONFIG_TEMPLATE, KUBEADM_CONTROL_PLANE, Kind, MACHINE,
    MACHINE_DEPLOYMENT, MACHINE_SET, Provider,
};
use strata_e2e::cloud_sim::objects::{
    CLONED_FROM_GROUP_KIND, CLONED_FROM_NAME, CLUSTER_FINALIZER, CLUSTER_NAME_LABEL,
    CONTROL_PLANE_LABEL, CONTROL_PLANE_NAME_LABEL, Cond, DEPLOYMENT_NAME_LABEL, MACHINE_FINALIZER,
    SET_NAME_LABEL, TEMPLATE_HASH_LABEL, metav1_conditions, now,
};
use strata_e2e::cloud_sim::sim_crds;
use strata_e2e::control_plane::{ControlPlane, ControlPlaneOptions};
use strata_e2e::management::{ensure_namespace, read_documents, repo_root};
use strata_e2e::move_checks::journal_of_map;
use strata_e2e::process_kubelet::default_agent_binary;
use strata_shared::contracts::names::AGENT_NAMESPACE;
use strata_shared::pivot::backup::{BackupFiles, MANIFEST_FILE, read_backup};
use strata_shared::pivot::journal_parts::recorded_bytes;
use strata_shared::pivot::site_export;

const DEFAULT_SIZES: [usize; 3] = [10, 100, 500];
const CONTROL_PLANE_MACHINES: usize = 3;
/// Setting up the source is not measured; this only keeps it quick.
const SETUP_CONCURRENCY: usize = 16;
/// The floor's requests in flight at once: the move's own (`PARALLEL_WRITES` in
/// `agent/src/pivot/steps.rs`). Unbounded, 10,000 creates at once made the apiserver time
/// out requests (a 5,000-machine cluster).
const FLOOR_PARALLEL: usize = 32;
const GOLDEN: &str = "core/src/capi/golden/sim.yaml";
const NODE_POOL_LABEL: &str = "strata.dev/node-pool";
const KUBERNETES_VERSION: &str = "v1.20.2";
/// The bench's own limit on one move, far above what any size here takes.
const MOVE_TIMEOUT: Duration = Duration::from_secs(600);

/// One object of the cluster, before it exists: its owner is another seed.
struct Seed {
    resource: ApiResource,
    body: Value,
    /// Written through the status subresource after the create.
    status: Option<Value>,
    /// Index of the owner in the seeds and whether it is the controller.
    owner: Option<(usize, bool)>,
    /// Owners are at a lower depth: the creation groups.
    depth: usize,
}

impl Seed {
    fn name(&self) -> &str {
        self.body["metadata"]["name"].as_str().unwrap_or_default()
    }

    fn has_finalizers(&self) -> bool {
        self.body
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
    }
}

fn push(
    seeds: &mut Vec<Seed>,
    resource: ApiResource,
    body: Value,
    status: Option<Value>,
    owner: Option<(usize, bool)>,
    depth: usize,
) -> usize {
    seeds.push(Seed {
        resource,
        body,
        status,
        owner,
        depth,
    });
    seeds.len() - 1
}

fn secret_resource() -> ApiResource {
    ApiResource::erase::<Secret>(&())
}

/// Every kind the cluster's objects are of, for listing.
fn all_kinds() -> Vec<ApiResource> {
    let sim = Provider::Sim;
    [
        CLUSTER,
        sim.cluster_kind(),
        sim.template_kind(),
        KUBEADM_CONTROL_PLANE,
        KUBEADM_CONFIG_TEMPLATE,
        MACHINE_DEPLOYMENT,
        MACHINE_SET,
        MACHINE,
        sim.machine_kind(),
        KUBEADM_CONFIG,
    ]
    .iter()
    .map(Kind::api_resource)
    .chain([secret_resource()])
    .collect()
}

/// A CAPI-like random suffix, but the same for the same index.
fn suffix(index: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = index.wrapping_mul(2_654_435_761) % 14_348_907; // 27^5
    (0..5)
        .map(|_| {
            let c = ALPHABET[n % 27] as char;
            n /= 27;
            c
        })
        .collect()
}

fn conditions(names: &[&'static str]) -> Value {
    let wanted: Vec<Cond> = names
        .iter()
        .map(|n| Cond::new(n, true, n, "Not", ""))
        .collect();
    metav1_conditions(None, &wanted, 1)
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// PEM-shaped filler of a real certificate's size: moved as bytes, never parsed.
fn fake_pem(what: &str, seed: &str) -> String {
    let body = b64(&format!("{what}:{seed}:").repeat(24));
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {what}-----\n{}\n-----END {what}-----\n",
        lines.join("\n")
    )
}

fn capi_secret(namespace: &str, cluster: &str, name: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": { CLUSTER_NAME_LABEL: cluster },
        },
        "type": "cluster.x-k8s.io/secret",
        "data": data,
    })
}

/// The objects Strata's controller applies for a sim cluster (the golden file), renamed.
fn controller_objects(namespace: &str, cluster: &str) -> BTreeMap<String, Value> {
    let documents = read_documents(&repo_root().join(GOLDEN)).unwrap();
    let text = serde_json::to_string(&documents)
        .unwrap()
        .replace("strata-demo", namespace)
        .replace("demo-sim", cluster);
    let documents: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut by_kind = BTreeMap::new();
    for document in documents {
        let kind = document["kind"].as_str().unwrap().to_string();
        let key = if kind == "SimMachineTemplate" {
            let name = document["metadata"]["name"].as_str().unwrap();
            if name.starts_with(&format!("{cluster}-control-plane")) {
                "SimMachineTemplate/control-plane".to_string()
            } else {
                "SimMachineTemplate/workers".to_string()
            }
        } else {
            kind
        };
        by_kind.insert(key, document);
    }
    by_kind
}

/// The cluster as CAPI leaves it once `machines` Machines run, owners before dependents.
fn cluster_seeds(namespace: &str, cluster: &str, machines: usize) -> Vec<Seed> {
    let mut built = controller_objects(namespace, cluster);
    let mut take = |key: &str| {
        built
            .remove(key)
            .unwrap_or_else(|| panic!("{GOLDEN} has no {key}"))
    };
    let control_planes = machines.min(CONTROL_PLANE_MACHINES);
    let workers = machines - control_planes;
    let endpoint = json!({ "host": format!("{cluster}.{namespace}.sim.strata.dev"), "port": 6443 });
    let mut seeds = Vec::new();

    let mut cluster_object = take("Cluster");
    cluster_object["metadata"]["finalizers"] = json!([CLUSTER_FINALIZER]);
    cluster_object["spec"]["controlPlaneEndpoint"] = endpoint.clone();
    let ready = json!({
        "desiredReplicas": control_planes, "replicas": control_planes,
        "readyReplicas": control_planes, "availableReplicas": control_planes,
        "upToDateReplicas": control_planes,
    });
    let workers_ready = json!({
        "desiredReplicas": workers, "replicas": workers, "readyReplicas": workers,
        "availableReplicas": workers, "upToDateReplicas": workers,
    });
    let cluster_index = push(
        &mut seeds,
        CLUSTER.api_resource(),
        cluster_object,
        Some(json!({
            "phase": "Provisioned",
            "observedGeneration": 1,
            "initialization": { "infrastructureProvisioned": true, "controlPlaneInitialized": true },
            "controlPlane": ready,
            "workers": workers_ready,
            "conditions": conditions(&["Available", "InfrastructureReady", "ControlPlaneInitialized",
                "ControlPlaneAvailable", "WorkersAvailable", "RemoteConnectionProbe"]),
        })),
        None,
        0,
    );
    let by_cluster = Some((cluster_index, false));

    let sim = Provider::Sim;
    let mut sim_cluster = take("SimCluster");
    sim_cluster["spec"]["controlPlaneEndpoint"] = endpoint;
    push(
        &mut seeds,
        sim.cluster_kind().api_resource(),
        sim_cluster,
        Some(json!({
            "initialization": { "provisioned": true },
            "conditions": conditions(&["Ready"]),
        })),
        by_cluster,
        1,
    );
    let cp_template = take("SimMachineTemplate/control-plane");
    let worker_template = take("SimMachineTemplate/workers");
    let config_template = take("KubeadmConfigTemplate");
    let mut kcp = take("KubeadmControlPlane");
    kcp["spec"]["replicas"] = json!(control_planes);
    let mut md = take("MachineDeployment");
    md["spec"]["replicas"] = json!(workers);
    let kcp_name = kcp["metadata"]["name"].as_str().unwrap().to_string();
    let md_name = md["metadata"]["name"].as_str().unwrap().to_string();
    let replicas = |n: usize| {
        json!({
            "observedGeneration": 1, "replicas": n, "readyReplicas": n,
            "availableReplicas": n, "upToDateReplicas": n,
        })
    };
    let mut kcp_status = replicas(control_planes);
    kcp_status["initialization"] = json!({ "controlPlaneInitialized": true });
    kcp_status["version"] = json!(KUBERNETES_VERSION);
    kcp_status["selector"] = json!(format!(
        "{CLUSTER_NAME_LABEL}={cluster},{CONTROL_PLANE_LABEL}"
    ));
    kcp_status["conditions"] = conditions(&[
        "Available",
        "Initialized",
        "MachinesReady",
        "MachinesUpToDate",
        "EtcdClusterHealthy",
        "ControlPlaneComponentsHealthy",
    ]);
    let kcp_index = push(
        &mut seeds,
        KUBEADM_CONTROL_PLANE.api_resource(),
        kcp.clone(),
        Some(kcp_status),
        by_cluster,
        1,
    );
    let mut md_status = replicas(workers);
    md_status["phase"] = json!("Running");
    md_status["conditions"] = conditions(&["Available", "MachinesReady", "MachinesUpToDate"]);
    let md_index = push(
        &mut seeds,
        MACHINE_DEPLOYMENT.api_resource(),
        md.clone(),
        Some(md_status),
        by_cluster,
        1,
    );
    let cp_template_name = cp_template["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let worker_template_name = worker_template["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let cp_machine_spec = cp_template["spec"]["template"]["spec"].clone();
    let worker_machine_spec = worker_template["spec"]["template"]["spec"].clone();
    let worker_config_spec = config_template["spec"]["template"]["spec"].clone();
    // KCP and the MachineDeployment controller make the Cluster own their templates.
    for template in [cp_template, worker_template] {
        push(
            &mut seeds,
            sim.template_kind().api_resource(),
            template,
            None,
            by_cluster,
            1,
        );
    }
    push(
        &mut seeds,
        KUBEADM_CONFIG_TEMPLATE.api_resource(),
        config_template,
        None,
        by_cluster,
        1,
    );

    // What KCP generates for the cluster: its certificates and the admin kubeconfig.
    let by_kcp = Some((kcp_index, true));
    for (purpose, data) in [
        ("ca", vec!["tls.crt", "tls.key"]),
        ("etcd", vec!["tls.crt", "tls.key"]),
        ("sa", vec!["tls.crt", "tls.key"]),
        ("proxy", vec!["tls.crt", "tls.key"]),
        ("kubeconfig", vec!["value"]),
    ] {
        let data: serde_json::Map<String, Value> = data
            .into_iter()
            .map(|key| {
                (
                    key.to_string(),
                    json!(b64(&fake_pem(&key.to_uppercase(), purpose))),
                )
            })
            .collect();
        let name = format!("{cluster}-{purpose}");
        push(
            &mut seeds,
            secret_resource(),
            capi_secret(namespace, cluster, &name, Value::Object(data)),
            None,
            by_kcp,
            2,
        );
    }

    let template_hash = "7c5f9d4b8d";
    let ms_name = format!("{md_name}-{}", suffix(0));
    let selector = json!({
        CLUSTER_NAME_LABEL: cluster,
        DEPLOYMENT_NAME_LABEL: md_name,
        TEMPLATE_HASH_LABEL: template_hash,
    });
    let mut ms_labels = selector.clone();
    ms_labels[NODE_POOL_LABEL] = json!("general");
    let mut ms_template = md["spec"]["template"].clone();
    ms_template["metadata"]["labels"][TEMPLATE_HASH_LABEL] = json!(template_hash);
    let mut ms_status = replicas(workers);
    ms_status["selector"] = json!(
        selector
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect::<Vec<_>>()
            .join(",")
    );
    ms_status["conditions"] = conditions(&["MachinesReady", "MachinesUpToDate"]);
    let ms_index = push(
        &mut seeds,
        MACHINE_SET.api_resource(),
        json!({
            "apiVersion": MACHINE_SET.api_version(),
            "kind": MACHINE_SET.kind,
            "metadata": {
                "name": ms_name,
                "namespace": namespace,
                "labels": ms_labels,
            },
            "spec": {
                "clusterName": cluster,
                "replicas": workers,
                "selector": { "matchLabels": selector },
                "template": ms_template,
            },
        }),
        Some(ms_status),
        Some((md_index, true)),
        2,
    );

    for i in 0..machines {
        let control_plane = i < control_planes;
        let (name, owner, depth, machine_spec, template_name) = if control_plane {
            (
                format!("{kcp_name}-{}", suffix(i + 1)),
                (kcp_index, true),
                2,
                cp_machine_spec.clone(),
                cp_template_name.clone(),
            )
        } else {
            (
                format!("{ms_name}-{}", suffix(i + 1)),
                (ms_index, true),
                3,
                worker_machine_spec.clone(),
                worker_template_name.clone(),
            )
        };
        let mut labels = json!({ CLUSTER_NAME_LABEL: cluster });
        let config_spec = if control_plane {
            labels[CONTROL_PLANE_LABEL] = json!("");
            labels[CONTROL_PLANE_NAME_LABEL] = json!(kcp_name);
            labels[NODE_POOL_LABEL] = json!("control-plane");
            // As KCP: the first machine initializes the cluster, the others join it.
            let mut spec = kcp["spec"]["kubeadmConfigSpec"].clone();
            let fields = spec.as_object_mut().unwrap();
            if i == 0 {
                fields.remove("joinConfiguration");
            } else {
                fields.remove("initConfiguration");
                fields.remove("clusterConfiguration");
                fields
                    .entry("joinConfiguration")
                    .or_insert_with(|| json!({}))["controlPlane"] = json!({});
            }
            spec
        } else {
            labels[DEPLOYMENT_NAME_LABEL] = json!(md_name);
            labels[SET_NAME_LABEL] = json!(ms_name);
            labels[TEMPLATE_HASH_LABEL] = json!(template_hash);
            labels[NODE_POOL_LABEL] = json!("general");
            worker_config_spec.clone()
        };
        let provider_id = format!("sim://{namespace}/{name}");
        let octets = (i / 250 + 1, i % 250 + 4);
        let addresses = json!([
            { "type": "InternalIP", "address": format!("10.99.{}.{}", octets.0, octets.1) },
            { "type": "Hostname", "address": name },
        ]);
        let machine_index = push(
            &mut seeds,
            MACHINE.api_resource(),
            json!({
                "apiVersion": MACHINE.api_version(),
                "kind": MACHINE.kind,
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "finalizers": [MACHINE_FINALIZER],
                },
                "spec": {
                    "clusterName": cluster,
                    "version": KUBERNETES_VERSION,
                    "providerID": provider_id,
                    "bootstrap": {
                        "configRef": {
                            "apiGroup": KUBEADM_CONFIG.group,
                            "kind": KUBEADM_CONFIG.kind,
                            "name": name,
                        },
                        "dataSecretName": name,
                    },
                    "infrastructureRef": {
                        "apiGroup": sim.machine_kind().group,
                        "kind": sim.machine_kind().kind,
                        "name": name,
                    },
                },
            }),
            Some(json!({
                "phase": "Running",
                "observedGeneration": 1,
                "lastUpdated": now(),
                "initialization": {
                    "bootstrapDataSecretCreated": true,
                    "infrastructureProvisioned": true,
                },
                "nodeRef": { "name": name },
                "addresses": addresses,
                "conditions": conditions(&["Available", "Ready", "UpToDate", "BootstrapConfigReady",
                    "InfrastructureReady", "NodeReady", "NodeHealthy"]),
            })),
            Some(owner),
            depth,
        );
        let by_machine = Some((machine_index, true));
        let mut infra_spec = machine_spec;
        infra_spec["providerID"] = json!(provider_id);
        push(
            &mut seeds,
            sim.machine_kind().api_resource(),
            json!({
                "apiVersion": sim.machine_kind().api_version(),
                "kind": sim.machine_kind().kind,
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": {
                        CLONED_FROM_NAME: template_name,
                        CLONED_FROM_GROUP_KIND: format!("{}.{}", sim.template_kind().kind, sim.template_kind().group),
                    },
                },
                "spec": infra_spec,
            }),
            Some(json!({
                "initialization": { "provisioned": true },
                "addresses": addresses,
                "state": "Running",
                "conditions": conditions(&["Ready", "InstanceProvisioned"]),
            })),
            by_machine,
            depth + 1,
        );
        let step = if i == 0 { "init" } else { "join" };
        let bootstrap = format!(
            "## template: jinja\n#cloud-config\n# Simulated bootstrap data: kubeadm {step} for machine {name} ({KUBERNETES_VERSION}).\nruncmd:\n  - kubeadm {step} --config /run/kubeadm/kubeadm.yaml\nwrite_files:\n  - path: /run/cluster-api/bootstrap-config\n    content: {}\n",
            serde_json::to_string(&config_spec).unwrap()
        );
        let config_index = push(
            &mut seeds,
            KUBEADM_CONFIG.api_resource(),
            json!({
                "apiVersion": KUBEADM_CONFIG.api_version(),
                "kind": KUBEADM_CONFIG.kind,
                "metadata": { "name": name, "namespace": namespace, "labels": labels },
                "spec": config_spec,
            }),
            Some(json!({
                "observedGeneration": 1,
                "dataSecretName": name,
                "initialization": { "dataSecretCreated": true },
                "conditions": conditions(&["Ready", "DataSecretAvailable", "CertificatesAvailable"]),
            })),
            by_machine,
            depth + 1,
        );
        push(
            &mut seeds,
            secret_resource(),
            capi_secret(
                namespace,
                cluster,
                &name,
                json!({ "value": b64(&bootstrap), "format": b64("cloud-config") }),
            ),
            None,
            Some((config_index, true)),
            depth + 2,
        );
    }
    seeds
}

fn api(client: &Client, namespace: &str, resource: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, resource)
}

fn owner_reference(owner: &Value, controller: bool) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": true,
    })
}

/// Creates one object and writes its status, failing on anything the schema pruned.
async fn create(
    client: &Client,
    namespace: &str,
    resource: &ApiResource,
    body: Value,
    status: Option<&Value>,
) -> Value {
    let api = api(client, namespace, resource);
    let object: DynamicObject = serde_json::from_value(body.clone()).unwrap();
    let created = api
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot create {} {}: {e}",
                resource.kind, body["metadata"]["name"]
            )
        });
    let mut created = serde_json::to_value(&created).unwrap();
    let pruned = pruned_fields(&body, &created);
    assert!(
        pruned.is_empty(),
        "{} {}: the apiserver pruned {pruned:?}",
        resource.kind,
        body["metadata"]["name"]
    );
    if let Some(status) = status {
        let name = body["metadata"]["name"].as_str().unwrap();
        let written = api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .unwrap_or_else(|e| panic!("cannot write the status of {} {name}: {e}", resource.kind));
        created = serde_json::to_value(&written).unwrap();
        let pruned = pruned_fields(status, &created["status"]);
        assert!(
            pruned.is_empty(),
            "{} {name}: the apiserver pruned status {pruned:?}",
            resource.kind
        );
    }
    created
}

/// Creates the cluster in the source, owners first.
async fn create_source(client: &Client, namespace: &str, seeds: &[Seed]) {
    ensure_namespace(client, namespace).await.unwrap();
    let mut created: Vec<Option<Value>> = vec![None; seeds.len()];
    let depths: BTreeSet<usize> = seeds.iter().map(|s| s.depth).collect();
    for depth in depths {
        let batch: Vec<(usize, Value)> = futures::stream::iter(
            seeds
                .iter()
                .enumerate()
                .filter(|(_, s)| s.depth == depth)
                .map(|(i, seed)| {
                    let mut body = seed.body.clone();
                    if let Some((owner, controller)) = seed.owner {
                        let owner = created[owner].as_ref().expect("owners are created first");
                        body["metadata"]["ownerReferences"] =
                            json!([owner_reference(owner, controller)]);
                    }
                    async move {
                        (
                            i,
                            create(
                                client,
                                namespace,
                                &seed.resource,
                                body,
                                seed.status.as_ref(),
                            )
                            .await,
                        )
                    }
                }),
        )
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
        for (i, object) in batch {
            created[i] = Some(object);
        }
    }
}

/// Names per kind (`kind` → names) of the objects of `namespace`.
async fn names(client: &Client, namespace: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut found = BTreeMap::new();
    for resource in all_kinds() {
        let list = api(client, namespace, &resource)
            .list(&ListParams::default())
            .await
            .unwrap();
        let names: BTreeSet<String> = list
            .items
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect();
        if !names.is_empty() {
            found.insert(resource.kind.clone(), names);
        }
    }
    found
}

fn expected_names(seeds: &[Seed]) -> BTreeMap<String, BTreeSet<String>> {
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for seed in seeds {
        expected
            .entry(seed.resource.kind.clone())
            .or_default()
            .insert(seed.name().to_string());
    }
    expected
}

/// Every object in the target, none left in the source.
async fn assert_moved(
    source: &Client,
    target: &Client,
    namespace: &str,
    seeds: &[Seed],
    what: &str,
) {
    let left = names(source, namespace).await;
    assert!(
        left.is_empty(),
        "{what}: left in the source namespace {namespace}: {left:?}"
    );
    let expected = expected_names(seeds);
    let arrived = names(target, namespace).await;
    for (kind, wanted) in &expected {
        let got = arrived.get(kind).cloned().unwrap_or_default();
        let missing: Vec<&String> = wanted.difference(&got).collect();
        assert!(
            missing.is_empty(),
            "{what}: {} {kind} missing in the target: {missing:?}",
            missing.len()
        );
    }
    assert_eq!(
        arrived, expected,
        "{what}: the target holds other objects than the source had"
    );
}

/// What the move restores beyond the objects: statuses, and the Cluster left unpaused.
async fn assert_status_restored(target: &Client, namespace: &str) {
    let machines = api(target, namespace, &MACHINE.api_resource())
        .list(&ListParams::default())
        .await
        .unwrap();
    let without: Vec<String> = machines
        .items
        .iter()
        .filter(|m| m.data.pointer("/status/nodeRef/name").is_none())
        .filter_map(|m| m.metadata.name.clone())
        .collect();
    assert!(
        without.is_empty(),
        "Machines without their status.nodeRef in the target: {without:?}"
    );
    let clusters = api(target, namespace, &CLUSTER.api_resource())
        .list(&ListParams::default())
        .await
        .unwrap();
    for cluster in clusters.items {
        assert_ne!(
            cluster
                .data
                .pointer("/spec/paused")
                .and_then(Value::as_bool),
            Some(true),
            "the target Cluster is still paused"
        );
    }
}

/// kube-apiserver builds a CRD's handler on the first request for its kind, which takes
/// a good part of a second for CAPI's large schemas. The move lists every clusterctl kind
/// and would pay that alone, so both clusters serve every kind once before anything is
/// measured.
async fn warm_up(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds.list(&ListParams::default()).await.unwrap().items {
        let spec = &crd.spec;
        let Some(version) = spec.versions.iter().find(|v| v.storage) else {
            continue;
        };
        let resource = ApiResource {
            group: spec.group.clone(),
            version: version.name.clone(),
            api_version: format!("{}/{}", spec.group, version.name),
            kind: spec.names.kind.clone(),
            plural: spec.names.plural.clone(),
        };
        Api::<DynamicObject>::all_with(client.clone(), &resource)
            .list(&ListParams::default())
            .await
            .unwrap();
    }
}

/// The size of the move's journal, compressed, across its ConfigMaps (one while it fits the
/// apiserver's 1 MiB, the main map and its parts beyond): this bounds the largest cluster a
/// move can carry.
async fn journal_bytes(target: &Client, cluster: &str) -> usize {
    let maps: Api<ConfigMap> = Api::namespaced(target.clone(), AGENT_NAMESPACE);
    for map in maps.list(&ListParams::default()).await.unwrap().items {
        if journal_of_map(target, &map)
            .await
            .is_ok_and(|j| j.cluster == cluster)
        {
            return recorded_bytes(&map);
        }
    }
    panic!("no journal of the move of {cluster} in the target")
}

struct MoveRun {
    took: Duration,
    stdout: String,
}

async fn run_move(
    binary: &Path,
    source: &ControlPlane,
    target: &ControlPlane,
    namespace: &str,
    cluster: &str,
) -> MoveRun {
    let started = Instant::now();
    let run = tokio::process::Command::new(binary)
        .arg("move")
        .arg("--source-kubeconfig")
        .arg(source.kubeconfig_path())
        .arg("--target-kubeconfig")
        .arg(target.kubeconfig_path())
        .args(["--namespace", namespace, "--cluster", cluster])
        // The agent logs to stdout; its info lines name every object of each step.
        .env(
            "RUST_LOG",
            std::env::var("STRATA_MOVE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(MOVE_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| {
            panic!("the move of {namespace}/{cluster} did not end in {MOVE_TIMEOUT:?}")
        })
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<String> = stderr
            .lines()
            .rev()
            .take(20)
            .map(|l| l.chars().take(400).collect())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        panic!(
            "the move of {namespace}/{cluster} failed ({}):\n{stdout}\nstderr (last lines, cut at 400 characters):\n{}",
            output.status,
            tail.join("\n")
        );
    }
    MoveRun { took, stdout }
}

/// What a site's export of the cluster weighs: the backup's object files, and the export
/// (the same without shared objects, gzipped) that goes into a Secret.
struct ExportSize {
    backup_bytes: usize,
    export_bytes: usize,
}

/// `strata-agent backup` of the cluster, packed as the agent packs its export.
async fn export_size(
    binary: &Path,
    source: &ControlPlane,
    namespace: &str,
    cluster: &str,
) -> ExportSize {
    let scratch = tempfile::tempdir().unwrap();
    let directory = scratch.path().join("backup");
    let output = tokio::process::Command::new(binary)
        .arg("backup")
        .arg("--kubeconfig")
        .arg(source.kubeconfig_path())
        .args(["--namespace", namespace, "--cluster", cluster])
        .arg("--to-directory")
        .arg(&directory)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "the backup failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let manifest = std::fs::read(directory.join(MANIFEST_FILE)).unwrap();
    let read = |file: &str| std::fs::read(directory.join(file)).map_err(|e| e.to_string());
    let backup = read_backup(&manifest, read, None).unwrap();
    let files = BackupFiles {
        manifest: backup.manifest.clone(),
        files: backup
            .manifest
            .objects
            .iter()
            .map(|entry| (entry.file.clone(), read(&entry.file).unwrap()))
            .collect(),
    };
    let backup_bytes = files.files.iter().map(|(_, bytes)| bytes.len()).sum();
    let export = site_export::pack(&site_export::site_copy(files)).unwrap();
    ExportSize {
        backup_bytes,
        export_bytes: export.len(),
    }
}

/// A client of its own, so the floor does not start on connections the setup warmed.
async fn fresh_client(control_plane: &ControlPlane) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(control_plane.kubeconfig_path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    Client::try_from(config).unwrap()
}

/// The copy written to the target: the source's object without what the server set, its
/// owner references pointing at the copies' UIDs.
fn copy_of(source: &Value, uids: &BTreeMap<String, String>) -> Value {
    let mut copy = source.clone();
    let object = copy.as_object_mut().unwrap();
    object.remove("status");
    let metadata = object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .unwrap();
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
        "selfLink",
    ] {
        metadata.remove(field);
    }
    if let Some(owners) = metadata
        .get_mut("ownerReferences")
        .and_then(Value::as_array_mut)
    {
        for owner in owners {
            let source_uid = owner["uid"].as_str().unwrap();
            owner["uid"] = json!(uids[source_uid]);
        }
    }
    copy
}

/// The floor: the same objects moved with the calls no move can avoid. Returns its time.
async fn floor(
    source_plane: &ControlPlane,
    target_plane: &ControlPlane,
    namespace: &str,
    seeds: &[Seed],
) -> Duration {
    let source = fresh_client(source_plane).await;
    let target = fresh_client(target_plane).await;
    let started = Instant::now();
    let mut listed: BTreeMap<(String, String), Value> = BTreeMap::new();
    for resource in all_kinds() {
        for item in api(&source, namespace, &resource)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
        {
            let mut json = serde_json::to_value(&item).unwrap();
            json["apiVersion"] = json!(resource.api_version);
            json["kind"] = json!(resource.kind);
            listed.insert(
                (
                    resource.kind.clone(),
                    item.metadata.name.unwrap_or_default(),
                ),
                json,
            );
        }
    }
    let listed_at = started.elapsed();
    ensure_namespace(&target, namespace).await.unwrap();
    let depths: BTreeSet<usize> = seeds.iter().map(|s| s.depth).collect();
    let mut uids: BTreeMap<String, String> = BTreeMap::new();
    for depth in &depths {
        let group: Vec<&Seed> = seeds.iter().filter(|s| s.depth == *depth).collect();
        let created: Vec<(String, String)> = futures::stream::iter(group.iter().map(|seed| {
            let object = &listed[&(seed.resource.kind.clone(), seed.name().to_string())];
            let copy = copy_of(object, &uids);
            let api = api(&target, namespace, &seed.resource);
            async move {
                let data: DynamicObject = serde_json::from_value(copy).unwrap();
                let created = api.create(&PostParams::default(), &data).await.unwrap();
                if seed.status.is_some() {
                    api.patch_status(
                        seed.name(),
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "status": object["status"] })),
                    )
                    .await
                    .unwrap();
                }
                (
                    object["metadata"]["uid"].as_str().unwrap().to_string(),
                    created.metadata.uid.unwrap(),
                )
            }
        }))
        .buffer_unordered(FLOOR_PARALLEL)
        .collect()
        .await;
        uids.extend(created);
    }
    let created_at = started.elapsed();
    for depth in depths.iter().rev() {
        futures::stream::iter(seeds.iter().filter(|s| s.depth == *depth).map(|seed| {
            let api = api(&source, namespace, &seed.resource);
            async move {
                api.delete(seed.name(), &DeleteParams::background()).await?;
                if seed.has_finalizers() {
                    api.patch(
                        seed.name(),
                        &PatchParams::default(),
                        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
                    )
                    .await?;
                }
                Ok::<(), kube::Error>(())
            }
        }))
        .buffer_unordered(FLOOR_PARALLEL)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    }
    let took = started.elapsed();
    // The move prints its steps' times; these are the floor's, to compare phase by phase.
    println!(
        "    floor: listed in {:.2} s, created with statuses by {:.2} s, deleted by {:.2} s",
        listed_at.as_secs_f64(),
        created_at.as_secs_f64(),
        took.as_secs_f64()
    );
    took
}

fn sizes() -> Vec<usize> {
    match std::env::var("STRATA_BENCH_MACHINES") {
        Ok(text) => text
            .split(',')
            .map(|n| {
                n.trim().parse().unwrap_or_else(|_| {
                    panic!("STRATA_BENCH_MACHINES={text}: {n:?} is not a number")
                })
            })
            .collect(),
        Err(_) => DEFAULT_SIZES.to_vec(),
    }
}

fn newest_source(dirs: &[PathBuf]) -> Option<(SystemTime, PathBuf)> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && let Ok(modified) = entry.metadata().and_then(|m| m.modified())
                && newest.as_ref().is_none_or(|(t, _)| modified > *t)
            {
                newest = Some((modified, path));
            }
        }
    }
    newest
}

/// The built agent, refusing one without the move command and warning about a stale one.
fn agent_binary() -> PathBuf {
    let binary = default_agent_binary();
    assert!(
        binary.is_file(),
        "the strata-agent binary is not at {}; build it first: cargo build --release -p strata-agent (or set STRATA_AGENT_BIN)",
        binary.display()
    );
    let help = std::process::Command::new(&binary)
        .args(["move", "--help"])
        .output()
        .unwrap();
    assert!(
        help.status.success(),
        "{} has no `move` command (built before it existed?); rebuild it: cargo build --release -p strata-agent",
        binary.display()
    );
    let root = repo_root();
    let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
    if let (Some(built), Some((changed, path))) = (
        built,
        newest_source(&[
            root.join("agent/src"),
            root.join("shared/src"),
            root.join("core/src"),
        ]),
    ) && changed > built
    {
        eprintln!(
            "warning: {} is older than {}; the figures are for the build, not the sources",
            binary.display(),
            path.display()
        );
    }
    binary
}

struct Figures {
    machines: usize,
    objects: usize,
    journal_bytes: usize,
    export: ExportSize,
    moved: Duration,
    floor: Duration,
}

#[tokio::main]
async fn main() {
    let sizes = sizes();
    let binary = agent_binary();
    let options = |name: &str| ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named(name)
    };
    eprintln!("starting the source and target control planes…");
    let (source, target) = tokio::join!(
        ControlPlane::start(options("move-source")),
        ControlPlane::start(options("move-target"))
    );
    let (source, target) = (source.unwrap(), target.unwrap());
    for plane in [&source, &target] {
        let crds = capi_crds::install(&plane.client()).await.unwrap();
        assert!(
            matches!(crds, capi_crds::CrdSet::Upstream(_)),
            "the upstream CAPI CRDs are needed, so that the schemas check what is written: {crds:?}"
        );
        sim_crds::install(&plane.client()).await.unwrap();
        warm_up(&plane.client()).await;
    }

    // The first write of a kind makes the apiserver build its handlers for writes (field
    // management, validation of CAPI's large schemas), a good part of a second per kind:
    // whichever of the move and the floor went first would pay it alone. One small move
    // and its floor, not counted, write every kind first.
    eprintln!("warming up: one move and its floor of a 4-machine cluster, not counted…");
    {
        let (moved_ns, floor_ns) = ("warm-up-move", "warm-up-floor");
        let seeds = cluster_seeds(moved_ns, "warm-up", 4);
        let floor_seeds = cluster_seeds(floor_ns, "warm-up", 4);
        create_source(&source.client(), moved_ns, &seeds).await;
        create_source(&source.client(), floor_ns, &floor_seeds).await;
        run_move(&binary, &source, &target, moved_ns, "warm-up").await;
        floor(&source, &target, floor_ns, &floor_seeds).await;
    }

    let mut figures = Vec::new();
    for machines in sizes {
        let cluster = format!("c{machines}");
        let moved_ns = format!("move-{machines}");
        let floor_ns = format!("floor-{machines}");
        let seeds = cluster_seeds(&moved_ns, &cluster, machines);
        let floor_seeds = cluster_seeds(&floor_ns, &cluster, machines);
        eprintln!(
            "{machines} machines: creating 2 × {} objects in the source…",
            seeds.len()
        );
        create_source(&source.client(), &moved_ns, &seeds).await;
        create_source(&source.client(), &floor_ns, &floor_seeds).await;
        let export = export_size(&binary, &source, &moved_ns, &cluster).await;

        eprintln!("{machines} machines: the move…");
        let run = run_move(&binary, &source, &target, &moved_ns, &cluster).await;
        for line in run.stdout.lines() {
            eprintln!("    {line}");
        }
        let reported = format!("moved {} objects", seeds.len());
        assert!(
            run.stdout.contains(&reported),
            "the move did not report `{reported}`:\n{}",
            run.stdout
        );
        assert_moved(
            &source.client(),
            &target.client(),
            &moved_ns,
            &seeds,
            "the move",
        )
        .await;
        assert_status_restored(&target.client(), &moved_ns).await;
        let journal = journal_bytes(&target.client(), &cluster).await;

        eprintln!("{machines} machines: the floor…");
        let floor_took = floor(&source, &target, &floor_ns, &floor_seeds).await;
        assert_moved(
            &source.client(),
            &target.client(),
            &floor_ns,
            &floor_seeds,
            "the floor",
        )
        .await;
        let result = Figures {
            machines,
            objects: seeds.len(),
            journal_bytes: journal,
            export,
            moved: run.took,
            floor: floor_took,
        };
        eprintln!(
            "{machines} machines: move {:.2} s, floor {:.2} s",
            result.moved.as_secs_f64(),
            result.floor.as_secs_f64()
        );
        figures.push(result);
    }

    println!(
        "move throughput: one sim cluster's CAPI objects between two kube-apiservers 1.20 on loopback"
    );
    println!(
        "{:>8} {:>8} {:>8} {:>10} {:>8} {:>10} {:>11} {:>12} {:>11} {:>13}",
        "machines",
        "objects",
        "move s",
        "objects/s",
        "floor s",
        "floor o/s",
        "move/floor",
        "journal KiB",
        "backup KiB",
        "export KiB"
    );
    for f in &figures {
        let (moved, floor) = (f.moved.as_secs_f64(), f.floor.as_secs_f64());
        println!(
            "{:>8} {:>8} {:>8.2} {:>10.1} {:>8.2} {:>10.1} {:>11.2} {:>12.0} {:>11.0} {:>13.1}",
            f.machines,
            f.objects,
            moved,
            f.objects as f64 / moved,
            floor,
            f.objects as f64 / floor,
            moved / floor,
            f.journal_bytes as f64 / 1024.0,
            f.export.backup_bytes as f64 / 1024.0,
            f.export.export_bytes as f64 / 1024.0
        );
    }
    for f in &figures {
        let (moved, floor) = (f.moved.as_secs_f64(), f.floor.as_secs_f64());
        let what = format!("move: {} machines ({} objects)", f.machines, f.objects);
        BenchRow {
            what: &what,
            figure: format!("{moved:.2} s"),
            against: "floor: its lists, creates, statuses and deletes as plain calls",
            against_figure: format!("{floor:.2} s"),
            ratio: moved / floor,
            goal: match f.machines {
                0..=10 => "≤ floor + 1 s",
                500 => "≤ 1.5×",
                _ => "",
            },
        }
        .print();
    }
}
