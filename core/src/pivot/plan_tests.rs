//! Tests of the move plan on a realistic namespace: a vSphere cluster with its control
//! plane, a worker pool down to the bootstrap secrets, the soft-owned secrets, a second
//! cluster, labelled objects, identities, and the objects that must stay.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::*;
use crate::pivot::{MoveKind, PlanError, SourceObject};

const NS: &str = "strata-edge";
/// Where the vSphere provider reads its identities' Secrets.
const PROVIDER_NS: &str = "capv-system";
const CORE: &str = "cluster.x-k8s.io/v1beta2";
const CONTROL_PLANE: &str = "controlplane.cluster.x-k8s.io/v1beta2";
const BOOTSTRAP: &str = "bootstrap.cluster.x-k8s.io/v1beta2";
const BOOTSTRAP_V1BETA1: &str = "bootstrap.cluster.x-k8s.io/v1beta1";
const INFRA: &str = "infrastructure.cluster.x-k8s.io/v1beta2";
const AZURE: &str = "infrastructure.cluster.x-k8s.io/v1beta1";

// ---- fixture builders -------------------------------------------------------------

fn uid_of(kind: &str, name: &str) -> String {
    format!("uid-{}-{name}", kind.to_lowercase())
}

/// An object as an apiserver returns it: server-set metadata included.
fn object(api_version: &str, kind: &str, name: &str, body: Value) -> Value {
    let mut object = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": uid_of(kind, name),
            "resourceVersion": "4711",
            "creationTimestamp": "2025-01-01T00:00:00Z",
        },
    });
    if let Value::Object(fields) = body {
        for (key, value) in fields {
            object[key] = value;
        }
    }
    object
}

fn owned_by(mut object: Value, owners: &[&Value]) -> Value {
    let refs: Vec<Value> = owners
        .iter()
        .map(|owner| {
            json!({
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": true,
                "blockOwnerDeletion": true,
            })
        })
        .collect();
    object["metadata"]["ownerReferences"] = Value::Array(refs);
    object
}

fn labelled(mut object: Value, key: &str, value: &str) -> Value {
    object["metadata"]["labels"][key] = json!(value);
    object
}

fn cluster_scoped(mut object: Value) -> Value {
    if let Some(metadata) = object["metadata"].as_object_mut() {
        metadata.remove("namespace");
    }
    object
}

fn secret(name: &str) -> Value {
    object(
        "v1",
        "Secret",
        name,
        json!({"type": "Opaque", "data": {"value": "c2VjcmV0"}}),
    )
}

fn v1beta2_ref(api_version: &str, kind: &str, name: &str) -> Value {
    let group = api_version.split('/').next().unwrap();
    json!({"apiGroup": group, "kind": kind, "name": name})
}

fn capi_kind(api_version: &str, kind: &str, status: bool) -> MoveKind {
    let (group, version) = api_version.split_once('/').unwrap();
    MoveKind {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
        namespaced: true,
        status_subresource: status,
        clusterctl: true,
        move_label: false,
        move_hierarchy_label: false,
    }
}

fn kinds() -> Vec<MoveKind> {
    let cluster_scoped_identity = MoveKind {
        namespaced: false,
        move_hierarchy_label: true,
        ..capi_kind(INFRA, "VSphereClusterIdentity", true)
    };
    let azure_identity = MoveKind {
        move_hierarchy_label: true,
        ..capi_kind(AZURE, "AzureClusterIdentity", false)
    };
    let not_capi = MoveKind {
        clusterctl: false,
        ..capi_kind("example.com/v1", "Widget", false)
    };
    vec![
        capi_kind(CORE, "Cluster", true),
        capi_kind(CORE, "ClusterClass", false),
        capi_kind(CORE, "MachineDeployment", true),
        capi_kind(CORE, "MachineSet", true),
        capi_kind(CORE, "Machine", true),
        capi_kind(CONTROL_PLANE, "KubeadmControlPlane", true),
        capi_kind(BOOTSTRAP, "KubeadmConfig", true),
        capi_kind(BOOTSTRAP, "KubeadmConfigTemplate", false),
        capi_kind(INFRA, "VSphereCluster", true),
        capi_kind(INFRA, "VSphereMachine", true),
        capi_kind(INFRA, "VSphereMachineTemplate", false),
        cluster_scoped_identity,
        azure_identity,
        not_capi,
    ]
}

fn sources(objects: &[Value]) -> Vec<SourceObject> {
    objects
        .iter()
        .map(|object| SourceObject::from_json(object.clone()).unwrap())
        .collect()
}

fn cluster(name: &str) -> Value {
    object(
        CORE,
        "Cluster",
        name,
        json!({
            "spec": {
                "paused": true,
                "controlPlaneRef": v1beta2_ref(CONTROL_PLANE, "KubeadmControlPlane", &format!("{name}-cp")),
                "infrastructureRef": v1beta2_ref(INFRA, "VSphereCluster", name),
            },
            "status": {"phase": "Provisioned", "initialization": {"infrastructureProvisioned": true}},
        }),
    )
}

/// A machine with its infrastructure machine, bootstrap config and bootstrap secret.
fn machine_chain(name: &str, owner: &Value, cluster_name: &str) -> Vec<Value> {
    let machine = labelled(
        owned_by(
            object(
                CORE,
                "Machine",
                name,
                json!({"spec": {
                    "clusterName": cluster_name,
                    "infrastructureRef": v1beta2_ref(INFRA, "VSphereMachine", name),
                    "bootstrap": {
                        "configRef": v1beta2_ref(BOOTSTRAP, "KubeadmConfig", name),
                        "dataSecretName": name,
                    },
                }}),
            ),
            &[owner],
        ),
        "cluster.x-k8s.io/cluster-name",
        cluster_name,
    );
    let infra = owned_by(
        object(
            INFRA,
            "VSphereMachine",
            name,
            json!({"spec": {"numCPUs": 4}}),
        ),
        &[&machine],
    );
    let config = owned_by(
        object(BOOTSTRAP, "KubeadmConfig", name, json!({"spec": {}})),
        &[&machine],
    );
    let bootstrap_secret = owned_by(secret(name), &[&config]);
    vec![machine, infra, config, bootstrap_secret]
}

/// Namespace `strata-edge` with cluster `edge-1` (what moves), cluster `edge-2` (what
/// stays with it) and objects belonging to neither.
fn namespace_objects() -> Vec<Value> {
    let namespace_owner = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NS, "uid": "uid-namespace"},
    });
    let edge1 = cluster("edge-1");
    let vsphere_cluster = owned_by(
        object(
            INFRA,
            "VSphereCluster",
            "edge-1",
            json!({"spec": {
                "server": "vcenter.example.com",
                "identityRef": {"kind": "VSphereClusterIdentity", "name": "strata-edge"},
            }}),
        ),
        &[&edge1],
    );
    let mut identity = owned_by(
        cluster_scoped(object(
            INFRA,
            "VSphereClusterIdentity",
            "strata-edge",
            json!({"spec": {"secretName": "strata-edge-credentials"}}),
        )),
        &[&namespace_owner],
    );
    identity["metadata"]["annotations"] =
        json!({crate::contracts::labels::SECRET_NAMESPACE_ANNOTATION: PROVIDER_NS});
    let mut identity_secret = owned_by(secret("strata-edge-credentials"), &[&namespace_owner]);
    identity_secret["metadata"]["namespace"] = json!(PROVIDER_NS);
    let unused_identity = cluster_scoped(object(
        INFRA,
        "VSphereClusterIdentity",
        "someone-else",
        json!({"spec": {}}),
    ));
    let control_plane = owned_by(
        object(
            CONTROL_PLANE,
            "KubeadmControlPlane",
            "edge-1-cp",
            json!({
                "spec": {
                    "replicas": 1,
                    "version": "v1.33.1",
                    "machineTemplate": {"spec": {
                        "infrastructureRef": v1beta2_ref(INFRA, "VSphereMachineTemplate", "edge-1-cp-3f2a"),
                    }},
                },
                "status": {"replicas": 1, "initialization": {"controlPlaneInitialized": true}},
            }),
        ),
        &[&edge1],
    );
    let cp_template = object(
        INFRA,
        "VSphereMachineTemplate",
        "edge-1-cp-3f2a",
        json!({"spec": {"template": {"spec": {"numCPUs": 4}}}}),
    );
    let md_template = object(
        INFRA,
        "VSphereMachineTemplate",
        "edge-1-md-9c1d",
        json!({"spec": {"template": {"spec": {"numCPUs": 8}}}}),
    );
    let config_template = object(
        BOOTSTRAP,
        "KubeadmConfigTemplate",
        "edge-1-md",
        json!({"spec": {"template": {"spec": {}}}}),
    );
    let deployment = owned_by(
        object(
            CORE,
            "MachineDeployment",
            "edge-1-md",
            json!({"spec": {
                "clusterName": "edge-1",
                "replicas": 1,
                "template": {"spec": {
                    "clusterName": "edge-1",
                    // v1beta1 style on purpose: matched by group, whatever the version.
                    "bootstrap": {"configRef": {
                        "apiVersion": BOOTSTRAP_V1BETA1, "kind": "KubeadmConfigTemplate", "name": "edge-1-md",
                    }},
                    "infrastructureRef": v1beta2_ref(INFRA, "VSphereMachineTemplate", "edge-1-md-9c1d"),
                }},
            }}),
        ),
        &[&edge1],
    );
    let machine_set = owned_by(
        object(
            CORE,
            "MachineSet",
            "edge-1-md-x7k2",
            json!({"spec": {"replicas": 1}}),
        ),
        &[&deployment],
    );
    let kubeconfig = labelled(
        owned_by(secret("edge-1-kubeconfig"), &[&edge1]),
        "cluster.x-k8s.io/cluster-name",
        "edge-1",
    );
    let ca = owned_by(secret("edge-1-ca"), &[&control_plane]);
    let second = cluster("edge-2");
    let second_infra = owned_by(
        object(INFRA, "VSphereCluster", "edge-2", json!({"spec": {}})),
        &[&second],
    );
    let azure_identity = labelled(
        object(
            AZURE,
            "AzureClusterIdentity",
            "azure-identity",
            json!({"spec": {"type": "ServicePrincipal", "clientID": "id"}}),
        ),
        "clusterctl.cluster.x-k8s.io/move-hierarchy",
        "true",
    );
    let azure_secret = owned_by(secret("azure-identity-secret"), &[&azure_identity]);
    let widget = owned_by(
        object(
            "example.com/v1",
            "Widget",
            "edge-1-widget",
            json!({"spec": {}}),
        ),
        &[&edge1],
    );
    let gadget = object("example.com/v1", "Gadget", "gadget", json!({"spec": {}}));
    let cp_machine = machine_chain("edge-1-cp-8fj2q", &control_plane, "edge-1");
    let worker_machine = machine_chain("edge-1-md-x7k2-p9z4", &machine_set, "edge-1");
    // Owned by both clusters' objects: moving it would cut it from edge-2.
    let shared_secret = owned_by(secret("shared-with-edge-2"), &[&control_plane, &second]);
    let mut objects = vec![
        edge1.clone(),
        vsphere_cluster,
        identity,
        identity_secret,
        unused_identity,
        control_plane,
        cp_template,
        md_template,
        config_template,
        deployment,
        machine_set,
        kubeconfig,
        ca,
        // Soft-owned: kubeadm and CAPI do not always set owners on these.
        secret("edge-1-etcd"),
        secret("edge-1-sa"),
        secret("edge-1-proxy"),
        secret("edge-1-apiserver-etcd-client"),
        labelled(
            secret("edge-1-registry-credentials"),
            "cluster.x-k8s.io/cluster-name",
            "edge-1",
        ),
        // Looks like a soft-owned name, but of a purpose CAPI does not have.
        secret("edge-1-notes"),
        object(
            "v1",
            "ConfigMap",
            "unrelated-settings",
            json!({"data": {"a": "b"}}),
        ),
        labelled(
            object(
                "v1",
                "ConfigMap",
                "edge-1-addons",
                json!({"data": {"a": "b"}}),
            ),
            "clusterctl.cluster.x-k8s.io/move",
            "",
        ),
        second,
        second_infra,
        secret("edge-2-kubeconfig"),
        azure_identity,
        azure_secret,
        widget,
        gadget,
        shared_secret,
    ];
    objects.extend(cp_machine);
    objects.extend(worker_machine);
    objects
}

fn edge_plan() -> MovePlan {
    plan("edge-1", NS, &kinds(), &sources(&namespace_objects())).unwrap()
}

fn described(refs: impl IntoIterator<Item = impl std::borrow::Borrow<ObjectRef>>) -> Vec<String> {
    refs.into_iter().map(|r| r.borrow().to_string()).collect()
}

fn group_index(plan: &MovePlan) -> BTreeMap<String, usize> {
    plan.groups
        .iter()
        .enumerate()
        .flat_map(|(index, group)| group.iter().map(move |object| (object.uid.clone(), index)))
        .collect()
}

// ---- discovery --------------------------------------------------------------------

#[test]
fn moves_what_the_cluster_owns_references_and_labels() {
    let plan = edge_plan();
    let moved: BTreeSet<String> = described(plan.objects()).into_iter().collect();
    let expected: BTreeSet<String> = [
        "Cluster strata-edge/edge-1",
        "VSphereCluster strata-edge/edge-1",
        "VSphereClusterIdentity strata-edge",
        "Secret capv-system/strata-edge-credentials",
        "KubeadmControlPlane strata-edge/edge-1-cp",
        "VSphereMachineTemplate strata-edge/edge-1-cp-3f2a",
        "VSphereMachineTemplate strata-edge/edge-1-md-9c1d",
        "KubeadmConfigTemplate strata-edge/edge-1-md",
        "MachineDeployment strata-edge/edge-1-md",
        "MachineSet strata-edge/edge-1-md-x7k2",
        "Machine strata-edge/edge-1-cp-8fj2q",
        "VSphereMachine strata-edge/edge-1-cp-8fj2q",
        "KubeadmConfig strata-edge/edge-1-cp-8fj2q",
        "Secret strata-edge/edge-1-cp-8fj2q",
        "Machine strata-edge/edge-1-md-x7k2-p9z4",
        "VSphereMachine strata-edge/edge-1-md-x7k2-p9z4",
        "KubeadmConfig strata-edge/edge-1-md-x7k2-p9z4",
        "Secret strata-edge/edge-1-md-x7k2-p9z4",
        "Secret strata-edge/edge-1-kubeconfig",
        "Secret strata-edge/edge-1-ca",
        "Secret strata-edge/edge-1-etcd",
        "Secret strata-edge/edge-1-sa",
        "Secret strata-edge/edge-1-proxy",
        "Secret strata-edge/edge-1-apiserver-etcd-client",
        "Secret strata-edge/edge-1-registry-credentials",
        "ConfigMap strata-edge/edge-1-addons",
        "AzureClusterIdentity strata-edge/azure-identity",
        "Secret strata-edge/azure-identity-secret",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(moved, expected);
    assert_eq!(plan.len(), expected.len());
    assert!(!plan.is_empty());
    assert_eq!(plan.cluster.to_string(), "Cluster strata-edge/edge-1");
}

#[test]
fn everything_else_stays_with_its_reason() {
    let plan = edge_plan();
    let stays: BTreeMap<String, String> = plan
        .stays
        .iter()
        .map(|stay| (stay.object.to_string(), stay.reason.clone()))
        .collect();
    let expected: BTreeMap<String, String> = [
        (
            "Cluster strata-edge/edge-2",
            "a different Cluster than edge-1; each cluster moves on its own",
        ),
        (
            "VSphereCluster strata-edge/edge-2",
            "belongs to another cluster: edge-2",
        ),
        (
            "Secret strata-edge/edge-2-kubeconfig",
            "belongs to another cluster: edge-2",
        ),
        (
            "Secret strata-edge/shared-with-edge-2",
            "owned by another cluster: Cluster strata-edge/edge-2",
        ),
        (
            "ConfigMap strata-edge/unrelated-settings",
            "not owned by cluster edge-1, not referenced by its objects and not labelled for move",
        ),
        (
            "Secret strata-edge/edge-1-notes",
            "not owned by cluster edge-1, not referenced by its objects and not labelled for move",
        ),
        (
            "VSphereClusterIdentity someone-else",
            "cluster-scoped and not referenced by an identityRef of cluster edge-1's objects",
        ),
        (
            "Widget strata-edge/edge-1-widget",
            "kind Widget.example.com is not a Cluster API kind (no clusterctl.cluster.x-k8s.io label on its CRD)",
        ),
        (
            "Gadget strata-edge/gadget",
            "kind Gadget.example.com was not discovered (no CRD of it was read)",
        ),
    ]
    .into_iter()
    .map(|(object, reason)| (object.to_string(), reason.to_string()))
    .collect();
    assert_eq!(stays, expected);
}

#[test]
fn every_object_read_either_moves_or_stays_never_both() {
    let objects = sources(&namespace_objects());
    let plan = plan("edge-1", NS, &kinds(), &objects).unwrap();
    let moved: BTreeSet<&str> = plan.objects().map(|o| o.uid.as_str()).collect();
    let stayed: BTreeSet<&str> = plan.stays.iter().map(|s| s.object.uid.as_str()).collect();
    assert!(moved.is_disjoint(&stayed));
    let all: BTreeSet<&str> = objects.iter().map(|o| o.uid.as_str()).collect();
    assert_eq!(&moved | &stayed, all);
}

#[test]
fn a_missing_cluster_is_an_error_naming_it() {
    let err = plan("edge-9", NS, &kinds(), &sources(&namespace_objects())).unwrap_err();
    assert!(matches!(err, PlanError::ClusterNotFound { .. }));
    let message = err.to_string();
    assert!(message.contains("Cluster strata-edge/edge-9"), "{message}");
    // A Cluster of that name in another namespace is not the one.
    let mut elsewhere = cluster("edge-9");
    elsewhere["metadata"]["namespace"] = json!("other");
    let err = plan("edge-9", NS, &kinds(), &sources(&[elsewhere])).unwrap_err();
    assert!(matches!(err, PlanError::ClusterNotFound { .. }));
}

#[test]
fn the_cluster_scoped_identity_and_its_secret_are_global_and_the_namespace_an_external_owner() {
    let plan = edge_plan();
    let global = [
        "Secret capv-system/strata-edge-credentials",
        "VSphereClusterIdentity strata-edge",
    ];
    let mut found = described(&plan.global);
    found.sort();
    assert_eq!(found, global);
    let deleted: BTreeSet<String> = described(plan.deletion_order().concat())
        .into_iter()
        .collect();
    for object in global {
        assert!(!deleted.contains(object), "{object} is deleted");
    }
    assert_eq!(plan.external_owners.len(), 1);
    let external = &plan.external_owners[0];
    assert_eq!(
        (external.owner.kind.as_str(), external.owner.uid.as_str()),
        ("Namespace", "uid-namespace")
    );
    assert_eq!(
        described(&external.dependents),
        [
            "Secret capv-system/strata-edge-credentials",
            "VSphereClusterIdentity strata-edge"
        ]
    );
}

#[test]
fn an_identity_secret_is_followed_only_into_the_namespace_its_identity_names() {
    // Without the annotation the plan does not guess where the provider reads it.
    let mut objects = namespace_objects();
    for object in &mut objects {
        if object["kind"] == "VSphereClusterIdentity" {
            object["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("annotations");
        }
    }
    let unannotated = plan("edge-1", NS, &kinds(), &sources(&objects)).unwrap();
    assert!(
        !unannotated
            .objects()
            .any(|o| o.name == "strata-edge-credentials")
    );
    let unfollowed = unannotated
        .unfollowed_refs
        .iter()
        .find(|u| u.from.name == "strata-edge")
        .unwrap();
    assert_eq!(unfollowed.field, "spec.secretName");
    assert_eq!(
        unfollowed.reason,
        "the identity does not say which namespace the provider reads it from (annotation strata.dev/secret-namespace)"
    );
    let stay = unannotated
        .stays
        .iter()
        .find(|s| s.object.name == "strata-edge-credentials")
        .unwrap();
    assert_eq!(
        stay.reason,
        "it is in namespace capv-system; only namespace strata-edge moves"
    );
    // A Secret of that name in the moved namespace is not the one the identity means.
    let mut objects = namespace_objects();
    let mut lookalike = secret("strata-edge-credentials");
    lookalike["metadata"]["uid"] = json!("uid-lookalike");
    objects.push(lookalike);
    let planned = plan("edge-1", NS, &kinds(), &sources(&objects)).unwrap();
    let copies: Vec<String> = described(
        planned
            .objects()
            .filter(|o| o.name == "strata-edge-credentials"),
    );
    assert_eq!(copies, ["Secret capv-system/strata-edge-credentials"]);
}

#[test]
fn objects_of_the_provider_namespace_are_never_soft_owned_or_labelled_into_the_move() {
    let mut objects = namespace_objects();
    let mut kubeconfig = secret("edge-1-kubeconfig");
    kubeconfig["metadata"]["namespace"] = json!(PROVIDER_NS);
    kubeconfig["metadata"]["uid"] = json!("uid-provider-kubeconfig");
    let mut labelled_there = labelled(
        object("v1", "ConfigMap", "provider-settings", json!({"data": {}})),
        "clusterctl.cluster.x-k8s.io/move",
        "",
    );
    labelled_there["metadata"]["namespace"] = json!(PROVIDER_NS);
    objects.extend([kubeconfig, labelled_there]);
    let plan = plan("edge-1", NS, &kinds(), &sources(&objects)).unwrap();
    for name in ["uid-provider-kubeconfig", "uid-configmap-provider-settings"] {
        assert!(!plan.objects().any(|o| o.uid == name), "{name} moves");
    }
}

#[test]
fn an_identity_in_the_namespace_is_global_with_the_secret_it_references() {
    // As Strata builds Azure clusters: the identity and its Secret beside the cluster, the
    // Secret referenced by the identity, not owned by it.
    let edge1 = cluster("edge-1");
    let azure_cluster = owned_by(
        object(
            AZURE,
            "AzureCluster",
            "edge-1",
            json!({"spec": {"identityRef": {
                "apiVersion": AZURE, "kind": "AzureClusterIdentity", "name": "strata-edge",
            }}}),
        ),
        &[&edge1],
    );
    let identity = labelled(
        object(
            AZURE,
            "AzureClusterIdentity",
            "strata-edge",
            json!({"spec": {"clientSecret": {"name": "strata-edge-credentials", "namespace": NS}}}),
        ),
        "clusterctl.cluster.x-k8s.io/move-hierarchy",
        "true",
    );
    let credentials = secret("strata-edge-credentials");
    let mut kinds = kinds();
    kinds.push(capi_kind(AZURE, "AzureCluster", true));
    let objects = [edge1, azure_cluster, identity, credentials];
    let plan = plan("edge-1", NS, &kinds, &sources(&objects)).unwrap();
    let mut global = described(&plan.global);
    global.sort();
    assert_eq!(
        global,
        [
            "AzureClusterIdentity strata-edge/strata-edge",
            "Secret strata-edge/strata-edge-credentials"
        ]
    );
    assert_eq!(
        described(plan.deletion_order().concat()),
        [
            "AzureCluster strata-edge/edge-1",
            "Cluster strata-edge/edge-1"
        ]
    );
}

#[test]
fn the_move_hierarchy_identity_moves_with_the_secret_it_owns() {
    let plan = edge_plan();
    let groups = group_index(&plan);
    let identity = groups[&uid_of("AzureClusterIdentity", "azure-identity")];
    let secret = groups[&uid_of("Secret", "azure-identity-secret")];
    assert!(identity < secret);
    // Moved, not shared: no other cluster reaches it.
    assert!(
        plan.deletion_order()
            .concat()
            .iter()
            .any(|o| o.name == "azure-identity")
    );
}

#[test]
fn a_kind_labelled_for_move_on_its_crd_moves_all_its_objects() {
    let mut kinds = kinds();
    kinds.push(MoveKind {
        move_label: true,
        ..capi_kind(INFRA, "IPAddressClaimPolicy", false)
    });
    let mut objects = namespace_objects();
    objects.push(object(
        INFRA,
        "IPAddressClaimPolicy",
        "pool",
        json!({"spec": {}}),
    ));
    let plan = plan("edge-1", NS, &kinds, &sources(&objects)).unwrap();
    assert!(plan.objects().any(|o| o.name == "pool"));
}

#[test]
fn a_labelled_object_of_another_cluster_stays_with_it() {
    let mut objects = namespace_objects();
    let second = cluster("edge-2");
    objects.push(labelled(
        owned_by(
            object(
                INFRA,
                "VSphereMachineTemplate",
                "edge-2-tpl",
                json!({"spec": {}}),
            ),
            &[&second],
        ),
        "clusterctl.cluster.x-k8s.io/move",
        "",
    ));
    let plan = plan("edge-1", NS, &kinds(), &sources(&objects)).unwrap();
    let stay = plan
        .stays
        .iter()
        .find(|s| s.object.name == "edge-2-tpl")
        .unwrap();
    assert_eq!(stay.reason, "belongs to another cluster: edge-2");
}

#[test]
fn a_template_both_clusters_reference_is_copied_but_kept_for_the_other() {
    let mut objects = namespace_objects();
    let second = cluster("edge-2");
    objects.push(owned_by(
        object(
            CORE,
            "MachineDeployment",
            "edge-2-md",
            json!({"spec": {"template": {"spec": {
                "infrastructureRef": v1beta2_ref(INFRA, "VSphereMachineTemplate", "edge-1-md-9c1d"),
            }}}}),
        ),
        &[&second],
    ));
    let plan = plan("edge-1", NS, &kinds(), &sources(&objects)).unwrap();
    let template = plan
        .objects()
        .find(|o| o.name == "edge-1-md-9c1d")
        .unwrap()
        .clone();
    assert!(plan.is_global(&template));
    assert!(!plan.deletion_order().concat().contains(&template));
}

#[test]
fn references_that_lead_nowhere_are_reported_not_followed() {
    let mut objects = namespace_objects();
    let edge1 = cluster("edge-1");
    objects.push(owned_by(
        object(
            CORE,
            "MachineDeployment",
            "edge-1-broken",
            json!({"spec": {"template": {"spec": {
                "infrastructureRef": v1beta2_ref(INFRA, "VSphereMachineTemplate", "deleted-long-ago"),
                "bootstrap": {"configRef": {
                    "apiVersion": BOOTSTRAP, "kind": "KubeadmConfigTemplate",
                    "name": "edge-1-md", "namespace": "elsewhere",
                }},
            }}}}),
        ),
        &[&edge1],
    ));
    let plan = plan("edge-1", NS, &kinds(), &sources(&objects)).unwrap();
    let unfollowed: Vec<(String, String, String)> = plan
        .unfollowed_refs
        .iter()
        .filter(|u| u.from.name == "edge-1-broken")
        .map(|u| (u.field.clone(), u.target.clone(), u.reason.clone()))
        .collect();
    assert_eq!(
        unfollowed,
        [
            (
                "spec.template.spec.infrastructureRef".to_string(),
                "VSphereMachineTemplate.infrastructure.cluster.x-k8s.io deleted-long-ago"
                    .to_string(),
                "no such object was read".to_string(),
            ),
            (
                "spec.template.spec.bootstrap.configRef".to_string(),
                "KubeadmConfigTemplate.bootstrap.cluster.x-k8s.io edge-1-md".to_string(),
                "it is in namespace elsewhere; only namespace strata-edge moves".to_string(),
            ),
        ]
    );
    // The healthy cluster's references all resolved.
    assert!(
        plan.unfollowed_refs
            .iter()
            .all(|u| u.from.name == "edge-1-broken")
    );
}

#[test]
fn objects_read_from_another_namespace_stay() {
    let mut stray = secret("edge-1-kubeconfig");
    stray["metadata"]["namespace"] = json!("other");
    stray["metadata"]["uid"] = json!("uid-stray");
    let mut objects = namespace_objects();
    objects.push(stray);
    let plan = plan("edge-1", NS, &kinds(), &sources(&objects)).unwrap();
    let stay = plan
        .stays
        .iter()
        .find(|s| s.object.uid == "uid-stray")
        .unwrap();
    assert_eq!(
        stay.reason,
        "it is in namespace other; only namespace strata-edge moves"
    );
}

#[test]
fn a_cluster_owned_by_an_object_that_stays_cannot_move() {
    let holder = object("v1", "ConfigMap", "holder", json!({"data": {}}));
    let edge1 = owned_by(cluster("edge-1"), &[&holder]);
    let err = plan("edge-1", NS, &kinds(), &sources(&[holder, edge1])).unwrap_err();
    assert_eq!(
        err,
        PlanError::ClusterOwnerStays {
            cluster: "Cluster strata-edge/edge-1".into(),
            owner: "ConfigMap strata-edge/holder".into(),
        }
    );
}

#[test]
fn a_uid_read_twice_is_an_error() {
    let mut objects = namespace_objects();
    let mut copy = secret("edge-1-copy");
    copy["metadata"]["uid"] = json!(uid_of("Secret", "edge-1-ca"));
    objects.push(copy);
    let err = plan("edge-1", NS, &kinds(), &sources(&objects)).unwrap_err();
    assert!(matches!(err, PlanError::DuplicateUid { .. }), "{err}");
    assert!(err.to_string().contains("edge-1-copy"), "{err}");
}

// ---- ordering ---------------------------------------------------------------------

#[test]
fn every_owner_is_created_in_an_earlier_group_than_its_dependents() {
    let objects = sources(&namespace_objects());
    let plan = plan("edge-1", NS, &kinds(), &objects).unwrap();
    let groups = group_index(&plan);
    let mut checked = 0;
    for object in &objects {
        let Some(&dependent) = groups.get(&object.uid) else {
            continue;
        };
        for owner in object.owners() {
            if let Some(&owner_group) = groups.get(&owner.uid) {
                assert!(owner_group < dependent, "{owner} must come before {object}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "only {checked} owner references checked");
}

#[test]
fn groups_follow_the_longest_owner_chain() {
    let plan = edge_plan();
    let groups = group_index(&plan);
    let at = |kind: &str, name: &str| groups[&uid_of(kind, name)];
    assert_eq!(plan.groups.len(), 6);
    assert_eq!(at("Cluster", "edge-1"), 0);
    // Not owned: free to go first.
    assert_eq!(at("VSphereMachineTemplate", "edge-1-md-9c1d"), 0);
    assert_eq!(at("Secret", "edge-1-etcd"), 0);
    assert_eq!(at("KubeadmControlPlane", "edge-1-cp"), 1);
    assert_eq!(at("MachineDeployment", "edge-1-md"), 1);
    assert_eq!(at("MachineSet", "edge-1-md-x7k2"), 2);
    assert_eq!(at("Machine", "edge-1-cp-8fj2q"), 2);
    assert_eq!(at("Machine", "edge-1-md-x7k2-p9z4"), 3);
    assert_eq!(at("KubeadmConfig", "edge-1-md-x7k2-p9z4"), 4);
    assert_eq!(at("Secret", "edge-1-md-x7k2-p9z4"), 5);
}

#[test]
fn groups_are_sorted_by_kind_then_name() {
    let plan = edge_plan();
    for group in &plan.groups {
        let keys: Vec<(&str, &str)> = group
            .iter()
            .map(|o| (o.kind.kind.as_str(), o.name.as_str()))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
    assert_eq!(
        described(&plan.groups[1]),
        [
            "KubeadmControlPlane strata-edge/edge-1-cp",
            "MachineDeployment strata-edge/edge-1-md",
            "Secret strata-edge/azure-identity-secret",
            "Secret strata-edge/edge-1-kubeconfig",
            "VSphereCluster strata-edge/edge-1",
        ]
    );
}

#[test]
fn the_plan_does_not_depend_on_the_order_objects_were_read_in() {
    let mut objects = sources(&namespace_objects());
    let forward = plan("edge-1", NS, &kinds(), &objects).unwrap();
    objects.reverse();
    let mut kinds = kinds();
    kinds.reverse();
    assert_eq!(plan("edge-1", NS, &kinds, &objects).unwrap(), forward);
}

#[test]
fn deletion_goes_dependents_first_and_leaves_global_objects() {
    let plan = edge_plan();
    let deletion = plan.deletion_order();
    let creation = group_index(&plan);
    let mut previous = usize::MAX;
    for group in &deletion {
        let index = creation[&group[0].uid];
        assert!(group.iter().all(|o| creation[&o.uid] == index));
        assert!(index < previous);
        previous = index;
    }
    assert!(
        described(deletion.last().unwrap()).contains(&"Cluster strata-edge/edge-1".to_string())
    );
    assert_eq!(deletion.concat().len(), plan.len() - plan.global.len());
}

#[test]
fn an_ownership_cycle_is_an_error_naming_only_the_objects_on_it() {
    let edge1 = cluster("edge-1");
    let machine_set_name = "edge-1-md-loop";
    let machine_uid = uid_of("Machine", "edge-1-loop");
    let mut machine_set = owned_by(
        object(CORE, "MachineSet", machine_set_name, json!({"spec": {}})),
        &[&edge1],
    );
    let machine = owned_by(
        object(CORE, "Machine", "edge-1-loop", json!({"spec": {}})),
        &[&machine_set],
    );
    machine_set["metadata"]["ownerReferences"]
        .as_array_mut()
        .unwrap()
        .push(json!({"apiVersion": CORE, "kind": "Machine", "name": "edge-1-loop", "uid": machine_uid}));
    // Below the cycle, not on it.
    let infra = owned_by(
        object(INFRA, "VSphereMachine", "edge-1-loop", json!({"spec": {}})),
        &[&machine],
    );
    let err = plan(
        "edge-1",
        NS,
        &kinds(),
        &sources(&[edge1, machine_set, machine, infra]),
    )
    .unwrap_err();
    assert_eq!(
        err,
        PlanError::OwnershipCycle {
            objects: vec![
                "Machine strata-edge/edge-1-loop".into(),
                "MachineSet strata-edge/edge-1-md-loop".into(),
            ],
        }
    );
    assert!(err.to_string().contains("Machine strata-edge/edge-1-loop"));
}

#[test]
fn an_object_owning_itself_is_a_cycle() {
    let edge1 = cluster("edge-1");
    let mut selfish = owned_by(secret("edge-1-ca"), &[&edge1]);
    let itself = json!({
        "apiVersion": "v1", "kind": "Secret", "name": "edge-1-ca",
        "uid": selfish["metadata"]["uid"],
    });
    selfish["metadata"]["ownerReferences"]
        .as_array_mut()
        .unwrap()
        .push(itself);
    let err = plan("edge-1", NS, &kinds(), &sources(&[edge1, selfish])).unwrap_err();
    assert!(
        matches!(err, PlanError::OwnershipCycle { ref objects } if objects == &["Secret strata-edge/edge-1-ca".to_string()])
    );
}

// ---- what the executor and the journal need --------------------------------------

#[test]
fn status_is_restored_only_for_kinds_with_a_status_subresource() {
    let plan = edge_plan();
    let find = |kind: &str| plan.objects().find(|o| o.kind.kind == kind).unwrap();
    assert!(plan.restores_status(find("Cluster")));
    assert!(plan.restores_status(find("KubeadmControlPlane")));
    assert!(plan.restores_status(find("VSphereMachine")));
    assert!(!plan.restores_status(find("VSphereMachineTemplate")));
    assert!(!plan.restores_status(find("Secret")));
    // Its kind has a status subresource, but it is global.
    assert!(!plan.restores_status(find("VSphereClusterIdentity")));
}

#[test]
fn the_plan_survives_a_round_trip_through_json() {
    let plan = edge_plan();
    let text = serde_json::to_string(&plan).unwrap();
    assert_eq!(serde_json::from_str::<MovePlan>(&text).unwrap(), plan);
}

#[test]
fn move_kinds_are_read_from_crds() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": "vsphereclusteridentities.infrastructure.cluster.x-k8s.io",
            "labels": {
                "cluster.x-k8s.io/provider": "infrastructure-vsphere",
                "clusterctl.cluster.x-k8s.io": "",
                "clusterctl.cluster.x-k8s.io/move-hierarchy": "",
            },
        },
        "spec": {
            "group": "infrastructure.cluster.x-k8s.io",
            "names": {"kind": "VSphereClusterIdentity", "plural": "vsphereclusteridentities"},
            "scope": "Cluster",
            "versions": [
                {"name": "v1beta1", "served": true, "storage": false},
                {"name": "v1beta2", "served": true, "storage": true, "subresources": {"status": {}}},
            ],
        },
    });
    let kind = MoveKind::from_crd(&crd).unwrap();
    assert_eq!(
        kind,
        MoveKind {
            group: "infrastructure.cluster.x-k8s.io".into(),
            version: "v1beta2".into(),
            kind: "VSphereClusterIdentity".into(),
            plural: "vsphereclusteridentities".into(),
            namespaced: false,
            status_subresource: true,
            clusterctl: true,
            move_label: false,
            move_hierarchy_label: true,
        }
    );
    let mut plain = crd.clone();
    plain["metadata"]["labels"] = json!({});
    assert!(!MoveKind::from_crd(&plain).unwrap().is_movable());
    let mut no_storage = crd;
    no_storage["spec"]["versions"][1]["storage"] = json!(false);
    assert_eq!(
        MoveKind::from_crd(&no_storage).unwrap_err(),
        PlanError::NoStorageVersion {
            crd: "vsphereclusteridentities.infrastructure.cluster.x-k8s.io".into()
        }
    );
}

#[test]
fn a_source_object_without_a_uid_is_refused() {
    let mut object = secret("edge-1-ca");
    object["metadata"].as_object_mut().unwrap().remove("uid");
    let err = SourceObject::from_json(object).unwrap_err();
    assert_eq!(
        err,
        PlanError::MissingField {
            object: "Secret edge-1-ca".into(),
            field: "metadata.uid",
        }
    );
}

#[test]
fn v1beta1_refs_and_a_cluster_class_with_its_templates_move_too() {
    let mut edge1 = cluster("edge-1");
    edge1["spec"]["topology"] = json!({"classRef": {"name": "edge-class"}});
    let class = object(CORE, "ClusterClass", "edge-class", json!({"spec": {}}));
    let class_template = owned_by(
        object(
            INFRA,
            "VSphereMachineTemplate",
            "edge-class-cp",
            json!({"spec": {}}),
        ),
        &[&class],
    );
    let control_plane = owned_by(
        object(
            "controlplane.cluster.x-k8s.io/v1beta1",
            "KubeadmControlPlane",
            "edge-1-cp",
            json!({"spec": {"machineTemplate": {"infrastructureRef": {
                "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
                "kind": "VSphereMachineTemplate",
                "name": "edge-1-cp-v1",
            }}}}),
        ),
        &[&edge1],
    );
    let template = object(
        INFRA,
        "VSphereMachineTemplate",
        "edge-1-cp-v1",
        json!({"spec": {}}),
    );
    let objects = [edge1, class, class_template, control_plane, template];
    let plan = plan("edge-1", NS, &kinds(), &sources(&objects)).unwrap();
    assert_eq!(plan.len(), 5, "{:?}", plan.stays);
    let groups = group_index(&plan);
    assert!(
        groups[&uid_of("ClusterClass", "edge-class")]
            < groups[&uid_of("VSphereMachineTemplate", "edge-class-cp")]
    );
}

#[test]
fn what_a_labelled_object_owns_moves_with_it() {
    let edge1 = cluster("edge-1");
    let settings = labelled(
        object("v1", "ConfigMap", "site-settings", json!({"data": {}})),
        "clusterctl.cluster.x-k8s.io/move",
        "",
    );
    // Left behind, it would be collected once its owner is deleted from the source.
    let derived = owned_by(secret("site-derived"), &[&settings]);
    let plan = plan(
        "edge-1",
        NS,
        &kinds(),
        &sources(&[edge1, settings, derived]),
    )
    .unwrap();
    assert_eq!(
        described(&plan.groups[1]),
        ["Secret strata-edge/site-derived"]
    );
}

mod layering {
    //! Property: on any forest of owner references, every owner is created in an earlier
    //! group than its dependents, and as early as that allows.

    use proptest::prelude::*;

    use super::*;

    /// Object `i` (1..n) is owned by the objects listed for it, all with smaller indexes;
    /// object 0 is the Cluster.
    fn forest(owners: &[Vec<usize>]) -> Vec<Value> {
        let mut objects = vec![cluster("edge-1")];
        for (index, owner_indexes) in owners.iter().enumerate() {
            let name = format!("edge-1-m{}", index + 1);
            let owner_values: Vec<Value> =
                owner_indexes.iter().map(|&o| objects[o].clone()).collect();
            let refs: Vec<&Value> = owner_values.iter().collect();
            objects.push(owned_by(
                object(CORE, "Machine", &name, json!({"spec": {}})),
                &refs,
            ));
        }
        objects
    }

    fn owners_strategy() -> impl Strategy<Value = Vec<Vec<usize>>> {
        (1usize..40).prop_flat_map(|n| {
            (0..n)
                .map(|i| {
                    prop::collection::btree_set(0..=i, 1..=3)
                        .prop_map(|set| set.into_iter().collect())
                })
                .collect::<Vec<_>>()
        })
    }

    proptest! {
        #[test]
        fn owners_come_first_and_groups_are_tight(owners in owners_strategy()) {
            let objects = sources(&forest(&owners));
            let plan = plan("edge-1", NS, &kinds(), &objects).unwrap();
            prop_assert_eq!(plan.len(), objects.len());
            let groups = group_index(&plan);
            for object in &objects {
                let owner_groups: Vec<usize> =
                    object.owners().iter().map(|owner| groups[&owner.uid]).collect();
                let group = groups[&object.uid];
                for owner_group in &owner_groups {
                    prop_assert!(*owner_group < group);
                }
                let tight = owner_groups.iter().max().map_or(0, |max| max + 1);
                prop_assert_eq!(group, tight, "{} is later than it needs to be", object);
            }
        }
    }
}

#[test]
fn a_dry_run_lists_the_groups_what_stays_and_why() {
    let plan = edge_plan();
    let text = plan.describe();
    assert!(
        text.starts_with(&format!(
            "move of {} ({} objects in {} groups)\n",
            plan.cluster,
            plan.len(),
            plan.groups.len()
        )),
        "{text}"
    );
    let first_group = &text[text.find("group 1:").unwrap()..text.find("group 2:").unwrap()];
    assert!(
        first_group.contains(&format!("  {} (status restored)", plan.cluster)),
        "{text}"
    );
    assert!(
        text.contains("(global: created if absent, kept in the source"),
        "{text}"
    );
    assert!(text.contains("status restored"), "{text}");
    assert!(text.contains("stays:\n"), "{text}");
    for stay in &plan.stays {
        assert!(
            text.contains(&format!("  {}: {}\n", stay.object, stay.reason)),
            "{text}"
        );
    }
    // Every group is listed, each object once.
    assert_eq!(
        text.matches("\ngroup ").count() + usize::from(text.starts_with("group ")),
        plan.groups.len()
    );
    for object in plan.objects() {
        assert_eq!(text.matches(&format!("  {object}")).count(), 1, "{object}");
    }
}
