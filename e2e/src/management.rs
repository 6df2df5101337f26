//! A management cluster ready for Strata, for end-to-end tests, benchmarks and the demo:
//! a real control plane with the Cluster API, simulator and Strata CRDs, a TLS registry
//! holding the sample packs (a default `PackRegistry` in `strata-system`), the sample
//! profiles, the simulated cloud, and `strata controller` as a real process.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;
use strata_shared::pack::Pack;
use strata_shared::provider::inventory::{inventory_crd, inventory_object};
use strata_shared::registry::address::RegistryAddress;
use strata_shared::registry::client::{PackRegistryClient, RegistryOptions};
use strata_shared::registry::credentials::Credentials;

use crate::capi_crds;
use crate::cloud_sim::{CloudSimulator, SimOptions, Workload, sim_crds};
use crate::control_plane::{ControlPlane, ControlPlaneOptions};
use crate::process_kubelet::{ClusterAccess, ProcessKubelet, default_agent_binary};
use crate::provider_packs::{simulated_providers, write_pack};
use crate::registry::{RegistryOptions as TestRegistryOptions, TestRegistry};

/// Where shared profiles, registries and the controller's lease live.
pub const SYSTEM_NAMESPACE: &str = "strata-system";
/// The sample registry's `PackRegistry` name and base path.
pub const SAMPLE_REGISTRY: &str = "samples";
const FIELD_MANAGER: &str = "strata-e2e";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `strata` binary next to the running test or program (`target/<profile>/`).
pub fn strata_binary() -> PathBuf {
    if let Ok(path) = std::env::var("STRATA_BIN") {
        return PathBuf::from(path);
    }
    default_agent_binary().with_file_name("strata")
}

/// Every YAML document of a file, as JSON.
pub fn read_documents(path: &Path) -> Result<Vec<Value>, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = <Value as serde::Deserialize>::deserialize(document)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// Server-side applies any object given as JSON (namespaced when it names a namespace).
pub async fn apply(client: &Client, object: &Value) -> Result<DynamicObject, String> {
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (group, version) = text("/apiVersion")
        .split_once('/')
        .unwrap_or(("", text("/apiVersion")));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, text("/kind")));
    let name = text("/metadata/name");
    let api: Api<DynamicObject> = match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|e| format!("cannot apply {} {name}: {e}", text("/kind")))
}

pub async fn ensure_namespace(client: &Client, name: &str) -> Result<(), String> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let api: Api<Namespace> = Api::all(client.clone());
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&namespace),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("cannot create namespace {name}: {e}"))
}

/// A Secret with text values.
pub async fn apply_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    data: &[(&str, &str)],
) -> Result<(), String> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        string_data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Secret::default()
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("cannot apply Secret {namespace}/{name}: {e}"))
}

/// How to set the environment up.
#[derive(Debug, Clone)]
pub struct ManagementOptions {
    pub name: String,
    pub sim: SimOptions,
    /// Run the simulated cloud (a benchmark of the controller alone may not want it).
    pub simulator: bool,
    /// Turn on the management apiserver's audit log of writes
    /// ([`ControlPlaneOptions::audit_log`]).
    pub audit_log: bool,
    /// Install Strata (its CRDs, the controller's rights, the sample registry and
    /// profiles) as tests and the demo expect it; false leaves that to the test (the chart
    /// test installs it with Helm). With it come clusterctl's inventory of the providers
    /// the simulator plays and their packs ([`crate::provider_packs`]).
    pub strata: bool,
    /// How fast the simulator runs inside workload clusters once it is their provider:
    /// `fast` (the default) or `cloud`.
    pub provider_speed: &'static str,
}

impl ManagementOptions {
    pub fn named(name: &str) -> Self {
        ManagementOptions {
            name: name.into(),
            sim: SimOptions::fast(),
            simulator: true,
            audit_log: false,
            strata: true,
            provider_speed: "fast",
        }
    }
}

/// The management cluster and what runs around it. Dropping it stops the simulator and
/// the agent kubelets; call [`crate::cloud_sim::workload::stop_all`] at the end of a test
/// to stop the workload control planes.
pub struct ManagementEnv {
    pub control_plane: ControlPlane,
    pub registry: TestRegistry,
    pub cloud: Option<CloudSimulator>,
    kubelets: Mutex<BTreeMap<String, Arc<ProcessKubelet>>>,
    pub dir: tempfile::TempDir,
}

impl ManagementEnv {
    pub async fn start(options: ManagementOptions) -> Result<ManagementEnv, String> {
        crate::registry::ensure_rustls_provider().map_err(|e| e.to_string())?;
        let (control_plane, registry) = tokio::join!(
            ControlPlane::start(ControlPlaneOptions {
                audit_log: options.audit_log,
                ..ControlPlaneOptions::named(&options.name)
            }),
            TestRegistry::start(TestRegistryOptions::default()),
        );
        let control_plane = control_plane.map_err(|e| e.to_string())?;
        let registry = registry.map_err(|e| e.to_string())?;
        let client = control_plane.client();
        capi_crds::install(&client)
            .await
            .map_err(|e| e.to_string())?;
        sim_crds::install(&client)
            .await
            .map_err(|e| e.to_string())?;
        if options.strata {
            install_strata(&client).await?;
            publish_sample_packs(&registry).await?;
            let ca = registry.ca_pem().unwrap_or_default().to_string();
            apply_secret(
                &client,
                SYSTEM_NAMESPACE,
                "samples-registry",
                &[
                    ("username", registry.username()),
                    ("password", registry.password()),
                ],
            )
            .await?;
            apply(
                &client,
                &serde_json::json!({
                    "apiVersion": "strata.dev/v1alpha1",
                    "kind": "PackRegistry",
                    "metadata": { "name": SAMPLE_REGISTRY, "namespace": SYSTEM_NAMESPACE },
                    "spec": {
                        "endpoint": registry.host(),
                        "basePath": SAMPLE_REGISTRY,
                        "caBundle": ca,
                        "credentialsSecretRef": { "name": "samples-registry" },
                        "default": true,
                    },
                }),
            )
            .await?;
            apply_sample_profiles(&client).await?;
            install_provider_packs(&client, &registry, options.provider_speed).await?;
        }
        let cloud = options
            .simulator
            .then(|| CloudSimulator::start(client.clone(), options.sim.clone()));
        let dir = tempfile::Builder::new()
            .prefix("strata-management-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        Ok(ManagementEnv {
            control_plane,
            registry,
            cloud,
            kubelets: Mutex::new(BTreeMap::new()),
            dir,
        })
    }

    pub fn client(&self) -> Client {
        self.control_plane.client()
    }

    /// The workload control plane of a cluster (by its CAPI objects' namespace), once it runs.
    pub async fn workload(
        &self,
        namespace: &str,
        cluster: &str,
    ) -> Result<Option<Arc<Workload>>, String> {
        match &self.cloud {
            Some(cloud) => cloud
                .workload(namespace, cluster)
                .await
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    /// Runs the agent Deployments of a cluster's workload control plane as processes,
    /// once that control plane runs; true when they are (or already were) being run.
    pub async fn run_agents_of(&self, namespace: &str, cluster: &str) -> Result<bool, String> {
        let key = format!("{namespace}/{cluster}");
        if lock(&self.kubelets).contains_key(&key) {
            return Ok(true);
        }
        let Some(cloud) = &self.cloud else {
            return Ok(false);
        };
        let Some(workload) = cloud
            .workload(namespace, cluster)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(false);
        };
        let access = ClusterAccess {
            client: workload.client(),
            server: workload.server().to_string(),
            ca_pem: workload.ca_pem().to_string(),
        };
        let kubelet =
            ProcessKubelet::start(access, default_agent_binary()).map_err(|e| e.to_string())?;
        lock(&self.kubelets).insert(key, Arc::new(kubelet));
        Ok(true)
    }

    /// A kubeconfig for the `strata-controller` service account of
    /// the chart (applied here, [`apply_controller_rights`]), so that a controller runs with
    /// exactly the rights its manifests give it.
    pub async fn controller_kubeconfig(&self) -> Result<PathBuf, String> {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        use k8s_openapi::api::core::v1::ServiceAccount;
        let client = self.client();
        apply_controller_rights(&client).await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: Some(7200),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let token: TokenRequest = accounts
            .create_subresource("token", "strata-controller", &Default::default(), &request)
            .await
            .map_err(|e| format!("cannot mint the controller's token: {e}"))?;
        let token = token.status.ok_or("the token request has no status")?.token;
        let path = self.dir.path().join("controller.kubeconfig");
        let text = self
            .control_plane
            .kubeconfig_for_token("strata-controller", &token);
        fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// The process kubelet of a cluster, once [`ManagementEnv::run_agents_of`] started it.
    pub fn agents_of(&self, namespace: &str, cluster: &str) -> Option<Arc<ProcessKubelet>> {
        lock(&self.kubelets)
            .get(&format!("{namespace}/{cluster}"))
            .cloned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Strata's CRDs and the controller's rights, as an install puts them there.
async fn install_strata(client: &Client) -> Result<(), String> {
    let mut crds = Vec::new();
    let crd_dir = repo_root().join("manifests/crds");
    for entry in fs::read_dir(&crd_dir).map_err(|e| format!("{}: {e}", crd_dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        crds.extend(read_documents(&path)?);
    }
    capi_crds::apply_all(client, &crds)
        .await
        .map_err(|e| e.to_string())?;
    ensure_namespace(client, SYSTEM_NAMESPACE).await?;
    // The static roles the controller binds per namespace, and its own account: what an
    // install of Strata puts there, whichever identity a test runs the controller with.
    apply_controller_rights(client).await
}

/// The kinds of the chart's rendering that make up the controller's identity and rights.
const RIGHTS_KINDS: [&str; 5] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// The controller's service account and rights from the chart's rendering
/// (`manifests/controller/strata.yaml`, in `strata-system`), without its Deployment: tests
/// run the controller as a process of their own.
pub async fn apply_controller_rights(client: &Client) -> Result<(), String> {
    let rendered = repo_root().join("manifests/controller/strata.yaml");
    let mut applied = 0;
    for document in read_documents(&rendered)? {
        let kind = document["kind"].as_str().unwrap_or_default();
        if RIGHTS_KINDS.contains(&kind) {
            apply(client, &document).await?;
            applied += 1;
        }
    }
    if applied == 0 {
        return Err(format!(
            "{} holds no ServiceAccount or RBAC object; regenerate it with scripts/render-manifests.sh",
            rendered.display()
        ));
    }
    Ok(())
}

/// Every sample profile (`manifests/samples/profiles`), shared from `strata-system`.
pub async fn apply_sample_profiles(client: &Client) -> Result<(), String> {
    let profile_dir = repo_root().join("manifests/samples/profiles");
    let mut profiles: Vec<PathBuf> = fs::read_dir(&profile_dir)
        .map_err(|e| format!("{}: {e}", profile_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    profiles.sort();
    for path in profiles {
        for mut profile in read_documents(&path)? {
            profile["metadata"]["namespace"] = SYSTEM_NAMESPACE.into();
            apply(client, &profile).await?;
        }
    }
    Ok(())
}

/// Pushes every sample pack to `<registry>/samples`.
pub async fn publish_sample_packs(registry: &TestRegistry) -> Result<(), String> {
    let client = samples_client(registry)?;
    let packs_dir = repo_root().join("manifests/samples/packs");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&packs_dir)
        .map_err(|e| format!("{}: {e}", packs_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("pack.json").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        push_pack(&client, &dir).await?;
    }
    Ok(())
}

/// A client of `<registry>/samples` with the registry's credentials.
fn samples_client(registry: &TestRegistry) -> Result<PackRegistryClient, String> {
    base_client(registry, SAMPLE_REGISTRY)
}

/// A client of `<registry>/<base>` with the registry's credentials.
fn base_client(registry: &TestRegistry, base: &str) -> Result<PackRegistryClient, String> {
    let address: RegistryAddress = format!("{}/{base}", registry.host())
        .parse()
        .map_err(|e| format!("registry address: {e}"))?;
    PackRegistryClient::new(
        address,
        RegistryOptions {
            ca_pem: registry.ca_pem().map(String::from),
            credentials: Credentials::Basic {
                username: registry.username().into(),
                password: registry.password().into(),
            },
            ..RegistryOptions::default()
        },
    )
    .map_err(|e| e.to_string())
}

/// Pushes the pack in `dir` to `<registry>/samples`, where the sample packs are.
pub async fn publish_pack(registry: &TestRegistry, dir: &Path) -> Result<(), String> {
    push_pack(&samples_client(registry)?, dir).await
}

/// Pushes the pack in `dir` to `<registry>/<base>`.
pub async fn publish_pack_to(
    registry: &TestRegistry,
    base: &str,
    dir: &Path,
) -> Result<(), String> {
    push_pack(&base_client(registry, base)?, dir).await
}

async fn push_pack(client: &PackRegistryClient, dir: &Path) -> Result<(), String> {
    let (pack, findings) = Pack::load(dir);
    let pack = pack.ok_or_else(|| format!("pack {} is not valid: {findings:?}", dir.display()))?;
    client
        .push(&pack, true)
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot push {}: {e}", dir.display()))
}

/// `strata controller` running as a process against a management cluster.
pub struct ControllerProcess {
    child: Child,
    pub log: PathBuf,
    pub http: SocketAddr,
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

impl ControllerProcess {
    /// Starts `strata controller --kubeconfig <kubeconfig>` with the test defaults
    /// (system namespace, agent image `strata-agent:e2e`, a cache under `dir`) and `extra`
    /// flags; logs go to `dir/<name>.log`.
    pub fn start(
        kubeconfig: &Path,
        dir: &Path,
        name: &str,
        extra: &[&str],
    ) -> Result<ControllerProcess, String> {
        ControllerProcess::start_with_env(kubeconfig, dir, name, extra, &[])
    }

    /// [`ControllerProcess::start`] with more environment variables (e.g. `LD_PRELOAD` of
    /// libfaketime and its `FAKETIME`, to skew the process's wall clock).
    pub fn start_with_env(
        kubeconfig: &Path,
        dir: &Path,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<ControllerProcess, String> {
        let binary = strata_binary();
        if !binary.is_file() {
            return Err(format!(
                "the strata binary is not at {}; build it with `cargo build -p strata-management`",
                binary.display()
            ));
        }
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()?)
            .parse()
            .map_err(|e| format!("{e}"))?;
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&binary)
            .arg("controller")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--system-namespace", SYSTEM_NAMESPACE])
            .args(if extra.contains(&"--agent-image") {
                &[][..]
            } else {
                &["--agent-image", "strata-agent:e2e"][..]
            })
            .arg("--http-address")
            .arg(http.to_string())
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .arg("--identity")
            .arg(name)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("STRATA_CONTROLLER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        Ok(ControllerProcess { child, log, http })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: a crash, not a shutdown.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait up to `grace` before killing it; true when it stopped by itself.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        false
    }

    /// Peak resident memory (VmHWM) in KiB, while it runs.
    pub fn peak_memory_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::control_plane::log_tail(&self.log, lines)
    }

    /// GET `path` on its HTTP endpoint.
    pub async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let response = reqwest::get(format!("http://{}{path}", self.http))
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes clusterctl's inventory of the simulated providers ([`crate::provider_packs`])
/// into the management cluster and publishes their packs (`speed` for the simulator's
/// controllers) to `registry`, under the sample packs' base path.
pub async fn install_provider_packs(
    client: &Client,
    registry: &TestRegistry,
    speed: &str,
) -> Result<(), String> {
    capi_crds::apply_all(client, &[inventory_crd()])
        .await
        .map_err(|e| e.to_string())?;
    for provider in simulated_providers() {
        ensure_namespace(client, provider.namespace).await?;
        if let Some(object) = inventory_object(
            provider.kind,
            provider.name,
            provider.version,
            provider.namespace,
        ) {
            apply(client, &object).await?;
        }
    }
    publish_provider_packs(client, registry, speed, SAMPLE_REGISTRY).await
}

/// Publishes the simulated providers' packs to `registry` under `base`: for a cluster
/// whose default PackRegistry is not the samples'.
pub async fn publish_provider_packs(
    client: &Client,
    registry: &TestRegistry,
    speed: &str,
    base: &str,
) -> Result<(), String> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone())
        .list(&ListParams::default().labels("clusterctl.cluster.x-k8s.io"))
        .await
        .map_err(|e| format!("listing the Cluster API CRDs: {e}"))?
        .items;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    for provider in simulated_providers() {
        let dir = work.path().join(provider.pack());
        write_pack(&provider, &crds, speed, &dir)?;
        publish_pack_to(registry, base, &dir).await?;
    }
    Ok(())
}
