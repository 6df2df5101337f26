//! `ClusterRevision`: one numbered, immutable resolved desired state of a cluster (see
//! [`crate::revision`] for how it is resolved and validated).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crd::cloud_account::{AzureAccount, VsphereAccount};
use crate::crd::workload_cluster::{
    AwsPlacement, AzurePlacement, ClusterCloud, NodePools, ResolvedNetwork, VspherePlacement,
};

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "strata.dev",
    version = "v1alpha1",
    kind = "ClusterRevision",
    plural = "clusterrevisions",
    shortname = "crev",
    namespaced,
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.clusterName"}"#,
    printcolumn = r#"{"name":"Number","type":"integer","jsonPath":".spec.number"}"#,
    printcolumn = r#"{"name":"Kubernetes","type":"string","jsonPath":".spec.desired.kubernetesVersion"}"#,
    printcolumn = r#"{"name":"Hash","type":"string","priority":1,"jsonPath":".spec.contentHash"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRevisionSpec {
    /// The `WorkloadCluster` (and CAPI `Cluster`) this revision is of.
    pub cluster_name: String,
    /// 1, 2, …: the order of publication.
    pub number: i64,
    /// `sha256:` of `desired`, to tell a change of intent from a repeat.
    pub content_hash: String,
    pub desired: DesiredState,
    /// The earlier revision whose content this one republishes (a rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<i64>,
    /// What the revision was built from, so that the next one can tell the cluster's own
    /// change from a change of a profile it shares (which a rollout paces). Absent in
    /// revisions published before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<RevisionSources>,
}

/// The digests of what a revision was built from (see
/// [`crate::profile::fleet_rollout::RevisionSources::of`]).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSources {
    /// `sha256:` of the WorkloadCluster's spec (without `rollbackTo`).
    pub cluster: String,
    /// `sha256:` of each selected profile version's content (without its rollout
    /// policy), by `name:version`.
    pub profiles: BTreeMap<String, String>,
}

/// Everything a cluster should be, decided.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesiredState {
    pub cloud_type: ClusterCloud,
    /// `name:version` of each profile, base first.
    pub profiles: Vec<String>,
    /// `v1.20.2`: the version of the Kubernetes layer's pack.
    pub kubernetes_version: String,
    pub os: OsImage,
    pub kubeadm: KubeadmSettings,
    /// In install order.
    pub layers: Vec<RevisionLayer>,
    /// With every health check and the control plane's remediation resolved.
    pub node_pools: NodePools,
    pub network: ResolvedNetwork,
    /// The control plane rolls a machine whose certificates expire within this many
    /// days. Always set by resolution; absent in revisions published before it existed,
    /// which get the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates_expiry_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsphere: Option<VspherePlacement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsPlacement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzurePlacement>,
    /// The cloud account's non-secret settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountSettings>,
    /// The Cluster API providers (and cert-manager) the cluster runs once its objects move
    /// into it, in install order, each pinned as a pack: those of the management
    /// cluster's clusterctl inventory this cluster's cloud needs. Empty when the
    /// management cluster has no clusterctl inventory: the cluster then stays managed from
    /// there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<RevisionProvider>,
}

/// One provider's components, pinned.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionProvider {
    /// clusterctl's provider type (`CoreProvider`, `BootstrapProvider`,
    /// `ControlPlaneProvider`, `InfrastructureProvider`), or `CertManager`.
    #[serde(rename = "type")]
    pub kind: crate::provider::ProviderKind,
    /// `cluster-api`, `kubeadm`, `vsphere`…
    pub provider_name: String,
    /// As clusterctl's inventory has it (`v1.10.4`).
    pub version: String,
    /// Where its components live, and its inventory object.
    pub namespace: String,
    /// The pack carrying its components, and the pack's version.
    pub pack: String,
    pub pack_version: String,
    /// The `PackRegistry` it comes from; the default registry when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The pack's content digest: `sha256:` of its uncompressed tar stream, whatever
    /// compressed it. Revisions made before content digests hold the digest of the
    /// compressed archive (the registry layer's), which sites still accept.
    pub digest: String,
}

/// The OS layer's pack and the image annotations it carries (`imageId` as the AMI,
/// template or OVA; `imagePublisher`, `imageOffer`, `imageSKU` on Azure…).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OsImage {
    pub pack: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl OsImage {
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

/// kubeadm settings from the layers' `kubeadmconfig` values, merged in install order: a
/// flag set by a later layer replaces an earlier layer's, commands and files of every
/// layer are appended. The Kubernetes layer sets the flags; an OS or add-on layer adds
/// commands and files (an NFS CSI installing `nfs-common` before kubeadm runs).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmSettings {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub api_server_extra_args: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub controller_manager_extra_args: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scheduler_extra_args: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kubelet_extra_args: BTreeMap<String, String>,
    /// `kubeadmconfig.preKubeadmCommands`, run on every machine before kubeadm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_kubeadm_commands: Vec<String>,
    /// `kubeadmconfig.postKubeadmCommands`, run on every machine after kubeadm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_kubeadm_commands: Vec<String>,
    /// `kubeadmconfig.files`, written on every machine before kubeadm runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<KubeadmFile>,
}

/// A file a layer writes on every machine (Cluster API's `files` entry). Layers write it
/// as Cluster API does (`path`, `owner`, `permissions`) or as the vendor's docs do
/// (`targetPath`, `targetOwner`, `targetPermissions`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeadmFile {
    pub path: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    /// `base64`, `gzip` or `gzip+base64`, as Cluster API takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// One layer, pinned.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionLayer {
    /// 1-based install position.
    pub order: u32,
    pub name: String,
    pub version: String,
    /// os, kernel, k8s, cni, csi or addon.
    pub layer: String,
    /// The `PackRegistry` it comes from; the default registry when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The pack's content digest: `sha256:` of its uncompressed tar stream, whatever
    /// compressed it. Revisions made before content digests hold the digest of the
    /// compressed archive (the registry layer's), which sites still accept.
    pub digest: String,
    /// The merged values (pack < presets < profile < cluster), as YAML, with every value
    /// the pack's schema marks secret replaced by `<secret>`.
    pub values: String,
    /// `sha256:` of the layer's secret values, so that a changed secret changes the
    /// revision; absent when the layer has none set. It identifies a change and hides
    /// nothing from a reader who can guess the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_digest: Option<String>,
}

/// What the identity objects need of the cloud account, besides its secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountSettings {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsphere: Option<VsphereAccount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureAccount>,
}
