//! `strata`: Strata's operator CLI and its management controller (`strata controller`).
//!
//! Exit status: 0 when every input is valid (warnings go to stderr), 1 when any is not or
//! the command failed, 2 on usage errors.

mod cluster_commands;
mod cluster_describe_command;
mod cluster_describe_text;
mod cluster_kubeconfig_command;
mod cluster_plan_command;
mod cluster_reclaim_command;
mod cluster_view_commands;
mod controller;
mod crd_commands;
mod documents;
mod management_client;
mod pack_commands;
mod pack_mirror_command;
mod pack_render_command;
mod profile_commands;
mod profile_rollout_command;
mod profile_versions_command;
mod registry_commands;
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::profile_commands::PackOrigin;
use crate::registry_commands::RegistryArgs;
use crate::report::OutputFormat;

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Cluster profiles, packs and Cluster API provisioning with pivot"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate, inspect, render and archive packs.
    #[command(subcommand)]
    Pack(PackCommand),
    /// Validate cluster profiles and render a cluster's composed stack.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Print the CustomResourceDefinitions (generated from the Rust types).
    Crds {
        /// Write one file per CRD into this folder instead of printing them.
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
    /// Run the management controller: WorkloadClusters become revisions, Cluster API
    /// objects and, once the first control-plane node is up, an installed agent.
    Controller(Box<controller::ControllerArgs>),
    /// Operate on a WorkloadCluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Give a cluster's agent its current management token through the workload cluster's
    /// admin kubeconfig: the way back for a site whose token ran out while it was cut off
    /// (docs/security.md).
    Rekey(cluster_commands::RekeyArgs),
    /// Print what applying a cluster's next revision will do: layers, values (secrets
    /// masked), Kubernetes and OS, node pools, Cluster API objects, machines replaced and
    /// the agent's steps. Reads the management cluster and changes nothing.
    Plan(cluster_plan_command::PlanArgs),
    /// Give a lost site's cluster back to the controller once its objects are restored into
    /// the management cluster and unpaused: revokes the lost agent's tokens and records a new
    /// pivot round, after which a new agent is installed and moves the objects to the site
    /// again (docs/edge.md).
    Reclaim(cluster_reclaim_command::ReclaimArgs),
    /// Print (or write with -o FILE) the workload cluster's admin kubeconfig: CAPI's Secret
    /// before the pivot, the site's export after it, checked either way against the server
    /// and CA the controller pinned (docs/edge.md).
    Kubeconfig(cluster_kubeconfig_command::KubeconfigArgs),
    /// List the WorkloadClusters: phase, revision, node counts, layers, agent, age.
    List(cluster_view_commands::ListArgs),
    /// One WorkloadCluster's phase, conditions and layers.
    Status(cluster_view_commands::StatusArgs),
    /// One WorkloadCluster as a tree, like `clusterctl describe cluster`: its revision,
    /// layers, CAPI Cluster, control plane and workers with their machines, and conditions.
    /// After the pivot the machines are the site's export's, marked as such.
    Describe(cluster_describe_command::DescribeArgs),
}

#[derive(Subcommand)]
enum PackCommand {
    /// Validate pack folders: one line per finding on stderr.
    Validate {
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        #[arg(long, short, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Show a pack's name, version, layer, content, images and digest; with --registry, a
    /// pack in a registry (its pack.json and digest).
    Inspect {
        /// A pack folder, a pack archive (.tar.gz), or NAME:VERSION with --registry.
        #[arg(value_name = "DIR|ARCHIVE|NAME:VERSION")]
        target: String,
        #[command(flatten)]
        registry: RegistryArgs,
        #[arg(long, short, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Validate a pack, archive it and push it to a registry as <name>:<version>.
    #[command(group = clap::ArgGroup::new("registry-required").arg("registry").required(true))]
    Push {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Replace the version if it already exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Pull a pack from a registry, verify it and unpack it into a folder.
    #[command(group = clap::ArgGroup::new("registry-required").arg("registry").required(true))]
    Pull {
        #[arg(value_name = "NAME:VERSION")]
        reference: String,
        /// The folder to create (must not exist, or be empty).
        #[arg(long, short = 'o', value_name = "DIR")]
        output: PathBuf,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// List the packs of a registry and their versions.
    #[command(group = clap::ArgGroup::new("registry-required").arg("registry").required(true))]
    List {
        #[command(flatten)]
        registry: RegistryArgs,
        #[arg(long, short, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// Print the Kubernetes objects a pack installs, as YAML, like `helm template`: its
    /// charts and its manifests (each wrapped into a chart) rendered by helm
    /// ($STRATA_HELM, else helm on PATH) with the pack's values (docs/rendering.md).
    Render {
        /// A pack folder, or NAME:VERSION with --registry.
        #[arg(value_name = "DIR|NAME:VERSION")]
        target: String,
        /// A values file merged over the pack's values.yaml with Helm's rules; repeat it
        /// for more, later files win.
        #[arg(long = "values", short = 'f', value_name = "FILE")]
        values: Vec<PathBuf>,
        /// A preset of the pack to apply before the values files; repeat it for more.
        #[arg(long = "preset", value_name = "NAME")]
        presets: Vec<String>,
        /// Render with the values the pack's schema.yaml marks secret; without it they
        /// render as `<secret>`, so the output can be shared.
        #[arg(long)]
        show_secrets: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Copy the packs of cluster profiles, and the images their packs list, from one
    /// registry to another by digest, for air-gapped sites (docs/edge.md). A rerun resumes:
    /// what the target holds is skipped.
    Mirror(Box<pack_mirror_command::MirrorArgs>),
    /// Write a pack's deterministic archive; print its sha256 and the pack's content digest.
    Archive {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, short = 'o', value_name = "FILE")]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// Validate ClusterProfile files against a folder of packs or a registry.
    Validate {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// A folder whose subfolders are packs.
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "registry",
            conflicts_with = "registry"
        )]
        packs: Option<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
        #[arg(long, short, value_enum, default_value = "text")]
        output: OutputFormat,
    },
    /// List the versions of a profile published in the management cluster, and the
    /// clusters each one is in force for.
    Versions(profile_versions_command::VersionsArgs),
    /// Show where the rollout of a profile version stands (each cluster that uses it, and
    /// what holds the next one back); `--approve` releases it.
    Rollout(profile_rollout_command::RolloutArgs),
    /// Print a cluster's composed stack in install order, with digests and merged values.
    Render {
        #[arg(long = "profile", required = true, value_name = "FILE")]
        profiles: Vec<PathBuf>,
        /// A WorkloadCluster YAML file.
        #[arg(long, value_name = "FILE")]
        cluster: PathBuf,
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "registry",
            conflicts_with = "registry"
        )]
        packs: Option<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

/// How a command ended, short of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Invalid,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    pub fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        CommandError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }
}

fn origin<'a>(
    packs: Option<&'a Path>,
    registry: &'a RegistryArgs,
) -> Result<PackOrigin<'a>, CommandError> {
    match (packs, registry.given()) {
        (Some(dir), _) => Ok(PackOrigin::Folder(dir)),
        (None, Some(_)) => Ok(PackOrigin::Registry(registry)),
        // clap requires one of the two; this is only reached if that rule changes.
        (None, None) => Err(CommandError::Failed(
            "give --packs DIR or --registry HOST[:PORT]/BASE".into(),
        )),
    }
}

fn run(cli: Cli) -> Result<ExitStatus, CommandError> {
    match cli.command {
        Command::Pack(PackCommand::Validate { dirs, output }) => {
            pack_commands::validate(&dirs, output)
        }
        Command::Pack(PackCommand::Inspect {
            target,
            registry,
            output,
        }) => match registry.given() {
            Some(_) => registry_commands::inspect(&target, &registry, output),
            None => pack_commands::inspect(Path::new(&target), output),
        },
        Command::Pack(PackCommand::Render {
            target,
            values,
            presets,
            show_secrets,
            registry,
        }) => pack_render_command::render(&pack_render_command::RenderRequest {
            target: &target,
            values_files: &values,
            presets: &presets,
            show_secrets,
            registry: &registry,
        }),
        Command::Pack(PackCommand::Archive { dir, output }) => {
            pack_commands::archive(&dir, &output)
        }
        Command::Pack(PackCommand::Push {
            dir,
            force,
            registry,
        }) => registry_commands::push(&dir, force, &registry),
        Command::Pack(PackCommand::Pull {
            reference,
            output,
            registry,
        }) => registry_commands::pull(&reference, &output, &registry),
        Command::Pack(PackCommand::Mirror(args)) => pack_mirror_command::mirror_command(&args),
        Command::Pack(PackCommand::List { registry, output }) => {
            registry_commands::list(&registry, output)
        }
        Command::Profile(ProfileCommand::Validate {
            files,
            packs,
            registry,
            output,
        }) => profile_commands::validate(&files, origin(packs.as_deref(), &registry)?, output),
        Command::Profile(ProfileCommand::Render {
            profiles,
            cluster,
            packs,
            registry,
        }) => profile_commands::render(&profiles, &cluster, origin(packs.as_deref(), &registry)?),
        Command::Profile(ProfileCommand::Versions(args)) => {
            profile_versions_command::versions(&args)
        }
        Command::Profile(ProfileCommand::Rollout(args)) => profile_rollout_command::rollout(&args),
        Command::Crds { output_dir } => crd_commands::run(output_dir.as_deref()),
        Command::Cluster(ClusterCommand::Rekey(args)) => cluster_commands::rekey(&args),
        Command::Cluster(ClusterCommand::Plan(args)) => cluster_plan_command::plan(&args),
        Command::Cluster(ClusterCommand::Reclaim(args)) => cluster_reclaim_command::reclaim(&args),
        Command::Cluster(ClusterCommand::List(args)) => cluster_view_commands::list(&args),
        Command::Cluster(ClusterCommand::Status(args)) => cluster_view_commands::status(&args),
        Command::Cluster(ClusterCommand::Describe(args)) => {
            cluster_describe_command::describe(&args)
        }
        Command::Cluster(ClusterCommand::Kubeconfig(args)) => {
            cluster_kubeconfig_command::kubeconfig(&args)
        }
        Command::Controller(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            controller::run(*args).map_err(|e| CommandError::Failed(e.to_string()))?;
            Ok(ExitStatus::Success)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(ExitStatus::Success) => ExitCode::SUCCESS,
        Ok(ExitStatus::Invalid) => ExitCode::from(1),
        Err(e) => {
            eprintln!("strata: error: {e}");
            ExitCode::from(1)
        }
    }
}
