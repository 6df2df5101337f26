//! The agent's errors outside the move engine (which has its own, `pivot::PivotError`): each
//! names the cluster and the step it stopped at, or the file or flag at start-up.

use std::fmt;
use std::path::PathBuf;

use strata_shared::capi::BuildError;
use strata_shared::contracts::names::{AGENT_NAMESPACE, REVISION_COPY_CONFIG_MAP};
use strata_shared::kube_writer::WriteError;
use strata_shared::leader::LeaderError;

use crate::management_link::LinkError;
use crate::move_command::MoveCommandError;
use crate::pivot::PivotError;
use crate::provider_install::ProviderInstallError;

/// What the agent was doing for its cluster when a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    InstallProviders,
    KeepEarlierJournalAside,
    ReadRevision,
    KeepRevisionLocally,
    ReadLocalRevision,
    ReadCluster,
    ScaleControlPlane,
    ApplyWorkerPools,
    Report,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::InstallProviders => "installing the provider components",
            Step::KeepEarlierJournalAside => "keeping an earlier round's move journal aside",
            Step::ReadRevision => "reading its revision in the management cluster",
            Step::KeepRevisionLocally => "keeping its revision in this cluster",
            Step::ReadLocalRevision => "reading its revision's copy in this cluster",
            Step::ReadCluster => "reading its CAPI Cluster in this cluster",
            Step::ScaleControlPlane => "scaling its control plane",
            Step::ApplyWorkerPools => "applying its worker pools",
            Step::Report => "reporting to the management cluster",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot make {path} owned by user {uid}: {source}")]
    OwnCache {
        path: PathBuf,
        uid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig {path}: cannot make a client: {source}")]
    KubeconfigClient {
        path: PathBuf,
        #[source]
        source: kube::Error,
    },
    #[error("cannot reach this cluster's API server: {0}")]
    InCluster(#[source] kube::Error),
    #[error(transparent)]
    LayerSetup(#[from] crate::layers::SetupError),
    #[error("--lease-seconds: {0}")]
    LeaseTiming(#[source] LeaderError),
    #[error("cannot listen for SIGTERM: {0}")]
    Signal(#[source] std::io::Error),
    #[error(
        "cannot serve /metrics, /healthz and /readyz on {address} (--http-host, --http-port): {source}"
    )]
    Listen {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("the plan of Cluster {namespace}/{cluster}: {source}")]
    Plan {
        namespace: String,
        cluster: String,
        #[source]
        source: PivotError,
    },
    #[error(transparent)]
    MoveCommand(#[from] MoveCommandError),
    #[error(transparent)]
    Recovery(#[from] crate::recovery::RecoveryError),
    #[error("{argument} {found:?}: expected NAMESPACE/NAME of a WorkloadCluster")]
    ClusterArgument {
        argument: &'static str,
        found: String,
    },
    #[error("one of {0} is required")]
    MissingArgument(&'static str),
    #[error("cluster {cluster}, {step}: {source}")]
    Api {
        cluster: String,
        step: Step,
        #[source]
        source: WriteError,
    },
    #[error("cluster {cluster}, {step}: {source}")]
    Management {
        cluster: String,
        step: Step,
        #[source]
        source: LinkError,
    },
    #[error("cluster {cluster}, {step}: {object} is not in this cluster")]
    Missing {
        cluster: String,
        step: Step,
        object: String,
    },
    #[error(
        "cluster {cluster}, {step}: no ClusterRevision labelled for it in namespace {namespace} of the management cluster"
    )]
    NoRevision {
        cluster: String,
        step: Step,
        namespace: String,
    },
    #[error(
        "cluster {cluster}, {step}: ConfigMap {AGENT_NAMESPACE}/{REVISION_COPY_CONFIG_MAP}, key revision.json: {source}"
    )]
    RevisionCopy {
        cluster: String,
        step: Step,
        #[source]
        source: serde_json::Error,
    },
    #[error("cluster {cluster}, {step}: revision {revision}: {source}")]
    WorkerPools {
        cluster: String,
        step: Step,
        revision: i64,
        #[source]
        source: BuildError,
    },
    #[error("cluster {cluster}, {step}: {source}")]
    Journal {
        cluster: String,
        step: Step,
        #[source]
        source: PivotError,
    },
    #[error("cluster {cluster}, {step}: {source}")]
    Providers {
        cluster: String,
        step: Step,
        #[source]
        source: ProviderInstallError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_work_error_names_the_cluster_and_the_step() {
        let error = AgentError::Missing {
            cluster: "demo".into(),
            step: Step::ReadCluster,
            object: "Cluster strata-wc-a/demo".into(),
        };
        assert_eq!(
            error.to_string(),
            "cluster demo, reading its CAPI Cluster in this cluster: Cluster strata-wc-a/demo is not in this cluster"
        );
    }
}
