//! `strata profile validate | render` on the sample profiles, cluster and packs, and on
//! broken copies of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_yaml::Value;

fn sample_profile(name: &str) -> PathBuf {
    samples().join("profiles").join(format!("{name}.yaml"))
}

fn sample_cluster() -> PathBuf {
    samples().join("clusters/aws-ml.yaml")
}

fn read_yaml(path: &Path) -> Value {
    serde_yaml::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn write_yaml(path: &Path, value: &Value) {
    write(path, serde_yaml::to_string(value).unwrap());
}

/// `strata profile validate <files> --packs <samples>` in `dir`.
fn validate(dir: &Path, files: &[&Path], extra: &[&str]) -> Output {
    strata()
        .current_dir(dir)
        .args(["profile", "validate"])
        .args(files)
        .arg("--packs")
        .arg(samples().join("packs"))
        .args(extra)
        .output()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// validate

#[test]
fn the_sample_profiles_validate() {
    let profiles = samples().join("profiles");
    let output = validate(
        &profiles,
        &[
            Path::new("aws-infra.yaml"),
            Path::new("ml-addons.yaml"),
            Path::new("vsphere-full.yaml"),
        ],
        &[],
    );
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(
        stdout(&output),
        "aws-infra.yaml: ok: ClusterProfile aws-infra version 1.0.0 (infra profile, 4 layers)\n\
         ml-addons.yaml: ok: ClusterProfile ml-addons version 1.2.0 (add-on profile, 2 layers)\n\
         vsphere-full.yaml: ok: ClusterProfile vsphere-full version 2.1.0 (full profile, 5 layers)\n",
        "{}",
        describe(&output)
    );
    assert_eq!(stderr(&output), "", "{}", describe(&output));
}

#[test]
fn several_profiles_in_one_file_validate_and_a_wrong_kind_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let infra = fs::read_to_string(sample_profile("aws-infra")).unwrap();
    let addons = fs::read_to_string(sample_profile("ml-addons")).unwrap();
    let cluster = fs::read_to_string(sample_cluster()).unwrap();
    write(
        &root.path().join("both.yaml"),
        format!("{infra}---\n{addons}"),
    );
    write(
        &root.path().join("mixed.yaml"),
        format!("{infra}---\n{addons}---\n{cluster}"),
    );

    let output = validate(root.path(), &[Path::new("both.yaml")], &[]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(
        stdout(&output),
        "both.yaml: ok: ClusterProfile aws-infra version 1.0.0 (infra profile, 4 layers)\n\
         both.yaml: ok: ClusterProfile ml-addons version 1.2.0 (add-on profile, 2 layers)\n"
    );

    let output = validate(root.path(), &[Path::new("mixed.yaml")], &[]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(stdout(&output), "", "{}", describe(&output));
    assert_eq!(
        stderr_lines(&output),
        [
            r#"mixed.yaml: error: document 3: kind: found apiVersion "strata.dev/v1alpha1" kind "WorkloadCluster"; expected apiVersion "strata.dev/v1alpha1" kind "ClusterProfile""#
        ]
    );
}

#[test]
fn a_file_of_another_kind_is_an_error() {
    let output = validate(&samples(), &[Path::new("clusters/aws-ml.yaml")], &[]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(
        stderr_lines(&output),
        [
            r#"clusters/aws-ml.yaml: error: kind: found apiVersion "strata.dev/v1alpha1" kind "WorkloadCluster"; expected apiVersion "strata.dev/v1alpha1" kind "ClusterProfile""#
        ]
    );
}

#[test]
fn misspelled_layers_field_warns_and_fails_because_layers_is_required() {
    let root = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(sample_profile("aws-infra")).unwrap();
    assert!(text.contains("\n  layers:\n"));
    write(
        &root.path().join("p.yaml"),
        text.replace("\n  layers:\n", "\n  layer:\n"),
    );
    let output = validate(root.path(), &[Path::new("p.yaml")], &[]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(stdout(&output), "", "{}", describe(&output));
    assert_stderr_line(
        &output,
        "p.yaml: warning: spec.layer: unknown field; it is ignored (and the apiserver would prune it)",
    );
    assert_stderr_line_matching(
        &output,
        "p.yaml: error: spec: ",
        &["missing field `layers`"],
    );
}

#[test]
fn unknown_spec_field_is_only_a_warning() {
    let root = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(sample_profile("aws-infra")).unwrap();
    assert!(text.contains("\n  description:"));
    write(
        &root.path().join("p.yaml"),
        text.replace("\n  description:", "\n  descripton:"),
    );
    let output = validate(root.path(), &[Path::new("p.yaml")], &[]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(
        stdout(&output),
        "p.yaml: ok: ClusterProfile aws-infra version 1.0.0 (infra profile, 4 layers)\n"
    );
    assert_eq!(
        stderr_lines(&output),
        [
            "p.yaml: warning: spec.descripton: unknown field; it is ignored (and the apiserver would prune it)"
        ]
    );
}

#[test]
fn json_output_of_profile_validation() {
    let root = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(sample_profile("aws-infra")).unwrap();
    write(
        &root.path().join("typo.yaml"),
        text.replace("\n  description:", "\n  descripton:"),
    );
    let mut bad = read_yaml(&sample_profile("aws-infra"));
    bad["spec"]["layers"][1]["version"] = "1.99.0".into();
    write_yaml(&root.path().join("bad.yaml"), &bad);
    let output = validate(
        root.path(),
        &[Path::new("typo.yaml"), Path::new("bad.yaml")],
        &["-o", "json"],
    );
    assert_eq!(code(&output), 1, "{}", describe(&output));
    let reports: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", describe(&output)));
    assert_eq!(reports[0]["input"], "typo.yaml");
    assert_eq!(reports[0]["valid"], true);
    assert_eq!(
        reports[0]["findings"],
        serde_json::json!([{
            "severity": "warning",
            "subject": "spec.descripton",
            "message": "unknown field; it is ignored (and the apiserver would prune it)"
        }])
    );
    assert_eq!(reports[1]["input"], "bad.yaml");
    assert_eq!(reports[1]["valid"], false);
    let findings = reports[1]["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["severity"] == "error"
            && f["subject"] == "ClusterProfile aws-infra: spec.layers[1]"
            && f["message"]
                .as_str()
                .unwrap()
                .contains(r#"pack "kubernetes" has no version "1.99.0""#)),
        "{findings:#?}"
    );
}

#[test]
fn unknown_pack_version_lists_the_available_versions() {
    let root = tempfile::tempdir().unwrap();
    let packs = root.path().join("packs");
    for name in sample_pack_names() {
        copy_dir(&sample_pack(&name), &packs.join(&name));
    }
    // A second kubernetes version next to the first.
    let newer = packs.join("kubernetes-1.21.1");
    copy_dir(&sample_pack("kubernetes"), &newer);
    edit_pack_json(&newer, |pack| {
        pack.insert("version".into(), "1.21.1".into());
    });
    let mut profile = read_yaml(&sample_profile("aws-infra"));
    assert_eq!(profile["spec"]["layers"][1]["name"], "kubernetes");
    profile["spec"]["layers"][1]["version"] = "1.22.0".into();
    write_yaml(&root.path().join("p.yaml"), &profile);

    let output = run_in(
        root.path(),
        &["profile", "validate", "p.yaml", "--packs", "packs"],
    );
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(stdout(&output), "", "{}", describe(&output));
    assert_stderr_line(
        &output,
        r#"p.yaml: error: ClusterProfile aws-infra: spec.layers[1]: pack "kubernetes" has no version "1.22.0" in pack folder packs; versions there: 1.20.2, 1.21.1"#,
    );

    // Either version that exists is fine.
    profile["spec"]["layers"][1]["version"] = "1.21.1".into();
    write_yaml(&root.path().join("p.yaml"), &profile);
    let output = run_in(
        root.path(),
        &["profile", "validate", "p.yaml", "--packs", "packs"],
    );
    assert_eq!(code(&output), 0, "{}", describe(&output));
}

#[test]
fn infra_profile_without_a_csi_layer_fails() {
    let root = tempfile::tempdir().unwrap();
    let mut profile = read_yaml(&sample_profile("aws-infra"));
    let layers = profile["spec"]["layers"].as_sequence_mut().unwrap();
    let before = layers.len();
    layers.retain(|l| l["name"] != "csi-hostpath");
    assert_eq!(layers.len(), before - 1);
    write_yaml(&root.path().join("p.yaml"), &profile);
    let output = validate(root.path(), &[Path::new("p.yaml")], &[]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(stdout(&output), "", "{}", describe(&output));
    assert_eq!(
        stderr_lines(&output),
        [
            "p.yaml: error: ClusterProfile aws-infra: spec.layers: has no csi layer; an infra profile needs exactly one"
        ]
    );
}

#[test]
fn profile_usage_errors_exit_with_2() {
    let profile = sample_profile("aws-infra");
    let profile = profile.to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["profile", "validate", profile], "--packs <DIR>"),
        (&["profile", "validate", "--packs", "."], "<FILE>"),
        (
            &["profile", "render", "--profile", profile, "--packs", "."],
            "--cluster <FILE>",
        ),
    ];
    for (args, message) in cases {
        let output = strata().args(args).output().unwrap();
        assert_eq!(code(&output), 2, "{args:?}\n{}", describe(&output));
        assert!(
            stderr(&output).contains(message),
            "{args:?}: expected {message:?}\n{}",
            describe(&output)
        );
    }
}

// ---------------------------------------------------------------------------------------
// render

/// `strata profile render` of the AWS sample profiles with `cluster` (relative to `dir`).
fn render(dir: &Path, cluster: &str) -> Output {
    strata()
        .current_dir(dir)
        .args(["profile", "render", "--profile"])
        .arg(sample_profile("aws-infra"))
        .arg("--profile")
        .arg(sample_profile("ml-addons"))
        .args(["--cluster", cluster, "--packs"])
        .arg(samples().join("packs"))
        .output()
        .unwrap()
}

#[test]
fn the_sample_cluster_renders_in_install_order_with_merged_values() {
    let output = render(&samples(), "clusters/aws-ml.yaml");
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let stack: Value = serde_yaml::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not YAML ({e})\n{}", describe(&output)));
    assert_eq!(stack["cluster"], "aws-ml");
    let layers = stack["layers"].as_sequence().expect("layers is a list");
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "golden-centos-aws",
            "kubernetes",
            "cni-calico",
            "csi-hostpath",
            "istio",
            "kubeflow"
        ]
    );
    let orders: Vec<u64> = layers
        .iter()
        .map(|l| l["order"].as_u64().unwrap())
        .collect();
    assert_eq!(orders, [1, 2, 3, 4, 5, 6]);
    let layer = |name: &str| layers.iter().find(|l| l["name"] == name).unwrap();

    // Cluster override over the pack default (1).
    assert_eq!(
        layer("kubeflow")["values"]["manifests"]["kubeflow-operator"]["replicas"],
        2
    );
    assert_eq!(
        layer("kubeflow")["values"]["manifests"]["kubeflow-operator"]["image"],
        "docker.io/kubeflow/kfctl:v1.2.0",
        "keys the override does not name keep the pack's value"
    );
    // A null override removes the key; its siblings stay.
    let kubernetes = &layer("kubernetes")["values"];
    let kubelet_args = kubernetes["kubeadmconfig"]["kubeletExtraArgs"]
        .as_mapping()
        .expect("kubeletExtraArgs is still a mapping");
    assert!(
        !kubelet_args.contains_key("read-only-port"),
        "{kubelet_args:?}"
    );
    assert_eq!(
        kubernetes["kubeadmconfig"]["apiServer"]["extraArgs"]["profiling"],
        "false"
    );
    // Profile values over the pack default.
    assert_eq!(kubernetes["pack"]["podCIDR"], "172.16.0.0/16");
    assert_eq!(kubernetes["pack"]["serviceClusterIpRange"], "10.96.0.0/12");
    assert_eq!(
        layer("cni-calico")["values"]["manifests"]["calico"]["ipv4pool"]["cidr"],
        "172.16.0.0/16"
    );

    // Each layer's digest is the digest `pack inspect` gives the pack folder.
    for l in layers {
        let name = l["name"].as_str().unwrap();
        let inspected = inspect_json(&sample_pack(name));
        assert_eq!(l["digest"].as_str(), inspected["digest"].as_str(), "{name}");
        assert_eq!(
            l["version"].as_str(),
            inspected["version"].as_str(),
            "{name}"
        );
        assert!(
            l["digest"].as_str().unwrap().starts_with("sha256:"),
            "{name}"
        );
    }
}

/// The sample cluster changed by `edit`, rendered from a temporary folder as `cluster.yaml`.
fn render_edited(edit: impl FnOnce(&mut Value)) -> Output {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = read_yaml(&sample_cluster());
    edit(&mut cluster);
    write_yaml(&root.path().join("cluster.yaml"), &cluster);
    let output = render(root.path(), "cluster.yaml");
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(
        stdout(&output),
        "",
        "nothing is rendered\n{}",
        describe(&output)
    );
    output
}

#[test]
fn render_fails_when_the_cluster_selects_a_missing_profile_version() {
    let output = render_edited(|cluster| {
        assert_eq!(cluster["spec"]["profiles"][1]["name"], "ml-addons");
        cluster["spec"]["profiles"][1]["version"] = "9.9.9".into();
    });
    assert_stderr_line(
        &output,
        r#"cluster.yaml: error: spec.profiles[1]: profile "ml-addons" has no version "9.9.9"; versions given: 1.2.0"#,
    );
}

#[test]
fn render_fails_with_two_control_plane_nodes() {
    let output = render_edited(|cluster| {
        cluster["spec"]["nodePools"]["controlPlane"]["count"] = 2.into();
    });
    assert_eq!(
        stderr_lines(&output),
        [
            "cluster.yaml: error: spec.nodePools.controlPlane.count: is 2; expected 1, 3 or 5 (etcd needs an odd number of members)"
        ]
    );
}

#[test]
fn render_fails_when_the_cluster_cloud_does_not_match_the_profile() {
    let output = render_edited(|cluster| {
        cluster["spec"]["cloudType"] = "azure".into();
    });
    assert_stderr_line(
        &output,
        r#"cluster.yaml: error: spec.profiles[0]: profile aws-infra is for cloud "aws", but the cluster's cloudType is "azure""#,
    );
}

#[test]
fn render_reports_every_violated_rule_at_once() {
    let output = render_edited(|cluster| {
        cluster["spec"]["cloudType"] = "azure".into();
        cluster["spec"]["nodePools"]["controlPlane"]["count"] = 4.into();
    });
    assert_stderr_line(
        &output,
        "cluster.yaml: error: spec.nodePools.controlPlane.count: is 4; expected 1, 3 or 5 (etcd needs an odd number of members)",
    );
    assert_stderr_line(
        &output,
        r#"cluster.yaml: error: spec.profiles[0]: profile aws-infra is for cloud "aws", but the cluster's cloudType is "azure""#,
    );
}
