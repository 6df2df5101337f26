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

pub use crate::layer::object_key::{
    GroupKind, IsNamespaced, ObjectError, ObjectKey, is_namespaced, object_key, split_api_version,
};

use crate::pack::yaml_text::{describe_kind, yaml_error_message};

const CRD_GROUP: &str = "apiextensions.k8s.io";

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
