//! A manifest layer applied to a cluster: its rendered objects applied by server-side apply
//! under one field manager, in `strata_core::layer::install_order`'s order (CRDs first and
//! waited for until Established, Namespaces next), as one ApplySet
//! (`strata_core::layer::applyset`), so that what a new version no longer renders is
//! pruned. `docs/layers.md` gives the rules; this module only talks to the apiserver.
//! Between versions, [`correct_drift`] keeps an applied layer as it was applied.
//!
//! Nothing is lost on an interruption: the parent is written with the previous and the new
//! members' kinds and namespaces before anything is applied, so a rerun finds every member
//! of either version, and pruning happens only after every object of the new version was
//! applied.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use thiserror::Error;
use tracing::{Instrument, debug, info, info_span};

use strata_core::layer::applyset::{ApplySetError, LayerApplySet, ParentState};
use strata_core::layer::install_order::{
    GroupKind, InstallPlan, IsNamespaced, LayerObject, ManifestError, ObjectKey, Phase,
    layer_objects, phase,
};
use strata_core::layer::readiness::{Readiness, readiness};

mod autoscaled;
mod chart_drift;
mod drift;
mod prune;
mod resources;

pub use autoscaled::{Autoscaled, HANDOVER_FIELD_MANAGER};
pub use chart_drift::{
    ChartCorrection, ChartDriftError, ChartDriftReport, Finding, SettledDifferences, Verdict,
    compare, correct_chart_drift, verdict,
};
pub use drift::{DriftCorrection, DriftKind, DriftReport, correct_drift};
use prune::prune;
use resources::Resources;

/// Why a layer could not be applied. Every variant names the layer, and the object where
/// there is one.
#[derive(Debug, Error)]
pub enum LayerApplyError {
    #[error("layer {layer}: the rendered objects cannot be read: {source}")]
    Manifest {
        layer: String,
        #[source]
        source: ManifestError,
    },
    #[error("layer {layer}: {source}")]
    ApplySet {
        layer: String,
        #[source]
        source: ApplySetError,
    },
    #[error("layer {layer}: {object}: the cluster does not serve this kind: {source}")]
    Discovery {
        layer: String,
        object: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("layer {layer}: {object}: {action} failed: {source}")]
    Write {
        layer: String,
        object: String,
        action: &'static str,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "layer {layer}: {object}: the cluster still does not serve this kind after {seconds} s; its CRD comes from neither this layer nor an earlier one, or its operator has not created it"
    )]
    KindNotServed {
        layer: String,
        object: String,
        seconds: u64,
    },
    #[error("layer {layer}: {object} is not Established after {seconds} s: {reason}")]
    NotEstablished {
        layer: String,
        object: String,
        seconds: u64,
        reason: String,
    },
}

/// What applying a layer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Every object of the layer, in the order applied.
    pub applied: Vec<ObjectKey>,
    /// Objects of an earlier version that this one no longer renders, deleted.
    pub pruned: Vec<ObjectKey>,
}

/// One manifest layer to apply: its name (which names its ApplySet), its namespace (for
/// namespaced objects that name none) and its rendered objects (`helm template` output).
#[derive(Debug, Clone)]
pub struct ManifestLayer<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub rendered: &'a str,
}

/// Applies `layer` under `field_manager` and prunes what left it. CRDs of the layer are
/// waited for until Established, and kinds the cluster does not serve yet (a CRD that an
/// operator of this layer creates when it starts) until they are served, each at most
/// `type_wait`.
pub async fn apply_manifest_layer(
    client: &kube::Client,
    layer: &ManifestLayer<'_>,
    field_manager: &str,
    type_wait: Duration,
) -> Result<ApplyReport, LayerApplyError> {
    let span = info_span!("layer.apply", layer = layer.name);
    async {
        let name = layer.name.to_string();
        let set =
            LayerApplySet::for_layer(layer.name).map_err(|source| LayerApplyError::ApplySet {
                layer: name.clone(),
                source,
            })?;
        // Scope by the fixed table first; custom resources are known only once their
        // CRDs (maybe in this very layer) are Established.
        let first = parse(layer, None)?;
        let previous = read_parent(client, &set, &name).await?;
        let autoscaled = Autoscaled::read(client, &name).await?;
        let mut resources = Resources::default();
        let mut applied = Vec::new();
        let crds: Vec<&LayerObject> = first
            .iter()
            .filter(|o| phase(&o.key.group, &o.key.kind) == Phase::CustomResourceDefinitions)
            .collect();
        for crd in &crds {
            apply(
                client,
                &set,
                &name,
                crd,
                field_manager,
                &autoscaled,
                &mut resources,
            )
            .await?;
            applied.push(crd.key.clone());
        }
        for crd in &crds {
            wait_established(client, &name, crd, type_wait, &mut resources).await?;
        }
        // Now every kind of the layer can be discovered, and placed by its real scope.
        let mut scopes = BTreeMap::new();
        for object in &first {
            let gk = object.key.group_kind();
            if scopes.contains_key(&gk) {
                continue;
            }
            let resource = resources
                .served(client, &name, &object.key, type_wait)
                .await?;
            scopes.insert(gk, resource.1);
        }
        let lookup = |gk: &GroupKind| scopes.get(gk).copied();
        let plan = InstallPlan::new(parse(layer, Some(&lookup))?);
        let keys: Vec<ObjectKey> = plan.install_order().map(|o| o.key.clone()).collect();
        write_parent(
            client,
            &set,
            &name,
            field_manager,
            &set.superset_metadata(&previous, &keys),
        )
        .await?;
        for object in plan.install_order() {
            if phase(&object.key.group, &object.key.kind) == Phase::CustomResourceDefinitions {
                continue;
            }
            apply(
                client,
                &set,
                &name,
                object,
                field_manager,
                &autoscaled,
                &mut resources,
            )
            .await?;
            applied.push(object.key.clone());
        }
        let pruned = prune(
            client,
            &set,
            field_manager,
            &name,
            &previous,
            &keys,
            &mut resources,
        )
        .await?;
        write_parent(
            client,
            &set,
            &name,
            field_manager,
            &set.parent_metadata(&keys),
        )
        .await?;
        info!(
            applied = applied.len(),
            pruned = pruned.len(),
            "layer applied"
        );
        Ok(ApplyReport { applied, pruned })
    }
    .instrument(span)
    .await
}

/// The readiness of each of `objects` as the cluster has it now; a missing object is not
/// ready.
pub async fn layer_readiness(
    client: &kube::Client,
    layer: &str,
    objects: &[ObjectKey],
) -> Result<Vec<(ObjectKey, Readiness)>, LayerApplyError> {
    let mut resources = Resources::default();
    let mut states = Vec::with_capacity(objects.len());
    for key in objects {
        let api = resources.api(client, layer, key).await?;
        let state = match api.get_opt(&key.name).await {
            Ok(Some(found)) => readiness(&to_json(&found)),
            Ok(None) => Readiness::NotReady {
                reason: format!("{key} does not exist"),
            },
            Err(source) => {
                return Err(write_error(layer, key, "reading", source));
            }
        };
        states.push((key.clone(), state));
    }
    Ok(states)
}

fn parse(
    layer: &ManifestLayer<'_>,
    scopes: Option<IsNamespaced<'_>>,
) -> Result<Vec<LayerObject>, LayerApplyError> {
    layer_objects(layer.rendered, layer.namespace, scopes).map_err(|source| {
        LayerApplyError::Manifest {
            layer: layer.name.to_string(),
            source,
        }
    })
}

async fn apply(
    client: &kube::Client,
    set: &LayerApplySet,
    layer: &str,
    object: &LayerObject,
    field_manager: &str,
    autoscaled: &Autoscaled,
    resources: &mut Resources,
) -> Result<(), LayerApplyError> {
    let body = member_body(set, layer, object, autoscaled)?;
    let api = resources.api(client, layer, &object.key).await?;
    server_side_apply(&api, layer, &object.key, &body, field_manager, autoscaled).await?;
    debug!(object = %object.key, "applied");
    Ok(())
}

/// What is applied for `object`: the rendered object labelled into the layer's set, without
/// the replicas of a workload an autoscaler scales.
pub(super) fn member_body(
    set: &LayerApplySet,
    layer: &str,
    object: &LayerObject,
    autoscaled: &Autoscaled,
) -> Result<Value, LayerApplyError> {
    let mut body = object.object.clone();
    autoscaled.strip(&object.key, &mut body);
    set.label_member(&mut body)
        .map_err(|source| LayerApplyError::ApplySet {
            layer: layer.to_string(),
            source,
        })?;
    Ok(body)
}

/// Applies `body` as `key` and returns the object as the apiserver has it afterwards.
pub(super) async fn server_side_apply(
    api: &Api<DynamicObject>,
    layer: &str,
    key: &ObjectKey,
    body: &Value,
    field_manager: &str,
    autoscaled: &Autoscaled,
) -> Result<DynamicObject, LayerApplyError> {
    autoscaled.hand_over(api, layer, key).await?;
    // The layer owns what it renders: a field someone else changed is taken back.
    let params = PatchParams::apply(field_manager).force();
    api.patch(&key.name, &params, &Patch::Apply(body))
        .await
        .map_err(|source| write_error(layer, key, "server-side apply", source))
}

async fn wait_established(
    client: &kube::Client,
    layer: &str,
    crd: &LayerObject,
    wait: Duration,
    resources: &mut Resources,
) -> Result<(), LayerApplyError> {
    let api = resources.api(client, layer, &crd.key).await?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let found = api
            .get_opt(&crd.key.name)
            .await
            .map_err(|source| write_error(layer, &crd.key, "reading", source))?;
        let state = found.map_or_else(
            || Readiness::NotReady {
                reason: "it does not exist".into(),
            },
            |found| readiness(&to_json(&found)),
        );
        let reason = match state {
            Readiness::Ready => return Ok(()),
            Readiness::NotReady { reason } | Readiness::Failed { reason } => reason,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(LayerApplyError::NotEstablished {
                layer: layer.to_string(),
                object: crd.key.to_string(),
                seconds: wait.as_secs(),
                reason,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn read_parent(
    client: &kube::Client,
    set: &LayerApplySet,
    layer: &str,
) -> Result<ParentState, LayerApplyError> {
    let parent = set.parent();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &parent.namespace);
    let found = api
        .get_opt(&parent.name)
        .await
        .map_err(|source| LayerApplyError::Write {
            layer: layer.to_string(),
            object: parent.to_string(),
            action: "reading",
            source: Box::new(source),
        })?;
    let Some(found) = found else {
        return Ok(ParentState::default());
    };
    set.parse_parent(
        &found.metadata.labels.unwrap_or_default(),
        &found.metadata.annotations.unwrap_or_default(),
    )
    .map_err(|source| LayerApplyError::ApplySet {
        layer: layer.to_string(),
        source,
    })
}

async fn write_parent(
    client: &kube::Client,
    set: &LayerApplySet,
    layer: &str,
    field_manager: &str,
    metadata: &strata_core::layer::applyset::ParentMetadata,
) -> Result<(), LayerApplyError> {
    let parent = set.parent();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &parent.namespace);
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": parent.name,
            "namespace": parent.namespace,
            "labels": metadata.labels,
            "annotations": metadata.annotations,
        },
    });
    api.patch(
        &parent.name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| LayerApplyError::Write {
        layer: layer.to_string(),
        object: parent.to_string(),
        action: "writing the layer's ApplySet parent",
        source: Box::new(source),
    })?;
    Ok(())
}

pub(super) fn write_error(
    layer: &str,
    key: &ObjectKey,
    action: &'static str,
    source: kube::Error,
) -> LayerApplyError {
    LayerApplyError::Write {
        layer: layer.to_string(),
        object: key.to_string(),
        action,
        source: Box::new(source),
    }
}

fn to_json(object: &DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}
