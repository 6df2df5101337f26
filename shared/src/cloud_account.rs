//! `CloudAccount`: the credentials a cloud's CAPI provider uses for a cluster. The
//! controller turns one into the provider's identity object for each cluster that names
//! it (`VSphereClusterIdentity`, `AWSClusterStaticIdentity`, `AzureClusterIdentity`),
//! copying the secret where the provider reads it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cluster::ClusterCloud;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "strata.dev",
    version = "v1alpha1",
    kind = "CloudAccount",
    plural = "cloudaccounts",
    shortname = "ca",
    namespaced,
    printcolumn = r#"{"name":"Cloud","type":"string","jsonPath":".spec.cloudType"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".spec.secretRef.name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CloudAccountSpec {
    pub cloud_type: ClusterCloud,
    /// A Secret in this namespace. vsphere: `username`, `password`; aws: `AccessKeyID`,
    /// `SecretAccessKey` (and optionally `SessionToken`); azure: `clientSecret`. The sim
    /// cloud needs none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<crate::cluster::LocalObjectReference>,
    /// vCenter's address and TLS thumbprint (required for vsphere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsphere: Option<VsphereAccount>,
    /// The service principal's tenant and client IDs (required for azure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureAccount>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VsphereAccount {
    pub server: String,
    /// SHA-1 thumbprint of vCenter's certificate, `AA:BB:…`.
    pub thumbprint: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureAccount {
    pub tenant_id: String,
    pub client_id: String,
}

/// The keys each cloud's credentials Secret must hold.
pub fn required_secret_keys(cloud: ClusterCloud) -> &'static [&'static str] {
    match cloud {
        ClusterCloud::Vsphere => &["username", "password"],
        ClusterCloud::Aws => &["AccessKeyID", "SecretAccessKey"],
        ClusterCloud::Azure => &["clientSecret"],
        ClusterCloud::Sim => &[],
    }
}
