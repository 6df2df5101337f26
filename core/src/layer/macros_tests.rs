#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::*;

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

fn facts() -> ClusterFacts {
    ClusterFacts {
        name: "edge-1".into(),
        namespace: "strata-edge-1".into(),
        uid: "5f0c1e5e-0000-4000-8000-000000000001".into(),
        pod_cidrs: vec!["192.168.0.0/16".into(), "fd00:10::/56".into()],
        service_cidrs: vec!["10.96.0.0/12".into()],
        endpoint_host: "10.0.0.10".into(),
        endpoint_port: 6443,
        kubernetes_version: "v1.30.4".into(),
        cloud_type: ClusterCloud::Vsphere,
    }
}

fn uses(values: &Value) -> Vec<(String, String)> {
    find_macros(values)
        .into_iter()
        .map(|u| (u.key, u.reference))
        .collect()
}

#[test]
fn finds_the_forms_published_packs_write() {
    let values = yaml(
        r#"
pack:
  namespace: "cluster-{{ .spectro.system.cluster.uid }}"
charts:
  app:
    clusterName: "{{ .spectro.system.cluster.name }}"
    version: "{{.spectro.system.kubernetes.version}}"
    image: "v{{ .spectro.system.kubernetes.version | substr 0 4 }}"
    vip: '{{ .spectro.system.cluster.kubevip }}'
    args:
      - --token={{ .spectro.var.TOKEN }}
      - "{{ .spectro.pack.kubernetes.version | default \"1.19.0\"}} and {{ $.spectro.system.cloud.type }}"
    replicas: 3
"#,
    );
    assert_eq!(
        uses(&values),
        [
            ("pack.namespace", ".spectro.system.cluster.uid"),
            ("charts.app.clusterName", ".spectro.system.cluster.name"),
            ("charts.app.version", ".spectro.system.kubernetes.version"),
            ("charts.app.image", ".spectro.system.kubernetes.version"),
            ("charts.app.vip", ".spectro.system.cluster.kubevip"),
            ("charts.app.args[0]", ".spectro.var.TOKEN"),
            ("charts.app.args[1]", ".spectro.pack.kubernetes.version"),
            ("charts.app.args[1]", ".spectro.system.cloud.type"),
        ]
        .map(|(k, r)| (k.to_string(), r.to_string()))
    );
}

#[test]
fn only_actions_hold_macros() {
    let values = yaml(
        r#"
plain: "see .spectro.system.cluster.name in the docs"
literal: '{{ ".spectro.system.cluster.name }}" | quote }}'
raw: '{{ `{{ .spectro.system.x }}` }}'
comment: '{{/* .spectro.system.cluster.name */}}'
field: '{{ .Values.spectro.system.cluster.name }} {{ $v.spectro.x }} {{ (f).spectro.x }}'
prometheus: '{{ $labels.instance }} is down'
unclosed: '{{ .spectro.system.cluster.name'
"#,
    );
    assert_eq!(uses(&values), []);
}

#[test]
fn check_accepts_known_system_macros_and_names_every_other() {
    let values = yaml(
        r#"
a: "{{ .spectro.system.cluster.name }}-{{ .spectro.system.cluster.endpoint.port }}"
b: "{{ .spectro.system.user.name }}"
c: ["{{ .spectro.var.NGC_API_KEY }}"]
d: {e: "{{ .spectro.pack.kubernetes.version }}"}
f: "{{ .spectro.system.cluster }}"
g: "{{ .spectro.other }}"
"#,
    );
    let problems = check_macros(&values);
    let found: Vec<(&str, &str, MacroProblemKind)> = problems
        .iter()
        .map(|p| (p.key.as_str(), p.reference.as_str(), p.kind))
        .collect();
    assert_eq!(
        found,
        [
            (
                "b",
                ".spectro.system.user.name",
                MacroProblemKind::UnknownSystemMacro
            ),
            (
                "c[0]",
                ".spectro.var.NGC_API_KEY",
                MacroProblemKind::UserVariable
            ),
            (
                "d.e",
                ".spectro.pack.kubernetes.version",
                MacroProblemKind::PackReference
            ),
            (
                "f",
                ".spectro.system.cluster",
                MacroProblemKind::UnknownSystemMacro
            ),
            ("g", ".spectro.other", MacroProblemKind::Unknown),
        ]
    );
    let message = problems[1].to_string();
    assert!(
        message.starts_with("values c[0]: .spectro.var.NGC_API_KEY: user variables (.spectro.var.*) are not supported by Strata yet;"),
        "{message}"
    );
    assert!(
        message.ends_with(".spectro.system.kubernetes.version, .spectro.system.cloud.type"),
        "{message}"
    );
    assert!(problems[0].to_string().contains(
        "the system macros are .spectro.system.cluster.name, .spectro.system.cluster.uid,"
    ));
    assert!(
        problems[2]
            .to_string()
            .contains("copy the value into this layer's values instead")
    );
}

#[test]
fn macro_values_hold_every_system_macro() {
    let values = macro_values(&facts());
    let system = &values["spectro"]["system"];
    for known in SYSTEM_MACROS {
        let found = known
            .name
            .split('.')
            .try_fold(system, |value, part| value.get(part))
            .unwrap_or_else(|| panic!("{} is not in the values", known.name));
        assert!(
            matches!(found, Value::String(_) | Value::Number(_)),
            "{}: {found:?}",
            known.name
        );
    }
    assert_eq!(
        values,
        yaml(
            r#"
spectro:
  system:
    cluster:
      name: edge-1
      uid: 5f0c1e5e-0000-4000-8000-000000000001
      namespace: strata-edge-1
      podCidr: 192.168.0.0/16
      podCidrs: 192.168.0.0/16,fd00:10::/56
      serviceCidr: 10.96.0.0/12
      serviceCidrs: 10.96.0.0/12
      endpoint: {host: 10.0.0.10, port: 6443}
      kubevip: 10.0.0.10
    kubernetes: {version: 1.30.4}
    cloud: {type: vsphere}
"#
        )
    );
}

#[test]
fn check_and_values_agree() {
    let every: Vec<String> = SYSTEM_MACROS
        .iter()
        .map(|m| format!("{{{{ .spectro.system.{} }}}}", m.name))
        .collect();
    assert!(check_macros(&Value::from(every.join(" "))).is_empty());
}

#[test]
fn helm_form_rewrites_references_inside_actions_only() {
    for (text, expected) in [
        (
            "{{ .spectro.system.cluster.name }}",
            "{{ .Values.spectro.system.cluster.name }}",
        ),
        (
            "{{.spectro.system.kubernetes.version}}",
            "{{.Values.spectro.system.kubernetes.version}}",
        ),
        (
            "v{{ .spectro.system.kubernetes.version | substr 0 4 }}",
            "v{{ .Values.spectro.system.kubernetes.version | substr 0 4 }}",
        ),
        (
            "a {{- .spectro.system.cluster.uid -}} b",
            "a {{- .Values.spectro.system.cluster.uid -}} b",
        ),
        (
            "{{ $.spectro.system.cloud.type }}",
            "{{ $.Values.spectro.system.cloud.type }}",
        ),
        (
            "{{ default \"1.19\" .spectro.var.X }} and .spectro.system.cluster.name",
            "{{ default \"1.19\" .Values.spectro.var.X }} and .spectro.system.cluster.name",
        ),
        (
            "{{ printf \"%s }} .spectro.a\" .spectro.system.cluster.name }}",
            "{{ printf \"%s }} .spectro.a\" .Values.spectro.system.cluster.name }}",
        ),
        (
            "{{ printf `.spectro.a` (.spectro.b) }}",
            "{{ printf `.spectro.a` (.Values.spectro.b) }}",
        ),
        (
            "{{ eq '.' '\\'' | and .spectro.x }}",
            "{{ eq '.' '\\'' | and .Values.spectro.x }}",
        ),
        (
            "{{/* .spectro.a */}}{{ .spectro.b }}",
            "{{/* .spectro.a */}}{{ .Values.spectro.b }}",
        ),
        ("{{- /* .spectro.a */ -}}", "{{- /* .spectro.a */ -}}"),
        (
            "{{ .x.spectro.a }} {{ $v.spectro.a }} {{ .spectrox }}",
            "{{ .x.spectro.a }} {{ $v.spectro.a }} {{ .spectrox }}",
        ),
        (
            "{{ .spectro.a }} {{ .spectro.b",
            "{{ .Values.spectro.a }} {{ .spectro.b",
        ),
        ("{{ \"unclosed }} .spectro.a", "{{ \"unclosed }} .spectro.a"),
        (
            "naïve {{ .spectro.ü }} ✓ {{ .spectroü }}",
            "naïve {{ .Values.spectro.ü }} ✓ {{ .spectroü }}",
        ),
    ] {
        assert_eq!(helm_form(text), expected, "{text}");
    }
}

#[test]
fn helm_form_is_idempotent_on_published_forms() {
    let text = "cluster-{{ .spectro.system.cluster.uid }} v{{ .spectro.system.kubernetes.version | substr 0 4 }}";
    let once = helm_form(text);
    assert_eq!(helm_form(&once), once);
}

proptest! {
    #[test]
    fn text_without_actions_is_left_alone(text in "[^{]*") {
        prop_assert_eq!(helm_form(&text), text);
    }

    #[test]
    fn helm_form_only_adds_values_prefixes(text in "[ .a-z{}\"`$|-]{0,40}") {
        let rewritten = helm_form(&text);
        prop_assert_eq!(rewritten.replace(".Values.spectro", ".spectro"), text.replace(".Values.spectro", ".spectro"));
    }
}
