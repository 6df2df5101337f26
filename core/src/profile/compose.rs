//! Composition: a cluster's profiles become one install-ordered stack with merged values.
//!
//! A cluster uses exactly one infra or full profile and any add-on profiles. The stack is
//! the base profile's `os`, `kernel`, `k8s`, `cni`, `csi` layers in that order, then every
//! add-on layer ordered by install priority (lower first, unset = 0), ties kept in profile
//! order (the base profile's add-ons, then the add-on profiles as the cluster lists them)
//! and layer order. A pack in two profiles is an error naming both.
//!
//! Values: pack defaults < presets < profile layer values < cluster overrides, merged
//! with Helm's rules ([`crate::values_merge::merge_values`]); see [`layer_values`]. The
//! result is checked against the pack's schema.yaml: a required value still unset is an
//! error here, naming the key and the schema's hint. A problem the profile already has is
//! reported once, by the profile's validation.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::catalog::PackSource;
use crate::cluster::{WorkloadCluster, check_self_healing};
use crate::finding::{FindingKind, Findings};
use crate::layer::macros::check_macros;
use crate::pack::PackContent;
use crate::pack::manifest::{Layer, PackManifest};
use crate::pack::values_schema::ValueProblem;
use crate::profile::constraints::{StackEntry, check_dependencies, check_resources};
use crate::profile::layer_values::{self, LayerInputs, LayerValues, preset_choices};
use crate::profile::rules::{ResolvedLayer, parse_layer_values, validate_profile};
use crate::profile::selection::{SelectionError, select_profile};
use crate::profile::{ClusterProfile, ProfileCloud, ProfileType};

/// One layer of a composed stack.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StackLayer {
    /// 1-based install position.
    pub order: usize,
    pub name: String,
    pub version: String,
    pub layer: Layer,
    pub content: PackContent,
    pub digest: String,
    pub profile: String,
    pub profile_version: String,
    pub priority: i32,
    /// The `PackRegistry` named by the profile layer; the default one when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The effective values; secrets are masked when printed or serialized.
    pub values: LayerValues,
    #[serde(skip)]
    pub manifest: PackManifest,
    #[serde(skip)]
    pub origin: String,
    /// The layer's index in its profile's `spec.layers`.
    #[serde(skip)]
    pub index: usize,
    #[serde(skip)]
    pub inputs: LayerInputs,
    /// The problems the profile's validation already reported.
    #[serde(skip)]
    pub profile_problems: Vec<ValueProblem>,
}

/// A cluster's stack, ready to install in order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComposedStack {
    pub cluster: String,
    pub cloud_type: String,
    pub profiles: Vec<String>,
    pub layers: Vec<StackLayer>,
}

const INFRA_ORDER: [Layer; 5] = [Layer::Os, Layer::Kernel, Layer::K8s, Layer::Cni, Layer::Csi];

struct Selected<'a> {
    profile: &'a ClusterProfile,
    name: String,
    layers: Vec<ResolvedLayer>,
}

/// Composes a cluster's stack. Returns the stack when there is no error finding; the
/// findings hold every violated rule (and warnings) either way.
pub fn compose(
    cluster: &WorkloadCluster,
    profiles: &[ClusterProfile],
    source: &dyn PackSource,
) -> (Option<ComposedStack>, Findings) {
    let mut findings = validate_cluster_spec(cluster);
    let cloud = cluster.spec.cloud_type.as_profile_cloud();

    let mut selected: Vec<Selected<'_>> = Vec::new();
    for (i, reference) in cluster.spec.profiles.iter().enumerate() {
        let subject = format!("spec.profiles[{i}]");
        let profile = match select_profile(profiles, &reference.name, &reference.version) {
            Ok(profile) => profile,
            Err(error) => {
                let kind = match error {
                    SelectionError::Ambiguous { .. } => FindingKind::Invalid,
                    _ => FindingKind::ProfileNotFound,
                };
                findings.error_of(kind, subject, error.to_string());
                continue;
            }
        };
        if profile.spec.cloud_type != ProfileCloud::All && profile.spec.cloud_type != cloud {
            findings.error_of(
                FindingKind::CloudMismatch,
                &subject,
                format!(
                    "profile {} is for cloud {:?}, but the cluster's cloudType is {:?}",
                    reference.name,
                    profile.spec.cloud_type.to_string(),
                    cloud.to_string()
                ),
            );
        }
        let (layers, profile_findings) = validate_profile(profile, source);
        findings.extend_prefixed(&format!("profile {}", reference.name), profile_findings);
        // Packs must allow the cluster's cloud too, which an `all` profile does not ensure.
        for l in &layers {
            if !cloud.admits(&l.pack.manifest) {
                findings.error(
                    format!("profile {}: spec.layers[{}]", reference.name, l.index),
                    format!(
                        "pack {} does not support the cluster's cloud {:?}",
                        l.layer.reference(),
                        cloud.to_string()
                    ),
                );
            }
        }
        selected.push(Selected {
            profile,
            name: reference.name.clone(),
            layers,
        });
    }

    check_one_base_profile(&selected, &mut findings);
    check_packs_unique_across_profiles(&selected, &mut findings);
    let mut stack = order_stack(&selected);
    apply_cluster_overrides(cluster, &mut stack, &mut findings);
    resolve_values(&mut stack, &mut findings);

    let entries: Vec<StackEntry<'_>> = stack
        .iter()
        .map(|l| {
            StackEntry::new(format!("profile {}: {}", l.profile, l.name), &l.manifest)
                .with_values(l.values.unmasked())
        })
        .collect();
    for violation in check_dependencies(&entries) {
        findings.push(violation.finding);
    }
    findings.extend(check_resources(
        &entries,
        &cluster.spec.node_pools.effective(cluster.spec.cloud_type),
    ));

    if findings.has_errors() {
        return (None, findings);
    }
    let composed = ComposedStack {
        cluster: cluster.metadata.name.clone().unwrap_or_default(),
        cloud_type: cloud.to_string(),
        profiles: selected
            .iter()
            .map(|s| format!("{}:{}", s.name, s.profile.spec.version))
            .collect(),
        layers: stack,
    };
    (Some(composed), findings)
}

/// The cluster's own fields: control-plane count, worker pool names, profile list.
pub fn validate_cluster_spec(cluster: &WorkloadCluster) -> Findings {
    let mut findings = Findings::new();
    let spec = &cluster.spec;
    if cluster.metadata.name.as_deref().is_none_or(str::is_empty) {
        findings.error("metadata.name", "is missing; a cluster needs a name");
    }
    if spec.profiles.is_empty() {
        findings.error(
            "spec.profiles",
            "is empty; a cluster needs one infra or full profile",
        );
    }
    let count = spec.node_pools.control_plane.count;
    if ![1, 3, 5].contains(&count) {
        findings.error(
            "spec.nodePools.controlPlane.count",
            format!("is {count}; expected 1, 3 or 5 (etcd needs an odd number of members)"),
        );
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, pool) in spec.node_pools.workers.iter().enumerate() {
        let subject = format!("spec.nodePools.workers[{i}].name");
        if !is_dns_label(&pool.name) {
            findings.error(
                &subject,
                format!(
                    "{:?} is not a valid pool name; expected lowercase letters, digits and '-', \
                     starting and ending with a letter or digit, at most 63 characters",
                    pool.name
                ),
            );
        }
        if let Some(first) = names.insert(pool.name.as_str(), i) {
            findings.error(
                &subject,
                format!(
                    "{:?} is already the name of spec.nodePools.workers[{first}]",
                    pool.name
                ),
            );
        }
    }
    findings.extend(check_self_healing(spec));
    findings
}

fn is_dns_label(name: &str) -> bool {
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(valid_char)
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn check_one_base_profile(selected: &[Selected<'_>], findings: &mut Findings) {
    let bases: Vec<&Selected<'_>> = selected
        .iter()
        .filter(|s| s.profile.spec.profile_type != ProfileType::AddOn)
        .collect();
    match bases.len() {
        1 => {}
        0 if !selected.is_empty() => findings.error(
            "spec.profiles",
            "has no infra or full profile; a cluster needs exactly one to provide its OS, Kubernetes, CNI and CSI",
        ),
        0 => {}
        _ => findings.error(
            "spec.profiles",
            format!(
                "has {} infra or full profiles ({}); a cluster uses exactly one, plus any add-on profiles",
                bases.len(),
                bases.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ),
    }
}

fn check_packs_unique_across_profiles(selected: &[Selected<'_>], findings: &mut Findings) {
    let mut first_seen: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
    for s in selected {
        for l in &s.layers {
            let pack = l.pack.manifest.name.as_str();
            match first_seen.get(pack) {
                Some((other, index)) if *other != s.name => findings.error(
                    format!("profile {}: spec.layers[{}]", s.name, l.index),
                    format!(
                        "pack {pack} is also in profile {other} (spec.layers[{index}]); a pack may appear in only one of a cluster's profiles"
                    ),
                ),
                Some(_) => {}
                None => {
                    first_seen.insert(pack, (s.name.as_str(), l.index));
                }
            }
        }
    }
}

fn stack_layer(s: &Selected<'_>, l: &ResolvedLayer) -> StackLayer {
    // Until the cluster's overrides are in, the profile's view; resolve_values replaces it.
    let values = match l.inputs.resolve() {
        Ok(resolution) => resolution.values,
        Err(_) => LayerValues::new(l.pack.values.clone(), &l.pack.rules.schema),
    };
    StackLayer {
        order: 0,
        name: l.pack.manifest.name.clone(),
        version: l.pack.manifest.version.clone(),
        layer: l.pack.manifest.layer,
        content: l.pack.content,
        digest: l.pack.digest.clone(),
        profile: s.name.clone(),
        profile_version: s.profile.spec.version.clone(),
        priority: l.layer.priority.unwrap_or(0),
        registry: l.layer.registry.clone(),
        values,
        manifest: l.pack.manifest.clone(),
        origin: l.pack.origin.clone(),
        index: l.index,
        inputs: l.inputs.clone(),
        profile_problems: l.problems.clone(),
    }
}

fn order_stack(selected: &[Selected<'_>]) -> Vec<StackLayer> {
    let base = selected
        .iter()
        .find(|s| s.profile.spec.profile_type != ProfileType::AddOn);
    let mut stack = Vec::new();
    if let Some(base) = base {
        for layer in INFRA_ORDER {
            for l in base
                .layers
                .iter()
                .filter(|l| l.pack.manifest.layer == layer)
            {
                stack.push(stack_layer(base, l));
            }
        }
    }
    // The base profile first, then the add-on profiles in the cluster's order; a stable
    // sort by priority keeps that order among equal priorities.
    let mut addons: Vec<StackLayer> = base
        .into_iter()
        .chain(
            selected
                .iter()
                .filter(|s| s.profile.spec.profile_type == ProfileType::AddOn),
        )
        .flat_map(|s| {
            s.layers
                .iter()
                .filter(|l| l.pack.manifest.layer == Layer::Addon)
                .map(move |l| stack_layer(s, l))
        })
        .collect();
    addons.sort_by_key(|l| l.priority);
    stack.extend(addons);
    for (i, layer) in stack.iter_mut().enumerate() {
        layer.order = i + 1;
    }
    stack
}

fn apply_cluster_overrides(
    cluster: &WorkloadCluster,
    stack: &mut [StackLayer],
    findings: &mut Findings,
) {
    for (i, over) in cluster.spec.overrides.iter().enumerate() {
        let subject = format!("spec.overrides[{i}]");
        let Some(layer) = stack.iter_mut().find(|l| l.name == over.pack) else {
            let names: Vec<&str> = stack.iter().map(|l| l.name.as_str()).collect();
            findings.error(
                format!("{subject}.pack"),
                format!(
                    "{:?} is not a pack of this cluster's stack; the stack has: {}",
                    over.pack,
                    names.join(", ")
                ),
            );
            continue;
        };
        match parse_layer_values(Some(&over.values)) {
            Ok(values) => layer.inputs.overlays.push(values),
            Err(error) => findings.error(format!("{subject}.values"), error.to_string()),
        }
        let first = layer.inputs.choices.len();
        layer.inputs.choices.extend(preset_choices(
            &subject,
            Some(&over.values),
            over.presets.as_deref(),
        ));
        for error in layer.inputs.choice_errors(first) {
            findings.error(
                format!("{subject}.presets"),
                format!("pack {}:{}: {error}", layer.name, layer.version),
            );
        }
    }
}

/// Each layer's effective values, with the problems the profile did not already report.
/// A required value unset is an error now: nothing comes after the cluster.
fn resolve_values(stack: &mut [StackLayer], findings: &mut Findings) {
    for layer in stack {
        let Ok(layer_values::Resolution { values, problems }) = layer.inputs.resolve() else {
            // The failing choice was reported where it was made.
            continue;
        };
        let subject = format!("profile {}: spec.layers[{}]", layer.profile, layer.index);
        // Nothing comes after the cluster: a macro that names nothing is refused now, not
        // when the agent installs the layer.
        for problem in check_macros(values.unmasked()) {
            findings.error(
                &subject,
                format!(
                    "pack {}:{}: {problem}; set the value in the profile layer's values or in the cluster's spec.overrides for pack {}",
                    layer.name, layer.version, layer.name
                ),
            );
        }
        layer.values = values;
        for problem in problems {
            let already = layer.profile_problems.contains(&problem)
                && !matches!(problem, ValueProblem::RequiredUnset { .. });
            if already {
                continue;
            }
            let message = format!("pack {}:{}: {problem}", layer.name, layer.version);
            match problem {
                ValueProblem::RequiredUnset { .. } => findings.error(
                    &subject,
                    format!(
                        "{message}; set it in the profile layer's values or in the cluster's \
                         spec.overrides for pack {}",
                        layer.name
                    ),
                ),
                ValueProblem::WrongType { .. } | ValueProblem::ReadOnlyChanged { .. } => {
                    findings.error(&subject, message)
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "compose_tests.rs"]
mod tests;

/// Warnings for the layers whose pack is past its end of life (`eol`, a `YYYY-MM-DD` date)
/// on `today`: still installed, said so. An `eol` that is not a date is said too, since it
/// cannot be checked.
pub fn end_of_life_warnings(
    stack: &ComposedStack,
    today: k8s_openapi::jiff::civil::Date,
) -> Findings {
    let mut findings = Findings::new();
    for layer in &stack.layers {
        let Some(eol) = layer
            .manifest
            .eol
            .as_deref()
            .filter(|e| !e.trim().is_empty())
        else {
            continue;
        };
        let subject = format!(
            "profile {}: layer {} {}",
            layer.profile, layer.name, layer.version
        );
        match eol.parse::<k8s_openapi::jiff::civil::Date>() {
            Ok(date) if date < today => findings.warning(
                subject,
                format!(
                    "the pack reached its end of life on {date} (eol); move to a supported version"
                ),
            ),
            Ok(_) => {}
            Err(_) => findings.warning(
                subject,
                format!(
                    "eol {eol:?} is not a date (YYYY-MM-DD); its end of life cannot be checked"
                ),
            ),
        }
    }
    findings
}

#[cfg(test)]
#[path = "compose_values_tests.rs"]
mod values_tests;
