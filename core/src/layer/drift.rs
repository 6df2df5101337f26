//! Whether a live object still holds what a layer renders for it: every field of the
//! rendered (desired) object present in the live one with the same value. Fields the live
//! object has beyond those (the apiserver's defaults, `status`, fields other managers set)
//! are not the layer's and do not count. The agent's drift pass re-applies an object only
//! when this finds a difference.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::quantity::same_quantity;

/// The mappings whose values are resource quantities, by their key: a container's and a
/// claim's `resources.limits` and `requests`, a ResourceQuota's `hard`, a volume's
/// `capacity`, a LimitRange's bounds.
const QUANTITY_MAPPINGS: [&str; 8] = [
    "limits",
    "requests",
    "hard",
    "capacity",
    "max",
    "min",
    "default",
    "defaultRequest",
];
/// A field that is itself a quantity (an `emptyDir`'s).
const QUANTITY_FIELD: &str = "sizeLimit";

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
/// - a resource quantity stored in another spelling (`1000m` as `1`, `1024Mi` as `1Gi`,
///   `1` as `"1"`) is the same amount, in the mappings that hold quantities
///   ([`QUANTITY_MAPPINGS`]) and under `sizeLimit`.
///
/// Other normalisations (a Secret's `stringData` stored as `data`) are differences here;
/// the caller tells them apart by whether re-applying changes the object.
pub fn first_difference(desired: &Value, live: &Value) -> Option<String> {
    let mut path = String::new();
    if differs(desired, Some(live), &mut path, Place::Other) {
        if path.is_empty() {
            path.push('.');
        }
        Some(path)
    } else {
        None
    }
}

/// What the value compared is, as far as quantities go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A mapping of quantities ([`QUANTITY_MAPPINGS`]).
    QuantityMapping,
    /// A quantity: a value of such a mapping, or a [`QUANTITY_FIELD`].
    Quantity,
    Other,
}

/// A scalar as a quantity's text: quantities are strings, or numbers written bare.
fn quantity_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Whether `live` (absent: `None`) fails to hold `desired`; on a difference, `path` is left
/// naming where.
fn differs(desired: &Value, live: Option<&Value>, path: &mut String, place: Place) -> bool {
    match (desired, live) {
        (Value::Null, _) => false,
        (Value::Object(wanted), None) if wanted.is_empty() => false,
        (Value::Array(wanted), None) if wanted.is_empty() => false,
        (_, None) => true,
        (Value::Object(wanted), Some(Value::Object(found))) => {
            mapping_differs(wanted, found, path, place == Place::QuantityMapping)
        }
        (Value::Array(wanted), Some(Value::Array(found))) => {
            if wanted.len() != found.len() {
                return true;
            }
            let at = path.len();
            for (index, (wanted, found)) in wanted.iter().zip(found).enumerate() {
                let _ = write!(path, "[{index}]");
                if differs(wanted, Some(found), path, Place::Other) {
                    return true;
                }
                path.truncate(at);
            }
            false
        }
        (wanted, Some(found))
            if place == Place::Quantity
                && let (Some(wanted), Some(found)) =
                    (quantity_text(wanted), quantity_text(found))
                && same_quantity(&wanted, &found) =>
        {
            false
        }
        (Value::Number(wanted), Some(Value::Number(found))) => {
            wanted != found && wanted.as_f64() != found.as_f64()
        }
        (wanted, Some(found)) => wanted != found,
    }
}

/// `of_quantities`: the mapping is one of [`QUANTITY_MAPPINGS`], so its values are
/// quantities.
fn mapping_differs(
    wanted: &Map<String, Value>,
    found: &Map<String, Value>,
    path: &mut String,
    of_quantities: bool,
) -> bool {
    let at = path.len();
    for (key, value) in wanted {
        push_key(path, key);
        let place = if of_quantities || key == QUANTITY_FIELD {
            Place::Quantity
        } else if QUANTITY_MAPPINGS.contains(&key.as_str()) {
            Place::QuantityMapping
        } else {
            Place::Other
        };
        if differs(value, found.get(key), path, place) {
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
