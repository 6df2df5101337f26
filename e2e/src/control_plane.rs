//! A real Kubernetes control plane on loopback: etcd, kube-apiserver and
//! kube-controller-manager (and kube-scheduler when asked), with a fresh PKI, RBAC on and
//! service-account token signing configured.
//!
//! Every process writes its log to a file in the control plane's folder. On drop the
//! processes are stopped (TERM, then KILL); when the thread is panicking, the log paths
//! are printed and the folder is kept so the logs can be read. Processes stay in the
//! caller's process group, so a test runner that kills a test's group on timeout also
//! stops them.

use std::fmt;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::binaries::{self, BinaryError};
use crate::pki::{CertUse, PkiError, TestCa};

/// Where each process's log is, for failure reports.
#[derive(Debug, Clone)]
pub struct LogFile {
    pub process: String,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error(transparent)]
    Binary(#[from] BinaryError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {process}: {source}")]
    Spawn {
        process: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{process} exited during start-up ({status}); its log {log} ends with:\n{tail}")]
    Exited {
        process: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("control plane {name} was not ready after {waited:?}: {reason}; logs: {logs}")]
    NotReady {
        name: String,
        waited: Duration,
        reason: String,
        logs: String,
    },
    #[error("cannot build a client for {name}: {reason}")]
    Client { name: String, reason: String },
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ControlPlaneError + 'a {
    move |source| ControlPlaneError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// A short name used in folder names and messages.
    pub name: String,
    /// Run kube-controller-manager (Deployments, ReplicaSets, service-account tokens…).
    pub controller_manager: bool,
    /// Run kube-scheduler; without it the simulated kubelet binds pods itself.
    pub scheduler: bool,
    /// How long to wait for readiness before failing.
    pub ready_timeout: Duration,
    /// Have the apiserver log every write to `audit.log` in its folder (see
    /// [`crate::audit_log`]).
    pub audit_log: bool,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        ControlPlaneOptions {
            name: "test".into(),
            controller_manager: true,
            scheduler: false,
            ready_timeout: Duration::from_secs(90),
            audit_log: false,
        }
    }
}

impl ControlPlaneOptions {
    pub fn named(name: &str) -> Self {
        ControlPlaneOptions {
            name: name.into(),
            ..ControlPlaneOptions::default()
        }
    }
}

struct ManagedProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ManagedProcess {
    fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        dir: &Path,
    ) -> Result<Self, ControlPlaneError> {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).map_err(io_error("create", &log))?;
        let err = out.try_clone().map_err(io_error("open", &log))?;
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| ControlPlaneError::Spawn {
                process: name.into(),
                source,
            })?;
        Ok(ManagedProcess {
            name: name.into(),
            child,
            log,
        })
    }

    /// An error when the process has already exited.
    fn check_running(&mut self) -> Result<(), ControlPlaneError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(ControlPlaneError::Exited {
                process: self.name.clone(),
                status: status.to_string(),
                log: self.log.clone(),
                tail: log_tail(&self.log, 20),
            }),
            _ => Ok(()),
        }
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        // TERM first: etcd and the apiserver shut down cleanly in well under a second.
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A free loopback port. Another process may take it before ours binds it; start-up
/// retries when that happens.
fn free_port() -> Result<u16, ControlPlaneError> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(io_error("bind a port on", Path::new("127.0.0.1")))?;
    let port = listener
        .local_addr()
        .map_err(io_error("read the address of", Path::new("127.0.0.1")))?
        .port();
    Ok(port)
}

/// A running control plane.
pub struct ControlPlane {
    name: String,
    // Dropped last, after the processes; kept when a test fails.
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    processes: Vec<ManagedProcess>,
    server: String,
    apiserver_port: u16,
    ca_pem: String,
    ca_file: PathBuf,
    kubeconfig: PathBuf,
    client: Client,
    audit_log: Option<PathBuf>,
}

impl fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("name", &self.name)
            .field("server", &self.server)
            .field("dir", &self.dir_path)
            .finish()
    }
}

const START_ATTEMPTS: usize = 3;

impl ControlPlane {
    /// Starts a control plane and waits until it is ready (and, with the controller
    /// manager, until the `default` service account exists, so pods can be created).
    pub async fn start(options: ControlPlaneOptions) -> Result<ControlPlane, ControlPlaneError> {
        let mut attempt = 1;
        loop {
            match Self::start_once(&options).await {
                // A port was taken between choosing and binding it: try again with new ports.
                Err(ControlPlaneError::Exited { ref tail, .. })
                    if tail.contains("address already in use") && attempt < START_ATTEMPTS =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(options: &ControlPlaneOptions) -> Result<ControlPlane, ControlPlaneError> {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix(&format!("strata-cp-{}-", options.name))
            .tempdir()
            .map_err(io_error("create", Path::new("a temporary folder")))?;
        let dir_path = dir.path().to_path_buf();
        let ca = TestCa::new(
            &dir_path.join("pki"),
            &format!("strata-test-{}", options.name),
        )?;
        let serving = ca.issue(
            "apiserver",
            CertUse::Server {
                dns_names: &[
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                ],
            },
        )?;
        let admin = ca.issue(
            "admin",
            CertUse::Client {
                user: "strata-admin",
                groups: &["system:masters"],
            },
        )?;
        let sa_key = ca.signing_key("service-accounts")?;

        let etcd_client = free_port()?;
        let etcd_peer = free_port()?;
        let apiserver_port = free_port()?;
        let server = format!("https://127.0.0.1:{apiserver_port}");

        let mut processes = Vec::new();
        let etcd_dir = dir_path.join("etcd");
        processes.push(ManagedProcess::spawn(
            "etcd",
            &binaries::etcd()?,
            &[
                "--name=strata".into(),
                format!("--data-dir={}", etcd_dir.display()),
                format!("--listen-client-urls=http://127.0.0.1:{etcd_client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{etcd_client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-cluster=strata=http://127.0.0.1:{etcd_peer}"),
                // Test data needs no durability; fsync dominates etcd's latency on shared disks.
                "--unsafe-no-fsync".into(),
                "--log-level=warn".into(),
            ],
            &dir_path,
        )?);

        let audit_log = options.audit_log.then(|| dir_path.join("audit.log"));
        let mut audit_flags = Vec::new();
        if let Some(log) = &audit_log {
            let policy = dir_path.join("audit-policy.yaml");
            fs::write(&policy, crate::audit_log::WRITE_POLICY)
                .map_err(io_error("write", &policy))?;
            audit_flags = vec![
                format!("--audit-policy-file={}", policy.display()),
                format!("--audit-log-path={}", log.display()),
                "--audit-log-format=json".into(),
                // Each event is written before the response goes out.
                "--audit-log-mode=blocking".into(),
            ];
        }
        processes.push(ManagedProcess::spawn(
            "kube-apiserver",
            &binaries::kube_binary("kube-apiserver")?,
            &[
                format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={apiserver_port}"),
                "--insecure-port=0".into(),
                format!("--cert-dir={}", dir_path.join("apiserver-certs").display()),
                format!("--tls-cert-file={}", serving.cert_file.display()),
                format!("--tls-private-key-file={}", serving.key_file.display()),
                format!("--client-ca-file={}", ca.cert_file.display()),
                "--authorization-mode=RBAC".into(),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", sa_key.public_key.display()),
                format!(
                    "--service-account-signing-key-file={}",
                    sa_key.private_key.display()
                ),
                "--service-cluster-ip-range=10.96.0.0/16".into(),
                "--allow-privileged=true".into(),
                "--profiling=false".into(),
                // No beta API is used by the tests, and serving them costs every control
                // plane a second of CPU at start, a fifth of its idle work and a quarter of
                // the OpenAPI document it re-encodes at each CRD change.
                "--runtime-config=api/beta=false".into(),
                // Fairness among tenants is nothing a test measures; its bookkeeping was a
                // tenth of an idle API server's CPU.
                "--enable-priority-and-fairness=false".into(),
                "--v=1".into(),
            ]
            .into_iter()
            .chain(audit_flags)
            .collect::<Vec<_>>(),
            &dir_path,
        )?);

        let component_kubeconfig = |user: &str, file: &str| -> Result<PathBuf, ControlPlaneError> {
            let cert = ca.issue(file, CertUse::Client { user, groups: &[] })?;
            let path = dir_path.join(format!("{file}.kubeconfig"));
            let text = kubeconfig_yaml(
                &server,
                &ca.cert_pem,
                user,
                Credentials::Certificate {
                    cert_pem: &cert.cert_pem,
                    key_pem: &cert.key_pem,
                },
            );
            fs::write(&path, text).map_err(io_error("write", &path))?;
            Ok(path)
        };
        // The controller manager and the scheduler start once the apiserver answers: the
        // controller manager gives the apiserver 10 s to become healthy and exits after
        // that, which a loaded machine exceeds.
        let mut after_apiserver: Vec<(&str, PathBuf, Vec<String>)> = Vec::new();
        if options.controller_manager {
            let kubeconfig =
                component_kubeconfig("system:kube-controller-manager", "controller-manager")?;
            after_apiserver.push((
                "kube-controller-manager",
                binaries::kube_binary("kube-controller-manager")?,
                vec![
                    format!("--kubeconfig={}", kubeconfig.display()),
                    "--leader-elect=false".into(),
                    "--port=0".into(),
                    "--secure-port=0".into(),
                    format!(
                        "--service-account-private-key-file={}",
                        sa_key.private_key.display()
                    ),
                    format!("--root-ca-file={}", ca.cert_file.display()),
                    "--use-service-account-credentials=true".into(),
                    "--controllers=*,-nodeipam,-csrsigning,-csrapproving,-ttl-after-finished"
                        .into(),
                    "--v=1".into(),
                ],
            ));
        }
        if options.scheduler {
            let kubeconfig = component_kubeconfig("system:kube-scheduler", "scheduler")?;
            after_apiserver.push((
                "kube-scheduler",
                binaries::kube_binary("kube-scheduler")?,
                vec![
                    format!("--kubeconfig={}", kubeconfig.display()),
                    "--leader-elect=false".into(),
                    "--port=0".into(),
                    "--secure-port=0".into(),
                    "--v=1".into(),
                ],
            ));
        }

        let kubeconfig = dir_path.join("admin.kubeconfig");
        let admin_text = kubeconfig_yaml(
            &server,
            &ca.cert_pem,
            "strata-admin",
            Credentials::Certificate {
                cert_pem: &admin.cert_pem,
                key_pem: &admin.key_pem,
            },
        );
        fs::write(&kubeconfig, &admin_text).map_err(io_error("write", &kubeconfig))?;
        let client = client_from_kubeconfig(&kubeconfig, &options.name).await?;

        let mut cp = ControlPlane {
            name: options.name.clone(),
            dir: Some(dir),
            dir_path,
            processes,
            server,
            apiserver_port,
            ca_pem: ca.cert_pem.clone(),
            ca_file: ca.cert_file.clone(),
            kubeconfig,
            client,
            audit_log,
        };
        if !after_apiserver.is_empty() {
            cp.wait_apiserver(started, options).await?;
            for (name, binary, args) in after_apiserver {
                let process = ManagedProcess::spawn(name, &binary, &args, &cp.dir_path)?;
                cp.processes.push(process);
            }
        }
        cp.wait_ready(started, options).await?;
        tracing::info!(name = %cp.name, server = %cp.server, elapsed = ?started.elapsed(), "control plane ready");
        Ok(cp)
    }

    async fn wait_ready(
        &mut self,
        started: Instant,
        options: &ControlPlaneOptions,
    ) -> Result<(), ControlPlaneError> {
        let deadline = started + options.ready_timeout;
        let mut last_reason;
        loop {
            for process in &mut self.processes {
                process.check_running()?;
            }
            match self.readiness().await {
                // /readyz can answer before the apiserver's bootstrap has created the
                // `default` namespace; callers expect it.
                Ok(()) if !options.controller_manager => {
                    let namespaces: Api<Namespace> = Api::all(self.client.clone());
                    match namespaces.get_opt("default").await {
                        Ok(Some(_)) => return Ok(()),
                        Ok(None) => last_reason = "the default namespace does not exist yet".into(),
                        Err(e) => last_reason = format!("cannot read namespaces: {e}"),
                    }
                }
                Ok(()) => {
                    let accounts: Api<ServiceAccount> =
                        Api::namespaced(self.client.clone(), "default");
                    match accounts.get_opt("default").await {
                        Ok(Some(_)) => return Ok(()),
                        Ok(None) => {
                            last_reason = "the default service account does not exist yet".into()
                        }
                        Err(e) => last_reason = format!("cannot read service accounts: {e}"),
                    }
                }
                Err(reason) => last_reason = reason,
            }
            if Instant::now() >= deadline {
                return Err(ControlPlaneError::NotReady {
                    name: self.name.clone(),
                    waited: options.ready_timeout,
                    reason: last_reason,
                    logs: self.describe_logs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the apiserver answers `/readyz`, within the start-up deadline.
    async fn wait_apiserver(
        &mut self,
        started: Instant,
        options: &ControlPlaneOptions,
    ) -> Result<(), ControlPlaneError> {
        let deadline = started + options.ready_timeout;
        loop {
            for process in &mut self.processes {
                process.check_running()?;
            }
            let reason = match self.readiness().await {
                Ok(()) => return Ok(()),
                Err(reason) => reason,
            };
            if Instant::now() >= deadline {
                return Err(ControlPlaneError::NotReady {
                    name: self.name.clone(),
                    waited: options.ready_timeout,
                    reason,
                    logs: self.describe_logs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn readiness(&self) -> Result<(), String> {
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|e| format!("cannot build the readiness request: {e}"))?;
        match self.client.request_text(request).await {
            Ok(text) if text.trim() == "ok" => Ok(()),
            Ok(text) => Err(format!("/readyz answered {text:?}")),
            Err(e) => Err(format!("/readyz failed: {e}")),
        }
    }

    /// An admin client.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The admin kubeconfig file.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn apiserver_port(&self) -> u16 {
        self.apiserver_port
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The apiserver's audit log, when [`ControlPlaneOptions::audit_log`] turned it on.
    pub fn audit_log_path(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    /// The control plane's folder (PKI, etcd data, logs).
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    pub fn logs(&self) -> Vec<LogFile> {
        self.processes
            .iter()
            .map(|p| LogFile {
                process: p.name.clone(),
                path: p.log.clone(),
            })
            .collect()
    }

    fn describe_logs(&self) -> String {
        self.logs()
            .iter()
            .map(|l| format!("{} {}", l.process, l.path.display()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A kubeconfig (YAML text) for this apiserver that authenticates with a bearer token.
    pub fn kubeconfig_for_token(&self, user: &str, token: &str) -> String {
        kubeconfig_yaml(&self.server, &self.ca_pem, user, Credentials::Token(token))
    }

    /// A client that authenticates with a bearer token (e.g. a service account's).
    pub async fn client_for_token(&self, token: &str) -> Result<Client, ControlPlaneError> {
        let text = self.kubeconfig_for_token("token-user", token);
        client_from_kubeconfig_text(&text, &self.name).await
    }

    /// A client that reaches the apiserver at another address (e.g. through a fault proxy),
    /// with the admin credentials. The apiserver's certificate is valid for 127.0.0.1.
    pub async fn client_via(&self, address: SocketAddr) -> Result<Client, ControlPlaneError> {
        let text =
            fs::read_to_string(&self.kubeconfig).map_err(io_error("read", &self.kubeconfig))?;
        let redirected = text.replace(&self.server, &format!("https://{address}"));
        client_from_kubeconfig_text(&redirected, &self.name).await
    }

    /// The process ids of etcd, the apiserver and the controllers.
    pub fn pids(&self) -> Vec<u32> {
        self.processes.iter().map(|p| p.child.id()).collect()
    }

    /// Resident memory of every process of this control plane, in bytes (from /proc).
    pub fn resident_memory(&self) -> Vec<(String, u64)> {
        self.processes
            .iter()
            .map(|p| (p.name.clone(), resident_bytes(p.child.id())))
            .collect()
    }

    /// Appends one line to `path`: the test (this process's arguments), the control plane
    /// and the CPU seconds each of its processes used. For finding which tests cost the
    /// suite most; a failure to write is only reported.
    fn record_cpu_use(&self, path: &Path) {
        let mut line = format!(
            "{} {}",
            std::env::args().collect::<Vec<_>>().join(" "),
            self.name
        );
        for process in &self.processes {
            let seconds = cpu_seconds(process.child.id());
            line.push_str(&format!(" {}={seconds:.2}", process.name));
        }
        line.push('\n');
        let written = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, line.as_bytes()));
        if let Err(e) = written {
            eprintln!("cannot record CPU use in {}: {e}", path.display());
        }
    }

    /// Stops the processes now (also done on drop).
    pub fn stop(&mut self) {
        // The apiserver first, so controllers do not log a storm of connection errors.
        for process in self.processes.iter_mut().rev() {
            process.stop();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(path) = std::env::var_os(CPU_LOG_VARIABLE) {
            self.record_cpu_use(Path::new(&path));
        }
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "control plane {} logs (kept for the failed test):",
                self.name
            );
            for log in self.logs() {
                eprintln!("  {}: {}", log.process, log.path.display());
            }
            if let Some(dir) = self.dir.take() {
                let _ = dir.keep();
            }
        }
    }
}

/// The variable naming the file [`ControlPlane::record_cpu_use`] appends to.
pub const CPU_LOG_VARIABLE: &str = "STRATA_CP_CPU_LOG";

/// User plus system CPU time of a process so far, from /proc (0 when unreadable).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // /proc counts in USER_HZ, 100 on the architectures the tests run on.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn resident_bytes(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// How a kubeconfig user authenticates.
pub enum Credentials<'a> {
    Certificate { cert_pem: &'a str, key_pem: &'a str },
    Token(&'a str),
}

/// A one-context kubeconfig with the CA and credentials embedded.
pub fn kubeconfig_yaml(
    server: &str,
    ca_pem: &str,
    user: &str,
    credentials: Credentials<'_>,
) -> String {
    use base64::Engine;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let user_fields = match credentials {
        Credentials::Certificate { cert_pem, key_pem } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            encode(cert_pem.as_bytes()),
            encode(key_pem.as_bytes())
        ),
        Credentials::Token(token) => format!("    token: {token}\n"),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: strata\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n{user_fields}contexts:\n- name: strata\n  context:\n    cluster: strata\n    user: {user}\ncurrent-context: strata\n",
        encode(ca_pem.as_bytes())
    )
}

async fn client_from_kubeconfig(path: &Path, name: &str) -> Result<Client, ControlPlaneError> {
    let text = fs::read_to_string(path).map_err(io_error("read", path))?;
    client_from_kubeconfig_text(&text, name).await
}

pub async fn client_from_kubeconfig_text(
    text: &str,
    name: &str,
) -> Result<Client, ControlPlaneError> {
    let client_error = |reason: String| ControlPlaneError::Client {
        name: name.into(),
        reason,
    };
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(|e| client_error(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| client_error(e.to_string()))?;
    Client::try_from(config).map_err(|e| client_error(e.to_string()))
}
