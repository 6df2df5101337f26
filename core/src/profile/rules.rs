//! The rules one profile must follow on its own: its version, its layers resolving to
//! valid packs, the layer counts its type demands, each pack at most once, and every pack
//! allowing the profile's cloud.
//!
//! - `infra`: exactly one `os`, `k8s`, `cni` and `csi` layer, at most one `kernel`, no add-on.
//! - `add-on`: only `addon` layers.
//! - `full`: the infra rules plus any number of add-ons.
//!
//! Each layer's values (pack defaults, presets, the layer's values) are checked against
//! the pack's schema.yaml: a value of the wrong type or a read-only value changed is an
//! error; a required value left unset is a warning, since a cluster may still set it (the
//! composition makes it an error then).

use std::collections::BTreeMap;

use crate::catalog::{PackSource, ResolvedPack};
use crate::finding::Findings;
use crate::layer::macros::check_macros;
use crate::layer::release::dns_subdomain_problem;
use crate::pack::manifest::Layer;
use crate::pack::values_schema::ValueProblem;
use crate::profile::constraints::{StackEntry, check_dependencies};
use crate::profile::layer_values::{LayerInputs, mask_with, preset_choices};
use crate::profile::{ClusterProfile, ProfileLayer, ProfileType};
use crate::version::PackVersion;

/// A profile layer and the pack it resolved to. Its `Debug` shows the layer's values with
/// the pack's secrets masked, and not the layer's values text.
#[derive(Clone)]
pub struct ResolvedLayer {
    pub index: usize,
    pub layer: ProfileLayer,
    pub pack: ResolvedPack,
    /// The layer's `values`, parsed (null when it has none).
    pub values: serde_yaml::Value,
    /// What the layer's values are made of so far: the pack's, the layer's presets and
    /// values (a cluster's overrides come later).
    pub inputs: LayerInputs,
    /// What the pack's schema finds wrong with the layer's values, reported here.
    pub problems: Vec<ValueProblem>,
}

impl std::fmt::Debug for ResolvedLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedLayer")
            .field("index", &self.index)
            .field("layer", &self.layer.reference())
            .field("pack", &self.pack.origin)
            .field("values", &mask_with(&self.pack.rules.schema, &self.values))
            .field("inputs", &self.inputs)
            .field("problems", &self.problems)
            .finish()
    }
}

/// Validates a profile and resolves its layers. Findings name the field (`spec.version`,
/// `spec.layers[2]`); the resolved layers are returned even when there are findings, for
/// callers that want to go on reporting.
pub fn validate_profile(
    profile: &ClusterProfile,
    source: &dyn PackSource,
) -> (Vec<ResolvedLayer>, Findings) {
    let mut findings = Findings::new();
    let spec = &profile.spec;
    if profile.metadata.name.as_deref().is_none_or(str::is_empty) {
        findings.error(
            "metadata.name",
            "is missing; a profile is selected by its name",
        );
    }
    if let Some(name) = &spec.name
        && let Some(problem) = dns_subdomain_problem(name, 253)
    {
        findings.error(
            "spec.name",
            format!(
                "{name:?} {problem}; expected a name like an object's (lowercase letters, digits, '-' and '.'), which clusters select the profile by"
            ),
        );
    }
    if let Err(e) = semver::Version::parse(&spec.version) {
        findings.error(
            "spec.version",
            format!(
                "{:?} is not a semantic version ({e}); expected MAJOR.MINOR.PATCH such as 1.0.0",
                spec.version
            ),
        );
    }
    if spec.layers.is_empty() {
        findings.error(
            "spec.layers",
            "is empty; a profile needs at least one layer",
        );
    }

    let mut resolved = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, layer) in spec.layers.iter().enumerate() {
        let subject = format!("spec.layers[{index}]");
        if let Some(first) = seen.insert(layer.name.as_str(), index) {
            findings.error(
                &subject,
                format!(
                    "pack {:?} is already in this profile at spec.layers[{first}]; a pack appears at most once",
                    layer.name
                ),
            );
            continue;
        }
        if layer.name.trim().is_empty() {
            findings.error(format!("{subject}.name"), "is empty; expected a pack name");
            continue;
        }
        if let Err(e) = PackVersion::parse(&layer.version) {
            findings.error(format!("{subject}.version"), e.to_string());
            continue;
        }
        let values = match parse_layer_values(layer.values.as_deref()) {
            Ok(values) => values,
            Err(error) => {
                findings.error(format!("{subject}.values"), error.to_string());
                continue;
            }
        };
        let pack = match source.resolve(&layer.name, &layer.version, layer.registry.as_deref()) {
            Ok(pack) => pack,
            Err(e) => {
                findings.error_of(e.finding_kind(), &subject, e.to_string());
                continue;
            }
        };
        if !spec.cloud_type.admits(&pack.manifest) {
            let declared = pack.manifest.declared_cloud_names();
            findings.error(
                &subject,
                format!(
                    "pack {} supports clouds [{}], which does not include this profile's cloud {:?}{}",
                    layer.reference(),
                    declared.join(", "),
                    spec.cloud_type.to_string(),
                    if matches!(spec.cloud_type, crate::profile::ProfileCloud::All | crate::profile::ProfileCloud::Sim) {
                        " (a profile for every cloud, or the simulated cloud, needs packs with cloudTypes [\"all\"])"
                    } else {
                        ""
                    }
                ),
            );
        }
        let inputs = LayerInputs {
            defaults: pack.values.clone(),
            rules: pack.rules.clone(),
            choices: preset_choices(&subject, layer.values.as_deref(), layer.presets.as_deref()),
            overlays: vec![values.clone()],
        };
        let problems = check_layer_values(&subject, &pack, &inputs, &mut findings);
        resolved.push(ResolvedLayer {
            index,
            layer: layer.clone(),
            pack,
            values,
            inputs,
            problems,
        });
    }

    check_layer_counts(spec.profile_type, &resolved, &mut findings);
    if spec.profile_type != ProfileType::AddOn {
        // Infra layers can come only from this profile, so dependencies on them can be
        // checked here; dependencies on add-ons may be met by add-on profiles a cluster adds.
        let entries: Vec<StackEntry> = resolved
            .iter()
            .map(|l| StackEntry::new(format!("spec.layers[{}]", l.index), &l.pack.manifest))
            .collect();
        for violation in check_dependencies(&entries) {
            if violation.target_layer != Layer::Addon {
                findings.push(violation.finding);
            }
        }
    }
    (resolved, findings)
}

/// The layer's presets and values against the pack's schema; returns the problems found
/// (reported as findings on `subject`) so that composition does not report them again.
fn check_layer_values(
    subject: &str,
    pack: &ResolvedPack,
    inputs: &LayerInputs,
    findings: &mut Findings,
) -> Vec<ValueProblem> {
    let pack_ref = format!("{}:{}", pack.manifest.name, pack.manifest.version);
    let errors = inputs.choice_errors(0);
    if !errors.is_empty() {
        for error in errors {
            findings.error(
                format!("{subject}.presets"),
                format!("pack {pack_ref}: {error}"),
            );
        }
        return Vec::new();
    }
    let resolution = match inputs.resolve() {
        Ok(resolution) => resolution,
        Err(errors) => {
            for error in errors {
                findings.error(
                    format!("{subject}.presets"),
                    format!("pack {pack_ref}: {error}"),
                );
            }
            return Vec::new();
        }
    };
    for problem in &resolution.problems {
        let message = format!("pack {pack_ref}: {problem}");
        match problem {
            ValueProblem::RequiredUnset { .. } => findings.warning(
                format!("{subject}.values"),
                format!(
                    "{message}; every cluster using this profile must set it in spec.overrides"
                ),
            ),
            ValueProblem::WrongType { .. } | ValueProblem::ReadOnlyChanged { .. } => {
                findings.error(format!("{subject}.values"), message)
            }
        }
    }
    for problem in check_macros(resolution.values.unmasked()) {
        findings.warning(
            format!("{subject}.values"),
            format!(
                "pack {pack_ref}: {problem}; every cluster using this profile must set the value in spec.overrides"
            ),
        );
    }
    resolution.problems
}

/// Why a layer's `values` text is refused; put after the field in a finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerValuesError {
    #[error("found {found}, expected YAML text holding a mapping of values")]
    NotAMapping { found: &'static str },
    #[error("is not valid YAML: {detail}")]
    Yaml { detail: String },
}

/// Parses a layer's `values` text: empty or absent is null; otherwise a YAML mapping.
pub fn parse_layer_values(text: Option<&str>) -> Result<serde_yaml::Value, LayerValuesError> {
    let Some(text) = text else {
        return Ok(serde_yaml::Value::Null);
    };
    match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(serde_yaml::Value::Mapping(m)) => Ok(serde_yaml::Value::Mapping(m)),
        Ok(serde_yaml::Value::Null) => Ok(serde_yaml::Value::Null),
        Ok(other) => Err(LayerValuesError::NotAMapping {
            found: describe_yaml(&other),
        }),
        Err(e) => Err(LayerValuesError::Yaml {
            detail: e.to_string(),
        }),
    }
}

pub(crate) fn describe_yaml(value: &serde_yaml::Value) -> &'static str {
    match value {
        serde_yaml::Value::Null => "nothing",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

fn with_article(profile_type: ProfileType) -> &'static str {
    match profile_type {
        ProfileType::Infra => "an infra",
        ProfileType::AddOn => "an add-on",
        ProfileType::Full => "a full",
    }
}

fn check_layer_counts(
    profile_type: ProfileType,
    layers: &[ResolvedLayer],
    findings: &mut Findings,
) {
    let of = |layer: Layer| -> Vec<&ResolvedLayer> {
        layers
            .iter()
            .filter(|l| l.pack.manifest.layer == layer)
            .collect()
    };
    let describe = |found: &[&ResolvedLayer]| -> String {
        found
            .iter()
            .map(|l| format!("{} at spec.layers[{}]", l.layer.reference(), l.index))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match profile_type {
        ProfileType::AddOn => {
            for l in layers
                .iter()
                .filter(|l| l.pack.manifest.layer != Layer::Addon)
            {
                findings.error(
                    format!("spec.layers[{}]", l.index),
                    format!(
                        "pack {} is a {} pack; an add-on profile holds only addon packs",
                        l.layer.reference(),
                        l.pack.manifest.layer
                    ),
                );
            }
        }
        ProfileType::Infra | ProfileType::Full => {
            for layer in [Layer::Os, Layer::K8s, Layer::Cni, Layer::Csi] {
                let found = of(layer);
                match found.len() {
                    1 => {}
                    0 => findings.error(
                        "spec.layers",
                        format!(
                            "has no {layer} layer; {} profile needs exactly one",
                            with_article(profile_type)
                        ),
                    ),
                    _ => findings.error(
                        "spec.layers",
                        format!(
                            "has {} {layer} layers ({}); {} profile needs exactly one",
                            found.len(),
                            describe(&found),
                            with_article(profile_type)
                        ),
                    ),
                }
            }
            let kernels = of(Layer::Kernel);
            if kernels.len() > 1 {
                findings.error(
                    "spec.layers",
                    format!(
                        "has {} kernel layers ({}); at most one is allowed",
                        kernels.len(),
                        describe(&kernels)
                    ),
                );
            }
            if profile_type == ProfileType::Infra {
                for l in of(Layer::Addon) {
                    findings.error(
                        format!("spec.layers[{}]", l.index),
                        format!(
                            "pack {} is an addon pack; an infra profile holds no add-ons (use a full profile, or an add-on profile)",
                            l.layer.reference()
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
