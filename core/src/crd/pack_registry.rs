//! `PackRegistry`: an OCI registry the controller and agents pull packs from. Profile
//! layers name one by `registry`; a layer without one uses the registry marked default.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "strata.dev",
    version = "v1alpha1",
    kind = "PackRegistry",
    plural = "packregistries",
    shortname = "preg",
    namespaced,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".spec.endpoint"}"#,
    printcolumn = r#"{"name":"Base","type":"string","jsonPath":".spec.basePath"}"#,
    printcolumn = r#"{"name":"Default","type":"boolean","jsonPath":".spec.default"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PackRegistrySpec {
    /// Where the registry is and how to talk to it.
    #[serde(flatten)]
    pub connection: RegistryConnection,
    /// Layers that name no registry use the default one.
    #[serde(default)]
    pub default: bool,
    /// Copies of this registry (made with `strata pack mirror`) that the agents of some
    /// clusters pull from instead, for sites that cannot reach this one. The controller
    /// still resolves packs here; a site pulls what the revision pinned, by digest, from
    /// the first mirror whose selector matches its WorkloadCluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub site_mirrors: Vec<PackRegistryMirror>,
}

// Where a registry is and how to talk to it: what a PackRegistry and each of its site
// mirrors say alike. (Not a doc comment: flattened, it would become the description of
// the spec that holds it.)
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryConnection {
    /// `host[:port]`, without a scheme (for a mirror, as the sites reach it).
    pub endpoint: String,
    // Optional rather than defaulted: a `default: ""` in the schema is refused by 1.20.
    /// The path under which `spectro-packs/archive/<pack>` lives; the root when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_path: Option<String>,
    /// PEM certificates of the authority that signed the registry's serving certificate,
    /// for registries with a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// A Secret in this namespace with `username` and `password` keys (read credentials
    /// for a mirror, which its sites are given); anonymous when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,
    /// Talk plain HTTP instead of HTTPS. Never a fallback: only when set.
    #[serde(default)]
    pub plain_http: bool,
}

/// A copy of a pack registry, with the same layout under its own base path (the `--to`
/// base path given to `strata pack mirror`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackRegistryMirror {
    #[serde(flatten)]
    pub connection: RegistryConnection,
    /// The WorkloadClusters whose agents pull from this mirror, by their labels; every
    /// cluster when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<LabelSelector>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretReference {
    pub name: String,
}

impl RegistryConnection {
    /// `endpoint/basePath`, the form the `--registry` flag takes.
    pub fn address(&self) -> String {
        let base = self
            .base_path
            .as_deref()
            .unwrap_or_default()
            .trim_matches('/');
        if base.is_empty() {
            self.endpoint.clone()
        } else {
            format!("{}/{base}", self.endpoint)
        }
    }
}
