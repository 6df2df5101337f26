//! Whether a live object still holds what a layer renders for it: every field of the
//! rendered (desired) object present in the live one with the same value. Fields the live
//! object has beyond those (the apiserver's defaults, `status`, fields other managers set)
//! are not the layer's and do not count. The agent's drift pass re-applies an object only
//! when this finds a difference.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// The path of the first field of `desired` that `live` does not hold with the same value
/// (`data.level`, `spec.template.spec.containers[0].image`,
/// `metadata.labels["app.kubernetes.io/name"]`), or `None` when `live` holds all of
/// `desired`. `.` names the root, when the two differ as wholes.
///
/// Mappings are compared key by key over the desired keys; lists element by element and
/// must be of the same length (a list is the layer's as a whole); scalars must be equal,
/// numbers by value (`2` and `2.0` are one number).
///
/// Two things the apiserver does to an applied object are not differences:
/// - a desired `null` sets nothing (server-side apply drops it), so it matches anything;
/// - a desired empty mapping or list matches an absent field, since the apiserver omits
///   empty optional fields when it stores them.
///
/// Other normalisations (quantities such as `1000m` stored as `1`, a Secret's
/// `stringData` stored as `data`) are differences here; the caller tells them apart by
/// whether re-applying changes the object.
pub fn first_difference(desired: &Value, live: &Value) -> Option<String> {
    let mut path = String::new();
    if differs(desired, Some(live), &mut path) {
        if path.is_empty() {
            path.push('.');
        }
        Some(path)
    } else {
        None
    }
}

/// Whether `live` (absent: `None`) fails to hold `desired`; on a difference, `path` is left
/// naming where.
fn differs(desired: &Value, live: Option<&Value>, path: &mut String) -> bool {
    match (desired, live) {
        (Value::Null, _) => false,
        (Value::Object(wanted), None) if wanted.is_empty() => false,
        (Value::Array(wanted), None) if wanted.is_empty() => false,
        (_, None) => true,
        (Value::Object(wanted), Some(Value::Object(found))) => mapping_differs(wanted, found, path),
        (Value::Array(wanted), Some(Value::Array(found))) => {
            if wanted.len() != found.len() {
                return true;
            }
            let at = path.len();
            for (index, (wanted, found)) in wanted.iter().zip(found).enumerate() {
                let _ = write!(path, "[{index}]");
                if differs(wanted, Some(found), path) {
                    return true;
                }
                path.truncate(at);
            }
            false
        }
        (Value::Number(wanted), Some(Value::Number(found))) => {
            wanted != found && wanted.as_f64() != found.as_f64()
        }
        (wanted, Some(found)) => wanted != found,
    }
}

fn mapping_differs(
    wanted: &Map<String, Value>,
    found: &Map<String, Value>,
    path: &mut String,
) -> bool {
    let at = path.len();
    for (key, value) in wanted {
        push_key(path, key);
        if differs(value, found.get(key), path) {
            return true;
        }
        path.truncate(at);
    }
    false
}

/// `spec` → `.spec` (or `spec` at the root); a key that is not a plain name (a label such as
/// `app.kubernetes.io/name`, a data key such as `config.yaml`) is quoted in brackets, so
/// that the path reads back unambiguously.
fn push_key(path: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !plain {
        let quoted = Value::from(key).to_string();
        let _ = write!(path, "[{quoted}]");
        return;
    }
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

#[cfg(test)]
#[path = "drift_tests.rs"]
mod drift_tests;
