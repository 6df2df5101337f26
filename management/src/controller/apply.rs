//! Applying a valid, resolved cluster to the management cluster: its objects namespace and
//! revision, its cloud identities, then — when the ledger says the CAPI objects are still
//! the controller's to act on — the CAPI objects of the revision.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::DynamicObject;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use strata_shared::agent_install::controller_binding;
use strata_shared::cluster::PendingRevision;
use strata_shared::cluster::WorkloadClusterStatus;
use strata_shared::cluster::ledger::{ClusterLedger, grant_move, objects_applied};
use strata_shared::conditions::{ConditionUpdate, find};
use strata_shared::contracts::capi::CLUSTER;
use strata_shared::contracts::conditions::{
    PIVOTED, REASON_MOVE_REQUESTED, REASON_MOVED, REASON_UPGRADE_REFUSED, REVISION_PUBLISHED,
};
use strata_shared::contracts::labels::WORKLOAD_CLUSTER_NAMESPACE_LABEL;
use strata_shared::kube_writer::WriteError;
use strata_shared::revision::DesiredState;

use super::context::Context;
use super::failure_reason::write_reason;
use super::ledger::{self, LedgerError, Recorded};
use super::namespaces::{ensure_plain_namespace, namespace_object};
use super::outcome::Outcome;
use super::recent_writes::Written;
use super::resolve::Resolved;
use super::revisions::{self, Admission, Published, RevisionError, Wanted};
use super::validate::ValidCluster;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("applying cluster {cluster}: {source}")]
    Kube {
        cluster: String,
        #[source]
        source: WriteError,
    },
    #[error("applying cluster {cluster}: {source}")]
    Revision {
        cluster: String,
        #[source]
        source: RevisionError,
    },
    #[error("applying cluster {cluster}: {source}")]
    Ledger {
        cluster: String,
        #[source]
        source: LedgerError,
    },
}

impl ApplyError {
    /// A short, stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Kube { source, .. } => write_reason(source),
            ApplyError::Revision {
                source: RevisionError::NothingToRollBack(_),
                ..
            } => "NothingToRollBack",
            ApplyError::Revision { .. } => "RevisionFailed",
            ApplyError::Ledger { .. } => "LedgerFailed",
        }
    }

    fn kube(valid: &ValidCluster<'_>) -> impl FnOnce(WriteError) -> ApplyError {
        let cluster = valid.location.key();
        move |source| ApplyError::Kube { cluster, source }
    }

    fn ledger(valid: &ValidCluster<'_>) -> impl FnOnce(LedgerError) -> ApplyError {
        let cluster = valid.location.key();
        move |source| ApplyError::Ledger { cluster, source }
    }
}

/// The objects namespace and the revision in force in it.
pub struct Publication {
    pub objects_namespace: Namespace,
    pub revision: i64,
    /// It, while the site reports an earlier revision applied.
    pub pending: Option<PendingRevision>,
    /// The desired state of that revision: the resolved one, or the running one when the
    /// upgrade rules refused the change, so that the cluster stays where it is.
    pub desired: DesiredState,
    pub condition: ConditionUpdate<'static>,
}

/// Creates the objects namespace, binds the controller's writes there and publishes the
/// revision of `resolved`, unless the upgrade rules refuse it (RevisionPublished=False,
/// [`REASON_UPGRADE_REFUSED`], naming the rules).
/// `existing`: the objects namespace as this pass read it.
pub async fn publish(
    ctx: &Context,
    valid: &ValidCluster<'_>,
    resolved: &Resolved,
    existing: Option<&Namespace>,
) -> Result<Publication, ApplyError> {
    let location = &valid.location;
    let objects_namespace = objects_namespace(ctx, valid, existing).await?;
    bind_controller(
        ctx,
        &location.objects_namespace,
        &location.objects_namespace,
        objects_namespace.uid(),
    )
    .await
    .map_err(ApplyError::kube(valid))?;
    let published = revisions::publish(
        &ctx.writer,
        &location.objects_namespace,
        valid.name(),
        wanted(valid, resolved),
        valid
            .cluster
            .status
            .as_ref()
            .and_then(|s| s.applied_revision),
        Admission {
            gate: &ctx.fleet,
            cluster: valid.cluster,
            profiles: &resolved.profiles,
        },
    )
    .await
    .map_err(|source| ApplyError::Revision {
        cluster: location.key(),
        source,
    })?;
    if published.new {
        tracing::info!(revision = published.number, "published a new revision");
    }
    let condition = publication_condition(&published);
    if let Some(held) = &published.held {
        tracing::info!(revision = published.number, %held, "the profile's rollout holds the change back");
    }
    if let Some(refused) = &published.refused {
        tracing::info!(revision = published.number, %refused, "upgrade refused; the cluster stays on its revision");
    }
    Ok(Publication {
        objects_namespace,
        revision: published.number,
        pending: published.pending,
        desired: published.desired,
        condition,
    })
}

/// The objects namespace: as read, when this process wrote it lately and it is still that
/// one (see `recent_writes`); else applied.
async fn objects_namespace(
    ctx: &Context,
    valid: &ValidCluster<'_>,
    existing: Option<&Namespace>,
) -> Result<Namespace, ApplyError> {
    let scope = &valid.location.objects_namespace;
    let wanted = namespace_object(valid.namespace(), valid.name(), scope);
    let content = Written::of(&wanted);
    if let Some(existing) = existing
        && ctx
            .recent
            .done(scope, NAMESPACE, content.leaving(existing.uid()))
    {
        return Ok(existing.clone());
    }
    let applied = ctx
        .writer
        .apply(&wanted)
        .await
        .map_err(ApplyError::kube(valid))?;
    ctx.recent
        .wrote(scope, NAMESPACE, content.leaving(applied.uid()));
    Ok(applied)
}

/// The `recent_writes` entry of a cluster's objects namespace.
const NAMESPACE: &str = "namespace";

/// What the cluster asks to run: an earlier revision's content while `spec.rollbackTo` is
/// set, its resolved spec otherwise.
fn wanted<'a>(valid: &ValidCluster<'_>, resolved: &'a Resolved) -> Wanted<'a> {
    match valid.cluster.spec.rollback_to {
        Some(number) => Wanted::Rollback(number),
        None => Wanted::Spec {
            desired: &resolved.desired,
            constraints: &resolved.upgrade_constraints,
            sources: &resolved.sources,
        },
    }
}

/// RevisionPublished: the revision in force, and the rules a refused change breaks.
fn publication_condition(published: &Published) -> ConditionUpdate<'static> {
    let rollback = published
        .rollback_of
        .map(|n| format!(", the content of revision {n} (spec.rollbackTo)"))
        .unwrap_or_default();
    let in_force = format!(
        "revision {} (Kubernetes {}, {} layers{rollback})",
        published.number,
        published.desired.kubernetes_version,
        published.desired.layers.len()
    );
    if let Some(held) = &published.held {
        return ConditionUpdate::not(
            REVISION_PUBLISHED,
            held.reason(),
            format!("the change waits and {in_force} stays in force: {held}"),
        );
    }
    match &published.refused {
        None => ConditionUpdate::ok(REVISION_PUBLISHED, "Published", in_force),
        Some(refused) => ConditionUpdate::not(
            REVISION_PUBLISHED,
            REASON_UPGRADE_REFUSED,
            format!("the change is refused and {in_force} stays in force: {refused}"),
        ),
    }
}

/// The controller's own writes in a namespace it manages (identity Secrets): the static
/// ClusterRole, bound there for its own account.
/// `scope`: the objects namespace of the cluster the binding is for; `namespace_uid`: the
/// namespace's, when known, so that a namespace made again gets its binding again.
async fn bind_controller(
    ctx: &Context,
    scope: &str,
    namespace: &str,
    namespace_uid: Option<String>,
) -> Result<(), WriteError> {
    let binding = controller_binding(
        namespace,
        &ctx.settings.system_namespace,
        &ctx.settings.controller_account,
    );
    let what = format!("binding {namespace}");
    let written = Written::of(&binding).leaving(namespace_uid);
    if ctx.recent.done(scope, &what, written) {
        return Ok(());
    }
    ctx.writer.apply(&binding).await?;
    ctx.recent.wrote(scope, &what, written);
    Ok(())
}

/// Applies the identities, owned by the objects namespace (two of them are cluster-scoped
/// and one lives in a provider's namespace, where the controller binds its writes first).
/// A just-made binding takes the authorizer a moment to see: a refused write is tried again
/// a few times.
pub async fn identities(
    ctx: &Context,
    valid: &ValidCluster<'_>,
    objects_namespace: &Namespace,
    identities: Vec<Value>,
) -> Result<(), ApplyError> {
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
            ensure_plain_namespace(&ctx.writer, ns)
                .await
                .map_err(ApplyError::kube(valid))?;
            bind_controller(ctx, &valid.location.objects_namespace, ns, None)
                .await
                .map_err(ApplyError::kube(valid))?;
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
            .await
            .map_err(ApplyError::kube(valid))?;
    }
    Ok(())
}

/// Who acts on the CAPI objects, as the ledger says right before they are touched.
pub enum Turn {
    /// The controller's: the objects namespace as just read, and its ledger.
    Controller(Box<Namespace>, ClusterLedger),
    /// Not the controller's (the agent holds them, or the ledger moved under this pass).
    Ended(Outcome),
}

/// Whether the agent asks for its move (its own report: a request, not a decision).
fn agent_requests_move(status: &WorkloadClusterStatus) -> bool {
    find(&status.conditions, PIVOTED).is_some_and(|c| c.reason == REASON_MOVE_REQUESTED)
}

fn handed_over(status: &WorkloadClusterStatus) -> Outcome {
    let moved = find(&status.conditions, PIVOTED).is_some_and(|c| c.reason == REASON_MOVED);
    Outcome::HandedOver { moved }
}

/// Reads the ledger (granting the agent its move when it asks and may have it) and says
/// whose turn it is. `agent_installed`: whether the cluster has an agent.
pub async fn turn(
    ctx: &Context,
    valid: &ValidCluster<'_>,
    objects_namespace: &Namespace,
    agent_installed: bool,
) -> Result<Turn, ApplyError> {
    let status = valid.cluster.status.clone().unwrap_or_default();
    let ledger = ledger::of(Some(objects_namespace));
    if ledger.agent_holds_the_objects() {
        return Ok(Turn::Ended(handed_over(&status)));
    }
    if ledger.may_grant_move() && agent_installed && agent_requests_move(&status) {
        let recorded = ledger::record(&ctx.writer, objects_namespace, &[grant_move()])
            .await
            .map_err(ApplyError::ledger(valid))?;
        return Ok(Turn::Ended(match recorded {
            Recorded::Done(_) => {
                tracing::info!("granted the agent its move of the CAPI objects");
                handed_over(&status)
            }
            Recorded::Stale => Outcome::LedgerChanged,
        }));
    }
    // Read again right before touching the objects: a grant recorded meanwhile (by another
    // replica) stops this one here.
    let current = ledger::read(&ctx.writer, &valid.location.objects_namespace)
        .await
        .map_err(ApplyError::ledger(valid))?;
    let Some(current) = current else {
        return Ok(Turn::Ended(Outcome::LedgerChanged));
    };
    let ledger = ledger::of(Some(&current));
    if ledger.agent_holds_the_objects() {
        return Ok(Turn::Ended(handed_over(&status)));
    }
    Ok(Turn::Controller(Box::new(current), ledger))
}

/// Applies the cluster's objects: the `Cluster` first, then everything else owned by it,
/// unless this process applied the same objects lately and `capi` (the CAPI Cluster as
/// read before) is still the one it left (see `recent_writes`). Returns how many there are.
pub async fn capi_objects(
    ctx: &Context,
    valid: &ValidCluster<'_>,
    objects: Vec<Value>,
    capi: Option<&DynamicObject>,
) -> Result<usize, ApplyError> {
    let scope = &valid.location.objects_namespace;
    let content = Written::of(&objects);
    let found = capi.map(|c| (c.uid(), c.meta().generation));
    if let Some(found) = &found
        && ctx.recent.done(scope, CAPI_OBJECTS, content.leaving(found))
    {
        return Ok(objects.len());
    }
    let mut left = None;
    let mut count = 0;
    let (clusters, rest): (Vec<Value>, Vec<Value>) = objects
        .into_iter()
        .partition(|o| o.get("kind").and_then(Value::as_str) == Some(CLUSTER.kind));
    let mut owner = None;
    for mut cluster in clusters {
        // Lets the watch on CAPI Clusters find the WorkloadCluster again.
        cluster["metadata"]["labels"][WORKLOAD_CLUSTER_NAMESPACE_LABEL] = json!(valid.namespace());
        let applied = ctx
            .writer
            .apply_json(&cluster)
            .await
            .map_err(ApplyError::kube(valid))?;
        owner = Some(json!({
            "apiVersion": cluster.get("apiVersion").cloned().unwrap_or(Value::Null),
            "kind": CLUSTER.kind,
            "name": applied.name_any(),
            "uid": applied.uid().unwrap_or_default(),
            "blockOwnerDeletion": true,
        }));
        left = Some((applied.uid(), applied.meta().generation));
        count += 1;
    }
    for mut object in rest {
        if let Some(owner) = &owner {
            object["metadata"]["ownerReferences"] = json!([owner]);
        }
        ctx.writer
            .apply_json(&object)
            .await
            .map_err(ApplyError::kube(valid))?;
        count += 1;
    }
    if let Some(left) = left {
        ctx.recent.wrote(scope, CAPI_OBJECTS, content.leaving(left));
    }
    Ok(count)
}

/// The `recent_writes` entry of a cluster's CAPI objects.
const CAPI_OBJECTS: &str = "capi objects";

/// Records in the ledger that the CAPI objects were applied (once); returns the namespace
/// as it is after.
pub async fn record_applied(
    ctx: &Context,
    valid: &ValidCluster<'_>,
    current: Namespace,
    ledger: &ClusterLedger,
) -> Result<Namespace, ApplyError> {
    if ledger.objects_applied {
        return Ok(current);
    }
    let recorded = ledger::record(&ctx.writer, &current, &[objects_applied()])
        .await
        .map_err(ApplyError::ledger(valid))?;
    Ok(match recorded {
        Recorded::Done(updated) => *updated,
        // Recorded on the next pass.
        Recorded::Stale => current,
    })
}
