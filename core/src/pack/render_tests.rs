//! Tests of the render plan, on real pack folders.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::*;
use crate::profile::layer_values::pack_values;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("test YAML parses")
}

/// Writes a pack folder of `files` (path, text) plus pack.json and a logo, and loads it.
fn pack(temp: &Path, name: &str, version: &str, files: &[(&str, &str)]) -> Pack {
    let dir = write_pack(temp, name, version, files);
    let (pack, findings) = Pack::load(&dir);
    pack.unwrap_or_else(|| panic!("test pack loads: {findings:#?}"))
}

/// Writes a pack folder of `files` (path, text) plus pack.json and a logo.
fn write_pack(temp: &Path, name: &str, version: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = temp.join(name);
    let pack_json = format!(
        r#"{{"name": "{name}", "displayName": "X", "version": "{version}", "layer": "addon", "addonType": "monitoring"}}"#
    );
    write(&dir, "pack.json", &pack_json);
    fs::write(dir.join("logo.png"), PNG).unwrap();
    for (path, text) in files {
        write(&dir, path, text);
    }
    dir
}

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn generated(unit: &RenderUnit) -> &GeneratedChart {
    match &unit.chart {
        UnitChart::Generated(chart) => chart,
        other => panic!("not a generated chart: {other:?}"),
    }
}

fn file<'c>(chart: &'c GeneratedChart, path: &str) -> &'c str {
    &chart
        .files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no {path} in {chart:?}"))
        .content
}

const PLAIN: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n";

const VALUES: &str = "pack:\n  namespace: hello\nnamespace: top\nreplicas: 1\nmanifests:\n  hello-universe:\n    namespace: hello-universe\n    apiEnabled: false\n    config: {a: [1, 2]}\n  other:\n    replicas: 3\n";

#[test]
fn manifest_values_are_the_section_merged_over_the_whole() {
    let values = yaml(VALUES);
    let merged = manifest_values(&values, "hello-universe");
    // The section's keys, the section winning over the top level.
    assert_eq!(merged["namespace"], Value::from("hello-universe"));
    assert_eq!(merged["apiEnabled"], Value::from(false));
    assert_eq!(merged["config"], yaml("{a: [1, 2]}"));
    // The whole values stay, for whole-values lookups.
    assert_eq!(merged["replicas"], Value::from(1));
    assert_eq!(merged["pack"]["namespace"], Value::from("hello"));
    assert_eq!(
        merged["manifests"]["other"]["replicas"],
        Value::from(3),
        "other sections stay reachable as .Values.manifests.<name>"
    );
    // Another manifest gets its own section over the same top level.
    let other = manifest_values(&values, "other");
    assert_eq!(other["replicas"], Value::from(3));
    assert_eq!(other["namespace"], Value::from("top"));
    // A manifest without a section sees the whole values as they are.
    assert_eq!(manifest_values(&values, "absent"), values);
}

#[test]
fn a_section_merges_deeply_and_its_null_removes_a_key() {
    let values = yaml(
        "image: {repo: a, tag: '1'}\nkeep: 1\nmanifests:\n  app:\n    image: {tag: '2'}\n    keep: null\n",
    );
    let merged = manifest_values(&values, "app");
    assert_eq!(merged["image"], yaml("{repo: a, tag: '2'}"));
    assert!(merged.get("keep").is_none(), "{merged:?}");
}

#[test]
fn chart_values_are_the_charts_section() {
    let values = yaml("charts:\n  web: {replicaCount: 2}\n  empty: null\nreplicaCount: 9\n");
    assert_eq!(
        chart_values(&values, "web"),
        Some(yaml("{replicaCount: 2}"))
    );
    assert_eq!(chart_values(&values, "empty"), None);
    assert_eq!(chart_values(&values, "absent"), None);
    assert_eq!(chart_values(&yaml("charts: 5"), "web"), None);
}

#[test]
fn a_manifest_becomes_a_generated_chart_named_after_the_pack() {
    let temp = tempfile::tempdir().unwrap();
    let manifest =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.namespace | quote }}\n";
    let pack = pack(
        temp.path(),
        "hello",
        "1.2.3",
        &[
            ("values.yaml", VALUES),
            ("manifests/hello-universe.yaml", manifest),
            (
                "manifests/nested/plain.yml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n",
            ),
        ],
    );
    let units = render_units(&pack, &pack.values.document).unwrap();
    assert_eq!(units.len(), 2);
    let unit = &units[0];
    assert_eq!(unit.pack, "hello:1.2.3");
    assert_eq!(unit.source, "manifests/hello-universe.yaml");
    assert_eq!(unit.release, "hello");
    assert_eq!(unit.namespace, "hello");
    assert_eq!(unit.values, None, "the values are in the chart");
    let chart = generated(unit);
    assert_eq!(chart.name, "hello");
    assert_eq!(chart.files[0].path, "Chart.yaml");
    assert_eq!(
        file(chart, "Chart.yaml"),
        "apiVersion: v2\nname: hello\nversion: 1.2.3\nappVersion: \"1.2.3\"\ntype: application\n"
    );
    assert_eq!(chart.template, "templates/hello-universe.yaml");
    assert_eq!(
        file(chart, "templates/hello-universe.yaml"),
        manifest,
        "byte for byte"
    );
    let values: Value = serde_yaml::from_str(file(chart, "values.yaml")).unwrap();
    assert_eq!(
        values,
        manifest_values(&pack.values.document, "hello-universe")
    );
    // A nested manifest keeps its folders under templates/.
    let nested = generated(&units[1]);
    assert_eq!(nested.template, "templates/nested/plain.yml");
    assert_eq!(units[1].source, "manifests/nested/plain.yml");
    assert_eq!(
        units[1]
            .pack_path_of("hello/templates/nested/plain.yml")
            .as_deref(),
        Some("manifests/nested/plain.yml")
    );
    assert_eq!(
        units[1].pack_path_of("hello/templates/hello-universe.yaml"),
        None
    );
    assert_eq!(units[1].pack_path_of("hello/"), None);
}

#[test]
fn only_templated_manifests_need_rendering_to_be_checked() {
    let temp = tempfile::tempdir().unwrap();
    let pack = pack(
        temp.path(),
        "mixed",
        "1.0.0",
        &[
            ("values.yaml", "a: 1\n"),
            (
                "manifests/a.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n",
            ),
            (
                "manifests/b.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: b{{ .Values.a }}\n",
            ),
        ],
    );
    let units = templated_manifest_units(&pack, &pack.values.document).unwrap();
    let sources: Vec<&str> = units.iter().map(|u| u.source.as_str()).collect();
    assert_eq!(sources, ["manifests/b.yaml"]);
    assert!(is_templated("{{ x }}"));
    assert!(!is_templated("a: '{ not }'"));
}

#[test]
fn charts_render_as_they_are_with_their_section_and_come_first() {
    let temp = tempfile::tempdir().unwrap();
    let pack = pack(
        temp.path(),
        "web",
        "2.0",
        &[
            ("values.yaml", "charts:\n  web-app:\n    replicaCount: 2\n"),
            (
                "charts/webapp/Chart.yaml",
                "apiVersion: v2\nname: web-app\nversion: 0.1.0\n",
            ),
            (
                "charts/webapp/templates/cm.yaml",
                "x: {{ .Values.replicaCount }}\n",
            ),
            (
                "charts/other/Chart.yaml",
                "apiVersion: v2\nname: other\nversion: 0.1.0\n",
            ),
            (
                "manifests/z.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: z\n",
            ),
        ],
    );
    let units = render_units(&pack, &pack.values.document).unwrap();
    let sources: Vec<&str> = units.iter().map(|u| u.source.as_str()).collect();
    assert_eq!(
        sources,
        ["charts/other", "charts/webapp", "manifests/z.yaml"]
    );
    let web = &units[1];
    assert_eq!(web.release, "web-app");
    assert_eq!(
        web.namespace, DEFAULT_NAMESPACE,
        "the pack names no namespace"
    );
    assert_eq!(
        web.chart,
        UnitChart::InPack {
            name: "web-app".into(),
            path: "charts/webapp".into()
        }
    );
    assert_eq!(web.values, Some(yaml("replicaCount: 2")));
    assert_eq!(units[0].values, None);
    assert_eq!(
        web.pack_path_of("web-app/templates/cm.yaml").as_deref(),
        Some("charts/webapp/templates/cm.yaml")
    );
    // A pack version helm would refuse becomes 0.0.0; appVersion keeps it.
    assert_eq!(
        file(generated(&units[2]), "Chart.yaml"),
        "apiVersion: v2\nname: web\nversion: 0.0.0\nappVersion: \"2.0\"\ntype: application\n"
    );
}

#[test]
fn a_helper_file_name_is_refused_with_its_path() {
    let temp = tempfile::tempdir().unwrap();
    let pack = pack(
        temp.path(),
        "x",
        "1.0.0",
        &[
            ("values.yaml", ""),
            (
                "manifests/_crds.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n",
            ),
        ],
    );
    let error = render_units(&pack, &pack.values.document).unwrap_err();
    assert!(
        matches!(error, RenderPlanError::HelperFileName { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "pack x:1.0.0: manifests/_crds.yaml: helm does not render a template whose file name starts with '_' (it reads such files as helper definitions); rename the manifest"
    );
}

#[test]
fn a_pack_name_that_cannot_name_a_chart_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let mut pack = pack(
        temp.path(),
        "ok",
        "1.0.0",
        &[
            ("values.yaml", ""),
            (
                "manifests/a.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n",
            ),
        ],
    );
    pack.manifest.name = "team/app".into();
    let error = render_units(&pack, &pack.values.document).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the pack name \"team/app\" cannot name the generated Helm chart"),
        "{error}"
    );
}

#[test]
fn a_pack_renders_with_its_values_then_the_overrides_with_helms_rules() {
    let temp = tempfile::tempdir().unwrap();
    let pack = pack(
        temp.path(),
        "v",
        "1.0.0",
        &[
            ("values.yaml", "a: {x: 1, y: 2}\nlist: [1, 2]\ngone: 1\n"),
            ("manifests/a.yaml", PLAIN),
        ],
    );
    let merged = pack_values(
        &pack,
        &[],
        vec![
            yaml("a: {y: 20}\nlist: [3]\n"),
            yaml("gone: null\nnew: 1\n"),
        ],
    )
    .unwrap();
    assert_eq!(
        merged.values.unmasked(),
        &yaml("a: {x: 1, y: 20}\nlist: [3]\nnew: 1\n")
    );
    assert!(merged.problems.is_empty(), "{:?}", merged.problems);
    let defaults = pack_values(&pack, &[], Vec::new()).unwrap();
    assert_eq!(defaults.values.unmasked(), &pack.values.document);
}

/// The compat pack enables `expose-loadbalancer` and `logs-info`; `--preset` replaces the
/// pack's choice in its own group only.
#[test]
fn render_presets_replace_the_packs_choice_group_by_group() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/samples/compat-packs/presets-groups");
    let (pack, findings) = crate::pack::Pack::load(&dir);
    let pack = pack.unwrap_or_else(|| panic!("{findings:?}"));
    let gateway = |values: &Value| values["manifests"]["gateway"].clone();

    let defaults = pack_values(&pack, &[], Vec::new()).unwrap();
    let own = gateway(defaults.values.unmasked());
    assert_eq!(own["service"]["type"], yaml("LoadBalancer"));
    assert_eq!(own["logLevel"], yaml("info"));

    let chosen = pack_values(&pack, &["expose-ingress".into()], Vec::new()).unwrap();
    let chosen = gateway(chosen.values.unmasked());
    assert_eq!(chosen["service"]["type"], yaml("ClusterIP"));
    assert_eq!(chosen["ingress"]["host"], yaml("gateway.example"));
    assert_eq!(
        chosen["logLevel"],
        yaml("info"),
        "the other group keeps the pack's choice"
    );

    let errors = pack_values(&pack, &["expose-nothing".into()], Vec::new()).unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(
        text[0].starts_with("--preset names the preset expose-nothing, but presets.yaml has no preset \"expose-nothing\""),
        "{text:?}"
    );
}

#[test]
fn empty_values_are_an_empty_mapping_for_helm() {
    assert_eq!(yaml_text(&Value::Null).unwrap(), "{}\n");
    assert_eq!(yaml_text(&yaml("{}")).unwrap(), "{}\n");
    assert_eq!(yaml_text(&yaml("a: 1")).unwrap(), "a: 1\n");
}

#[test]
fn sample_manifest_packs_plan_one_unit_per_manifest() {
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples/packs");
    let (kubeflow, findings) = Pack::load(&samples.join("kubeflow"));
    let kubeflow = kubeflow.unwrap_or_else(|| panic!("{findings:#?}"));
    let units = render_units(&kubeflow, &kubeflow.values.document).unwrap();
    let sources: Vec<&str> = units.iter().map(|u| u.source.as_str()).collect();
    assert_eq!(
        sources,
        [
            "manifests/kubeflow-kfdef.yaml",
            "manifests/kubeflow-operator.yaml"
        ]
    );
    assert!(units.iter().all(|u| u.namespace == "kubeflow"));
}

#[test]
fn values_files_are_mappings_and_errors_name_the_file_and_line() {
    assert_eq!(parse_values_file("v.yaml", "a: 1\n").unwrap(), yaml("a: 1"));
    assert_eq!(
        parse_values_file("v.yaml", "# nothing\n").unwrap(),
        yaml("{}")
    );
    let error = parse_values_file("v.yaml", "a: 1\nb: [\n").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("values file v.yaml: not valid YAML at line 3, column 1:"),
        "{error}"
    );
    assert_eq!(
        parse_values_file("v.yaml", "- a\n")
            .unwrap_err()
            .to_string(),
        "values file v.yaml: is a list; expected a mapping of values"
    );
    assert_eq!(
        parse_values_file("v.yaml", "7\n").unwrap_err().to_string(),
        "values file v.yaml: is a single value; expected a mapping of values"
    );
}

const FOREIGN: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: injector\ndata:\n  t: \"{{ Template_Version_Check }}\"\n";

#[test]
fn a_verbatim_manifest_is_its_own_output_and_not_a_template_to_check() {
    let temp = tempfile::tempdir().unwrap();
    let pack = pack(
        temp.path(),
        "mesh",
        "1.0.0",
        &[
            ("manifests/injector.yaml", FOREIGN),
            ("manifests/settings.yaml", "a: {{ .Values.a }}\n"),
            (
                "values.yaml",
                "pack:\n  strata.dev/verbatim-manifests: [injector]\n",
            ),
        ],
    );
    assert_eq!(pack.values.verbatim_manifests, ["injector"]);
    // Loading checked the verbatim file's objects as a plain manifest's.
    assert!(
        pack.manifest_objects
            .iter()
            .any(|m| m.path == "manifests/injector.yaml" && m.objects.len() == 1),
        "{:?}",
        pack.manifest_objects
    );
    let values = pack.values.document.clone();
    let units = render_units(&pack, &values).unwrap();
    let sources: Vec<&str> = units.iter().map(|u| u.source.as_str()).collect();
    assert_eq!(
        sources,
        ["manifests/injector.yaml", "manifests/settings.yaml"]
    );
    assert_eq!(
        units[0].chart,
        UnitChart::Verbatim {
            output: format!("---\n# Source: mesh/manifests/injector.yaml (verbatim)\n{FOREIGN}")
        }
    );
    let templated = templated_manifest_units(&pack, &values).unwrap();
    let sources: Vec<&str> = templated.iter().map(|u| u.source.as_str()).collect();
    assert_eq!(sources, ["manifests/settings.yaml"]);
}

#[test]
fn a_layer_names_a_verbatim_manifest_and_a_wrong_name_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let pack = pack(
        temp.path(),
        "mesh",
        "1.0.0",
        &[("manifests/injector.yaml", FOREIGN), ("values.yaml", "")],
    );
    let layer = yaml("pack:\n  strata.dev/verbatim-manifests: [injector]\n");
    let units = render_units(&pack, &layer).unwrap();
    assert!(matches!(units[0].chart, UnitChart::Verbatim { .. }));

    for (values, problem) in [
        (
            "pack:\n  strata.dev/verbatim-manifests: [injektor]\n",
            "[0] is \"injektor\", which names no manifest of the pack; expected names of the pack's manifests: injector",
        ),
        (
            "pack:\n  strata.dev/verbatim-manifests: injector\n",
            "found a string (\"injector\"), expected a list of manifest names; expected names of the pack's manifests: injector",
        ),
    ] {
        let error = render_units(&pack, &yaml(values)).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("pack mesh:1.0.0: values pack.strata.dev/verbatim-manifests: {problem}")
        );
    }
}

#[test]
fn a_packs_own_verbatim_list_is_checked_when_it_loads() {
    let temp = tempfile::tempdir().unwrap();
    let dir = write_pack(
        temp.path(),
        "mesh",
        "1.0.0",
        &[
            ("manifests/injector.yaml", FOREIGN),
            (
                "values.yaml",
                "pack:\n  strata.dev/verbatim-manifests: [injector, missing]\n",
            ),
        ],
    );
    let (loaded, findings) = Pack::load(&dir);
    assert!(loaded.is_none());
    assert!(
        findings.contains(
            "values.yaml: pack.strata.dev/verbatim-manifests",
            "[1] is \"missing\", which names no manifest of the pack; expected names of the pack's manifests: injector"
        ),
        "{findings:#?}"
    );
}

#[test]
fn a_macro_strata_cannot_resolve_is_a_warning_on_the_pack() {
    let temp = tempfile::tempdir().unwrap();
    let dir = write_pack(
        temp.path(),
        "app",
        "1.0.0",
        &[
            ("manifests/app.yaml", PLAIN),
            (
                "values.yaml",
                "name: \"{{ .spectro.system.cluster.name }}\"\nurl: \"{{ .spectro.var.baseUrl }}\"\n",
            ),
        ],
    );
    let (loaded, findings) = Pack::load(&dir);
    assert!(loaded.is_some(), "{findings:#?}");
    let warnings: Vec<_> = findings.warnings().collect();
    assert_eq!(warnings.len(), 1, "{findings:#?}");
    assert_eq!(warnings[0].subject, "values.yaml");
    assert!(
        warnings[0]
            .message
            .starts_with("values url: .spectro.var.baseUrl: user variables")
            && warnings[0]
                .message
                .ends_with("a cluster whose layer keeps this value is refused"),
        "{}",
        warnings[0].message
    );
}
