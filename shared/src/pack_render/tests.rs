//! Tests of running helm, with shell scripts standing in for it: they record what they
//! were given and print what a test needs. e2e's `pack_render` tests run the real engine.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_core::finding::Severity;

use super::*;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A stand-in helm: a shell script with this body.
fn script(dir: &Path, body: &str) -> Helm {
    let path = dir.join("fake-helm");
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    Helm::new(path)
}

/// A helm that prints its arguments, one per line, then every file of the chart it was
/// given and the values file, each after a `== <path>` line.
fn echoing_helm(dir: &Path) -> Helm {
    script(
        dir,
        r#"for a in "$@"; do echo "arg: $a"; done
chart="$3"
if [ -d "$chart" ]; then
  (cd "$chart" && find . -type f | sort | while read -r f; do echo "== $f"; cat "$f"; done)
fi
if [ "$6" = "--values" ]; then echo "== values"; cat "$7"; fi"#,
    )
}

fn pack(temp: &Path, files: &[(&str, &str)]) -> Pack {
    let dir = temp.join("hello");
    let write = |path: &str, bytes: &[u8]| {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    };
    write(
        "pack.json",
        br#"{"name": "hello", "displayName": "Hello", "version": "1.0.0", "layer": "addon", "addonType": "monitoring"}"#,
    );
    write("logo.png", PNG);
    for (path, text) in files {
        write(path, text.as_bytes());
    }
    let (pack, findings) = Pack::load(&dir);
    pack.unwrap_or_else(|| panic!("{findings:#?}"))
}

const TEMPLATE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name }}\n";
const VALUES: &str = "pack:\n  namespace: hello-ns\nmanifests:\n  app:\n    name: from-section\ncharts:\n  web:\n    replicaCount: 2\n";

fn lines_starting(output: &str, prefix: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix(prefix).map(str::to_string))
        .collect()
}

#[test]
fn a_manifest_renders_as_a_generated_chart_in_the_packs_namespace() {
    let temp = tempfile::tempdir().unwrap();
    let pack = pack(
        temp.path(),
        &[("values.yaml", VALUES), ("manifests/app.yaml", TEMPLATE)],
    );
    let helm = echoing_helm(temp.path());
    let rendered = render_pack(&helm, &pack, &pack.values.document).unwrap();
    assert_eq!(rendered.len(), 1);
    assert_eq!(rendered[0].source, "manifests/app.yaml");
    let output = &rendered[0].output;
    let args = lines_starting(output, "arg: ");
    assert_eq!(args.len(), 5, "{output}");
    assert_eq!(args[0], "template");
    assert_eq!(args[1], "hello", "the release is the pack's name");
    assert!(args[2].ends_with("/chart"), "{output}");
    assert_eq!(args[3..], ["--namespace", "hello-ns"]);
    assert!(output.contains("== ./templates/app.yaml\n"), "{output}");
    assert!(
        output.contains(TEMPLATE),
        "the manifest byte for byte\n{output}"
    );
    assert!(
        output.contains("== ./Chart.yaml\napiVersion: v2\nname: hello\nversion: 1.0.0\n"),
        "{output}"
    );
    assert!(
        output.contains("name: from-section"),
        "the section's values\n{output}"
    );
    // The generated chart is gone once rendered.
    assert!(!Path::new(&args[2]).exists());
}

#[test]
fn a_chart_renders_from_the_pack_with_its_section_as_values() {
    let temp = tempfile::tempdir().unwrap();
    let pack = pack(
        temp.path(),
        &[
            ("values.yaml", VALUES),
            (
                "charts/web/Chart.yaml",
                "apiVersion: v2\nname: web\nversion: 0.1.0\n",
            ),
        ],
    );
    let helm = echoing_helm(temp.path());
    let rendered = render_pack(&helm, &pack, &pack.values.document).unwrap();
    let output = &rendered[0].output;
    let args = lines_starting(output, "arg: ");
    assert_eq!(args[1], "web", "the release is the chart's name");
    assert_eq!(PathBuf::from(&args[2]), pack.dir.join("charts/web"));
    assert_eq!(args[3..5], ["--namespace", "hello-ns"]);
    assert_eq!(args[5], "--values");
    assert!(output.contains("== values\nreplicaCount: 2\n"), "{output}");
}

#[test]
fn helms_error_is_located_in_the_pack() {
    let temp = tempfile::tempdir().unwrap();
    let pack = pack(
        temp.path(),
        &[("values.yaml", VALUES), ("manifests/app.yaml", TEMPLATE)],
    );
    let helm = script(
        temp.path(),
        "echo 'Error: execution error at (hello/templates/app.yaml:4:11): name is required' >&2\nexit 1",
    );
    let error = render_pack(&helm, &pack, &pack.values.document).unwrap_err();
    assert_eq!(
        error.to_string(),
        "pack hello:1.0.0: manifests/app.yaml line 4 column 11: execution error at (manifests/app.yaml:4:11): name is required"
    );
    let findings = check_templates(&pack, Some(&helm));
    assert!(
        findings.contains(
            "manifests/app.yaml",
            "line 4, column 11: execution error at (manifests/app.yaml:4:11): name is required"
        ),
        "{findings:#?}"
    );
}

#[test]
fn a_helm_that_hangs_is_stopped_at_the_deadline() {
    let temp = tempfile::tempdir().unwrap();
    let pack = pack(
        temp.path(),
        &[("values.yaml", VALUES), ("manifests/app.yaml", TEMPLATE)],
    );
    let helm = script(temp.path(), "exec sleep 30").with_timeout(Duration::from_millis(200));
    match render_pack(&helm, &pack, &pack.values.document) {
        Err(RenderError::TimedOut { pack, unit, .. }) => {
            assert_eq!(
                (pack.as_str(), unit.as_str()),
                ("hello:1.0.0", "manifests/app.yaml")
            );
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn a_helm_that_cannot_start_is_named() {
    let temp = tempfile::tempdir().unwrap();
    let pack = pack(
        temp.path(),
        &[("values.yaml", VALUES), ("manifests/app.yaml", TEMPLATE)],
    );
    let helm = Helm::new(temp.path().join("no-such-helm"));
    let error = render_pack(&helm, &pack, &pack.values.document).unwrap_err();
    assert!(matches!(error, RenderError::Run { .. }), "{error:?}");
    assert!(
        error.to_string().starts_with(&format!(
            "pack hello:1.0.0: manifests/app.yaml: cannot run helm ({})",
            temp.path().join("no-such-helm").display()
        )),
        "{error}"
    );
}

#[test]
fn without_helm_each_templated_manifest_is_a_not_rendered_warning() {
    let temp = tempfile::tempdir().unwrap();
    let pack = pack(
        temp.path(),
        &[
            ("values.yaml", VALUES),
            ("manifests/app.yaml", TEMPLATE),
            (
                "manifests/plain.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n",
            ),
            (
                "charts/web/Chart.yaml",
                "apiVersion: v2\nname: web\nversion: 0.1.0\n",
            ),
        ],
    );
    let findings = check_templates(&pack, None);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let warning = findings.iter().next().unwrap();
    assert_eq!(warning.severity, Severity::Warning);
    assert_eq!(warning.subject, "manifests/app.yaml");
    assert!(warning.message.starts_with(NOT_RENDERED), "{warning:?}");
    assert!(
        warning
            .message
            .contains("set STRATA_HELM or put helm on PATH"),
        "{warning:?}"
    );
}

#[test]
fn rendered_objects_are_checked_as_plain_manifests_are() {
    let temp = tempfile::tempdir().unwrap();
    let pack = pack(
        temp.path(),
        &[("values.yaml", VALUES), ("manifests/app.yaml", TEMPLATE)],
    );
    let helm = script(
        temp.path(),
        "printf -- '---\\n# Source: hello/templates/app.yaml\\napiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  labels: {}\\n'",
    );
    let findings = check_templates(&pack, Some(&helm));
    assert!(
        findings.contains(
            "manifests/app.yaml (rendered): document 1",
            "kind ConfigMap: metadata.name is missing"
        ),
        "{findings:#?}"
    );
    assert!(findings.has_errors());
    // Nothing rendered at all is the pack's choice of defaults: a warning.
    let helm = script(
        temp.path(),
        "printf -- '---\\n# Source: hello/templates/app.yaml\\n'",
    );
    let findings = check_templates(&pack, Some(&helm));
    assert!(!findings.has_errors(), "{findings:#?}");
    assert!(findings.contains(
        "manifests/app.yaml (rendered)",
        "renders no Kubernetes objects with the pack's default values"
    ));
}
