//! One reconcile of a WorkloadCluster, as a pipeline of steps, each in its own module with
//! its own error: [`dereference`] → [`validate`] → [`resolve`] → [`apply`] (namespace and
//! revision; [`build`] makes the objects) → [`install`] the agent, [`observe`] what CAPI made
//! of the objects in between. The pass ends in an [`Outcome`], a value from which
//! [`decide`] derives the status and the requeue. Every step before the namespace is created
//! only reads, so a cluster that fails validation creates nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use strata_shared::cluster::{ClusterPhase, WorkloadCluster};
use strata_shared::conditions::ConditionUpdate;
use strata_shared::contracts::capi_views::ClusterView;
use strata_shared::contracts::conditions::{
    CONTROL_PLANE_INITIALIZED, OBJECTS_APPLIED, REVISION_PUBLISHED,
};
use strata_shared::contracts::names::ClusterLocation;
use tracing::Instrument;

use super::apply::{self, ApplyError, Turn};
use super::build::{self, BuildError};
use super::context::Context;
use super::credentials::CredentialError;
use super::deletion::{self, DeletionError};
use super::dereference::{self, DereferenceError};
use super::finalizer::{self, FinalizerError};
use super::install::{self, InstallError};
use super::link;
use super::observe::{self, ObserveError};
use super::outcome::{Counts, Outcome, decide};
use super::resolve;
use super::site_registries::{self, SiteRegistriesError};
use super::status::{self, StatusError, StatusUpdate};
use super::validate::{self, ValidCluster};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Dereference(#[from] DereferenceError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    Finalizer(#[from] FinalizerError),
    #[error("keeping the link with the agent: {0}")]
    Link(#[from] CredentialError),
    #[error(transparent)]
    Deletion(#[from] DeletionError),
    #[error(transparent)]
    SiteRegistries(#[from] SiteRegistriesError),
}

impl ReconcileError {
    /// A short, stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Dereference(_) => "ReadFailed",
            ReconcileError::Build(_) => "BuildFailed",
            ReconcileError::Apply(e) => e.reason(),
            ReconcileError::Observe(e) => e.reason(),
            ReconcileError::Install(e) => e.reason(),
            ReconcileError::Status(_) => "StatusFailed",
            ReconcileError::Finalizer(_) => "FinalizerFailed",
            ReconcileError::Link(_) => "CredentialFailed",
            ReconcileError::Deletion(e) => e.reason(),
            ReconcileError::SiteRegistries(e) => e.reason(),
        }
    }
}

/// The entry point the runtime calls.
pub async fn reconcile(
    cluster: Arc<WorkloadCluster>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let key = format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    );
    let span = tracing::info_span!("reconcile", cluster = %key);
    let started = Instant::now();
    let deleting = cluster.meta().deletion_timestamp.is_some();
    let location = ClusterLocation::of(
        &cluster.namespace().unwrap_or_default(),
        &cluster.name_any(),
    );
    span.in_scope(|| tracing::debug!("pass"));
    let result = reconcile_inner(cluster, &ctx)
        .instrument(span.clone())
        .await;
    ctx.metrics.reconciled(started.elapsed(), result.is_ok());
    if result.is_err() || deleting {
        // Whatever a failed pass left half-done is written again by the next one.
        ctx.recent.forget(&location.objects_namespace);
    }
    if let Err(e) = &result {
        ctx.metrics.failed(e.reason());
        span.in_scope(|| tracing::warn!(error = %e, reason = e.reason(), "reconcile failed"));
    }
    result
}

async fn reconcile_inner(
    cluster: Arc<WorkloadCluster>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let key = format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    );
    if cluster.meta().deletion_timestamp.is_some() {
        if !finalizer::has(&cluster) {
            return Ok(Action::await_change());
        }
        return match deletion::cleanup(&cluster, ctx).await? {
            deletion::Cleanup::Done => {
                finalizer::remove(&ctx.writer, &cluster).await?;
                ctx.metrics.set_phase(&key, None);
                tracing::info!("cluster deleted");
                Ok(Action::await_change())
            }
            deletion::Cleanup::Wait(after) => {
                ctx.metrics.set_phase(&key, Some(ClusterPhase::Deleting));
                Ok(Action::requeue(after))
            }
        };
    }
    if !finalizer::has(&cluster) {
        finalizer::add(&ctx.writer, &cluster).await?;
    }
    let (action, phase) = pass(&cluster, ctx).await?;
    ctx.metrics.set_phase(&key, Some(phase));
    Ok(action)
}

/// How often a cluster whose change a rollout holds back is looked at.
const ROLLOUT_RECHECK: Duration = Duration::from_secs(5);

/// How often a cluster with an agent is looked at, so that its silence shows in time.
fn link_recheck(ctx: &Context) -> Duration {
    (ctx.settings.agent_silence / 2)
        .max(Duration::from_secs(5))
        .min(ctx.settings.resync)
}

/// One pass over a cluster that is not being deleted: the link with its agent (kept
/// whatever else is wrong), the steps, then the status their outcome says.
async fn pass(
    cluster: &WorkloadCluster,
    ctx: &Context,
) -> Result<(Action, ClusterPhase), ReconcileError> {
    let location = ClusterLocation::of(
        &cluster.namespace().unwrap_or_default(),
        &cluster.name_any(),
    );
    let previous = cluster.status.clone().unwrap_or_default();
    let mut update = StatusUpdate {
        namespace: Some(location.objects_namespace.clone()),
        revision: previous.revision,
        agent_image: previous.agent_image.clone(),
        ..StatusUpdate::default()
    };
    let agent_installed = link::keep(ctx, cluster, &location, &mut update).await?;
    let outcome = steps(ctx, cluster, location, agent_installed, &mut update).await;
    match outcome {
        Ok(outcome) => conclude(ctx, cluster, update, &outcome).await,
        Err(e) => {
            // An agent that could not be installed says so before the error is returned.
            if let ReconcileError::Install(install) = &e
                && let Some(message) = install.public_message()
            {
                conclude(
                    ctx,
                    cluster,
                    update,
                    &Outcome::AgentInstallFailed { message },
                )
                .await?;
            }
            Err(e)
        }
    }
}

/// The steps, up to the outcome; the conditions of the steps passed are added to `update`.
async fn steps(
    ctx: &Context,
    cluster: &WorkloadCluster,
    location: ClusterLocation,
    agent_installed: bool,
    update: &mut StatusUpdate<'_>,
) -> Result<Outcome, ReconcileError> {
    if let Err(invalid) = validate::spec(cluster) {
        return Ok(Outcome::Invalid(invalid));
    }
    let inputs = dereference::load(
        &ctx.client,
        cluster,
        &location.objects_namespace,
        &ctx.settings.system_namespace,
        &ctx.profiles,
        &ctx.registries,
    )
    .await?;
    let valid = match validate::cluster(cluster, location, &inputs) {
        Ok(valid) => valid,
        Err(invalid) => return Ok(Outcome::Invalid(invalid)),
    };
    let resolved = match resolve::stack(ctx, &valid, &inputs).await {
        Ok(resolved) => resolved,
        Err(invalid) => return Ok(Outcome::Invalid(invalid)),
    };
    update.condition(resolved.valid_condition());
    let publication =
        apply::publish(ctx, &valid, &resolved, inputs.objects_namespace.as_ref()).await?;
    update.revision = Some(publication.revision);
    update.pending = publication.pending.clone();
    update.condition(publication.condition.clone());
    // From here on, the revision in force: after a refused upgrade, the running one.
    let desired = &publication.desired;
    // The identities stay in the management cluster whoever holds the cluster's objects:
    // a changed account reaches a pivoted cluster through them (its agent copies it).
    let identities = build::identities(&valid, desired, &ctx.settings)?;
    let identity_secret = match identities {
        Some(identities) => {
            let objects_namespace = &publication.objects_namespace;
            apply::identities(ctx, &valid, objects_namespace, identities.objects).await?;
            Some(identities.secret)
        }
        None => None,
    };
    // Like the identities, kept whoever holds the objects: the agent installs the layers
    // from these registries and takes a changed one from here.
    let site = site_registries::site_registries(ctx, &valid, &inputs.registries, desired).await?;
    site_registries::publish(ctx, &valid, &publication.objects_namespace, &site).await?;
    let (current, ledger) =
        match apply::turn(ctx, &valid, &publication.objects_namespace, agent_installed).await? {
            Turn::Controller(current, ledger) => (*current, ledger),
            Turn::Ended(outcome) => return Ok(outcome),
        };
    // Never re-create objects that were applied once and are gone (a move under way
    // deletes them; so may an operator).
    let capi = observe::capi_cluster(&ctx.writer, &valid.location).await?;
    if ledger.objects_applied && capi.is_none() {
        let message = format!(
            "CAPI Cluster {}/{} was applied once and is gone; it is not created again",
            valid.location.objects_namespace,
            valid.name()
        );
        return Ok(Outcome::ObjectsGone { message });
    }
    // A reclaimed cluster's objects are its site's, restored: its machines, replicas and
    // scale are what the site and CAPI made of them, so nothing is applied over them. The
    // revision reaches them through the next agent, once it holds them.
    if ledger.objects_are_reclaimed() {
        update.condition(ConditionUpdate::ok(
            OBJECTS_APPLIED,
            "Reclaimed",
            format!(
                "the objects in namespace {} were restored from the site's export and reclaimed (round {}); they are kept as they are until the next agent moves them",
                valid.location.objects_namespace, ledger.round
            ),
        ));
        return from_control_plane(
            ctx,
            &valid,
            &current,
            capi.as_ref(),
            identity_secret,
            update,
        )
        .await;
    }
    let objects = build::capi_objects(&valid, publication.revision, desired)?;
    let applied = apply::capi_objects(ctx, &valid, objects, capi.as_ref()).await?;
    let current = apply::record_applied(ctx, &valid, current, &ledger).await?;
    update.condition(ConditionUpdate::ok(
        OBJECTS_APPLIED,
        "Applied",
        format!(
            "{applied} objects of revision {} applied in namespace {}",
            publication.revision, valid.location.objects_namespace
        ),
    ));
    // Read before the apply, which writes no status: what CAPI made of the objects is the
    // same, and a second read would cost every pass a request.
    from_control_plane(
        ctx,
        &valid,
        &current,
        capi.as_ref(),
        identity_secret,
        update,
    )
    .await
}

/// Once the objects are applied: what CAPI made of them, and the agent once the first
/// control-plane node is up.
async fn from_control_plane(
    ctx: &Context,
    valid: &ValidCluster<'_>,
    objects_namespace: &k8s_openapi::api::core::v1::Namespace,
    capi: Option<&kube::api::DynamicObject>,
    identity_secret: Option<strata_shared::management_access::SecretKey>,
    update: &mut StatusUpdate<'_>,
) -> Result<Outcome, ReconcileError> {
    let capi = capi.map(ClusterView::of).unwrap_or_default();
    let (control_plane, workers) = observe::node_counts(valid.cluster, &capi);
    update.control_plane = Some(control_plane);
    update.workers = Some(workers);
    if !capi.control_plane_initialized() {
        return Ok(Outcome::WaitingForControlPlane);
    }
    update.condition(ConditionUpdate::ok(
        CONTROL_PLANE_INITIALIZED,
        "Initialized",
        "the first control-plane node is up",
    ));
    let outcome = install::agent(
        ctx,
        valid.cluster,
        &valid.location,
        objects_namespace,
        identity_secret,
    )
    .await?;
    Ok(outcome)
}

/// Writes the status `outcome` decides (unless the pass lost a race) and says when to look
/// again.
async fn conclude(
    ctx: &Context,
    cluster: &WorkloadCluster,
    mut update: StatusUpdate<'_>,
    outcome: &Outcome,
) -> Result<(Action, ClusterPhase), ReconcileError> {
    let mut decision = decide(outcome, link_recheck(ctx));
    // A change a profile's rollout holds back is looked at again soon: a place may free
    // up in another cluster, which wakes nothing here.
    if update
        .conditions
        .iter()
        .any(|c| c.type_ == REVISION_PUBLISHED && c.reason.starts_with("Rollout"))
    {
        decision.requeue = decision.requeue.min(ROLLOUT_RECHECK);
    }
    if let Outcome::Invalid(invalid) = outcome {
        tracing::info!(reason = invalid.reason.as_str(), message = %invalid.message, "cluster is not valid; nothing is created");
    }
    if let Outcome::AgentStarting { image } | Outcome::AgentRunning { image } = outcome {
        update.agent_image = Some(image.clone());
    }
    if decision.write_status {
        update.phase = Some(decision.phase);
        if decision.counts == Counts::LeftToAgent {
            update.control_plane = None;
            update.workers = None;
        }
        for condition in decision.conditions {
            update.condition(condition);
        }
        status::write(ctx, cluster, update).await?;
    }
    Ok((Action::requeue(decision.requeue), decision.phase))
}
