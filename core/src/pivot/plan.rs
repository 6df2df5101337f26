//! Discovery and ordering: which objects of a namespace belong to one cluster and must move
//! with it, which stay and why, and in which order to create them in the target.
//!
//! The rules are clusterctl's (owner references, secrets soft-owned by name, the move
//! labels, references from specs), narrowed from "the whole namespace" to one cluster,
//! because Strata moves each cluster into itself on its own.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::PlanError;
use super::graph::{Claims, Snapshot, creation_sort_key, is_cluster};
use super::objects::{GroupKind, MoveKind, ObjectRef, OwnerRef, SourceObject, UnfollowedRef};
use super::order::layers;
use super::refs::spec_refs;
use crate::contracts::labels::CLUSTERCTL_LABEL;

/// What moves, in which order, and what stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MovePlan {
    pub cluster: ObjectRef,
    /// Creation order: every object after all of its owners that move too. Objects in one
    /// group do not depend on each other and may be created in parallel. The Cluster is in
    /// the first group. Within a group: by kind, then name.
    pub groups: Vec<Vec<ObjectRef>>,
    /// Objects the source must keep: the identities the cluster's objects name (whatever
    /// their scope) with the Secrets they reference, any other cluster-scoped object or
    /// object of another namespace, objects that another cluster of the namespace
    /// references too, and what those own. Created in the target if absent, never deleted
    /// from the source.
    pub global: BTreeSet<ObjectRef>,
    /// Every object read that does not move, with the reason.
    pub stays: Vec<Stay>,
    /// Owners of moving objects that were not among the objects read (typically the
    /// Namespace). The executor must give each a target uid (the target's own Namespace)
    /// before creating its dependents, or [`super::target_object`] refuses them.
    pub external_owners: Vec<ExternalOwner>,
    /// References from moving objects that lead nowhere moveable: dry runs show them.
    pub unfollowed_refs: Vec<UnfollowedRef>,
    /// Kinds whose status is a subresource: written after the create, or it is lost.
    pub status_subresource: BTreeSet<GroupKind>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stay {
    pub object: ObjectRef,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalOwner {
    pub owner: OwnerRef,
    pub dependents: Vec<ObjectRef>,
}

impl MovePlan {
    /// How many objects are created in the target.
    pub fn len(&self) -> usize {
        self.groups.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.iter().all(Vec::is_empty)
    }

    /// Every object to create, in creation order.
    pub fn objects(&self) -> impl Iterator<Item = &ObjectRef> {
        self.groups.iter().flatten()
    }

    /// Source deletion: dependents before owners, global objects left out.
    pub fn deletion_order(&self) -> Vec<Vec<ObjectRef>> {
        self.groups
            .iter()
            .rev()
            .map(|group| {
                group
                    .iter()
                    .filter(|object| !self.global.contains(*object))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .filter(|group| !group.is_empty())
            .collect()
    }

    pub fn is_global(&self, object: &ObjectRef) -> bool {
        self.global.contains(object)
    }

    /// Whether the object's status must be written after its create. Never for a global
    /// object: the target may have it already, as its own (a move back adopts the
    /// management cluster's identity, which the agent may only read there).
    pub fn restores_status(&self, object: &ObjectRef) -> bool {
        self.status_subresource.contains(&object.kind.group_kind()) && !self.is_global(object)
    }

    /// The plan for people (a dry run): the groups in creation order with what each object
    /// is owned by, then what stays and why, and references that lead nowhere.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "move of {} ({} objects in {} groups)\n",
            self.cluster,
            self.len(),
            self.groups.len()
        );
        for (i, group) in self.groups.iter().enumerate() {
            out.push_str(&format!("group {}:\n", i + 1));
            for object in group {
                let mut notes = Vec::new();
                if self.is_global(object) {
                    notes.push("global: created if absent, kept in the source");
                }
                if self.restores_status(object) {
                    notes.push("status restored");
                }
                let notes = if notes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", notes.join("; "))
                };
                out.push_str(&format!("  {object}{notes}\n"));
            }
        }
        if !self.stays.is_empty() {
            out.push_str("stays:\n");
            for stay in &self.stays {
                out.push_str(&format!("  {}: {}\n", stay.object, stay.reason));
            }
        }
        for owner in &self.external_owners {
            out.push_str(&format!(
                "owner not among the objects read: {} {} (uid {}), of {} objects\n",
                owner.owner.kind,
                owner.owner.name,
                owner.owner.uid,
                owner.dependents.len()
            ));
        }
        for reference in &self.unfollowed_refs {
            out.push_str(&format!(
                "not followed: {} {} -> {}: {}\n",
                reference.from, reference.field, reference.target, reference.reason
            ));
        }
        out
    }
}

/// Plans the move of Cluster `cluster_name` and what belongs to it, from `objects`: what
/// was read from `namespace`, plus the objects outside it that those reference (see
/// [`super::unread_references`]). `kinds` are the kinds discovered from CRDs; Secret and
/// ConfigMap are known without being listed.
pub fn plan(
    cluster_name: &str,
    namespace: &str,
    kinds: &[MoveKind],
    objects: &[SourceObject],
) -> Result<MovePlan, PlanError> {
    let snapshot = Snapshot::new(namespace, kinds, objects)?;
    let cluster = snapshot
        .cluster(cluster_name)
        .ok_or_else(|| PlanError::ClusterNotFound {
            namespace: namespace.to_string(),
            name: cluster_name.to_string(),
            objects_read: objects.len(),
        })?;
    let claims = snapshot.other_clusters_claims(cluster);
    // A labelled object no cluster reaches is the namespace's; it goes with the first
    // cluster to move, as clusterctl moves it with the namespace.
    let mut roots = snapshot.roots_of(cluster);
    roots.extend(
        snapshot
            .labelled_for_move()
            .map(|object| object.uid.as_str())
            .filter(|uid| !claims.contains_key(uid)),
    );
    let reach = snapshot.reach(cluster, roots);
    let (moving, stranded) = snapshot.without_staying_owners(cluster, reach.members, &claims)?;
    let global = snapshot.global(&moving, &claims);
    let groups = layers(&moving, |uid| snapshot.owner_uids(uid)).map_err(|cycle| {
        let mut objects: Vec<String> = cycle.iter().map(|uid| snapshot.describe(uid)).collect();
        objects.sort();
        PlanError::OwnershipCycle { objects }
    })?;
    let mut unfollowed_refs: Vec<UnfollowedRef> = reach
        .unfollowed
        .into_iter()
        .filter(|unfollowed| moving.contains(unfollowed.from.uid.as_str()))
        .collect();
    // Stable: one object's references keep the order of its fields.
    unfollowed_refs.sort_by(|a, b| creation_sort_key(&a.from, &b.from));
    Ok(MovePlan {
        cluster: cluster.object_ref(),
        groups: groups
            .into_iter()
            .map(|group| snapshot.sorted_refs(group))
            .collect(),
        global: global
            .iter()
            .filter_map(|uid| snapshot.object_ref(uid))
            .collect(),
        stays: snapshot.stays(cluster, &moving, &stranded, &claims),
        external_owners: snapshot.external_owners(&moving),
        unfollowed_refs,
        status_subresource: snapshot
            .kinds
            .values()
            .filter(|kind| kind.status_subresource)
            .map(MoveKind::group_kind)
            .collect(),
    })
}

/// What the facts of the graph mean for this move.
impl<'a> Snapshot<'a> {
    /// Removes, until none is left, every object with an owner that does not move: the
    /// source's garbage collector keeps it alive for that owner, whereas moving it would
    /// cut it from that owner. The reasons are returned by uid.
    fn without_staying_owners(
        &self,
        cluster: &SourceObject,
        mut moving: BTreeSet<&'a str>,
        claims: &Claims<'a>,
    ) -> Result<(BTreeSet<&'a str>, BTreeMap<&'a str, String>), PlanError> {
        let mut reasons = BTreeMap::new();
        loop {
            let stranded: Vec<(&'a str, &'a SourceObject)> = moving
                .iter()
                .filter_map(|uid| {
                    let object = self.by_uid.get(uid)?;
                    object.owners().iter().find_map(|owner| {
                        let (&owner_uid, &owner) = self.by_uid.get_key_value(owner.uid.as_str())?;
                        (!moving.contains(owner_uid)).then_some((*uid, owner))
                    })
                })
                .collect();
            if stranded.is_empty() {
                return Ok((moving, reasons));
            }
            for (uid, owner) in stranded {
                if uid == cluster.uid {
                    return Err(PlanError::ClusterOwnerStays {
                        cluster: cluster.to_string(),
                        owner: owner.to_string(),
                    });
                }
                moving.remove(uid);
                reasons.insert(uid, staying_owner_reason(owner, claims));
            }
        }
    }

    /// Identities, objects outside the namespace and objects other clusters reach, with
    /// what they own: the source copy must survive for the others, and the management
    /// cluster keeps every cloud account's credentials it handed out.
    fn global(&self, moving: &BTreeSet<&'a str>, claims: &Claims<'a>) -> BTreeSet<&'a str> {
        let identities = self.identities(moving);
        let mut global: BTreeSet<&'a str> = moving
            .iter()
            .copied()
            .filter(|uid| {
                claims.contains_key(uid)
                    || identities.contains(uid)
                    || self
                        .by_uid
                        .get(uid)
                        .is_some_and(|object| !self.in_namespace(object))
            })
            .collect();
        let mut pending: Vec<&'a str> = global.iter().copied().collect();
        while let Some(uid) = pending.pop() {
            for &dependent in self.dependents.get(uid).into_iter().flatten() {
                if moving.contains(dependent) && global.insert(dependent) {
                    pending.push(dependent);
                }
            }
        }
        global
    }

    /// What the moving objects' `identityRef`s name, and what those identities reference
    /// in turn (their Secrets), among the moving objects.
    fn identities(&self, moving: &BTreeSet<&'a str>) -> BTreeSet<&'a str> {
        let resolved = |object: &SourceObject, only_identity: bool| -> Vec<&'a str> {
            spec_refs(object)
                .iter()
                .filter(|spec_ref| spec_ref.identity || !only_identity)
                .filter_map(|spec_ref| self.resolve(spec_ref).ok())
                .filter(|uid| moving.contains(uid))
                .collect()
        };
        let mut pending: Vec<&'a str> = moving
            .iter()
            .filter_map(|uid| self.by_uid.get(uid))
            .flat_map(|object| resolved(object, true))
            .collect();
        let mut found = BTreeSet::new();
        while let Some(uid) = pending.pop() {
            if !found.insert(uid) {
                continue;
            }
            if let Some(object) = self.by_uid.get(uid) {
                pending.extend(resolved(object, false));
            }
        }
        found
    }

    fn external_owners(&self, moving: &BTreeSet<&'a str>) -> Vec<ExternalOwner> {
        let mut external: BTreeMap<String, ExternalOwner> = BTreeMap::new();
        for uid in moving {
            let Some(object) = self.by_uid.get(uid) else {
                continue;
            };
            for owner in object.owners() {
                if !self.by_uid.contains_key(owner.uid.as_str()) {
                    external
                        .entry(owner.uid.clone())
                        .or_insert_with(|| ExternalOwner {
                            owner,
                            dependents: Vec::new(),
                        })
                        .dependents
                        .push(object.object_ref());
                }
            }
        }
        external
            .into_values()
            .map(|mut owner| {
                owner.dependents.sort_by(creation_sort_key);
                owner
            })
            .collect()
    }

    fn stays(
        &self,
        cluster: &SourceObject,
        moving: &BTreeSet<&'a str>,
        stranded: &BTreeMap<&'a str, String>,
        claims: &Claims<'a>,
    ) -> Vec<Stay> {
        let mut stays: Vec<Stay> = self
            .by_uid
            .iter()
            .filter(|(uid, _)| !moving.contains(*uid))
            .map(|(uid, object)| Stay {
                object: object.object_ref(),
                reason: stranded
                    .get(uid)
                    .cloned()
                    .unwrap_or_else(|| self.stay_reason(cluster, object, claims)),
            })
            .collect();
        stays.sort_by(|a, b| creation_sort_key(&a.object, &b.object));
        stays
    }

    fn stay_reason(
        &self,
        cluster: &SourceObject,
        object: &SourceObject,
        claims: &Claims<'a>,
    ) -> String {
        if self.is_elsewhere(object) {
            return format!(
                "it is in namespace {}; only namespace {} moves",
                object.namespace.as_deref().unwrap_or_default(),
                self.namespace
            );
        }
        let group_kind = object.kind.group_kind();
        match self.kind_of(object) {
            None => {
                return format!("kind {group_kind} was not discovered (no CRD of it was read)");
            }
            Some(kind) if !kind.is_movable() => {
                return format!(
                    "kind {group_kind} is not a Cluster API kind (no {CLUSTERCTL_LABEL} label on its CRD)"
                );
            }
            Some(_) => {}
        }
        if is_cluster(object) {
            return format!(
                "a different Cluster than {}; each cluster moves on its own",
                cluster.name
            );
        }
        if let Some(others) = claims.get(object.uid.as_str()) {
            return format!("belongs to another cluster: {}", join(others));
        }
        if object.namespace.is_none() {
            return format!(
                "cluster-scoped and not referenced by an identityRef of cluster {}'s objects",
                cluster.name
            );
        }
        format!(
            "not owned by cluster {}, not referenced by its objects and not labelled for move",
            cluster.name
        )
    }
}

fn staying_owner_reason(owner: &SourceObject, claims: &Claims<'_>) -> String {
    if is_cluster(owner) {
        return format!("owned by another cluster: {owner}");
    }
    match claims.get(owner.uid.as_str()) {
        Some(others) => format!(
            "owned by {owner}, which belongs to cluster {}",
            join(others)
        ),
        None => format!("owned by {owner}, which does not move"),
    }
}

fn join(names: &BTreeSet<&str>) -> String {
    names.iter().copied().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
