//! The pivot under faults: the agent killed (SIGKILL, from outside) right after randomly
//! chosen writes of the move, inside object groups; two agent processes for one cluster,
//! the one moving killed mid-move and the other taking over once the lease expires; and
//! the `block-move` annotation holding the move at its pause.
//!
//! The kill points come from the agent's test fault injection `STRATA_MOVE_WRITE_DELAY_MS`:
//! the object-level writes of the move go one at a time, each logged ("move write", with
//! its kind and object) and followed by a pause that long, time enough for the test, which
//! follows the log, to kill the process before its next write. The kinds imply the phase: `pause` (Planned),
//! `create` and `status` (Paused), `release` and `delete` (Created), `unpause`
//! (SourceDeleted). Random choices come from a seed printed at the start; set
//! `STRATA_FAULT_SEED` to replay one.
//!
//! The agent installs the workload cluster's provider components itself, as in `pivot.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::cloud_sim::workload::Workload;
use strata_e2e::control_plane::log_tail;
use strata_e2e::dynamic_objects::{get_dynamic, resource};
use strata_e2e::loss_watch::{LossWatch, watched_objects};
use strata_e2e::management::{ControllerProcess, ManagementEnv};
use strata_e2e::move_checks::{check_moved, mid_move_violations, pivot_journal};
use strata_e2e::pivoted_cluster::ReadyToPivot;
use strata_e2e::process_kubelet::{
    AgentProcess, ProcessKubelet, default_agent_binary, random_pod_ip, require_fault_hooks,
};
use strata_e2e::wait::eventually;
use strata_shared::contracts::labels::{BLOCK_MOVE_ANNOTATION, PAUSED_BY_MOVE_ANNOTATION};
use strata_shared::contracts::names::{AGENT_NAME, AGENT_NAMESPACE};
use strata_shared::pivot::journal::MovePhase;

const NAMESPACE: &str = "strata-demo";
const CLUSTER: &str = "demo";
const WRITE_DELAY_MS: &str = "250";
/// The agent's lease (its default name, in its pod's namespace).
const LEASE: &str = "strata-agent";
/// What the agent logs once the move is done.
const MOVED: &str = "the cluster's CAPI objects live in the cluster now";

/// The tests of this file one at a time when they share a process (`cargo test`): each
/// stops every workload control plane of the process when it ends.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// splitmix64: reproducible choices from a printed seed.
struct Rng(u64);

impl Rng {
    fn from_env(test: &str) -> Rng {
        let seed = std::env::var("STRATA_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{test}: fault seed {seed} (replay with STRATA_FAULT_SEED={seed})");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// A sim cluster whose first control-plane node runs and whose agent Deployment exists in
/// the workload cluster, with no agent process started yet.
struct Setup {
    env: ManagementEnv,
    controller: ControllerProcess,
    client: Client,
    workload: Arc<Workload>,
    w: Client,
    objects: String,
    machines: BTreeMap<String, String>,
}

impl Setup {
    async fn start(name: &str) -> Setup {
        require_fault_hooks();
        let ReadyToPivot {
            env,
            controller,
            client,
            workload,
            objects,
            machines,
        } = ReadyToPivot::start(name, NAMESPACE, CLUSTER).await;
        let w = workload.client();
        Setup {
            env,
            controller,
            client,
            workload,
            w,
            objects,
            machines,
        }
    }

    fn loss_watch(&self) -> LossWatch {
        LossWatch::start(
            self.client.clone(),
            self.w.clone(),
            &self.objects,
            CLUSTER,
            watched_objects(CLUSTER, self.machines.keys()),
        )
    }

    /// Starts the process kubelet of the workload cluster: the agent Deployment's replica
    /// (and, once the agent deploys them, the provider controllers) run from now on.
    async fn run_agents(&self) -> Arc<ProcessKubelet> {
        assert!(
            self.env
                .run_agents_of(&self.objects, CLUSTER)
                .await
                .unwrap()
        );
        self.env.agents_of(&self.objects, CLUSTER).unwrap()
    }

    /// An env var for the agent container (the controller's apply leaves an env var of
    /// another field manager alone), before any replica runs.
    async fn set_agent_env(&self, name: &str, value: &str) {
        let patch = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": AGENT_NAME, "namespace": AGENT_NAMESPACE },
            "spec": { "template": { "spec": { "containers": [{
                "name": "agent",
                "env": [{ "name": name, "value": value }],
            }]}}},
        });
        Api::<Deployment>::namespaced(self.w.clone(), AGENT_NAMESPACE)
            .patch(
                AGENT_NAME,
                &PatchParams::apply("e2e-faults"),
                &Patch::Apply(&patch),
            )
            .await
            .unwrap();
    }

    /// Waits for the move's journal to say Done; fails with the agents' logs.
    async fn wait_done(&self, timeout: Duration, logs: &dyn Fn() -> String) {
        let deadline = Instant::now() + timeout;
        loop {
            if pivot_journal(&self.w, CLUSTER)
                .await
                .is_some_and(|j| j.phase == MovePhase::Done)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the move did not finish in {timeout:?}\n--- controller ---\n{}\n{}",
                self.controller.log_tail(20),
                logs()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// The agent Deployment's replica run by the process kubelet.
fn agent_replica(kubelet: &ProcessKubelet) -> Option<AgentProcess> {
    let deployment = format!("{AGENT_NAMESPACE}/{AGENT_NAME}");
    kubelet
        .processes()
        .into_iter()
        .find(|p| p.deployment == deployment)
}

fn tails(logs: &[&Path]) -> String {
    logs.iter()
        .map(|path| format!("--- {} ---\n{}", path.display(), log_tail(path, 40)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Follows a growing log file, a complete line at a time, without its colours.
struct LogFollower {
    path: PathBuf,
    offset: u64,
}

impl LogFollower {
    fn new(path: &Path) -> LogFollower {
        LogFollower {
            path: path.to_path_buf(),
            offset: 0,
        }
    }

    fn new_lines(&mut self) -> Vec<String> {
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut bytes).is_err()
        {
            return Vec::new();
        }
        let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        self.offset += end as u64 + 1;
        String::from_utf8_lossy(&bytes[..end])
            .lines()
            .map(strip_ansi)
            .collect()
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, ended by a letter.
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn all_lines(path: &Path) -> Vec<String> {
    LogFollower::new(path).new_lines()
}

/// A line's timestamp (the agent logs in UTC, RFC 3339).
fn timestamp(line: &str) -> Option<Timestamp> {
    line.split_whitespace().next()?.parse().ok()
}

/// A write of the move: (phase, object, kind).
type Point = (&'static str, String, String);

fn parse_write(line: &str) -> Option<Point> {
    let rest = &line[line.find(" move write ")? + " move write ".len()..];
    let kind = rest
        .strip_prefix("write=")?
        .split_whitespace()
        .next()?
        .trim_matches('"')
        .to_string();
    let object = rest[rest.find(" object=")? + " object=".len()..]
        .trim()
        .to_string();
    let phase = match kind.as_str() {
        "pause" => "Planned",
        "create" | "status" => "Paused",
        "delete" | "release" => "Created",
        "unpause" => "SourceDeleted",
        _ => "unknown",
    };
    Some((phase, object, kind))
}

/// A line of the move itself: a step or a write.
fn is_move_line(line: &str) -> bool {
    line.contains(" move step ") || line.contains(" move write ")
}

/// The agent is killed (SIGKILL, from outside) right after a random write of the move, again
/// and again until the move is done: after every kill, the next process (the process
/// kubelet restarts it) redoes what was done but not recorded. Each incarnation is killed
/// after its k-th write (k random in 1..=2) at a point no earlier kill reached, so the kills
/// spread over the whole move, inside groups: between two creates of a group, two status
/// restores, the release and the delete of one object. After each kill, while no
/// agent runs, what must hold mid-move is checked; at the end, everything a move promises.
#[tokio::test]
async fn a_move_killed_at_random_writes_converges_and_loses_nothing() {
    let _serial = serial().await;
    let _stop = StopWorkloads;
    let started = Instant::now();
    let mut rng = Rng::from_env("random kills");
    let setup = Setup::start("pivot-kills").await;
    setup
        .set_agent_env("STRATA_MOVE_WRITE_DELAY_MS", WRITE_DELAY_MS)
        .await;
    let watch = setup.loss_watch();
    let kubelet = setup.run_agents().await;
    let replica = eventually("the agent's process", Duration::from_secs(60), || async {
        agent_replica(&kubelet).filter(|p| p.pid.is_some())
    })
    .await;
    let log = replica.log.clone();

    // A bound on the test's time; a move of 13 objects has about 50 points, so it is
    // rarely reached.
    const MAX_KILLS: usize = 36;
    let mut follower = LogFollower::new(&log);
    let mut killed_at: BTreeSet<Point> = BTreeSet::new();
    let mut kills = 0usize;
    let mut starts = 0u32;
    let mut k = 0u64;
    let mut counted = 0u64;
    let mut killed = false;
    let mut last_write: Option<Point> = None;
    let mut writes = 0usize;
    let mut done = false;
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done {
        for line in follower.new_lines() {
            if line.starts_with("--- starting") {
                if killed && let Some(point) = last_write.take() {
                    killed_at.insert(point);
                }
                starts += 1;
                k = rng.between(1, 2);
                counted = 0;
                killed = false;
                last_write = None;
                continue;
            }
            if line.contains(MOVED) {
                done = true;
            }
            let Some(point) = parse_write(&line) else {
                continue;
            };
            writes += 1;
            last_write = Some(point.clone());
            // Lines the killed process wrote before our kill landed (a slow poll).
            if killed || kills >= MAX_KILLS {
                continue;
            }
            if !killed_at.contains(&point) {
                counted += 1;
            }
            if counted < k {
                continue;
            }
            // Only the incarnation whose lines these are: the kubelet counts its restarts.
            let Some(pid) = agent_replica(&kubelet)
                .filter(|p| p.restarts + 1 == starts)
                .and_then(|p| p.pid)
            else {
                continue;
            };
            if kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_err() {
                // It exited on its own meanwhile; its successor gets its own k.
                continue;
            }
            killed = true;
            kills += 1;
            // The restart waits a second, and a new agent takes longer still to reach the
            // move: nothing moves while this runs.
            let violations = mid_move_violations(&setup.client, &setup.w, CLUSTER).await;
            assert!(
                violations.is_empty(),
                "after kill {kills} (after {point:?}): {violations:?}\n{}",
                tails(&[&log])
            );
        }
        assert!(
            Instant::now() < deadline,
            "the move did not finish after {kills} kills\n{}",
            tails(&[&log])
        );
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    if killed && let Some(point) = last_write.take() {
        killed_at.insert(point);
    }
    setup
        .wait_done(Duration::from_secs(60), &|| tails(&[&log]))
        .await;
    let lost = watch.finish().await;
    assert!(
        lost.is_empty(),
        "objects were lost during the move: {lost:?}"
    );
    let moved = check_moved(&setup.client, &setup.w, CLUSTER).await;

    let mut points: Vec<String> = killed_at
        .iter()
        .map(|(phase, object, kind)| format!("{phase}: {kind} {object}"))
        .collect();
    points.sort();
    eprintln!(
        "the move of {} objects survived {kills} kills at {} distinct points ({writes} writes logged) in {:?}:\n  {}",
        moved.len(),
        killed_at.len(),
        started.elapsed(),
        points.join("\n  ")
    );
    assert!(
        killed_at.len() >= 20,
        "only {} distinct kill points: {points:?}",
        killed_at.len()
    );
    // Both halves of the move, and inside steps: a release (the delete-for-move annotation
    // and the finalizers cleared, in one write) is always followed by the delete of the
    // same object, and a delete by the next object's release.
    let phases: BTreeSet<&str> = killed_at.iter().map(|(phase, _, _)| *phase).collect();
    assert!(
        phases.contains("Paused") && phases.contains("Created"),
        "{points:?}"
    );
    assert!(
        killed_at
            .iter()
            .any(|(_, _, kind)| kind == "release" || kind == "delete"),
        "{points:?}"
    );
}

/// A second agent process for the cluster, with the pod environment the process kubelet
/// gives a replica of the agent Deployment (token, kubeconfig, the management Secret's
/// files, the container's env and args) but its own pod name, hence lease identity.
struct SecondAgent {
    child: Child,
    identity: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl SecondAgent {
    async fn start(workload: &Workload, identity: &str, extra_env: &[(&str, &str)]) -> SecondAgent {
        let w = workload.client();
        let dir = tempfile::Builder::new()
            .prefix("strata-second-agent-")
            .tempdir()
            .unwrap();
        let path = dir.path();
        let deployment = Api::<Deployment>::namespaced(w.clone(), AGENT_NAMESPACE)
            .get(AGENT_NAME)
            .await
            .unwrap();
        let pod = deployment.spec.unwrap().template.spec.unwrap();
        let container = pod.containers[0].clone();
        let account = pod.service_account_name.clone().unwrap();

        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let token = Api::<ServiceAccount>::namespaced(w.clone(), AGENT_NAMESPACE)
            .create_subresource::<_, TokenRequest>("token", &account, &Default::default(), &request)
            .await
            .unwrap()
            .status
            .unwrap()
            .token;
        let sa = path.join("serviceaccount");
        std::fs::create_dir_all(&sa).unwrap();
        std::fs::write(sa.join("token"), token).unwrap();
        std::fs::write(sa.join("ca.crt"), workload.ca_pem()).unwrap();
        let kubeconfig = path.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: in-cluster\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {account}\n  user:\n    tokenFile: {}\ncontexts:\n- name: in-cluster\n  context:\n    cluster: in-cluster\n    user: {account}\n    namespace: {AGENT_NAMESPACE}\ncurrent-context: in-cluster\n",
                workload.server(),
                sa.join("ca.crt").display(),
                sa.join("token").display()
            ),
        )
        .unwrap();

        // The container's volumes as folders (secret volumes with their files); paths under
        // their mounts rewritten.
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let volume = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == mount.name)
                .unwrap();
            let local = path.join("mounts").join(&mount.name);
            std::fs::create_dir_all(&local).unwrap();
            mounts.push((
                mount.mount_path.trim_end_matches('/').to_string(),
                local.clone(),
            ));
            // The pack cache (a folder of the node) starts empty.
            let Some(secret) = &volume.secret else {
                continue;
            };
            let secret_name = secret.secret_name.clone().unwrap();
            let secret = Api::<Secret>::namespaced(w.clone(), AGENT_NAMESPACE)
                .get(&secret_name)
                .await
                .unwrap();
            for (key, value) in secret.data.unwrap_or_default() {
                std::fs::write(local.join(key), value.0).unwrap();
            }
        }
        let rewrite = |value: &str| {
            mounts
                .iter()
                .find_map(|(mount, local)| {
                    value
                        .strip_prefix(mount.as_str())
                        .map(|rest| format!("{}{rest}", local.display()))
                })
                .unwrap_or_else(|| value.to_string())
        };
        let mut env: Vec<(String, String)> = vec![
            ("KUBECONFIG".into(), kubeconfig.display().to_string()),
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ];
        for var in container.env.iter().flatten() {
            let value = match (&var.value, &var.value_from) {
                (Some(value), _) => rewrite(value),
                (None, Some(from)) => {
                    match from.field_ref.as_ref().map(|f| f.field_path.as_str()) {
                        Some("metadata.name") => identity.to_string(),
                        Some("metadata.namespace") => AGENT_NAMESPACE.to_string(),
                        Some("status.podIP") => random_pod_ip().to_string(),
                        other => panic!("env {} from {other:?} is not simulated here", var.name),
                    }
                }
                (None, None) => String::new(),
            };
            env.push((var.name.clone(), value));
        }
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let args: Vec<String> = container
            .args
            .iter()
            .flatten()
            .map(|a| rewrite(a))
            .collect();
        let log = path.join("process.log");
        let out = File::create(&log).unwrap();
        let child = Command::new(default_agent_binary())
            .args(&args)
            .env_clear()
            .envs(env)
            .current_dir(path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        SecondAgent {
            child,
            identity: identity.to_string(),
            log,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SecondAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn lease(w: &Client) -> Option<Lease> {
    Api::<Lease>::namespaced(w.clone(), AGENT_NAMESPACE)
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

/// Two agent processes for one cluster: a second one, started first, takes the lease and
/// moves (slowly, with the write delay); the Deployment's replica starts meanwhile and
/// stands by. The mover is the second one because nothing restarts it: a replica the
/// process kubelet restarts keeps its pod name, hence its lease identity, and holds the
/// lease again at once. The mover is killed mid-move; the standby takes the lease over once it has
/// expired and finishes the move. The agents' logs (identity, timestamps) show the move's
/// steps of the two never interleave.
#[tokio::test]
async fn two_agents_never_move_at_once_and_the_standby_takes_over() {
    let _serial = serial().await;
    let _stop = StopWorkloads;
    let started = Instant::now();
    let mut rng = Rng::from_env("lease takeover");
    let setup = Setup::start("pivot-lease").await;
    let watch = setup.loss_watch();
    let mut mover = SecondAgent::start(
        &setup.workload,
        "strata-agent-second",
        &[("STRATA_MOVE_WRITE_DELAY_MS", WRITE_DELAY_MS)],
    )
    .await;
    eventually(
        "the second agent to hold the lease",
        Duration::from_secs(60),
        || async {
            lease(&setup.w)
                .await
                .filter(|l| holder(l) == Some(mover.identity.as_str()))
        },
    )
    .await;
    let kubelet = setup.run_agents().await;
    let standby = eventually("the replica's process", Duration::from_secs(60), || async {
        agent_replica(&kubelet).filter(|p| p.pid.is_some())
    })
    .await;
    let logs = [mover.log.clone(), standby.log.clone()];
    let show = || tails(&[&logs[0], &logs[1]]);
    eventually("the replica to start", Duration::from_secs(60), || async {
        all_lines(&standby.log)
            .iter()
            .any(|l| l.contains(" agent started "))
            .then_some(())
    })
    .await;

    // Killed after a random write of the move's middle (about 60 writes in all).
    let k = rng.between(6, 36) as usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while all_lines(&mover.log)
        .iter()
        .filter(|l| parse_write(l).is_some())
        .count()
        < k
    {
        assert!(
            Instant::now() < deadline,
            "the second agent made fewer than {k} writes\n{}",
            show()
        );
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let held = lease(&setup.w).await.unwrap();
    kill(Pid::from_raw(mover.pid() as i32), Signal::SIGKILL).unwrap();
    let killed = Timestamp::now();
    let _ = mover.child.wait();
    let spec = held.spec.clone().unwrap();
    assert_eq!(
        spec.holder_identity.as_deref(),
        Some(mover.identity.as_str())
    );
    let expires = spec
        .renew_time
        .unwrap()
        .0
        .checked_add(SignedDuration::from_secs(i64::from(
            spec.lease_duration_seconds.unwrap(),
        )))
        .unwrap();
    let violations = mid_move_violations(&setup.client, &setup.w, CLUSTER).await;
    assert!(violations.is_empty(), "{violations:?}\n{}", show());
    assert!(
        pivot_journal(&setup.w, CLUSTER)
            .await
            .is_some_and(|j| j.phase < MovePhase::Done),
        "the move was done before the kill\n{}",
        show()
    );

    setup.wait_done(Duration::from_secs(120), &show).await;
    let lost = watch.finish().await;
    assert!(
        lost.is_empty(),
        "objects were lost during the move: {lost:?}"
    );
    let moved = check_moved(&setup.client, &setup.w, CLUSTER).await;

    // Who did what, when: each log's lease identity, and its move lines' timestamps.
    let identity = |path: &Path| {
        all_lines(path)
            .iter()
            .find_map(|l| {
                let rest = &l[l.find(" agent started ")?..];
                let value = rest[rest.find(" identity=")? + " identity=".len()..]
                    .split_whitespace()
                    .next()?;
                Some(value.to_string())
            })
            .unwrap_or_else(|| panic!("{} names no identity", path.display()))
    };
    let (second, replica) = (identity(&logs[0]), identity(&logs[1]));
    assert_eq!(second, mover.identity);
    assert_eq!(replica, standby.pod_name);
    let mut steps: Vec<(Timestamp, &str, String)> = Vec::new();
    for (path, who) in [(&logs[0], second.as_str()), (&logs[1], replica.as_str())] {
        for line in all_lines(path).into_iter().filter(|l| is_move_line(l)) {
            steps.push((timestamp(&line).unwrap(), who, line));
        }
    }
    steps.sort();
    let order: Vec<&str> = steps.iter().map(|(_, who, _)| *who).collect();
    let switch = order.iter().position(|w| *w == replica).unwrap_or_else(|| {
        panic!("{replica} did no step of the move\n{}", show());
    });
    assert!(switch > 0, "{second} did no step\n{}", show());
    assert!(
        order[switch..].iter().all(|w| *w == replica),
        "the two agents' move steps interleave: {:#?}",
        steps
            .iter()
            .map(|(at, who, _)| format!("{at} {who}"))
            .collect::<Vec<_>>()
    );
    let replica_lines = all_lines(&logs[1]);
    let line_at = |needle: &str| {
        replica_lines
            .iter()
            .find(|l| l.contains(needle))
            .and_then(|l| timestamp(l))
            .unwrap_or_else(|| panic!("the replica never logged {needle:?}\n{}", show()))
    };
    let replica_started = line_at(" agent started ");
    let replica_leads = line_at("leading=true");
    let (last_of_mover, first_of_replica) = (steps[switch - 1].0, steps[switch].0);
    assert!(
        replica_started < last_of_mover,
        "the replica did not run while the second agent moved"
    );
    assert!(
        replica_leads >= expires,
        "the replica took the lease at {replica_leads}, before it expired at {expires}"
    );
    assert!(last_of_mover < killed && killed < first_of_replica);
    eprintln!(
        "{second} did {switch} move steps and writes, the last at {last_of_mover}; killed at {killed} (after its write {k}); its lease expired at {expires}; {replica} (running since {replica_started}) took the lease at {replica_leads} and did the other {} up to the end; {} objects moved; {:?}",
        steps.len() - switch,
        moved.len(),
        started.elapsed()
    );
}

/// `block-move` on an object of the cluster holds the move at its pause: the source
/// Cluster is paused by the move, and nothing is created in the target until the
/// annotation goes; then the move completes.
#[tokio::test]
async fn the_block_move_annotation_holds_the_move_until_removed() {
    let _serial = serial().await;
    let _stop = StopWorkloads;
    let started = Instant::now();
    let setup = Setup::start("pivot-block").await;
    let control_plane = format!("{CLUSTER}-control-plane");
    let kcp_api: Api<DynamicObject> = Api::namespaced_with(
        setup.client.clone(),
        &setup.objects,
        &resource(
            "controlplane.cluster.x-k8s.io/v1beta2",
            "KubeadmControlPlane",
        ),
    );
    let annotate = |value: serde_json::Value| json!({ "metadata": { "annotations": { BLOCK_MOVE_ANNOTATION: value } } });
    kcp_api
        .patch(
            &control_plane,
            &PatchParams::default(),
            &Patch::Merge(&annotate(json!("true"))),
        )
        .await
        .unwrap();
    let watch = setup.loss_watch();
    let kubelet = setup.run_agents().await;
    let replica = eventually("the agent's process", Duration::from_secs(60), || async {
        agent_replica(&kubelet).filter(|p| p.pid.is_some())
    })
    .await;
    let show = || tails(&[&replica.log]);
    let source_cluster = || async {
        get_dynamic(
            &setup.client,
            "cluster.x-k8s.io/v1beta2",
            "Cluster",
            Some(&setup.objects),
            CLUSTER,
        )
        .await
    };
    let paused_by_move = |c: &DynamicObject| {
        c.data.pointer("/spec/paused") == Some(&json!(true))
            && c.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(PAUSED_BY_MOVE_ANNOTATION))
    };
    eventually(
        "the agent to wait for block-move",
        Duration::from_secs(120),
        || async {
            all_lines(&replica.log)
                .iter()
                .any(|l| {
                    l.contains("waiting for block-move to be lifted") && l.contains(&control_plane)
                })
                .then_some(())
        },
    )
    .await;

    // Held: for a while, the source stays paused by the move and the target gets nothing.
    let journal = pivot_journal(&setup.w, CLUSTER).await.unwrap();
    let held_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < held_until {
        let cluster = source_cluster().await.unwrap();
        assert!(
            paused_by_move(&cluster),
            "the source Cluster is not paused by the move: {:?}",
            cluster.metadata.annotations
        );
        for entry in journal.objects.values() {
            let copy = get_dynamic(
                &setup.w,
                &entry.api_version,
                &entry.kind,
                entry.namespace.as_deref(),
                &entry.name,
            )
            .await;
            assert!(
                copy.is_none() || entry.global,
                "{} was created in the target while block-move was set\n{}",
                entry.describe(),
                show()
            );
        }
        let now = pivot_journal(&setup.w, CLUSTER).await.unwrap();
        assert_eq!(now.phase, MovePhase::Planned, "{}", show());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    kcp_api
        .patch(
            &control_plane,
            &PatchParams::default(),
            &Patch::Merge(&annotate(serde_json::Value::Null)),
        )
        .await
        .unwrap();
    let lifted = Instant::now();
    setup.wait_done(Duration::from_secs(120), &show).await;
    let lost = watch.finish().await;
    assert!(
        lost.is_empty(),
        "objects were lost during the move: {lost:?}"
    );
    let moved = check_moved(&setup.client, &setup.w, CLUSTER).await;
    assert!(
        moved.iter().any(|m| m.contains(&control_plane)),
        "{moved:?}"
    );
    eprintln!(
        "block-move held the move for 8 s; {} objects moved {:?} after it was lifted; {:?} in all",
        moved.len(),
        lifted.elapsed(),
        started.elapsed()
    );
}
