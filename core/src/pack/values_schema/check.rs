//! A values document against a [`ValuesSchema`]: required values set, values of the right
//! type, read-only values unchanged, and secrets masked.
//!
//! - A value is **unset** when it is absent, `null` or the empty string (published packs
//!   default their secrets to `""`). Unset values are not type-checked; a required one is
//!   a [`ValueProblem::RequiredUnset`].
//! - A value holding `{{` is a macro Palette resolves at deploy time
//!   (`{{.spectro.var.NGC_API_KEY}}`); it counts as set and is not type-checked.
//! - `${boolean}` takes `true`/`false`, as YAML booleans or as strings, and `${number}` a
//!   number or a string holding one: published packs quote both (`enableAudio: 'false'`,
//!   `vlmBatchSize: '32'`). Other formats compare the value's text (a number's or a
//!   boolean's too). A mapping or a list never has a format.
//! - A secret's value never appears in a problem.

use serde_yaml::Value;

use crate::pack::key_path::Resolved;
use crate::pack::values_schema::format::{FieldKind, parse_number};
use crate::pack::values_schema::{SchemaEntry, ValuesSchema};

/// What `<secret>` replaces in printed and stored values.
pub const SECRET_MASK: &str = "<secret>";

/// One way values break their schema. `key` is the concrete key (`addresses[1]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueProblem {
    #[error("{key} is required and not set{}", hint_suffix(.hints))]
    RequiredUnset { key: String, hints: Vec<String> },
    #[error("{key}: found {found}, expected {expected}")]
    WrongType {
        key: String,
        found: String,
        expected: String,
    },
    #[error("{key} is read-only in the pack's schema.yaml, but its value was changed")]
    ReadOnlyChanged { key: String },
}

impl ValueProblem {
    pub fn key(&self) -> &str {
        match self {
            ValueProblem::RequiredUnset { key, .. }
            | ValueProblem::WrongType { key, .. }
            | ValueProblem::ReadOnlyChanged { key } => key,
        }
    }
}

fn hint_suffix(hints: &[String]) -> String {
    if hints.is_empty() {
        String::new()
    } else {
        format!(" (hint: {})", hints.join(" "))
    }
}

/// Absent, `null` or `""`.
pub fn is_unset(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    }
}

/// Required values unset and values of the wrong type, in schema order.
pub fn check_values(schema: &ValuesSchema, values: &Value) -> Vec<ValueProblem> {
    let mut problems = Vec::new();
    for entry in &schema.entries {
        let places = entry.key.resolve(values);
        if entry.required {
            for place in &places {
                let unset = match place {
                    Resolved::Found { value, .. } => is_unset(Some(value)),
                    Resolved::Absent { .. } | Resolved::Blocked { .. } => true,
                };
                if unset {
                    problems.push(ValueProblem::RequiredUnset {
                        key: place_key(place).to_string(),
                        hints: entry.hints.clone(),
                    });
                }
            }
        }
        for place in &places {
            if let Resolved::Found { key, value } = place
                && let Some((found, expected)) = type_mismatch(entry, value)
            {
                problems.push(ValueProblem::WrongType {
                    key: key.clone(),
                    found,
                    expected,
                });
            }
        }
    }
    problems
}

/// Read-only values whose value in `values` differs from `base` (the pack's own).
pub fn check_read_only(schema: &ValuesSchema, base: &Value, values: &Value) -> Vec<ValueProblem> {
    let mut problems = Vec::new();
    for entry in schema.entries.iter().filter(|e| e.readonly) {
        let before = entry.key.resolve(base);
        let after = entry.key.resolve(values);
        if before != after {
            problems.push(ValueProblem::ReadOnlyChanged {
                key: entry.key.to_string(),
            });
        }
    }
    problems
}

fn place_key<'a>(place: &'a Resolved<'_>) -> &'a str {
    match place {
        Resolved::Found { key, .. } | Resolved::Absent { key } | Resolved::Blocked { key, .. } => {
            key
        }
    }
}

/// `(found, expected)` when the value does not have the entry's format.
fn type_mismatch(entry: &SchemaEntry, value: &Value) -> Option<(String, String)> {
    let format = entry.format.as_ref()?;
    if is_unset(Some(value)) || is_macro(value) {
        return None;
    }
    let secret = entry.is_secret();
    let found = || describe(value, secret);
    let Some(text) = scalar_text(value) else {
        return Some((found(), format.expected()));
    };
    let ok = match format.single_field().map(|f| &f.kind) {
        Some(FieldKind::Boolean) => {
            matches!(value, Value::Bool(_)) || text == "true" || text == "false"
        }
        Some(FieldKind::Number { .. })
            if parse_number(&text).is_none() && !matches!(value, Value::Number(_)) =>
        {
            false
        }
        _ => format.matches_text(&text),
    };
    (!ok).then(|| (found(), format.expected()))
}

fn is_macro(value: &Value) -> bool {
    matches!(value, Value::String(s) if s.contains("{{"))
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The value for "found …"; a secret's value is never shown.
fn describe(value: &Value, secret: bool) -> String {
    match value {
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Sequence(_) => "a list".to_string(),
        Value::Tagged(_) => "a tagged value".to_string(),
        _ if secret => "a value that does not fit (not shown: it is a secret)".to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::Null => "null".to_string(),
    }
}
