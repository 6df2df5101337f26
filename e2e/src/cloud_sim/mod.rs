//! A simulated cloud that keeps the Cluster API contracts: it plays CAPI core (Cluster,
//! MachineDeployment, MachineSet, Machine), the kubeadm control-plane and bootstrap
//! providers, and the vSphere, AWS, Azure and `sim` infrastructure providers against one
//! apiserver, so that Strata's controller and agent run against it as they would against
//! the real ones. Only the machines are imaginary: each workload cluster is a real control
//! plane on loopback, and each running Machine is a Node there (see [`workload`]).
//!
//! Every `resync` the simulator lists every object it plays and reconciles each Cluster
//! (level-triggered, idempotent: a converged cluster causes no writes). Everything is
//! written under the field manager `strata.dev/sim-cloud`: statuses are server-side
//! applied through the status subresource (one writer per kind, always the whole status);
//! objects it makes are created whole; the few partial touches of others' objects (a
//! provider ID, an endpoint, an annotation, finalizers) are merge patches, because
//! server-side apply would remove whatever an earlier touch set and a later one omits.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), strata_e2e::cloud_sim::SimError> {
//! use strata_e2e::cloud_sim::{CloudSimulator, SimOptions, sim_crds};
//! sim_crds::install(&client).await?;
//! let cloud = CloudSimulator::start(client, SimOptions::fast());
//! // … apply Cluster API objects; machines come up, nodes register in real apiservers …
//! cloud.stop();
//! strata_e2e::cloud_sim::workload::stop_all();
//! # Ok(()) }
//! ```

mod api;
mod attach;
mod bootstrap;
mod change_watch;
mod cluster;
mod health_check;
mod infra_cluster;
mod infra_machine;
mod kcp;
pub mod kinds;
mod machine;
mod machine_deployment;
mod machine_set;
mod new_machine;
pub mod objects;
pub mod providers;
pub mod sim_crds;
mod snapshot;

pub mod workload;
pub mod workload_nodes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Client;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::capi_crds::CrdError;
use crate::kubelet_sim::KubeletSettings;
use api::Kube;
use change_watch::ChangeWatch;
use kinds::MACHINE;
use objects::{CLUSTER_ID_ANNOTATION, annotation, name, namespace, stable_hash, str_at};
use snapshot::Snapshot;
pub use workload::Workload;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot {action} {kind} {object}: {source}")]
    Api {
        action: &'static str,
        kind: String,
        object: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("cannot list {kind}: {source}")]
    List {
        kind: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{what} is not usable: {reason}")]
    Invalid { what: String, reason: String },
    #[error("cannot {action} for workload cluster {cluster}: {reason}")]
    Workload {
        cluster: String,
        action: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Crds(Box<CrdError>),
}

impl From<CrdError> for SimError {
    fn from(error: CrdError) -> Self {
        SimError::Crds(Box::new(error))
    }
}

/// How the simulated cloud behaves.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Only objects in this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// The pause between two full passes.
    pub resync: Duration,
    /// From the infrastructure cluster's creation to its being provisioned.
    pub infrastructure_delay: Duration,
    /// From a KubeadmConfig's turn (control plane ready for it) to its bootstrap data.
    pub bootstrap_delay: Duration,
    /// From bootstrap data to the instance running (plus jitter and any slow fault).
    pub provision_delay: Duration,
    /// From the instance running to its Node registering.
    pub node_delay: Duration,
    /// Up to this much more per machine, fixed per machine (derived from its UID).
    pub jitter: Duration,
    /// Run kube-controller-manager in workload control planes (Deployments, node
    /// lifecycle…); ~100 MB more each.
    pub workload_controller_manager: bool,
    /// Start a real control plane for each cluster's first control-plane machine. Off,
    /// machines still get their instances but no cluster ever initializes: for measuring
    /// what happens in the management cluster with hundreds of clusters.
    pub workload_control_planes: bool,
    /// How the nodes of a workload cluster come up: by default as kubeadm's, NotReady
    /// until the sample CNI runs on them.
    pub workload_nodes: KubeletSettings,
}

impl Default for SimOptions {
    /// Delays of the order of a real cloud's, divided by ten or so: for the local demo.
    fn default() -> Self {
        SimOptions {
            namespace: None,
            resync: Duration::from_millis(500),
            infrastructure_delay: Duration::from_secs(2),
            bootstrap_delay: Duration::from_secs(1),
            provision_delay: Duration::from_secs(4),
            node_delay: Duration::from_secs(2),
            jitter: Duration::from_secs(2),
            workload_controller_manager: true,
            workload_control_planes: true,
            workload_nodes: KubeletSettings::default(),
        }
    }
}

impl SimOptions {
    /// No delays and no workload control planes: machines provision at once, for
    /// benchmarks of the management side.
    pub fn instant() -> Self {
        SimOptions {
            resync: Duration::from_millis(300),
            infrastructure_delay: Duration::ZERO,
            bootstrap_delay: Duration::ZERO,
            provision_delay: Duration::ZERO,
            node_delay: Duration::ZERO,
            jitter: Duration::ZERO,
            workload_control_planes: false,
            ..SimOptions::default()
        }
    }

    /// Short delays, for tests.
    pub fn fast() -> Self {
        SimOptions {
            resync: Duration::from_millis(300),
            infrastructure_delay: Duration::from_millis(200),
            bootstrap_delay: Duration::from_millis(100),
            provision_delay: Duration::from_millis(300),
            node_delay: Duration::from_millis(100),
            jitter: Duration::from_millis(300),
            ..SimOptions::default()
        }
    }
}

/// Faults requested by a test; machines are chosen by namespace and name prefix, since
/// their names are generated (`<machine set>-…`, `<control plane>-…`).
#[derive(Debug, Default)]
struct FaultState {
    fail: Vec<(String, String, String)>,
    slow: Vec<(String, String, Duration)>,
}

/// State shared by the pass loop and the simulator's handle.
pub(crate) struct Shared {
    kube: Kube,
    options: SimOptions,
    faults: Mutex<FaultState>,
    /// When each (object UID, stage) was first seen waiting, for the configured delays.
    clocks: Mutex<HashMap<(String, &'static str), Instant>>,
    /// Set when a pass found something waiting on one of the clocks.
    waiting: AtomicBool,
    passes: AtomicU64,
    /// Wakes an idle pass loop when something it plays changes.
    changes: ChangeWatch,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data replaced whole; usable after a panic elsewhere.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// True once `delay` (plus the object's jitter when asked) has passed since the object
    /// was first seen waiting at `stage`.
    fn waited(&self, uid: &str, stage: &'static str, delay: Duration, jitter: bool) -> bool {
        let since = *lock(&self.clocks)
            .entry((uid.to_string(), stage))
            .or_insert_with(Instant::now);
        let jitter_ms = self.options.jitter.as_millis() as u64;
        let extra = if jitter && jitter_ms > 0 {
            Duration::from_millis(stable_hash(uid) % (jitter_ms + 1))
        } else {
            Duration::ZERO
        };
        let done = since.elapsed() >= delay + extra;
        if !done {
            self.waiting.store(true, Ordering::Relaxed);
        }
        done
    }

    fn forget(&self, uid: &str) {
        lock(&self.clocks).retain(|(u, _), _| u != uid);
    }

    /// The provisioning failure requested for this machine, if any.
    fn failure_for(&self, ns: &str, machine: &str) -> Option<String> {
        lock(&self.faults)
            .fail
            .iter()
            .find(|(n, prefix, _)| n == ns && machine.starts_with(prefix.as_str()))
            .map(|(_, _, reason)| reason.clone())
    }

    fn slowness_for(&self, ns: &str, machine: &str) -> Duration {
        lock(&self.faults)
            .slow
            .iter()
            .filter(|(n, prefix, _)| n == ns && machine.starts_with(prefix.as_str()))
            .map(|(_, _, extra)| *extra)
            .sum()
    }
}

/// A running simulated cloud watching one apiserver. Dropping it stops the passes; the
/// workload clusters keep running (they belong to the clusters, see [`workload`]).
pub struct CloudSimulator {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl CloudSimulator {
    /// Starts reconciling. The CAPI CRDs (and [`sim_crds`] for the `sim` provider) must be
    /// installed; kinds that are not installed are treated as having no objects.
    pub fn start(client: Client, options: SimOptions) -> CloudSimulator {
        let changes = ChangeWatch::start(&client, options.namespace.as_deref());
        let shared = Arc::new(Shared {
            kube: Kube::new(client),
            changes,
            options,
            faults: Mutex::new(FaultState::default()),
            clocks: Mutex::new(HashMap::new()),
            waiting: AtomicBool::new(false),
            passes: AtomicU64::new(0),
        });
        let task = tokio::spawn(run(shared.clone()));
        CloudSimulator { shared, task }
    }

    /// Stops the passes (the workload clusters keep running).
    pub fn stop(self) {
        self.task.abort();
    }

    /// How many full passes have completed: a test that wants the simulator to have had
    /// its chance to act waits for this to grow.
    pub fn passes(&self) -> u64 {
        self.shared.passes.load(Ordering::Relaxed)
    }

    /// Machines in `namespace` whose name starts with `prefix` fail to provision from now
    /// on: the infrastructure machine reports the failure and the Machine turns `Failed`.
    pub fn fail_provisioning(&self, namespace: &str, prefix: &str, reason: &str) {
        lock(&self.shared.faults)
            .fail
            .push((namespace.into(), prefix.into(), reason.into()));
        self.shared.changes.wake();
    }

    /// Machines in `namespace` whose name starts with `prefix` take `extra` longer to
    /// provision.
    pub fn slow_provisioning(&self, namespace: &str, prefix: &str, extra: Duration) {
        lock(&self.shared.faults)
            .slow
            .push((namespace.into(), prefix.into(), extra));
        self.shared.changes.wake();
    }

    pub fn clear_faults(&self) {
        *lock(&self.shared.faults) = FaultState::default();
        self.shared.changes.wake();
    }

    /// The workload cluster of a Cluster, once its control plane runs.
    pub async fn workload(
        &self,
        namespace: &str,
        cluster: &str,
    ) -> Result<Option<Arc<Workload>>, SimError> {
        let found = self
            .shared
            .kube
            .get(&kinds::CLUSTER, namespace, cluster)
            .await?;
        Ok(found
            .as_ref()
            .and_then(|c| annotation(c, CLUSTER_ID_ANNOTATION))
            .and_then(workload::running))
    }

    /// The Node of a Machine goes NotReady (its kubelet stops posting status) until
    /// [`CloudSimulator::node_ready`].
    pub async fn node_not_ready(&self, namespace: &str, machine: &str) -> Result<(), SimError> {
        self.set_node_ready(namespace, machine, false).await
    }

    pub async fn node_ready(&self, namespace: &str, machine: &str) -> Result<(), SimError> {
        self.set_node_ready(namespace, machine, true).await
    }

    async fn set_node_ready(
        &self,
        namespace: &str,
        machine: &str,
        ready: bool,
    ) -> Result<(), SimError> {
        let invalid = |reason: &str| SimError::Invalid {
            what: format!("Machine {namespace}/{machine}"),
            reason: reason.into(),
        };
        let found = self.shared.kube.get(&MACHINE, namespace, machine).await?;
        let found = found.ok_or_else(|| invalid("it does not exist"))?;
        let node = str_at(&found, "/status/nodeRef/name")
            .ok_or_else(|| invalid("it has no node yet"))?
            .to_string();
        let cluster = str_at(&found, "/spec/clusterName").unwrap_or_default();
        let workload = self
            .workload(namespace, cluster)
            .await?
            .ok_or_else(|| invalid("its cluster has no running workload control plane"))?;
        let kubelet = workload.kubelet();
        let result = if ready {
            kubelet.node_ready(&node).await
        } else {
            kubelet.node_not_ready(&node).await
        };
        self.shared.changes.wake();
        result.map_err(|e| SimError::Workload {
            cluster: cluster.into(),
            action: "change a node's readiness",
            reason: e.to_string(),
        })
    }
}

impl Drop for CloudSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(shared: Arc<Shared>) {
    let mut idle_passes = 0u32;
    loop {
        let started = Instant::now();
        let writes = shared.kube.writes();
        shared.waiting.store(false, Ordering::Relaxed);
        if let Err(e) = pass(&shared).await {
            tracing::warn!(error = %e, "simulated cloud pass failed; retrying");
        }
        shared.passes.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(elapsed = ?started.elapsed(), "simulated cloud pass");
        let idle = shared.kube.writes() == writes && !shared.waiting.load(Ordering::Relaxed);
        idle_passes = if idle {
            idle_passes.saturating_add(1)
        } else {
            0
        };
        let pause = pause_after(shared.options.resync, idle_passes);
        if idle {
            shared.changes.wait(pause).await;
        } else {
            tokio::time::sleep(pause).await;
        }
    }
}

/// The longest pause between two passes of an idle simulator that sees no change. A
/// change to what it plays wakes it at once ([`ChangeWatch`]); this bounds how late it
/// sees what no watch shows (a workload cluster's node going NotReady).
const IDLE_RESYNC: Duration = Duration::from_secs(5);

/// The pause before the next pass: `resync` while the cloud is busy (it wrote, or waits
/// on a delay), doubling with each idle pass up to [`IDLE_RESYNC`].
fn pause_after(resync: Duration, idle_passes: u32) -> Duration {
    let doubled = resync.saturating_mul(1u32 << idle_passes.min(8));
    doubled.min(IDLE_RESYNC.max(resync))
}

/// One full pass: list everything, reconcile every Cluster. One cluster's failure does not
/// stop the others'.
async fn pass(shared: &Shared) -> Result<(), SimError> {
    let snapshot = Snapshot::load(&shared.kube, shared.options.namespace.as_deref()).await?;
    for cluster in &snapshot.clusters {
        let view = snapshot.view(cluster);
        let span = tracing::info_span!("cluster", cluster = %format!("{}/{}", namespace(cluster), name(cluster)));
        if let Err(e) = reconcile_cluster(shared, &view)
            .instrument(span.clone())
            .await
        {
            span.in_scope(|| tracing::warn!(error = %e, "cannot reconcile the cluster"));
        }
    }
    Ok(())
}

/// Logs a failed step and goes on with a default: one object's trouble (a missing
/// template, a conflict) must not stop the rest of its cluster; the next pass retries.
fn carry_on<T: Default>(result: Result<T, SimError>) -> T {
    result.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "reconcile step failed; retrying next pass");
        T::default()
    })
}

/// Everything of one Cluster, in the order CAPI's controllers would get to it.
async fn reconcile_cluster(
    shared: &Shared,
    view: &snapshot::ClusterView<'_>,
) -> Result<(), SimError> {
    if view.paused() {
        return Ok(());
    }
    let Some(id) = cluster::adopt(shared, view).await? else {
        // Adopted just now; the next pass sees the identity.
        return Ok(());
    };
    if objects::is_deleting(view.cluster) {
        return cluster::delete(shared, view, &id).await;
    }
    let workload = workload::running(&id);
    carry_on(infra_cluster::reconcile(shared, view, workload.as_deref()).await);
    let mut up_to_date = carry_on(kcp::reconcile(shared, view).await);
    up_to_date.extend(carry_on(machine_deployment::reconcile(shared, view).await));
    // The first control-plane machine with an instance starts the workload cluster.
    if workload.is_none()
        && shared.options.workload_control_planes
        && view.machines.iter().any(|m| {
            snapshot::ClusterView::is_control_plane(m) && str_at(m, "/spec/providerID").is_some()
        })
    {
        // Moved here from another simulator's process, the cluster's kubeconfig came along:
        // its apiserver runs and the machines made here join it.
        let kubeconfig = workload::kubeconfig_of(&shared.kube, view).await;
        workload::ensure_started(
            &id,
            view.name,
            shared.options.workload_controller_manager,
            shared.options.workload_nodes.clone(),
            kubeconfig,
        );
    }
    let nodes = match &workload {
        Some(w) => {
            carry_on(workload::reconcile_secrets(&shared.kube, view, w).await);
            workload_nodes::nodes(w)
                .await
                .map_err(|e| tracing::warn!(error = %e, "cannot list the workload cluster's nodes"))
                .ok()
        }
        None => None,
    };
    // The owners act on last pass's marks; this pass's verdicts are written below.
    carry_on(health_check::remediate(shared, view).await);
    let health = carry_on(health_check::reconcile(shared, view, nodes.as_ref()).await);
    let env = machine::Env {
        view,
        workload: workload.as_deref(),
        nodes: nodes.as_ref(),
        up_to_date: &up_to_date,
        health: &health,
    };
    for (m, config) in bootstrap::configs(view) {
        carry_on(bootstrap::reconcile(shared, view, m, config).await);
    }
    for m in &view.machines {
        carry_on(infra_machine::reconcile(shared, view, m).await);
        carry_on(machine::reconcile(shared, &env, m).await);
    }
    if let Some(w) = &workload {
        carry_on(machine::remove_orphan_nodes(view, w, nodes.as_ref()).await);
    }
    cluster::reconcile_status(shared, view, workload.is_some()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_simulator_slows_down_to_its_idle_pause_and_a_busy_one_does_not() {
        let resync = Duration::from_millis(300);
        let pauses: Vec<u128> = (0..6)
            .map(|idle| pause_after(resync, idle).as_millis())
            .collect();
        assert_eq!(pauses, [300, 600, 1200, 2400, 4800, 5000]);
        assert_eq!(pause_after(resync, u32::MAX), IDLE_RESYNC);
        // A resync longer than the idle pause is kept.
        let slow = Duration::from_secs(8);
        assert_eq!(pause_after(slow, 3), slow);
    }
}
