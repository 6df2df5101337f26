//! Workloads an autoscaler scales: their `spec.replicas` is the autoscaler's, not the
//! layer's. A layer that renders replicas for a Deployment a HorizontalPodAutoscaler
//! targets would otherwise set them back on every apply and drift pass.
//!
//! The layer's ownership of the field is handed over as server-side apply documents it: the
//! live count is applied once under a hand-over field manager, then the layer's object is
//! applied without the field. Dropping the field while the agent alone owned it would
//! instead reset the workload to its default of one replica.

use std::collections::BTreeSet;

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tracing::info;

use strata_core::layer::install_order::ObjectKey;

use super::{LayerApplyError, write_error};

/// The field manager that holds `spec.replicas` for the autoscaler.
pub const HANDOVER_FIELD_MANAGER: &str = "strata.dev/autoscaler-handover";

/// The (namespace, kind, name) of every workload an autoscaler targets.
#[derive(Debug, Clone, Default)]
pub struct Autoscaled(BTreeSet<(String, String, String)>);

impl Autoscaled {
    /// Every HorizontalPodAutoscaler's target, in all namespaces.
    pub async fn read(client: &kube::Client, layer: &str) -> Result<Autoscaled, LayerApplyError> {
        let listed = Api::<HorizontalPodAutoscaler>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|source| {
                let key = ObjectKey {
                    group: "autoscaling".into(),
                    version: "v1".into(),
                    kind: "HorizontalPodAutoscaler".into(),
                    namespace: None,
                    name: String::new(),
                };
                write_error(layer, &key, "listing the cluster's", source)
            })?;
        Ok(Autoscaled(
            listed
                .items
                .into_iter()
                .filter_map(|hpa| {
                    let namespace = hpa.metadata.namespace?;
                    let target = hpa.spec?.scale_target_ref;
                    Some((namespace, target.kind, target.name))
                })
                .collect(),
        ))
    }

    pub fn targets(&self, key: &ObjectKey) -> bool {
        let Some(namespace) = &key.namespace else {
            return false;
        };
        self.0
            .contains(&(namespace.clone(), key.kind.clone(), key.name.clone()))
    }

    /// The object as the layer applies it: without `spec.replicas` when autoscaled.
    pub fn strip(&self, key: &ObjectKey, body: &mut Value) {
        if self.targets(key)
            && let Some(Value::Object(spec)) = body.get_mut("spec")
        {
            spec.remove("replicas");
        }
    }

    /// Before the layer applies an autoscaled object: its live replica count applied under
    /// [`HANDOVER_FIELD_MANAGER`], so that the layer letting go of the field keeps it.
    pub async fn hand_over(
        &self,
        api: &Api<DynamicObject>,
        layer: &str,
        key: &ObjectKey,
    ) -> Result<(), LayerApplyError> {
        if !self.targets(key) {
            return Ok(());
        }
        let live = api
            .get_opt(&key.name)
            .await
            .map_err(|source| write_error(layer, key, "reading", source))?;
        let Some(replicas) = live.and_then(|l| l.data.pointer("/spec/replicas").cloned()) else {
            return Ok(());
        };
        let claim = json!({
            "apiVersion": key.api_version(),
            "kind": key.kind,
            "metadata": { "name": key.name, "namespace": key.namespace },
            "spec": { "replicas": replicas },
        });
        api.patch(
            &key.name,
            &PatchParams::apply(HANDOVER_FIELD_MANAGER).force(),
            &Patch::Apply(&claim),
        )
        .await
        .map_err(|source| {
            write_error(
                layer,
                key,
                "handing replicas over to the autoscaler",
                source,
            )
        })?;
        info!(layer, object = %key, %replicas, "an autoscaler scales it: its replicas are left to it");
        Ok(())
    }
}
