//! Tests of a layer's values through composition: presets, the schema's checks at the
//! profile and at the cluster, and masking in the printed stack.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::cluster::{ClusterCloud, LayerOverride};
use crate::profile::fixtures::*;
use crate::profile::{ClusterProfile, ProfileCloud, ProfileType};

const APP_JSON: &str = r#"{"name": "app", "displayName": "App", "version": "1.0.0", "layer": "addon", "addonType": "app-services"}"#;

const APP_VALUES: &str = "# spectrocloud.com/enabled-presets: Size:small\n\
charts:\n  app:\n    replicas: 2\n    adminPassword: ''\n    reclaimPolicy: Delete\n";

const APP_SCHEMA: &str = "charts.app.adminPassword:\n  schema: '{{ required | format \"${password}\" | hints \"The admin password\" }}'\n\
charts.app.replicas:\n  schema: '{{ format \"${number}\" }}'\n\
charts.app.reclaimPolicy:\n  schema: '{{ format \"${list:[Delete,Retain]}\" }}'\n";

const APP_PRESETS: &str = "presets:\n\
- name: small\n  group: Size\n  add: |\n    charts:\n      app:\n        replicas: 1\n\
- name: large\n  group: Size\n  add: |\n    charts:\n      app:\n        replicas: 5\n";

fn source() -> MemorySource {
    MemorySource::core().with_rules(APP_JSON, APP_VALUES, APP_SCHEMA, APP_PRESETS)
}

fn base() -> ClusterProfile {
    profile("base", ProfileType::Infra, ProfileCloud::All, core_layers())
}

fn apps(values: Option<&str>, presets: Option<&[&str]>) -> ClusterProfile {
    let mut app = layer("app:1.0.0");
    app.values = values.map(String::from);
    app.presets = presets.map(|p| p.iter().map(|s| s.to_string()).collect());
    profile("apps", ProfileType::AddOn, ProfileCloud::All, vec![app])
}

fn with_override(values: &str, presets: Option<&[&str]>) -> crate::cluster::WorkloadCluster {
    let mut c = cluster(ClusterCloud::Sim, &["base", "apps"]);
    c.spec.overrides.push(LayerOverride {
        pack: "app".into(),
        values: values.into(),
        presets: presets.map(|p| p.iter().map(|s| s.to_string()).collect()),
    });
    c
}

fn app_values(stack: &ComposedStack) -> serde_yaml::Value {
    stack
        .layers
        .iter()
        .find(|l| l.name == "app")
        .unwrap()
        .values
        .unmasked()
        .clone()
}

#[test]
fn a_required_value_unset_is_a_profile_warning_and_a_cluster_error() {
    let c = cluster(ClusterCloud::Sim, &["base", "apps"]);
    let (stack, findings) = compose(&c, &[base(), apps(None, None)], &source());
    assert!(stack.is_none());
    let warning = findings
        .warnings()
        .find(|f| f.subject == "profile apps: spec.layers[0].values")
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert!(warning.message.contains(
        "pack app:1.0.0: charts.app.adminPassword is required and not set (hint: The admin password); every cluster using this profile must set it"
    ));
    assert!(
        findings.contains(
            "profile apps: spec.layers[0]",
            "pack app:1.0.0: charts.app.adminPassword is required and not set (hint: The admin password); set it in the profile layer's values or in the cluster's spec.overrides for pack app"
        ),
        "{findings:#?}"
    );
    assert_eq!(findings.errors().count(), 1, "{findings:#?}");
}

#[test]
fn a_cluster_override_sets_it_and_the_printed_stack_masks_it() {
    let c = with_override("charts:\n  app:\n    adminPassword: hunter2-secret\n", None);
    let (stack, findings) = compose(&c, &[base(), apps(None, None)], &source());
    assert!(!findings.has_errors(), "{findings:#?}");
    let stack = stack.unwrap();
    // The pack's own preset applied: small's replicas.
    let values = app_values(&stack);
    assert_eq!(
        values["charts"]["app"]["replicas"],
        serde_yaml::Value::from(1)
    );
    assert_eq!(
        values["charts"]["app"]["adminPassword"],
        serde_yaml::Value::from("hunter2-secret")
    );
    for printed in [
        serde_yaml::to_string(&stack).unwrap(),
        serde_json::to_string(&stack).unwrap(),
        format!("{stack:?}"),
    ] {
        assert!(!printed.contains("hunter2-secret"), "{printed}");
        assert!(printed.contains("<secret>"));
    }
}

#[test]
fn presets_from_the_profile_and_the_cluster_replace_the_packs_in_their_group() {
    let password = "charts:\n  app:\n    adminPassword: x\n";
    let (stack, findings) = compose(
        &with_override(password, None),
        &[base(), apps(None, Some(&["large"]))],
        &source(),
    );
    assert!(!findings.has_errors(), "{findings:#?}");
    assert_eq!(
        app_values(&stack.unwrap())["charts"]["app"]["replicas"],
        serde_yaml::Value::from(5)
    );
    // The cluster's choice comes last; a profile value still beats any preset.
    let (stack, findings) = compose(
        &with_override(password, Some(&["Size:small"])),
        &[
            base(),
            apps(
                Some("charts:\n  app:\n    reclaimPolicy: Retain\n"),
                Some(&["large"]),
            ),
        ],
        &source(),
    );
    assert!(!findings.has_errors(), "{findings:#?}");
    let values = app_values(&stack.unwrap());
    assert_eq!(
        values["charts"]["app"]["replicas"],
        serde_yaml::Value::from(1)
    );
    assert_eq!(
        values["charts"]["app"]["reclaimPolicy"],
        serde_yaml::Value::from("Retain")
    );
    // The comment opening the override's values chooses too.
    let (stack, _) = compose(
        &with_override(
            &format!("# spectrocloud.com/enabled-presets: Size:large\n{password}"),
            None,
        ),
        &[base(), apps(None, None)],
        &source(),
    );
    assert_eq!(
        app_values(&stack.unwrap())["charts"]["app"]["replicas"],
        serde_yaml::Value::from(5)
    );
}

#[test]
fn bad_preset_choices_name_where_they_were_made() {
    let (_, findings) = compose(
        &with_override("", Some(&["huge"])),
        &[base(), apps(None, Some(&["small", "large"]))],
        &source(),
    );
    assert!(
        findings.contains(
            "profile apps: spec.layers[0].presets",
            "pack app:1.0.0: spec.layers[0].presets names Size:small and Size:large, which are both in group \"Size\""
        ),
        "{findings:#?}"
    );
    assert!(findings.contains(
        "spec.overrides[0].presets",
        "pack app:1.0.0: spec.overrides[0].presets names the preset huge, but presets.yaml has no preset \"huge\" (it has: Size:small, Size:large)"
    ));
}

#[test]
fn a_wrong_type_is_reported_once_where_it_was_written() {
    // Written in the profile: the profile's validation reports it, composition does not
    // repeat it.
    let (_, findings) = compose(
        &with_override("charts:\n  app:\n    adminPassword: x\n", None),
        &[
            base(),
            apps(Some("charts:\n  app:\n    replicas: many\n"), None),
        ],
        &source(),
    );
    let wrong: Vec<_> = findings
        .errors()
        .filter(|f| {
            f.message
                .contains("replicas: found \"many\", expected a number")
        })
        .collect();
    assert_eq!(wrong.len(), 1, "{findings:#?}");
    assert_eq!(wrong[0].subject, "profile apps: spec.layers[0].values");
    // Written in the cluster: composition reports it.
    let (stack, findings) = compose(
        &with_override(
            "charts:\n  app:\n    adminPassword: x\n    reclaimPolicy: Keep\n",
            None,
        ),
        &[base(), apps(None, None)],
        &source(),
    );
    assert!(stack.is_none());
    assert!(
        findings.contains(
            "profile apps: spec.layers[0]",
            "pack app:1.0.0: charts.app.reclaimPolicy: found \"Keep\", expected one of Delete, Retain"
        ),
        "{findings:#?}"
    );
}

/// A system macro Strata knows passes; one it does not is a warning on the profile and an
/// error on the cluster, naming the key and the macros Strata knows; a cluster that sets
/// the value itself is valid.
#[test]
fn an_unknown_macro_is_a_profile_warning_and_a_cluster_error() {
    let values = "charts:\n  app:\n    adminPassword: s3cret\n    cluster: \"{{ .spectro.system.cluster.name }}\"\n    token: \"{{ .spectro.var.apiToken }}\"\n";
    let c = cluster(ClusterCloud::Sim, &["base", "apps"]);
    let (stack, findings) = compose(&c, &[base(), apps(Some(values), None)], &source());
    assert!(stack.is_none());
    let warning = findings
        .warnings()
        .find(|f| f.subject == "profile apps: spec.layers[0].values")
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert!(
        warning.message.starts_with(
            "pack app:1.0.0: values charts.app.token: .spectro.var.apiToken: user variables (.spectro.var.*) are not supported by Strata yet"
        ),
        "{}",
        warning.message
    );
    let errors: Vec<_> = findings.errors().collect();
    assert_eq!(errors.len(), 1, "{findings:#?}");
    assert_eq!(errors[0].subject, "profile apps: spec.layers[0]");
    assert!(
        errors[0]
            .message
            .contains("values charts.app.token: .spectro.var.apiToken")
            && errors[0].message.contains(".spectro.system.cluster.name")
            && errors[0]
                .message
                .ends_with("in the cluster's spec.overrides for pack app"),
        "{}",
        errors[0].message
    );

    let c = with_override("charts:\n  app:\n    token: written-out\n", None);
    let (stack, findings) = compose(&c, &[base(), apps(Some(values), None)], &source());
    assert!(stack.is_some(), "{findings:#?}");
    assert_eq!(findings.errors().count(), 0, "{findings:#?}");
}
