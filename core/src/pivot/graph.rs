//! The objects read, as a graph: who owns whom, who references whom, and what each
//! Cluster reaches through those edges. Plain facts; what they mean for a move is decided
//! in `plan`.

use std::collections::{BTreeMap, BTreeSet};

use super::PlanError;
use super::objects::{GroupKind, MoveKind, ObjectRef, SourceObject, UnfollowedRef};
use super::refs::{SpecRef, spec_refs};
use crate::contracts::capi::CLUSTER;
use crate::contracts::labels::{
    CAPI_CLUSTER_NAME_LABEL, MOVE_HIERARCHY_LABEL, MOVE_LABEL, SECRET_NAMESPACE_ANNOTATION,
};

/// `<cluster>-<purpose>` secrets that CAPI and kubeadm create for a cluster, sometimes
/// without an owner reference.
const SOFT_OWNED_SECRET_PURPOSES: [&str; 6] = [
    "kubeconfig",
    "ca",
    "etcd",
    "sa",
    "proxy",
    "apiserver-etcd-client",
];

/// Why a reference in a spec was not followed; the plan records it beside the reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum UnresolvedRef {
    #[error(
        "the identity does not say which namespace the provider reads it from (annotation {SECRET_NAMESPACE_ANNOTATION})"
    )]
    IdentityNamespaceUnknown,
    #[error("no such object was read")]
    NotRead,
    #[error("it is in namespace {found}; only namespace {moving} moves")]
    OtherNamespace { found: String, moving: String },
}

/// Object uid → names of the other clusters whose objects reach it.
pub(super) type Claims<'a> = BTreeMap<&'a str, BTreeSet<&'a str>>;

pub(super) struct Reach<'a> {
    pub(super) members: BTreeSet<&'a str>,
    pub(super) unfollowed: Vec<UnfollowedRef>,
}

/// The objects read, indexed.
pub(super) struct Snapshot<'a> {
    pub(super) namespace: &'a str,
    /// By uid: every object read. Those of other namespaces are only reached through a
    /// reference that may leave the namespace (an identity's Secret in the provider's
    /// namespace); otherwise they are reported and stay.
    pub(super) by_uid: BTreeMap<&'a str, &'a SourceObject>,
    /// Owner uid → uids of the objects it owns.
    pub(super) dependents: BTreeMap<&'a str, BTreeSet<&'a str>>,
    /// (group and kind, namespace, name) → uid.
    pub(super) by_name: BTreeMap<(GroupKind, Option<&'a str>, &'a str), &'a str>,
    pub(super) kinds: BTreeMap<GroupKind, MoveKind>,
}

impl<'a> Snapshot<'a> {
    pub(super) fn new(
        namespace: &'a str,
        kinds: &[MoveKind],
        objects: &'a [SourceObject],
    ) -> Result<Self, PlanError> {
        let mut snapshot = Snapshot {
            namespace,
            by_uid: BTreeMap::new(),
            dependents: BTreeMap::new(),
            by_name: BTreeMap::new(),
            kinds: [MoveKind::secret(), MoveKind::config_map()]
                .into_iter()
                .chain(kinds.iter().cloned())
                .map(|kind| (kind.group_kind(), kind))
                .collect(),
        };
        for object in objects {
            if let Some(first) = snapshot.by_uid.insert(&object.uid, object) {
                return Err(PlanError::DuplicateUid {
                    uid: object.uid.clone(),
                    first: first.to_string(),
                    second: object.to_string(),
                });
            }
            snapshot.by_name.insert(
                (
                    object.kind.group_kind(),
                    object.namespace.as_deref(),
                    &object.name,
                ),
                &object.uid,
            );
        }
        for (uid, object) in &snapshot.by_uid {
            for owner in object.owners() {
                if let Some((&owner_uid, _)) = snapshot.by_uid.get_key_value(owner.uid.as_str()) {
                    snapshot
                        .dependents
                        .entry(owner_uid)
                        .or_default()
                        .insert(uid);
                }
            }
        }
        Ok(snapshot)
    }

    pub(super) fn cluster(&self, name: &str) -> Option<&'a SourceObject> {
        let key = (
            GroupKind::new(CLUSTER.group, CLUSTER.kind),
            Some(self.namespace),
            name,
        );
        self.by_name
            .get(&key)
            .and_then(|uid| self.by_uid.get(uid).copied())
    }

    pub(super) fn clusters(&self) -> impl Iterator<Item = &'a SourceObject> + '_ {
        self.by_uid
            .values()
            .copied()
            .filter(|o| is_cluster(o) && self.in_namespace(o))
    }

    pub(super) fn in_namespace(&self, object: &SourceObject) -> bool {
        object.namespace.as_deref() == Some(self.namespace)
    }

    /// In a namespace other than the one being moved.
    pub(super) fn is_elsewhere(&self, object: &SourceObject) -> bool {
        object
            .namespace
            .as_deref()
            .is_some_and(|namespace| namespace != self.namespace)
    }

    pub(super) fn kind_of(&self, object: &SourceObject) -> Option<&MoveKind> {
        self.kinds.get(&object.kind.group_kind())
    }

    pub(super) fn is_movable(&self, object: &SourceObject) -> bool {
        self.kind_of(object).is_some_and(MoveKind::is_movable)
    }

    /// The Cluster and the secrets it owns softly: by name, or by the cluster-name label.
    pub(super) fn roots_of(&self, cluster: &'a SourceObject) -> Vec<&'a str> {
        let soft_owned = self.by_uid.values().filter(|object| {
            self.in_namespace(object)
                && object.kind.group_kind() == GroupKind::new("", "Secret")
                && (object.label(CAPI_CLUSTER_NAME_LABEL) == Some(&cluster.name)
                    || soft_owned_secret_name(&object.name, &cluster.name))
        });
        std::iter::once(cluster.uid.as_str())
            .chain(soft_owned.map(|object| object.uid.as_str()))
            .collect()
    }

    /// Namespaced objects that carry a move label, or whose kind's CRD does.
    pub(super) fn labelled_for_move(&self) -> impl Iterator<Item = &'a SourceObject> + '_ {
        self.by_uid.values().copied().filter(|object| {
            let kind_labelled = self
                .kind_of(object)
                .is_some_and(|kind| kind.move_label || kind.move_hierarchy_label);
            self.in_namespace(object)
                && !is_cluster(object)
                && self.is_movable(object)
                && (kind_labelled
                    || object.has_label(MOVE_LABEL)
                    || object.has_label(MOVE_HIERARCHY_LABEL))
        })
    }

    /// Everything reachable from `roots` through ownership (down) and spec references,
    /// among objects of movable kinds. Other Clusters are never reached: each moves alone.
    pub(super) fn reach(&self, cluster: &SourceObject, roots: Vec<&'a str>) -> Reach<'a> {
        let mut members = BTreeSet::new();
        let mut unfollowed = Vec::new();
        let mut pending = roots;
        while let Some(uid) = pending.pop() {
            let Some(&object) = self.by_uid.get(uid) else {
                continue;
            };
            let joins =
                object.uid == cluster.uid || (self.is_movable(object) && !is_cluster(object));
            if !joins || !members.insert(object.uid.as_str()) {
                continue;
            }
            // Ownership does not cross namespaces; only a reference may lead out.
            pending.extend(
                self.dependents
                    .get(uid)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|dependent| {
                        self.by_uid
                            .get(dependent)
                            .is_some_and(|object| !self.is_elsewhere(object))
                    }),
            );
            for spec_ref in spec_refs(object) {
                match self.resolve(&spec_ref) {
                    Ok(target) => pending.push(target),
                    Err(reason) => unfollowed.push(UnfollowedRef {
                        from: object.object_ref(),
                        field: spec_ref.field.to_string(),
                        target: format!(
                            "{} {}",
                            GroupKind::new(&spec_ref.group, &spec_ref.kind),
                            spec_ref.name
                        ),
                        reason: reason.to_string(),
                    }),
                }
            }
        }
        Reach {
            members,
            unfollowed,
        }
    }

    /// Matches by group and kind, ignoring the version: a v1beta1 ref names the same
    /// object as a v1beta2 one.
    pub(super) fn resolve(&self, spec_ref: &SpecRef) -> Result<&'a str, UnresolvedRef> {
        let group_kind = GroupKind::new(&spec_ref.group, &spec_ref.kind);
        if spec_ref.crosses_namespace {
            let namespace = spec_ref
                .namespace
                .as_deref()
                .ok_or(UnresolvedRef::IdentityNamespaceUnknown)?;
            return self
                .by_name
                .get(&(group_kind, Some(namespace), spec_ref.name.as_str()))
                .copied()
                .ok_or(UnresolvedRef::NotRead);
        }
        if let Some(other) = spec_ref
            .namespace
            .as_deref()
            .filter(|ns| *ns != self.namespace)
        {
            return Err(UnresolvedRef::OtherNamespace {
                found: other.to_owned(),
                moving: self.namespace.to_owned(),
            });
        }
        let mut scopes = vec![Some(self.namespace)];
        if spec_ref.may_be_cluster_scoped {
            scopes.push(None);
        }
        scopes
            .into_iter()
            .find_map(|scope| {
                self.by_name
                    .get(&(group_kind.clone(), scope, spec_ref.name.as_str()))
                    .copied()
            })
            .ok_or(UnresolvedRef::NotRead)
    }

    /// Other clusters of the namespace, and everything each of them reaches.
    pub(super) fn other_clusters_claims(&self, cluster: &SourceObject) -> Claims<'a> {
        let mut claims = Claims::new();
        for other in self.clusters().filter(|other| other.uid != cluster.uid) {
            for uid in self.reach(other, self.roots_of(other)).members {
                claims.entry(uid).or_default().insert(other.name.as_str());
            }
        }
        claims
    }

    pub(super) fn owner_uids(&self, uid: &str) -> Vec<&'a str> {
        let Some(object) = self.by_uid.get(uid) else {
            return Vec::new();
        };
        object
            .owners()
            .iter()
            .filter_map(|owner| {
                self.by_uid
                    .get_key_value(owner.uid.as_str())
                    .map(|(uid, _)| *uid)
            })
            .collect()
    }

    pub(super) fn object_ref(&self, uid: &str) -> Option<ObjectRef> {
        self.by_uid.get(uid).map(|object| object.object_ref())
    }

    pub(super) fn describe(&self, uid: &str) -> String {
        self.by_uid
            .get(uid)
            .map_or_else(|| format!("uid {uid}"), |object| object.to_string())
    }

    pub(super) fn sorted_refs(&self, uids: Vec<&str>) -> Vec<ObjectRef> {
        let mut refs: Vec<ObjectRef> = uids.iter().filter_map(|uid| self.object_ref(uid)).collect();
        refs.sort_by(creation_sort_key);
        refs
    }
}

pub(super) fn is_cluster(object: &SourceObject) -> bool {
    CLUSTER.is(&object.kind.api_version, &object.kind.kind)
}

fn soft_owned_secret_name(secret_name: &str, cluster_name: &str) -> bool {
    secret_name
        .strip_prefix(cluster_name)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|purpose| SOFT_OWNED_SECRET_PURPOSES.contains(&purpose))
}

/// By kind, then name; the rest only breaks ties between same-named kinds of different
/// groups, so that the order never depends on the order objects were read in.
pub(super) fn creation_sort_key(a: &ObjectRef, b: &ObjectRef) -> std::cmp::Ordering {
    (&a.kind.kind, &a.name, a.kind.group(), &a.namespace, &a.uid).cmp(&(
        &b.kind.kind,
        &b.name,
        b.kind.group(),
        &b.namespace,
        &b.uid,
    ))
}
