//! Step 6: the layers of the cluster's revision installed from the cluster's own side, in
//! the revision's order, each gated on the health of the one before, and kept converged.
//!
//! The OS and Kubernetes layers are node-level (the CAPI objects carry them); every other
//! layer (CNI, CSI, add-ons) is installed here by [`LayerInstaller`], which runs as a task
//! of its own beside the holding work, so that a long install never delays the reports or
//! a move back. A layer that fails is `Failed` with its cause, the layers after it wait, and
//! it is tried again with exponential backoff. What each layer's state is goes into
//! `status.layers` (through the status report) and into this cluster's
//! `strata-system/strata-layers`, which also records what is installed, so that a layer that
//! leaves the stack is uninstalled, in reverse order, by whichever agent runs then.

mod converge;
mod crash_point;
mod facts;
mod install;
pub(crate) mod pinned_pack;
mod record;
pub(crate) mod registries;
mod setup;
mod uninstall;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use strata_shared::chart_release::ChartRelease;
use strata_shared::cluster::LayerPhase;
use strata_shared::kube_writer::KubeWriter;
use strata_shared::layer::install_order::ObjectKey;
use strata_shared::layer_apply::SettledDifferences;
use strata_shared::revision::{ClusterRevision, RevisionLayer};

use tokio::sync::watch;
use tracing::Instrument;

use crate::health::AgentHealth;
use crate::management_link::ManagementLink;
use crate::site_log::{SiteEventKind, SiteLog};
use crate::status_report::StatusReport;

use record::{InstalledKind, InstalledLayer, LayerRecord, install_digest, planned_kind};
pub use setup::{LayerSetup, SetupError};

/// How often the installed layers are checked again once all are Ready.
const CONVERGE_EVERY: Duration = Duration::from_secs(30);
/// How often the installer looks again while a layer waits for its retry.
const TICK: Duration = Duration::from_secs(5);

/// Why a layer is not installed: the layer and the cause, with the object or file in it.
#[derive(Debug, thiserror::Error)]
#[error("layer {layer} ({version}): {cause}")]
pub struct LayerError {
    pub layer: String,
    pub version: String,
    pub cause: String,
}

impl LayerError {
    fn new(layer: &RevisionLayer, cause: impl Into<String>) -> LayerError {
        LayerError {
            layer: layer.name.clone(),
            version: layer.version.clone(),
            cause: cause.into(),
        }
    }
}

/// The layers the agent installs: every layer but the node-level ones, in install order.
pub fn site_layers(revision: &ClusterRevision) -> Vec<&RevisionLayer> {
    let mut layers: Vec<&RevisionLayer> = revision
        .spec
        .desired
        .layers
        .iter()
        .filter(|l| !matches!(l.layer.as_str(), "os" | "k8s" | "kernel"))
        .collect();
    layers.sort_by_key(|l| l.order);
    layers
}

/// A layer applied by this agent since it started: what its health and drift are read from.
struct Applied {
    install_digest: String,
    objects: Vec<ObjectKey>,
    /// Manifests: the namespace and rendered text applied.
    rendered: Option<(String, String)>,
    /// Charts: the releases as installed, upgraded again when their objects drift.
    charts: Vec<ChartRelease>,
    /// Where the charts' folders are, while the layer is installed.
    _work: Option<tempfile::TempDir>,
    /// Differences of the charts' objects that are the apiserver's, not drift.
    settled: SettledDifferences,
}

/// When a failed layer is tried again.
struct Retry {
    at: Instant,
    delays: ExponentialBackoff,
}

pub struct LayerInstaller {
    workload: KubeWriter,
    link: ManagementLink,
    report: StatusReport,
    health: Arc<AgentHealth>,
    setup: LayerSetup,
    record: LayerRecord,
    applied: BTreeMap<String, Applied>,
    retries: BTreeMap<String, Retry>,
    last_check: Option<Instant>,
    cluster_uid: Option<String>,
    site_log: SiteLog,
}

impl LayerInstaller {
    pub fn new(
        workload: KubeWriter,
        link: ManagementLink,
        report: StatusReport,
        health: Arc<AgentHealth>,
        setup: LayerSetup,
        site_log: SiteLog,
    ) -> LayerInstaller {
        LayerInstaller {
            workload,
            link,
            report,
            health,
            setup,
            record: LayerRecord::default(),
            applied: BTreeMap::new(),
            retries: BTreeMap::new(),
            last_check: None,
            cluster_uid: None,
            site_log,
        }
    }

    /// Runs until the task is dropped, on whichever revision `revisions` holds last (none:
    /// it waits), saying in `ready` which revision's layers are all installed and Ready.
    pub async fn run(
        mut self,
        mut revisions: watch::Receiver<Option<ClusterRevision>>,
        ready: watch::Sender<Option<i64>>,
    ) {
        remove_leftovers(&self.setup.work_dir);
        loop {
            match LayerRecord::load(&self.workload).await {
                Ok(record) => {
                    self.record = record;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the layers' record; retrying");
                    tokio::time::sleep(TICK).await;
                }
            }
        }
        self.report.set_layers(self.record.states.clone());
        loop {
            let revision = revisions.borrow_and_update().clone();
            if let Some(revision) = revision {
                let all_ready = self.round(&revision).await;
                ready.send_replace(all_ready.then_some(revision.spec.number));
            }
            // A new revision is taken at once; a closed channel leaves the tick.
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                changed = revisions.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(TICK).await;
                    }
                }
            }
        }
    }

    /// One pass: layers that left the stack uninstalled, then each layer in order installed
    /// when it is not (or not as the revision wants it), up to the first that is not Ready.
    /// True when every layer of the revision is installed as it wants and Ready.
    async fn round(&mut self, revision: &ClusterRevision) -> bool {
        let wanted = site_layers(revision);
        if !self.uninstall_removed(&wanted).await {
            return false;
        }
        let check_due = self
            .last_check
            .is_none_or(|at| at.elapsed() >= CONVERGE_EVERY);
        let mut blocked = false;
        let mut changed = false;
        for layer in &wanted {
            if self.state_of(&layer.name).is_none() {
                changed |= self.set_state(
                    layer,
                    LayerPhase::Pending,
                    Some("waiting for the layers before it".into()),
                );
            }
        }
        for layer in &wanted {
            if blocked {
                changed |= self.set_state(
                    layer,
                    LayerPhase::Pending,
                    Some("waiting for the layers before it".into()),
                );
                continue;
            }
            let digest = install_digest(layer);
            let current = self
                .applied
                .get(&layer.name)
                .is_some_and(|a| a.install_digest == digest);
            if current {
                if check_due {
                    changed |= self.check(layer).await;
                }
                blocked = self.state_of(&layer.name) != Some(LayerPhase::Ready);
                continue;
            }
            if let Some(retry) = self.retries.get(&layer.name)
                && Instant::now() < retry.at
            {
                blocked = true;
                continue;
            }
            self.install(revision, layer, &digest).await;
            changed = true;
            blocked = self.state_of(&layer.name) != Some(LayerPhase::Ready);
        }
        if check_due {
            self.last_check = Some(Instant::now());
            if !blocked {
                self.bound_cache(&wanted);
            }
        }
        // In the revision's order, as status.layers shows them.
        let position = |name: &str| wanted.iter().position(|l| l.name == name);
        self.record.states.retain(|s| position(&s.name).is_some());
        self.record.states.sort_by_key(|s| position(&s.name));
        if changed {
            self.publish().await;
        }
        wanted.iter().all(|layer| {
            self.applied
                .get(&layer.name)
                .is_some_and(|a| a.install_digest == install_digest(layer))
                && self.state_of(&layer.name) == Some(LayerPhase::Ready)
        })
    }

    async fn install(&mut self, revision: &ClusterRevision, layer: &RevisionLayer, digest: &str) {
        // A layer an earlier agent installed as the revision wants it is applied again to
        // know its objects, quietly: it stays as it was said to be unless that fails.
        let again = self
            .record
            .installed(&layer.name)
            .is_some_and(|i| i.complete && i.install_digest == digest)
            && self.state_of(&layer.name) == Some(LayerPhase::Ready);
        if !again {
            self.set_state(layer, LayerPhase::Installing, None);
            // Recorded before anything is applied: an agent killed from here on finds the
            // layer to finish, or to uninstall if it left the stack meanwhile.
            let kind = self
                .record
                .installed(&layer.name)
                .map(|i| i.kind.clone())
                .unwrap_or(InstalledKind::Manifests);
            self.record.set_installed(InstalledLayer {
                name: layer.name.clone(),
                version: layer.version.clone(),
                digest: layer.digest.clone(),
                install_digest: digest.to_string(),
                kind,
                complete: false,
            });
            self.publish().await;
        }
        let started = Instant::now();
        let span = tracing::info_span!("layer", layer = %layer.name, version = %layer.version);
        match self
            .install_and_wait(revision, layer)
            .instrument(span)
            .await
        {
            Ok(installed) => {
                let from_cache = installed.from_cache;
                self.record.set_installed(InstalledLayer {
                    name: layer.name.clone(),
                    version: layer.version.clone(),
                    digest: layer.digest.clone(),
                    install_digest: digest.to_string(),
                    kind: installed.kind.clone(),
                    complete: true,
                });
                self.applied.insert(
                    layer.name.clone(),
                    Applied {
                        install_digest: digest.to_string(),
                        objects: installed.objects,
                        rendered: installed.rendered,
                        charts: installed.charts,
                        _work: installed.work,
                        settled: SettledDifferences::default(),
                    },
                );
                self.retries.remove(&layer.name);
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(layer = %layer.name, version = %layer.version, from_cache, seconds, "layer Ready");
                self.set_state(layer, LayerPhase::Ready, None);
            }
            Err(e) => {
                let retry = self
                    .retries
                    .entry(layer.name.clone())
                    .or_insert_with(|| Retry {
                        at: Instant::now(),
                        delays: ExponentialBuilder::default()
                            .with_min_delay(Duration::from_secs(5))
                            .with_max_delay(Duration::from_secs(300))
                            .with_jitter()
                            .without_max_times()
                            .build(),
                    });
                let delay = retry.delays.next().unwrap_or(Duration::from_secs(300));
                retry.at = Instant::now() + delay;
                tracing::warn!(error = %e, retry_in_s = delay.as_secs(), "layer failed");
                self.set_state(layer, LayerPhase::Failed, Some(e.cause));
            }
        }
    }

    async fn install_and_wait(
        &mut self,
        revision: &ClusterRevision,
        layer: &RevisionLayer,
    ) -> Result<install::Installed, LayerError> {
        let registries = registries::site_registries(&self.workload, &self.link)
            .await
            .map_err(|e| LayerError::new(layer, e.to_string()))?;
        let facts =
            facts::cluster_facts(&self.workload, &self.link, revision, &mut self.cluster_uid).await;
        let prepared = install::prepare(&self.setup, layer, &registries, &facts).await?;
        self.record_releases(layer, &prepared.releases()).await?;
        let installed = install::apply(&self.setup, layer, prepared).await?;
        crash_point::after_apply(&layer.name, &self.setup.work_dir);
        install::wait_ready(&self.setup, layer, &installed.objects).await?;
        Ok(installed)
    }

    /// The releases a chart layer is about to create or upgrade, recorded in this cluster
    /// before helm runs: an agent killed once helm started leaves no release that the
    /// record does not name, so a layer that then leaves the stack is uninstalled whole.
    async fn record_releases(
        &mut self,
        layer: &RevisionLayer,
        releases: &[record::Release],
    ) -> Result<(), LayerError> {
        let before = self.record.installed(&layer.name).map(|i| i.kind.clone());
        if !self
            .record
            .set_kind(&layer.name, planned_kind(before.as_ref(), releases))
        {
            return Ok(());
        }
        self.record.save(&self.workload).await.map_err(|e| {
            LayerError::new(
                layer,
                format!("cannot record its releases before installing them: {e}"),
            )
        })
    }

    /// The cache keeps the packs the revision pins and nothing else, once they all are
    /// installed: it holds at most one revision's packs.
    fn bound_cache(&self, wanted: &[&RevisionLayer]) {
        let keep = wanted.iter().map(|l| l.digest.clone()).collect();
        match self.setup.cache.collect_garbage(&keep) {
            Ok(report) if !report.removed.is_empty() => {
                tracing::info!(
                    removed = report.removed.len(),
                    freed_bytes = report.freed_bytes,
                    "removed packs no layer uses from the cache"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot clean the pack cache"),
        }
    }

    /// Layers the record holds that the revision no longer has, uninstalled newest first.
    /// False while one could not be (the rest waits).
    async fn uninstall_removed(&mut self, wanted: &[&RevisionLayer]) -> bool {
        let removed: Vec<InstalledLayer> = self
            .record
            .installed
            .iter()
            .rev()
            .filter(|i| !wanted.iter().any(|w| w.name == i.name))
            .cloned()
            .collect();
        for layer in removed {
            match uninstall::uninstall(&self.setup, &self.workload, &layer).await {
                Ok(()) => {
                    self.site_log.record(
                        SiteEventKind::LayerChanged,
                        format!(
                            "layer {} {} uninstalled: it left the cluster's stack",
                            layer.name, layer.version
                        ),
                    );
                    self.record.forget(&layer.name);
                    self.record.states.retain(|s| s.name != layer.name);
                    self.applied.remove(&layer.name);
                    self.publish().await;
                }
                Err(e) => {
                    tracing::warn!(layer = %layer.name, error = %e, "cannot uninstall the layer; will try again");
                    return false;
                }
            }
        }
        true
    }

    fn state_of(&self, name: &str) -> Option<LayerPhase> {
        self.record.state_of(name)
    }

    fn add_corrections(&mut self, name: &str, count: i64) {
        self.record.add_corrections(name, count);
    }

    fn set_state(
        &mut self,
        layer: &RevisionLayer,
        phase: LayerPhase,
        message: Option<String>,
    ) -> bool {
        self.health
            .layer_ready(&layer.name, phase == LayerPhase::Ready);
        let before = self.record.state_of(&layer.name);
        let event = match phase {
            _ if before == Some(phase) => None,
            LayerPhase::Ready => Some(format!("layer {} {} is Ready", layer.name, layer.version)),
            LayerPhase::Failed => Some(format!(
                "layer {} {} failed: {}",
                layer.name,
                layer.version,
                message.as_deref().unwrap_or("no message")
            )),
            _ => None,
        };
        if let Some(event) = event {
            self.site_log.record(SiteEventKind::LayerChanged, event);
        }
        self.record.set_state(layer, phase, message)
    }

    /// The states in the revision's order, in this cluster and for the next report.
    async fn publish(&mut self) {
        if let Err(e) = self.record.save(&self.workload).await {
            tracing::warn!(error = %e, "cannot record the layers' state in this cluster; will try again");
        }
        self.report.set_layers(self.record.states.clone());
    }
}

/// Work folders an agent killed mid-install left behind.
fn remove_leftovers(work_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("layer-")
            && let Err(e) = std::fs::remove_dir_all(entry.path())
        {
            tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove a leftover work folder");
        }
    }
}
