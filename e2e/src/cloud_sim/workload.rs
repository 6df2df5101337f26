//! The workload clusters: each is a real control plane (the substrate's `ControlPlane`)
//! with a simulated kubelet registering one Node per running Machine.
//!
//! They live in a process-wide registry keyed by the cluster's identity (the
//! `sim.strata.dev/cluster-id` annotation), not by the apiserver its CAPI objects are in:
//! when the objects are moved to another apiserver, the simulator watching that one finds
//! the same control plane and continues the cluster. A control plane stops when its Cluster
//! is deleted, or at [`stop_all`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::ListParams;
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use super::SimError;
use super::api::Kube;
use super::attach::{self, Apiserver};
use super::kinds::{CLUSTER, KUBEADM_CONTROL_PLANE};
use super::objects::{CLUSTER_NAME_LABEL, name, uid};
use super::snapshot::ClusterView;
use crate::control_plane::{ControlPlane, ControlPlaneOptions};
use crate::kubelet_sim::{KubeletSettings, SimulatedKubelet};

/// How long a failed start is remembered before the next attempt.
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// The type CAPI gives the secrets it writes for a cluster.
pub const CAPI_SECRET_TYPE: &str = "cluster.x-k8s.io/secret";

/// A running workload cluster.
pub struct Workload {
    id: String,
    // Dropped before the control plane, so its tasks stop before the apiserver does.
    kubelet: SimulatedKubelet,
    apiserver: Apiserver,
    kubeconfig: String,
    /// `-ca`, `-etcd`, `-sa`, `-proxy`: fixed at start so every write is the same. Empty
    /// for an attached cluster: its secrets were written by the process that started it,
    /// and moved with its objects.
    certificates: Vec<(&'static str, BTreeMap<String, String>)>,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("id", &self.id)
            .field("server", &self.server())
            .field(
                "attached",
                &matches!(self.apiserver, Apiserver::Attached { .. }),
            )
            .finish()
    }
}

impl Workload {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(super) fn attached(
        id: &str,
        kubelet: SimulatedKubelet,
        apiserver: Apiserver,
        kubeconfig: String,
    ) -> Workload {
        Workload {
            id: id.to_string(),
            kubelet,
            apiserver,
            kubeconfig,
            certificates: Vec::new(),
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server(&self) -> &str {
        match &self.apiserver {
            Apiserver::Owned(control_plane) => control_plane.server(),
            Apiserver::Attached { server, .. } => server,
        }
    }

    pub fn port(&self) -> u16 {
        match &self.apiserver {
            Apiserver::Owned(control_plane) => control_plane.apiserver_port(),
            Apiserver::Attached { port, .. } => *port,
        }
    }

    /// An admin client of the workload apiserver.
    pub fn client(&self) -> Client {
        match &self.apiserver {
            Apiserver::Owned(control_plane) => control_plane.client(),
            Apiserver::Attached { client, .. } => client.clone(),
        }
    }

    /// The cluster CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        match &self.apiserver {
            Apiserver::Owned(control_plane) => control_plane.ca_pem(),
            Apiserver::Attached { ca_pem, .. } => ca_pem,
        }
    }

    /// The admin kubeconfig, as written to `<cluster>-kubeconfig`.
    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    /// The control plane, when this process started it.
    pub fn control_plane(&self) -> Option<&ControlPlane> {
        match &self.apiserver {
            Apiserver::Owned(control_plane) => Some(control_plane),
            Apiserver::Attached { .. } => None,
        }
    }

    pub fn kubelet(&self) -> &SimulatedKubelet {
        &self.kubelet
    }
}

enum Entry {
    Starting,
    Running(Arc<Workload>),
    Failed { at: Instant, error: String },
}

static REGISTRY: LazyLock<Mutex<HashMap<String, Entry>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn registry() -> std::sync::MutexGuard<'static, HashMap<String, Entry>> {
    // Entries are replaced whole; a panic elsewhere cannot leave one half-written.
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running workload cluster of a cluster identity.
pub fn running(id: &str) -> Option<Arc<Workload>> {
    match registry().get(id) {
        Some(Entry::Running(workload)) => Some(workload.clone()),
        _ => None,
    }
}

/// Why the last start of this identity's control plane failed, if it did.
pub fn start_error(id: &str) -> Option<String> {
    match registry().get(id) {
        Some(Entry::Failed { error, .. }) => Some(error.clone()),
        _ => None,
    }
}

/// Starts the identity's control plane in the background unless it runs, is starting, or
/// failed moments ago. With the cluster's `kubeconfig` (its `<cluster>-kubeconfig`
/// secret, moved here with its objects), the apiserver it names is attached to instead
/// when it still runs and is this identity's.
pub fn ensure_started(
    id: &str,
    cluster: &str,
    controller_manager: bool,
    nodes: KubeletSettings,
    kubeconfig: Option<String>,
) {
    {
        let mut registry = registry();
        match registry.get(id) {
            Some(Entry::Running(_) | Entry::Starting) => return,
            Some(Entry::Failed { at, .. }) if at.elapsed() < RETRY_AFTER => return,
            _ => {}
        }
        registry.insert(id.to_string(), Entry::Starting);
    }
    let (id, cluster) = (id.to_string(), cluster.to_string());
    tokio::spawn(async move {
        let span = tracing::info_span!("workload", cluster = %cluster, id = %id);
        let _entered = span.enter();
        let attached = match kubeconfig {
            Some(kubeconfig) => attach::attach(&id, &cluster, &kubeconfig, nodes.clone())
                .await
                .map(|(kubelet, apiserver)| {
                    Workload::attached(&id, kubelet, apiserver, kubeconfig)
                }),
            None => None,
        };
        let result = match attached {
            Some(workload) => Ok(workload),
            None => {
                tracing::info!("starting the workload control plane");
                start(&id, &cluster, controller_manager, nodes).await
            }
        };
        let mut registry = registry();
        match (result, registry.get(&id)) {
            (Ok(workload), Some(Entry::Starting)) => {
                tracing::info!(server = %workload.server(), "workload control plane ready");
                registry.insert(id, Entry::Running(Arc::new(workload)));
            }
            // Stopped while starting: the Cluster went away.
            (Ok(workload), _) => drop_in_background(workload),
            (Err(e), _) => {
                tracing::warn!(error = %e, "the workload control plane did not start");
                registry.insert(
                    id,
                    Entry::Failed {
                        at: Instant::now(),
                        error: e.to_string(),
                    },
                );
            }
        }
    });
}

/// Stops one identity's control plane (in the background: stopping waits for processes).
pub fn stop(id: &str) {
    if let Some(Entry::Running(workload)) = registry().remove(id) {
        drop_in_background(workload);
    }
}

/// Stops every workload control plane of this process. Tests call it at the end, since a
/// process-wide registry is never dropped on its own.
pub fn stop_all() {
    let entries: Vec<Entry> = registry().drain().map(|(_, e)| e).collect();
    drop(entries);
}

/// Calls [`stop_all`] when dropped: a test holds one so that the workload control planes
/// stop when it ends, passed or not.
pub struct StopWorkloads;

impl Drop for StopWorkloads {
    fn drop(&mut self) {
        stop_all();
    }
}

fn drop_in_background<T: Send + 'static>(value: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn_blocking(move || drop(value));
        }
        Err(_) => drop(value),
    }
}

async fn start(
    id: &str,
    cluster: &str,
    controller_manager: bool,
    nodes: KubeletSettings,
) -> Result<Workload, SimError> {
    let workload_error = |action: &'static str| {
        let cluster = cluster.to_string();
        move |reason: String| SimError::Workload {
            cluster,
            action,
            reason,
        }
    };
    let options = ControlPlaneOptions {
        controller_manager,
        ready_timeout: Duration::from_secs(180),
        ..ControlPlaneOptions::named(&format!("wl-{cluster}"))
    };
    let control_plane = ControlPlane::start(options)
        .await
        .map_err(|e| workload_error("start the control plane")(e.to_string()))?;
    let kubeconfig = std::fs::read_to_string(control_plane.kubeconfig_path())
        .map_err(|e| workload_error("read the admin kubeconfig")(e.to_string()))?;
    let kubelet = SimulatedKubelet::start_with(control_plane.client(), Vec::new(), nodes)
        .await
        .map_err(|e| workload_error("start the simulated kubelet")(e.to_string()))?;
    let pki = control_plane.dir().join("pki");
    let read = |file: &str| {
        std::fs::read_to_string(pki.join(file))
            .map_err(|e| workload_error("read the service-account keys")(e.to_string()))
    };
    let pair = |crt: String, key: Option<String>| {
        let mut data = BTreeMap::from([("tls.crt".to_string(), crt)]);
        if let Some(key) = key {
            data.insert("tls.key".into(), key);
        }
        data
    };
    let (etcd_crt, etcd_key) = new_ca(&format!("{cluster}-etcd"))
        .map_err(|e| workload_error("generate the etcd CA")(e.to_string()))?;
    let (proxy_crt, proxy_key) = new_ca(&format!("{cluster}-front-proxy"))
        .map_err(|e| workload_error("generate the front-proxy CA")(e.to_string()))?;
    let certificates = vec![
        // The substrate keeps its CA's private key in memory only, so this secret holds
        // the real cluster CA certificate without a key.
        ("ca", pair(control_plane.ca_pem().to_string(), None)),
        ("etcd", pair(etcd_crt, Some(etcd_key))),
        (
            "sa",
            pair(
                read("service-accounts.pub")?,
                Some(read("service-accounts.key")?),
            ),
        ),
        ("proxy", pair(proxy_crt, Some(proxy_key))),
    ];
    attach::mark(&control_plane.client(), id)
        .await
        .map_err(|e| workload_error("mark the cluster's identity")(e.to_string()))?;
    Ok(Workload {
        id: id.to_string(),
        apiserver: Apiserver::Owned(control_plane),
        kubelet,
        kubeconfig,
        certificates,
    })
}

/// A self-signed CA (certificate and key, PEM).
fn new_ca(common_name: &str) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `<cluster>-kubeconfig`, `-ca`, `-etcd`, `-sa` and `-proxy` as CAPI does (type
/// `cluster.x-k8s.io/secret`, the cluster-name label, owned by the control plane), where
/// they are missing or differ.
pub async fn reconcile_secrets(
    kube: &Kube,
    view: &ClusterView<'_>,
    workload: &Workload,
) -> Result<(), SimError> {
    let api: Api<Secret> = Api::namespaced(kube.client.clone(), view.namespace);
    let existing = api
        .list(&ListParams::default().labels(&format!("{CLUSTER_NAME_LABEL}={}", view.name)))
        .await
        .map_err(|source| SimError::List {
            kind: format!("Secret in {}", view.namespace),
            source: Box::new(source),
        })?;
    let (owner_kind, owner) = match view.kcp {
        Some(kcp) => (KUBEADM_CONTROL_PLANE, kcp),
        None => (CLUSTER, view.cluster),
    };
    let owner_reference = OwnerReference {
        api_version: owner_kind.api_version(),
        kind: owner_kind.kind.into(),
        name: name(owner).into(),
        uid: uid(owner).into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let mut wanted = vec![(
        "kubeconfig",
        BTreeMap::from([("value".to_string(), workload.kubeconfig.clone())]),
    )];
    wanted.extend(workload.certificates.iter().cloned());
    for (suffix, data) in wanted {
        let secret_name = format!("{}-{suffix}", view.name);
        let data: BTreeMap<String, ByteString> = data
            .into_iter()
            .map(|(k, v)| (k, ByteString(v.into_bytes())))
            .collect();
        let current = existing
            .items
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(&secret_name));
        if current.is_some_and(|s| {
            s.data.as_ref() == Some(&data) && s.type_.as_deref() == Some(CAPI_SECRET_TYPE)
        }) {
            continue;
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(secret_name.clone()),
                namespace: Some(view.namespace.into()),
                labels: Some(BTreeMap::from([(
                    CLUSTER_NAME_LABEL.to_string(),
                    view.name.to_string(),
                )])),
                owner_references: Some(vec![owner_reference.clone()]),
                ..ObjectMeta::default()
            },
            type_: Some(CAPI_SECRET_TYPE.into()),
            data: Some(data),
            ..Secret::default()
        };
        tracing::info!(secret = %secret_name, "writing a cluster secret");
        kube.apply_secret(view.namespace, &secret).await?;
    }
    Ok(())
}

/// The cluster's admin kubeconfig from its `<cluster>-kubeconfig` secret, if there is one.
pub async fn kubeconfig_of(kube: &Kube, view: &ClusterView<'_>) -> Option<String> {
    let api: Api<Secret> = Api::namespaced(kube.client.clone(), view.namespace);
    let secret = api
        .get_opt(&format!("{}-kubeconfig", view.name))
        .await
        .map_err(|e| tracing::debug!(error = %e, "cannot read the cluster's kubeconfig secret"))
        .ok()
        .flatten()?;
    let value = secret.data?.remove("value")?;
    String::from_utf8(value.0).ok()
}
