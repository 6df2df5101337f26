#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use serde_json::json;
use strata_shared::pivot::MoveKind;

/// A CRD as the apiserver returns it, schema, managedFields and status included.
fn served_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": "machines.cluster.x-k8s.io",
            "uid": "u-1",
            "resourceVersion": "42",
            "labels": { "clusterctl.cluster.x-k8s.io": "", "cluster.x-k8s.io/provider": "cluster-api" },
            "annotations": { "controller-gen.kubebuilder.io/version": "v0.18.0" },
            "managedFields": [{ "manager": "strata-e2e", "fieldsV1": { "f:spec": { "f:group": {} } } }],
        },
        "spec": {
            "group": "cluster.x-k8s.io",
            "names": { "kind": "Machine", "plural": "machines", "listKind": "MachineList", "singular": "machine" },
            "scope": "Namespaced",
            "conversion": { "strategy": "None" },
            "versions": [
                {
                    "name": "v1beta1", "served": true, "storage": false,
                    "schema": { "openAPIV3Schema": { "type": "object", "properties": { "spec": { "type": "object" } } } },
                },
                {
                    "name": "v1beta2", "served": true, "storage": true,
                    "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } },
                    "subresources": { "status": {} },
                    "additionalPrinterColumns": [{ "name": "Phase", "type": "string", "jsonPath": ".status.phase" }],
                },
            ],
        },
        "status": {
            "acceptedNames": { "kind": "Machine", "plural": "machines" },
            "storedVersions": ["v1beta2"],
            "conditions": [{ "type": "Established", "status": "True" }],
        },
    })
}

#[test]
fn an_outline_reads_the_kind_as_the_whole_crd_does() {
    let whole: CustomResourceDefinition = serde_json::from_value(served_crd()).unwrap();
    let outline: CrdOutline = serde_json::from_value(served_crd()).unwrap();
    let from_whole = MoveKind::from_crd(&serde_json::to_value(&whole).unwrap()).unwrap();
    let from_outline = MoveKind::from_crd(&outline.to_json()).unwrap();
    assert_eq!(from_outline, from_whole);
    assert_eq!(from_outline.version, "v1beta2");
    assert!(from_outline.status_subresource);
    assert!(from_outline.clusterctl);
}

#[test]
fn an_outline_holds_no_schema_and_no_server_state() {
    let outline: CrdOutline = serde_json::from_value(served_crd()).unwrap();
    let text = outline.to_json().to_string();
    for absent in [
        "openAPIV3Schema",
        "managedFields",
        "resourceVersion",
        "annotations",
        "storedVersions",
        "additionalPrinterColumns",
    ] {
        assert!(!text.contains(absent), "{absent} in {text}");
    }
    assert_eq!(
        outline.metadata.name.as_deref(),
        Some("machines.cluster.x-k8s.io")
    );
    assert_eq!(outline.spec.versions.len(), 2);
}

#[test]
fn a_crd_without_a_storage_version_stays_refused() {
    let mut crd = served_crd();
    crd["spec"]["versions"][1]["storage"] = json!(false);
    let outline: CrdOutline = serde_json::from_value(crd).unwrap();
    assert!(MoveKind::from_crd(&outline.to_json()).is_err());
}

#[test]
fn a_crd_missing_fields_reads_as_the_whole_crd_reads() {
    let without = |pointer: &str, field: &str| {
        let mut crd = served_crd();
        crd.pointer_mut(pointer)
            .and_then(Value::as_object_mut)
            .unwrap()
            .remove(field);
        crd
    };
    for crd in [
        without("/spec", "scope"),
        without("/spec", "names"),
        without("/spec/names", "plural"),
        without("/spec", "versions"),
        without("/spec/versions/1", "storage"),
        without("/spec/versions/1", "name"),
        without("/metadata", "name"),
        without("/metadata", "labels"),
        without("", "spec"),
    ] {
        let whole: CustomResourceDefinition = serde_json::from_value(crd.clone()).unwrap();
        let outline: CrdOutline = serde_json::from_value(crd).unwrap();
        let from_whole = MoveKind::from_crd(&serde_json::to_value(&whole).unwrap());
        let from_outline = MoveKind::from_crd(&outline.to_json());
        assert_eq!(format!("{from_outline:?}"), format!("{from_whole:?}"));
    }
}

#[test]
fn established_is_read_from_the_conditions_alone() {
    let read = |crd: Value| {
        let only: EstablishedOnly = serde_json::from_value(crd).unwrap();
        only.is_established()
    };
    assert!(read(served_crd()));
    let mut pending = served_crd();
    pending["status"]["conditions"] = json!([{ "type": "Established", "status": "False" }]);
    assert!(!read(pending));
    let mut fresh = served_crd();
    fresh.as_object_mut().unwrap().remove("status");
    assert!(!read(fresh));
}
