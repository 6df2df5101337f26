//! `strata-agent`: the agent Strata installs into each workload cluster.
//!
//! One replica at a time (the leader Lease) does the cluster's work: it pivots the
//! cluster's CAPI objects from the management cluster into this cluster, scales it to
//! its revision and reports back (see `work`).

mod agent_error;
mod crd_outline;
mod health;
mod identity_sync;
mod layers;
mod link_keeper;
mod machine_events;
mod management_link;
mod move_attempt;
mod move_back;
mod move_command;
mod move_grant;
mod pivot;
mod provider_install;
mod recovery;
mod revision_keeper;
mod rollout;
mod site_export;
mod site_log;
mod status_report;
mod work;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kube::Client;

use strata_shared::contracts::field_managers::AGENT_FIELD_MANAGER;
use strata_shared::contracts::names::{AGENT_HTTP_PORT, ClusterLocation};
use strata_shared::kube_writer::KubeWriter;
use strata_shared::leader::{LeaderElector, LeaseTiming};
use strata_shared::probe_endpoints;

use crate::agent_error::AgentError;
use crate::health::AgentHealth;
use crate::work::AbortOnDrop;

/// Every call the agent makes to its own cluster (and, in `move`, to either cluster) is
/// bounded: a hung API server must not hold the agent forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);

fn writer(client: Client) -> KubeWriter {
    KubeWriter::new(client, AGENT_FIELD_MANAGER, WRITE_TIMEOUT)
}

/// `--version`; a build with the test fault hooks says so, so that a test can refuse a
/// build without them instead of waiting for a fault that never comes.
const VERSION: &str = if cfg!(feature = "fault-hooks") {
    concat!(env!("CARGO_PKG_VERSION"), " (with test fault hooks)")
} else {
    env!("CARGO_PKG_VERSION")
};

#[derive(Parser)]
#[command(name = "strata-agent", version = VERSION, about = "Strata's in-cluster agent")]
struct Cli {
    /// The namespace of the agent's lease; defaults to $POD_NAMESPACE, then the
    /// kubeconfig's namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// This replica's identity in the lease; defaults to $POD_NAME, then strata-agent-<pid>.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    #[arg(long, default_value = "strata-agent")]
    lease_name: String,
    /// How long a lease stays valid without renewal.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// The Secret in the agent's namespace of this cluster with its management access and
    /// where its cluster's objects are (the controller writes it); without it the agent only
    /// holds its lease.
    #[arg(long, env = "STRATA_MANAGEMENT_SECRET")]
    management_secret: Option<String>,
    /// Where the packs of the cluster's layers are kept (a folder that outlives the agent:
    /// its Deployment mounts one from the node); only the packs the cluster's revision pins
    /// stay there.
    #[arg(long, env = "STRATA_AGENT_PACK_CACHE", value_name = "DIR", default_value = strata_shared::contracts::names::AGENT_PACK_CACHE)]
    pack_cache: PathBuf,
    /// The longest one layer may take to install and become Ready, in seconds.
    #[arg(long, default_value_t = 300)]
    layer_timeout: u64,
    /// The address /metrics, /healthz and /readyz listen on: the pod's IP when the
    /// Deployment passes it, else every address.
    #[arg(long, env = "POD_IP", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    http_host: IpAddr,
    #[arg(long, default_value_t = AGENT_HTTP_PORT)]
    http_port: u16,
    /// The most one Secret of the cluster's export to the management cluster holds; a
    /// larger export is split into parts (for an API server that takes smaller objects).
    #[arg(long, env = "STRATA_EXPORT_PART_BYTES", value_name = "BYTES", default_value_t = strata_shared::pivot::site_export_parts::EXPORT_PART_BYTES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=(900 * 1024)))]
    export_part_bytes: usize,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print what a move of a cluster's CAPI objects would do (the groups in creation
    /// order, what stays behind and why), changing nothing.
    Plan(MoveArgs),
    /// Move a cluster's CAPI objects from one cluster into the same namespace of another,
    /// keeping the journal in the target: run again after a failure, it continues.
    Move(MoveArgs),
    /// Write a cluster's CAPI objects (status included) to a new directory, for disaster
    /// recovery: what a move of the cluster would move, in its creation order.
    Backup(BackupArgs),
    /// Create a cluster's CAPI objects from a backup directory, the Cluster paused, after
    /// checking the whole directory; run again after a failure, it goes on.
    Restore(RestoreArgs),
    /// Make a folder of the node (the pack cache's hostPath) owned by the agent's user:
    /// run as the Deployment's init container, the only part of the agent with a right
    /// to change an owner, before the agent runs without any.
    OwnCache {
        /// The user and group id the folder goes to.
        #[arg(long)]
        uid: u32,
        /// The folder; only it, not what is inside (the agent wrote that as itself).
        path: PathBuf,
    },
}

#[derive(clap::Args)]
struct BackupArgs {
    /// The cluster the objects are in.
    #[arg(long, value_name = "FILE")]
    kubeconfig: PathBuf,
    /// The objects' namespace.
    #[arg(long)]
    namespace: String,
    /// The CAPI Cluster's name.
    #[arg(long)]
    cluster: String,
    /// The directory to write; it must not exist.
    #[arg(long, value_name = "DIR")]
    to_directory: PathBuf,
}

#[derive(clap::Args)]
struct RestoreArgs {
    /// The cluster to create the objects in; it must have the CAPI CRDs of the backup's
    /// kinds.
    #[arg(long, value_name = "FILE")]
    kubeconfig: PathBuf,
    /// The backup directory.
    #[arg(long, value_name = "DIR", required_unless_present = "from_export")]
    from_directory: Option<PathBuf>,
    /// `namespace/name` of a WorkloadCluster: restore the copy of its objects that its
    /// agent exported to the management cluster (`--kubeconfig`'s), into that cluster's
    /// objects namespace there.
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with_all = ["from_directory", "cluster"])]
    from_export: Option<String>,
    /// `namespace/name`: refuse a backup of any other cluster.
    #[arg(long)]
    cluster: Option<String>,
}

/// Which cluster's objects, from where to where.
#[derive(clap::Args)]
struct MoveArgs {
    /// The cluster the objects are in now.
    #[arg(long, value_name = "FILE")]
    source_kubeconfig: PathBuf,
    /// The cluster they move to: its CRDs say which kinds move (a move keeps its journal
    /// there).
    #[arg(long, value_name = "FILE")]
    target_kubeconfig: PathBuf,
    /// The objects' namespace, the same on both sides.
    #[arg(long)]
    namespace: String,
    /// The CAPI Cluster's name.
    #[arg(long)]
    cluster: String,
}

impl MoveArgs {
    async fn writers(&self) -> Result<(KubeWriter, KubeWriter), AgentError> {
        Ok((
            writer(client_from(&self.source_kubeconfig).await?),
            writer(client_from(&self.target_kubeconfig).await?),
        ))
    }
}

async fn client_from(path: &std::path::Path) -> Result<Client, AgentError> {
    let unreadable = |source| AgentError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(unreadable)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(unreadable)?;
    Client::try_from(config).map_err(|source| AgentError::KubeconfigClient {
        path: path.to_path_buf(),
        source,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), AgentError> {
    match &cli.command {
        Some(Command::Plan(args)) => {
            let (source, target) = args.writers().await?;
            let text = pivot::dry_run(&source, &target, &args.cluster, &args.namespace)
                .await
                .map_err(|source| AgentError::Plan {
                    namespace: args.namespace.clone(),
                    cluster: args.cluster.clone(),
                    source,
                })?;
            print!("{text}");
            Ok(())
        }
        Some(Command::Move(args)) => {
            let (source, target) = args.writers().await?;
            Ok(move_command::run(source, target, &args.namespace, &args.cluster).await?)
        }
        Some(Command::Backup(args)) => {
            let source = writer(client_from(&args.kubeconfig).await?);
            let count =
                recovery::backup(&source, &args.namespace, &args.cluster, &args.to_directory)
                    .await?;
            println!(
                "wrote {count} objects of Cluster {}/{} to {}",
                args.namespace,
                args.cluster,
                args.to_directory.display()
            );
            Ok(())
        }
        Some(Command::Restore(args)) => {
            let target = writer(client_from(&args.kubeconfig).await?);
            let backup = match (&args.from_export, &args.from_directory) {
                (Some(cluster), _) => {
                    let location =
                        workload_cluster(cluster).ok_or_else(|| AgentError::ClusterArgument {
                            argument: "--from-export",
                            found: cluster.clone(),
                        })?;
                    recovery::read_export(&target, &location).await?
                }
                (None, Some(directory)) => recovery::read(directory, args.cluster.as_deref())?,
                // clap requires one of the two.
                (None, None) => {
                    return Err(AgentError::MissingArgument(
                        "--from-directory and --from-export",
                    ));
                }
            };
            let done = recovery::restore(&target, &backup).await?;
            println!(
                "restored Cluster {}/{} (taken at {}), paused: {} created, {} restored before, {} shared ones kept; unpause it with `kubectl -n {} patch cluster {} --type merge -p '{{\"spec\":{{\"paused\":false}}}}'`",
                backup.manifest.namespace,
                backup.manifest.cluster,
                backup.manifest.taken_at,
                done.created,
                done.already,
                done.shared,
                backup.manifest.namespace,
                backup.manifest.cluster
            );
            Ok(())
        }
        Some(Command::OwnCache { uid, path }) => {
            std::os::unix::fs::chown(path, Some(*uid), Some(*uid)).map_err(|source| {
                AgentError::OwnCache {
                    path: path.clone(),
                    uid: *uid,
                    source,
                }
            })
        }
        None => serve(cli).await,
    }
}

/// The location of WorkloadCluster `namespace/name`; `None` for anything else.
fn workload_cluster(value: &str) -> Option<ClusterLocation> {
    let (namespace, name) = value.split_once('/')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| ClusterLocation::of(namespace, name))
}

/// The agent in its cluster: holds its lease, and works while it leads.
async fn serve(cli: Cli) -> Result<(), AgentError> {
    let client = Client::try_default().await.map_err(AgentError::InCluster)?;
    let health = Arc::new(AgentHealth::new(
        &work::Phase::NAMES,
        &link_keeper::LinkState::NAMES,
    ));
    let http_address = SocketAddr::new(cli.http_host, cli.http_port);
    let (address, _endpoints) = probe_endpoints::serve(http_address, health.clone())
        .await
        .map_err(|source| AgentError::Listen {
            address: http_address,
            source,
        })?;
    tracing::info!(%address, "serving /metrics, /healthz and /readyz");
    let _readiness = AbortOnDrop(tokio::spawn(become_ready(client.clone(), health.clone())));
    let layer_setup = layers::LayerSetup::new(
        &client,
        &cli.pack_cache,
        Duration::from_secs(cli.layer_timeout.max(10)),
    )?;
    let namespace = cli
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    let identity = cli
        .identity
        .unwrap_or_else(|| format!("strata-agent-{}", std::process::id()));
    let seconds = u32::try_from(cli.lease_seconds.max(3)).unwrap_or(u32::MAX);
    let timing = LeaseTiming::from_seconds(seconds).map_err(AgentError::LeaseTiming)?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(AgentError::Signal)?;
    let link = match &cli.management_secret {
        Some(secret) => {
            Some(management_link::ManagementLink::load(writer(client.clone()), secret).await?)
        }
        None => None,
    };
    tracing::info!(%namespace, %identity, lease = %cli.lease_name, pid = std::process::id(), "agent started");
    let leadership = LeaderElector::new(
        client.clone(),
        &namespace,
        &cli.lease_name,
        &identity,
        timing,
    )
    .start();
    let mut leader = leadership.watch();
    // The work runs while this replica leads, and is aborted the moment it does not.
    let mut work: Option<tokio::task::JoinHandle<()>> = None;
    let why = loop {
        let leading = tokio::select! {
            changed = leader.changed() => changed,
            _ = tokio::signal::ctrl_c() => break "interrupted",
            _ = terminate.recv() => break "terminated",
        };
        let Some(leading) = leading else {
            break "the leader election ended";
        };
        tracing::info!(%identity, leading, "leadership changed");
        health.set_leading(leading);
        if let Some(task) = work.take() {
            task.abort();
        }
        if let (true, Some(link)) = (leading, &link) {
            work = Some(tokio::spawn(work::run(
                writer(client.clone()),
                link.clone(),
                layer_setup.clone(),
                health.clone(),
                cli.export_part_bytes,
            )));
        }
    };
    tracing::info!("{why}; stopping");
    if let Some(task) = work.take() {
        task.abort();
        // An aborted task ends at its next await; the lease is given up only after that.
        let _ = task.await;
    }
    // A standby need not wait for the lease to lapse.
    if let Err(e) = leadership.release().await {
        tracing::warn!("{e}");
    }
    Ok(())
}

/// Ready once this cluster's apiserver answers: the management cluster's does not count,
/// since an edge agent goes on working without it.
async fn become_ready(client: Client, health: Arc<AgentHealth>) {
    loop {
        match tokio::time::timeout(WRITE_TIMEOUT, client.apiserver_version()).await {
            Ok(Ok(_)) => {
                health.set_ready();
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "this cluster's apiserver does not answer yet")
            }
            Err(_) => tracing::debug!("this cluster's apiserver does not answer yet"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_export_is_named_by_its_workload_cluster_and_a_malformed_name_is_refused() {
        let location = workload_cluster("edge/store-12").unwrap();
        assert_eq!(location, ClusterLocation::of("edge", "store-12"));
        for bad in ["store-12", "/store-12", "edge/", "edge/store/12", ""] {
            assert_eq!(workload_cluster(bad), None, "{bad}");
        }
        let error = AgentError::ClusterArgument {
            argument: "--from-export",
            found: "store-12".into(),
        };
        assert_eq!(
            error.to_string(),
            "--from-export \"store-12\": expected NAMESPACE/NAME of a WorkloadCluster"
        );
    }

    #[test]
    fn a_restore_takes_a_directory_or_an_export_not_both() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(
                ["strata-agent", "restore", "--kubeconfig", "k"]
                    .iter()
                    .chain(args),
            )
        };
        assert!(parse(&["--from-directory", "d"]).is_ok());
        assert!(parse(&["--from-export", "edge/a"]).is_ok());
        assert!(parse(&[]).is_err());
        assert!(parse(&["--from-directory", "d", "--from-export", "edge/a"]).is_err());
        assert!(parse(&["--from-export", "edge/a", "--cluster", "x/y"]).is_err());
    }
}
