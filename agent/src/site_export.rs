//! The site's copy of its own CAPI objects in the management cluster: once the cluster
//! holds its objects, the agent reads them as a backup would (status included, the shared
//! objects left out), and writes them, packed, into the Secret
//! [`SITE_EXPORT_SECRET`] of its objects namespace there, whenever they changed and the
//! management cluster answers. A site whose control plane is lost is restored from the
//! last copy (`strata-agent restore --from-export`).
//!
//! The copy is read every [`CHECK_EVERY`]; it is written only when what it holds differs
//! from what the Secret says it holds, so a steady cluster costs one read of its objects
//! and no write.

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
}

/// How long the kinds read from the cluster's CRDs are used before they are read again:
/// the CRDs change only with a provider upgrade, and reading them costs the API server
/// megabytes of schemas.
const KINDS_FOR: Duration = Duration::from_secs(600);

/// Keeps the export current, one check at a time.
#[derive(Debug, Default)]
pub struct SiteExporter {
    next_check: Option<Instant>,
    /// The kinds to read, and when they were discovered.
    kinds: Option<(Instant, Vec<MoveKind>)>,
    /// The content digest the management cluster's copy holds, once known.
    written: Option<String>,
    /// Whether the last check failed: a failure is a warning once, not at every check
    /// of an outage that lasts days.
    failing: bool,
}

impl SiteExporter {
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
        let exported = Exported {
            objects: copy.manifest.objects.len(),
            bytes: bytes.len(),
        };
        management
            .apply(&export_secret(
                &link.objects_namespace,
                &digest,
                &copy.manifest.taken_at,
                exported.objects,
                bytes,
            ))
            .await?;
        self.written = Some(digest);
        Ok(Some(exported))
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
