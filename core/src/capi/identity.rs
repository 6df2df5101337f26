//! The provider identity a cluster's infrastructure objects name, and the Secret with the
//! cloud account's credentials it points at. One identity per cluster namespace, so that a
//! cluster can only use the credentials its own `CloudAccount` gave.
//!
//! Where each lives is the provider's rule: `VSphereClusterIdentity` and
//! `AWSClusterStaticIdentity` are cluster-scoped and read their Secret from the provider's
//! own namespace (recorded on them, since the pivot must know it); `AzureClusterIdentity`
//! and its Secret live in the cluster's namespace (with clusterctl's move-hierarchy label).
//! The pivot copies every identity and its Secret into the workload cluster, and the
//! management cluster keeps them.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::BuildError;
use crate::cloud_account::required_secret_keys;
use crate::cluster::ClusterCloud;
use crate::contracts::capi::{
    AWS_CLUSTER_STATIC_IDENTITY, AZURE_CLUSTER_IDENTITY, VSPHERE_CLUSTER_IDENTITY,
};
use crate::contracts::labels::{
    MANAGED_BY, MANAGED_BY_LABEL, MOVE_HIERARCHY_LABEL, OBJECTS_NAMESPACE_LABEL,
    SECRET_NAMESPACE_ANNOTATION,
};
use crate::revision::AccountSettings;

/// Optional credentials the provider uses when present.
const AWS_SESSION_TOKEN: &str = "SessionToken";

pub struct IdentityInput<'a> {
    /// The cluster's namespace, the only one allowed to use the identity.
    pub namespace: &'a str,
    pub account: &'a AccountSettings,
    pub cloud: ClusterCloud,
    /// The `CloudAccount` Secret's data, decoded.
    pub secret_data: &'a BTreeMap<String, String>,
    /// Where the provider reads identity Secrets (e.g. `capv-system`, `capa-system`).
    pub provider_namespace: &'a str,
}

/// `strata-<namespace>`, the identity of the clusters in `namespace`.
pub fn identity_name(namespace: &str) -> String {
    format!("strata-{namespace}")
}

/// `strata-<namespace>-credentials`, the identity's Secret (in the provider's namespace
/// for vSphere and AWS, in the cluster's for Azure).
pub fn identity_secret_name(namespace: &str) -> String {
    format!("strata-{namespace}-credentials")
}

/// The Secret, then the identity that points at it; nothing for the sim cloud.
pub fn identity_objects(input: &IdentityInput) -> Result<Vec<Value>, BuildError> {
    let name = identity_name(input.namespace);
    let secret_name = identity_secret_name(input.namespace);
    let mut labels = json!({
        MANAGED_BY_LABEL: MANAGED_BY,
        OBJECTS_NAMESPACE_LABEL: input.namespace,
    });
    let objects = match input.cloud {
        ClusterCloud::Vsphere => {
            let identity = json!({
                "apiVersion": VSPHERE_CLUSTER_IDENTITY.api_version,
                "kind": VSPHERE_CLUSTER_IDENTITY.kind,
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": { SECRET_NAMESPACE_ANNOTATION: input.provider_namespace },
                },
                "spec": {
                    "secretName": secret_name,
                    // CAPV v1beta2 admits namespaces by selector only.
                    "allowedNamespaces": {
                        "selector": { "matchLabels": { OBJECTS_NAMESPACE_LABEL: input.namespace } },
                    },
                },
            });
            let secret = secret(input, &secret_name, input.provider_namespace, &labels)?;
            vec![secret, identity]
        }
        ClusterCloud::Aws => {
            let identity = json!({
                "apiVersion": AWS_CLUSTER_STATIC_IDENTITY.api_version,
                "kind": AWS_CLUSTER_STATIC_IDENTITY.kind,
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": { SECRET_NAMESPACE_ANNOTATION: input.provider_namespace },
                },
                "spec": {
                    // A Secret name in CAPA's namespace, not an object reference.
                    "secretRef": secret_name,
                    "allowedNamespaces": { "list": [input.namespace] },
                },
            });
            let secret = secret(input, &secret_name, input.provider_namespace, &labels)?;
            vec![secret, identity]
        }
        ClusterCloud::Azure => {
            let account =
                input
                    .account
                    .azure
                    .as_ref()
                    .ok_or_else(|| BuildError::MissingAccountSettings {
                        account: input.account.name.clone(),
                        cloud: ClusterCloud::Azure,
                        section: "azure",
                        what: "the service principal's tenantId and clientId",
                    })?;
            labels[MOVE_HIERARCHY_LABEL] = json!("true");
            let identity = json!({
                "apiVersion": AZURE_CLUSTER_IDENTITY.api_version,
                "kind": AZURE_CLUSTER_IDENTITY.kind,
                "metadata": { "name": name, "namespace": input.namespace, "labels": labels },
                "spec": {
                    "type": "ServicePrincipal",
                    "clientID": account.client_id,
                    "tenantID": account.tenant_id,
                    "clientSecret": { "name": secret_name, "namespace": input.namespace },
                    "allowedNamespaces": { "list": [input.namespace] },
                },
            });
            let secret = secret(input, &secret_name, input.namespace, &labels)?;
            vec![secret, identity]
        }
        ClusterCloud::Sim => Vec::new(),
    };
    Ok(objects)
}

/// The keys the provider reads, base64-encoded; an absent or blank required key is an
/// error rather than a Secret the provider would fail on later, out of sight.
fn secret(
    input: &IdentityInput,
    name: &str,
    namespace: &str,
    labels: &Value,
) -> Result<Value, BuildError> {
    let required = required_secret_keys(input.cloud);
    let optional: &[&str] = match input.cloud {
        ClusterCloud::Aws => &[AWS_SESSION_TOKEN],
        _ => &[],
    };
    let value = |key: &str| input.secret_data.get(key).filter(|v| !v.trim().is_empty());
    let mut data = Map::new();
    for key in required {
        let found = value(key).ok_or_else(|| BuildError::MissingSecretKey {
            account: input.account.name.clone(),
            cloud: input.cloud,
            key: key.to_string(),
            required: required.join(", "),
        })?;
        data.insert(key.to_string(), json!(STANDARD.encode(found)));
    }
    for key in optional {
        if let Some(found) = value(key) {
            data.insert(key.to_string(), json!(STANDARD.encode(found)));
        }
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "namespace": namespace, "labels": labels },
        "type": "Opaque",
        "data": data,
    }))
}
