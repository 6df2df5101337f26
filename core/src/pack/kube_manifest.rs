//! A manifest pack's files under `manifests/`: (multi-document) Kubernetes YAML.
//!
//! Manifests are Go templates rendered by helm, as charts are (`pack::render` decides what
//! runs, `docs/rendering.md` has the rules). [`check_manifest`] reads a manifest as it will
//! be applied (a plain manifest as written, a templated one after rendering) and checks
//! that each document is a Kubernetes object with `apiVersion`, `kind` and `metadata.name`,
//! so that a broken manifest is caught when the pack is validated rather than when it is
//! applied.

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use crate::finding::Findings;
use crate::pack::values::{WHOLE_FILE, namespace_name_problem};
use crate::pack::yaml_text::{describe_kind, describe_kind_and_value, yaml_error_message};

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

/// Reads a manifest (a rendered one for a template) and lists its objects. Each YAML document must
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
}
