//! The chart that resolves a layer's system macros with Helm's engine (see
//! [`crate::layer::macros`] for why Helm's): every values string holding a `.spectro.`
//! reference becomes a named template, and one template prints them all as the data of a
//! ConfigMap (helm builds what it renders as Kubernetes objects, so the output must be
//! one), which is read back into the values. Strings without a reference are never
//! rendered.
//!
//! ```text
//! templates/_macros.tpl   {{ define "strata-macro-0" }}v{{ .Values.spectro.system.kubernetes.version | substr 0 4 }}{{ end }}
//! templates/values.yaml   kind: ConfigMap … data:
//!                           strata-macro-0: {{ include "strata-macro-0" . | toJson }}
//! values.yaml             spectro: {system: {...}}        (the cluster's facts)
//! ```

use serde_yaml::Value;
use thiserror::Error;

use crate::layer::macros::{ClusterFacts, find_macros, helm_form, macro_values};
use crate::pack::render::{ChartFile, GeneratedChart, chart_yaml, yaml_text};

/// The generated chart's name: Helm's messages name its templates after it.
pub const MACRO_CHART: &str = "strata-macros";
const OUTPUT_TEMPLATE: &str = "templates/values.yaml";

/// One step into a values tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValuesStep {
    Key(Value),
    Index(usize),
}

/// A values string to resolve: where it is, and its key as messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroString {
    pub path: Vec<ValuesStep>,
    pub key: String,
}

/// The chart to render, and the strings it resolves, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct MacroChart {
    pub chart: GeneratedChart,
    pub strings: Vec<MacroString>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MacroChartError {
    #[error("the cluster's facts cannot be written as values for helm: {0}")]
    Facts(String),
    #[error("helm's output of the values macros is not what was asked for: {0}")]
    Output(String),
}

/// The chart resolving the macros of `values` with `facts`; `None` when no string of
/// `values` holds a macro.
pub fn macro_chart(
    values: &Value,
    facts: &ClusterFacts,
) -> Result<Option<MacroChart>, MacroChartError> {
    let mut strings = Vec::new();
    let mut texts = Vec::new();
    collect(
        values,
        &mut Vec::new(),
        String::new(),
        &mut strings,
        &mut texts,
    );
    if strings.is_empty() {
        return Ok(None);
    }
    let mut helpers = String::new();
    let mut output =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {MACRO_CHART}\ndata:\n");
    for (index, text) in texts.iter().enumerate() {
        // No trim markers: the template's text is the string's, whitespace and all.
        helpers.push_str(&format!(
            "{{{{ define \"{}\" }}}}{}{{{{ end }}}}\n",
            template_name(index),
            helm_form(text)
        ));
        output.push_str(&format!(
            "  {name}: {{{{ include \"{name}\" . | toJson }}}}\n",
            name = template_name(index)
        ));
    }
    let facts =
        yaml_text(&macro_values(facts)).map_err(|e| MacroChartError::Facts(e.to_string()))?;
    let chart = GeneratedChart {
        name: MACRO_CHART.to_string(),
        files: vec![
            ChartFile {
                path: "Chart.yaml".into(),
                content: chart_yaml(MACRO_CHART, "0.0.0"),
            },
            ChartFile {
                path: "values.yaml".into(),
                content: facts,
            },
            ChartFile {
                path: "templates/_macros.tpl".into(),
                content: helpers,
            },
            ChartFile {
                path: OUTPUT_TEMPLATE.into(),
                content: output,
            },
        ],
        template: OUTPUT_TEMPLATE.into(),
        manifest: None,
    };
    Ok(Some(MacroChart { chart, strings }))
}

/// `values` with each of the chart's strings replaced by what helm printed for it.
pub fn resolved_values(
    values: &Value,
    chart: &MacroChart,
    helm_output: &str,
) -> Result<Value, MacroChartError> {
    let printed: Value = serde_yaml::from_str(helm_output)
        .map_err(|e| MacroChartError::Output(format!("not YAML: {e}")))?;
    let printed = printed.get("data").cloned().unwrap_or(Value::Null);
    let mut resolved = values.clone();
    for (index, string) in chart.strings.iter().enumerate() {
        let name = template_name(index);
        let Some(Value::String(text)) = printed.get(name.as_str()) else {
            return Err(MacroChartError::Output(format!(
                "{name} (values {}) is missing or not a string",
                string.key
            )));
        };
        if let Some(slot) = slot(&mut resolved, &string.path) {
            *slot = Value::String(text.clone());
        }
    }
    Ok(resolved)
}

fn template_name(index: usize) -> String {
    format!("strata-macro-{index}")
}

fn collect(
    value: &Value,
    path: &mut Vec<ValuesStep>,
    key: String,
    strings: &mut Vec<MacroString>,
    texts: &mut Vec<String>,
) {
    match value {
        Value::String(text) if !find_macros(value).is_empty() => {
            strings.push(MacroString {
                path: path.clone(),
                key,
            });
            texts.push(text.clone());
        }
        Value::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(ValuesStep::Index(index));
                collect(item, path, format!("{key}[{index}]"), strings, texts);
                path.pop();
            }
        }
        Value::Mapping(mapping) => {
            for (name, item) in mapping {
                let shown = name.as_str().map_or_else(
                    || format!("{name:?}"),
                    |text| {
                        if key.is_empty() {
                            text.to_string()
                        } else {
                            format!("{key}.{text}")
                        }
                    },
                );
                path.push(ValuesStep::Key(name.clone()));
                collect(item, path, shown, strings, texts);
                path.pop();
            }
        }
        Value::Tagged(tagged) => collect(&tagged.value, path, key, strings, texts),
        _ => {}
    }
}

fn slot<'v>(value: &'v mut Value, path: &[ValuesStep]) -> Option<&'v mut Value> {
    let mut at = value;
    for step in path {
        at = match (step, at) {
            (ValuesStep::Key(key), Value::Mapping(mapping)) => mapping.get_mut(key)?,
            (ValuesStep::Index(index), Value::Sequence(items)) => items.get_mut(*index)?,
            (step, Value::Tagged(tagged)) => slot(&mut tagged.value, std::slice::from_ref(step))?,
            _ => return None,
        };
    }
    Some(at)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::crd::workload_cluster::ClusterCloud;

    fn facts() -> ClusterFacts {
        ClusterFacts {
            name: "edge-1".into(),
            namespace: "strata-edge-1".into(),
            uid: "uid-1".into(),
            pod_cidrs: vec!["10.244.0.0/16".into()],
            service_cidrs: vec!["10.96.0.0/12".into()],
            endpoint_host: "10.0.0.5".into(),
            endpoint_port: 6443,
            kubernetes_version: "v1.20.2".into(),
            cloud_type: ClusterCloud::Sim,
        }
    }

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn only_strings_with_macros_become_templates() {
        let values = yaml(
            "a: \"{{ .spectro.system.cluster.name }}\"\nrules: ['{{ $labels.instance }}', 'v{{ .spectro.system.kubernetes.version | substr 0 4 }}']\nplain: text\nn: 3\n",
        );
        let chart = macro_chart(&values, &facts()).unwrap().unwrap();
        let keys: Vec<&str> = chart.strings.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["a", "rules[1]"]);
        let helpers = &chart.chart.files[2].content;
        assert_eq!(
            helpers,
            "{{ define \"strata-macro-0\" }}{{ .Values.spectro.system.cluster.name }}{{ end }}\n\
             {{ define \"strata-macro-1\" }}v{{ .Values.spectro.system.kubernetes.version | substr 0 4 }}{{ end }}\n"
        );
        assert_eq!(
            chart.chart.files[3].content,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strata-macros\ndata:\n\
             \x20 strata-macro-0: {{ include \"strata-macro-0\" . | toJson }}\n\
             \x20 strata-macro-1: {{ include \"strata-macro-1\" . | toJson }}\n"
        );
        assert!(chart.chart.files[1].content.contains("kubevip: 10.0.0.5"));
        assert_eq!(macro_chart(&yaml("a: b\n"), &facts()).unwrap(), None);
    }

    #[test]
    fn helms_output_goes_back_where_each_string_was() {
        let values = yaml(
            "a: \"{{ .spectro.system.cluster.name }}\"\nrules: ['{{ $labels.instance }}', 'v{{ .spectro.system.kubernetes.version | substr 0 4 }}']\n",
        );
        let chart = macro_chart(&values, &facts()).unwrap().unwrap();
        let output = "---\n# Source: strata-macros/templates/values.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strata-macros\ndata:\n  strata-macro-0: \"edge-1\"\n  strata-macro-1: \"v1.20\"\n";
        let resolved = resolved_values(&values, &chart, output).unwrap();
        assert_eq!(
            resolved,
            yaml("a: edge-1\nrules: ['{{ $labels.instance }}', v1.20]\n")
        );
        let error = resolved_values(&values, &chart, "data:\n  strata-macro-0: x\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "helm's output of the values macros is not what was asked for: strata-macro-1 (values rules[1]) is missing or not a string"
        );
    }
}
