#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;

fn entry(kind: &str, name: &str, version: &str, namespace: &str) -> InventoryEntry {
    inventory_entry(&json!({
        "apiVersion": "clusterctl.cluster.x-k8s.io/v1alpha3",
        "kind": "Provider",
        "metadata": { "name": format!("x-{name}"), "namespace": namespace },
        "providerName": name,
        "type": kind,
        "version": version,
    }))
    .unwrap()
}

fn management_inventory() -> Vec<InventoryEntry> {
    vec![
        entry(
            "InfrastructureProvider",
            "vsphere",
            "v1.13.0",
            "capv-system",
        ),
        entry("InfrastructureProvider", "aws", "v2.8.1", "capa-system"),
        entry(
            "ControlPlaneProvider",
            "kubeadm",
            "v1.10.4",
            "capi-kubeadm-control-plane-system",
        ),
        entry(
            "BootstrapProvider",
            "kubeadm",
            "v1.10.4",
            "capi-kubeadm-bootstrap-system",
        ),
        entry("CoreProvider", "cluster-api", "v1.10.4", "capi-system"),
    ]
}

#[test]
fn a_cloud_gets_cert_manager_core_kubeadm_and_its_own_infrastructure_in_install_order() {
    let cert_manager = CertManagerInstall {
        namespace: CERT_MANAGER_NAMESPACE.into(),
        version: "v1.16.1".into(),
    };
    let wanted = select(
        &management_inventory(),
        ClusterCloud::Vsphere,
        Some(&cert_manager),
    )
    .unwrap();
    let packs: Vec<(&str, &str)> = wanted
        .iter()
        .map(|w| (w.pack.as_str(), w.pack_version.as_str()))
        .collect();
    assert_eq!(
        packs,
        vec![
            ("cert-manager", "1.16.1"),
            ("capi-provider-cluster-api", "1.10.4"),
            ("capi-provider-bootstrap-kubeadm", "1.10.4"),
            ("capi-provider-control-plane-kubeadm", "1.10.4"),
            ("capi-provider-infrastructure-vsphere", "1.13.0"),
        ]
    );
    assert_eq!(wanted[4].version, "v1.13.0");
    assert_eq!(wanted[4].namespace, "capv-system");
    let aws = select(&management_inventory(), ClusterCloud::Aws, None).unwrap();
    assert_eq!(aws.len(), 4);
    assert_eq!(aws[3].pack, "capi-provider-infrastructure-aws");
}

#[test]
fn no_inventory_selects_nothing_and_a_missing_provider_is_named() {
    assert_eq!(select(&[], ClusterCloud::Sim, None).unwrap(), vec![]);
    let err = select(&management_inventory(), ClusterCloud::Azure, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the management cluster's clusterctl inventory has no InfrastructureProvider named azure (the cluster's cloud); it lists: InfrastructureProvider vsphere v1.13.0, InfrastructureProvider aws v2.8.1, ControlPlaneProvider kubeadm v1.10.4, BootstrapProvider kubeadm v1.10.4, CoreProvider cluster-api v1.10.4"
    );
    let without_core: Vec<InventoryEntry> = management_inventory()
        .into_iter()
        .filter(|e| e.kind != ProviderKind::CoreProvider)
        .collect();
    let err = select(&without_core, ClusterCloud::Aws, None).unwrap_err();
    assert!(
        matches!(
            err,
            SelectionError::Missing {
                kind: ProviderKind::CoreProvider,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn two_inventory_entries_of_one_provider_are_refused() {
    let mut inventory = management_inventory();
    inventory.push(entry(
        "CoreProvider",
        "cluster-api",
        "v1.9.0",
        "other-system",
    ));
    let err = select(&inventory, ClusterCloud::Aws, None).unwrap_err();
    assert!(
        err.to_string().contains("more than one CoreProvider named cluster-api: capi-system/x-cluster-api, other-system/x-cluster-api"),
        "{err}"
    );
}

#[test]
fn inventory_objects_that_cannot_be_used_say_which_field() {
    let err = inventory_entry(&json!({
        "metadata": { "name": "cluster-api", "namespace": "capi-system" },
        "providerName": "cluster-api",
        "type": "CoreProvider",
    }))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "clusterctl inventory object capi-system/cluster-api: field version is missing; expected the provider's version, such as v1.10.4"
    );
    let err = inventory_entry(&json!({
        "metadata": { "name": "ipam-in-cluster", "namespace": "capi-ipam" },
        "providerName": "in-cluster",
        "type": "IPAMProvider",
        "version": "v1.0.0",
    }))
    .unwrap_err();
    assert!(
        matches!(&err, InventoryEntryError::NotInstalled { provider_type, .. } if provider_type == "IPAMProvider"),
        "{err}"
    );
    let err = inventory_entry(&json!({
        "metadata": { "name": "x", "namespace": "y" },
        "providerName": 7,
        "type": "CoreProvider",
        "version": "v1",
    }))
    .unwrap_err();
    assert!(err.to_string().contains("field providerName is 7"), "{err}");
}

#[test]
fn pack_names_follow_clusterctl_instance_names() {
    assert_eq!(
        ProviderKind::ControlPlaneProvider.pack_name("kubeadm"),
        "capi-provider-control-plane-kubeadm"
    );
    assert_eq!(
        ProviderKind::CoreProvider.instance_name("cluster-api"),
        "cluster-api"
    );
    assert_eq!(pack_version("v1.10.4"), "1.10.4");
    assert_eq!(pack_version("1.10.4"), "1.10.4");
}
