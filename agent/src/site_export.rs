//! The site's copy of its own CAPI objects in the management cluster: once the cluster
//! holds its objects, the agent reads them as a backup would (status included, the shared
//! objects left out), and writes them, packed, into the Secret
//! [`SITE_EXPORT_SECRET`] of its objects namespace there, whenever they changed and the
//! management cluster answers. A site whose control plane is lost is restored from the
//! last copy (`strata-agent restore --from-export`).
//!
//! The copy is read every [`CHECK_EVERY`]; it is written only when what it holds differs
//! from what the Secret says it holds, so a steady cluster costs one read of its objects
//! and no write. A copy larger than one Secret holds is split into parts
//! (`strata_shared::pivot::site_export_parts`): the other parts are written first, the head
//! Secret that names them last, and the parts no head names are removed after.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use strata_shared::contracts::names::SITE_EXPORT_SECRET;
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::pivot::MoveKind;
use strata_shared::pivot::site_export::{
    EXPORT_CONTENT_ANNOTATION, EXPORT_DATA_KEY, EXPORT_OBJECTS_ANNOTATION,
    EXPORT_TAKEN_AT_ANNOTATION, SiteExportError, content_digest, pack, site_copy,
};
use strata_shared::pivot::site_export_parts::{
    EXPORT_PART_BYTES, EXPORT_PART_KEY, EXPORT_PART_LABEL, ExportParts, ExportPartsError,
    head_annotations, part_secret_name, short_digest, split,
};

use crate::management_link::{LinkError, ManagementLink};
use crate::recovery::{self, RecoveryError};

/// How often the site's objects are read to see whether they changed.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Read(#[from] RecoveryError),
    #[error(transparent)]
    Pack(#[from] SiteExportError),
    #[error(transparent)]
    Split(#[from] ExportPartsError),
    #[error("cannot reach the management cluster: {0}")]
    Management(#[from] LinkError),
    #[error("cannot write the export into the management cluster: {0}")]
    Write(#[from] WriteError),
}

/// What one export wrote.
#[derive(Debug)]
pub struct Exported {
    pub objects: usize,
    pub bytes: usize,
    pub parts: usize,
}

/// How long the kinds read from the cluster's CRDs are used before they are read again:
/// the CRDs change only with a provider upgrade, and reading them costs the API server
/// megabytes of schemas.
const KINDS_FOR: Duration = Duration::from_secs(600);

/// Keeps the export current, one check at a time.
#[derive(Debug)]
pub struct SiteExporter {
    /// The most one Secret of the export holds.
    part_bytes: usize,
    next_check: Option<Instant>,
    /// The kinds to read, and when they were discovered.
    kinds: Option<(Instant, Vec<MoveKind>)>,
    /// The content digest the management cluster's copy holds, once known.
    written: Option<String>,
    /// Whether the last check failed: a failure is a warning once, not at every check
    /// of an outage that lasts days.
    failing: bool,
}

impl Default for SiteExporter {
    fn default() -> Self {
        SiteExporter::with_part_bytes(EXPORT_PART_BYTES)
    }
}

impl SiteExporter {
    /// An exporter whose Secrets hold at most `part_bytes` each (for a management cluster
    /// whose API server takes smaller objects).
    pub fn with_part_bytes(part_bytes: usize) -> SiteExporter {
        SiteExporter {
            part_bytes,
            next_check: None,
            kinds: None,
            written: None,
            failing: false,
        }
    }

    /// Keeps the export current until the task is dropped: beside the rest of the work,
    /// so that a management cluster out of reach never slows the site down.
    pub async fn run(mut self, workload: KubeWriter, link: ManagementLink) {
        loop {
            self.export_if_due(&workload, &link).await;
            tokio::time::sleep(CHECK_EVERY).await;
        }
    }

    /// Checks the copy when a check is due (at once the first time) and writes it when it
    /// changed; a failure is logged and tried at the next check.
    pub async fn export_if_due(&mut self, workload: &KubeWriter, link: &ManagementLink) {
        let now = Instant::now();
        if self.next_check.is_some_and(|due| now < due) {
            return;
        }
        self.next_check = Some(now + CHECK_EVERY);
        let result = self.export(workload, link).await;
        let failed_before = std::mem::replace(&mut self.failing, result.is_err());
        match result {
            Ok(Some(exported)) => tracing::info!(
                objects = exported.objects,
                bytes = exported.bytes,
                parts = exported.parts,
                "exported the cluster's objects to the management cluster"
            ),
            Ok(None) => tracing::debug!("the management cluster's copy is current"),
            Err(e) if failed_before => {
                tracing::debug!(error = %e, "cannot export the cluster's objects; will try again")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot export the cluster's objects; will try again")
            }
        }
    }

    async fn export(
        &mut self,
        workload: &KubeWriter,
        link: &ManagementLink,
    ) -> Result<Option<Exported>, ExportError> {
        let (namespace, cluster) = (&link.objects_namespace, &link.cluster);
        let kinds = match self.kinds.take() {
            Some((read_at, kinds)) if read_at.elapsed() < KINDS_FOR => (read_at, kinds),
            _ => (
                Instant::now(),
                recovery::kinds(workload, namespace, cluster).await?,
            ),
        };
        let files = recovery::read_files(workload, namespace, cluster, &kinds.1).await;
        // Read again next time when they failed: a kind may have gone.
        let files = files?;
        self.kinds = Some(kinds);
        let copy = site_copy(files);
        let digest = content_digest(&copy);
        let management = link.management().await?;
        let secrets = management.namespaced::<Secret>(&link.objects_namespace);
        if self.written.is_none() {
            self.written = secrets
                .get(SITE_EXPORT_SECRET)
                .await?
                .and_then(|secret| annotation(&secret, EXPORT_CONTENT_ANNOTATION));
        }
        if self.written.as_deref() == Some(digest.as_str()) {
            return Ok(None);
        }
        let bytes = pack(&copy)?;
        let split = split(&bytes, self.part_bytes)?;
        let exported = Exported {
            objects: copy.manifest.objects.len(),
            bytes: bytes.len(),
            parts: split.parts.len(),
        };
        let namespace = &link.objects_namespace;
        // The parts the head will name, before the head: a head never names a part that
        // is not there.
        for (index, part) in split.parts.iter().enumerate().skip(1) {
            management
                .apply(&part_secret(namespace, &split, index, part.clone()))
                .await?;
        }
        let mut head = export_secret(
            namespace,
            &digest,
            &copy.manifest.taken_at,
            exported.objects,
            split.parts.first().cloned().unwrap_or_default(),
        );
        if let Some(annotations) = head.metadata.annotations.as_mut() {
            annotations.extend(head_annotations(&split));
        }
        management.apply(&head).await?;
        self.written = Some(digest);
        remove_unnamed_parts(&secrets, &split).await;
        Ok(Some(exported))
    }
}

/// The Secret of part `index` (from 1) of an export.
fn part_secret(namespace: &str, split: &ExportParts, index: usize, bytes: Vec<u8>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(part_secret_name(SITE_EXPORT_SECRET, &split.sha256, index)),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "strata-agent".to_string(),
                ),
                (
                    EXPORT_PART_LABEL.to_string(),
                    short_digest(&split.sha256).to_string(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            EXPORT_PART_KEY.to_string(),
            ByteString(bytes),
        )])),
        ..Secret::default()
    }
}

/// Removes the parts of earlier exports, now that the head names this one's. A part left
/// behind (the management cluster stopped answering) is removed after the next export.
async fn remove_unnamed_parts(
    secrets: &strata_shared::kube_writer::BoundedApi<Secret>,
    split: &ExportParts,
) {
    let current = short_digest(&split.sha256);
    let parts = secrets
        .list(&kube::api::ListParams::default().labels(EXPORT_PART_LABEL))
        .await;
    let parts = match parts {
        Ok(parts) => parts,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list the export's parts; left for the next export");
            return;
        }
    };
    for part in parts {
        let belongs = part
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(EXPORT_PART_LABEL))
            .is_some_and(|label| label == current);
        let Some(name) = part.metadata.name.as_deref() else {
            continue;
        };
        if !belongs && let Err(e) = secrets.delete(name).await {
            tracing::debug!(error = %e, part = name, "cannot remove an earlier export's part; left for the next export");
        }
    }
}

fn annotation(secret: &Secret, key: &str) -> Option<String> {
    secret.metadata.annotations.as_ref()?.get(key).cloned()
}

/// The Secret holding the export.
fn export_secret(
    namespace: &str,
    digest: &str,
    taken_at: &str,
    objects: usize,
    bytes: Vec<u8>,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(SITE_EXPORT_SECRET.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "strata-agent".to_string(),
            )])),
            annotations: Some(BTreeMap::from([
                (EXPORT_CONTENT_ANNOTATION.to_string(), digest.to_string()),
                (EXPORT_TAKEN_AT_ANNOTATION.to_string(), taken_at.to_string()),
                (EXPORT_OBJECTS_ANNOTATION.to_string(), objects.to_string()),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            EXPORT_DATA_KEY.to_string(),
            ByteString(bytes),
        )])),
        ..Secret::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_export_secret_says_what_it_holds_and_when_it_was_taken() {
        let secret = export_secret(
            "strata-wc-edge-demo-0123",
            "sha256:ab",
            "2026-12-04T10:00:00Z",
            25,
            vec![1, 2, 3],
        );
        assert_eq!(secret.metadata.name.as_deref(), Some(SITE_EXPORT_SECRET));
        assert_eq!(
            annotation(&secret, EXPORT_CONTENT_ANNOTATION).as_deref(),
            Some("sha256:ab")
        );
        assert_eq!(
            annotation(&secret, EXPORT_OBJECTS_ANNOTATION).as_deref(),
            Some("25")
        );
        assert_eq!(
            secret.data.unwrap()[EXPORT_DATA_KEY],
            ByteString(vec![1, 2, 3])
        );
    }
}
