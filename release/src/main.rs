//! `strata-image`: the `strata` and `strata-agent` container images, assembled by hand from
//! built binaries (no container daemon, no base image) and pushed to a registry.
//!
//! - `build` writes one OCI image layout per image under `--layout-dir`;
//! - `push` pushes both layouts as `REGISTRY/PREFIX/<image>:<tag>` and prints each
//!   reference with its digest.
//!
//! Results go to stdout, progress to stderr. Exit status 1 on any error, 2 on usage errors.

mod elf;
mod image;
mod layout;
mod ldd;
mod push;
mod rootfs;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::elf::Arch;
use crate::image::{Image, ImageError, Inputs};
use crate::layout::LayoutError;
use crate::push::{Destination, PushError, Pusher, error_chain, human_size};

/// The environment variable holding the registry password (never a flag: flags show in
/// `ps` and shell history).
const PASSWORD_ENV: &str = "STRATA_IMAGE_PASSWORD";

#[derive(Parser)]
#[command(
    name = "strata-image",
    version,
    about = "Build the strata and strata-agent container images from built binaries, and push them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write both images as OCI image layouts: <layout-dir>/strata and
    /// <layout-dir>/strata-agent.
    Build(BuildArgs),
    /// Push the layouts written by `build` to a registry.
    Push(PushArgs),
}

#[derive(Args)]
struct BuildArgs {
    /// The folder holding the `strata` and `strata-agent` binaries (target/release).
    #[arg(long, value_name = "DIR")]
    binaries: PathBuf,
    /// The helm executable for the agent's image.
    #[arg(long, value_name = "PATH")]
    helm: PathBuf,
    /// The images' version (label and layout reference).
    #[arg(long = "version", value_name = "VERSION")]
    image_version: String,
    /// The source revision (git commit), for the revision label.
    #[arg(long, value_name = "GITSHA")]
    revision: Option<String>,
    /// Where the source lives, for the source label.
    #[arg(long, value_name = "URL")]
    source: String,
    /// The images' creation time, RFC 3339 (default: $SOURCE_DATE_EPOCH, else now). It is
    /// also every file's time stamp, so that the same inputs give the same digests.
    #[arg(long, value_name = "RFC3339")]
    created: Option<String>,
    /// The CA bundle copied into the images.
    #[arg(long, value_name = "PEM", default_value = image::CA_BUNDLE)]
    ca_bundle: PathBuf,
    /// Where to write the layouts (replacing earlier ones).
    #[arg(long, value_name = "DIR")]
    layout_dir: PathBuf,
}

#[derive(Args)]
struct PushArgs {
    /// The folder `build` wrote the layouts into.
    #[arg(long, value_name = "DIR")]
    layout_dir: PathBuf,
    /// Registry and path prefix: images go to REGISTRY/PREFIX/strata:TAG and
    /// REGISTRY/PREFIX/strata-agent:TAG.
    #[arg(long, value_name = "REGISTRY/PREFIX")]
    to: String,
    #[arg(long, value_name = "TAG")]
    tag: String,
    /// A CA (PEM) to trust besides the system's, for the registry's certificate.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Plain HTTP instead of HTTPS.
    #[arg(long)]
    plain_http: bool,
    /// The registry user; the password is read from $STRATA_IMAGE_PASSWORD.
    #[arg(long, value_name = "USER")]
    username: Option<String>,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(
        "images are built for the build machine's architecture, and {arch} is not one this \
         tool knows (x86_64 or aarch64)"
    )]
    UnsupportedMachine { arch: &'static str },
    #[error("--version {version:?} is not usable: {reason}")]
    BadVersion {
        version: String,
        reason: &'static str,
    },
    #[error("{origin} {value:?} is not a usable creation time: {reason}")]
    BadTime {
        origin: &'static str,
        value: String,
        reason: String,
    },
    #[error("--username {user} needs the password in ${PASSWORD_ENV}")]
    NoPassword { user: String },
    #[error("cannot start the async runtime for pushing: {source}")]
    Runtime {
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("cannot push the image layout {layout} (written by `strata-image build`): {source}")]
    Layout {
        layout: PathBuf,
        #[source]
        source: LayoutError,
    },
    #[error(transparent)]
    Push(#[from] PushError),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => build(args),
        Command::Push(args) => push(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("strata-image: error: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

fn build(args: BuildArgs) -> Result<(), CliError> {
    let arch = Arch::of_build_machine().ok_or(CliError::UnsupportedMachine {
        arch: std::env::consts::ARCH,
    })?;
    if args.image_version.is_empty() {
        return Err(CliError::BadVersion {
            version: args.image_version,
            reason: "it is empty",
        });
    }
    if args.image_version.contains(char::is_whitespace) {
        return Err(CliError::BadVersion {
            version: args.image_version,
            reason: "it contains white space",
        });
    }
    let created = creation_time(args.created.as_deref())?;
    let ca_bundle = if args.ca_bundle.is_file() {
        Some(args.ca_bundle.clone())
    } else {
        eprintln!(
            "note: no CA bundle at {}: the images carry none and set no SSL_CERT_FILE \
             (mount one to talk to servers signed by public CAs)",
            args.ca_bundle.display()
        );
        None
    };
    let inputs = Inputs {
        binaries: args.binaries,
        helm: args.helm,
        version: args.image_version,
        revision: args.revision.filter(|r| !r.is_empty()),
        source: args.source,
        created,
        ca_bundle,
    };
    eprintln!(
        "building {} for linux/{} (created {})",
        inputs.version,
        arch.oci_name(),
        inputs.created
    );
    // Every input of both images is checked before the slow part (compressing).
    let mut trees = Vec::new();
    for image in Image::ALL {
        trees.push((image, image::rootfs(image, &inputs, arch)?));
    }
    for (image, tree) in &trees {
        eprintln!(
            "{}: writing {} entries into {}",
            image.name(),
            tree.entries().len(),
            args.layout_dir.join(image.name()).display()
        );
        let written = image::write(*image, tree, &inputs, arch, &args.layout_dir)?;
        eprintln!(
            "{}: layer {} ({} uncompressed), manifest {}",
            image.name(),
            human_size(written.layer.size),
            human_size(written.uncompressed_size),
            written.manifest.digest
        );
        println!(
            "{} {} {}",
            image.name(),
            written.manifest.digest,
            written.layout.display()
        );
    }
    Ok(())
}

/// `--created`, else `$SOURCE_DATE_EPOCH`, else now; in whole seconds, not before 1970.
fn creation_time(created: Option<&str>) -> Result<jiff::Timestamp, CliError> {
    let (origin, value, parsed) = match (created, std::env::var("SOURCE_DATE_EPOCH")) {
        (Some(text), _) => (
            "--created",
            text.to_owned(),
            text.parse::<jiff::Timestamp>().map_err(|e| e.to_string()),
        ),
        (None, Ok(epoch)) if !epoch.is_empty() => (
            "SOURCE_DATE_EPOCH",
            epoch.clone(),
            epoch
                .trim()
                .parse::<i64>()
                .map_err(|e| format!("not a number of seconds: {e}"))
                .and_then(|s| jiff::Timestamp::from_second(s).map_err(|e| e.to_string())),
        ),
        _ => {
            eprintln!(
                "note: neither --created nor SOURCE_DATE_EPOCH: the images are stamped now \
                 and are not reproducible"
            );
            ("the clock", String::new(), Ok(jiff::Timestamp::now()))
        }
    };
    let bad = |reason: String| CliError::BadTime {
        origin,
        value: value.clone(),
        reason,
    };
    let time = parsed.map_err(bad)?;
    if time.as_second() < 0 {
        return Err(bad("it is before 1970".into()));
    }
    jiff::Timestamp::from_second(time.as_second()).map_err(|e| bad(e.to_string()))
}

fn push(args: PushArgs) -> Result<(), CliError> {
    let password = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty());
    if let (Some(user), None) = (&args.username, &password) {
        return Err(CliError::NoPassword { user: user.clone() });
    }
    // Both layouts are read (and every blob checked) before anything is pushed.
    let mut stored = Vec::new();
    for image in Image::ALL {
        let layout = args.layout_dir.join(image.name());
        let read = layout::read_image(&layout).map_err(|source| CliError::Layout {
            layout: layout.clone(),
            source,
        })?;
        stored.push((image, read));
    }
    let pusher = Pusher::new(Destination {
        to: args.to.trim_end_matches('/').to_owned(),
        tag: args.tag,
        ca_file: args.ca_file,
        plain_http: args.plain_http,
        username: args.username,
        password,
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Runtime { source })?;
    runtime.block_on(async {
        for (image, read) in &stored {
            let reference = pusher.reference_text(image.name());
            eprintln!("{}: pushing {reference}", image.name());
            let digest = pusher.push(image.name(), read).await?;
            println!("{reference}@{digest}");
        }
        Ok::<(), CliError>(())
    })
}
