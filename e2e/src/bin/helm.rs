//! `helm` for Strata's tests: a subset of the helm CLI (same command names, flags and
//! output formats) on the real Helm v4 engine, `libhelm_sdkpy.so` from the PyPI wheel
//! helm-sdkpy, loaded at run time (see `scripts/helm-engine.sh`). Strata's agent installs
//! charts by running `helm`; with this on its PATH the tests exercise real chart
//! rendering (sprig and all) and real release storage against a real apiserver, and the
//! agent can later run a real helm binary unchanged.
//!
//! Supported: `template`, `upgrade [--install]`, `uninstall`, `list`, `status`,
//! `get manifest`, `get values`, `history`, `rollback`; anything else exits 1 naming what
//! is unsupported. `template` renders without a cluster, through an install into an
//! in-process fake API server (see helm/template.rs).

// A binary's root file resolves `mod x;` next to itself (like a mod.rs), so the
// submodules in helm/ are named by path.
#[path = "helm/cli.rs"]
mod cli;
#[path = "helm/cluster.rs"]
mod cluster;
#[path = "helm/engine.rs"]
mod engine;
#[path = "helm/fake_cluster.rs"]
mod fake_cluster;
#[path = "helm/output.rs"]
mod output;
#[path = "helm/rollback.rs"]
mod rollback;
#[path = "helm/template.rs"]
mod template;
#[path = "helm/values.rs"]
mod values;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use cli::{Cli, Command, GetCommand, GlobalArgs, OutputFormat, ParseOutcome};
use engine::{Config, Engine, EngineError, ReleaseOptions, UpgradeMode};

#[derive(Debug, thiserror::Error)]
enum HelmError {
    /// A failed action, in helm's wording (see `helm_wording`).
    #[error("{0}")]
    Action(String),
    /// The engine could not be loaded or called.
    #[error(transparent)]
    Engine(EngineError),
    #[error(transparent)]
    Values(#[from] values::ValuesError),
    #[error(transparent)]
    Output(#[from] output::OutputError),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Rollback(#[from] rollback::RollbackError),
    #[error("{0}")]
    Unsupported(String),
    #[error("path {path:?} not found: {reason}")]
    ChartNotFound { path: String, reason: String },
    #[error("cannot write the output: {0}")]
    Stdout(#[source] std::io::Error),
    #[error(transparent)]
    Template(#[from] fake_cluster::FakeClusterError),
    #[error("cannot create a temporary folder for the template's kubeconfig: {0}")]
    TempDir(#[source] std::io::Error),
}

impl From<EngineError> for HelmError {
    fn from(error: EngineError) -> Self {
        helm_wording(error, "")
    }
}

/// What the engine prefixes its messages with ("<action> failed: ").
const ENGINE_PREFIXES: [&str; 7] = [
    "install failed: ",
    "upgrade failed: ",
    "uninstall failed: ",
    "list failed: ",
    "status failed: ",
    "history failed: ",
    "get values failed: ",
];

/// helm prints an action's error bare ("release: not found"), except install and
/// upgrade, which it prefixes with "INSTALLATION FAILED: " and "UPGRADE FAILED: "; the
/// engine prefixes every message with its own "<action> failed: ", which is replaced.
fn helm_wording(error: EngineError, helm_prefix: &str) -> HelmError {
    match error {
        EngineError::Failed { message } | EngineError::ReleaseNotFound { message } => {
            let mut bare = message.as_str();
            while let Some(rest) = ENGINE_PREFIXES.iter().find_map(|p| bare.strip_prefix(p)) {
                bare = rest;
            }
            HelmError::Action(format!("{helm_prefix}{bare}"))
        }
        other => HelmError::Engine(other),
    }
}

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os()) {
        ParseOutcome::Run(cli) => cli,
        ParseOutcome::Help(text) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        ParseOutcome::Usage(message) => {
            eprintln!("Error: {}", message.trim_end());
            return ExitCode::from(1);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run(cli, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = out.flush();
            eprintln!("Error: {error}");
            ExitCode::from(1)
        }
    }
}

/// The connection settings every command shares.
struct Target {
    namespace: Option<String>,
    kubeconfig: Option<String>,
    kube_context: Option<String>,
}

impl Target {
    fn new(global: &GlobalArgs) -> Self {
        Self {
            namespace: global.namespace.clone().filter(|n| !n.is_empty()),
            kubeconfig: kubeconfig_path(global.kubeconfig.as_deref()),
            kube_context: global.kube_context.clone().filter(|c| !c.is_empty()),
        }
    }

    fn configure<'e>(
        &self,
        engine: &'e Engine,
        namespace: Option<&str>,
    ) -> Result<Config<'e>, EngineError> {
        engine.configure(
            namespace.or(self.namespace.as_deref()),
            self.kubeconfig.as_deref(),
            self.kube_context.as_deref(),
        )
    }

    fn cluster(&self) -> cluster::Cluster {
        cluster::Cluster {
            kubeconfig: self.kubeconfig.as_ref().map(PathBuf::from),
            kube_context: self.kube_context.clone(),
        }
    }
}

/// `--kubeconfig`, else `$KUBECONFIG`. Passed to the engine explicitly because the
/// engine, given none, prefers an in-cluster service account over `$KUBECONFIG`, unlike
/// helm. A `$KUBECONFIG` list (a:b) is left to the engine, which merges it as helm does.
fn kubeconfig_path(flag: Option<&Path>) -> Option<String> {
    if let Some(path) = flag {
        return Some(path.display().to_string());
    }
    let env = std::env::var("KUBECONFIG").ok()?;
    if env.is_empty() || env.contains(':') {
        return None;
    }
    Some(env)
}

fn run(cli: Cli, out: &mut dyn Write) -> Result<(), HelmError> {
    let target = Target::new(&cli.global);
    if let Command::Template(args) = &cli.command {
        return template(&target, args, out);
    }
    let engine = Engine::load(&engine::default_library_path())?;
    match cli.command {
        // Handled above, before the engine is loaded; kept so the match needs no wildcard.
        Command::Template(_) => Ok(()),
        Command::Upgrade(args) => upgrade(&engine, &target, args, out),
        Command::Uninstall(args) => {
            let config = target.configure(&engine, None)?;
            for release in &args.releases {
                let response =
                    config.uninstall(release, args.wait.wait, args.wait.timeout.seconds)?;
                // helm prints the engine's `info` when the uninstall reports one.
                if let Some(info) = response
                    .get("info")
                    .and_then(Value::as_str)
                    .filter(|i| !i.is_empty())
                {
                    write(out, &format!("{info}\n"))?;
                }
                write(out, &format!("release \"{release}\" uninstalled\n"))?;
            }
            Ok(())
        }
        Command::List(args) => {
            let mut all: Vec<Value> = Vec::new();
            if args.all_namespaces {
                for namespace in target.cluster().release_namespaces()? {
                    let config = target.configure(&engine, Some(&namespace))?;
                    let listed = config.list(false)?;
                    all.extend(output::releases(&listed)?.iter().cloned());
                }
            } else {
                let config = target.configure(&engine, None)?;
                let listed = config.list(false)?;
                all.extend(output::releases(&listed)?.iter().cloned());
            }
            let elements = output::list_elements(&all);
            let text = match args.output {
                OutputFormat::Table => output::list_table(&elements),
                OutputFormat::Json => output::json(&elements)?,
                OutputFormat::Yaml => output::yaml(&elements)?,
            };
            write(out, &text)
        }
        Command::Status(args) => {
            let config = target.configure(&engine, None)?;
            let release = config.status(&args.release)?;
            let text = match args.output {
                OutputFormat::Table => output::status_table(&release),
                OutputFormat::Json => output::json(&output::status_object(&release))?,
                OutputFormat::Yaml => output::yaml(&output::status_object(&release))?,
            };
            write(out, &text)
        }
        Command::Get(GetCommand::Manifest(args)) => {
            let config = target.configure(&engine, None)?;
            let release = config.status(&args.release)?;
            // helm: fmt.Fprintln(out, release.Manifest)
            write(out, &format!("{}\n", output::Release(&release).manifest()))
        }
        Command::Get(GetCommand::Values(args)) => {
            let config = target.configure(&engine, None)?;
            let values = config.get_values(&args.release, args.all)?;
            let text = match args.output {
                OutputFormat::Table => {
                    let title = if args.all {
                        "COMPUTED VALUES:"
                    } else {
                        "USER-SUPPLIED VALUES:"
                    };
                    format!("{title}\n{}", output::yaml(&values)?)
                }
                OutputFormat::Json => output::json(&values)?,
                OutputFormat::Yaml => output::yaml(&values)?,
            };
            write(out, &text)
        }
        // cli::parse refuses these already; kept so the match needs no wildcard.
        Command::Unsupported(words) => Err(HelmError::Unsupported(cli::unsupported_command(
            "helm", &words,
        ))),
        Command::Get(GetCommand::Unsupported(words)) => Err(HelmError::Unsupported(
            cli::unsupported_command("helm get", &words),
        )),
        Command::History(args) => {
            let config = target.configure(&engine, None)?;
            let revisions = config.history(&args.release)?;
            let elements = output::history_elements(output::releases(&revisions)?, args.max);
            let text = match args.output {
                OutputFormat::Table => output::history_table(&elements),
                OutputFormat::Json => output::json(&elements)?,
                OutputFormat::Yaml => output::yaml(&elements)?,
            };
            write(out, &text)
        }
        Command::Rollback(args) => {
            let config = target.configure(&engine, None)?;
            let history = config.history(&args.release)?;
            let revisions = output::releases(&history)?;
            let revision = rollback::target(revisions, &args.release, args.revision.unwrap_or(0))?;
            // helm rolls back from a release a stopped helm left pending (the usual way out
            // of "another operation is in progress"); the engine's upgrade below would
            // refuse it, so the pending revision is superseded first, as helm's rollback
            // leaves it.
            if let Some(latest) = revisions
                .iter()
                .map(output::Release)
                .max_by_key(|r| r.revision())
                .filter(|r| r.status().starts_with("pending-"))
            {
                target.cluster().supersede_pending(
                    target.namespace.as_deref().unwrap_or("default"),
                    &args.release,
                    latest.revision(),
                )?;
            }
            // Not the engine's rollback, which is broken; see rollback.rs.
            let chart = rollback::RollbackChart::write(revision)?;
            let mode = UpgradeMode {
                install: false,
                server_side_apply: rollback::server_side_apply(revision),
                // Exactly the target's values, not a merge with the current ones.
                reset_values: true,
                // The target's values passed its chart's schema when it was deployed;
                // the throwaway chart has no schema of its own.
                skip_schema_validation: true,
                force_conflicts: false,
            };
            let options = ReleaseOptions {
                create_namespace: false,
                wait: args.wait.wait,
                timeout_seconds: args.wait.timeout.seconds,
            };
            config.upgrade(
                &args.release,
                &chart.path().display().to_string(),
                &rollback::user_values(revision),
                None,
                &mode,
                &options,
            )?;
            write(out, "Rollback was a success! Happy Helming!\n")
        }
    }
}

fn upgrade(
    engine: &Engine,
    target: &Target,
    args: cli::UpgradeArgs,
    out: &mut dyn Write,
) -> Result<(), HelmError> {
    let chart = local_chart(&args.chart)?;
    let values = values::load(&args.values)?;
    let config = target.configure(engine, None)?;
    let options = ReleaseOptions {
        create_namespace: args.create_namespace,
        wait: args.wait.wait,
        timeout_seconds: args.wait.timeout.seconds,
    };
    // helm decides install-or-upgrade from the history: no release is installed; one
    // whose last revision was uninstalled (with --keep-history) is installed over it.
    let previous = if args.install {
        match config.history(&args.release) {
            Ok(history) => Previous::from_history(output::releases(&history)?),
            Err(error) if error.is_release_not_found() => Previous::None,
            Err(error) => return Err(error.into()),
        }
    } else {
        Previous::Live
    };
    let release = match previous {
        Previous::None => {
            write(
                out,
                &format!(
                    "Release \"{}\" does not exist. Installing it now.\n",
                    args.release
                ),
            )?;
            config
                .install(
                    &args.release,
                    &chart,
                    &values,
                    args.version.as_deref(),
                    &options,
                )
                .map_err(|e| helm_wording(e, "INSTALLATION FAILED: "))?
        }
        Previous::Uninstalled => {
            write(
                out,
                &format!(
                    "Release \"{}\" does not exist. Installing it now.\n",
                    args.release
                ),
            )?;
            // The engine's upgrade with `install` replaces an uninstalled release, as
            // helm's install with Replace does; its plain install has no such option.
            config
                .upgrade(
                    &args.release,
                    &chart,
                    &values,
                    args.version.as_deref(),
                    &UpgradeMode::helm(true),
                    &options,
                )
                .map_err(|e| helm_wording(e, "INSTALLATION FAILED: "))?
        }
        Previous::Live => {
            let release = config
                .upgrade(
                    &args.release,
                    &chart,
                    &values,
                    args.version.as_deref(),
                    &UpgradeMode {
                        force_conflicts: args.force_conflicts,
                        ..UpgradeMode::helm(false)
                    },
                    &options,
                )
                .map_err(|e| helm_wording(e, "UPGRADE FAILED: "))?;
            write(
                out,
                &format!(
                    "Release \"{}\" has been upgraded. Happy Helming!\n",
                    args.release
                ),
            )?;
            release
        }
    };
    write(out, &output::status_table(&release))
}

/// `helm template`: rendered through the fake API server of helm/fake_cluster.rs.
fn template(
    target: &Target,
    args: &cli::TemplateArgs,
    out: &mut dyn Write,
) -> Result<(), HelmError> {
    let work = tempfile::tempdir().map_err(HelmError::TempDir)?;
    let cache = work.path().join("kube-cache");
    // client-go keeps a discovery cache per API server address; each render has a fresh
    // fake server, so the cache goes into the render's own folder instead of ~/.kube.
    set_kube_cache_dir(&cache);
    let (release, chart) = args.release_and_chart();
    let chart = local_chart(chart)?;
    let values = values::load(&args.values)?;
    let engine = Engine::load(&engine::default_library_path())?;
    template::run(
        &engine,
        &template::TemplateRequest {
            release,
            chart: &chart,
            namespace: target.namespace.as_deref().unwrap_or("default"),
            values: &values,
            version: args.version.as_deref(),
            work_dir: work.path(),
        },
        out,
    )
}

/// Sets `KUBECACHEDIR`, which the engine's client-go reads, before the engine library is
/// loaded (its Go runtime copies the environment when it starts) and before this process
/// starts any thread.
#[allow(unsafe_code)]
fn set_kube_cache_dir(dir: &Path) {
    // SAFETY: called from `template` on the main thread before the engine library is
    // loaded and before the fake API server's runtime exists: no other thread is running
    // that could read or write the environment concurrently.
    unsafe { std::env::set_var("KUBECACHEDIR", dir) };
}

/// What the release's history says before an upgrade.
enum Previous {
    /// No release by that name: install.
    None,
    /// The latest revision was uninstalled with its history kept: install over it.
    Uninstalled,
    /// A release to upgrade (or, without --install, presumed one; the engine says if not).
    Live,
}

impl Previous {
    fn from_history(revisions: &[Value]) -> Self {
        let latest = revisions
            .iter()
            .max_by_key(|r| output::Release(r).revision());
        match latest.map(|r| output::Release(r).status()) {
            None => Self::None,
            Some("uninstalled") => Self::Uninstalled,
            Some(_) => Self::Live,
        }
    }
}

/// The chart argument: only local chart folders and packaged charts (.tgz) are supported;
/// repository references (repo/chart) and OCI or HTTP URLs are refused by name.
fn local_chart(chart: &str) -> Result<String, HelmError> {
    if let Some((scheme, _)) = chart.split_once("://") {
        return Err(HelmError::Unsupported(format!(
            "unsupported chart reference {chart:?}: {scheme}:// charts are not supported by this helm; pass a local chart folder or .tgz file"
        )));
    }
    let path = Path::new(chart);
    if !path.exists() {
        // helm's wording for a missing local path, with why nothing else was tried.
        return Err(HelmError::ChartNotFound {
            path: chart.to_string(),
            reason:
                "this helm supports only local chart folders and .tgz files (no chart repositories)"
                    .to_string(),
        });
    }
    let absolute = std::path::absolute(path).map_err(|e| HelmError::ChartNotFound {
        path: chart.to_string(),
        reason: e.to_string(),
    })?;
    Ok(absolute.display().to_string())
}

fn write(out: &mut dyn Write, text: &str) -> Result<(), HelmError> {
    out.write_all(text.as_bytes()).map_err(HelmError::Stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(message: &str) -> EngineError {
        EngineError::Failed {
            message: message.to_string(),
        }
    }

    #[test]
    fn engine_messages_in_helm_wording() {
        let wording = |error, prefix| helm_wording(error, prefix).to_string();
        assert_eq!(
            wording(failed("install failed: timed out"), "INSTALLATION FAILED: "),
            "INSTALLATION FAILED: timed out"
        );
        assert_eq!(
            wording(
                failed("upgrade failed: install failed: boom"),
                "INSTALLATION FAILED: "
            ),
            "INSTALLATION FAILED: boom"
        );
        assert_eq!(
            wording(
                EngineError::ReleaseNotFound {
                    message: "status failed: release: not found".into()
                },
                ""
            ),
            "release: not found"
        );
        assert_eq!(wording(failed("something else"), ""), "something else");
        assert!(matches!(
            helm_wording(EngineError::NoResult { action: "list" }, ""),
            HelmError::Engine(_)
        ));
    }
}
