//! Cluster API CRDs for a test apiserver.
//!
//! The upstream CRDs (`../shared/capi-crds/`, or `$STRATA_CAPI_CRDS`) are installed with
//! the changes kube-apiserver 1.20 needs, none of which changes what 1.20 accepts: only the
//! storage version is kept, `spec.conversion` (a webhook tests do not run) is removed,
//! `default: ""` is removed from string properties (1.20 rejects an empty-string default),
//! and `x-kubernetes-validations` is removed. That fourth change is needed because the CRDs
//! are server-side applied: CEL rules arrived in 1.23, 1.20's typed apply refuses the
//! unknown field, and a plain create would silently drop it, so 1.20 never checks them.
//! One more change only saves time: the schemas' descriptions are removed (see
//! `remove_descriptions`). When the folder is absent, Strata's own minimal CRDs for the
//! kinds it uses are installed instead (schemas open, so nothing is checked), and the
//! caller is told so.
//!
//! The apiserver prunes unknown fields instead of rejecting them, so [`pruned_fields`]
//! compares what was sent with what was read back.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const FIELD_MANAGER: &str = "strata-e2e";
const CLUSTERCTL_LABEL: &str = "clusterctl.cluster.x-k8s.io";

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a CustomResourceDefinition: {reason}")]
    Invalid { path: String, reason: String },
    #[error("the apiserver refused CRD {name}: {source}")]
    Apply {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("CRD {name} was not Established after {waited:?}")]
    NotEstablished { name: String, waited: Duration },
}

/// Which CRDs were installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrdSet {
    /// The upstream CRDs from this folder.
    Upstream(PathBuf),
    /// Strata's minimal CRDs, because no upstream folder was found at this path.
    Minimal { looked_in: PathBuf },
}

/// Where the upstream CRDs are: `$STRATA_CAPI_CRDS`, else `shared/capi-crds` beside the
/// repository.
pub fn upstream_dir() -> PathBuf {
    match std::env::var_os("STRATA_CAPI_CRDS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/capi-crds"),
    }
}

/// Applies the three changes 1.20 needs to one upstream CRD (as JSON).
pub fn adapt_for_1_20(mut crd: Value, origin: &str) -> Result<Value, CrdError> {
    let invalid = |reason: &str| CrdError::Invalid {
        path: origin.to_string(),
        reason: reason.to_string(),
    };
    if crd.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
        return Err(invalid("its kind is not CustomResourceDefinition"));
    }
    let spec = crd
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| invalid("it has no spec"))?;
    spec.remove("conversion");
    let versions = spec
        .get_mut("versions")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| invalid("it has no spec.versions"))?;
    versions.retain(|v| v.get("storage").and_then(Value::as_bool) == Some(true));
    if versions.len() != 1 {
        return Err(invalid("it does not have exactly one storage version"));
    }
    remove_empty_string_defaults(&mut crd);
    remove_cel_rules(&mut crd);
    remove_descriptions(&mut crd);
    Ok(crd)
}

/// Removes every schema's prose (`description`: a string, unlike a property named so,
/// which is a schema). Two thirds of the CRDs' bytes are prose, and 1.20's apiserver
/// rebuilds and re-encodes its whole OpenAPI document on every CRD change: that rebuild
/// was most of a test control plane's work. Nothing checks or prunes by a description.
fn remove_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("description").is_some_and(Value::is_string) {
                map.remove("description");
            }
            map.values_mut().for_each(remove_descriptions);
        }
        Value::Array(items) => items.iter_mut().for_each(remove_descriptions),
        _ => {}
    }
}

fn remove_empty_string_defaults(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("string")
                && map.get("default").and_then(Value::as_str) == Some("")
            {
                map.remove("default");
            }
            map.values_mut().for_each(remove_empty_string_defaults);
        }
        Value::Array(items) => items.iter_mut().for_each(remove_empty_string_defaults),
        _ => {}
    }
}

fn remove_cel_rules(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("x-kubernetes-validations");
            map.values_mut().for_each(remove_cel_rules);
        }
        Value::Array(items) => items.iter_mut().for_each(remove_cel_rules),
        _ => {}
    }
}

/// Reads and adapts every CRD in the upstream folder, sorted by file name.
pub fn load_upstream(dir: &Path) -> Result<Vec<Value>, CrdError> {
    let read_error = |source| CrdError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(read_error)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let text = fs::read_to_string(path).map_err(|source| CrdError::Read {
                path: path.clone(),
                source,
            })?;
            let value: Value = serde_yaml::from_str(&text).map_err(|e| CrdError::Invalid {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            adapt_for_1_20(value, &path.display().to_string())
        })
        .collect()
}

/// (group, version, kind, plural) of every kind Strata creates or moves.
pub const STRATA_KINDS: &[(&str, &str, &str, &str)] = &[
    ("cluster.x-k8s.io", "v1beta2", "Cluster", "clusters"),
    ("cluster.x-k8s.io", "v1beta2", "Machine", "machines"),
    ("cluster.x-k8s.io", "v1beta2", "MachineSet", "machinesets"),
    (
        "cluster.x-k8s.io",
        "v1beta2",
        "MachineDeployment",
        "machinedeployments",
    ),
    (
        "cluster.x-k8s.io",
        "v1beta2",
        "MachineHealthCheck",
        "machinehealthchecks",
    ),
    (
        "controlplane.cluster.x-k8s.io",
        "v1beta2",
        "KubeadmControlPlane",
        "kubeadmcontrolplanes",
    ),
    (
        "bootstrap.cluster.x-k8s.io",
        "v1beta2",
        "KubeadmConfig",
        "kubeadmconfigs",
    ),
    (
        "bootstrap.cluster.x-k8s.io",
        "v1beta2",
        "KubeadmConfigTemplate",
        "kubeadmconfigtemplates",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta2",
        "VSphereCluster",
        "vsphereclusters",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta2",
        "VSphereMachine",
        "vspheremachines",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta2",
        "VSphereMachineTemplate",
        "vspheremachinetemplates",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta2",
        "VSphereClusterIdentity",
        "vsphereclusteridentities",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta2",
        "AWSCluster",
        "awsclusters",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta2",
        "AWSMachine",
        "awsmachines",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta2",
        "AWSMachineTemplate",
        "awsmachinetemplates",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta2",
        "AWSClusterStaticIdentity",
        "awsclusterstaticidentities",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta1",
        "AzureCluster",
        "azureclusters",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta1",
        "AzureMachine",
        "azuremachines",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta1",
        "AzureMachineTemplate",
        "azuremachinetemplates",
    ),
    (
        "infrastructure.cluster.x-k8s.io",
        "v1beta1",
        "AzureClusterIdentity",
        "azureclusteridentities",
    ),
];

/// Identity kinds are cluster-scoped upstream (except Azure's).
fn cluster_scoped(kind: &str) -> bool {
    matches!(kind, "VSphereClusterIdentity" | "AWSClusterStaticIdentity")
}

/// Strata's minimal CRDs: the right names, scopes and status subresources, open schemas.
pub fn minimal() -> Vec<Value> {
    STRATA_KINDS
        .iter()
        .map(|(group, version, kind, plural)| {
            json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {
                    "name": format!("{plural}.{group}"),
                    "labels": { CLUSTERCTL_LABEL: "", "strata.dev/minimal-crd": "true" },
                },
                "spec": {
                    "group": group,
                    "names": {
                        "kind": kind,
                        "listKind": format!("{kind}List"),
                        "plural": plural,
                        "singular": kind.to_lowercase(),
                    },
                    "scope": if cluster_scoped(kind) { "Cluster" } else { "Namespaced" },
                    "versions": [{
                        "name": version,
                        "served": true,
                        "storage": true,
                        "subresources": { "status": {} },
                        "schema": { "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                        }},
                    }],
                },
            })
        })
        .collect()
}

/// Installs the upstream CRDs when their folder exists, else the minimal ones (saying so on
/// stderr, so the test output shows that schemas were not checked). Waits until every CRD
/// is Established.
pub async fn install(client: &Client) -> Result<CrdSet, CrdError> {
    install_from(client, &upstream_dir()).await
}

/// [`install`] with the upstream folder given.
pub async fn install_from(client: &Client, dir: &Path) -> Result<CrdSet, CrdError> {
    let dir = dir.to_path_buf();
    let (crds, set) = if dir.is_dir() {
        (load_upstream(&dir)?, CrdSet::Upstream(dir))
    } else {
        eprintln!(
            "note: no Cluster API CRDs at {} (set STRATA_CAPI_CRDS); installing Strata's minimal CRDs, whose open schemas check nothing",
            dir.display()
        );
        (minimal(), CrdSet::Minimal { looked_in: dir })
    };
    let crds: Vec<Value> = crds.into_iter().map(label_for_clusterctl).collect();
    apply_all(client, &crds).await?;
    Ok(set)
}

/// The label `clusterctl init` puts on the CRDs it installs (the upstream files do not
/// carry it), by which `clusterctl move` and Strata's pivot find the kinds to move.
pub fn label_for_clusterctl(mut crd: Value) -> Value {
    if let Some(metadata) = crd.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = metadata.entry("labels").or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels
                .entry("clusterctl.cluster.x-k8s.io")
                .or_insert_with(|| json!(""));
        }
    }
    crd
}

/// Server-side applies CRDs and waits for them to be Established.
pub async fn apply_all(client: &Client, crds: &[Value]) -> Result<(), CrdError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for crd in crds {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(crd),
        )
        .await
        .map_err(|source| CrdError::Apply {
            name: name.clone(),
            source,
        })?;
        names.push(name);
    }
    let waited = Duration::from_secs(30);
    let deadline = Instant::now() + waited;
    for name in names {
        loop {
            let established = api
                .get_opt(&name)
                .await
                .ok()
                .flatten()
                .and_then(|crd| crd.status)
                .and_then(|status| status.conditions)
                .is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if Instant::now() >= deadline {
                return Err(CrdError::NotEstablished { name, waited });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Every field path present in `sent` but missing from `read_back` (what the apiserver
/// pruned). Values may differ (defaults, server-set fields); only absence counts. List items
/// are compared by position.
pub fn pruned_fields(sent: &Value, read_back: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    walk(sent, read_back, "", &mut pruned);
    pruned
}

fn walk(sent: &Value, back: &Value, path: &str, pruned: &mut Vec<String>) {
    match (sent, back) {
        (Value::Object(sent), Value::Object(back)) => {
            for (key, value) in sent {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match back.get(key) {
                    Some(found) => walk(value, found, &child, pruned),
                    None => pruned.push(child),
                }
            }
        }
        (Value::Array(sent), Value::Array(back)) => {
            for (i, value) in sent.iter().enumerate() {
                let child = format!("{path}[{i}]");
                match back.get(i) {
                    Some(found) => walk(value, found, &child, pruned),
                    None => pruned.push(child),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn adapts_a_crd_for_1_20() {
        let crd = json!({
            "kind": "CustomResourceDefinition",
            "spec": {
                "conversion": { "strategy": "Webhook" },
                "versions": [
                    { "name": "v1beta1", "storage": false },
                    { "name": "v1beta2", "storage": true, "schema": { "openAPIV3Schema": {
                        "description": "A cluster.",
                        "properties": {
                        "a": { "type": "string", "default": "", "description": "Prose." },
                        "description": { "type": "string", "description": "A field so named." },
                        "rules": { "type": "object", "x-kubernetes-validations": [{ "rule": "self.x > 0" }] },
                        "b": { "type": "string", "default": "x" },
                        "c": { "type": "integer", "default": 0 },
                    }}}},
                ],
            },
        });
        let adapted = adapt_for_1_20(crd, "test").unwrap();
        assert!(adapted["spec"].get("conversion").is_none());
        let versions = adapted["spec"]["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 1);
        let schema = &versions[0]["schema"]["openAPIV3Schema"];
        assert!(schema.get("description").is_none());
        let properties = &schema["properties"];
        assert!(properties["a"].get("default").is_none());
        assert!(properties["a"].get("description").is_none());
        // A property named `description` is a field, not prose: it stays.
        assert_eq!(properties["description"], json!({ "type": "string" }));
        assert_eq!(properties["b"]["default"], "x");
        assert_eq!(properties["c"]["default"], 0);
        assert!(
            properties["rules"]
                .get("x-kubernetes-validations")
                .is_none()
        );
    }

    #[test]
    fn refuses_what_is_not_a_crd() {
        let err = adapt_for_1_20(json!({"kind": "ConfigMap"}), "x.yaml").unwrap_err();
        assert!(
            err.to_string()
                .contains("x.yaml is not a CustomResourceDefinition")
        );
    }

    #[test]
    fn reports_pruned_fields() {
        let sent = json!({"spec": {"a": 1, "b": {"c": [1, {"d": 2, "e": 3}]}, "f": "x"}});
        let back = json!({"spec": {"a": 2, "b": {"c": [1, {"d": 2}]}, "g": "server"}});
        assert_eq!(pruned_fields(&sent, &back), ["spec.b.c[1].e", "spec.f"]);
        assert!(pruned_fields(&sent, &sent).is_empty());
    }

    #[test]
    fn minimal_crds_cover_every_kind() {
        let crds = minimal();
        assert_eq!(crds.len(), STRATA_KINDS.len());
        assert!(
            crds.iter()
                .all(|c| c["metadata"]["labels"].get(CLUSTERCTL_LABEL).is_some())
        );
    }

    #[test]
    fn the_upstream_crds_adapt_when_present() {
        let dir = upstream_dir();
        if !dir.is_dir() {
            eprintln!("note: no upstream CRDs at {}; skipping", dir.display());
            return;
        }
        let crds = load_upstream(&dir).unwrap();
        assert_eq!(crds.len(), 23);
        let text = serde_json::to_string(&crds).unwrap();
        assert!(!text.contains(r#""default":"""#));
        assert!(!text.contains("x-kubernetes-validations"));
        assert!(!text.contains(r#""description":""#));
    }
}
