//! Resolving the packs a cluster's profiles name, in the `PackRegistry`s the layers name.
//!
//! Pack versions are meant to be immutable, and a controller with hundreds of clusters on
//! the same profiles would otherwise fetch the same packs for every reconcile: a resolved
//! pack is remembered for a while. Failures are not remembered, so a registry that comes
//! back is used at once.
//!
//! What a pack is remembered (and fetched) under is [`PackKey`]: the registry's identity
//! (address, plain HTTP or not, CA bundle) and a digest of the credentials it was fetched
//! with, then name and version. A `PackRegistry` with other credentials, or none, never
//! gets another one's private pack from memory; it asks the registry itself.
//!
//! Fetches of the same key at the same time are one fetch, whose result every caller gets
//! (a single flight); there is no lock across keys, so a slow registry holds up only the
//! clusters that need its packs. A fetch runs as a task of its own, so a reconcile that
//! is dropped does not cut off a fetch others wait for; each is bounded by the client's
//! deadline.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use strata_shared::catalog::{PackSource, ResolveError, ResolvedPack};
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::pack::archive::sha256_digest;
use strata_shared::pack_registry::{
    PackRegistry, PackRegistryMirror, PackRegistrySpec, RegistryConnection,
};
use strata_shared::profile::ClusterProfile;
use strata_shared::registry::address::RegistryAddress;
use strata_shared::registry::cache::PackCache;
use strata_shared::registry::client::{PackRegistryClient, RegistryOptions};
use strata_shared::registry::credentials::Credentials;
use strata_shared::registry::resolver::RegistryPacks;
use tracing::{Instrument, debug, info_span};

/// How long a resolved pack is trusted before its registry is asked again.
const REMEMBER_FOR: Duration = Duration::from_secs(300);

/// Who a pack was fetched from, and with what: everything that decides what the registry
/// answers. The credentials only as a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RegistryIdentity {
    /// `endpoint/basePath`.
    address: String,
    plain_http: bool,
    /// sha256 of the CA bundle.
    ca_bundle: Option<String>,
    /// sha256 of the user name and password; `anonymous` without credentials.
    credentials: String,
}

impl RegistryIdentity {
    fn of(address: &RegistryAddress, options: &RegistryOptions) -> RegistryIdentity {
        RegistryIdentity {
            address: address.to_string(),
            plain_http: options.plain_http,
            ca_bundle: options.ca_pem.as_deref().map(|pem| digest(&[pem])),
            credentials: match &options.credentials {
                Credentials::Anonymous => "anonymous".to_owned(),
                Credentials::Basic { username, password } => digest(&[username, password]),
            },
        }
    }
}

/// sha256 of the parts, each prefixed with its length so that ("ab", "c") and ("a", "bc")
/// differ.
fn digest(parts: &[&str]) -> String {
    let mut framed = Vec::new();
    for part in parts {
        framed.extend_from_slice(&(part.len() as u64).to_be_bytes());
        framed.extend_from_slice(part.as_bytes());
    }
    sha256_digest(&framed)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PackKey {
    registry: RegistryIdentity,
    name: String,
    version: String,
}

type FetchResult = Result<ResolvedPack, ResolveError>;
/// One fetch in progress, awaited by every caller that wants its key.
type Flight = Shared<BoxFuture<'static, FetchResult>>;
/// A `(name, version)` and what resolving it gave.
type Resolution = ((String, String), FetchResult);

#[derive(Default)]
struct Memory {
    remembered: HashMap<PackKey, (Instant, ResolvedPack)>,
    in_flight: HashMap<PackKey, Flight>,
}

/// What a caller gets for a key: the remembered pack, or a fetch to await.
enum Lookup {
    Remembered(Box<ResolvedPack>),
    Flight(Flight),
}

/// One pack to fetch: its name and version, from a named PackRegistry or the default one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackWant {
    pub registry: Option<String>,
    pub name: String,
    pub version: String,
}

pub struct PackResolver {
    cache: Option<PackCache>,
    work_dir: PathBuf,
    /// Shared with the fetch tasks, which record their result when they end.
    memory: Arc<Mutex<Memory>>,
}

/// The packs of one reconcile, by the registry name layers use.
pub struct ResolvedPacks {
    packs: BTreeMap<(String, String, String), FetchResult>,
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

fn lock(memory: &Mutex<Memory>) -> std::sync::MutexGuard<'_, Memory> {
    // Maps of plain values, never left half-updated: a panic elsewhere cannot poison them.
    memory.lock().unwrap_or_else(|p| p.into_inner())
}

impl PackResolver {
    pub fn new(cache: Option<PackCache>, work_dir: PathBuf) -> PackResolver {
        PackResolver {
            cache,
            work_dir,
            memory: Arc::new(Mutex::new(Memory::default())),
        }
    }

    /// Fetches every pack the `profiles`' layers name, and the `others` (the cluster's
    /// provider packs). `registries` are in lookup order (the cluster's namespace first);
    /// a pack without a registry uses the first one marked default.
    pub async fn resolve(
        &self,
        writer: &KubeWriter,
        profiles: &[&ClusterProfile],
        others: &[PackWant],
        registries: &[PackRegistry],
    ) -> ResolvedPacks {
        let default = registries.iter().find(|r| r.spec.default);
        let mut wanted: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let layers = profiles
            .iter()
            .flat_map(|p| &p.spec.layers)
            .map(|layer| PackWant {
                registry: layer.registry.clone(),
                name: layer.name.clone(),
                version: layer.version.clone(),
            });
        for want in layers.chain(others.iter().cloned()) {
            let registry = want.registry.unwrap_or_else(|| DEFAULT.to_string());
            let list = wanted.entry(registry).or_default();
            let pair = (want.name, want.version);
            if !list.contains(&pair) {
                list.push(pair);
            }
        }
        let lookups = wanted.into_iter().map(|(registry_name, list)| async move {
            let found = if registry_name == DEFAULT {
                default
            } else {
                registries.iter().find(|r| r.name_any() == registry_name)
            };
            let results = match found {
                Some(registry) => self.fetch(writer, registry, &list).await,
                None => unknown_registry(&registry_name, registries, &list),
            };
            (registry_name, results)
        });
        // Registries side by side: one that is slow does not delay the others' packs.
        let mut packs = BTreeMap::new();
        for (registry_name, results) in futures::future::join_all(lookups).await {
            for ((name, version), result) in results {
                packs.insert((registry_name.clone(), name, version), result);
            }
        }
        ResolvedPacks {
            packs,
            default_registry: default.map(|r| r.name_any()),
        }
    }

    async fn fetch(
        &self,
        writer: &KubeWriter,
        registry: &PackRegistry,
        list: &[(String, String)],
    ) -> Vec<Resolution> {
        let failed = |reason: RegistrySetupError| -> Vec<Resolution> {
            let reason = reason.to_string();
            list.iter()
                .map(|(name, version)| {
                    let error = ResolveError::Fetch {
                        reference: format!("{name}:{version}"),
                        origin: format!(
                            "PackRegistry {} ({})",
                            registry.name_any(),
                            registry.spec.connection.address()
                        ),
                        reason: reason.clone(),
                    };
                    ((name.clone(), version.clone()), Err(error))
                })
                .collect()
        };
        let (address, options) = match registry_settings(writer, registry).await {
            Ok(settings) => settings,
            Err(reason) => return failed(reason),
        };
        let identity = RegistryIdentity::of(&address, &options);
        // Made when a first pack is missing, and shared by the fetches it starts.
        let mut registry_client: Option<Arc<PackRegistryClient>> = None;
        let mut pending = Vec::new();
        let mut results = Vec::new();
        for (name, version) in list {
            let key = PackKey {
                registry: identity.clone(),
                name: name.clone(),
                version: version.clone(),
            };
            let lookup = self.lookup(&key, || {
                let fetcher = match &registry_client {
                    Some(fetcher) => Arc::clone(fetcher),
                    None => {
                        let made = PackRegistryClient::new(address.clone(), options.clone())
                            .map(Arc::new)
                            .map_err(RegistrySetupError::Client)?;
                        registry_client = Some(Arc::clone(&made));
                        made
                    }
                };
                Ok(self.start(key.clone(), fetcher))
            });
            let pair = (name.clone(), version.clone());
            match lookup {
                Ok(Lookup::Remembered(pack)) => results.push((pair, Ok(*pack))),
                Ok(Lookup::Flight(flight)) => pending.push(async move { (pair, flight.await) }),
                Err(reason) => return failed(reason),
            }
        }
        results.extend(futures::future::join_all(pending).await);
        results
    }

    /// The remembered pack of `key`, the fetch of it in progress, or a new fetch from
    /// `start` (Err: it could not be started), all under one lock so that two callers
    /// never start the same fetch.
    fn lookup(
        &self,
        key: &PackKey,
        start: impl FnOnce() -> Result<Flight, RegistrySetupError>,
    ) -> Result<Lookup, RegistrySetupError> {
        let mut memory = lock(&self.memory);
        if let Some((at, pack)) = memory.remembered.get(key)
            && at.elapsed() < REMEMBER_FOR
        {
            return Ok(Lookup::Remembered(Box::new(pack.clone())));
        }
        if let Some(flight) = memory.in_flight.get(key) {
            debug!(pack = %key.name, version = %key.version, "joining a fetch in progress");
            return Ok(Lookup::Flight(flight.clone()));
        }
        let flight = start()?;
        memory.in_flight.insert(key.clone(), flight.clone());
        Ok(Lookup::Flight(flight))
    }

    /// Fetches `key` in a task of its own; its end records the result.
    fn start(&self, key: PackKey, registry: Arc<PackRegistryClient>) -> Flight {
        let cache = self.cache.clone();
        let work_dir = self.work_dir.clone();
        let span = info_span!(
            "pack.fetch",
            registry = %key.registry.address,
            pack = %key.name,
            version = %key.version
        );
        let wanted = key.clone();
        let fetch = async move {
            let key = wanted;
            let work = tempfile::Builder::new()
                .prefix("fetch-")
                .tempdir_in(&work_dir)
                .map_err(|e| format!("cannot create a work folder in {}: {e}", work_dir.display()));
            let work = match work {
                Ok(work) => work,
                Err(reason) => {
                    return Err(ResolveError::Fetch {
                        reference: format!("{}:{}", key.name, key.version),
                        origin: format!("registry {}", key.registry.address),
                        reason,
                    });
                }
            };
            let wanted = [(key.name.clone(), key.version.clone())];
            RegistryPacks::fetch(&registry, cache.as_ref(), &wanted, work.path())
                .await
                .resolve(&key.name, &key.version, None)
        }
        .instrument(span);
        self.fly(key, fetch)
    }

    /// Runs `fetch` as a task recording its result for `key` when it ends: remembered
    /// when it succeeded, no longer in flight either way.
    fn fly(
        &self,
        key: PackKey,
        fetch: impl Future<Output = FetchResult> + Send + 'static,
    ) -> Flight {
        let memory = Arc::clone(&self.memory);
        let reference = format!("{}:{}", key.name, key.version);
        let origin = format!("registry {}", key.registry.address);
        let task = tokio::spawn(async move {
            let result = fetch.await;
            let mut memory = lock(&memory);
            if let Ok(pack) = &result {
                memory
                    .remembered
                    .insert(key.clone(), (Instant::now(), pack.clone()));
            }
            memory.in_flight.remove(&key);
            result
        });
        async move {
            task.await.unwrap_or_else(|error| {
                Err(ResolveError::Fetch {
                    reference,
                    origin,
                    reason: format!("the fetch stopped before it ended: {error}"),
                })
            })
        }
        .boxed()
        .shared()
    }
}

/// Every pack of `list` fails: no registry by that name.
fn unknown_registry(
    registry_name: &str,
    registries: &[PackRegistry],
    list: &[(String, String)],
) -> Vec<Resolution> {
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

/// Why a `PackRegistry` could not be used: each pack it should give fails with this reason.
#[derive(Debug, thiserror::Error)]
pub(super) enum RegistrySetupError {
    #[error("{field}.endpoint/basePath {address:?}: {source}")]
    Address {
        field: String,
        address: String,
        #[source]
        source: Box<strata_shared::registry::address::AddressError>,
    },
    #[error("{field}.credentialsSecretRef: {source}")]
    ReadSecret {
        field: String,
        #[source]
        source: WriteError,
    },
    #[error("{field}.credentialsSecretRef: Secret {namespace}/{name} does not exist")]
    SecretMissing {
        field: String,
        namespace: String,
        name: String,
    },
    #[error("Secret {namespace}/{name} has no text key {key:?}; expected username and password")]
    SecretKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("{0}")]
    Client(#[source] strata_shared::registry::client::RegistryError),
}

/// How to reach a registry, from a PackRegistry's spec or one of its site mirrors.
pub(super) struct Connection<'a> {
    /// Where in the PackRegistry these settings are, for messages (`spec`,
    /// `spec.siteMirrors[0]`).
    pub field: String,
    pub settings: &'a RegistryConnection,
}

impl<'a> Connection<'a> {
    pub fn of_spec(spec: &'a PackRegistrySpec) -> Self {
        Connection {
            field: "spec".into(),
            settings: &spec.connection,
        }
    }

    pub fn of_mirror(index: usize, mirror: &'a PackRegistryMirror) -> Self {
        Connection {
            field: format!("spec.siteMirrors[{index}]"),
            settings: &mirror.connection,
        }
    }
}

/// The address and client options a `PackRegistry` and its Secret give.
pub(super) async fn registry_settings(
    writer: &KubeWriter,
    registry: &PackRegistry,
) -> Result<(RegistryAddress, RegistryOptions), RegistrySetupError> {
    connection_settings(writer, registry, Connection::of_spec(&registry.spec)).await
}

/// The address and client options of one connection of `registry`, reading its
/// credentials Secret from the registry's namespace.
pub(super) async fn connection_settings(
    writer: &KubeWriter,
    registry: &PackRegistry,
    connection: Connection<'_>,
) -> Result<(RegistryAddress, RegistryOptions), RegistrySetupError> {
    let Connection { field, settings } = connection;
    let address = settings.address();
    let parsed: RegistryAddress =
        address
            .parse()
            .map_err(|source| RegistrySetupError::Address {
                field: field.clone(),
                address: address.clone(),
                source: Box::new(source),
            })?;
    let credentials = match &settings.credentials_secret_ref {
        None => Credentials::Anonymous,
        Some(reference) => {
            let namespace = registry.namespace().unwrap_or_default();
            let secret = writer
                .namespaced::<Secret>(&namespace)
                .get(&reference.name)
                .await
                .map_err(|source| RegistrySetupError::ReadSecret {
                    field: field.clone(),
                    source,
                })?
                .ok_or_else(|| RegistrySetupError::SecretMissing {
                    field: field.clone(),
                    namespace: namespace.clone(),
                    name: reference.name.clone(),
                })?;
            let data = secret.data.unwrap_or_default();
            let text = |key: &str| {
                data.get(key)
                    .and_then(|v| String::from_utf8(v.0.clone()).ok())
                    .ok_or_else(|| RegistrySetupError::SecretKey {
                        namespace: namespace.clone(),
                        name: reference.name.clone(),
                        key: key.to_string(),
                    })
            };
            Credentials::Basic {
                username: text("username")?,
                password: text("password")?,
            }
        }
    };
    let options = RegistryOptions {
        plain_http: settings.plain_http,
        ca_pem: settings.ca_bundle.clone(),
        credentials,
        ..RegistryOptions::default()
    };
    Ok((parsed, options))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use strata_shared::pack::PackContent;
    use strata_shared::pack::manifest::parse_manifest;

    use super::*;

    fn options(credentials: Credentials) -> RegistryOptions {
        RegistryOptions {
            ca_pem: Some("-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----".into()),
            credentials,
            ..RegistryOptions::default()
        }
    }

    fn basic(username: &str, password: &str) -> Credentials {
        Credentials::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    fn identity(options: &RegistryOptions) -> RegistryIdentity {
        RegistryIdentity::of(&"registry.example:5000/team".parse().unwrap(), options)
    }

    fn key(registry: RegistryIdentity) -> PackKey {
        PackKey {
            registry,
            name: "private".into(),
            version: "1.0.0".into(),
        }
    }

    fn pack() -> ResolvedPack {
        let (manifest, findings) = parse_manifest(
            r#"{"name": "private", "displayName": "Private", "version": "1.0.0", "layer": "os"}"#,
        );
        let manifest = manifest.unwrap_or_else(|| panic!("{findings:?}"));
        ResolvedPack {
            manifest,
            values: serde_yaml::Value::Null,
            rules: Default::default(),
            digest: format!("sha256:{}", "a".repeat(64)),
            content: PackContent::None,
            origin: "registry.example:5000/team/spectro-packs/archive/private:1.0.0".into(),
        }
    }

    fn resolver() -> PackResolver {
        PackResolver::new(None, std::env::temp_dir())
    }

    fn remembered(resolver: &PackResolver, key: &PackKey) -> bool {
        let lookup = resolver.lookup(key, || {
            Err(RegistrySetupError::SecretMissing {
                field: "spec".into(),
                namespace: "test".into(),
                name: "would-fetch".into(),
            })
        });
        matches!(lookup, Ok(Lookup::Remembered(_)))
    }

    #[test]
    fn the_identity_covers_address_transport_ca_and_credentials() {
        let alice = identity(&options(basic("alice", "a-secret")));
        assert_eq!(alice, identity(&options(basic("alice", "a-secret"))));
        assert_ne!(alice, identity(&options(basic("alice", "another"))));
        assert_ne!(alice, identity(&options(basic("bob", "a-secret"))));
        assert_ne!(alice, identity(&options(Credentials::Anonymous)));
        // User name and password are not just concatenated.
        assert_ne!(
            identity(&options(basic("ab", "c"))),
            identity(&options(basic("a", "bc")))
        );
        let other_ca = RegistryOptions {
            ca_pem: Some("-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----".into()),
            ..options(basic("alice", "a-secret"))
        };
        assert_ne!(alice, identity(&other_ca));
        let other_base = RegistryIdentity::of(
            &"registry.example:5000/other".parse().unwrap(),
            &options(basic("alice", "a-secret")),
        );
        assert_ne!(alice, other_base);
        let plain = identity(&RegistryOptions {
            plain_http: true,
            ..options(Credentials::Anonymous)
        });
        assert_ne!(identity(&options(Credentials::Anonymous)), plain);
        // Never the credentials themselves.
        let shown = format!("{alice:?}");
        assert!(
            !shown.contains("a-secret") && !shown.contains("alice"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn a_pack_fetched_with_credentials_is_remembered_for_those_credentials_only() {
        let resolver = resolver();
        let alice = key(identity(&options(basic("alice", "a-secret"))));
        let flight = resolver
            .lookup(&alice, || {
                Ok(resolver.fly(alice.clone(), async { Ok(pack()) }))
            })
            .unwrap();
        let Lookup::Flight(flight) = flight else {
            panic!("nothing was remembered yet");
        };
        assert_eq!(flight.await.unwrap().digest, pack().digest);
        assert!(remembered(&resolver, &alice));
        for other in [
            key(identity(&options(Credentials::Anonymous))),
            key(identity(&options(basic("mallory", "guess")))),
            key(identity(&options(basic("alice", "old-password")))),
        ] {
            assert!(!remembered(&resolver, &other), "{other:?}");
        }
    }

    #[tokio::test]
    async fn failures_are_not_remembered() {
        let resolver = resolver();
        let anonymous = key(identity(&options(Credentials::Anonymous)));
        let failing = resolver.fly(anonymous.clone(), async {
            Err(ResolveError::Fetch {
                reference: "private:1.0.0".into(),
                origin: "registry".into(),
                reason: "401".into(),
            })
        });
        assert!(failing.await.is_err());
        assert!(!remembered(&resolver, &anonymous));
        assert!(lock(&resolver.memory).in_flight.is_empty());
    }

    #[tokio::test]
    async fn concurrent_fetches_of_one_key_are_one_and_other_keys_do_not_wait() {
        let resolver = resolver();
        let started = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let slow = key(identity(&options(Credentials::Anonymous)));
        let start_slow = |started: Arc<AtomicUsize>, released| {
            let fetch = async move {
                started.fetch_add(1, Ordering::SeqCst);
                let _ = released.await;
                Ok(pack())
            };
            resolver.fly(slow.clone(), fetch)
        };
        let mut released = Some(released);
        let mut flights = Vec::new();
        for _ in 0..3 {
            let lookup = resolver
                .lookup(&slow, || {
                    Ok(start_slow(
                        Arc::clone(&started),
                        released.take().expect("started once"),
                    ))
                })
                .unwrap();
            let Lookup::Flight(flight) = lookup else {
                panic!("nothing was remembered yet");
            };
            flights.push(flight);
        }

        // Another registry's fetch ends while the slow one is still running.
        let fast = key(identity(&options(basic("alice", "a-secret"))));
        let Lookup::Flight(other) = resolver
            .lookup(&fast, || {
                Ok(resolver.fly(fast.clone(), async { Ok(pack()) }))
            })
            .unwrap()
        else {
            panic!("nothing was remembered yet");
        };
        assert!(other.await.is_ok());
        assert!(lock(&resolver.memory).in_flight.contains_key(&slow));

        release.send(()).unwrap();
        for flight in flights {
            assert!(flight.await.is_ok());
        }
        assert_eq!(started.load(Ordering::SeqCst), 1);
        assert!(remembered(&resolver, &slow));
    }
}
