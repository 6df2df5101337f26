//! `strata pack mirror`: copying the packs of cluster profiles, and the images their packs
//! list in `pack.content.images`, from one registry to another by digest, for sites that
//! cannot reach the registries the packs and images come from.
//!
//! 1. The profiles' packs are resolved and validated in the source registry by the same
//!    resolver `strata profile validate --registry` uses, each pinned to the manifest
//!    digest its tag names then ([`crate::registry::resolver::RegistryPacks`]).
//! 2. A [plan](plan::plan) lists each pack once (same repository below the target's base,
//!    same tag) and each listed image once, under its [mirror path](image_path).
//! 3. Each is [copied](copy) by digest: manifests as the bytes served, blobs streamed and
//!    verified, whatever the target holds skipped, so that a rerun after an interruption
//!    resumes where it stopped.
//!
//! Everything is copied one object at a time: a failure names the pack or image it hit
//! and says what had been mirrored before it.

pub mod copy;
pub mod image_path;
pub mod manifest_refs;
pub mod plan;
pub mod progress;
mod retry;
mod verified_stream;

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::{Instrument, info, info_span};

use crate::registry::address::RegistryAddress;
use crate::registry::cache::PackCache;
use crate::registry::client::{PackRegistryClient, RegistryError, RegistryOptions};
use crate::registry::credentials::{Credentials, CredentialsError, resolve_credentials};
use crate::registry::resolver::RegistryPacks;
use copy::{Copier, CopyError, Route, whole_reference};
use image_path::{DOCKER_HUB, ImageName};
use plan::{ImageOrigin, MirrorPlan, PlanError, ResolvedPackInput};
use progress::{MirrorEvent, MirrorReport, MirroredObject, ObjectKind, Tally};

/// Where the images the packs list are read from.
pub enum ImageSource {
    /// Each from the registry its reference names, over HTTPS (the system's roots and
    /// `ca_pem`), with the credentials the docker configuration in `docker_config_dir`
    /// holds for that registry, else anonymously.
    OwnRegistries {
        ca_pem: Option<String>,
        docker_config_dir: Option<PathBuf>,
    },
    /// All from one registry that holds them under their mirror paths below its base.
    Registry(Box<PackRegistryClient>),
}

/// A mirror to run.
pub struct MirrorRequest<'a> {
    pub source: &'a PackRegistryClient,
    pub target: &'a PackRegistryClient,
    pub images: &'a ImageSource,
    /// `(name, version)` of every layer of the profiles, in their order (repeats are
    /// copied once).
    pub packs: &'a [(String, String)],
    /// The pack cache resolving fills and reads.
    pub cache: Option<&'a PackCache>,
    /// Where resolved packs are unpacked to be validated.
    pub work_dir: &'a Path,
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(
        "nothing was copied: {} of the profiles' packs cannot be resolved in {registry}:\n  {}",
        problems.len(),
        problems.join("\n  ")
    )]
    Packs {
        registry: String,
        problems: Vec<String>,
    },
    #[error("nothing was copied: {source}")]
    Plan {
        #[source]
        source: Box<PlanError>,
    },
    #[error(
        "nothing was copied: cannot find credentials for the image registry {host} (image \
         {image}): {source}"
    )]
    ImageCredentials {
        host: String,
        image: String,
        #[source]
        source: Box<CredentialsError>,
    },
    #[error(
        "nothing was copied: cannot set up a client for the image registry {host} (image \
         {image}): {source}"
    )]
    ImageRegistry {
        host: String,
        image: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error(
        "{source}\nthe mirror to {target} stopped at {kind} {name} ({index} of {total}); {done} \
         of the {total} packs and images were mirrored completely before it, and in all {}. \
         What reached the target stays there: running the same command again resumes, \
         skipping every manifest and blob the target holds.",
        so_far.summary()
    )]
    Interrupted {
        target: String,
        kind: ObjectKind,
        name: String,
        index: usize,
        total: usize,
        done: usize,
        so_far: Box<Tally>,
        #[source]
        source: Box<CopyError>,
    },
}

/// Runs `request`, telling `observer` what happens as it happens.
pub async fn mirror(
    request: MirrorRequest<'_>,
    observer: &(dyn Fn(&MirrorEvent) + Send + Sync),
) -> Result<MirrorReport, MirrorError> {
    let span = info_span!(
        "registry.mirror",
        source = %request.source.address(),
        target = %request.target.address(),
    );
    mirror_inner(request, observer).instrument(span).await
}

async fn mirror_inner(
    request: MirrorRequest<'_>,
    observer: &(dyn Fn(&MirrorEvent) + Send + Sync),
) -> Result<MirrorReport, MirrorError> {
    let started = Instant::now();
    let plan = resolve_and_plan(&request).await?;
    let mut image_clients = ImageClients::new(request.images);
    // Every image registry's client (and credentials) before anything is copied, so that
    // a registry that cannot be set up stops the mirror before it starts.
    for image in &plan.images {
        image_clients.client(&image.source_host, &image.image)?;
    }
    let total = plan.packs.len() + plan.images.len();
    let mut report = MirrorReport {
        source: request.source.address().to_string(),
        target: request.target.address().to_string(),
        objects: Vec::with_capacity(total),
        total: Tally::default(),
        seconds: 0.0,
    };
    let target_host = request.target.host().to_owned();
    let mut next = 0;
    let mut jobs: Vec<Job<'_>> = plan
        .packs
        .iter()
        .map(|pack| Job {
            kind: ObjectKind::Pack,
            name: format!("{}:{}", pack.name, pack.version),
            source_host: request.source.host().to_owned(),
            source_repository: pack.source_repository.clone(),
            source_reference: pack.manifest_digest.clone(),
            target_repository: pack.target_repository.clone(),
            target_reference: pack.tag.clone(),
            // The tag the pack was resolved under, for messages.
            source_shown: whole_reference(
                request.source.host(),
                &pack.source_repository,
                &pack.tag,
            ),
            listed_by: Vec::new(),
            image: None,
        })
        .collect();
    jobs.extend(plan.images.iter().map(|image| Job {
        kind: ObjectKind::Image,
        name: image.listed_as.clone(),
        source_host: image.source_host.clone(),
        source_repository: image.source_repository.clone(),
        source_reference: image.source_reference().to_owned(),
        target_repository: image.target_repository.clone(),
        target_reference: image.target_reference().to_owned(),
        source_shown: whole_reference(
            &image.source_host,
            &image.source_repository,
            image.source_reference(),
        ),
        listed_by: image.listed_by.clone(),
        image: Some(&image.image),
    }));
    for job in &jobs {
        next += 1;
        let target_shown =
            whole_reference(&target_host, &job.target_repository, &job.target_reference);
        observer(&MirrorEvent::ObjectStarted {
            index: next,
            total,
            kind: job.kind,
            name: job.name.clone(),
            source: job.source_shown.clone(),
            target: target_shown.clone(),
        });
        let source = match job.image {
            None => request.source,
            Some(image) => image_clients.client(&job.source_host, image)?,
        };
        let route = Route {
            object: format!("{} {}", job.kind, job.name),
            source,
            source_repository: job.source_repository.clone(),
            target: request.target,
            target_repository: job.target_repository.clone(),
        };
        let mut copier = Copier {
            observer,
            tally: Tally::default(),
        };
        let copied = copier
            .copy(&route, &job.source_reference, &job.target_reference)
            .await;
        report.total.add(&copier.tally);
        let digest = match copied {
            Ok(digest) => digest,
            Err(source) => {
                return Err(MirrorError::Interrupted {
                    target: request.target.address().to_string(),
                    kind: job.kind,
                    name: job.name.clone(),
                    index: next,
                    total,
                    done: next - 1,
                    so_far: Box::new(report.total),
                    source: Box::new(source),
                });
            }
        };
        info!(object = %route.object, %digest, tally = ?copier.tally, "mirrored");
        observer(&MirrorEvent::ObjectDone {
            name: job.name.clone(),
            digest: digest.clone(),
            tally: copier.tally,
        });
        report.objects.push(MirroredObject {
            kind: job.kind,
            name: job.name.clone(),
            source: job.source_shown.clone(),
            target: target_shown,
            digest,
            listed_by: job.listed_by.clone(),
            tally: copier.tally,
        });
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// One pack or image to copy.
struct Job<'p> {
    kind: ObjectKind,
    name: String,
    source_host: String,
    source_repository: String,
    /// A pack: the digest it was resolved to; an image: its digest if pinned, else its tag.
    source_reference: String,
    target_repository: String,
    target_reference: String,
    source_shown: String,
    listed_by: Vec<String>,
    image: Option<&'p ImageName>,
}

/// Resolves the packs in the source (every failure listed) and plans the copy.
async fn resolve_and_plan(request: &MirrorRequest<'_>) -> Result<MirrorPlan, MirrorError> {
    let fetched = RegistryPacks::fetch(
        request.source,
        request.cache,
        request.packs,
        request.work_dir,
    )
    .await;
    let mut resolved = Vec::new();
    let mut problems = Vec::new();
    for (name, version) in request.packs {
        match fetched.pinned(name, version) {
            Ok(pinned) => resolved.push(ResolvedPackInput {
                name: name.clone(),
                version: version.clone(),
                manifest_digest: pinned.descriptor.manifest_digest.clone(),
                images: pinned.images.clone(),
            }),
            Err(error) => {
                let problem = format!("{name}:{version}: {error}");
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(MirrorError::Packs {
            registry: request.source.address().to_string(),
            problems,
        });
    }
    let origin = match request.images {
        ImageSource::OwnRegistries { .. } => ImageOrigin::OwnRegistries,
        ImageSource::Registry(client) => ImageOrigin::Registry(client.address().clone()),
    };
    plan::plan(
        &resolved,
        request.source.address(),
        request.target.address(),
        &origin,
    )
    .map_err(|source| MirrorError::Plan {
        source: Box::new(source),
    })
}

/// A client per image registry, made when first needed.
struct ImageClients<'a> {
    source: &'a ImageSource,
    by_host: BTreeMap<String, PackRegistryClient>,
}

impl<'a> ImageClients<'a> {
    fn new(source: &'a ImageSource) -> Self {
        ImageClients {
            source,
            by_host: BTreeMap::new(),
        }
    }

    fn client(
        &mut self,
        host: &str,
        image: &ImageName,
    ) -> Result<&PackRegistryClient, MirrorError> {
        let (ca_pem, docker_config_dir) = match self.source {
            ImageSource::Registry(client) => return Ok(client),
            ImageSource::OwnRegistries {
                ca_pem,
                docker_config_dir,
            } => (ca_pem, docker_config_dir),
        };
        let vacant = match self.by_host.entry(host.to_owned()) {
            Entry::Occupied(known) => return Ok(known.into_mut()),
            Entry::Vacant(vacant) => vacant,
        };
        let credentials =
            image_credentials(image, docker_config_dir.as_deref()).map_err(|source| {
                MirrorError::ImageCredentials {
                    host: host.to_owned(),
                    image: image.canonical(),
                    source: Box::new(source),
                }
            })?;
        let address = RegistryAddress {
            host: host.to_owned(),
            base: String::new(),
        };
        let options = RegistryOptions {
            ca_pem: ca_pem.clone(),
            credentials,
            ..RegistryOptions::default()
        };
        let client = PackRegistryClient::new(address, options).map_err(|source| {
            MirrorError::ImageRegistry {
                host: host.to_owned(),
                image: image.canonical(),
                source: Box::new(source),
            }
        })?;
        Ok(vacant.insert(client))
    }
}

/// The docker configuration's credentials for an image's registry: under its API host, its
/// name in references, or (Docker Hub) the legacy index name docker logs in to.
fn image_credentials(
    image: &ImageName,
    docker_config_dir: Option<&Path>,
) -> Result<Credentials, CredentialsError> {
    let mut names = vec![image.api_host(), image.host.as_str()];
    if image.host == DOCKER_HUB {
        names.push("index.docker.io");
    }
    for name in names {
        let credentials = resolve_credentials(None, name, docker_config_dir)?;
        if credentials != Credentials::Anonymous {
            return Ok(credentials);
        }
    }
    Ok(Credentials::Anonymous)
}
