//! Tests of the values schema: parsing schema.yaml, and checking values against it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_yaml::Value;

use super::check::check_read_only;
use super::*;

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

fn schema(text: &str) -> ValuesSchema {
    let (schema, findings) = parse_schema(text);
    assert!(findings.is_empty(), "{findings:?}");
    schema
}

const SCHEMA: &str = r#"
# A comment, as published packs write them.
charts.app.namespace:
  # The namespace.
  schema: '{{ required | format "${string}" | hints "Enter the namespace." }}'
charts.app.password:
  schema: '{{ required | format "${password}" | hints "The admin password" }}'
charts.app.replicas:
  schema: '{{ format "${number:[1-5]}" }}'
charts.app.debug:
  schema: '{{ format "${boolean}" }}'
charts.app.reclaimPolicy:
  schema: '{{ required | format "${list:[Delete,Retain]}" }}'
registry.addresses.$[]:
  schema: '{{ format "${ipv4} - ${ipv4}" | hints "ip pool range" }}'
pack.namespace:
  schema: '{{ readonly }}'
"#;

#[test]
fn parses_every_constraint_with_its_line() {
    let schema = schema(SCHEMA);
    assert_eq!(schema.entries.len(), 7);
    let namespace = &schema.entries[0];
    assert_eq!(namespace.key.as_str(), "charts.app.namespace");
    assert_eq!(namespace.line, Some(3));
    assert!(namespace.required && !namespace.readonly);
    assert_eq!(namespace.hints, ["Enter the namespace."]);
    assert!(schema.entries[1].is_secret());
    assert_eq!(schema.secrets().count(), 1);
    assert!(schema.entries[6].readonly);
    assert!(schema.entries[6].format.is_none());
    let (two_hints, findings) =
        parse_schema("a:\n schema: '{{ hints \"one\" \"two\" | hints \"three\" }}'\n");
    assert!(findings.is_empty());
    assert_eq!(two_hints.entries[0].hints, ["one", "two", "three"]);
}

#[test]
fn malformed_entries_name_the_line_and_key() {
    let text = "good:\n  schema: '{{ required }}'\n\
                typo:\n  schema: '{{ requird }}'\n\
                unknown.format:\n  schema: '{{ format \"${strnig}\" }}'\n\
                no.braces:\n  schema: 'required'\n\
                two.formats:\n  schema: '{{ format \"${string}\" \"${number}\" }}'\n\
                plain: 3\n\
                no.schema:\n  hint: x\n\
                bad..key:\n  schema: '{{ required }}'\n\
                open.string:\n  schema: '{{ hints \"never closed }}'\n";
    let (schema, findings) = parse_schema(text);
    assert_eq!(schema.entries.len(), 1);
    let expect = [
        (
            "typo",
            "line 3: schema has the unknown constraint \"requird\"",
        ),
        (
            "unknown.format",
            "line 5: schema has format \"${strnig}\", which has the unknown type \"strnig\"",
        ),
        ("no.braces", "line 7: schema \"required\" is not a template"),
        (
            "two.formats",
            "line 9: schema gives format 2 quoted arguments; it takes one",
        ),
        (
            "plain",
            "line 11: the entry is a number; expected a mapping",
        ),
        ("no.schema", "line 12: the entry has no `schema`"),
        ("bad..key", "line 14: has an empty part between dots"),
        (
            "open.string",
            "line 16: schema has a string that is not closed",
        ),
    ];
    for (key, needle) in expect {
        assert!(findings.contains(key, needle), "{key}: {findings:#?}");
    }
    assert!(findings.contains("no.schema", "the entry has \"hint\", which is ignored"));
    let (_, findings) = parse_schema("- a\n");
    assert!(findings.contains("", "found a list, expected a mapping"));
    let (_, findings) = parse_schema("a: [\n");
    assert!(findings.contains("", "not valid YAML at line"));
}

#[test]
fn required_values_must_be_set() {
    let schema = schema(SCHEMA);
    let problems = check::check_values(
        &schema,
        &yaml("charts:\n  app:\n    namespace: ''\n    reclaimPolicy: Delete\n"),
    );
    assert_eq!(
        problems,
        vec![
            ValueProblem::RequiredUnset {
                key: "charts.app.namespace".into(),
                hints: vec!["Enter the namespace.".into()]
            },
            ValueProblem::RequiredUnset {
                key: "charts.app.password".into(),
                hints: vec!["The admin password".into()]
            },
        ]
    );
    assert_eq!(
        problems[0].to_string(),
        "charts.app.namespace is required and not set (hint: Enter the namespace.)"
    );
    // A macro resolved at deploy time counts as set.
    let problems = check::check_values(
        &schema,
        &yaml(
            "charts:\n  app:\n    namespace: a\n    password: '{{.spectro.var.PASSWORD}}'\n    reclaimPolicy: Retain\n",
        ),
    );
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn values_of_the_wrong_type_name_key_found_and_expected() {
    let schema = schema(SCHEMA);
    let values = yaml(
        "charts:\n  app:\n    namespace: a\n    password: hunter2\n    replicas: 9\n    debug: 'yes'\n    reclaimPolicy: Keep\n\
         registry:\n  addresses: ['10.0.0.1 - 10.0.0.9', '10.0.0.1']\n",
    );
    let messages: Vec<String> = check::check_values(&schema, &values)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        messages,
        [
            "charts.app.replicas: found the number 9, expected a number from 1 to 5",
            "charts.app.debug: found \"yes\", expected a boolean (true or false)",
            "charts.app.reclaimPolicy: found \"Keep\", expected one of Delete, Retain",
            "registry.addresses[1]: found \"10.0.0.1\", expected text of the form \"${ipv4} - ${ipv4}\"",
        ]
    );
    // Published packs quote booleans and numbers.
    let quoted = yaml(
        "charts:\n  app:\n    namespace: a\n    password: p\n    replicas: '3'\n    debug: 'false'\n    reclaimPolicy: Retain\n",
    );
    assert!(check::check_values(&schema, &quoted).is_empty());
    // A mapping never has a format.
    let messages: Vec<String> = check::check_values(
        &schema,
        &yaml(
            "charts:\n  app:\n    namespace: {a: 1}\n    password: p\n    reclaimPolicy: Retain\n",
        ),
    )
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        messages,
        ["charts.app.namespace: found a mapping, expected a string"]
    );
}

#[test]
fn a_secret_never_appears_in_a_problem() {
    let schema = schema("db.password:\n  schema: '{{ format \"${password:/^[a-z]{12,}$/}\" }}'\n");
    let problems = check::check_values(&schema, &yaml("db:\n  password: hunter2\n"));
    assert_eq!(problems.len(), 1);
    let message = problems[0].to_string();
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("not shown: it is a secret"), "{message}");
}

#[test]
fn read_only_values_cannot_change() {
    let schema = schema(SCHEMA);
    let base = yaml("pack: {namespace: tekton}\n");
    assert!(check_read_only(&schema, &base, &yaml("pack: {namespace: tekton}\n")).is_empty());
    assert_eq!(
        check_read_only(&schema, &base, &yaml("pack: {namespace: other}\n")),
        vec![ValueProblem::ReadOnlyChanged {
            key: "pack.namespace".into()
        }]
    );
}

#[test]
fn pack_checks_report_unreachable_keys_and_missing_defaults() {
    let schema = schema(
        "charts.app.replicas.count:\n  schema: '{{ format \"${number}\" }}'\n\
         charts.app.token:\n  schema: '{{ required | format \"${password}\" | hints \"API token\" }}'\n\
         charts.app.mode:\n  schema: '{{ format \"${list:[a,b]}\" }}'\n\
         charts.app.store.bucket:\n  schema: '{{ format \"${string}\" }}'\n",
    );
    let defaults = yaml("charts:\n  app:\n    replicas: 2\n    mode: c\n    store: ''\n");
    let findings = check_against_defaults(&schema, &defaults, &[]);
    assert!(
        findings.contains(
            "charts.app.replicas.count",
            "line 1: names nothing values.yaml can hold: charts.app.replicas is a number there"
        ),
        "{findings:#?}"
    );
    assert!(findings.warnings().any(|w| {
        w.subject == "charts.app.token"
            && w.message.contains("required and not set (hint: API token)")
            && w.message
                .contains("every profile or cluster using it must set it")
    }));
    assert!(findings.contains(
        "charts.app.mode",
        "the pack's default: charts.app.mode: found \"c\""
    ));
    // An empty string holds nothing yet: a key below it can still be set.
    assert!(
        !findings
            .iter()
            .any(|f| f.subject == "charts.app.store.bucket")
    );
    // A key blocked in the defaults that a preset makes reachable names something.
    let variant = yaml("charts:\n  app:\n    replicas: {count: 3}\n    mode: a\n");
    let findings = check_against_defaults(&schema, &defaults, &[variant]);
    assert!(
        !findings
            .iter()
            .any(|f| f.subject == "charts.app.replicas.count")
    );
}
