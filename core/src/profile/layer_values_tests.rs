//! Tests of `layer_values.rs`: the order values are made in, and masking.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::pack::presets::parse_presets;
use crate::pack::values_schema::parse_schema;

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

fn rules(schema: &str, presets: &str, enabled: &[&str]) -> ValueRules {
    ValueRules {
        schema: parse_schema(schema).0,
        presets: parse_presets(presets).0,
        enabled_presets: enabled.iter().map(|e| PresetRef::parse(e)).collect(),
    }
}

const PRESETS: &str = "presets:\n\
- name: small\n  group: Size\n  add: 'replicas: 1'\n\
- name: large\n  group: Size\n  remove: [resources]\n  add: 'replicas: 5'\n";

#[test]
fn pack_defaults_then_presets_then_profile_then_cluster() {
    let inputs = LayerInputs {
        defaults: yaml("replicas: 2\nresources: {cpu: 1}\nlevel: info\nname: app\n"),
        rules: rules("", PRESETS, &["Size:small"]),
        choices: preset_choices("spec.layers[0]", None, Some(&["large".to_string()])),
        overlays: vec![yaml("level: debug\nreplicas: 7\n"), yaml("level: trace\n")],
    };
    let resolution = inputs.resolve().unwrap();
    // `large` replaced the pack's `small`, removed resources; the profile's replicas beat
    // the preset's; the cluster's level beats the profile's.
    assert_eq!(
        resolution.values.unmasked(),
        &yaml("replicas: 7\nlevel: trace\nname: app\n")
    );
}

#[test]
fn the_comment_opening_a_layers_values_chooses_presets_too() {
    let choices = preset_choices(
        "spec.overrides[0]",
        Some("# spectrocloud.com/enabled-presets: Size:large\nlevel: x\n"),
        Some(&["small".to_string()]),
    );
    assert_eq!(choices.len(), 2);
    assert_eq!(
        choices[0].source,
        "spec.overrides[0].values line 1 (spectrocloud.com/enabled-presets)"
    );
    assert_eq!(choices[1].source, "spec.overrides[0].presets");
    // The field comes after the comment, so it wins the group.
    let inputs = LayerInputs {
        defaults: yaml("replicas: 2\n"),
        rules: rules("", PRESETS, &[]),
        choices,
        overlays: vec![],
    };
    assert_eq!(
        inputs.resolve().unwrap().values.unmasked(),
        &yaml("replicas: 1\n")
    );
}

#[test]
fn choice_errors_are_per_choice() {
    let inputs = LayerInputs {
        defaults: yaml("{}"),
        rules: rules("", PRESETS, &[]),
        choices: vec![
            PresetChoice {
                source: "profile".into(),
                presets: vec![PresetRef::parse("small")],
            },
            PresetChoice {
                source: "cluster".into(),
                presets: vec![PresetRef::parse("huge")],
            },
        ],
        overlays: vec![],
    };
    assert!(inputs.choice_errors(0).len() == 1 && inputs.choice_errors(1).len() == 1);
    assert!(
        inputs.choice_errors(1)[0]
            .to_string()
            .starts_with("cluster names the preset huge")
    );
    assert!(inputs.resolve().is_err());
}

#[test]
fn problems_are_found_on_the_effective_values() {
    let schema = "token:\n  schema: '{{ required | format \"${password}\" | hints \"API token\" }}'\n\
                  namespace:\n  schema: '{{ readonly }}'\n\
                  replicas:\n  schema: '{{ format \"${number}\" }}'\n";
    let inputs = LayerInputs {
        defaults: yaml("namespace: fixed\nreplicas: 1\ntoken: ''\n"),
        rules: rules(schema, "", &[]),
        choices: vec![],
        overlays: vec![yaml("namespace: moved\nreplicas: many\n")],
    };
    let problems: Vec<String> = inputs
        .resolve()
        .unwrap()
        .problems
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        [
            "token is required and not set (hint: API token)",
            "replicas: found \"many\", expected a number",
            "namespace is read-only in the pack's schema.yaml, but its value was changed",
        ]
    );
}

#[test]
fn secrets_are_masked_in_debug_and_serialization() {
    let schema = parse_schema(
        "auth.token:\n  schema: '{{ format \"${password}\" }}'\n\
         users.$[].password:\n  schema: '{{ format \"${password}\" }}'\n\
         auth.unset:\n  schema: '{{ format \"${password}\" }}'\n",
    )
    .0;
    let values = LayerValues::new(
        yaml(
            "auth: {token: s3cr3t-token, unset: '', user: admin}\n\
             users: [{name: a, password: pw-one}, {name: b, password: pw-two}]\n",
        ),
        &schema,
    );
    let printed = [
        format!("{values:?}"),
        serde_yaml::to_string(&values).unwrap(),
        serde_json::to_string(&values).unwrap(),
    ];
    for text in &printed {
        for secret in ["s3cr3t-token", "pw-one", "pw-two"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("<secret>") && text.contains("admin"),
            "{text}"
        );
    }
    // An unset secret stays visibly unset.
    assert_eq!(values.masked()["auth"]["unset"], Value::from(""));
    assert_eq!(
        values.unmasked()["auth"]["token"],
        Value::from("s3cr3t-token")
    );
    assert_eq!(
        values.secret_values(),
        vec![
            ("auth.token".to_string(), Value::from("s3cr3t-token")),
            ("users[0].password".to_string(), Value::from("pw-one")),
            ("users[1].password".to_string(), Value::from("pw-two")),
        ]
    );
}
