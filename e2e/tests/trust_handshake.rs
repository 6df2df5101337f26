//! One writer for a cluster's CAPI objects (issue 12): the agent moves them only after the
//! controller granted the move in the cluster's ledger, and a deletion and a grant exclude
//! each other.
//!
//! - A reconcile held in pack resolution (a slow registry, a fresh controller with nothing
//!   remembered) while the agent asks for its move: the agent waits; once the registry
//!   answers, the move is granted and made, and nothing reappears in the management cluster,
//!   even when the controller is woken again.
//! - Deletions landing the moment each agent asks for its move: exactly one of the grant and
//!   the deletion is ever recorded, and each cluster goes with nothing lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::dynamic_objects::list_objects;
use strata_e2e::fault_proxy::FaultProxy;
use strata_e2e::loss_watch::{watch_for_loss, watched_objects};
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, SAMPLE_REGISTRY, SYSTEM_NAMESPACE,
    ensure_namespace,
};
use strata_e2e::move_checks::pivot_journal;
use strata_e2e::pivoted_cluster::machine_instances;
use strata_e2e::samples::apply_sample;
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{cluster, describe, wait_phase_before_pivot};
use strata_shared::cluster::ledger::{ClusterLedger, PivotLatch};
use strata_shared::cluster::{ClusterPhase, WorkloadCluster};
use strata_shared::contracts::conditions::REASON_MOVE_REQUESTED;
use strata_shared::contracts::names::{AGENT_NAMESPACE, objects_namespace, reverse_journal_name};

const NAMESPACE: &str = "team-handshake";

async fn ledger(client: &Client, objects: &str) -> Option<ClusterLedger> {
    let namespace = Api::<Namespace>::all(client.clone())
        .get_opt(objects)
        .await
        .ok()??;
    Some(ClusterLedger::read(namespace.metadata.annotations.as_ref()))
}

fn requests_move(wc: &WorkloadCluster) -> bool {
    wc.status.as_ref().is_some_and(|s| {
        strata_shared::conditions::find(&s.conditions, "Pivoted")
            .is_some_and(|c| c.reason == REASON_MOVE_REQUESTED)
    })
}

/// The CAPI objects of a cluster in the management cluster, by kind and name.
async fn capi_in_management(client: &Client, objects: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (api_version, kind) in [
        ("cluster.x-k8s.io/v1beta2", "Cluster"),
        ("cluster.x-k8s.io/v1beta2", "Machine"),
        (
            "controlplane.cluster.x-k8s.io/v1beta2",
            "KubeadmControlPlane",
        ),
        ("infrastructure.cluster.x-k8s.io/v1beta2", "SimCluster"),
    ] {
        for object in list_objects(client, objects, api_version, kind).await {
            found.insert(format!(
                "{kind} {}",
                object.metadata.name.unwrap_or_default()
            ));
        }
    }
    found
}

#[tokio::test]
async fn a_move_waits_for_a_reconcile_held_in_pack_resolution_and_nothing_reappears() {
    let _stop = StopWorkloads;
    let env = ManagementEnv::start(ManagementOptions::named("handshake-held"))
        .await
        .unwrap();
    let client = env.client();
    // The controller reaches the sample registry through a proxy the test can slow down.
    let registry: SocketAddr = env.registry.addr();
    let proxy = FaultProxy::start(registry).await.unwrap();
    Api::<strata_shared::pack_registry::PackRegistry>::namespaced(client.clone(), SYSTEM_NAMESPACE)
        .patch(
            SAMPLE_REGISTRY,
            &PatchParams::apply("e2e-handshake").force(),
            &Patch::Apply(json!({
                "apiVersion": "strata.dev/v1alpha1",
                "kind": "PackRegistry",
                "metadata": { "name": SAMPLE_REGISTRY, "namespace": SYSTEM_NAMESPACE },
                "spec": { "endpoint": proxy.addr().to_string() },
            })),
        )
        .await
        .unwrap();
    ensure_namespace(&client, NAMESPACE).await.unwrap();
    let name = "held";
    let objects = objects_namespace(NAMESPACE, name);
    apply_sample(&client, "clusters/sim-demo.yaml", NAMESPACE, |d| {
        d["metadata"]["name"] = name.into();
    })
    .await;
    let kubeconfig = env.controller_kubeconfig().await.unwrap();
    let first = ControllerProcess::start(&kubeconfig, env.dir.path(), "controller-1", &[]).unwrap();
    wait_phase_before_pivot(
        &env,
        &first,
        NAMESPACE,
        name,
        ClusterPhase::AgentInstalled,
        Duration::from_secs(240),
    )
    .await;
    drop(first);

    // The agent (run from now on) installs its providers from their packs and asks for
    // the move while no controller runs; then a new controller, which remembers no pack,
    // starts with the registry slow: its first reconcile waits on it.
    let asked = eventually(
        "the agent to ask for its move",
        Duration::from_secs(180),
        || async {
            env.run_agents_of(&objects, name).await.unwrap();
            let wc = cluster(&client, NAMESPACE, name).await?;
            requests_move(&wc).then_some(wc)
        },
    )
    .await;
    proxy.slow(Duration::from_secs(20));
    let _second =
        ControllerProcess::start(&kubeconfig, env.dir.path(), "controller-2", &[]).unwrap();
    let before = capi_in_management(&client, &objects).await;
    assert!(before.contains(&format!("Cluster {name}")), "{before:?}");
    // Held: no grant, nothing moves, for as long as the registry stays slow.
    for _ in 0..15 {
        let recorded = ledger(&client, &objects).await.unwrap();
        assert_eq!(
            recorded.pivot,
            PivotLatch::NotGranted,
            "granted while the reconcile was held: {}",
            describe(Some(&asked))
        );
        assert_eq!(capi_in_management(&client, &objects).await, before);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    proxy.restore();

    let watched = watched_objects(name, machine_instances(&client, &objects).await.keys());
    let workload = env.workload(&objects, name).await.unwrap().unwrap();
    let w = workload.client();
    let (watcher, stop_watching) =
        watch_for_loss(client.clone(), w.clone(), objects.clone(), watched);
    let pivoted = eventually(
        "the cluster to pivot once the registry answers",
        Duration::from_secs(240),
        || async {
            let wc = cluster(&client, NAMESPACE, name).await?;
            (wc.status.as_ref()?.phase == Some(ClusterPhase::Pivoted)).then_some(wc)
        },
    )
    .await;
    let _ = stop_watching.send(true);
    let lost = watcher.await.unwrap();
    assert!(lost.is_empty(), "lost during the move: {lost:?}");
    assert_eq!(
        ledger(&client, &objects).await.unwrap().pivot,
        PivotLatch::Granted,
        "{}",
        describe(Some(&pivoted))
    );
    // Nothing reappears, also when the controller is woken and has every pack remembered.
    for round in 0..10 {
        Api::<WorkloadCluster>::namespaced(client.clone(), NAMESPACE)
            .patch(
                name,
                &PatchParams::apply("e2e-wake"),
                &Patch::Apply(json!({
                    "apiVersion": "strata.dev/v1alpha1",
                    "kind": "WorkloadCluster",
                    "metadata": { "annotations": { "e2e/wake": round.to_string() } },
                })),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let left = capi_in_management(&client, &objects).await;
        assert!(
            left.is_empty(),
            "CAPI objects reappeared in the management cluster after the move: {left:?}"
        );
    }
}

#[tokio::test]
async fn a_deletion_racing_the_move_request_has_one_winner_and_loses_nothing() {
    let _stop = StopWorkloads;
    let env = ManagementEnv::start(ManagementOptions::named("handshake-race"))
        .await
        .unwrap();
    let client = env.client();
    ensure_namespace(&client, NAMESPACE).await.unwrap();
    let names = ["race-a", "race-b", "race-c"];
    for name in names {
        apply_sample(&client, "clusters/sim-demo.yaml", NAMESPACE, |d| {
            d["metadata"]["name"] = name.into();
        })
        .await;
    }
    let kubeconfig = env.controller_kubeconfig().await.unwrap();
    let controller =
        ControllerProcess::start(&kubeconfig, env.dir.path(), "controller", &[]).unwrap();

    // Every state of each ledger the test sees, until the namespaces go.
    let seen: Arc<Mutex<BTreeMap<String, Vec<ClusterLedger>>>> = Arc::default();
    let observer = {
        let (client, seen) = (client.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                for name in names {
                    if let Some(recorded) =
                        ledger(&client, &objects_namespace(NAMESPACE, name)).await
                    {
                        let mut seen = seen.lock().unwrap();
                        let states = seen.entry(name.to_string()).or_default();
                        if states.last() != Some(&recorded) {
                            states.push(recorded);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // Each cluster is deleted the moment its agent asks for the move, or the moment the
    // controller granted it when the request came and went between two looks. Three
    // clusters come up side by side, which a loaded 2-core machine takes minutes for.
    let mut pending: BTreeSet<&str> = names.into_iter().collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while !pending.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{pending:?} never asked for their move\n{}",
            controller.log_tail(30)
        );
        for name in pending.clone() {
            env.run_agents_of(&objects_namespace(NAMESPACE, name), name)
                .await
                .unwrap();
            let asked = cluster(&client, NAMESPACE, name)
                .await
                .is_some_and(|wc| requests_move(&wc));
            let granted = ledger(&client, &objects_namespace(NAMESPACE, name))
                .await
                .is_some_and(|recorded| recorded.pivot == PivotLatch::Granted);
            if asked || granted {
                Api::<WorkloadCluster>::namespaced(client.clone(), NAMESPACE)
                    .delete(name, &Default::default())
                    .await
                    .unwrap();
                pending.remove(name);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Every cluster goes; a cluster whose objects moved had them all brought back first
    // (seen in its journals while its workload cluster still runs).
    let mut moved: BTreeSet<&str> = BTreeSet::new();
    let mut back: BTreeSet<&str> = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let mut left = Vec::new();
        for name in names {
            let objects = objects_namespace(NAMESPACE, name);
            if let Ok(Some(workload)) = env.workload(&objects, name).await {
                let w = workload.client();
                if pivot_journal(&w, name).await.is_some() {
                    moved.insert(name);
                }
                let reverse_map = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(
                    w.clone(),
                    AGENT_NAMESPACE,
                )
                .get_opt(&reverse_journal_name(name))
                .await
                .ok()
                .flatten();
                let reverse = match reverse_map {
                    Some(m) => strata_e2e::move_checks::journal_of_map(&w, &m).await.ok(),
                    None => None,
                };
                if reverse
                    .is_some_and(|j| j.phase == strata_shared::pivot::journal::MovePhase::Done)
                {
                    back.insert(name);
                }
            }
            if cluster(&client, NAMESPACE, name).await.is_some() {
                left.push(name);
            }
        }
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left:?} were not deleted\n{}",
            controller.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    observer.abort();
    let seen = seen.lock().unwrap().clone();
    let mut outcomes = Vec::new();
    for name in names {
        let states = seen.get(name).cloned().unwrap_or_default();
        let granted = states.iter().any(|l| l.pivot != PivotLatch::NotGranted);
        let decided = states.iter().any(|l| l.deletion_decided);
        assert!(
            !(granted && decided),
            "{name}: both a grant and a deletion were recorded: {states:?}"
        );
        assert!(
            granted || decided,
            "{name}: neither was recorded: {states:?}"
        );
        if moved.contains(name) {
            assert!(granted, "{name}: objects moved without a grant");
            assert!(
                back.contains(name),
                "{name}: its objects moved but were not seen moved back before its deletion"
            );
        }
        outcomes.push(format!(
            "{name}: {}",
            match (granted, moved.contains(name)) {
                (false, _) => "deletion first, nothing moved",
                (true, false) => "granted first, deleted before anything moved",
                (true, true) => "granted first, moved and moved back",
            }
        ));
    }
    eprintln!("outcomes: {}", outcomes.join(", "));
}
