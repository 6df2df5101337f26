//! A cluster around its pivot: the workload control plane and first machine a pivot
//! starts from, the machines either cluster holds, and the deletion of a pivoted cluster
//! that moves its objects back to the management cluster before CAPI deletes it.
//!
//! A read the API server refuses, or a check that fails, panics with the object named:
//! these are for tests, where that is the failure.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;
use strata_shared::cluster::WorkloadCluster;
use strata_shared::conditions::find;
use strata_shared::contracts::capi::MACHINE;
use strata_shared::contracts::conditions::{PIVOTED, REASON_MOVED_BACK};
use strata_shared::contracts::names::{
    AGENT_NAME, AGENT_NAMESPACE, objects_namespace, reverse_journal_name,
};
use strata_shared::pivot::journal::MovePhase;

use crate::cloud_sim::Workload;
use crate::dynamic_objects::list_objects;
use crate::loss_watch::{watch_for_loss, watched_objects};
use crate::management::{ControllerProcess, ManagementEnv, ManagementOptions, ensure_namespace};
use crate::move_checks::journal_of_map;
use crate::samples::apply_sample;
use crate::wait::eventually;
use crate::workload_cluster_status::{cluster, condition, describe};

/// The sample sim cluster (`clusters/sim-demo.yaml`, Cluster `cluster`, in `namespace`)
/// with its controller running, up to the moment a pivot can start: the first
/// control-plane machine has its instance, the agent's Deployment is in the workload
/// cluster and CAPI wrote the cluster's kubeconfig. The agents are not run yet.
pub struct ReadyToPivot {
    pub env: ManagementEnv,
    pub controller: ControllerProcess,
    /// The management cluster's client.
    pub client: Client,
    pub workload: Arc<Workload>,
    /// The cluster's objects namespace.
    pub objects: String,
    /// The first control-plane machine → its provider ID.
    pub machines: BTreeMap<String, String>,
}

impl ReadyToPivot {
    pub async fn start(env_name: &str, namespace: &str, cluster: &str) -> ReadyToPivot {
        let env = ManagementEnv::start(ManagementOptions::named(env_name))
            .await
            .unwrap_or_else(|e| panic!("the management environment {env_name}: {e}"));
        let client = env.client();
        let objects = objects_namespace(namespace, cluster);
        ensure_namespace(&client, namespace)
            .await
            .unwrap_or_else(|e| panic!("namespace {namespace}: {e}"));
        apply_sample(&client, "clusters/sim-demo.yaml", namespace, |_| {}).await;
        let controller = ControllerProcess::start(
            env.control_plane.kubeconfig_path(),
            env.dir.path(),
            "controller",
            &[],
        )
        .unwrap_or_else(|e| panic!("the controller: {e}"));
        let (workload, machines) = first_control_plane_node(&env, &objects, cluster).await;
        let deployments: Api<Deployment> = Api::namespaced(workload.client(), AGENT_NAMESPACE);
        eventually("the agent Deployment", Duration::from_secs(120), || async {
            deployments.get_opt(AGENT_NAME).await.ok().flatten()
        })
        .await;
        // CAPI writes the kubeconfig a moment after the control plane answers.
        eventually(
            "the cluster's kubeconfig Secret",
            Duration::from_secs(60),
            || async {
                Api::<Secret>::namespaced(client.clone(), &objects)
                    .get_opt(&format!("{cluster}-kubeconfig"))
                    .await
                    .ok()
                    .flatten()
            },
        )
        .await;
        ReadyToPivot {
            env,
            controller,
            client,
            workload,
            objects,
            machines,
        }
    }
}

/// A cluster's workload control plane once it runs, and its first control-plane machine
/// (name → provider ID) once it has its instance: what a pivot starts from.
pub async fn first_control_plane_node(
    env: &ManagementEnv,
    objects: &str,
    name: &str,
) -> (Arc<Workload>, BTreeMap<String, String>) {
    let client = env.client();
    let workload = eventually(
        "the workload control plane",
        Duration::from_secs(180),
        || async { env.workload(objects, name).await.ok().flatten() },
    )
    .await;
    let machines = eventually(
        "the first control-plane machine's instance",
        Duration::from_secs(60),
        || async {
            let m = machine_instances(&client, objects).await;
            (m.len() == 1 && m.values().all(|id| !id.is_empty())).then_some(m)
        },
    )
    .await;
    (workload, machines)
}

/// CAPI Machine name → its provider ID, in one cluster.
pub async fn machine_instances(client: &Client, namespace: &str) -> BTreeMap<String, String> {
    list_objects(client, namespace, MACHINE.api_version, MACHINE.kind)
        .await
        .into_iter()
        .map(|m| {
            let id = m
                .data
                .pointer("/spec/providerID")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            (m.name_any(), id)
        })
        .collect()
}

/// Deleting the pivoted WorkloadCluster: the agent moves the objects back (nothing lost on
/// the way, no machine replaced), reports MovedBack, and CAPI in the management cluster
/// then deletes the cluster, after which the WorkloadCluster and its namespace are gone.
///
/// The controller is stopped while the objects move back: the agent needs nothing of it,
/// and otherwise CAPI could delete what arrives before the test has seen it. A new one,
/// with `kubeconfig`, then finishes the deletion.
pub async fn moves_back_when_deleted(
    env: &ManagementEnv,
    controller: &mut ControllerProcess,
    kubeconfig: &Path,
    ns: &str,
    name: &str,
    w: &Client,
    in_workload: &BTreeMap<String, String>,
) {
    let client = env.client();
    let objects = objects_namespace(ns, name);
    controller.kill();
    let (watcher, stop_watching) = watch_for_loss(
        w.clone(),
        client.clone(),
        objects.clone(),
        watched_objects(name, in_workload.keys()),
    );
    Api::<WorkloadCluster>::namespaced(client.clone(), ns)
        .delete(name, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("deleting the WorkloadCluster {ns}/{name}: {e}"));
    let moved_back = eventually(
        "the agent to report the objects moved back",
        Duration::from_secs(240),
        || async {
            let wc = cluster(&client, ns, name).await?;
            let status = wc.status.as_ref()?;
            let pivoted = find(&status.conditions, PIVOTED)?;
            (pivoted.reason == REASON_MOVED_BACK).then(|| wc.clone())
        },
    )
    .await;
    let _ = stop_watching.send(true);
    let lost = watcher
        .await
        .unwrap_or_else(|e| panic!("the loss watcher stopped before it was asked: {e}"));
    assert!(lost.is_empty(), "objects were lost moving back: {lost:?}");
    assert_eq!(
        condition(&moved_back, PIVOTED).0,
        "False",
        "{}",
        describe(Some(&moved_back))
    );
    let journal_name = reverse_journal_name(name);
    let journal: ConfigMap = Api::namespaced(w.clone(), AGENT_NAMESPACE)
        .get(&journal_name)
        .await
        .unwrap_or_else(|e| panic!("reading the reverse journal {journal_name}: {e}"));
    let journal = journal_of_map(w, &journal)
        .await
        .unwrap_or_else(|e| panic!("the reverse journal {journal_name}: {e}"));
    assert_eq!(journal.phase, MovePhase::Done);
    let machines_moved = journal
        .objects
        .values()
        .filter(|e| e.kind == MACHINE.kind)
        .count();
    assert_eq!(machines_moved, in_workload.len(), "{:?}", journal.objects);
    // Every machine is back with its instance, and none is left in the workload cluster.
    assert_eq!(&machine_instances(&client, &objects).await, in_workload);
    assert!(machine_instances(w, &objects).await.is_empty());

    // CAPI in the management cluster deletes the cluster; the WorkloadCluster goes.
    let controller = ControllerProcess::start(
        kubeconfig,
        env.dir.path(),
        "controller-after-move-back",
        &[],
    )
    .unwrap_or_else(|e| panic!("starting the controller after the move back: {e}"));
    let deadline = Instant::now() + Duration::from_secs(240);
    while cluster(&client, ns, name).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the WorkloadCluster was not deleted after the move back: {}\n{}",
            describe(cluster(&client, ns, name).await.as_ref()),
            controller.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let namespace: Option<Namespace> = Api::all(client.clone())
        .get_opt(&objects)
        .await
        .unwrap_or_else(|e| panic!("reading the namespace {objects}: {e}"));
    assert!(
        namespace.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "the objects namespace is left"
    );
}

/// Kills the agent of cluster `name` (objects in `objects`) with SIGKILL, as a crash would;
/// returns its restart count before, for [`wait_restarted`].
pub fn kill_agent(env: &ManagementEnv, objects: &str, name: &str) -> u32 {
    let Some(agents) = env.agents_of(objects, name) else {
        panic!("cluster {name} has no agent processes");
    };
    let deployment = format!("{AGENT_NAMESPACE}/{AGENT_NAME}");
    let Some((pid, restarts)) = agents
        .processes()
        .into_iter()
        .find(|p| p.deployment == deployment)
        .and_then(|p| Some((p.pid?, p.restarts)))
    else {
        panic!("the agent of cluster {name} ({deployment}) is not running");
    };
    let signal = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    if let Err(e) = signal {
        panic!("cannot kill the agent of cluster {name} (pid {pid}): {e}");
    }
    restarts
}

/// Waits until the process kubelet ran the agent killed by [`kill_agent`] again.
pub async fn wait_restarted(env: &ManagementEnv, objects: &str, name: &str, before: u32) {
    let Some(agents) = env.agents_of(objects, name) else {
        panic!("cluster {name} has no agent processes");
    };
    eventually(
        "the agent to run again",
        Duration::from_secs(30),
        || async {
            agents
                .processes()
                .into_iter()
                .any(|p| {
                    p.deployment.ends_with(AGENT_NAME) && p.restarts > before && p.pid.is_some()
                })
                .then_some(())
        },
    )
    .await;
}
