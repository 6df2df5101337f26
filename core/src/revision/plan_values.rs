//! One layer's values in two revisions, compared leaf by leaf. Revisions store values with
//! every secret the pack's schema marks already replaced by `<secret>`; a key masked in
//! either revision is shown masked on both sides, so that a schema that starts or stops
//! marking a key secret never lets its value through.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

use super::ValueChange;
use crate::pack::values_schema::check::SECRET_MASK;

/// What a value that is not printed reads as.
pub(super) const NOT_SHOWN: &str = "<not shown>";

/// The changed leaves of `from` and `to` (YAML documents), by dotted path, secrets masked.
pub(super) fn value_changes(from: &Value, to: &Value) -> Vec<ValueChange> {
    let mut old = BTreeMap::new();
    let mut new = BTreeMap::new();
    flatten(from, String::new(), &mut old);
    flatten(to, String::new(), &mut new);
    let masked: BTreeSet<String> = old
        .iter()
        .chain(new.iter())
        .filter(|(_, value)| value.as_str() == Some(SECRET_MASK))
        .map(|(path, _)| path.clone())
        .collect();
    let paths: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    paths
        .into_iter()
        .filter_map(|path| {
            let secret = is_masked(path, &masked);
            let show = |value: Option<&Value>| {
                value.map(|v| {
                    if secret {
                        SECRET_MASK.to_string()
                    } else {
                        scalar_text(v)
                    }
                })
            };
            let change = ValueChange {
                path: path.clone(),
                from: show(old.get(path)),
                to: show(new.get(path)),
            };
            (change.from != change.to).then_some(change)
        })
        .collect()
}

/// Whether `path` is a masked path or lies under one.
fn is_masked(path: &str, masked: &BTreeSet<String>) -> bool {
    masked.iter().any(|m| {
        path == m
            || path
                .strip_prefix(m.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

/// Every leaf (scalar, empty map or empty list) of `value` under `path`.
fn flatten(value: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Mapping(map) if !map.is_empty() => {
            for (key, child) in map {
                flatten(child, join(&path, &key_text(key)), out);
            }
        }
        Value::Sequence(items) if !items.is_empty() => {
            for (i, child) in items.iter().enumerate() {
                flatten(child, format!("{path}[{i}]"), out);
            }
        }
        Value::Tagged(tagged) => flatten(&tagged.value, path, out),
        leaf => {
            out.insert(path, leaf.clone());
        }
    }
}

/// `a.b`, or `a["b.c"]` when the key itself holds a dot, so that a path reads back one way.
pub(super) fn join(path: &str, key: &str) -> String {
    if key.contains(['.', '[', ']']) {
        format!("{path}[{key:?}]")
    } else if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => scalar_text(other),
    }
}

/// A leaf as JSON on one line: strings quoted, so that `"1"` and `1` read apart.
pub(super) fn scalar_text(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}"))
}
