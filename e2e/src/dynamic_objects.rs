//! Objects of any kind, named by `apiVersion` and kind as text, read from a cluster for a
//! test's checks; and what differs between an object sent and the one read back.
//!
//! A read the API server refuses panics with the object named: these are checks for
//! tests, where a failed read is the test's failure. The functions that may meet a kind
//! not installed yet say so in their result instead.

use std::collections::BTreeSet;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

/// The resource of `kind` at `api_version` (`group/version`, or `version` alone for the
/// core group), its plural guessed the way the API server's discovery would name it.
pub fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// One object, cluster-scoped when `namespace` is `None`; `None` when it does not exist.
pub async fn get_dynamic(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Option<DynamicObject> {
    let resource = resource(api_version, kind);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.get_opt(name).await.unwrap_or_else(|e| {
        panic!(
            "reading {api_version} {kind} {}{name}: {e}",
            namespace.map(|ns| format!("{ns}/")).unwrap_or_default()
        )
    })
}

/// The objects of a kind in a namespace; none when the kind is not installed.
pub async fn list_objects(
    client: &Client,
    namespace: &str,
    api_version: &str,
    kind: &str,
) -> Vec<DynamicObject> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource(api_version, kind));
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Whether an object exists; `None` when the API could not say (a kind not installed yet).
pub async fn exists(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Option<bool> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource(api_version, kind));
    api.get_opt(name).await.ok().map(|o| o.is_some())
}

/// The names of a kind's objects in a namespace; `None` when the API could not say.
pub async fn object_names(
    client: &Client,
    namespace: &str,
    api_version: &str,
    kind: &str,
) -> Option<BTreeSet<String>> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource(api_version, kind));
    let list = api.list(&ListParams::default()).await.ok()?;
    Some(list.items.iter().map(|o| o.name_any()).collect())
}

/// Where `read` differs from what was `sent`, each difference described with its path
/// below `path` and pushed to `out` (fields others added are not differences).
pub fn differences(sent: &Value, read: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, read) {
        (Value::Object(s), Value::Object(r)) => {
            for (key, value) in s {
                let here = format!("{path}.{key}");
                match r.get(key) {
                    Some(other) => differences(value, other, &here, out),
                    None => out.push(format!("{here} is missing")),
                }
            }
        }
        (Value::Array(s), Value::Array(r)) if s.len() == r.len() => {
            for (i, (a, b)) in s.iter().zip(r).enumerate() {
                differences(a, b, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: sent {a}, found {b}")),
    }
}
