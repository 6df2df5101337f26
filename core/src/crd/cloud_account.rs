//! `CloudAccount`: the credentials a cloud's CAPI provider uses for a cluster. The
//! controller turns one into the provider's identity object for each cluster that names
//! it (`VSphereClusterIdentity`, `AWSClusterStaticIdentity`, `AzureClusterIdentity`),
//! copying the secret where the provider reads it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crd::workload_cluster::ClusterCloud;

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
    pub secret_ref: Option<crate::crd::workload_cluster::LocalObjectReference>,
    /// vCenter's address and TLS thumbprint (required for vsphere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsphere: Option<VsphereAccount>,
    /// The service principal's tenant and client IDs (required for azure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureAccount>,
    /// Whether the secret may be copied into the workload clusters that use this account.
    /// Once a cluster's Cluster API objects move into it, its own providers need the
    /// credentials there, so the cluster's administrators can read them: vsphere, aws and
    /// azure clusters are refused (Valid=False, `CloudAccountNotCopyable`) unless this is
    /// true. A changed secret is copied again into every pivoted cluster.
    #[serde(default)]
    pub copy_secret_to_workload_clusters: bool,
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

/// Why a cluster of `cloud` may not use `account`: its providers need the secret inside
/// the workload cluster after the pivot, and the account does not allow the copy.
pub fn copy_refusal(cloud: ClusterCloud, account: &CloudAccount) -> Option<String> {
    let needs_copy = !required_secret_keys(cloud).is_empty();
    (needs_copy && !account.spec.copy_secret_to_workload_clusters).then(|| {
        format!(
            "CloudAccount {}: spec.copySecretToWorkloadClusters is not true; the {cloud} providers of a pivoted cluster read the account's secret inside the workload cluster, where its administrators can read it too. Set it to true to allow that, or use an account meant for this cluster",
            account.metadata.name.as_deref().unwrap_or_default()
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn account(cloud: ClusterCloud, copy: bool) -> CloudAccount {
        CloudAccount::new(
            "acct",
            CloudAccountSpec {
                cloud_type: cloud,
                secret_ref: None,
                vsphere: None,
                azure: None,
                copy_secret_to_workload_clusters: copy,
            },
        )
    }

    #[test]
    fn clouds_that_need_the_secret_in_the_site_need_the_account_s_consent() {
        for cloud in [
            ClusterCloud::Vsphere,
            ClusterCloud::Aws,
            ClusterCloud::Azure,
        ] {
            let refusal = copy_refusal(cloud, &account(cloud, false));
            assert!(
                refusal
                    .as_deref()
                    .is_some_and(|m| m.contains("spec.copySecretToWorkloadClusters")),
                "{cloud}: {refusal:?}"
            );
            assert_eq!(copy_refusal(cloud, &account(cloud, true)), None);
        }
        assert_eq!(
            copy_refusal(ClusterCloud::Sim, &account(ClusterCloud::Sim, false)),
            None
        );
    }
}
