//! How an agent reaches the management cluster, as data in two Secrets:
//!
//! - the **credential Secret** in the management cluster's system namespace
//!   (`agent-<objects namespace>-credential`): the agent's current token, which the controller
//!   mints and renews there, with the management server and CA. Its tokens are bound to it, so
//!   deleting it revokes them. The agent may only read it.
//! - the **link Secret** in the workload cluster (`strata-system/strata-management`): the same
//!   access plus where the cluster's objects are. The controller writes it at install, the agent
//!   writes a renewed token into it, and `strata cluster rekey` writes it when the agent's token
//!   ran out while the site was cut off.
//!
//! Both are read as data: every key is checked, and a missing or malformed one is an error that
//! names it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

use crate::contracts::labels::TOKEN_EXPIRES_ANNOTATION;
use crate::contracts::names::{AGENT_NAME, ClusterLocation};

const KEY_SERVER: &str = "server";
const KEY_CA: &str = "ca.crt";
const KEY_TOKEN: &str = "token";
const KEY_KUBECONFIG: &str = "kubeconfig";
const KEY_NAMESPACE: &str = "namespace";
const KEY_CLUSTER: &str = "cluster";
const KEY_CLUSTER_NAMESPACE: &str = "clusterNamespace";
const KEY_SYSTEM_NAMESPACE: &str = "systemNamespace";
const KEY_CREDENTIAL: &str = "credentialSecret";
const KEY_IDENTITY_SECRET: &str = "identitySecret";
const KEY_PIVOT_ROUND: &str = "pivotRound";

/// A Secret's value larger than this is refused: none of these is ever near it.
const MAX_VALUE_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    #[error("Secret {secret} has no key {key:?}")]
    Missing { secret: String, key: &'static str },
    #[error("Secret {secret}, key {key:?}: {problem}")]
    Malformed {
        secret: String,
        key: &'static str,
        problem: String,
    },
    #[error("Secret {secret} has no annotation {TOKEN_EXPIRES_ANNOTATION} (an RFC 3339 time)")]
    NoExpiry { secret: String },
}

/// How the agent reaches the management cluster.
#[derive(Clone, PartialEq, Eq)]
pub struct ManagementAccess {
    pub server: String,
    pub ca_pem: String,
    pub token: String,
    pub token_expires: Timestamp,
}

impl std::fmt::Debug for ManagementAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementAccess")
            .field("server", &self.server)
            .field("token_expires", &self.token_expires)
            .finish_non_exhaustive()
    }
}

fn shown(secret: &Secret) -> String {
    format!(
        "{}/{}",
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default()
    )
}

fn text(secret: &Secret, key: &'static str) -> Result<String, AccessError> {
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| AccessError::Missing {
            secret: shown(secret),
            key,
        })?;
    let malformed = |problem: &str| AccessError::Malformed {
        secret: shown(secret),
        key,
        problem: problem.to_string(),
    };
    if value.0.len() > MAX_VALUE_BYTES {
        return Err(malformed(&format!(
            "{} bytes, over the {MAX_VALUE_BYTES}-byte limit",
            value.0.len()
        )));
    }
    let text = String::from_utf8(value.0.clone()).map_err(|_| malformed("not UTF-8 text"))?;
    if text.trim().is_empty() {
        return Err(malformed("empty"));
    }
    Ok(text)
}

fn expiry(secret: &Secret) -> Result<Timestamp, AccessError> {
    let value = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TOKEN_EXPIRES_ANNOTATION))
        .ok_or_else(|| AccessError::NoExpiry {
            secret: shown(secret),
        })?;
    value.parse().map_err(|_| AccessError::NoExpiry {
        secret: shown(secret),
    })
}

fn access_of(secret: &Secret) -> Result<ManagementAccess, AccessError> {
    let server = text(secret, KEY_SERVER)?;
    if !server.starts_with("https://") {
        return Err(AccessError::Malformed {
            secret: shown(secret),
            key: KEY_SERVER,
            problem: "expected an https:// URL".into(),
        });
    }
    let ca_pem = text(secret, KEY_CA)?;
    if !ca_pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(AccessError::Malformed {
            secret: shown(secret),
            key: KEY_CA,
            problem: "expected PEM certificates".into(),
        });
    }
    Ok(ManagementAccess {
        server,
        ca_pem,
        token: text(secret, KEY_TOKEN)?,
        token_expires: expiry(secret)?,
    })
}

fn secret_of(meta: ObjectMeta, data: BTreeMap<&str, String>, expires: Timestamp) -> Secret {
    let mut meta = meta;
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(TOKEN_EXPIRES_ANNOTATION.to_string(), expires.to_string());
    Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// The credential Secret as the controller writes it.
pub fn credential_secret(meta: ObjectMeta, access: &ManagementAccess) -> Secret {
    secret_of(
        meta,
        BTreeMap::from([
            (KEY_SERVER, access.server.clone()),
            (KEY_CA, access.ca_pem.clone()),
            (KEY_TOKEN, access.token.clone()),
        ]),
        access.token_expires,
    )
}

/// The access in a credential Secret.
pub fn credential_of(secret: &Secret) -> Result<ManagementAccess, AccessError> {
    access_of(secret)
}

/// A Secret `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Everything in the link Secret of a workload cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementLinkData {
    pub access: ManagementAccess,
    pub location: ClusterLocation,
    /// The management cluster's system namespace, where the credential Secret is.
    pub system_namespace: String,
    pub credential_secret: String,
    /// The cluster's cloud identity Secret in the management cluster, when it has one: the
    /// agent copies it again into its cluster when it changes there.
    pub identity_secret: Option<SecretKey>,
    /// Which pivot of the cluster this agent was installed for (the ledger's round): a move
    /// journal of an earlier round is kept aside, not resumed. Absent in the Secret: 1.
    pub pivot_round: u32,
}

impl ManagementLinkData {
    /// The Secret, named `meta`'s name.
    pub fn to_secret(&self, meta: ObjectMeta) -> Secret {
        let kubeconfig = serde_yaml::to_string(&management_kubeconfig(
            &self.access,
            &self.location.objects_namespace,
        ))
        // A kubeconfig of plain strings always serializes; the key is for people only.
        .unwrap_or_default();
        let mut data = BTreeMap::from([
            (KEY_SERVER, self.access.server.clone()),
            (KEY_CA, self.access.ca_pem.clone()),
            (KEY_TOKEN, self.access.token.clone()),
            (KEY_KUBECONFIG, kubeconfig),
            (KEY_NAMESPACE, self.location.objects_namespace.clone()),
            (KEY_CLUSTER, self.location.cluster.clone()),
            (
                KEY_CLUSTER_NAMESPACE,
                self.location.cluster_namespace.clone(),
            ),
            (KEY_SYSTEM_NAMESPACE, self.system_namespace.clone()),
            (KEY_CREDENTIAL, self.credential_secret.clone()),
            (KEY_PIVOT_ROUND, self.pivot_round.to_string()),
        ]);
        if let Some(identity) = &self.identity_secret {
            data.insert(KEY_IDENTITY_SECRET, identity.to_string());
        }
        secret_of(meta, data, self.access.token_expires)
    }

    /// Reads and checks a link Secret.
    pub fn from_secret(secret: &Secret) -> Result<ManagementLinkData, AccessError> {
        let access = access_of(secret)?;
        let location = ClusterLocation {
            cluster: text(secret, KEY_CLUSTER)?,
            cluster_namespace: text(secret, KEY_CLUSTER_NAMESPACE)?,
            objects_namespace: text(secret, KEY_NAMESPACE)?,
        };
        let identity_secret = match secret
            .data
            .as_ref()
            .and_then(|d| d.get(KEY_IDENTITY_SECRET))
        {
            None => None,
            Some(_) => {
                let value = text(secret, KEY_IDENTITY_SECRET)?;
                let (namespace, name) =
                    value
                        .split_once('/')
                        .ok_or_else(|| AccessError::Malformed {
                            secret: shown(secret),
                            key: KEY_IDENTITY_SECRET,
                            problem: format!("{value:?}: expected NAMESPACE/NAME"),
                        })?;
                Some(SecretKey {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                })
            }
        };
        let pivot_round = match secret.data.as_ref().and_then(|d| d.get(KEY_PIVOT_ROUND)) {
            // Written by a controller from before rounds: the first.
            None => 1,
            Some(_) => {
                let value = text(secret, KEY_PIVOT_ROUND)?;
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|r| *r >= 1)
                    .ok_or_else(|| AccessError::Malformed {
                        secret: shown(secret),
                        key: KEY_PIVOT_ROUND,
                        problem: format!("{value:?}: expected a round number from 1"),
                    })?
            }
        };
        Ok(ManagementLinkData {
            access,
            location,
            system_namespace: text(secret, KEY_SYSTEM_NAMESPACE)?,
            credential_secret: text(secret, KEY_CREDENTIAL)?,
            identity_secret,
            pivot_round,
        })
    }
}

/// A kubeconfig for the agent's management-cluster access, defaulting to its namespace.
pub fn management_kubeconfig(access: &ManagementAccess, namespace: &str) -> Kubeconfig {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(access.ca_pem.as_bytes());
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: "management".into(),
            cluster: Some(Cluster {
                server: Some(access.server.clone()),
                certificate_authority_data: Some(ca),
                ..Cluster::default()
            }),
            other: BTreeMap::new(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: AGENT_NAME.into(),
            auth_info: Some(AuthInfo {
                token: Some(access.token.clone().into()),
                ..AuthInfo::default()
            }),
            other: BTreeMap::new(),
        }],
        contexts: vec![NamedContext {
            name: "management".into(),
            context: Some(Context {
                cluster: "management".into(),
                user: Some(AGENT_NAME.into()),
                namespace: Some(namespace.into()),
                ..Context::default()
            }),
            other: BTreeMap::new(),
        }],
        current_context: Some("management".into()),
        ..Kubeconfig::default()
    }
}

/// Whether a token expiring at `expires`, of a life of `lifetime`, is to be renewed at
/// `now`: once a third of its life or less is left.
pub fn needs_renewal(expires: Timestamp, lifetime_seconds: i64, now: Timestamp) -> bool {
    let margin = k8s_openapi::jiff::SignedDuration::from_secs(lifetime_seconds / 3);
    expires.checked_sub(margin).map_or(true, |at| at <= now)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn access() -> ManagementAccess {
        ManagementAccess {
            server: "https://mgmt.example:6443".into(),
            ca_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
            token: "tok".into(),
            token_expires: "2026-12-01T00:00:00Z".parse().unwrap(),
        }
    }

    fn link() -> ManagementLinkData {
        ManagementLinkData {
            access: access(),
            location: ClusterLocation::of("team-a", "edge-1"),
            system_namespace: "strata-system".into(),
            credential_secret: "agent-x-credential".into(),
            identity_secret: Some(SecretKey {
                namespace: "capv-system".into(),
                name: "id".into(),
            }),
            pivot_round: 2,
        }
    }

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("strata-system".into()),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn the_link_secret_round_trips() {
        let secret = link().to_secret(meta("strata-management"));
        assert_eq!(ManagementLinkData::from_secret(&secret).unwrap(), link());
        let data = secret.data.unwrap();
        let kubeconfig: Kubeconfig = serde_yaml::from_slice(&data[KEY_KUBECONFIG].0).unwrap();
        let context = kubeconfig.contexts[0].context.as_ref().unwrap();
        assert_eq!(
            context.namespace.as_deref(),
            Some(link().location.objects_namespace.as_str())
        );
    }

    #[test]
    fn a_missing_or_bad_key_is_named() {
        let mut secret = link().to_secret(meta("strata-management"));
        secret.data.as_mut().unwrap().remove(KEY_SYSTEM_NAMESPACE);
        let error = ManagementLinkData::from_secret(&secret).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Secret strata-system/strata-management has no key \"systemNamespace\""
        );
        let mut secret = link().to_secret(meta("strata-management"));
        secret
            .data
            .as_mut()
            .unwrap()
            .insert(KEY_SERVER.into(), ByteString(b"http://plain:80".to_vec()));
        let error = ManagementLinkData::from_secret(&secret).unwrap_err();
        assert!(
            error.to_string().contains("expected an https:// URL"),
            "{error}"
        );
        let mut secret = credential_secret(meta("c"), &access());
        secret.metadata.annotations = None;
        assert!(matches!(
            credential_of(&secret),
            Err(AccessError::NoExpiry { .. })
        ));
        let mut secret = credential_secret(meta("c"), &access());
        secret.data.as_mut().unwrap().insert(
            KEY_TOKEN.into(),
            ByteString(vec![b'x'; MAX_VALUE_BYTES + 1]),
        );
        assert!(
            credential_of(&secret)
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
    }

    #[test]
    fn a_link_without_a_round_is_of_the_first_and_a_bad_round_is_named() {
        let mut secret = link().to_secret(meta("strata-management"));
        secret.data.as_mut().unwrap().remove(KEY_PIVOT_ROUND);
        assert_eq!(
            ManagementLinkData::from_secret(&secret)
                .unwrap()
                .pivot_round,
            1
        );
        secret
            .data
            .as_mut()
            .unwrap()
            .insert(KEY_PIVOT_ROUND.into(), ByteString(b"0".to_vec()));
        assert_eq!(
            ManagementLinkData::from_secret(&secret)
                .unwrap_err()
                .to_string(),
            "Secret strata-system/strata-management, key \"pivotRound\": \"0\": expected a round number from 1"
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let text = format!("{:?}", link());
        assert!(!text.contains("tok\""), "{text}");
    }

    #[test]
    fn a_token_is_renewed_once_a_third_of_its_life_is_left() {
        let expires: Timestamp = "2026-11-21T10:50:00Z".parse().unwrap();
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        assert!(!needs_renewal(expires, 3000, at("2026-11-21T10:00:00Z")));
        assert!(needs_renewal(expires, 3000, at("2026-11-21T10:33:20Z")));
        assert!(needs_renewal(expires, 3000, at("2026-11-21T11:00:00Z")));
    }
}
