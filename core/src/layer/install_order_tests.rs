#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;

fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        namespace: namespace.map(str::to_string),
        name: name.into(),
    }
}

fn names(objects: &[LayerObject]) -> Vec<&str> {
    objects.iter().map(|o| o.key.name.as_str()).collect()
}

#[test]
fn parse_skips_empty_documents_and_expands_lists() {
    let text = "---\n# Source: app/templates/empty.yaml\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n- {apiVersion: v1, kind: Service, metadata: {name: c}}\n";
    let objects = parse_objects(text).unwrap();
    let seen: Vec<(&str, &str)> = objects
        .iter()
        .map(|o| {
            (
                o.place.as_str(),
                o.object["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("document 2", "a"),
            ("document 4 items[0]", "b"),
            ("document 4 items[1]", "c")
        ]
    );
}

#[test]
fn parse_applies_merge_keys() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nbase: &b {x: 1}\ndata:\n  <<: *b\n  y: '2'\n";
    let objects = parse_objects(text).unwrap();
    assert_eq!(objects[0].object["data"], json!({"x": 1, "y": "2"}));
}

#[test]
fn parse_errors_name_the_document() {
    let bad_yaml = "apiVersion: v1\n---\nkind: [unclosed\n";
    let error = parse_objects(bad_yaml).unwrap_err();
    assert!(
        matches!(error, ManifestError::Yaml { document: 2, .. }),
        "{error}"
    );
    assert!(
        error.to_string().starts_with("document 2: not valid YAML"),
        "{error}"
    );

    let scalar = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\njust text\n";
    assert_eq!(
        parse_objects(scalar).unwrap_err().to_string(),
        "document 2: found a string, expected a Kubernetes object (a mapping with apiVersion, kind and metadata)"
    );

    let list_item = "apiVersion: v1\nkind: List\nitems: [{kind: A}, 3]\n";
    assert_eq!(
        parse_objects(list_item).unwrap_err().to_string(),
        "document 1 items[1]: found a number, expected a Kubernetes object (a mapping with apiVersion, kind and metadata)"
    );

    let list_items = "apiVersion: v1\nkind: List\nitems: {a: 1}\n";
    assert_eq!(
        parse_objects(list_items).unwrap_err(),
        ManifestError::ListItems {
            document: 1,
            found: "a mapping"
        }
    );
}

#[test]
fn namespaced_objects_without_namespace_get_the_layers() {
    let deployment =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    assert_eq!(
        object_key(&deployment, "monitoring", None).unwrap(),
        ObjectKey {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            namespace: Some("monitoring".into()),
            name: "web".into(),
        }
    );
    let written = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "kube-system"}});
    assert_eq!(
        object_key(&written, "monitoring", None)
            .unwrap()
            .namespace
            .as_deref(),
        Some("kube-system")
    );
    // A custom resource is namespaced unless discovery says otherwise.
    let custom = json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "s"}});
    assert_eq!(
        object_key(&custom, "monitoring", None)
            .unwrap()
            .namespace
            .as_deref(),
        Some("monitoring")
    );
}

#[test]
fn cluster_scoped_kinds_have_no_namespace() {
    for (api_version, kind) in [
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("v1", "Namespace"),
        ("storage.k8s.io/v1", "StorageClass"),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
        ),
        ("snapshot.storage.k8s.io/v1", "VolumeSnapshotClass"),
    ] {
        let object = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": "written"}});
        assert_eq!(
            object_key(&object, "layer", None).unwrap().namespace,
            None,
            "{kind}"
        );
    }
    // The table is by group: a Namespace kind of another group is not the core one.
    let other =
        json!({"apiVersion": "example.com/v1", "kind": "Namespace", "metadata": {"name": "x"}});
    assert_eq!(
        object_key(&other, "layer", None)
            .unwrap()
            .namespace
            .as_deref(),
        Some("layer")
    );
}

#[test]
fn discovery_overrides_the_table_and_falls_back_to_it() {
    let discovery = |kind: &GroupKind| match kind.kind.as_str() {
        "ClusterIssuer" => Some(false),
        "StorageClass" => Some(true),
        _ => None,
    };
    let issuer = json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "i"}});
    assert_eq!(
        object_key(&issuer, "l", Some(&discovery))
            .unwrap()
            .namespace,
        None
    );
    assert_eq!(
        object_key(&issuer, "l", None).unwrap().namespace.as_deref(),
        Some("l")
    );
    let class = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "c"}});
    assert_eq!(
        object_key(&class, "l", Some(&discovery))
            .unwrap()
            .namespace
            .as_deref(),
        Some("l")
    );
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}});
    assert_eq!(
        object_key(&role, "l", Some(&discovery)).unwrap().namespace,
        None
    );
}

#[test]
fn object_key_errors_say_what_is_wrong() {
    let no_kind = json!({"apiVersion": "v1", "metadata": {"name": "x"}});
    assert_eq!(
        object_key(&no_kind, "l", None).unwrap_err(),
        ObjectError::Field {
            field: "kind",
            found: "missing"
        }
    );
    let empty_name = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": ""}});
    assert_eq!(
        object_key(&empty_name, "l", None).unwrap_err().to_string(),
        "metadata.name is empty; every Kubernetes object needs it as a non-empty string"
    );
    let numeric = json!({"apiVersion": 1, "kind": "Pod", "metadata": {"name": "p"}});
    assert_eq!(
        object_key(&numeric, "l", None).unwrap_err().to_string(),
        "apiVersion is a number; every Kubernetes object needs it as a non-empty string"
    );
    for bad in ["a/b/c", "/v1", "apps/"] {
        let object = json!({"apiVersion": bad, "kind": "Pod", "metadata": {"name": "p"}});
        assert_eq!(
            object_key(&object, "l", None).unwrap_err(),
            ObjectError::ApiVersion { found: bad.into() },
            "{bad}"
        );
    }
}

#[test]
fn layer_objects_place_objects_and_name_the_document_of_an_error() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r, namespace: oops}\n";
    let objects = layer_objects(text, "apps", None).unwrap();
    assert_eq!(objects[0].object["metadata"]["namespace"], "apps");
    assert_eq!(objects[1].object["metadata"].get("namespace"), None);
    assert_eq!(objects[1].key.namespace, None);

    let broken = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\nmetadata: {}\n";
    assert_eq!(
        layer_objects(broken, "apps", None).unwrap_err().to_string(),
        "document 2: metadata.name is missing; every Kubernetes object needs it as a non-empty string"
    );
}

#[test]
fn install_plan_puts_crds_then_namespaces_then_helms_order() {
    let object = |api_version: &str, kind: &str, name: &str| {
        let value = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
        LayerObject {
            key: object_key(&value, "l", None).unwrap(),
            object: value,
        }
    };
    let plan = InstallPlan::new(vec![
        object("apps/v1", "Deployment", "deploy-1"),
        object("v1", "Service", "svc"),
        object("monitoring.coreos.com/v1", "ServiceMonitor", "monitor"),
        object("v1", "ConfigMap", "config"),
        object("monitoring.coreos.com/v1", "Alertmanager", "alertmanager"),
        object("apiextensions.k8s.io/v1", "CustomResourceDefinition", "crd"),
        object("v1", "Namespace", "ns"),
        object("apps/v1", "Deployment", "deploy-2"),
        object("monitoring.coreos.com/v1", "ServiceMonitor", "monitor-2"),
        object("rbac.authorization.k8s.io/v1", "ClusterRole", "role"),
        object("scheduling.k8s.io/v1", "PriorityClass", "priority"),
        object("v1", "ServiceAccount", "account"),
        object("v1", "Secret", "secret"),
    ]);
    assert_eq!(names(&plan.custom_resource_definitions), ["crd"]);
    assert_eq!(names(&plan.namespaces), ["ns"]);
    assert_eq!(
        names(&plan.resources),
        [
            "priority",
            "account",
            "secret",
            "config",
            "role",
            "svc",
            "deploy-1",
            "deploy-2",
            // Unlisted kinds last, by kind name, each in rendered order.
            "alertmanager",
            "monitor",
            "monitor-2",
        ]
    );
    let install: Vec<&str> = plan.install_order().map(|o| o.key.name.as_str()).collect();
    let mut uninstall: Vec<&str> = plan
        .uninstall_order()
        .map(|o| o.key.name.as_str())
        .collect();
    assert_eq!(install.first(), Some(&"crd"));
    uninstall.reverse();
    assert_eq!(install, uninstall);
}

#[test]
fn helm_order_follows_helm() {
    let rank = |kind: &str| HELM_INSTALL_ORDER.iter().position(|k| *k == kind).unwrap();
    assert!(rank("PriorityClass") < rank("Namespace"));
    assert!(rank("ServiceAccount") < rank("Secret"));
    assert!(rank("StorageClass") < rank("PersistentVolumeClaim"));
    assert!(rank("ClusterRoleBinding") < rank("Role"));
    assert!(rank("Service") < rank("DaemonSet"));
    assert!(rank("IngressClass") < rank("Ingress"));
    assert_eq!(HELM_INSTALL_ORDER.last(), Some(&"APIService"));
    assert!(install_rank("apps", "CronJob") < install_rank("example.com", "Anything"));
    assert!(
        install_rank("apiextensions.k8s.io", "CustomResourceDefinition")
            < install_rank("", "Namespace")
    );
}

#[test]
fn sort_for_install_is_stable_within_a_kind() {
    let mut keys = vec![
        key("apps", "Deployment", Some("n"), "b"),
        key("", "Service", Some("n"), "s"),
        key("apps", "Deployment", Some("n"), "a"),
    ];
    sort_for_install(&mut keys);
    let order: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(order, ["s", "b", "a"]);
}

#[test]
fn keys_read_and_compare_as_the_cluster_does() {
    let web = key("apps", "Deployment", Some("monitoring"), "web");
    assert_eq!(web.to_string(), "Deployment.apps monitoring/web");
    assert_eq!(web.api_version(), "apps/v1");
    let ns = key("", "Namespace", None, "monitoring");
    assert_eq!(ns.to_string(), "Namespace monitoring");
    assert_eq!(ns.api_version(), "v1");
    let older = ObjectKey {
        version: "v1beta1".into(),
        ..web.clone()
    };
    assert!(web.same_object(&older));
    let elsewhere = ObjectKey {
        namespace: Some("other".into()),
        ..web.clone()
    };
    assert!(!web.same_object(&elsewhere));
}
