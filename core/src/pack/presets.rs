//! A pack's `presets.yaml`: named sets of value changes, from the docs' "pack presets".
//!
//! ```yaml
//! presets:
//!   - name: enable-ingress
//!     displayName: Enable
//!     group: Ingress
//!     remove: ["charts.app.ingress"]
//!     add: |
//!       charts:
//!         app:
//!           ingress: {enabled: true}
//! ```
//!
//! Applying a preset removes its `remove` keys, then merges its `add` values with Helm's
//! rules. Presets of one `group` exclude each other (the docs: "only one preset can be
//! selected from the same group"); a preset without a group excludes nothing.
//!
//! Which presets are on is decided, in this order, by:
//! 1. the pack: a comment `# spectrocloud.com/enabled-presets: Group:name,Group:name` among
//!    the comments that open its `values.yaml` (where every published pack puts it);
//! 2. the profile layer: its `presets` field, or the same comment opening its `values`;
//! 3. the cluster's override of the layer: the same two.
//!
//! A later choice replaces an earlier one of the same group and adds to the others. The
//! selected presets apply in `presets.yaml` order to the pack's defaults, before profile
//! values and cluster overrides.
//!
//! Published packs remove keys their values do not have (the key of a sibling preset,
//! or a stale path): Palette ignores that, and so does applying a preset here. A `remove`
//! that names nothing in the defaults nor in any preset's `add` is a warning when the pack
//! is validated.

use std::collections::BTreeMap;

use serde_yaml::Value;

use crate::finding::Findings;
use crate::pack::key_path::KeyPath;
use crate::pack::yaml_text::{describe_kind, yaml_error_message};
use crate::values_merge::merge_values;

/// The comment that names a pack's (or a layer's) enabled presets.
pub const ENABLED_PRESETS_ANNOTATION: &str = "spectrocloud.com/enabled-presets";

/// One preset.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    pub name: String,
    pub display_name: Option<String>,
    pub group: Option<String>,
    pub remove: Vec<KeyPath>,
    /// The parsed `add`: a mapping, or null when it adds nothing.
    pub add: Value,
}

impl Preset {
    /// `Group:name`, or the name when it has no group.
    pub fn reference(&self) -> String {
        match &self.group {
            Some(group) => format!("{group}:{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A parsed `presets.yaml`; empty when the pack has none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackPresets {
    pub presets: Vec<Preset>,
}

/// A preset as a selection names it: `Group:name` or a bare `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetRef {
    pub group: Option<String>,
    pub name: String,
}

impl PresetRef {
    /// `Group:name` (the annotation's form; a group may hold spaces, a name no colon) or
    /// `name`.
    pub fn parse(text: &str) -> PresetRef {
        match text.rsplit_once(':') {
            Some((group, name)) => PresetRef {
                group: Some(group.trim().to_string()),
                name: name.trim().to_string(),
            },
            None => PresetRef {
                group: None,
                name: text.trim().to_string(),
            },
        }
    }
}

impl std::fmt::Display for PresetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.group {
            Some(group) => write!(f, "{group}:{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One source of a selection: where it was written (for messages) and what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetChoice {
    pub source: String,
    pub presets: Vec<PresetRef>,
}

/// Why a selection cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresetError {
    #[error("{chosen_in} names the preset {preset}, but presets.yaml has no preset {name:?}{}", known(.available))]
    UnknownPreset {
        chosen_in: String,
        preset: String,
        name: String,
        available: Vec<String>,
    },
    #[error("{chosen_in} names the preset {preset}, but presets.yaml has {name:?} {actual}")]
    WrongGroup {
        chosen_in: String,
        preset: String,
        name: String,
        actual: String,
    },
    #[error(
        "{chosen_in} names {first} and {second}, which are both in group {group:?}; presets of one group exclude each other"
    )]
    SameGroup {
        chosen_in: String,
        first: String,
        second: String,
        group: String,
    },
    #[error("{chosen_in} names the preset {preset}, but the pack has no presets.yaml")]
    NoPresets { chosen_in: String, preset: String },
}

fn known(available: &[String]) -> String {
    if available.is_empty() {
        String::new()
    } else {
        format!(" (it has: {})", available.join(", "))
    }
}

/// An `enabled-presets` comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetAnnotation {
    /// 1-based line of the comment.
    pub line: usize,
    /// Empty for the comment with nothing after it, which published packs write to mean
    /// none.
    pub presets: Vec<PresetRef>,
}

/// The `enabled-presets` comment among the comments (and blank lines) that open `text`.
pub fn enabled_presets_annotation(text: &str) -> Option<PresetAnnotation> {
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let comment = trimmed.strip_prefix('#')?;
        if let Some(list) = comment.trim().strip_prefix(ENABLED_PRESETS_ANNOTATION) {
            let Some(list) = list.trim_start().strip_prefix(':') else {
                continue;
            };
            let presets = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PresetRef::parse)
                .collect();
            return Some(PresetAnnotation {
                line: index + 1,
                presets,
            });
        }
    }
    None
}

impl PackPresets {
    pub fn is_empty(&self) -> bool {
        self.presets.is_empty()
    }

    fn names(&self) -> Vec<String> {
        self.presets.iter().map(Preset::reference).collect()
    }

    /// The presets the choices select, later choices replacing earlier ones of the same
    /// group, in presets.yaml order. A pack without presets.yaml ignores a choice that
    /// comes from its own values.yaml (published packs carry annotations copied from other
    /// packs): the caller says so with `lenient_sources`.
    pub fn select(
        &self,
        choices: &[PresetChoice],
        lenient_sources: &[&str],
    ) -> Result<Vec<&Preset>, Vec<PresetError>> {
        let mut errors = Vec::new();
        // Group (or, for a preset without one, its name) → index of the chosen preset.
        let mut chosen: BTreeMap<String, usize> = BTreeMap::new();
        for choice in choices {
            let mut this_choice: BTreeMap<String, usize> = BTreeMap::new();
            for preset_ref in &choice.presets {
                let index = match self.find(preset_ref, &choice.source) {
                    Ok(index) => index,
                    Err(error) => {
                        let lenient =
                            self.is_empty() && lenient_sources.contains(&choice.source.as_str());
                        if !lenient {
                            errors.push(error);
                        }
                        continue;
                    }
                };
                let preset = &self.presets[index];
                let slot = preset
                    .group
                    .clone()
                    .unwrap_or_else(|| format!("\0{}", preset.name));
                if let Some(&other) = this_choice.get(&slot)
                    && other != index
                {
                    errors.push(PresetError::SameGroup {
                        chosen_in: choice.source.clone(),
                        first: self.presets[other].reference(),
                        second: preset.reference(),
                        group: preset.group.clone().unwrap_or_default(),
                    });
                    continue;
                }
                this_choice.insert(slot, index);
            }
            chosen.extend(this_choice);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut indexes: Vec<usize> = chosen.into_values().collect();
        indexes.sort_unstable();
        Ok(indexes.into_iter().map(|i| &self.presets[i]).collect())
    }

    fn find(&self, wanted: &PresetRef, source: &str) -> Result<usize, PresetError> {
        if self.is_empty() {
            return Err(PresetError::NoPresets {
                chosen_in: source.to_string(),
                preset: wanted.to_string(),
            });
        }
        let Some(index) = self.presets.iter().position(|p| p.name == wanted.name) else {
            return Err(PresetError::UnknownPreset {
                chosen_in: source.to_string(),
                preset: wanted.to_string(),
                name: wanted.name.clone(),
                available: self.names(),
            });
        };
        let group = &self.presets[index].group;
        match &wanted.group {
            Some(wanted_group) if Some(wanted_group) != group.as_ref() => {
                Err(PresetError::WrongGroup {
                    chosen_in: source.to_string(),
                    preset: wanted.to_string(),
                    name: wanted.name.clone(),
                    actual: match group {
                        Some(group) => format!("in group {group:?}"),
                        None => "without a group".to_string(),
                    },
                })
            }
            _ => Ok(index),
        }
    }
}

/// Applies presets to `values` in the order given: each one's `remove` keys, then its
/// `add` merged with Helm's rules.
pub fn apply_presets(presets: &[&Preset], values: &Value) -> Value {
    let mut result = values.clone();
    for preset in presets {
        for key in &preset.remove {
            key.remove(&mut result);
        }
        result = merge_values(&result, &preset.add);
    }
    result
}

/// Parses `presets.yaml`. Findings' subjects are `presets[i]` paths, for the caller to
/// prefix with the file name.
pub fn parse_presets(text: &str) -> (PackPresets, Findings) {
    let mut findings = Findings::new();
    let mut result = PackPresets::default();
    let document: Value = match serde_yaml::from_str(text) {
        Ok(document) => document,
        Err(error) => {
            findings.error("", yaml_error_message(&error));
            return (result, findings);
        }
    };
    let list = match &document {
        // An empty file holds no presets (a published pack has one).
        Value::Null => return (result, findings),
        Value::Mapping(top) => {
            for key in top.keys().filter(|k| k.as_str() != Some("presets")) {
                findings.warning(
                    key.as_str().unwrap_or_default(),
                    "unknown key; it is ignored (the file holds `presets`)",
                );
            }
            match top.get("presets") {
                None | Some(Value::Null) => return (result, findings),
                Some(Value::Sequence(list)) => list,
                Some(other) => {
                    findings.error(
                        "presets",
                        format!("found {}, expected a list of presets", describe_kind(other)),
                    );
                    return (result, findings);
                }
            }
        }
        other => {
            findings.error(
                "",
                format!(
                    "found {}, expected a mapping with `presets`",
                    describe_kind(other)
                ),
            );
            return (result, findings);
        }
    };
    for (index, item) in list.iter().enumerate() {
        let subject = format!("presets[{index}]");
        if let Some(preset) = parse_preset(item, &subject, &mut findings) {
            if let Some(first) = result.presets.iter().position(|p| p.name == preset.name) {
                findings.error(
                    format!("{subject}.name"),
                    format!(
                        "{:?} is already the name of presets[{first}]; preset names must be unique",
                        preset.name
                    ),
                );
                continue;
            }
            result.presets.push(preset);
        }
    }
    (result, findings)
}

const PRESET_FIELDS: &[&str] = &["name", "displayName", "group", "remove", "add"];

fn parse_preset(item: &Value, subject: &str, findings: &mut Findings) -> Option<Preset> {
    let Value::Mapping(fields) = item else {
        findings.error(
            subject,
            format!(
                "found {}, expected a mapping with name, group, remove and add",
                describe_kind(item)
            ),
        );
        return None;
    };
    for key in fields.keys() {
        let name = key.as_str().unwrap_or_default();
        if !PRESET_FIELDS.contains(&name) {
            findings.warning(
                format!("{subject}.{name}"),
                format!(
                    "unknown field; it is ignored. Known fields here: {}",
                    PRESET_FIELDS.join(", ")
                ),
            );
        }
    }
    let text = |field: &str, findings: &mut Findings| -> Option<String> {
        match fields.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                findings.error(
                    format!("{subject}.{field}"),
                    format!("found {}, expected a string", describe_kind(other)),
                );
                None
            }
        }
    };
    let name = text("name", findings).filter(|n| !n.trim().is_empty());
    if name.is_none() && !findings.contains(&format!("{subject}.name"), "expected a string") {
        findings.error(
            format!("{subject}.name"),
            "is missing; every preset needs a name",
        );
    }
    let display_name = text("displayName", findings);
    let group = text("group", findings).filter(|g| !g.trim().is_empty());
    let remove = match fields.get("remove") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let path = format!("{subject}.remove[{i}]");
                let Value::String(key) = item else {
                    findings.error(
                        &path,
                        format!("found {}, expected a dotted value key", describe_kind(item)),
                    );
                    return None;
                };
                KeyPath::parse(key)
                    .map_err(|e| findings.error(&path, format!("{key:?} {e}")))
                    .ok()
            })
            .collect(),
        Some(other) => {
            findings.error(
                format!("{subject}.remove"),
                format!(
                    "found {}, expected a list of dotted value keys",
                    describe_kind(other)
                ),
            );
            Vec::new()
        }
    };
    let add = match fields.get("add") {
        None | Some(Value::Null) => Value::Null,
        // The docs' form: YAML text, usually a block scalar.
        Some(Value::String(yaml)) => match serde_yaml::from_str::<Value>(yaml) {
            Ok(value @ (Value::Mapping(_) | Value::Null)) => value,
            Ok(other) => {
                findings.error(
                    format!("{subject}.add"),
                    format!(
                        "holds {}, expected YAML text of a mapping of values",
                        describe_kind(&other)
                    ),
                );
                Value::Null
            }
            Err(error) => {
                findings.error(
                    format!("{subject}.add"),
                    format!("is {}", yaml_error_message(&error)),
                );
                Value::Null
            }
        },
        Some(value @ Value::Mapping(_)) => value.clone(),
        Some(other) => {
            findings.error(
                format!("{subject}.add"),
                format!(
                    "found {}, expected YAML text of a mapping of values",
                    describe_kind(other)
                ),
            );
            Value::Null
        }
    };
    Some(Preset {
        name: name?,
        display_name,
        group,
        remove,
        add,
    })
}

/// Pack-level checks of presets against the pack's values: the enabled-presets comment of
/// values.yaml names existing presets, and each `remove` names something in the defaults
/// or in some preset's `add`. Subjects are file-prefixed.
pub fn check_against_defaults(
    presets: &PackPresets,
    annotation: Option<&PresetAnnotation>,
    defaults: &Value,
) -> Findings {
    let mut findings = Findings::new();
    if let Some(PresetAnnotation {
        line,
        presets: refs,
    }) = annotation
    {
        let source = format!("values.yaml line {line} ({ENABLED_PRESETS_ANNOTATION})");
        let choice = PresetChoice {
            source: source.clone(),
            presets: refs.clone(),
        };
        if presets.is_empty() && !refs.is_empty() {
            findings.warning(
                format!("values.yaml: line {line}"),
                format!(
                    "{ENABLED_PRESETS_ANNOTATION} names {}, but the pack has no presets.yaml; \
                     the comment is ignored",
                    refs.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        } else if let Err(errors) = presets.select(&[choice], &[]) {
            for error in errors {
                findings.error(format!("values.yaml: line {line}"), error.to_string());
            }
        }
    }
    for (index, preset) in presets.presets.iter().enumerate() {
        for (r, key) in preset.remove.iter().enumerate() {
            let somewhere = std::iter::once(defaults)
                .chain(presets.presets.iter().map(|p| &p.add))
                .any(|doc| {
                    key.resolve(doc)
                        .iter()
                        .any(|place| matches!(place, crate::pack::key_path::Resolved::Found { .. }))
                });
            if !somewhere {
                findings.warning(
                    format!("presets.yaml: presets[{index}].remove[{r}]"),
                    format!(
                        "preset {:?} removes {key}, which names nothing in values.yaml nor in any \
                         preset's add; it removes nothing",
                        preset.name
                    ),
                );
            }
        }
    }
    findings
}

#[cfg(test)]
#[path = "presets_tests.rs"]
mod tests;
