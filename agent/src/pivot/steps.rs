//! The steps of a move, each idempotent: done again after a crash, it finds its work done
//! and records it.

use std::collections::{BTreeMap, BTreeSet};

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DynamicObject, ListParams};
use serde_json::{Value, json};
use strata_shared::contracts::capi::CLUSTER;
use strata_shared::contracts::capi_views::ClusterView;
use strata_shared::contracts::labels::{
    BLOCK_MOVE_ANNOTATION, DELETE_FOR_MOVE_ANNOTATION, PAUSED_BY_MOVE_ANNOTATION,
};
use strata_shared::kube_writer::{BoundedApi, Deleted, KubeWriter, WriteError};
use strata_shared::pivot::journal::{JournalEntry, JournalError, MoveJournal, MovePhase, MoveStep};
use strata_shared::pivot::{
    GroupKind, MoveKind, ObjectKind, SourceObject, admitted_namespace_labels, content_hash,
    target_object,
};

use super::discover::resource;
use super::{MoveSides, PivotError, StopCause};

/// Writes in flight at once within a step: enough to hide each request's latency, few
/// enough that the apiservers are not flooded (a group of a large cluster holds thousands).
const PARALLEL_WRITES: usize = 32;
/// Reads of the source in flight at once.
const PARALLEL_LISTS: usize = 8;
/// A step reads the objects of a kind with one list when it wants at least this many of
/// them, or a quarter of those the move has.
const LIST_AT_LEAST: usize = 32;
/// How often a source object that changed between its read and its release is read and
/// checked again before the step fails (and is redone).
const RELEASE_ATTEMPTS: u32 = 5;
/// How long objects may carry `block-move` before the move gives up.
const BLOCK_MOVE_WAIT: Duration = Duration::from_secs(300);

pub struct Executor<'a> {
    sides: &'a MoveSides,
    kinds: BTreeMap<GroupKind, MoveKind>,
    /// The status of each object as its copy's step read it from the (paused) source, by
    /// source UID: the next step writes it without reading the source again. A process
    /// that did not make the copy (a restart) reads it.
    statuses: std::sync::Mutex<BTreeMap<String, Value>>,
    /// The resourceVersion at which the copy's step found each source object to hold the
    /// planned content, by source UID: the release in the delete step holds that version
    /// instead of reading the object again (a write refused because it changed since
    /// reads it then). A process that did not make the copy reads it.
    checked_versions: std::sync::Mutex<BTreeMap<String, String>>,
}

/// A source object as the delete step knows it.
enum SourceState {
    /// Read by the step (`None`: not there).
    Read(Option<Box<DynamicObject>>),
    /// Not read again: its content was checked against the plan at this version.
    CheckedAt(String),
}

/// An object of the source as a step read it (`None`: not there), by source UID.
type SourceRead = (String, Option<DynamicObject>);

/// One object's copy in the target.
struct Created {
    target_uid: String,
    hash: String,
    /// Labels the target namespace needs for this copy (an identity) to admit it.
    admits: BTreeMap<String, String>,
}

#[derive(Clone, Copy)]
enum Side {
    Source,
    Target,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }
}

impl<'a> Executor<'a> {
    pub fn new(sides: &'a MoveSides, kinds: &[MoveKind]) -> Executor<'a> {
        Executor {
            sides,
            kinds: kinds.iter().map(|k| (k.group_kind(), k.clone())).collect(),
            statuses: std::sync::Mutex::new(BTreeMap::new()),
            checked_versions: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    fn writer(&self, side: Side) -> &KubeWriter {
        match side {
            Side::Source => &self.sides.source,
            Side::Target => &self.sides.target,
        }
    }

    fn namespace(&self, side: Side) -> &str {
        match side {
            Side::Source => &self.sides.source_namespace,
            Side::Target => &self.sides.target_namespace,
        }
    }

    /// Where an entry is on `side`: objects of the moved namespace are in that side's
    /// namespace; an object kept in another one (an identity's Secret in the provider's
    /// namespace) is in the namespace of that name on both sides, where its provider
    /// looks for it.
    fn namespace_of(&self, side: Side, entry: &JournalEntry) -> String {
        match entry.namespace.as_deref() {
            Some(namespace) if namespace != self.sides.source_namespace => namespace.to_string(),
            _ => self.namespace(side).to_string(),
        }
    }

    fn api(
        &self,
        side: Side,
        entry: &JournalEntry,
    ) -> Result<BoundedApi<DynamicObject>, PivotError> {
        let group_kind = ObjectKind::new(&entry.api_version, &entry.kind).group_kind();
        let kind = self
            .kinds
            .get(&group_kind)
            .ok_or_else(|| PivotError::Stopped {
                object: entry.describe(),
                cause: StopCause::KindNotInTarget {
                    kind: entry.kind.clone(),
                },
            })?;
        let namespace = kind.namespaced.then(|| self.namespace_of(side, entry));
        Ok(self
            .writer(side)
            .dynamic(&resource(kind), namespace.as_deref()))
    }

    async fn get(
        &self,
        side: Side,
        entry: &JournalEntry,
    ) -> Result<Option<DynamicObject>, PivotError> {
        self.api(side, entry)?
            .get(&entry.name)
            .await
            .map_err(failed(side))
    }

    /// The source objects of a step's entries, by source UID (`None`: not there): one list
    /// per kind in the moved namespace instead of a read per object, a read by name for
    /// what lies elsewhere (an identity and its Secret) and for a kind the step touches
    /// once. Checked and written as if each had been read alone: a write that depends on
    /// the content read holds its version.
    async fn read_sources(
        &self,
        journal: &MoveJournal,
        entries: &[&JournalEntry],
    ) -> Result<BTreeMap<String, Option<DynamicObject>>, PivotError> {
        let mut by_kind: BTreeMap<(&str, &str), Vec<&JournalEntry>> = BTreeMap::new();
        let mut alone = Vec::new();
        for entry in entries {
            let in_namespace = entry.namespace.is_some()
                && self.namespace_of(Side::Source, entry) == self.sides.source_namespace;
            if in_namespace {
                by_kind
                    .entry((entry.api_version.as_str(), entry.kind.as_str()))
                    .or_default()
                    .push(entry);
            } else {
                alone.push(*entry);
            }
        }
        let mut found = BTreeMap::new();
        let mut listed_kinds = Vec::new();
        for ((api_version, kind), of_kind) in by_kind {
            // A list reads every object of the kind in the namespace: worth it when the
            // step wants a good part of them, not for five Secrets among a thousand.
            let of_kind_in_move = journal
                .objects
                .values()
                .filter(|e| e.api_version == api_version && e.kind == kind)
                .count();
            if of_kind.len() < LIST_AT_LEAST && of_kind.len() * 4 < of_kind_in_move {
                alone.extend(of_kind);
            } else {
                listed_kinds.push(of_kind);
            }
        }
        // The kinds' lists side by side (a step of a large cluster lists two kinds of
        // thousands); boxed for the same reason as the reads below.
        let lists: Vec<BoxFuture<'_, Result<Vec<SourceRead>, PivotError>>> = listed_kinds
            .into_iter()
            .map(|of_kind| {
                async move {
                    let listed = self
                        .api(Side::Source, of_kind[0])?
                        .list(&ListParams::default())
                        .await
                        .map_err(failed(Side::Source))?;
                    let mut by_name: BTreeMap<String, DynamicObject> = listed
                        .into_iter()
                        .map(|o| (o.metadata.name.clone().unwrap_or_default(), o))
                        .collect();
                    Ok(of_kind
                        .into_iter()
                        .map(|entry| (entry.source_uid.clone(), by_name.remove(&entry.name)))
                        .collect())
                }
                .boxed()
            })
            .collect();
        let lists: Vec<_> = stream::iter(lists).buffered(PARALLEL_LISTS).collect().await;
        for list in lists {
            found.extend(list?);
        }
        // Boxed, so that the futures' type names no closure over a borrowed entry: the
        // agent spawns the move, which needs it `Send` for every lifetime.
        let reads: Vec<BoxFuture<'_, Result<SourceRead, PivotError>>> = alone
            .into_iter()
            .map(|entry| {
                async move {
                    let object = self.get(Side::Source, entry).await?;
                    Ok((entry.source_uid.clone(), object))
                }
                .boxed()
            })
            .collect();
        let reads: Vec<_> = stream::iter(reads)
            .buffered(PARALLEL_WRITES)
            .collect()
            .await;
        for read in reads {
            let (uid, object) = read?;
            found.insert(uid, object);
        }
        Ok(found)
    }

    fn cluster_entry<'j>(&self, journal: &'j MoveJournal) -> Option<&'j JournalEntry> {
        journal
            .objects
            .values()
            .find(|e| CLUSTER.is(&e.api_version, &e.kind) && e.name == journal.cluster)
    }

    pub async fn perform(
        &self,
        journal: &mut MoveJournal,
        step: MoveStep,
    ) -> Result<(), PivotError> {
        match step {
            MoveStep::PauseSource => {
                self.pause_source(journal).await?;
                journal.advance(MovePhase::Paused)?;
            }
            MoveStep::Create(list) => self.create(journal, &list).await?,
            MoveStep::RestoreStatus(list) => {
                let reading: &MoveJournal = journal;
                let results: Vec<_> = stream::iter(list.clone())
                    .map(|uid| async move { self.restore_status(reading, &uid).await })
                    .buffered(PARALLEL_WRITES)
                    .collect()
                    .await;
                // In the list's order: what is recorded was done, whatever failed after it.
                for (uid, result) in list.iter().zip(results) {
                    result?;
                    journal.record_status_restored(uid)?;
                }
            }
            MoveStep::DeleteFromSource(list) => {
                let reading: &MoveJournal = journal;
                let mut checked: BTreeMap<String, String> = {
                    let mut versions = self
                        .checked_versions
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    list.iter()
                        .filter_map(|uid| versions.remove(uid).map(|v| (uid.clone(), v)))
                        .collect()
                };
                let unread: Vec<&JournalEntry> = list
                    .iter()
                    .filter(|uid| !checked.contains_key(*uid))
                    .filter_map(|uid| reading.objects.get(uid))
                    .collect();
                let mut sources = self.read_sources(reading, &unread).await?;
                let reads: Vec<(String, SourceState)> = list
                    .iter()
                    .map(|uid| {
                        let state = match checked.remove(uid) {
                            Some(version) => SourceState::CheckedAt(version),
                            None => SourceState::Read(sources.remove(uid).flatten().map(Box::new)),
                        };
                        (uid.clone(), state)
                    })
                    .collect();
                let results: Vec<_> = stream::iter(reads)
                    .map(|(uid, found)| async move {
                        self.delete_from_source(reading, &uid, found).await
                    })
                    .buffered(PARALLEL_WRITES)
                    .collect()
                    .await;
                for (uid, result) in list.iter().zip(results) {
                    result?;
                    journal.record_source_deleted(uid)?;
                }
            }
            MoveStep::Advance(phase) => journal.advance(phase)?,
            MoveStep::UnpauseTarget => {
                self.set_paused(journal, Side::Target, false).await?;
                journal.advance(MovePhase::Done)?;
            }
            MoveStep::Finished => {}
        }
        Ok(())
    }

    async fn set_paused(
        &self,
        journal: &MoveJournal,
        side: Side,
        paused: bool,
    ) -> Result<(), PivotError> {
        let Some(entry) = self.cluster_entry(journal) else {
            return Ok(());
        };
        let marker = if paused {
            json!(journal.cluster)
        } else {
            Value::Null
        };
        let patch = json!({
            "metadata": { "annotations": { PAUSED_BY_MOVE_ANNOTATION: marker } },
            "spec": { "paused": paused },
        });
        let api = self.api(side, entry)?;
        let kind = if paused { "pause" } else { "unpause" };
        let write = api.merge_patch(&entry.name, &patch);
        super::fault_hooks::write(kind, &entry.describe(), write)
            .await
            .map_err(failed(side))?;
        Ok(())
    }

    /// Pauses the source Cluster (refusing one paused by someone else), then waits while
    /// any object of the move carries `block-move`.
    async fn pause_source(&self, journal: &MoveJournal) -> Result<(), PivotError> {
        if let Some(entry) = self.cluster_entry(journal)
            && let Some(found) = self.get(Side::Source, entry).await?
        {
            let paused = ClusterView::of(&found).paused;
            let ours = found
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(PAUSED_BY_MOVE_ANNOTATION));
            if paused && !ours {
                return Err(PivotError::NotReady {
                    what: entry.describe(),
                    waited: Duration::ZERO,
                    reason: "it is paused, and not by a Strata move; unpause it to let it move"
                        .into(),
                });
            }
        }
        self.set_paused(journal, Side::Source, true).await?;
        let started = Instant::now();
        loop {
            let blocked = self.blocked_objects(journal).await?;
            if blocked.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= BLOCK_MOVE_WAIT {
                return Err(PivotError::NotReady {
                    what: format!("the move of cluster {}", journal.cluster),
                    waited: BLOCK_MOVE_WAIT,
                    reason: format!("{} still carry {BLOCK_MOVE_ANNOTATION}", blocked.join(", ")),
                });
            }
            tracing::info!(objects = %blocked.join(", "), "waiting for block-move to be lifted");
            let pause = Duration::from_millis(500)
                * 2u32.saturating_pow(started.elapsed().as_secs().min(4) as u32);
            tokio::time::sleep(pause.min(Duration::from_secs(5))).await;
        }
    }

    /// The objects of the move that carry `block-move` in the source: one list of metadata
    /// per kind in the namespace (a cluster has thousands of objects but a dozen kinds), a
    /// read per object from elsewhere.
    async fn blocked_objects(&self, journal: &MoveJournal) -> Result<Vec<String>, PivotError> {
        let blocks = |meta: &ObjectMeta| {
            meta.annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(BLOCK_MOVE_ANNOTATION))
        };
        let mut lists: BTreeMap<(String, String, String), (&JournalEntry, BTreeSet<&str>)> =
            BTreeMap::new();
        let mut blocked = Vec::new();
        for entry in journal.objects.values() {
            // The agent may list its own namespace only; what the move takes from elsewhere
            // (an identity, its Secret) it reads by name.
            let in_namespace = entry.namespace.is_some()
                && self.namespace_of(Side::Source, entry) == self.sides.source_namespace;
            if in_namespace {
                let key = (
                    entry.api_version.clone(),
                    entry.kind.clone(),
                    self.sides.source_namespace.clone(),
                );
                lists
                    .entry(key)
                    .or_insert_with(|| (entry, BTreeSet::new()))
                    .1
                    .insert(&entry.name);
            } else if let Some(found) = self.get(Side::Source, entry).await?
                && blocks(&found.metadata)
            {
                blocked.push(entry.describe());
            }
        }
        // The kinds' lists side by side; boxed, so that the futures' type names no closure
        // over a borrowed entry (the agent spawns the move, which must be `Send`).
        let listing: Vec<BoxFuture<'_, Result<Vec<String>, PivotError>>> = lists
            .into_iter()
            .map(|((_, kind, namespace), (entry, names))| {
                async move {
                    // Metadata only: the annotations are all this looks at, and a
                    // cluster's Machines with their status are megabytes.
                    let listed = self
                        .api(Side::Source, entry)?
                        .list_metadata(&ListParams::default())
                        .await
                        .map_err(failed(Side::Source))?;
                    Ok(listed
                        .iter()
                        .filter(|meta| {
                            let name = meta.name.as_deref().unwrap_or_default();
                            names.contains(name) && blocks(meta)
                        })
                        .map(|meta| {
                            let name = meta.name.as_deref().unwrap_or_default();
                            format!("{kind} {namespace}/{name}")
                        })
                        .collect())
                }
                .boxed()
            })
            .collect();
        let listed: Vec<Result<Vec<String>, PivotError>> = stream::iter(listing)
            .buffered(PARALLEL_LISTS)
            .collect()
            .await;
        for found in listed {
            blocked.extend(found?);
        }
        Ok(blocked)
    }

    /// The target's namespace `name`, created if absent.
    async fn target_namespace(&self, name: &str) -> Result<Namespace, PivotError> {
        let namespaces = self.sides.target.cluster_scoped::<Namespace>();
        if let Some(found) = namespaces.get(name).await.map_err(failed(Side::Target))? {
            return Ok(found);
        }
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create_or_adopt(&namespace)
            .await
            .map_err(failed(Side::Target))
    }

    /// Gives the target namespace the labels the move's identities admit namespaces by,
    /// unless it has them: a bare copy of the namespace would not be admitted.
    async fn admit_target_namespace(
        &self,
        namespace: &Namespace,
        wanted: BTreeMap<String, String>,
    ) -> Result<(), PivotError> {
        let current = namespace.metadata.labels.clone().unwrap_or_default();
        let missing: BTreeMap<String, String> = wanted
            .into_iter()
            .filter(|(key, value)| current.get(key) != Some(value))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let name = &self.sides.target_namespace;
        tracing::info!(namespace = %name, labels = ?missing, "labelling the target namespace for its identity");
        self.sides
            .target
            .cluster_scoped::<Namespace>()
            .merge_patch(name, &json!({ "metadata": { "labels": missing } }))
            .await
            .map_err(failed(Side::Target))?;
        Ok(())
    }

    /// Creates the listed objects in the target (in parallel), adopting copies a crashed
    /// run made, and records each.
    async fn create(&self, journal: &mut MoveJournal, list: &[String]) -> Result<(), PivotError> {
        let namespace = self.target_namespace(&self.sides.target_namespace).await?;
        let namespace_uid = namespace.metadata.uid.clone().unwrap_or_default();
        let mut uids = journal.target_uids();
        let entries: Vec<JournalEntry> = list
            .iter()
            .filter_map(|uid| journal.objects.get(uid).cloned())
            .collect();
        let wanted: Vec<&JournalEntry> = entries.iter().filter(|e| !e.global).collect();
        let mut sources = self.read_sources(journal, &wanted).await?;
        let results: Vec<_> = stream::iter(entries.clone())
            .map(|entry| {
                let mut known = uids.clone();
                let namespace_uid = namespace_uid.clone();
                let source = sources.remove(&entry.source_uid);
                async move {
                    self.create_one(&entry, source, &mut known, &namespace_uid)
                        .await
                }
            })
            .buffered(PARALLEL_WRITES)
            .collect()
            .await;
        let mut labels = BTreeMap::new();
        for (entry, result) in entries.iter().zip(results) {
            let created = result?;
            labels.extend(created.admits);
            journal.record_created(&entry.source_uid, &created.target_uid, &created.hash)?;
            uids.insert(entry.source_uid.clone(), created.target_uid);
        }
        // Before the step is saved: a crash in between labels the namespace again on the
        // redo, which finds the copies already made.
        self.admit_target_namespace(&namespace, labels).await
    }

    /// `source`: the object as the step read it from the source, if it did (a shared
    /// object is read here, once its copy is known to be missing).
    async fn create_one(
        &self,
        entry: &JournalEntry,
        source: Option<Option<DynamicObject>>,
        uids: &mut BTreeMap<String, String>,
        namespace_uid: &str,
    ) -> Result<Created, PivotError> {
        let target_api = self.api(Side::Target, entry)?;
        // A shared object already in the target is used as it is, whatever became of it in
        // the source: it is looked for first. Any other copy is made at once, and one that
        // is there already (made by a crashed run) answers with a conflict and is adopted:
        // a read of the target per object less. The adoption is not a write, so it is not
        // logged as one.
        if entry.global
            && let Some(existing) = target_api
                .get(&entry.name)
                .await
                .map_err(failed(Side::Target))?
        {
            return Ok(self.adopted(entry, &existing));
        }
        let source = match source {
            Some(read) => read,
            None => self.get(Side::Source, entry).await?,
        };
        let (data, hash, admits) = self.copy_of(entry, source, uids, namespace_uid).await?;
        let write = target_api.create(&data);
        match super::fault_hooks::write("create", &entry.describe(), write).await {
            Ok(created) => Ok(Created {
                target_uid: created.metadata.uid.unwrap_or_default(),
                hash,
                admits,
            }),
            Err(e) if e.is_conflict() => {
                let existing = target_api
                    .get(&entry.name)
                    .await
                    .map_err(failed(Side::Target))?
                    .ok_or_else(|| PivotError::NotReady {
                        what: entry.describe(),
                        waited: Duration::ZERO,
                        reason: "its copy in the target was there and is gone again".into(),
                    })?;
                Ok(self.adopted(entry, &existing))
            }
            Err(e) => Err(failed(Side::Target)(e)),
        }
    }

    /// A copy found in the target, recorded as it is.
    fn adopted(&self, entry: &JournalEntry, existing: &DynamicObject) -> Created {
        let json = serde_json::to_value(existing).unwrap_or(Value::Null);
        let hash = if entry.global {
            entry.content_hash.clone()
        } else {
            content_hash(&json)
        };
        Created {
            admits: admits_of(entry, &json),
            target_uid: existing.metadata.uid.clone().unwrap_or_default(),
            hash,
        }
    }

    /// The copy to create of an entry, read from the source (which must still hold the
    /// planned content), and its content hash.
    async fn copy_of(
        &self,
        entry: &JournalEntry,
        source: Option<DynamicObject>,
        uids: &mut BTreeMap<String, String>,
        namespace_uid: &str,
    ) -> Result<(DynamicObject, String, BTreeMap<String, String>), PivotError> {
        let source = source.ok_or_else(|| PivotError::Stopped {
            object: entry.describe(),
            cause: StopCause::GoneFromSource,
        })?;
        let mut json = serde_json::to_value(&source).unwrap_or(Value::Null);
        json["apiVersion"] = json!(entry.api_version);
        json["kind"] = json!(entry.kind);
        let found = content_hash(&json);
        if !entry.global && found != entry.content_hash {
            return Err(JournalError::SourceChanged {
                cluster: self.sides.cluster.clone(),
                object: entry.describe(),
                planned: entry.content_hash.clone(),
                found,
            }
            .into());
        }
        if !entry.global
            && let Some(version) = source.metadata.resource_version.clone()
        {
            self.checked_versions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(entry.source_uid.clone(), version);
        }
        let object = SourceObject::from_json(json).map_err(|source| PivotError::Plan {
            cluster: entry.describe(),
            source,
        })?;
        for owner in object.owners().iter().filter(|o| o.kind == "Namespace") {
            uids.insert(owner.uid.clone(), namespace_uid.to_string());
        }
        let (mut copy, _status) =
            target_object(&object, entry.has_status, uids).map_err(|source| PivotError::Plan {
                cluster: entry.describe(),
                source,
            })?;
        if entry.has_status
            && let Some(status) = source.data.get("status")
        {
            self.statuses
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(entry.source_uid.clone(), status.clone());
        }
        if entry.namespace.is_some() {
            let namespace = self.namespace_of(Side::Target, entry);
            if namespace != self.sides.target_namespace {
                self.target_namespace(&namespace).await?;
            }
            copy["metadata"]["namespace"] = json!(namespace);
        }
        let hash = content_hash(&copy);
        let admits = admits_of(entry, &copy);
        let data: DynamicObject =
            serde_json::from_value(copy).map_err(|e| PivotError::Stopped {
                object: entry.describe(),
                cause: StopCause::CopyNotAnObject {
                    reason: e.to_string(),
                },
            })?;
        Ok((data, hash, admits))
    }

    /// clusterctl does not restore status; controllers read it right after the move.
    async fn restore_status(&self, journal: &MoveJournal, uid: &str) -> Result<(), PivotError> {
        let Some(entry) = journal.objects.get(uid) else {
            return Ok(());
        };
        // The source is paused, so the status its copy's step read is still its status.
        let kept = self
            .statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
        let status = match kept {
            Some(status) => status,
            None => {
                let Some(source) = self.get(Side::Source, entry).await? else {
                    return Ok(());
                };
                let Some(status) = source.data.get("status").cloned() else {
                    return Ok(());
                };
                status
            }
        };
        let api = self.api(Side::Target, entry)?;
        let status = json!({ "status": status });
        let write = api.merge_patch_status(&entry.name, &status);
        super::fault_hooks::write("status", &entry.describe(), write)
            .await
            .map_err(failed(Side::Target))?;
        Ok(())
    }

    /// Lets the source's controllers release the object (`delete-for-move`), clears its
    /// finalizers and deletes it: its copy now owns the infrastructure.
    /// `found`: the object as the step read it from the source, or the version at which
    /// its copy's step checked it.
    async fn delete_from_source(
        &self,
        journal: &MoveJournal,
        uid: &str,
        found: SourceState,
    ) -> Result<(), PivotError> {
        let Some(entry) = journal.objects.get(uid) else {
            return Ok(());
        };
        let api = self.api(Side::Source, entry)?;
        let mut found = found;
        let mut attempts = 0;
        loop {
            let version = match found {
                SourceState::Read(None) => return Ok(()),
                SourceState::Read(Some(object)) => {
                    let json = serde_json::to_value(&*object).unwrap_or(Value::Null);
                    journal.check_delete(uid, &content_hash(&json))?;
                    object.metadata.resource_version
                }
                SourceState::CheckedAt(version) => {
                    // Its content at this version was the planned one when its copy was
                    // made; the journal still checks that the copy was recorded.
                    journal.check_delete(uid, &entry.content_hash)?;
                    Some(version)
                }
            };
            // As `clusterctl move` does: one write lets the source's controllers release
            // the object (`delete-for-move`) and clears its finalizers, then it is deleted
            // and goes at once. The write holds the version whose content was checked: an
            // object changed since (its status, say, read a while ago with the rest of the
            // step's objects) is refused, read again and checked again.
            let release = json!({ "metadata": {
                "resourceVersion": version,
                "annotations": { DELETE_FOR_MOVE_ANNOTATION: "" },
                "finalizers": null,
            } });
            let write = api.merge_patch(&entry.name, &release);
            match super::fault_hooks::write("release", &entry.describe(), write).await {
                Ok(_) => break,
                Err(e) if e.is_gone() => return Ok(()),
                Err(e) if e.is_conflict() && attempts < RELEASE_ATTEMPTS => {
                    attempts += 1;
                    found = SourceState::Read(self.get(Side::Source, entry).await?.map(Box::new));
                }
                Err(e) => return Err(failed(Side::Source)(e)),
            }
        }
        // An object gone already was not written: the write hook logs only what was.
        let delete = async {
            match api.delete(&entry.name).await {
                Ok(Deleted::Requested) => Ok(()),
                Ok(Deleted::AlreadyGone) => Err(None),
                Err(e) => Err(Some(e)),
            }
        };
        match super::fault_hooks::write("delete", &entry.describe(), delete).await {
            Ok(()) | Err(None) => Ok(()),
            Err(Some(e)) => Err(failed(Side::Source)(e)),
        }
    }
}

/// The labels the target namespace needs for an entry's copy: only a cluster-scoped
/// identity admits namespaces (by label).
fn admits_of(entry: &JournalEntry, json: &Value) -> BTreeMap<String, String> {
    if entry.namespace.is_none() {
        admitted_namespace_labels(json)
    } else {
        BTreeMap::new()
    }
}

/// A failed call on `side`, as the move reports it.
fn failed(side: Side) -> impl FnOnce(WriteError) -> PivotError {
    move |source| PivotError::Api {
        side: side.name(),
        source,
    }
}
