//! A WorkloadCluster's status as a test sees it: the object read, its phase and conditions
//! described in one line, one condition found, and waiting for a phase or a number of
//! ready nodes.
//!
//! A read the API server refuses, a missing condition or a state never reached panics with
//! the cluster named: these are checks for tests, where that is the failure.

use std::time::{Duration, Instant};

use kube::{Api, Client};
use strata_shared::cluster::{ClusterPhase, WorkloadCluster};
use strata_shared::contracts::names::objects_namespace;

use crate::control_plane::log_tail;
use crate::management::{ControllerProcess, ManagementEnv};

/// The WorkloadCluster `namespace/name`; `None` when it does not exist.
pub async fn cluster(client: &Client, namespace: &str, name: &str) -> Option<WorkloadCluster> {
    Api::<WorkloadCluster>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("reading the WorkloadCluster {namespace}/{name}: {e}"))
}

/// A cluster's phase and conditions in one line, for a failure's message.
pub fn describe(cluster: Option<&WorkloadCluster>) -> String {
    match cluster.and_then(|c| c.status.as_ref()) {
        None => "no status".into(),
        Some(s) => {
            let conditions: Vec<String> = s
                .conditions
                .iter()
                .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
                .collect();
            format!("phase {:?}; {}", s.phase, conditions.join(" | "))
        }
    }
}

/// The status, reason and message of the cluster's condition `type_`; panics, with the
/// cluster described, when it has none.
pub fn condition<'a>(cluster: &'a WorkloadCluster, type_: &str) -> (&'a str, &'a str, &'a str) {
    let c = cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} condition: {}", describe(Some(cluster))));
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

/// Waits for a phase, running the cluster's agents as processes once its workload
/// control plane exists. Fails with the cluster's conditions and the controller's log.
pub async fn wait_phase(
    env: &ManagementEnv,
    controller: &ControllerProcess,
    namespace: &str,
    name: &str,
    phase: ClusterPhase,
    timeout: Duration,
) -> WorkloadCluster {
    wait_for(env, controller, namespace, name, phase, timeout, true).await
}

/// Waits for a phase with the cluster's agents installed but not run (their Deployment is
/// available all the same, through the simulated kubelet): the cluster stays before its
/// pivot, for tests of what the controller does until then.
pub async fn wait_phase_before_pivot(
    env: &ManagementEnv,
    controller: &ControllerProcess,
    namespace: &str,
    name: &str,
    phase: ClusterPhase,
    timeout: Duration,
) -> WorkloadCluster {
    wait_for(env, controller, namespace, name, phase, timeout, false).await
}

async fn wait_for(
    env: &ManagementEnv,
    controller: &ControllerProcess,
    namespace: &str,
    name: &str,
    phase: ClusterPhase,
    timeout: Duration,
    run_agents: bool,
) -> WorkloadCluster {
    let client = env.client();
    let deadline = Instant::now() + timeout;
    let objects = objects_namespace(namespace, name);
    loop {
        if run_agents {
            env.run_agents_of(&objects, name)
                .await
                .unwrap_or_else(|e| panic!("running the agents of {namespace}/{name}: {e}"));
        }
        let found = cluster(&client, namespace, name).await;
        if let Some(c) = &found
            && c.status.as_ref().and_then(|s| s.phase) == Some(phase)
        {
            return c.clone();
        }
        if Instant::now() >= deadline {
            let agents: Vec<String> = env
                .agents_of(&objects, name)
                .map(|k| k.processes())
                .unwrap_or_default()
                .iter()
                .map(|p| format!("--- agent {} ---\n{}", p.pod_name, log_tail(&p.log, 40)))
                .collect();
            panic!(
                "{namespace}/{name} did not reach {phase:?} in {timeout:?}: {}\n--- controller log ---\n{}\n{}",
                describe(found.as_ref()),
                controller.log_tail(40),
                agents.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the cluster reports `control_plane` and `workers` ready nodes. Fails with
/// the counts and conditions last seen and the log of every process run in the cluster
/// (its agent, the simulator that continues it).
pub async fn wait_scaled(
    env: &ManagementEnv,
    namespace: &str,
    name: &str,
    control_plane: i64,
    workers: i64,
) -> WorkloadCluster {
    let client = env.client();
    // The later machines' nodes may need a control plane the in-cluster simulator starts
    // itself (ready within 180 s, started again 10 s after a failed start): on a loaded
    // machine one failed start and a second one must fit.
    let timeout = Duration::from_secs(420);
    let deadline = Instant::now() + timeout;
    loop {
        let found = cluster(&client, namespace, name).await;
        let counts = found
            .as_ref()
            .and_then(|c| c.status.as_ref())
            .map(|s| (s.control_plane.clone(), s.workers.clone()));
        if let Some((Some(cp), Some(w))) = &counts
            && cp.ready == control_plane
            && w.ready == workers
            && let Some(found) = found
        {
            return found;
        }
        if Instant::now() >= deadline {
            let objects = objects_namespace(namespace, name);
            let processes: Vec<String> = env
                .agents_of(&objects, name)
                .map(|k| k.processes())
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    format!(
                        "--- {} ({}, {} restarts) ---\n{}",
                        p.pod_name,
                        p.deployment,
                        p.restarts,
                        log_tail(&p.log, 60)
                    )
                })
                .collect();
            panic!(
                "{namespace}/{name} did not report {control_plane}+{workers} ready nodes in {timeout:?}: counts {counts:?}; {}\n{}",
                describe(found.as_ref()),
                processes.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// One event of a WorkloadCluster's story: its type, reason and note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToldEvent {
    pub type_: String,
    pub reason: String,
    pub note: String,
}

/// The Events regarding WorkloadCluster `namespace/name`, oldest first by when each was
/// last told (a repeat is folded into the first event of its reason, with a count).
pub async fn events_of(client: &Client, namespace: &str, name: &str) -> Vec<ToldEvent> {
    use k8s_openapi::api::events::v1::Event;
    let events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&kube::api::ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("cannot list the Events of namespace {namespace}: {e}"));
    let mut about: Vec<Event> = events
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("WorkloadCluster") && r.name.as_deref() == Some(name)
            })
        })
        .collect();
    about.sort_by_key(|e| {
        e.series
            .as_ref()
            .map(|s| s.last_observed_time.0)
            .or(e.event_time.as_ref().map(|t| t.0))
    });
    about
        .into_iter()
        .map(|e| ToldEvent {
            type_: e.type_.unwrap_or_default(),
            reason: e.reason.unwrap_or_default(),
            note: e.note.unwrap_or_default(),
        })
        .collect()
}
