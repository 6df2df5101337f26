//! The agent's management credential. Its service account lives in the controller's system
//! namespace, where the agent can write nothing (so it cannot make itself a token Secret,
//! which would never expire). The controller mints its tokens with a capped lifetime, bound to
//! the credential Secret that holds them there: deleting that Secret revokes every token of
//! the agent at once. It renews the token once a third of its life is left, whether or not
//! the agent is reachable; the agent fetches the renewed token itself (it may read that one
//! Secret), which is what keeps a pivoted cluster, reachable only from its side, connected.

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use strata_shared::agent_install::{owned_by, owner_labels};
use strata_shared::contracts::names::ClusterLocation;
use strata_shared::kube_writer::{Deleted, KubeWriter, Operation, Target, WriteError};
use strata_shared::management_access::{
    ManagementAccess, credential_of, credential_secret, needs_renewal,
};

use super::context::Settings;

/// The longest life a token of an agent may have, whatever `--agent-token-seconds` says: a
/// token that leaked from a site is good for a week at most.
pub const MAX_TOKEN_SECONDS: i64 = 7 * 24 * 3600;
/// The shortest the API server allows.
pub const MIN_TOKEN_SECONDS: i64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Kube(#[from] WriteError),
    #[error("the API server answered the token request for {account} without a token")]
    NoToken { account: String },
    #[error("{what} exists but is not this cluster's (its labels name another); not touching it")]
    NotOurs { what: String },
}

/// The lifetime tokens are minted with.
pub fn token_seconds(settings: &Settings) -> i64 {
    settings
        .agent_token_seconds
        .clamp(MIN_TOKEN_SECONDS, MAX_TOKEN_SECONDS)
}

/// The agent's credential as recorded, when the agent was ever installed.
pub async fn current(
    writer: &KubeWriter,
    settings: &Settings,
    location: &ClusterLocation,
) -> Result<Option<Secret>, CredentialError> {
    let name = location.agent_names().credential_secret;
    let secrets = writer.namespaced::<Secret>(&settings.system_namespace);
    match secrets.get(&name).await? {
        Some(secret) if !owned_by(secret.metadata.labels.as_ref(), location) => {
            Err(CredentialError::NotOurs {
                what: secrets.target(&name).to_string(),
            })
        }
        other => Ok(other),
    }
}

/// Makes sure the agent's account exists and holds a fresh credential (see [`refresh`]).
pub async fn ensure(
    writer: &KubeWriter,
    settings: &Settings,
    location: &ClusterLocation,
) -> Result<ManagementAccess, CredentialError> {
    let names = location.agent_names();
    let system = settings.system_namespace.as_str();
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(names.service_account.clone()),
            namespace: Some(system.to_string()),
            labels: Some(owner_labels(location)),
            ..ObjectMeta::default()
        },
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    };
    writer.apply(&account).await?;
    let existing = current(writer, settings, location).await?;
    refresh(writer, settings, location, existing).await
}

/// Keeps the credential `existing` (None: make it) holding a token with more than a third
/// of its life left for the current management server and CA; mints one otherwise.
pub async fn refresh(
    writer: &KubeWriter,
    settings: &Settings,
    location: &ClusterLocation,
    existing: Option<Secret>,
) -> Result<ManagementAccess, CredentialError> {
    let names = location.agent_names();
    let system = settings.system_namespace.as_str();
    let existing = match existing {
        Some(secret) => secret,
        None => create_anchor(writer, settings, location).await?,
    };
    let lifetime = token_seconds(settings);
    if let Ok(access) = credential_of(&existing)
        && !needs_renewal(access.token_expires, lifetime, Timestamp::now())
        && access.server == settings.management_server
        && access.ca_pem == settings.management_ca_pem
    {
        return Ok(access);
    }
    let access = mint(writer, settings, location, &existing, lifetime).await?;
    let written = credential_secret(
        ObjectMeta {
            name: Some(names.credential_secret.clone()),
            namespace: Some(system.to_string()),
            labels: Some(owner_labels(location)),
            ..ObjectMeta::default()
        },
        &access,
    );
    writer.apply(&written).await?;
    tracing::info!(expires = %access.token_expires, "minted the agent's management token");
    Ok(access)
}

/// The credential Secret, empty: tokens are bound to its UID, so it exists before any.
async fn create_anchor(
    writer: &KubeWriter,
    settings: &Settings,
    location: &ClusterLocation,
) -> Result<Secret, CredentialError> {
    let name = location.agent_names().credential_secret;
    let system = settings.system_namespace.as_str();
    let secrets = writer.namespaced::<Secret>(system);
    let anchor = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(system.to_string()),
            labels: Some(owner_labels(location)),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    // Made meanwhile (another reconcile of the same cluster after a restart): used, when
    // it is this cluster's.
    let found = secrets.create_or_adopt(&anchor).await?;
    if !owned_by(found.metadata.labels.as_ref(), location) {
        return Err(CredentialError::NotOurs {
            what: secrets.target(&name).to_string(),
        });
    }
    Ok(found)
}

async fn mint(
    writer: &KubeWriter,
    settings: &Settings,
    location: &ClusterLocation,
    anchor: &Secret,
    lifetime: i64,
) -> Result<ManagementAccess, CredentialError> {
    let names = location.agent_names();
    let accounts: Api<ServiceAccount> =
        Api::namespaced(writer.client().clone(), &settings.system_namespace);
    // No audiences: the API server's own, which both 1.20 and current releases accept.
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(lifetime),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Secret".into()),
                name: anchor.metadata.name.clone(),
                uid: anchor.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    };
    let account = Target::object(
        "ServiceAccount",
        Some(&settings.system_namespace),
        &names.service_account,
    );
    let answer: TokenRequest = writer
        .bounded(
            Operation::RequestToken,
            account.clone(),
            accounts.create_subresource(
                "token",
                &names.service_account,
                &PostParams::default(),
                &request,
            ),
        )
        .await?;
    let status = answer.status.ok_or(CredentialError::NoToken {
        account: account.to_string(),
    })?;
    Ok(ManagementAccess {
        server: settings.management_server.clone(),
        ca_pem: settings.management_ca_pem.clone(),
        token: status.token,
        token_expires: status.expiration_timestamp.0,
    })
}

/// Revokes every token of the agent (deleting the Secret they are bound to); the next
/// [`ensure`] mints a new one, bound to a new Secret.
pub async fn revoke(
    writer: &KubeWriter,
    settings: &Settings,
    location: &ClusterLocation,
) -> Result<bool, CredentialError> {
    let Some(secret) = current(writer, settings, location).await? else {
        return Ok(false);
    };
    let secrets = writer.namespaced::<Secret>(&settings.system_namespace);
    match secrets.delete(&secret.name_any()).await? {
        Deleted::Requested => {
            tracing::info!("revoked the agent's management tokens");
            Ok(true)
        }
        Deleted::AlreadyGone => Ok(false),
    }
}

/// Whether the agent's account (carrying this cluster's labels) exists: an agent was
/// installed and its account not yet removed.
pub async fn account_exists(
    writer: &KubeWriter,
    settings: &Settings,
    location: &ClusterLocation,
) -> Result<bool, CredentialError> {
    let name = location.agent_names().service_account;
    let accounts = writer.namespaced::<ServiceAccount>(&settings.system_namespace);
    let found = accounts.get(&name).await?;
    Ok(found.is_some_and(|a| owned_by(a.metadata.labels.as_ref(), location)))
}

/// Removes the agent's account and credential (deletion of the cluster).
pub async fn remove(
    writer: &KubeWriter,
    settings: &Settings,
    location: &ClusterLocation,
) -> Result<(), CredentialError> {
    revoke(writer, settings, location).await?;
    let names = location.agent_names();
    let accounts = writer.namespaced::<ServiceAccount>(&settings.system_namespace);
    let Some(account) = accounts.get(&names.service_account).await? else {
        return Ok(());
    };
    if !owned_by(account.metadata.labels.as_ref(), location) {
        return Err(CredentialError::NotOurs {
            what: accounts.target(&names.service_account).to_string(),
        });
    }
    accounts.delete(&names.service_account).await?;
    Ok(())
}
