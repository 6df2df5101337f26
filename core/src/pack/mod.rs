//! Packs: one layer's content (`pack.json`, `values.yaml`, charts or manifests, and
//! optionally `schema.yaml` and `presets.yaml`).
//!
//! [`Pack::load`] reads a pack folder and validates everything about it at once, returning
//! every finding. A pack with error findings is not loaded.

pub mod archive;
mod gzip_segments;
pub mod image_ref;
pub mod key_path;
pub mod kube_manifest;
pub mod layout;
pub mod lenient_json;
pub mod manifest;
pub mod presets;
mod reference_grammar;
pub mod render;
pub mod render_failure;
pub mod values;
pub mod values_schema;
pub mod vocabulary;
pub mod yaml_text;

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::finding::Findings;
use crate::pack::archive::{ArchiveError, archive_to_vec, content_digest};
use crate::pack::kube_manifest::{KubeObjectRef, check_manifest};
use crate::pack::layout::{PackLayout, scan_layout};
use crate::pack::manifest::{Layer, PackManifest, check_relative_path, parse_manifest_partially};
use crate::pack::presets::{PackPresets, PresetChoice, PresetRef, apply_presets, parse_presets};
use crate::pack::values::{PackValues, parse_values};
use crate::pack::values_schema::{ValuesSchema, names_missing_section, parse_schema};

/// What a pack installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackContent {
    Charts,
    Manifests,
    /// Both charts and manifests.
    Mixed,
    /// Nothing to install in the cluster: OS, kernel and Kubernetes packs configure the
    /// machines, not the cluster.
    None,
}

impl PackContent {
    pub fn as_str(&self) -> &'static str {
        match self {
            PackContent::Charts => "charts",
            PackContent::Manifests => "manifests",
            PackContent::Mixed => "charts and manifests",
            PackContent::None => "none",
        }
    }
}

/// The objects one plain manifest file (one without template actions) declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestObjects {
    pub path: String,
    pub objects: Vec<KubeObjectRef>,
}

/// A pack folder that passed validation.
#[derive(Debug, Clone)]
pub struct Pack {
    pub dir: PathBuf,
    pub manifest: PackManifest,
    pub values: PackValues,
    /// `schema.yaml`; empty when the pack has none.
    pub schema: ValuesSchema,
    /// `presets.yaml`; empty when the pack has none.
    pub presets: PackPresets,
    pub layout: PackLayout,
    pub manifest_objects: Vec<ManifestObjects>,
}

/// What a pack says about its values besides the defaults, which composition needs to
/// compute and check a layer's values.
#[derive(Debug, Clone, Default)]
pub struct ValueRules {
    pub schema: ValuesSchema,
    pub presets: PackPresets,
    /// The presets the pack's values.yaml enables (its `enabled-presets` comment).
    pub enabled_presets: Vec<PresetRef>,
}

/// Where the pack's own preset choice comes from, in messages; a pack without
/// presets.yaml ignores it.
pub const PACK_PRESETS_SOURCE: &str = "the pack's values.yaml (spectrocloud.com/enabled-presets)";

impl ValueRules {
    fn of(values: &PackValues, schema: &ValuesSchema, presets: &PackPresets) -> ValueRules {
        ValueRules {
            schema: schema.clone(),
            presets: presets.clone(),
            enabled_presets: values
                .enabled_presets
                .as_ref()
                .map(|a| a.presets.clone())
                .unwrap_or_default(),
        }
    }

    /// The pack's defaults with the presets its values.yaml enables applied; the defaults
    /// as they are when that choice cannot be used (pack validation reports why).
    pub fn defaults_with_presets(&self, defaults: &serde_yaml::Value) -> serde_yaml::Value {
        let choice = PresetChoice {
            source: PACK_PRESETS_SOURCE.to_string(),
            presets: self.enabled_presets.clone(),
        };
        match self.presets.select(&[choice], &[PACK_PRESETS_SOURCE]) {
            Ok(selected) => apply_presets(&selected, defaults),
            Err(_) => defaults.clone(),
        }
    }
}

impl Pack {
    /// Reads and validates a pack folder. Returns the pack when there is no error finding.
    pub fn load(dir: &Path) -> (Option<Pack>, Findings) {
        let mut findings = Findings::new();
        if !dir.is_dir() {
            let what = if dir.exists() {
                "is not a folder; expected a pack folder holding pack.json and values.yaml"
            } else {
                "does not exist; expected a pack folder holding pack.json and values.yaml"
            };
            findings.error("", what);
            return (None, findings);
        }
        let manifest = match fs::read_to_string(dir.join("pack.json")) {
            Ok(text) => {
                let (manifest, manifest_findings) = parse_manifest_partially(&text);
                findings.extend_prefixed("pack.json", manifest_findings);
                manifest
            }
            Err(e) => {
                findings.error("pack.json", missing_or_unreadable(&e, "pack metadata"));
                None
            }
        };
        let (layout, layout_findings) = scan_layout(dir);
        findings.extend(layout_findings);
        let chart_names: Vec<String> = layout.charts.iter().map(|c| c.name.clone()).collect();
        let manifest_names: Vec<String> = layout.manifests.iter().map(|m| m.name.clone()).collect();
        let values = match fs::read_to_string(dir.join("values.yaml")) {
            Ok(text) => {
                let (values, values_findings) = parse_values(&text, &chart_names, &manifest_names);
                findings.extend_prefixed("values.yaml", values_findings);
                values
            }
            Err(e) => {
                findings.error(
                    "values.yaml",
                    missing_or_unreadable(&e, "pack values (it may be empty)"),
                );
                None
            }
        };
        if let Some(manifest) = &manifest {
            check_declared_paths(dir, manifest, &mut findings);
            check_content_for_layer(manifest.layer, &layout, &mut findings);
        }
        let schema = read_optional(dir, "schema.yaml", parse_schema, &mut findings);
        let presets = read_optional(dir, "presets.yaml", parse_presets, &mut findings);
        if let Some(values) = &values {
            check_value_rules(
                values,
                &schema,
                &presets,
                &chart_names,
                &manifest_names,
                &mut findings,
            );
        }
        let verbatim = values
            .as_ref()
            .map(|values| values.verbatim_manifests.clone())
            .unwrap_or_default();
        let manifest_objects = check_manifest_files(dir, &layout, &verbatim, &mut findings);
        if let (Some(manifest), Some(values)) = (&manifest, &values) {
            check_param_refs(manifest, &values.document, &mut findings);
        }
        if findings.has_errors() {
            return (None, findings);
        }
        match (manifest, values) {
            (Some(manifest), Some(values)) => (
                Some(Pack {
                    dir: dir.to_path_buf(),
                    manifest,
                    values,
                    schema,
                    presets,
                    layout,
                    manifest_objects,
                }),
                findings,
            ),
            _ => (None, findings),
        }
    }

    /// The schema, presets and enabled presets, as composition needs them.
    pub fn value_rules(&self) -> ValueRules {
        ValueRules::of(&self.values, &self.schema, &self.presets)
    }

    pub fn content(&self) -> PackContent {
        match (
            self.layout.charts.is_empty(),
            self.layout.manifests.is_empty(),
        ) {
            (false, true) => PackContent::Charts,
            (true, false) => PackContent::Manifests,
            (false, false) => PackContent::Mixed,
            (true, true) => PackContent::None,
        }
    }

    /// The deterministic archive of this pack (one top-level folder named after the pack),
    /// gzipped at [`archive::PACK_COMPRESSION`](crate::pack::archive::PACK_COMPRESSION).
    pub fn archive(&self) -> Result<Vec<u8>, ArchiveError> {
        archive_to_vec(&self.dir, &self.manifest.name)
    }

    /// The pack's identity, its content digest: the sha256 of the canonical tar stream of
    /// [`Pack::archive`] before compression, so that no compressor, level or backend
    /// changes it. A revision pins this.
    pub fn digest(&self) -> Result<String, ArchiveError> {
        content_digest(&self.dir, &self.manifest.name)
    }

    /// `<name>:<version>`, how operators and registries name a pack.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.manifest.name, self.manifest.version)
    }
}

/// Parses an optional file of the pack with `parse`; absent means empty.
fn read_optional<T: Default>(
    dir: &Path,
    file: &str,
    parse: fn(&str) -> (T, Findings),
    findings: &mut Findings,
) -> T {
    match fs::read_to_string(dir.join(file)) {
        Ok(text) => {
            let (parsed, file_findings) = parse(&text);
            findings.extend_prefixed(file, file_findings);
            parsed
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => T::default(),
        Err(e) => {
            findings.error(file, format!("cannot be read: {e}"));
            T::default()
        }
    }
}

/// The schema and presets against the pack's own values: the values.yaml comment names
/// existing presets, preset removals name something, schema keys can name values, the
/// defaults (with the enabled presets) have the schema's types.
fn check_value_rules(
    values: &PackValues,
    schema: &ValuesSchema,
    presets: &PackPresets,
    charts: &[String],
    manifests: &[String],
    findings: &mut Findings,
) {
    findings.extend(presets::check_against_defaults(
        presets,
        values.enabled_presets.as_ref(),
        &values.document,
    ));
    let defaults = ValueRules::of(values, schema, presets).defaults_with_presets(&values.document);
    let variants: Vec<serde_yaml::Value> = presets
        .presets
        .iter()
        .map(|preset| apply_presets(&[preset], &defaults))
        .collect();
    findings.extend_prefixed(
        "schema.yaml",
        values_schema::check_against_defaults(schema, &defaults, &variants),
    );
    for entry in &schema.entries {
        if let Some(message) = names_missing_section(entry, charts, manifests) {
            findings.warning(format!("schema.yaml: {}", entry.key), message);
        }
    }
    // A macro Strata cannot resolve is the cluster's problem only if the value stays: a
    // profile or cluster may set it.
    for problem in crate::layer::macros::check_macros(&values.document) {
        findings.warning(
            "values.yaml",
            format!("{problem}; a cluster whose layer keeps this value is refused"),
        );
    }
}

fn missing_or_unreadable(error: &std::io::Error, what: &str) -> String {
    if error.kind() == std::io::ErrorKind::NotFound {
        format!("is missing; every pack needs one ({what})")
    } else {
        format!("cannot be read: {error}")
    }
}

/// `charts` and `kubeManifests` in pack.json must name files that exist inside the pack;
/// a symlink that resolves outside the pack counts as outside.
fn check_declared_paths(dir: &Path, manifest: &PackManifest, findings: &mut Findings) {
    let root = match dir.canonicalize() {
        Ok(root) => root,
        Err(e) => {
            findings.error("", format!("cannot be resolved: {e}"));
            return;
        }
    };
    let declared = manifest
        .charts
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("pack.json: charts[{i}]"), p))
        .chain(
            manifest
                .kube_manifests
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("pack.json: kubeManifests[{i}]"), p)),
        );
    for (subject, path) in declared {
        if check_relative_path(path).is_err() {
            // Already reported by pack.json validation.
            continue;
        }
        match dir.join(path).canonicalize() {
            Ok(resolved) if !resolved.starts_with(&root) => findings.error(
                subject,
                format!("{path:?} resolves outside the pack folder; expected a file inside it"),
            ),
            Ok(_) => {}
            Err(_) => findings.error(
                subject,
                format!(
                    "{path:?} does not exist in the pack; expected a file inside the pack folder"
                ),
            ),
        }
    }
}

fn check_content_for_layer(layer: Layer, layout: &PackLayout, findings: &mut Findings) {
    let installs_into_cluster = matches!(layer, Layer::Cni | Layer::Csi | Layer::Addon);
    if installs_into_cluster && layout.charts.is_empty() && layout.manifests.is_empty() {
        findings.error(
            "",
            format!(
                "{} {layer} pack installs into the cluster, so it needs Helm charts under charts/ \
                 or manifests under manifests/; found neither",
                if layer == Layer::Addon { "an" } else { "a" }
            ),
        );
    }
}

/// Checks the objects of the manifests that have no template actions or that the pack's
/// values name verbatim (installed as written, `{{` and all). A templated
/// manifest's objects are known only once helm renders it (`pack::render`), which loading a
/// pack does not do; `strata_shared::pack_render::check_templates` does, or says it could
/// not.
fn check_manifest_files(
    dir: &Path,
    layout: &PackLayout,
    verbatim: &[String],
    findings: &mut Findings,
) -> Vec<ManifestObjects> {
    let mut result = Vec::new();
    for file in &layout.manifests {
        let text = match fs::read_to_string(dir.join(&file.path)) {
            Ok(text) => text,
            Err(e) => {
                findings.error(&file.path, format!("cannot be read as UTF-8 text: {e}"));
                continue;
            }
        };
        if render::is_templated(&text) && !verbatim.contains(&file.name) {
            continue;
        }
        let (objects, manifest_findings) = check_manifest(&text);
        findings.extend_prefixed(&file.path, manifest_findings);
        result.push(ManifestObjects {
            path: file.path.clone(),
            objects,
        });
    }
    result
}

/// A resource constraint's param refs name values keys (dot-separated); a ref to nothing
/// cannot be what the author meant.
fn check_param_refs(manifest: &PackManifest, values: &serde_yaml::Value, findings: &mut Findings) {
    for (r, resource) in manifest.constraints.resources.iter().enumerate() {
        for (c, component) in resource.components.iter().enumerate() {
            let refs = [
                (
                    "resourceRequestParamRef",
                    &component.resource_request_param_ref,
                ),
                ("replicaCountParamRef", &component.replica_count_param_ref),
            ];
            for (field, reference) in refs {
                let Some(reference) = reference else { continue };
                if crate::values_merge::lookup(values, reference).is_none() {
                    findings.warning(
                        format!("pack.json: constraints.resources[{r}].components[{c}].{field}"),
                        format!("{reference:?} names no key in values.yaml"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod load_tests;

#[cfg(test)]
#[path = "compat_tests.rs"]
mod compat_tests;
