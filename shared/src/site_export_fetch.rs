//! Reading a site's export from the management cluster: the head Secret and the parts it
//! names, joined and checked against the digest the head names
//! (`strata_core::pivot::site_export_parts`). What the bytes hold is checked by the reader
//! (a restore, `strata cluster kubeconfig`): they are the site's data.

use k8s_openapi::api::core::v1::Secret;

use crate::contracts::names::{ClusterLocation, SITE_EXPORT_SECRET};
use crate::kube_writer::{KubeWriter, WriteError};
use crate::pack::archive::unpack_archive;
use crate::pivot::backup::{Backup, BackupError, MANIFEST_FILE, read_backup};
use crate::pivot::site_export::{EXPORT_DATA_KEY, EXPORT_LIMITS, EXPORT_ROOT};
use crate::pivot::site_export_parts::{EXPORT_PART_KEY, join, part_secret_name, read_head};

#[derive(Debug, thiserror::Error)]
pub enum ExportFetchError {
    #[error("cannot read {secret}: {source}")]
    Read {
        secret: String,
        #[source]
        source: WriteError,
    },
    #[error(
        "the management cluster holds no export of cluster {cluster}: {secret} does not exist (its agent writes it once the cluster holds its own objects, and again whenever they change)"
    )]
    NoExport { cluster: String, secret: String },
    #[error("{secret} cannot be read as an export: {reason}")]
    Unreadable { secret: String, reason: String },
}

/// The head Secret of the export of `location`, as shown in messages.
pub fn export_secret_shown(location: &ClusterLocation) -> String {
    format!("Secret {}/{SITE_EXPORT_SECRET}", location.objects_namespace)
}

/// The bytes of the latest export of `location` (a gzipped tarball), its parts joined and
/// their digest checked.
pub async fn fetch_export(
    management: &KubeWriter,
    location: &ClusterLocation,
) -> Result<Vec<u8>, ExportFetchError> {
    let secret = export_secret_shown(location);
    let secrets = management.namespaced::<Secret>(&location.objects_namespace);
    let unreadable = |secret: &str, reason: String| ExportFetchError::Unreadable {
        secret: secret.to_string(),
        reason,
    };
    let found = secrets
        .get(SITE_EXPORT_SECRET)
        .await
        .map_err(|source| ExportFetchError::Read {
            secret: secret.clone(),
            source,
        })?
        .ok_or_else(|| ExportFetchError::NoExport {
            cluster: location.key(),
            secret: secret.clone(),
        })?;
    let first = found
        .data
        .as_ref()
        .and_then(|data| data.get(EXPORT_DATA_KEY))
        .ok_or_else(|| unreadable(&secret, format!("it has no key {EXPORT_DATA_KEY}")))?;
    let head = read_head(found.metadata.annotations.as_ref())
        .map_err(|e| unreadable(&secret, e.to_string()))?;
    let mut parts = vec![first.0.clone()];
    if let Some(sha256) = &head.sha256 {
        for index in 1..head.parts {
            let name = part_secret_name(SITE_EXPORT_SECRET, sha256, index);
            let shown = format!("Secret {}/{name}", location.objects_namespace);
            let part = secrets
                .get(&name)
                .await
                .map_err(|source| ExportFetchError::Read {
                    secret: shown.clone(),
                    source,
                })?
                .ok_or_else(|| {
                    unreadable(
                        &secret,
                        format!(
                            "its part {index} of {}, {shown}, does not exist",
                            head.parts
                        ),
                    )
                })?;
            let bytes = part
                .data
                .and_then(|mut data| data.remove(EXPORT_PART_KEY))
                .ok_or_else(|| unreadable(&shown, format!("it has no key {EXPORT_PART_KEY}")))?;
            parts.push(bytes.0);
        }
    }
    join(&head, &parts).map_err(|e| unreadable(&secret, e.to_string()))
}

/// Why an export's bytes are no backup of its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ExportUnpackError {
    #[error("{secret} cannot be unpacked: {reason}")]
    Unpack { secret: String, reason: String },
    #[error("the export in {secret} is no backup of its cluster: {source}")]
    Invalid {
        secret: String,
        #[source]
        source: BackupError,
    },
}

/// The objects an export's bytes (from `secret`) hold: unpacked within the export's limits
/// into a temporary directory and read as a backup directory is, which must be of
/// `location`'s cluster. What the objects are is still the site's word: each reader holds
/// them to what it needs (a restore, to what the site's agent may write).
pub fn export_backup(
    bytes: &[u8],
    location: &ClusterLocation,
    secret: &str,
) -> Result<Backup, ExportUnpackError> {
    let unpack = |reason: String| ExportUnpackError::Unpack {
        secret: secret.to_string(),
        reason,
    };
    let scratch = tempfile::tempdir()
        .map_err(|e| unpack(format!("no temporary directory to unpack it in: {e}")))?;
    let directory = scratch.path().join(EXPORT_ROOT);
    unpack_archive(bytes, &directory, &EXPORT_LIMITS).map_err(|e| unpack(e.to_string()))?;
    let manifest = std::fs::read(directory.join(MANIFEST_FILE))
        .map_err(|e| unpack(format!("{MANIFEST_FILE}: {e}")))?;
    let expected = format!("{}/{}", location.objects_namespace, location.cluster);
    read_backup(
        &manifest,
        |file| std::fs::read(directory.join(file)).map_err(|e| e.to_string()),
        Some(&expected),
    )
    .map_err(|source| ExportUnpackError::Invalid {
        secret: secret.to_string(),
        source,
    })
}
