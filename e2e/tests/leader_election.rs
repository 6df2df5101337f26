//! Two `strata controller` replicas and the leader Lease, judged from the management
//! apiserver's audit log (the apiserver's own timestamps, not the replicas' clocks):
//! never two writers.
//!
//! Replica A reaches the apiserver through a fault proxy; replica B directly, with its
//! wall clock two minutes ahead (libfaketime, Debian's `faketime`). Each replica sends a
//! User-Agent naming its identity, which the audit log records with every write. Meanwhile the test changes the clusters'
//! specs every second, so the leader keeps writing revisions, CAPI objects and statuses
//! besides renewing its lease.
//!
//! First A leads and B, whose clock makes A's renewTime look two minutes old, stands by for
//! two lease durations. Then, three times: A is cut off for longer than the lease; A stops
//! its work on its own (lost leadership) and stands by; B takes over; A's link is restored
//! and A stays a standby; B stops gracefully (gives the lease up) and A takes over; B starts
//! again (a new identity) as a standby. At the end the successful writes of the replicas, in the
//! order the apiserver received them, form exactly the expected terms, each starting with
//! the new leader's lease write and beginning after the previous term's last write ended.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use strata_e2e::audit_log::{self, AuditEvent};
use strata_e2e::cloud_sim::SimOptions;
use strata_e2e::fault_proxy::FaultProxy;
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, SYSTEM_NAMESPACE, apply, ensure_namespace,
    read_documents, repo_root,
};
use strata_shared::cluster::WorkloadCluster;

const NAMESPACE: &str = "team-leader";
const CLUSTERS: usize = 3;
const CYCLES: usize = 3;
const LEASE: &str = "strata-controller";
/// The controller's lease duration.
const LEASE_SECONDS: u64 = 15;
/// B's wall clock, ahead of everyone else's.
const SKEW_SECONDS: i64 = 120;
const USER_AGENT_PREFIX: &str = "strata-controller/";

/// libfaketime's shared object (multi-threaded variant: the controller runs many threads).
fn faketime_library() -> PathBuf {
    let found = fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("faketime/libfaketimeMT.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketimeMT.so.1")])
        .find(|path| path.is_file());
    found.unwrap_or_else(|| {
        panic!("libfaketimeMT.so.1 not found: install Debian's faketime (bash scripts/install-test-deps.sh)")
    })
}

/// One incarnation of a replica.
struct Replica {
    identity: String,
    process: ControllerProcess,
}

impl Replica {
    async fn role(&self) -> Option<String> {
        let (_, body) = self.process.get("/readyz").await.ok()?;
        Some(body.trim().to_string())
    }

    async fn leads(&self) -> bool {
        self.role().await.as_deref() == Some("ok (leading)")
    }

    async fn stands_by(&self) -> bool {
        self.role().await.as_deref() == Some("ok (standing by)")
    }
}

fn tails(replicas: &[&Replica]) -> String {
    replicas
        .iter()
        .map(|r| format!("--- {} ---\n{}", r.identity, r.process.log_tail(25)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls `check` every 250 ms until it holds; past `timeout`, fails with the replicas' logs.
async fn until<F, Fut>(what: &str, timeout: Duration, replicas: &[&Replica], mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}\n{}",
            tails(replicas)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The replica incarnation behind a write, from its User-Agent
/// `strata-controller/<version> (<identity>)`.
fn writer(event: &AuditEvent) -> Option<&str> {
    let agent = event
        .user_agent
        .as_deref()?
        .strip_prefix(USER_AGENT_PREFIX)?;
    agent.split_once(" (")?.1.strip_suffix(')')
}

fn is_lease(event: &AuditEvent) -> bool {
    event.object_ref.as_ref().is_some_and(|o| {
        o.resource == "leases"
            && o.namespace.as_deref() == Some(SYSTEM_NAMESPACE)
            && o.name.as_deref() == Some(LEASE)
    })
}

/// The replicas' successful writes so far, in the order the apiserver received them.
fn replica_writes(audit: &Path) -> Vec<AuditEvent> {
    let mut writes: Vec<AuditEvent> = audit_log::read(audit)
        .unwrap()
        .into_iter()
        .filter(|e| e.is_successful_write() && writer(e).is_some())
        .collect();
    writes.sort_by(|a, b| {
        a.request_received_timestamp
            .cmp(&b.request_received_timestamp)
    });
    writes
}

/// Waits until `identity` has made a write besides its lease: the term is doing real work.
async fn wait_for_work(audit: &Path, replica: &Replica, others: &[&Replica]) {
    let what = format!(
        "{} to write something besides its lease in this term",
        replica.identity
    );
    let mut all = vec![replica];
    all.extend_from_slice(others);
    // A replica keeps its identity across its terms: only a write seen from now on shows
    // that this term worked, not one of an earlier term.
    let before = replica_writes(audit).len();
    until(&what, Duration::from_secs(60), &all, || async {
        replica_writes(audit)
            .iter()
            .skip(before)
            .any(|e| writer(e) == Some(replica.identity.as_str()) && !is_lease(e))
    })
    .await;
}

async fn lease(client: &Client) -> Lease {
    Api::<Lease>::namespaced(client.clone(), SYSTEM_NAMESPACE)
        .get(LEASE)
        .await
        .unwrap()
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

/// The timestamp the first line of a log starts with (tracing's RFC 3339 UTC, perhaps
/// in terminal colours).
fn first_timestamp(log: &Path) -> Timestamp {
    let text = fs::read_to_string(log).unwrap();
    let line = text.lines().next().expect("an empty log");
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence runs to its final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no timestamp at the start of {line:?}"))
}

/// Changes every cluster's spec once a second until stopped, so that the leader has
/// revisions, CAPI objects and statuses to write.
fn keep_changing_specs(client: Client, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let clusters: Api<WorkloadCluster> = Api::namespaced(client, NAMESPACE);
        let mut changes = 0;
        let mut mtu = 1400;
        while !stop.load(Ordering::SeqCst) {
            mtu += 1;
            for i in 0..CLUSTERS {
                let overrides = json!({"spec": {"overrides": [{
                    "pack": "cni-calico",
                    "values": format!("manifests:\n  calico:\n    mtu: {mtu}\n"),
                }]}});
                let changed = clusters
                    .patch(
                        &format!("c{i}"),
                        &PatchParams::default(),
                        &Patch::Merge(&overrides),
                    )
                    .await;
                changes += usize::from(changed.is_ok());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        changes
    })
}

#[tokio::test]
async fn two_controllers_never_write_at_once() {
    let started = Instant::now();
    let faketime = faketime_library();
    let env = ManagementEnv::start(ManagementOptions {
        sim: SimOptions::instant(),
        audit_log: true,
        ..ManagementOptions::named("leader")
    })
    .await
    .unwrap();
    let audit = env.control_plane.audit_log_path().unwrap().to_path_buf();
    let client = env.client();
    ensure_namespace(&client, NAMESPACE).await.unwrap();
    let sample = read_documents(&repo_root().join("manifests/samples/clusters/sim-demo.yaml"))
        .unwrap()
        .remove(0);
    for i in 0..CLUSTERS {
        let mut cluster = sample.clone();
        cluster["metadata"]["namespace"] = json!(NAMESPACE);
        cluster["metadata"]["name"] = json!(format!("c{i}"));
        apply(&client, &cluster).await.unwrap();
    }

    let kubeconfig = env.controller_kubeconfig().await.unwrap();
    let apiserver: SocketAddr = format!("127.0.0.1:{}", env.control_plane.apiserver_port())
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(apiserver).await.unwrap();
    let via_proxy = env.dir.path().join("controller-via-proxy.kubeconfig");
    fs::write(
        &via_proxy,
        fs::read_to_string(&kubeconfig)
            .unwrap()
            .replace(env.control_plane.server(), &proxy.url_for("https")),
    )
    .unwrap();
    let preload = faketime.display().to_string();
    let offset = format!("+{SKEW_SECONDS}s");
    let skewed = [
        ("LD_PRELOAD", preload.as_str()),
        ("FAKETIME", offset.as_str()),
        // Only the wall clock is off, as on an edge node with a wrong clock.
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let dir = env.dir.path().to_path_buf();
    let start_a = |n: usize| {
        let identity = format!("controller-a{n}");
        let process = ControllerProcess::start(&via_proxy, &dir, &identity, &[]).unwrap();
        Replica { identity, process }
    };
    let start_b = |n: usize| {
        let identity = format!("controller-b{n}");
        let process =
            ControllerProcess::start_with_env(&kubeconfig, &dir, &identity, &[], &skewed).unwrap();
        Replica { identity, process }
    };

    let mut a = start_a(1);
    until("A to lead", Duration::from_secs(60), &[&a], || a.leads()).await;
    let mut b = start_b(1);
    until("B to stand by", Duration::from_secs(60), &[&a, &b], || {
        b.stands_by()
    })
    .await;
    // B's clock really is ahead: the first line of its log is stamped about two minutes
    // from now.
    let ahead = first_timestamp(&b.process.log).duration_since(Timestamp::now());
    assert!(
        ahead > SignedDuration::from_secs(SKEW_SECONDS - 30)
            && ahead < SignedDuration::from_secs(SKEW_SECONDS + 5),
        "B's clock is {ahead:?} ahead, not about {SKEW_SECONDS} s: is libfaketime in effect?\n{}",
        tails(&[&b])
    );

    let stop_changes = Arc::new(AtomicBool::new(false));
    let changes = keep_changing_specs(client.clone(), stop_changes.clone());
    let mut terms = vec![a.identity.clone()];
    wait_for_work(&audit, &a, &[&b]).await;

    // A healthy leader, and a standby to which the leader's renewTime looks two minutes
    // old: B stays a standby for two lease durations.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(2 * LEASE_SECONDS) {
        assert!(
            a.process.running() && b.process.running(),
            "a replica stopped\n{}",
            tails(&[&a, &b])
        );
        assert!(
            b.stands_by().await,
            "B ({:?}) stopped standing by while A leads\n{}",
            b.role().await,
            tails(&[&a, &b])
        );
        assert!(a.leads().await, "A stopped leading\n{}", tails(&[&a, &b]));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    for cycle in 1..=CYCLES {
        // A cut off for longer than the lease: it stops by itself, B takes over.
        proxy.cut();
        until(
            &format!("cycle {cycle}: B to take over from the cut-off A"),
            Duration::from_secs(90),
            &[&a, &b],
            || b.leads(),
        )
        .await;
        // A stops its work by itself (it cannot renew in time) and stands by.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = fs::read_to_string(&a.process.log).unwrap();
            let said = log.matches("lost the leadership").count();
            if said >= cycle && log.contains("could not renew the lease in time") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: the cut-off A did not say it stopped while B leads\n{}",
                tails(&[&a, &b])
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(
            a.process.running(),
            "cycle {cycle}: A exited instead of standing by\n{}",
            tails(&[&a])
        );
        let held = lease(&client).await;
        assert_eq!(holder(&held), Some(b.identity.as_str()));
        // B renews with its own clock: its renewTime is far in everyone else's future.
        let renewed = held.spec.as_ref().unwrap().renew_time.clone().unwrap().0;
        assert!(
            renewed.duration_since(Timestamp::now()) > SignedDuration::from_secs(60),
            "B's renewTime {renewed} is not ahead of the test's clock"
        );
        terms.push(b.identity.clone());
        wait_for_work(&audit, &b, &[&a]).await;
        proxy.restore();

        // A, reachable again, stands by; B stops gracefully and gives the lease up; A
        // takes over.
        until(
            &format!("cycle {cycle}: A to stand by once reachable"),
            Duration::from_secs(60),
            &[&a, &b],
            || a.stands_by(),
        )
        .await;
        assert!(
            b.process.terminate(Duration::from_secs(20)),
            "B did not stop on SIGTERM\n{}",
            tails(&[&b])
        );
        until(
            &format!("cycle {cycle}: A to take over the given-up lease"),
            Duration::from_secs(30),
            &[&a, &b],
            || a.leads(),
        )
        .await;
        terms.push(a.identity.clone());
        wait_for_work(&audit, &a, &[&b]).await;
        b = start_b(cycle + 1);
        until(
            &format!("cycle {cycle}: the restarted B to stand by"),
            Duration::from_secs(60),
            &[&a, &b],
            || b.stands_by(),
        )
        .await;
    }
    stop_changes.store(true, Ordering::SeqCst);
    let changes = changes.await.unwrap();
    assert!(
        b.process.terminate(Duration::from_secs(20)),
        "B did not stop on SIGTERM\n{}",
        tails(&[&b])
    );
    assert!(
        a.process.terminate(Duration::from_secs(20)),
        "A did not stop on SIGTERM\n{}",
        tails(&[&a])
    );

    // The writes of the replicas, in the order the apiserver received them, form exactly
    // the terms the test saw, one after the other.
    let writes = replica_writes(&audit);
    let mut runs: Vec<(&str, Vec<&AuditEvent>)> = Vec::new();
    for event in &writes {
        let who = writer(event).unwrap();
        match runs.last_mut() {
            Some((last, events)) if *last == who => events.push(event),
            _ => runs.push((who, vec![event])),
        }
    }
    let describe = |events: &[&AuditEvent]| {
        events
            .iter()
            .map(|e| {
                format!(
                    "{} .. {} {} {}",
                    e.request_received_timestamp.0,
                    e.stage_timestamp.0,
                    e.verb,
                    e.describe()
                )
            })
            .collect::<Vec<_>>()
            .join("\n    ")
    };
    let order: Vec<&str> = runs.iter().map(|(who, _)| *who).collect();
    assert_eq!(
        order,
        terms,
        "the replicas' writes interleave; by writer, in order received:\n{}",
        runs.iter()
            .map(|(who, events)| format!(
                "{who}: {} writes\n    {}",
                events.len(),
                describe(&events[..events.len().min(4)])
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut gaps = Vec::new();
    for pair in runs.windows(2) {
        let ((before, earlier), (after, later)) = (&pair[0], &pair[1]);
        let last = earlier.last().unwrap();
        let first = later.first().unwrap();
        // Received after the last write of the previous term was done.
        assert!(
            last.stage_timestamp < first.request_received_timestamp,
            "{after}'s first write began before {before}'s last one ended:\n    {}",
            describe(&[last, first])
        );
        assert!(
            is_lease(first) && first.verb == "update",
            "{after}'s term does not begin with taking the lease over: {}",
            describe(&[first])
        );
        gaps.push(format!(
            "{before} -> {after}: {}",
            first
                .request_received_timestamp
                .0
                .duration_since(last.stage_timestamp.0)
        ));
    }
    for (who, events) in &runs {
        assert!(
            events.iter().any(|e| !is_lease(e)),
            "{who} led without writing anything but its lease"
        );
    }
    eprintln!(
        "{} writes by {} terms ({}), {changes} spec changes, gaps between terms: {}; {:?}",
        writes.len(),
        runs.len(),
        order.join(", "),
        gaps.join(", "),
        started.elapsed()
    );
}
