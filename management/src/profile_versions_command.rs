//! `strata profile versions NAME`: the versions of one profile published in the management
//! cluster, and which clusters each one is in force for. A cluster's version is found the
//! way the controller finds it ([`select_profile`], the cluster's namespace before the
//! system namespace), so what this prints is what the controller uses.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde::Serialize;
use strata_shared::cluster::WorkloadCluster;
use strata_shared::profile::{ClusterProfile, select_profile, versions_of};

use crate::management_client::{client_from, command_runtime};
use crate::report::{OutputFormat, document_text};
use crate::{CommandError, ExitStatus};

#[derive(clap::Args, Debug)]
pub struct VersionsArgs {
    /// The profile's name (its `spec.name`, else its object's name).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Only the versions published in this namespace.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// The management cluster's kubeconfig; else $KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Where the controller looks for shared profiles after a cluster's own namespace.
    #[arg(long, default_value = "strata-system")]
    pub system_namespace: String,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// One published version and the clusters it is in force for.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PublishedVersion {
    pub version: String,
    #[serde(rename = "type")]
    pub profile_type: String,
    pub cloud: String,
    pub namespace: String,
    pub object: String,
    /// `NAMESPACE/NAME` of each WorkloadCluster that selects this version.
    pub clusters: Vec<String>,
}

pub fn versions(args: &VersionsArgs) -> Result<ExitStatus, CommandError> {
    let listed = command_runtime()?.block_on(list(args))?;
    let mut stdout = std::io::stdout().lock();
    let written = match args.output.document() {
        Some(format) => document_text(&listed, format)
            .and_then(|text| write!(stdout, "{text}").map_err(stdout_error)),
        None => write!(stdout, "{}", table(&args.name, &listed)).map_err(stdout_error),
    };
    written?;
    if listed.is_empty() {
        eprintln!(
            "profile {:?} has no published version{}",
            args.name,
            args.namespace
                .as_deref()
                .map(|n| format!(" in namespace {n}"))
                .unwrap_or_default()
        );
        return Ok(ExitStatus::Invalid);
    }
    Ok(ExitStatus::Success)
}

fn stdout_error(e: std::io::Error) -> CommandError {
    CommandError::Failed(format!("cannot write to stdout: {e}"))
}

async fn list(args: &VersionsArgs) -> Result<Vec<PublishedVersion>, CommandError> {
    let client = client_from(
        args.kubeconfig.as_deref(),
        "the management cluster's kubeconfig",
    )
    .await?;
    let failed =
        |what: &str, e: kube::Error| CommandError::Failed(format!("cannot list {what}: {e}"));
    let profiles = Api::<ClusterProfile>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| failed("ClusterProfiles", e))?
        .items;
    let clusters = Api::<WorkloadCluster>::all(client)
        .list(&ListParams::default())
        .await
        .map_err(|e| failed("WorkloadClusters", e))?
        .items;
    Ok(published_versions(
        &profiles,
        &clusters,
        &args.name,
        args.namespace.as_deref(),
        &args.system_namespace,
    ))
}

/// The versions of profile `name` (in `namespace` when given), oldest first, each with the
/// clusters that select it.
pub fn published_versions(
    profiles: &[ClusterProfile],
    clusters: &[WorkloadCluster],
    name: &str,
    namespace: Option<&str>,
    system_namespace: &str,
) -> Vec<PublishedVersion> {
    let mut in_force: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for cluster in clusters {
        let cluster_namespace = cluster.namespace().unwrap_or_default();
        let lookup = in_lookup_order(profiles, &cluster_namespace, system_namespace);
        for reference in cluster.spec.profiles.iter().filter(|r| r.name == name) {
            if let Ok(profile) = select_profile(&lookup, &reference.name, &reference.version) {
                in_force
                    .entry((profile.namespace().unwrap_or_default(), profile.name_any()))
                    .or_default()
                    .push(format!("{cluster_namespace}/{}", cluster.name_any()));
            }
        }
    }
    versions_of(profiles, name)
        .into_iter()
        .filter(|p| namespace.is_none_or(|n| p.namespace().as_deref() == Some(n)))
        .map(|p| {
            let key = (p.namespace().unwrap_or_default(), p.name_any());
            let mut clusters = in_force.get(&key).cloned().unwrap_or_default();
            clusters.sort();
            PublishedVersion {
                version: p.spec.version.clone(),
                profile_type: p.spec.profile_type.to_string(),
                cloud: p.spec.cloud_type.to_string(),
                namespace: key.0,
                object: key.1,
                clusters,
            }
        })
        .collect()
}

/// The profiles of `namespace`, then those of `system_namespace`: the controller's order.
fn in_lookup_order(
    profiles: &[ClusterProfile],
    namespace: &str,
    system_namespace: &str,
) -> Vec<ClusterProfile> {
    let mut namespaces = vec![namespace];
    if system_namespace != namespace {
        namespaces.push(system_namespace);
    }
    namespaces
        .into_iter()
        .flat_map(|n| {
            profiles
                .iter()
                .filter(move |p| p.namespace().as_deref() == Some(n))
                .cloned()
        })
        .collect()
}

fn table(name: &str, versions: &[PublishedVersion]) -> String {
    let rows: Vec<[String; 5]> = versions
        .iter()
        .map(|v| {
            [
                v.version.clone(),
                v.profile_type.clone(),
                v.cloud.clone(),
                format!("{}/{}", v.namespace, v.object),
                if v.clusters.is_empty() {
                    "-".to_string()
                } else {
                    v.clusters.join(",")
                },
            ]
        })
        .collect();
    let header = ["VERSION", "TYPE", "CLOUD", "OBJECT", "CLUSTERS"];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or_default()
        })
        .collect();
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text.push('\n');
        text
    };
    let mut out = format!("profile {name}: {} version(s)\n", versions.len());
    out.push_str(&line(&header));
    for row in &rows {
        out.push_str(&line(&row.each_ref().map(String::as_str)));
    }
    out
}

#[cfg(test)]
#[path = "profile_versions_command_tests.rs"]
mod profile_versions_command_tests;
