//! `pack.json`: a pack's metadata, validated against the pack JSON schema of the vendor
//! documentation (`shared/seeds/001_…`) and the schema the publisher's pack checks apply
//! to published packs. Where the two disagree both forms are accepted (see
//! [`crate::pack::vocabulary`] and `docs/packs.md`, which says where each rule comes from).
//!
//! Validation walks the raw JSON rather than relying on serde's errors, so that every
//! problem is reported at once with its field path, what was found and what was expected.
//! Unknown fields, trailing commas, values outside the known vocabulary of a free field
//! (`addonType`, `cloudTypes`) and a leading `v` on the version are warnings; everything
//! both schemas forbid is an error. Checks that need the pack folder (that `charts` and
//! `kubeManifests` exist) are made by [`crate::pack::Pack`].

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::finding::Findings;
use crate::pack::lenient_json::strip_trailing_commas;
use crate::version::{PackVersion, VersionBounds};

pub use crate::pack::vocabulary::{
    AddonType, DependencyType, Layer, PackCloud, ResourceType, ScheduleType,
};

/// A validated `pack.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackManifest {
    pub name: String,
    pub display_name: String,
    pub version: String,
    #[serde(skip)]
    pub parsed_version: Option<PackVersion>,
    pub layer: Layer,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cloud_types: Vec<PackCloud>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_type: Option<PackCloud>,
    /// Cloud types in `cloudTypes`/`cloudType` that neither schema Strata knows lists, as
    /// written; kept so that a pack declaring only such clouds is not taken for one that
    /// declares none (which would mean every cloud).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_cloud_types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eol: Option<String>,
    /// As written: the publisher's schema leaves it free text. [`PackManifest::addon_kind`]
    /// reads it against the known vocabulary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addon_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addon_sub_type: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kube_manifests: Vec<String>,
    /// `ansibleRoles` (publisher's schema): paths inside the pack, recorded, never run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ansible_roles: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Constraints::is_empty")]
    pub constraints: Constraints,
}

impl PackManifest {
    /// The version, parsed; validation refuses a manifest whose version does not parse,
    /// so this is only `None` for a manifest built by hand.
    pub fn version(&self) -> Option<&PackVersion> {
        self.parsed_version.as_ref()
    }

    /// The clouds this pack declares (`cloudTypes` plus `cloudType`); empty when it
    /// declares none.
    pub fn declared_clouds(&self) -> Vec<PackCloud> {
        let mut clouds = self.cloud_types.clone();
        if let Some(cloud) = self.cloud_type
            && !clouds.contains(&cloud)
        {
            clouds.push(cloud);
        }
        clouds
    }

    /// Whether the pack declares no cloud at all (known or not), which means every cloud.
    pub fn declares_no_cloud(&self) -> bool {
        self.cloud_types.is_empty()
            && self.cloud_type.is_none()
            && self.other_cloud_types.is_empty()
    }

    /// Every declared cloud type as written, known ones first, for messages.
    pub fn declared_cloud_names(&self) -> Vec<String> {
        self.declared_clouds()
            .iter()
            .map(|c| c.to_string())
            .chain(self.other_cloud_types.iter().cloned())
            .collect()
    }

    /// Whether the pack may be used on a cloud. A pack that declares no cloud, or `all`,
    /// may be used anywhere; one that declares only clouds Strata does not know, nowhere.
    pub fn supports_cloud(&self, cloud: PackCloud) -> bool {
        let declared = self.declared_clouds();
        self.declares_no_cloud() || declared.contains(&PackCloud::All) || declared.contains(&cloud)
    }

    /// The add-on type read against the known vocabulary; `None` when absent or unknown.
    pub fn addon_kind(&self) -> Option<AddonType> {
        self.addon_type.as_deref().and_then(AddonType::parse)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Constraints {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceConstraint>,
}

impl Constraints {
    pub fn is_empty(&self) -> bool {
        self.dependencies.is_empty() && self.resources.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub pack_name: String,
    pub layer: Layer,
    #[serde(rename = "type")]
    pub kind: DependencyType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_version: Option<String>,
    #[serde(skip)]
    pub bounds: VersionBounds,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceConstraint {
    #[serde(rename = "type")]
    pub kind: ResourceType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_limit: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ResourceComponent>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceComponent {
    pub schedule_type: ScheduleType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_request_param_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_count_param_ref: Option<String>,
}

const TOP_LEVEL_FIELDS: &[&str] = &[
    "name",
    "displayName",
    "version",
    "layer",
    "group",
    "cloudTypes",
    "cloudType",
    "eol",
    "addonType",
    "addonSubType",
    "ansibleRoles",
    "charts",
    "kubeManifests",
    "annotations",
    "constraints",
];

/// Parses and validates the text of a `pack.json`. Returns the manifest when there are no
/// errors (warnings may still be present).
pub fn parse_manifest(text: &str) -> (Option<PackManifest>, Findings) {
    let (manifest, findings) = parse_manifest_partially(text);
    if findings.has_errors() {
        (None, findings)
    } else {
        (manifest, findings)
    }
}

/// Like [`parse_manifest`], but also returns a manifest that has errors in optional
/// fields (the invalid entries left out), so that checks of the rest of the pack can still
/// run and every problem is reported in one pass. `None` when the required fields are
/// unusable.
pub(crate) fn parse_manifest_partially(text: &str) -> (Option<PackManifest>, Findings) {
    let mut findings = Findings::new();
    let (clean, comma_lines) = strip_trailing_commas(text);
    for line in comma_lines {
        findings.warning(
            format!("line {line}"),
            "trailing comma before a closing bracket; accepted, but strict JSON parsers reject it",
        );
    }
    let value: Value = match serde_json::from_str(&clean) {
        Ok(value) => value,
        Err(e) => {
            findings.error(
                format!("line {}", e.line()),
                format!(
                    "not valid JSON at column {}: {e}; expected a JSON object",
                    e.column()
                ),
            );
            return (None, findings);
        }
    };
    let Value::Object(object) = value else {
        findings.error(
            "",
            format!(
                "found {}, expected a JSON object with name, displayName, version and layer",
                describe(&value)
            ),
        );
        return (None, findings);
    };
    let manifest = validate_object(&object, &mut findings);
    (manifest, findings)
}

fn validate_object(object: &Map<String, Value>, findings: &mut Findings) -> Option<PackManifest> {
    for key in object.keys() {
        if !TOP_LEVEL_FIELDS.contains(&key.as_str()) {
            warn_unknown(findings, key, key, TOP_LEVEL_FIELDS);
        }
    }
    let name = required_string(object, "name", findings);
    if let Some(name) = &name
        && !is_oci_path_component(name)
    {
        findings.warning(
            "name",
            format!(
                "{name:?} cannot name an OCI repository (expected lowercase letters and digits, \
                 separated by single '.', '_' or '-'); this pack cannot be pushed to a pack registry"
            ),
        );
    }
    let display_name = required_string(object, "displayName", findings);
    let version = required_string(object, "version", findings);
    let parsed_version = version
        .as_deref()
        .and_then(|v| match PackVersion::parse(v) {
            Ok(parsed) => Some(parsed),
            Err(e) => {
                findings.error("version", e.to_string());
                None
            }
        });
    if let Some(version) = &version
        && parsed_version.is_some()
        && version.trim_start().starts_with(['v', 'V'])
    {
        findings.warning(
            "version",
            format!(
                "{version:?} has a leading 'v'; accepted, but the publisher's pack checks refuse it \
                 (write {:?})",
                version.trim_start()[1..].trim_end()
            ),
        );
    }
    let layer = match object.get("layer") {
        None => {
            findings.error(
                "layer",
                format!("is missing; expected one of {}", Layer::expected()),
            );
            None
        }
        Some(value) => {
            schema_value::<Layer>(value, "layer", findings, Layer::parse, Layer::expected)
        }
    };
    let group = optional_string(object, "group", findings);
    let eol = optional_string(object, "eol", findings);
    let addon_sub_type = optional_string(object, "addonSubType", findings);
    let mut other_cloud_types = Vec::new();
    let cloud_types = match object.get("cloudTypes") {
        None => Vec::new(),
        Some(value) => string_array(value, "cloudTypes", findings)
            .into_iter()
            .filter_map(|(path, s)| cloud(&s, &path, &mut other_cloud_types, findings))
            .collect(),
    };
    let cloud_type = match object.get("cloudType") {
        None => None,
        Some(Value::String(s)) => cloud(s, "cloudType", &mut other_cloud_types, findings),
        Some(other) => {
            findings.error(
                "cloudType",
                format!(
                    "found {}, expected a cloud type such as \"aws\"",
                    describe(other)
                ),
            );
            None
        }
    };
    let addon_type = validate_addon_type(object.get("addonType"), layer, findings);
    let charts = relative_paths(object.get("charts"), "charts", findings);
    let kube_manifests = relative_paths(object.get("kubeManifests"), "kubeManifests", findings);
    let ansible_roles = relative_paths(object.get("ansibleRoles"), "ansibleRoles", findings);
    let annotations = annotations(object.get("annotations"), findings);
    let constraints = object
        .get("constraints")
        .map(|value| constraints(value, findings))
        .unwrap_or_default();

    Some(PackManifest {
        name: name?,
        display_name: display_name?,
        version: version?,
        parsed_version: Some(parsed_version?),
        layer: layer?,
        group,
        cloud_types,
        cloud_type,
        other_cloud_types,
        eol,
        addon_type,
        addon_sub_type,
        charts,
        kube_manifests,
        ansible_roles,
        annotations,
        constraints,
    })
}

/// A cloud type: a known one, or a warning naming the known ones and the text kept in
/// `other`, so that a cloud Strata has not heard of never makes a pack unusable to read.
fn cloud(
    text: &str,
    subject: &str,
    other: &mut Vec<String>,
    findings: &mut Findings,
) -> Option<PackCloud> {
    let parsed = PackCloud::parse(text);
    if parsed.is_none() {
        findings.warning(
            subject,
            format!(
                "{text:?} is not a cloud type Strata knows (known: {}); accepted, but no \
                 Strata cloud matches it",
                PackCloud::expected()
            ),
        );
        other.push(text.to_string());
    }
    parsed
}

/// `addonType` is free text in the publisher's schema and a fixed list in the docs': a
/// value outside the list is a warning, a missing one on an addon pack an error (the docs
/// require it, and every published add-on sets it).
fn validate_addon_type(
    value: Option<&Value>,
    layer: Option<Layer>,
    findings: &mut Findings,
) -> Option<String> {
    let text = match value {
        None => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => {
            findings.error(
                "addonType",
                format!(
                    "found {}, expected a string such as \"monitoring\"",
                    describe(other)
                ),
            );
            None
        }
    };
    if let Some(text) = &text
        && AddonType::parse(text).is_none()
    {
        findings.warning(
            "addonType",
            format!(
                "{text:?} is not an add-on type Strata knows (known: {}); accepted as written",
                AddonType::expected()
            ),
        );
    }
    match (layer, value) {
        (Some(Layer::Addon), None) => findings.error(
            "addonType",
            format!(
                "is missing; a pack with layer \"addon\" must set it to one of {}",
                AddonType::expected()
            ),
        ),
        (Some(layer), Some(_)) if layer != Layer::Addon => findings.warning(
            "addonType",
            format!("is only used by addon packs; this pack's layer is {layer:?}"),
        ),
        _ => {}
    }
    text
}

fn constraints(value: &Value, findings: &mut Findings) -> Constraints {
    let Value::Object(object) = value else {
        findings.error(
            "constraints",
            format!("found {}, expected an object", describe(value)),
        );
        return Constraints::default();
    };
    for key in object.keys() {
        if key != "dependencies" && key != "resources" {
            warn_unknown(
                findings,
                &format!("constraints.{key}"),
                key,
                &["dependencies", "resources"],
            );
        }
    }
    let dependencies = objects_in_array(
        object.get("dependencies"),
        "constraints.dependencies",
        findings,
    )
    .into_iter()
    .filter_map(|(path, item)| dependency(&path, item, findings))
    .collect();
    let resources = objects_in_array(object.get("resources"), "constraints.resources", findings)
        .into_iter()
        .filter_map(|(path, item)| resource(&path, item, findings))
        .collect();
    Constraints {
        dependencies,
        resources,
    }
}

fn dependency(
    path: &str,
    object: &Map<String, Value>,
    findings: &mut Findings,
) -> Option<Dependency> {
    const FIELDS: &[&str] = &["packName", "layer", "type", "minVersion", "maxVersion"];
    warn_unknown_fields(object, path, FIELDS, findings);
    let pack_name = required_string_at(object, path, "packName", findings);
    let layer = required_schema(
        object,
        path,
        "layer",
        findings,
        Layer::parse,
        Layer::expected,
    );
    let kind = required_schema(
        object,
        path,
        "type",
        findings,
        DependencyType::parse,
        DependencyType::expected,
    );
    let mut bound = |field: &str| -> (Option<String>, Option<PackVersion>) {
        // `""` is how the docs' examples and most published packs write "no bound".
        let text = optional_string_at(object, path, field, findings)
            .filter(|text| !text.trim().is_empty());
        let parsed = text.as_deref().and_then(|t| match PackVersion::parse(t) {
            Ok(v) => Some(v),
            Err(e) => {
                findings.error(format!("{path}.{field}"), e.to_string());
                None
            }
        });
        (text, parsed)
    };
    let (min_version, min) = bound("minVersion");
    let (max_version, max) = bound("maxVersion");
    if let (Some(min), Some(max)) = (&min, &max)
        && min > max
    {
        findings.error(
            path,
            format!("minVersion {min} is above maxVersion {max}; no version can satisfy it"),
        );
    }
    Some(Dependency {
        pack_name: pack_name?,
        layer: layer?,
        kind: kind?,
        min_version,
        max_version,
        bounds: VersionBounds { min, max },
    })
}

fn resource(
    path: &str,
    object: &Map<String, Value>,
    findings: &mut Findings,
) -> Option<ResourceConstraint> {
    warn_unknown_fields(object, path, &["type", "minLimit", "components"], findings);
    let kind = required_schema(
        object,
        path,
        "type",
        findings,
        ResourceType::parse,
        ResourceType::expected,
    );
    let min_limit = match object.get("minLimit") {
        None => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(limit) if limit >= 0.0 => Some(limit),
            _ => {
                findings.error(
                    format!("{path}.minLimit"),
                    format!("found {n}, expected a number of zero or more"),
                );
                None
            }
        },
        Some(other) => {
            findings.error(
                format!("{path}.minLimit"),
                format!("found {}, expected a number", describe(other)),
            );
            None
        }
    };
    let components = objects_in_array(
        object.get("components"),
        &format!("{path}.components"),
        findings,
    )
    .into_iter()
    .filter_map(|(cpath, item)| {
        warn_unknown_fields(
            item,
            &cpath,
            &[
                "scheduleType",
                "resourceRequestParamRef",
                "replicaCountParamRef",
            ],
            findings,
        );
        let schedule_type = required_schema(
            item,
            &cpath,
            "scheduleType",
            findings,
            ScheduleType::parse,
            ScheduleType::expected,
        );
        let resource_request_param_ref =
            optional_string_at(item, &cpath, "resourceRequestParamRef", findings);
        let replica_count_param_ref =
            optional_string_at(item, &cpath, "replicaCountParamRef", findings);
        Some(ResourceComponent {
            schedule_type: schedule_type?,
            resource_request_param_ref,
            replica_count_param_ref,
        })
    })
    .collect();
    Some(ResourceConstraint {
        kind: kind?,
        min_limit,
        components,
    })
}

fn annotations(value: Option<&Value>, findings: &mut Findings) -> BTreeMap<String, String> {
    let mut result = BTreeMap::new();
    match value {
        None => {}
        Some(Value::Object(object)) => {
            for (key, value) in object {
                match value {
                    Value::String(s) => {
                        result.insert(key.clone(), s.clone());
                    }
                    other => findings.error(
                        format!("annotations.{key}"),
                        format!(
                            "found {}, expected a string (annotation values are strings: write {})",
                            describe(other),
                            serde_json::to_string(&other.to_string()).unwrap_or_default()
                        ),
                    ),
                }
            }
        }
        Some(other) => findings.error(
            "annotations",
            format!(
                "found {}, expected an object of string values",
                describe(other)
            ),
        ),
    }
    result
}

/// `charts` and `kubeManifests` entries must be paths inside the pack: relative, with no
/// `..`, so that a pack cannot point at files outside itself. Every string entry is kept,
/// so indexes in later findings match the file; a manifest with a bad entry is refused.
fn relative_paths(value: Option<&Value>, field: &str, findings: &mut Findings) -> Vec<String> {
    let Some(value) = value else {
        return Vec::new();
    };
    string_array(value, field, findings)
        .into_iter()
        .map(|(path, entry)| {
            if let Err(reason) = check_relative_path(&entry) {
                findings.error(path, format!("{entry:?} {reason}"));
            }
            entry
        })
        .collect()
}

/// Why a path does not name something inside a pack; the message follows the path in a
/// finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PackPathError {
    #[error("is empty; expected a path relative to the pack folder")]
    Empty,
    #[error("is an absolute path; expected a path relative to the pack folder")]
    Absolute,
    #[error("contains '..'; expected a path inside the pack folder")]
    LeavesPack,
}

/// Whether a path names something inside a pack: relative, no `..`, no empty path.
pub fn check_relative_path(path: &str) -> Result<(), PackPathError> {
    if path.is_empty() {
        return Err(PackPathError::Empty);
    }
    if path.starts_with('/') || path.starts_with('\\') || path.chars().nth(1) == Some(':') {
        return Err(PackPathError::Absolute);
    }
    if path.split(['/', '\\']).any(|part| part == "..") {
        return Err(PackPathError::LeavesPack);
    }
    Ok(())
}

/// An OCI repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn is_oci_path_component(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut separator = String::new();
    let mut seen_alnum = false;
    for c in name.chars() {
        if alnum(c) {
            let valid_separator = separator.is_empty()
                || separator == "."
                || separator == "_"
                || separator == "__"
                || separator.chars().all(|s| s == '-');
            if !valid_separator || (!seen_alnum && !separator.is_empty()) {
                return false;
            }
            separator.clear();
            seen_alnum = true;
        } else if c == '.' || c == '_' || c == '-' {
            separator.push(c);
        } else {
            return false;
        }
    }
    seen_alnum && separator.is_empty()
}

fn required_string(
    object: &Map<String, Value>,
    field: &str,
    findings: &mut Findings,
) -> Option<String> {
    required_string_at(object, "", field, findings)
}

fn field_path(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn required_string_at(
    object: &Map<String, Value>,
    path: &str,
    field: &str,
    findings: &mut Findings,
) -> Option<String> {
    let subject = field_path(path, field);
    match object.get(field) {
        None => {
            findings.error(subject, "is missing; expected a non-empty string");
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            findings.error(subject, "is empty; expected a non-empty string");
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            findings.error(
                subject,
                format!("found {}, expected a non-empty string", describe(other)),
            );
            None
        }
    }
}

fn optional_string(
    object: &Map<String, Value>,
    field: &str,
    findings: &mut Findings,
) -> Option<String> {
    optional_string_at(object, "", field, findings)
}

fn optional_string_at(
    object: &Map<String, Value>,
    path: &str,
    field: &str,
    findings: &mut Findings,
) -> Option<String> {
    match object.get(field) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            findings.error(
                field_path(path, field),
                format!("found {}, expected a string", describe(other)),
            );
            None
        }
    }
}

fn required_schema<T>(
    object: &Map<String, Value>,
    path: &str,
    field: &str,
    findings: &mut Findings,
    parse: fn(&str) -> Option<T>,
    expected: fn() -> String,
) -> Option<T> {
    let subject = field_path(path, field);
    match object.get(field) {
        None => {
            findings.error(
                subject,
                format!("is missing; expected one of {}", expected()),
            );
            None
        }
        Some(value) => schema_value(value, &subject, findings, parse, expected),
    }
}

fn schema_value<T>(
    value: &Value,
    subject: &str,
    findings: &mut Findings,
    parse: fn(&str) -> Option<T>,
    expected: fn() -> String,
) -> Option<T> {
    match value {
        Value::String(s) => parse_schema_str(s, subject, findings, parse, expected),
        other => {
            findings.error(
                subject,
                format!("found {}, expected one of {}", describe(other), expected()),
            );
            None
        }
    }
}

fn parse_schema_str<T>(
    s: &str,
    subject: &str,
    findings: &mut Findings,
    parse: fn(&str) -> Option<T>,
    expected: fn() -> String,
) -> Option<T> {
    let parsed = parse(s);
    if parsed.is_none() {
        findings.error(
            subject,
            format!("found {s:?}, expected one of {}", expected()),
        );
    }
    parsed
}

fn string_array(value: &Value, field: &str, findings: &mut Findings) -> Vec<(String, String)> {
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Value::String(s) => Some((format!("{field}[{i}]"), s.clone())),
                other => {
                    findings.error(
                        format!("{field}[{i}]"),
                        format!("found {}, expected a string", describe(other)),
                    );
                    None
                }
            })
            .collect(),
        other => {
            findings.error(
                field,
                format!("found {}, expected an array of strings", describe(other)),
            );
            Vec::new()
        }
    }
}

fn objects_in_array<'a>(
    value: Option<&'a Value>,
    field: &str,
    findings: &mut Findings,
) -> Vec<(String, &'a Map<String, Value>)> {
    match value {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Value::Object(object) => Some((format!("{field}[{i}]"), object)),
                other => {
                    findings.error(
                        format!("{field}[{i}]"),
                        format!("found {}, expected an object", describe(other)),
                    );
                    None
                }
            })
            .collect(),
        Some(other) => {
            findings.error(
                field,
                format!("found {}, expected an array of objects", describe(other)),
            );
            Vec::new()
        }
    }
}

fn warn_unknown_fields(
    object: &Map<String, Value>,
    path: &str,
    known: &[&str],
    findings: &mut Findings,
) {
    for key in object.keys() {
        if !known.contains(&key.as_str()) {
            warn_unknown(findings, &field_path(path, key), key, known);
        }
    }
}

fn warn_unknown(findings: &mut Findings, subject: &str, key: &str, known: &[&str]) {
    let hint = known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(key))
        .map(|k| format!(" (did you mean {k:?}? field names are case-sensitive)"))
        .unwrap_or_default();
    findings.warning(
        subject,
        format!(
            "unknown field{hint}; it is ignored. Known fields here: {}",
            known.join(", ")
        ),
    );
}

/// What a JSON value is, for "found …, expected …" messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
