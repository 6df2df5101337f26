//! How a layer's rendered objects are applied, and in which order.
//!
//! - Phase 1: CustomResourceDefinitions, which the installer waits for until they are
//!   Established, so that the layer's custom resources find their types.
//! - Phase 2: Namespaces, so that every namespaced object finds its namespace.
//! - Phase 3: everything else, in Helm's install order by kind (helm v3's
//!   `pkg/releaseutil/kind_sorter.go`, `InstallOrder`): kinds Helm does not list (custom
//!   resources) come last, sorted by kind name as Helm sorts them; objects of one kind keep
//!   their rendered order.
//!
//! Uninstalling and pruning go the other way round, so that nothing is left without the
//! type or namespace it lives in while it is being deleted.

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::pack::yaml_text::{describe_kind, yaml_error_message};

/// Helm's `InstallOrder`, as in helm v3's `pkg/releaseutil/kind_sorter.go`.
#[rustfmt::skip]
pub const HELM_INSTALL_ORDER: &[&str] = &[
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
    "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
    "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
    "APIService",
];

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

const CRD_GROUP: &str = "apiextensions.k8s.io";

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

/// Why a layer's rendered text cannot be read as objects. Documents are counted from 1,
/// empty ones included, as the text's `---` separators count them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManifestError {
    #[error("document {document}: {message}")]
    Yaml { document: usize, message: String },
    #[error(
        "{at}: found {found}, expected a Kubernetes object (a mapping with apiVersion, kind and metadata)"
    )]
    NotAnObject { at: String, found: &'static str },
    #[error("document {document}: kind List: items is {found}, expected a list of objects")]
    ListItems {
        document: usize,
        found: &'static str,
    },
    #[error("{at}: cannot be read as JSON: {message}")]
    Json { at: String, message: String },
    #[error("{at}: {source}")]
    Object {
        at: String,
        #[source]
        source: ObjectError,
    },
}

/// One object of a multi-document text, with where it was.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedObject {
    /// `document 3`, `document 3 items[1]` (documents count from 1): how messages name it.
    pub place: String,
    pub object: Value,
}

/// The objects of a multi-document YAML text (`helm template`'s output), in order: empty
/// documents are skipped and a `kind: List` stands for its items. YAML merge keys (`<<`)
/// are applied, as Kubernetes' YAML reader does.
pub fn parse_objects(text: &str) -> Result<Vec<ParsedObject>, ManifestError> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        let yaml_error = |error: serde_yaml::Error| ManifestError::Yaml {
            document: number,
            message: yaml_error_message(&error),
        };
        let mut value = serde_yaml::Value::deserialize(document).map_err(yaml_error)?;
        value.apply_merge().map_err(yaml_error)?;
        let serde_yaml::Value::Mapping(mapping) = &value else {
            if value.is_null() {
                continue;
            }
            return Err(ManifestError::NotAnObject {
                at: format!("document {number}"),
                found: describe_kind(&value),
            });
        };
        if mapping.get("kind").and_then(serde_yaml::Value::as_str) != Some("List") {
            objects.push(to_parsed(&value, format!("document {number}"))?);
            continue;
        }
        let items = match mapping.get("items") {
            Some(serde_yaml::Value::Sequence(items)) => items,
            Some(serde_yaml::Value::Null) | None => continue,
            Some(other) => {
                return Err(ManifestError::ListItems {
                    document: number,
                    found: describe_kind(other),
                });
            }
        };
        for (item, value) in items.iter().enumerate() {
            let place = format!("document {number} items[{item}]");
            if !value.is_mapping() {
                return Err(ManifestError::NotAnObject {
                    at: place,
                    found: describe_kind(value),
                });
            }
            objects.push(to_parsed(value, place)?);
        }
    }
    Ok(objects)
}

fn to_parsed(value: &serde_yaml::Value, place: String) -> Result<ParsedObject, ManifestError> {
    match serde_json::to_value(value) {
        Ok(object) => Ok(ParsedObject { place, object }),
        Err(error) => Err(ManifestError::Json {
            at: place,
            message: error.to_string(),
        }),
    }
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

/// A rendered object with its key; its `metadata.namespace` is the key's.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerObject {
    pub key: ObjectKey,
    pub object: Value,
}

/// The objects of a layer's rendered text, keyed and placed: a namespaced object without a
/// namespace gets `layer_namespace`, a cluster-scoped one loses any it wrote.
pub fn layer_objects(
    text: &str,
    layer_namespace: &str,
    discovery: Option<IsNamespaced<'_>>,
) -> Result<Vec<LayerObject>, ManifestError> {
    parse_objects(text)?
        .into_iter()
        .map(|parsed| {
            let key = object_key(&parsed.object, layer_namespace, discovery).map_err(|source| {
                ManifestError::Object {
                    at: parsed.place.clone(),
                    source,
                }
            })?;
            let mut object = parsed.object;
            if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
                match &key.namespace {
                    Some(namespace) => {
                        metadata.insert("namespace".into(), Value::from(namespace.clone()));
                    }
                    None => {
                        metadata.remove("namespace");
                    }
                }
            }
            Ok(LayerObject { key, object })
        })
        .collect()
}

/// The phases of a layer's install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Applied first and waited for until Established.
    CustomResourceDefinitions,
    Namespaces,
    Resources,
}

/// Where a kind goes in the install order (objects sort by it, stably): its phase, its
/// place in Helm's list, and for a kind Helm does not list, after all listed ones, its name.
pub type InstallRank = (Phase, usize, String);

pub fn phase(group: &str, kind: &str) -> Phase {
    match (group, kind) {
        (CRD_GROUP, "CustomResourceDefinition") => Phase::CustomResourceDefinitions,
        ("", "Namespace") => Phase::Namespaces,
        _ => Phase::Resources,
    }
}

pub fn install_rank(group: &str, kind: &str) -> InstallRank {
    match HELM_INSTALL_ORDER.iter().position(|listed| *listed == kind) {
        Some(position) => (phase(group, kind), position, String::new()),
        None => (
            phase(group, kind),
            HELM_INSTALL_ORDER.len(),
            kind.to_string(),
        ),
    }
}

/// Sorts keys into install order (stable within a kind).
pub fn sort_for_install(keys: &mut [ObjectKey]) {
    keys.sort_by_cached_key(|key| install_rank(&key.group, &key.kind));
}

/// A layer's objects split into its phases, each in install order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InstallPlan {
    pub custom_resource_definitions: Vec<LayerObject>,
    pub namespaces: Vec<LayerObject>,
    pub resources: Vec<LayerObject>,
}

impl InstallPlan {
    pub fn new(mut objects: Vec<LayerObject>) -> InstallPlan {
        objects.sort_by_cached_key(|object| install_rank(&object.key.group, &object.key.kind));
        let mut plan = InstallPlan::default();
        for object in objects {
            match phase(&object.key.group, &object.key.kind) {
                Phase::CustomResourceDefinitions => plan.custom_resource_definitions.push(object),
                Phase::Namespaces => plan.namespaces.push(object),
                Phase::Resources => plan.resources.push(object),
            }
        }
        plan
    }

    /// Every object in install order.
    pub fn install_order(&self) -> impl DoubleEndedIterator<Item = &LayerObject> {
        self.custom_resource_definitions
            .iter()
            .chain(&self.namespaces)
            .chain(&self.resources)
    }

    /// Every object in uninstall order: the install order reversed.
    pub fn uninstall_order(&self) -> impl Iterator<Item = &LayerObject> {
        self.install_order().rev()
    }
}

#[cfg(test)]
#[path = "install_order_tests.rs"]
mod install_order_tests;
