//! The simulated cloud as a process: it watches one apiserver (given a kubeconfig) and
//! plays CAPI core, the kubeadm providers and the vSphere, AWS, Azure and `sim`
//! infrastructure providers there, starting a real control plane per workload cluster.
//! Ctrl-C (or SIGTERM) stops it and every workload control plane it started.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use strata_e2e::capi_crds;
use strata_e2e::cloud_sim::{CloudSimulator, SimOptions, sim_crds, workload};
use strata_e2e::kubelet_sim::KubeletSettings;

#[derive(Debug, Parser)]
#[command(about = "A simulated cloud that keeps the Cluster API contracts")]
struct Args {
    /// The kubeconfig of the apiserver to watch.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Only this namespace (default: all).
    #[arg(long)]
    namespace: Option<String>,
    /// Install the CAPI CRDs (upstream when found, else minimal) and the sim CRDs first.
    #[arg(long)]
    install_crds: bool,
    /// Test-speed delays instead of cloud-like ones (the same as `--speed=fast`).
    #[arg(long)]
    fast: bool,
    /// `fast` (test-speed delays) or `cloud` (cloud-like ones, the default); the provider
    /// packs' components pass it from their variable `SIM_SPEED`.
    #[arg(long, value_enum, default_value_t = Speed::Cloud)]
    speed: Speed,
    /// Milliseconds between full passes.
    #[arg(long)]
    resync_ms: Option<u64>,
    /// Nodes come up with their network, as from an image with its CNI baked in. By
    /// default they are kubeadm's: NotReady until a pod of the sample CNI's DaemonSet
    /// (`calico-system/calico-node`) runs on them.
    #[arg(long)]
    nodes_with_network: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Speed {
    Fast,
    Cloud,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("cannot read the kubeconfig {path}: {reason}")]
    Kubeconfig { path: PathBuf, reason: String },
    #[error(transparent)]
    Crds(#[from] capi_crds::CrdError),
    #[error(transparent)]
    Sim(#[from] strata_e2e::cloud_sim::SimError),
    #[error("cannot wait for a signal: {0}")]
    Signal(#[source] std::io::Error),
}

async fn client(path: &PathBuf) -> Result<Client, Error> {
    let failed = |reason: String| Error::Kubeconfig {
        path: path.clone(),
        reason,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| failed(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| failed(e.to_string()))?;
    Client::try_from(config).map_err(|e| failed(e.to_string()))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let client = client(&args.kubeconfig).await?;
    if args.install_crds {
        let set = capi_crds::install(&client).await?;
        tracing::info!(?set, "CAPI CRDs installed");
        sim_crds::install(&client).await?;
    }
    let mut options = if args.fast || args.speed == Speed::Fast {
        SimOptions::fast()
    } else {
        SimOptions::default()
    };
    options.namespace = args.namespace;
    if args.nodes_with_network {
        options.workload_nodes = KubeletSettings::network_preinstalled();
    }
    if let Some(ms) = args.resync_ms {
        options.resync = Duration::from_millis(ms);
    }
    let cloud = CloudSimulator::start(client, options);
    tracing::info!("simulated cloud running; Ctrl-C stops it");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::Signal)?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.map_err(Error::Signal)?,
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping the simulated cloud and its workload control planes");
    cloud.stop();
    workload::stop_all();
    Ok(())
}
