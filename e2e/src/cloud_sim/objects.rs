//! Reading Cluster API objects as JSON, and building the pieces every controller writes:
//! conditions in both shapes, owner references, names. The simulator works on
//! `serde_json::Value` because it plays many kinds from several providers whose Rust types
//! would add nothing but conversion.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::kinds::Kind;

pub const CLUSTER_NAME_LABEL: &str = "cluster.x-k8s.io/cluster-name";
pub const CONTROL_PLANE_LABEL: &str = "cluster.x-k8s.io/control-plane";
pub const CONTROL_PLANE_NAME_LABEL: &str = "cluster.x-k8s.io/control-plane-name";
pub const DEPLOYMENT_NAME_LABEL: &str = "cluster.x-k8s.io/deployment-name";
pub const SET_NAME_LABEL: &str = "cluster.x-k8s.io/set-name";
pub const TEMPLATE_HASH_LABEL: &str = "machine-template-hash";
pub const PAUSED_ANNOTATION: &str = "cluster.x-k8s.io/paused";
pub const DELETE_FOR_MOVE_ANNOTATION: &str = "clusterctl.cluster.x-k8s.io/delete-for-move";
pub const CLONED_FROM_NAME: &str = "cluster.x-k8s.io/cloned-from-name";
pub const CLONED_FROM_GROUP_KIND: &str = "cluster.x-k8s.io/cloned-from-groupkind";
/// Set by the simulator on every Cluster it adopts: the key of the cluster's workload
/// control plane in the process-wide registry. It travels with the Cluster when its
/// objects are moved, which is what lets another simulator continue the same cluster.
pub const CLUSTER_ID_ANNOTATION: &str = "sim.strata.dev/cluster-id";
/// CAPI's own finalizers, so that clusterctl move and Strata treat them as they would
/// treat the real controllers'.
pub const CLUSTER_FINALIZER: &str = "cluster.cluster.x-k8s.io";
pub const MACHINE_FINALIZER: &str = "machine.cluster.x-k8s.io";

pub fn str_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

pub fn i64_at(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

pub fn bool_at(object: &Value, pointer: &str) -> bool {
    object
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

pub fn name(object: &Value) -> &str {
    str_at(object, "/metadata/name").unwrap_or_default()
}

pub fn namespace(object: &Value) -> &str {
    str_at(object, "/metadata/namespace").unwrap_or_default()
}

pub fn uid(object: &Value) -> &str {
    str_at(object, "/metadata/uid").unwrap_or_default()
}

pub fn generation(object: &Value) -> i64 {
    i64_at(object, "/metadata/generation").unwrap_or(0)
}

pub fn creation(object: &Value) -> &str {
    str_at(object, "/metadata/creationTimestamp").unwrap_or_default()
}

pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/labels")
        .and_then(|labels| labels.get(key))
        .and_then(Value::as_str)
}

pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

pub fn is_deleting(object: &Value) -> bool {
    object.pointer("/metadata/deletionTimestamp").is_some()
}

/// The object carries CAPI's paused annotation (the Cluster's `spec.paused` is checked
/// separately).
pub fn is_paused(object: &Value) -> bool {
    annotation(object, PAUSED_ANNOTATION).is_some()
}

pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

pub fn labels_of(object: &Value, pointer: &str) -> BTreeMap<String, String> {
    object
        .pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A `matchLabels` selector in the query-string form CAPI puts in `status.selector`.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A controller owner reference to `owner` of kind `kind`.
pub fn owner_reference(kind: &Kind, owner: &Value) -> Value {
    json!({
        "apiVersion": kind.api_version(),
        "kind": kind.kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

pub fn has_owner(object: &Value, owner_uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| str_at(r, "/uid") == Some(owner_uid)))
}

/// Now, at the second precision Kubernetes stores.
pub fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A five-character suffix from the alphabet Kubernetes uses for generated names.
pub fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut bits = hasher.finish();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize];
            bits /= ALPHABET.len() as u64;
            char::from(c)
        })
        .collect()
}

/// A stable 64-bit hash (FNV-1a) of text, for template hashes, jitter and fake addresses:
/// the same input gives the same value in every process, which the standard hasher does
/// not promise.
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One condition the simulator wants to report.
#[derive(Debug, Clone)]
pub struct Cond {
    pub kind: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Cond {
    /// A condition whose reason is `yes` when true and `no` when false.
    pub fn new(kind: &'static str, status: bool, yes: &str, no: &str, message: &str) -> Cond {
        Cond {
            kind,
            status,
            reason: if status { yes } else { no }.to_string(),
            message: message.to_string(),
        }
    }
}

fn existing_transition(existing: Option<&Value>, kind: &str, status: &str) -> Option<String> {
    existing?
        .as_array()?
        .iter()
        .find(|c| str_at(c, "/type") == Some(kind) && str_at(c, "/status") == Some(status))
        .and_then(|c| str_at(c, "/lastTransitionTime"))
        .map(String::from)
}

fn status_word(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// `metav1.Condition`s (the v1beta2 shape): the transition time is kept while the status
/// stays the same, so an unchanged observation writes nothing.
pub fn metav1_conditions(existing: Option<&Value>, wanted: &[Cond], generation: i64) -> Value {
    let now = now();
    Value::Array(
        wanted
            .iter()
            .map(|c| {
                let status = status_word(c.status);
                // The message is required, and 1.20's server-side apply turns an empty
                // string into null, which the schema refuses: the reason stands in.
                let message = if c.message.is_empty() {
                    &c.reason
                } else {
                    &c.message
                };
                json!({
                    "type": c.kind,
                    "status": status,
                    "reason": c.reason,
                    "message": message,
                    "observedGeneration": generation,
                    "lastTransitionTime": existing_transition(existing, c.kind, status)
                        .unwrap_or_else(|| now.clone()),
                })
            })
            .collect(),
    )
}

/// CAPI v1beta1 conditions (CAPA, CAPZ): `Ready` first, a severity on false conditions,
/// no reason on true ones.
pub fn v1beta1_conditions(existing: Option<&Value>, wanted: &[Cond]) -> Value {
    let now = now();
    let mut out = Vec::new();
    for c in wanted {
        let status = status_word(c.status);
        let mut condition = Map::new();
        condition.insert("type".into(), json!(c.kind));
        condition.insert("status".into(), json!(status));
        condition.insert(
            "lastTransitionTime".into(),
            json!(existing_transition(existing, c.kind, status).unwrap_or_else(|| now.clone())),
        );
        if !c.status {
            condition.insert("severity".into(), json!("Warning"));
            condition.insert("reason".into(), json!(c.reason));
            if !c.message.is_empty() {
                condition.insert("message".into(), json!(c.message));
            }
        }
        out.push(Value::Object(condition));
    }
    Value::Array(out)
}

pub fn condition_true(object: &Value, pointer: &str, kind: &str) -> bool {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| str_at(c, "/type") == Some(kind) && str_at(c, "/status") == Some("True"))
        })
}

/// True when every field of `wanted` is present in `have` with the same value (lists
/// compared item by item). Used to skip writes that would change nothing.
pub fn contains(have: &Value, wanted: &Value) -> bool {
    match (have, wanted) {
        (Value::Object(have), Value::Object(wanted)) => wanted
            .iter()
            .all(|(k, w)| have.get(k).is_some_and(|h| contains(h, w))),
        (Value::Array(have), Value::Array(wanted)) => {
            have.len() == wanted.len() && have.iter().zip(wanted).all(|(h, w)| contains(h, w))
        }
        (have, wanted) => have == wanted,
    }
}

/// Parses `v1.20.2` into numbers for ordering versions.
pub fn version_key(version: &str) -> Vec<u64> {
    version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn containment_ignores_extra_fields_but_not_changed_ones() {
        let have = json!({"a": 1, "b": {"c": [1, {"d": 2, "e": 3}]}, "x": "y"});
        assert!(contains(&have, &json!({"b": {"c": [1, {"d": 2}]}})));
        assert!(!contains(&have, &json!({"b": {"c": [1]}})));
        assert!(!contains(&have, &json!({"a": 2})));
        assert!(!contains(&have, &json!({"z": 2})));
    }

    #[test]
    fn conditions_keep_their_transition_time_while_unchanged() {
        let old = json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]);
        let same = metav1_conditions(
            Some(&old),
            &[Cond::new("Ready", true, "Ready", "NotReady", "")],
            3,
        );
        assert_eq!(same[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert_eq!(same[0]["observedGeneration"], 3);
        let flipped = v1beta1_conditions(
            Some(&old),
            &[Cond::new("Ready", false, "Ready", "NotReady", "down")],
        );
        assert_ne!(flipped[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert_eq!(flipped[0]["severity"], "Warning");
        assert_eq!(flipped[0]["reason"], "NotReady");
    }

    #[test]
    fn names_and_hashes() {
        let a = random_suffix();
        assert_eq!(a.len(), 5);
        assert_ne!(a, random_suffix());
        assert_eq!(stable_hash("x"), stable_hash("x"));
        assert!(version_key("v1.21.0") > version_key("v1.20.12"));
    }
}
