//! Deleting a WorkloadCluster, decided from the cluster's ledger (never from what its agent
//! reports):
//!
//! - no move was granted: the controller records that it deletes the cluster where it is
//!   (from then on no move may start), deletes the CAPI Cluster, waits for CAPI to tear the
//!   machines down, then removes the agent's account, credential and rights and the objects
//!   namespace;
//! - the move was granted: the CAPI objects are the agent's; the cluster waits
//!   (`AwaitingMoveBack`) until the agent says they are back *and* the CAPI Cluster is there
//!   to be seen in the objects namespace, records that, and goes on as above;
//! - `spec.deletionPolicy: Orphan`: the escape hatch for a cluster whose agent is gone. The
//!   agent's tokens are revoked, the management cluster's copies of its objects are removed
//!   without Cluster API acting on them, and every cloud resource is left as it is; a Warning
//!   event says so.
//!
//! Everything removed by name is removed only when it carries this cluster's ownership labels.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{DynamicObject, ListParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use strata_shared::agent_install::owned_by;
use strata_shared::cluster::ledger::{PivotLatch, decide_deletion, objects_returned};
use strata_shared::cluster::{ClusterPhase, DeletionPolicy, WorkloadCluster};
use strata_shared::conditions::{ConditionUpdate, find};
use strata_shared::contracts::capi::{CAPI_GROUPS, CLUSTER};
use strata_shared::contracts::conditions::{DELETING, PIVOTED, READY, REASON_MOVED_BACK};
use strata_shared::contracts::names::ClusterLocation;
use strata_shared::kube_writer::{BoundedApi, Deleted, KubeWriter, Operation, Target, WriteError};

use super::context::Context;
use super::credentials::{self, CredentialError};
use super::failure_reason::write_reason;
use super::ledger::{self, LedgerError, Recorded};
use super::namespaces::namespace_belongs_to;
use super::status::{self, StatusError, StatusUpdate};

/// How often a deletion in progress is looked at again.
const POLL: Duration = Duration::from_secs(2);
/// How often a pivoted cluster waiting for its agent is looked at again.
const AWAITING_AGENT: Duration = Duration::from_secs(30);

/// What stopped a deletion pass; each source names the object it was about.
#[derive(Debug, thiserror::Error)]
pub enum DeletionError {
    #[error("deleting the cluster: {0}")]
    Kube(#[from] WriteError),
    #[error("deleting the cluster: {0}")]
    Ledger(#[from] LedgerError),
    #[error("deleting the cluster: {0}")]
    Credential(#[from] CredentialError),
    #[error("deleting the cluster: {0}")]
    Status(#[from] StatusError),
}

impl DeletionError {
    /// A short, stable label for metrics (the same labels a reconcile's errors use).
    pub fn reason(&self) -> &'static str {
        match self {
            DeletionError::Kube(e) => write_reason(e),
            DeletionError::Ledger(_) => "LedgerFailed",
            DeletionError::Credential(_) => "CredentialFailed",
            DeletionError::Status(_) => "StatusFailed",
        }
    }
}

pub enum Cleanup {
    Done,
    Wait(Duration),
}

/// Deletes `name` unless it is gone or going; true while it still exists. `owned`: whether
/// the object found may be deleted by this cluster (false: left alone, and reported gone).
async fn delete_and_check<K>(
    objects: &BoundedApi<K>,
    name: &str,
    owned: impl Fn(&K) -> bool,
) -> Result<bool, DeletionError>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let object = objects.target(name);
    let Some(found) = objects.get(name).await? else {
        return Ok(false);
    };
    if !owned(&found) {
        tracing::warn!(
            %object,
            "not deleting: it does not carry this cluster's ownership labels"
        );
        return Ok(false);
    }
    if found.meta().deletion_timestamp.is_none() {
        tracing::info!(%object, "deleting");
        if objects.delete(name).await? == Deleted::AlreadyGone {
            return Ok(false);
        }
    }
    Ok(true)
}

fn capi_clusters(writer: &KubeWriter, namespace: &str) -> BoundedApi<DynamicObject> {
    writer.dynamic(&CLUSTER.api_resource(), Some(namespace))
}

/// Whether the CAPI Cluster is in the objects namespace (a CAPI-less management cluster has
/// none to have).
async fn capi_cluster_present(
    writer: &KubeWriter,
    location: &ClusterLocation,
) -> Result<bool, DeletionError> {
    match capi_clusters(writer, &location.objects_namespace)
        .get(&location.cluster)
        .await
    {
        Ok(found) => Ok(found.is_some()),
        Err(e) if e.is_gone() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Settles the move with the ledger before anything is deleted: a pivoted cluster must have
/// its objects back (the agent's word and the objects seen), and an unpivoted one gets the
/// decision that no move may start. `Some` is the wait while that is not so.
async fn settle_the_move(
    ctx: &Context,
    cluster: &WorkloadCluster,
    location: &ClusterLocation,
    objects_namespace: Option<&Namespace>,
    update: &mut StatusUpdate<'_>,
) -> Result<Option<Cleanup>, DeletionError> {
    let writer = &ctx.writer;
    let ledger = ledger::of(objects_namespace);
    let previous = cluster.status.clone().unwrap_or_default();
    match (ledger.pivot, objects_namespace) {
        (PivotLatch::Granted, Some(objects)) => {
            let says_back =
                find(&previous.conditions, PIVOTED).is_some_and(|c| c.reason == REASON_MOVED_BACK);
            // The agent's word alone is not enough: the objects must be here to be seen.
            if says_back && capi_cluster_present(writer, location).await? {
                if let Recorded::Stale =
                    ledger::record(writer, objects, &[objects_returned()]).await?
                {
                    return Ok(Some(Cleanup::Wait(POLL)));
                }
            } else {
                // The agent needs its link to move the objects back, however long that takes.
                super::link::keep(ctx, cluster, location, update).await?;
                update.condition(ConditionUpdate::not(
                    DELETING,
                    "AwaitingMoveBack",
                    "the cluster's CAPI objects live in the workload cluster; its agent must move them back to the management cluster before CAPI can delete the machines (spec.deletionPolicy: Orphan forgets the cluster instead, leaving its machines running)",
                ));
                status::write(ctx, cluster, std::mem::take(update)).await?;
                return Ok(Some(Cleanup::Wait(AWAITING_AGENT)));
            }
        }
        // A reclaimed cluster's objects are back in the management cluster: as before a
        // move, the deletion is decided so that no new move may start.
        (PivotLatch::NotGranted | PivotLatch::Reclaimed, Some(objects))
            if !ledger.deletion_decided =>
        {
            // From here on no move may start: the agent waits for a grant that cannot come.
            if let Recorded::Stale = ledger::record(writer, objects, &[decide_deletion()]).await? {
                return Ok(Some(Cleanup::Wait(POLL)));
            }
        }
        _ => {}
    }

    Ok(None)
}

pub async fn cleanup(cluster: &WorkloadCluster, ctx: &Context) -> Result<Cleanup, DeletionError> {
    let writer = &ctx.writer;
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let location = ClusterLocation::of(&namespace, &name);
    let previous = cluster.status.clone().unwrap_or_default();
    let mut update = StatusUpdate {
        phase: Some(ClusterPhase::Deleting),
        namespace: Some(location.objects_namespace.clone()),
        revision: previous.revision,
        agent_image: previous.agent_image.clone(),
        ..StatusUpdate::default()
    };
    update.condition(ConditionUpdate::not(
        READY,
        "Deleting",
        "the cluster is being deleted",
    ));
    let objects_namespace = ledger::read(writer, &location.objects_namespace)
        .await?
        .filter(|n| namespace_belongs_to(n, &namespace, &name));
    if cluster.spec.deletion_policy == DeletionPolicy::Orphan {
        return orphan(ctx, cluster, &location, objects_namespace.as_ref(), update).await;
    }

    if let Some(waiting) = settle_the_move(
        ctx,
        cluster,
        &location,
        objects_namespace.as_ref(),
        &mut update,
    )
    .await?
    {
        return Ok(waiting);
    }

    let capi = capi_clusters(writer, &location.objects_namespace);
    let capi_name = format!("CAPI Cluster {}/{name}", location.objects_namespace);
    // Without the CAPI CRDs there is no CAPI Cluster to wait for.
    let capi_exists = match delete_and_check(&capi, &name, |_| true).await {
        Err(DeletionError::Kube(e)) if e.is_gone() => false,
        other => other?,
    };
    if capi_exists {
        update.condition(ConditionUpdate::not(
            DELETING,
            "DeletingMachines",
            format!("waiting for CAPI to delete {capi_name} and its machines"),
        ));
        status::write(ctx, cluster, update).await?;
        return Ok(Cleanup::Wait(POLL));
    }
    remove_agent(ctx, cluster, &location).await?;
    if let Some(objects) = &objects_namespace {
        delete_and_check(
            &writer.cluster_scoped::<Namespace>(),
            &objects.name_any(),
            |n: &Namespace| namespace_belongs_to(n, &namespace, &name),
        )
        .await?;
    }
    ctx.link.forget(&location.key());
    Ok(Cleanup::Done)
}

/// The agent's account, credential and rights in the management cluster.
async fn remove_agent(
    ctx: &Context,
    cluster: &WorkloadCluster,
    location: &ClusterLocation,
) -> Result<(), DeletionError> {
    let writer = &ctx.writer;
    credentials::remove(writer, &ctx.settings, location).await?;
    let rbac_name = location.agent_names().rbac;
    let ours_role = |r: &Role| owned_by(r.metadata.labels.as_ref(), location);
    let ours_binding = |b: &RoleBinding| owned_by(b.metadata.labels.as_ref(), location);
    let mut namespaces = vec![
        location.cluster_namespace.clone(),
        ctx.settings.system_namespace.clone(),
    ];
    if let Some(provider) = ctx.settings.provider_namespace(cluster.spec.cloud_type) {
        namespaces.push(provider.to_string());
    }
    for namespace in namespaces {
        let roles = writer.namespaced::<Role>(&namespace);
        delete_and_check(&roles, &rbac_name, ours_role).await?;
        let bindings = writer.namespaced::<RoleBinding>(&namespace);
        delete_and_check(&bindings, &rbac_name, ours_binding).await?;
    }
    delete_and_check(
        &writer.cluster_scoped::<ClusterRoleBinding>(),
        &rbac_name,
        |b: &ClusterRoleBinding| owned_by(b.metadata.labels.as_ref(), location),
    )
    .await?;
    delete_and_check(
        &writer.cluster_scoped::<ClusterRole>(),
        &rbac_name,
        |r: &ClusterRole| owned_by(r.metadata.labels.as_ref(), location),
    )
    .await?;
    Ok(())
}

/// `deletionPolicy: Orphan`: forget the cluster, leave its cloud resources alone.
async fn orphan(
    ctx: &Context,
    cluster: &WorkloadCluster,
    location: &ClusterLocation,
    objects_namespace: Option<&Namespace>,
    mut update: StatusUpdate<'_>,
) -> Result<Cleanup, DeletionError> {
    let writer = &ctx.writer;
    // Cut the agent off first: whatever it still holds, it can no longer write here.
    let revoked = credentials::revoke(writer, &ctx.settings, location).await?;
    if let Some(objects) = objects_namespace {
        // Pause what Cluster API here might act on, then let the objects go without their
        // finalizers (which would delete machines), and the namespace with them.
        pause_capi_cluster(writer, location).await?;
        let name = objects.name_any();
        let still_there = delete_and_check(
            &writer.cluster_scoped::<Namespace>(),
            &name,
            |n: &Namespace| namespace_belongs_to(n, &location.cluster_namespace, &location.cluster),
        )
        .await?;
        if still_there {
            let released = release_capi_objects(ctx, &name).await?;
            update.condition(ConditionUpdate::not(
                DELETING,
                "Orphaning",
                format!(
                    "removing the management cluster's copies of the cluster's objects without Cluster API acting on them ({released} released from their finalizers); the machines are left running"
                ),
            ));
            status::write(ctx, cluster, update).await?;
            return Ok(Cleanup::Wait(POLL));
        }
    }
    // The tokens were most likely revoked by an earlier pass (one that then waited for the
    // namespace to go); the agent's account, removed only below, says there were any.
    let cut_off = revoked || credentials::account_exists(writer, &ctx.settings, location).await?;
    remove_agent(ctx, cluster, location).await?;
    warn_orphaned(ctx, cluster, cut_off).await;
    ctx.link.forget(&location.key());
    Ok(Cleanup::Done)
}

async fn pause_capi_cluster(
    writer: &KubeWriter,
    location: &ClusterLocation,
) -> Result<(), DeletionError> {
    let patch = json!({ "spec": { "paused": true } });
    match capi_clusters(writer, &location.objects_namespace)
        .merge_patch(&location.cluster, &patch)
        .await
    {
        Ok(_) => Ok(()),
        // No Cluster (a pivoted cluster's lives in its workload cluster), or no CAPI here.
        Err(e) if e.is_gone() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes the finalizers of every object of the CAPI groups in `namespace` (being deleted
/// with it), so that none waits for a provider to delete what it stands for. Returns how
/// many were released.
async fn release_capi_objects(ctx: &Context, namespace: &str) -> Result<usize, DeletionError> {
    let discovery = kube::discovery::Discovery::new(ctx.client.clone()).filter(&CAPI_GROUPS);
    let discovery = ctx
        .writer
        .bounded(
            Operation::Discover,
            Target::kind("Cluster API", None),
            discovery.run(),
        )
        .await?;
    let mut released = 0;
    for group in discovery.groups() {
        for (resource, capabilities) in group.recommended_resources() {
            if capabilities.scope != kube::discovery::Scope::Namespaced {
                continue;
            }
            let objects = ctx.writer.dynamic(&resource, Some(namespace));
            let release = json!({ "metadata": { "finalizers": null } });
            for object in objects.list(&ListParams::default()).await? {
                if object.finalizers().is_empty() {
                    continue;
                }
                match objects.merge_patch(&object.name_any(), &release).await {
                    Ok(_) => released += 1,
                    Err(e) if e.is_gone() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(released)
}

async fn warn_orphaned(ctx: &Context, cluster: &WorkloadCluster, revoked: bool) {
    let note = format!(
        "deleted with deletionPolicy Orphan: its Cluster API objects were not moved back and Cluster API deleted nothing; its machines and every other cloud resource are left as they are, and the workload cluster runs on by itself{}",
        if revoked {
            ", cut off from the management cluster (its agent's tokens are revoked)"
        } else {
            ""
        }
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "Orphaned".into(),
        note: Some(note),
        action: "Delete".into(),
        secondary: None,
    };
    ctx.story.publish(cluster, &event).await;
}
