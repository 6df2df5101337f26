//! A layer's effective values: the pack's defaults, then the presets chosen for it, then
//! the profile layer's values, then the cluster's overrides (the last two merged with
//! Helm's rules, [`crate::values_merge::merge_values`]); and their checks against the
//! pack's `schema.yaml`.
//!
//! Presets are chosen by the pack's values.yaml, the profile layer (its `presets` field or
//! the `enabled-presets` comment opening its `values`) and the cluster's override of the
//! layer (the same two), a later choice replacing an earlier one of the same group; see
//! [`crate::pack::presets`].
//!
//! [`LayerValues`] holds the result and never shows a secret: its `Debug` and its
//! serialization (the printed stack, the revision) replace every value the schema marks
//! `${password}` with `<secret>`. Only [`LayerValues::unmasked`] gives the real values,
//! for whatever installs or configures the layer.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_yaml::Value;

use crate::pack::key_path::KeyPath;
use crate::pack::presets::{
    PresetChoice, PresetError, PresetRef, apply_presets, enabled_presets_annotation,
};
use crate::pack::values_schema::check::{SECRET_MASK, check_read_only, check_values};
use crate::pack::values_schema::{ValueProblem, ValuesSchema, is_unset};
use crate::pack::{PACK_PRESETS_SOURCE, Pack, ValueRules};
use crate::values_merge::merge_values;

/// A layer's merged values, masked wherever they are printed or stored.
#[derive(Clone, PartialEq)]
pub struct LayerValues {
    document: Value,
    /// The schema's `${password}` keys.
    secrets: Vec<KeyPath>,
}

impl LayerValues {
    pub fn new(document: Value, schema: &ValuesSchema) -> LayerValues {
        LayerValues {
            document,
            secrets: schema.secrets().map(|e| e.key.clone()).collect(),
        }
    }

    /// The real values, secrets included: to install or configure the layer, never to
    /// print or store.
    pub fn unmasked(&self) -> &Value {
        &self.document
    }

    /// The values with every set secret replaced by `<secret>`.
    pub fn masked(&self) -> Value {
        mask(&self.secrets, &self.document)
    }

    /// The set secrets as `(key, value)`, in schema order.
    pub fn secret_values(&self) -> Vec<(String, Value)> {
        self.secrets
            .iter()
            .flat_map(|key| key.resolve(&self.document))
            .filter_map(|place| match place {
                crate::pack::key_path::Resolved::Found { key, value } if !is_unset(Some(value)) => {
                    Some((key, value.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

/// `values` with every set value at one of `secrets` replaced by `<secret>`.
pub fn mask(secrets: &[KeyPath], values: &Value) -> Value {
    let mut masked = values.clone();
    for key in secrets {
        key.for_each_mut(&mut masked, &mut |value| {
            if !is_unset(Some(value)) {
                *value = Value::from(SECRET_MASK);
            }
        });
    }
    masked
}

/// `values` masked with a schema's secrets.
pub fn mask_with(schema: &ValuesSchema, values: &Value) -> Value {
    let secrets: Vec<KeyPath> = schema.secrets().map(|e| e.key.clone()).collect();
    mask(&secrets, values)
}

impl fmt::Debug for LayerValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LayerValues").field(&self.masked()).finish()
    }
}

impl Serialize for LayerValues {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.masked().serialize(serializer)
    }
}

/// The preset choices a profile layer or a cluster override writes: the comment opening
/// its values text, then its `presets` field. `subject` names where they are
/// (`spec.layers[2]`).
pub fn preset_choices(
    subject: &str,
    values_text: Option<&str>,
    presets: Option<&[String]>,
) -> Vec<PresetChoice> {
    let mut choices = Vec::new();
    if let Some(annotation) = values_text.and_then(enabled_presets_annotation) {
        choices.push(PresetChoice {
            source: format!(
                "{subject}.values line {} (spectrocloud.com/enabled-presets)",
                annotation.line
            ),
            presets: annotation.presets,
        });
    }
    if let Some(names) = presets {
        choices.push(PresetChoice {
            source: format!("{subject}.presets"),
            presets: names.iter().map(|n| PresetRef::parse(n)).collect(),
        });
    }
    choices
}

/// What a layer's values are made of. Its `Debug` masks secrets like [`LayerValues`].
#[derive(Clone, Default)]
pub struct LayerInputs {
    pub defaults: Value,
    pub rules: ValueRules,
    /// Profile choices, then cluster choices.
    pub choices: Vec<PresetChoice>,
    /// Profile values, then cluster overrides, in merge order.
    pub overlays: Vec<Value>,
}

impl fmt::Debug for LayerInputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let schema = &self.rules.schema;
        let overlays: Vec<Value> = self.overlays.iter().map(|o| mask_with(schema, o)).collect();
        f.debug_struct("LayerInputs")
            .field("defaults", &mask_with(schema, &self.defaults))
            .field("choices", &self.choices)
            .field("overlays", &overlays)
            .finish_non_exhaustive()
    }
}

/// Effective values and their problems.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub values: LayerValues,
    pub problems: Vec<ValueProblem>,
}

impl LayerInputs {
    /// Each choice on its own must name presets the pack has, one per group; the errors
    /// of the choices from `first` on.
    pub fn choice_errors(&self, first: usize) -> Vec<PresetError> {
        self.choices
            .iter()
            .skip(first)
            .flat_map(|choice| {
                self.rules
                    .presets
                    .select(std::slice::from_ref(choice), &[])
                    .err()
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The effective values and what the schema finds wrong with them: required values
    /// unset, values of the wrong type, read-only values changed by the overlays. `Err`
    /// with the preset errors when the choices cannot be combined.
    pub fn resolve(&self) -> Result<Resolution, Vec<PresetError>> {
        let mut choices = vec![PresetChoice {
            source: PACK_PRESETS_SOURCE.to_string(),
            presets: self.rules.enabled_presets.clone(),
        }];
        choices.extend(self.choices.iter().cloned());
        let selected = self
            .rules
            .presets
            .select(&choices, &[PACK_PRESETS_SOURCE])?;
        let base = apply_presets(&selected, &self.defaults);
        let document = self.overlays.iter().fold(base.clone(), |merged, overlay| {
            merge_values(&merged, overlay)
        });
        let schema = &self.rules.schema;
        let mut problems = check_values(schema, &document);
        problems.extend(check_read_only(schema, &base, &document));
        Ok(Resolution {
            values: LayerValues::new(document, schema),
            problems,
        })
    }
}

/// Where `strata pack render --preset` choices come from, in messages.
pub const RENDER_PRESETS_SOURCE: &str = "--preset";

/// The values a pack renders with on its own (`strata pack render`, `strata pack
/// validate`): its defaults with the presets its values.yaml enables, replaced group by
/// group by those `presets` name, then `overlays` in order; with what the schema finds
/// wrong. The same path as a layer's values in a profile, without the profile.
pub fn pack_values(
    pack: &Pack,
    presets: &[String],
    overlays: Vec<Value>,
) -> Result<Resolution, Vec<PresetError>> {
    let choices = if presets.is_empty() {
        Vec::new()
    } else {
        vec![PresetChoice {
            source: RENDER_PRESETS_SOURCE.to_string(),
            presets: presets.iter().map(|name| PresetRef::parse(name)).collect(),
        }]
    };
    LayerInputs {
        defaults: pack.values.document.clone(),
        rules: pack.value_rules(),
        choices,
        overlays,
    }
    .resolve()
}

#[cfg(test)]
#[path = "layer_values_tests.rs"]
mod tests;
