//! Installs the Cluster API providers into the agent's own cluster before anything moves
//! there, as the revision pins them: each provider's pack pulled by digest through the
//! site's registries, its components (the pack's manifests) with clusterctl's variables
//! substituted, applied as one ApplySet per provider in install order (cert-manager, core,
//! bootstrap, control plane, infrastructure), and waited for (CRDs established,
//! Deployments available, Certificates issued, webhooks with their CA and a ready
//! endpoint) before the next. Last, clusterctl's inventory is written, so that clusterctl
//! recognises the providers. Idempotent: it runs at every start of an agent whose move
//! has not begun.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Endpoints;
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::Value;
use strata_shared::contracts::field_managers::AGENT_FIELD_MANAGER;
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::layer::install_order::{ObjectKey, layer_objects};
use strata_shared::layer::readiness::Readiness;
use strata_shared::layer_apply::{
    LayerApplyError, ManifestLayer, apply_manifest_layer, layer_readiness,
};
use strata_shared::provider::inventory::{INVENTORY_CRD_NAME, inventory_crd, inventory_object};
use strata_shared::provider::substitution::{SubstitutionError, substitute};
use strata_shared::provider::webhooks::{
    INJECT_CA_ANNOTATION, endpoints_ready, missing_ca, webhook_services,
};
use strata_shared::registry::site_access::SiteRegistries;
use strata_shared::revision::RevisionProvider;

use crate::layers::LayerSetup;
use crate::layers::pinned_pack::{self, PackPin};

/// Between two looks at what a provider waits for.
const POLL: Duration = Duration::from_secs(1);
/// How long clusterctl's inventory CRD may take to be served.
const INVENTORY_WAIT: Duration = Duration::from_secs(60);
/// The key of a provider pack's values.yaml that holds its variables.
const VARIABLES_KEY: &str = "variables";

#[derive(Debug, thiserror::Error)]
pub enum ProviderInstallError {
    #[error(
        "the cluster's revision pins no provider packs (the management cluster has no clusterctl provider inventory, docs/providers.md): the objects stay in the management cluster, where CAPI runs"
    )]
    NoProviders,
    #[error("the site's pack registries: {0}")]
    Registries(String),
    #[error("provider {provider} (pack {pack}): {reason}")]
    Pack {
        provider: String,
        pack: String,
        reason: String,
    },
    #[error("provider {provider} (pack {pack}), file {file}: {source}")]
    Variables {
        provider: String,
        pack: String,
        file: String,
        #[source]
        source: SubstitutionError,
    },
    #[error("provider {provider}: {source}")]
    Apply {
        provider: String,
        #[source]
        source: LayerApplyError,
    },
    #[error("provider {provider}: reading {object}: {source}")]
    Read {
        provider: String,
        object: String,
        #[source]
        source: WriteError,
    },
    #[error("provider {provider}: not ready after {waited:?}: {waiting}")]
    NotReady {
        provider: String,
        waited: Duration,
        waiting: String,
    },
    #[error("provider {provider}: {reason}")]
    Failed { provider: String, reason: String },
    #[error("clusterctl's inventory: {0}")]
    Inventory(#[source] WriteError),
    #[error("clusterctl's inventory: CRD {name} not served after {waited:?}")]
    InventoryNotServed {
        name: &'static str,
        waited: Duration,
    },
}

/// What was installed: `type name version` of each provider, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub providers: Vec<String>,
}

fn describe(provider: &RevisionProvider) -> String {
    format!(
        "{} {} {}",
        provider.kind, provider.provider_name, provider.version
    )
}

/// Installs `providers` (in the order given, which the revision keeps as install order),
/// each waited for at most `setup.timeout`; `progress` hears of each before it starts.
pub async fn install(
    setup: &LayerSetup,
    workload: &KubeWriter,
    registries: &SiteRegistries,
    providers: &[RevisionProvider],
    mut progress: impl FnMut(usize, &RevisionProvider),
) -> Result<Installed, ProviderInstallError> {
    // Objects moved where no controller acts on them would leave the cluster unmanaged.
    if providers.is_empty() {
        return Err(ProviderInstallError::NoProviders);
    }
    let mut installed = Vec::new();
    for (index, provider) in providers.iter().enumerate() {
        progress(index, provider);
        let span = tracing::info_span!("provider.install", provider = %describe(provider), pack = %provider.pack);
        let _entered = span.enter();
        let components = components(setup, registries, provider).await?;
        let name = describe(provider);
        let applied = apply_manifest_layer(
            &setup.client,
            &ManifestLayer {
                name: &provider.pack,
                namespace: &provider.namespace,
                rendered: &components,
            },
            AGENT_FIELD_MANAGER,
            setup.timeout,
        )
        .await
        .map_err(|source| ProviderInstallError::Apply {
            provider: name.clone(),
            source,
        })?;
        let webhooks = Webhooks::of(&components, &provider.namespace);
        wait_ready(setup, workload, provider, &applied.applied, &webhooks).await?;
        tracing::info!(objects = applied.applied.len(), "provider installed");
        installed.push(name);
    }
    write_inventory(workload, providers).await?;
    Ok(Installed {
        providers: installed,
    })
}

/// The provider's components: its pack pulled and checked, its manifests in file order
/// with its variables substituted.
async fn components(
    setup: &LayerSetup,
    registries: &SiteRegistries,
    provider: &RevisionProvider,
) -> Result<String, ProviderInstallError> {
    let failed = |reason: String| ProviderInstallError::Pack {
        provider: describe(provider),
        pack: format!("{}:{}", provider.pack, provider.pack_version),
        reason,
    };
    let pinned = pinned_pack::pull(
        setup,
        registries,
        &PackPin {
            name: &provider.pack,
            version: &provider.pack_version,
            digest: &provider.digest,
            registry: provider.registry.as_deref(),
        },
        "provider-",
    )
    .await
    .map_err(failed)?;
    let pack = pinned.pack;
    if pack.layout.manifests.is_empty() {
        return Err(failed(
            "it has no manifests; a provider pack holds its components as manifests/*.yaml".into(),
        ));
    }
    let variables = variables(&pack.values.document).map_err(failed)?;
    let mut text = String::new();
    for file in &pack.layout.manifests {
        let path = pack.dir.join(&file.path);
        let raw = std::fs::read_to_string(&path)
            .map_err(|e| failed(format!("cannot read {}: {e}", file.path)))?;
        let substituted =
            substitute(&raw, &variables).map_err(|source| ProviderInstallError::Variables {
                provider: describe(provider),
                pack: format!("{}:{}", provider.pack, provider.pack_version),
                file: file.path.clone(),
                source,
            })?;
        text.push_str("---\n");
        text.push_str(&substituted);
        text.push('\n');
    }
    Ok(text)
}

/// The pack's `variables:` (values.yaml), each a string as clusterctl takes them; numbers
/// and booleans are written as YAML writes them.
fn variables(values: &serde_yaml::Value) -> Result<BTreeMap<String, String>, String> {
    let Some(section) = values.get(VARIABLES_KEY) else {
        return Ok(BTreeMap::new());
    };
    let Some(mapping) = section.as_mapping() else {
        return Err(format!(
            "values.yaml {VARIABLES_KEY}: expected a mapping of NAME: value"
        ));
    };
    let mut found = BTreeMap::new();
    for (key, value) in mapping {
        let Some(name) = key.as_str() else {
            return Err(format!(
                "values.yaml {VARIABLES_KEY}: a key is not text: {key:?}"
            ));
        };
        let text = match value {
            serde_yaml::Value::String(s) => s.clone(),
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::Bool(b) => b.to_string(),
            serde_yaml::Value::Null => String::new(),
            _ => {
                return Err(format!(
                    "values.yaml {VARIABLES_KEY}.{name}: expected text, a number or a boolean"
                ));
            }
        };
        found.insert(name.to_string(), text);
    }
    Ok(found)
}

/// Waits until every object of the provider is ready, its webhooks have their CA and
/// a ready endpoint each.
async fn wait_ready(
    setup: &LayerSetup,
    workload: &KubeWriter,
    provider: &RevisionProvider,
    objects: &[ObjectKey],
    webhooks: &Webhooks,
) -> Result<(), ProviderInstallError> {
    let name = describe(provider);
    let started = Instant::now();
    loop {
        let mut waiting = Vec::new();
        let states = layer_readiness(&setup.client, &provider.pack, objects)
            .await
            .map_err(|source| ProviderInstallError::Apply {
                provider: name.clone(),
                source,
            })?;
        for (_, state) in &states {
            match state {
                Readiness::Ready => {}
                Readiness::NotReady { reason } => waiting.push(reason.clone()),
                Readiness::Failed { reason } => {
                    return Err(ProviderInstallError::Failed {
                        provider: name,
                        reason: reason.clone(),
                    });
                }
            }
        }
        if waiting.is_empty() {
            waiting = webhooks.waiting(workload, &name).await?;
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= setup.timeout {
            return Err(ProviderInstallError::NotReady {
                provider: name,
                waited: setup.timeout,
                waiting: waiting.join("; "),
            });
        }
        tracing::debug!(waiting = %waiting.join("; "), "provider not ready yet");
        tokio::time::sleep(POLL).await;
    }
}

/// The provider's webhooks as its components declare them: the Services they call, and
/// the objects that ask cert-manager for a CA (read again until they have it; only those,
/// since a provider's CRDs run to megabytes).
#[derive(Debug, Default, PartialEq)]
struct Webhooks {
    services: Vec<(String, String)>,
    injected: Vec<ObjectKey>,
}

impl Webhooks {
    fn of(components: &str, namespace: &str) -> Webhooks {
        let mut webhooks = Webhooks::default();
        // The components were applied from this very text: it parses.
        let Ok(objects) = layer_objects(components, namespace, None) else {
            return webhooks;
        };
        for object in objects {
            for service in webhook_services(&object.object) {
                if !webhooks.services.contains(&service) {
                    webhooks.services.push(service);
                }
            }
            let asks_for_ca = object
                .object
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(INJECT_CA_ANNOTATION))
                .is_some();
            if asks_for_ca {
                webhooks.injected.push(object.key);
            }
        }
        webhooks
    }

    /// What they still wait for: an injected CA, a ready endpoint.
    async fn waiting(
        &self,
        workload: &KubeWriter,
        provider: &str,
    ) -> Result<Vec<String>, ProviderInstallError> {
        let read_failed = |object: String| {
            move |source| ProviderInstallError::Read {
                provider: provider.to_string(),
                object,
                source,
            }
        };
        let mut waiting = Vec::new();
        for key in &self.injected {
            let resource =
                ApiResource::from_gvk(&GroupVersionKind::gvk(&key.group, &key.version, &key.kind));
            let found = workload
                .dynamic(&resource, key.namespace.as_deref())
                .get(&key.name)
                .await
                .map_err(read_failed(key.to_string()))?;
            let object = found
                .map(|f| serde_json::to_value(&f).unwrap_or(Value::Null))
                .unwrap_or(Value::Null);
            if let Some(reason) = missing_ca(&object) {
                waiting.push(format!("{key}: {reason}"));
            }
        }
        for (namespace, name) in &self.services {
            let endpoints = workload
                .namespaced::<Endpoints>(namespace)
                .get(name)
                .await
                .map_err(read_failed(format!("Endpoints {namespace}/{name}")))?;
            let ready = endpoints
                .map(|e| serde_json::to_value(&e).unwrap_or(Value::Null))
                .is_some_and(|e| endpoints_ready(&e));
            if !ready {
                waiting.push(format!(
                    "webhook Service {namespace}/{name} has no ready endpoint"
                ));
            }
        }
        Ok(waiting)
    }
}

/// clusterctl's inventory CRD and one Provider object per provider.
async fn write_inventory(
    workload: &KubeWriter,
    providers: &[RevisionProvider],
) -> Result<(), ProviderInstallError> {
    workload
        .apply_json(&inventory_crd())
        .await
        .map_err(ProviderInstallError::Inventory)?;
    let started = Instant::now();
    while !crate::crd_outline::is_established(workload, INVENTORY_CRD_NAME).await {
        if started.elapsed() > INVENTORY_WAIT {
            return Err(ProviderInstallError::InventoryNotServed {
                name: INVENTORY_CRD_NAME,
                waited: INVENTORY_WAIT,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for provider in providers {
        let Some(object) = inventory_object(
            provider.kind,
            &provider.provider_name,
            &provider.version,
            &provider.namespace,
        ) else {
            continue;
        };
        workload
            .apply_json(&object)
            .await
            .map_err(ProviderInstallError::Inventory)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_are_read_from_the_components_as_applied() {
        let components = "---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  name: capi-validating\n  annotations:\n    cert-manager.io/inject-ca-from: capi-system/capi-serving-cert\nwebhooks:\n- name: v.cluster.x-k8s.io\n  clientConfig:\n    service: {namespace: capi-system, name: capi-webhook-service}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: capi-webhook-service\n";
        let webhooks = Webhooks::of(components, "capi-system");
        assert_eq!(
            webhooks.services,
            vec![(
                "capi-system".to_string(),
                "capi-webhook-service".to_string()
            )]
        );
        assert_eq!(webhooks.injected.len(), 1);
        assert_eq!(webhooks.injected[0].kind, "ValidatingWebhookConfiguration");
        assert_eq!(
            Webhooks::of(
                "kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n",
                "x"
            ),
            Webhooks::default()
        );
    }

    #[test]
    fn pack_variables_are_text_and_other_shapes_are_refused() {
        let values: serde_yaml::Value = serde_yaml::from_str(
            "variables:\n  IMAGE: capv:1.13\n  REPLICAS: 2\n  DEBUG: false\n  EMPTY:\npack: {}\n",
        )
        .unwrap();
        let found = variables(&values).unwrap();
        assert_eq!(found["IMAGE"], "capv:1.13");
        assert_eq!(found["REPLICAS"], "2");
        assert_eq!(found["DEBUG"], "false");
        assert_eq!(found["EMPTY"], "");
        let none: serde_yaml::Value = serde_yaml::from_str("pack: {}\n").unwrap();
        assert!(variables(&none).unwrap().is_empty());
        let nested: serde_yaml::Value =
            serde_yaml::from_str("variables:\n  LIST: [a, b]\n").unwrap();
        assert_eq!(
            variables(&nested).unwrap_err(),
            "values.yaml variables.LIST: expected text, a number or a boolean"
        );
        let listed: serde_yaml::Value = serde_yaml::from_str("variables: [A]\n").unwrap();
        assert!(
            variables(&listed)
                .unwrap_err()
                .contains("expected a mapping")
        );
    }
}
