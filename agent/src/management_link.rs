//! The agent's way to the management cluster. Its access is the link Secret in its own
//! cluster (`strata-system/strata-management`), read anew for every connection, so that a
//! token the agent renewed, or one `strata cluster rekey` put there, is used at once. The
//! client is built from the Secret's server, CA and token alone (through the same checks as
//! any kubeconfig Strata reads), with a deadline on every request.
//!
//! The agent renews its own token: the controller keeps a fresh one in the agent's credential
//! Secret in the management cluster, which the agent may read; when it holds a newer one than
//! the agent's, the agent writes it into its link Secret.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use strata_shared::contracts::field_managers::AGENT_FIELD_MANAGER;
use strata_shared::contracts::names::AGENT_NAMESPACE;
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::management_access::{
    AccessError, ManagementAccess, ManagementLinkData, SecretKey, credential_of,
    management_kubeconfig,
};
use strata_shared::workload_kubeconfig::{ClientTimeouts, parse};

/// A request to the management cluster that takes longer than this has failed: the link
/// may be slow or cut, and the agent's work goes on without it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the link Secret in this cluster: {0}")]
    Read(#[source] WriteError),
    #[error(
        "Secret {AGENT_NAMESPACE}/{secret} does not exist in this cluster (the controller writes it when it installs the agent)"
    )]
    Missing { secret: String },
    #[error("the management access is not usable: {0}")]
    Access(#[from] AccessError),
    #[error(
        "the management access in Secret {AGENT_NAMESPACE}/{secret} cannot make a client: {reason}"
    )]
    Client { secret: String, reason: String },
    #[error("cannot write the renewed token into this cluster's link Secret: {0}")]
    Write(#[source] WriteError),
}

/// Where this cluster's objects are in the management cluster, and how to reach it.
#[derive(Clone)]
pub struct ManagementLink {
    workload: KubeWriter,
    secret: String,
    /// The WorkloadCluster's (and CAPI Cluster's) name.
    pub cluster: String,
    /// The WorkloadCluster's namespace.
    pub cluster_namespace: String,
    /// The namespace holding its CAPI objects and revisions.
    pub objects_namespace: String,
}

impl std::fmt::Debug for ManagementLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementLink")
            .field("secret", &self.secret)
            .field("cluster", &self.cluster)
            .field("cluster_namespace", &self.cluster_namespace)
            .field("objects_namespace", &self.objects_namespace)
            .finish_non_exhaustive()
    }
}

impl ManagementLink {
    /// From the link Secret `secret` in the agent's namespace of `workload`.
    pub async fn load(workload: KubeWriter, secret: &str) -> Result<ManagementLink, LinkError> {
        let data = read(&workload, secret).await?;
        Ok(ManagementLink {
            workload,
            secret: secret.to_string(),
            cluster: data.location.cluster,
            cluster_namespace: data.location.cluster_namespace,
            objects_namespace: data.location.objects_namespace,
        })
    }

    /// The link Secret as it is now.
    pub async fn data(&self) -> Result<ManagementLinkData, LinkError> {
        read(&self.workload, &self.secret).await
    }

    /// The management cluster with the access the link Secret holds now, under the agent's
    /// field manager, every call bounded.
    pub async fn management(&self) -> Result<KubeWriter, LinkError> {
        let data = self.data().await?;
        let client = client_for(&data.access, &data.location.objects_namespace, &self.secret)?;
        Ok(KubeWriter::new(
            client,
            AGENT_FIELD_MANAGER,
            REQUEST_TIMEOUT,
        ))
    }

    /// Takes the controller's renewed token when it is newer than the agent's; returns the
    /// access in force afterwards. Errors reaching the management cluster are the caller's to
    /// judge (an expired token shows as 401 there).
    pub async fn renew(&self, management: &KubeWriter) -> Result<RenewOutcome, RenewError> {
        let data = self.data().await.map_err(RenewError::Link)?;
        let credential = SecretKey {
            namespace: data.system_namespace.clone(),
            name: data.credential_secret.clone(),
        };
        let found = management
            .namespaced::<Secret>(&credential.namespace)
            .get(&credential.name)
            .await
            .map_err(RenewError::Management)?
            .ok_or(RenewError::CredentialMissing { secret: credential })?;
        let offered = credential_of(&found).map_err(|e| RenewError::Link(e.into()))?;
        // Only a later expiry is taken: the same token, or an older one (a controller
        // restored from a backup, say), leaves the agent's as it is.
        if offered.token_expires <= data.access.token_expires {
            return Ok(RenewOutcome::Current(data.access));
        }
        let renewed = ManagementLinkData {
            access: offered.clone(),
            ..data
        };
        let secret = renewed.to_secret(ObjectMeta {
            name: Some(self.secret.clone()),
            namespace: Some(AGENT_NAMESPACE.into()),
            ..ObjectMeta::default()
        });
        self.workload
            .apply(&secret)
            .await
            .map_err(|e| RenewError::Link(LinkError::Write(e)))?;
        tracing::info!(expires = %offered.token_expires, "took the renewed management token");
        Ok(RenewOutcome::Renewed(offered))
    }
}

/// What [`ManagementLink::renew`] found.
#[derive(Debug)]
pub enum RenewOutcome {
    /// The agent's token is the newest.
    Current(ManagementAccess),
    /// A newer token was taken.
    Renewed(ManagementAccess),
}

#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error(transparent)]
    Link(LinkError),
    #[error("cannot read the agent's credential in the management cluster: {0}")]
    Management(#[source] WriteError),
    #[error("the agent's credential Secret {secret} is not in the management cluster")]
    CredentialMissing { secret: SecretKey },
}

impl RenewError {
    /// The HTTP status the management cluster answered with, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            RenewError::Management(e) => e.code(),
            _ => None,
        }
    }
}

async fn read(workload: &KubeWriter, secret: &str) -> Result<ManagementLinkData, LinkError> {
    let found = workload
        .namespaced::<Secret>(AGENT_NAMESPACE)
        .get(secret)
        .await
        .map_err(LinkError::Read)?
        .ok_or_else(|| LinkError::Missing {
            secret: secret.to_string(),
        })?;
    Ok(ManagementLinkData::from_secret(&found)?)
}

/// A client of the management cluster for `access`, through the same checks as any
/// kubeconfig Strata reads: a server, its CA, a bearer token, nothing else.
fn client_for(
    access: &ManagementAccess,
    namespace: &str,
    secret: &str,
) -> Result<Client, LinkError> {
    let failed = |reason: String| LinkError::Client {
        secret: secret.to_string(),
        reason,
    };
    let text = serde_yaml::to_string(&management_kubeconfig(access, namespace))
        .map_err(|e| failed(e.to_string()))?;
    let checked = parse(&text).map_err(|e| failed(e.to_string()))?;
    let mut config = checked
        .to_kube_config(ClientTimeouts::uniform(REQUEST_TIMEOUT))
        .map_err(|e| failed(e.to_string()))?;
    config.default_namespace = namespace.to_string();
    Client::try_from(config).map_err(|e| failed(e.to_string()))
}
