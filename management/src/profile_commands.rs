//! `strata profile validate | render`.

use std::path::{Path, PathBuf};

use strata_shared::catalog::{LocalPackCatalog, PackSource};
use strata_shared::cluster::WorkloadCluster;
use strata_shared::finding::Findings;
use strata_shared::profile::rules::validate_profile;
use strata_shared::profile::{ClusterProfile, compose};

use crate::documents::read_objects;
use crate::registry_commands::{RegistryArgs, fetch_packs};
use crate::report::{InputReport, OutputFormat, print_document, print_findings};
use crate::{CommandError, ExitStatus};

/// Where a command finds the packs its profiles name.
pub enum PackOrigin<'a> {
    Folder(&'a Path),
    Registry(&'a RegistryArgs),
}

enum LoadedSource {
    Folder(LocalPackCatalog),
    Registry(strata_shared::registry::resolver::RegistryPacks),
}

impl LoadedSource {
    fn source(&self) -> &dyn PackSource {
        match self {
            LoadedSource::Folder(catalog) => catalog,
            LoadedSource::Registry(packs) => packs,
        }
    }
}

fn load_source(
    origin: &PackOrigin<'_>,
    profiles: &[ClusterProfile],
) -> Result<LoadedSource, CommandError> {
    match origin {
        PackOrigin::Folder(dir) => Ok(LoadedSource::Folder(load_catalog(dir)?)),
        PackOrigin::Registry(args) => {
            let wanted: Vec<(String, String)> = profiles
                .iter()
                .flat_map(|p| {
                    p.spec
                        .layers
                        .iter()
                        .map(|l| (l.name.clone(), l.version.clone()))
                })
                .collect();
            Ok(LoadedSource::Registry(fetch_packs(args, &wanted)?))
        }
    }
}

const API_VERSION: &str = "strata.dev/v1alpha1";

fn load_catalog(packs: &Path) -> Result<LocalPackCatalog, CommandError> {
    let catalog = LocalPackCatalog::load(packs).map_err(|e| CommandError::Failed(e.to_string()))?;
    if catalog.is_empty() {
        return Err(CommandError::Failed(format!(
            "{}: holds no pack folders (folders with a pack.json)",
            packs.display()
        )));
    }
    Ok(catalog)
}

fn profile_label(profile: &ClusterProfile) -> String {
    format!(
        "ClusterProfile {}",
        profile.metadata.name.as_deref().unwrap_or("<unnamed>")
    )
}

/// Validates every profile in the files against the packs.
pub fn validate(
    files: &[PathBuf],
    origin: PackOrigin<'_>,
    output: OutputFormat,
) -> Result<ExitStatus, CommandError> {
    let read: Vec<_> = files
        .iter()
        .map(|file| {
            (
                file,
                read_objects::<ClusterProfile>(file, "ClusterProfile", API_VERSION),
            )
        })
        .collect();
    let all_profiles: Vec<ClusterProfile> = read
        .iter()
        .flat_map(|(_, (documents, _))| documents.iter().map(|d| d.object.clone()))
        .collect();
    let loaded = load_source(&origin, &all_profiles)?;
    let mut reports = Vec::new();
    for (file, (profiles, mut findings)) in read {
        let input = file.display().to_string();
        let mut valid = !findings.has_errors();
        for document in &profiles {
            let (_, profile_findings) = validate_profile(&document.object, loaded.source());
            valid &= !profile_findings.has_errors();
            findings.extend_prefixed(&profile_label(&document.object), profile_findings);
        }
        if output == OutputFormat::Text {
            print_findings(&input, &findings);
            if valid {
                for document in &profiles {
                    println!(
                        "{input}: ok: {} version {} ({} profile, {} layers)",
                        profile_label(&document.object),
                        document.object.spec.version,
                        document.object.spec.profile_type,
                        document.object.spec.layers.len()
                    );
                }
            }
        }
        reports.push(InputReport {
            input,
            valid,
            name: None,
            version: None,
            findings,
        });
    }
    if let Some(format) = output.document() {
        print_document(&reports, format)?;
    }
    Ok(if reports.iter().all(|r| r.valid) {
        ExitStatus::Success
    } else {
        ExitStatus::Invalid
    })
}

/// Composes the cluster's stack from the profiles and prints it as YAML, or every violated
/// rule.
pub fn render(
    profile_files: &[PathBuf],
    cluster_file: &Path,
    origin: PackOrigin<'_>,
) -> Result<ExitStatus, CommandError> {
    render_with(profile_files, cluster_file, &origin)
}

fn render_with(
    profile_files: &[PathBuf],
    cluster_file: &Path,
    origin: &PackOrigin<'_>,
) -> Result<ExitStatus, CommandError> {
    let mut ok = true;
    let mut profiles = Vec::new();
    for file in profile_files {
        let (documents, findings) =
            read_objects::<ClusterProfile>(file, "ClusterProfile", API_VERSION);
        print_findings(&file.display().to_string(), &findings);
        ok &= !findings.has_errors();
        profiles.extend(documents.into_iter().map(|d| d.object));
    }
    let cluster_input = cluster_file.display().to_string();
    let (clusters, findings) =
        read_objects::<WorkloadCluster>(cluster_file, "WorkloadCluster", API_VERSION);
    print_findings(&cluster_input, &findings);
    ok &= !findings.has_errors();
    let cluster = match clusters.as_slice() {
        [one] => &one.object,
        [] => return Ok(ExitStatus::Invalid),
        many => {
            let mut findings = Findings::new();
            findings.error(
                "",
                format!("holds {} WorkloadClusters; expected one", many.len()),
            );
            print_findings(&cluster_input, &findings);
            return Ok(ExitStatus::Invalid);
        }
    };
    if !ok {
        return Ok(ExitStatus::Invalid);
    }
    let loaded = load_source(origin, &profiles)?;
    let (stack, findings) = compose(cluster, &profiles, loaded.source());
    print_findings(&cluster_input, &findings);
    let Some(stack) = stack else {
        return Ok(ExitStatus::Invalid);
    };
    let yaml = serde_yaml::to_string(&stack)
        .map_err(|e| CommandError::Failed(format!("cannot write the stack as YAML: {e}")))?;
    print!("{yaml}");
    Ok(ExitStatus::Success)
}
