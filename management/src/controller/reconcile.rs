//! One reconcile of a WorkloadCluster: dereference → validate → resolve → publish the
//! revision → build → apply → install the agent → update status. Every step before the
//! namespace is created only reads, so a cluster that fails validation creates nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::DynamicObject;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use strata_shared::agent_install::controller_binding;
use strata_shared::capi::{
    BuildError, BuildInput, IdentityInput, control_plane_objects, identity_objects,
    identity_secret_name,
};
use strata_shared::cloud_account::{CloudAccount, copy_refusal};
use strata_shared::cluster::ledger::{grant_move, objects_applied};
use strata_shared::cluster::{
    ClusterCloud, ClusterPhase, ReplicaCounts, WorkloadCluster, WorkloadClusterStatus,
};
use strata_shared::conditions::{ConditionUpdate, find};
use strata_shared::contracts::capi::CLUSTER;
use strata_shared::contracts::capi_views::ClusterView;
use strata_shared::contracts::conditions::{
    AGENT_INSTALLED, CONTROL_PLANE_INITIALIZED, OBJECTS_APPLIED, PIVOTED, READY,
    REASON_MOVE_REQUESTED, REASON_MOVED, REVISION_PUBLISHED, VALID,
};
use strata_shared::contracts::labels::{WORKLOAD_CLUSTER_LABEL, WORKLOAD_CLUSTER_NAMESPACE_LABEL};
use strata_shared::contracts::names::ClusterLocation;
use strata_shared::finding::Findings;
use strata_shared::kube_writer::{Operation, WriteError};
use strata_shared::management_access::SecretKey;
use strata_shared::profile::ClusterProfile;
use strata_shared::profile::compose::{compose, validate_cluster_spec};
use strata_shared::revision::{desired_state, validate_account, validate_placement};
use tracing::Instrument;

use super::agent_installer::{self, AgentInstallError};
use super::context::Context;
use super::credentials::{self, CredentialError};
use super::deletion;
use super::dereference::{self, DereferenceError};
use super::finalizer::{self, FinalizerError};
use super::ledger::{self, LedgerError, Recorded};
use super::link;
use super::namespaces::{ensure_namespace, ensure_plain_namespace, namespace_belongs_to};
use super::revisions::{self, RevisionError};
use super::status::{self, StatusError, StatusUpdate};
use super::workload_access::{self, UNSAFE_KUBECONFIG, Workload, WorkloadAccessError};

/// How often a cluster waiting for its kubeconfig or its agent is looked at again.
const WAITING: Duration = Duration::from_secs(5);
/// How often a cluster waiting for CAPI is looked at again, besides the changes of its
/// CAPI Cluster that wake it: provisioning takes minutes, and hundreds of clusters polled
/// often would crowd out the ones with work to do.
const WAITING_FOR_CAPI: Duration = Duration::from_secs(60);
/// How often an invalid cluster is looked at again: what it names may appear.
const INVALID_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Dereference(#[from] DereferenceError),
    #[error(transparent)]
    Kube(#[from] WriteError),
    #[error(transparent)]
    Revision(#[from] RevisionError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    Agent(#[from] AgentInstallError),
    #[error(transparent)]
    Finalizer(#[from] FinalizerError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    WorkloadAccess(#[from] WorkloadAccessError),
    #[error("cannot build the CAPI objects of cluster {cluster}: {source}")]
    Build {
        cluster: String,
        #[source]
        source: BuildError,
    },
}

impl ReconcileError {
    /// A short, stable label for metrics and condition reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Dereference(_) => "ReadFailed",
            ReconcileError::Kube(e) if e.is_timeout() => "Timeout",
            ReconcileError::Kube(e) if e.operation().reads() => "ReadFailed",
            ReconcileError::Kube(e) if e.operation() == Operation::Delete => "DeleteFailed",
            ReconcileError::Kube(_) => "ApplyFailed",
            ReconcileError::Revision(_) => "RevisionFailed",
            ReconcileError::Status(_) => "StatusFailed",
            ReconcileError::Agent(_) => "AgentInstallFailed",
            ReconcileError::Finalizer(_) => "FinalizerFailed",
            ReconcileError::Build { .. } => "BuildFailed",
            ReconcileError::Ledger(_) => "LedgerFailed",
            ReconcileError::Credential(_) => "CredentialFailed",
            ReconcileError::WorkloadAccess(_) => "ReadFailed",
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
    let result = reconcile_inner(cluster, &ctx)
        .instrument(span.clone())
        .await;
    ctx.metrics.reconciled(started.elapsed(), result.is_ok());
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
    let (action, phase) = converge(&cluster, ctx).await?;
    ctx.metrics.set_phase(&key, Some(phase));
    Ok(action)
}

/// The reason an invalid cluster's Valid condition gives, from what failed.
pub fn composition_reason(findings: &Findings) -> &'static str {
    let errors: Vec<_> = findings.errors().collect();
    let any =
        |test: &dyn Fn(&str, &str) -> bool| errors.iter().any(|f| test(&f.subject, &f.message));
    if any(&|s, m| {
        s.starts_with("spec.profiles[")
            && (m.contains("was not found") || m.contains("has no version"))
    }) {
        "ProfileNotFound"
    } else if any(&|_, m| m.contains("is for cloud")) {
        "CloudMismatch"
    } else if any(&|_, m| {
        m.contains("could not be fetched")
            || m.contains("no pack named")
            || m.contains("has no version")
    }) {
        "PackUnresolved"
    } else if any(&|s, _| s.contains("constraints")) {
        "ConstraintsNotMet"
    } else {
        "InvalidProfile"
    }
}

/// Up to five errors, `subject: message`, for a condition message.
pub fn summarize(findings: &Findings) -> String {
    let errors: Vec<String> = findings.errors().map(|f| f.to_string()).collect();
    let shown = errors
        .iter()
        .take(5)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > 5 {
        format!("{shown} (and {} more)", errors.len() - 5)
    } else {
        shown
    }
}

async fn invalid(
    ctx: &Context,
    cluster: &WorkloadCluster,
    mut update: StatusUpdate<'_>,
    reason: &'static str,
    message: String,
) -> Result<(Action, ClusterPhase), ReconcileError> {
    tracing::info!(reason, %message, "cluster is not valid; nothing is created");
    update.phase = Some(ClusterPhase::Invalid);
    update.condition(ConditionUpdate::not(VALID, reason, message));
    update.condition(ConditionUpdate::not(
        READY,
        reason,
        "the cluster is not valid; see the Valid condition",
    ));
    status::write(&ctx.writer, cluster, update).await?;
    Ok((Action::requeue(INVALID_RETRY), ClusterPhase::Invalid))
}

/// Whether the agent asks for its move (its own report: a request, not a decision).
fn agent_requests_move(status: &WorkloadClusterStatus) -> bool {
    find(&status.conditions, PIVOTED).is_some_and(|c| c.reason == REASON_MOVE_REQUESTED)
}

/// The status of a cluster whose agent holds its CAPI objects: the controller keeps its
/// revision and the link, and leaves the objects, their node counts and their phase of the
/// move to the agent (its report is shown, not trusted).
async fn handed_over(
    ctx: &Context,
    cluster: &WorkloadCluster,
    mut update: StatusUpdate<'_>,
) -> Result<(Action, ClusterPhase), ReconcileError> {
    let conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let moved = find(&conditions, PIVOTED).is_some_and(|c| c.reason == REASON_MOVED);
    let phase = if moved {
        ClusterPhase::Pivoted
    } else {
        ClusterPhase::Pivoting
    };
    update.phase = Some(phase);
    update.control_plane = None;
    update.workers = None;
    update.condition(if moved {
        ConditionUpdate::ok(
            READY,
            "Pivoted",
            "the cluster's CAPI objects live in the workload cluster, whose agent manages it",
        )
    } else {
        ConditionUpdate::not(
            READY,
            "Pivoting",
            "the agent was granted its move of the CAPI objects into the workload cluster",
        )
    });
    status::write(&ctx.writer, cluster, update).await?;
    Ok((Action::requeue(link_recheck(ctx)), phase))
}

/// How often a cluster with an agent is looked at, so that its silence shows in time.
fn link_recheck(ctx: &Context) -> Duration {
    (ctx.settings.agent_silence / 2)
        .max(Duration::from_secs(5))
        .min(ctx.settings.resync)
}

async fn converge(
    cluster: &WorkloadCluster,
    ctx: &Context,
) -> Result<(Action, ClusterPhase), ReconcileError> {
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let location = ClusterLocation::of(&namespace, &name);
    let previous = cluster.status.clone().unwrap_or_default();
    let mut update = StatusUpdate {
        namespace: Some(location.objects_namespace.clone()),
        revision: previous.revision,
        agent_image: previous.agent_image.clone(),
        ..StatusUpdate::default()
    };
    let agent_installed = link::keep(ctx, cluster, &location, &mut update).await?;

    // Validate what needs nothing else.
    let mut findings = validate_cluster_spec(cluster);
    findings.extend(validate_placement(cluster));
    if findings.has_errors() {
        return invalid(ctx, cluster, update, "InvalidSpec", summarize(&findings)).await;
    }

    // Dereference.
    let inputs = dereference::load(
        &ctx.client,
        cluster,
        &location.objects_namespace,
        &ctx.settings.system_namespace,
        &ctx.profiles,
        &ctx.registries,
    )
    .await?;
    if let Some(existing) = &inputs.objects_namespace
        && !namespace_belongs_to(existing, &namespace, &name)
    {
        let message = format!(
            "namespace {} already exists and is not this cluster's (labels {WORKLOAD_CLUSTER_NAMESPACE_LABEL} and {WORKLOAD_CLUSTER_LABEL} do not name {namespace}/{name}); rename the cluster or remove the namespace",
            location.objects_namespace
        );
        return invalid(ctx, cluster, update, "NamespaceConflict", message).await;
    }
    let account: Option<&CloudAccount> = match (&cluster.spec.cloud_account_ref, &inputs.account) {
        (Some(reference), None) => {
            let message = format!(
                "spec.cloudAccountRef: CloudAccount {namespace}/{} does not exist",
                reference.name
            );
            return invalid(ctx, cluster, update, "CloudAccountNotFound", message).await;
        }
        (Some(_), Some(account)) => {
            let keys: Option<Vec<String>> = inputs
                .account_secret
                .as_ref()
                .map(|s| s.keys().cloned().collect());
            let findings = validate_account(cluster, account, keys.as_deref());
            if findings.has_errors() {
                return invalid(
                    ctx,
                    cluster,
                    update,
                    "CloudAccountInvalid",
                    summarize(&findings),
                )
                .await;
            }
            if let Some(refusal) = copy_refusal(cluster.spec.cloud_type, account) {
                return invalid(ctx, cluster, update, "CloudAccountNotCopyable", refusal).await;
            }
            Some(account)
        }
        (None, _) => None,
    };

    // Resolve the packs and compose.
    let selected: Vec<&ClusterProfile> = cluster
        .spec
        .profiles
        .iter()
        .filter_map(|r| {
            inputs.profiles.iter().find(|p| {
                p.metadata.name.as_deref() == Some(r.name.as_str()) && p.spec.version == r.version
            })
        })
        .collect();
    let packs = ctx
        .packs
        .resolve(&ctx.client, &selected, &inputs.registries)
        .await;
    let (stack, findings) = compose(cluster, &inputs.profiles, &packs);
    let Some(stack) = stack else {
        let reason = composition_reason(&findings);
        return invalid(ctx, cluster, update, reason, summarize(&findings)).await;
    };
    let desired = match desired_state(cluster, &stack, account) {
        Ok(desired) => desired,
        Err(findings) => {
            return invalid(ctx, cluster, update, "InvalidStack", summarize(&findings)).await;
        }
    };
    let warnings: Vec<String> = findings.warnings().map(|w| w.to_string()).collect();
    update.condition(ConditionUpdate::ok(
        VALID,
        "Valid",
        if warnings.is_empty() {
            format!(
                "{} layers from {}",
                desired.layers.len(),
                desired.profiles.join(", ")
            )
        } else {
            format!("valid, with warnings: {}", warnings.join("; "))
        },
    ));

    // Publish the revision.
    let objects_namespace =
        ensure_namespace(&ctx.writer, &namespace, &name, &location.objects_namespace).await?;
    bind_controller(ctx, &location.objects_namespace).await?;
    let published =
        revisions::publish(&ctx.writer, &location.objects_namespace, &name, &desired).await?;
    if published.new {
        tracing::info!(revision = published.number, "published a new revision");
    }
    update.revision = Some(published.number);
    update.condition(ConditionUpdate::ok(
        REVISION_PUBLISHED,
        "Published",
        format!(
            "revision {} (Kubernetes {}, {} layers)",
            published.number,
            desired.kubernetes_version,
            desired.layers.len()
        ),
    ));

    // The identities stay in the management cluster whoever holds the cluster's objects:
    // a changed account reaches a pivoted cluster through them (its agent copies it).
    let mut identity_secret = None;
    if let (Some(settings), true) = (
        &desired.account,
        cluster.spec.cloud_type != ClusterCloud::Sim,
    ) {
        let empty = BTreeMap::new();
        let provider_namespace = ctx
            .settings
            .provider_namespace(cluster.spec.cloud_type)
            .unwrap_or(location.objects_namespace.as_str());
        let identities = identity_objects(&IdentityInput {
            namespace: &location.objects_namespace,
            account: settings,
            cloud: cluster.spec.cloud_type,
            secret_data: inputs.account_secret.as_ref().unwrap_or(&empty),
            provider_namespace,
        })
        .map_err(|source| ReconcileError::Build {
            cluster: format!("{namespace}/{name}"),
            source,
        })?;
        identity_secret = Some(SecretKey {
            namespace: provider_namespace.to_string(),
            name: identity_secret_name(&location.objects_namespace),
        });
        apply_identities(ctx, &objects_namespace, identities).await?;
    }

    // Who acts on the CAPI objects is the ledger's to say.
    let ledger = ledger::of(Some(&objects_namespace));
    if ledger.agent_holds_the_objects() {
        return handed_over(ctx, cluster, update).await;
    }
    if ledger.may_grant_move() && agent_installed && agent_requests_move(&previous) {
        return match ledger::record(&ctx.writer, &objects_namespace, &[grant_move()]).await? {
            Recorded::Done(_) => {
                tracing::info!("granted the agent its move of the CAPI objects");
                handed_over(ctx, cluster, update).await
            }
            Recorded::Stale => Ok((
                Action::requeue(Duration::from_secs(1)),
                ClusterPhase::Pending,
            )),
        };
    }
    // Read again right before touching the objects: a grant recorded meanwhile (by another
    // replica) stops this one here.
    let Some(current) = ledger::read(&ctx.writer, &location.objects_namespace).await? else {
        return Ok((
            Action::requeue(Duration::from_secs(1)),
            ClusterPhase::Pending,
        ));
    };
    let ledger = ledger::of(Some(&current));
    if ledger.agent_holds_the_objects() {
        return handed_over(ctx, cluster, update).await;
    }

    // Build and apply, never re-creating objects that were applied once and are gone (a move
    // under way deletes them; so may an operator).
    let capi = read_capi_cluster(ctx, &location).await?;
    if ledger.objects_applied && capi.is_none() {
        update.phase = Some(ClusterPhase::Provisioning);
        let message = format!(
            "CAPI Cluster {}/{name} was applied once and is gone; it is not created again",
            location.objects_namespace
        );
        update.condition(ConditionUpdate::not(
            OBJECTS_APPLIED,
            "ObjectsGone",
            message.clone(),
        ));
        update.condition(ConditionUpdate::not(READY, "ObjectsGone", message));
        status::write(&ctx.writer, cluster, update).await?;
        return Ok((
            Action::requeue(WAITING_FOR_CAPI),
            ClusterPhase::Provisioning,
        ));
    }
    let input = BuildInput {
        cluster_name: &name,
        namespace: &location.objects_namespace,
        revision: published.number,
        desired: &desired,
    };
    let objects = control_plane_objects(&input).map_err(|source| ReconcileError::Build {
        cluster: format!("{namespace}/{name}"),
        source,
    })?;
    let applied = apply_objects(ctx, &namespace, objects).await?;
    let current = if ledger.objects_applied {
        current
    } else {
        match ledger::record(&ctx.writer, &current, &[objects_applied()]).await? {
            Recorded::Done(updated) => *updated,
            // Recorded on the next pass.
            Recorded::Stale => current,
        }
    };
    update.condition(ConditionUpdate::ok(
        OBJECTS_APPLIED,
        "Applied",
        format!(
            "{applied} objects of revision {} applied in namespace {}",
            published.number, location.objects_namespace
        ),
    ));

    // What CAPI made of them.
    let capi = read_capi_cluster(ctx, &location)
        .await?
        .map(|c| ClusterView::of(&c))
        .unwrap_or_default();
    let pools = &cluster.spec.node_pools;
    update.control_plane = Some(ReplicaCounts::new(
        i64::from(pools.control_plane.count),
        capi.control_plane_ready,
    ));
    update.workers = Some(ReplicaCounts::new(
        pools.workers.iter().map(|w| i64::from(w.count)).sum(),
        capi.workers_ready,
    ));
    if !capi.control_plane_initialized() {
        update.phase = Some(ClusterPhase::Provisioning);
        let message = "CAPI is provisioning the first control-plane machine";
        update.condition(ConditionUpdate::not(
            CONTROL_PLANE_INITIALIZED,
            "WaitingForControlPlane",
            message,
        ));
        update.condition(ConditionUpdate::not(
            AGENT_INSTALLED,
            "WaitingForControlPlane",
            message,
        ));
        update.condition(ConditionUpdate::not(READY, "Provisioning", message));
        status::write(&ctx.writer, cluster, update).await?;
        return Ok((
            Action::requeue(WAITING_FOR_CAPI),
            ClusterPhase::Provisioning,
        ));
    }
    update.condition(ConditionUpdate::ok(
        CONTROL_PLANE_INITIALIZED,
        "Initialized",
        "the first control-plane node is up",
    ));
    install_agent(ctx, cluster, &location, &current, identity_secret, update).await
}

fn waiting_for_workload(update: &mut StatusUpdate<'_>, reason: &'static str, message: String) {
    update.phase = Some(ClusterPhase::Provisioning);
    update.condition(ConditionUpdate::not(
        AGENT_INSTALLED,
        reason,
        message.clone(),
    ));
    update.condition(ConditionUpdate::not(READY, "Provisioning", message));
}

/// Installs the agent into the workload cluster, once CAPI's kubeconfig is there and is one
/// Strata will use.
async fn install_agent(
    ctx: &Context,
    cluster: &WorkloadCluster,
    location: &ClusterLocation,
    objects_namespace: &Namespace,
    identity_secret: Option<SecretKey>,
    mut update: StatusUpdate<'_>,
) -> Result<(Action, ClusterPhase), ReconcileError> {
    let workload = match workload_access::connect(&ctx.writer, objects_namespace, location).await? {
        Workload::Ready(client) => client,
        Workload::Missing => {
            let message = format!(
                "waiting for CAPI to write Secret {}/{}-kubeconfig",
                location.objects_namespace, location.cluster
            );
            waiting_for_workload(&mut update, "WaitingForKubeconfig", message);
            status::write(&ctx.writer, cluster, update).await?;
            return Ok((Action::requeue(WAITING), ClusterPhase::Provisioning));
        }
        Workload::Retry => {
            return Ok((
                Action::requeue(Duration::from_secs(1)),
                ClusterPhase::Provisioning,
            ));
        }
        Workload::Unsafe => {
            let message = format!(
                "Secret {}/{}-kubeconfig is not a kubeconfig Strata uses (only a server, CA data and inline credentials, with the server and CA it had when first used); see the controller's log",
                location.objects_namespace, location.cluster
            );
            waiting_for_workload(&mut update, UNSAFE_KUBECONFIG, message);
            status::write(&ctx.writer, cluster, update).await?;
            return Ok((Action::requeue(INVALID_RETRY), ClusterPhase::Provisioning));
        }
    };
    let provider_namespace = ctx.settings.provider_namespace(cluster.spec.cloud_type);
    let installed = async {
        let credential = credentials::ensure(&ctx.writer, &ctx.settings, location).await?;
        agent_installer::grant_rights(&ctx.writer, &ctx.settings, location, provider_namespace)
            .await?;
        let report = agent_installer::install(
            &workload,
            &ctx.settings,
            location,
            &credential,
            identity_secret,
            ctx.settings.providers.get(&cluster.spec.cloud_type),
        )
        .await?;
        Ok::<_, ReconcileError>(report)
    };
    let report = match installed.await {
        Ok(report) => report,
        Err(e) => {
            update.phase = Some(ClusterPhase::InstallingAgent);
            let message = match &e {
                ReconcileError::Agent(e) => e.public_message(),
                _ => {
                    "the agent's credential could not be written in the management cluster; see the controller's log"
                }
            };
            update.condition(ConditionUpdate::not(
                AGENT_INSTALLED,
                "AgentInstallFailed",
                message,
            ));
            update.condition(ConditionUpdate::not(
                READY,
                "InstallingAgent",
                "the agent is not installed yet",
            ));
            status::write(&ctx.writer, cluster, update).await?;
            return Err(e);
        }
    };
    update.agent_image = Some(report.image.clone());
    if !report.available {
        update.phase = Some(ClusterPhase::InstallingAgent);
        let message = format!(
            "the agent Deployment ({}) has no available replica yet",
            report.image
        );
        update.condition(ConditionUpdate::not(
            AGENT_INSTALLED,
            "AgentStarting",
            message.clone(),
        ));
        update.condition(ConditionUpdate::not(READY, "InstallingAgent", message));
        status::write(&ctx.writer, cluster, update).await?;
        return Ok((Action::requeue(WAITING), ClusterPhase::InstallingAgent));
    }
    update.phase = Some(ClusterPhase::AgentInstalled);
    update.condition(ConditionUpdate::ok(
        AGENT_INSTALLED,
        "Running",
        format!("the agent ({}) runs in the workload cluster", report.image),
    ));
    update.condition(ConditionUpdate::ok(
        READY,
        "AgentInstalled",
        "the agent takes the cluster from here",
    ));
    status::write(&ctx.writer, cluster, update).await?;
    Ok((
        Action::requeue(link_recheck(ctx)),
        ClusterPhase::AgentInstalled,
    ))
}

/// The controller's own writes in a namespace it manages (identity Secrets): the static
/// ClusterRole, bound there for its own account.
pub async fn bind_controller(ctx: &Context, namespace: &str) -> Result<(), ReconcileError> {
    let binding = controller_binding(
        namespace,
        &ctx.settings.system_namespace,
        &ctx.settings.controller_account,
    );
    ctx.writer.apply(&binding).await?;
    Ok(())
}

async fn read_capi_cluster(
    ctx: &Context,
    location: &ClusterLocation,
) -> Result<Option<DynamicObject>, ReconcileError> {
    let clusters = ctx
        .writer
        .dynamic(&CLUSTER.api_resource(), Some(&location.objects_namespace));
    Ok(clusters.get(&location.cluster).await?)
}

/// Applies the identities, owned by the objects namespace (two of them are cluster-scoped
/// and one lives in a provider's namespace, where the controller binds its writes first).
/// A just-made binding takes the authorizer a moment to see: a refused write is tried again
/// a few times.
async fn apply_identities(
    ctx: &Context,
    objects_namespace: &Namespace,
    identities: Vec<Value>,
) -> Result<(), ReconcileError> {
    let namespace_owner = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "name": objects_namespace.name_any(),
        "uid": objects_namespace.uid().unwrap_or_default(),
    });
    for mut object in identities {
        if let Some(ns) = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            && ns != objects_namespace.name_any()
        {
            ensure_plain_namespace(&ctx.writer, ns).await?;
            bind_controller(ctx, ns).await?;
        }
        object["metadata"]["ownerReferences"] = json!([namespace_owner]);
        let write = || ctx.writer.apply_json(&object);
        write
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_times(4),
            )
            .when(|e: &WriteError| e.is_forbidden())
            .await?;
    }
    Ok(())
}

/// Applies the cluster's objects: the `Cluster` first, then everything else owned by it.
/// Returns how many were applied.
async fn apply_objects(
    ctx: &Context,
    cluster_namespace: &str,
    objects: Vec<Value>,
) -> Result<usize, ReconcileError> {
    let mut count = 0;
    let (clusters, rest): (Vec<Value>, Vec<Value>) = objects
        .into_iter()
        .partition(|o| o.get("kind").and_then(Value::as_str) == Some(CLUSTER.kind));
    let mut owner = None;
    for mut cluster in clusters {
        // Lets the watch on CAPI Clusters find the WorkloadCluster again.
        cluster["metadata"]["labels"][WORKLOAD_CLUSTER_NAMESPACE_LABEL] = json!(cluster_namespace);
        let applied = ctx.writer.apply_json(&cluster).await?;
        owner = Some(json!({
            "apiVersion": cluster.get("apiVersion").cloned().unwrap_or(Value::Null),
            "kind": CLUSTER.kind,
            "name": applied.name_any(),
            "uid": applied.uid().unwrap_or_default(),
            "blockOwnerDeletion": true,
        }));
        count += 1;
    }
    for mut object in rest {
        if let Some(owner) = &owner {
            object["metadata"]["ownerReferences"] = json!([owner]);
        }
        ctx.writer.apply_json(&object).await?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_what_failed() {
        let mut f = Findings::new();
        f.error(
            "spec.profiles[0]",
            "profile \"x\" was not found; profiles given: none",
        );
        assert_eq!(composition_reason(&f), "ProfileNotFound");
        let mut f = Findings::new();
        f.error(
            "profile aws-infra: spec.layers[1]",
            "pack kubernetes:1.20.2 could not be fetched from registry r: refused",
        );
        assert_eq!(composition_reason(&f), "PackUnresolved");
        let mut f = Findings::new();
        f.error(
            "profile aws-infra: kubernetes: constraints.resources[0]",
            "needs at least 2 CPUs",
        );
        assert_eq!(composition_reason(&f), "ConstraintsNotMet");
        let mut f = Findings::new();
        f.error(
            "spec.profiles[0]",
            "profile aws-infra is for cloud \"aws\", but the cluster's cloudType is \"azure\"",
        );
        assert_eq!(composition_reason(&f), "CloudMismatch");
    }

    #[test]
    fn summaries_stop_at_five() {
        let mut f = Findings::new();
        for i in 0..7 {
            f.error(format!("s{i}"), "bad");
        }
        let text = summarize(&f);
        assert!(text.ends_with("(and 2 more)"), "{text}");
    }
}
