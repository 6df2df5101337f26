//! Resolving the packs a cluster's profiles name, in the `PackRegistry`s the layers name.
//!
//! Pack versions are meant to be immutable, and a controller with hundreds of clusters on
//! the same profiles would otherwise fetch the same packs for every reconcile: a resolved
//! pack is remembered for a while, keyed by registry address, name and version. Failures
//! are not remembered, so a registry that comes back is used at once.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use strata_shared::catalog::{PackSource, ResolveError, ResolvedPack};
use strata_shared::pack_registry::PackRegistry;
use strata_shared::profile::ClusterProfile;
use strata_shared::registry::address::RegistryAddress;
use strata_shared::registry::cache::PackCache;
use strata_shared::registry::client::{PackRegistryClient, RegistryOptions};
use strata_shared::registry::credentials::Credentials;
use strata_shared::registry::resolver::RegistryPacks;

/// How long a resolved pack is trusted before its registry is asked again.
const REMEMBER_FOR: Duration = Duration::from_secs(300);

type PackKey = (String, String, String);
/// A `(name, version)` and what resolving it gave.
type Resolution = ((String, String), Result<ResolvedPack, ResolveError>);

pub struct PackResolver {
    cache: Option<PackCache>,
    work_dir: PathBuf,
    remembered: Mutex<HashMap<PackKey, (Instant, ResolvedPack)>>,
    /// One fetch at a time: clusters reconciled together mostly want the same packs, and
    /// the second one finds them remembered instead of fetching them again.
    fetching: tokio::sync::Mutex<()>,
}

/// The packs of one reconcile, by the registry name layers use.
pub struct ResolvedPacks {
    packs: BTreeMap<(String, String, String), Result<ResolvedPack, ResolveError>>,
    default_registry: Option<String>,
}

const DEFAULT: &str = "";

impl PackSource for ResolvedPacks {
    fn resolve(
        &self,
        name: &str,
        version: &str,
        registry: Option<&str>,
    ) -> Result<ResolvedPack, ResolveError> {
        let registry = registry.unwrap_or(DEFAULT);
        let key = (registry.to_string(), name.to_string(), version.to_string());
        match self.packs.get(&key) {
            Some(result) => result.clone(),
            None => Err(ResolveError::Fetch {
                reference: format!("{name}:{version}"),
                origin: self.describe(registry),
                reason: "it was not among the packs fetched for this cluster".into(),
            }),
        }
    }
}

impl ResolvedPacks {
    fn describe(&self, registry: &str) -> String {
        if registry == DEFAULT {
            match &self.default_registry {
                Some(name) => format!("the default PackRegistry {name}"),
                None => "the default PackRegistry".into(),
            }
        } else {
            format!("PackRegistry {registry}")
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A map of plain values: a panic elsewhere cannot leave it half-updated.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl PackResolver {
    pub fn new(cache: Option<PackCache>, work_dir: PathBuf) -> PackResolver {
        PackResolver {
            cache,
            work_dir,
            remembered: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Fetches every pack the `profiles`' layers name. `registries` are in lookup order
    /// (the cluster's namespace first); a layer without a registry uses the first one
    /// marked default.
    pub async fn resolve(
        &self,
        client: &Client,
        profiles: &[&ClusterProfile],
        registries: &[PackRegistry],
    ) -> ResolvedPacks {
        let default = registries.iter().find(|r| r.spec.default);
        let mut wanted: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for profile in profiles {
            for layer in &profile.spec.layers {
                let registry = layer
                    .registry
                    .clone()
                    .unwrap_or_else(|| DEFAULT.to_string());
                let list = wanted.entry(registry).or_default();
                let pair = (layer.name.clone(), layer.version.clone());
                if !list.contains(&pair) {
                    list.push(pair);
                }
            }
        }
        let mut packs = BTreeMap::new();
        for (registry_name, list) in wanted {
            let found = if registry_name == DEFAULT {
                default
            } else {
                registries.iter().find(|r| r.name_any() == registry_name)
            };
            let results = match found {
                Some(registry) => self.fetch(client, registry, &list).await,
                None => {
                    let reason = if registry_name == DEFAULT {
                        "no PackRegistry is marked default (spec.default: true) in the cluster's namespace or the system namespace".to_string()
                    } else {
                        let known: Vec<String> = registries.iter().map(|r| r.name_any()).collect();
                        format!(
                            "no PackRegistry named {registry_name:?} in the cluster's namespace or the system namespace (known: {})",
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        )
                    };
                    list.iter()
                        .map(|(name, version)| {
                            let error = ResolveError::Fetch {
                                reference: format!("{name}:{version}"),
                                origin: "the pack registries".into(),
                                reason: reason.clone(),
                            };
                            ((name.clone(), version.clone()), Err(error))
                        })
                        .collect()
                }
            };
            for ((name, version), result) in results {
                packs.insert((registry_name.clone(), name, version), result);
            }
        }
        ResolvedPacks {
            packs,
            default_registry: default.map(|r| r.name_any()),
        }
    }

    /// The remembered packs of `list`, and the ones to fetch.
    fn remembered_of(
        &self,
        address: &str,
        list: &[(String, String)],
    ) -> (Vec<Resolution>, Vec<(String, String)>) {
        let now = Instant::now();
        let mut results = Vec::new();
        let mut missing = Vec::new();
        let remembered = lock(&self.remembered);
        for (name, version) in list {
            let key = (address.to_string(), name.clone(), version.clone());
            match remembered.get(&key) {
                Some((at, pack)) if now.duration_since(*at) < REMEMBER_FOR => {
                    results.push(((name.clone(), version.clone()), Ok(pack.clone())));
                }
                _ => missing.push((name.clone(), version.clone())),
            }
        }
        (results, missing)
    }

    async fn fetch(
        &self,
        client: &Client,
        registry: &PackRegistry,
        list: &[(String, String)],
    ) -> Vec<Resolution> {
        let address = registry.spec.address();
        let failed = |reason: String| -> Vec<Resolution> {
            list.iter()
                .map(|(name, version)| {
                    let error = ResolveError::Fetch {
                        reference: format!("{name}:{version}"),
                        origin: format!("PackRegistry {} ({address})", registry.name_any()),
                        reason: reason.clone(),
                    };
                    ((name.clone(), version.clone()), Err(error))
                })
                .collect()
        };
        let (mut results, mut missing) = self.remembered_of(&address, list);
        if missing.is_empty() {
            return results;
        }
        let _turn = self.fetching.lock().await;
        // Another reconcile may have fetched them while this one waited.
        let (more, still_missing) = self.remembered_of(&address, &missing);
        results.extend(more);
        missing = still_missing;
        if missing.is_empty() {
            return results;
        }
        let registry_client = match self.client_for(client, registry).await {
            Ok(c) => c,
            Err(reason) => return failed(reason),
        };
        let work = match tempfile::Builder::new()
            .prefix("fetch-")
            .tempdir_in(&self.work_dir)
        {
            Ok(dir) => dir,
            Err(e) => {
                return failed(format!(
                    "cannot create a work folder in {}: {e}",
                    self.work_dir.display()
                ));
            }
        };
        let fetched =
            RegistryPacks::fetch(&registry_client, self.cache.as_ref(), &missing, work.path())
                .await;
        let mut remembered = lock(&self.remembered);
        for (name, version) in missing {
            let result = fetched.resolve(&name, &version, None);
            if let Ok(pack) = &result {
                remembered.insert(
                    (address.clone(), name.clone(), version.clone()),
                    (Instant::now(), pack.clone()),
                );
            }
            results.push(((name, version), result));
        }
        results
    }

    async fn client_for(
        &self,
        client: &Client,
        registry: &PackRegistry,
    ) -> Result<PackRegistryClient, String> {
        let spec = &registry.spec;
        let address: RegistryAddress = spec
            .address()
            .parse()
            .map_err(|e| format!("spec.endpoint/basePath {:?}: {e}", spec.address()))?;
        let credentials = match &spec.credentials_secret_ref {
            None => Credentials::Anonymous,
            Some(reference) => {
                let namespace = registry.namespace().unwrap_or_default();
                let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
                let secret = secrets
                    .get_opt(&reference.name)
                    .await
                    .map_err(|e| format!("cannot read Secret {namespace}/{}: {e}", reference.name))?
                    .ok_or_else(|| {
                        format!(
                            "spec.credentialsSecretRef: Secret {namespace}/{} does not exist",
                            reference.name
                        )
                    })?;
                let data = secret.data.unwrap_or_default();
                let text = |key: &str| {
                    data.get(key)
                        .and_then(|v| String::from_utf8(v.0.clone()).ok())
                        .ok_or_else(|| {
                            format!(
                                "Secret {namespace}/{} has no text key {key:?}; expected username and password",
                                reference.name
                            )
                        })
                };
                Credentials::Basic {
                    username: text("username")?,
                    password: text("password")?,
                }
            }
        };
        let options = RegistryOptions {
            plain_http: spec.plain_http,
            ca_pem: spec.ca_bundle.clone(),
            credentials,
            ..RegistryOptions::default()
        };
        PackRegistryClient::new(address, options).map_err(|e| e.to_string())
    }
}
