//! A manifest pack's files under `manifests/`: (multi-document) Kubernetes YAML, with a
//! small value substitution so one manifest serves several clusters.
//!
//! # Value substitution
//!
//! Before a manifest is applied, [`substitute`] replaces every lookup of the form
//!
//! ```text
//! {{ .Values.<key>.<key>… }}
//! ```
//!
//! with a value from `.Values`, the pack's values document after the layers are merged
//! (the whole `values.yaml`, profile values and cluster overrides). A manifest usually
//! reads its own section: `replicas: {{ .Values.manifests.kubeflow-operator.replicas }}`.
//!
//! - The path is one or more keys separated by `.`; each key is `[A-Za-z0-9_-]+` (dashes
//!   are allowed because manifest names have them). Whitespace inside the braces is
//!   optional: `{{.Values.a}}` and `{{  .Values.a  }}` are the same lookup.
//! - Only lookups are supported. Anything else inside `{{ … }}` (functions, pipes, `if`,
//!   `range`, Helm's `{{-` trimming, roots other than `.Values`) is an error naming the
//!   expression and its line, as is a `{{` without a closing `}}`. This is deliberately
//!   not a template language: a manifest that needs logic belongs in a Helm chart.
//! - A string, number or boolean is inserted as its plain text. Strings are not quoted,
//!   so the author decides: `image: "{{ .Values.image }}"` or `replicas: {{ .Values.n }}`.
//! - A mapping or list is inserted as compact JSON, which is valid YAML flow style:
//!   `resources: {{ .Values.resources }}` becomes `resources: {"limits":{"cpu":"1"}}`.
//! - A missing key, a lookup through a value that is not a mapping, and a `null` value
//!   are errors naming the full path (`.Values.manifests.kubeflow-operator.replicas`) and
//!   the line.
//! - Text without `{{` passes through untouched, so a manifest without lookups is applied
//!   byte for byte as written. There is no escape for a literal `{{`.
//!
//! # Checks
//!
//! [`check_manifest`] reads the substituted text and checks that each document is a
//! Kubernetes object with `apiVersion`, `kind` and `metadata.name`, so that a broken
//! manifest is caught when the pack is validated rather than when it is applied.

use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use thiserror::Error;

use crate::finding::Findings;
use crate::pack::values::{
    WHOLE_FILE, describe_kind, describe_kind_and_value, namespace_name_problem, yaml_error_message,
};

/// Why a manifest's value substitution failed. Lines are 1-based lines of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SubstitutionError {
    #[error("line {line}: `{{{{` is not closed by `}}}}`")]
    Unclosed { line: usize },

    #[error(
        "line {line}: `{{{{ {expression} }}}}` is not supported; only value lookups of the form `{{{{ .Values.<key>.<key> }}}}` are"
    )]
    UnsupportedExpression { line: usize, expression: String },

    #[error("line {line}: {path} is not set: {parent} has no key `{key}`")]
    Missing {
        line: usize,
        path: String,
        parent: String,
        key: String,
    },

    #[error("line {line}: {path} cannot be looked up: {parent} is {found}, not a mapping")]
    NotAMapping {
        line: usize,
        path: String,
        parent: String,
        found: &'static str,
    },

    #[error("line {line}: {path} is null; give it a value or remove the lookup")]
    Null { line: usize, path: String },

    #[error("line {line}: {path} cannot be inserted as JSON: {reason}")]
    NotRepresentable {
        line: usize,
        path: String,
        reason: String,
    },
}

const VALUES_ROOT: &str = ".Values";

/// Replaces every `{{ .Values.<path> }}` in `text` with its value from `values` (see the
/// module documentation for the rules). Stops at the first error.
pub fn substitute(text: &str, values: &Value) -> Result<String, SubstitutionError> {
    let mut output = String::with_capacity(text.len());
    let mut rest = text;
    let mut rest_starts_at_line = 1;
    while let Some(open) = rest.find("{{") {
        let (before, from_open) = rest.split_at(open);
        output.push_str(before);
        let line = rest_starts_at_line + count_newlines(before);
        let after_open = &from_open[2..];
        let Some(close) = after_open.find("}}") else {
            return Err(SubstitutionError::Unclosed { line });
        };
        let inside = &after_open[..close];
        // A second `{{` before the `}}` means the first one was never closed.
        if inside.contains("{{") {
            return Err(SubstitutionError::Unclosed { line });
        }
        let expression = inside.trim();
        let Some(keys) = lookup_keys(expression) else {
            return Err(SubstitutionError::UnsupportedExpression {
                line,
                expression: expression.to_string(),
            });
        };
        let value = look_up(values, &keys, line)?;
        output.push_str(&render(value, &keys, line)?);
        rest_starts_at_line = line + count_newlines(inside);
        rest = &after_open[close + 2..];
    }
    output.push_str(rest);
    Ok(output)
}

fn count_newlines(text: &str) -> usize {
    text.bytes().filter(|&byte| byte == b'\n').count()
}

/// The keys of a `.Values.<key>.<key>` expression, or `None` when it is anything else.
fn lookup_keys(expression: &str) -> Option<Vec<&str>> {
    let path = expression.strip_prefix(VALUES_ROOT)?.strip_prefix('.')?;
    let keys: Vec<&str> = path.split('.').collect();
    let all_valid = keys.iter().all(|key| {
        !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    all_valid.then_some(keys)
}

fn values_path(keys: &[&str]) -> String {
    let mut path = VALUES_ROOT.to_string();
    for key in keys {
        path.push('.');
        path.push_str(key);
    }
    path
}

fn untagged(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untagged(&tagged.value),
        other => other,
    }
}

fn look_up<'v>(
    values: &'v Value,
    keys: &[&str],
    line: usize,
) -> Result<&'v Value, SubstitutionError> {
    let mut current = values;
    for (depth, key) in keys.iter().enumerate() {
        let Value::Mapping(mapping) = untagged(current) else {
            return Err(SubstitutionError::NotAMapping {
                line,
                path: values_path(keys),
                parent: values_path(&keys[..depth]),
                found: describe_kind(untagged(current)),
            });
        };
        current = mapping
            .get(*key)
            .ok_or_else(|| SubstitutionError::Missing {
                line,
                path: values_path(keys),
                parent: values_path(&keys[..depth]),
                key: (*key).to_string(),
            })?;
    }
    Ok(current)
}

fn render(value: &Value, keys: &[&str], line: usize) -> Result<String, SubstitutionError> {
    match untagged(value) {
        Value::Null => Err(SubstitutionError::Null {
            line,
            path: values_path(keys),
        }),
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        compound @ (Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_)) => {
            serde_json::to_string(compound).map_err(|error| SubstitutionError::NotRepresentable {
                line,
                path: values_path(keys),
                reason: error.to_string(),
            })
        }
    }
}

/// One Kubernetes object found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeObjectRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    /// 0-based position of the YAML document in the file, empty documents included; the
    /// objects of a `kind: List` share their document's index. Findings call this document
    /// `document <document_index + 1>`.
    pub document_index: usize,
}

/// Reads a manifest (after [`substitute`]) and lists its objects. Each YAML document must
/// be an object with non-empty `apiVersion`, `kind` and `metadata.name`; empty documents
/// are skipped and the items of a `kind: List` are checked as objects of their own.
/// Findings have the subject `document <n>` (1-based), `document <n> items[<i>]` for a
/// List's items, or [`WHOLE_FILE`] when the file holds no objects at all.
pub fn check_manifest(text: &str) -> (Vec<KubeObjectRef>, Findings) {
    let mut objects = Vec::new();
    let mut findings = Findings::new();
    for (document_index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let subject = format!("document {}", document_index + 1);
        let value = match Value::deserialize(document) {
            Ok(value) => value,
            Err(error) => {
                findings.error(subject, yaml_error_message(&error));
                // libyaml cannot resynchronise after an error, so later documents are unread.
                break;
            }
        };
        match value {
            Value::Null => {}
            Value::Mapping(mapping) => {
                if string_field(&mapping, "kind") == Some("List") {
                    check_list(&mapping, &subject, document_index, &mut objects, &mut findings);
                } else if let Some(object) = check_object(&mapping, &subject, document_index, &mut findings) {
                    objects.push(object);
                }
            }
            other => findings.error(
                subject,
                format!(
                    "found {}, expected a Kubernetes object (a mapping with apiVersion, kind and metadata)",
                    describe_kind(&other)
                ),
            ),
        }
    }
    if objects.is_empty() && !findings.has_errors() {
        findings.error(
            WHOLE_FILE,
            "no Kubernetes objects found; expected at least one YAML document with apiVersion, kind and metadata.name",
        );
    }
    (objects, findings)
}

fn string_field<'m>(mapping: &'m Mapping, field: &str) -> Option<&'m str> {
    match mapping.get(field) {
        Some(Value::String(text)) => Some(text),
        _ => None,
    }
}

fn check_list(
    list: &Mapping,
    subject: &str,
    document_index: usize,
    objects: &mut Vec<KubeObjectRef>,
    findings: &mut Findings,
) {
    let kind_context = "kind List: ";
    // kubectl refuses a List without apiVersion too, so it is required here as well.
    required_string(list, "apiVersion", subject, kind_context, findings);
    let items = match list.get("items") {
        Some(Value::Sequence(items)) => items,
        Some(other) => {
            findings.error(
                subject,
                format!(
                    "kind List: items is {}, expected a list of Kubernetes objects",
                    describe_kind(other)
                ),
            );
            return;
        }
        None => {
            findings.error(
                subject,
                "kind List: items is missing; a List holds its objects in items",
            );
            return;
        }
    };
    for (item_index, item) in items.iter().enumerate() {
        let item_subject = format!("{subject} items[{item_index}]");
        match item {
            Value::Mapping(mapping) => {
                if let Some(object) = check_object(mapping, &item_subject, document_index, findings) {
                    objects.push(object);
                }
            }
            other => findings.error(
                item_subject,
                format!(
                    "found {}, expected a Kubernetes object (a mapping with apiVersion, kind and metadata)",
                    describe_kind(other)
                ),
            ),
        }
    }
}

/// Checks one object; every missing field is reported, not just the first.
fn check_object(
    object: &Mapping,
    subject: &str,
    document_index: usize,
    findings: &mut Findings,
) -> Option<KubeObjectRef> {
    let kind = required_string(object, "kind", subject, "", findings);
    let kind_context = kind.map_or_else(String::new, |kind| format!("kind {kind}: "));
    let api_version = required_string(object, "apiVersion", subject, &kind_context, findings);
    let (name, namespace) = match object.get("metadata") {
        None => {
            findings.error(
                subject,
                format!(
                    "{kind_context}metadata.name is missing; every Kubernetes object needs one"
                ),
            );
            (None, Ok(None))
        }
        Some(Value::Mapping(metadata)) => (
            required_string(metadata, "name", subject, &kind_context, findings),
            check_object_namespace(metadata, subject, &kind_context, findings),
        ),
        Some(other) => {
            findings.error(
                subject,
                format!(
                    "{kind_context}metadata is {}, expected a mapping with a name",
                    describe_kind(other)
                ),
            );
            (None, Ok(None))
        }
    };
    Some(KubeObjectRef {
        api_version: api_version?.to_string(),
        kind: kind?.to_string(),
        name: name?.to_string(),
        namespace: namespace.ok()?,
        document_index,
    })
}

/// A field every object must have as a non-empty string; `metadata.` is prefixed in the
/// message for `name`, which lives there.
fn required_string<'m>(
    mapping: &'m Mapping,
    field: &str,
    subject: &str,
    kind_context: &str,
    findings: &mut Findings,
) -> Option<&'m str> {
    let shown = if field == "name" {
        format!("metadata.{field}")
    } else {
        field.to_string()
    };
    match mapping.get(field) {
        None | Some(Value::Null) => {
            findings.error(
                subject,
                format!("{kind_context}{shown} is missing; every Kubernetes object needs one"),
            );
            None
        }
        Some(Value::String(text)) if text.is_empty() => {
            findings.error(
                subject,
                format!("{kind_context}{shown} is empty; every Kubernetes object needs one"),
            );
            None
        }
        Some(Value::String(text)) => Some(text),
        Some(other) => {
            findings.error(
                subject,
                format!(
                    "{kind_context}{shown} is {}, expected a non-empty string",
                    describe_kind_and_value(other)
                ),
            );
            None
        }
    }
}

/// `metadata.namespace` is optional (cluster-scoped objects, or the pack's namespace is
/// used), but when given it must be a namespace name. `Err` means it was reported.
fn check_object_namespace(
    metadata: &Mapping,
    subject: &str,
    kind_context: &str,
    findings: &mut Findings,
) -> Result<Option<String>, ()> {
    match metadata.get("namespace") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(namespace)) => match namespace_name_problem(namespace) {
            None => Ok(Some(namespace.clone())),
            Some(problem) => {
                findings.error(
                    subject,
                    format!(
                        "{kind_context}metadata.namespace \"{namespace}\" is not a valid namespace name: {problem}"
                    ),
                );
                Err(())
            }
        },
        Some(other) => {
            findings.error(
                subject,
                format!(
                    "{kind_context}metadata.namespace is {}, expected a namespace name",
                    describe_kind_and_value(other)
                ),
            );
            Err(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn values() -> Value {
        serde_yaml::from_str(
            "manifests:\n  kubeflow-operator:\n    replicas: 3\n    image: quay.io/kf/op:v1\n    debug: false\n    ratio: 0.5\n    quoted: 'yes'\n    unset: null\n    resources: {limits: {cpu: '1'}}\n    args: [--a, --b]\n    tagged: !secret abc\n",
        )
        .expect("test values parse")
    }

    #[test]
    fn text_without_lookups_passes_through_untouched() {
        let text = "apiVersion: v1\nkind: ConfigMap # { not a lookup }\ndata:\n  a: '}}'\n";
        assert_eq!(substitute(text, &values()).unwrap(), text);
        assert_eq!(substitute("", &values()).unwrap(), "");
    }

    #[test]
    fn inserts_scalars_as_plain_text() {
        let text = "replicas: {{ .Values.manifests.kubeflow-operator.replicas }}\n\
                    image: \"{{.Values.manifests.kubeflow-operator.image}}\"\n\
                    debug: {{   .Values.manifests.kubeflow-operator.debug   }}\n\
                    ratio: {{ .Values.manifests.kubeflow-operator.ratio }}\n\
                    quoted: {{ .Values.manifests.kubeflow-operator.quoted }}\n\
                    tagged: {{ .Values.manifests.kubeflow-operator.tagged }}\n";
        assert_eq!(
            substitute(text, &values()).unwrap(),
            "replicas: 3\nimage: \"quay.io/kf/op:v1\"\ndebug: false\nratio: 0.5\nquoted: yes\ntagged: abc\n"
        );
    }

    #[test]
    fn inserts_mappings_and_lists_as_json() {
        let text = "resources: {{ .Values.manifests.kubeflow-operator.resources }}\nargs: {{ .Values.manifests.kubeflow-operator.args }}\n";
        let substituted = substitute(text, &values()).unwrap();
        assert_eq!(
            substituted,
            "resources: {\"limits\":{\"cpu\":\"1\"}}\nargs: [\"--a\",\"--b\"]\n"
        );
        let reparsed: Value = serde_yaml::from_str(&substituted).unwrap();
        assert_eq!(reparsed["resources"]["limits"]["cpu"], Value::from("1"));
    }

    #[test]
    fn several_lookups_on_one_line_and_lookups_across_lines() {
        let text = "a: {{ .Values.manifests.kubeflow-operator.replicas }}-{{ .Values.manifests.kubeflow-operator.debug }}\nb: {{\n  .Values.manifests.kubeflow-operator.ratio\n}}\nc: {{ .Values.nope }}\n";
        match substitute(text, &values()) {
            Err(SubstitutionError::Missing { line, .. }) => assert_eq!(line, 5),
            other => panic!("expected a missing value on line 5, got {other:?}"),
        }
        let text = "a: {{ .Values.manifests.kubeflow-operator.replicas }}-{{ .Values.manifests.kubeflow-operator.debug }}\nb: {{\n  .Values.manifests.kubeflow-operator.ratio\n}}\n";
        assert_eq!(substitute(text, &values()).unwrap(), "a: 3-false\nb: 0.5\n");
    }

    #[test]
    fn missing_value_names_full_path_and_line() {
        let error = substitute(
            "a: 1\nb: {{ .Values.manifests.kubeflow-operator.replicaz }}\n",
            &values(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            SubstitutionError::Missing {
                line: 2,
                path: ".Values.manifests.kubeflow-operator.replicaz".to_string(),
                parent: ".Values.manifests.kubeflow-operator".to_string(),
                key: "replicaz".to_string(),
            }
        );
        assert_eq!(
            error.to_string(),
            "line 2: .Values.manifests.kubeflow-operator.replicaz is not set: .Values.manifests.kubeflow-operator has no key `replicaz`"
        );
    }

    #[test]
    fn lookup_through_a_scalar_is_an_error() {
        let error = substitute(
            "x: {{ .Values.manifests.kubeflow-operator.replicas.value }}",
            &values(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 1: .Values.manifests.kubeflow-operator.replicas.value cannot be looked up: .Values.manifests.kubeflow-operator.replicas is a number, not a mapping"
        );
        let error = substitute("x: {{ .Values.a }}", &Value::Null).unwrap_err();
        assert!(
            error.to_string().contains(".Values is null, not a mapping"),
            "{error}"
        );
    }

    #[test]
    fn null_value_is_an_error() {
        let error = substitute(
            "\n\nx: {{ .Values.manifests.kubeflow-operator.unset }}",
            &values(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 3: .Values.manifests.kubeflow-operator.unset is null; give it a value or remove the lookup"
        );
    }

    #[test]
    fn anything_but_a_lookup_is_an_error() {
        let cases = [
            ("{{ .Values.a | quote }}", ".Values.a | quote"),
            ("{{ if .Values.a }}", "if .Values.a"),
            ("{{ include \"x\" . }}", "include \"x\" ."),
            ("{{ .Release.Name }}", ".Release.Name"),
            ("{{- .Values.a }}", "- .Values.a"),
            ("{{ .Values }}", ".Values"),
            ("{{ .Values. }}", ".Values."),
            ("{{ .Values.a..b }}", ".Values.a..b"),
            ("{{ .Values.a.b$ }}", ".Values.a.b$"),
            ("{{ .Valuesa }}", ".Valuesa"),
            ("{{}}", ""),
        ];
        for (text, expression) in cases {
            let error = substitute(&format!("a: 1\nb: {text}\n"), &values()).unwrap_err();
            assert_eq!(
                error,
                SubstitutionError::UnsupportedExpression {
                    line: 2,
                    expression: expression.to_string()
                },
                "{text}"
            );
            assert!(
                error.to_string().starts_with(&format!(
                    "line 2: `{{{{ {expression} }}}}` is not supported"
                )),
                "{error}"
            );
        }
    }

    #[test]
    fn unclosed_braces_are_an_error_with_their_line() {
        let error = substitute("a: 1\nb: {{ .Values.a\n", &values()).unwrap_err();
        assert_eq!(error, SubstitutionError::Unclosed { line: 2 });
        assert_eq!(error.to_string(), "line 2: `{{` is not closed by `}}`");
        let error = substitute("a: {{ .Values.a\nb: {{ .Values.b }}\n", &values()).unwrap_err();
        assert_eq!(error, SubstitutionError::Unclosed { line: 1 });
    }

    const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec: {}\n";

    #[test]
    fn lists_objects_of_every_document() {
        let text = format!(
            "---\n{DEPLOYMENT}---\n# only a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n"
        );
        let (objects, findings) = check_manifest(&text);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(
            objects,
            vec![
                KubeObjectRef {
                    api_version: "apps/v1".to_string(),
                    kind: "Deployment".to_string(),
                    name: "web".to_string(),
                    namespace: Some("shop".to_string()),
                    document_index: 0,
                },
                KubeObjectRef {
                    api_version: "v1".to_string(),
                    kind: "Namespace".to_string(),
                    name: "shop".to_string(),
                    namespace: None,
                    document_index: 2,
                },
            ]
        );
    }

    #[test]
    fn missing_fields_are_errors_naming_field_and_kind() {
        let text = format!(
            "{DEPLOYMENT}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{labels: {{}}}}\n---\nkind: Service\nmetadata: {{name: a}}\n---\napiVersion: v1\nmetadata: {{name: a}}\n---\napiVersion: v1\nkind: Pod\n"
        );
        let (objects, findings) = check_manifest(&text);
        assert_eq!(objects.len(), 1);
        assert_eq!(findings.errors().count(), 4, "{findings:?}");
        assert!(findings.contains(
            "document 2",
            "kind Deployment: metadata.name is missing; every Kubernetes object needs one"
        ));
        assert!(findings.contains("document 3", "kind Service: apiVersion is missing"));
        assert!(findings.contains(
            "document 4",
            "kind is missing; every Kubernetes object needs one"
        ));
        assert!(findings.contains("document 5", "kind Pod: metadata.name is missing"));
    }

    #[test]
    fn every_missing_field_of_one_object_is_reported() {
        let (objects, findings) = check_manifest("spec: {}\n");
        assert!(objects.is_empty());
        assert!(findings.contains("document 1", "kind is missing"));
        assert!(findings.contains("document 1", "apiVersion is missing"));
        assert!(findings.contains("document 1", "metadata.name is missing"));
        // The file had something in it; "no objects" would only repeat the above.
        assert_eq!(findings.len(), 3);
    }

    #[test]
    fn fields_must_be_non_empty_strings() {
        let (_, findings) = check_manifest("apiVersion: 1\nkind: ''\nmetadata:\n  name: [a]\n");
        assert!(findings.contains(
            "document 1",
            "apiVersion is a number (1), expected a non-empty string"
        ));
        assert!(findings.contains(
            "document 1",
            "kind is empty; every Kubernetes object needs one"
        ));
        assert!(findings.contains(
            "document 1",
            "metadata.name is a list, expected a non-empty string"
        ));
        let (_, findings) = check_manifest("apiVersion: v1\nkind: Pod\nmetadata: web\n");
        assert!(findings.contains(
            "document 1",
            "kind Pod: metadata is a string, expected a mapping with a name"
        ));
    }

    #[test]
    fn namespace_must_be_a_namespace_name() {
        let (objects, findings) =
            check_manifest("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: Shop}\n");
        assert!(objects.is_empty());
        assert!(findings.contains(
            "document 1",
            "kind Pod: metadata.namespace \"Shop\" is not a valid namespace name: it contains 'S'"
        ));
        let (_, findings) =
            check_manifest("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: 5}\n");
        assert!(findings.contains(
            "document 1",
            "kind Pod: metadata.namespace is a number (5), expected a namespace name"
        ));
    }

    #[test]
    fn a_document_must_be_a_mapping() {
        let (_, findings) = check_manifest(&format!("{DEPLOYMENT}---\n- a\n- b\n"));
        assert!(findings.contains("document 2", "found a list, expected a Kubernetes object"));
    }

    #[test]
    fn list_items_are_objects() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Secret\n  metadata: {}\n- 7\n";
        let (objects, findings) = check_manifest(&format!("{DEPLOYMENT}---\n{text}"));
        assert_eq!(objects.len(), 2);
        assert_eq!(
            (
                objects[1].kind.as_str(),
                objects[1].name.as_str(),
                objects[1].document_index
            ),
            ("ConfigMap", "a", 1)
        );
        assert!(findings.contains(
            "document 2 items[1]",
            "kind Secret: metadata.name is missing"
        ));
        assert!(findings.contains(
            "document 2 items[2]",
            "found a number, expected a Kubernetes object"
        ));
        assert_eq!(findings.len(), 2);
    }

    #[test]
    fn list_needs_items() {
        let (_, findings) = check_manifest("apiVersion: v1\nkind: List\n");
        assert!(findings.contains("document 1", "kind List: items is missing"));
        let (_, findings) = check_manifest("apiVersion: v1\nkind: List\nitems: {}\n");
        assert!(findings.contains(
            "document 1",
            "kind List: items is a mapping, expected a list"
        ));
        let (_, findings) = check_manifest("kind: List\nitems: []\n");
        assert!(findings.contains("document 1", "kind List: apiVersion is missing"));
    }

    #[test]
    fn syntax_error_names_document_line_and_column() {
        let text = format!("{DEPLOYMENT}---\napiVersion: v1\nkind: [Pod\n---\n{DEPLOYMENT}");
        let (objects, findings) = check_manifest(&text);
        assert_eq!(objects.len(), 1);
        let error = findings.errors().next().expect("an error");
        assert_eq!(error.subject, "document 2");
        assert!(
            error
                .message
                .starts_with("not valid YAML at line 10, column 1: "),
            "{error}"
        );
        let (_, findings) = check_manifest("a: 1\nb: : c\n");
        assert!(findings.contains(
            "document 1",
            "not valid YAML at line 2, column 4: mapping values are not allowed"
        ));
    }

    #[test]
    fn no_objects_at_all_is_an_error() {
        for text in [
            "",
            "# nothing yet\n",
            "---\n---\n",
            "apiVersion: v1\nkind: List\nitems: []\n",
        ] {
            let (objects, findings) = check_manifest(text);
            assert!(objects.is_empty());
            assert!(
                findings.contains(WHOLE_FILE, "no Kubernetes objects found"),
                "{text:?}: {findings:?}"
            );
        }
    }

    #[test]
    fn substituted_manifest_checks_clean() {
        let template = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: kubeflow-operator\nspec:\n  replicas: {{ .Values.manifests.kubeflow-operator.replicas }}\n  template:\n    spec:\n      containers:\n      - image: {{ .Values.manifests.kubeflow-operator.image }}\n        args: {{ .Values.manifests.kubeflow-operator.args }}\n";
        let text = substitute(template, &values()).unwrap();
        let (objects, findings) = check_manifest(&text);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(objects[0].name, "kubeflow-operator");
        let parsed: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed["spec"]["replicas"], Value::from(3));
    }
}
