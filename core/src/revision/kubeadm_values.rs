//! The `kubeadmconfig` section of layer values, as the vendor's packs write it:
//!
//! ```yaml
//! kubeadmconfig:
//!   apiServer: {extraArgs: {audit-log-maxage: "30"}}
//!   controllerManager: {extraArgs: {…}}
//!   scheduler: {extraArgs: {…}}
//!   kubeletExtraArgs: {…}
//!   preKubeadmCommands: ["apt install -y nfs-common"]
//!   postKubeadmCommands: […]
//!   files:
//!     - {targetPath: /etc/x.conf, targetOwner: "root:root", targetPermissions: "0644", content: "…"}
//! ```
//!
//! Every layer may have one; [`merge_layer`] folds them in install order.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::{KubeadmFile, KubeadmSettings};
use crate::finding::Findings;
use crate::pack::yaml_text::describe_kind;
use crate::values_merge::lookup;

/// A scalar value as a command-line argument value; `None` for mappings and lists.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn extra_args(
    values: &Value,
    path: &str,
    subject: &str,
    findings: &mut Findings,
) -> BTreeMap<String, String> {
    let mut args = BTreeMap::new();
    let Some(found) = lookup(values, path) else {
        return args;
    };
    let Value::Mapping(mapping) = found else {
        if !found.is_null() {
            findings.error(
                format!("{subject}: {path}"),
                "is not a mapping; expected flag names with their values",
            );
        }
        return args;
    };
    for (key, value) in mapping {
        let Some(key) = key.as_str() else { continue };
        match scalar(value) {
            Some(v) => {
                args.insert(key.to_string(), v);
            }
            // A flag set to null is a flag removed (Helm's rule for defaults).
            None if value.is_null() => {}
            None => findings.error(
                format!("{subject}: {path}.{key}"),
                "is a list or mapping; expected a single value for the flag",
            ),
        }
    }
    args
}

fn commands(values: &Value, path: &str, subject: &str, findings: &mut Findings) -> Vec<String> {
    match lookup(values, path) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Value::String(command) => Some(command.clone()),
                other => {
                    findings.error(
                        format!("{subject}: {path}[{i}]"),
                        format!(
                            "found {}, expected a shell command (a string)",
                            describe_kind(other)
                        ),
                    );
                    None
                }
            })
            .collect(),
        Some(other) => {
            findings.error(
                format!("{subject}: {path}"),
                format!(
                    "found {}, expected a list of shell commands",
                    describe_kind(other)
                ),
            );
            Vec::new()
        }
    }
}

/// Each field of a file entry: its Cluster API name, the vendor docs' name, whether it is
/// required.
const FILE_FIELDS: &[(&str, Option<&str>, bool)] = &[
    ("path", Some("targetPath"), true),
    ("content", None, true),
    ("owner", Some("targetOwner"), false),
    ("permissions", Some("targetPermissions"), false),
    ("encoding", None, false),
];

fn files(values: &Value, subject: &str, findings: &mut Findings) -> Vec<KubeadmFile> {
    const PATH: &str = "kubeadmconfig.files";
    let items = match lookup(values, PATH) {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Sequence(items)) => items,
        Some(other) => {
            findings.error(
                format!("{subject}: {PATH}"),
                format!("found {}, expected a list of files", describe_kind(other)),
            );
            return Vec::new();
        }
    };
    let known: Vec<&str> = FILE_FIELDS
        .iter()
        .flat_map(|(name, alias, _)| std::iter::once(*name).chain(*alias))
        .collect();
    let mut result = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{subject}: {PATH}[{i}]");
        let Value::Mapping(entry) = item else {
            findings.error(
                &at,
                format!(
                    "found {}, expected a mapping with path and content",
                    describe_kind(item)
                ),
            );
            continue;
        };
        let mut fields: BTreeMap<&str, String> = BTreeMap::new();
        let mut ok = true;
        for (key, value) in entry {
            let name = key.as_str().unwrap_or_default();
            let Some((canonical, _, _)) = FILE_FIELDS
                .iter()
                .find(|(n, alias, _)| *n == name || *alias == Some(name))
            else {
                findings.error(
                    format!("{at}.{name}"),
                    format!(
                        "is not a field of a file; known fields: {}",
                        known.join(", ")
                    ),
                );
                ok = false;
                continue;
            };
            match scalar(value) {
                Some(text) => {
                    fields.insert(canonical, text);
                }
                None => {
                    findings.error(
                        format!("{at}.{name}"),
                        format!("found {}, expected a string", describe_kind(value)),
                    );
                    ok = false;
                }
            }
        }
        for (name, alias, required) in FILE_FIELDS {
            if *required && !fields.contains_key(name) {
                findings.error(
                    &at,
                    format!(
                        "has no {name}{}; a file needs its path and content",
                        alias.map(|a| format!(" (or {a})")).unwrap_or_default()
                    ),
                );
                ok = false;
            }
        }
        if ok {
            result.push(KubeadmFile {
                path: fields.remove("path").unwrap_or_default(),
                content: fields.remove("content").unwrap_or_default(),
                owner: fields.remove("owner"),
                permissions: fields.remove("permissions"),
                encoding: fields.remove("encoding"),
            });
        }
    }
    result
}

/// The settings one layer's values hold. Errors name `subject` and the key.
pub fn layer_settings(values: &Value, subject: &str, findings: &mut Findings) -> KubeadmSettings {
    if let Some(section) = lookup(values, "kubeadmconfig")
        && !matches!(section, Value::Mapping(_) | Value::Null)
    {
        findings.error(
            format!("{subject}: kubeadmconfig"),
            format!("found {}, expected a mapping", describe_kind(section)),
        );
        return KubeadmSettings::default();
    }
    KubeadmSettings {
        api_server_extra_args: extra_args(
            values,
            "kubeadmconfig.apiServer.extraArgs",
            subject,
            findings,
        ),
        controller_manager_extra_args: extra_args(
            values,
            "kubeadmconfig.controllerManager.extraArgs",
            subject,
            findings,
        ),
        scheduler_extra_args: extra_args(
            values,
            "kubeadmconfig.scheduler.extraArgs",
            subject,
            findings,
        ),
        kubelet_extra_args: extra_args(values, "kubeadmconfig.kubeletExtraArgs", subject, findings),
        pre_kubeadm_commands: commands(
            values,
            "kubeadmconfig.preKubeadmCommands",
            subject,
            findings,
        ),
        post_kubeadm_commands: commands(
            values,
            "kubeadmconfig.postKubeadmCommands",
            subject,
            findings,
        ),
        files: files(values, subject, findings),
    }
}

/// Folds a later layer's settings into `into`: its flags replace same-named ones, its
/// commands and files are appended.
pub fn merge_layer(into: &mut KubeadmSettings, later: KubeadmSettings) {
    into.api_server_extra_args
        .extend(later.api_server_extra_args);
    into.controller_manager_extra_args
        .extend(later.controller_manager_extra_args);
    into.scheduler_extra_args.extend(later.scheduler_extra_args);
    into.kubelet_extra_args.extend(later.kubelet_extra_args);
    into.pre_kubeadm_commands.extend(later.pre_kubeadm_commands);
    into.post_kubeadm_commands
        .extend(later.post_kubeadm_commands);
    into.files.extend(later.files);
}
