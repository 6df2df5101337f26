//! The copy of an object written to the target, and the content hash that proves a copy
//! equals its source.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::PlanError;
use super::objects::SourceObject;
use crate::contracts::capi::CLUSTER;
use crate::contracts::labels::DELETE_FOR_MOVE_ANNOTATION;

/// Metadata the source's apiserver set: the target sets its own, and rejects a create that
/// carries a `resourceVersion`.
const SERVER_SET_METADATA: [&str; 8] = [
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Fields that are not the object's content: identity, bookkeeping, observed state.
const NOT_CONTENT: [&str; 4] = ["apiVersion", "kind", "metadata", "status"];

/// The object to create in the target, and (for kinds with a status subresource) the
/// status to write after the create, since the apiserver ignores status on create there.
///
/// Owner references are rewritten from source to target uids through `target_uids`; an
/// owner without a target uid is an error naming it, because a reference to a uid the
/// target does not have lets its garbage collector delete the new copy. A
/// `delete-for-move` annotation left by an interrupted earlier attempt is dropped, so the
/// copy is not released by its controller as if it were leaving.
pub fn target_object(
    source: &SourceObject,
    status_subresource: bool,
    target_uids: &BTreeMap<String, String>,
) -> Result<(Value, Option<Value>), PlanError> {
    let mut object = source.json.clone();
    let fields = object
        .as_object_mut()
        .ok_or_else(|| PlanError::NotAnObject {
            object: source.to_string(),
        })?;
    let status = if status_subresource {
        fields.remove("status").filter(|status| !is_empty(status))
    } else {
        None
    };
    if let Some(metadata) = fields.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_SET_METADATA {
            metadata.remove(field);
        }
        drop_annotation(metadata, DELETE_FOR_MOVE_ANNOTATION);
        rewrite_owner_uids(source, metadata, target_uids)?;
    }
    Ok((object, status))
}

/// The labels a namespace needs for `identity` to admit the clusters in it: the `matchLabels`
/// of `spec.allowedNamespaces.selector` (CAPV admits namespaces by selector only). Its copy
/// in the target admits nothing until the target's namespace carries them, and the agent
/// creates that namespace bare.
pub fn admitted_namespace_labels(identity: &Value) -> BTreeMap<String, String> {
    identity
        .pointer("/spec/allowedNamespaces/selector/matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
        .collect()
}

fn rewrite_owner_uids(
    source: &SourceObject,
    metadata: &mut Map<String, Value>,
    target_uids: &BTreeMap<String, String>,
) -> Result<(), PlanError> {
    let Some(owners) = metadata
        .get_mut("ownerReferences")
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    for owner in owners {
        let source_uid = owner.get("uid").and_then(Value::as_str).unwrap_or_default();
        let Some(target_uid) = target_uids.get(source_uid) else {
            let text = |key: &str| owner.get(key).and_then(Value::as_str).unwrap_or("?");
            return Err(PlanError::OwnerNotInTarget {
                object: source.to_string(),
                owner: format!(
                    "{} {} (source uid {source_uid})",
                    text("kind"),
                    text("name")
                ),
            });
        };
        owner["uid"] = Value::String(target_uid.clone());
    }
    Ok(())
}

fn drop_annotation(metadata: &mut Map<String, Value>, key: &str) {
    if let Some(annotations) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(key);
        if annotations.is_empty() {
            metadata.remove("annotations");
        }
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

/// `sha256:<hex>` of an object's content: every top-level field but `apiVersion`, `kind`,
/// `metadata` and `status`, i.e. the spec, or `data`, `binaryData` and `type` of Secrets and
/// ConfigMaps. Keys are sorted at every level, so the hash does not depend on the order
/// an apiserver or a JSON library wrote them in.
///
/// A Cluster's `spec.paused` is left out: the move itself pauses the source after planning
/// and unpauses the target at the end, and neither is a change of the cluster.
pub fn content_hash(object: &Value) -> String {
    let mut content: Map<String, Value> = object
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| !NOT_CONTENT.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if is_capi_cluster(object)
        && let Some(spec) = content.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("paused");
    }
    let mut canonical = String::new();
    write_canonical(&Value::Object(content), &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

fn is_capi_cluster(object: &Value) -> bool {
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    match (text("apiVersion"), text("kind")) {
        (Some(api_version), Some(kind)) => CLUSTER.is(api_version, kind),
        _ => false,
    }
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(field) = fields.get(key) {
                    write_canonical(field, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
#[path = "target_tests.rs"]
mod tests;
