//! Step 6 end to end: a pivoted sim cluster's agent installs the layers of its revision
//! (the sample profiles' CNI, CSI, a chart add-on and a manifest add-on) in order, each
//! Ready before the next starts; keeps them converged; re-applies them from its own copies
//! with the management cluster and the registry out of reach; and uninstalls the layers
//! that leave the stack.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use k8s_openapi::api::storage::v1::CSIDriver;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use strata_e2e::cli_run::run_with_input;
use strata_e2e::cloud_sim::Workload;
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::dynamic_objects::list_objects;
use strata_e2e::fault_proxy::FaultProxy;
use strata_e2e::kubelet_sim::{CONTROL_PLANE_LABEL, CONTROL_PLANE_TAINT, NOT_READY_TAINT};
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, SAMPLE_REGISTRY, SYSTEM_NAMESPACE, apply,
    apply_secret, ensure_namespace, publish_pack, repo_root, strata_binary,
};
use strata_e2e::oci_images::{ImageFormat, OciImages};
use strata_e2e::pivoted_cluster::{
    first_control_plane_node, kill_agent, machine_instances, wait_restarted,
};
use strata_e2e::provider_packs::simulated_providers;
use strata_e2e::registry::{RegistryOptions as TestRegistryOptions, TestRegistry};
use strata_e2e::samples::{apply_sample, copy_sample_pack, write_gated_chart_pack};
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{cluster, describe, wait_phase};
use strata_shared::cluster::{ClusterPhase, LayerPhase, LayerState, WorkloadCluster};
use strata_shared::contracts::capi::MACHINE;
use strata_shared::contracts::names::{
    AGENT_NAME, AGENT_NAMESPACE, LAYER_STATE_CONFIG_MAP, MANAGEMENT_SECRET, PACK_REGISTRIES_SECRET,
    objects_namespace,
};
use strata_shared::pack_registry::PackRegistry;
use strata_shared::provider::{ProviderKind, pack_version};
use strata_shared::registry::client::{PackRegistryClient, RegistryOptions as PackRegistryOptions};
use strata_shared::registry::credentials::Credentials;

const NS: &str = "strata-demo";
const NAME: &str = "demo";
/// The site layers of the sample cluster, in install order.
const LAYERS: [&str; 4] = [
    "cni-calico",
    "csi-hostpath",
    "hello-chart",
    "hello-manifests",
];

fn layers_of(wc: &WorkloadCluster) -> Vec<LayerState> {
    wc.status
        .as_ref()
        .map(|s| s.layers.clone())
        .unwrap_or_default()
}

fn all_ready(layers: &[LayerState], names: &[&str]) -> bool {
    layers.len() == names.len()
        && layers
            .iter()
            .zip(names)
            .all(|(l, n)| l.name == *n && l.state == LayerPhase::Ready)
}

async fn wait_layers_ready(client: &Client, names: &[&str], what: &str) -> WorkloadCluster {
    eventually(what, Duration::from_secs(300), || async {
        let wc = cluster(client, NS, NAME).await?;
        all_ready(&layers_of(&wc), names).then_some(wc)
    })
    .await
}

/// The sample sim cluster (`edit`ed) with its controller, up to its first control-plane
/// node: its workload control plane, where the agent is about to run.
async fn start_sample_cluster(
    env: &ManagementEnv,
    edit: impl Fn(&mut serde_json::Value),
) -> (ControllerProcess, Arc<Workload>) {
    let client = env.client();
    ensure_namespace(&client, NS).await.unwrap();
    apply_sample(&client, "clusters/sim-demo.yaml", NS, edit).await;
    let controller = ControllerProcess::start(
        env.control_plane.kubeconfig_path(),
        env.dir.path(),
        "controller",
        &[],
    )
    .unwrap();
    let (workload, _) = first_control_plane_node(env, &objects_namespace(NS, NAME), NAME).await;
    (controller, workload)
}

/// The base path of the sample packs' mirror.
const EDGE_MIRROR: &str = "edge";
/// The images the sample profiles' packs list, as mirrored paths and tags.
const LISTED_IMAGES: [(&str, &str); 3] = [
    ("docker.io/calico/node", "v3.19.0"),
    ("docker.io/library/nginx", "1.25"),
    ("ghcr.io/spectrocloud/hello-universe", "1.1.0"),
];
/// Where the sample registry holds them.
const LISTED_IMAGES_BASE: &str = "images";

/// A second registry (TLS, its own user) with a copy of the sample profiles' packs and the
/// sim cluster's provider packs under [`EDGE_MIRROR`], made by `strata pack mirror`, and
/// named by the sample PackRegistry as the site mirror of the clusters labelled
/// `site: edge`.
async fn edge_mirror(env: &ManagementEnv) -> TestRegistry {
    let mirror = TestRegistry::start(TestRegistryOptions::default())
        .await
        .unwrap();
    // Stand-ins for the images the packs list (`pack.content.images`), held by the
    // sample registry under the paths the mirror gives them: this machine reaches no
    // public registry.
    let sources = OciImages::new(&env.registry).unwrap();
    let mut images = Vec::new();
    for (repository, tag) in LISTED_IMAGES {
        let pushed = sources
            .push_image(
                &format!("{LISTED_IMAGES_BASE}/{repository}"),
                Some(tag),
                ImageFormat::Oci,
                "amd64",
                &[repository.as_bytes()],
            )
            .await
            .unwrap();
        images.push((repository, tag, pushed.digest));
    }
    let profiles = repo_root().join("manifests/samples/profiles");
    let home = tempfile::tempdir().unwrap();
    // The site gets its Cluster API providers from the mirror too, as packs no profile
    // names (docs/providers.md).
    let provider_packs = simulated_providers()
        .into_iter()
        .filter(|p| p.kind != ProviderKind::InfrastructureProvider || p.name == "sim")
        .flat_map(|p| {
            [
                "--pack".to_string(),
                format!("{}:{}", p.pack(), pack_version(p.version)),
            ]
        });
    let mut command = Command::new(strata_binary());
    command
        .args(["pack", "mirror"])
        .arg(profiles.join("sim-infra.yaml"))
        .arg(profiles.join("sim-addons.yaml"))
        .args(provider_packs)
        .arg("--registry")
        .arg(format!("{}/{SAMPLE_REGISTRY}", env.registry.host()))
        .arg("--ca-file")
        .arg(env.registry.ca_file().unwrap())
        .args(["--username", env.registry.username(), "--password-stdin"])
        .arg("--to")
        .arg(format!("{}/{EDGE_MIRROR}", mirror.host()))
        .arg("--to-ca-file")
        .arg(mirror.ca_file().unwrap())
        .args(["--to-username", mirror.username(), "--to-password-stdin"])
        .arg("--images-from")
        .arg(format!("{}/{LISTED_IMAGES_BASE}", env.registry.host()))
        .env("HOME", home.path())
        .env_remove("DOCKER_CONFIG")
        .env("STRATA_CACHE_DIR", home.path().join("cache"));
    let output = run_with_input(
        &mut command,
        &format!("{}\n{}\n", env.registry.password(), mirror.password()),
    );
    assert!(
        output.status.success(),
        "strata pack mirror failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let copies = OciImages::new(&mirror).unwrap();
    for (repository, tag, digest) in images {
        let copied = copies
            .manifest_digest(&format!("{EDGE_MIRROR}/{repository}"), tag)
            .await
            .unwrap();
        assert_eq!(
            copied.as_deref(),
            Some(digest.as_str()),
            "{repository}:{tag}"
        );
    }
    let client = env.client();
    apply_secret(
        &client,
        SYSTEM_NAMESPACE,
        "edge-mirror",
        &[
            ("username", mirror.username()),
            ("password", mirror.password()),
        ],
    )
    .await
    .unwrap();
    Api::<PackRegistry>::namespaced(client, SYSTEM_NAMESPACE)
        .patch(
            SAMPLE_REGISTRY,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "siteMirrors": [{
                "endpoint": mirror.host(),
                "basePath": EDGE_MIRROR,
                "caBundle": mirror.ca_pem().unwrap(),
                "credentialsSecretRef": { "name": "edge-mirror" },
                "clusterSelector": { "matchLabels": { "site": "edge" } },
            }]}})),
        )
        .await
        .unwrap();
    mirror
}

/// The cluster on kubeadm's nodes: every machine's node joined the cluster's own
/// apiserver (those made after the pivot too), the control plane's carry its taint, and
/// the control plane grew past its first node only once the CNI ran, since a node is
/// NotReady until then. Strata's own pods ran there on the host's network; the add-on's
/// pods, which tolerate nothing, only on workers.
async fn assert_kubeadm_nodes(w: &Client, objects: &str, calico: &DaemonSet) {
    let machines = eventually(
        "every machine's node Ready",
        Duration::from_secs(300),
        || async {
            let machines = machine_instances(w, objects).await;
            let nodes = Api::<Node>::all(w.clone())
                .list(&Default::default())
                .await
                .ok()?;
            let ready: BTreeSet<String> = nodes
                .items
                .iter()
                .filter(|n| node_is_ready(n))
                .map(|n| n.name_any())
                .collect();
            (machines.len() == 5 && machines.keys().all(|m| ready.contains(m))).then_some(machines)
        },
    )
    .await;
    let nodes = Api::<Node>::all(w.clone())
        .list(&Default::default())
        .await
        .unwrap();
    let names: BTreeSet<String> = nodes.items.iter().map(|n| n.name_any()).collect();
    assert_eq!(
        names,
        machines.keys().cloned().collect(),
        "one node per machine"
    );
    let control_plane: BTreeSet<String> = nodes
        .items
        .iter()
        .filter(|n| n.labels().contains_key(CONTROL_PLANE_LABEL))
        .map(|n| n.name_any())
        .collect();
    assert_eq!(control_plane.len(), 3, "{names:?}");
    for node in &nodes.items {
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let keys: Vec<&str> = taints.iter().map(|t| t.key.as_str()).collect();
        assert!(
            !keys.contains(&NOT_READY_TAINT),
            "{}: {keys:?}",
            node.name_any()
        );
        assert_eq!(
            keys.contains(&CONTROL_PLANE_TAINT),
            control_plane.contains(&node.name_any()),
            "{}: {keys:?}",
            node.name_any()
        );
    }
    // The first control-plane machine is the oldest; KCP adds the next only once every
    // one it has is Ready, which its node is not before a calico-node pod ran on it.
    let mut kcp_machines: Vec<(Timestamp, String)> =
        list_objects(w, objects, MACHINE.api_version, MACHINE.kind)
            .await
            .into_iter()
            .filter(|m| control_plane.contains(&m.name_any()))
            .map(|m| {
                (
                    m.metadata.creation_timestamp.clone().unwrap().0,
                    m.name_any(),
                )
            })
            .collect();
    kcp_machines.sort();
    for (at, machine) in &kcp_machines[1..] {
        assert!(
            *at >= created(calico),
            "control-plane machine {machine} was made at {at}, before the CNI at {}",
            created(calico)
        );
    }
    let pods = |namespace: &str| {
        let api: Api<Pod> = Api::namespaced(w.clone(), namespace);
        async move { api.list(&Default::default()).await.unwrap().items }
    };
    let placed = |pod: &Pod| {
        pod.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    let calico_nodes: BTreeSet<String> = pods("calico-system").await.iter().map(placed).collect();
    assert_eq!(calico_nodes, names, "a calico-node pod on every node");
    for pod in pods("hello-web").await {
        assert!(
            !placed(&pod).is_empty() && !control_plane.contains(&placed(&pod)),
            "{} on {:?}, a control-plane node",
            pod.name_any(),
            placed(&pod)
        );
    }
    for pod in pods(AGENT_NAMESPACE).await {
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.host_network, Some(true), "{}", pod.name_any());
    }
}

fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Helm releases in `hello-web` (name, status, revision), as the tests' helm lists them.
/// `helm list` of `namespace`: each release's name, status and revision.
fn releases_in(kubeconfig: &std::path::Path, namespace: &str) -> Vec<(String, String, i64)> {
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_helm"))
        .args(["list", "--output", "json", "--namespace", namespace])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    listed
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
                r["revision"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// What a site admin does to a layer's objects: the Deployment deleted, the ConfigMap's
/// greeting edited and a key of their own added, under their own field manager.
async fn drift_by_hand(w: &Client, namespace: &str, deployment: &str, config_map: &str) {
    Api::<Deployment>::namespaced(w.clone(), namespace)
        .delete(deployment, &DeleteParams::background())
        .await
        .unwrap();
    let edit = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": config_map, "namespace": namespace },
        "data": { "greeting": "edited by hand", "extra": "kept" },
    });
    Api::<ConfigMap>::namespaced(w.clone(), namespace)
        .patch(
            config_map,
            &PatchParams::apply("site-admin").force(),
            &Patch::Apply(&edit),
        )
        .await
        .unwrap();
}

/// The WorkloadCluster once `layer` counts at least the two corrections of
/// [`drift_by_hand`] and is Ready again.
async fn wait_corrected(client: &Client, layer: &str) -> WorkloadCluster {
    eventually(
        &format!("{layer}'s drift corrected and counted"),
        Duration::from_secs(120),
        || async {
            let wc = cluster(client, NS, NAME).await?;
            let state = layers_of(&wc).into_iter().find(|l| l.name == layer)?;
            (state.drift_corrections >= 2 && state.state == LayerPhase::Ready).then_some(wc)
        },
    )
    .await
}

/// The earliest creation time among objects of a layer, as the apiserver recorded it.
fn created<K: Resource>(object: &K) -> Timestamp {
    object.meta().creation_timestamp.clone().unwrap().0
}

fn ready_at(layers: &[LayerState], name: &str) -> Timestamp {
    let layer = layers.iter().find(|l| l.name == name).unwrap();
    layer.last_transition_time.clone().unwrap().0
}

/// The agent's record in its own cluster, as a site reads it.
async fn site_states(w: &Client) -> Vec<LayerState> {
    let map: ConfigMap = Api::namespaced(w.clone(), AGENT_NAMESPACE)
        .get(LAYER_STATE_CONFIG_MAP)
        .await
        .unwrap();
    serde_json::from_str(&map.data.unwrap()["layers.json"]).unwrap()
}

/// The log as text, without the terminal colour codes of its fields.
fn without_colours(log: &str) -> String {
    let mut text = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            text.push(c);
        }
    }
    text
}

/// The agent's log, every process of it, without colours.
fn agent_log(env: &ManagementEnv, objects: &str) -> String {
    let agent = env
        .agents_of(objects, NAME)
        .unwrap()
        .processes()
        .into_iter()
        .find(|p| p.deployment.ends_with(AGENT_NAME))
        .unwrap();
    without_colours(&std::fs::read_to_string(agent.log).unwrap())
}

#[tokio::test]
async fn a_pivoted_cluster_installs_its_layers_in_order_and_keeps_them() {
    let _stop = StopWorkloads;
    let env = ManagementEnv::start(ManagementOptions::named("layers"))
        .await
        .unwrap();
    let client = env.client();
    let objects = objects_namespace(NS, NAME);
    // The site pulls its packs from a mirror, as an air-gapped site would; the controller
    // still resolves them at the registry.
    let mirror = edge_mirror(&env).await;
    let (controller, workload) = start_sample_cluster(&env, |cluster| {
        cluster["metadata"]["labels"] = json!({ "site": "edge" });
    })
    .await;
    let w = workload.client();
    // The agent dies right after it installed the chart layer's release, before it saw it
    // Ready or recorded it: the next agent must finish it without a second release.
    strata_e2e::process_kubelet::require_fault_hooks();
    let agent_deployments: Api<Deployment> = Api::namespaced(w.clone(), AGENT_NAMESPACE);
    eventually("the agent Deployment", Duration::from_secs(120), || async {
        agent_deployments.get_opt(AGENT_NAME).await.ok().flatten()
    })
    .await;
    let crash = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": AGENT_NAME, "namespace": AGENT_NAMESPACE },
        "spec": { "template": { "spec": { "containers": [{
            "name": "agent",
            "env": [
                { "name": "STRATA_LAYER_EXIT_AFTER_APPLY", "value": "hello-chart" },
                // The chart drift passes that find nothing say so, with their time.
                { "name": "RUST_LOG", "value": "info,strata_shared::layer_apply::chart_drift=debug" },
            ],
        }]}}},
    });
    agent_deployments
        .patch(
            AGENT_NAME,
            &PatchParams::apply("e2e-crash"),
            &Patch::Apply(&crash),
        )
        .await
        .unwrap();
    wait_phase(
        &env,
        &controller,
        NS,
        NAME,
        ClusterPhase::Pivoted,
        Duration::from_secs(300),
    )
    .await;

    // In order, each Ready before the next one's first object exists.
    let wc = wait_layers_ready(&client, &LAYERS, "the four layers Ready").await;
    let layers = layers_of(&wc);
    assert_eq!(
        wc.status.as_ref().unwrap().layers_summary.as_deref(),
        Some("4/4"),
        "{}",
        describe(Some(&wc))
    );
    for layer in &layers {
        assert!(layer.digest.as_deref().unwrap().starts_with("sha256:"));
        assert_eq!(layer.drift_corrections, 0, "{layer:?}");
    }
    // The site was given the mirror, and pulled every layer's pinned digest from it.
    let site_registries = Api::<Secret>::namespaced(w.clone(), AGENT_NAMESPACE)
        .get(PACK_REGISTRIES_SECRET)
        .await
        .unwrap();
    let site_registries =
        String::from_utf8(site_registries.data.unwrap()["registries.json"].0.clone()).unwrap();
    assert!(
        site_registries.contains(&format!("{}/{EDGE_MIRROR}", mirror.host()))
            && !site_registries.contains(env.registry.host()),
        "{site_registries}"
    );
    // The log as it is now: inspecting the packs below reads their blobs too.
    let mirror_log = std::fs::read_to_string(mirror.log_path()).unwrap();
    let mirror_client = PackRegistryClient::new(
        format!("{}/{EDGE_MIRROR}", mirror.host()).parse().unwrap(),
        PackRegistryOptions {
            ca_pem: mirror.ca_pem().map(str::to_owned),
            credentials: Credentials::Basic {
                username: mirror.username().to_owned(),
                password: mirror.password().to_owned(),
            },
            ..PackRegistryOptions::default()
        },
    )
    .unwrap();
    for layer in &layers {
        // The revision pins the pack's content digest; the site GETs the layer blob that
        // holds it, by the layer's own digest.
        let digest = layer.digest.as_deref().unwrap();
        let (descriptor, _) = mirror_client
            .inspect(&layer.name, &layer.version, None)
            .await
            .unwrap();
        assert_eq!(
            descriptor.content_digest.as_deref(),
            Some(digest),
            "{}",
            layer.name
        );
        let blob = descriptor.layer_digest.as_str();
        assert!(
            mirror_log
                .lines()
                .any(|line| line.contains("GET") && line.contains(blob)),
            "the mirror served no GET of {} (content {digest}, layer {blob})",
            layer.name
        );
    }
    let calico: DaemonSet = Api::namespaced(w.clone(), "calico-system")
        .get("calico-node")
        .await
        .unwrap();
    let csi: CSIDriver = Api::all(w.clone())
        .get("hostpath.csi.k8s.io")
        .await
        .unwrap();
    let web: Deployment = Api::namespaced(w.clone(), "hello-web")
        .get("hello-web-hello-web")
        .await
        .unwrap();
    let universe_config: ConfigMap = Api::namespaced(w.clone(), "hello-universe")
        .get("hello-universe-config")
        .await
        .unwrap();
    let firsts = [
        created(&calico),
        created(&csi),
        created(&web),
        created(&universe_config),
    ];
    for (i, pair) in LAYERS.windows(2).enumerate() {
        let ready = ready_at(&layers, pair[0]);
        assert!(
            ready <= firsts[i + 1],
            "{} was Ready at {ready}, after {} started at {}",
            pair[0],
            pair[1],
            firsts[i + 1]
        );
    }
    assert_kubeadm_nodes(&w, &objects, &calico).await;
    assert!(all_ready(&site_states(&w).await, &LAYERS));
    let log = agent_log(&env, &objects);
    assert_eq!(
        log.matches("fault hook: exiting right after applying the layer")
            .count(),
        1,
        "the agent was to die once after applying hello-chart"
    );
    let kubeconfig = env.dir.path().join("workload.kubeconfig");
    std::fs::write(&kubeconfig, workload.kubeconfig()).unwrap();
    let releases = releases_in(&kubeconfig, "hello-web");
    let names: Vec<(&str, &str)> = releases
        .iter()
        .map(|(name, status, _)| (name.as_str(), status.as_str()))
        .collect();
    assert_eq!(names, [("hello-web", "deployed")]);
    let revision_before_drift = releases[0].2;

    // Drift: a deleted Deployment and an edited ConfigMap of the manifest layer come back,
    // and are counted; a key someone else added stays.
    let deployments: Api<Deployment> = Api::namespaced(w.clone(), "hello-universe");
    let configs: Api<ConfigMap> = Api::namespaced(w.clone(), "hello-universe");
    drift_by_hand(
        &w,
        "hello-universe",
        "hello-universe",
        "hello-universe-config",
    )
    .await;
    let wc = wait_corrected(&client, "hello-manifests").await;
    assert!(
        deployments
            .get_opt("hello-universe")
            .await
            .unwrap()
            .is_some()
    );
    let data = configs
        .get("hello-universe-config")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(data["greeting"], "Hello from the whole values", "{data:?}");
    assert_eq!(data.get("extra").map(String::as_str), Some("kept"));
    for layer in layers_of(&wc) {
        if layer.name != "hello-manifests" {
            assert_eq!(layer.drift_corrections, 0, "{layer:?}");
        }
    }

    // Chart drift: the chart layer's deleted Deployment and edited ConfigMap are set back
    // by upgrading its release again (Helm stays their owner), and counted; the key
    // another manager added stays. (Not in the same pass as the manifest layer's: while
    // the chart layer's Deployment comes back, the layers after it wait.)
    let web_configs: Api<ConfigMap> = Api::namespaced(w.clone(), "hello-web");
    let web_deployments: Api<Deployment> = Api::namespaced(w.clone(), "hello-web");
    let web_before = web_deployments.get("hello-web-hello-web").await.unwrap();
    let drifted_at = std::time::Instant::now();
    drift_by_hand(
        &w,
        "hello-web",
        "hello-web-hello-web",
        "hello-web-hello-web",
    )
    .await;
    let wc = wait_corrected(&client, "hello-chart").await;
    eprintln!(
        "chart drift: deleted and edited to corrected and Ready in {:.1} s",
        drifted_at.elapsed().as_secs_f64()
    );
    let chart_layer = layer_named(&layers_of(&wc), "hello-chart").clone();
    assert_eq!(chart_layer.drift_corrections, 2, "{chart_layer:?}");
    let web_after = web_deployments.get("hello-web-hello-web").await.unwrap();
    assert_ne!(web_after.metadata.uid, web_before.metadata.uid);
    let data = web_configs
        .get("hello-web-hello-web")
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(data["greeting"], "Hello from the chart", "{data:?}");
    assert_eq!(data.get("extra").map(String::as_str), Some("kept"));
    let on_site = site_states(&w).await;
    assert_eq!(
        layer_named(&on_site, "hello-chart").drift_corrections,
        2,
        "{on_site:?}"
    );
    assert!(layer_named(&on_site, "hello-manifests").drift_corrections >= 2);
    let log = agent_log(&env, &objects);
    for said in [
        "drift corrected: re-created",
        "Deployment.apps hello-web/hello-web-hello-web",
        "drift corrected: field set back",
        "ConfigMap hello-web/hello-web-hello-web",
        "data.greeting",
    ] {
        assert!(log.contains(said), "the agent's log does not say {said:?}");
    }
    for line in log.lines().filter(|l| l.contains("elapsed_ms")) {
        eprintln!("chart drift pass: {line}");
    }
    // Still one release, Helm's: upgraded, not installed again.
    let releases = releases_in(&kubeconfig, "hello-web");
    assert_eq!(releases.len(), 1, "{releases:?}");
    assert_eq!(releases[0].1, "deployed", "{releases:?}");
    assert!(
        releases[0].2 > revision_before_drift,
        "the release was not upgraded: {releases:?}"
    );

    // Cut off: the management cluster and the registry out of reach (the link Secret names
    // a dead server, the site's copy of the registries a dead registry), a Deployment of a
    // layer deleted while the agent is down: the restarted agent re-applies every layer
    // from its copies (revision, registries) and its pack cache.
    let secrets: Api<Secret> = Api::namespaced(w.clone(), AGENT_NAMESPACE);
    let link = secrets.get(MANAGEMENT_SECRET).await.unwrap();
    let registries = secrets.get(PACK_REGISTRIES_SECRET).await.unwrap();
    let dead = |secret: &Secret, key: &str, from: &str| {
        let mut data: BTreeMap<String, String> = secret
            .data
            .clone()
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect();
        let value = data.get_mut(key).unwrap();
        *value = value.replace(from, "127.0.0.1:9");
        json!({ "stringData": data })
    };
    let management_server = String::from_utf8(link.data.clone().unwrap()["server"].0.clone())
        .unwrap()
        .trim_start_matches("https://")
        .to_string();
    let registry_host = mirror.host().to_string();
    let restarts = kill_agent(&env, &objects, NAME);
    secrets
        .patch(
            MANAGEMENT_SECRET,
            &PatchParams::default(),
            &Patch::Merge(dead(&link, "server", &management_server)),
        )
        .await
        .unwrap();
    secrets
        .patch(
            PACK_REGISTRIES_SECRET,
            &PatchParams::default(),
            &Patch::Merge(dead(&registries, "registries.json", &registry_host)),
        )
        .await
        .unwrap();
    let universe_before = deployments.get("hello-universe").await.unwrap();
    deployments
        .delete("hello-universe", &DeleteParams::background())
        .await
        .unwrap();
    wait_restarted(&env, &objects, NAME, restarts).await;
    let restored = eventually(
        "the deleted Deployment re-applied from the cache",
        Duration::from_secs(180),
        || async {
            let found = deployments.get_opt("hello-universe").await.ok()??;
            (found.metadata.uid != universe_before.metadata.uid).then_some(found)
        },
    )
    .await;
    assert!(restored.metadata.uid.is_some());
    eventually(
        "the site's record says Ready",
        Duration::from_secs(120),
        || async { all_ready(&site_states(&w).await, &LAYERS).then_some(()) },
    )
    .await;
    assert!(
        web_deployments
            .get_opt("hello-web-hello-web")
            .await
            .unwrap()
            .is_some()
    );
    let log = agent_log(&env, &objects);
    let since_restart = log.rsplit("--- starting").next().unwrap();
    assert!(
        since_restart.contains("from_cache=true"),
        "the restarted agent did not install from its cache:\n{since_restart}"
    );
    // The link back.
    let original: BTreeMap<String, String> = link
        .data
        .clone()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect();
    secrets
        .patch(
            MANAGEMENT_SECRET,
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": original })),
        )
        .await
        .unwrap();

    // A profile leaves the cluster: its layers are uninstalled, the last first, by the
    // agent that reads the new revision.
    let revision_before = cluster(&client, NS, NAME)
        .await
        .unwrap()
        .status
        .unwrap()
        .revision;
    Api::<WorkloadCluster>::namespaced(client.clone(), NS)
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "spec": { "profiles": [{ "name": "sim-infra", "version": "1.0.0" }] } }),
            ),
        )
        .await
        .unwrap();
    eventually("the next revision", Duration::from_secs(120), || async {
        let wc = cluster(&client, NS, NAME).await?;
        (wc.status?.revision > revision_before).then_some(())
    })
    .await;
    let restarts = kill_agent(&env, &objects, NAME);
    wait_restarted(&env, &objects, NAME, restarts).await;
    let wc = wait_layers_ready(&client, &LAYERS[..2], "two layers left, Ready").await;
    assert_eq!(
        wc.status.as_ref().unwrap().layers_summary.as_deref(),
        Some("2/2")
    );
    eventually(
        "the add-ons' objects gone",
        Duration::from_secs(120),
        || async {
            let web = web_deployments.get_opt("hello-web-hello-web").await.ok()?;
            let config = configs.get_opt("hello-universe-config").await.ok()?;
            (web.is_none() && config.is_none()).then_some(())
        },
    )
    .await;
    let parents: Api<ConfigMap> = Api::namespaced(w.clone(), AGENT_NAMESPACE);
    assert!(
        parents
            .get_opt("strata-layer-hello-manifests")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        parents
            .get_opt("strata-layer-cni-calico")
            .await
            .unwrap()
            .is_some()
    );
}

/// A small add-on pack: a Namespace and a Service in it.
fn write_addon_pack(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::write(
        dir.join("pack.json"),
        r#"{"name": "quota-addon", "displayName": "Refused while the quota holds", "version": "1.0.0", "layer": "addon", "addonType": "app services", "cloudTypes": ["all"], "kubeManifests": ["manifests/service.yaml"]}"#,
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), "pack:\n  namespace: quota\n").unwrap();
    std::fs::write(
        dir.join("manifests/service.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: quota}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: quota}\n\
         spec:\n  selector: {app: web}\n  ports: [{port: 80, protocol: TCP}]\n",
    )
    .unwrap();
}

/// A pack the site has never cached, pulled through a registry the test cuts off: a
/// Namespace and a ConfigMap in it.
fn write_reach_pack(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::write(
        dir.join("pack.json"),
        r#"{"name": "reach-addon", "displayName": "Pulled once its registry is back", "version": "1.0.0", "layer": "addon", "addonType": "app services", "cloudTypes": ["all"], "kubeManifests": ["manifests/config.yaml"]}"#,
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), "pack:\n  namespace: reach\n").unwrap();
    std::fs::write(
        dir.join("manifests/config.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: reach}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: reached, namespace: reach}\n\
         data: {state: pulled}\n",
    )
    .unwrap();
}

/// A manifest pack whose second manifest renders into YAML that does not parse (a value
/// put in unquoted); its first manifest, a Namespace and a ConfigMap, is fine.
fn write_broken_template_pack(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::write(
        dir.join("pack.json"),
        r#"{"name": "broken-template", "displayName": "Renders into broken YAML", "version": "1.0.0", "layer": "addon", "addonType": "app services", "cloudTypes": ["all"], "kubeManifests": ["manifests/first.yaml", "manifests/second.yaml"]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("values.yaml"),
        "pack:\n  namespace: broken\nmanifests:\n  second:\n    note: \"[unclosed\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("manifests/first.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: broken}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first, namespace: broken}\n\
         data: {state: fine}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("manifests/second.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: second\n  namespace: broken\n\
         data:\n  note: {{ .Values.note }}\n",
    )
    .unwrap();
}

/// The agent's pack cache (its hostPath volume, a folder of its replica on the test's
/// kubelet).
fn agent_pack_cache(env: &ManagementEnv, objects: &str) -> std::path::PathBuf {
    let agent = env
        .agents_of(objects, NAME)
        .unwrap()
        .processes()
        .into_iter()
        .find(|p| p.deployment.ends_with(AGENT_NAME))
        .unwrap();
    agent.log.parent().unwrap().join("mounts/pack-cache")
}

/// The state of layer `name`, once the agent reported it.
fn phase_of(layers: &[LayerState], name: &str) -> Option<LayerPhase> {
    layers.iter().find(|l| l.name == name).map(|l| l.state)
}

fn layer_named<'a>(layers: &'a [LayerState], name: &str) -> &'a LayerState {
    layers.iter().find(|l| l.name == name).unwrap()
}

/// Bad input at the site: an object the apiserver refuses (a ResourceQuota of the site
/// forbids the layer's Service), then a pack neither cached nor reachable (its registry
/// cut off), then a chart that does not render, then a pack the registry no longer serves
/// at the pinned digest, and last a manifest that renders into YAML that does not parse.
/// Each is a Failed layer naming the object, the pack and registry, the chart's cause, the
/// digests or the file; the layers before it keep running, the ones after it wait, and it
/// is tried again until it works. (A values macro that names nothing never reaches a
/// site: the controller refuses the cluster, `controller_lifecycle`.)
#[tokio::test]
async fn bad_input_at_the_site_fails_the_layer_naming_the_cause_and_holds_the_rest() {
    let _stop = StopWorkloads;
    let env = ManagementEnv::start(ManagementOptions::named("layers-bad"))
        .await
        .unwrap();
    let client = env.client();
    let pack = env.dir.path().join("quota-addon");
    write_addon_pack(&pack);
    publish_pack(&env.registry, &pack).await.unwrap();
    let reach = env.dir.path().join("reach-addon");
    write_reach_pack(&reach);
    publish_pack(&env.registry, &reach).await.unwrap();
    let gated = env.dir.path().join("gated-chart");
    write_gated_chart_pack(&gated);
    publish_pack(&env.registry, &gated).await.unwrap();
    let broken = env.dir.path().join("broken-template");
    write_broken_template_pack(&broken);
    publish_pack(&env.registry, &broken).await.unwrap();
    // The same registry behind a proxy the test can cut: the PackRegistry `flaky`.
    let proxy = FaultProxy::start(env.registry.addr()).await.unwrap();
    apply(
        &client,
        &json!({
            "apiVersion": "strata.dev/v1alpha1", "kind": "PackRegistry",
            "metadata": { "name": "flaky", "namespace": SYSTEM_NAMESPACE },
            "spec": {
                "endpoint": proxy.addr().to_string(),
                "basePath": SAMPLE_REGISTRY,
                "caBundle": env.registry.ca_pem().unwrap_or_default(),
                "credentialsSecretRef": { "name": "samples-registry" },
            },
        }),
    )
    .await
    .unwrap();
    apply(
        &client,
        &json!({
            "apiVersion": "strata.dev/v1alpha1", "kind": "ClusterProfile",
            "metadata": { "name": "quota-addons", "namespace": SYSTEM_NAMESPACE },
            "spec": {
                "type": "add-on", "version": "1.0.0", "cloudType": "all",
                "layers": [
                    { "name": "quota-addon", "version": "1.0.0" },
                    { "name": "reach-addon", "version": "1.0.0", "registry": "flaky" },
                    { "name": "gated-chart", "version": "1.0.0" },
                    { "name": "hello-manifests", "version": "1.0.0" },
                    { "name": "broken-template", "version": "1.0.0" },
                ],
            },
        }),
    )
    .await
    .unwrap();
    let (controller, workload) = start_sample_cluster(&env, |cluster| {
        cluster["spec"]["profiles"] = json!([
            { "name": "sim-infra", "version": "1.0.0" },
            { "name": "quota-addons", "version": "1.0.0" },
        ]);
    })
    .await;
    let w = workload.client();
    // The site's own rule, before the agent gets there: no Services in `quota`.
    apply_workload(
        &w,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "quota"}}),
    )
    .await;
    apply_workload(
        &w,
        json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "no-services", "namespace": "quota"},
            "spec": {"hard": {"services": "0"}},
        }),
    )
    .await;
    // In force once the quota controller has counted it; until then the apiserver refuses
    // with another message ("status unknown for quota").
    let quotas = Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(w.clone(), "quota");
    eventually("the quota counted", Duration::from_secs(60), || async {
        let quota = quotas.get("no-services").await.ok()?;
        quota.status?.hard.is_some().then_some(())
    })
    .await;
    wait_phase(
        &env,
        &controller,
        NS,
        NAME,
        ClusterPhase::Pivoted,
        Duration::from_secs(300),
    )
    .await;
    let wc = eventually(
        "the refused layer Failed",
        Duration::from_secs(300),
        || async {
            let wc = cluster(&client, NS, NAME).await?;
            (phase_of(&layers_of(&wc), "quota-addon")? == LayerPhase::Failed).then_some(wc)
        },
    )
    .await;
    let layers = layers_of(&wc);
    let states: Vec<(&str, LayerPhase)> =
        layers.iter().map(|l| (l.name.as_str(), l.state)).collect();
    assert_eq!(
        states,
        [
            ("cni-calico", LayerPhase::Ready),
            ("csi-hostpath", LayerPhase::Ready),
            ("quota-addon", LayerPhase::Failed),
            ("reach-addon", LayerPhase::Pending),
            ("gated-chart", LayerPhase::Pending),
            ("hello-manifests", LayerPhase::Pending),
            ("broken-template", LayerPhase::Pending),
        ],
        "{}",
        describe(Some(&wc))
    );
    let message = layers[2].message.clone().unwrap();
    assert!(
        message.contains("Service quota/web") && message.contains("exceeded quota"),
        "{message}"
    );
    assert_eq!(
        wc.status.as_ref().unwrap().layers_summary.as_deref(),
        Some("2/7")
    );
    // Said at the site too; nothing of the layer after it applied.
    assert_eq!(site_states(&w).await[2].state, LayerPhase::Failed);
    let configs: Api<ConfigMap> = Api::namespaced(w.clone(), "hello-universe");
    assert!(
        configs
            .get_opt("hello-universe-config")
            .await
            .unwrap()
            .is_none()
    );

    // The next layer's tag is pushed again with other content: the registry no longer
    // serves the archive its revision pins. Then the site lifts its quota.
    let changed = env.dir.path().join("hello-manifests");
    copy_sample_pack("hello-manifests", &changed);
    let values = std::fs::read_to_string(changed.join("values.yaml")).unwrap();
    std::fs::write(
        changed.join("values.yaml"),
        values.replace("Hello from the whole values", "Pushed again"),
    )
    .unwrap();
    publish_pack(&env.registry, &changed).await.unwrap();
    // The layer after the refused one comes from a registry the site cannot reach now,
    // and the site has never cached its pack.
    proxy.cut();
    quotas
        .delete("no-services", &DeleteParams::default())
        .await
        .unwrap();
    let wc = eventually(
        "the layer retried and Ready, the next one Failed on its unreachable registry",
        Duration::from_secs(300),
        || async {
            let wc = cluster(&client, NS, NAME).await?;
            let layers = layers_of(&wc);
            (phase_of(&layers, "quota-addon")? == LayerPhase::Ready
                && phase_of(&layers, "reach-addon")? == LayerPhase::Failed)
                .then_some(wc)
        },
    )
    .await;
    let layers = layers_of(&wc);
    let states: Vec<(&str, LayerPhase)> =
        layers.iter().map(|l| (l.name.as_str(), l.state)).collect();
    assert_eq!(
        states,
        [
            ("cni-calico", LayerPhase::Ready),
            ("csi-hostpath", LayerPhase::Ready),
            ("quota-addon", LayerPhase::Ready),
            ("reach-addon", LayerPhase::Failed),
            ("gated-chart", LayerPhase::Pending),
            ("hello-manifests", LayerPhase::Pending),
            ("broken-template", LayerPhase::Pending),
        ],
        "{}",
        describe(Some(&wc))
    );
    let unreachable = layer_named(&layers, "reach-addon");
    let message = unreachable.message.clone().unwrap();
    eprintln!("registry cut off: {message}");
    assert!(
        message.contains("pack reach-addon:1.0.0")
            && message.contains("registry flaky")
            && message.contains(&proxy.addr().to_string()),
        "{message}"
    );
    // Nothing of it is left in the site's cache: no blob, no partial download, no work
    // folder (a retry may be running for a moment).
    let cache = agent_pack_cache(&env, &objects_namespace(NS, NAME));
    let hex = unreachable
        .digest
        .as_deref()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let blobs: Vec<String> = std::fs::read_dir(cache.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!blobs.contains(&hex), "{blobs:?}");
    // The pin is the pack's content digest; its blob would be named by its layer digest,
    // and found through the content index: neither is there.
    let (reach_pack, _) = strata_shared::pack::Pack::load(&reach);
    let reach_layer =
        strata_shared::pack::archive::sha256_digest(&reach_pack.unwrap().archive().unwrap());
    assert!(
        !blobs.contains(&reach_layer.trim_start_matches("sha256:").to_string()),
        "{blobs:?}"
    );
    let indexed: Vec<String> = std::fs::read_dir(cache.join("blobs/content"))
        .map(|listing| {
            listing
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(!indexed.contains(&hex), "{indexed:?}");
    assert!(
        blobs
            .iter()
            .all(|b| b.len() == 64 && b.chars().all(|c| c.is_ascii_hexdigit())),
        "something other than whole blobs in the cache: {blobs:?}"
    );
    eventually("no work folder left", Duration::from_secs(15), || async {
        let left: Vec<_> = std::fs::read_dir(cache.join("work"))
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("layer-"))
            .collect();
        left.is_empty().then_some(())
    })
    .await;
    assert!(
        Api::<ConfigMap>::namespaced(w.clone(), "reach")
            .get_opt("reached")
            .await
            .unwrap()
            .is_none()
    );

    // The registry back: the retry pulls the pack and installs the layer. The chart after
    // it does not render while the site's gate is closed.
    proxy.restore();
    let wc = eventually(
        "the unreachable layer retried and Ready, the chart after it Failed to render",
        Duration::from_secs(300),
        || async {
            let wc = cluster(&client, NS, NAME).await?;
            let layers = layers_of(&wc);
            (phase_of(&layers, "reach-addon")? == LayerPhase::Ready
                && phase_of(&layers, "gated-chart")? == LayerPhase::Failed)
                .then_some(wc)
        },
    )
    .await;
    assert!(
        Api::<ConfigMap>::namespaced(w.clone(), "reach")
            .get_opt("reached")
            .await
            .unwrap()
            .is_some()
    );
    // Cached under its layer digest, and indexed under the content digest the revision
    // pins.
    assert!(
        cache
            .join("blobs/sha256")
            .join(reach_layer.trim_start_matches("sha256:"))
            .is_file()
    );
    assert_eq!(
        std::fs::read_to_string(cache.join("blobs/content").join(&hex)).unwrap(),
        reach_layer
    );
    let layers = layers_of(&wc);
    let message = layer_named(&layers, "gated-chart").message.clone().unwrap();
    eprintln!("chart that does not render: {message}");
    assert!(
        message.starts_with("pack gated-chart:1.0.0: charts/gated: release gated/gated: ")
            && message.contains("gated/templates/configmap.yaml")
            && message.contains("the site has not opened kube-public/chart-gate"),
        "{message}"
    );
    assert_eq!(
        phase_of(&layers, "hello-manifests"),
        Some(LayerPhase::Pending)
    );
    // Nothing of it stored: no release, no object.
    let kubeconfig = env.dir.path().join("workload.kubeconfig");
    std::fs::write(&kubeconfig, workload.kubeconfig()).unwrap();
    assert_eq!(releases_in(&kubeconfig, "gated"), []);
    let gated_configs: Api<ConfigMap> = Api::namespaced(w.clone(), "gated");
    assert!(gated_configs.get_opt("gated").await.unwrap().is_none());

    // The site opens the gate: the chart renders on its next try, one release.
    apply_workload(
        &w,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "chart-gate", "namespace": "kube-public"},
        }),
    )
    .await;
    let wc = eventually(
        "the chart retried and Ready, the next layer Failed on its pin",
        Duration::from_secs(300),
        || async {
            let wc = cluster(&client, NS, NAME).await?;
            let layers = layers_of(&wc);
            (phase_of(&layers, "gated-chart")? == LayerPhase::Ready
                && phase_of(&layers, "hello-manifests")? == LayerPhase::Failed)
                .then_some(wc)
        },
    )
    .await;
    assert_eq!(
        releases_in(&kubeconfig, "gated"),
        [("gated".to_string(), "deployed".to_string(), 1)]
    );
    let opened = gated_configs.get("gated").await.unwrap();
    assert_eq!(
        opened.data.unwrap().get("state").map(String::as_str),
        Some("open")
    );
    let layers = layers_of(&wc);
    let failed = layer_named(&layers, "hello-manifests");
    let message = failed.message.clone().unwrap();
    assert!(
        message.contains("the tag was pushed again since it was pinned")
            && message.contains(failed.digest.as_deref().unwrap()),
        "{message}"
    );
    assert!(
        configs
            .get_opt("hello-universe-config")
            .await
            .unwrap()
            .is_none()
    );

    // The tag pushed back to what the revision pins (the archive is reproducible): the
    // layer installs, and the last one renders into YAML that does not parse.
    publish_pack(
        &env.registry,
        &strata_e2e::management::repo_root().join("manifests/samples/packs/hello-manifests"),
    )
    .await
    .unwrap();
    let wc = eventually(
        "the pinned layer retried and Ready, the last one Failed on its rendering",
        Duration::from_secs(300),
        || async {
            let wc = cluster(&client, NS, NAME).await?;
            let layers = layers_of(&wc);
            (phase_of(&layers, "hello-manifests")? == LayerPhase::Ready
                && phase_of(&layers, "broken-template")? == LayerPhase::Failed)
                .then_some(wc)
        },
    )
    .await;
    assert!(
        configs
            .get_opt("hello-universe-config")
            .await
            .unwrap()
            .is_some()
    );
    let layers = layers_of(&wc);
    let message = layer_named(&layers, "broken-template")
        .message
        .clone()
        .unwrap();
    eprintln!("manifest that does not parse: {message}");
    assert!(
        message.contains("pack broken-template:1.0.0") && message.contains("manifests/second.yaml"),
        "{message}"
    );
    // Not half-applied: the manifest that rendered well is not applied either.
    assert!(
        Api::<ConfigMap>::namespaced(w.clone(), "broken")
            .get_opt("first")
            .await
            .unwrap()
            .is_none()
    );
    let states: Vec<(&str, LayerPhase)> =
        layers.iter().map(|l| (l.name.as_str(), l.state)).collect();
    assert_eq!(
        states,
        [
            ("cni-calico", LayerPhase::Ready),
            ("csi-hostpath", LayerPhase::Ready),
            ("quota-addon", LayerPhase::Ready),
            ("reach-addon", LayerPhase::Ready),
            ("gated-chart", LayerPhase::Ready),
            ("hello-manifests", LayerPhase::Ready),
            ("broken-template", LayerPhase::Failed),
        ],
        "{}",
        describe(Some(&wc))
    );
    assert_eq!(
        wc.status.as_ref().unwrap().layers_summary.as_deref(),
        Some("6/7")
    );
}

async fn apply_workload(w: &Client, object: serde_json::Value) {
    let client = w.clone();
    let (group_version, kind) = (
        object["apiVersion"].as_str().unwrap().to_string(),
        object["kind"].as_str().unwrap().to_string(),
    );
    let (group, version) = group_version
        .rsplit_once('/')
        .unwrap_or(("", &group_version));
    let resource =
        kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(group, version, &kind));
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    let api: Api<kube::api::DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(namespace) => Api::namespaced_with(client, namespace, &resource),
        None => Api::all_with(client, &resource),
    };
    api.patch(
        &name,
        &PatchParams::apply("site-admin"),
        &Patch::Apply(&object),
    )
    .await
    .unwrap();
}
