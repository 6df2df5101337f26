//! The pack registries a cluster's layers come from, handed to its agent: the Secret
//! `strata-pack-registries` in the cluster's objects namespace, which the agent may read
//! and keeps a copy of (`strata_shared::registry::site_access`). Only the registries the
//! revision's layers name are in it, with their read credentials: a registry's own, or
//! those of the first of its site mirrors whose selector matches the cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use strata_shared::agent_install::owner_labels;
use strata_shared::kube_writer::WriteError;
use strata_shared::pack_registry::{PackRegistry, PackRegistryMirror};
use strata_shared::registry::credentials::Credentials;
use strata_shared::registry::site_access::{SiteRegistries, SiteRegistry};
use strata_shared::revision::DesiredState;

use super::context::Context;
use super::packs::{Connection, RegistrySetupError, connection_settings};
use super::recent_writes::Written;
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
    #[error(
        "cluster {cluster}: PackRegistry {registry}: {field}: {reason}; expected a label selector (matchLabels, matchExpressions with In, NotIn, Exists or DoesNotExist)"
    )]
    MirrorSelector {
        cluster: String,
        registry: String,
        field: String,
        reason: String,
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
            SiteRegistriesError::Setup { .. } | SiteRegistriesError::MirrorSelector { .. } => {
                "RegistrySetupFailed"
            }
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
    let cluster_labels = valid.cluster.labels();
    for registry in wanted {
        let name = registry.name_any();
        let mirror = mirror_for(registry, cluster_labels).map_err(|(field, reason)| {
            SiteRegistriesError::MirrorSelector {
                cluster: valid.location.key(),
                registry: name.clone(),
                field,
                reason,
            }
        })?;
        let connection = match mirror {
            Some((index, mirror)) => Connection::of_mirror(index, mirror),
            None => Connection::of_spec(&registry.spec),
        };
        let address = connection.settings.address();
        let (_, options) = connection_settings(&ctx.writer, registry, connection)
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
                address,
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

/// The first of `registry`'s site mirrors whose selector matches a cluster's labels (with
/// its index), or none; a selector that is not one is an error naming its field.
fn mirror_for<'a>(
    registry: &'a PackRegistry,
    cluster_labels: &BTreeMap<String, String>,
) -> Result<Option<(usize, &'a PackRegistryMirror)>, (String, String)> {
    for (index, mirror) in registry.spec.site_mirrors.iter().enumerate() {
        let matches = match &mirror.cluster_selector {
            None => true,
            Some(selector) => Selector::try_from(selector.clone())
                .map_err(|e| {
                    (
                        format!("spec.siteMirrors[{index}].clusterSelector"),
                        e.to_string(),
                    )
                })?
                .matches(cluster_labels),
        };
        if matches {
            return Ok(Some((index, mirror)));
        }
    }
    Ok(None)
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
    let scope = &valid.location.objects_namespace;
    let written = Written::of(&secret);
    if ctx.recent.done(scope, SITE_REGISTRIES, written) {
        return Ok(());
    }
    ctx.writer
        .apply(&secret)
        .await
        .map_err(|source| SiteRegistriesError::Write {
            cluster: valid.location.key(),
            source,
        })?;
    ctx.recent.wrote(scope, SITE_REGISTRIES, written);
    Ok(())
}

/// The `recent_writes` entry of the site's registries Secret.
const SITE_REGISTRIES: &str = "site registries";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn registry(mirrors: serde_json::Value) -> PackRegistry {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "strata.dev/v1alpha1",
            "kind": "PackRegistry",
            "metadata": { "name": "packs", "namespace": "team" },
            "spec": { "endpoint": "packs.example:5000", "siteMirrors": mirrors },
        }))
        .unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn chosen(registry: &PackRegistry, pairs: &[(&str, &str)]) -> Option<String> {
        mirror_for(registry, &labels(pairs))
            .unwrap()
            .map(|(index, mirror)| format!("{index} {}", mirror.connection.address()))
    }

    #[test]
    fn the_first_mirror_whose_selector_matches_the_cluster_is_chosen() {
        let registry = registry(serde_json::json!([
            { "endpoint": "edge-a.example", "basePath": "/packs/",
              "clusterSelector": { "matchLabels": { "site": "a" } } },
            { "endpoint": "edge-any.example",
              "clusterSelector": { "matchExpressions": [
                  { "key": "site", "operator": "In", "values": ["a", "b"] }] } },
            { "endpoint": "everyone-else.example" },
        ]));
        assert_eq!(
            chosen(&registry, &[("site", "a")]).as_deref(),
            Some("0 edge-a.example/packs")
        );
        assert_eq!(
            chosen(&registry, &[("site", "b")]).as_deref(),
            Some("1 edge-any.example")
        );
        // A mirror without a selector is every cluster's.
        assert_eq!(
            chosen(&registry, &[]).as_deref(),
            Some("2 everyone-else.example")
        );
    }

    #[test]
    fn without_a_matching_mirror_the_registry_itself_is_used() {
        let one_mirror = registry(serde_json::json!([
            { "endpoint": "edge-a.example",
              "clusterSelector": { "matchLabels": { "site": "a" } } },
        ]));
        assert_eq!(chosen(&one_mirror, &[("site", "z")]), None);
        assert_eq!(chosen(&registry(serde_json::json!([])), &[]), None);
    }

    #[test]
    fn a_selector_that_is_not_one_names_its_field() {
        let registry = registry(serde_json::json!([
            { "endpoint": "edge-a.example",
              "clusterSelector": { "matchExpressions": [
                  { "key": "site", "operator": "Near", "values": ["a"] }] } },
        ]));
        let (field, reason) = mirror_for(&registry, &labels(&[("site", "a")])).unwrap_err();
        assert_eq!(field, "spec.siteMirrors[0].clusterSelector");
        assert!(reason.contains("operator"), "{reason}");
    }
}
