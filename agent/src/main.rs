//! `strata-agent`: the agent Strata installs into each workload cluster.
//!
//! One replica at a time (the leader Lease) does the cluster's work: it pivots the
//! cluster's CAPI objects from the management cluster into this cluster, scales it to
//! its revision and reports back (see `work`).

mod identity_sync;
mod link_keeper;
mod management_link;
mod move_attempt;
mod move_back;
mod move_command;
mod move_grant;
mod pivot;
mod provider_install;
mod status_report;
mod work;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use kube::Client;

use strata_shared::lease::LeaderLease;
use strata_shared::provider_components::ProviderController;

#[derive(Parser)]
#[command(name = "strata-agent", version, about = "Strata's in-cluster agent")]
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
    /// The image of the Cluster API provider controllers to deploy in this cluster before
    /// its objects move here (the management controller passes it).
    #[arg(long, value_name = "IMAGE")]
    provider_image: Option<String>,
    /// An argument for that image (repeatable, in order).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    provider_arg: Vec<String>,
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
    async fn clients(&self) -> Result<(Client, Client), String> {
        Ok((
            client_from(&self.source_kubeconfig).await?,
            client_from(&self.target_kubeconfig).await?,
        ))
    }
}

async fn client_from(path: &std::path::Path) -> Result<Client, String> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| format!("{}: {e}", path.display()))?;
    Client::try_from(config).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether a leader whose renewal just failed may go on working: the lease, last renewed
/// `since` ago, lapses after `duration` and another replica may then take it, so the work
/// stops one renewal period before that, and two agents never work at once.
fn still_holds(since: Option<Duration>, duration: Duration, renew_every: Duration) -> bool {
    since.is_some_and(|since| since + renew_every < duration)
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
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match &cli.command {
        Some(Command::Plan(args)) => {
            let (source, target) = args.clients().await?;
            let text = pivot::dry_run(&source, &target, &args.cluster, &args.namespace)
                .await
                .map_err(|e| e.to_string())?;
            print!("{text}");
            return Ok(());
        }
        Some(Command::Move(args)) => {
            let (source, target) = args.clients().await?;
            return move_command::run(source, target, &args.namespace, &args.cluster)
                .await
                .map_err(|e| e.to_string());
        }
        None => {}
    }
    let client = Client::try_default()
        .await
        .map_err(|e| format!("cannot reach the cluster's apiserver: {e}"))?;
    let namespace = cli
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    let identity = cli
        .identity
        .unwrap_or_else(|| format!("strata-agent-{}", std::process::id()));
    let duration = Duration::from_secs(cli.lease_seconds.max(3));
    let lease = LeaderLease::new(
        client.clone(),
        &namespace,
        &cli.lease_name,
        &identity,
        duration,
    );
    tracing::info!(%namespace, %identity, lease = %cli.lease_name, pid = std::process::id(), "agent started");
    let mut leading = false;
    let renew_every = duration / 3;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    let link = match &cli.management_secret {
        Some(secret) => Some(
            management_link::ManagementLink::load(client.clone(), secret)
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let providers = cli.provider_image.clone().map(|image| ProviderController {
        image,
        args: cli.provider_arg.clone(),
    });
    let mut work: Option<tokio::task::JoinHandle<()>> = None;
    // When the lease was last renewed (taken before the request, so never later than the
    // renewal the apiserver recorded).
    let mut renewed_at: Option<Instant> = None;
    loop {
        let attempt = Instant::now();
        let holds = match lease.try_hold().await {
            Ok(holds) => {
                renewed_at = holds.then_some(attempt);
                holds
            }
            Err(e) => {
                tracing::warn!("{e}");
                leading && still_holds(renewed_at.map(|t| t.elapsed()), duration, renew_every)
            }
        };
        if holds != leading {
            leading = holds;
            tracing::info!(%identity, leading, "leadership changed");
            if let Some(task) = work.take() {
                task.abort();
            }
            if let (true, Some(link)) = (leading, &link) {
                work = Some(tokio::spawn(work::run(
                    client.clone(),
                    link.clone(),
                    providers.clone(),
                )));
            }
        }
        let stop = tokio::select! {
            _ = tokio::time::sleep(renew_every) => None,
            _ = tokio::signal::ctrl_c() => Some("interrupted"),
            _ = terminate.recv() => Some("terminated"),
        };
        if let Some(why) = stop {
            tracing::info!("{why}; stopping");
            if let Some(task) = work.take() {
                task.abort();
            }
            // A standby need not wait for the lease to lapse.
            if leading && let Err(e) = lease.release().await {
                tracing::warn!("{e}");
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_that_cannot_renew_stops_a_renewal_period_before_its_lease_lapses() {
        let (lease, every) = (Duration::from_secs(15), Duration::from_secs(5));
        assert!(still_holds(Some(Duration::from_secs(4)), lease, every));
        assert!(still_holds(
            Some(Duration::from_millis(9_900)),
            lease,
            every
        ));
        assert!(!still_holds(Some(Duration::from_secs(10)), lease, every));
        assert!(!still_holds(Some(Duration::from_secs(16)), lease, every));
        assert!(!still_holds(None, lease, every));
    }
}
