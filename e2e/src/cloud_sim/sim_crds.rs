//! The simulator's own infrastructure provider, `sim`: SimCluster, SimMachine and
//! SimMachineTemplate.
//!
//! They live in `infrastructure.cluster.x-k8s.io/v1beta2`, the group every infrastructure
//! provider shares, including CAPI's own test providers (CAPD's DockerCluster and the
//! in-memory provider): v1beta2 references carry only `apiGroup` and `kind`, so Strata's
//! object builders stay the same for every cloud, and clusterctl finds the kinds by the
//! `clusterctl.cluster.x-k8s.io` label and the contract label
//! `cluster.x-k8s.io/v1beta2: v1beta2`, as it finds upstream providers'. They implement
//! the v1beta2 contract: `status.initialization.provisioned`, `metav1.Condition`s,
//! `spec.controlPlaneEndpoint`, and on machines `spec.providerID` and `status.addresses`.

use kube::Client;
use serde_json::{Value, json};

use super::SimError;
use crate::capi_crds;

fn conditions_schema() -> Value {
    json!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": { "type": "string" },
                "status": { "type": "string", "enum": ["True", "False", "Unknown"] },
                "reason": { "type": "string" },
                "message": { "type": "string" },
                "observedGeneration": { "type": "integer", "format": "int64" },
                "lastTransitionTime": { "type": "string", "format": "date-time" },
            },
        },
    })
}

fn machine_spec_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "providerID": { "type": "string" },
            "cpus": { "type": "integer", "minimum": 1 },
            "memoryMiB": { "type": "integer", "minimum": 1 },
            "image": { "type": "string" },
            "failureDomain": { "type": "string" },
        },
    })
}

fn crd(kind: &str, plural: &str, spec: Value, status: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{plural}.infrastructure.cluster.x-k8s.io"),
            "labels": {
                "clusterctl.cluster.x-k8s.io": "",
                "cluster.x-k8s.io/provider": "infrastructure-sim",
                "cluster.x-k8s.io/v1beta2": "v1beta2",
            },
        },
        "spec": {
            "group": "infrastructure.cluster.x-k8s.io",
            "names": {
                "kind": kind,
                "listKind": format!("{kind}List"),
                "plural": plural,
                "singular": kind.to_lowercase(),
                "categories": ["cluster-api"],
            },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1beta2",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "apiVersion": { "type": "string" },
                        "kind": { "type": "string" },
                        "metadata": { "type": "object" },
                        "spec": spec,
                        "status": status,
                    },
                }},
            }],
        },
    })
}

/// The three CRDs, as JSON.
pub fn definitions() -> Vec<Value> {
    let initialization = json!({
        "type": "object",
        "properties": { "provisioned": { "type": "boolean" } },
    });
    let cluster = crd(
        "SimCluster",
        "simclusters",
        json!({
            "type": "object",
            "properties": {
                "controlPlaneEndpoint": {
                    "type": "object",
                    "properties": {
                        "host": { "type": "string" },
                        "port": { "type": "integer", "format": "int32" },
                    },
                },
            },
        }),
        json!({
            "type": "object",
            "properties": {
                "initialization": initialization,
                "conditions": conditions_schema(),
            },
        }),
    );
    let machine = crd(
        "SimMachine",
        "simmachines",
        machine_spec_schema(),
        json!({
            "type": "object",
            "properties": {
                "initialization": initialization,
                "addresses": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "address"],
                        "properties": {
                            "type": { "type": "string" },
                            "address": { "type": "string" },
                        },
                    },
                },
                "state": { "type": "string" },
                "conditions": conditions_schema(),
            },
        }),
    );
    let template = crd(
        "SimMachineTemplate",
        "simmachinetemplates",
        json!({
            "type": "object",
            "required": ["template"],
            "properties": {
                "template": {
                    "type": "object",
                    "properties": {
                        "metadata": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                        "spec": machine_spec_schema(),
                    },
                },
            },
        }),
        json!({ "type": "object" }),
    );
    vec![cluster, machine, template]
}

/// Installs the sim CRDs and waits until they are established.
pub async fn install(client: &Client) -> Result<(), SimError> {
    capi_crds::apply_all(client, &definitions()).await?;
    Ok(())
}
