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

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn calico() -> LayerApplySet {
    LayerApplySet::for_layer("cni-calico").unwrap()
}

#[test]
fn the_id_is_kubectls() {
    // Expected values computed independently with python3:
    //   "applyset-" + base64.urlsafe_b64encode(hashlib.sha256(s.encode()).digest())
    //       .decode().rstrip("=") + "-v1"
    // for s = "strata-layer-cni-calico.strata-system.ConfigMap." (the core group is empty)
    // and s = "sgs..WorkspaceSet.sgs.snucse.org" (a cluster-scoped custom parent).
    assert_eq!(
        calico().id(),
        "applyset-6svAl-3PXkoNHONN0H8oxlXl4w0PMdi-auGVn0b3usA-v1"
    );
    let custom = ParentRef {
        group: "sgs.snucse.org".into(),
        kind: "WorkspaceSet".into(),
        namespace: String::new(),
        name: "sgs".into(),
    };
    assert_eq!(
        applyset_id(&custom),
        "applyset-eGaq9sV3nwMTqoxoanOqvTcx-fUhHfmcx173gQrutHk-v1"
    );
}

#[test]
fn a_layers_parent_is_a_config_map_in_strata_system() {
    let set = calico();
    assert_eq!(layer_parent_name("cni-calico"), "strata-layer-cni-calico");
    assert_eq!(
        set.parent(),
        &ParentRef {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: "strata-system".into(),
            name: "strata-layer-cni-calico".into(),
        }
    );
    assert_eq!(
        set.parent().to_string(),
        "ConfigMap strata-system/strata-layer-cni-calico"
    );
    assert_eq!(
        set.member_selector(),
        format!("applyset.kubernetes.io/part-of={}", set.id())
    );
    let error = LayerApplySet::for_layer("My_Pack").unwrap_err();
    assert_eq!(
        error.to_string(),
        "layer My_Pack: its ApplySet parent would be named \"strata-layer-My_Pack\", which contains 'M'"
    );
}

#[test]
fn members_are_labelled_once_and_for_one_set() {
    let set = calico();
    let mut object =
        json!({"kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}}});
    set.label_member(&mut object).unwrap();
    assert_eq!(
        object["metadata"]["labels"],
        json!({"app": "web", "applyset.kubernetes.io/part-of": set.id()})
    );
    // Again: unchanged.
    let before = object.clone();
    set.label_member(&mut object).unwrap();
    assert_eq!(object, before);

    let mut null_metadata = json!({"kind": "ConfigMap", "metadata": null});
    set.label_member(&mut null_metadata).unwrap();
    assert_eq!(null_metadata["metadata"]["labels"][PART_OF_LABEL], set.id());
    let mut bare = json!({"kind": "ConfigMap"});
    set.label_member(&mut bare).unwrap();
    assert_eq!(bare["metadata"]["labels"][PART_OF_LABEL], set.id());
    let mut null_labels = json!({"kind": "ConfigMap", "metadata": {"name": "c", "labels": null}});
    set.label_member(&mut null_labels).unwrap();
    assert_eq!(null_labels["metadata"]["labels"][PART_OF_LABEL], set.id());

    let mut other = json!({"kind": "Service", "metadata": {"name": "s", "labels": {PART_OF_LABEL: "applyset-x-v1"}}});
    assert_eq!(
        set.label_member(&mut other).unwrap_err(),
        ApplySetError::MemberOfAnotherSet {
            member: "Service s".into(),
            found: "applyset-x-v1".into(),
            expected: set.id().into(),
        }
    );
    let mut bad_labels = json!({"kind": "Service", "metadata": {"name": "s", "labels": ["a"]}});
    assert_eq!(
        set.label_member(&mut bad_labels).unwrap_err().to_string(),
        "Service s: metadata.labels is a list, expected a mapping"
    );
}

#[test]
fn parent_metadata_names_kinds_and_other_namespaces() {
    let set = calico();
    let members = [
        key("apps", "DaemonSet", Some("kube-system"), "calico-node"),
        key("", "ConfigMap", Some("strata-system"), "settings"),
        key("rbac.authorization.k8s.io", "ClusterRole", None, "calico"),
        key(
            "monitoring.coreos.com",
            "ServiceMonitor",
            Some("monitoring"),
            "calico",
        ),
        key("apps", "DaemonSet", Some("kube-system"), "other"),
    ];
    let metadata = set.parent_metadata(&members);
    assert_eq!(metadata.labels, map(&[(ID_LABEL, set.id())]));
    assert_eq!(
        metadata.annotations,
        map(&[
            (
                TOOLING_ANNOTATION,
                &format!("strata/v{}", env!("CARGO_PKG_VERSION"))
            ),
            (
                CONTAINS_GROUP_KINDS_ANNOTATION,
                "ClusterRole.rbac.authorization.k8s.io,ConfigMap,DaemonSet.apps,ServiceMonitor.monitoring.coreos.com"
            ),
            (ADDITIONAL_NAMESPACES_ANNOTATION, "kube-system,monitoring"),
        ])
    );
    // Every member in the parent's namespace: no additional namespaces.
    let home = set.parent_metadata(&[key("", "Secret", Some("strata-system"), "s")]);
    assert!(
        !home
            .annotations
            .contains_key(ADDITIONAL_NAMESPACES_ANNOTATION)
    );
    assert_eq!(home.annotations[CONTAINS_GROUP_KINDS_ANNOTATION], "Secret");
    // No members: an empty set, still Strata's.
    let empty = set.parent_metadata(&[]);
    assert_eq!(empty.annotations[CONTAINS_GROUP_KINDS_ANNOTATION], "");
}

#[test]
fn the_superset_keeps_what_the_parent_named() {
    let set = calico();
    let previous = ParentState {
        tooling: tooling(),
        group_kinds: [GroupKind {
            group: "batch".into(),
            kind: "Job".into(),
        }]
        .into(),
        additional_namespaces: ["old".to_string()].into(),
    };
    let metadata = set.superset_metadata(&previous, &[key("", "Service", Some("new"), "s")]);
    assert_eq!(
        metadata.annotations[CONTAINS_GROUP_KINDS_ANNOTATION],
        "Job.batch,Service"
    );
    assert_eq!(
        metadata.annotations[ADDITIONAL_NAMESPACES_ANNOTATION],
        "new,old"
    );
}

#[test]
fn a_parent_reads_back_what_was_written() {
    let set = calico();
    let members = [
        key("apps", "Deployment", Some("monitoring"), "d"),
        key("", "ConfigMap", Some("strata-system"), "c"),
    ];
    let metadata = set.parent_metadata(&members);
    let state = set
        .parse_parent(&metadata.labels, &metadata.annotations)
        .unwrap();
    assert_eq!(state.tooling, tooling());
    let kinds: Vec<String> = state.group_kinds.iter().map(ToString::to_string).collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment.apps"]);
    assert_eq!(
        state.additional_namespaces,
        ["monitoring".to_string()].into()
    );
    assert_eq!(
        set.member_namespaces(&state),
        ["monitoring".to_string(), "strata-system".to_string()].into()
    );
}

#[test]
fn parsing_tolerates_spaces_and_empty_entries() {
    let set = calico();
    let labels = map(&[(ID_LABEL, set.id())]);
    let annotations = map(&[
        (TOOLING_ANNOTATION, "strata/v9.9.9"),
        (
            CONTAINS_GROUP_KINDS_ANNOTATION,
            " Deployment.apps, ,ConfigMap,Deployment.apps,",
        ),
        (ADDITIONAL_NAMESPACES_ANNOTATION, ""),
    ]);
    let state = set.parse_parent(&labels, &annotations).unwrap();
    assert_eq!(state.group_kinds.len(), 2);
    assert!(state.additional_namespaces.is_empty());
    let empty = map(&[
        (TOOLING_ANNOTATION, "strata"),
        (CONTAINS_GROUP_KINDS_ANNOTATION, ""),
    ]);
    let state = set.parse_parent(&labels, &empty).unwrap();
    assert!(state.group_kinds.is_empty());
}

#[test]
fn parsing_refuses_parents_that_are_not_this_sets() {
    let set = calico();
    let parent = "ConfigMap strata-system/strata-layer-cni-calico".to_string();
    let labels = map(&[(ID_LABEL, set.id())]);
    let good = map(&[
        (TOOLING_ANNOTATION, "strata/v0.1.0"),
        (CONTAINS_GROUP_KINDS_ANNOTATION, "ConfigMap"),
    ]);

    assert_eq!(
        set.parse_parent(&BTreeMap::new(), &good).unwrap_err(),
        ApplySetError::IdMissing {
            parent: parent.clone(),
            expected: set.id().into()
        }
    );
    assert!(matches!(
        set.parse_parent(&map(&[(ID_LABEL, "applyset-other-v1")]), &good),
        Err(ApplySetError::IdMismatch { .. })
    ));
    let without_tooling = map(&[(CONTAINS_GROUP_KINDS_ANNOTATION, "ConfigMap")]);
    assert_eq!(
        set.parse_parent(&labels, &without_tooling).unwrap_err(),
        ApplySetError::ToolingMissing {
            parent: parent.clone()
        }
    );
    let kubectl = map(&[
        (TOOLING_ANNOTATION, "kubectl/v1.28"),
        (CONTAINS_GROUP_KINDS_ANNOTATION, "ConfigMap"),
    ]);
    assert_eq!(
        set.parse_parent(&labels, &kubectl).unwrap_err().to_string(),
        "ApplySet parent ConfigMap strata-system/strata-layer-cni-calico: annotation applyset.kubernetes.io/tooling is \"kubectl/v1.28\": it is managed by another tool, not strata"
    );
    let no_kinds = map(&[(TOOLING_ANNOTATION, "strata/v0.1.0")]);
    assert_eq!(
        set.parse_parent(&labels, &no_kinds).unwrap_err(),
        ApplySetError::GroupKindsMissing {
            parent: parent.clone()
        }
    );
    let old = map(&[
        (TOOLING_ANNOTATION, "strata/v0.1.0"),
        (
            "applyset.kubernetes.io/contains-group-resources",
            "deployments.apps",
        ),
    ]);
    assert_eq!(
        set.parse_parent(&labels, &old).unwrap_err(),
        ApplySetError::GroupResourcesOnly {
            parent: parent.clone()
        }
    );
}

#[test]
fn malformed_entries_are_named() {
    let set = calico();
    let labels = map(&[(ID_LABEL, set.id())]);
    let with = |kinds: &str, namespaces: &str| {
        map(&[
            (TOOLING_ANNOTATION, "strata/v0.1.0"),
            (CONTAINS_GROUP_KINDS_ANNOTATION, kinds),
            (ADDITIONAL_NAMESPACES_ANNOTATION, namespaces),
        ])
    };
    let error = set
        .parse_parent(&labels, &with("apps.Deployment", ""))
        .unwrap_err();
    assert!(
        matches!(&error, ApplySetError::GroupKind { entry, problem, .. }
            if entry == "apps.Deployment" && problem == "has a group that contains 'D'"),
        "{error}"
    );
    assert!(matches!(
        set.parse_parent(&labels, &with(".apps", "")),
        Err(ApplySetError::GroupKind { .. })
    ));
    let error = set
        .parse_parent(&labels, &with("ConfigMap", "ok,Bad_Namespace"))
        .unwrap_err();
    assert!(
        matches!(&error, ApplySetError::Namespace { entry, .. } if entry == "Bad_Namespace"),
        "{error}"
    );
}

#[test]
fn parse_group_kind_reads_kubectls_form() {
    assert_eq!(
        parse_group_kind("Certificate.cert-manager.io").unwrap(),
        GroupKind {
            group: "cert-manager.io".into(),
            kind: "Certificate".into()
        }
    );
    assert_eq!(parse_group_kind("Secret").unwrap().group, "");
    assert!(parse_group_kind("Deployment.").is_err());
    assert!(parse_group_kind("9Lives").is_err());
}

#[test]
fn prune_candidates_are_what_left_in_reverse_install_order() {
    let previous = [
        key("", "Namespace", None, "calico-system"),
        key(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            None,
            "ippools.crd.projectcalico.org",
        ),
        key("apps", "Deployment", Some("calico-system"), "typha"),
        key("", "Service", Some("calico-system"), "typha"),
        key("", "ConfigMap", Some("calico-system"), "config"),
        key("crd.projectcalico.org", "IPPool", None, "default"),
        key("", "Service", Some("calico-system"), "typha"),
        key("", "ConfigMap", Some("kube-system"), "moved"),
    ];
    let new = [
        // The same Deployment read at another version is still in the set.
        ObjectKey {
            version: "v1beta2".into(),
            ..key("apps", "Deployment", Some("calico-system"), "typha")
        },
        key("", "ConfigMap", Some("calico-system"), "config"),
        key("", "ConfigMap", Some("calico-system"), "moved"),
    ];
    let gone: Vec<String> = prune_candidates(&previous, &new)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        gone,
        [
            "IPPool.crd.projectcalico.org default",
            "Service calico-system/typha",
            "ConfigMap kube-system/moved",
            "Namespace calico-system",
            "CustomResourceDefinition.apiextensions.k8s.io ippools.crd.projectcalico.org",
        ]
    );
    assert!(prune_candidates(&new, &new).is_empty());
}
