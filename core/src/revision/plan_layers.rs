//! The layers of two revisions compared by pack name, and the kubeadm settings they give.

use std::collections::BTreeMap;

use super::plan_values::{NOT_SHOWN, scalar_text, value_changes};
use super::{Change, ClusterRevisionSpec, LayerAction, LayerChange, PlanError, ValueChange};
use crate::revision::{KubeadmFile, KubeadmSettings, RevisionLayer};

/// Layers added, upgraded, downgraded or reconfigured in `to`'s install order, then the
/// removed ones in `from`'s.
pub(super) fn layer_changes(
    from: &ClusterRevisionSpec,
    to: &ClusterRevisionSpec,
) -> Result<Vec<LayerChange>, PlanError> {
    let (old, new) = (&from.desired.layers, &to.desired.layers);
    let mut changes = Vec::new();
    for layer in new {
        let Some(before) = old.iter().find(|l| l.name == layer.name) else {
            changes.push(LayerChange {
                name: layer.name.clone(),
                layer: layer.layer.clone(),
                action: LayerAction::Added,
                from_version: None,
                to_version: Some(layer.version.clone()),
                digest: None,
                values: Vec::new(),
                secrets_changed: false,
            });
            continue;
        };
        let values = value_changes(&values_of(from, before)?, &values_of(to, layer)?);
        let secrets_changed = before.secrets_digest != layer.secrets_digest;
        let digest = Change::between(&before.digest, &layer.digest);
        let action = if before.version != layer.version {
            if is_older(&layer.version, &before.version) {
                LayerAction::Downgraded
            } else {
                LayerAction::Upgraded
            }
        } else if digest.is_some() {
            LayerAction::Upgraded
        } else if !values.is_empty() || secrets_changed {
            LayerAction::Reconfigured
        } else {
            continue;
        };
        changes.push(LayerChange {
            name: layer.name.clone(),
            layer: layer.layer.clone(),
            action,
            from_version: Some(before.version.clone()),
            to_version: Some(layer.version.clone()),
            digest,
            values,
            secrets_changed,
        });
    }
    for layer in old.iter().filter(|l| !new.iter().any(|n| n.name == l.name)) {
        changes.push(LayerChange {
            name: layer.name.clone(),
            layer: layer.layer.clone(),
            action: LayerAction::Removed,
            from_version: Some(layer.version.clone()),
            to_version: None,
            digest: None,
            values: Vec::new(),
            secrets_changed: false,
        });
    }
    Ok(changes)
}

fn values_of(
    revision: &ClusterRevisionSpec,
    layer: &RevisionLayer,
) -> Result<serde_yaml::Value, PlanError> {
    serde_yaml::from_str(&layer.values).map_err(|e| PlanError::Values {
        cluster: revision.cluster_name.clone(),
        revision: revision.number,
        layer: layer.name.clone(),
        message: e.to_string(),
    })
}

/// Whether version `a` is older than `b`, when both read as semantic versions (a leading
/// `v` allowed); versions that do not are never called older.
fn is_older(a: &str, b: &str) -> bool {
    let parse = |v: &str| semver::Version::parse(v.trim_start_matches('v')).ok();
    matches!((parse(a), parse(b)), (Some(a), Some(b)) if a < b)
}

/// Extra args by key with their values; commands and files only as changed, since a
/// layer's command or file may carry a secret (a join token, an encryption key).
pub(super) fn kubeadm_changes(from: &KubeadmSettings, to: &KubeadmSettings) -> Vec<ValueChange> {
    let mut changes = Vec::new();
    let args = [
        (
            "apiServerExtraArgs",
            &from.api_server_extra_args,
            &to.api_server_extra_args,
        ),
        (
            "controllerManagerExtraArgs",
            &from.controller_manager_extra_args,
            &to.controller_manager_extra_args,
        ),
        (
            "schedulerExtraArgs",
            &from.scheduler_extra_args,
            &to.scheduler_extra_args,
        ),
        (
            "kubeletExtraArgs",
            &from.kubelet_extra_args,
            &to.kubelet_extra_args,
        ),
    ];
    for (field, old, new) in args {
        let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        for key in keys {
            let show = |v: Option<&String>| v.map(|v| scalar_text(&v.as_str().into()));
            let change = ValueChange {
                path: super::plan_values::join(field, key),
                from: show(old.get(key)),
                to: show(new.get(key)),
            };
            if change.from != change.to {
                changes.push(change);
            }
        }
    }
    let commands = [
        (
            "preKubeadmCommands",
            &from.pre_kubeadm_commands,
            &to.pre_kubeadm_commands,
        ),
        (
            "postKubeadmCommands",
            &from.post_kubeadm_commands,
            &to.post_kubeadm_commands,
        ),
    ];
    for (field, old, new) in commands {
        if old != new {
            let count = |c: &Vec<String>| (!c.is_empty()).then(|| format!("{} commands", c.len()));
            changes.push(ValueChange {
                path: field.to_string(),
                from: count(old),
                to: count(new),
            });
        }
    }
    let by_path = |files: &[KubeadmFile]| -> BTreeMap<String, KubeadmFile> {
        files.iter().map(|f| (f.path.clone(), f.clone())).collect()
    };
    let (old, new) = (by_path(&from.files), by_path(&to.files));
    let paths: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for path in paths {
        let (a, b) = (old.get(path), new.get(path));
        if a != b {
            changes.push(ValueChange {
                path: format!("files[{path:?}]"),
                from: a.map(|_| NOT_SHOWN.to_string()),
                to: b.map(|_| NOT_SHOWN.to_string()),
            });
        }
    }
    changes
}
