//! `strata pack validate | inspect | archive`, run as an operator would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;

use common::*;

// ---------------------------------------------------------------------------------------
// The helpers themselves.

// ---------------------------------------------------------------------------------------
// validate: the samples.

#[test]
fn every_sample_pack_validates() {
    let names = sample_pack_names();
    assert!(
        names.len() >= 9,
        "expected the sample packs, found {names:?}"
    );
    let mut args = vec!["pack", "validate"];
    args.extend(names.iter().map(String::as_str));
    let output = run_in(&samples().join("packs"), &args);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let out = stdout(&output);
    for name in &names {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("{name}: ok: {name}:"))),
            "no ok line for {name}\n{}",
            describe(&output)
        );
    }
    assert!(
        out.contains("istio: ok: istio:1.6.2 (addon layer)\n"),
        "{out}"
    );
    assert!(
        out.contains("kubernetes: ok: kubernetes:1.20.2 (k8s layer)\n"),
        "{out}"
    );
    assert!(
        !stderr(&output).contains(": error: "),
        "no sample pack may have an error\n{}",
        describe(&output)
    );
}

#[test]
fn seed_os_packs_warn_about_each_trailing_comma_with_its_line() {
    let packs = samples().join("packs");
    let cases = [
        ("golden-centos-aws", [10, 19]),
        ("golden-centos-azure", [10, 19]),
        ("golden-centos-vsphere", [10, 19]),
        ("golden-ubuntu-vsphere", [9, 18]),
    ];
    for (name, lines) in cases {
        let output = run_in(&packs, &["pack", "validate", name]);
        assert_eq!(
            code(&output),
            0,
            "{name}: warnings only\n{}",
            describe(&output)
        );
        assert!(
            stdout(&output).starts_with(&format!("{name}: ok: {name}:")),
            "{}",
            describe(&output)
        );
        let expected: Vec<String> = lines
            .iter()
            .map(|line| {
                format!(
                    "{name}: warning: pack.json: line {line}: trailing comma before a closing bracket; \
                     accepted, but strict JSON parsers reject it"
                )
            })
            .collect();
        assert_eq!(
            stderr_lines(&output),
            expected,
            "{name}\n{}",
            describe(&output)
        );
        // The reported lines really are where the trailing commas are.
        let text = fs::read_to_string(packs.join(name).join("pack.json")).unwrap();
        let file_lines: Vec<&str> = text.lines().collect();
        for line in lines {
            assert!(
                file_lines[line - 1].trim_end().ends_with(','),
                "{name}:{line}"
            );
            let next = file_lines[line].trim();
            assert!(
                next.starts_with('}') || next.starts_with(']'),
                "{name}:{}",
                line + 1
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// validate: one rule at a time, on a pack that is otherwise valid.

/// `strata pack validate demo` in `root`; asserts it fails, prints no ok line and no JSON,
/// and returns the run.
fn validate_invalid(root: &Path) -> std::process::Output {
    let output = run_in(root, &["pack", "validate", "demo"]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(
        stdout(&output),
        "",
        "an invalid pack has no ok line\n{}",
        describe(&output)
    );
    output
}

/// `strata pack validate demo` in `root`; asserts it passes and returns the run.
fn validate_valid(root: &Path) -> std::process::Output {
    let output = run_in(root, &["pack", "validate", "demo"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_eq!(
        stdout(&output),
        "demo: ok: demo:1.0.0 (addon layer)\n",
        "{}",
        describe(&output)
    );
    output
}

#[test]
fn the_demo_pack_is_valid_without_findings() {
    let root = tempfile::tempdir().unwrap();
    demo_pack(root.path(), "demo");
    let output = validate_valid(root.path());
    assert_eq!(stderr(&output), "", "{}", describe(&output));
}

#[test]
fn missing_pack_json_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    fs::remove_file(dir.join("pack.json")).unwrap();
    let output = validate_invalid(root.path());
    assert_stderr_line(
        &output,
        "demo: error: pack.json: is missing; every pack needs one (pack metadata)",
    );
}

#[test]
fn missing_values_yaml_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    fs::remove_file(dir.join("values.yaml")).unwrap();
    let output = validate_invalid(root.path());
    assert_stderr_line(
        &output,
        "demo: error: values.yaml: is missing; every pack needs one (pack values (it may be empty))",
    );
}

#[test]
fn missing_pack_folder_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let output = validate_invalid(root.path());
    assert_eq!(
        stderr_lines(&output),
        ["demo: error: does not exist; expected a pack folder holding pack.json and values.yaml"]
    );
}

#[test]
fn invalid_layer_is_an_error_listing_the_layers() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    edit_pack_json(&dir, |pack| {
        pack.insert("layer".into(), "plugin".into());
        pack.remove("addonType");
    });
    let output = validate_invalid(root.path());
    assert_stderr_line(
        &output,
        r#"demo: error: pack.json: layer: found "plugin", expected one of "kernel", "os", "k8s", "cni", "csi", "addon""#,
    );
}

#[test]
fn addon_without_addon_type_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    edit_pack_json(&dir, |pack| {
        pack.remove("addonType");
    });
    let output = validate_invalid(root.path());
    assert_stderr_line_matching(
        &output,
        r#"demo: error: pack.json: addonType: is missing; a pack with layer "addon" must set it to one of "logging", "monitoring", "#,
        &[r#""servicemesh""#, r#""system app""#],
    );
}

#[test]
fn chart_path_leaving_the_pack_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    edit_pack_json(&dir, |pack| {
        pack.insert("charts".into(), serde_json::json!(["../x"]));
    });
    let output = validate_invalid(root.path());
    assert_stderr_line(
        &output,
        r#"demo: error: pack.json: charts[0]: "../x" contains '..'; expected a path inside the pack folder"#,
    );
}

#[cfg(unix)]
#[test]
fn declared_manifest_symlinked_outside_the_pack_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    write(&root.path().join("outside.yaml"), DEMO_MANIFEST);
    std::os::unix::fs::symlink("../outside.yaml", dir.join("link.yaml")).unwrap();
    edit_pack_json(&dir, |pack| {
        pack.insert(
            "kubeManifests".into(),
            serde_json::json!(["manifests/app.yaml", "link.yaml"]),
        );
    });
    let output = validate_invalid(root.path());
    assert_stderr_line(
        &output,
        r#"demo: error: pack.json: kubeManifests[1]: "link.yaml" resolves outside the pack folder; expected a file inside it"#,
    );
}

#[test]
fn chart_path_to_a_missing_file_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    edit_pack_json(&dir, |pack| {
        pack.insert("charts".into(), serde_json::json!(["charts/missing.tgz"]));
    });
    let output = validate_invalid(root.path());
    assert_stderr_line(
        &output,
        r#"demo: error: pack.json: charts[0]: "charts/missing.tgz" does not exist in the pack; expected a file inside the pack folder"#,
    );
}

#[test]
fn cni_pack_without_charts_or_manifests_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    fs::remove_dir_all(dir.join("manifests")).unwrap();
    write(&dir.join("values.yaml"), "");
    edit_pack_json(&dir, |pack| {
        pack.insert("layer".into(), "cni".into());
        pack.remove("addonType");
        pack.remove("kubeManifests");
    });
    let output = validate_invalid(root.path());
    assert_eq!(
        stderr_lines(&output),
        [
            "demo: error: a cni pack installs into the cluster, so it needs Helm charts under charts/ \
             or manifests under manifests/; found neither"
        ],
        "{}",
        describe(&output)
    );
}

#[test]
fn addon_pack_without_charts_or_manifests_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    fs::remove_dir_all(dir.join("manifests")).unwrap();
    write(&dir.join("values.yaml"), "pack:\n  namespace: demo\n");
    edit_pack_json(&dir, |pack| {
        pack.remove("kubeManifests");
    });
    let output = validate_invalid(root.path());
    assert_stderr_line_matching(
        &output,
        "demo: error: an addon",
        &[
            " pack installs into the cluster, so it needs Helm charts under charts/ or manifests under manifests/; found neither",
        ],
    );
}

#[test]
fn manifest_without_metadata_name_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    write(
        &dir.join("manifests/app.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels:\n    app: demo\ndata:\n  a: b\n",
    );
    let output = validate_invalid(root.path());
    assert_stderr_line(
        &output,
        "demo: error: manifests/app.yaml: document 1: kind ConfigMap: metadata.name is missing; every Kubernetes object needs one",
    );
}

#[test]
fn a_templated_manifest_without_helm_is_a_not_rendered_warning() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    write(
        &dir.join("manifests/app.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  key: \"{{ .Values.missing.key }}\"\n",
    );
    let output = validate_valid(root.path());
    assert_eq!(
        stderr_lines(&output),
        [
            "demo: warning: manifests/app.yaml: has template actions ({{ … }}) that were not rendered, so its objects were not checked: no helm binary was found (set STRATA_HELM or put helm on PATH to check it, or see its output with `strata pack render`)"
        ],
        "{}",
        describe(&output)
    );
}

#[test]
fn render_without_helm_says_how_to_get_one() {
    let root = tempfile::tempdir().unwrap();
    demo_pack(root.path(), "demo");
    let output = run_in(root.path(), &["pack", "render", "demo"]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "strata: error: no helm binary to render with: set STRATA_HELM to one or put helm on PATH\n"
    );
}

#[test]
fn render_names_a_preset_the_pack_lacks_and_a_bad_values_file() {
    let root = tempfile::tempdir().unwrap();
    demo_pack(root.path(), "demo");
    let output = run_in(
        root.path(),
        &["pack", "render", "demo", "--preset", "small"],
    );
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(
        stderr(&output),
        "strata: error: pack demo:1.0.0: the presets cannot be applied:\n  --preset names the preset small, but the pack has no presets.yaml\n"
    );
    write(&root.path().join("bad.yaml"), "a: [\n");
    let output = run_in(root.path(), &["pack", "render", "demo", "-f", "bad.yaml"]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert!(
        stderr(&output)
            .starts_with("strata: error: values file bad.yaml: not valid YAML at line 2"),
        "{}",
        describe(&output)
    );
}

/// A required value the pack leaves unset makes rendering fail with the key and the
/// pack's hint (before helm is looked for), and the value set with --values lets it pass
/// that check; a secret value never appears in the message.
#[test]
fn render_names_a_required_value_left_unset_with_its_hint() {
    let pack = samples().join("compat-packs/schema-values");
    let root = tempfile::tempdir().unwrap();
    let output = run_in(root.path(), &["pack", "render", pack.to_str().unwrap()]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    let error = stderr(&output);
    assert!(
        error.contains(
            "pack schema-values:1.0.0: its values do not satisfy its schema.yaml (set them with --values FILE):\n  manifests.console.licenseKey is required and not set (hint: The license key from your account page.)"
        ),
        "{error}"
    );
    write(
        &root.path().join("set.yaml"),
        "manifests:\n  console:\n    licenseKey: KEY-1\n    apiToken: s3cretTOKEN0123456789\n",
    );
    let output = run_in(
        root.path(),
        &["pack", "render", pack.to_str().unwrap(), "-f", "set.yaml"],
    );
    // The tests' CLI runs without helm: the schema check passed, rendering is what fails.
    let error = stderr(&output);
    assert!(
        error.ends_with("strata: error: no helm binary to render with: set STRATA_HELM to one or put helm on PATH\n"),
        "{error}"
    );
    assert!(!error.contains("s3cretTOKEN0123456789"), "{error}");
}

#[test]
fn bad_image_reference_is_an_error_naming_its_index() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    write(
        &dir.join("values.yaml"),
        DEMO_VALUES.replace(
            "      - docker.io/library/nginx:1.25\n",
            "      - docker.io/library/nginx:1.25\n      - docker.io/Library/Nginx:1.25\n",
        ),
    );
    let output = validate_invalid(root.path());
    assert_stderr_line(
        &output,
        r#"demo: error: values.yaml: pack.content.images[1]: "docker.io/Library/Nginx:1.25" is not a valid image reference: the repository path "Library/Nginx" has uppercase letters; repository paths must be lowercase; expected e.g. docker.io/library/nginx:1.25"#,
    );
    assert_eq!(
        stderr_lines(&output).len(),
        1,
        "only the bad image\n{}",
        describe(&output)
    );
}

#[test]
fn values_yaml_that_is_not_yaml_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    write(&dir.join("values.yaml"), "pack: [unclosed\n");
    let output = validate_invalid(root.path());
    assert_stderr_line_matching(
        &output,
        "demo: error: values.yaml: not valid YAML at line ",
        &[],
    );
}

#[test]
fn values_yaml_that_is_not_a_mapping_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    write(&dir.join("values.yaml"), "- a\n- b\n");
    let output = validate_invalid(root.path());
    assert_stderr_line(
        &output,
        "demo: error: values.yaml: found a list, expected a mapping of values at the top level",
    );
}

#[test]
fn chart_folder_without_chart_yaml_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    write(
        &dir.join("charts/mychart/templates/deployment.yaml"),
        "kind: Deployment\n",
    );
    let output = validate_invalid(root.path());
    assert_stderr_line(
        &output,
        "demo: error: charts/mychart: is a folder without Chart.yaml; expected an unpacked Helm chart",
    );
}

// ---------------------------------------------------------------------------------------
// validate: warnings keep the pack valid.

#[test]
fn missing_logo_is_a_warning() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    fs::remove_file(dir.join("logo.png")).unwrap();
    let output = validate_valid(root.path());
    assert_eq!(
        stderr_lines(&output),
        ["demo: warning: logo.png: is missing; a pack needs a logo.png to be published"]
    );
}

#[test]
fn values_section_for_a_chart_the_pack_lacks_is_a_warning() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    write(
        &dir.join("values.yaml"),
        format!("{DEMO_VALUES}charts:\n  nope:\n    replicas: 2\n"),
    );
    let output = validate_valid(root.path());
    assert_eq!(
        stderr_lines(&output),
        [
            "demo: warning: values.yaml: charts.nope: no chart named nope in charts/; the pack has no charts"
        ]
    );
}

#[test]
fn values_section_for_a_chart_a_chart_pack_lacks_lists_its_charts() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("istio");
    copy_dir(&sample_pack("istio"), &dir);
    let values = fs::read_to_string(dir.join("values.yaml")).unwrap();
    write(
        &dir.join("values.yaml"),
        format!("{values}  nope:\n    replicaCount: 2\n"),
    );
    let output = run_in(root.path(), &["pack", "validate", "istio"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    assert_stderr_line(
        &output,
        "istio: warning: values.yaml: charts.nope: no chart named nope in charts/; the pack has: istio-controlplane, istio-operator",
    );
}

#[test]
fn unknown_pack_json_field_is_a_warning() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    edit_pack_json(&dir, |pack| {
        pack.insert("homepage".into(), "https://example.com".into());
        pack.insert("Version".into(), "2.0.0".into());
    });
    let output = validate_valid(root.path());
    let known = "Known fields here: name, displayName, version, layer, group, cloudTypes, cloudType, \
                 eol, addonType, addonSubType, ansibleRoles, charts, kubeManifests, annotations, \
                 constraints";
    assert_stderr_line(
        &output,
        &format!("demo: warning: pack.json: homepage: unknown field; it is ignored. {known}"),
    );
    assert_stderr_line(
        &output,
        &format!(
            "demo: warning: pack.json: Version: unknown field (did you mean \"version\"? field names are case-sensitive); it is ignored. {known}"
        ),
    );
    assert_eq!(stderr_lines(&output).len(), 2, "{}", describe(&output));
}

// ---------------------------------------------------------------------------------------
// validate: usage errors, JSON, several folders.

#[test]
fn usage_errors_exit_with_2() {
    let root = tempfile::tempdir().unwrap();
    demo_pack(root.path(), "demo");
    let cases: [(&[&str], &str); 5] = [
        (&["pack", "validate"], "<DIR>"),
        (
            &["pack", "validate", "--bogus", "demo"],
            "unexpected argument '--bogus'",
        ),
        (
            &["pack", "validate", "-o", "xml", "demo"],
            "invalid value 'xml'",
        ),
        (
            &["pack", "frobnicate", "demo"],
            "unrecognized subcommand 'frobnicate'",
        ),
        (&["pack", "archive", "demo"], "--output <FILE>"),
    ];
    for (args, message) in cases {
        let output = run_in(root.path(), args);
        assert_eq!(code(&output), 2, "{args:?}\n{}", describe(&output));
        assert!(
            stderr(&output).contains(message),
            "{args:?}: expected {message:?}\n{}",
            describe(&output)
        );
        assert!(
            stderr(&output).starts_with("error: "),
            "{args:?}\n{}",
            describe(&output)
        );
        assert_eq!(stdout(&output), "", "{args:?}");
    }
}

#[test]
fn json_output_reports_valid_and_invalid_packs() {
    let root = tempfile::tempdir().unwrap();
    demo_pack(root.path(), "good");
    let bad = demo_pack(root.path(), "bad");
    edit_pack_json(&bad, |pack| {
        pack.remove("addonType");
    });
    fs::remove_file(bad.join("logo.png")).unwrap();
    for flag in ["--output", "-o"] {
        let output = run_in(
            root.path(),
            &["pack", "validate", flag, "json", "good", "bad"],
        );
        assert_eq!(code(&output), 1, "{}", describe(&output));
        let reports: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", describe(&output)));
        let reports = reports.as_array().expect("an array of reports");
        assert_eq!(reports.len(), 2);

        let good = &reports[0];
        assert_eq!(good["input"], "good");
        assert_eq!(good["valid"], true);
        assert_eq!(good["name"], "demo");
        assert_eq!(good["version"], "1.0.0");
        assert_eq!(good["findings"], serde_json::json!([]));

        let bad = &reports[1];
        assert_eq!(bad["input"], "bad");
        assert_eq!(bad["valid"], false);
        let findings = bad["findings"].as_array().unwrap();
        assert_eq!(findings.len(), 2, "{findings:#?}");
        let error = findings
            .iter()
            .find(|f| f["severity"] == "error")
            .expect("an error finding");
        assert_eq!(error["subject"], "pack.json: addonType");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("is missing; a pack with layer \"addon\" must set it to one of"),
            "{error}"
        );
        assert!(findings.iter().any(|f| f
            == &serde_json::json!({
                "severity": "warning",
                "subject": "logo.png",
                "message": "is missing; a pack needs a logo.png to be published"
            })));
    }
}

#[test]
fn json_output_of_a_valid_sample_pack() {
    let output = run_in(
        &samples().join("packs"),
        &["pack", "validate", "-o", "json", "golden-centos-aws"],
    );
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let reports: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(reports[0]["valid"], true);
    assert_eq!(reports[0]["name"], "golden-centos-aws");
    assert_eq!(reports[0]["version"], "7.7.1908");
    let subjects: Vec<&str> = reports[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["severity"], "warning");
            f["subject"].as_str().unwrap()
        })
        .collect();
    assert_eq!(subjects, ["pack.json: line 10", "pack.json: line 19"]);
}

#[test]
fn several_folders_with_one_bad_fail_but_report_the_good_one() {
    let root = tempfile::tempdir().unwrap();
    demo_pack(root.path(), "good");
    let bad = demo_pack(root.path(), "bad");
    fs::remove_file(bad.join("values.yaml")).unwrap();
    let output = run_in(root.path(), &["pack", "validate", "good", "bad"]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(
        stdout(&output),
        "good: ok: demo:1.0.0 (addon layer)\n",
        "{}",
        describe(&output)
    );
    assert_eq!(
        stderr_lines(&output),
        [
            "bad: error: values.yaml: is missing; every pack needs one (pack values (it may be empty))"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// inspect and archive.

#[test]
fn inspect_shows_the_pack_in_text() {
    let output = run_in(&samples().join("packs"), &["pack", "inspect", "kubeflow"]);
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let out = stdout(&output);
    let field = |name: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} line\n{out}"))
            .trim()
            .to_string()
    };
    assert_eq!(field("name"), "kubeflow");
    assert_eq!(field("version"), "1.2.0");
    assert_eq!(field("layer"), "addon (ai)");
    assert_eq!(field("content"), "manifests");
    assert_eq!(field("charts"), "-");
    assert_eq!(
        field("manifests"),
        "manifests/kubeflow-kfdef.yaml, manifests/kubeflow-operator.yaml"
    );
    assert_eq!(field("images"), "docker.io/kubeflow/kfctl:v1.2.0");
    let digest = field("digest");
    assert_eq!(digest, inspect_json(&sample_pack("kubeflow"))["digest"]);
}

#[test]
fn inspect_of_a_folder_and_of_its_archive_agree() {
    let out = tempfile::tempdir().unwrap();
    for name in ["istio", "kubeflow", "golden-centos-aws"] {
        let archive = out.path().join(format!("{name}.tar.gz"));
        let output = strata()
            .args(["pack", "archive"])
            .arg(sample_pack(name))
            .arg("-o")
            .arg(&archive)
            .output()
            .unwrap();
        assert_eq!(code(&output), 0, "{name}\n{}", describe(&output));
        let bytes = fs::read(&archive).unwrap();

        let folder = inspect_json(&sample_pack(name));
        let packed = inspect_json(&archive);
        assert_eq!(
            folder["digest"],
            sha256(&gunzip(&bytes)),
            "{name}: the folder's digest is its archive's content digest (of the tar stream)"
        );
        assert_eq!(
            folder, packed,
            "{name}: inspecting the archive shows the same pack"
        );
        assert_eq!(folder["name"], name);
        for key in [
            "version",
            "layer",
            "content",
            "charts",
            "manifests",
            "images",
            "digest",
        ] {
            assert!(
                !folder[key].is_null(),
                "{name}: {key} missing from {folder:#}"
            );
        }
    }
    let istio = inspect_json(&sample_pack("istio"));
    assert_eq!(istio["version"], "1.6.2");
    assert_eq!(istio["layer"], "addon");
    assert_eq!(istio["content"], "charts");
    assert_eq!(
        istio["charts"],
        serde_json::json!([
            "istio-controlplane 1.6.2 (charts/istio-controlplane.tgz)",
            "istio-operator 1.6.2 (charts/istio-operator.tgz)"
        ])
    );
    assert_eq!(istio["manifests"], serde_json::json!([]));
    assert_eq!(
        istio["images"],
        serde_json::json!([
            "docker.io/istio/pilot:1.6.2",
            "docker.io/istio/operator:1.6.2"
        ])
    );
    let os = inspect_json(&sample_pack("golden-centos-aws"));
    assert_eq!(os["layer"], "os");
    assert_eq!(os["content"], "none");
}

#[test]
fn inspect_of_a_file_that_is_not_an_archive_fails_clearly() {
    let root = tempfile::tempdir().unwrap();
    write(
        &root.path().join("notes.txt"),
        "just some notes, not a pack\n",
    );
    let output = run_in(root.path(), &["pack", "inspect", "notes.txt"]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(stdout(&output), "", "{}", describe(&output));
    assert_stderr_line_matching(
        &output,
        "notes.txt: error: is not a usable pack archive: ",
        &[],
    );
}

#[test]
fn archive_is_deterministic_and_prints_its_digest() {
    let root = tempfile::tempdir().unwrap();
    let pack = root.path().join("kubeflow");
    copy_dir(&sample_pack("kubeflow"), &pack);

    let first = run_in(
        root.path(),
        &["pack", "archive", "kubeflow", "-o", "first.tar.gz"],
    );
    assert_eq!(code(&first), 0, "{}", describe(&first));
    let first_bytes = fs::read(root.path().join("first.tar.gz")).unwrap();
    assert_eq!(
        stdout(&first),
        format!(
            "{}  first.tar.gz\npack digest: {}\n",
            sha256(&first_bytes),
            sha256(&gunzip(&first_bytes))
        )
    );

    let second = run_in(
        root.path(),
        &["pack", "archive", "kubeflow", "--output", "second.tar.gz"],
    );
    assert_eq!(code(&second), 0, "{}", describe(&second));
    let second_bytes = fs::read(root.path().join("second.tar.gz")).unwrap();
    assert_eq!(
        first_bytes, second_bytes,
        "archiving twice gives the same bytes"
    );

    // A copy under another folder name, with other modification times.
    let copy = root.path().join("copied");
    copy_dir(&pack, &copy);
    touch_all(&copy, long_ago());
    let third = run_in(
        root.path(),
        &["pack", "archive", "copied", "-o", "third.tar.gz"],
    );
    assert_eq!(code(&third), 0, "{}", describe(&third));
    let third_bytes = fs::read(root.path().join("third.tar.gz")).unwrap();
    assert_eq!(
        first_bytes, third_bytes,
        "a copy with other mtimes archives to the same bytes"
    );

    // The sample folder itself (never touched here) too.
    assert_eq!(
        inspect_json(&sample_pack("kubeflow"))["digest"],
        sha256(&gunzip(&first_bytes))
    );
}

#[test]
fn archive_of_an_invalid_pack_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_pack(root.path(), "demo");
    fs::remove_file(dir.join("pack.json")).unwrap();
    let out = root.path().join("out");
    fs::create_dir(&out).unwrap();
    let output = run_in(
        root.path(),
        &["pack", "archive", "demo", "-o", "out/demo.tar.gz"],
    );
    assert_eq!(code(&output), 1, "{}", describe(&output));
    assert_eq!(stdout(&output), "", "{}", describe(&output));
    assert_stderr_line(
        &output,
        "demo: error: pack.json: is missing; every pack needs one (pack metadata)",
    );
    let left: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "nothing is written, not even a temporary file: {left:?}"
    );
}
