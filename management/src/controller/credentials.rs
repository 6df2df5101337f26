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
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use strata_shared::agent_install::{owned_by, owner_labels};
use strata_shared::contracts::field_managers::CONTROLLER_FIELD_MANAGER;
use strata_shared::contracts::names::ClusterLocation;
use strata_shared::management_access::{
    ManagementAccess, credential_of, credential_secret, needs_renewal,
};

use super::context::{Settings, WRITE_TIMEOUT};

/// The longest life a token of an agent may have, whatever `--agent-token-seconds` says: a
/// token that leaked from a site is good for a week at most.
pub const MAX_TOKEN_SECONDS: i64 = 7 * 24 * 3600;
/// The shortest the API server allows.
pub const MIN_TOKEN_SECONDS: i64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot {action} {what}: {source}")]
    Api {
        action: &'static str,
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{action} {what} took longer than {seconds} s")]
    Timeout {
        action: &'static str,
        what: String,
        seconds: u64,
    },
    #[error("the API server answered the token request for {account} without a token")]
    NoToken { account: String },
    #[error("{what} exists but is not this cluster's (its labels name another); not touching it")]
    NotOurs { what: String },
}

async fn bounded<T>(
    action: &'static str,
    what: &str,
    call: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, CredentialError> {
    match tokio::time::timeout(WRITE_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(CredentialError::Api {
            action,
            what: what.to_string(),
            source: Box::new(source),
        }),
        Err(_) => Err(CredentialError::Timeout {
            action,
            what: what.to_string(),
            seconds: WRITE_TIMEOUT.as_secs(),
        }),
    }
}

fn is_status(error: &CredentialError, code: u16) -> bool {
    matches!(error, CredentialError::Api { source, .. }
        if matches!(source.as_ref(), kube::Error::Api(e) if e.code == code))
}

/// The lifetime tokens are minted with.
pub fn token_seconds(settings: &Settings) -> i64 {
    settings
        .agent_token_seconds
        .clamp(MIN_TOKEN_SECONDS, MAX_TOKEN_SECONDS)
}

/// The agent's credential as recorded, when the agent was ever installed.
pub async fn current(
    client: &Client,
    settings: &Settings,
    location: &ClusterLocation,
) -> Result<Option<Secret>, CredentialError> {
    let name = location.agent_names().credential_secret;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &settings.system_namespace);
    let what = format!("Secret {}/{name}", settings.system_namespace);
    let found = bounded("read", &what, secrets.get_opt(&name)).await?;
    match found {
        Some(secret) if !owned_by(secret.metadata.labels.as_ref(), location) => {
            Err(CredentialError::NotOurs { what })
        }
        other => Ok(other),
    }
}

/// Makes sure the agent's account exists and holds a fresh credential (see [`refresh`]).
pub async fn ensure(
    client: &Client,
    settings: &Settings,
    location: &ClusterLocation,
) -> Result<ManagementAccess, CredentialError> {
    let names = location.agent_names();
    let system = settings.system_namespace.as_str();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), system);
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
    let account_shown = format!("ServiceAccount {system}/{}", names.service_account);
    bounded(
        "apply",
        &account_shown,
        accounts.patch(
            &names.service_account,
            &PatchParams::apply(CONTROLLER_FIELD_MANAGER).force(),
            &Patch::Apply(&account),
        ),
    )
    .await?;
    let existing = current(client, settings, location).await?;
    refresh(client, settings, location, existing).await
}

/// Keeps the credential `existing` (None: make it) holding a token with more than a third
/// of its life left for the current management server and CA; mints one otherwise.
pub async fn refresh(
    client: &Client,
    settings: &Settings,
    location: &ClusterLocation,
    existing: Option<Secret>,
) -> Result<ManagementAccess, CredentialError> {
    let names = location.agent_names();
    let system = settings.system_namespace.as_str();
    let existing = match existing {
        Some(secret) => secret,
        None => create_anchor(client, settings, location).await?,
    };
    let lifetime = token_seconds(settings);
    if let Ok(access) = credential_of(&existing)
        && !needs_renewal(access.token_expires, lifetime, Timestamp::now())
        && access.server == settings.management_server
        && access.ca_pem == settings.management_ca_pem
    {
        return Ok(access);
    }
    let access = mint(client, settings, location, &existing, lifetime).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), system);
    let written = credential_secret(
        ObjectMeta {
            name: Some(names.credential_secret.clone()),
            namespace: Some(system.to_string()),
            labels: Some(owner_labels(location)),
            ..ObjectMeta::default()
        },
        &access,
    );
    bounded(
        "write",
        &format!("Secret {system}/{}", names.credential_secret),
        secrets.patch(
            &names.credential_secret,
            &PatchParams::apply(CONTROLLER_FIELD_MANAGER).force(),
            &Patch::Apply(&written),
        ),
    )
    .await?;
    tracing::info!(expires = %access.token_expires, "minted the agent's management token");
    Ok(access)
}

/// The credential Secret, empty: tokens are bound to its UID, so it exists before any.
async fn create_anchor(
    client: &Client,
    settings: &Settings,
    location: &ClusterLocation,
) -> Result<Secret, CredentialError> {
    let name = location.agent_names().credential_secret;
    let system = settings.system_namespace.as_str();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), system);
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
    let what = format!("Secret {system}/{name}");
    match bounded(
        "create",
        &what,
        secrets.create(&PostParams::default(), &anchor),
    )
    .await
    {
        Ok(created) => Ok(created),
        // Made meanwhile (another reconcile of the same cluster after a restart): use it.
        Err(e) if is_status(&e, 409) => current(client, settings, location)
            .await?
            .ok_or(CredentialError::NotOurs { what }),
        Err(e) => Err(e),
    }
}

async fn mint(
    client: &Client,
    settings: &Settings,
    location: &ClusterLocation,
    anchor: &Secret,
    lifetime: i64,
) -> Result<ManagementAccess, CredentialError> {
    let names = location.agent_names();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &settings.system_namespace);
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
    let account = format!(
        "ServiceAccount {}/{}",
        settings.system_namespace, names.service_account
    );
    let answer: TokenRequest = bounded(
        "request a token for",
        &account,
        accounts.create_subresource(
            "token",
            &names.service_account,
            &PostParams::default(),
            &request,
        ),
    )
    .await?;
    let status = answer.status.ok_or(CredentialError::NoToken {
        account: account.clone(),
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
    client: &Client,
    settings: &Settings,
    location: &ClusterLocation,
) -> Result<bool, CredentialError> {
    let Some(secret) = current(client, settings, location).await? else {
        return Ok(false);
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &settings.system_namespace);
    let name = secret.name_any();
    let what = format!("Secret {}/{name}", settings.system_namespace);
    match bounded(
        "delete",
        &what,
        secrets.delete(&name, &DeleteParams::default()),
    )
    .await
    {
        Ok(_) => {
            tracing::info!("revoked the agent's management tokens");
            Ok(true)
        }
        Err(e) if is_status(&e, 404) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the agent's account (carrying this cluster's labels) exists: an agent was
/// installed and its account not yet removed.
pub async fn account_exists(
    client: &Client,
    settings: &Settings,
    location: &ClusterLocation,
) -> Result<bool, CredentialError> {
    let name = location.agent_names().service_account;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &settings.system_namespace);
    let what = format!("ServiceAccount {}/{name}", settings.system_namespace);
    let found = bounded("read", &what, accounts.get_opt(&name)).await?;
    Ok(found.is_some_and(|a| owned_by(a.metadata.labels.as_ref(), location)))
}

/// Removes the agent's account and credential (deletion of the cluster).
pub async fn remove(
    client: &Client,
    settings: &Settings,
    location: &ClusterLocation,
) -> Result<(), CredentialError> {
    revoke(client, settings, location).await?;
    let names = location.agent_names();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &settings.system_namespace);
    let what = format!(
        "ServiceAccount {}/{}",
        settings.system_namespace, names.service_account
    );
    let Some(account) = bounded("read", &what, accounts.get_opt(&names.service_account)).await?
    else {
        return Ok(());
    };
    if !owned_by(account.metadata.labels.as_ref(), location) {
        return Err(CredentialError::NotOurs { what });
    }
    match bounded(
        "delete",
        &what,
        accounts.delete(&names.service_account, &DeleteParams::default()),
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(e),
    }
}
