//! Strata's main job on its embedded default, for `scripts/demo.sh`: a local management
//! control plane, the simulated cloud, a registry holding the sample packs, the sample
//! profiles, `strata controller`, and one WorkloadCluster taken through the order of
//! operations as far as it is built, each step with its progress and timing.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Parser;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use strata_e2e::cloud_sim::{SimOptions, workload};
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, apply, ensure_namespace, read_documents,
    repo_root,
};
use strata_shared::cluster::{ClusterPhase, WorkloadCluster};
use strata_shared::contracts::names::{PROVIDER_NAME, PROVIDER_NAMESPACE, objects_namespace};

#[derive(Debug, Parser)]
#[command(about = "Strata's order of operations on local control planes and the simulated cloud")]
struct Args {
    /// Test-speed cloud delays instead of cloud-like ones.
    #[arg(long)]
    fast: bool,
    /// Keep everything running until Enter is pressed (default when run from a terminal).
    #[arg(long)]
    keep: Option<bool>,
}

const NAMESPACE: &str = "strata-demo";

fn sim_options(fast: bool) -> SimOptions {
    if fast {
        SimOptions::fast()
    } else {
        SimOptions::default()
    }
}
const CLUSTER: &str = "demo";

struct Clock(Instant);

impl Clock {
    fn stamp(&self) -> String {
        format!("{:6.1}s", self.0.elapsed().as_secs_f64())
    }
}

fn step(n: u32, total: u32, title: &str) -> Instant {
    println!("\n[{n}/{total}] {title}");
    Instant::now()
}

fn done(started: Instant) {
    println!("    done in {:.1}s", started.elapsed().as_secs_f64());
}

/// A layer's state as the agent reports it.
fn layer_line(layer: &strata_shared::cluster::LayerState) -> String {
    let mut line = format!(
        "layer {} {} {}",
        layer.name,
        layer.version,
        layer.state.as_str()
    );
    if let Some(message) = &layer.message {
        line.push_str(&format!(": {message}"));
    }
    line
}

/// One line per Machine: name, phase, node.
async fn machines(client: &Client, namespace: &str) -> Vec<String> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "cluster.x-k8s.io",
        "v1beta2",
        "Machine",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let Ok(list) = api.list(&ListParams::default()).await else {
        return Vec::new();
    };
    list.items
        .iter()
        .map(|m| {
            let phase = m
                .data
                .pointer("/status/phase")
                .and_then(|v| v.as_str())
                .unwrap_or("Pending");
            let node = m
                .data
                .pointer("/status/nodeRef/name")
                .and_then(|v| v.as_str())
                .unwrap_or("-");
            format!("machine {} {phase} (node {node})", m.name_any())
        })
        .collect()
}

async fn run(args: Args) -> Result<(), String> {
    let clock = Clock(Instant::now());
    let total = 6;

    let started = step(
        1,
        total,
        "management cluster: control plane, CAPI + Strata CRDs, clusterctl inventory, registry with the sample and provider packs, profiles, simulated cloud",
    );
    let sim = sim_options(args.fast);
    let env = ManagementEnv::start(ManagementOptions {
        sim,
        provider_speed: if args.fast { "fast" } else { "cloud" },
        ..ManagementOptions::named("demo")
    })
    .await?;
    let client = env.client();
    println!("    management API server {}", env.control_plane.server());
    println!(
        "    pack registry {} (PackRegistry strata-system/samples)",
        env.registry.host()
    );
    let providers: Vec<String> = strata_e2e::provider_packs::simulated_providers()
        .iter()
        .map(|p| {
            format!(
                "{}:{}",
                p.pack(),
                strata_shared::provider::pack_version(p.version)
            )
        })
        .collect();
    println!(
        "    clusterctl's inventory of the providers the simulated cloud plays, and their provider packs: {}",
        providers.join(", ")
    );
    done(started);

    let started = step(2, total, "strata controller (leader election, metrics)");
    let image = concat!("strata-agent:", env!("CARGO_PKG_VERSION"));
    let controller = ControllerProcess::start(
        env.control_plane.kubeconfig_path(),
        env.dir.path(),
        "controller",
        &["--agent-image", image],
    )?;
    println!(
        "    pid {}, metrics at http://{}/metrics, log {}",
        controller.pid(),
        controller.http,
        controller.log.display()
    );
    done(started);

    let started = step(
        3,
        total,
        &format!(
            "WorkloadCluster {NAMESPACE}/{CLUSTER} (profiles sim-infra and sim-addons, 3 control-plane nodes, 2 workers): revision, CAPI objects, first control-plane node"
        ),
    );
    ensure_namespace(&client, NAMESPACE).await?;
    let mut cluster =
        read_documents(&repo_root().join("manifests/samples/clusters/sim-demo.yaml"))?.remove(0);
    cluster["metadata"]["namespace"] = json!(NAMESPACE);
    cluster["metadata"]["name"] = json!(CLUSTER);
    apply(&client, &cluster).await?;
    let objects = objects_namespace(NAMESPACE, CLUSTER);
    let clusters: Api<WorkloadCluster> = Api::namespaced(client.clone(), NAMESPACE);
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        env.run_agents_of(&objects, CLUSTER).await?;
        let wc = clusters.get_opt(CLUSTER).await.map_err(|e| e.to_string())?;
        let status = wc.and_then(|c| c.status).unwrap_or_default();
        let mut lines: Vec<String> = status
            .conditions
            .iter()
            .filter(|c| c.status == "True")
            .map(|c| format!("{}: {}", c.type_, c.message))
            .collect();
        if let Some(phase) = status.phase {
            lines.push(format!("phase {}", phase.as_str()));
        }
        lines.extend(machines(&client, &objects).await);
        for line in lines {
            if !seen.contains(&line) {
                println!("    {} {line}", clock.stamp());
                seen.push(line);
            }
        }
        if matches!(
            status.phase,
            Some(ClusterPhase::AgentInstalled | ClusterPhase::Pivoting | ClusterPhase::Pivoted)
        ) {
            break;
        }
        if status.phase == Some(ClusterPhase::Invalid) {
            return Err(format!("the cluster is not valid: {:?}", status.conditions));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the cluster did not get its agent in 10 minutes; see {}",
                controller.log.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    done(started);

    let started = step(
        4,
        total,
        "the agent and the provider components in the workload cluster",
    );
    let workload_cluster = env
        .workload(&objects, CLUSTER)
        .await?
        .ok_or("the workload control plane is not running")?;
    let kubelet = env
        .agents_of(&objects, CLUSTER)
        .ok_or("the agent is not being run")?;
    // The agent, then the provider controllers it installs from the sim cluster's provider
    // packs.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut shown = Vec::new();
    loop {
        for process in kubelet.processes() {
            if process.pid.is_some() && !shown.contains(&process.deployment) {
                println!(
                    "    {} {} runs as pid {} in the workload cluster (log {})",
                    clock.stamp(),
                    process.deployment,
                    process.pid.unwrap_or_default(),
                    process.log.display()
                );
                shown.push(process.deployment.clone());
            }
        }
        if shown.len() >= 2 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the agent and the provider controllers it deploys did not both start in 3 minutes (started: {shown:?})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "    workload API server {}; the agent installed the core, kubeadm and sim providers from their packs; {}/{} runs their controllers (the simulated cloud)",
        workload_cluster.server(),
        PROVIDER_NAMESPACE,
        PROVIDER_NAME
    );
    done(started);

    let started = step(
        5,
        total,
        "pivot: the agent moves the CAPI objects into the workload cluster, then scales it to 3 control-plane nodes and 2 workers",
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let wc = clusters.get_opt(CLUSTER).await.map_err(|e| e.to_string())?;
        let status = wc.and_then(|c| c.status).unwrap_or_default();
        let mut lines: Vec<String> = status
            .conditions
            .iter()
            .filter(|c| c.type_ == "Pivoted")
            .map(|c| format!("Pivoted={}: {}", c.status, c.message))
            .collect();
        if let Some(phase) = status.phase {
            lines.push(format!("phase {}", phase.as_str()));
        }
        let counts = |c: &Option<strata_shared::cluster::ReplicaCounts>| {
            c.as_ref().map(|c| c.summary.clone()).unwrap_or_default()
        };
        lines.push(format!(
            "control plane {} ready, workers {} ready",
            counts(&status.control_plane),
            counts(&status.workers)
        ));
        let left = machines(&client, &objects).await.len();
        lines.push(format!("{left} machines left in the management cluster"));
        // The agent starts on the layers as soon as it holds the cluster.
        lines.extend(status.layers.iter().map(layer_line));
        lines.extend(
            machines(&workload_cluster.client(), &objects)
                .await
                .into_iter()
                .map(|m| format!("workload cluster: {m}")),
        );
        for line in lines {
            if !seen.contains(&line) {
                println!("    {} {line}", clock.stamp());
                seen.push(line);
            }
        }
        let ready = |c: &Option<strata_shared::cluster::ReplicaCounts>| {
            c.as_ref()
                .is_some_and(|c| c.ready == c.desired && c.desired > 0)
        };
        if status.phase == Some(ClusterPhase::Pivoted)
            && ready(&status.control_plane)
            && ready(&status.workers)
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("the cluster was not pivoted and scaled out in 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    done(started);

    let started = step(
        6,
        total,
        "layers: the agent installs the CNI, the CSI and the add-ons in order, each Ready before the next",
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let wc = clusters.get_opt(CLUSTER).await.map_err(|e| e.to_string())?;
        let status = wc.and_then(|c| c.status).unwrap_or_default();
        for line in status.layers.iter().map(layer_line) {
            if !seen.contains(&line) {
                println!("    {} {line}", clock.stamp());
                seen.push(line);
            }
        }
        let all_ready = !status.layers.is_empty()
            && status
                .layers
                .iter()
                .all(|l| l.state == strata_shared::cluster::LayerPhase::Ready);
        if all_ready {
            println!(
                "    {} layers {} Ready, in install order:",
                clock.stamp(),
                status.layers_summary.clone().unwrap_or_default()
            );
            for layer in &status.layers {
                let since = layer
                    .last_transition_time
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default();
                println!(
                    "      {:<16} {:<8} Ready since {since}  {}",
                    layer.name,
                    layer.version,
                    layer.digest.as_deref().unwrap_or_default()
                );
            }
            break;
        }
        if Instant::now() > deadline {
            return Err("the cluster's layers were not Ready in 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    done(started);

    let workload_kubeconfig = env.dir.path().join("workload.kubeconfig");
    std::fs::write(&workload_kubeconfig, workload_cluster.kubeconfig())
        .map_err(|e| e.to_string())?;
    let kubectl = strata_e2e::binaries::kubectl()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "kubectl".into());
    println!(
        "\nTotal {:.1}s. Look at both clusters:",
        clock.0.elapsed().as_secs_f64()
    );
    println!(
        "  {kubectl} --kubeconfig {} get workloadclusters -A",
        env.control_plane.kubeconfig_path().display()
    );
    println!(
        "  {kubectl} --kubeconfig {} -n {objects} get clusterrevisions,clusters,machines",
        env.control_plane.kubeconfig_path().display()
    );
    println!(
        "  {kubectl} --kubeconfig {} -n {objects} get clusters,kubeadmcontrolplanes,machinedeployments,machines",
        workload_kubeconfig.display()
    );
    println!(
        "  {kubectl} --kubeconfig {} -n strata-system get deployments,leases,configmaps",
        workload_kubeconfig.display()
    );
    println!(
        "  {kubectl} --kubeconfig {} -n strata-system get configmap strata-layers -o jsonpath='{{.data.layers\\.json}}'",
        workload_kubeconfig.display()
    );
    println!(
        "  {kubectl} --kubeconfig {} get daemonsets,deployments,storageclasses -A",
        workload_kubeconfig.display()
    );

    let keep = args.keep.unwrap_or_else(|| std::io::stdin().is_terminal());
    if keep {
        println!("\nPress Enter to stop everything.");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    drop(controller);
    drop(env);
    workload::stop_all();
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error,kube_client=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata-demo: {e}");
            workload::stop_all();
            std::process::ExitCode::FAILURE
        }
    }
}
