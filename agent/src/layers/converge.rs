//! The installed layers looked at again every 30 seconds: each one's drift set back (its
//! manifests by the agent's own apply, its charts' objects by upgrading their releases
//! again) and counted, and its readiness read again.

use strata_shared::cluster::LayerPhase;
use strata_shared::contracts::field_managers::AGENT_FIELD_MANAGER;
use strata_shared::layer::install_order::ObjectKey;
use strata_shared::layer::readiness::Readiness;
use strata_shared::layer_apply::{DriftKind, ManifestLayer};
use strata_shared::revision::RevisionLayer;

use super::LayerInstaller;
use crate::site_log::SiteEventKind;

impl LayerInstaller {
    /// An installed layer looked at again: its objects set back where they drifted, and
    /// its health read. Returns whether its state changed.
    pub(super) async fn check(&mut self, layer: &RevisionLayer) -> bool {
        let Some(applied) = self.applied.get(&layer.name) else {
            return false;
        };
        let (rendered, objects) = (applied.rendered.clone(), applied.objects.clone());
        let mut corrected = self.correct_chart_drift(layer).await;
        if let Some((namespace, text)) = &rendered {
            let manifest = ManifestLayer {
                name: &layer.name,
                namespace,
                rendered: text,
            };
            match strata_shared::layer_apply::correct_drift(
                &self.setup.client,
                &manifest,
                AGENT_FIELD_MANAGER,
            )
            .await
            {
                Ok(report) if !report.corrections.is_empty() => {
                    let objects = report.corrections.iter().map(|c| (&c.object, &c.kind));
                    self.drift_corrected(layer, objects);
                    corrected = true;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(layer = %layer.name, error = %e, "drift pass failed; will try again")
                }
            }
        }
        let state = match strata_shared::layer_apply::layer_readiness(
            &self.setup.client,
            &layer.name,
            &objects,
        )
        .await
        {
            Ok(states) => states
                .into_iter()
                .find(|(_, s)| !s.is_ready())
                .map(|(key, state)| match state {
                    // The reason names the object.
                    Readiness::NotReady { reason } | Readiness::Failed { reason } => reason,
                    Readiness::Ready => key.to_string(),
                }),
            Err(e) => Some(e.to_string()),
        };
        let changed = match state {
            None => self.set_state(layer, LayerPhase::Ready, None),
            Some(why) => self.set_state(
                layer,
                LayerPhase::Installing,
                Some(format!("no longer Ready: {why}")),
            ),
        };
        changed || corrected
    }

    /// A chart layer's releases compared with the cluster, and upgraded again where their
    /// objects drifted; each object set back counted. Returns whether any was.
    async fn correct_chart_drift(&mut self, layer: &RevisionLayer) -> bool {
        let (Some(applied), Some(helm)) = (self.applied.get_mut(&layer.name), &self.setup.helm)
        else {
            return false;
        };
        if applied.charts.is_empty() {
            return false;
        }
        let helm = helm.clone().with_timeout(self.setup.timeout);
        let report = strata_shared::layer_apply::correct_chart_drift(
            &self.setup.client,
            &helm,
            &layer.name,
            &applied.charts,
            &mut applied.settled,
        )
        .await;
        match report {
            Ok(report) if !report.corrections.is_empty() => {
                let objects = report.corrections.iter().map(|c| (&c.object, &c.kind));
                self.drift_corrected(layer, objects);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(layer = %layer.name, error = %e, "chart drift pass failed; will try again");
                false
            }
        }
    }
}

impl LayerInstaller {
    /// Objects of `layer` set back: counted (its health metric and its state) and named
    /// in the site's log.
    fn drift_corrected<'a>(
        &mut self,
        layer: &RevisionLayer,
        objects: impl Iterator<Item = (&'a ObjectKey, &'a DriftKind)>,
    ) {
        let objects: Vec<String> = objects.map(|(o, k)| set_back(o, k)).collect();
        self.health
            .drift_corrected(&layer.name, objects.len() as u64);
        self.add_corrections(&layer.name, objects.len() as i64);
        /// The objects named in one event; the rest are counted.
        const NAMED: usize = 5;
        let mut text = objects
            .iter()
            .take(NAMED)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if objects.len() > NAMED {
            text.push_str(&format!(" and {} more", objects.len() - NAMED));
        }
        self.site_log.record(
            SiteEventKind::DriftCorrected,
            format!("layer {} {}: set back {text}", layer.name, layer.version),
        );
    }
}

/// `ConfigMap hello/config (recreated)`, `Deployment.apps hello/web (spec.replicas reset)`.
fn set_back(object: &ObjectKey, kind: &DriftKind) -> String {
    match kind {
        DriftKind::Recreated => format!("{object} (recreated)"),
        DriftKind::FieldReset { field } => format!("{object} ({field} reset)"),
    }
}
