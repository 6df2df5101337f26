//! The pack registries a cluster's layers come from, as its agent needs them, kept in the
//! Secret [`PACK_REGISTRIES_SECRET`]: the controller writes it in the cluster's objects
//! namespace from the `PackRegistry` objects (and their credential Secrets) that the
//! cluster's revision names; the agent reads it there and keeps a copy in its own cluster.
//!
//! The site gets the registries' read credentials: a registry whose credentials may push
//! should not serve packs to sites (`docs/layers.md`). What the site fetches is still only
//! trusted by the digest its revision pins, so a copy changed on the site can redirect the
//! agent but not change what it installs.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::contracts::names::PACK_REGISTRIES_SECRET;
use crate::registry::address::RegistryAddress;
use crate::registry::client::{PackRegistryClient, RegistryError};
use crate::registry::credentials::Credentials;
use crate::registry::options::RegistryOptions;

/// The key of the Secret holding the registries, as JSON.
pub const REGISTRIES_KEY: &str = "registries.json";
/// The most the key may hold: a few registries with their CAs are far below it.
const MAX_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SiteAccessError {
    #[error("Secret {secret} has no key {REGISTRIES_KEY:?} (the controller writes it)")]
    Missing { secret: String },
    #[error(
        "Secret {secret}, key {REGISTRIES_KEY:?}: {bytes} bytes, more than the {MAX_BYTES} accepted"
    )]
    TooLarge { secret: String, bytes: usize },
    #[error(
        "Secret {secret}, key {REGISTRIES_KEY:?}: {reason}; expected JSON {{\"default\": NAME, \"registries\": {{NAME: {{\"address\": …}}}}}}"
    )]
    Malformed { secret: String, reason: String },
    #[error(
        "layer {layer}: its pack registry {registry:?} is not among the site's registries (known: {known})"
    )]
    Unknown {
        layer: String,
        registry: String,
        known: String,
    },
    #[error(
        "layer {layer} names no pack registry and the site's registries name no default (known: {known})"
    )]
    NoDefault { layer: String, known: String },
    #[error("pack registry {registry:?}: address {address:?}: {reason}")]
    Address {
        registry: String,
        address: String,
        reason: String,
    },
    #[error("pack registry {registry:?}: {source}")]
    Client {
        registry: String,
        #[source]
        source: RegistryError,
    },
}

/// One registry as a site reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteRegistry {
    /// `host[:port]/base`, as `PackRegistry.spec.endpoint` and `basePath` give it.
    pub address: String,
    #[serde(default)]
    pub plain_http: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Display for SiteRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        write!(f, "{}", self.address)?;
        if let Some(user) = &self.username {
            write!(f, " as {user}")?;
        }
        Ok(())
    }
}

/// Every registry a cluster's layers may name, by `PackRegistry` name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteRegistries {
    /// The registry of layers that name none (the default `PackRegistry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default)]
    pub registries: BTreeMap<String, SiteRegistry>,
}

impl SiteRegistries {
    /// The Secret `PACK_REGISTRIES_SECRET` holding them, with `meta`'s namespace and labels.
    pub fn to_secret(&self, mut meta: ObjectMeta) -> Secret {
        meta.name = Some(PACK_REGISTRIES_SECRET.into());
        // Plain strings and maps always serialize.
        let json = serde_json::to_string(self).unwrap_or_default();
        Secret {
            metadata: meta,
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([(
                REGISTRIES_KEY.to_string(),
                ByteString(json.into_bytes()),
            )])),
            ..Secret::default()
        }
    }

    /// Read from a Secret as data: size-capped, every field checked.
    pub fn from_secret(secret: &Secret) -> Result<SiteRegistries, SiteAccessError> {
        let shown = format!(
            "{}/{}",
            secret.metadata.namespace.as_deref().unwrap_or_default(),
            secret.metadata.name.as_deref().unwrap_or_default()
        );
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(REGISTRIES_KEY))
            .ok_or_else(|| SiteAccessError::Missing {
                secret: shown.clone(),
            })?;
        if bytes.0.len() > MAX_BYTES {
            return Err(SiteAccessError::TooLarge {
                secret: shown,
                bytes: bytes.0.len(),
            });
        }
        let parsed: SiteRegistries =
            serde_json::from_slice(&bytes.0).map_err(|e| SiteAccessError::Malformed {
                secret: shown.clone(),
                reason: e.to_string(),
            })?;
        if let Some(default) = &parsed.default
            && !parsed.registries.contains_key(default)
        {
            return Err(SiteAccessError::Malformed {
                secret: shown,
                reason: format!("the default {default:?} is not one of the registries"),
            });
        }
        Ok(parsed)
    }

    /// The registry of a layer that names `registry` (None: the default).
    pub fn for_layer(
        &self,
        layer: &str,
        registry: Option<&str>,
    ) -> Result<(&str, &SiteRegistry), SiteAccessError> {
        let known = || {
            let names: Vec<&str> = self.registries.keys().map(String::as_str).collect();
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        let name = match registry.or(self.default.as_deref()) {
            Some(name) => name,
            None => {
                return Err(SiteAccessError::NoDefault {
                    layer: layer.into(),
                    known: known(),
                });
            }
        };
        self.registries
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
            .ok_or_else(|| SiteAccessError::Unknown {
                layer: layer.into(),
                registry: name.into(),
                known: known(),
            })
    }
}

impl SiteRegistry {
    /// A client for it, with the same checks as any registry (no credentials over plain
    /// HTTP).
    pub fn client(&self, name: &str) -> Result<PackRegistryClient, SiteAccessError> {
        let address: RegistryAddress =
            self.address
                .parse()
                .map_err(
                    |e: crate::registry::address::AddressError| SiteAccessError::Address {
                        registry: name.into(),
                        address: self.address.clone(),
                        reason: e.to_string(),
                    },
                )?;
        let credentials = match (&self.username, &self.password) {
            (Some(username), Some(password)) => Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            _ => Credentials::Anonymous,
        };
        PackRegistryClient::new(
            address,
            RegistryOptions {
                plain_http: self.plain_http,
                ca_pem: self.ca_pem.clone(),
                credentials,
                ..RegistryOptions::default()
            },
        )
        .map_err(|source| SiteAccessError::Client {
            registry: name.into(),
            source,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> SiteRegistries {
        SiteRegistries {
            default: Some("samples".into()),
            registries: BTreeMap::from([(
                "samples".to_string(),
                SiteRegistry {
                    address: "registry.test:5000/samples".into(),
                    plain_http: false,
                    ca_pem: Some("-----BEGIN CERTIFICATE-----\n".into()),
                    username: Some("reader".into()),
                    password: Some("s3cret".into()),
                },
            )]),
        }
    }

    fn secret_with(json: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(PACK_REGISTRIES_SECRET.into()),
                namespace: Some("strata-system".into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                REGISTRIES_KEY.to_string(),
                ByteString(json.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn a_secret_round_trips() {
        let secret = sample().to_secret(ObjectMeta {
            namespace: Some("strata-wc-a".into()),
            ..ObjectMeta::default()
        });
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some(PACK_REGISTRIES_SECRET)
        );
        assert_eq!(SiteRegistries::from_secret(&secret).unwrap(), sample());
    }

    #[test]
    fn layers_find_their_registry_or_the_default() {
        let registries = sample();
        assert_eq!(registries.for_layer("cni", None).unwrap().0, "samples");
        assert_eq!(
            registries.for_layer("cni", Some("samples")).unwrap().0,
            "samples"
        );
        let unknown = registries
            .for_layer("cni", Some("other"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            unknown,
            "layer cni: its pack registry \"other\" is not among the site's registries (known: samples)"
        );
        let none = SiteRegistries::default()
            .for_layer("cni", None)
            .unwrap_err()
            .to_string();
        assert!(none.contains("name no default (known: none)"), "{none}");
    }

    #[test]
    fn bad_secrets_are_refused_naming_the_secret() {
        let missing = SiteRegistries::from_secret(&Secret::default())
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("has no key \"registries.json\""),
            "{missing}"
        );
        let malformed = SiteRegistries::from_secret(&secret_with("{\"registries\": 3}"))
            .unwrap_err()
            .to_string();
        assert!(
            malformed.starts_with(
                "Secret strata-system/strata-pack-registries, key \"registries.json\": invalid type"
            ),
            "{malformed}"
        );
        let unknown_field = SiteRegistries::from_secret(&secret_with(
            "{\"registries\": {\"a\": {\"address\": \"h/b\", \"exec\": \"rm\"}}}",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            unknown_field.contains("unknown field `exec`"),
            "{unknown_field}"
        );
        let bad_default = SiteRegistries::from_secret(&secret_with(
            "{\"default\": \"b\", \"registries\": {\"a\": {\"address\": \"h/b\"}}}",
        ))
        .unwrap_err()
        .to_string();
        assert!(bad_default.contains("the default \"b\" is not one of the registries"));
        let huge = format!(
            "{{\"registries\": {{}}, \"x\": \"{}\"}}",
            "a".repeat(MAX_BYTES)
        );
        let too_large = SiteRegistries::from_secret(&secret_with(&huge))
            .unwrap_err()
            .to_string();
        assert!(
            too_large.contains("more than the 262144 accepted"),
            "{too_large}"
        );
    }

    #[test]
    fn credentials_over_plain_http_are_refused_and_never_shown() {
        let mut registry = sample().registries["samples"].clone();
        registry.plain_http = true;
        let refused = registry.client("samples").unwrap_err().to_string();
        assert!(
            refused.starts_with("pack registry \"samples\": "),
            "{refused}"
        );
        assert!(!refused.contains("s3cret"));
        assert_eq!(registry.to_string(), "registry.test:5000/samples as reader");
    }
}
