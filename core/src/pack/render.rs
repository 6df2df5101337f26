//! What rendering a pack means: the `helm template` runs that turn a pack into the
//! Kubernetes objects it installs. Running helm is `strata_shared::pack_render`; this module
//! decides what it runs (the units, the chart of each, their values) so that all of it is
//! tested without helm. `docs/rendering.md` is the operator's version of these rules.
//!
//! # Units
//!
//! - Each chart of the pack (`charts/`) is one unit, rendered as it is: release name = the
//!   chart's name, values = the pack's `charts.<chart>` section given with `-f` (over the
//!   chart's own `values.yaml`, as `helm install -f` does).
//! - Each manifest (`manifests/<path>`) is one unit, wrapped into a generated chart named
//!   after the pack: `Chart.yaml`, `templates/<path>` (the manifest byte for byte, so helm's
//!   line numbers are the file's) and `values.yaml` holding the manifest's `.Values`.
//!   Release name = the pack's name.
//! - A manifest the values list under `pack."strata.dev/verbatim-manifests"` is no template:
//!   its unit is the file as written (`UnitChart::Verbatim`), which no helm run touches.
//! - Every unit renders into the pack's namespace (`pack.namespace`), else `default`.
//! - Units come charts first, then manifests, each in path order.
//!
//! # `.Values` of a manifest
//!
//! The pack's whole values with the manifest's own section, `manifests.<name>` (`<name>` is
//! the file name without extension), merged over the top level with Helm's rules, the
//! section winning. Both forms found in packs therefore work in one manifest:
//! `{{ .Values.namespace }}` (the section's key, as published packs write it) and
//! `{{ .Values.pack.namespace }}` or `{{ .Values.manifests.app.replicas }}` (whole-values
//! lookups, as Strata's earlier docs wrote them).

use std::fs;
use std::path::Path;

use serde_yaml::Value;
use thiserror::Error;

use crate::pack::Pack;
use crate::pack::values::{VERBATIM_MANIFESTS_KEY, verbatim_manifests};
use crate::values_merge::merge_values;

/// The namespace of a pack that names none, as helm's own default.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The path inside a generated chart under which helm looks for templates.
const TEMPLATES_DIR: &str = "templates";

/// Why a pack's render plan could not be made.
#[derive(Debug, Error)]
pub enum RenderPlanError {
    #[error("pack {pack}: {path} cannot be read: {source}")]
    ReadManifest {
        pack: String,
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "pack {pack}: {path}: helm does not render a template whose file name starts with '_' \
         (it reads such files as helper definitions); rename the manifest"
    )]
    HelperFileName { pack: String, path: String },

    #[error(
        "pack {pack}: the pack name {name:?} cannot name the generated Helm chart of its \
         manifests; expected letters, digits, '.', '_' and '-' only"
    )]
    ChartName { pack: String, name: String },

    #[error("pack {pack}: the values cannot be written as YAML for helm: {source}")]
    Values {
        pack: String,
        #[source]
        source: serde_yaml::Error,
    },

    #[error("values file {path}: {problem}")]
    ValuesFile { path: String, problem: String },

    #[error("pack {pack}: values pack.{key}: {problem}")]
    VerbatimManifests {
        pack: String,
        key: &'static str,
        problem: String,
    },
}

/// One `helm template` run.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderUnit {
    /// `<name>:<version>` of the pack, for messages.
    pub pack: String,
    /// What the unit renders, as a path in the pack: `manifests/app.yaml`, `charts/x.tgz`.
    pub source: String,
    pub release: String,
    pub namespace: String,
    pub chart: UnitChart,
    /// Values to give helm with `-f`; `None` when there are none.
    pub values: Option<Value>,
}

/// The chart a unit renders.
#[derive(Debug, Clone, PartialEq)]
pub enum UnitChart {
    /// A chart of the pack, at this path relative to the pack folder (a folder or an
    /// archive). `name` is the name in its `Chart.yaml`, which prefixes helm's template
    /// names.
    InPack { name: String, path: String },
    /// A chart written for the unit: a manifest wrapped into a chart.
    Generated(GeneratedChart),
    /// No chart: a manifest installed as written (`strata.dev/verbatim-manifests`). Its
    /// output is the text with a `# Source:` line, as helm heads what it renders.
    Verbatim { output: String },
}

/// A chart to write to a temporary folder and render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedChart {
    pub name: String,
    /// Files relative to the chart folder, `Chart.yaml` first.
    pub files: Vec<ChartFile>,
    /// The manifest's path inside the chart (`templates/app.yaml`).
    pub template: String,
    /// The manifest's name in values (`manifests.<name>`, `strata.dev/verbatim-manifests`);
    /// `None` for a chart that wraps no manifest of the pack.
    pub manifest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartFile {
    pub path: String,
    pub content: String,
}

impl RenderUnit {
    /// The chart's name, which helm puts before every template name it reports
    /// (`<chart>/templates/app.yaml`).
    pub fn chart_name(&self) -> &str {
        match &self.chart {
            UnitChart::InPack { name, .. } => name,
            UnitChart::Generated(chart) => &chart.name,
            UnitChart::Verbatim { .. } => &self.release,
        }
    }

    /// The pack path of a template as helm names it (`<chart>/templates/x.yaml`), or
    /// `None` when the name is not one of this unit's.
    pub fn pack_path_of(&self, helm_name: &str) -> Option<String> {
        let inside = helm_name
            .strip_prefix(self.chart_name())?
            .strip_prefix('/')?;
        if inside.is_empty() {
            return None;
        }
        match &self.chart {
            UnitChart::Generated(chart) => (inside == chart.template).then(|| self.source.clone()),
            UnitChart::Verbatim { .. } => None,
            UnitChart::InPack { path, .. } if is_archive(path) => {
                Some(format!("{path} ({helm_name})"))
            }
            UnitChart::InPack { path, .. } => Some(format!("{path}/{inside}")),
        }
    }
}

fn is_archive(path: &str) -> bool {
    path.ends_with(".tgz") || path.ends_with(".tar.gz")
}

/// A values file given to render a pack with (`--values FILE`): a YAML mapping, read as
/// helm reads `-f`; an empty file (or only comments) is no values.
pub fn parse_values_file(path: &str, text: &str) -> Result<Value, RenderPlanError> {
    let problem = |problem: String| RenderPlanError::ValuesFile {
        path: path.to_string(),
        problem,
    };
    let value: Value = serde_yaml::from_str(text).map_err(|error| {
        problem(match error.location() {
            Some(at) => format!(
                "not valid YAML at line {}, column {}: {error}",
                at.line(),
                at.column()
            ),
            None => format!("not valid YAML: {error}"),
        })
    })?;
    match value {
        Value::Null => Ok(Value::Mapping(serde_yaml::Mapping::new())),
        Value::Mapping(_) => Ok(value),
        Value::Sequence(_) => Err(problem("is a list; expected a mapping of values".into())),
        _ => Err(problem(
            "is a single value; expected a mapping of values".into(),
        )),
    }
}

/// `.Values` of the manifest `manifests.<name>`: the whole values with the section merged
/// over the top level (see the module documentation).
pub fn manifest_values(values: &Value, manifest_name: &str) -> Value {
    match section(values, "manifests", manifest_name) {
        Some(section) => merge_values(values, section),
        None => values.clone(),
    }
}

/// The values of the chart `charts.<name>`; `None` when the pack has no such section.
pub fn chart_values(values: &Value, chart_name: &str) -> Option<Value> {
    section(values, "charts", chart_name)
        .filter(|section| !section.is_null())
        .cloned()
}

fn section<'v>(values: &'v Value, group: &str, name: &str) -> Option<&'v Value> {
    values.get(group)?.get(name)
}

/// Whether a manifest has template actions: text without `{{` renders to itself.
pub fn is_templated(text: &str) -> bool {
    text.contains("{{")
}

/// The namespace the pack's objects render into.
pub fn namespace(pack: &Pack) -> String {
    pack.values
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

/// Every unit of the pack, rendered with `values` (usually `profile::layer_values::pack_values`).
pub fn render_units(pack: &Pack, values: &Value) -> Result<Vec<RenderUnit>, RenderPlanError> {
    let mut units = chart_units(pack, values);
    units.extend(manifest_units(pack, values, false)?);
    Ok(units)
}

/// The units of the pack's manifests that have template actions and are not verbatim, the
/// ones validation cannot check without rendering.
pub fn templated_manifest_units(
    pack: &Pack,
    values: &Value,
) -> Result<Vec<RenderUnit>, RenderPlanError> {
    manifest_units(pack, values, true)
}

/// The units of the pack's manifests, in path order; only those with template actions
/// when `only_templated`.
fn manifest_units(
    pack: &Pack,
    values: &Value,
    only_templated: bool,
) -> Result<Vec<RenderUnit>, RenderPlanError> {
    let names: Vec<String> = pack
        .layout
        .manifests
        .iter()
        .map(|m| m.name.clone())
        .collect();
    let verbatim = verbatim_manifests(values, &names).map_err(|problem| {
        RenderPlanError::VerbatimManifests {
            pack: pack.reference(),
            key: VERBATIM_MANIFESTS_KEY,
            problem,
        }
    })?;
    let mut units = Vec::new();
    for manifest in &pack.layout.manifests {
        let text = read_manifest(pack, &manifest.path)?;
        if verbatim.contains(&manifest.name) {
            if !only_templated {
                units.push(verbatim_unit(pack, &manifest.path, text));
            }
            continue;
        }
        if only_templated && !is_templated(&text) {
            continue;
        }
        units.push(manifest_unit(
            pack,
            &manifest.path,
            &manifest.name,
            text,
            values,
        )?);
    }
    Ok(units)
}

/// The units of the pack's charts.
pub fn chart_units(pack: &Pack, values: &Value) -> Vec<RenderUnit> {
    pack.layout
        .charts
        .iter()
        .map(|chart| RenderUnit {
            pack: pack.reference(),
            source: chart.path.clone(),
            release: chart.name.clone(),
            namespace: namespace(pack),
            chart: UnitChart::InPack {
                name: chart.name.clone(),
                path: chart.path.clone(),
            },
            values: chart_values(values, &chart.name),
        })
        .collect()
}

fn read_manifest(pack: &Pack, path: &str) -> Result<String, RenderPlanError> {
    fs::read_to_string(pack.dir.join(path)).map_err(|source| RenderPlanError::ReadManifest {
        pack: pack.reference(),
        path: path.to_string(),
        source,
    })
}

/// The unit of one manifest: `text` wrapped into a chart named after the pack.
pub fn manifest_unit(
    pack: &Pack,
    path: &str,
    name: &str,
    text: String,
    values: &Value,
) -> Result<RenderUnit, RenderPlanError> {
    let reference = pack.reference();
    let chart_name = &pack.manifest.name;
    if !is_chart_name(chart_name) {
        return Err(RenderPlanError::ChartName {
            pack: reference,
            name: chart_name.clone(),
        });
    }
    let inside_manifests = path.strip_prefix("manifests/").unwrap_or(path);
    let file_name = Path::new(inside_manifests)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if file_name.starts_with('_') {
        return Err(RenderPlanError::HelperFileName {
            pack: reference,
            path: path.to_string(),
        });
    }
    let template = format!("{TEMPLATES_DIR}/{inside_manifests}");
    let values_yaml =
        yaml_text(&manifest_values(values, name)).map_err(|source| RenderPlanError::Values {
            pack: reference.clone(),
            source,
        })?;
    let chart = GeneratedChart {
        name: chart_name.clone(),
        files: vec![
            ChartFile {
                path: "Chart.yaml".to_string(),
                content: chart_yaml(chart_name, &pack.manifest.version),
            },
            ChartFile {
                path: "values.yaml".to_string(),
                content: values_yaml,
            },
            ChartFile {
                path: template.clone(),
                content: text,
            },
        ],
        template,
        manifest: Some(name.to_string()),
    };
    Ok(RenderUnit {
        pack: reference,
        source: path.to_string(),
        release: chart_name.clone(),
        namespace: namespace(pack),
        chart: UnitChart::Generated(chart),
        values: None,
    })
}

/// The unit of a manifest installed as written.
fn verbatim_unit(pack: &Pack, path: &str, text: String) -> RenderUnit {
    let mut output = format!("---\n# Source: {}/{path} (verbatim)\n", pack.manifest.name);
    output.push_str(&text);
    if !text.ends_with('\n') {
        output.push('\n');
    }
    RenderUnit {
        pack: pack.reference(),
        source: path.to_string(),
        release: pack.manifest.name.clone(),
        namespace: namespace(pack),
        chart: UnitChart::Verbatim { output },
        values: None,
    }
}

/// What helm accepts as a chart name: a single path component.
fn is_chart_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `Chart.yaml` of a generated chart. Helm needs a semantic version; a pack version that
/// is not one (`1.28`, `7.7.1908`) becomes `0.0.0`, and `appVersion` always carries the
/// pack's version as written.
pub fn chart_yaml(name: &str, pack_version: &str) -> String {
    let version = if semver::Version::parse(pack_version).is_ok() {
        pack_version
    } else {
        "0.0.0"
    };
    let app_version = serde_json::to_string(pack_version).unwrap_or_else(|_| "\"\"".into());
    format!(
        "apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: {app_version}\ntype: application\n"
    )
}

/// Values as the YAML text of a values file; an empty mapping for no values.
pub fn yaml_text(values: &Value) -> Result<String, serde_yaml::Error> {
    match values {
        Value::Null => Ok("{}\n".to_string()),
        Value::Mapping(mapping) if mapping.is_empty() => Ok("{}\n".to_string()),
        other => serde_yaml::to_string(other),
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod render_tests;
