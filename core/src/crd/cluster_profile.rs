//! `ClusterProfile`: a published, versioned, ordered stack of layers, each layer one pack.

use std::fmt;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pack::manifest::{PackCloud, PackManifest};

/// A published profile version. Clusters select a profile by name and version. The
/// profile's name is `spec.name`, or the object's name when that is unset; several versions
/// of one profile coexist as objects with the same `spec.name` (`sim-infra-1-0-0`,
/// `sim-infra-1-1-0`), so that publishing a version leaves the clusters on the others
/// valid.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "strata.dev",
    version = "v1alpha1",
    kind = "ClusterProfile",
    plural = "clusterprofiles",
    shortname = "cprof",
    namespaced,
    printcolumn = r#"{"name":"Profile","type":"string","jsonPath":".spec.name"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Cloud","type":"string","jsonPath":".spec.cloudType"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterProfileSpec {
    /// The profile's name, which clusters select it by; the object's name when unset.
    /// Objects of one namespace with the same name and version are refused as ambiguous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `infra`, `add-on` or `full`.
    #[serde(rename = "type")]
    pub profile_type: ProfileType,
    /// The profile's version (semver). A profile is published at a version and clusters
    /// select one.
    pub version: String,
    /// The cloud this profile is for; `all` when its packs work on every cloud.
    pub cloud_type: ProfileCloud,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The layers, in the order they are listed; install order is computed from the layer
    /// types (os, kernel, k8s, cni, csi, then add-ons).
    pub layers: Vec<ProfileLayer>,
    /// How a change of this version reaches the pivoted clusters that use it; unset, the
    /// default policy (automatic, one cluster at a time, pause on a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::profile::fleet_rollout::RolloutPolicy>,
}

/// One layer of a profile: a pack at a version, with value overrides.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileLayer {
    /// The pack's name (its pack.json `name`).
    pub name: String,
    /// The pack's version (its pack.json `version`).
    pub version: String,
    /// The `PackRegistry` the pack comes from; the default registry when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// YAML text overriding the pack's values.yaml (Helm merge rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<String>,
    /// Presets of the pack's presets.yaml to apply (`name` or `Group:name`); each replaces
    /// the pack's own choice in its group. Applied to the pack's values before `values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presets: Option<Vec<String>>,
    /// Install priority among add-on layers: lower installs first; unset counts as 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

impl ClusterProfile {
    /// The name clusters select this profile by: `spec.name`, else the object's name.
    pub fn profile_name(&self) -> &str {
        match self.spec.name.as_deref() {
            Some(name) => name,
            None => self.metadata.name.as_deref().unwrap_or_default(),
        }
    }
}

impl ProfileLayer {
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.version)
    }
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ProfileType {
    #[serde(rename = "infra")]
    Infra,
    #[serde(rename = "add-on")]
    AddOn,
    #[serde(rename = "full")]
    Full,
}

impl fmt::Display for ProfileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProfileType::Infra => "infra",
            ProfileType::AddOn => "add-on",
            ProfileType::Full => "full",
        })
    }
}

/// The clouds Strata provisions, plus `all` for profiles that fit every cloud.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProfileCloud {
    All,
    Vsphere,
    Aws,
    Azure,
    /// Strata's simulated cloud (tests and the local demo).
    Sim,
}

impl ProfileCloud {
    /// Whether a pack may be used on this cloud. The simulated cloud and `all` stand for no
    /// particular cloud, so they take only packs meant for every cloud; a pack declaring
    /// only clouds Strata does not know is meant for none of them.
    pub fn admits(&self, pack: &PackManifest) -> bool {
        let declared = pack.declared_clouds();
        if pack.declares_no_cloud() || declared.contains(&PackCloud::All) {
            return true;
        }
        match self {
            ProfileCloud::All | ProfileCloud::Sim => false,
            ProfileCloud::Vsphere => declared.contains(&PackCloud::Vsphere),
            ProfileCloud::Aws => declared.contains(&PackCloud::Aws),
            ProfileCloud::Azure => declared.contains(&PackCloud::Azure),
        }
    }
}

impl fmt::Display for ProfileCloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProfileCloud::All => "all",
            ProfileCloud::Vsphere => "vsphere",
            ProfileCloud::Aws => "aws",
            ProfileCloud::Azure => "azure",
            ProfileCloud::Sim => "sim",
        })
    }
}
