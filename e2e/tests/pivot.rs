//! The pivot end to end: the controller provisions a sim cluster's first control-plane
//! node and installs the agent; the agent (a real process in the workload cluster) moves
//! the cluster's CAPI objects into its own cluster, where a second simulator continues
//! the cluster without replacing a machine, then scales it to its revision and reports
//! Pivoted and the node counts back.
//!
//! The agent installs the workload cluster's provider components itself: the CAPI and
//! sim CRDs copied from the management cluster, and the simulator as the provider
//! controllers' Deployment, which the process kubelet runs as a `strata-sim-cloud` process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use strata_e2e::agent_endpoints::{self, sample};
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::dynamic_objects::{get_dynamic, list_objects};
use strata_e2e::loss_watch::{watch_for_loss, watched_objects};
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, ensure_namespace,
};
use strata_e2e::move_checks::{assert_target_unpaused, check_moved_objects, move_steps};
use strata_e2e::pivoted_cluster::{
    first_control_plane_node, machine_instances, moves_back_when_deleted,
};
use strata_e2e::samples::apply_sample;
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{cluster, condition, describe, wait_phase};
use strata_shared::cluster::ClusterPhase;
use strata_shared::contracts::names::{
    AGENT_NAME, AGENT_NAMESPACE, PROVIDER_NAME, PROVIDER_NAMESPACE, objects_namespace,
    pivot_journal_name,
};
use strata_shared::pivot::journal::{MoveJournal, MovePhase};

#[tokio::test]
async fn a_sim_cluster_pivots_into_itself_and_scales_out() {
    pivots(false).await;
}

/// The agent exits (as if killed) right after each step of the move, before recording it:
/// every step is then done twice, by two processes, and the move must still converge.
#[tokio::test]
async fn a_move_killed_after_every_step_converges_and_loses_nothing() {
    pivots(true).await;
}

async fn pivots(crash_after_every_step: bool) {
    let _stop = StopWorkloads;
    let env = ManagementEnv::start(ManagementOptions::named("pivot"))
        .await
        .unwrap();
    let client = env.client();
    let ns = "strata-demo";
    let name = "demo";
    let objects = objects_namespace(ns, name);
    ensure_namespace(&client, ns).await.unwrap();
    apply_sample(&client, "clusters/sim-demo.yaml", ns, |_| {}).await;
    let mut controller = ControllerProcess::start(
        env.control_plane.kubeconfig_path(),
        env.dir.path(),
        "controller",
        &["--provider-arg", "sim=--fast"],
    )
    .unwrap();

    // The workload cluster's provider components, once its control plane runs.
    let (workload, before) = first_control_plane_node(&env, &objects, name).await;
    let w = workload.client();
    if crash_after_every_step {
        // The agent's Deployment gets the fault injection (the controller's apply leaves an
        // env var of another field manager alone); the process kubelet restarts it with it.
        let deployments: Api<Deployment> = Api::namespaced(w.clone(), AGENT_NAMESPACE);
        eventually("the agent Deployment", Duration::from_secs(120), || async {
            deployments.get_opt(AGENT_NAME).await.ok().flatten()
        })
        .await;
        strata_e2e::process_kubelet::require_fault_hooks();
        let patch = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": AGENT_NAME, "namespace": AGENT_NAMESPACE },
            "spec": { "template": { "spec": { "containers": [{
                "name": "agent",
                "env": [{ "name": "STRATA_MOVE_EXIT_AFTER", "value": "1" }],
            }]}}},
        });
        deployments
            .patch(
                AGENT_NAME,
                &PatchParams::apply("e2e-crash"),
                &Patch::Apply(&patch),
            )
            .await
            .unwrap();
    }
    let watched = watched_objects(name, before.keys());
    // CAPI writes the kubeconfig a moment after the control plane answers.
    eventually(
        "the cluster's kubeconfig Secret",
        Duration::from_secs(60),
        || async {
            Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &objects)
                .get_opt(&format!("{name}-kubeconfig"))
                .await
                .ok()
                .flatten()
        },
    )
    .await;
    if !crash_after_every_step {
        // The dry run: the plan, and nothing changed (the management cluster's CRDs stand in
        // for the target's; no agent runs yet).
        // What a move would change first: the Cluster's spec (its pause, which bumps the
        // generation) and annotations. Its status goes on changing with CAPI's work.
        let touched = |c: DynamicObject| (c.metadata.generation, c.metadata.annotations);
        let cluster_before = touched(
            get_dynamic(
                &client,
                "cluster.x-k8s.io/v1beta2",
                "Cluster",
                Some(&objects),
                name,
            )
            .await
            .unwrap(),
        );
        let kubeconfig = env.control_plane.kubeconfig_path();
        let output =
            std::process::Command::new(strata_e2e::process_kubelet::default_agent_binary())
                .arg("plan")
                .arg("--source-kubeconfig")
                .arg(kubeconfig)
                .arg("--target-kubeconfig")
                .arg(kubeconfig)
                .args(["--namespace", &objects, "--cluster", name])
                .output()
                .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            text.starts_with(&format!("move of Cluster {objects}/{name} (")),
            "{text}"
        );
        assert!(text.contains("group 1:\n"), "{text}");
        assert!(
            text.contains(&format!("  Secret {objects}/{name}-kubeconfig")),
            "{text}"
        );
        for machine in before.keys() {
            assert!(
                text.contains(&format!("  Machine {objects}/{machine} (status restored)")),
                "{text}"
            );
        }
        let cluster_after = touched(
            get_dynamic(
                &client,
                "cluster.x-k8s.io/v1beta2",
                "Cluster",
                Some(&objects),
                name,
            )
            .await
            .unwrap(),
        );
        assert_eq!(
            cluster_before, cluster_after,
            "the dry run changed the Cluster"
        );
    }
    let (watcher, stop_watching) =
        watch_for_loss(client.clone(), w.clone(), objects.clone(), watched);

    let wc = wait_phase(
        &env,
        &controller,
        ns,
        name,
        ClusterPhase::Pivoted,
        Duration::from_secs(240),
    )
    .await;
    let _ = stop_watching.send(true);
    let lost = watcher.await.unwrap();

    // The agent installed the provider components: every clusterctl CRD of the management
    // cluster, and the simulator as the provider controllers, run as a process.
    let crd_names = |c: Client| async move {
        let crds: Api<CustomResourceDefinition> = Api::all(c);
        let mut names: Vec<String> = crds
            .list(&ListParams::default().labels("clusterctl.cluster.x-k8s.io"))
            .await
            .unwrap()
            .items
            .iter()
            .map(|c| c.name_any())
            .collect();
        names.sort();
        names
    };
    let management_crds = crd_names(client.clone()).await;
    assert!(management_crds.len() > 10, "{management_crds:?}");
    assert_eq!(crd_names(w.clone()).await, management_crds);
    let providers = format!("{PROVIDER_NAMESPACE}/{PROVIDER_NAME}");
    let kubelet = env.agents_of(&objects, name).unwrap();
    assert!(
        kubelet
            .processes()
            .iter()
            .any(|p| p.deployment == providers && p.pid.is_some()),
        "{providers} is not running: {:?}",
        kubelet.processes()
    );
    assert_eq!(
        condition(&wc, "Pivoted").0,
        "True",
        "{}",
        describe(Some(&wc))
    );

    // Nothing of the cluster is left in the management cluster; all of it is in the target.
    for kind in ["Cluster", "Machine", "MachineSet", "MachineDeployment"] {
        assert!(
            list_objects(&client, &objects, "cluster.x-k8s.io/v1beta2", kind)
                .await
                .is_empty(),
            "{kind} left in the source"
        );
    }
    assert!(
        list_objects(
            &client,
            &objects,
            "controlplane.cluster.x-k8s.io/v1beta2",
            "KubeadmControlPlane"
        )
        .await
        .is_empty()
    );
    assert!(
        list_objects(
            &client,
            &objects,
            "infrastructure.cluster.x-k8s.io/v1beta2",
            "SimMachine"
        )
        .await
        .is_empty()
    );
    assert_target_unpaused(&w, &objects, name).await;
    let journal: ConfigMap = Api::namespaced(w.clone(), AGENT_NAMESPACE)
        .get(&pivot_journal_name(name))
        .await
        .unwrap();
    let journal: MoveJournal =
        strata_shared::pivot::journal_record::journal_from(&journal).unwrap();
    assert_eq!(journal.phase, MovePhase::Done);
    let moved: Vec<String> = journal.objects.values().map(|e| e.describe()).collect();
    assert!(
        lost.is_empty(),
        "objects were lost during the move: {lost:?}; the move had {moved:?}"
    );
    // Every moved object exists once in the target, with the source's content, and not in
    // the source any more (unless the source keeps it).
    check_moved_objects(&client, &w, &journal).await;
    if crash_after_every_step {
        let agents = env.agents_of(&objects, name).unwrap().processes();
        let restarts: u32 = agents.iter().map(|p| p.restarts).sum();
        // Every process records one step and leaves the next done but unrecorded.
        let steps = move_steps(&journal);
        assert!(
            restarts as usize + 1 >= steps,
            "the agent was restarted {restarts} times; the move has about {steps} steps"
        );
        eprintln!(
            "the move survived {restarts} crashes ({} objects in {} groups)",
            journal.objects.len(),
            journal.groups.len()
        );
    }

    // The same machine continues; the cluster scales out to its revision.
    let after = machine_instances(&w, &objects).await;
    for (machine, id) in &before {
        assert_eq!(
            after.get(machine),
            Some(id),
            "machine {machine} was replaced or lost its instance"
        );
    }
    // The control plane grows past its first node only once the CNI layer runs (kubeadm's
    // nodes are NotReady until then), and that layer waits for the agent's restarts: on
    // two shared cores beside other clusters this took over 240 s once.
    let wc = eventually(
        "three control-plane and two worker nodes ready",
        Duration::from_secs(420),
        || async {
            let wc = cluster(&client, ns, name).await?;
            let status = wc.status.clone()?;
            let ready =
                status.control_plane.as_ref()?.ready == 3 && status.workers.as_ref()?.ready == 2;
            ready.then_some(wc)
        },
    )
    .await;
    assert_eq!(
        wc.status.as_ref().unwrap().phase,
        Some(ClusterPhase::Pivoted)
    );
    let all = machine_instances(&w, &objects).await;
    assert_eq!(all.len(), 5, "{all:?}");
    for (machine, id) in &before {
        assert_eq!(
            all.get(machine),
            Some(id),
            "machine {machine} was replaced during the scale-out"
        );
    }
    if !crash_after_every_step {
        agent_endpoints_report_its_work(&env, &objects, name).await;
        moves_back_when_deleted(
            &env,
            &mut controller,
            env.control_plane.kubeconfig_path(),
            ns,
            name,
            &w,
            &all,
        )
        .await;
    }
}

/// The leading agent's `/metrics`, `/readyz` and `/healthz`, at its pod IP, say what it
/// does: it leads, holds the pivoted cluster and reaches the management cluster.
async fn agent_endpoints_report_its_work(env: &ManagementEnv, objects: &str, name: &str) {
    let agents = env.agents_of(objects, name).unwrap();
    let leader = eventually(
        "an agent whose /metrics says it leads and holds the cluster, with a working link",
        Duration::from_secs(60),
        || async {
            for agent in agents.processes() {
                let Ok(metrics) = agent_endpoints::get(&agent, "/metrics").await else {
                    continue;
                };
                let text = &metrics.body;
                let holding = sample(text, "strata_agent_leading") == Some(1.0)
                    && sample(text, r#"strata_agent_phase{phase="holding"}"#) == Some(1.0)
                    && sample(text, r#"strata_agent_phase{phase="pivoting"}"#) == Some(0.0)
                    && sample(text, r#"strata_agent_link{state="Connected"}"#) == Some(1.0)
                    && sample(text, r#"strata_agent_link_beats_total{state="Connected"}"#)
                        .is_some_and(|beats| beats >= 1.0);
                if metrics.status == 200 && holding {
                    return Some(agent);
                }
            }
            None
        },
    )
    .await;
    let ready = agent_endpoints::get(&leader, "/readyz").await.unwrap();
    assert_eq!((ready.status, ready.body.as_str()), (200, "ok (leading)\n"));
    let live = agent_endpoints::get(&leader, "/healthz").await.unwrap();
    assert_eq!((live.status, live.body.as_str()), (200, "ok\n"));
}
