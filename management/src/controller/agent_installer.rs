//! Installing the agent: its limited rights in the management cluster, and in the workload
//! cluster (reached through CAPI's `<cluster>-kubeconfig`, read as data by
//! [`super::workload_access`]) the namespace, service account, rights, the link Secret with its
//! current credential, and its Deployment.

use strata_shared::agent_install::{management_rbac, workload_objects};
use strata_shared::contracts::names::ClusterLocation;
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::management_access::{ManagementAccess, ManagementLinkData, SecretKey};

use super::context::Settings;

#[derive(Debug, thiserror::Error)]
pub enum AgentInstallError {
    #[error("in the management cluster: {0}")]
    Management(#[source] WriteError),
    #[error("in the workload cluster of {cluster}: {source}")]
    Workload {
        cluster: String,
        #[source]
        source: WriteError,
    },
}

impl AgentInstallError {
    /// A fixed text for conditions the site can read: a workload cluster's answers (which
    /// its administrators write) never travel back into its own status.
    pub fn public_message(&self) -> &'static str {
        match self {
            AgentInstallError::Management(_) => {
                "the agent's rights could not be written in the management cluster; see the controller's log"
            }
            AgentInstallError::Workload { .. } => {
                "the agent could not be installed in the workload cluster; see the controller's log"
            }
        }
    }
}

/// What the install found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReport {
    /// The agent Deployment has an available replica.
    pub available: bool,
    pub image: String,
}

/// The agent's rights in the management cluster (its account and credential are
/// [`super::credentials`]'s).
pub async fn grant_rights(
    management: &KubeWriter,
    settings: &Settings,
    location: &ClusterLocation,
    provider_namespace: Option<&str>,
) -> Result<(), AgentInstallError> {
    let rbac = management_rbac(location, &settings.system_namespace, provider_namespace);
    for role in &rbac.roles {
        management
            .apply(role)
            .await
            .map_err(AgentInstallError::Management)?;
    }
    for binding in &rbac.bindings {
        management
            .apply(binding)
            .await
            .map_err(AgentInstallError::Management)?;
    }
    management
        .apply(&rbac.cluster_role)
        .await
        .map_err(AgentInstallError::Management)?;
    management
        .apply(&rbac.cluster_binding)
        .await
        .map_err(AgentInstallError::Management)?;
    Ok(())
}

/// Installs (or re-asserts) the agent in its workload cluster, with `access`.
pub async fn install(
    workload: &KubeWriter,
    settings: &Settings,
    location: &ClusterLocation,
    access: &ManagementAccess,
    identity_secret: Option<SecretKey>,
    pivot_round: u32,
) -> Result<AgentReport, AgentInstallError> {
    let link = ManagementLinkData {
        access: access.clone(),
        location: location.clone(),
        system_namespace: settings.system_namespace.clone(),
        credential_secret: location.agent_names().credential_secret,
        identity_secret,
        pivot_round,
    };
    let objects = workload_objects(&link, &settings.agent_image);
    let in_workload = |source: WriteError| AgentInstallError::Workload {
        cluster: location.cluster.clone(),
        source,
    };
    workload
        .apply(&objects.namespace)
        .await
        .map_err(in_workload)?;
    workload
        .apply(&objects.service_account)
        .await
        .map_err(in_workload)?;
    workload
        .apply(&objects.binding)
        .await
        .map_err(in_workload)?;
    workload.apply(&objects.secret).await.map_err(in_workload)?;
    let deployment = workload
        .apply(&objects.deployment)
        .await
        .map_err(in_workload)?;
    let status = deployment.status.unwrap_or_default();
    let current = deployment.metadata.generation == status.observed_generation;
    let available = current
        && status.available_replicas.unwrap_or(0) >= 1
        && status.updated_replicas.unwrap_or(0) >= 1;
    Ok(AgentReport {
        available,
        image: settings.agent_image.clone(),
    })
}
