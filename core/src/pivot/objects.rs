//! The objects a move works on: kinds as discovered from CRDs, objects as read, and the
//! references the plan holds to them.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PlanError;
use crate::contracts::labels::{CLUSTERCTL_LABEL, MOVE_HIERARCHY_LABEL, MOVE_LABEL};

/// `apiVersion` and `kind`, as written in an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectKind {
    pub api_version: String,
    pub kind: String,
}

impl ObjectKind {
    pub fn new(api_version: &str, kind: &str) -> Self {
        Self {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        }
    }

    /// The API group; empty for the core group (`v1`).
    pub fn group(&self) -> &str {
        group_of(&self.api_version)
    }

    pub fn group_kind(&self) -> GroupKind {
        GroupKind::new(self.group(), &self.kind)
    }
}

/// A kind without its version: objects are matched by group and kind, because the same
/// object may be read at different versions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupKind {
    pub group: String,
    pub kind: String,
}

impl GroupKind {
    pub fn new(group: &str, kind: &str) -> Self {
        Self {
            group: group.to_string(),
            kind: kind.to_string(),
        }
    }
}

impl fmt::Display for GroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

pub(super) fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// One object of a move, as the plan and the journal name it. The uid is the source's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub kind: ObjectKind,
    /// None for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind.kind, self.name),
            None => write!(f, "{} {}", self.kind.kind, self.name),
        }
    }
}

/// A reference in an object's spec that the plan did not follow, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnfollowedRef {
    pub from: ObjectRef,
    /// e.g. `spec.infrastructureRef`.
    pub field: String,
    /// `Kind.group name`, as the reference names it.
    pub target: String,
    pub reason: String,
}

/// An entry of `metadata.ownerReferences`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

impl fmt::Display for OwnerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} (uid {})", self.kind, self.name, self.uid)
    }
}

impl OwnerRef {
    /// Entries without a uid are skipped: the apiserver requires one, so such an entry
    /// can only come from a hand-made fixture and names nothing.
    pub(super) fn all_of(object: &Value) -> Vec<OwnerRef> {
        let Some(entries) = object
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
        else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|entry| {
                let text = |field: &str| entry.get(field).and_then(Value::as_str);
                Some(OwnerRef {
                    api_version: text("apiVersion").unwrap_or_default().to_string(),
                    kind: text("kind").unwrap_or_default().to_string(),
                    name: text("name").unwrap_or_default().to_string(),
                    uid: text("uid").filter(|uid| !uid.is_empty())?.to_string(),
                })
            })
            .collect()
    }
}

/// A kind that may be moved, as discovered from its CRD (or a core kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveKind {
    pub group: String,
    /// The storage version, the one to read and write.
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    pub status_subresource: bool,
    /// CRD labelled [`CLUSTERCTL_LABEL`] (any value), or Secret/ConfigMap.
    pub clusterctl: bool,
    /// CRD labelled [`MOVE_LABEL`]: every object of the kind moves.
    pub move_label: bool,
    /// CRD labelled [`MOVE_HIERARCHY_LABEL`]: every object of the kind moves with what it
    /// owns.
    pub move_hierarchy_label: bool,
}

impl MoveKind {
    /// Reads an `apiextensions.k8s.io/v1` CRD.
    pub fn from_crd(crd: &Value) -> Result<MoveKind, PlanError> {
        let crd_name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
            .to_string();
        let text = |pointer: &str, field: &'static str| {
            crd.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| PlanError::MissingField {
                    object: format!("CRD {crd_name}"),
                    field,
                })
        };
        let storage = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .and_then(|versions| {
                versions
                    .iter()
                    .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            })
            .ok_or_else(|| PlanError::NoStorageVersion {
                crd: crd_name.clone(),
            })?;
        let version = storage
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| PlanError::NoStorageVersion {
                crd: crd_name.clone(),
            })?
            .to_string();
        let labels = crd.pointer("/metadata/labels").and_then(Value::as_object);
        let labelled = |label: &str| labels.is_some_and(|labels| labels.contains_key(label));
        Ok(MoveKind {
            group: text("/spec/group", "spec.group")?,
            version,
            kind: text("/spec/names/kind", "spec.names.kind")?,
            plural: text("/spec/names/plural", "spec.names.plural")?,
            namespaced: text("/spec/scope", "spec.scope")? == "Namespaced",
            status_subresource: storage.pointer("/subresources/status").is_some(),
            clusterctl: labelled(CLUSTERCTL_LABEL),
            move_label: labelled(MOVE_LABEL),
            move_hierarchy_label: labelled(MOVE_HIERARCHY_LABEL),
        })
    }

    pub fn secret() -> MoveKind {
        Self::core("Secret", "secrets")
    }

    pub fn config_map() -> MoveKind {
        Self::core("ConfigMap", "configmaps")
    }

    fn core(kind: &str, plural: &str) -> MoveKind {
        MoveKind {
            group: String::new(),
            version: "v1".to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced: true,
            status_subresource: false,
            clusterctl: true,
            move_label: false,
            move_hierarchy_label: false,
        }
    }

    /// clusterctl discovers a CRD by any of its three labels.
    pub fn is_movable(&self) -> bool {
        self.clusterctl || self.move_label || self.move_hierarchy_label
    }

    pub fn group_kind(&self) -> GroupKind {
        GroupKind::new(&self.group, &self.kind)
    }
}

/// One object of the source namespace (or a cluster-scoped object of a clusterctl kind),
/// as read.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceObject {
    pub kind: ObjectKind,
    /// None for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    /// The object as read, metadata included.
    pub json: Value,
}

impl SourceObject {
    pub fn from_json(json: Value) -> Result<SourceObject, PlanError> {
        let text = |pointer: &str| json.pointer(pointer).and_then(Value::as_str);
        let describe = || {
            format!(
                "{} {}",
                text("/kind").unwrap_or("<no kind>"),
                text("/metadata/name").unwrap_or("<no name>")
            )
        };
        let required = |pointer: &str, field: &'static str| {
            text(pointer)
                .filter(|value| !value.is_empty())
                .map(str::to_string)
                .ok_or_else(|| PlanError::MissingField {
                    object: describe(),
                    field,
                })
        };
        let kind = ObjectKind {
            api_version: required("/apiVersion", "apiVersion")?,
            kind: required("/kind", "kind")?,
        };
        let namespace = text("/metadata/namespace").map(str::to_string);
        let name = required("/metadata/name", "metadata.name")?;
        let uid = required("/metadata/uid", "metadata.uid")?;
        Ok(SourceObject {
            kind,
            namespace,
            name,
            uid,
            json,
        })
    }

    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }

    pub fn owners(&self) -> Vec<OwnerRef> {
        OwnerRef::all_of(&self.json)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.json
            .pointer("/metadata/labels")
            .and_then(|labels| labels.get(key))
            .and_then(Value::as_str)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.json
            .pointer("/metadata/annotations")
            .and_then(|annotations| annotations.get(key))
            .and_then(Value::as_str)
    }

    pub fn has_label(&self, key: &str) -> bool {
        self.json
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .is_some_and(|labels| labels.contains_key(key))
    }
}

impl fmt::Display for SourceObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.object_ref().fmt(f)
    }
}
