//! Day 2 after the pivot: each revision the management cluster publishes reaches the
//! cluster, in an order that never puts a worker ahead of the control plane.
//!
//! - **The first revision** after the pivot is the one the moved objects were built from
//!   (the CAPI Cluster's `strata.dev/revision`): the control plane is raised to its full
//!   count, the worker pools are created and the layers installed, all at once, since
//!   nothing rolls (step `ScaleOut`).
//! - **Every later revision** goes in three steps, each started only once the one before is
//!   done: `ControlPlane` (its version, machine template and kubeadm settings; done when every
//!   control-plane machine is up to date and ready), `Workers` (pools applied, resized,
//!   added and removed; done when every machine of every pool is up to date and ready), then
//!   `Layers` (the installer moves to the revision; done when every layer is Ready).
//!
//! Only then is the revision recorded as applied, in this cluster
//! ([`applied`]) and on the WorkloadCluster (`status.appliedRevision`). A restarted agent
//! starts the steps again from the applied revision: each step's writes are server-side
//! applies of the same objects, so doing one twice changes nothing. A step that cannot go on
//! leaves the cluster where it is, says which step and why (`status.rollout`), and is tried
//! again on the next round.

mod applied;
mod progress;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{DynamicObject, ListParams};
use serde_json::{Value, json};
use strata_shared::capi::{
    BuildInput, control_plane_name, control_plane_objects, full_control_plane_replicas,
    worker_pool_objects,
};
use strata_shared::cluster::RolloutReport;
use strata_shared::contracts::capi::{
    CLUSTER, KUBEADM_CONTROL_PLANE, MACHINE, MACHINE_DEPLOYMENT, MACHINE_HEALTH_CHECK,
};
use strata_shared::contracts::labels::{
    CAPI_CLUSTER_NAME_LABEL, CAPI_DEPLOYMENT_NAME_LABEL, NODE_POOL_LABEL, REVISION_ANNOTATION,
};
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::revision::ClusterRevision;
use tokio::sync::watch;

use crate::management_link::ManagementLink;
use crate::revision_keeper::{revision_numbered, scale_out};
use crate::status_report::StatusReport;

pub use progress::Progress;

pub use strata_shared::cluster::RolloutStep;

/// Why a step could not go on this round.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("revision {revision}, step {step}: {source}")]
    Api {
        revision: i64,
        step: RolloutStep,
        #[source]
        source: WriteError,
    },
    #[error("revision {revision}, step {step}: cannot build its CAPI objects: {reason}")]
    Build {
        revision: i64,
        step: RolloutStep,
        reason: String,
    },
    #[error("revision {revision}, step {step}: {object} is not in this cluster")]
    Missing {
        revision: i64,
        step: RolloutStep,
        object: String,
    },
    #[error(transparent)]
    Applied(#[from] applied::AppliedError),
    #[error("the revision the cluster's objects were built from: {0}")]
    Base(String),
    #[error("revision {revision}, step ScaleOut: {source}")]
    ScaleOut {
        revision: i64,
        #[source]
        source: Box<crate::agent_error::AgentError>,
    },
}

/// The step a revision is at, since when, and whether its writes are done this process.
#[derive(Debug, Clone)]
struct AtStep {
    revision: i64,
    step: RolloutStep,
    since: Timestamp,
    written: bool,
}

pub struct RevisionRollout {
    workload: KubeWriter,
    link: ManagementLink,
    report: StatusReport,
    /// The revision the layer installer works on.
    layers_revision: watch::Sender<Option<ClusterRevision>>,
    /// The revision whose layers the installer last found all installed and Ready.
    layers_ready: watch::Receiver<Option<i64>>,
    /// `None` until read from the cluster; then the applied revision, if any.
    applied: Option<Option<ClusterRevision>>,
    at: Option<AtStep>,
}

impl RevisionRollout {
    pub fn new(
        workload: KubeWriter,
        link: ManagementLink,
        report: StatusReport,
        layers_revision: watch::Sender<Option<ClusterRevision>>,
        layers_ready: watch::Receiver<Option<i64>>,
    ) -> RevisionRollout {
        RevisionRollout {
            workload,
            link,
            report,
            layers_revision,
            layers_ready,
            applied: None,
            at: None,
        }
    }

    /// One round towards `latest`; returns the revision the cluster is held at or moving
    /// to, whose node counts are the ones to report.
    pub async fn advance(
        &mut self,
        latest: &ClusterRevision,
    ) -> Result<ClusterRevision, RolloutError> {
        let applied = match &self.applied {
            Some(applied) => applied.clone(),
            None => {
                let loaded = applied::load(&self.workload, &self.link.cluster).await?;
                self.report
                    .set_applied(loaded.as_ref().map(|r| r.spec.number));
                self.applied = Some(loaded.clone());
                loaded
            }
        };
        let result = match applied {
            None => {
                let base = self.base(latest).await?;
                self.scale_out(&base).await.map(|()| base)
            }
            Some(applied) if latest.spec.number > applied.spec.number => {
                self.roll(latest).await.map(|()| latest.clone())
            }
            Some(applied) => {
                if latest.spec.number < applied.spec.number {
                    tracing::warn!(
                        latest = latest.spec.number,
                        applied = applied.spec.number,
                        "the management cluster's latest revision is older than the one this cluster runs; keeping it"
                    );
                }
                self.hand_to_layers(&applied);
                self.at = None;
                self.report.set_rollout(None);
                Ok(applied)
            }
        };
        if let Err(e) = &result {
            self.say_failed(e);
        }
        result
    }

    /// The revision the moved objects were built from, else `latest`.
    async fn base(&self, latest: &ClusterRevision) -> Result<ClusterRevision, RolloutError> {
        let clusters = self
            .workload
            .dynamic(&CLUSTER.api_resource(), Some(&self.link.objects_namespace));
        let cluster = clusters
            .get(&self.link.cluster)
            .await
            .map_err(|e| RolloutError::Base(e.to_string()))?;
        let number = cluster
            .as_ref()
            .and_then(|c| c.metadata.annotations.as_ref())
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .and_then(|n| n.parse::<i64>().ok());
        match number {
            Some(n) if n != latest.spec.number => {
                match revision_numbered(&self.workload, &self.link, n).await {
                    Ok(Some(base)) => Ok(base),
                    Ok(None) => {
                        tracing::warn!(
                            base = n,
                            latest = latest.spec.number,
                            "the revision the objects were built from is gone; scaling out to the latest"
                        );
                        Ok(latest.clone())
                    }
                    Err(e) => Err(RolloutError::Base(e.to_string())),
                }
            }
            _ => Ok(latest.clone()),
        }
    }

    /// The first revision: everything at once, nothing rolls.
    async fn scale_out(&mut self, base: &ClusterRevision) -> Result<(), RolloutError> {
        let number = base.spec.number;
        let at = self.at_step(number, RolloutStep::ScaleOut);
        if !at.written {
            scale_out(&self.workload, &self.link, base)
                .await
                .map_err(|source| RolloutError::ScaleOut {
                    revision: number,
                    source: Box::new(source),
                })?;
            self.mark_written();
        }
        self.hand_to_layers(base);
        let progress = progress::all([
            self.control_plane_progress(base, RolloutStep::ScaleOut)
                .await?,
            self.workers_progress(base, RolloutStep::ScaleOut).await?,
            self.layers_progress(base),
        ]);
        self.conclude(base, progress).await
    }

    /// A later revision, step by step.
    async fn roll(&mut self, target: &ClusterRevision) -> Result<(), RolloutError> {
        let number = target.spec.number;
        let step = match &self.at {
            Some(at) if at.revision == number => at.step,
            _ => RolloutStep::ControlPlane,
        };
        self.at_step(number, step);
        match step {
            RolloutStep::ScaleOut | RolloutStep::ControlPlane => {
                if !self.written() {
                    self.write_control_plane(target).await?;
                    self.mark_written();
                }
                match self.control_plane_progress(target, step).await? {
                    Progress::Done => {
                        tracing::info!(
                            revision = number,
                            "control plane at the revision; workers next"
                        );
                        self.enter(number, RolloutStep::Workers);
                    }
                    Progress::Waiting(message) => self.say(target, step, &message),
                }
            }
            RolloutStep::Workers => {
                if !self.written() {
                    self.write_workers(target).await?;
                    self.mark_written();
                }
                match self.workers_progress(target, step).await? {
                    Progress::Done => {
                        tracing::info!(revision = number, "workers at the revision; layers next");
                        self.enter(number, RolloutStep::Layers);
                    }
                    Progress::Waiting(message) => self.say(target, step, &message),
                }
            }
            RolloutStep::Layers => {
                self.hand_to_layers(target);
                let progress = self.layers_progress(target);
                self.conclude(target, progress).await?;
            }
        }
        Ok(())
    }

    /// Records `revision` as applied once `progress` is done; else says what it waits for.
    async fn conclude(
        &mut self,
        revision: &ClusterRevision,
        progress: Progress,
    ) -> Result<(), RolloutError> {
        match progress {
            Progress::Done => {
                applied::save(&self.workload, revision).await?;
                tracing::info!(revision = revision.spec.number, "revision applied");
                self.applied = Some(Some(revision.clone()));
                self.at = None;
                self.report.set_applied(Some(revision.spec.number));
                self.report.set_rollout(None);
            }
            Progress::Waiting(message) => {
                let step = self.at.as_ref().map_or(RolloutStep::Layers, |a| a.step);
                self.say(revision, step, &message);
            }
        }
        Ok(())
    }

    fn hand_to_layers(&self, revision: &ClusterRevision) {
        let current = self
            .layers_revision
            .borrow()
            .as_ref()
            .map(|r| r.spec.number);
        if current != Some(revision.spec.number) {
            tracing::info!(
                revision = revision.spec.number,
                "the layers follow the revision"
            );
            self.layers_revision.send_replace(Some(revision.clone()));
        }
    }

    fn layers_progress(&self, revision: &ClusterRevision) -> Progress {
        if *self.layers_ready.borrow() == Some(revision.spec.number) {
            Progress::Done
        } else {
            Progress::Waiting(
                "waiting for every layer of the revision to be installed and Ready (status.layers)"
                    .into(),
            )
        }
    }

    /// The control plane's machine template and KubeadmControlPlane as `target` builds
    /// them, at the full count, and the Cluster marked with the revision.
    async fn write_control_plane(&self, target: &ClusterRevision) -> Result<(), RolloutError> {
        let (number, step) = (target.spec.number, RolloutStep::ControlPlane);
        let api = |source| RolloutError::Api {
            revision: number,
            step,
            source,
        };
        let objects =
            control_plane_objects(&self.input(target)).map_err(|e| RolloutError::Build {
                revision: number,
                step,
                reason: e.to_string(),
            })?;
        // The Cluster and its cloud cluster stay as they are (their network and placement do
        // not change after creation); the template first, then the KCP that points at it.
        // Both are named after the cluster; the template and the KCP are not.
        for object in objects
            .iter()
            .filter(|o| o["metadata"]["name"] != json!(self.link.cluster))
        {
            let mut object = object.clone();
            if object["kind"] == json!(KUBEADM_CONTROL_PLANE.kind) {
                object["spec"]["replicas"] =
                    json!(full_control_plane_replicas(&target.spec.desired));
            }
            self.workload.apply_json(&object).await.map_err(api)?;
        }
        self.workload
            .dynamic(&CLUSTER.api_resource(), Some(&self.link.objects_namespace))
            .merge_patch(
                &self.link.cluster,
                &json!({"metadata": {"annotations": {REVISION_ANNOTATION: number.to_string()}}}),
            )
            .await
            .map_err(api)?;
        tracing::info!(revision = number, version = %target.spec.desired.kubernetes_version, "control plane set to the revision");
        Ok(())
    }

    /// Every pool of `target` applied; the pools it no longer has deleted.
    async fn write_workers(&self, target: &ClusterRevision) -> Result<(), RolloutError> {
        let (number, step) = (target.spec.number, RolloutStep::Workers);
        let api = |source| RolloutError::Api {
            revision: number,
            step,
            source,
        };
        let owner = self.cluster_owner(target, step).await?;
        let objects =
            worker_pool_objects(&self.input(target)).map_err(|e| RolloutError::Build {
                revision: number,
                step,
                reason: e.to_string(),
            })?;
        for mut object in objects {
            object["metadata"]["ownerReferences"] = owner.clone();
            self.workload.apply_json(&object).await.map_err(api)?;
        }
        let deployments = self.deployments();
        let health_checks = self.workload.dynamic(
            &MACHINE_HEALTH_CHECK.api_resource(),
            Some(&self.link.objects_namespace),
        );
        for removed in self.pool_deployments(target, step).await?.1 {
            tracing::info!(revision = number, deployment = %removed, "removing a worker pool the revision no longer has");
            // The pool's health check first (it has the pool's name): it must not remediate
            // machines that are being deleted, nor outlive them.
            health_checks.delete(&removed).await.map_err(api)?;
            deployments.delete(&removed).await.map_err(api)?;
        }
        Ok(())
    }

    async fn cluster_owner(
        &self,
        target: &ClusterRevision,
        step: RolloutStep,
    ) -> Result<Value, RolloutError> {
        let number = target.spec.number;
        let cluster = self
            .workload
            .dynamic(&CLUSTER.api_resource(), Some(&self.link.objects_namespace))
            .get(&self.link.cluster)
            .await
            .map_err(|source| RolloutError::Api {
                revision: number,
                step,
                source,
            })?
            .ok_or_else(|| RolloutError::Missing {
                revision: number,
                step,
                object: format!(
                    "Cluster {}/{}",
                    self.link.objects_namespace, self.link.cluster
                ),
            })?;
        Ok(json!([{
            "apiVersion": CLUSTER.api_version,
            "kind": CLUSTER.kind,
            "name": self.link.cluster,
            "uid": cluster.metadata.uid,
            "blockOwnerDeletion": true,
        }]))
    }

    fn deployments(&self) -> strata_shared::kube_writer::BoundedApi<DynamicObject> {
        self.workload.dynamic(
            &MACHINE_DEPLOYMENT.api_resource(),
            Some(&self.link.objects_namespace),
        )
    }

    /// The cluster's pool MachineDeployments: those `target` has (with their objects) and
    /// the names of those it does not.
    async fn pool_deployments(
        &self,
        target: &ClusterRevision,
        step: RolloutStep,
    ) -> Result<(Vec<DynamicObject>, Vec<String>), RolloutError> {
        let listed = self
            .deployments()
            .list(&ListParams::default().labels(&format!(
                "{CAPI_CLUSTER_NAME_LABEL}={},{NODE_POOL_LABEL}",
                self.link.cluster
            )))
            .await
            .map_err(|source| RolloutError::Api {
                revision: target.spec.number,
                step,
                source,
            })?;
        let wanted: Vec<String> = target
            .spec
            .desired
            .node_pools
            .workers
            .iter()
            .map(|p| format!("{}-{}", self.link.cluster, p.name))
            .collect();
        let (kept, removed): (Vec<_>, Vec<_>) = listed
            .into_iter()
            .partition(|d| d.metadata.name.as_ref().is_some_and(|n| wanted.contains(n)));
        Ok((
            kept,
            removed
                .into_iter()
                .filter_map(|d| d.metadata.name)
                .collect(),
        ))
    }

    async fn control_plane_progress(
        &self,
        target: &ClusterRevision,
        step: RolloutStep,
    ) -> Result<Progress, RolloutError> {
        let number = target.spec.number;
        let name = control_plane_name(&self.link.cluster);
        let kcp = self
            .workload
            .dynamic(
                &KUBEADM_CONTROL_PLANE.api_resource(),
                Some(&self.link.objects_namespace),
            )
            .get(&name)
            .await
            .map_err(|source| RolloutError::Api {
                revision: number,
                step,
                source,
            })?
            .ok_or_else(|| RolloutError::Missing {
                revision: number,
                step,
                object: format!("KubeadmControlPlane {}/{name}", self.link.objects_namespace),
            })?;
        let kcp = serde_json::to_value(&kcp).unwrap_or_default();
        Ok(progress::control_plane(
            &kcp,
            &target.spec.desired.kubernetes_version,
            full_control_plane_replicas(&target.spec.desired),
        ))
    }

    async fn workers_progress(
        &self,
        target: &ClusterRevision,
        step: RolloutStep,
    ) -> Result<Progress, RolloutError> {
        let (kept, removed) = self.pool_deployments(target, step).await?;
        let mut parts = Vec::new();
        for pool in &target.spec.desired.node_pools.workers {
            let name = format!("{}-{}", self.link.cluster, pool.name);
            let found = kept
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(name.as_str()));
            parts.push(match found {
                Some(deployment) => progress::worker_pool(
                    &serde_json::to_value(deployment).unwrap_or_default(),
                    i64::from(pool.count),
                ),
                None => Progress::Waiting(format!("MachineDeployment {name} is not there yet")),
            });
        }
        parts.extend(removed.into_iter().map(|name| {
            Progress::Waiting(format!(
                "MachineDeployment {name} (a removed pool) is still being deleted"
            ))
        }));
        // A removed pool is gone once its machines are, not only its MachineDeployment.
        let wanted: Vec<String> = target
            .spec
            .desired
            .node_pools
            .workers
            .iter()
            .map(|p| format!("{}-{}", self.link.cluster, p.name))
            .collect();
        let leftover = self
            .workload
            .dynamic(&MACHINE.api_resource(), Some(&self.link.objects_namespace))
            .list(&ListParams::default().labels(&format!(
                "{CAPI_CLUSTER_NAME_LABEL}={},{CAPI_DEPLOYMENT_NAME_LABEL}",
                self.link.cluster
            )))
            .await
            .map_err(|source| RolloutError::Api {
                revision: target.spec.number,
                step,
                source,
            })?
            .into_iter()
            .filter(|m| {
                m.labels()
                    .get(CAPI_DEPLOYMENT_NAME_LABEL)
                    .is_some_and(|d| !wanted.contains(d))
            })
            .count();
        if leftover > 0 {
            parts.push(Progress::Waiting(format!(
                "{leftover} machine(s) of removed pools still being deleted"
            )));
        }
        Ok(progress::all(parts))
    }

    fn input<'r>(&'r self, target: &'r ClusterRevision) -> BuildInput<'r> {
        BuildInput {
            cluster_name: &self.link.cluster,
            namespace: &self.link.objects_namespace,
            revision: target.spec.number,
            desired: &target.spec.desired,
        }
    }

    /// Where `revision` is; a new revision or step starts afresh.
    fn at_step(&mut self, revision: i64, step: RolloutStep) -> AtStep {
        match &self.at {
            Some(at) if at.revision == revision && at.step == step => at.clone(),
            _ => {
                self.enter(revision, step);
                self.at.clone().unwrap_or(AtStep {
                    revision,
                    step,
                    since: Timestamp::now(),
                    written: false,
                })
            }
        }
    }

    fn enter(&mut self, revision: i64, step: RolloutStep) {
        self.at = Some(AtStep {
            revision,
            step,
            since: Timestamp::now(),
            written: false,
        });
    }

    fn written(&self) -> bool {
        self.at.as_ref().is_some_and(|a| a.written)
    }

    fn mark_written(&mut self) {
        if let Some(at) = &mut self.at {
            at.written = true;
        }
    }

    fn say(&self, revision: &ClusterRevision, step: RolloutStep, message: &str) {
        self.report.set_rollout(Some(self.rollout_report(
            revision.spec.number,
            step,
            "InProgress",
            message,
        )));
    }

    fn say_failed(&self, error: &RolloutError) {
        let Some(at) = &self.at else {
            return;
        };
        tracing::warn!(revision = at.revision, step = %at.step, error = %error, "the revision's step failed; trying again");
        self.report.set_rollout(Some(self.rollout_report(
            at.revision,
            at.step,
            "Failed",
            &error.to_string(),
        )));
    }

    fn rollout_report(
        &self,
        revision: i64,
        step: RolloutStep,
        state: &str,
        message: &str,
    ) -> RolloutReport {
        let since = self
            .at
            .as_ref()
            .filter(|a| a.revision == revision && a.step == step)
            .map_or_else(Timestamp::now, |a| a.since);
        RolloutReport {
            revision,
            step: step.to_string(),
            state: state.into(),
            message: Some(message.to_string()),
            since: Some(Time(since)),
        }
    }
}
