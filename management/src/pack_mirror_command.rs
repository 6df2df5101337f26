//! `strata pack mirror`: copies the packs of cluster profiles, and the images their packs
//! list, from one registry to another by digest (docs/edge.md, "Air-gapped packs").
//!
//! The source registry takes the flags every registry command takes (`--registry`,
//! `--ca-file`, `--username`, `--password-stdin`, `--plain-http`); the target the same
//! flags with `--to` in front. With both `--password-stdin` and `--to-password-stdin`,
//! standard input holds two lines: the source's password, then the target's.

use std::path::{Path, PathBuf};

use strata_shared::profile::ClusterProfile;
use strata_shared::registry::client::PackRegistryClient;
use strata_shared::registry::credentials::docker_config_dir_from_env;
use strata_shared::registry::mirror::progress::{MirrorEvent, MirrorReport, ObjectKind};
use strata_shared::registry::mirror::{ImageSource, MirrorRequest, mirror};

use crate::documents::read_objects;
use crate::registry_commands::{
    RegistryArgs, pack_cache, read_passwords, registry_settings, runtime,
};
use crate::report::{OutputFormat, print_document, print_findings};
use crate::{CommandError, ExitStatus};

const API_VERSION: &str = "strata.dev/v1alpha1";

/// The registry a mirror writes to: the flags of the source, with `--to` in front.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// The registry to copy to, and its base path: HOST[:PORT]/BASE (packs go under
    /// BASE/spectro-packs/archive/<name>, images under BASE/<their host>/<their path>).
    #[arg(long = "to", value_name = "HOST[:PORT]/BASE")]
    pub to: String,
    /// Talk plain HTTP to the target (never done unless asked).
    #[arg(long = "to-plain-http")]
    pub to_plain_http: bool,
    /// A PEM file with the certificate authority of the target.
    #[arg(long = "to-ca-file", value_name = "FILE")]
    pub to_ca_file: Option<PathBuf>,
    /// A user name at the target; its password is read from standard input
    /// (--to-password-stdin).
    #[arg(
        long = "to-username",
        value_name = "USERNAME",
        requires = "to_password_stdin"
    )]
    pub to_username: Option<String>,
    /// Read the target's password from standard input (after the source's, when
    /// --password-stdin is given too: one password a line).
    #[arg(long = "to-password-stdin", requires = "to_username")]
    pub to_password_stdin: bool,
}

/// `strata pack mirror`.
#[derive(Debug, Clone, clap::Args)]
#[command(group = clap::ArgGroup::new("registry-required").arg("registry").required(true))]
pub struct MirrorArgs {
    /// ClusterProfile files: the pack of every layer is mirrored, and every image those
    /// packs list in pack.content.images.
    #[arg(required_unless_present = "packs", value_name = "PROFILE")]
    pub profiles: Vec<PathBuf>,
    /// A pack no profile names, mirrored with its images all the same: the provider packs
    /// of docs/providers.md (`capi-provider-cluster-api:1.10.4`). Repeatable.
    #[arg(long = "pack", value_name = "NAME:VERSION")]
    pub packs: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Read the images from this registry, which holds them under the same paths the
    /// mirror gives them (BASE/<their host>/<their path>), instead of from the registries
    /// their references name. Same TLS flags as --registry, and its credentials when it is
    /// the same host; else the docker configuration's.
    #[arg(long, value_name = "HOST[:PORT]/BASE")]
    pub images_from: Option<String>,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// The `(name, version)` of every layer of the profiles in `files`, in order. A file that
/// cannot be read or holds no valid profile is an error naming it; nothing is copied then.
fn profile_packs(files: &[PathBuf]) -> Result<Vec<(String, String)>, CommandError> {
    let mut wanted = Vec::new();
    let mut broken = Vec::new();
    for file in files {
        let input = file.display().to_string();
        let (documents, findings) =
            read_objects::<ClusterProfile>(file, "ClusterProfile", API_VERSION);
        print_findings(&input, &findings);
        if findings.has_errors() {
            broken.push(input);
            continue;
        }
        if documents.is_empty() {
            broken.push(format!("{input} (it holds no ClusterProfile)"));
            continue;
        }
        for document in documents {
            wanted.extend(
                document
                    .object
                    .spec
                    .layers
                    .iter()
                    .map(|layer| (layer.name.clone(), layer.version.clone())),
            );
        }
    }
    if !broken.is_empty() {
        return Err(CommandError::Failed(format!(
            "nothing was mirrored: cannot use the profile file(s) {}",
            broken.join(", ")
        )));
    }
    if wanted.is_empty() {
        return Err(CommandError::Failed(
            "nothing to mirror: the profiles have no layers".into(),
        ));
    }
    Ok(wanted)
}

/// The source, target and image clients the flags name; passwords read once.
fn clients(
    args: &MirrorArgs,
) -> Result<(PackRegistryClient, PackRegistryClient, ImageSource), CommandError> {
    let source_registry = args.registry.registry()?;
    let mut flags = Vec::new();
    if args.registry.password_stdin {
        flags.push("--password-stdin");
    }
    if args.target.to_password_stdin {
        flags.push("--to-password-stdin");
    }
    let mut passwords = if flags.is_empty() {
        Vec::new()
    } else {
        read_passwords(&flags)?
    };
    let source_password = args.registry.password_stdin.then(|| passwords.remove(0));
    let target_password = args.target.to_password_stdin.then(|| passwords.remove(0));
    let source_explicit = args.registry.username.clone().zip(source_password);
    let target_explicit = args.target.to_username.clone().zip(target_password);
    let (source_address, source_options) = registry_settings(
        "--registry",
        source_registry,
        args.registry.plain_http,
        args.registry.ca_file.as_deref(),
        source_explicit.clone(),
    )?;
    let (target_address, target_options) = registry_settings(
        "--to",
        &args.target.to,
        args.target.to_plain_http,
        args.target.to_ca_file.as_deref(),
        target_explicit,
    )?;
    let images = match &args.images_from {
        Some(registry) => {
            let (address, mut options) = registry_settings(
                "--images-from",
                registry,
                args.registry.plain_http,
                args.registry.ca_file.as_deref(),
                None,
            )?;
            if address.host == source_address.host {
                options.credentials = source_options.credentials.clone();
            }
            ImageSource::Registry(Box::new(
                PackRegistryClient::new(address, options)
                    .map_err(|e| CommandError::Failed(format!("--images-from {registry}: {e}")))?,
            ))
        }
        None => ImageSource::OwnRegistries {
            ca_pem: source_options.ca_pem.clone(),
            docker_config_dir: docker_config_dir_from_env(),
        },
    };
    let source = PackRegistryClient::new(source_address, source_options)
        .map_err(|e| CommandError::Failed(format!("--registry {source_registry}: {e}")))?;
    let target = PackRegistryClient::new(target_address, target_options)
        .map_err(|e| CommandError::Failed(format!("--to {}: {e}", args.target.to)))?;
    Ok((source, target, images))
}

/// One line on stderr per step: which pack or image, and each blob and manifest copied or
/// found at the target already.
fn print_progress(event: &MirrorEvent) {
    let line = match event {
        MirrorEvent::ObjectStarted {
            index,
            total,
            kind,
            name,
            source,
            target,
        } => format!("[{index}/{total}] {kind} {name}: {source} -> {target}"),
        MirrorEvent::BlobCopied { digest, bytes } => {
            format!("  blob {digest}: copied {bytes} bytes")
        }
        MirrorEvent::BlobSkipped { digest, bytes } => {
            format!("  blob {digest}: already there ({bytes} bytes)")
        }
        MirrorEvent::ManifestCopied { digest, reference } if reference == digest => {
            format!("  manifest {digest}: copied")
        }
        MirrorEvent::ManifestCopied { digest, reference } => {
            format!("  manifest {digest}: copied as :{reference}")
        }
        MirrorEvent::ManifestSkipped { digest } => {
            format!("  manifest {digest}: already there")
        }
        MirrorEvent::ObjectDone { tally, .. } => format!("  done: {}", tally.summary()),
    };
    eprintln!("{line}");
}

fn print_summary(report: &MirrorReport) {
    let count = |kind: ObjectKind| report.objects.iter().filter(|o| o.kind == kind).count();
    println!(
        "mirrored {} packs and {} images from {} to {} in {:.1} s",
        count(ObjectKind::Pack),
        count(ObjectKind::Image),
        report.source,
        report.target,
        report.seconds
    );
    for object in &report.objects {
        println!(
            "{} {} -> {}@{}",
            object.kind, object.name, object.target, object.digest
        );
    }
    println!("{}", report.total.summary());
}

/// The `(name, version)` of each `--pack NAME:VERSION`.
fn named_packs(flags: &[String]) -> Result<Vec<(String, String)>, CommandError> {
    flags
        .iter()
        .map(|flag| {
            flag.split_once(':')
                .filter(|(name, version)| !name.is_empty() && !version.is_empty())
                .map(|(name, version)| (name.to_string(), version.to_string()))
                .ok_or_else(|| {
                    CommandError::Failed(format!(
                        "--pack {flag:?}: expected NAME:VERSION, such as capi-provider-cluster-api:1.10.4"
                    ))
                })
        })
        .collect()
}

pub fn mirror_command(args: &MirrorArgs) -> Result<ExitStatus, CommandError> {
    let named = named_packs(&args.packs)?;
    let mut packs = if args.profiles.is_empty() {
        Vec::new()
    } else {
        profile_packs(&args.profiles)?
    };
    packs.extend(named);
    let (source, target, images) = clients(args)?;
    let cache = pack_cache()?;
    let work = tempfile::tempdir()
        .map_err(|e| CommandError::io(Path::new("a temporary folder"), "create", e))?;
    let request = MirrorRequest {
        source: &source,
        target: &target,
        images: &images,
        packs: &packs,
        cache: Some(&cache),
        work_dir: work.path(),
    };
    let report = runtime()?
        .block_on(mirror(request, &print_progress))
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    match args.output.document() {
        Some(format) => print_document(&report, format)?,
        None => print_summary(&report),
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn named_packs_are_name_and_version_and_a_bad_one_is_refused() {
        let flags = ["capi-provider-cluster-api:1.10.4".to_string()];
        assert_eq!(
            named_packs(&flags).unwrap(),
            [(
                "capi-provider-cluster-api".to_string(),
                "1.10.4".to_string()
            )]
        );
        for bad in ["capi-provider-cluster-api", ":1.0", "x:"] {
            let error = named_packs(&[bad.to_string()]).unwrap_err().to_string();
            assert!(
                error.contains(&format!("--pack {bad:?}: expected NAME:VERSION")),
                "{error}"
            );
        }
    }

    #[test]
    fn packs_come_from_every_layer_and_a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples/profiles");
        let packs = profile_packs(&[
            samples.join("sim-infra.yaml"),
            samples.join("sim-addons.yaml"),
        ])
        .unwrap();
        let names: Vec<String> = packs.iter().map(|(n, v)| format!("{n}:{v}")).collect();
        assert_eq!(
            names,
            [
                "sim-os:1.0.0",
                "kubernetes:1.20.2",
                "cni-calico:3.19.0",
                "csi-hostpath:1.7.3",
                "hello-chart:0.3.0",
                "hello-manifests:1.0.0"
            ]
        );

        let missing = dir.path().join("missing.yaml");
        let error = profile_packs(&[samples.join("sim-addons.yaml"), missing.clone()])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("nothing was mirrored")
                && error.contains(&missing.display().to_string()),
            "{error}"
        );
        let empty = dir.path().join("empty.yaml");
        std::fs::write(&empty, "").unwrap();
        let error = profile_packs(std::slice::from_ref(&empty))
            .unwrap_err()
            .to_string();
        assert!(error.contains(&empty.display().to_string()), "{error}");
    }
}
