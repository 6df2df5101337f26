//! Tests of `manifest.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn minimal(extra: &str) -> String {
    format!(
        r#"{{"name": "nginx", "displayName": "NGINX", "version": "1.2.3", "layer": "addon", "addonType": "ingress"{extra}}}"#
    )
}

fn errors_of(text: &str) -> Findings {
    let (manifest, findings) = parse_manifest(text);
    assert!(manifest.is_none(), "expected errors for {text}");
    assert!(findings.has_errors());
    findings
}

#[test]
fn accepts_a_minimal_addon() {
    let (manifest, findings) = parse_manifest(&minimal(""));
    assert!(findings.is_empty(), "{findings:?}");
    let manifest = manifest.unwrap();
    assert_eq!(manifest.layer, Layer::Addon);
    assert_eq!(manifest.addon_type.as_deref(), Some("ingress"));
    assert_eq!(manifest.addon_kind(), Some(AddonType::Ingress));
    assert!(manifest.supports_cloud(PackCloud::Aws));
}

#[test]
fn reports_each_trailing_comma_line() {
    let text =
        "{\n\"name\": \"a\",\n\"displayName\": \"A\",\n\"version\": \"1\",\n\"layer\": \"os\",\n}";
    let (manifest, findings) = parse_manifest(text);
    assert!(manifest.is_some());
    assert!(
        findings.contains("line 5", "trailing comma"),
        "{findings:?}"
    );
    assert!(!findings.has_errors());
}

#[test]
fn invalid_json_names_the_line() {
    let findings = errors_of("{\n\"name\": \"a\"\n\"layer\": \"os\"}");
    assert!(
        findings.contains("line 3", "not valid JSON"),
        "{findings:?}"
    );
}

#[test]
fn top_level_must_be_an_object() {
    let findings = errors_of("[1]");
    assert!(findings.contains("", "found an array, expected a JSON object"));
}

#[test]
fn required_fields_are_non_empty_strings() {
    let findings = errors_of(r#"{"displayName": "", "version": 3}"#);
    assert!(findings.contains("name", "is missing; expected a non-empty string"));
    assert!(findings.contains("displayName", "is empty"));
    assert!(findings.contains("version", "found the number 3, expected a non-empty string"));
    assert!(findings.contains("layer", "is missing; expected one of \"kernel\""));
}

#[test]
fn layer_must_be_from_the_schema() {
    let findings =
        errors_of(r#"{"name": "a", "displayName": "A", "version": "1", "layer": "network"}"#);
    assert!(findings.contains(
        "layer",
        r#"found "network", expected one of "kernel", "os", "k8s", "cni", "csi", "addon""#
    ));
}

#[test]
fn version_must_parse() {
    let findings =
        errors_of(r#"{"name": "a", "displayName": "A", "version": "latest", "layer": "os"}"#);
    assert!(findings.contains("version", "\"latest\" is not a version"));
}

#[test]
fn cloud_types_outside_both_lists_are_warnings() {
    let (manifest, findings) = parse_manifest(&minimal(
        r#", "cloudTypes": ["aws", "digitalocean"], "cloudType": "moon""#,
    ));
    let manifest = manifest.unwrap();
    assert!(findings.contains(
        "cloudTypes[1]",
        r#""digitalocean" is not a cloud type Strata knows (known: "all", "aws""#
    ));
    assert!(findings.contains("cloudType", r#""moon" is not a cloud type Strata knows"#));
    assert!(!findings.has_errors());
    assert_eq!(manifest.other_cloud_types, ["digitalocean", "moon"]);
    assert_eq!(
        manifest.declared_cloud_names(),
        ["aws", "digitalocean", "moon"]
    );
    // Only unknown clouds: meant for none of Strata's, not for every cloud.
    let (manifest, _) = parse_manifest(&minimal(r#", "cloudTypes": ["moon"]"#));
    let manifest = manifest.unwrap();
    assert!(!manifest.declares_no_cloud());
    assert!(!manifest.supports_cloud(PackCloud::Aws));
    let findings = errors_of(&minimal(r#", "cloudTypes": ["aws", 3]"#));
    assert!(findings.contains("cloudTypes[1]", "found the number 3, expected a string"));
    let findings = errors_of(&minimal(r#", "cloudTypes": "aws""#));
    assert!(findings.contains("cloudTypes", "expected an array of strings"));
}

#[test]
fn the_publishers_cloud_types_are_known() {
    let (manifest, findings) = parse_manifest(&minimal(
        r#", "cloudTypes": ["libvirt", "custom", "tencent", "tke", "edge-native"]"#,
    ));
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(
        manifest.unwrap().cloud_types,
        [
            PackCloud::Libvirt,
            PackCloud::Custom,
            PackCloud::Tencent,
            PackCloud::Tke,
            PackCloud::EdgeNative
        ]
    );
}

#[test]
fn cloud_support() {
    let (manifest, _) = parse_manifest(&minimal(
        r#", "cloudTypes": ["aws"], "cloudType": "vsphere""#,
    ));
    let manifest = manifest.unwrap();
    assert!(manifest.supports_cloud(PackCloud::Aws));
    assert!(manifest.supports_cloud(PackCloud::Vsphere));
    assert!(!manifest.supports_cloud(PackCloud::Azure));
    let (manifest, _) = parse_manifest(&minimal(r#", "cloudTypes": ["all"]"#));
    assert!(manifest.unwrap().supports_cloud(PackCloud::Azure));
}

#[test]
fn addon_type_is_required_for_addons_and_accepts_spaced_values() {
    let findings =
        errors_of(r#"{"name": "a", "displayName": "A", "version": "1", "layer": "addon"}"#);
    assert!(findings.contains("addonType", "a pack with layer \"addon\" must set it"));
    for spaced in ["load balancer", "system app", "app services"] {
        let text = format!(
            r#"{{"name": "a", "displayName": "A", "version": "1", "layer": "addon", "addonType": "{spaced}"}}"#
        );
        let (manifest, findings) = parse_manifest(&text);
        assert!(manifest.is_some(), "{spaced}: {findings:?}");
    }
    // Free text in the publisher's schema: an unknown value is a warning.
    let (manifest, findings) = parse_manifest(
        r#"{"name": "a", "displayName": "A", "version": "1", "layer": "addon", "addonType": "loadbalancer"}"#,
    );
    let manifest = manifest.unwrap();
    assert_eq!(manifest.addon_type.as_deref(), Some("loadbalancer"));
    assert_eq!(manifest.addon_kind(), None);
    assert!(findings.contains(
        "addonType",
        r#""loadbalancer" is not an add-on type Strata knows (known: "logging", "monitoring", "load balancer""#
    ));
    assert!(!findings.has_errors());
    // The published packs' hyphenated spelling is known.
    let (manifest, findings) = parse_manifest(
        r#"{"name": "a", "displayName": "A", "version": "1", "layer": "addon", "addonType": "app-services"}"#,
    );
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(manifest.unwrap().addon_kind(), Some(AddonType::AppServices));
    let findings = errors_of(
        r#"{"name": "a", "displayName": "A", "version": "1", "layer": "addon", "addonType": 3}"#,
    );
    assert!(findings.contains("addonType", "found the number 3, expected a string"));
    let (_, findings) = parse_manifest(
        r#"{"name": "a", "displayName": "A", "version": "1", "layer": "os", "addonType": "ai"}"#,
    );
    assert!(findings.contains("addonType", "only used by addon packs"));
}

#[test]
fn annotations_are_strings() {
    let findings = errors_of(&minimal(
        r#", "annotations": {"imageId": "ami-1", "skipK8sInstall": false}"#,
    ));
    assert!(findings.contains(
        "annotations.skipK8sInstall",
        "found the boolean false, expected a string"
    ));
    let findings = errors_of(&minimal(r#", "annotations": ["a"]"#));
    assert!(findings.contains("annotations", "expected an object of string values"));
}

#[test]
fn charts_and_manifests_are_relative_paths_inside_the_pack() {
    let findings = errors_of(&minimal(
        r#", "charts": ["/etc/passwd", "../other/chart.tgz", "charts/ok.tgz", ""], "kubeManifests": ["manifests/../../x.yaml"]"#,
    ));
    assert!(findings.contains("charts[0]", "is an absolute path"));
    assert!(findings.contains("charts[1]", "contains '..'"));
    assert!(findings.contains("charts[3]", "is empty"));
    assert!(findings.contains("kubeManifests[0]", "contains '..'"));
}

#[test]
fn dependencies_follow_the_schema() {
    let findings = errors_of(&minimal(
        r#", "constraints": {"dependencies": [
            {"packName": "kubernetes", "layer": "k8s", "type": "required", "minVersion": "1.20", "maxVersion": "1.19"},
            {"packName": "", "layer": "storage", "type": "mandatory"},
            {"layer": "cni", "type": "optional", "minVersion": "x.y"},
            "calico"
        ]}"#,
    ));
    assert!(findings.contains(
        "constraints.dependencies[0]",
        "minVersion 1.20 is above maxVersion 1.19"
    ));
    assert!(findings.contains("constraints.dependencies[1].packName", "is empty"));
    assert!(findings.contains("constraints.dependencies[1].layer", r#"found "storage""#));
    assert!(findings.contains(
        "constraints.dependencies[1].type",
        r#"found "mandatory", expected one of "required", "optional", "notSupported", "upgrade""#
    ));
    assert!(findings.contains("constraints.dependencies[2].packName", "is missing"));
    assert!(findings.contains("constraints.dependencies[2].minVersion", "is not a version"));
    assert!(findings.contains("constraints.dependencies[3]", "expected an object"));
}

#[test]
fn resources_follow_the_schema() {
    let findings = errors_of(&minimal(
        r#", "constraints": {"resources": [
            {"type": "gpu", "minLimit": 1},
            {"type": "cpu", "minLimit": "2"},
            {"type": "memory", "minLimit": -5, "components": [{"scheduleType": "control"}, {}]}
        ]}"#,
    ));
    assert!(findings.contains(
        "constraints.resources[0].type",
        r#"found "gpu", expected one of "cpu", "memory", "diskSize""#
    ));
    assert!(findings.contains(
        "constraints.resources[1].minLimit",
        "found the string \"2\", expected a number"
    ));
    assert!(findings.contains(
        "constraints.resources[2].minLimit",
        "expected a number of zero or more"
    ));
    assert!(findings.contains(
        "constraints.resources[2].components[0].scheduleType",
        r#"found "control", expected one of "all", "control-plane", "master", "worker""#
    ));
    assert!(findings.contains(
        "constraints.resources[2].components[1].scheduleType",
        "is missing"
    ));
}

#[test]
fn parses_valid_constraints() {
    let (manifest, findings) = parse_manifest(&minimal(
        r#", "constraints": {
            "dependencies": [{"packName": "kubernetes", "layer": "k8s", "type": "required", "minVersion": "1.20"}],
            "resources": [{"type": "memory", "minLimit": 2048, "components": [{"scheduleType": "worker", "replicaCountParamRef": "replicas"}]}]
        }"#,
    ));
    assert!(!findings.has_errors(), "{findings:?}");
    let constraints = manifest.unwrap().constraints;
    assert_eq!(constraints.dependencies[0].kind, DependencyType::Required);
    assert!(constraints.dependencies[0].bounds.min.is_some());
    assert_eq!(constraints.resources[0].min_limit, Some(2048.0));
    assert_eq!(
        constraints.resources[0].components[0].schedule_type,
        ScheduleType::Worker
    );
}

#[test]
fn unknown_fields_are_warnings_with_a_hint() {
    let (manifest, findings) = parse_manifest(&minimal(
        r#", "KubeManifests": [], "homepage": "x", "constraints": {"deps": [], "resources": [{"type": "cpu", "max": 3}]}"#,
    ));
    assert!(manifest.is_some(), "{findings:?}");
    assert!(findings.contains("KubeManifests", "did you mean \"kubeManifests\""));
    assert!(findings.contains("homepage", "unknown field"));
    assert!(findings.contains("constraints.deps", "unknown field"));
    assert!(findings.contains("constraints.resources[0].max", "unknown field"));
    assert!(!findings.has_errors());
}

#[test]
fn name_that_cannot_be_an_oci_repository_is_a_warning() {
    let (manifest, findings) =
        parse_manifest(r#"{"name": "My Pack", "displayName": "A", "version": "1", "layer": "os"}"#);
    assert!(manifest.is_some());
    assert!(findings.contains("name", "cannot name an OCI repository"));
    assert!(is_oci_path_component("golden-centos-aws"));
    assert!(is_oci_path_component("a__b.c"));
    assert!(is_oci_path_component("a--b"));
    assert!(!is_oci_path_component("a--"));
    assert!(!is_oci_path_component("a._b"));
    assert!(!is_oci_path_component("-a"));
    assert!(!is_oci_path_component("A"));
}

#[test]
fn master_is_the_publishers_control_plane() {
    let (manifest, findings) = parse_manifest(&minimal(
        r#", "constraints": {"resources": [{"type": "cpu", "minLimit": 2, "components": [{"scheduleType": "master"}]}]}"#,
    ));
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(
        manifest.unwrap().constraints.resources[0].components[0].schedule_type,
        ScheduleType::ControlPlane
    );
}

#[test]
fn empty_bounds_mean_no_bound() {
    let (manifest, findings) = parse_manifest(&minimal(
        r#", "constraints": {"dependencies": [
            {"packName": "kubernetes", "layer": "k8s", "type": "required", "minVersion": "1.27", "maxVersion": ""},
            {"packName": "calico", "layer": "cni", "type": "optional", "minVersion": "", "maxVersion": " "}
        ]}"#,
    ));
    assert!(findings.is_empty(), "{findings:?}");
    let dependencies = manifest.unwrap().constraints.dependencies;
    assert!(dependencies[0].bounds.min.is_some() && dependencies[0].bounds.max.is_none());
    assert_eq!(dependencies[0].max_version, None);
    assert!(dependencies[1].bounds.is_unbounded());
}

#[test]
fn a_leading_v_is_accepted_with_a_warning() {
    let (manifest, findings) = parse_manifest(
        r#"{"name": "weka", "displayName": "Weka", "version": "v1.8.7", "layer": "addon", "addonType": "storage"}"#,
    );
    let manifest = manifest.unwrap();
    assert_eq!(
        manifest.version().map(|v| v.numbers().to_vec()),
        Some(vec![1, 8, 7])
    );
    assert!(findings.contains(
        "version",
        r#""v1.8.7" has a leading 'v'; accepted, but the publisher's pack checks refuse it (write "1.8.7")"#
    ));
    assert!(!findings.has_errors());
}

#[test]
fn ansible_roles_are_paths_inside_the_pack() {
    let (manifest, findings) = parse_manifest(&minimal(r#", "ansibleRoles": ["roles/setup"]"#));
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(manifest.unwrap().ansible_roles, ["roles/setup"]);
    let findings = errors_of(&minimal(r#", "ansibleRoles": ["../x"]"#));
    assert!(findings.contains("ansibleRoles[0]", "contains '..'"));
}
