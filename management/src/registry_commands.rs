//! `strata pack push | pull | list`, and `inspect` of a pack in a registry.
//!
//! Credentials: `--username` with `--password-stdin`; otherwise the Docker config file
//! (`$DOCKER_CONFIG` or `~/.docker/config.json`); anonymous last. `--plain-http` is explicit,
//! never a fallback.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use strata_shared::pack::Pack;
use strata_shared::registry::address::RegistryAddress;
use strata_shared::registry::cache::PackCache;
use strata_shared::registry::client::{PackRegistryClient, RegistryOptions};
use strata_shared::registry::credentials::resolve_credentials;

use crate::report::{OutputFormat, print_document, print_findings};
use crate::{CommandError, ExitStatus};

/// The flags every registry command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// The registry and base path: HOST[:PORT]/BASE (packs live under
    /// BASE/spectro-packs/archive/<name>).
    #[arg(long, value_name = "HOST[:PORT]/BASE")]
    pub registry: Option<String>,
    /// Talk plain HTTP (never done unless asked).
    #[arg(long, requires = "registry")]
    pub plain_http: bool,
    /// A PEM file with the certificate authority of the registry.
    #[arg(long, value_name = "FILE", requires = "registry")]
    pub ca_file: Option<PathBuf>,
    /// A user name; the password is read from standard input (--password-stdin).
    #[arg(long, requires_all = ["password_stdin", "registry"])]
    pub username: Option<String>,
    /// Read the password from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

impl RegistryArgs {
    /// The registry, when `--registry` was given.
    pub fn given(&self) -> Option<&str> {
        self.registry.as_deref()
    }

    pub(crate) fn registry(&self) -> Result<&str, CommandError> {
        self.given()
            .ok_or_else(|| CommandError::Failed("--registry HOST[:PORT]/BASE is required".into()))
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Failed(format!("cannot start the async runtime: {e}")))
}

/// A client for the registry the flags name.
pub fn client(args: &RegistryArgs) -> Result<PackRegistryClient, CommandError> {
    let registry = args.registry()?;
    let explicit = match (&args.username, args.password_stdin) {
        (Some(user), true) => {
            let password = read_passwords(&["--password-stdin"])?.remove(0);
            Some((user.clone(), password))
        }
        _ => None,
    };
    let (address, options) = registry_settings(
        "--registry",
        registry,
        args.plain_http,
        args.ca_file.as_deref(),
        explicit,
    )?;
    PackRegistryClient::new(address, options).map_err(|e| CommandError::Failed(e.to_string()))
}

/// The password of each flag in `flags`, one line of standard input each, in that order.
pub(crate) fn read_passwords(flags: &[&str]) -> Result<Vec<String>, CommandError> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|e| {
        CommandError::Failed(format!("cannot read the password from standard input: {e}"))
    })?;
    split_passwords(&input, flags)
}

/// `input` as the passwords of `flags`: all of it (but its line break) for one flag, so
/// that a single password may hold anything; one line each for several.
fn split_passwords(input: &str, flags: &[&str]) -> Result<Vec<String>, CommandError> {
    let mut lines: std::collections::VecDeque<String> = if flags.len() == 1 {
        [input.trim_end_matches(['\n', '\r']).to_string()].into()
    } else {
        input
            .lines()
            .map(|line| line.trim_end_matches('\r').to_string())
            .collect()
    };
    let mut passwords = Vec::with_capacity(flags.len());
    for (index, flag) in flags.iter().enumerate() {
        let password = lines.pop_front().unwrap_or_default();
        if password.is_empty() {
            let which = if flags.len() == 1 {
                String::new()
            } else {
                format!(
                    " on line {} (one password a line, in the order {})",
                    index + 1,
                    flags.join(", ")
                )
            };
            return Err(CommandError::Failed(format!(
                "{flag}: standard input held no password{which}"
            )));
        }
        passwords.push(password);
    }
    Ok(passwords)
}

/// The address and options of a registry given by `flag`, its CA file and credentials
/// (explicit ones, else the docker configuration's, else none).
pub(crate) fn registry_settings(
    flag: &str,
    registry: &str,
    plain_http: bool,
    ca_file: Option<&Path>,
    explicit: Option<(String, String)>,
) -> Result<(RegistryAddress, RegistryOptions), CommandError> {
    let address: RegistryAddress = registry
        .parse()
        .map_err(|e| CommandError::Failed(format!("{flag} {registry}: {e}")))?;
    let ca_pem = match ca_file {
        Some(path) => {
            Some(std::fs::read_to_string(path).map_err(|e| CommandError::io(path, "read", e))?)
        }
        None => None,
    };
    let docker_config = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")));
    let credentials = resolve_credentials(explicit, &address.host, docker_config.as_deref())
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let options = RegistryOptions {
        plain_http,
        ca_pem,
        credentials,
        ..RegistryOptions::default()
    };
    Ok((address, options))
}

pub(crate) fn pack_cache() -> Result<PackCache, CommandError> {
    PackCache::open(&PackCache::default_root()).map_err(|e| CommandError::Failed(e.to_string()))
}

/// `NAME:VERSION`.
pub fn parse_reference(reference: &str) -> Result<(String, String), CommandError> {
    match reference.split_once(':') {
        Some((name, version)) if !name.is_empty() && !version.is_empty() => {
            Ok((name.into(), version.into()))
        }
        _ => Err(CommandError::Failed(format!(
            "{reference:?} is not a pack reference; expected NAME:VERSION, e.g. istio:1.6.2"
        ))),
    }
}

pub fn push(dir: &Path, force: bool, args: &RegistryArgs) -> Result<ExitStatus, CommandError> {
    let input = dir.display().to_string();
    let (pack, findings) = Pack::load(dir);
    print_findings(&input, &findings);
    let Some(pack) = pack else {
        return Ok(ExitStatus::Invalid);
    };
    let client = client(args)?;
    let pushed = runtime()?
        .block_on(client.push(&pack, force))
        .map_err(|e| CommandError::Failed(format!("{}: {e}", pack.reference())))?;
    let verb = if pushed.replaced {
        "replaced"
    } else {
        "pushed"
    };
    println!("{verb} {}", pushed.descriptor.reference);
    println!("digest: {}", pushed.descriptor.manifest_digest);
    // The pack's identity (what a revision pins), then the compressed layer that travels.
    println!(
        "pack digest: {}",
        pushed
            .descriptor
            .content_digest
            .as_deref()
            .unwrap_or_default()
    );
    println!("layer digest: {}", pushed.descriptor.layer_digest);
    Ok(ExitStatus::Success)
}

pub fn pull(
    reference: &str,
    output: &Path,
    args: &RegistryArgs,
) -> Result<ExitStatus, CommandError> {
    let (name, version) = parse_reference(reference)?;
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| CommandError::io(parent, "create", e))?;
    }
    let client = client(args)?;
    let cache = pack_cache()?;
    let pulled = runtime()?
        .block_on(client.pull(&name, &version, output, Some(&cache)))
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    println!(
        "pulled {} into {}",
        pulled.descriptor.reference,
        pulled.dir.display()
    );
    println!("pack digest: {}", pulled.content_digest);
    println!("layer digest: {}", pulled.descriptor.layer_digest);
    Ok(ExitStatus::Success)
}

pub fn list(args: &RegistryArgs, output: OutputFormat) -> Result<ExitStatus, CommandError> {
    let client = client(args)?;
    let packs = runtime()?
        .block_on(client.list())
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    match output.document() {
        Some(format) => print_document(&packs, format)?,
        None if packs.is_empty() => println!("no packs under {}", args.registry()?),
        None => {
            let width = packs.keys().map(String::len).max().unwrap_or(0);
            for (name, versions) in &packs {
                println!("{name:width$}  {}", versions.join(", "));
            }
        }
    }
    Ok(ExitStatus::Success)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RemoteInspection<'a> {
    reference: &'a str,
    digest: &'a str,
    /// The content digest, computed from the layer's bytes: what a revision pins.
    pack_digest: &'a str,
    /// The compressed layer's digest, as the registry stores it.
    layer_digest: &'a str,
    size: u64,
    pack: &'a strata_shared::pack::manifest::PackManifest,
}

pub fn inspect(
    reference: &str,
    args: &RegistryArgs,
    output: OutputFormat,
) -> Result<ExitStatus, CommandError> {
    let (name, version) = parse_reference(reference)?;
    let client = client(args)?;
    let cache = pack_cache()?;
    let (descriptor, manifest) = runtime()?
        .block_on(client.inspect(&name, &version, Some(&cache)))
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    // inspect unpacks the layer, so the content digest is known.
    let pack_digest = descriptor.content_digest.as_deref().unwrap_or_default();
    match output.document() {
        Some(format) => print_document(
            &RemoteInspection {
                reference: &descriptor.reference,
                digest: &descriptor.manifest_digest,
                pack_digest,
                layer_digest: &descriptor.layer_digest,
                size: descriptor.layer_size,
                pack: &manifest,
            },
            format,
        )?,
        None => {
            println!("reference:    {}", descriptor.reference);
            println!("digest:       {}", descriptor.manifest_digest);
            println!("pack digest:  {pack_digest}");
            println!("layer digest: {}", descriptor.layer_digest);
            println!("size:         {} bytes", descriptor.layer_size);
            println!("pack.json:");
            let text = serde_json::to_string_pretty(&manifest)
                .map_err(|e| CommandError::Failed(format!("cannot write JSON: {e}")))?;
            for line in text.lines() {
                println!("  {line}");
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// Fetches the packs the given layers name, for profile validation and rendering. Their
/// unpacked folders are only needed while they are validated.
pub fn fetch_packs(
    args: &RegistryArgs,
    wanted: &[(String, String)],
) -> Result<strata_shared::registry::resolver::RegistryPacks, CommandError> {
    let client = client(args)?;
    let cache = pack_cache()?;
    let work = tempfile::tempdir()
        .map_err(|e| CommandError::io(Path::new("a temporary folder"), "create", e))?;
    let packs = runtime()?.block_on(strata_shared::registry::resolver::RegistryPacks::fetch(
        &client,
        Some(&cache),
        wanted,
        work.path(),
    ));
    Ok(packs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn passwords_come_one_a_line_when_there_are_several() {
        assert_eq!(
            split_passwords("only one: with spaces \n", &["--password-stdin"]).unwrap(),
            ["only one: with spaces "]
        );
        assert_eq!(
            split_passwords(
                "source\r\ntarget\n",
                &["--password-stdin", "--to-password-stdin"]
            )
            .unwrap(),
            ["source", "target"]
        );
        let missing = split_passwords("source\n", &["--password-stdin", "--to-password-stdin"])
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("--to-password-stdin: standard input held no password on line 2"),
            "{missing}"
        );
        let empty = split_passwords("\n", &["--password-stdin"])
            .unwrap_err()
            .to_string();
        assert_eq!(empty, "--password-stdin: standard input held no password");
    }
}
