//! The drift pass over an installed layer: what someone deleted is re-created, a field the
//! layer sets that someone changed is set back, each correction reported and logged.
//!
//! It runs often over large layers, so it costs one discovery and one list (the layer's
//! ApplySet members, by label, in all namespaces) per kind when nothing changed; an object
//! is applied only when it is missing or the live one does not hold what the layer renders
//! for it (`strata_core::layer::drift`). Nothing is pruned and the set's parent is not
//! written: that is the apply's work, done when the layer's version changes.

use std::collections::{BTreeSet, HashMap};

use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;
use tracing::{Instrument, debug, info, info_span, warn};

use strata_core::layer::applyset::LayerApplySet;
use strata_core::layer::drift::first_difference;
use strata_core::layer::install_order::{GroupKind, InstallPlan, LayerObject, ObjectKey};

use super::resources::{Resources, not_served};
use super::{
    Autoscaled, LayerApplyError, ManifestLayer, member_body, parse, server_side_apply, to_json,
    write_error,
};

/// What the drift pass did to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriftKind {
    /// It was not in the cluster (or no longer carried the layer's ApplySet label) and was
    /// applied again.
    Recreated,
    /// `field` (the first that differed, e.g. `data.level`) no longer held the layer's
    /// value, and applying the object again changed it.
    FieldReset { field: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftCorrection {
    pub object: ObjectKey,
    pub kind: DriftKind,
}

/// What a drift pass found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftReport {
    /// Objects of the layer compared with the cluster.
    pub checked: usize,
    /// In install order.
    pub corrections: Vec<DriftCorrection>,
}

/// Converges the cluster back to `layer` as applied by `field_manager`: each object is
/// applied again exactly as [`super::apply_manifest_layer`] applies it when it is missing
/// or a field it renders differs. Objects of a kind the cluster does not serve (a CRD
/// someone deleted) are skipped with a warning; the pass re-creates the CRD, and the next
/// one their objects.
pub async fn correct_drift(
    client: &kube::Client,
    layer: &ManifestLayer<'_>,
    field_manager: &str,
) -> Result<DriftReport, LayerApplyError> {
    let span = info_span!("layer.drift", layer = layer.name);
    async {
        let name = layer.name;
        let set = LayerApplySet::for_layer(name).map_err(|source| LayerApplyError::ApplySet {
            layer: name.to_string(),
            source,
        })?;
        let mut resources = Resources::default();
        let autoscaled = Autoscaled::read(client, name).await?;
        // Scoped as the apply scopes them, by the kind's first version in the layer.
        let first = parse(layer, None)?;
        let mut scopes = HashMap::new();
        let mut unserved = BTreeSet::new();
        for object in &first {
            let kind = object.key.group_kind();
            if scopes.contains_key(&kind) || unserved.contains(&kind) {
                continue;
            }
            match resources.get(client, name, &object.key).await {
                Ok((_, namespaced)) => {
                    scopes.insert(kind, namespaced);
                }
                Err(LayerApplyError::Discovery { source, .. }) if not_served(&source) => {
                    unserved.insert(kind);
                }
                Err(other) => return Err(other),
            }
        }
        let lookup = |kind: &GroupKind| scopes.get(kind).copied();
        let plan = InstallPlan::new(parse(layer, Some(&lookup))?);
        let mut report = DriftReport::default();
        let pass = Pass {
            client,
            set: &set,
            layer: name,
            field_manager,
            autoscaled: &autoscaled,
        };
        for objects in by_version_kind(&plan) {
            let Some(probe) = objects.first().map(|object| list_key(&object.key)) else {
                continue;
            };
            let resource = match resources.get(client, name, &probe).await {
                Ok((resource, _)) => resource,
                Err(LayerApplyError::Discovery { source, .. }) if not_served(&source) => {
                    warn!(layer = name, kind = %probe.group_kind(), version = %probe.version, objects = objects.len(), "kind not served; its objects are not checked");
                    continue;
                }
                Err(other) => return Err(other),
            };
            let selector = ListParams::default().labels(&set.member_selector());
            let listed = Api::<DynamicObject>::all_with(client.clone(), &resource)
                .list(&selector)
                .await
                .map_err(|source| write_error(name, &probe, "listing the layer's", source))?;
            let live: HashMap<(Option<String>, String), DynamicObject> = listed
                .items
                .into_iter()
                .map(|item| {
                    let id = (
                        item.metadata.namespace.clone(),
                        item.metadata.name.clone().unwrap_or_default(),
                    );
                    (id, item)
                })
                .collect();
            for object in objects {
                report.checked += 1;
                let id = (object.key.namespace.clone(), object.key.name.clone());
                let found = live.get(&id);
                if let Some(kind) =
                    correct(&pass, object, found, &mut resources)
                        .await?
                {
                    report.corrections.push(DriftCorrection {
                        object: object.key.clone(),
                        kind,
                    });
                }
            }
        }
        if report.corrections.is_empty() {
            debug!(checked = report.checked, "no drift");
        } else {
            info!(
                checked = report.checked,
                corrected = report.corrections.len(),
                "drift corrected"
            );
        }
        Ok(report)
    }
    .instrument(span)
    .await
}

/// What one drift pass applies with.
#[derive(Clone, Copy)]
struct Pass<'a> {
    client: &'a kube::Client,
    set: &'a LayerApplySet,
    layer: &'a str,
    field_manager: &'a str,
    autoscaled: &'a Autoscaled,
}

/// Applies `object` again if `live` (as listed; `None` when not listed) does not hold it;
/// the correction, if the apply was one.
async fn correct(
    pass: &Pass<'_>,
    object: &LayerObject,
    live: Option<&DynamicObject>,
    resources: &mut Resources,
) -> Result<Option<DriftKind>, LayerApplyError> {
    let Pass {
        client,
        set,
        layer,
        field_manager,
        autoscaled,
    } = *pass;
    let key = &object.key;
    let desired = member_body(set, layer, object, autoscaled)?;
    let Some(live) = live else {
        // Deleted, or its ApplySet label removed (then it is not listed either): applying
        // it puts it back in the set either way.
        let api = resources.api(client, layer, key).await?;
        server_side_apply(&api, layer, key, &desired, field_manager, autoscaled).await?;
        info!(layer, object = %key, "drift corrected: re-created");
        return Ok(Some(DriftKind::Recreated));
    };
    // Only the fields the layer renders are compared, so what other managers set is left
    // to them; the replicas of an autoscaled workload are not among them.
    let mut live_json = to_json(live);
    if let Value::Object(fields) = &mut live_json {
        // List items do not always carry their type; the list was made at the key's.
        fields.insert("apiVersion".into(), Value::from(key.api_version()));
        fields.insert("kind".into(), Value::from(key.kind.clone()));
    }
    let Some(field) = first_difference(&desired, &live_json) else {
        return Ok(None);
    };
    let api = resources.api(client, layer, key).await?;
    let applied = server_side_apply(&api, layer, key, &desired, field_manager, autoscaled).await?;
    // A difference that only the apiserver's normalisation makes (a Secret's `stringData`
    // stored as `data`; quantities are compared as amounts already) leaves the object as
    // it was. Its resourceVersion may still move: the manager's
    // timestamp in managedFields is set again when the apply is a second or more after
    // the last one, so only the object without that bookkeeping tells.
    if !changed_beyond_bookkeeping(live, &applied) {
        debug!(object = %key, field, "differs only as the apiserver stores it; unchanged");
        return Ok(None);
    }
    info!(layer, object = %key, field, "drift corrected: field set back");
    Ok(Some(DriftKind::FieldReset { field }))
}

/// Whether `applied` differs from `live` in more than the apiserver's bookkeeping
/// (resourceVersion, managedFields) and the type a list item may lack.
fn changed_beyond_bookkeeping(live: &DynamicObject, applied: &DynamicObject) -> bool {
    let without_bookkeeping = |object: &DynamicObject| {
        let mut object = object.clone();
        object.types = None;
        object.metadata.resource_version = None;
        object.metadata.managed_fields = None;
        to_json(&object)
    };
    without_bookkeeping(live) != without_bookkeeping(applied)
}

/// The plan's objects grouped by group, version and kind (one list each), in install
/// order. Objects of one kind are listed at the version the layer renders them at, so
/// that their fields compare as rendered.
fn by_version_kind(plan: &InstallPlan) -> Vec<Vec<&LayerObject>> {
    let mut groups: Vec<Vec<&LayerObject>> = Vec::new();
    let mut index: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for object in plan.install_order() {
        let id = (
            object.key.group.as_str(),
            object.key.version.as_str(),
            object.key.kind.as_str(),
        );
        let at = *index.entry(id).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        if let Some(group) = groups.get_mut(at) {
            group.push(object);
        }
    }
    groups
}

/// The key a kind's list is made and reported under: no namespace, no name.
fn list_key(key: &ObjectKey) -> ObjectKey {
    ObjectKey {
        namespace: None,
        name: String::new(),
        ..key.clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(version: &str, manager_time: &str, cpu: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "drift", "resourceVersion": version,
                "managedFields": [{
                    "manager": "strata.dev/agent", "operation": "Apply",
                    "apiVersion": "apps/v1", "time": manager_time,
                }],
            },
            "spec": { "template": { "spec": { "containers": [{
                "name": "web", "resources": { "limits": { "cpu": cpu } },
            }]}}},
        }))
        .unwrap()
    }

    #[test]
    fn a_reapply_that_only_moves_the_managers_time_is_no_correction() {
        let live = object("10", "2026-12-04T10:00:00Z", "1");
        // `1000m` applied a second later: stored as `1`, only the bookkeeping moved.
        let same = object("11", "2026-12-04T10:00:01Z", "1");
        assert!(!changed_beyond_bookkeeping(&live, &same));
        // As a list item, without its type.
        let listed = DynamicObject {
            types: None,
            ..live.clone()
        };
        assert!(!changed_beyond_bookkeeping(&listed, &same));
        let set_back = object("12", "2026-12-04T10:00:01Z", "2");
        assert!(changed_beyond_bookkeeping(&live, &set_back));
    }
}
