#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;
use crate::report::{DocumentFormat, document_text};

const OBJECTS: &str = "strata-wc-strata-demo-demo-0123456789ab";

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn cluster(status: Value) -> WorkloadCluster {
    serde_json::from_value(json!({
        "apiVersion": "strata.dev/v1alpha1",
        "kind": "WorkloadCluster",
        "metadata": {
            "name": "demo", "namespace": "strata-demo",
            "creationTimestamp": "2026-12-04T10:00:00Z",
        },
        "spec": {
            "cloudType": "sim",
            "profiles": [{ "name": "sim-infra", "version": "1.0.0" }],
            "nodePools": {
                "controlPlane": { "count": 3 },
                "workers": [{ "name": "general", "count": 2 }],
            },
        },
        "status": status,
    }))
    .unwrap()
}

fn revision() -> ClusterRevision {
    serde_json::from_value(json!({
        "apiVersion": "strata.dev/v1alpha1", "kind": "ClusterRevision",
        "metadata": { "name": "demo-r1", "namespace": OBJECTS },
        "spec": {
            "clusterName": "demo", "number": 1, "contentHash": "sha256:1",
            "desired": {
                "cloudType": "sim",
                "profiles": ["sim-infra:1.0.0", "sim-addons:1.0.0"],
                "kubernetesVersion": "v1.30.2",
                "os": { "pack": "ubuntu-sim", "version": "22.04" },
                "kubeadm": {},
                "layers": [
                    { "order": 1, "name": "ubuntu-sim", "version": "22.04", "layer": "os",
                      "digest": "sha256:os", "values": "pack: {}\n" },
                    { "order": 2, "name": "kubernetes", "version": "1.30.2", "layer": "k8s",
                      "digest": "sha256:k8s", "values": "pack: {}\n" },
                    { "order": 3, "name": "calico", "version": "3.26.1", "layer": "cni",
                      "digest": "sha256:cni", "values": "pack: {}\n" },
                ],
                "nodePools": {
                    "controlPlane": { "count": 3, "machine": { "cpus": 2, "memoryMib": 4096 } },
                    "workers": [{ "name": "general", "count": 2,
                                  "machine": { "cpus": 2, "memoryMib": 4096 } }],
                },
                "network": { "podCidrs": ["192.168.0.0/16"], "serviceCidrs": ["10.96.0.0/12"],
                             "serviceDomain": "cluster.local" },
            },
        },
    }))
    .unwrap()
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({
        "type": type_, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": "2026-12-04T10:00:00Z",
    })
}

fn capi(kind: &CapiKind, name: &str, labels: Value, data: Value) -> DynamicObject {
    let mut object = json!({
        "apiVersion": kind.api_version, "kind": kind.kind,
        "metadata": { "name": name, "namespace": OBJECTS, "labels": labels },
    });
    if let (Some(object), Some(data)) = (object.as_object_mut(), data.as_object()) {
        object.extend(data.clone());
    }
    serde_json::from_value(object).unwrap()
}

fn control_plane_machine(name: &str) -> DynamicObject {
    capi(
        &MACHINE,
        name,
        json!({
            CAPI_CLUSTER_NAME_LABEL: "demo",
            CAPI_CONTROL_PLANE_LABEL: "",
            CAPI_CONTROL_PLANE_NAME_LABEL: "demo-control-plane",
        }),
        json!({
            "spec": { "providerID": format!("sim://strata-demo/{name}") },
            "status": {
                "phase": "Running", "nodeRef": { "name": name },
                "conditions": [condition("Ready", "True", "Ready", "")],
            },
        }),
    )
}

fn worker_machine(name: &str, ready: bool) -> DynamicObject {
    let status = if ready {
        json!({ "phase": "Running", "conditions": [condition("Ready", "True", "Ready", "")] })
    } else {
        json!({ "phase": "Provisioning", "conditions": [
            condition("Ready", "False", "NotReady", "waiting for the node"),
        ] })
    };
    capi(
        &MACHINE,
        name,
        json!({ CAPI_CLUSTER_NAME_LABEL: "demo", CAPI_DEPLOYMENT_NAME_LABEL: "demo-general" }),
        json!({ "spec": {}, "status": status }),
    )
}

fn control_plane(replicas: i64, ready: i64) -> DynamicObject {
    capi(
        &KUBEADM_CONTROL_PLANE,
        "demo-control-plane",
        json!({ CAPI_CLUSTER_NAME_LABEL: "demo" }),
        json!({
            "spec": { "replicas": replicas, "version": "v1.30.2" },
            "status": {
                "readyReplicas": ready,
                "conditions": [condition("Available", "True", "Available", "")],
            },
        }),
    )
}

fn capi_cluster(available: &str) -> DynamicObject {
    capi(
        &CLUSTER,
        "demo",
        json!({ CAPI_CLUSTER_NAME_LABEL: "demo" }),
        json!({ "status": {
            "phase": "Provisioned",
            "conditions": [condition("Available", available, "NotAvailable", "* WorkersAvailable: 0 of 2")],
        } }),
    )
}

/// The cluster as the controller has it while its first control-plane node is up and the
/// agent is being installed.
fn before_the_pivot() -> Observed {
    Observed {
        cluster: cluster(json!({
            "phase": "InstallingAgent", "revision": 1, "namespace": OBJECTS,
            "controlPlane": { "desired": 3, "ready": 1, "summary": "1/3" },
            "workers": { "desired": 2, "ready": 0, "summary": "0/2" },
            "conditions": [
                condition("Valid", "True", "Valid", ""),
                condition("Ready", "False", "InstallingAgent", "the agent is being installed"),
            ],
        })),
        objects_namespace: Some(OBJECTS.into()),
        move_granted: false,
        revision: Some(revision()),
        capi: CapiSight::Management(CapiObjects {
            cluster: Some(capi_cluster("False")),
            control_planes: vec![control_plane(1, 1)],
            deployments: vec![],
            machines: vec![control_plane_machine("demo-control-plane-x7k2p")],
        }),
    }
}

fn pivoted_status() -> Value {
    json!({
        "phase": "Pivoted", "revision": 1, "appliedRevision": 1, "namespace": OBJECTS,
        "controlPlane": { "desired": 3, "ready": 3, "summary": "3/3" },
        "workers": { "desired": 2, "ready": 1, "summary": "1/2" },
        "layers": [
            { "name": "ubuntu-sim", "version": "22.04", "state": "Ready",
              "lastTransitionTime": "2026-12-04T10:05:00Z" },
            { "name": "kubernetes", "version": "1.30.2", "state": "Ready" },
            { "name": "calico", "version": "3.26.0", "state": "Failed",
              "message": "DaemonSet kube-system/calico-node: 0 of 5 ready" },
        ],
        "agent": { "lastReportTime": "2026-12-04T10:09:30Z" },
        "conditions": [
            condition("Ready", "True", "Pivoted", "the cluster's CAPI objects live in the workload cluster"),
            condition("Pivoted", "True", "Moved", "the objects live in the workload cluster"),
        ],
    })
}

fn export() -> Exported {
    let mut deployment = capi(
        &MACHINE_DEPLOYMENT,
        "demo-general",
        json!({ CAPI_CLUSTER_NAME_LABEL: "demo" }),
        json!({
            "spec": { "replicas": 2 },
            "status": { "readyReplicas": 1, "conditions": [
                condition("Available", "False", "NotAvailable", "1 of 2 available"),
            ] },
        }),
    );
    deployment.metadata.namespace = Some(OBJECTS.into());
    Exported {
        taken_at: "2026-12-04T10:08:00Z".into(),
        objects: CapiObjects {
            cluster: Some(capi_cluster("True")),
            control_planes: vec![control_plane(3, 3)],
            deployments: vec![deployment],
            machines: vec![
                worker_machine("demo-general-b", false),
                control_plane_machine("demo-control-plane-x7k2p"),
                worker_machine("demo-general-a", true),
                control_plane_machine("demo-control-plane-m4n8q"),
                control_plane_machine("demo-control-plane-p2r9t"),
            ],
        },
    }
}

fn after_the_pivot(export: Result<Exported, String>) -> Observed {
    Observed {
        cluster: cluster(pivoted_status()),
        objects_namespace: Some(OBJECTS.into()),
        move_granted: true,
        revision: Some(revision()),
        capi: CapiSight::Workload(export),
    }
}

fn kinds(node: &Node) -> Vec<&str> {
    node.children.iter().map(|c| c.kind.as_str()).collect()
}

fn child<'a>(node: &'a Node, kind: &str) -> &'a Node {
    node.children
        .iter()
        .find(|c| c.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} under {} {}: {node:#?}", node.kind, node.name))
}

fn notes(node: &Node) -> Vec<&str> {
    node.children
        .iter()
        .filter(|c| c.kind == "Note")
        .filter_map(|c| c.message.as_deref())
        .collect()
}

#[test]
fn before_the_pivot_the_tree_has_the_machines_of_the_management_cluster() {
    let root = tree(&before_the_pivot());
    assert_eq!(
        (
            root.kind.as_str(),
            root.name.as_str(),
            root.detail.as_deref()
        ),
        (
            "WorkloadCluster",
            "strata-demo/demo",
            Some("InstallingAgent")
        )
    );
    assert_eq!(root.ready.as_deref(), Some("False"));
    assert_eq!(root.reason.as_deref(), Some("InstallingAgent"));
    assert_eq!(root.since.as_deref(), Some("2026-12-04T10:00:00Z"));
    assert_eq!(
        kinds(&root),
        [
            "ClusterRevision",
            "Layers",
            "Cluster",
            "ControlPlane",
            "Workers",
            "Conditions"
        ]
    );
    let revision = child(&root, "ClusterRevision");
    assert_eq!(revision.name, "demo-r1");
    assert_eq!(revision.detail.as_deref(), Some("revision 1"));
    assert_eq!(
        revision.message.as_deref(),
        Some("profiles sim-infra:1.0.0, sim-addons:1.0.0; Kubernetes v1.30.2")
    );
    // The revision's layers, with no state: the agent reports it, and has not yet.
    let layers = child(&root, "Layers");
    assert_eq!(
        (layers.detail.as_deref(), layers.message.as_deref()),
        (
            Some("revision 1"),
            Some("no state reported yet (the agent reports it)")
        )
    );
    let shown: Vec<(&str, Option<&str>, Option<&str>)> = layers
        .children
        .iter()
        .map(|l| (l.name.as_str(), l.detail.as_deref(), l.ready.as_deref()))
        .collect();
    assert_eq!(
        shown,
        [
            ("ubuntu-sim", Some("os 22.04"), None),
            ("kubernetes", Some("k8s 1.30.2"), None),
            ("calico", Some("cni 3.26.1"), None),
        ]
    );
    let capi_cluster = child(&root, "Cluster");
    assert_eq!(capi_cluster.source, Source::Management);
    assert_eq!(capi_cluster.ready.as_deref(), Some("False"));
    assert_eq!(capi_cluster.detail.as_deref(), Some("Provisioned"));
    assert_eq!(
        notes(capi_cluster),
        [format!("in the management cluster, namespace {OBJECTS}")]
    );
    let control_plane = child(&root, "ControlPlane");
    assert_eq!(control_plane.detail.as_deref(), Some("1/3 ready"));
    assert_eq!(control_plane.source, Source::Management);
    let kcp = child(control_plane, "KubeadmControlPlane");
    assert_eq!(kcp.name, "demo-control-plane");
    assert_eq!(kcp.detail.as_deref(), Some("1/1 ready, v1.30.2"));
    assert_eq!(kcp.ready.as_deref(), Some("True"));
    let machine = child(kcp, "Machine");
    assert_eq!(machine.name, "demo-control-plane-x7k2p");
    assert_eq!(machine.detail.as_deref(), Some("Running"));
    assert_eq!(
        machine.provider_id.as_deref(),
        Some("sim://strata-demo/demo-control-plane-x7k2p")
    );
    assert_eq!(
        (machine.ready.as_deref(), machine.source),
        (Some("True"), Source::Management)
    );
    let workers = child(&root, "Workers");
    assert_eq!(workers.detail.as_deref(), Some("0/2 ready"));
    assert_eq!(
        notes(workers),
        [
            "no MachineDeployment in the management cluster: the agent creates the worker pools after the pivot"
        ]
    );
    let conditions: Vec<(&str, Option<&str>)> = child(&root, "Conditions")
        .children
        .iter()
        .map(|c| (c.name.as_str(), c.ready.as_deref()))
        .collect();
    assert_eq!(
        conditions,
        [("Valid", Some("True")), ("Ready", Some("False"))]
    );
}

#[test]
fn a_granted_move_still_in_the_management_cluster_says_the_objects_are_leaving() {
    let mut observed = before_the_pivot();
    observed.move_granted = true;
    let root = tree(&observed);
    let notes = notes(child(&root, "Cluster"));
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert_eq!(
        notes[1],
        "the agent's move is granted: the agent holds these objects while they move between the clusters"
    );
    // Once the move is granted the agent writes the counts.
    assert_eq!(
        child(&root, "ControlPlane").detail.as_deref(),
        Some("1/3 ready, as the site reports")
    );
}

#[test]
fn after_the_pivot_the_counts_and_layers_are_the_sites_and_the_machines_the_exports() {
    let root = tree(&after_the_pivot(Ok(export())));
    assert_eq!(root.detail.as_deref(), Some("Pivoted"));
    assert_eq!(root.ready.as_deref(), Some("True"));
    assert_eq!(
        child(&root, "ClusterRevision").message.as_deref(),
        Some(
            "profiles sim-infra:1.0.0, sim-addons:1.0.0; Kubernetes v1.30.2; \
             the site reports revision 1 applied"
        )
    );
    let layers = child(&root, "Layers");
    assert_eq!(
        layers.message.as_deref(),
        Some("state as the site reports it")
    );
    let shown: Vec<_> = layers
        .children
        .iter()
        .map(|l| {
            (
                l.name.as_str(),
                l.ready.as_deref(),
                l.reason.as_deref(),
                l.source,
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("ubuntu-sim", Some("True"), Some("Ready"), Source::Site),
            ("kubernetes", Some("True"), Some("Ready"), Source::Site),
            ("calico", Some("False"), Some("Failed"), Source::Site),
        ]
    );
    assert_eq!(
        layers.children[2].message.as_deref(),
        Some("the site reports version 3.26.0; DaemonSet kube-system/calico-node: 0 of 5 ready")
    );
    assert_eq!(
        layers.children[0].since.as_deref(),
        Some("2026-12-04T10:05:00Z")
    );

    let capi_cluster = child(&root, "Cluster");
    assert_eq!(capi_cluster.source, Source::SiteExport);
    assert_eq!(capi_cluster.ready.as_deref(), Some("True"));
    assert_eq!(
        notes(capi_cluster),
        [
            "in the workload cluster since the pivot; `strata cluster kubeconfig strata-demo/demo` reaches it",
            "shown from the site's export taken at 2026-12-04T10:08:00Z (its clock): the site's words",
        ]
    );

    let control_plane = child(&root, "ControlPlane");
    assert_eq!(
        (control_plane.detail.as_deref(), control_plane.source),
        (Some("3/3 ready, as the site reports"), Source::Site)
    );
    let kcp = child(control_plane, "KubeadmControlPlane");
    assert_eq!(kcp.source, Source::SiteExport);
    let machines: Vec<&str> = kcp.children.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        machines,
        [
            "demo-control-plane-m4n8q",
            "demo-control-plane-p2r9t",
            "demo-control-plane-x7k2p"
        ]
    );
    assert!(kcp.children.iter().all(|m| m.source == Source::SiteExport));

    let workers = child(&root, "Workers");
    assert_eq!(
        workers.detail.as_deref(),
        Some("1/2 ready, as the site reports")
    );
    let deployment = child(workers, "MachineDeployment");
    assert_eq!(
        (deployment.name.as_str(), deployment.detail.as_deref()),
        ("demo-general", Some("1/2 ready"))
    );
    assert_eq!(
        (deployment.ready.as_deref(), deployment.message.as_deref()),
        (Some("False"), Some("1 of 2 available"))
    );
    let workers: Vec<_> = deployment
        .children
        .iter()
        .map(|m| (m.name.as_str(), m.detail.as_deref(), m.ready.as_deref()))
        .collect();
    assert_eq!(
        workers,
        [
            ("demo-general-a", Some("Running"), Some("True")),
            ("demo-general-b", Some("Provisioning"), Some("False")),
        ]
    );
    // Every machine has its place: no group of machines of no owner.
    assert!(!kinds(&root).contains(&"Machines"), "{:?}", kinds(&root));

    let pivoted = &child(&root, "Conditions").children[1];
    assert_eq!(
        (
            pivoted.name.as_str(),
            pivoted.detail.as_deref(),
            pivoted.source
        ),
        ("Pivoted", Some("reported by the site"), Source::Site)
    );
    assert_eq!(
        root.children
            .iter()
            .rev()
            .nth(1)
            .and_then(|n| n.message.as_deref()),
        Some("the agent last reported at 2026-12-04T10:09:30Z (its clock)")
    );
    // The conditions close the tree.
    assert_eq!(kinds(&root).last(), Some(&"Conditions"));
}

#[test]
fn a_missing_export_is_a_line_of_the_tree_and_the_sites_counts_remain() {
    let reason = "the management cluster holds no export of cluster strata-demo/demo";
    let root = tree(&after_the_pivot(Err(reason.into())));
    let capi_cluster = child(&root, "Cluster");
    assert_eq!(capi_cluster.ready, None);
    assert_eq!(
        notes(capi_cluster),
        [
            "in the workload cluster since the pivot; `strata cluster kubeconfig strata-demo/demo` reaches it".to_string(),
            format!("the site's export cannot be shown: {reason}"),
        ]
    );
    let control_plane = child(&root, "ControlPlane");
    assert_eq!(
        control_plane.detail.as_deref(),
        Some("3/3 ready, as the site reports")
    );
    assert!(control_plane.children.is_empty(), "{control_plane:#?}");
    assert!(child(&root, "Workers").children.is_empty());
}

#[test]
fn a_cluster_not_provisioned_yet_says_what_it_lacks() {
    let observed = Observed {
        cluster: cluster(json!({
            "phase": "Invalid",
            "conditions": [condition("Valid", "False", "ProfileNotFound", "profile sim-infra 1.0.0 is not published")],
        })),
        objects_namespace: None,
        move_granted: false,
        revision: None,
        capi: CapiSight::NotCreated,
    };
    let root = tree(&observed);
    assert_eq!(root.ready, None, "no Ready condition yet");
    assert_eq!(
        root.children[0].message.as_deref(),
        Some("no revision published yet (the Valid and RevisionPublished conditions say why)")
    );
    assert_eq!(
        child(&root, "Layers").message.as_deref(),
        Some("none known yet")
    );
    assert_eq!(
        notes(child(&root, "Cluster")),
        ["not created yet: the cluster has no objects namespace"]
    );
    assert_eq!(
        child(&root, "ControlPlane").detail.as_deref(),
        Some("no count yet")
    );
    let valid = &child(&root, "Conditions").children[0];
    assert_eq!(
        (valid.reason.as_deref(), valid.message.as_deref()),
        (
            Some("ProfileNotFound"),
            Some("profile sim-infra 1.0.0 is not published")
        )
    );
}

#[test]
fn objects_back_for_the_deletion_are_not_said_to_be_still_to_come() {
    let mut observed = before_the_pivot();
    if let Some(status) = observed.cluster.status.as_mut() {
        status.phase = Some(ClusterPhase::Deleting);
    }
    if let CapiSight::Management(objects) = &mut observed.capi {
        objects.control_planes.clear();
    }
    let root = tree(&observed);
    assert_eq!(
        notes(child(&root, "ControlPlane")),
        ["no KubeadmControlPlane in the management cluster"]
    );
    assert_eq!(
        notes(child(&root, "Workers")),
        ["no MachineDeployment in the management cluster"]
    );
    // Its machine, whose control plane is gone, is still shown.
    assert_eq!(
        child(&root, "Machines").children[0].name,
        "demo-control-plane-x7k2p"
    );
}

#[test]
fn a_revision_that_is_not_there_is_named() {
    let mut observed = before_the_pivot();
    observed.revision = None;
    let root = tree(&observed);
    let revision = child(&root, "ClusterRevision");
    assert_eq!(revision.name, "demo-r1");
    assert_eq!(
        notes(revision),
        [format!("it is not in namespace {OBJECTS}")]
    );
}

#[test]
fn machines_of_no_control_plane_or_deployment_are_shown_apart() {
    let mut observed = before_the_pivot();
    if let CapiSight::Management(objects) = &mut observed.capi {
        objects.machines.push(capi(
            &MACHINE,
            "stray",
            json!({ CAPI_CLUSTER_NAME_LABEL: "demo" }),
            json!({}),
        ));
    }
    let root = tree(&observed);
    let stray = child(&root, "Machines");
    assert_eq!(
        stray.detail.as_deref(),
        Some("of no control plane or MachineDeployment")
    );
    assert_eq!(stray.children[0].name, "stray");
    assert_eq!(stray.children[0].detail.as_deref(), Some("no phase yet"));
}

#[test]
fn the_text_is_a_tree_with_aligned_columns() {
    let root = Node::new("WorkloadCluster", "ns/demo", Source::Management)
        .detail("Pivoted")
        .readiness(Some(Readiness {
            status: "True".into(),
            severity: None,
            reason: Some("Pivoted".into()),
            since: Some("2026-12-04T10:00:00Z".into()),
            message: Some("it runs".into()),
        }))
        .children(vec![
            Node::new("ControlPlane", "", Source::Site)
                .detail("3/3 ready")
                .children(vec![
                    Node::note(
                        "a sentence wider than every column of the table",
                        Source::Site,
                    ),
                    Node::new("Machine", "m-1", Source::SiteExport).readiness(Some(Readiness {
                        status: "False".into(),
                        severity: Some("Warning".into()),
                        reason: Some("NotReady".into()),
                        since: Some("2026-12-04T09:00:00Z".into()),
                        message: None,
                    })),
                    Node {
                        provider_id: Some("sim://m-2".into()),
                        ..Node::new("Machine", "m-2", Source::SiteExport).readiness(Some(
                            Readiness {
                                status: "False".into(),
                                message: Some("waiting for the node".into()),
                                ..Readiness::default()
                            },
                        ))
                    },
                ]),
            Node::new("Conditions", "", Source::Management),
        ]);
    assert_eq!(
        text(&root, at("2026-12-04T12:00:00Z")),
        "NAME                               READY  SEVERITY  REASON    SINCE  MESSAGE\n\
         WorkloadCluster ns/demo (Pivoted)  True             Pivoted   2h     it runs\n\
         ├─ControlPlane (3/3 ready)\n\
         │ ├─a sentence wider than every column of the table\n\
         │ ├─Machine m-1                    False  Warning   NotReady  3h\n\
         │ └─Machine m-2                    False                             sim://m-2; waiting for the node\n\
         └─Conditions\n"
    );
}

#[test]
fn the_sites_words_reach_the_terminal_on_one_line_without_escapes() {
    let mut observed = after_the_pivot(Ok(export()));
    if let Some(status) = observed.cluster.status.as_mut() {
        status.layers[2].message =
            Some("\u{1b}[2J\u{1b}[31mpwned\nsecond line\r\tthird".to_string() + &"x".repeat(400));
    }
    let text = text(&tree(&observed), at("2026-12-04T10:10:00Z"));
    assert!(!text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\t'));
    let line = text.lines().find(|l| l.contains("Layer calico")).unwrap();
    assert!(
        line.contains("[2J [31mpwned second line thirdxxx"),
        "{line}"
    );
    assert!(line.ends_with('…'), "{line}");
    assert!(line.chars().count() < 300, "{line}");
}

#[test]
fn the_text_of_a_cluster_before_the_pivot() {
    let text = text(&tree(&before_the_pivot()), at("2026-12-04T10:03:00Z"));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("NAME ")
            && lines[0].ends_with("READY  SEVERITY  REASON           SINCE  MESSAGE"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("WorkloadCluster strata-demo/demo (InstallingAgent) ")
            && lines[1]
                .ends_with("False            InstallingAgent  3m     the agent is being installed"),
        "{text}"
    );
    for expected in [
        "├─ClusterRevision demo-r1 (revision 1) ",
        "│ └─Layer calico (cni 3.26.1)",
        "│ └─in the management cluster, namespace strata-wc-strata-demo-demo-0123456789ab",
        "├─ControlPlane (1/3 ready)",
        "│ └─KubeadmControlPlane demo-control-plane (1/1 ready, v1.30.2)",
        "│   └─Machine demo-control-plane-x7k2p (Running) ",
        "│ └─no MachineDeployment in the management cluster: the agent creates the worker pools after the pivot",
        "└─Conditions",
        "  ├─Condition Valid ",
        "  └─Condition Ready ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "no line starts with {expected:?}:\n{text}"
        );
    }
    // The machine's provider ID heads its message column.
    assert!(
        lines.iter().any(|l| l.starts_with("│   └─Machine demo-control-plane-x7k2p (Running) ")
            && l.ends_with("  True             Ready            3m     sim://strata-demo/demo-control-plane-x7k2p")),
        "{text}"
    );
    // The CAPI Cluster's message, from CAPI's several lines, on one.
    assert!(
        text.contains("NotAvailable     3m     * WorkersAvailable: 0 of 2\n"),
        "{text}"
    );
}

#[test]
fn json_and_yaml_give_the_same_tree_of_nodes() {
    let root = tree(&after_the_pivot(Ok(export())));
    let json: Value =
        serde_json::from_str(&document_text(&root, DocumentFormat::Json).unwrap()).unwrap();
    let yaml: Value =
        serde_yaml::from_str(&document_text(&root, DocumentFormat::Yaml).unwrap()).unwrap();
    assert_eq!(json, yaml);
    assert_eq!(json["kind"], "WorkloadCluster");
    assert_eq!(json["name"], "strata-demo/demo");
    assert_eq!(json["ready"], "True");
    assert_eq!(json["source"], "management");
    let control_plane = &json["children"][3];
    assert_eq!(control_plane["kind"], "ControlPlane");
    assert_eq!(control_plane["source"], "site");
    let machine = &control_plane["children"][0]["children"][0];
    assert_eq!(machine["kind"], "Machine");
    assert_eq!(machine["source"], "siteExport");
    assert_eq!(machine["ready"], "True");
    let mut keys: Vec<&str> = machine
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "children",
            "detail",
            "kind",
            "message",
            "name",
            "providerId",
            "ready",
            "reason",
            "severity",
            "since",
            "source"
        ]
    );
    assert_eq!(
        machine["providerId"],
        json!(format!(
            "sim://strata-demo/{}",
            machine["name"].as_str().unwrap()
        ))
    );
    // Only machines have one.
    assert!(control_plane["children"][0].get("providerId").is_none());
}

#[test]
fn the_export_gives_the_clusters_objects_of_the_kinds_shown() {
    let objects = vec![
        json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "demo-kubeconfig" } }),
        json!({ "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
                "metadata": { "name": "other" } }),
        json!({ "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
                "metadata": { "name": "demo" } }),
        // Another version of a kind names the same kind.
        json!({ "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine",
                "metadata": { "name": "m-1" } }),
        json!({ "apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
                "kind": "KubeadmControlPlane", "metadata": { "name": "demo-control-plane" } }),
        json!({ "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineDeployment",
                "metadata": { "name": "demo-general" } }),
        // The site's words, unreadable as an object: left out.
        json!({ "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine", "metadata": 7 }),
        // Another group's kind of the same name.
        json!({ "apiVersion": "example.com/v1", "kind": "Machine", "metadata": { "name": "x" } }),
    ];
    let found = capi_objects_of(objects, "demo");
    assert_eq!(
        found.cluster.as_ref().map(|c| c.name_any()).as_deref(),
        Some("demo")
    );
    let names = |objects: &[DynamicObject]| -> Vec<String> {
        objects.iter().map(|o| o.name_any()).collect()
    };
    assert_eq!(names(&found.machines), ["m-1"]);
    assert_eq!(names(&found.control_planes), ["demo-control-plane"]);
    assert_eq!(names(&found.deployments), ["demo-general"]);
}
