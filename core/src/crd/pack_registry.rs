//! `PackRegistry`: an OCI registry the controller and agents pull packs from. Profile
//! layers name one by `registry`; a layer without one uses the registry marked default.

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
    /// `host[:port]`, without a scheme.
    pub endpoint: String,
    // Optional rather than defaulted: a `default: ""` in the schema is refused by 1.20.
    /// The path under which `spectro-packs/archive/<pack>` lives; the root when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_path: Option<String>,
    /// PEM certificates of the authority that signed the registry's serving certificate,
    /// for registries with a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// A Secret in this namespace with `username` and `password` keys; anonymous when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,
    /// Talk plain HTTP instead of HTTPS. Never a fallback: only when set.
    #[serde(default)]
    pub plain_http: bool,
    /// Layers that name no registry use the default one.
    #[serde(default)]
    pub default: bool,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretReference {
    pub name: String,
}

impl PackRegistrySpec {
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
