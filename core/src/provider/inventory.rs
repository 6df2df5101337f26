//! clusterctl's provider inventory as the agent writes it into its own cluster: the
//! `providers.clusterctl.cluster.x-k8s.io` CRD (which `clusterctl init` installs first)
//! and one `Provider` per installed provider, as clusterctl would have written them, so
//! that `clusterctl upgrade plan` and `clusterctl move` run there later find them.

use serde_json::{Value, json};

use super::ProviderKind;
use crate::contracts::labels::CLUSTERCTL_LABEL;

pub const INVENTORY_GROUP: &str = "clusterctl.cluster.x-k8s.io";
pub const INVENTORY_VERSION: &str = "v1alpha3";
pub const INVENTORY_CRD_NAME: &str = "providers.clusterctl.cluster.x-k8s.io";
/// The label clusterctl's own CRD carries, which tells it from the providers' CRDs: a
/// move leaves the inventory alone, as `clusterctl move` does.
pub const CORE_LABEL: &str = "clusterctl.cluster.x-k8s.io/core";
/// The label naming the provider instance an object belongs to.
pub const PROVIDER_LABEL: &str = "cluster.x-k8s.io/provider";

/// The inventory CRD, with the schema of clusterctl's `v1alpha3` `Provider`.
pub fn inventory_crd() -> Value {
    let string = json!({ "type": "string" });
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": INVENTORY_CRD_NAME,
            "labels": { CLUSTERCTL_LABEL: "", CORE_LABEL: "inventory" },
        },
        "spec": {
            "group": INVENTORY_GROUP,
            "names": {
                "kind": "Provider",
                "listKind": "ProviderList",
                "plural": "providers",
                "singular": "provider",
            },
            "scope": "Namespaced",
            "versions": [{
                "name": INVENTORY_VERSION,
                "served": true,
                "storage": true,
                "additionalPrinterColumns": [
                    { "name": "Type", "type": "string", "jsonPath": ".type" },
                    { "name": "Provider", "type": "string", "jsonPath": ".providerName" },
                    { "name": "Version", "type": "string", "jsonPath": ".version" },
                ],
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "apiVersion": string,
                        "kind": string,
                        "metadata": { "type": "object" },
                        "providerName": string,
                        "type": string,
                        "version": string,
                        "watchedNamespace": string,
                    },
                }},
            }],
        },
    })
}

/// The inventory object of one installed provider; `None` for cert-manager, which
/// clusterctl keeps no inventory entry for.
pub fn inventory_object(
    kind: ProviderKind,
    provider_name: &str,
    version: &str,
    namespace: &str,
) -> Option<Value> {
    if kind == ProviderKind::CertManager {
        return None;
    }
    let instance = kind.instance_name(provider_name);
    Some(json!({
        "apiVersion": format!("{INVENTORY_GROUP}/{INVENTORY_VERSION}"),
        "kind": "Provider",
        "metadata": {
            "name": instance,
            "namespace": namespace,
            "labels": { CLUSTERCTL_LABEL: "", PROVIDER_LABEL: instance },
        },
        "providerName": provider_name,
        "type": kind.as_str(),
        "version": version,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn inventory_objects_are_named_and_labelled_as_clusterctl_names_them() {
        let core = inventory_object(
            ProviderKind::CoreProvider,
            "cluster-api",
            "v1.10.4",
            "capi-system",
        )
        .unwrap();
        assert_eq!(core["metadata"]["name"], "cluster-api");
        assert_eq!(core["type"], "CoreProvider");
        let infra = inventory_object(
            ProviderKind::InfrastructureProvider,
            "vsphere",
            "v1.13.0",
            "capv-system",
        )
        .unwrap();
        assert_eq!(infra["metadata"]["name"], "infrastructure-vsphere");
        assert_eq!(infra["metadata"]["namespace"], "capv-system");
        assert_eq!(
            infra["metadata"]["labels"][PROVIDER_LABEL],
            "infrastructure-vsphere"
        );
        assert_eq!(infra["apiVersion"], "clusterctl.cluster.x-k8s.io/v1alpha3");
        assert_eq!(infra["providerName"], "vsphere");
        assert_eq!(infra["version"], "v1.13.0");
        assert!(
            inventory_object(
                ProviderKind::CertManager,
                "cert-manager",
                "v1.16.0",
                "cert-manager"
            )
            .is_none()
        );
    }

    #[test]
    fn the_inventory_crd_serves_every_field_an_inventory_object_has() {
        let crd = inventory_crd();
        let properties = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
        let object =
            inventory_object(ProviderKind::BootstrapProvider, "kubeadm", "v1.10.4", "x").unwrap();
        for key in object.as_object().unwrap().keys() {
            assert!(properties.get(key).is_some(), "{key} would be pruned");
        }
        assert_eq!(crd["metadata"]["name"], INVENTORY_CRD_NAME);
        assert_eq!(crd["spec"]["scope"], "Namespaced");
    }
}
