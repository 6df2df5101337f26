//! The drift pass over a chart layer: each of its Helm releases' objects, as Helm applied
//! them (`helm get manifest`), compared with the live ones; when one is missing or a field
//! it renders differs, the release is upgraded again with the same chart and values, so
//! that Helm sets it back and stays the objects' owner, and the objects are read again to
//! verify that they hold what the release applied.
//!
//! The comparison is the manifest pass's (`strata_core::layer::drift`): only the fields
//! the release renders count, so what other managers add is left to them, and the
//! replicas of a workload an autoscaler targets are not compared. A difference that is
//! only the apiserver's normal form of a value (`1000m` stored as `1`) survives the
//! upgrade with the object unchanged: it is not a correction, and it is remembered
//! ([`SettledDifferences`]) so that later passes do not upgrade the release for it again.

use std::collections::BTreeMap;
use std::time::Instant;

use kube::api::DynamicObject;
use serde_json::Value;
use thiserror::Error;
use tracing::{Instrument, debug, info, info_span, warn};

use strata_core::layer::drift::first_difference;
use strata_core::layer::install_order::{LayerObject, ManifestError, ObjectKey, layer_objects};

use super::resources::{Resources, not_served};
use super::{Autoscaled, DriftKind, LayerApplyError, write_error};
use crate::chart_release::{ChartRelease, ChartReleaseError, reapply, release_manifest};
use crate::helm_cli::Helm;

/// Why a chart layer's drift pass stopped. Every variant names the layer and the release.
#[derive(Debug, Error)]
pub enum ChartDriftError {
    #[error("layer {layer}: {source}")]
    Helm {
        layer: String,
        #[source]
        source: ChartReleaseError,
    },
    #[error("layer {layer}: release {release}: its manifest cannot be read: {source}")]
    Manifest {
        layer: String,
        release: String,
        #[source]
        source: ManifestError,
    },
    #[error(transparent)]
    Cluster(#[from] LayerApplyError),
    #[error("layer {layer}: release {release}: the helm task stopped: {reason}")]
    Task {
        layer: String,
        release: String,
        reason: String,
    },
}

/// How a live object differs from what its release applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Missing,
    /// The first field (as [`first_difference`] names it) the live object does not hold.
    Differs {
        field: String,
    },
}

/// `live` (as the apiserver returns it; `None` when absent) against `desired`.
pub fn compare(desired: &Value, live: Option<&Value>) -> Option<Finding> {
    match live {
        None => Some(Finding::Missing),
        Some(live) => first_difference(desired, live).map(|field| Finding::Differs { field }),
    }
}

/// What the upgrade did to an object that had drifted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It holds what the release applied again.
    Corrected(DriftKind),
    /// It still differs in the same field and the apiserver did not change it: the
    /// difference is how the apiserver stores the value, not drift.
    Settled { field: String },
    /// It still does not hold what the release applied.
    NotRestored { reason: String },
}

/// The verdict on an object found as `before` (at `before_version`), read again after the
/// upgrade as `after` (`None`: absent) at `after_version`.
pub fn verdict(
    desired: &Value,
    before: &Finding,
    before_version: Option<&str>,
    after: Option<&Value>,
    after_version: Option<&str>,
) -> Verdict {
    match (compare(desired, after), before) {
        (None, Finding::Missing) => Verdict::Corrected(DriftKind::Recreated),
        (None, Finding::Differs { field }) => Verdict::Corrected(DriftKind::FieldReset {
            field: field.clone(),
        }),
        (Some(Finding::Missing), _) => Verdict::NotRestored {
            reason: "still missing after helm upgrade".into(),
        },
        (Some(Finding::Differs { field: now }), Finding::Differs { field: was })
            if now == *was && before_version.is_some() && before_version == after_version =>
        {
            Verdict::Settled { field: now }
        }
        (Some(Finding::Differs { field }), _) => Verdict::NotRestored {
            reason: format!("{field} still differs after helm upgrade"),
        },
    }
}

/// Differences known to be the apiserver's normal form: object → (field, the
/// resourceVersion it was seen at). Skipped while the object keeps that version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettledDifferences(BTreeMap<ObjectKey, (String, String)>);

impl SettledDifferences {
    pub fn remember(&mut self, key: &ObjectKey, field: &str, resource_version: &str) {
        self.0.insert(
            key.clone(),
            (field.to_string(), resource_version.to_string()),
        );
    }

    /// Whether `finding` on `key` at `resource_version` is a settled difference.
    pub fn holds(
        &self,
        key: &ObjectKey,
        finding: &Finding,
        resource_version: Option<&str>,
    ) -> bool {
        let Finding::Differs { field } = finding else {
            return false;
        };
        self.0.get(key).is_some_and(|(settled, version)| {
            settled == field && Some(version.as_str()) == resource_version
        })
    }
}

/// One object set back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartCorrection {
    /// `namespace/name` of the release.
    pub release: String,
    pub object: ObjectKey,
    pub kind: DriftKind,
}

/// What a chart layer's drift pass found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChartDriftReport {
    /// Objects compared with the cluster.
    pub checked: usize,
    /// Releases upgraded again.
    pub upgraded: Vec<String>,
    pub corrections: Vec<ChartCorrection>,
    /// Objects the upgrade did not set back, with why.
    pub not_restored: Vec<(ObjectKey, String)>,
}

/// An object that had drifted, as found before the upgrade.
struct Drifted {
    object: LayerObject,
    finding: Finding,
    resource_version: Option<String>,
}

/// Checks every object of `releases` (the layer's, installed with `helm`) and upgrades a
/// release again when one of its objects drifted.
pub async fn correct_chart_drift(
    client: &kube::Client,
    helm: &Helm,
    layer: &str,
    releases: &[ChartRelease],
    settled: &mut SettledDifferences,
) -> Result<ChartDriftReport, ChartDriftError> {
    let span = info_span!("layer.chart_drift", layer);
    async {
        let started = Instant::now();
        let mut report = ChartDriftReport::default();
        let mut resources = Resources::default();
        let autoscaled = Autoscaled::read(client, layer).await?;
        for release in releases {
            let id = format!("{}/{}", release.namespace, release.name);
            let manifest = {
                let (helm, release) = (helm.clone(), release.clone());
                blocking(layer, &id, move || {
                    release_manifest(
                        &helm,
                        &release.kubeconfig,
                        &release.namespace,
                        &release.name,
                    )
                })
                .await?
            };
            let objects = layer_objects(&manifest, &release.namespace, None).map_err(|source| {
                ChartDriftError::Manifest {
                    layer: layer.to_string(),
                    release: id.clone(),
                    source,
                }
            })?;
            let mut drifted = Vec::new();
            for mut object in objects {
                autoscaled.strip(&object.key, &mut object.object);
                let Some(live) = read(client, &mut resources, layer, &object.key).await? else {
                    continue;
                };
                report.checked += 1;
                let version = live.as_ref().and_then(|l| l.metadata.resource_version.clone());
                let live = live.as_ref().map(live_json);
                let Some(finding) = compare(&object.object, live.as_ref()) else {
                    continue;
                };
                if settled.holds(&object.key, &finding, version.as_deref()) {
                    continue;
                }
                drifted.push(Drifted {
                    object,
                    finding,
                    resource_version: version,
                });
            }
            if drifted.is_empty() {
                continue;
            }
            for d in &drifted {
                info!(release = %id, object = %d.object.key, finding = ?d.finding, "drift found; upgrading the release again");
            }
            {
                let (helm, release) = (helm.clone(), release.clone());
                blocking(layer, &id, move || reapply(&helm, &release)).await?;
            }
            report.upgraded.push(id.clone());
            for d in drifted {
                let key = &d.object.key;
                let after = read(client, &mut resources, layer, key).await?.flatten();
                let after_version = after.as_ref().and_then(|l| l.metadata.resource_version.clone());
                let after = after.as_ref().map(live_json);
                match verdict(
                    &d.object.object,
                    &d.finding,
                    d.resource_version.as_deref(),
                    after.as_ref(),
                    after_version.as_deref(),
                ) {
                    Verdict::Corrected(kind) => {
                        match &kind {
                            DriftKind::Recreated => {
                                info!(release = %id, object = %key, "drift corrected: re-created")
                            }
                            DriftKind::FieldReset { field } => {
                                info!(release = %id, object = %key, field, "drift corrected: field set back")
                            }
                        }
                        report.corrections.push(ChartCorrection {
                            release: id.clone(),
                            object: key.clone(),
                            kind,
                        });
                    }
                    Verdict::Settled { field } => {
                        debug!(object = %key, field, "differs only as the apiserver stores it; unchanged");
                        if let Some(version) = &after_version {
                            settled.remember(key, &field, version);
                        }
                    }
                    Verdict::NotRestored { reason } => {
                        warn!(release = %id, object = %key, reason, "drift not corrected by the upgrade; will try again");
                        report.not_restored.push((key.clone(), reason));
                    }
                }
            }
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        if report.upgraded.is_empty() {
            debug!(checked = report.checked, elapsed_ms, "no drift");
        } else {
            info!(
                checked = report.checked,
                corrected = report.corrections.len(),
                elapsed_ms,
                "chart drift corrected"
            );
        }
        Ok(report)
    }
    .instrument(span)
    .await
}

/// The live object (`Some(None)` when absent), or `None` when the cluster does not serve
/// its kind (a CRD someone deleted; helm's upgrade does not bring CRDs back either).
async fn read(
    client: &kube::Client,
    resources: &mut Resources,
    layer: &str,
    key: &ObjectKey,
) -> Result<Option<Option<DynamicObject>>, LayerApplyError> {
    let api = match resources.api(client, layer, key).await {
        Ok(api) => api,
        Err(LayerApplyError::Discovery { source, .. }) if not_served(&source) => {
            warn!(layer, object = %key, "kind not served; not checked");
            return Ok(None);
        }
        Err(other) => return Err(other),
    };
    api.get_opt(&key.name)
        .await
        .map(Some)
        .map_err(|source| write_error(layer, key, "reading", source))
}

fn live_json(object: &DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// helm runs as a process: off the async threads.
async fn blocking<T: Send + 'static>(
    layer: &str,
    release: &str,
    work: impl FnOnce() -> Result<T, ChartReleaseError> + Send + 'static,
) -> Result<T, ChartDriftError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|source| ChartDriftError::Helm {
            layer: layer.to_string(),
            source,
        }),
        Err(e) => Err(ChartDriftError::Task {
            layer: layer.to_string(),
            release: release.to_string(),
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
#[path = "chart_drift_tests.rs"]
mod chart_drift_tests;
