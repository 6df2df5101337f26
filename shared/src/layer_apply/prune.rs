//! What left a layer: the members of its ApplySet that the new version no longer renders,
//! found by the set's label in every kind the parent named before and names now, and
//! deleted in reverse install order.

use std::collections::BTreeSet;

use kube::api::{DeleteParams, ListParams};
use tracing::{info, warn};

use strata_core::layer::applyset::{LayerApplySet, ParentState};
use strata_core::layer::install_order::{GroupKind, ObjectKey, sort_for_install};

use super::resources::{Resources, not_served, preferred_version};
use super::{LayerApplyError, write_error};

/// Deletes the members of the set that `keys` no longer holds, found by the set's label in
/// every kind and namespace the parent named before and names now; in reverse install
/// order. Only what `field_manager` applied is deleted: a label is all anyone needs to put
/// an object in the set, and the agent's rights to delete are wider than theirs.
pub(super) async fn prune(
    client: &kube::Client,
    set: &LayerApplySet,
    field_manager: &str,
    layer: &str,
    previous: &ParentState,
    keys: &[ObjectKey],
    resources: &mut Resources,
) -> Result<Vec<ObjectKey>, LayerApplyError> {
    let mut kinds: BTreeSet<GroupKind> = previous.group_kinds.clone();
    kinds.extend(keys.iter().map(ObjectKey::group_kind));
    let keep: BTreeSet<(&str, &str, Option<&str>, &str)> =
        keys.iter().map(ObjectKey::identity).collect();
    let selector = ListParams::default().labels(&set.member_selector());
    let mut found = Vec::new();
    for kind in &kinds {
        // The version does not matter to a list; the cluster's preferred one is asked. A
        // kind no longer served (its CRD went) has no members left to prune.
        let version = match preferred_version(client, layer, kind).await {
            Ok(version) => version,
            Err(LayerApplyError::Discovery { source, .. }) if not_served(&source) => continue,
            Err(other) => return Err(other),
        };
        let probe = ObjectKey {
            group: kind.group.clone(),
            version,
            kind: kind.kind.clone(),
            namespace: None,
            name: String::new(),
        };
        let api = resources.api(client, layer, &probe).await?;
        let listed = api
            .list(&selector)
            .await
            .map_err(|source| write_error(layer, &probe, "listing the layer's", source))?;
        for item in listed.items {
            let key = ObjectKey {
                namespace: item.metadata.namespace.clone(),
                name: item.metadata.name.clone().unwrap_or_default(),
                ..probe.clone()
            };
            if keep.contains(&key.identity()) {
                continue;
            }
            let applied_here = item.metadata.managed_fields.iter().flatten().any(|entry| {
                entry.manager.as_deref() == Some(field_manager)
                    && entry.operation.as_deref() == Some("Apply")
            });
            if applied_here {
                found.push(key);
            } else {
                warn!(object = %key, "carries the layer's ApplySet label but was never applied by the agent; not pruned");
            }
        }
    }
    sort_for_install(&mut found);
    found.reverse();
    for key in &found {
        let api = resources.api(client, layer, key).await?;
        match api.delete(&key.name, &DeleteParams::background()).await {
            Ok(_) => info!(object = %key, "pruned: no longer in the layer"),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => return Err(write_error(layer, key, "pruning", source)),
        }
    }
    Ok(found)
}
