//! A profile change rolled out over five pivoted clusters, one at a time: the change to the
//! shared add-on profile (a new chart layer) under the `Approval` strategy waits for
//! approval on every cluster; once the profile drops its policy, the default one (one at a
//! time, pause on a failure) takes the change to the clusters in name order, never two at
//! once; the cluster whose site refuses the new layer fails, which pauses the rollout there
//! and says so on the clusters it holds; an approval acknowledges the failure and releases
//! the rest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::management::{
    ManagementEnv, ManagementOptions, SYSTEM_NAMESPACE, publish_pack, strata_binary,
};
use strata_e2e::management_trust::start_controller;
use strata_e2e::pivoted_cluster::first_control_plane_node;
use strata_e2e::samples::{
    CHART_GATE, apply_sample, apply_small_sim_cluster, write_gated_chart_pack,
};
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{cluster, condition, describe, wait_phase};
use strata_shared::cluster::{ClusterPhase, WorkloadCluster};
use strata_shared::contracts::names::objects_namespace;

const NS: &str = "fleet";
const CLUSTERS: [&str; 5] = ["c1", "c2", "c3", "c4", "c5"];
/// The cluster whose site does not open the gate the new layer needs.
const FAILING: &str = "c3";

/// What the watcher saw of each cluster's revisions.
#[derive(Debug, Default, Clone)]
struct Record {
    /// The order in which the clusters got revision 2 published.
    released: Vec<String>,
    /// The most clusters seen applying revision 2 at once (a failed one not counted once
    /// its failure was seen: it no longer holds a place after an approval, also while its
    /// site tries the layer again).
    most_applying: usize,
    failed: Vec<String>,
}

fn revision(wc: &WorkloadCluster) -> (Option<i64>, Option<i64>) {
    let status = wc.status.as_ref();
    (
        status.and_then(|s| s.revision),
        status.and_then(|s| s.applied_revision),
    )
}

fn failed_layer(wc: &WorkloadCluster) -> bool {
    wc.status.as_ref().is_some_and(|s| {
        s.layers
            .iter()
            .any(|l| l.state == strata_shared::cluster::LayerPhase::Failed)
    })
}

/// Lists the clusters twice a second and records the rollout's order and overlap. One
/// list is one consistent snapshot: clusters read one by one could show one that finished
/// and the next one started as both applying.
fn watch_fleet(client: Client) -> Arc<Mutex<Record>> {
    let record: Arc<Mutex<Record>> = Arc::default();
    let writer = record.clone();
    tokio::spawn(async move {
        let clusters: Api<WorkloadCluster> = Api::namespaced(client, NS);
        loop {
            if let Ok(list) = clusters.list(&ListParams::default()).await {
                let mut record = writer.lock().unwrap();
                let mut sorted = list.items;
                sorted.sort_by_key(|wc| wc.metadata.name.clone());
                let mut applying = 0;
                for wc in &sorted {
                    let name = wc.metadata.name.clone().unwrap_or_default();
                    let (published, applied) = revision(wc);
                    if published == Some(2) && !record.released.contains(&name) {
                        record.released.push(name.clone());
                    }
                    if published == Some(2) && failed_layer(wc) && !record.failed.contains(&name) {
                        record.failed.push(name.clone());
                    }
                    if published == Some(2) && applied != Some(2) && !record.failed.contains(&name)
                    {
                        applying += 1;
                    }
                }
                record.most_applying = record.most_applying.max(applying);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    record
}

fn strata_rollout(env: &ManagementEnv, approve: bool) -> String {
    let mut command = std::process::Command::new(strata_binary());
    command
        .args(["profile", "rollout", "sim-addons", "--version", "1.0.0"])
        .arg("--kubeconfig")
        .arg(env.control_plane.kubeconfig_path());
    if approve {
        command.arg("--approve");
    }
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    eprintln!("strata profile rollout:\n{text}");
    text
}

/// Waits until the RevisionPublished reason of `name` is `reason`; returns its message.
async fn wait_reason(client: &Client, name: &str, reason: &str) -> String {
    eventually(
        &format!("{name}: RevisionPublished {reason}"),
        Duration::from_secs(120),
        || async {
            let wc = cluster(client, NS, name).await?;
            let (_, found, message) = condition(&wc, "RevisionPublished");
            (found == reason).then(|| message.to_string())
        },
    )
    .await
}

async fn wait_applied(client: &Client, name: &str, number: i64) -> WorkloadCluster {
    eventually(
        &format!("{name}: revision {number} applied"),
        Duration::from_secs(300),
        || async {
            let wc = cluster(client, NS, name).await?;
            (revision(&wc).1 == Some(number)).then_some(wc)
        },
    )
    .await
}

#[tokio::test]
async fn a_profile_change_rolls_out_one_cluster_at_a_time_and_pauses_at_a_failure() {
    let _stop = StopWorkloads;
    let env = ManagementEnv::start(ManagementOptions::named("fleet"))
        .await
        .unwrap();
    let client = env.client();
    let gated = env.dir.path().join("gated-chart");
    write_gated_chart_pack(&gated);
    publish_pack(&env.registry, &gated).await.unwrap();
    // The shared add-on profile, rolled out by approval, one cluster at a time.
    apply_sample(&client, "profiles/sim-addons.yaml", SYSTEM_NAMESPACE, |d| {
        d["spec"]["rollout"] = json!({ "strategy": "Approval" });
    })
    .await;
    for name in CLUSTERS {
        apply_small_sim_cluster(&client, NS, name, false).await;
    }
    let controller = start_controller(&env, "controller").await;
    let objects: Vec<String> = CLUSTERS.iter().map(|n| objects_namespace(NS, n)).collect();
    let workloads = join_all(
        CLUSTERS
            .iter()
            .zip(&objects)
            .map(|(name, objects)| first_control_plane_node(&env, objects, name)),
    )
    .await;
    join_all(CLUSTERS.iter().map(|name| {
        wait_phase(
            &env,
            &controller,
            NS,
            name,
            ClusterPhase::Pivoted,
            Duration::from_secs(600),
        )
    }))
    .await;
    join_all(CLUSTERS.iter().map(|name| wait_applied(&client, name, 1))).await;
    // Every site but the failing one opens the gate the new layer needs.
    for (name, (workload, _)) in CLUSTERS.iter().zip(&workloads) {
        if *name == FAILING {
            continue;
        }
        let gate: ConfigMap = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": CHART_GATE.1, "namespace": CHART_GATE.0 },
        }))
        .unwrap();
        Api::<ConfigMap>::namespaced(workload.client(), CHART_GATE.0)
            .create(&PostParams::default(), &gate)
            .await
            .unwrap();
    }

    // The profile changes in place: a new chart layer for every cluster that uses it.
    let record = watch_fleet(client.clone());
    apply_sample(&client, "profiles/sim-addons.yaml", SYSTEM_NAMESPACE, |d| {
        d["spec"]["rollout"] = json!({ "strategy": "Approval" });
        d["spec"]["layers"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": "gated-chart", "version": "1.0.0" }));
    })
    .await;
    for name in CLUSTERS {
        let message = wait_reason(&client, name, "RolloutAwaitingApproval").await;
        assert!(
            message.contains("revision 1 (")
                && message.contains("stays in force")
                && message.contains("strata profile rollout sim-addons --version 1.0.0 --approve"),
            "{message}"
        );
    }
    assert!(record.lock().unwrap().released.is_empty());

    // The policy removed, the default one goes on without approval: the clusters take the
    // change in name order, up to the failing one, where it stops.
    apply_sample(&client, "profiles/sim-addons.yaml", SYSTEM_NAMESPACE, |d| {
        d["spec"]["layers"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": "gated-chart", "version": "1.0.0" }));
    })
    .await;
    for name in ["c1", "c2"] {
        wait_applied(&client, name, 2).await;
    }
    eventually(
        "c3 fails its new layer",
        Duration::from_secs(300),
        || async {
            let wc = cluster(&client, NS, FAILING).await?;
            (revision(&wc).0 == Some(2) && failed_layer(&wc)).then_some(())
        },
    )
    .await;
    for name in ["c4", "c5"] {
        let message = wait_reason(&client, name, "RolloutPaused").await;
        assert!(
            message.contains("cluster fleet/c3 failed: Layers: layer gated-chart 1.0.0 failed")
                && message.contains("kube-public/chart-gate"),
            "{message}"
        );
    }
    // Paused means paused: nothing more is released while nobody approves.
    tokio::time::sleep(Duration::from_secs(15)).await;
    for name in ["c4", "c5"] {
        let wc = cluster(&client, NS, name).await.unwrap();
        assert_eq!(revision(&wc), (Some(1), Some(1)), "{}", describe(Some(&wc)));
    }
    let standing = strata_rollout(&env, false);
    assert!(
        standing.contains("is paused")
            && standing.contains("fleet/c3")
            && standing.contains("failed")
            && standing.contains("(the default: the profile sets no spec.rollout)"),
        "{standing}"
    );

    // An approval acknowledges c3's failure and releases the rest.
    let approved = strata_rollout(&env, true);
    assert!(approved.contains(";fleet/c3@r2\n"), "{approved}");
    for name in ["c4", "c5"] {
        wait_applied(&client, name, 2).await;
    }
    let record = record.lock().unwrap().clone();
    assert_eq!(
        record.released,
        ["c1", "c2", "c3", "c4", "c5"],
        "{record:?}"
    );
    assert_eq!(record.most_applying, 1, "{record:?}");
    // The failed cluster keeps running revision 1's layers.
    let failing = cluster(&client, NS, FAILING).await.unwrap();
    assert_eq!(
        revision(&failing),
        (Some(2), Some(1)),
        "{}",
        describe(Some(&failing))
    );
}
