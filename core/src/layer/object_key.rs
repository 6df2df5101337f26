//! What identifies an object in a cluster: its group, version, kind, namespace and name,
//! and whether its kind is namespaced (the cluster's discovery, else a table of well-known
//! cluster-scoped kinds).

use serde_json::Value;
use thiserror::Error;

/// Well-known cluster-scoped kinds, by group and kind, for when discovery does not say:
/// every other kind is taken as namespaced. Older groups a kind was served from are listed
/// too, since old charts still write them.
#[rustfmt::skip]
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"), ("", "PersistentVolume"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"), ("storage.k8s.io", "CSIDriver"),
    ("scheduling.k8s.io", "PriorityClass"), ("apiregistration.k8s.io", "APIService"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("networking.k8s.io", "IngressClass"), ("node.k8s.io", "RuntimeClass"),
    ("policy", "PodSecurityPolicy"), ("extensions", "PodSecurityPolicy"),
    ("snapshot.storage.k8s.io", "VolumeSnapshotClass"),
];

/// A kind with its API group (`""` for the core group).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKind {
    pub group: String,
    pub kind: String,
}

impl std::fmt::Display for GroupKind {
    /// `Kind.group`, or `Kind` for the core group: the ApplySet annotation's form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// Where an object lives in a cluster. Two keys name the same object when they differ only
/// in `version` ([`ObjectKey::same_object`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub group: String,
    pub version: String,
    pub kind: String,
    /// `None` for a cluster-scoped object.
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    pub fn group_kind(&self) -> GroupKind {
        GroupKind {
            group: self.group.clone(),
            kind: self.kind.clone(),
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Group, kind, namespace and name: what the cluster identifies an object by, whatever
    /// version it is read at.
    pub fn identity(&self) -> (&str, &str, Option<&str>, &str) {
        (
            &self.group,
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }

    pub fn same_object(&self, other: &ObjectKey) -> bool {
        self.identity() == other.identity()
    }
}

impl std::fmt::Display for ObjectKey {
    /// `Deployment.apps monitoring/web`, `Namespace monitoring`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.group_kind(), self.name),
            None => write!(f, "{} {}", self.group_kind(), self.name),
        }
    }
}

/// The caller's discovery: `Some(namespaced)` for a kind the cluster serves, `None` when
/// it does not know the kind (a CRD of the same layer not installed yet).
pub type IsNamespaced<'a> = &'a dyn Fn(&GroupKind) -> Option<bool>;

/// Whether objects of `kind` are namespaced: discovery's answer, else the table of
/// well-known cluster-scoped kinds.
pub fn is_namespaced(kind: &GroupKind, discovery: Option<IsNamespaced<'_>>) -> bool {
    discovery
        .and_then(|discover| discover(kind))
        .unwrap_or_else(|| {
            !CLUSTER_SCOPED
                .iter()
                .any(|(group, name)| *group == kind.group && *name == kind.kind)
        })
}

/// Why an object has no key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ObjectError {
    /// `found` is `missing`, `empty` or the kind of value found.
    #[error("{field} is {found}; every Kubernetes object needs it as a non-empty string")]
    Field {
        field: &'static str,
        found: &'static str,
    },
    #[error("apiVersion {found:?} is not of the form <group>/<version> or <version>")]
    ApiVersion { found: String },
}

/// The key of `object`. A namespaced object that names no namespace is in
/// `layer_namespace`; a cluster-scoped one has none, whatever it names.
pub fn object_key(
    object: &Value,
    layer_namespace: &str,
    discovery: Option<IsNamespaced<'_>>,
) -> Result<ObjectKey, ObjectError> {
    let api_version = required_string(object.get("apiVersion"), "apiVersion")?;
    let kind = required_string(object.get("kind"), "kind")?;
    let metadata = object.get("metadata");
    let name = required_string(metadata.and_then(|m| m.get("name")), "metadata.name")?;
    let (group, version) = split_api_version(api_version)?;
    let group_kind = GroupKind {
        group: group.to_string(),
        kind: kind.to_string(),
    };
    let namespace = if is_namespaced(&group_kind, discovery) {
        let written = metadata
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .filter(|namespace| !namespace.is_empty());
        Some(written.unwrap_or(layer_namespace).to_string())
    } else {
        None
    };
    Ok(ObjectKey {
        group: group_kind.group,
        version: version.to_string(),
        kind: group_kind.kind,
        namespace,
        name: name.to_string(),
    })
}

fn required_string<'v>(
    value: Option<&'v Value>,
    field: &'static str,
) -> Result<&'v str, ObjectError> {
    let found = match value {
        Some(Value::String(text)) if !text.is_empty() => return Ok(text),
        None | Some(Value::Null) => "missing",
        Some(Value::String(_)) => "empty",
        Some(other) => json_kind(other),
    };
    Err(ObjectError::Field { field, found })
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// `Deployment shop/web`: an object not yet keyed, for messages.
pub(crate) fn describe_object(object: &Value) -> String {
    let metadata = object.get("metadata");
    let text = |field| metadata.and_then(|m| m.get(field)).and_then(Value::as_str);
    let kind = object.get("kind").and_then(Value::as_str);
    let kind = kind.filter(|kind| !kind.is_empty()).unwrap_or("object");
    let name = text("name").unwrap_or("(unnamed)");
    match text("namespace").filter(|namespace| !namespace.is_empty()) {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (`""`, `v1`).
pub fn split_api_version(api_version: &str) -> Result<(&str, &str), ObjectError> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    if version.is_empty()
        || version.contains('/')
        || (api_version.contains('/') && group.is_empty())
    {
        return Err(ObjectError::ApiVersion {
            found: api_version.to_string(),
        });
    }
    Ok((group, version))
}
