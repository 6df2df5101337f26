//! What the leading agent does, as a machine of phases: pivot the cluster's CAPI objects
//! into its own cluster, keep it at its revision and report back whenever the management
//! cluster answers, and hand the objects back when the cluster is deleted. The transitions
//! are all in [`Work::next`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::ListParams;
use strata_shared::bounded_text;
use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::capi::MACHINE;
use strata_shared::contracts::conditions::{
    REASON_INSTALLING_PROVIDERS, REASON_MOVED_BACK, REASON_MOVING,
};
use strata_shared::kube_writer::KubeWriter;
use strata_shared::pivot::journal::Direction;
use strata_shared::revision::RevisionProvider;
use tokio::sync::watch;
use tracing::Instrument;

use crate::agent_error::{AgentError, Step};
use crate::health::AgentHealth;
use crate::layers::{LayerInstaller, LayerSetup, registries};
use crate::machine_events::MachineWatch;
use crate::management_link::ManagementLink;
use crate::move_attempt::{Attempt, prepare_attempt, run_attempt};
use crate::move_grant::{self, Grant};
use crate::pivot::JournalStore;
use crate::provider_install::ProviderInstallError;
use crate::revision_keeper::{RevisionFollower, report_counts};
use crate::rollout::RevisionRollout;
use crate::site_export::SiteExporter;
use crate::site_log::{SiteEventKind, SiteLog};
use crate::status_report::StatusReport;
use crate::{identity_sync, link_keeper, move_back, provider_install};

const RETRY: Duration = Duration::from_secs(5);
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Where the agent is in its cluster's life.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Just elected: a restart after a move back has started finishes it first, since the
    /// objects may be half in each cluster.
    Starting,
    /// The objects are in the management cluster: install the providers, ask for the move,
    /// move them here.
    Pivoting,
    /// The objects live here: keep the cluster at its revision, roll out the next ones,
    /// and report.
    Holding,
    /// The cluster is being deleted: move its objects back to the management cluster.
    MovingBack,
    /// Nothing more to do: the cluster was deleted before anything moved, or its objects
    /// are back in the management cluster for CAPI there to delete it.
    Finished,
}

impl Phase {
    /// Every phase's name, as [`Phase::name`] gives it.
    pub const NAMES: [&'static str; 5] =
        ["starting", "pivoting", "holding", "moving back", "finished"];

    pub fn name(&self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Pivoting => "pivoting",
            Phase::Holding => "holding",
            Phase::MovingBack => "moving back",
            Phase::Finished => "finished",
        }
    }
}

/// How one try at the move ended.
enum Try {
    /// True: the objects live here; false: they are not to move (the cluster is deleted).
    Done(bool),
    /// The controller has not decided yet: ask again at once (the ask itself waited).
    AskAgain,
    /// Something was not ready or failed: again after a pause.
    Later,
}

/// The leading agent's work for one cluster.
struct Work {
    workload: KubeWriter,
    link: ManagementLink,
    report: StatusReport,
    health: Arc<AgentHealth>,
    layer_setup: LayerSetup,
    site_log: SiteLog,
    /// The layer installer, once the cluster holds its objects.
    layers: Mutex<Option<AbortOnDrop>>,
    /// The export of the cluster's objects to the management cluster, once it holds them.
    export: Mutex<Option<AbortOnDrop>>,
    /// The most one Secret of the export holds.
    export_part_bytes: usize,
    /// What holding the cluster keeps from one round to the next.
    holding: tokio::sync::Mutex<HoldingState>,
}

/// The revision followed and the rollout towards it (which starts the layer installer).
#[derive(Default)]
struct HoldingState {
    follower: RevisionFollower,
    rollout: Option<RevisionRollout>,
    machines: MachineWatch,
}

/// Runs until the task is dropped (on losing the lease or stopping).
pub async fn run(
    workload: KubeWriter,
    link: ManagementLink,
    layer_setup: LayerSetup,
    health: Arc<AgentHealth>,
    export_part_bytes: usize,
) {
    let report = StatusReport::default();
    let site_log = SiteLog::open(workload.clone(), report.clone()).await;
    let reached = match link.management().await {
        Ok(management) => management
            .namespaced::<WorkloadCluster>(&link.cluster_namespace)
            .get(&link.cluster)
            .await
            .ok()
            .flatten(),
        Err(_) => None,
    };
    if let Some(cluster) = &reached {
        report.seed(cluster);
    }
    site_log.record(
        SiteEventKind::AgentStarted,
        if reached.is_some() {
            "the agent started and reached the management cluster"
        } else {
            "the agent started without the management cluster: it goes on from the site's own copies"
        },
    );
    // The link is kept whatever the work is doing: reports, and a renewed token.
    let keeper = tokio::spawn(
        link_keeper::run(
            workload.clone(),
            link.clone(),
            report.clone(),
            health.clone(),
            site_log.clone(),
        )
        .instrument(tracing::info_span!("link", cluster = %link.cluster)),
    );
    let _stop_keeper = AbortOnDrop(keeper);
    let work = Work {
        workload,
        link,
        report,
        health: health.clone(),
        layer_setup,
        site_log,
        layers: Mutex::new(None),
        export: Mutex::new(None),
        export_part_bytes,
        holding: tokio::sync::Mutex::new(HoldingState::default()),
    };
    let mut phase = Phase::Starting;
    while !matches!(phase, Phase::Finished) {
        health.set_phase(phase.name());
        let span = tracing::info_span!("work", cluster = %work.link.cluster, step = phase.name());
        let next = work.next(phase).instrument(span).await;
        phase = next;
    }
    health.set_phase(phase.name());
    std::future::pending::<()>().await;
}

impl Work {
    /// One phase's work, and the phase it leads to.
    async fn next(&self, phase: Phase) -> Phase {
        match phase {
            Phase::Starting => {
                if move_back::requested(&self.workload, &self.link).await == Some(true) {
                    Phase::Holding
                } else {
                    Phase::Pivoting
                }
            }
            Phase::Pivoting => {
                if self.pivot().await {
                    Phase::Holding
                } else {
                    tracing::info!(
                        "the cluster is being deleted before its objects moved here; nothing to do"
                    );
                    Phase::Finished
                }
            }
            Phase::Holding => {
                if move_back::requested(&self.workload, &self.link).await == Some(true) {
                    return Phase::MovingBack;
                }
                let held = self.hold().await;
                tokio::time::sleep(if held { REPORT_EVERY } else { RETRY }).await;
                Phase::Holding
            }
            Phase::MovingBack => {
                // The layers stay as they are while the cluster goes; its objects are
                // going back to the management cluster, so no copy is exported any more.
                self.layers.lock().unwrap_or_else(|p| p.into_inner()).take();
                self.export.lock().unwrap_or_else(|p| p.into_inner()).take();
                move_back::move_back(&self.workload, &self.link, &self.report).await;
                // The cluster is CAPI's in the management cluster to delete now.
                Phase::Finished
            }
            Phase::Finished => Phase::Finished,
        }
    }

    /// One round of holding the cluster: the latest revision read, one step of rolling it
    /// out taken, the counts reported and the cloud identity kept current. False when the
    /// round could not get that far (it is tried again sooner).
    async fn hold(&self) -> bool {
        let (workload, link) = (&self.workload, &self.link);
        self.start_export();
        let mut holding = self.holding.lock().await;
        let held = match holding.follower.latest(workload, link).await {
            Ok(latest) => {
                let rollout = holding.rollout.get_or_insert_with(|| self.start_layers());
                match rollout.advance(&latest).await {
                    Ok(target) => {
                        self.log_machines(&mut holding.machines).await;
                        if let Err(e) = report_counts(workload, link, &target, &self.report).await {
                            tracing::info!(error = %e, "cannot report to the management cluster; will try again");
                        }
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take the cluster's revision further; retrying");
                        false
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the cluster's revision; retrying");
                false
            }
        };
        sync_identity(workload, link).await;
        held
    }

    /// What the site's machines did since the last round, in its log.
    async fn log_machines(&self, watch: &mut MachineWatch) {
        let machines = self
            .workload
            .dynamic(&MACHINE.api_resource(), Some(&self.link.objects_namespace))
            .list(&ListParams::default())
            .await;
        match machines {
            Ok(machines) => {
                for (kind, message) in watch.observe(&machines) {
                    self.site_log.record(kind, message);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot list the machines for the site log"),
        }
    }

    /// Starts exporting the cluster's objects to the management cluster, once.
    fn start_export(&self) {
        let mut export = self.export.lock().unwrap_or_else(|p| p.into_inner());
        if export.is_none() {
            let span = tracing::info_span!("export", cluster = %self.link.cluster);
            *export = Some(AbortOnDrop(tokio::spawn(
                SiteExporter::with_part_bytes(self.export_part_bytes)
                    .run(self.workload.clone(), self.link.clone())
                    .instrument(span),
            )));
        }
    }

    /// Starts the layer installer, which waits for the rollout to hand it a revision.
    fn start_layers(&self) -> RevisionRollout {
        let (revision_sender, revisions) = watch::channel(None);
        let (ready, ready_receiver) = watch::channel(None);
        let installer = LayerInstaller::new(
            self.workload.clone(),
            self.link.clone(),
            self.report.clone(),
            self.health.clone(),
            self.layer_setup.clone(),
            self.site_log.clone(),
        );
        let span = tracing::info_span!("layers", cluster = %self.link.cluster);
        *self.layers.lock().unwrap_or_else(|p| p.into_inner()) = Some(AbortOnDrop(tokio::spawn(
            installer.run(revisions, ready).instrument(span),
        )));
        RevisionRollout::new(
            self.workload.clone(),
            self.link.clone(),
            self.report.clone(),
            revision_sender,
            ready_receiver,
        )
    }

    /// Moves the objects here; false when the cluster is being deleted before a move
    /// started.
    async fn pivot(&self) -> bool {
        // A move is journaled only once the providers are installed and the move granted: a
        // restarted agent goes straight on with it, and a cluster that has moved needs
        // nothing of the management cluster to carry on.
        while let Err(e) = self.keep_earlier_round_aside().await {
            tracing::warn!(error = %e, "cannot keep the journal of an earlier round aside; retrying");
            tokio::time::sleep(RETRY).await;
        }
        let mut providers_installed = move_started(&self.workload, &self.link).await;
        loop {
            if !providers_installed {
                match self.install_providers().await {
                    Ok(()) => providers_installed = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot install the provider components; retrying");
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                }
            }
            match self.pivot_once().await {
                Try::Done(moved) => return moved,
                Try::AskAgain => {}
                Try::Later => tokio::time::sleep(RETRY).await,
            }
        }
    }

    /// A cluster reclaimed after its site was lost moves again in a new round; a site
    /// rebuilt from a snapshot may still hold the journal of the earlier round's move, which
    /// is over. That journal is kept aside under another name, so
    /// this round asks for its own grant and plans its own move.
    async fn keep_earlier_round_aside(&self) -> Result<(), AgentError> {
        let link = &self.link;
        let step = Step::KeepEarlierJournalAside;
        let round = link
            .data()
            .await
            .map_err(|source| AgentError::Management {
                cluster: link.cluster.clone(),
                step,
                source,
            })?
            .pivot_round;
        let store =
            JournalStore::new(&self.workload, &link.cluster, Direction::Pivot).in_round(round);
        let kept = store
            .retire_earlier_round()
            .await
            .map_err(|source| AgentError::Journal {
                cluster: link.cluster.clone(),
                step,
                source,
            })?;
        if let Some(kept) = kept {
            tracing::info!(%kept, round, "kept the journal of an earlier round's move aside");
        }
        Ok(())
    }

    /// One try at the move once the providers are installed.
    async fn pivot_once(&self) -> Try {
        let (workload, link, report) = (&self.workload, &self.link, &self.report);
        // A new move is planned only once granted: from the grant on, the controller leaves
        // the objects alone, so the plan's snapshot stays true.
        if !move_started(workload, link).await {
            let management = match link.management().await {
                Ok(management) => management,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the management cluster; retrying");
                    return Try::Later;
                }
            };
            match move_grant::ask(&management, link, report).await {
                Grant::Granted => {}
                Grant::Refused => return Try::Done(false),
                // Asked again at once: the ask itself waited.
                Grant::Pending => return Try::AskAgain,
            }
        }
        let Some(attempt) = prepare_attempt(workload, link, Direction::Pivot).await else {
            return Try::Later;
        };
        if attempt.prepared.is_done() {
            return Try::Done(true);
        }
        if attempt.prepared.is_new() {
            match self.announce_new_move(&attempt).await {
                Ok(true) => {}
                Ok(false) => return Try::Done(false),
                Err(()) => return Try::Later,
            }
        }
        if run_attempt(attempt, link, "False", report).await {
            tracing::info!(cluster = %link.cluster, "the cluster's CAPI objects live in the cluster now");
            return Try::Done(true);
        }
        Try::Later
    }

    /// Before a new move touches anything: a deletion that came after the grant finds
    /// nothing moved (said, and the controller deletes the cluster where it is: false);
    /// otherwise the controller is told the move starts (true). Err: try again.
    async fn announce_new_move(&self, attempt: &Attempt) -> Result<bool, ()> {
        let (link, report) = (&self.link, &self.report);
        match move_back::deletion_requested(link).await {
            Some(false) => {}
            Some(true) => {
                nothing_moved(&attempt.management, link, report).await;
                return Ok(false);
            }
            None => {
                tracing::warn!("cannot tell whether the cluster is being deleted; retrying");
                return Err(());
            }
        }
        report.set_pivoted(
            "False",
            REASON_MOVING,
            "the agent is moving the CAPI objects into the workload cluster",
        );
        if let Err(e) = report.send(&attempt.management, link).await {
            tracing::warn!(error = %e, "cannot tell the management cluster the move starts; retrying");
            return Err(());
        }
        Ok(true)
    }

    /// Installs the providers the cluster's latest revision pins, telling the management
    /// cluster which one it is at (Pivoted=False, InstallingProviders).
    async fn install_providers(&self) -> Result<(), AgentError> {
        let link = &self.link;
        let revision = self
            .holding
            .lock()
            .await
            .follower
            .latest(&self.workload, link)
            .await?;
        let registries = registries::site_registries(&self.workload, link)
            .await
            .map_err(|e| AgentError::Providers {
                cluster: link.cluster.clone(),
                step: Step::InstallProviders,
                source: ProviderInstallError::Registries(e.to_string()),
            })?;
        let providers = &revision.spec.desired.providers;
        let total = providers.len();
        let report = &self.report;
        let progress = |index: usize, provider: &RevisionProvider| {
            report.set_pivoted(
                "False",
                REASON_INSTALLING_PROVIDERS,
                &format!(
                    "installing provider {} of {total}: {} {} {} (pack {}:{})",
                    index + 1,
                    provider.kind,
                    provider.provider_name,
                    provider.version,
                    provider.pack,
                    provider.pack_version
                ),
            );
        };
        let installed = provider_install::install(
            &self.layer_setup,
            &self.workload,
            &registries,
            providers,
            progress,
        )
        .await;
        let installed = match installed {
            Ok(installed) => installed,
            Err(source) => {
                self.report.set_pivoted(
                    "False",
                    REASON_INSTALLING_PROVIDERS,
                    &bounded_text::cut(
                        &format!("cannot install the providers, retrying: {source}"),
                        1024,
                    ),
                );
                self.send_report().await;
                return Err(AgentError::Providers {
                    cluster: link.cluster.clone(),
                    step: Step::InstallProviders,
                    source,
                });
            }
        };
        tracing::info!(providers = %installed.providers.join(", "), "provider components installed");
        Ok(())
    }

    /// Sends the report now when the management cluster can be reached; a later round
    /// sends it otherwise.
    async fn send_report(&self) {
        if let Ok(management) = self.link.management().await
            && let Err(e) = self.report.send(&management, &self.link).await
        {
            tracing::debug!(error = %e, "cannot send the report now");
        }
    }
}

/// Aborts a task when dropped: the link keeper ends with the work, the readiness check
/// with the agent.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Copies a changed cloud identity from the management cluster (failures are the next
/// round's to retry).
async fn sync_identity(workload: &KubeWriter, link: &ManagementLink) {
    let Ok(data) = link.data().await else {
        return;
    };
    let Some(secret) = &data.identity_secret else {
        return;
    };
    let Ok(management) = link.management().await else {
        return;
    };
    if let Err(e) = identity_sync::sync(workload, &management, secret).await {
        tracing::info!(error = %e, "cannot copy the cloud identity; will try again");
    }
}

/// The move was granted but the cluster was deleted before anything moved: the objects
/// never left the management cluster.
async fn nothing_moved(management: &KubeWriter, link: &ManagementLink, report: &StatusReport) {
    report.set_pivoted(
        "False",
        REASON_MOVED_BACK,
        "the cluster was deleted before anything moved; its CAPI objects never left the management cluster",
    );
    while let Err(e) = report.send(management, link).await {
        tracing::warn!(error = %e, "cannot tell the management cluster nothing moved; retrying");
        tokio::time::sleep(RETRY).await;
    }
}

async fn move_started(workload: &KubeWriter, link: &ManagementLink) -> bool {
    let store = JournalStore::new(workload, &link.cluster, Direction::Pivot);
    matches!(store.load().await, Ok(Some(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_name_is_listed_once() {
        let phases = [
            Phase::Starting,
            Phase::Pivoting,
            Phase::Holding,
            Phase::MovingBack,
            Phase::Finished,
        ];
        let names: Vec<&str> = phases.iter().map(Phase::name).collect();
        assert_eq!(names, Phase::NAMES);
    }
}
