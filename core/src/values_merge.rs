//! Helm's value merge ("coalesce"), used to layer a cluster's values: pack defaults, then
//! the profile layer's values, then the cluster's overrides, by calling [`merge_values`]
//! once per layer.
//!
//! The rules follow Helm so that a values override behaves in Strata as it would with
//! `helm install -f`:
//!
//! - two mappings merge deeply, key by key;
//! - a list or scalar in the overlay replaces the base value (lists are never concatenated);
//! - an overlay key whose value is `null` removes that key from the result, at any depth;
//!   a `null` for a key the base does not have is dropped, so no `null` reaches the result
//!   through an overlay mapping;
//! - a `null` overlay as a whole (an empty document) leaves the base unchanged;
//! - a mapping overlaying a scalar or list replaces it, and a scalar or list overlaying a
//!   mapping replaces it.
//!
//! Key order is the base's, with keys new in the overlay appended in the overlay's order,
//! so that a rendered values file stays diffable against the pack's own.
//!
//! [`lookup`] reads one value by its dot-separated path, the form pack constraints use to
//! name values keys.

use serde_yaml::{Mapping, Value};

/// Layers `overlay` over `base` with Helm's rules (see the module documentation).
pub fn merge_values(base: &Value, overlay: &Value) -> Value {
    match (base, overlay) {
        (_, Value::Null) => base.clone(),
        (Value::Mapping(base_map), Value::Mapping(overlay_map)) => {
            Value::Mapping(merge_mappings(base_map, overlay_map))
        }
        (_, Value::Mapping(overlay_map)) => Value::Mapping(without_nulls(overlay_map)),
        (_, _) => overlay.clone(),
    }
}

/// The value at a dot-separated key path (`image.tag`) in a values document, as pack
/// constraints' param refs name it; `None` when some key on the way is absent or the path
/// runs into something that is not a mapping. A key present with a `null` value is found.
pub fn lookup<'v>(values: &'v Value, dotted_path: &str) -> Option<&'v Value> {
    dotted_path.split('.').try_fold(values, |current, key| {
        if key.is_empty() {
            return None;
        }
        match current {
            Value::Mapping(mapping) => mapping.get(key),
            _ => None,
        }
    })
}

fn merge_mappings(base: &Mapping, overlay: &Mapping) -> Mapping {
    let mut merged = Mapping::with_capacity(base.len() + overlay.len());
    for (key, base_value) in base {
        match overlay.get(key) {
            None => {
                merged.insert(key.clone(), base_value.clone());
            }
            // Helm's way of deleting a default: the key is set to null in a later layer.
            Some(Value::Null) => {}
            Some(overlay_value) => {
                merged.insert(key.clone(), merge_values(base_value, overlay_value));
            }
        }
    }
    for (key, overlay_value) in overlay {
        if base.contains_key(key) || overlay_value.is_null() {
            continue;
        }
        let added = match overlay_value {
            Value::Mapping(map) => Value::Mapping(without_nulls(map)),
            other => other.clone(),
        };
        merged.insert(key.clone(), added);
    }
    merged
}

/// A mapping brought in whole by an overlay still carries removal markers meant for the
/// base it replaced; dropping them keeps `null` from meaning "remove" in one place and
/// "present but null" in another.
fn without_nulls(map: &Mapping) -> Mapping {
    let mut cleaned = Mapping::with_capacity(map.len());
    for (key, value) in map {
        match value {
            Value::Null => {}
            Value::Mapping(inner) => {
                cleaned.insert(key.clone(), Value::Mapping(without_nulls(inner)));
            }
            other => {
                cleaned.insert(key.clone(), other.clone());
            }
        }
    }
    cleaned
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).expect("test YAML parses")
    }

    /// (what the row checks, base, overlay, expected)
    const CASES: &[(&str, &str, &str, &str)] = &[
        (
            "maps merge deeply key by key",
            "a: {x: 1, y: 2}\nb: 3\n",
            "a: {y: 20, z: 30}\n",
            "a: {x: 1, y: 20, z: 30}\nb: 3\n",
        ),
        (
            "overlay scalar replaces base scalar",
            "replicas: 1\nname: web\n",
            "replicas: 3\n",
            "replicas: 3\nname: web\n",
        ),
        (
            "overlay list replaces base list, no concatenation",
            "args: [a, b, c]\n",
            "args: [z]\n",
            "args: [z]\n",
        ),
        (
            "null overlay key removes the base key",
            "a: 1\nb: 2\nc: 3\n",
            "b: null\n",
            "a: 1\nc: 3\n",
        ),
        (
            "nested null removes only the nested key",
            "a: {b: {c: 1, d: 2}, e: 3}\n",
            "a: {b: {c: ~}}\n",
            "a: {b: {d: 2}, e: 3}\n",
        ),
        (
            "null overlay key that the base lacks is dropped",
            "a: 1\n",
            "b: null\n",
            "a: 1\n",
        ),
        (
            "empty overlay document leaves base unchanged",
            "a: {b: 1}\nc: [1, 2]\n",
            "",
            "a: {b: 1}\nc: [1, 2]\n",
        ),
        (
            "map overlaying a scalar replaces it",
            "a: plain\n",
            "a: {b: 1}\n",
            "a: {b: 1}\n",
        ),
        (
            "scalar overlaying a map replaces it",
            "a: {b: 1, c: 2}\n",
            "a: off\n",
            "a: off\n",
        ),
        (
            "list overlaying a map replaces it",
            "a: {b: 1}\n",
            "a: [1]\n",
            "a: [1]\n",
        ),
        (
            "map replacing a scalar loses its removal markers",
            "a: 1\n",
            "a: {b: null, c: {d: null, e: 2}}\n",
            "a: {c: {e: 2}}\n",
        ),
        (
            "new overlay map loses its removal markers",
            "x: 1\n",
            "a: {b: null, c: 2}\n",
            "x: 1\na: {c: 2}\n",
        ),
        (
            "nulls inside lists are list items, not removals",
            "a: [1]\n",
            "a: [null, 2]\n",
            "a: [null, 2]\n",
        ),
        (
            "overlay onto an empty base is the overlay",
            "",
            "a: {b: 1}\n",
            "a: {b: 1}\n",
        ),
        (
            "base key order kept, new keys appended in overlay order",
            "z: 1\na: 2\nm: 3\n",
            "q: 9\na: 20\nb: 8\n",
            "z: 1\na: 20\nm: 3\nq: 9\nb: 8\n",
        ),
    ];

    #[test]
    fn two_layer_rules() {
        for (rule, base, overlay, expected) in CASES {
            let merged = merge_values(&yaml(base), &yaml(overlay));
            let expected = yaml(expected);
            assert_eq!(merged, expected, "rule: {rule}");
            // Value equality ignores mapping order; the rendered text does not.
            assert_eq!(
                serde_yaml::to_string(&merged).unwrap(),
                serde_yaml::to_string(&expected).unwrap(),
                "key order, rule: {rule}"
            );
        }
    }

    #[test]
    fn three_layer_merge_pack_profile_cluster() {
        let pack = yaml(
            "image: {repository: nginx, tag: '1.25'}\n\
             replicas: 1\n\
             debug: {enabled: true, level: 3}\n\
             service: {type: ClusterIP, port: 80}\n",
        );
        let profile = yaml(
            "image: {tag: '1.27'}\n\
             debug: null\n\
             service: {annotations: {team: web}}\n",
        );
        let cluster = yaml(
            "replicas: 3\n\
             debug: {enabled: false}\n\
             service: {type: LoadBalancer, annotations: {team: null, cost: eu}}\n",
        );
        let merged = merge_values(&merge_values(&pack, &profile), &cluster);
        let expected = "image:\n  repository: nginx\n  tag: '1.27'\n\
                        replicas: 3\n\
                        service:\n  type: LoadBalancer\n  port: 80\n  annotations:\n    cost: eu\n\
                        debug:\n  enabled: false\n";
        assert_eq!(
            serde_yaml::to_string(&merged).unwrap(),
            serde_yaml::to_string(&yaml(expected)).unwrap()
        );
    }

    #[test]
    fn lookup_follows_dotted_paths() {
        let values = yaml("image: {tag: '1.25', digest: null}\nreplicas: 2\nweird.key: 1\n");
        assert_eq!(lookup(&values, "image.tag"), Some(&Value::from("1.25")));
        assert_eq!(lookup(&values, "replicas"), Some(&Value::from(2)));
        assert_eq!(lookup(&values, "image.digest"), Some(&Value::Null));
        assert_eq!(lookup(&values, "image"), values.get("image"));
        for absent in [
            "image.repository",
            "replicas.count",
            "",
            "image.",
            ".image",
            "nope",
        ] {
            assert_eq!(lookup(&values, absent), None, "{absent:?}");
        }
    }

    #[test]
    fn scalar_overlay_on_whole_document_replaces_it() {
        assert_eq!(merge_values(&yaml("a: 1"), &yaml("5")), yaml("5"));
    }
}
