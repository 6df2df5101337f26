//! A cluster's CAPI objects as a directory, for disaster recovery (what `clusterctl move
//! --to-directory` and `--from-directory` do): `backup.json`, the manifest, names each
//! object's file under `objects/` in creation order (the move plan's), with its kind, name,
//! uid, whether its status is a subresource, whether it is shared (created only when
//! absent, as a move treats it), and the sha256 of the file. The objects are kept as read,
//! status included.
//!
//! Reading a directory back ([`read_backup`]) checks everything before anything is
//! restored: the format, the cluster it is of, every file named and present, its digest,
//! and that it holds the object the manifest says. A directory can come from anywhere: its
//! file names are checked too, so that none leads out of it, and only shared objects may
//! lie outside the cluster's namespace.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{MovePlan, PlanError, SourceObject};

/// The manifest's `format`.
pub const BACKUP_FORMAT: &str = "strata.dev/cluster-backup/v1";
/// The manifest's file name in the directory.
pub const MANIFEST_FILE: &str = "backup.json";
/// The folder of the object files in the directory.
pub const OBJECTS_DIR: &str = "objects";

/// Why a backup cannot be written or read. Files are named relative to the directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    #[error("{file}: cannot be read as a backup manifest: {reason}")]
    ManifestUnreadable { file: String, reason: String },
    #[error("{file}: format is {found:?}, expected {BACKUP_FORMAT:?}")]
    WrongFormat { file: String, found: String },
    #[error("{file}: the backup is of cluster {found}, not of {expected}")]
    OtherCluster {
        file: String,
        found: String,
        expected: String,
    },
    #[error(
        "{file}: a file name the manifest lists must be objects/<name>.json with no path in <name>"
    )]
    UnsafeFileName { file: String },
    #[error("{file}: listed in the manifest but missing or unreadable: {reason}")]
    MissingFile { file: String, reason: String },
    #[error(
        "{file}: sha256 is {found}, the manifest says {expected}: the file is corrupt or was edited"
    )]
    Corrupt {
        file: String,
        expected: String,
        found: String,
    },
    #[error("{file}: holds {found}, the manifest says {expected}")]
    Mismatch {
        file: String,
        expected: String,
        found: String,
    },
    #[error("{file}: {source}")]
    Object {
        file: String,
        #[source]
        source: PlanError,
    },
    #[error("{file}: the manifest lists this file twice")]
    Duplicate { file: String },
    #[error("the manifest lists no object: an empty backup restores nothing")]
    Empty,
    #[error(
        "{file}: {object} is outside the cluster's namespace {namespace}, and only a shared object (an identity, its Secret) may be"
    )]
    OutsideNamespace {
        file: String,
        object: String,
        namespace: String,
    },
}

/// `backup.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupManifest {
    pub format: String,
    /// The CAPI Cluster's name.
    pub cluster: String,
    /// Its namespace.
    pub namespace: String,
    /// When the backup was read (RFC 3339).
    pub taken_at: String,
    /// Creation order: every object after its owners.
    pub objects: Vec<BackupEntry>,
}

/// One object of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupEntry {
    /// `objects/<n>-<kind>-<name>.json`.
    pub file: String,
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// Its uid where it was read: what its dependents' owner references name.
    pub uid: String,
    /// Its creation group: objects of one group do not depend on each other.
    pub group: usize,
    /// Its status is a subresource, written after the create.
    pub status_subresource: bool,
    /// Shared with other clusters (an identity, its Secret): created only when absent,
    /// never changed.
    pub global: bool,
    /// `sha256:<hex>` of the file.
    pub sha256: String,
}

impl BackupEntry {
    /// `Kind namespace/name`.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{} {namespace}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// A backup as written: the manifest and each object file's relative path and bytes.
pub struct BackupFiles {
    pub manifest: BackupManifest,
    pub files: Vec<(String, Vec<u8>)>,
}

impl BackupFiles {
    /// The manifest's bytes.
    pub fn manifest_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.manifest).unwrap_or_default()
    }
}

/// A backup read back and checked: each object in creation order with its entry.
#[derive(Debug)]
pub struct Backup {
    pub manifest: BackupManifest,
    pub objects: Vec<(BackupEntry, SourceObject)>,
}

/// The files of a backup of `plan`'s objects, as read in `objects` (status included).
pub fn backup_files(plan: &MovePlan, objects: &[SourceObject], taken_at: &str) -> BackupFiles {
    let by_uid: BTreeMap<&str, &SourceObject> =
        objects.iter().map(|o| (o.uid.as_str(), o)).collect();
    let mut entries = Vec::new();
    let mut files = Vec::new();
    for (group, members) in plan.groups.iter().enumerate() {
        for object in members {
            let Some(source) = by_uid.get(object.uid.as_str()) else {
                continue;
            };
            let bytes = serde_json::to_vec_pretty(&source.json).unwrap_or_default();
            let file = format!(
                "{OBJECTS_DIR}/{:04}-{}-{}.json",
                entries.len() + 1,
                object.kind.kind.to_lowercase(),
                object.name
            );
            entries.push(BackupEntry {
                file: file.clone(),
                api_version: object.kind.api_version.clone(),
                kind: object.kind.kind.clone(),
                namespace: object.namespace.clone(),
                name: object.name.clone(),
                uid: object.uid.clone(),
                group,
                status_subresource: plan.restores_status(object),
                global: plan.is_global(object),
                sha256: digest(&bytes),
            });
            files.push((file, bytes));
        }
    }
    BackupFiles {
        manifest: BackupManifest {
            format: BACKUP_FORMAT.to_string(),
            cluster: plan.cluster.name.clone(),
            namespace: plan.cluster.namespace.clone().unwrap_or_default(),
            taken_at: taken_at.to_string(),
            objects: entries,
        },
        files,
    }
}

/// Reads and checks a backup: `manifest` is `backup.json`'s bytes, `read` reads a file
/// the manifest names. With `expected` (`namespace/name`), a backup of another cluster is
/// refused.
pub fn read_backup(
    manifest: &[u8],
    read: impl Fn(&str) -> Result<Vec<u8>, String>,
    expected: Option<&str>,
) -> Result<Backup, BackupError> {
    let manifest: BackupManifest =
        serde_json::from_slice(manifest).map_err(|e| BackupError::ManifestUnreadable {
            file: MANIFEST_FILE.into(),
            reason: e.to_string(),
        })?;
    if manifest.format != BACKUP_FORMAT {
        return Err(BackupError::WrongFormat {
            file: MANIFEST_FILE.into(),
            found: manifest.format,
        });
    }
    let found = format!("{}/{}", manifest.namespace, manifest.cluster);
    if let Some(expected) = expected.filter(|e| *e != found) {
        return Err(BackupError::OtherCluster {
            file: MANIFEST_FILE.into(),
            found,
            expected: expected.to_string(),
        });
    }
    if manifest.objects.is_empty() {
        return Err(BackupError::Empty);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut objects = Vec::new();
    for entry in &manifest.objects {
        if !safe_file_name(&entry.file) {
            return Err(BackupError::UnsafeFileName {
                file: entry.file.clone(),
            });
        }
        if !entry.global && entry.namespace.as_deref() != Some(manifest.namespace.as_str()) {
            return Err(BackupError::OutsideNamespace {
                file: entry.file.clone(),
                object: entry.describe(),
                namespace: manifest.namespace.clone(),
            });
        }
        if !seen.insert(entry.file.clone()) {
            return Err(BackupError::Duplicate {
                file: entry.file.clone(),
            });
        }
        let bytes = read(&entry.file).map_err(|reason| BackupError::MissingFile {
            file: entry.file.clone(),
            reason,
        })?;
        let found = digest(&bytes);
        if found != entry.sha256 {
            return Err(BackupError::Corrupt {
                file: entry.file.clone(),
                expected: entry.sha256.clone(),
                found,
            });
        }
        let json: Value = serde_json::from_slice(&bytes).map_err(|e| BackupError::Object {
            file: entry.file.clone(),
            source: PlanError::NotAnObject {
                object: format!("{} ({e})", entry.describe()),
            },
        })?;
        let object = SourceObject::from_json(json).map_err(|source| BackupError::Object {
            file: entry.file.clone(),
            source,
        })?;
        let held = (
            object.kind.api_version.as_str(),
            object.kind.kind.as_str(),
            object.namespace.as_deref(),
            object.name.as_str(),
            object.uid.as_str(),
        );
        let listed = (
            entry.api_version.as_str(),
            entry.kind.as_str(),
            entry.namespace.as_deref(),
            entry.name.as_str(),
            entry.uid.as_str(),
        );
        if held != listed {
            return Err(BackupError::Mismatch {
                file: entry.file.clone(),
                expected: format!("{} (uid {})", entry.describe(), entry.uid),
                found: format!(
                    "{} {}/{} (uid {})",
                    object.kind.kind,
                    object.namespace.as_deref().unwrap_or(""),
                    object.name,
                    object.uid
                ),
            });
        }
        objects.push((entry.clone(), object));
    }
    Ok(Backup { manifest, objects })
}

/// `objects/<name>.json`, `<name>` of letters, digits, `-`, `.` and `_`, not starting with
/// a dot.
fn safe_file_name(file: &str) -> bool {
    let Some(name) = file
        .strip_prefix(OBJECTS_DIR)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.strip_suffix(".json"))
    else {
        return false;
    };
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

fn digest(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
#[path = "backup_tests.rs"]
mod tests;
