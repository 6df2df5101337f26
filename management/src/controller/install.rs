//! Installing the agent into a cluster whose first control-plane node is up: once CAPI's
//! kubeconfig is there and is one Strata will use, the agent's credential and rights in the
//! management cluster, then the agent itself in the workload cluster.

use k8s_openapi::api::core::v1::Namespace;
use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::names::ClusterLocation;
use strata_shared::management_access::SecretKey;

use super::agent_installer::{self, AgentInstallError};
use super::context::Context;
use super::credentials::{self, CredentialError};
use super::failure_reason::write_reason;
use super::ledger;
use super::outcome::Outcome;
use super::workload_access::{self, Workload, WorkloadAccessError};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot reach the workload cluster of {cluster}: {source}")]
    Access {
        cluster: String,
        #[source]
        source: WorkloadAccessError,
    },
    #[error("cannot write the agent's credential for cluster {cluster}: {source}")]
    Credential {
        cluster: String,
        #[source]
        source: CredentialError,
    },
    #[error("cannot install the agent of cluster {cluster}: {source}")]
    Agent {
        cluster: String,
        #[source]
        source: AgentInstallError,
    },
}

impl InstallError {
    /// A short, stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            InstallError::Access {
                source: WorkloadAccessError::Read(e),
                ..
            } => write_reason(e),
            InstallError::Access { .. } => "ReadFailed",
            InstallError::Credential { .. } => "CredentialFailed",
            InstallError::Agent { .. } => "AgentInstallFailed",
        }
    }

    /// The fixed text the AgentInstalled condition shows for this failure, when the failure
    /// is shown there at all (a workload cluster that cannot be reached is not).
    pub fn public_message(&self) -> Option<&'static str> {
        match self {
            InstallError::Access { .. } => None,
            InstallError::Credential { .. } => Some(
                "the agent's credential could not be written in the management cluster; see the controller's log",
            ),
            InstallError::Agent { source, .. } => Some(source.public_message()),
        }
    }
}

pub async fn agent(
    ctx: &Context,
    cluster: &WorkloadCluster,
    location: &ClusterLocation,
    objects_namespace: &Namespace,
    identity_secret: Option<SecretKey>,
) -> Result<Outcome, InstallError> {
    let connected = workload_access::connect(&ctx.writer, objects_namespace, location)
        .await
        .map_err(|source| InstallError::Access {
            cluster: location.key(),
            source,
        })?;
    let kubeconfig = format!(
        "{}/{}-kubeconfig",
        location.objects_namespace, location.cluster
    );
    let workload = match connected {
        Workload::Ready(client) => client,
        Workload::Missing => {
            let message = format!("waiting for CAPI to write Secret {kubeconfig}");
            return Ok(Outcome::WaitingForKubeconfig { message });
        }
        Workload::Retry => return Ok(Outcome::KubeconfigInFlux),
        Workload::Unsafe => {
            let message = format!(
                "Secret {kubeconfig} is not a kubeconfig Strata uses (only a server, CA data and inline credentials, with the server and CA it had when first used); see the controller's log"
            );
            return Ok(Outcome::UnsafeKubeconfig { message });
        }
    };
    let failed = |source| InstallError::Agent {
        cluster: location.key(),
        source,
    };
    let credential = credentials::ensure(&ctx.writer, &ctx.settings, location)
        .await
        .map_err(|source| InstallError::Credential {
            cluster: location.key(),
            source,
        })?;
    let provider_namespace = ctx.settings.provider_namespace(cluster.spec.cloud_type);
    agent_installer::grant_rights(&ctx.writer, &ctx.settings, location, provider_namespace)
        .await
        .map_err(failed)?;
    let report = agent_installer::install(
        &workload,
        &ctx.settings,
        location,
        &credential,
        identity_secret,
        // A reclaimed cluster's new agent keeps the journal of an earlier move aside.
        ledger::of(Some(objects_namespace)).round,
    )
    .await
    .map_err(failed)?;
    Ok(if report.available {
        Outcome::AgentRunning {
            image: report.image,
        }
    } else {
        Outcome::AgentStarting {
            image: report.image,
        }
    })
}
