//! `strata-agent backup` and `restore`: a cluster's CAPI objects written to a directory and
//! created again from one, status included, for disaster recovery (the directory format is
//! [`strata_shared::pivot::backup`]), or from the copy a site's agent keeps in the
//! management cluster ([`strata_shared::pivot::site_export`], written by
//! [`crate::site_export`]).
//!
//! A backup reads what a move would move (the same plan, from the kinds the cluster's own
//! CRDs declare) and appears all at once: it is written beside its directory and renamed
//! into place, so a directory is a whole backup or absent.
//!
//! A restore checks the whole directory before it writes anything, then creates the objects
//! in the plan's order, owners first, each marked with the backup it came from; the Cluster
//! is restored paused, so that nothing acts on it before the operator says so. An object
//! that exists already stops the restore, naming it, unless it carries this backup's mark
//! (an earlier run of the same restore: the run goes on from there) or is shared (an
//! identity, used as it is).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use serde_json::json;
use strata_shared::contracts::names::ClusterLocation;
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::pivot::backup::{
    Backup, BackupEntry, BackupError, BackupFiles, MANIFEST_FILE, backup_files, read_backup,
};
use strata_shared::pivot::site_export::{SiteExportError, check_site_objects};
use strata_shared::pivot::{MoveKind, PlanError, plan, target_object};
use strata_shared::site_export_fetch::{
    self, ExportFetchError, ExportUnpackError, export_secret_shown, fetch_export,
};

use crate::pivot::{self, PivotError};

/// On each restored object: the backup it came from (`namespace/cluster@takenAt`).
pub const RESTORED_FROM_ANNOTATION: &str = "strata.dev/restored-from";

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("cannot read Cluster {namespace}/{cluster} for its backup: {source}")]
    Read {
        namespace: String,
        cluster: String,
        #[source]
        source: Box<PivotError>,
    },
    #[error("cannot plan the backup of Cluster {namespace}/{cluster}: {source}")]
    Plan {
        namespace: String,
        cluster: String,
        #[source]
        source: PlanError,
    },
    #[error("{path} exists already; a backup goes to a new directory")]
    DirectoryExists { path: PathBuf },
    #[error("cannot write the backup into {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    ReadDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the backup in {path} cannot be restored: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: BackupError,
    },
    #[error(
        "{object}: the target cluster does not serve {api_version} {kind}; install its provider's CRDs first (nothing was restored)"
    )]
    KindNotServed {
        object: String,
        api_version: String,
        kind: String,
    },
    #[error(
        "{object} exists in the target and is not from this backup; the restore stops there ({created} object(s) created before it; remove the object or restore elsewhere, then run the same restore again)"
    )]
    Exists { object: String, created: usize },
    #[error(
        "{object}: {source} ({created} object(s) created before it; the same restore goes on from there)"
    )]
    Create {
        object: String,
        created: usize,
        #[source]
        source: WriteError,
    },
    #[error("cannot read {secret}: {source}")]
    ReadExport {
        secret: String,
        #[source]
        source: WriteError,
    },
    #[error(
        "the management cluster holds no export of cluster {cluster}: {secret} does not exist (its agent writes it once the cluster holds its own objects, and again whenever they change)"
    )]
    NoExport { cluster: String, secret: String },
    #[error("{secret} cannot be unpacked: {reason} (nothing was restored)")]
    ExportUnreadable { secret: String, reason: String },
    #[error("the export in {secret} cannot be restored: {source} (nothing was restored)")]
    ExportInvalid {
        secret: String,
        #[source]
        source: BackupError,
    },
    #[error("the export in {secret} is refused: {source} (nothing was restored)")]
    ExportRefused {
        secret: String,
        #[source]
        source: SiteExportError,
    },
    #[error("{object}: {source} ({created} object(s) created before it)")]
    Shape {
        object: String,
        created: usize,
        #[source]
        source: PlanError,
    },
}

/// Writes Cluster `namespace/cluster`'s objects into the new directory `directory`;
/// returns how many.
pub async fn backup(
    source: &KubeWriter,
    namespace: &str,
    cluster: &str,
    directory: &Path,
) -> Result<usize, RecoveryError> {
    if directory.exists() {
        return Err(RecoveryError::DirectoryExists {
            path: directory.to_path_buf(),
        });
    }
    let kinds = kinds(source, namespace, cluster).await?;
    let files = read_files(source, namespace, cluster, &kinds).await?;
    // Written beside, then renamed into place: the directory is whole or absent.
    let partial = directory.with_extension(format!("partial-{}", std::process::id()));
    let written = write_all(&partial, &files.manifest_bytes(), &files.files)
        .and_then(|()| std::fs::rename(&partial, directory));
    if let Err(source) = written {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(RecoveryError::Write {
            path: directory.to_path_buf(),
            source,
        });
    }
    Ok(files.manifest.objects.len())
}

/// The kinds a backup of Cluster `namespace/cluster` reads, from `source`'s CRDs.
pub async fn kinds(
    source: &KubeWriter,
    namespace: &str,
    cluster: &str,
) -> Result<Vec<MoveKind>, RecoveryError> {
    pivot::kinds(source, namespace)
        .await
        .map_err(|source| RecoveryError::Read {
            namespace: namespace.to_string(),
            cluster: cluster.to_string(),
            source: Box::new(source),
        })
}

/// Cluster `namespace/cluster`'s objects of `kinds` as a backup's files, read now.
pub async fn read_files(
    source: &KubeWriter,
    namespace: &str,
    cluster: &str,
    kinds: &[MoveKind],
) -> Result<BackupFiles, RecoveryError> {
    let objects = pivot::snapshot(source, namespace, kinds)
        .await
        .map_err(|source| RecoveryError::Read {
            namespace: namespace.to_string(),
            cluster: cluster.to_string(),
            source: Box::new(source),
        })?;
    let planned =
        plan(cluster, namespace, kinds, &objects).map_err(|source| RecoveryError::Plan {
            namespace: namespace.to_string(),
            cluster: cluster.to_string(),
            source,
        })?;
    Ok(backup_files(
        &planned,
        &objects,
        &Timestamp::now().to_string(),
    ))
}

fn write_all(
    directory: &Path,
    manifest: &[u8],
    files: &[(String, Vec<u8>)],
) -> std::io::Result<()> {
    std::fs::create_dir_all(directory.join(strata_shared::pivot::backup::OBJECTS_DIR))?;
    for (file, bytes) in files {
        std::fs::write(directory.join(file), bytes)?;
    }
    std::fs::write(directory.join(MANIFEST_FILE), manifest)
}

/// Reads and checks the backup in `directory`; with `expected` (`namespace/name`), a backup
/// of another cluster is refused.
pub fn read(directory: &Path, expected: Option<&str>) -> Result<Backup, RecoveryError> {
    let manifest_path = directory.join(MANIFEST_FILE);
    let manifest =
        std::fs::read(&manifest_path).map_err(|source| RecoveryError::ReadDirectory {
            path: manifest_path,
            source,
        })?;
    read_backup(
        &manifest,
        |file| std::fs::read(directory.join(file)).map_err(|e| e.to_string()),
        expected,
    )
    .map_err(|source| RecoveryError::Invalid {
        path: directory.to_path_buf(),
        source,
    })
}

/// Reads and checks the latest copy of its objects that the site of WorkloadCluster
/// `location` exported to the management cluster: unpacked within limits into a temporary
/// directory, checked as a backup directory is, and held to what the site's agent may
/// write itself.
pub async fn read_export(
    management: &KubeWriter,
    location: &ClusterLocation,
) -> Result<Backup, RecoveryError> {
    let secret = export_secret_shown(location);
    let bytes = fetch_export(management, location)
        .await
        .map_err(|e| match e {
            ExportFetchError::Read { secret, source } => {
                RecoveryError::ReadExport { secret, source }
            }
            ExportFetchError::NoExport { cluster, secret } => {
                RecoveryError::NoExport { cluster, secret }
            }
            ExportFetchError::Unreadable { secret, reason } => {
                RecoveryError::ExportUnreadable { secret, reason }
            }
        })?;
    export_backup(&bytes, location, &secret)
}

/// Reads and checks the bytes of an export (`secret` names where they came from): no
/// cluster needed, so that hostile exports are tested without one.
fn export_backup(
    bytes: &[u8],
    location: &ClusterLocation,
    secret: &str,
) -> Result<Backup, RecoveryError> {
    let backup =
        site_export_fetch::export_backup(bytes, location, secret).map_err(|e| match e {
            ExportUnpackError::Unpack { secret, reason } => {
                RecoveryError::ExportUnreadable { secret, reason }
            }
            ExportUnpackError::Invalid { secret, source } => {
                RecoveryError::ExportInvalid { secret, source }
            }
        })?;
    check_site_objects(&backup).map_err(|source| RecoveryError::ExportRefused {
        secret: secret.to_string(),
        source,
    })?;
    Ok(backup)
}

/// What a restore did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub created: usize,
    /// Restored by an earlier run of the same restore.
    pub already: usize,
    /// Shared objects the target had already, used as they are.
    pub shared: usize,
}

/// Creates `backup`'s objects in `target`, the Cluster paused.
pub async fn restore(target: &KubeWriter, backup: &Backup) -> Result<Restored, RecoveryError> {
    let manifest = &backup.manifest;
    let mark = format!(
        "{}/{}@{}",
        manifest.namespace, manifest.cluster, manifest.taken_at
    );
    let kinds = pivot::kinds(target, &manifest.namespace)
        .await
        .map_err(|source| RecoveryError::Read {
            namespace: manifest.namespace.clone(),
            cluster: manifest.cluster.clone(),
            source: Box::new(source),
        })?;
    let served: Vec<(&BackupEntry, MoveKind)> = backup
        .objects
        .iter()
        .map(|(entry, _)| served_kind(&kinds, entry).map(|kind| (entry, kind)))
        .collect::<Result<_, _>>()?;
    let mut done = Restored::default();
    let namespace_uid = ensure_namespace(target, &manifest.namespace, &done).await?;
    let mut uids: BTreeMap<String, String> = BTreeMap::new();
    for ((entry, kind), (_, object)) in served.into_iter().zip(&backup.objects) {
        let created = done.created;
        let failed = |source| RecoveryError::Create {
            object: entry.describe(),
            created,
            source,
        };
        for owner in object.owners().iter().filter(|o| o.kind == "Namespace") {
            uids.insert(owner.uid.clone(), namespace_uid.clone());
        }
        let api = target.dynamic(&pivot::resource(&kind), entry.namespace.as_deref());
        let (mut copy, status) =
            target_object(object, entry.status_subresource, &uids).map_err(|source| {
                RecoveryError::Shape {
                    object: entry.describe(),
                    created,
                    source,
                }
            })?;
        let target_uid = match api.get(&entry.name).await.map_err(failed)? {
            Some(existing) if entry.global => {
                done.shared += 1;
                existing.metadata.uid.unwrap_or_default()
            }
            Some(existing) if marked(&existing, &mark) => {
                done.already += 1;
                existing.metadata.uid.unwrap_or_default()
            }
            Some(_) => {
                return Err(RecoveryError::Exists {
                    object: entry.describe(),
                    created,
                });
            }
            None => {
                copy["metadata"]["annotations"][RESTORED_FROM_ANNOTATION] = json!(mark);
                if entry.kind == "Cluster" && !entry.global {
                    copy["spec"]["paused"] = json!(true);
                }
                let copy: DynamicObject =
                    serde_json::from_value(copy).map_err(|e| RecoveryError::Shape {
                        object: entry.describe(),
                        created,
                        source: PlanError::NotAnObject {
                            object: format!("{} ({e})", entry.describe()),
                        },
                    })?;
                let made = api.create(&copy).await.map_err(failed)?;
                done.created += 1;
                made.metadata.uid.unwrap_or_default()
            }
        };
        uids.insert(entry.uid.clone(), target_uid);
        // Written again on a rerun: a run stopped between the create and this write
        // leaves no object without its status.
        if let Some(status) = status.filter(|_| !entry.global) {
            api.merge_patch_status(&entry.name, &json!({ "status": status }))
                .await
                .map_err(failed)?;
        }
    }
    Ok(done)
}

fn served_kind(kinds: &[MoveKind], entry: &BackupEntry) -> Result<MoveKind, RecoveryError> {
    let group = entry
        .api_version
        .rsplit_once('/')
        .map_or("", |(group, _)| group);
    kinds
        .iter()
        .find(|k| k.group == group && k.kind == entry.kind)
        .cloned()
        .ok_or_else(|| RecoveryError::KindNotServed {
            object: entry.describe(),
            api_version: entry.api_version.clone(),
            kind: entry.kind.clone(),
        })
}

fn marked(object: &DynamicObject, mark: &str) -> bool {
    object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RESTORED_FROM_ANNOTATION))
        .is_some_and(|m| m == mark)
}

/// The namespace's uid, creating it when absent.
async fn ensure_namespace(
    target: &KubeWriter,
    name: &str,
    done: &Restored,
) -> Result<String, RecoveryError> {
    let failed = |source| RecoveryError::Create {
        object: format!("Namespace {name}"),
        created: done.created,
        source,
    };
    let namespaces = target.cluster_scoped::<Namespace>();
    let namespace = match namespaces.get(name).await.map_err(failed)? {
        Some(namespace) => namespace,
        None => namespaces
            .create(&Namespace {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            })
            .await
            .map_err(failed)?,
    };
    Ok(namespace.metadata.uid.unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_served_by_its_group_and_kind_whatever_the_version() {
        let kinds = vec![MoveKind {
            group: "cluster.x-k8s.io".into(),
            version: "v1beta2".into(),
            kind: "Machine".into(),
            plural: "machines".into(),
            namespaced: true,
            status_subresource: true,
            clusterctl: true,
            move_label: false,
            move_hierarchy_label: false,
        }];
        let entry = |api_version: &str, kind: &str| BackupEntry {
            file: "objects/0001-machine-a.json".into(),
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: Some("edge".into()),
            name: "a".into(),
            uid: "u".into(),
            group: 0,
            status_subresource: true,
            global: false,
            sha256: "sha256:0".into(),
        };
        assert!(served_kind(&kinds, &entry("cluster.x-k8s.io/v1beta1", "Machine")).is_ok());
        let missing = served_kind(
            &kinds,
            &entry("infrastructure.cluster.x-k8s.io/v1beta1", "SimMachine"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            missing,
            "SimMachine edge/a: the target cluster does not serve infrastructure.cluster.x-k8s.io/v1beta1 SimMachine; install its provider's CRDs first (nothing was restored)"
        );
    }

    /// An export said to be of Cluster `name` in `location`'s objects namespace, holding
    /// one object of `kind` (apiVersion, kind).
    fn export_of(location: &ClusterLocation, name: &str, kind: (&str, &str)) -> Vec<u8> {
        use strata_shared::pivot::backup::{BACKUP_FORMAT, BackupFiles, BackupManifest};
        let object = json!({
            "apiVersion": kind.0, "kind": kind.1,
            "metadata": {"name": name, "namespace": location.objects_namespace, "uid": "u1"},
            "status": {"phase": "Running"},
        });
        let bytes = serde_json::to_vec(&object).unwrap();
        let file = format!("objects/0001-x-{name}.json");
        let files = BackupFiles {
            manifest: BackupManifest {
                format: BACKUP_FORMAT.into(),
                cluster: name.into(),
                namespace: location.objects_namespace.clone(),
                taken_at: "2026-12-04T10:00:00Z".into(),
                objects: vec![BackupEntry {
                    file: file.clone(),
                    api_version: kind.0.into(),
                    kind: kind.1.into(),
                    namespace: Some(location.objects_namespace.clone()),
                    name: name.into(),
                    uid: "u1".into(),
                    group: 0,
                    status_subresource: true,
                    global: false,
                    sha256: strata_shared::pack::archive::sha256_digest(&bytes),
                }],
            },
            files: vec![(file, bytes)],
        };
        strata_shared::pivot::site_export::pack(&files).unwrap()
    }

    #[test]
    fn an_export_is_read_whole_or_refused_naming_its_secret_and_what_is_wrong() {
        let location = ClusterLocation::of("edge", "store-12");
        let secret = "Secret ns/strata-site-export";
        let machine = ("cluster.x-k8s.io/v1beta2", "Machine");
        let good = export_of(&location, "store-12", machine);
        let backup = export_backup(&good, &location, secret).unwrap();
        assert_eq!(backup.objects.len(), 1);
        assert_eq!(backup.objects[0].1.json["status"]["phase"], "Running");

        let refused = |bytes: &[u8]| export_backup(bytes, &location, secret).unwrap_err();
        let garbage = refused(b"not a tarball at all");
        assert!(
            matches!(&garbage, RecoveryError::ExportUnreadable { .. })
                && garbage
                    .to_string()
                    .starts_with(&format!("{secret} cannot be unpacked: "))
                && garbage.to_string().ends_with("(nothing was restored)"),
            "{garbage}"
        );
        let truncated = refused(&good[..good.len() / 2]);
        assert!(
            matches!(truncated, RecoveryError::ExportUnreadable { .. }),
            "{truncated}"
        );
        let without_manifest = strata_shared::pack::archive::archive_of_files(
            "backup",
            &[("objects/a.json".into(), b"{}".to_vec())],
        )
        .unwrap();
        let missing = refused(&without_manifest);
        assert!(missing.to_string().contains("backup.json: "), "{missing}");
        let other = refused(&export_of(&location, "store-13", machine));
        assert!(
            matches!(&other, RecoveryError::ExportInvalid { .. })
                && other.to_string().contains(&format!(
                    "the backup is of cluster {}/store-13, not of {}/store-12",
                    location.objects_namespace, location.objects_namespace
                )),
            "{other}"
        );
        let pod = refused(&export_of(&location, "store-12", ("v1", "Pod")));
        assert!(
            matches!(&pod, RecoveryError::ExportRefused { .. })
                && pod
                    .to_string()
                    .contains("which a site's agent may not write"),
            "{pod}"
        );
    }

    #[test]
    fn a_backup_is_written_as_its_manifest_and_object_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("backup");
        write_all(
            &target,
            b"{}",
            &[("objects/0001-cluster-a.json".into(), b"{}".to_vec())],
        )
        .unwrap();
        assert!(target.join("objects/0001-cluster-a.json").exists());
        assert!(target.join(MANIFEST_FILE).exists());
    }
}
