//! A pack's `values.yaml`: the defaults its charts or manifests are rendered with, plus the
//! keys Strata reads itself.
//!
//! Strata reads these keys, all optional:
//!
//! ```yaml
//! pack:
//!   namespace: monitoring          # where the pack's objects go
//!   strata.dev/verbatim-manifests: # manifests installed as written, not rendered as
//!     - base_manifests             #   templates (they carry another tool's templates)
//!   content:
//!     images:                      # images the pack pulls, for pre-pulling and air gaps
//!       - docker.io/library/nginx:1.25       # the docs' form
//!       - image: ghcr.io/org/app:1.3.2       # the form the publisher's checks require
//! charts:                          # one section per chart under charts/
//!   kube-prometheus-stack: {...}
//! manifests:                       # one section per manifest under manifests/
//!   kubeflow-operator: {...}
//! ```
//!
//! Everything else in the file is passed on untouched. An empty file (or one with only
//! comments) is valid: OS and infrastructure packs have no values.

use serde_yaml::{Mapping, Value};

use crate::finding::Findings;
use crate::pack::image_ref::check_image_reference;
use crate::pack::presets::{PresetAnnotation, enabled_presets_annotation};
use crate::pack::yaml_text::{describe_kind, describe_kind_and_value, yaml_error_message};

/// A parsed `values.yaml`. Fields other than `document` hold only what passed validation;
/// the findings say what was left out and why.
#[derive(Debug, Clone, PartialEq)]
pub struct PackValues {
    /// The whole file: a mapping, empty when the file is empty.
    pub document: Value,
    /// `pack.namespace`.
    pub namespace: Option<String>,
    /// `pack.content.images`, in file order.
    pub images: Vec<String>,
    /// The keys of `charts`, in file order.
    pub chart_sections: Vec<String>,
    /// The keys of `manifests`, in file order.
    pub manifest_sections: Vec<String>,
    /// The `# spectrocloud.com/enabled-presets: …` comment that opens the file, if any.
    pub enabled_presets: Option<PresetAnnotation>,
    /// `pack."strata.dev/verbatim-manifests"`: names of manifests installed as written.
    pub verbatim_manifests: Vec<String>,
}

/// The key under `pack` that lists the manifests (by name, the file name without its
/// extension, as `manifests.<name>` sections do) that are installed as written instead of
/// rendered as templates. Manifests that carry another tool's Go templates (Istio's
/// sidecar injector templates in a ConfigMap) must reach the cluster unrendered; nothing
/// in a file tells that apart from a broken template, so the pack or the layer says so.
pub const VERBATIM_MANIFESTS_KEY: &str = "strata.dev/verbatim-manifests";

/// The verbatim manifest names of `values` (a pack's or a layer's merged values), each
/// checked against the pack's `manifests` names; the problem, as a sentence, otherwise.
pub fn verbatim_manifests(values: &Value, manifests: &[String]) -> Result<Vec<String>, String> {
    let Some(listed) = values
        .get("pack")
        .and_then(|pack| pack.get(VERBATIM_MANIFESTS_KEY))
    else {
        return Ok(Vec::new());
    };
    let expected = || {
        if manifests.is_empty() {
            "the pack has no manifests".to_string()
        } else {
            format!(
                "expected names of the pack's manifests: {}",
                manifests.join(", ")
            )
        }
    };
    let Value::Sequence(items) = listed else {
        return Err(format!(
            "found {}, expected a list of manifest names; {}",
            describe_kind_and_value(listed),
            expected()
        ));
    };
    let mut names = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match item {
            Value::String(name) if manifests.contains(name) => names.push(name.clone()),
            Value::String(name) => {
                return Err(format!(
                    "[{index}] is {name:?}, which names no manifest of the pack; {}",
                    expected()
                ));
            }
            other => {
                return Err(format!(
                    "[{index}] is {}; {}",
                    describe_kind_and_value(other),
                    expected()
                ));
            }
        }
    }
    Ok(names)
}

const MAX_NAMESPACE_LENGTH: usize = 63;

/// The subject of findings about the file as a whole, for the caller to prefix with the
/// file's path (`Findings::extend_prefixed`) as it does the field paths.
pub const WHOLE_FILE: &str = "";

/// Parses and checks a pack's `values.yaml`. `charts` are the chart names the pack has,
/// `manifests` its manifest names (file stems). Returns `None` only when the file is not
/// a YAML mapping at all; otherwise the values are returned together with any findings,
/// whose subjects are field paths inside the file (`pack.content.images[2]`), or
/// [`WHOLE_FILE`] for a problem with the file as a whole.
pub fn parse_values(
    text: &str,
    charts: &[String],
    manifests: &[String],
) -> (Option<PackValues>, Findings) {
    let mut findings = Findings::new();
    let document: Value = match serde_yaml::from_str(text) {
        Ok(document) => document,
        Err(error) => {
            findings.error(WHOLE_FILE, yaml_error_message(&error));
            return (None, findings);
        }
    };
    let document = match document {
        // A file with only comments parses as null; it stands for "no values".
        Value::Null => Value::Mapping(Mapping::new()),
        Value::Mapping(_) => document,
        other => {
            findings.error(
                WHOLE_FILE,
                format!(
                    "found {}, expected a mapping of values at the top level",
                    describe_kind(&other)
                ),
            );
            return (None, findings);
        }
    };

    let mut values = PackValues {
        document: Value::Null,
        namespace: None,
        images: Vec::new(),
        chart_sections: Vec::new(),
        manifest_sections: Vec::new(),
        enabled_presets: enabled_presets_annotation(text),
        verbatim_manifests: Vec::new(),
    };
    if let Some(pack) = document.get("pack") {
        check_pack_section(pack, &mut values, &mut findings);
    }
    match verbatim_manifests(&document, manifests) {
        Ok(names) => values.verbatim_manifests = names,
        Err(problem) => findings.error(format!("pack.{VERBATIM_MANIFESTS_KEY}"), problem),
    }
    if let Some(section) = document.get("charts") {
        values.chart_sections =
            check_sections("charts", section, charts, "chart", "charts/", &mut findings);
    }
    if let Some(section) = document.get("manifests") {
        values.manifest_sections = check_sections(
            "manifests",
            section,
            manifests,
            "manifest",
            "manifests/",
            &mut findings,
        );
    }
    values.document = document;
    (Some(values), findings)
}

fn check_pack_section(pack: &Value, values: &mut PackValues, findings: &mut Findings) {
    let Value::Mapping(pack) = pack else {
        findings.error(
            "pack",
            format!(
                "found {}, expected a mapping (with namespace, content)",
                describe_kind(pack)
            ),
        );
        return;
    };
    match pack.get("namespace") {
        // Published packs write `namespace:` with nothing after it to mean "not set".
        Some(Value::Null) => findings.warning(
            "pack.namespace",
            "is empty; it is ignored as if it were not set",
        ),
        Some(namespace) => values.namespace = check_namespace(namespace, findings),
        None => {}
    }
    if let Some(content) = pack.get("content") {
        let Value::Mapping(content) = content else {
            findings.error(
                "pack.content",
                format!(
                    "found {}, expected a mapping (with images)",
                    describe_kind(content)
                ),
            );
            return;
        };
        if let Some(images) = content.get("images") {
            values.images = check_images(images, findings);
        }
    }
}

fn check_namespace(namespace: &Value, findings: &mut Findings) -> Option<String> {
    const SUBJECT: &str = "pack.namespace";
    let Value::String(namespace) = namespace else {
        findings.error(
            SUBJECT,
            format!(
                "found {}, expected a namespace name such as \"monitoring\"",
                describe_kind_and_value(namespace)
            ),
        );
        return None;
    };
    match namespace_name_problem(namespace) {
        None => Some(namespace.clone()),
        Some(problem) => {
            findings.error(
                SUBJECT,
                format!(
                    "\"{namespace}\" is not a valid namespace name: {problem}; expected lowercase letters, digits and '-', starting and ending with a letter or digit, at most {MAX_NAMESPACE_LENGTH} characters"
                ),
            );
            None
        }
    }
}

/// Why `name` is not an RFC 1123 label, the form Kubernetes requires of namespace names.
pub(crate) fn namespace_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".to_string());
    }
    if name.len() > MAX_NAMESPACE_LENGTH {
        return Some(format!("it is {} characters long", name.len()));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        return Some(format!("it contains {bad:?}"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("it starts or ends with '-'".to_string());
    }
    None
}

fn check_images(images: &Value, findings: &mut Findings) -> Vec<String> {
    const SUBJECT: &str = "pack.content.images";
    let Value::Sequence(items) = images else {
        findings.error(
            SUBJECT,
            format!(
                "found {}, expected a list of image references",
                describe_kind(images)
            ),
        );
        return Vec::new();
    };
    let mut valid = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let subject = format!("{SUBJECT}[{index}]");
        let Some((reference, subject)) = image_entry(item, subject, findings) else {
            continue;
        };
        match check_image_reference(reference) {
            Ok(()) => valid.push(reference.clone()),
            Err(reason) => findings.error(
                subject,
                format!(
                    "\"{reference}\" is not a valid image reference: {reason}; expected e.g. docker.io/library/nginx:1.25"
                ),
            ),
        }
    }
    valid
}

/// The reference of one `pack.content.images` entry and the subject to report it under:
/// a string (the docs' form) or a mapping with `image` (the form the publisher's pack
/// checks require, `- image: ghcr.io/org/app:1.3.2`). Other keys beside `image` are
/// warnings; a mapping without it is an error naming the keys it has.
fn image_entry<'v>(
    item: &'v Value,
    subject: String,
    findings: &mut Findings,
) -> Option<(&'v String, String)> {
    const EXPECTED: &str = "expected an image reference such as docker.io/library/nginx:1.25, or a mapping `image: <reference>`";
    match item {
        Value::String(reference) => Some((reference, subject)),
        Value::Mapping(entry) => {
            let keys: Vec<String> = entry
                .keys()
                .map(|k| {
                    k.as_str()
                        .map_or_else(|| describe_kind_and_value(k), String::from)
                })
                .collect();
            for key in keys.iter().filter(|k| k.as_str() != "image") {
                findings.warning(
                    format!("{subject}.{key}"),
                    "unknown key in an image entry; it is ignored (an entry holds `image`)",
                );
            }
            match entry.get("image") {
                Some(Value::String(reference)) => Some((reference, format!("{subject}.image"))),
                Some(other) => {
                    findings.error(
                        format!("{subject}.image"),
                        format!("found {}, {EXPECTED}", describe_kind_and_value(other)),
                    );
                    None
                }
                None => {
                    findings.error(
                        subject,
                        format!(
                            "is a mapping without `image` (it has: {}); {EXPECTED}",
                            keys.join(", ")
                        ),
                    );
                    None
                }
            }
        }
        other => {
            findings.error(
                subject,
                format!("found {}, {EXPECTED}", describe_kind(other)),
            );
            None
        }
    }
}

/// Checks a `charts` or `manifests` section: a mapping whose keys name the pack's charts
/// or manifests. A section for something the pack lacks is only a warning, since the
/// values may be shared with a later version of the pack, but it usually is a typo.
fn check_sections(
    subject: &str,
    section: &Value,
    available: &[String],
    what: &str,
    folder: &str,
    findings: &mut Findings,
) -> Vec<String> {
    let Value::Mapping(section) = section else {
        findings.error(
            subject,
            format!(
                "found {}, expected a mapping with one key per {what}",
                describe_kind(section)
            ),
        );
        return Vec::new();
    };
    let mut names = Vec::with_capacity(section.len());
    for key in section.keys() {
        let Value::String(name) = key else {
            findings.error(
                subject,
                format!(
                    "found the key {}, expected {what} names as keys",
                    describe_kind_and_value(key)
                ),
            );
            continue;
        };
        if !available.contains(name) {
            let has = if available.is_empty() {
                format!("the pack has no {what}s")
            } else {
                format!("the pack has: {}", available.join(", "))
            };
            findings.warning(
                format!("{subject}.{name}"),
                format!("no {what} named {name} in {folder}; {has}"),
            );
        }
        names.push(name.clone());
    }
    names
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn parse(text: &str) -> (Option<PackValues>, Findings) {
        parse_values(
            text,
            &names(&["app", "crds"]),
            &names(&["kubeflow-operator"]),
        )
    }

    fn parse_ok(text: &str) -> PackValues {
        let (values, findings) = parse(text);
        assert!(findings.is_empty(), "unexpected findings: {findings:?}");
        values.expect("values parsed")
    }

    #[test]
    fn empty_and_comment_only_files_are_an_empty_mapping() {
        for text in ["", "\n", "# an OS pack has no values\n# really\n"] {
            let values = parse_ok(text);
            assert_eq!(values.document, Value::Mapping(Mapping::new()));
            assert_eq!(values.namespace, None);
            assert!(values.images.is_empty());
        }
    }

    #[test]
    fn reads_every_known_key() {
        let values = parse_ok(
            "pack:\n  namespace: kubeflow\n  content:\n    images:\n      - nginx:1.25\n      - quay.io/x/y:v1\n\
             charts:\n  app: {replicas: 1}\n  crds: {}\n\
             manifests:\n  kubeflow-operator: {replicas: 2}\n\
             extra: kept\n",
        );
        assert_eq!(values.namespace.as_deref(), Some("kubeflow"));
        assert_eq!(values.images, names(&["nginx:1.25", "quay.io/x/y:v1"]));
        assert_eq!(values.chart_sections, names(&["app", "crds"]));
        assert_eq!(values.manifest_sections, names(&["kubeflow-operator"]));
        assert_eq!(values.document.get("extra"), Some(&Value::from("kept")));
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let (values, findings) = parse("a: 1\nb: [1, 2\nc: 3\n");
        assert!(values.is_none());
        let finding = findings.errors().next().expect("an error");
        assert_eq!(finding.subject, WHOLE_FILE);
        assert!(
            finding.message.starts_with("not valid YAML at line "),
            "{finding}"
        );
        assert!(finding.message.contains(", column "), "{finding}");

        let (_, findings) = parse("x: : y\n");
        assert!(findings.contains(
            WHOLE_FILE,
            "not valid YAML at line 1, column 4: mapping values are not allowed"
        ));
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        let (values, findings) = parse("- a\n- b\n");
        assert!(values.is_none());
        assert!(findings.contains(
            WHOLE_FILE,
            "found a list, expected a mapping of values at the top level"
        ));
        let (_, findings) = parse("just text\n");
        assert!(findings.contains(WHOLE_FILE, "found a string, expected a mapping"));
    }

    #[test]
    fn pack_must_be_a_mapping() {
        let (values, findings) = parse("pack: [namespace]\n");
        assert!(values.is_some());
        assert!(findings.contains("pack", "found a list, expected a mapping"));
    }

    #[test]
    fn namespace_must_be_a_string() {
        let (values, findings) = parse("pack:\n  namespace: 42\n");
        assert_eq!(values.expect("values").namespace, None);
        assert!(findings.contains(
            "pack.namespace",
            "found a number (42), expected a namespace name"
        ));
        // Published packs leave it empty to mean "not set".
        let (values, findings) = parse("pack:\n  namespace:\n");
        assert_eq!(values.expect("values").namespace, None);
        assert!(!findings.has_errors(), "{findings:?}");
        assert!(findings.contains("pack.namespace", "is empty; it is ignored"));
    }

    #[test]
    fn namespace_must_be_an_rfc1123_label() {
        let cases = [
            ("''", "\"\" is not a valid namespace name: it is empty"),
            ("Kube-System", "it contains 'K'"),
            ("kube_system", "it contains '_'"),
            ("-monitoring", "it starts or ends with '-'"),
            ("monitoring-", "it starts or ends with '-'"),
            (&"a".repeat(64), "it is 64 characters long"),
        ];
        for (namespace, expected) in cases {
            let (_, findings) = parse(&format!("pack:\n  namespace: {namespace}\n"));
            assert!(
                findings.contains("pack.namespace", expected),
                "{namespace}: {findings:?}"
            );
            assert!(findings.contains(
                "pack.namespace",
                "expected lowercase letters, digits and '-'"
            ));
        }
        assert_eq!(
            parse_ok(&format!("pack: {{namespace: {}}}", "a".repeat(63)))
                .namespace
                .map(|n| n.len()),
            Some(63)
        );
        assert_eq!(
            parse_ok("pack: {namespace: 0-a-9}").namespace.as_deref(),
            Some("0-a-9")
        );
    }

    #[test]
    fn content_must_be_a_mapping_and_images_a_list() {
        let (_, findings) = parse("pack:\n  content: nope\n");
        assert!(findings.contains("pack.content", "found a string, expected a mapping"));
        let (_, findings) = parse("pack:\n  content:\n    images: nginx\n");
        assert!(findings.contains(
            "pack.content.images",
            "found a string, expected a list of image references"
        ));
    }

    #[test]
    fn images_are_strings_or_mappings_with_image() {
        let values = parse_ok(
            "pack:\n  content:\n    images:\n      - nginx:1.25\n      - image: ghcr.io/org/app:1.3.2\n",
        );
        assert_eq!(
            values.images,
            names(&["nginx:1.25", "ghcr.io/org/app:1.3.2"])
        );
        // The reference inside a mapping is checked like a plain one.
        let (values, findings) = parse(
            "pack:\n  content:\n    images:\n      - image: Nginx\n      - image: 3\n      - iamge: nginx\n      - {image: nginx, digest: x}\n",
        );
        assert_eq!(values.expect("values").images, names(&["nginx"]));
        assert_eq!(findings.errors().count(), 3, "{findings:?}");
        assert!(findings.contains("pack.content.images[0].image", "must be lowercase"));
        assert!(findings.contains(
            "pack.content.images[1].image",
            "found a number (3), expected an image reference"
        ));
        assert!(findings.contains(
            "pack.content.images[2]",
            "is a mapping without `image` (it has: iamge)"
        ));
        assert!(findings.contains("pack.content.images[3].digest", "unknown key"));
    }

    #[test]
    fn each_bad_image_is_an_error_with_its_index() {
        let (values, findings) = parse(
            "pack:\n  content:\n    images:\n      - nginx:1.25\n      - [nginx]\n      - nginx::1\n      - Nginx\n",
        );
        assert_eq!(values.expect("values").images, names(&["nginx:1.25"]));
        assert_eq!(findings.errors().count(), 3);
        assert!(findings.contains(
            "pack.content.images[1]",
            "found a list, expected an image reference"
        ));
        assert!(findings.contains(
            "pack.content.images[2]",
            "\"nginx::1\" is not a valid image reference: the tag \":1\" is not valid"
        ));
        assert!(findings.contains(
            "pack.content.images[2]",
            "; expected e.g. docker.io/library/nginx:1.25"
        ));
        assert!(findings.contains("pack.content.images[3]", "must be lowercase"));
    }

    #[test]
    fn chart_sections_for_missing_charts_are_warnings() {
        let (values, findings) = parse("charts:\n  app: {}\n  foo: {a: 1}\n");
        assert_eq!(
            values.expect("values").chart_sections,
            names(&["app", "foo"])
        );
        assert!(!findings.has_errors());
        assert!(findings.contains(
            "charts.foo",
            "no chart named foo in charts/; the pack has: app, crds"
        ));

        let (_, findings) = parse_values("charts:\n  foo: {}\n", &[], &[]);
        assert!(findings.contains(
            "charts.foo",
            "no chart named foo in charts/; the pack has no charts"
        ));
    }

    #[test]
    fn manifest_sections_for_missing_manifests_are_warnings() {
        let (_, findings) = parse("manifests:\n  kubeflow-operator: {}\n  kubeflow-operatr: {}\n");
        assert_eq!(findings.warnings().count(), 1);
        assert!(findings.contains(
            "manifests.kubeflow-operatr",
            "no manifest named kubeflow-operatr in manifests/; the pack has: kubeflow-operator"
        ));
    }

    #[test]
    fn sections_must_be_mappings_with_string_keys() {
        let (_, findings) = parse("charts: [app]\nmanifests: 3\n");
        assert!(findings.contains(
            "charts",
            "found a list, expected a mapping with one key per chart"
        ));
        assert!(findings.contains(
            "manifests",
            "found a number, expected a mapping with one key per manifest"
        ));
        let (_, findings) = parse("charts:\n  1: {}\n");
        assert!(findings.contains(
            "charts",
            "found the key a number (1), expected chart names as keys"
        ));
    }

    #[test]
    fn multiple_documents_are_an_error() {
        let (values, findings) = parse("a: 1\n---\nb: 2\n");
        assert!(values.is_none());
        assert!(findings.contains(WHOLE_FILE, "more than one document"));
    }
}
