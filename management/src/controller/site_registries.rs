//! The pack registries a cluster's layers come from, handed to its agent: the Secret
//! `strata-pack-registries` in the cluster's objects namespace, which the agent may read
//! and keeps a copy of (`strata_shared::registry::site_access`). Only the registries the
//! revision's layers name are in it, with their read credentials.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use strata_shared::agent_install::owner_labels;
use strata_shared::kube_writer::WriteError;
use strata_shared::pack_registry::PackRegistry;
use strata_shared::registry::credentials::Credentials;
use strata_shared::registry::site_access::{SiteRegistries, SiteRegistry};
use strata_shared::revision::DesiredState;

use super::context::Context;
use super::packs::{RegistrySetupError, registry_settings};
use super::validate::ValidCluster;

#[derive(Debug, thiserror::Error)]
pub enum SiteRegistriesError {
    #[error(
        "cluster {cluster}: the pack registries for its agent: PackRegistry {registry}: {source}"
    )]
    Setup {
        cluster: String,
        registry: String,
        #[source]
        source: RegistrySetupError,
    },
    #[error("cluster {cluster}: writing the pack registries for its agent: {source}")]
    Write {
        cluster: String,
        #[source]
        source: WriteError,
    },
}

impl SiteRegistriesError {
    pub fn reason(&self) -> &'static str {
        match self {
            SiteRegistriesError::Setup { .. } => "RegistrySetupFailed",
            SiteRegistriesError::Write { source, .. } => {
                super::failure_reason::write_reason(source)
            }
        }
    }
}

/// The registries of `desired`'s layers, from `registries` (in lookup order: the cluster's
/// namespace first, as packs are resolved), keyed by `PackRegistry` name.
pub async fn site_registries(
    ctx: &Context,
    valid: &ValidCluster<'_>,
    registries: &[PackRegistry],
    desired: &DesiredState,
) -> Result<SiteRegistries, SiteRegistriesError> {
    let default = registries.iter().find(|r| r.spec.default);
    let mut site = SiteRegistries {
        default: default.map(|r| r.name_any()),
        registries: BTreeMap::new(),
    };
    let mut wanted: Vec<&PackRegistry> = Vec::new();
    for layer in &desired.layers {
        let found = match &layer.registry {
            Some(name) => registries.iter().find(|r| &r.name_any() == name),
            None => default,
        };
        // Resolution already refused a layer whose registry does not exist.
        if let Some(registry) = found
            && !wanted.iter().any(|w| w.name_any() == registry.name_any())
        {
            wanted.push(registry);
        }
    }
    for registry in wanted {
        let name = registry.name_any();
        let (_, options) = registry_settings(&ctx.writer, registry)
            .await
            .map_err(|source| SiteRegistriesError::Setup {
                cluster: valid.location.key(),
                registry: name.clone(),
                source,
            })?;
        let (username, password) = match options.credentials {
            Credentials::Anonymous => (None, None),
            Credentials::Basic { username, password } => (Some(username), Some(password)),
        };
        site.registries.insert(
            name,
            SiteRegistry {
                address: registry.spec.address(),
                plain_http: options.plain_http,
                ca_pem: options.ca_pem,
                username,
                password,
            },
        );
    }
    if site
        .default
        .as_ref()
        .is_some_and(|d| !site.registries.contains_key(d))
    {
        site.default = None;
    }
    Ok(site)
}

/// Writes them into the objects namespace, owned by it.
pub async fn publish(
    ctx: &Context,
    valid: &ValidCluster<'_>,
    objects_namespace: &Namespace,
    site: &SiteRegistries,
) -> Result<(), SiteRegistriesError> {
    let secret = site.to_secret(ObjectMeta {
        namespace: Some(objects_namespace.name_any()),
        labels: Some(owner_labels(&valid.location)),
        owner_references: Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            name: objects_namespace.name_any(),
            uid: objects_namespace.uid().unwrap_or_default(),
            ..OwnerReference::default()
        }]),
        ..ObjectMeta::default()
    });
    ctx.writer
        .apply(&secret)
        .await
        .map(|_| ())
        .map_err(|source| SiteRegistriesError::Write {
            cluster: valid.location.key(),
            source,
        })
}
