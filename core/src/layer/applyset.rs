//! A layer's objects as one ApplySet, kubectl's convention for a set of applied objects
//! that can be pruned (KEP-3659; the labels, annotations and id are those of kubectl's
//! `pkg/cmd/apply/applyset.go`).
//!
//! - Each layer has a parent object: the ConfigMap `strata-layer-<layer>` in
//!   `strata-system`. It carries the label `applyset.kubernetes.io/id` (the set's id) and
//!   the annotations `applyset.kubernetes.io/tooling` (`strata/v<version>`),
//!   `applyset.kubernetes.io/contains-group-kinds` (the members' kinds) and, when members
//!   live in namespaces other than `strata-system`, `applyset.kubernetes.io/additional-namespaces`.
//! - Each member carries the label `applyset.kubernetes.io/part-of=<id>`.
//! - The id is `applyset-<base64url(sha256(<name>.<namespace>.<Kind>.<group>))>-v1`, of the
//!   parent, unpadded.
//!
//! The parent names the kinds and namespaces to search for members, so what left the set
//! can be found and pruned: before applying, the parent is written with the union of the
//! previous and the new kinds and namespaces, so that an interrupted install leaks nothing;
//! after pruning, with the new ones only.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::contracts::names::AGENT_NAMESPACE;
use crate::layer::install_order::sort_for_install;
use crate::layer::object_key::{GroupKind, ObjectKey, describe_object, json_kind};
use crate::layer::release::dns_subdomain_problem;
use crate::pack::values::namespace_name_problem;

pub const ID_LABEL: &str = "applyset.kubernetes.io/id";
pub const PART_OF_LABEL: &str = "applyset.kubernetes.io/part-of";
pub const TOOLING_ANNOTATION: &str = "applyset.kubernetes.io/tooling";
pub const CONTAINS_GROUP_KINDS_ANNOTATION: &str = "applyset.kubernetes.io/contains-group-kinds";
pub const ADDITIONAL_NAMESPACES_ANNOTATION: &str = "applyset.kubernetes.io/additional-namespaces";
/// What kubectl before 1.28 wrote instead of group-kinds; resources cannot be read back
/// without discovery, so such a parent is refused with this named.
const CONTAINS_GROUP_RESOURCES_ANNOTATION: &str = "applyset.kubernetes.io/contains-group-resources";

/// The tool name in the tooling annotation; a parent of another tool is never taken over.
pub const TOOLING_NAME: &str = "strata";
/// Where the layers' parents live: the agent's namespace.
pub const PARENT_NAMESPACE: &str = AGENT_NAMESPACE;
pub const PARENT_NAME_PREFIX: &str = "strata-layer-";
pub const PARENT_KIND: &str = "ConfigMap";

/// `strata/v<version>`, the tooling annotation's `<toolname>/<semver>`.
pub fn tooling() -> String {
    format!("{TOOLING_NAME}/v{}", env!("CARGO_PKG_VERSION"))
}

/// The name of a layer's parent ConfigMap.
pub fn layer_parent_name(layer: &str) -> String {
    format!("{PARENT_NAME_PREFIX}{layer}")
}

/// The object an ApplySet's id is derived from. `namespace` is empty for a cluster-scoped
/// parent, `group` for the core group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRef {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ParentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = GroupKind {
            group: self.group.clone(),
            kind: self.kind.clone(),
        };
        match self.namespace.as_str() {
            "" => write!(f, "{kind} {}", self.name),
            namespace => write!(f, "{kind} {namespace}/{}", self.name),
        }
    }
}

/// The id of the ApplySet whose parent is `parent`.
pub fn applyset_id(parent: &ParentRef) -> String {
    let identity = [
        parent.name.as_str(),
        &parent.namespace,
        &parent.kind,
        &parent.group,
    ]
    .join(".");
    let digest = Sha256::digest(identity.as_bytes());
    format!("applyset-{}-v1", URL_SAFE_NO_PAD.encode(digest))
}

/// Why an ApplySet's parent or member cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApplySetError {
    #[error("layer {layer}: its ApplySet parent would be named {name:?}, which {problem}")]
    ParentName {
        layer: String,
        name: String,
        problem: String,
    },
    #[error("{member}: {field} is {found}, expected a mapping")]
    MemberShape {
        member: String,
        field: &'static str,
        found: &'static str,
    },
    #[error(
        "{member}: label {PART_OF_LABEL} is {found:?}, so it belongs to another ApplySet; this layer's is {expected}"
    )]
    MemberOfAnotherSet {
        member: String,
        found: String,
        expected: String,
    },
    #[error("ApplySet parent {parent}: label {ID_LABEL} is missing; expected {expected}")]
    IdMissing { parent: String, expected: String },
    #[error("ApplySet parent {parent}: label {ID_LABEL} is {found:?}; expected {expected}")]
    IdMismatch {
        parent: String,
        found: String,
        expected: String,
    },
    #[error(
        "ApplySet parent {parent}: annotation {TOOLING_ANNOTATION} is missing; a parent without it is not Strata's to change"
    )]
    ToolingMissing { parent: String },
    #[error(
        "ApplySet parent {parent}: annotation {TOOLING_ANNOTATION} is {found:?}: it is managed by another tool, not {TOOLING_NAME}"
    )]
    OtherTooling { parent: String, found: String },
    #[error(
        "ApplySet parent {parent}: annotation {CONTAINS_GROUP_KINDS_ANNOTATION} is missing; without it the set's members cannot be found"
    )]
    GroupKindsMissing { parent: String },
    #[error(
        "ApplySet parent {parent}: annotation {CONTAINS_GROUP_KINDS_ANNOTATION} is missing and it has only the older {CONTAINS_GROUP_RESOURCES_ANNOTATION}, which Strata does not read (resources need discovery to become kinds); delete the annotation and apply the layer again"
    )]
    GroupResourcesOnly { parent: String },
    #[error(
        "ApplySet parent {parent}: annotation {CONTAINS_GROUP_KINDS_ANNOTATION} has {entry:?}, which {problem}; expected Kind.group or Kind, comma-separated"
    )]
    GroupKind {
        parent: String,
        entry: String,
        problem: String,
    },
    #[error(
        "ApplySet parent {parent}: annotation {ADDITIONAL_NAMESPACES_ANNOTATION} has {entry:?}, which is not a namespace name: {problem}"
    )]
    Namespace {
        parent: String,
        entry: String,
        problem: String,
    },
}

/// A parent's labels and annotations, to apply on it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParentMetadata {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// What a parent found in the cluster says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParentState {
    pub tooling: String,
    pub group_kinds: BTreeSet<GroupKind>,
    /// Namespaces other than the parent's that hold members.
    pub additional_namespaces: BTreeSet<String>,
}

/// The ApplySet of one layer (or of any parent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerApplySet {
    parent: ParentRef,
    id: String,
}

impl LayerApplySet {
    /// The set of `layer`, with its parent ConfigMap `strata-layer-<layer>` in
    /// `strata-system`.
    pub fn for_layer(layer: &str) -> Result<LayerApplySet, ApplySetError> {
        let name = layer_parent_name(layer);
        if let Some(problem) = dns_subdomain_problem(&name, 253) {
            return Err(ApplySetError::ParentName {
                layer: layer.to_string(),
                name,
                problem,
            });
        }
        Ok(LayerApplySet::new(ParentRef {
            group: String::new(),
            kind: PARENT_KIND.to_string(),
            namespace: PARENT_NAMESPACE.to_string(),
            name,
        }))
    }

    pub fn new(parent: ParentRef) -> LayerApplySet {
        let id = applyset_id(&parent);
        LayerApplySet { parent, id }
    }

    pub fn parent(&self) -> &ParentRef {
        &self.parent
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The label selector that lists the set's members.
    pub fn member_selector(&self) -> String {
        format!("{PART_OF_LABEL}={}", self.id)
    }

    /// Labels `object` as a member. An object already labelled for this set is left as it
    /// is; one labelled for another set is refused, as kubectl refuses it.
    pub fn label_member(&self, object: &mut Value) -> Result<(), ApplySetError> {
        let member = describe_object(object);
        let shape_error = |field, found: &Value| ApplySetError::MemberShape {
            member: member.clone(),
            field,
            found: json_kind(found),
        };
        let Value::Object(fields) = object else {
            return Err(shape_error("the object", object));
        };
        let metadata = fields.entry("metadata").or_insert(Value::Null);
        if metadata.is_null() {
            *metadata = Value::Object(Default::default());
        }
        let Value::Object(metadata) = metadata else {
            return Err(shape_error("metadata", metadata));
        };
        let labels = metadata.entry("labels").or_insert(Value::Null);
        if labels.is_null() {
            *labels = Value::Object(Default::default());
        }
        let Value::Object(labels) = labels else {
            return Err(shape_error("metadata.labels", labels));
        };
        match labels.get(PART_OF_LABEL) {
            Some(Value::String(found)) if *found == self.id => Ok(()),
            Some(found) => Err(ApplySetError::MemberOfAnotherSet {
                member,
                found: found
                    .as_str()
                    .map_or_else(|| found.to_string(), str::to_string),
                expected: self.id.clone(),
            }),
            None => {
                labels.insert(PART_OF_LABEL.into(), Value::from(self.id.clone()));
                Ok(())
            }
        }
    }

    /// The parent's labels and annotations for a set of exactly `members`.
    pub fn parent_metadata(&self, members: &[ObjectKey]) -> ParentMetadata {
        self.superset_metadata(&ParentState::default(), members)
    }

    /// The parent's labels and annotations for `members` together with what the parent
    /// already named: written before applying, so that an interrupted install leaves every
    /// member of either set findable.
    pub fn superset_metadata(
        &self,
        previous: &ParentState,
        members: &[ObjectKey],
    ) -> ParentMetadata {
        let mut kinds = previous.group_kinds.clone();
        kinds.extend(members.iter().map(ObjectKey::group_kind));
        let mut namespaces = previous.additional_namespaces.clone();
        namespaces.extend(members.iter().filter_map(|m| m.namespace.clone()));
        namespaces.remove(&self.parent.namespace);

        let kinds: Vec<String> = kinds.iter().map(GroupKind::to_string).collect();
        let mut annotations = BTreeMap::from([
            (TOOLING_ANNOTATION.to_string(), tooling()),
            (
                CONTAINS_GROUP_KINDS_ANNOTATION.to_string(),
                sorted_list(kinds),
            ),
        ]);
        if !namespaces.is_empty() {
            annotations.insert(
                ADDITIONAL_NAMESPACES_ANNOTATION.to_string(),
                sorted_list(namespaces.into_iter().collect()),
            );
        }
        ParentMetadata {
            labels: BTreeMap::from([(ID_LABEL.to_string(), self.id.clone())]),
            annotations,
        }
    }

    /// Reads a parent found in the cluster. Spaces around entries and empty entries are
    /// ignored; an absent additional-namespaces annotation is no namespaces.
    pub fn parse_parent(
        &self,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<ParentState, ApplySetError> {
        let parent = self.parent.to_string();
        match labels.get(ID_LABEL) {
            None => {
                return Err(ApplySetError::IdMissing {
                    parent,
                    expected: self.id.clone(),
                });
            }
            Some(found) if found.trim() != self.id => {
                return Err(ApplySetError::IdMismatch {
                    parent,
                    found: found.clone(),
                    expected: self.id.clone(),
                });
            }
            Some(_) => {}
        }
        let tooling = match annotations.get(TOOLING_ANNOTATION).map(|t| t.trim()) {
            None | Some("") => return Err(ApplySetError::ToolingMissing { parent }),
            Some(found) if tooling_name(found) != TOOLING_NAME => {
                return Err(ApplySetError::OtherTooling {
                    parent,
                    found: found.to_string(),
                });
            }
            Some(found) => found.to_string(),
        };
        let Some(kinds) = annotations.get(CONTAINS_GROUP_KINDS_ANNOTATION) else {
            return Err(
                if annotations.contains_key(CONTAINS_GROUP_RESOURCES_ANNOTATION) {
                    ApplySetError::GroupResourcesOnly { parent }
                } else {
                    ApplySetError::GroupKindsMissing { parent }
                },
            );
        };
        let group_kinds = entries(kinds)
            .map(|entry| {
                parse_group_kind(entry).map_err(|problem| ApplySetError::GroupKind {
                    parent: parent.clone(),
                    entry: entry.to_string(),
                    problem,
                })
            })
            .collect::<Result<_, _>>()?;
        let additional = annotations.get(ADDITIONAL_NAMESPACES_ANNOTATION);
        let additional_namespaces = entries(additional.map_or("", String::as_str))
            .map(|entry| match namespace_name_problem(entry) {
                Some(problem) => Err(ApplySetError::Namespace {
                    parent: parent.clone(),
                    entry: entry.to_string(),
                    problem,
                }),
                None => Ok(entry.to_string()),
            })
            .collect::<Result<_, _>>()?;
        Ok(ParentState {
            tooling,
            group_kinds,
            additional_namespaces,
        })
    }

    /// Every namespace to search for namespaced members: the parent's and the additional ones.
    pub fn member_namespaces(&self, state: &ParentState) -> BTreeSet<String> {
        let mut namespaces = state.additional_namespaces.clone();
        if !self.parent.namespace.is_empty() {
            namespaces.insert(self.parent.namespace.clone());
        }
        namespaces
    }
}

/// The members of `previous` that are not in `new` (compared by group, kind, namespace and
/// name), in the order to delete them: the reverse of the install order.
pub fn prune_candidates(previous: &[ObjectKey], new: &[ObjectKey]) -> Vec<ObjectKey> {
    let kept: BTreeSet<_> = new.iter().map(ObjectKey::identity).collect();
    let mut seen = BTreeSet::new();
    let mut gone: Vec<ObjectKey> = previous
        .iter()
        .filter(|key| !kept.contains(&key.identity()) && seen.insert(key.identity()))
        .cloned()
        .collect();
    sort_for_install(&mut gone);
    gone.reverse();
    gone
}

/// `Kind.group` or `Kind`, as kubectl's `ParseGroupKind` reads it (the kind is up to the
/// first dot).
pub fn parse_group_kind(text: &str) -> Result<GroupKind, String> {
    let (kind, group) = text.split_once('.').unwrap_or((text, ""));
    if !kind.starts_with(|c: char| c.is_ascii_alphabetic())
        || !kind.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(
            "does not start with a kind (letters and digits, starting with a letter)".into(),
        );
    }
    if let Some(problem) = text
        .contains('.')
        .then(|| dns_subdomain_problem(group, 253))
        .flatten()
    {
        return Err(format!("has a group that {problem}"));
    }
    Ok(GroupKind {
        group: group.to_string(),
        kind: kind.to_string(),
    })
}

/// The tool name of a tooling annotation: all before the last `/`.
fn tooling_name(tooling: &str) -> &str {
    tooling.rsplit_once('/').map_or(tooling, |(name, _)| name)
}

fn entries(list: &str) -> impl Iterator<Item = &str> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
}

fn sorted_list(mut items: Vec<String>) -> String {
    items.sort();
    items.join(",")
}

#[cfg(test)]
#[path = "applyset_tests.rs"]
mod applyset_tests;
