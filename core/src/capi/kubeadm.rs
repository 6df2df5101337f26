//! The `kubeadmConfigSpec` of the control plane and of worker pools, from the layers'
//! kubeadm settings plus what the cloud needs of every node. The layers' commands and
//! files go to every machine, control plane and workers alike, after the cloud's files.
//!
//! v1beta2 shapes: extra arguments are lists of `{name, value}` (not maps), and
//! cluster-wide settings (version, CIDRs, cluster name) come from the `Cluster`, so
//! `clusterConfiguration` carries only the components' arguments and volumes.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::revision::{DesiredState, KubeadmFile};

/// What one cloud adds to every machine's kubeadm configuration.
#[derive(Debug, Default)]
pub(super) struct CloudKubeadm {
    /// Arguments the API server, controller manager and kubelet all get (the cloud
    /// provider, which must agree across them). The layer's settings override them.
    pub args: Vec<(&'static str, &'static str)>,
    /// `nodeRegistration.name`: the cloud-init expression that yields the name the
    /// cloud's provider knows the machine by; kubeadm's default (the hostname) otherwise.
    pub node_name: Option<&'static str>,
    /// Host paths the API server and controller manager static pods must see (files
    /// their `args` point at).
    pub volumes: Vec<Value>,
    /// Files written on the machine before kubeadm runs.
    pub files: Vec<Value>,
    /// Login users cloud-init creates (`users`), for clouds whose provider takes SSH keys
    /// through the bootstrap data rather than the machine (vSphere).
    pub users: Vec<Value>,
}

pub(super) fn control_plane_spec(desired: &DesiredState, cloud: &CloudKubeadm) -> Value {
    let settings = &desired.kubeadm;
    let mut cluster_configuration = Map::new();
    let components = [
        ("apiServer", &settings.api_server_extra_args, true),
        (
            "controllerManager",
            &settings.controller_manager_extra_args,
            true,
        ),
        ("scheduler", &settings.scheduler_extra_args, false),
    ];
    for (component, extra, gets_cloud) in components {
        let mut spec = Map::new();
        let base: &[(&str, &str)] = if gets_cloud { &cloud.args } else { &[] };
        let args = extra_args(base, extra);
        if !args.is_empty() {
            spec.insert("extraArgs".into(), Value::Array(args));
        }
        if gets_cloud && !cloud.volumes.is_empty() {
            spec.insert("extraVolumes".into(), Value::Array(cloud.volumes.clone()));
        }
        if !spec.is_empty() {
            cluster_configuration.insert(component.into(), Value::Object(spec));
        }
    }

    let mut spec = Map::new();
    if !cluster_configuration.is_empty() {
        spec.insert(
            "clusterConfiguration".into(),
            Value::Object(cluster_configuration),
        );
    }
    if let Some(registration) = node_registration(desired, cloud) {
        spec.insert(
            "initConfiguration".into(),
            json!({ "nodeRegistration": registration }),
        );
        spec.insert(
            "joinConfiguration".into(),
            json!({ "nodeRegistration": registration }),
        );
    }
    finish(spec, desired, cloud)
}

pub(super) fn worker_spec(desired: &DesiredState, cloud: &CloudKubeadm) -> Value {
    let mut spec = Map::new();
    if let Some(registration) = node_registration(desired, cloud) {
        spec.insert(
            "joinConfiguration".into(),
            json!({ "nodeRegistration": registration }),
        );
    }
    finish(spec, desired, cloud)
}

fn finish(mut spec: Map<String, Value>, desired: &DesiredState, cloud: &CloudKubeadm) -> Value {
    let settings = &desired.kubeadm;
    let files: Vec<Value> = cloud
        .files
        .iter()
        .cloned()
        .chain(settings.files.iter().map(file))
        .collect();
    if !files.is_empty() {
        spec.insert("files".into(), Value::Array(files));
    }
    if !cloud.users.is_empty() {
        spec.insert("users".into(), Value::Array(cloud.users.clone()));
    }
    if !settings.pre_kubeadm_commands.is_empty() {
        spec.insert(
            "preKubeadmCommands".into(),
            json!(settings.pre_kubeadm_commands),
        );
    }
    if !settings.post_kubeadm_commands.is_empty() {
        spec.insert(
            "postKubeadmCommands".into(),
            json!(settings.post_kubeadm_commands),
        );
    }
    spec.insert("format".into(), json!("cloud-config"));
    Value::Object(spec)
}

/// A layer's file as Cluster API's `files` entry.
fn file(file: &KubeadmFile) -> Value {
    let mut entry = Map::new();
    entry.insert("path".into(), json!(file.path));
    entry.insert("content".into(), json!(file.content));
    for (key, value) in [
        ("owner", &file.owner),
        ("permissions", &file.permissions),
        ("encoding", &file.encoding),
    ] {
        if let Some(value) = value {
            entry.insert(key.into(), json!(value));
        }
    }
    Value::Object(entry)
}

fn node_registration(desired: &DesiredState, cloud: &CloudKubeadm) -> Option<Value> {
    let mut registration = Map::new();
    if let Some(name) = cloud.node_name {
        registration.insert("name".into(), json!(name));
    }
    let kubelet = extra_args(&cloud.args, &desired.kubeadm.kubelet_extra_args);
    if !kubelet.is_empty() {
        registration.insert("kubeletExtraArgs".into(), Value::Array(kubelet));
    }
    (!registration.is_empty()).then_some(Value::Object(registration))
}

/// The cloud's arguments in their order, then the layer's sorted by name; a layer
/// argument of the same name replaces the cloud's (each name once: kubeadm would pass
/// both and the component would take the last).
fn extra_args(cloud: &[(&str, &str)], settings: &BTreeMap<String, String>) -> Vec<Value> {
    cloud
        .iter()
        .filter(|(name, _)| !settings.contains_key(*name))
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .chain(
            settings
                .iter()
                .map(|(name, value)| json!({ "name": name, "value": value })),
        )
        .collect()
}
