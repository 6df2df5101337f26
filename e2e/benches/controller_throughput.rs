//! How fast `strata controller` turns WorkloadClusters into their CAPI objects, and how
//! much memory it needs doing it.
//!
//! N WorkloadClusters (500 unless `STRATA_BENCH_CLUSTERS` says otherwise) on the `sim`
//! cloud, whose machines provision at once (no workload control planes), are created
//! first; then the controller starts, and the clock runs until every cluster's
//! ObjectsApplied condition is True. The floor, measured in the same run against the same
//! apiserver, is the bare writes the controller must make for each cluster (its namespace,
//! its revision, its four CAPI objects, its status) sent as plain parallel API calls with
//! the same concurrency: the ratio is what validation, pack resolution, the reads and the
//! runtime cost on top.
//!
//! Then the profile every cluster uses changes (its chart layer's values): the clock runs
//! until every cluster has published revision 2, against the floor of each cluster's
//! revision 2 and its status written directly.
//!
//! `cargo bench -p strata-e2e --bench controller_throughput`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;
use strata_e2e::bench_table::BenchRow;
use strata_e2e::cloud_sim::SimOptions;
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, SYSTEM_NAMESPACE, apply, ensure_namespace,
    read_documents, repo_root,
};
use strata_shared::capi::{BuildInput, control_plane_objects};
use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::names::objects_namespace;
use strata_shared::revision::{ClusterRevision, ClusterRevisionSpec, revision_name};

const NAMESPACE: &str = "bench";
const CONCURRENCY: usize = 8;

fn cluster_name(i: usize) -> String {
    format!("c{i:04}")
}

/// Every WorkloadCluster of the bench, kept by a watch: polling with lists of a thousand
/// clusters would load the apiserver the controller is measured against.
fn watched_clusters(client: &Client) -> Store<WorkloadCluster> {
    let (store, writer) = reflector::store();
    let api: Api<WorkloadCluster> = Api::namespaced(client.clone(), NAMESPACE);
    tokio::spawn(
        watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .for_each(|_| futures::future::ready(())),
    );
    store
}

/// The apiserver's request counts by verb, resource and subresource.
async fn request_counts(client: &Client) -> BTreeMap<String, u64> {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.unwrap();
    let mut counts = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        let (resource, subresource) = (label("resource"), label("subresource"));
        let key = if subresource.is_empty() {
            format!("{} {resource}", label("verb"))
        } else {
            format!("{} {resource}/{subresource}", label("verb"))
        };
        *counts.entry(key).or_default() += value.parse::<f64>().unwrap_or(0.0) as u64;
    }
    counts
}

/// What was asked of the apiserver between two counts, most first.
fn requests_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> Vec<(String, u64)> {
    let mut rows: Vec<(String, u64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    rows
}

fn applied_count(store: &Store<WorkloadCluster>) -> usize {
    store
        .state()
        .iter()
        .filter(|c| {
            c.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "ObjectsApplied" && c.status == "True")
            })
        })
        .count()
}

/// The writes the controller makes for one cluster, done directly.
async fn floor_writes(client: Client, i: usize, template: ClusterRevisionSpec) {
    let name = format!("f{i:04}");
    let objects = objects_namespace("floor", &name);
    ensure_namespace(&client, &objects).await.unwrap();
    let revisions: Api<ClusterRevision> = Api::namespaced(client.clone(), &objects);
    let revision = ClusterRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&name, 1)),
            namespace: Some(objects.clone()),
            ..ObjectMeta::default()
        },
        spec: ClusterRevisionSpec {
            cluster_name: name.clone(),
            ..template.clone()
        },
    };
    revisions
        .create(&PostParams::default(), &revision)
        .await
        .unwrap();
    let built = control_plane_objects(&BuildInput {
        cluster_name: &name,
        namespace: &objects,
        revision: 1,
        desired: &template.desired,
    })
    .unwrap();
    for object in &built {
        apply(&client, object).await.unwrap();
    }
    let clusters: Api<WorkloadCluster> = Api::namespaced(client.clone(), "floor");
    let status = json!({
        "apiVersion": "strata.dev/v1alpha1",
        "kind": "WorkloadCluster",
        "status": { "phase": "Provisioning", "revision": 1, "namespace": objects },
    });
    clusters
        .patch_status(
            &name,
            &PatchParams::apply("floor").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("STRATA_BENCH_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let env = ManagementEnv::start(ManagementOptions {
        sim: SimOptions::instant(),
        ..ManagementOptions::named("bench")
    })
    .await
    .unwrap();
    let client = env.client();
    ensure_namespace(&client, NAMESPACE).await.unwrap();
    ensure_namespace(&client, "floor").await.unwrap();
    let sample = read_documents(&repo_root().join("manifests/samples/clusters/sim-demo.yaml"))
        .unwrap()
        .remove(0);
    let make = |namespace: &str, name: String| {
        let mut object = sample.clone();
        object["metadata"]["namespace"] = json!(namespace);
        object["metadata"]["name"] = json!(name);
        object
    };

    eprintln!("creating {count} WorkloadClusters…");
    futures::stream::iter((0..count).map(|i| {
        let client = client.clone();
        let object = make(NAMESPACE, cluster_name(i));
        async move { apply(&client, &object).await.map(|_| ()) }
    }))
    .buffer_unordered(CONCURRENCY)
    .try_collect::<Vec<()>>()
    .await
    .unwrap();

    let watched = watched_clusters(&client);
    let requests_before = request_counts(&client).await;
    eprintln!("starting the controller (concurrency {CONCURRENCY})…");
    let concurrency = CONCURRENCY.to_string();
    let mut controller = ControllerProcess::start(
        env.control_plane.kubeconfig_path(),
        env.dir.path(),
        "controller",
        &["--concurrency", &concurrency],
    )
    .unwrap();
    let started = Instant::now();
    wait_for_all(&mut controller, "the clusters' objects", count, || {
        futures::future::ready(applied_count(&watched))
    })
    .await;
    let took = started.elapsed();
    let peak_kib = controller.peak_memory_kib().unwrap_or(0);
    let requests = requests_between(&requests_before, &request_counts(&client).await);
    let (_, metrics) = controller.get("/metrics").await.unwrap();

    // A change of the profile every cluster uses (its chart layer's values): each cluster
    // publishes revision 2 and applies its objects again.
    eprintln!("changing the shared add-on profile…");
    let mut profile =
        read_documents(&repo_root().join("manifests/samples/profiles/sim-addons.yaml"))
            .unwrap()
            .remove(0);
    profile["metadata"]["namespace"] = json!(SYSTEM_NAMESPACE);
    profile["spec"]["layers"][0]["values"] = json!("charts:\n  hello-web:\n    replicaCount: 2\n");
    let change_started = Instant::now();
    apply(&client, &profile).await.unwrap();
    wait_for_all(&mut controller, "the profile change", count, || {
        futures::future::ready(revised_count(&watched, 2))
    })
    .await;
    let change_took = change_started.elapsed();
    let change_peak_kib = controller.peak_memory_kib().unwrap_or(0);
    controller.terminate(Duration::from_secs(10));

    // The floor: the same writes, directly.
    let template = Api::<ClusterRevision>::namespaced(
        client.clone(),
        &objects_namespace(NAMESPACE, &cluster_name(0)),
    )
    .get(&revision_name(&cluster_name(0), 1))
    .await
    .unwrap()
    .spec;
    futures::stream::iter((0..count).map(|i| {
        let client = client.clone();
        let object = make("floor", format!("f{i:04}"));
        async move { apply(&client, &object).await.map(|_| ()) }
    }))
    .buffer_unordered(CONCURRENCY)
    .try_collect::<Vec<()>>()
    .await
    .unwrap();
    let floor_requests_before = request_counts(&client).await;
    let floor_started = Instant::now();
    futures::stream::iter((0..count).map(|i| floor_writes(client.clone(), i, template.clone())))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    let floor = floor_started.elapsed();
    let floor_requests = requests_between(&floor_requests_before, &request_counts(&client).await);
    // The floor of the profile change: each cluster's revision 2 and its status, directly.
    let change_floor_started = Instant::now();
    futures::stream::iter(
        (0..count).map(|i| floor_revision_2(client.clone(), i, template.clone())),
    )
    .buffer_unordered(CONCURRENCY)
    .collect::<Vec<()>>()
    .await;
    let change_floor = change_floor_started.elapsed();

    let reconciles = metrics
        .lines()
        .find(|l| l.starts_with("strata_controller_reconciles_total{result=\"success\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("?")
        .to_string();
    let per_cluster = reconciles.parse::<f64>().unwrap_or(f64::NAN) / count as f64;
    let what = format!("controller: {count} WorkloadClusters → CAPI objects");
    BenchRow {
        what: &what,
        figure: format!("{:.1} s", took.as_secs_f64()),
        against: "floor: the same writes as plain parallel calls",
        against_figure: format!("{:.1} s", floor.as_secs_f64()),
        ratio: took.as_secs_f64() / floor.as_secs_f64(),
        goal: "≤ 60 s for 1,000; ≤ 2.0×",
    }
    .print();
    BenchRow {
        what: "controller: successful reconciles per cluster",
        figure: format!("{per_cluster:.2}"),
        against: "goal",
        against_figure: "2".into(),
        ratio: per_cluster / 2.0,
        goal: "≤ 2",
    }
    .print();
    BenchRow {
        what: "controller: peak memory (VmHWM)",
        figure: format!("{:.1} MiB", peak_kib as f64 / 1024.0),
        against: "goal",
        against_figure: "64 MiB".into(),
        ratio: peak_kib as f64 / 1024.0 / 64.0,
        goal: "≤ 64 MiB",
    }
    .print();
    BenchRow {
        what: "controller: a shared profile changed, every cluster at revision 2",
        figure: format!("{:.1} s", change_took.as_secs_f64()),
        against: "floor: each revision 2 and its status, plain calls",
        against_figure: format!("{:.1} s", change_floor.as_secs_f64()),
        ratio: change_took.as_secs_f64() / change_floor.as_secs_f64(),
        goal: "",
    }
    .print();
    println!(
        "controller throughput: {count} WorkloadClusters on the sim cloud, concurrency {CONCURRENCY}"
    );
    println!(
        "  controller: all CAPI objects applied in {:.1} s ({:.1} clusters/s), {reconciles} successful reconciles",
        took.as_secs_f64(),
        count as f64 / took.as_secs_f64()
    );
    println!(
        "  floor (the same writes as plain parallel API calls): {:.1} s ({:.1} clusters/s)",
        floor.as_secs_f64(),
        count as f64 / floor.as_secs_f64()
    );
    println!(
        "  ratio controller/floor: {:.2}",
        took.as_secs_f64() / floor.as_secs_f64()
    );
    // Everything the apiserver served meanwhile: the controller's requests, the
    // simulator's (which provisions the floor's objects as well) and this bench's watch.
    let total = |rows: &[(String, u64)]| rows.iter().map(|(_, n)| n).sum::<u64>();
    println!(
        "  apiserver requests while the controller ran: {} ({:.1} per cluster); during the floor: {} ({:.1} per cluster)",
        total(&requests),
        total(&requests) as f64 / count as f64,
        total(&floor_requests),
        total(&floor_requests) as f64 / count as f64
    );
    for (what, n) in requests.iter().take(16) {
        let floor_n = floor_requests
            .iter()
            .find(|(w, _)| w == what)
            .map_or(0, |(_, n)| *n);
        println!(
            "    {what:<48} {:>6.2} per cluster (floor {:.2})",
            *n as f64 / count as f64,
            floor_n as f64 / count as f64
        );
    }
    println!(
        "  controller peak memory (VmHWM): {:.1} MiB",
        peak_kib as f64 / 1024.0
    );
    println!(
        "  a change of the shared profile: every cluster at revision 2 in {:.1} s; floor (each revision 2 and its status, plain calls) {:.1} s; ratio {:.2}; controller peak memory after it {:.1} MiB",
        change_took.as_secs_f64(),
        change_floor.as_secs_f64(),
        change_took.as_secs_f64() / change_floor.as_secs_f64(),
        change_peak_kib as f64 / 1024.0
    );
}

/// How many clusters have published revision `number`.
/// Waits until `done` counts `count`, saying how far it got every 10 seconds; fails when
/// the controller stops or after 30 minutes.
async fn wait_for_all<F, Fut>(controller: &mut ControllerProcess, what: &str, count: usize, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let now = done().await;
        if now >= count {
            return;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  {what}: {now}/{count} after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        assert!(
            controller.running(),
            "the controller stopped:\n{}",
            controller.log_tail(30)
        );
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "{what} not done in 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn revised_count(store: &Store<WorkloadCluster>, number: i64) -> usize {
    store
        .state()
        .iter()
        .filter(|c| c.status.as_ref().and_then(|s| s.revision) == Some(number))
        .count()
}

/// The writes a profile change needs for one cluster, done directly: its revision 2 and
/// the status that names it.
async fn floor_revision_2(client: Client, i: usize, template: ClusterRevisionSpec) {
    let name = format!("f{i:04}");
    let objects = objects_namespace("floor", &name);
    let revisions: Api<ClusterRevision> = Api::namespaced(client.clone(), &objects);
    let revision = ClusterRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&name, 2)),
            namespace: Some(objects.clone()),
            ..ObjectMeta::default()
        },
        spec: ClusterRevisionSpec {
            cluster_name: name.clone(),
            number: 2,
            ..template
        },
    };
    revisions
        .create(&PostParams::default(), &revision)
        .await
        .unwrap();
    let status = json!({
        "apiVersion": "strata.dev/v1alpha1",
        "kind": "WorkloadCluster",
        "status": { "revision": 2 },
    });
    Api::<WorkloadCluster>::namespaced(client, "floor")
        .patch_status(
            &name,
            &PatchParams::apply("floor").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
}
