//! Running the controller: the client, the HTTP endpoints, leader election, the watches,
//! and a graceful stop on SIGTERM/SIGINT or on losing the lease.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::DynamicObject;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config, ResourceExt};
use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::capi::CLUSTER;
use strata_shared::contracts::field_managers::CONTROLLER_FIELD_MANAGER;
use strata_shared::contracts::labels::{WORKLOAD_CLUSTER_LABEL, WORKLOAD_CLUSTER_NAMESPACE_LABEL};
use strata_shared::kube_writer::KubeWriter;
use strata_shared::leader::{LeaderElector, LeaderWatch, LeaseTiming};
use strata_shared::pack_registry::PackRegistry;
use strata_shared::probe_endpoints;
use strata_shared::profile::ClusterProfile;
use strata_shared::registry::cache::PackCache;

use super::ControllerArgs;
use super::cluster_story::ClusterStory;
use super::context::{Context, Settings, WRITE_TIMEOUT};
use super::health::Health;
use super::metrics::Metrics;
use super::packs::PackResolver;
use super::recent_writes::RecentWrites;
use super::reconcile::{ReconcileError, reconcile};
use super::wakes::{self, FirstSight, WakeFilter};

const LEASE_NAME: &str = "strata-controller";
const LEASE_SECONDS: u32 = 15;
/// How long running reconciles may take to finish once the controller stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What kept the controller from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("--kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no kubeconfig or in-cluster configuration found: {0}")]
    NoConfig(#[source] kube::config::InferConfigError),
    #[error("--identity {identity:?} cannot go in a User-Agent header: {source}")]
    Identity {
        identity: String,
        #[source]
        source: axum::http::header::InvalidHeaderValue,
    },
    #[error("--management-ca-file {}: {source}", path.display())]
    ManagementCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create a client: {0}")]
    Client(#[source] kube::Error),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the pack cache: {0}")]
    PackCache(#[source] strata_shared::registry::cache::CacheError),
    #[error("cannot create {}: {source}", path.display())]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach the API server: {0}")]
    ApiServer(#[source] kube::Error),
    #[error("{0}")]
    Lease(#[source] strata_shared::leader::LeaderError),
    #[error("the leader election of {identity} ended before it led")]
    ElectionEnded { identity: String },
    #[error("cannot watch {what}: {source}")]
    Watch {
        what: &'static str,
        #[source]
        source: kube::runtime::reflector::store::WriterDropped,
    },
}

/// Runs until stopped; an error says what kept it from starting or running.
pub fn run(args: ControllerArgs) -> Result<(), RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    runtime.block_on(run_async(args))
}

async fn load_config(path: Option<&Path>) -> Result<Config, RunError> {
    match path {
        Some(path) => {
            let kubeconfig = |source| RunError::Kubeconfig {
                path: path.to_path_buf(),
                source,
            };
            let text = Kubeconfig::read_from(path).map_err(kubeconfig)?;
            Config::from_custom_kubeconfig(text, &KubeConfigOptions::default())
                .await
                .map_err(kubeconfig)
        }
        None => Config::infer().await.map_err(RunError::NoConfig),
    }
}

fn pem_of(der_certificates: &[Vec<u8>]) -> String {
    use base64::Engine;
    let mut pem = String::new();
    for der in der_certificates {
        let encoded = base64::engine::general_purpose::STANDARD.encode(der);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

fn identity(args: &ControllerArgs) -> String {
    args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "strata".into());
        format!("{host}-{}", std::process::id())
    })
}

/// `strata-controller/<version> (<identity>)`: the apiserver's audit log then names the
/// replica behind every write.
fn user_agent(
    identity: &str,
) -> Result<(axum::http::HeaderName, axum::http::HeaderValue), RunError> {
    let text = format!(
        "strata-controller/{} ({identity})",
        env!("CARGO_PKG_VERSION")
    );
    let value = axum::http::HeaderValue::from_str(&text).map_err(|source| RunError::Identity {
        identity: identity.to_string(),
        source,
    })?;
    Ok((axum::http::header::USER_AGENT, value))
}

/// Resolves when SIGTERM or SIGINT arrives.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("terminated; stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
    }
}

/// Where agents reach the management cluster: its server and CA.
struct ManagementLinkAddress {
    server: String,
    ca_pem: String,
}

/// The management cluster's client (its requests naming this replica), and the address
/// agents are given.
async fn connect(
    args: &ControllerArgs,
    me: &str,
) -> Result<(Client, ManagementLinkAddress), RunError> {
    let mut config = load_config(args.kubeconfig.as_deref()).await?;
    config.headers.push(user_agent(me)?);
    let management_server = args.management_server.clone().unwrap_or_else(|| {
        config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string()
    });
    let management_ca_pem = match &args.management_ca_file {
        Some(path) => std::fs::read_to_string(path).map_err(|source| RunError::ManagementCa {
            path: path.clone(),
            source,
        })?,
        None => pem_of(config.root_cert.as_deref().unwrap_or_default()),
    };
    if args.management_server.is_none() && management_server.contains(".svc") {
        tracing::warn!(server = %management_server, "agents get the in-cluster API address; set --management-server to one they can reach");
    }
    let client = Client::try_from(config).map_err(RunError::Client)?;
    Ok((
        client,
        ManagementLinkAddress {
            server: management_server,
            ca_pem: management_ca_pem,
        },
    ))
}

/// What every reconcile shares, once the API server answers.
async fn context(
    args: &ControllerArgs,
    client: &Client,
    metrics: Arc<Metrics>,
    link: ManagementLinkAddress,
) -> Result<Arc<Context>, RunError> {
    let cache_root = args
        .cache_dir
        .clone()
        .unwrap_or_else(PackCache::default_root);
    let cache = PackCache::open(&cache_root).map_err(RunError::PackCache)?;
    let work_dir = cache_root.join("controller-work");
    std::fs::create_dir_all(&work_dir).map_err(|source| RunError::WorkDir {
        path: work_dir.clone(),
        source,
    })?;
    let resync = Duration::from_secs(args.resync_seconds.max(10));
    let settings = Settings {
        system_namespace: args.system_namespace.clone(),
        agent_image: args.agent_image.clone(),
        management_server: link.server,
        management_ca_pem: link.ca_pem,
        agent_token_seconds: args.agent_token_seconds,
        agent_silence: Duration::from_secs(args.agent_silence_seconds),
        controller_account: args.service_account.clone(),
        vsphere_provider_namespace: args.vsphere_provider_namespace.clone(),
        aws_provider_namespace: args.aws_provider_namespace.clone(),
        resync,
        provider_registry: args.provider_registry.clone(),
    };
    client
        .apiserver_version()
        .await
        .map_err(RunError::ApiServer)?;
    let profiles = mirror::<ClusterProfile>(client);
    let registries = mirror::<PackRegistry>(client);
    Ok(Arc::new(Context {
        client: client.clone(),
        writer: KubeWriter::new(client.clone(), CONTROLLER_FIELD_MANAGER, WRITE_TIMEOUT),
        settings,
        metrics,
        packs: PackResolver::new(Some(cache), work_dir),
        provider_inventory: Default::default(),
        profiles,
        registries,
        link: Default::default(),
        fleet: Default::default(),
        story: ClusterStory::new(client.clone()),
        recent: RecentWrites::new(resync),
    }))
}

async fn run_async(args: ControllerArgs) -> Result<(), RunError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let me = identity(&args);
    let (client, link) = connect(&args, &me).await?;

    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health {
        metrics: metrics.clone(),
        ready: Default::default(),
        leading: Default::default(),
    });
    let (address, _server) = probe_endpoints::serve(args.http_address, health.clone())
        .await
        .map_err(|source| RunError::Listen {
            address: args.http_address,
            source,
        })?;
    tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    let ctx = context(&args, &client, metrics, link).await?;
    health.ready.store(true, Ordering::Relaxed);

    let (leadership, leader) = if args.no_leader_election {
        (None, LeaderWatch::always())
    } else {
        let timing = LeaseTiming::from_seconds(LEASE_SECONDS).map_err(RunError::Lease)?;
        let leadership = LeaderElector::new(
            client.clone(),
            &args.system_namespace,
            LEASE_NAME,
            &me,
            timing,
        )
        .start();
        let leader = leadership.watch();
        (Some(leadership), leader)
    };
    let release = |leadership: Option<strata_shared::leader::Leadership>| async move {
        if let Some(leadership) = leadership
            && let Err(e) = leadership.release().await
        {
            tracing::warn!(error = %e, "cannot release the lease");
        }
    };
    // A replica that loses the lease stops every reconcile at once and stands by to lead
    // again: the elector only hands it back once no other replica holds it.
    loop {
        if leadership.is_some() {
            tracing::info!(identity = %me, namespace = %args.system_namespace, "waiting to lead");
            let mut waiting = leader.clone();
            tokio::select! {
                acquired = waiting.acquired() => if !acquired {
                    return Err(RunError::ElectionEnded { identity: me });
                },
                _ = shutdown_signal() => {
                    release(leadership).await;
                    return Ok(());
                }
            }
        }
        health.leading.store(true, Ordering::Relaxed);
        let ended = lead(&args, &client, &ctx, &leader).await;
        health.leading.store(false, Ordering::Relaxed);
        match ended? {
            Ended::Stopped => {
                release(leadership).await;
                tracing::info!("stopped");
                return Ok(());
            }
            Ended::Lost => {
                tracing::error!(identity = %me, "lost the leadership: running reconciles were cancelled; standing by");
            }
        }
    }
}

/// How a term of leading ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// SIGTERM or SIGINT.
    Stopped,
    /// The lease could not be renewed in time, or another replica holds it.
    Lost,
}

/// Reconciles WorkloadClusters while this replica leads.
async fn lead(
    args: &ControllerArgs,
    client: &Client,
    ctx: &Arc<Context>,
    leader: &LeaderWatch,
) -> Result<Ended, RunError> {
    for (what, ready) in [
        ("ClusterProfiles", ctx.profiles.wait_until_ready().await),
        ("PackRegistries", ctx.registries.wait_until_ready().await),
    ] {
        ready.map_err(|source| RunError::Watch { what, source })?;
    }
    tracing::info!("leading; reconciling WorkloadClusters");

    let clusters: Api<WorkloadCluster> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let capi_clusters: Api<DynamicObject> = Api::all_with(client.clone(), &CLUSTER.api_resource());
    let only_ours = watcher::Config::default().labels(WORKLOAD_CLUSTER_NAMESPACE_LABEL);
    let lost = Arc::new(AtomicBool::new(false));
    let terminated = Arc::new(AtomicBool::new(false));
    let stopping = Arc::new(tokio::sync::Notify::new());
    let stop = {
        let (lost, terminated, stopping) = (lost.clone(), terminated.clone(), stopping.clone());
        let mut leader = leader.clone();
        async move {
            tokio::select! {
                _ = shutdown_signal() => terminated.store(true, Ordering::SeqCst),
                _ = leader.lost() => lost.store(true, Ordering::SeqCst),
            }
            stopping.notify_one();
        }
    };
    let reconcile_while_leading = while_leading(leader);
    // Only events that change what a pass reads wake a cluster (see `wakes`); the store
    // still gets every event.
    let (known, store_writer) = reflector::store();
    let mut cluster_wakes = WakeFilter::new(wakes::cluster_fingerprint, FirstSight::Wakes);
    let cluster_events = watcher(clusters, watcher::Config::default())
        .default_backoff()
        .reflect(store_writer)
        .filter_map(move |event| futures::future::ready(woken(&mut cluster_wakes, event)));
    let mut capi_wakes = WakeFilter::new(wakes::capi_fingerprint, FirstSight::Recorded);
    let capi_events = watcher(capi_clusters, only_ours)
        .default_backoff()
        .filter_map(move |event| futures::future::ready(woken(&mut capi_wakes, event)));
    let mut ledger_wakes = WakeFilter::new(wakes::ledger_fingerprint, FirstSight::Recorded);
    let objects_namespaces: Api<Namespace> = Api::all(client.clone());
    let ledger_events = watcher(
        objects_namespaces,
        watcher::Config::default().labels(WORKLOAD_CLUSTER_LABEL),
    )
    .default_backoff()
    .filter_map(move |event| futures::future::ready(woken(&mut ledger_wakes, event)));
    let controller = Controller::for_stream(cluster_events, known.clone());
    ctx.fleet.watch(known.clone());
    let running = controller
        .with_config(ControllerConfig::default().concurrency(args.concurrency))
        // A changed profile changes the revision of every cluster that uses it.
        .watches(
            Api::<ClusterProfile>::all(client.clone()),
            watcher::Config::default(),
            move |profile| {
                let name = profile.profile_name().to_string();
                known
                    .state()
                    .iter()
                    .filter(|c| c.spec.profiles.iter().any(|p| p.name == name))
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .watches_stream_with(
            capi_events,
            |capi| {
                let namespace = capi
                    .labels()
                    .get(WORKLOAD_CLUSTER_NAMESPACE_LABEL)
                    .cloned()?;
                Some(ObjectRef::<WorkloadCluster>::new(&capi.name_any()).within(&namespace))
            },
            CLUSTER.api_resource(),
        )
        // A decision recorded in a cluster's ledger (by another replica, or by `strata
        // cluster reclaim`) is acted on at once.
        .watches_stream(ledger_events, |namespace| {
            let labels = namespace.labels();
            let cluster = labels.get(WORKLOAD_CLUSTER_LABEL)?;
            let cluster_namespace = labels.get(WORKLOAD_CLUSTER_NAMESPACE_LABEL)?;
            Some(ObjectRef::<WorkloadCluster>::new(cluster).within(cluster_namespace))
        })
        .graceful_shutdown_on(stop)
        .run(reconcile_while_leading, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    // Running reconciles get a while to finish on SIGTERM; one stuck on a slow API server
    // does not hold the process past its grace period.
    tokio::select! {
        _ = running => {}
        _ = async {
            stopping.notified().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::warn!(seconds = SHUTDOWN_GRACE.as_secs(), "running reconciles did not finish in time; stopping them"),
    }
    Ok(how_the_term_ended(
        terminated.load(Ordering::SeqCst),
        lost.load(Ordering::SeqCst) || !leader.is_leading(),
    ))
}

/// A replica told to stop stops, even if its lease lapsed while its reconciles wound down:
/// standing by again would leave it running after SIGTERM.
fn how_the_term_ended(terminated: bool, lost_the_lease: bool) -> Ended {
    if terminated {
        Ended::Stopped
    } else if lost_the_lease {
        Ended::Lost
    } else {
        // The controller's stream ended without either: nothing more to lead for.
        Ended::Stopped
    }
}

/// The object `event` wakes, if `filter` says it does; a watch error passes on, for the
/// controller to report and back off.
fn woken<K: kube::Resource + Clone>(
    filter: &mut WakeFilter<K>,
    event: Result<watcher::Event<K>, watcher::Error>,
) -> Option<Result<K, watcher::Error>> {
    match event {
        Ok(event) => filter.wakes(&event).map(Ok),
        Err(e) => Some(Err(e)),
    }
}

/// A reconcile that runs only while this replica leads, and is dropped wherever it is the
/// moment it does not: the successor may already be writing.
fn while_leading(
    leader: &LeaderWatch,
) -> impl Fn(
    Arc<WorkloadCluster>,
    Arc<Context>,
) -> futures::future::BoxFuture<'static, Result<Action, LeadingReconcileError>> {
    let leader = leader.clone();
    move |cluster: Arc<WorkloadCluster>, ctx: Arc<Context>| {
        let leader = leader.clone();
        Box::pin(async move {
            let namespace = cluster.namespace().unwrap_or_default();
            let name = cluster.name_any();
            match leader.run_while_leading(reconcile(cluster, ctx)).await {
                Some(result) => result.map_err(LeadingReconcileError::Reconcile),
                None => Err(LeadingReconcileError::NotLeading { namespace, name }),
            }
        })
    }
}

/// What a reconcile run under leadership ends with.
#[derive(Debug, thiserror::Error)]
enum LeadingReconcileError {
    #[error(transparent)]
    Reconcile(ReconcileError),
    #[error(
        "the reconcile of WorkloadCluster {namespace}/{name} was cancelled: this replica no longer leads"
    )]
    NotLeading { namespace: String, name: String },
}

/// A store of every `K`, kept current by a watch in the background.
fn mirror<K>(client: &Client) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects()
    .for_each(|event| {
        if let Err(e) = event {
            tracing::warn!(error = %e, kind = %K::kind(&()), "watch failed; retrying");
        }
        futures::future::ready(())
    });
    tokio::spawn(stream);
    store
}

/// Failed reconciles are retried after a fixed pause; the error is already in the
/// cluster's conditions, the log and the metrics.
fn error_policy(
    _cluster: Arc<WorkloadCluster>,
    _error: &LeadingReconcileError,
    _ctx: Arc<Context>,
) -> Action {
    Action::requeue(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_ends_in_a_stop_whenever_the_replica_was_told_to_stop() {
        for (terminated, lost_the_lease, expected) in [
            (true, true, Ended::Stopped),
            (true, false, Ended::Stopped),
            (false, true, Ended::Lost),
            (false, false, Ended::Stopped),
        ] {
            assert_eq!(
                how_the_term_ended(terminated, lost_the_lease),
                expected,
                "terminated={terminated} lost_the_lease={lost_the_lease}"
            );
        }
    }
}
