//! What a profile change rolled out over a fleet costs the controller to plan: for N
//! clusters (100 unless `STRATA_BENCH_CLUSTERS` says otherwise) that each run a revision
//! and get the next one from a change of their shared add-on profile (a chart layer
//! upgraded, its values changed), the time to compute every cluster's plan (the CAPI
//! objects of both revisions built and compared, the layers and values diffed, the
//! replaced machines found, the text written) and the rollout gate's decision for every
//! cluster over the whole fleet.
//!
//! The floor, measured in the same run, is what the controller does anyway to know that
//! a cluster changed at all: the content hash of both revisions. The ratio is what the
//! plan costs on top. Memory is this process's peak resident set (VmHWM) before and after:
//! the plans' own, not a running controller's.
//!
//! Clusters are data here, not control planes: a rollout over 100 pivoted clusters would
//! need 100 workload control planes on this machine; the rollout itself is tested end to
//! end over five (`e2e/tests/fleet_rollout.rs`).
//!
//! `cargo bench -p strata-e2e --bench fleet_plan`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::json;
use strata_e2e::bench_table::BenchRow;
use strata_shared::profile::{FleetMember, RolloutGate, RolloutPolicy};
use strata_shared::revision::{ClusterRevisionSpec, DesiredState, RevisionPlan, content_hash};

const ROUNDS: usize = 5;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A desired state like the sample cluster's: six layers with values, three control-plane
/// machines and `workers` in one pool; `chart` is the add-on chart's version.
fn desired(workers: u32, chart: &str, greeting: &str) -> DesiredState {
    let layer = |order: u32, name: &str, version: &str, kind: &str, values: String| {
        json!({"order": order, "name": name, "version": version, "layer": kind,
               "digest": format!("sha256:{name}-{version}"), "values": values})
    };
    serde_json::from_value(json!({
        "cloudType": "sim",
        "profiles": ["sim-infra:1.0.0", "sim-addons:1.0.0"],
        "kubernetesVersion": "v1.21.14",
        "os": {"pack": "ubuntu-sim", "version": "22.04"},
        "kubeadm": {},
        "layers": [
            layer(1, "ubuntu-sim", "22.04", "os", "pack: {}\n".into()),
            layer(2, "kubernetes", "1.21.14", "k8s", "pack:\n  podCIDR: 192.168.0.0/16\n".into()),
            layer(3, "cni-calico", "3.19.0", "cni", "manifests:\n  calico:\n    mtu: 1440\n".into()),
            layer(4, "csi-hostpath", "1.7.3", "csi", "pack: {}\n".into()),
            layer(5, "hello-chart", chart, "addon",
                  format!("pack:\n  namespace: hello-web\ncharts:\n  hello-web:\n    replicaCount: 3\n    greeting: {greeting}\n")),
            layer(6, "hello-manifests", "1.0.0", "addon", "manifests:\n  hello:\n    name: universe\n".into()),
        ],
        "nodePools": {
            "controlPlane": {"count": 3, "machine": {"cpus": 2, "memoryMib": 4096}},
            "workers": [{"name": "general", "count": workers, "machine": {"cpus": 4, "memoryMib": 8192}}],
        },
        "network": {"podCidrs": ["192.168.0.0/16"], "serviceCidrs": ["10.96.0.0/12"], "serviceDomain": "cluster.local"},
    }))
    .unwrap()
}

fn revision(cluster: &str, number: i64, desired: DesiredState) -> ClusterRevisionSpec {
    ClusterRevisionSpec {
        cluster_name: cluster.to_string(),
        number,
        content_hash: content_hash(&desired),
        desired,
        rollback_of: None,
        sources: None,
    }
}

/// Each cluster's running revision and the one the profile change makes.
fn fleet(clusters: usize) -> Vec<(ClusterRevisionSpec, ClusterRevisionSpec)> {
    (0..clusters)
        .map(|i| {
            let name = format!("c{i:03}");
            let workers = 2 + (i % 5) as u32;
            (
                revision(&name, 4, desired(workers, "0.3.0", "Hello")),
                revision(&name, 5, desired(workers, "0.4.0", "Hello again")),
            )
        })
        .collect()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let clusters = env_number("STRATA_BENCH_CLUSTERS", 100);
    let fleet = fleet(clusters);
    let before = peak_rss_kib();
    let mut floors = Vec::new();
    let mut plans = Vec::new();
    let mut gates = Vec::new();
    let mut summary = String::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for (from, to) in &fleet {
            black_box((content_hash(&from.desired), content_hash(&to.desired)));
        }
        floors.push(started.elapsed());

        let started = Instant::now();
        for (from, to) in &fleet {
            let plan = RevisionPlan::between(from, to).unwrap();
            black_box(plan.to_string());
            summary = plan.summary;
        }
        plans.push(started.elapsed());

        // Every cluster asks the gate once, over the whole fleet (one applying).
        let members: Vec<FleetMember> = fleet
            .iter()
            .enumerate()
            .map(|(i, (from, _))| FleetMember {
                key: format!("fleet/{}", from.cluster_name),
                pivoted: true,
                published: Some(if i == 0 { 5 } else { 4 }),
                applied: Some(4),
                failure: None,
                held: i > 0,
            })
            .collect();
        let policy = RolloutPolicy::default();
        let released = BTreeSet::new();
        let started = Instant::now();
        for member in &members {
            let gate = RolloutGate {
                profile: "sim-addons:1.0.0".into(),
                policy: &policy,
                generation: 2,
                approval: None,
                members: &members,
                released: &released,
            };
            let _ = black_box(gate.decide(&member.key));
        }
        gates.push(started.elapsed());
    }
    let after = peak_rss_kib();
    let (floor, plan, gate) = (median(floors), median(plans), median(gates));
    println!("fleet plan: {clusters} clusters, median of {ROUNDS} rounds");
    println!("  a plan's summary: {summary}");
    println!(
        "  floor (both revisions' content hashes): {:.1} ms",
        floor.as_secs_f64() * 1e3
    );
    println!(
        "  every plan: {:.1} ms ({:.2} ms per cluster), {:.1}x the floor",
        plan.as_secs_f64() * 1e3,
        plan.as_secs_f64() * 1e3 / clusters as f64,
        plan.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "  every cluster's gate decision over the fleet: {:.2} ms, {:.2}x the floor",
        gate.as_secs_f64() * 1e3,
        gate.as_secs_f64() / floor.as_secs_f64()
    );
    let what = format!("fleet plan: every plan, {clusters} clusters");
    BenchRow {
        what: &what,
        figure: format!("{:.1} ms", plan.as_secs_f64() * 1e3),
        against: "floor: both revisions' content hashes",
        against_figure: format!("{:.1} ms", floor.as_secs_f64() * 1e3),
        ratio: plan.as_secs_f64() / floor.as_secs_f64(),
        goal: "",
    }
    .print();
    let what = format!("fleet plan: every gate decision, {clusters} clusters");
    BenchRow {
        what: &what,
        figure: format!("{:.2} ms", gate.as_secs_f64() * 1e3),
        against: "floor: both revisions' content hashes",
        against_figure: format!("{:.1} ms", floor.as_secs_f64() * 1e3),
        ratio: gate.as_secs_f64() / floor.as_secs_f64(),
        goal: "",
    }
    .print();
    println!(
        "  peak resident memory: {:.1} MiB before, {:.1} MiB after",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
}
