//! A kubelet for Strata's own components: it runs, as local processes (one per replica),
//! the Deployments whose container image is one it has a binary for: `strata-agent` (also
//! any Deployment labelled `app.kubernetes.io/name=strata-agent`) and `strata-sim-cloud`
//! (the simulated cloud's provider controllers, which an agent deploys in its cluster).
//! Each process gets what a pod would get:
//!
//! - a service-account token for the pod's service account (TokenRequest, refreshed
//!   before it expires) and the cluster CA, as files like those under
//!   `/var/run/secrets/kubernetes.io/serviceaccount/`, plus a kubeconfig using them
//!   (`KUBECONFIG`), since a local process cannot use the fixed in-cluster paths;
//! - its own pod IP (`status.podIP`): a random address of the loopback network, so that
//!   replicas serving the same port do not collide, as they would not in their own pods;
//! - the container's env (values, `valueFrom` field/secret/configMap references, `envFrom`)
//!   and args (the image's entrypoint is the binary, so `command[0]` is replaced by it);
//! - secret and configMap volumes, written to a folder per replica; every arg and env value
//!   starting with a volume's mountPath is rewritten to that folder.
//!
//! Processes are restarted when they exit, replaced when the Deployment's spec changes
//! (its generation), and stopped when it goes away.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, PodSpec, Secret, ServiceAccount};
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::task::JoinHandle;

use crate::control_plane::ControlPlane;

/// The label that marks a Deployment as Strata's agent.
pub const AGENT_LABEL: (&str, &str) = ("app.kubernetes.io/name", "strata-agent");
/// How often processes are checked (restarted when they exited) against the Deployments.
const POLL: Duration = Duration::from_millis(500);
/// Each replica's output, in its folder.
const LOG_FILE: &str = "process.log";
const RESTART_DELAY: Duration = Duration::from_secs(1);
const TOKEN_SECONDS: i64 = 3600;
/// Tokens are re-requested well before they expire, as the kubelet does at 80%.
const TOKEN_REFRESH: Duration = Duration::from_secs(1800);

/// How to reach the cluster the processes run "in".
#[derive(Clone)]
pub struct ClusterAccess {
    pub client: Client,
    pub server: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAccess")
            .field("server", &self.server)
            .finish()
    }
}

impl ClusterAccess {
    pub fn of(control_plane: &ControlPlane) -> Self {
        ClusterAccess {
            client: control_plane.client(),
            server: control_plane.server().to_string(),
            ca_pem: control_plane.ca_pem().to_string(),
        }
    }
}

/// One running (or restarting) replica, for tests and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentProcess {
    /// `<namespace>/<deployment>`.
    pub deployment: String,
    /// `<deployment>-<index>`, stable across restarts like a pod name across container restarts.
    pub pod_name: String,
    pub pid: Option<u32>,
    /// The replica's own address (its `status.podIP`).
    pub pod_ip: Ipv4Addr,
    pub restarts: u32,
    pub log: PathBuf,
    /// Why the replica could not be started, if it could not.
    pub last_error: Option<String>,
}

struct Replica {
    pod_name: String,
    pod_ip: Ipv4Addr,
    dir: PathBuf,
    child: Option<Child>,
    restarts: u32,
    exited_at: Option<Instant>,
    token_written: Option<Instant>,
    last_error: Option<String>,
}

struct DeploymentRun {
    generation: i64,
    deployment: Deployment,
    /// The container the binary plays, and the binary.
    container: usize,
    binary: PathBuf,
    replicas: Vec<Replica>,
}

struct State {
    runs: BTreeMap<String, DeploymentRun>,
}

/// A running process kubelet; stops its processes when dropped.
pub struct ProcessKubelet {
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
    dir: Option<tempfile::TempDir>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Plain bookkeeping: a panic while holding the lock cannot leave it inconsistent.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessKubeletError {
    #[error("cannot create the process kubelet's folder: {0}")]
    Folder(#[source] std::io::Error),
    #[error("the binary {0} is missing; build it with `cargo build --workspace --bins`")]
    NoBinary(PathBuf),
}

/// A binary next to the running test or program (`target/<profile>/`), or where `env` says.
fn sibling_binary(env: &str, name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test binaries live in target/<profile>/deps.
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// The `strata-sim-cloud` binary (`$STRATA_SIM_CLOUD_BIN`, else beside the running program).
pub fn default_sim_cloud_binary() -> PathBuf {
    sibling_binary("STRATA_SIM_CLOUD_BIN", "strata-sim-cloud")
}

/// Which binary runs which image, by the image's name without registry path or tag.
#[derive(Debug, Clone)]
pub struct ImageBinaries(BTreeMap<String, PathBuf>);

impl ImageBinaries {
    /// `strata-agent` and `strata-sim-cloud`, next to the running program.
    pub fn strata(agent_binary: PathBuf) -> ImageBinaries {
        ImageBinaries(BTreeMap::from([
            ("strata-agent".to_string(), agent_binary),
            ("strata-sim-cloud".to_string(), default_sim_cloud_binary()),
        ]))
    }

    /// Those of [`ImageBinaries::strata`] and the controller's image `strata`, for a
    /// management cluster where Strata is installed from its chart.
    pub fn with_controller(agent_binary: PathBuf, controller_binary: PathBuf) -> ImageBinaries {
        let mut binaries = ImageBinaries::strata(agent_binary);
        binaries.0.insert("strata".to_string(), controller_binary);
        binaries
    }

    fn agent(&self) -> Option<&PathBuf> {
        self.0.get("strata-agent")
    }

    /// The binary of the first container whose image it knows, and that container's index;
    /// an agent-labelled Deployment runs the agent in its first container.
    fn for_deployment(&self, deployment: &Deployment) -> Option<(usize, PathBuf)> {
        let spec = pod_spec(deployment)?;
        if let Some(found) = spec.containers.iter().enumerate().find_map(|(i, c)| {
            self.0
                .get(image_name(c.image.as_deref())?)
                .map(|b| (i, b.clone()))
        }) {
            return Some(found);
        }
        let labelled =
            deployment.labels().get(AGENT_LABEL.0).map(String::as_str) == Some(AGENT_LABEL.1);
        labelled
            .then(|| self.agent().map(|b| (0, b.clone())))
            .flatten()
    }
}

/// Panics, saying how to build it, unless the agent binary has the test fault hooks
/// (`STRATA_MOVE_EXIT_AFTER`, `STRATA_MOVE_WRITE_DELAY_MS`) that a test is about to use:
/// without them the faults never happen and the test would wait for nothing.
pub fn require_fault_hooks() {
    let binary = default_agent_binary();
    let output = Command::new(&binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} --version: {e}", binary.display()));
    let version = String::from_utf8_lossy(&output.stdout);
    assert!(
        version.contains("with test fault hooks"),
        "{} ({}) was built without the test fault hooks this test uses: build it with \
         `cargo build --workspace --bins --features strata-agent/fault-hooks` and run the \
         tests with the same feature (scripts/test.sh does both)",
        binary.display(),
        version.trim()
    );
}

/// The `strata-agent` binary (`$STRATA_AGENT_BIN`, else beside the running program).
pub fn default_agent_binary() -> PathBuf {
    sibling_binary("STRATA_AGENT_BIN", "strata-agent")
}

impl ProcessKubelet {
    pub fn start(
        access: ClusterAccess,
        agent_binary: PathBuf,
    ) -> Result<ProcessKubelet, ProcessKubeletError> {
        ProcessKubelet::start_with(access, ImageBinaries::strata(agent_binary))
    }

    /// A process kubelet for the images `binaries` names.
    pub fn start_with(
        access: ClusterAccess,
        binaries: ImageBinaries,
    ) -> Result<ProcessKubelet, ProcessKubeletError> {
        if let Some(missing) = binaries.0.values().find(|b| !b.is_file()) {
            return Err(ProcessKubeletError::NoBinary(missing.clone()));
        }
        let dir = tempfile::Builder::new()
            .prefix("strata-process-kubelet-")
            .tempdir()
            .map_err(ProcessKubeletError::Folder)?;
        let state = Arc::new(Mutex::new(State {
            runs: BTreeMap::new(),
        }));
        let task = tokio::spawn(run(
            access,
            binaries,
            dir.path().to_path_buf(),
            state.clone(),
        ));
        Ok(ProcessKubelet {
            state,
            task,
            dir: Some(dir),
        })
    }

    /// Every replica it runs now.
    pub fn processes(&self) -> Vec<AgentProcess> {
        let mut state = lock(&self.state);
        let mut result = Vec::new();
        for (key, run) in state.runs.iter_mut() {
            for replica in &mut run.replicas {
                let pid = replica
                    .child
                    .as_mut()
                    .and_then(|c| matches!(c.try_wait(), Ok(None)).then(|| c.id()));
                result.push(AgentProcess {
                    deployment: key.clone(),
                    pod_name: replica.pod_name.clone(),
                    pid,
                    pod_ip: replica.pod_ip,
                    restarts: replica.restarts,
                    log: replica.dir.join(LOG_FILE),
                    last_error: replica.last_error.clone(),
                });
            }
        }
        result
    }
}

impl Drop for ProcessKubelet {
    fn drop(&mut self) {
        self.task.abort();
        let mut state = lock(&self.state);
        for run in state.runs.values_mut() {
            for replica in &mut run.replicas {
                stop_child(replica);
            }
        }
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!(
                "process kubelet folder (agent logs) kept: {}",
                dir.keep().display()
            );
        }
    }
}

fn image_name(image: Option<&str>) -> Option<&str> {
    let image = image?;
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next()
}

fn pod_spec(deployment: &Deployment) -> Option<&PodSpec> {
    deployment.spec.as_ref()?.template.spec.as_ref()
}

async fn run(
    access: ClusterAccess,
    binaries: ImageBinaries,
    dir: PathBuf,
    state: Arc<Mutex<State>>,
) {
    // The Deployments come from a watch: listing them twice a second in every workload
    // cluster was a good part of the test API servers' work.
    let deployments: Api<Deployment> = Api::all(access.client.clone());
    let (store, writer) = reflector::store::<Deployment>();
    let feed = reflector(
        writer,
        watcher(deployments, watcher::Config::default()).default_backoff(),
    )
    .for_each(|event| {
        if let Err(e) = event {
            tracing::debug!(error = %e, "deployment watch failed; the watcher retries");
        }
        std::future::ready(())
    });
    let serve = async {
        // Until the first list is in, an empty store would read as "stop every process".
        if store.wait_until_ready().await.is_err() {
            return;
        }
        loop {
            let wanted: BTreeMap<String, (Deployment, usize, PathBuf)> = store
                .state()
                .iter()
                .filter(|d| d.metadata.deletion_timestamp.is_none())
                .filter_map(|d| {
                    let (container, binary) = binaries.for_deployment(d)?;
                    let key = format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any());
                    Some((key, (Deployment::clone(d), container, binary)))
                })
                .collect();
            sync_runs(&state, &wanted);
            let keys: Vec<String> = lock(&state).runs.keys().cloned().collect();
            for key in keys {
                start_missing(&access, &dir, &state, &key).await;
            }
            tokio::time::sleep(POLL).await;
        }
    };
    tokio::join!(feed, serve);
}

/// Brings the set of runs in line with the agent Deployments: new ones get replicas,
/// changed ones are replaced, removed ones stopped.
fn sync_runs(state: &Mutex<State>, wanted: &BTreeMap<String, (Deployment, usize, PathBuf)>) {
    let mut state = lock(state);
    let gone: Vec<String> = state
        .runs
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect();
    for key in gone {
        if let Some(mut run) = state.runs.remove(&key) {
            tracing::info!(deployment = %key, "deployment removed; stopping its processes");
            run.replicas.iter_mut().for_each(stop_child);
        }
    }
    for (key, (deployment, container, binary)) in wanted {
        let generation = deployment.metadata.generation.unwrap_or(0);
        let replicas = usize::try_from(
            deployment
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
                .unwrap_or(1),
        )
        .unwrap_or(0);
        let changed = state
            .runs
            .get(key)
            .is_none_or(|run| run.generation != generation);
        if changed {
            if let Some(mut old) = state.runs.remove(key) {
                tracing::info!(deployment = %key, generation, "deployment changed; replacing its processes");
                old.replicas.iter_mut().for_each(stop_child);
            }
            let name = deployment.name_any();
            state.runs.insert(
                key.clone(),
                DeploymentRun {
                    generation,
                    deployment: deployment.clone(),
                    container: *container,
                    binary: binary.clone(),
                    replicas: (0..replicas)
                        .map(|i| Replica {
                            pod_name: format!("{name}-{i}"),
                            pod_ip: random_pod_ip(),
                            dir: PathBuf::new(),
                            child: None,
                            restarts: 0,
                            exited_at: None,
                            token_written: None,
                            last_error: None,
                        })
                        .collect(),
                },
            );
        }
    }
}

/// Starts replicas that are not running (first start, or restart after the delay) and
/// refreshes tokens that are getting old.
async fn start_missing(access: &ClusterAccess, dir: &Path, state: &Mutex<State>, key: &str) {
    let (deployment, container, binary, indexes) = {
        let mut state = lock(state);
        let Some(run) = state.runs.get_mut(key) else {
            return;
        };
        let mut indexes = Vec::new();
        for (i, replica) in run.replicas.iter_mut().enumerate() {
            let running = replica
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
            if running {
                if replica
                    .token_written
                    .is_some_and(|t| t.elapsed() > TOKEN_REFRESH)
                {
                    indexes.push((i, replica.pod_ip));
                }
                continue;
            }
            if let Some(mut child) = replica.child.take() {
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                tracing::info!(pod = %replica.pod_name, %status, "process exited; restarting");
                replica.exited_at = Some(Instant::now());
                replica.restarts += 1;
            }
            if replica
                .exited_at
                .is_none_or(|t| t.elapsed() >= RESTART_DELAY)
            {
                indexes.push((i, replica.pod_ip));
            }
        }
        (
            run.deployment.clone(),
            run.container,
            run.binary.clone(),
            indexes,
        )
    };
    for (i, pod_ip) in indexes {
        let pod = PodIdentity {
            name: format!("{}-{i}", deployment.name_any()),
            ip: pod_ip,
        };
        let pod_name = pod.name.clone();
        let replica_dir = dir.join(key.replace('/', "_")).join(&pod_name);
        let prepared = prepare_pod(access, &deployment, container, &pod, &replica_dir).await;
        let mut state = lock(state);
        let Some(run) = state.runs.get_mut(key) else {
            return;
        };
        let Some(replica) = run.replicas.get_mut(i) else {
            continue;
        };
        replica.dir = replica_dir.clone();
        match prepared {
            Err(message) => {
                tracing::warn!(pod = %pod_name, "cannot start the process: {message}");
                replica.last_error = Some(message);
                replica.exited_at = Some(Instant::now());
            }
            Ok(pod) => {
                replica.token_written = Some(Instant::now());
                if replica.child.is_some() {
                    // A token refresh for a running replica: files are rewritten, nothing else.
                    continue;
                }
                match spawn(&binary, &pod, &replica_dir) {
                    Ok(child) => {
                        tracing::info!(pod = %pod_name, pid = child.id(), "process started");
                        replica.child = Some(child);
                        replica.last_error = None;
                    }
                    Err(message) => {
                        replica.last_error = Some(message);
                        replica.exited_at = Some(Instant::now());
                    }
                }
            }
        }
    }
}

/// The pod a replica plays.
struct PodIdentity {
    name: String,
    ip: Ipv4Addr,
}

/// A random address of 127.0.0.0/8 (all of it reaches this host) outside 127.0.0.x, where
/// the control planes listen: random, so that the kubelets of tests running side by side
/// do not hand out the same one.
pub fn random_pod_ip() -> Ipv4Addr {
    let n = RandomState::new().build_hasher().finish();
    let octet =
        |shift: u32, from: u64, span: u64| u8::try_from(from + (n >> shift) % span).unwrap_or(1);
    Ipv4Addr::new(127, octet(0, 1, 254), octet(8, 0, 256), octet(16, 1, 254))
}

/// A process shares the host's network, where a pod has its own: a listen address on every
/// interface (`0.0.0.0:PORT`, alone or after `--flag=`) becomes the replica's own pod IP,
/// so that replicas (and tests side by side) serving the same port do not collide.
fn own_address(value: &str, pod_ip: Ipv4Addr) -> String {
    const ANY: &str = "0.0.0.0:";
    match value.find(ANY) {
        Some(at) if at == 0 || value[..at].ends_with('=') => {
            format!("{}{pod_ip}:{}", &value[..at], &value[at + ANY.len()..])
        }
        _ => value.to_string(),
    }
}

/// What a replica's process gets.
struct PreparedPod {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    fs::write(path, data).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

async fn prepare_pod(
    access: &ClusterAccess,
    deployment: &Deployment,
    container: usize,
    pod: &PodIdentity,
    dir: &Path,
) -> Result<PreparedPod, String> {
    let namespace = deployment.namespace().unwrap_or_else(|| "default".into());
    let spec = pod_spec(deployment).ok_or("the Deployment has no pod template")?;
    let container = spec
        .containers
        .get(container)
        .ok_or("the pod template has no container")?;
    let account = spec
        .service_account_name
        .clone()
        .or_else(|| spec.service_account.clone())
        .unwrap_or_else(|| "default".into());

    let token = request_token(&access.client, &namespace, &account).await?;
    let sa_dir = dir.join("serviceaccount");
    write_file(&sa_dir.join("token"), token.as_bytes())?;
    write_file(&sa_dir.join("ca.crt"), access.ca_pem.as_bytes())?;
    write_file(&sa_dir.join("namespace"), namespace.as_bytes())?;
    let kubeconfig = dir.join("kubeconfig");
    let kubeconfig_text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: in-cluster\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {account}\n  user:\n    tokenFile: {}\ncontexts:\n- name: in-cluster\n  context:\n    cluster: in-cluster\n    user: {account}\n    namespace: {namespace}\ncurrent-context: in-cluster\n",
        access.server,
        sa_dir.join("ca.crt").display(),
        sa_dir.join("token").display()
    );
    write_file(&kubeconfig, kubeconfig_text.as_bytes())?;

    let mounts = materialize_volumes(&access.client, &namespace, spec, container, dir).await?;
    // A path under a mount, alone or as a flag's value (`--flag=/mount/path`).
    let rewrite = |value: &str| -> String {
        let (flag, path) = match value.split_once('=') {
            Some((flag, path)) if flag.starts_with("--") => (format!("{flag}="), path),
            _ => (String::new(), value),
        };
        for (mount_path, local) in &mounts {
            if let Some(rest) = path.strip_prefix(mount_path.as_str()) {
                return format!("{flag}{}{rest}", local.display());
            }
        }
        own_address(value, pod.ip)
    };

    let mut env: Vec<(String, String)> = Vec::new();
    let port = access
        .server
        .rsplit(':')
        .next()
        .unwrap_or("443")
        .to_string();
    env.push(("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into()));
    env.push(("KUBERNETES_SERVICE_PORT".into(), port));
    env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    // The image's helm: the tests' own, on the real Helm engine.
    let helm = sibling_binary("STRATA_HELM", "helm");
    if let (true, Ok(library)) = (helm.is_file(), crate::binaries::helm_engine_library()) {
        env.push(("STRATA_HELM".into(), helm.display().to_string()));
        env.push(("STRATA_HELM_LIB".into(), library.display().to_string()));
    }
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(secret) = &from.secret_ref {
            for (k, v) in secret_data(&access.client, &namespace, &secret.name).await? {
                env.push((format!("{prefix}{k}"), v));
            }
        }
        if let Some(config_map) = &from.config_map_ref {
            for (k, v) in config_map_data(&access.client, &namespace, &config_map.name).await? {
                env.push((format!("{prefix}{k}"), v));
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = env_value(&access.client, &namespace, pod, &account, var).await?;
        env.push((var.name.clone(), rewrite(&value)));
    }
    let args: Vec<String> = container
        .command
        .iter()
        .flatten()
        .skip(1)
        .chain(container.args.iter().flatten())
        .map(|a| rewrite(a))
        .collect();
    Ok(PreparedPod { args, env })
}

async fn request_token(client: &Client, namespace: &str, account: &str) -> Result<String, String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(TOKEN_SECONDS),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answer: TokenRequest = accounts
        .create_subresource("token", account, &PostParams::default(), &request)
        .await
        .map_err(|e| {
            format!("cannot get a token for service account {namespace}/{account}: {e}")
        })?;
    answer
        .status
        .map(|s| s.token)
        .ok_or_else(|| format!("the token request for {namespace}/{account} returned no token"))
}

async fn secret_data(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get(name)
        .await
        .map_err(|e| format!("cannot read secret {namespace}/{name}: {e}"))?;
    let mut data: BTreeMap<String, String> = secret.string_data.unwrap_or_default();
    for (k, v) in secret.data.unwrap_or_default() {
        data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
    }
    Ok(data)
}

async fn config_map_data(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, String> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let map = maps
        .get(name)
        .await
        .map_err(|e| format!("cannot read config map {namespace}/{name}: {e}"))?;
    let mut data = map.data.unwrap_or_default();
    for (k, v) in map.binary_data.unwrap_or_default() {
        data.insert(k, base64::engine::general_purpose::STANDARD.encode(&v.0));
    }
    Ok(data)
}

async fn env_value(
    client: &Client,
    namespace: &str,
    pod: &PodIdentity,
    service_account: &str,
    var: &EnvVar,
) -> Result<String, String> {
    if let Some(value) = &var.value {
        return Ok(value.clone());
    }
    let Some(from) = &var.value_from else {
        return Ok(String::new());
    };
    if let Some(field) = &from.field_ref {
        return match field.field_path.as_str() {
            "metadata.name" => Ok(pod.name.clone()),
            "metadata.namespace" => Ok(namespace.into()),
            "status.podIP" => Ok(pod.ip.to_string()),
            "status.hostIP" => Ok("127.0.0.1".into()),
            "spec.nodeName" => Ok("strata-process-kubelet".into()),
            "spec.serviceAccountName" => Ok(service_account.into()),
            other => Err(format!("env {}: field {other} is not simulated", var.name)),
        };
    }
    if let Some(key) = &from.secret_key_ref {
        let data = secret_data(client, namespace, &key.name).await?;
        return data.get(&key.key).cloned().ok_or_else(|| {
            format!(
                "env {}: secret {namespace}/{} has no key {}",
                var.name, key.name, key.key
            )
        });
    }
    if let Some(key) = &from.config_map_key_ref {
        let data = config_map_data(client, namespace, &key.name).await?;
        return data.get(&key.key).cloned().ok_or_else(|| {
            format!(
                "env {}: config map {namespace}/{} has no key {}",
                var.name, key.name, key.key
            )
        });
    }
    Err(format!(
        "env {}: this kind of valueFrom is not simulated",
        var.name
    ))
}

/// Writes the container's secret and configMap volumes under `dir/mounts`, returning
/// (mountPath, local folder) pairs, longest mountPath first so nested mounts win.
async fn materialize_volumes(
    client: &Client,
    namespace: &str,
    spec: &PodSpec,
    container: &Container,
    dir: &Path,
) -> Result<Vec<(String, PathBuf)>, String> {
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let Some(volume) = spec.volumes.iter().flatten().find(|v| v.name == mount.name) else {
            return Err(format!("volume mount {} names no volume", mount.name));
        };
        let data = if let Some(secret) = &volume.secret {
            let name = secret.secret_name.clone().unwrap_or_default();
            secret_data(client, namespace, &name).await?
        } else if let Some(config_map) = &volume.config_map {
            config_map_data(client, namespace, &config_map.name).await?
        } else {
            // Other volume kinds (emptyDir…) become an empty folder.
            BTreeMap::new()
        };
        let local = dir.join("mounts").join(mount.name.as_str());
        fs::create_dir_all(&local)
            .map_err(|e| format!("cannot create {}: {e}", local.display()))?;
        for (key, value) in data {
            write_file(&local.join(key), value.as_bytes())?;
        }
        mounts.push((mount.mount_path.trim_end_matches('/').to_string(), local));
    }
    mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    Ok(mounts)
}

fn spawn(binary: &Path, pod: &PreparedPod, dir: &Path) -> Result<Child, String> {
    let log_path = dir.join(LOG_FILE);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let _ = writeln!(
        log,
        "--- starting {} {}",
        binary.display(),
        pod.args.join(" ")
    );
    let err = log
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    Command::new(binary)
        .args(&pod.args)
        .env_clear()
        .envs(pod.env.iter().cloned())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))
}

fn stop_child(replica: &mut Replica) {
    let Some(mut child) = replica.child.take() else {
        return;
    };
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listen_address_on_every_interface_becomes_the_pod_ip() {
        let ip = Ipv4Addr::new(127, 9, 8, 7);
        assert_eq!(own_address("0.0.0.0:8080", ip), "127.9.8.7:8080");
        assert_eq!(
            own_address("--http-address=0.0.0.0:8080", ip),
            "127.9.8.7:8080".replace("127", "--http-address=127")
        );
        assert_eq!(own_address("127.0.0.1:8080", ip), "127.0.0.1:8080");
        assert_eq!(own_address("x0.0.0.0:1", ip), "x0.0.0.0:1");
        assert_eq!(own_address("https://a:6443", ip), "https://a:6443");
    }
}
