//! The command line: the subset of helm's commands and flags this executable implements,
//! under helm's own names, so that Strata's agent can switch to a real helm unchanged.
//! Anything outside the subset is refused with a message that names it.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// What the commands and subcommands of this helm are, for error messages.
pub const SUPPORTED: &str =
    "template, upgrade, uninstall, list, status, get manifest, get values, history, rollback";

#[derive(Debug, Parser)]
#[command(
    name = "helm",
    about = "A helm subset on the real Helm v4 engine (libhelm_sdkpy), for Strata's tests",
    // `--version` is upgrade's chart-version flag, as in helm; this tool has no version.
    disable_version_flag = true,
    disable_help_subcommand = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// helm's global flags that this subset honours.
#[derive(Debug, Clone, Default, Args, PartialEq, Eq)]
pub struct GlobalArgs {
    /// namespace scope for this request
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// name of the kubeconfig context to use
    #[arg(long = "kube-context", global = true, value_name = "CONTEXT")]
    pub kube_context: Option<String>,
}

#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// locally render templates
    Template(TemplateArgs),
    /// upgrade a release (install it first with --install)
    Upgrade(UpgradeArgs),
    /// uninstall a release
    #[command(visible_aliases = ["un", "delete", "del"])]
    Uninstall(UninstallArgs),
    /// list releases
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// display the status of the named release
    Status(StatusArgs),
    /// download extended information of a named release
    #[command(subcommand)]
    Get(GetCommand),
    /// fetch release history
    #[command(visible_alias = "hist")]
    History(HistoryArgs),
    /// roll back a release to a previous revision
    Rollback(RollbackArgs),
    /// Any other helm command; refused.
    #[command(external_subcommand)]
    Unsupported(Vec<OsString>),
}

#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum GetCommand {
    /// download the manifest for a named release
    Manifest(GetManifestArgs),
    /// download the values file for a named release
    Values(GetValuesArgs),
    /// Any other `helm get` subcommand; refused.
    #[command(external_subcommand)]
    Unsupported(Vec<OsString>),
}

/// `-o/--output`, helm's output formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Yaml,
}

/// `--wait` and `--timeout`, shared by the commands that change a release.
#[derive(Debug, Clone, Args, PartialEq, Eq)]
pub struct WaitArgs {
    /// wait until the release's resources are ready (up to --timeout)
    #[arg(long)]
    pub wait: bool,
    /// time to wait for any individual Kubernetes operation, as a Go duration (e.g. 5m0s)
    #[arg(long, value_name = "DURATION", default_value = "5m0s", value_parser = parse_go_duration)]
    pub timeout: GoDuration,
}

#[derive(Debug, Args, PartialEq, Eq)]
pub struct UpgradeArgs {
    /// the release name
    pub release: String,
    /// a local chart folder or a packaged chart (.tgz)
    pub chart: String,
    /// if a release by this name doesn't already exist, run an install
    #[arg(short = 'i', long)]
    pub install: bool,
    /// specify values in a YAML file (can specify multiple; later ones win)
    #[arg(
        short = 'f',
        long = "values",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub values: Vec<String>,
    /// specify a version constraint for the chart version to use
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// if --install is set, create the release namespace if not present
    #[arg(long)]
    pub create_namespace: bool,
    /// if set server-side apply will force changes against conflicts
    #[arg(long)]
    pub force_conflicts: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args, PartialEq, Eq)]
pub struct TemplateArgs {
    /// [NAME] CHART: the release name (default "release-name") and a local chart folder
    /// or packaged chart (.tgz)
    #[arg(required = true, num_args = 1..=2, value_name = "NAME] [CHART")]
    pub names: Vec<String>,
    /// specify values in a YAML file (can specify multiple; later ones win)
    #[arg(
        short = 'f',
        long = "values",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub values: Vec<String>,
    /// specify a version constraint for the chart version to use
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
}

impl TemplateArgs {
    /// The release name and the chart, as helm reads one or two arguments.
    pub fn release_and_chart(&self) -> (&str, &str) {
        match self.names.as_slice() {
            [release, chart] => (release, chart),
            [chart] => ("release-name", chart),
            // clap takes one or two; nothing else reaches here.
            _ => ("release-name", ""),
        }
    }
}

#[derive(Debug, Args, PartialEq, Eq)]
pub struct UninstallArgs {
    /// the release names
    #[arg(required = true, value_name = "RELEASE_NAME")]
    pub releases: Vec<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args, PartialEq, Eq)]
pub struct ListArgs {
    /// list releases across all namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// prints the output in the specified format
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args, PartialEq, Eq)]
pub struct StatusArgs {
    pub release: String,
    /// prints the output in the specified format
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args, PartialEq, Eq)]
pub struct GetManifestArgs {
    pub release: String,
}

#[derive(Debug, Args, PartialEq, Eq)]
pub struct GetValuesArgs {
    pub release: String,
    /// dump all (computed) values
    #[arg(short = 'a', long)]
    pub all: bool,
    /// prints the output in the specified format
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args, PartialEq, Eq)]
pub struct HistoryArgs {
    pub release: String,
    /// maximum number of revisions to include in history
    #[arg(long, default_value_t = 256)]
    pub max: usize,
    /// prints the output in the specified format
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args, PartialEq, Eq)]
pub struct RollbackArgs {
    pub release: String,
    /// the revision to roll back to; the previous one when omitted or 0
    pub revision: Option<u32>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// A Go `time.Duration` as helm's `--timeout` takes it, kept to whole seconds (rounded up)
/// because that is what the engine takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration {
    pub seconds: u64,
}

/// Parses Go's duration syntax: a sequence of decimal numbers with units (ns, us, µs, ms,
/// s, m, h), e.g. "300s", "5m0s", "1h30m", "1.5m"; a bare "0" is zero. Go also allows
/// negative durations; helm treats them as no timeout, which this refuses as a mistake.
pub fn parse_go_duration(text: &str) -> Result<GoDuration, String> {
    let invalid = || format!("invalid duration {text:?} (use a Go duration such as 300s or 5m0s)");
    if text == "0" {
        return Ok(GoDuration { seconds: 0 });
    }
    let mut rest = text;
    let mut nanos: f64 = 0.0;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        if number_len == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        nanos += number * per_unit;
        rest = &rest[unit_len..];
    }
    let seconds = (nanos / 1e9).ceil();
    if !seconds.is_finite() || seconds > u32::MAX as f64 {
        return Err(invalid());
    }
    Ok(GoDuration {
        seconds: seconds as u64,
    })
}

/// Why the command line was not run.
#[derive(Debug)]
pub enum ParseOutcome {
    Run(Cli),
    /// `--help` and the like: print this on stdout, exit 0.
    Help(String),
    /// A usage error: print this on stderr, exit 1 (helm exits 1 on every error).
    Usage(String),
}

/// Parses the command line (including argv[0]) without exiting.
pub fn parse<I, T>(args: I) -> ParseOutcome
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = match Cli::command().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(error) => return from_clap_error(&error),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => return from_clap_error(&error),
    };
    match &cli.command {
        Command::Unsupported(words) => ParseOutcome::Usage(unsupported_command("helm", words)),
        Command::Get(GetCommand::Unsupported(words)) => {
            ParseOutcome::Usage(unsupported_command("helm get", words))
        }
        _ => ParseOutcome::Run(cli),
    }
}

pub fn unsupported_command(parent: &str, words: &[OsString]) -> String {
    let name = words
        .first()
        .map(|w| w.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "unsupported command {name:?} for {parent:?}: this helm (Strata's, on the Helm engine library) implements only: {SUPPORTED}"
    )
}

fn from_clap_error(error: &clap::Error) -> ParseOutcome {
    match error.kind() {
        // helm (cobra) prints the help and exits 0 for a bare `helm` or `helm get` too.
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            ParseOutcome::Help(error.render().to_string())
        }
        ErrorKind::UnknownArgument => {
            let flag = match error.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(flag)) => flag.clone(),
                _ => String::from("?"),
            };
            // Report the flag as typed, without a value glued on with '='.
            let flag = flag.split('=').next().unwrap_or(&flag).to_string();
            ParseOutcome::Usage(format!(
                "unknown or unsupported flag: {flag} (this helm, Strata's on the Helm engine library, implements only a subset of helm's flags; see --help)"
            ))
        }
        _ => {
            let rendered = error.render().to_string();
            // clap's messages start with "error: "; helm's with "Error: ", added by main.
            let message = rendered
                .trim_start_matches("error: ")
                .trim_end()
                .to_string();
            ParseOutcome::Usage(message)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Cli {
        let mut argv = vec!["helm"];
        argv.extend_from_slice(args);
        match parse(argv) {
            ParseOutcome::Run(cli) => cli,
            other => panic!("expected a command for {args:?}, got {other:?}"),
        }
    }

    fn usage(args: &[&str]) -> String {
        let mut argv = vec!["helm"];
        argv.extend_from_slice(args);
        match parse(argv) {
            ParseOutcome::Usage(message) => message,
            other => panic!("expected a usage error for {args:?}, got {other:?}"),
        }
    }

    #[test]
    fn upgrade_install_with_every_flag() {
        let cli = run(&[
            "upgrade",
            "--install",
            "demo",
            "./charts/demo",
            "--namespace",
            "apps",
            "--kubeconfig",
            "/tmp/kc",
            "-f",
            "a.yaml",
            "--values",
            "b.yaml",
            "--values=c.yaml,d.yaml",
            "--version",
            "1.2.3",
            "--create-namespace",
            "--force-conflicts",
            "--wait",
            "--timeout",
            "90s",
        ]);
        assert_eq!(
            cli.global,
            GlobalArgs {
                namespace: Some("apps".into()),
                kubeconfig: Some(PathBuf::from("/tmp/kc")),
                kube_context: None,
            }
        );
        let Command::Upgrade(up) = cli.command else {
            panic!("not an upgrade: {:?}", cli.command)
        };
        assert_eq!(up.release, "demo");
        assert_eq!(up.chart, "./charts/demo");
        assert!(up.install);
        assert_eq!(up.values, ["a.yaml", "b.yaml", "c.yaml", "d.yaml"]);
        assert_eq!(up.version.as_deref(), Some("1.2.3"));
        assert!(up.create_namespace);
        assert!(up.force_conflicts);
        assert!(up.wait.wait);
        assert_eq!(up.wait.timeout, GoDuration { seconds: 90 });
    }

    #[test]
    fn upgrade_defaults_and_short_flags() {
        let cli = run(&["-n", "ns", "upgrade", "-i", "r", "c.tgz"]);
        assert_eq!(cli.global.namespace.as_deref(), Some("ns"));
        let Command::Upgrade(up) = cli.command else {
            panic!("not an upgrade")
        };
        assert!(up.install);
        assert!(up.values.is_empty());
        assert!(!up.wait.wait);
        assert!(!up.create_namespace);
        assert!(!up.force_conflicts);
        assert_eq!(up.wait.timeout, GoDuration { seconds: 300 });
        assert_eq!(up.version, None);
    }

    #[test]
    fn global_flags_anywhere() {
        let cli = run(&[
            "list",
            "-o",
            "json",
            "-n",
            "x",
            "--kubeconfig=/k",
            "--kube-context",
            "ctx",
        ]);
        assert_eq!(cli.global.namespace.as_deref(), Some("x"));
        assert_eq!(cli.global.kubeconfig, Some(PathBuf::from("/k")));
        assert_eq!(cli.global.kube_context.as_deref(), Some("ctx"));
        assert_eq!(
            cli.command,
            Command::List(ListArgs {
                all_namespaces: false,
                output: OutputFormat::Json
            })
        );
    }

    #[test]
    fn list_all_namespaces_and_alias() {
        let cli = run(&["ls", "-A", "--output", "yaml"]);
        assert_eq!(
            cli.command,
            Command::List(ListArgs {
                all_namespaces: true,
                output: OutputFormat::Yaml
            })
        );
        let cli = run(&["list"]);
        assert_eq!(
            cli.command,
            Command::List(ListArgs {
                all_namespaces: false,
                output: OutputFormat::Table
            })
        );
    }

    #[test]
    fn status_get_history() {
        assert_eq!(
            run(&["status", "r", "-o", "json"]).command,
            Command::Status(StatusArgs {
                release: "r".into(),
                output: OutputFormat::Json
            })
        );
        assert_eq!(
            run(&["get", "manifest", "r"]).command,
            Command::Get(GetCommand::Manifest(GetManifestArgs {
                release: "r".into()
            }))
        );
        assert_eq!(
            run(&["get", "values", "r", "-o", "json", "--all"]).command,
            Command::Get(GetCommand::Values(GetValuesArgs {
                release: "r".into(),
                all: true,
                output: OutputFormat::Json
            }))
        );
        assert_eq!(
            run(&["history", "r", "-o", "json"]).command,
            Command::History(HistoryArgs {
                release: "r".into(),
                max: 256,
                output: OutputFormat::Json
            })
        );
    }

    #[test]
    fn rollback_with_and_without_revision() {
        let Command::Rollback(rb) = run(&["rollback", "r"]).command else {
            panic!("not a rollback")
        };
        assert_eq!(rb.revision, None);
        assert!(!rb.wait.wait);
        let Command::Rollback(rb) = run(&["rollback", "r", "1", "--wait", "--timeout=2m"]).command
        else {
            panic!("not a rollback")
        };
        assert_eq!(rb.revision, Some(1));
        assert!(rb.wait.wait);
        assert_eq!(rb.wait.timeout, GoDuration { seconds: 120 });
    }

    #[test]
    fn template_with_or_without_a_release_name() {
        let cli = run(&[
            "template",
            "demo",
            "./chart",
            "-f",
            "a.yaml",
            "--namespace",
            "apps",
        ]);
        assert_eq!(cli.global.namespace.as_deref(), Some("apps"));
        let Command::Template(args) = cli.command else {
            panic!("not a template")
        };
        assert_eq!(args.release_and_chart(), ("demo", "./chart"));
        assert_eq!(args.values, ["a.yaml"]);
        let Command::Template(args) = run(&["template", "./chart"]).command else {
            panic!("not a template")
        };
        assert_eq!(args.release_and_chart(), ("release-name", "./chart"));
        assert!(usage(&["template"]).contains("required"));
        assert!(usage(&["template", "a", "b", "c"]).contains("c"));
    }

    #[test]
    fn uninstall_several() {
        let Command::Uninstall(un) = run(&["uninstall", "a", "b", "-n", "x"]).command else {
            panic!("not an uninstall")
        };
        assert_eq!(un.releases, ["a", "b"]);
        assert!(usage(&["uninstall"]).contains("required"));
    }

    #[test]
    fn unsupported_commands_are_named() {
        let message = usage(&["repo", "add", "x", "y"]);
        assert!(
            message.contains("unsupported command \"repo\""),
            "{message}"
        );
        let message = usage(&["install", "r", "c"]);
        assert!(message.contains("\"install\""), "{message}");
        let message = usage(&["get", "notes", "r"]);
        assert!(
            message.contains("unsupported command \"notes\" for \"helm get\""),
            "{message}"
        );
    }

    #[test]
    fn unsupported_flags_are_named() {
        let message = usage(&["upgrade", "--install", "r", "c", "--set", "a=b"]);
        assert!(message.contains("--set"), "{message}");
        assert!(message.contains("unsupported"), "{message}");
        let message = usage(&["upgrade", "--install", "r", "c", "--set=a=b"]);
        assert!(message.contains("flag: --set "), "{message}");
        let message = usage(&["list", "--superseded"]);
        assert!(message.contains("--superseded"), "{message}");
    }

    #[test]
    fn usage_errors() {
        assert!(usage(&["upgrade", "r"]).contains("CHART"));
        assert!(usage(&["list", "-o", "wide"]).contains("wide"));
        assert!(usage(&["upgrade", "r", "c", "--timeout", "soon"]).contains("invalid duration"));
        assert!(usage(&["rollback", "r", "one"]).contains("one"));
    }

    #[test]
    fn help_is_not_an_error() {
        assert!(matches!(parse(["helm", "--help"]), ParseOutcome::Help(_)));
        assert!(matches!(
            parse(["helm", "upgrade", "--help"]),
            ParseOutcome::Help(_)
        ));
        assert!(matches!(parse(["helm"]), ParseOutcome::Help(_)));
        assert!(matches!(parse(["helm", "get"]), ParseOutcome::Help(_)));
    }

    #[test]
    fn go_durations() {
        let secs = |s: &str| parse_go_duration(s).map(|d| d.seconds);
        assert_eq!(secs("5m0s"), Ok(300));
        assert_eq!(secs("300s"), Ok(300));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs("1.5m"), Ok(90));
        assert_eq!(secs("1500ms"), Ok(2));
        assert_eq!(secs("0"), Ok(0));
        assert_eq!(secs("0s"), Ok(0));
        assert!(secs("").is_err());
        assert!(secs("5").is_err());
        assert!(secs("m").is_err());
        assert!(secs("5x").is_err());
        assert!(secs("-5s").is_err());
    }
}
