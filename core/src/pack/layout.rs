//! What a pack folder holds: its charts, manifests and optional files.
//!
//! A chart pack keeps Helm charts under `charts/`, as `.tgz` archives and/or unpacked
//! folders with a `Chart.yaml` (the vendor's istio example has both for each chart, which is
//! one chart, not two). When the archive and the folder of one chart hold different
//! versions (published packs do), the archive is the chart: it is what `pack.json`'s
//! `charts` names and what gets installed; the folder is its source, kept for reading. That
//! is a warning naming both versions. A manifest pack keeps Kubernetes YAML under
//! `manifests/`.
//! `logo.png` is needed to publish; `README.md` and `ansible-roles/` are recorded and never
//! run.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};

use crate::finding::Findings;

/// `Chart.yaml` inside a chart archive is tiny; refusing more keeps a hostile archive from
/// making validation read gigabytes.
const MAX_CHART_YAML_BYTES: u64 = 1024 * 1024;
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartSource {
    Archive,
    Folder,
}

/// One Helm chart of a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chart {
    /// The chart's name from its `Chart.yaml`; `values.yaml` sections use it.
    pub name: String,
    pub version: String,
    /// Where it is, relative to the pack folder; the archive when there are both.
    pub path: String,
    pub sources: Vec<ChartSource>,
}

/// One manifest file of a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestFile {
    /// The file name without extension; `values.yaml` sections use it.
    pub name: String,
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackLayout {
    pub charts: Vec<Chart>,
    pub manifests: Vec<ManifestFile>,
    pub has_logo: bool,
    pub has_readme: bool,
    pub has_ansible_roles: bool,
}

#[derive(Deserialize)]
struct ChartYaml {
    name: Option<String>,
    version: Option<serde_yaml::Value>,
}

/// Scans a pack folder. Problems are findings with the file as subject.
pub fn scan_layout(dir: &Path) -> (PackLayout, Findings) {
    let mut findings = Findings::new();
    let root = match dir.canonicalize() {
        Ok(root) => root,
        Err(e) => {
            findings.error("", format!("cannot be resolved: {e}"));
            return (PackLayout::default(), findings);
        }
    };
    let mut layout = PackLayout {
        has_readme: dir.join("README.md").is_file(),
        has_ansible_roles: dir.join("ansible-roles").is_dir(),
        ..PackLayout::default()
    };
    let logo = dir.join("logo.png");
    if logo.is_file() {
        layout.has_logo = true;
        let mut signature = [0u8; 8];
        let is_png = fs::File::open(&logo)
            .and_then(|mut f| f.read_exact(&mut signature))
            .is_ok()
            && signature == PNG_SIGNATURE;
        if !is_png {
            findings.warning("logo.png", "is not a PNG image (no PNG signature)");
        }
    } else {
        findings.warning(
            "logo.png",
            "is missing; a pack needs a logo.png to be published",
        );
    }
    let charts_dir = dir.join("charts");
    if charts_dir.is_dir() {
        layout.charts = scan_charts(&root, &charts_dir, &mut findings);
    } else if charts_dir.exists() {
        findings.error("charts", "is a file; expected a folder of Helm charts");
    }
    let manifests_dir = dir.join("manifests");
    if manifests_dir.is_dir() {
        layout.manifests = scan_manifests(dir, &root, &manifests_dir, &mut findings);
    } else if manifests_dir.exists() {
        findings.error("manifests", "is a file; expected a folder of manifests");
    }
    (layout, findings)
}

fn sorted_entries(dir: &Path, subject: &str, findings: &mut Findings) -> Vec<fs::DirEntry> {
    match fs::read_dir(dir) {
        Ok(entries) => {
            let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
            entries.sort_by_key(|e| e.file_name());
            entries
        }
        Err(e) => {
            findings.error(subject, format!("cannot be read: {e}"));
            Vec::new()
        }
    }
}

fn scan_charts(root: &Path, charts_dir: &Path, findings: &mut Findings) -> Vec<Chart> {
    let mut charts: BTreeMap<String, Chart> = BTreeMap::new();
    for entry in sorted_entries(charts_dir, "charts", findings) {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let subject = format!("charts/{file_name}");
        let path = entry.path();
        if leaves_pack(root, &path) {
            findings.error(
                &subject,
                "is a link to something outside the pack folder; a pack must hold its own files",
            );
            continue;
        }
        let found = if path.is_dir() {
            let chart_yaml = path.join("Chart.yaml");
            match fs::read_to_string(&chart_yaml) {
                Ok(text) => chart_identity(&text, &format!("{subject}/Chart.yaml"), findings)
                    .map(|(name, version)| (name, version, ChartSource::Folder)),
                Err(_) => {
                    findings.error(
                        &subject,
                        "is a folder without Chart.yaml; expected an unpacked Helm chart",
                    );
                    None
                }
            }
        } else if file_name.ends_with(".tgz") || file_name.ends_with(".tar.gz") {
            match chart_yaml_in_archive(&path) {
                Ok(text) => chart_identity(&text, &format!("{subject}: Chart.yaml"), findings)
                    .map(|(name, version)| (name, version, ChartSource::Archive)),
                Err(reason) => {
                    findings.error(&subject, format!("is not a Helm chart archive: {reason}"));
                    None
                }
            }
        } else {
            findings.warning(
                &subject,
                "is neither a chart archive (.tgz) nor a chart folder; it is ignored",
            );
            None
        };
        let Some((name, version, source)) = found else {
            continue;
        };
        match charts.get_mut(&name) {
            Some(existing) => {
                if !same_chart_version(&existing.version, &version) {
                    let (archive, folder) = if source == ChartSource::Archive {
                        ((&subject, &version), (&existing.path, &existing.version))
                    } else {
                        ((&existing.path, &existing.version), (&subject, &version))
                    };
                    findings.warning(
                        &subject,
                        format!(
                            "chart {name}: the archive {} holds version {}, the folder {} holds \
                             version {}; the archive is used (it is what gets installed)",
                            archive.0, archive.1, folder.0, folder.1
                        ),
                    );
                }
                existing.sources.push(source);
                if source == ChartSource::Archive {
                    existing.path = subject;
                    existing.version = version;
                }
            }
            None => {
                charts.insert(
                    name.clone(),
                    Chart {
                        name,
                        version,
                        path: subject,
                        sources: vec![source],
                    },
                );
            }
        }
    }
    charts.into_values().collect()
}

/// Equal text, or equal as versions (`0.12.2` and `v0.12.2`, as one published pack has).
fn same_chart_version(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (crate::version::PackVersion::parse(a), crate::version::PackVersion::parse(b)),
            (Ok(a), Ok(b)) if a == b
        )
}

fn chart_identity(text: &str, subject: &str, findings: &mut Findings) -> Option<(String, String)> {
    let parsed: ChartYaml = match serde_yaml::from_str(text) {
        Ok(parsed) => parsed,
        Err(e) => {
            findings.error(subject, format!("is not valid YAML: {e}"));
            return None;
        }
    };
    let name = parsed.name.filter(|n| !n.trim().is_empty());
    let version = parsed.version.and_then(|v| match v {
        serde_yaml::Value::String(s) => Some(s),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    match (name, version) {
        (Some(name), Some(version)) => Some((name, version)),
        (None, _) => {
            findings.error(subject, "has no name; Helm needs a chart name");
            None
        }
        (_, None) => {
            findings.error(subject, "has no version; Helm needs a chart version");
            None
        }
    }
}

/// Why a chart archive's Chart.yaml could not be read; the message follows "is not a Helm
/// chart archive:" in a finding about the archive.
#[derive(Debug, thiserror::Error)]
enum ChartArchiveError {
    #[error("cannot be opened: {0}")]
    Open(std::io::Error),
    #[error("not a gzipped tar archive ({0})")]
    NotTarGz(std::io::Error),
    #[error("not a readable gzipped tar archive ({0})")]
    Entry(std::io::Error),
    #[error("has an unreadable entry name ({0})")]
    EntryName(std::io::Error),
    #[error("its Chart.yaml is larger than 1 MiB")]
    ChartYamlTooLarge,
    #[error("its Chart.yaml cannot be read ({0})")]
    ChartYamlUnreadable(std::io::Error),
    #[error("no <chart>/Chart.yaml inside")]
    NoChartYaml,
}

/// Reads `<chart>/Chart.yaml` from a chart archive the way Helm's loader does: the first
/// component of every entry's path is the chart's folder, whatever it is called, so
/// `./Chart.yaml` (an archive made with `tar -C chart .`, as published packs have) is the
/// chart's Chart.yaml just as `nginx/Chart.yaml` is.
fn chart_yaml_in_archive(path: &Path) -> Result<String, ChartArchiveError> {
    let file = fs::File::open(path).map_err(ChartArchiveError::Open)?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let entries = archive.entries().map_err(ChartArchiveError::NotTarGz)?;
    for entry in entries {
        let entry = entry.map_err(ChartArchiveError::Entry)?;
        let entry_path = entry
            .path()
            .map_err(ChartArchiveError::EntryName)?
            .into_owned();
        if is_chart_yaml_entry(&entry_path) {
            if entry.header().size().unwrap_or(u64::MAX) > MAX_CHART_YAML_BYTES {
                return Err(ChartArchiveError::ChartYamlTooLarge);
            }
            let mut text = String::new();
            entry
                .take(MAX_CHART_YAML_BYTES)
                .read_to_string(&mut text)
                .map_err(ChartArchiveError::ChartYamlUnreadable)?;
            return Ok(text);
        }
    }
    Err(ChartArchiveError::NoChartYaml)
}

/// Whether an archive entry is the chart's own Chart.yaml: Helm strips the first path
/// component and cleans the rest (`x/./Chart.yaml` is `Chart.yaml`).
fn is_chart_yaml_entry(entry: &Path) -> bool {
    let text = entry.to_string_lossy();
    let Some((_, inside)) = text.split_once('/') else {
        return false;
    };
    let rest: Vec<&str> = inside
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    rest == ["Chart.yaml"]
}

fn scan_manifests(
    pack_dir: &Path,
    root: &Path,
    manifests_dir: &Path,
    findings: &mut Findings,
) -> Vec<ManifestFile> {
    let mut manifests = Vec::new();
    let mut stack = vec![manifests_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let subject = relative(pack_dir, &dir);
        for entry in sorted_entries(&dir, &subject, findings) {
            let path = entry.path();
            let rel = relative(pack_dir, &path);
            if leaves_pack(root, &path) {
                findings.error(&rel, "is a link to something outside the pack folder; a pack must hold its own files");
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let is_yaml = path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml");
            if !is_yaml {
                findings.warning(&rel, "is not a .yaml or .yml file; it is ignored");
                continue;
            }
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            manifests.push(ManifestFile { name, path: rel });
        }
    }
    manifests.sort_by(|a, b| a.path.cmp(&b.path));
    manifests
}

/// Whether a path inside the pack resolves (through links) to something outside it, or
/// to nothing.
fn leaves_pack(root: &Path, path: &Path) -> bool {
    match path.canonicalize() {
        Ok(resolved) => !resolved.starts_with(root),
        Err(_) => true,
    }
}

/// A path relative to the pack folder with `/` separators, for findings and records.
pub fn relative(pack_dir: &Path, path: &Path) -> String {
    path.strip_prefix(pack_dir)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}
