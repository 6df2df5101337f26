//! `strata cluster rekey`: the way back for a site whose agent token ran out while it was cut
//! off (or was revoked). Only the agent starts traffic between a site and management, and an
//! agent with a dead token cannot fetch a new one; so the operator carries the agent's current
//! credential (kept fresh by the controller in the management cluster) into the workload
//! cluster, with that cluster's admin kubeconfig. With `--revoke`, every token the agent had is
//! revoked first and a new one minted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::field_managers::CLI_FIELD_MANAGER;
use strata_shared::contracts::names::{AGENT_NAMESPACE, ClusterLocation, MANAGEMENT_SECRET};
use strata_shared::management_access::{ManagementLinkData, credential_of};

use crate::management_client::{client_from, command_runtime};
use crate::{CommandError, ExitStatus};

const POLL: Duration = Duration::from_secs(1);

#[derive(clap::Args, Debug)]
pub struct RekeyArgs {
    /// The WorkloadCluster, NAMESPACE/NAME.
    #[arg(value_name = "NAMESPACE/NAME")]
    pub cluster: String,
    /// The workload cluster's admin kubeconfig (the site's, which the operator holds).
    #[arg(long, value_name = "FILE")]
    pub workload_kubeconfig: PathBuf,
    /// The management cluster's kubeconfig; else $KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Where the controller keeps the agents' credentials.
    #[arg(long, default_value = "strata-system")]
    pub system_namespace: String,
    /// Revoke every token the agent has first, and give it a new one.
    #[arg(long)]
    pub revoke: bool,
    /// How long to wait for the controller's new token and then for the agent's report.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub timeout: u64,
}

fn failed(message: impl Into<String>) -> CommandError {
    CommandError::Failed(message.into())
}

/// `NAMESPACE/NAME`.
pub(crate) fn parse_cluster(text: &str) -> Result<(String, String), CommandError> {
    match text.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok((namespace.to_string(), name.to_string()))
        }
        _ => Err(failed(format!(
            "{text:?}: expected the WorkloadCluster as NAMESPACE/NAME"
        ))),
    }
}

pub fn rekey(args: &RekeyArgs) -> Result<ExitStatus, CommandError> {
    command_runtime()?.block_on(rekey_async(args))
}

async fn rekey_async(args: &RekeyArgs) -> Result<ExitStatus, CommandError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (namespace, name) = parse_cluster(&args.cluster)?;
    let timeout = Duration::from_secs(args.timeout);
    let management = client_from(args.kubeconfig.as_deref(), "--kubeconfig").await?;
    let clusters: Api<WorkloadCluster> = Api::namespaced(management.clone(), &namespace);
    let cluster = clusters
        .get_opt(&name)
        .await
        .map_err(|e| {
            failed(format!(
                "cannot read WorkloadCluster {namespace}/{name}: {e}"
            ))
        })?
        .ok_or_else(|| failed(format!("there is no WorkloadCluster {namespace}/{name}")))?;
    let location = ClusterLocation::of(&namespace, &name);
    let credential_name = location.agent_names().credential_secret;
    let shown = format!("Secret {}/{credential_name}", args.system_namespace);
    let secrets: Api<Secret> = Api::namespaced(management.clone(), &args.system_namespace);
    let before = secrets
        .get_opt(&credential_name)
        .await
        .map_err(|e| failed(format!("cannot read {shown}: {e}")))?
        .ok_or_else(|| {
            failed(format!(
                "{shown} does not exist: the agent of {namespace}/{name} was never installed"
            ))
        })?;
    if args.revoke {
        secrets
            .delete(&credential_name, &DeleteParams::default())
            .await
            .map_err(|e| failed(format!("cannot delete {shown} (revoking): {e}")))?;
        println!("revoked every token of the agent of {namespace}/{name}");
    }
    let access = wait_for_credential(&secrets, &credential_name, &before, args.revoke, timeout)
        .await
        .map_err(|e| failed(format!("{shown}: {e}")))?;

    let workload = client_from(Some(&args.workload_kubeconfig), "--workload-kubeconfig").await?;
    let local: Api<Secret> = Api::namespaced(workload, AGENT_NAMESPACE);
    let existing = local
        .get_opt(MANAGEMENT_SECRET)
        .await
        .map_err(|e| {
            failed(format!(
                "cannot read Secret {AGENT_NAMESPACE}/{MANAGEMENT_SECRET} in the workload cluster: {e}"
            ))
        })?
        .ok_or_else(|| {
            failed(format!(
                "the workload cluster has no Secret {AGENT_NAMESPACE}/{MANAGEMENT_SECRET}: is --workload-kubeconfig the cluster of {namespace}/{name}, with its agent installed?"
            ))
        })?;
    let current = ManagementLinkData::from_secret(&existing)
        .map_err(|e| failed(format!("the workload cluster's link Secret: {e}")))?;
    // The wrong kubeconfig would hand this cluster's token to another site.
    if current.location != location {
        return Err(failed(format!(
            "--workload-kubeconfig is the cluster of {}/{} (its link Secret says so), not of {namespace}/{name}; nothing was written",
            current.location.cluster_namespace, current.location.cluster
        )));
    }
    let renewed = ManagementLinkData {
        access: access.clone(),
        ..current
    };
    let secret = renewed.to_secret(ObjectMeta {
        name: Some(MANAGEMENT_SECRET.into()),
        namespace: Some(AGENT_NAMESPACE.into()),
        ..ObjectMeta::default()
    });
    local
        .patch(
            MANAGEMENT_SECRET,
            &PatchParams::apply(CLI_FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .map_err(|e| {
            failed(format!(
                "cannot write Secret {AGENT_NAMESPACE}/{MANAGEMENT_SECRET} in the workload cluster: {e}"
            ))
        })?;
    println!(
        "gave the agent of {namespace}/{name} a token that expires at {}",
        access.token_expires
    );
    let last_report = |c: &WorkloadCluster| {
        c.status
            .as_ref()
            .and_then(|s| s.agent.as_ref())
            .and_then(|a| a.last_report_time.clone())
    };
    let seen = last_report(&cluster);
    let started = Instant::now();
    while started.elapsed() < timeout {
        tokio::time::sleep(POLL).await;
        if let Ok(Some(now)) = clusters.get_opt(&name).await
            && last_report(&now).is_some_and(|t| Some(&t) != seen.as_ref())
        {
            println!(
                "the agent reports again (after {} s)",
                started.elapsed().as_secs()
            );
            return Ok(ExitStatus::Success);
        }
    }
    Err(failed(format!(
        "the agent of {namespace}/{name} has not reported within {} s; is it running, and can it reach the management cluster? (its own cluster's ConfigMap {AGENT_NAMESPACE}/strata-link says what it last found)",
        args.timeout
    )))
}

/// Why the agent's credential did not become usable.
#[derive(Debug, thiserror::Error)]
enum CredentialWaitError {
    #[error("cannot read it: {0}")]
    Read(#[source] kube::Error),
    #[error(
        "its token expired at {at}: the controller renews it, so it is not running or cannot write there"
    )]
    Expired { at: Timestamp },
    #[error("no new token after {seconds} s: is the controller running?")]
    NoNewToken { seconds: u64 },
}

/// The agent's credential once it is usable: at once, or after a revocation, once the
/// controller has minted a new one (bound to a new Secret).
async fn wait_for_credential(
    secrets: &Api<Secret>,
    name: &str,
    before: &Secret,
    revoked: bool,
    timeout: Duration,
) -> Result<strata_shared::management_access::ManagementAccess, CredentialWaitError> {
    let started = Instant::now();
    loop {
        let found = secrets
            .get_opt(name)
            .await
            .map_err(CredentialWaitError::Read)?;
        let fresh = found.filter(|s| !revoked || s.metadata.uid != before.metadata.uid);
        if let Some(secret) = fresh
            && let Ok(access) = credential_of(&secret)
        {
            if access.token_expires > Timestamp::now() {
                return Ok(access);
            }
            if !revoked {
                return Err(CredentialWaitError::Expired {
                    at: access.token_expires,
                });
            }
        }
        if started.elapsed() >= timeout {
            return Err(CredentialWaitError::NoNewToken {
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A WorkloadCluster, its location and its objects namespace (where its ledger is), as an
/// operator command reads them; each missing one is an error naming it.
pub(crate) async fn cluster_and_ledger(
    writer: &strata_shared::kube_writer::KubeWriter,
    namespace: &str,
    name: &str,
) -> Result<
    (
        WorkloadCluster,
        ClusterLocation,
        k8s_openapi::api::core::v1::Namespace,
    ),
    CommandError,
> {
    let (cluster, location, objects_namespace) =
        cluster_and_objects_namespace(writer, namespace, name).await?;
    let objects_namespace = objects_namespace.ok_or_else(|| {
        failed(format!(
            "WorkloadCluster {namespace}/{name} has no objects namespace {} (it is not provisioned yet, or the namespace is not the cluster's)",
            location.objects_namespace
        ))
    })?;
    Ok((cluster, location, objects_namespace))
}

/// The cluster, where its objects live, and its objects namespace (holding the ledger) when
/// it has one that is its own: for commands that also speak of a cluster not provisioned.
pub(crate) async fn cluster_and_objects_namespace(
    writer: &strata_shared::kube_writer::KubeWriter,
    namespace: &str,
    name: &str,
) -> Result<
    (
        WorkloadCluster,
        ClusterLocation,
        Option<k8s_openapi::api::core::v1::Namespace>,
    ),
    CommandError,
> {
    let shown = format!("WorkloadCluster {namespace}/{name}");
    let cluster = writer
        .namespaced::<WorkloadCluster>(namespace)
        .get(name)
        .await
        .map_err(|e| failed(format!("cannot read {shown}: {e}")))?
        .ok_or_else(|| failed(format!("there is no {shown}")))?;
    let location = ClusterLocation::of(namespace, name);
    let objects_namespace = crate::controller::ledger::read(writer, &location.objects_namespace)
        .await
        .map_err(|e| failed(format!("{shown}: {e}")))?
        .filter(|n| crate::controller::namespaces::namespace_belongs_to(n, namespace, name));
    Ok((cluster, location, objects_namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_is_namespace_slash_name() {
        assert_eq!(
            parse_cluster("team-a/edge-1").ok(),
            Some(("team-a".to_string(), "edge-1".to_string()))
        );
        for bad in ["edge-1", "/edge-1", "team-a/", "a/b/c"] {
            let error = parse_cluster(bad).err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.contains("NAMESPACE/NAME")),
                "{bad}: {error:?}"
            );
        }
    }
}
