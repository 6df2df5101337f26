//! Deleting a WorkloadCluster. Before the pivot: delete its CAPI Cluster, wait for CAPI
//! to tear the machines down, then remove the agent's rights (in the cluster's namespace,
//! the provider's and cluster-wide) and the objects namespace (its revisions and identity
//! objects go with it). After the pivot the CAPI objects are
//! in the workload cluster, and only its agent can bring them back; until it has, the
//! cluster stays, and its Deleting condition says why.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use strata_shared::agent_install::{
    ClusterLocation, cluster_role_name, provider_role_name, status_role_name,
};
use strata_shared::cluster::{ClusterPhase, WorkloadCluster};
use strata_shared::conditions::ConditionUpdate;

use super::context::{Context, WRITE_TIMEOUT};
use super::reconcile::ReconcileError;
use super::status::{self, DELETING, READY, StatusUpdate};

/// How often a deletion in progress is looked at again.
const POLL: Duration = Duration::from_secs(2);
/// How often a pivoted cluster waiting for its agent is looked at again.
const AWAITING_AGENT: Duration = Duration::from_secs(30);

pub enum Cleanup {
    Done,
    Wait(Duration),
}

/// Deletes `name` unless it is gone or going; true while it still exists.
async fn delete_and_check<K>(api: &Api<K>, name: &str, what: &str) -> Result<bool, ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let read_failed = |e: kube::Error| ReconcileError::Read {
        what: what.to_string(),
        source: Box::new(e),
    };
    let Some(found) = api.get_opt(name).await.map_err(read_failed)? else {
        return Ok(false);
    };
    if found.meta().deletion_timestamp.is_none() {
        tracing::info!(object = what, "deleting");
        match tokio::time::timeout(WRITE_TIMEOUT, api.delete(name, &DeleteParams::background()))
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(kube::Error::Api(e))) if e.code == 404 => return Ok(false),
            Ok(Err(e)) => {
                return Err(ReconcileError::Delete {
                    what: what.to_string(),
                    source: Box::new(e),
                });
            }
            Err(_) => {
                return Err(ReconcileError::Timeout {
                    what: format!("deleting {what}"),
                    seconds: WRITE_TIMEOUT.as_secs(),
                });
            }
        }
    }
    Ok(true)
}

pub async fn cleanup(cluster: &WorkloadCluster, ctx: &Context) -> Result<Cleanup, ReconcileError> {
    let client: &Client = &ctx.client;
    let name = cluster.name_any();
    let namespace = cluster.namespace().unwrap_or_default();
    let location = ClusterLocation::of(&namespace, &name);
    let previous = cluster.status.clone().unwrap_or_default();
    let mut update = StatusUpdate {
        phase: Some(ClusterPhase::Deleting),
        namespace: Some(location.objects_namespace.clone()),
        revision: previous.revision,
        control_plane: previous.control_plane.clone(),
        workers: previous.workers.clone(),
        agent_image: previous.agent_image.clone(),
        ..StatusUpdate::default()
    };
    update.condition(ConditionUpdate::not(
        READY,
        "Deleting",
        "the cluster is being deleted",
    ));

    if super::status::agent_has_the_objects(&previous.conditions) {
        update.condition(ConditionUpdate::not(
            DELETING,
            "AwaitingMoveBack",
            "the cluster's CAPI objects live in the workload cluster; its agent must move them back to the management cluster before CAPI can delete the machines",
        ));
        status::write(client, cluster, update).await?;
        return Ok(Cleanup::Wait(AWAITING_AGENT));
    }

    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "cluster.x-k8s.io",
        "v1beta2",
        "Cluster",
    ));
    let capi: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &location.objects_namespace, &resource);
    let capi_name = format!("CAPI Cluster {}/{name}", location.objects_namespace);
    // Without the CAPI CRDs there is no CAPI Cluster to wait for.
    let capi_exists = match delete_and_check(&capi, &name, &capi_name).await {
        Err(ReconcileError::Read { source, .. }) if matches!(*source, kube::Error::Api(ref e) if e.code == 404) => {
            false
        }
        other => other?,
    };
    if capi_exists {
        update.condition(ConditionUpdate::not(
            DELETING,
            "DeletingMachines",
            format!("waiting for CAPI to delete {capi_name} and its machines"),
        ));
        status::write(client, cluster, update).await?;
        return Ok(Cleanup::Wait(POLL));
    }

    let role_name = status_role_name(&location);
    let roles: Api<Role> = Api::namespaced(client.clone(), &namespace);
    delete_and_check(&roles, &role_name, &format!("Role {namespace}/{role_name}")).await?;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &namespace);
    delete_and_check(
        &bindings,
        &role_name,
        &format!("RoleBinding {namespace}/{role_name}"),
    )
    .await?;
    // The agent's read of its identity Secret in the provider's namespace; the Secret goes
    // with the objects namespace, which owns it.
    if let Some(provider_namespace) = ctx.settings.provider_namespace(cluster.spec.cloud_type) {
        let name = provider_role_name(&location);
        let roles: Api<Role> = Api::namespaced(client.clone(), provider_namespace);
        delete_and_check(&roles, &name, &format!("Role {provider_namespace}/{name}")).await?;
        let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), provider_namespace);
        delete_and_check(
            &bindings,
            &name,
            &format!("RoleBinding {provider_namespace}/{name}"),
        )
        .await?;
    }
    let cluster_role = cluster_role_name(&location);
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    delete_and_check(
        &cluster_bindings,
        &cluster_role,
        &format!("ClusterRoleBinding {cluster_role}"),
    )
    .await?;
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    delete_and_check(
        &cluster_roles,
        &cluster_role,
        &format!("ClusterRole {cluster_role}"),
    )
    .await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if let Some(found) = namespaces
        .get_opt(&location.objects_namespace)
        .await
        .map_err(|e| ReconcileError::Read {
            what: format!("Namespace {}", location.objects_namespace),
            source: Box::new(e),
        })?
        && super::apply::namespace_belongs_to(&found, &namespace, &name)
    {
        delete_and_check(
            &namespaces,
            &location.objects_namespace,
            &format!("Namespace {}", location.objects_namespace),
        )
        .await?;
    }
    Ok(Cleanup::Done)
}
