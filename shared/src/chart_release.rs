//! A chart layer's Helm release, through the `helm` CLI: installed or upgraded with the
//! layer's values, looked at, and uninstalled. The agent keeps releases converged with
//! these; `docs/layers.md` says how releases are named.
//!
//! A release is never duplicated: `helm upgrade --install` installs once and upgrades
//! afterwards. An agent killed while helm ran can leave the release `pending-install`,
//! `pending-upgrade`, `pending-rollback` or `uninstalling`, which helm refuses to change
//! again ("another operation is in progress"); [`install_or_upgrade`] first brings such a
//! release back to a state helm works from: a first install that never finished (or
//! failed) is uninstalled and installed again, an upgrade or rollback that never finished
//! is rolled back to the last deployed revision.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;
use thiserror::Error;
use tracing::{info, info_span, warn};

use crate::helm_cli::{Helm, RunError};

/// Why a release could not be installed, read, or removed. Every variant names the
/// release (`namespace/name`) and the helm command.
#[derive(Debug, Error)]
pub enum ChartReleaseError {
    #[error("release {release}: `helm {command}` failed: {message}")]
    Helm {
        release: String,
        command: String,
        message: String,
    },

    #[error(
        "release {release}: `helm {command}` ({binary}) did not finish within {seconds} s and was stopped"
    )]
    TimedOut {
        release: String,
        command: String,
        binary: PathBuf,
        seconds: u64,
    },

    #[error("release {release}: cannot run helm ({binary}): {source}")]
    Run {
        release: String,
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("release {release}: cannot write its values for helm: {reason}")]
    Values { release: String, reason: String },

    #[error("release {release}: `helm {command}` printed what is not a release: {reason}")]
    Output {
        release: String,
        command: String,
        reason: String,
    },
}

/// A release to install or upgrade.
#[derive(Debug, Clone)]
pub struct ChartRelease {
    pub name: String,
    pub namespace: String,
    /// The chart: a folder or an archive.
    pub chart: PathBuf,
    /// The values given with `-f`, over the chart's own.
    pub values: Value,
    /// The cluster to install into.
    pub kubeconfig: PathBuf,
}

impl ChartRelease {
    fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What helm says of a release (`helm status -o json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseInfo {
    pub revision: i64,
    /// helm's status: `deployed`, `failed`, `pending-install`, …
    pub status: String,
}

#[derive(Deserialize)]
struct StatusJson {
    version: i64,
    info: StatusInfo,
}

#[derive(Deserialize)]
struct StatusInfo {
    status: String,
}

/// The release's state, or `None` when there is no such release.
pub fn release_info(
    helm: &Helm,
    kubeconfig: &Path,
    namespace: &str,
    name: &str,
) -> Result<Option<ReleaseInfo>, ChartReleaseError> {
    let release = format!("{namespace}/{name}");
    let args = args(&["status", name, "--output", "json"], namespace, kubeconfig);
    match run(helm, &release, "status", &args) {
        Ok(stdout) => {
            let parsed: StatusJson =
                serde_json::from_slice(&stdout).map_err(|e| ChartReleaseError::Output {
                    release: release.clone(),
                    command: "status".into(),
                    reason: e.to_string(),
                })?;
            Ok(Some(ReleaseInfo {
                revision: parsed.version,
                status: parsed.info.status,
            }))
        }
        Err(ChartReleaseError::Helm { message, .. }) if is_not_found(&message) => Ok(None),
        Err(other) => Err(other),
    }
}

/// Installs the release, or upgrades it when it exists, after bringing back a release an
/// interrupted helm left pending (see the module documentation). Returns the release as
/// helm then reports it.
pub fn install_or_upgrade(
    helm: &Helm,
    release: &ChartRelease,
) -> Result<ReleaseInfo, ChartReleaseError> {
    let id = release.id();
    let _span = info_span!("chart_release", release = %id).entered();
    if let Some(found) = release_info(helm, &release.kubeconfig, &release.namespace, &release.name)?
    {
        recover(helm, release, &found)?;
    }
    let values = values_file(release)?;
    let mut upgrade = args(
        &["upgrade", "--install", &release.name],
        &release.namespace,
        &release.kubeconfig,
    );
    upgrade.push(release.chart.clone().into_os_string());
    upgrade.push("--create-namespace".into());
    upgrade.push("--values".into());
    upgrade.push(values.path().as_os_str().to_os_string());
    upgrade.push("--timeout".into());
    upgrade.push(helm_timeout_flag(helm));
    run(helm, &id, "upgrade --install", &upgrade)?;
    let info = release_info(helm, &release.kubeconfig, &release.namespace, &release.name)?
        .ok_or_else(|| ChartReleaseError::Output {
            release: id.clone(),
            command: "status".into(),
            reason: "the release is not there after `helm upgrade --install` succeeded".into(),
        })?;
    info!(revision = info.revision, status = %info.status, "release installed");
    Ok(info)
}

/// Upgrades the existing release again with the same chart and values, so that Helm sets
/// back what it applied: an object someone deleted is created again and a field someone
/// changed is merged back, Helm staying the objects' owner. Helm 4 applies server-side and
/// is given `--force-conflicts`, since a field changed by another manager is that
/// manager's until forced; Helm 3 has no such flag and needs none (its three-way merge
/// patches whatever differs from the chart), so it is asked again without it.
pub fn reapply(helm: &Helm, release: &ChartRelease) -> Result<ReleaseInfo, ChartReleaseError> {
    let id = release.id();
    let values = values_file(release)?;
    let mut upgrade = args(
        &["upgrade", &release.name],
        &release.namespace,
        &release.kubeconfig,
    );
    upgrade.push(release.chart.clone().into_os_string());
    upgrade.push("--values".into());
    upgrade.push(values.path().as_os_str().to_os_string());
    upgrade.push("--timeout".into());
    upgrade.push(helm_timeout_flag(helm));
    let mut forced = upgrade.clone();
    forced.push(FORCE_CONFLICTS.into());
    match run(helm, &id, "upgrade --force-conflicts", &forced) {
        Err(ChartReleaseError::Helm { message, .. }) if is_unknown_flag(&message) => {
            run(helm, &id, "upgrade", &upgrade)?;
        }
        other => {
            other?;
        }
    }
    release_info(helm, &release.kubeconfig, &release.namespace, &release.name)?.ok_or_else(|| {
        ChartReleaseError::Output {
            release: id,
            command: "status".into(),
            reason: "the release is not there after `helm upgrade` succeeded".into(),
        }
    })
}

/// Helm 4's flag that lets its server-side apply take fields back from other managers.
const FORCE_CONFLICTS: &str = "--force-conflicts";

/// helm's words for a flag it does not know (`unknown flag: --force-conflicts`).
fn is_unknown_flag(message: &str) -> bool {
    message.contains("unknown flag") && message.contains(FORCE_CONFLICTS)
}

/// Uninstalls the release; `false` when there was none.
pub fn uninstall(
    helm: &Helm,
    kubeconfig: &Path,
    namespace: &str,
    name: &str,
) -> Result<bool, ChartReleaseError> {
    let release = format!("{namespace}/{name}");
    match run(
        helm,
        &release,
        "uninstall",
        &args(&["uninstall", name], namespace, kubeconfig),
    ) {
        Ok(_) => Ok(true),
        Err(ChartReleaseError::Helm { message, .. }) if is_not_found(&message) => Ok(false),
        Err(other) => Err(other),
    }
}

/// The objects of the release's current revision, as helm rendered them
/// (`helm get manifest`): what the layer's health and drift checks read.
pub fn release_manifest(
    helm: &Helm,
    kubeconfig: &Path,
    namespace: &str,
    name: &str,
) -> Result<String, ChartReleaseError> {
    let release = format!("{namespace}/{name}");
    let stdout = run(
        helm,
        &release,
        "get manifest",
        &args(&["get", "manifest", name], namespace, kubeconfig),
    )?;
    String::from_utf8(stdout).map_err(|_| ChartReleaseError::Output {
        release,
        command: "get manifest".into(),
        reason: "not UTF-8 text".into(),
    })
}

/// Brings a release that an interrupted helm left behind back to one helm can upgrade.
fn recover(
    helm: &Helm,
    release: &ChartRelease,
    found: &ReleaseInfo,
) -> Result<(), ChartReleaseError> {
    let id = release.id();
    let first_never_deployed = found.revision <= 1;
    match found.status.as_str() {
        "pending-install" | "uninstalling" => {}
        "failed" if first_never_deployed => {}
        "pending-upgrade" | "pending-rollback" => {
            warn!(status = %found.status, revision = found.revision, "release left mid-operation; rolling back to its last deployed revision");
            let mut rollback = args(
                &["rollback", &release.name],
                &release.namespace,
                &release.kubeconfig,
            );
            rollback.push("--timeout".into());
            rollback.push(helm_timeout_flag(helm));
            run(helm, &id, "rollback", &rollback)?;
            return Ok(());
        }
        _ => return Ok(()),
    }
    warn!(status = %found.status, revision = found.revision, "release never finished its first install; uninstalling it to install again");
    uninstall(helm, &release.kubeconfig, &release.namespace, &release.name)?;
    Ok(())
}

fn args(words: &[&str], namespace: &str, kubeconfig: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = words.iter().map(OsString::from).collect();
    args.push("--namespace".into());
    args.push(namespace.into());
    args.push("--kubeconfig".into());
    args.push(kubeconfig.as_os_str().to_os_string());
    args
}

/// The values as a file only this process's user can read: they may hold the schema's
/// secrets. Removed when dropped.
fn values_file(release: &ChartRelease) -> Result<tempfile::NamedTempFile, ChartReleaseError> {
    let failed = |reason: String| ChartReleaseError::Values {
        release: release.id(),
        reason,
    };
    let text = match &release.values {
        Value::Null => "{}\n".to_string(),
        Value::Mapping(mapping) if mapping.is_empty() => "{}\n".to_string(),
        values => serde_yaml::to_string(values).map_err(|e| failed(e.to_string()))?,
    };
    // tempfile creates files with mode 0600.
    let mut file = tempfile::Builder::new()
        .prefix(".strata-release-values-")
        .suffix(".yaml")
        .tempfile()
        .map_err(|e| failed(format!("cannot create a temporary file: {e}")))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| failed(format!("cannot write {}: {e}", file.path().display())))?;
    Ok(file)
}

/// Runs helm; its standard output on success, its error otherwise.
fn run(
    helm: &Helm,
    release: &str,
    command: &str,
    args: &[OsString],
) -> Result<Vec<u8>, ChartReleaseError> {
    let finished = helm.run(args).map_err(|error| match error {
        RunError::Spawn(source) => ChartReleaseError::Run {
            release: release.to_string(),
            binary: helm.binary().to_path_buf(),
            source,
        },
        RunError::TimedOut => ChartReleaseError::TimedOut {
            release: release.to_string(),
            command: command.to_string(),
            binary: helm.binary().to_path_buf(),
            seconds: helm.timeout().as_secs(),
        },
    })?;
    if finished.success {
        return Ok(finished.stdout);
    }
    let stderr = String::from_utf8_lossy(&finished.stderr);
    let message = stderr
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("Error: "))
        .unwrap_or(stderr.trim())
        .trim()
        .to_string();
    Err(ChartReleaseError::Helm {
        release: release.to_string(),
        command: command.to_string(),
        message,
    })
}

/// helm's words for a release that does not exist (`release: not found`).
fn is_not_found(message: &str) -> bool {
    message.contains("release: not found")
}

/// helm's own `--timeout` (it bounds hooks and waits), short of the process deadline so
/// that helm gives up and records the failure before it would be killed mid-write.
fn helm_timeout_flag(helm: &Helm) -> OsString {
    const MARGIN_SECS: u64 = 10;
    let deadline = helm.timeout().as_secs();
    let seconds = if deadline > 2 * MARGIN_SECS {
        deadline - MARGIN_SECS
    } else {
        deadline.max(1)
    };
    format!("{seconds}s").into()
}

#[cfg(test)]
#[path = "chart_release_tests.rs"]
mod chart_release_tests;
