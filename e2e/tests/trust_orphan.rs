//! The escape hatch of `spec.deletionPolicy: Orphan` (issue 12, item 8), end to end: a
//! pivoted cluster whose agent is gone waits in `AwaitingMoveBack` when deleted, and
//! finishes deleting once the policy is set to Orphan, without the move back; a cluster
//! whose agent never ran is deleted with the policy set from the start. Either way the
//! management cluster forgets the cluster (its objects namespace, the agent's account,
//! credential and rights; the agent's token is refused), says so in a Warning event, and
//! leaves every cloud resource as it is: the workload control plane runs on, its machines
//! keep their instances, nothing was asked to be deleted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use strata_e2e::agent_footprint::{assert_agent_footprint_whole, assert_agent_gone};
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::dynamic_objects::{get_dynamic, list_objects};
use strata_e2e::management::{ManagementEnv, ManagementOptions};
use strata_e2e::management_trust::{agent_token, answer_to_token, start_controller};
use strata_e2e::pivoted_cluster::{first_control_plane_node, machine_instances};
use strata_e2e::samples::apply_small_sim_cluster;
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{
    cluster, describe, wait_phase, wait_phase_before_pivot, wait_scaled,
};
use strata_shared::cluster::{ClusterPhase, WorkloadCluster};
use strata_shared::contracts::names::{AGENT_NAME, AGENT_NAMESPACE, ClusterLocation};

/// How long a deleted cluster whose agent is gone is watched staying in AwaitingMoveBack.
const AWAITING_HELD: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_pivoted_cluster_whose_agent_is_gone_is_orphaned_leaving_its_machines() {
    let _stop = StopWorkloads;
    let started = Instant::now();
    let env = ManagementEnv::start(ManagementOptions::named("orphan-pivoted"))
        .await
        .unwrap();
    let client = env.client();
    let (ns, name) = ("team-site", "lost");
    let location = ClusterLocation::of(ns, name);
    let objects = location.objects_namespace.clone();
    apply_small_sim_cluster(&client, ns, name, false).await;
    let controller = start_controller(&env, "controller").await;

    let (workload, _) = first_control_plane_node(&env, &objects, name).await;
    let w = workload.client();
    wait_phase(
        &env,
        &controller,
        ns,
        name,
        ClusterPhase::Pivoted,
        Duration::from_secs(240),
    )
    .await;
    let wc = wait_scaled(&env, ns, name, 1, 1).await;
    let pivoted_after = started.elapsed();
    // Only the first machine's node is here: the simulator process that continues the
    // cluster inside it registers the later ones in a control plane of its own.
    let before = inventory(&w, &objects).await;
    assert_eq!(before.machines.len(), 2, "{before:?}");
    assert!(
        before.machines.values().all(|id| !id.is_empty()),
        "{before:?}"
    );
    assert_eq!(before.infrastructure.len(), 2, "{before:?}");
    assert!(!before.nodes.is_empty(), "{before:?}");
    assert_agent_footprint_whole(&client, &location, None, "after the pivot").await;
    let token = agent_token(&w).await;
    assert_eq!(
        answer_to_token(&env, &token, ns, name).await,
        200,
        "the agent's token reads its WorkloadCluster before the deletion"
    );

    // The agent is gone: its Deployment scaled to nothing, no process runs it. The provider
    // controllers (the simulator) run on in the workload cluster, as on a real site.
    let kubelet = env.agents_of(&objects, name).unwrap();
    let agent_key = format!("{AGENT_NAMESPACE}/{AGENT_NAME}");
    let agent_pids: Vec<u32> = kubelet
        .processes()
        .iter()
        .filter(|p| p.deployment == agent_key)
        .filter_map(|p| p.pid)
        .collect();
    assert!(!agent_pids.is_empty(), "no agent process ran");
    Api::<Deployment>::namespaced(w.clone(), AGENT_NAMESPACE)
        .patch(
            AGENT_NAME,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "replicas": 0 } })),
        )
        .await
        .unwrap();
    eventually(
        "no process to run the agent",
        Duration::from_secs(30),
        || async {
            let running = kubelet
                .processes()
                .iter()
                .any(|p| p.deployment == agent_key && p.pid.is_some());
            let alive = agent_pids
                .iter()
                .any(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
            (!running && !alive).then_some(())
        },
    )
    .await;

    // Deleted with the default policy, the cluster waits for a move back that cannot come.
    let clusters: Api<WorkloadCluster> = Api::namespaced(client.clone(), ns);
    clusters
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    let awaiting = |wc: &WorkloadCluster| {
        wc.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Deleting"))
            .is_some_and(|c| c.status == "False" && c.reason == "AwaitingMoveBack")
    };
    eventually(
        "the deletion to await the move back",
        Duration::from_secs(60),
        || async { cluster(&client, ns, name).await.filter(|wc| awaiting(wc)) },
    )
    .await;
    let held_since = Instant::now();
    while held_since.elapsed() < AWAITING_HELD {
        let found = cluster(&client, ns, name).await;
        let wc = found
            .as_ref()
            .unwrap_or_else(|| panic!("{ns}/{name} went without its agent moving it back"));
        assert!(
            awaiting(wc),
            "{ns}/{name} left AwaitingMoveBack without its agent: {}",
            describe(Some(wc))
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Nothing moved back meanwhile, nothing was deleted in the workload cluster.
    assert!(
        machine_instances(&client, &objects).await.is_empty(),
        "machines appeared in the management cluster without an agent"
    );
    assert_nothing_deleted(&w, &objects, name, &before).await;

    // The escape hatch.
    clusters
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "deletionPolicy": "Orphan" } })),
        )
        .await
        .unwrap();
    let orphaned = Instant::now();
    wait_gone(&client, &controller, ns, name).await;
    let gone_after = orphaned.elapsed();

    assert_orphaned(&env, &location, wc.uid().as_deref(), &token).await;
    // The cloud resources are left alone: the workload cluster runs on, its machines keep
    // their instances and nodes, and nothing there was asked to go.
    assert!(
        strata_e2e::cloud_sim::workload::running(workload.id()).is_some(),
        "the workload control plane was stopped"
    );
    assert_nothing_deleted(&w, &objects, name, &before).await;
    let replicas = Api::<Deployment>::namespaced(w.clone(), AGENT_NAMESPACE)
        .get(AGENT_NAME)
        .await
        .unwrap()
        .spec
        .and_then(|s| s.replicas);
    assert_eq!(replicas, Some(0), "the agent was started again");
    eprintln!(
        "pivoted and scaled in {pivoted_after:.0?}; orphaned {:.0?} after the policy was set; {:.0?} in all",
        gone_after,
        started.elapsed()
    );
}

#[tokio::test]
async fn a_cluster_whose_agent_never_ran_is_orphaned_leaving_its_machines() {
    let _stop = StopWorkloads;
    let started = Instant::now();
    let env = ManagementEnv::start(ManagementOptions::named("orphan-unpivoted"))
        .await
        .unwrap();
    let client = env.client();
    let (ns, name) = ("team-site", "never");
    let location = ClusterLocation::of(ns, name);
    let objects = location.objects_namespace.clone();
    apply_small_sim_cluster(&client, ns, name, true).await;
    let controller = start_controller(&env, "controller").await;

    // The agent is installed (its Deployment counts as available through the simulated
    // kubelet) but never runs: the cluster stays before its pivot.
    let wc = wait_phase_before_pivot(
        &env,
        &controller,
        ns,
        name,
        ClusterPhase::AgentInstalled,
        Duration::from_secs(300),
    )
    .await;
    let (workload, first) = first_control_plane_node(&env, &objects, name).await;
    let w = workload.client();
    assert!(env.agents_of(&objects, name).is_none());
    assert_agent_footprint_whole(&client, &location, None, "after the install").await;
    let token = agent_token(&w).await;
    assert_eq!(answer_to_token(&env, &token, ns, name).await, 200);
    let machines = machine_instances(&client, &objects).await;
    assert!(
        first.keys().all(|m| machines.contains_key(m)),
        "{first:?} {machines:?}"
    );
    let nodes_before = node_names(&w).await;
    assert!(
        first.keys().all(|m| nodes_before.contains_key(m)),
        "the first machine has no node: {nodes_before:?}"
    );
    let cloud = env.cloud.as_ref().unwrap();

    Api::<WorkloadCluster>::namespaced(client.clone(), ns)
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&client, &controller, ns, name).await;
    let gone_after = started.elapsed();
    assert_orphaned(&env, &location, wc.uid().as_deref(), &token).await;

    // The simulated cloud had its chance to act on what the management cluster held and
    // did nothing: the workload control plane runs, every node is still registered.
    let passes = cloud.passes();
    eventually(
        "two more passes of the simulator",
        Duration::from_secs(30),
        || async { (cloud.passes() >= passes + 2).then_some(()) },
    )
    .await;
    assert!(
        strata_e2e::cloud_sim::workload::running(workload.id()).is_some(),
        "the workload control plane was stopped"
    );
    let nodes_after = node_names(&w).await;
    for (node, provider_id) in &nodes_before {
        assert_eq!(
            nodes_after.get(node),
            Some(provider_id),
            "node {node} was removed or changed its instance"
        );
    }
    eprintln!(
        "orphaned before its pivot in {gone_after:.0?} ({} machines left running)",
        nodes_after.len()
    );
}

/// Waits for the WorkloadCluster to be gone; fails with its conditions and the controller's
/// log.
async fn wait_gone(
    client: &Client,
    controller: &strata_e2e::management::ControllerProcess,
    ns: &str,
    name: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Some(wc) = cluster(client, ns, name).await {
        assert!(
            Instant::now() < deadline,
            "{ns}/{name} was not orphaned: {}\n{}",
            describe(Some(&wc)),
            controller.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// What an orphaned cluster leaves in the management cluster: a Warning event saying so,
/// and nothing else of it; its agent's token is refused.
async fn assert_orphaned(
    env: &ManagementEnv,
    location: &ClusterLocation,
    uid: Option<&str>,
    token: &str,
) {
    let client = env.client();
    let (ns, name) = (&location.cluster_namespace, &location.cluster);
    let events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let orphaned: Vec<&Event> = events
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Orphaned"))
        .collect();
    let about_it = orphaned.iter().find(|e| {
        e.regarding.as_ref().is_some_and(|r| {
            r.kind.as_deref() == Some("WorkloadCluster")
                && r.name.as_deref() == Some(name.as_str())
                && r.uid.as_deref() == uid
        })
    });
    let event = about_it.unwrap_or_else(|| {
        panic!("no Orphaned event regarding WorkloadCluster {ns}/{name}: {orphaned:?}")
    });
    assert_eq!(event.type_.as_deref(), Some("Warning"), "{event:?}");
    let note = event.note.as_deref().unwrap_or_default();
    assert!(
        note.contains("left as they are") && note.contains("revoked"),
        "the event does not say what was left and revoked: {note}"
    );

    let namespace: Option<Namespace> = Api::all(client.clone())
        .get_opt(&location.objects_namespace)
        .await
        .unwrap();
    assert!(
        namespace.is_none(),
        "the objects namespace {} is left",
        location.objects_namespace
    );
    assert_agent_gone(&client, location, None).await;
    // The API server keeps a token's successful authentication for 10 s; its rights are gone
    // at once, so until then it is refused as unauthorized (403), then as unknown (401).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answers: Vec<u16> = Vec::new();
    loop {
        let code = answer_to_token(env, token, ns, name).await;
        if answers.last() != Some(&code) {
            answers.push(code);
        }
        if code == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the orphaned agent's token is still known to the API server: answered {answers:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        answers.iter().all(|code| [401, 403].contains(code)),
        "the orphaned agent's token was answered {answers:?}"
    );
}

/// What stands for the cloud's resources in a pivoted workload cluster: its Machines with
/// their instances (provider IDs), their infrastructure machines, and its Nodes (name →
/// provider ID).
#[derive(Debug, PartialEq)]
struct Inventory {
    machines: BTreeMap<String, String>,
    infrastructure: BTreeSet<String>,
    nodes: BTreeMap<String, String>,
}

async fn inventory(w: &Client, objects: &str) -> Inventory {
    Inventory {
        machines: machine_instances(w, objects).await,
        infrastructure: list_objects(w, objects, SIM_MACHINE.0, SIM_MACHINE.1)
            .await
            .iter()
            .map(|m| m.name_any())
            .collect(),
        nodes: node_names(w).await,
    }
}

const SIM_MACHINE: (&str, &str) = ("infrastructure.cluster.x-k8s.io/v1beta2", "SimMachine");

/// The workload cluster answers, and nothing in it was deleted: everything of `before` is
/// still there (machines with the same instances, nodes with the same provider IDs), and
/// neither the Cluster nor any machine is being deleted.
async fn assert_nothing_deleted(w: &Client, objects: &str, name: &str, before: &Inventory) {
    let now = inventory(w, objects).await;
    for (machine, id) in &before.machines {
        assert_eq!(
            now.machines.get(machine),
            Some(id),
            "machine {machine} is gone or lost its instance"
        );
    }
    for machine in &before.infrastructure {
        assert!(
            now.infrastructure.contains(machine),
            "SimMachine {machine} is gone"
        );
    }
    for (node, id) in &before.nodes {
        assert_eq!(
            now.nodes.get(node),
            Some(id),
            "node {node} is gone or changed its instance"
        );
    }
    let deleting: Vec<String> = list_objects(w, objects, "cluster.x-k8s.io/v1beta2", "Machine")
        .await
        .into_iter()
        .chain(list_objects(w, objects, SIM_MACHINE.0, SIM_MACHINE.1).await)
        .chain(
            get_dynamic(
                w,
                "cluster.x-k8s.io/v1beta2",
                "Cluster",
                Some(objects),
                name,
            )
            .await,
        )
        .filter(|o| o.metadata.deletion_timestamp.is_some())
        .map(|o| o.name_any())
        .collect();
    assert!(deleting.is_empty(), "being deleted: {deleting:?}");
}

/// The workload cluster's nodes: name → provider ID.
async fn node_names(w: &Client) -> BTreeMap<String, String> {
    Api::<Node>::all(w.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| {
            let id = n
                .spec
                .as_ref()
                .and_then(|s| s.provider_id.clone())
                .unwrap_or_default();
            (n.name_any(), id)
        })
        .collect()
}
