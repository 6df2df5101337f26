//! Installing the agent: its limited identity in the management cluster, a token for it,
//! and in the workload cluster (reached through CAPI's `<cluster>-kubeconfig`) the
//! namespace, service account, rights, management Secret and Deployment.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use strata_shared::agent_install::{
    AGENT_NAME, AGENT_NAMESPACE, ClusterLocation, MANAGEMENT_SECRET, ManagementAccess,
    TOKEN_EXPIRES_ANNOTATION, management_rbac, workload_objects,
};

use strata_shared::provider_components::ProviderController;

use super::apply::{ApplyError, apply_typed};
use super::context::{Settings, WRITE_TIMEOUT};

/// How long a request to a workload cluster may take before it counts as unreachable.
const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AgentInstallError {
    #[error("the kubeconfig of cluster {cluster} is not usable: {reason}")]
    Kubeconfig { cluster: String, reason: String },
    #[error("cannot mint a token for the agent of cluster {cluster}: {reason}")]
    Token { cluster: String, reason: String },
    #[error("cannot read {what} in the workload cluster {cluster}: {reason}")]
    WorkloadRead {
        cluster: String,
        what: String,
        reason: String,
    },
    #[error("in the management cluster: {0}")]
    Management(#[source] ApplyError),
    #[error("in the workload cluster {cluster}: {source}")]
    Workload {
        cluster: String,
        #[source]
        source: ApplyError,
    },
    #[error(transparent)]
    Objects(#[from] strata_shared::agent_install::AgentInstallError),
}

/// What the install found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReport {
    /// The agent Deployment has an available replica.
    pub available: bool,
    pub image: String,
    pub token_minted: bool,
}

/// A client of the workload cluster from the kubeconfig CAPI wrote.
pub async fn workload_client(cluster: &str, kubeconfig: &str) -> Result<Client, AgentInstallError> {
    let invalid = |reason: String| AgentInstallError::Kubeconfig {
        cluster: cluster.to_string(),
        reason,
    };
    let parsed = Kubeconfig::from_yaml(kubeconfig).map_err(|e| invalid(e.to_string()))?;
    let mut config = Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
        .await
        .map_err(|e| invalid(e.to_string()))?;
    config.connect_timeout = Some(WORKLOAD_TIMEOUT);
    config.read_timeout = Some(WORKLOAD_TIMEOUT);
    config.write_timeout = Some(WORKLOAD_TIMEOUT);
    Client::try_from(config).map_err(|e| invalid(e.to_string()))
}

fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
}

/// The access already in the workload cluster, if it is for this server and CA and has
/// more than a third of its life left.
fn reusable(
    existing: Option<&Secret>,
    settings: &Settings,
    now: Timestamp,
) -> Option<ManagementAccess> {
    let secret = existing?;
    let expires = secret
        .metadata
        .annotations
        .as_ref()?
        .get(TOKEN_EXPIRES_ANNOTATION)?
        .clone();
    let expiry: Timestamp = expires.parse().ok()?;
    let margin = SignedDuration::from_secs(settings.agent_token_seconds / 3);
    if expiry.checked_sub(margin).ok()? <= now {
        return None;
    }
    let same_server =
        secret_text(secret, "server").as_deref() == Some(settings.management_server.as_str());
    let same_ca =
        secret_text(secret, "ca.crt").as_deref() == Some(settings.management_ca_pem.as_str());
    if !same_server || !same_ca {
        return None;
    }
    Some(ManagementAccess {
        server: settings.management_server.clone(),
        ca_pem: settings.management_ca_pem.clone(),
        token: secret_text(secret, "token")?,
        token_expires: expires,
    })
}

async fn mint_token(
    management: &Client,
    location: &ClusterLocation,
    settings: &Settings,
) -> Result<ManagementAccess, AgentInstallError> {
    let failed = |reason: String| AgentInstallError::Token {
        cluster: location.cluster.clone(),
        reason,
    };
    let accounts: Api<ServiceAccount> =
        Api::namespaced(management.clone(), &location.objects_namespace);
    // No audiences: the API server's own, which both 1.20 and current releases accept.
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(settings.agent_token_seconds),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answer: TokenRequest = tokio::time::timeout(
        WRITE_TIMEOUT,
        accounts.create_subresource("token", AGENT_NAME, &PostParams::default(), &request),
    )
    .await
    .map_err(|_| failed(format!("no answer in {} s", WRITE_TIMEOUT.as_secs())))?
    .map_err(|e| failed(e.to_string()))?;
    let status = answer
        .status
        .ok_or_else(|| failed("the API server answered without a token".into()))?;
    Ok(ManagementAccess {
        server: settings.management_server.clone(),
        ca_pem: settings.management_ca_pem.clone(),
        token: status.token,
        token_expires: status.expiration_timestamp.0.to_string(),
    })
}

/// Installs (or re-asserts) the agent of one cluster. `provider_namespace`: where the
/// cluster's identity Secret is, when it is outside the objects namespace (the agent gets
/// `get` on that one Secret there, to copy it into its cluster).
pub async fn install(
    management: &Client,
    settings: &Settings,
    location: &ClusterLocation,
    kubeconfig: &str,
    provider_namespace: Option<&str>,
    providers: Option<&ProviderController>,
) -> Result<AgentReport, AgentInstallError> {
    let rbac = management_rbac(location, provider_namespace);
    apply_typed(management, &rbac.service_account)
        .await
        .map_err(AgentInstallError::Management)?;
    for role in &rbac.roles {
        apply_typed(management, role)
            .await
            .map_err(AgentInstallError::Management)?;
    }
    for binding in &rbac.bindings {
        apply_typed(management, binding)
            .await
            .map_err(AgentInstallError::Management)?;
    }
    apply_typed(management, &rbac.cluster_role)
        .await
        .map_err(AgentInstallError::Management)?;
    apply_typed(management, &rbac.cluster_binding)
        .await
        .map_err(AgentInstallError::Management)?;

    let workload = workload_client(&location.cluster, kubeconfig).await?;
    let unreadable = |what: &str| {
        let cluster = location.cluster.clone();
        let what = what.to_string();
        move |e: kube::Error| AgentInstallError::WorkloadRead {
            cluster,
            what,
            reason: e.to_string(),
        }
    };
    let secrets: Api<Secret> = Api::namespaced(workload.clone(), AGENT_NAMESPACE);
    let existing = secrets
        .get_opt(MANAGEMENT_SECRET)
        .await
        .map_err(unreadable("the agent's management Secret"))?;
    let (access, token_minted) = match reusable(existing.as_ref(), settings, Timestamp::now()) {
        Some(access) => (access, false),
        None => (mint_token(management, location, settings).await?, true),
    };
    let objects = workload_objects(location, &access, &settings.agent_image, providers)?;
    let in_workload = |source: ApplyError| AgentInstallError::Workload {
        cluster: location.cluster.clone(),
        source,
    };
    apply_typed(&workload, &objects.namespace)
        .await
        .map_err(in_workload)?;
    apply_typed(&workload, &objects.service_account)
        .await
        .map_err(in_workload)?;
    apply_typed(&workload, &objects.binding)
        .await
        .map_err(in_workload)?;
    apply_typed(&workload, &objects.secret)
        .await
        .map_err(in_workload)?;
    let deployment = apply_typed(&workload, &objects.deployment)
        .await
        .map_err(in_workload)?;
    if token_minted {
        tracing::info!(expires = %access.token_expires, "minted the agent's management token");
    }
    let status = deployment.status.unwrap_or_default();
    let current = deployment.metadata.generation == status.observed_generation;
    let available = current
        && status.available_replicas.unwrap_or(0) >= 1
        && status.updated_replicas.unwrap_or(0) >= 1;
    Ok(AgentReport {
        available,
        image: settings.agent_image.clone(),
        token_minted,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn settings() -> Settings {
        Settings {
            system_namespace: "strata-system".into(),
            agent_image: "strata-agent:test".into(),
            management_server: "https://mgmt:6443".into(),
            management_ca_pem: "CA".into(),
            agent_token_seconds: 3000,
            vsphere_provider_namespace: "capv-system".into(),
            aws_provider_namespace: "capa-system".into(),
            resync: Duration::from_secs(300),
            providers: Default::default(),
        }
    }

    fn secret(server: &str, expires: &str) -> Secret {
        let data = [("server", server), ("ca.crt", "CA"), ("token", "tok")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect();
        Secret {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    TOKEN_EXPIRES_ANNOTATION.to_string(),
                    expires.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..Secret::default()
        }
    }

    #[test]
    fn a_token_is_reused_until_a_third_of_its_life_is_left() {
        let now: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        let fresh = secret("https://mgmt:6443", "2026-11-21T10:40:00Z");
        assert_eq!(
            reusable(Some(&fresh), &settings(), now).unwrap().token,
            "tok"
        );
        // 1000 s (a third of 3000) or less left: mint anew.
        let old = secret("https://mgmt:6443", "2026-11-21T10:16:00Z");
        assert!(reusable(Some(&old), &settings(), now).is_none());
        let moved = secret("https://elsewhere:6443", "2026-11-21T10:40:00Z");
        assert!(reusable(Some(&moved), &settings(), now).is_none());
        assert!(reusable(None, &settings(), now).is_none());
    }
}
