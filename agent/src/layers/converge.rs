//! The installed layers looked at again every 30 seconds: each one's drift set back (its
//! manifests by the agent's own apply, its charts' objects by upgrading their releases
//! again) and counted, and its readiness read again.

use strata_shared::cluster::LayerPhase;
use strata_shared::contracts::field_managers::AGENT_FIELD_MANAGER;
use strata_shared::layer::readiness::Readiness;
use strata_shared::layer_apply::ManifestLayer;
use strata_shared::revision::RevisionLayer;

use super::LayerInstaller;

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
                    let count = report.corrections.len();
                    self.health.drift_corrected(&layer.name, count as u64);
                    self.add_corrections(&layer.name, count as i64);
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
                let count = report.corrections.len();
                self.health.drift_corrected(&layer.name, count as u64);
                self.add_corrections(&layer.name, count as i64);
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
