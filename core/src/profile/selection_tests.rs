#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::profile::fixtures::{core_layers, profile};
use crate::profile::{ProfileCloud, ProfileType};

/// A version of `name` published as the object `object` in `namespace`.
fn published(object: &str, name: Option<&str>, version: &str, namespace: &str) -> ClusterProfile {
    let mut p = profile(object, ProfileType::Infra, ProfileCloud::Sim, core_layers());
    p.spec.name = name.map(str::to_string);
    p.spec.version = version.to_string();
    p.metadata.namespace = Some(namespace.to_string());
    p
}

#[test]
fn versions_of_one_profile_coexist_and_each_is_selected_by_its_own() {
    let profiles = [
        published("infra-1-0-0", Some("infra"), "1.0.0", "team"),
        published("infra-1-1-0", Some("infra"), "1.1.0", "team"),
    ];
    let old = select_profile(&profiles, "infra", "1.0.0").unwrap();
    assert_eq!(old.metadata.name.as_deref(), Some("infra-1-0-0"));
    let new = select_profile(&profiles, "infra", "1.1.0").unwrap();
    assert_eq!(new.metadata.name.as_deref(), Some("infra-1-1-0"));
}

#[test]
fn a_profile_without_spec_name_is_named_by_its_object() {
    let profiles = [
        published("infra", None, "1.0.0", "team"),
        published("infra-next", Some("infra"), "2.0.0", "team"),
    ];
    assert_eq!(
        select_profile(&profiles, "infra", "1.0.0")
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("infra")
    );
    assert_eq!(
        select_profile(&profiles, "infra", "2.0.0")
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("infra-next")
    );
    // The object name of a profile that sets spec.name selects nothing.
    assert!(matches!(
        select_profile(&profiles, "infra-next", "2.0.0"),
        Err(SelectionError::NoProfile { .. })
    ));
}

#[test]
fn a_missing_version_lists_the_versions_in_semver_order() {
    let profiles = [
        published("a", Some("infra"), "1.10.0", "team"),
        published("b", Some("infra"), "1.9.0", "team"),
        published("c", Some("infra"), "1.9.0", "strata-system"),
    ];
    let error = select_profile(&profiles, "infra", "2.0.0").unwrap_err();
    assert_eq!(
        error.to_string(),
        "profile \"infra\" has no version \"2.0.0\"; versions given: 1.9.0, 1.10.0"
    );
}

#[test]
fn an_unknown_profile_lists_the_names_once_each() {
    let profiles = [
        published("a", Some("infra"), "1.0.0", "team"),
        published("b", Some("infra"), "1.1.0", "team"),
        published("addons", None, "1.0.0", "team"),
    ];
    assert_eq!(
        select_profile(&profiles, "nope", "1.0.0")
            .unwrap_err()
            .to_string(),
        "profile \"nope\" was not found; profiles given: addons, infra"
    );
}

#[test]
fn the_first_namespace_shadows_the_next_but_one_namespace_may_not_hold_a_version_twice() {
    let shadowed = [
        published("mine", Some("infra"), "1.0.0", "team"),
        published("shared", Some("infra"), "1.0.0", "strata-system"),
    ];
    assert_eq!(
        select_profile(&shadowed, "infra", "1.0.0")
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("mine")
    );
    let twice = [
        published("infra", None, "1.0.0", "team"),
        published("infra-copy", Some("infra"), "1.0.0", "team"),
    ];
    assert_eq!(
        select_profile(&twice, "infra", "1.0.0")
            .unwrap_err()
            .to_string(),
        "profile \"infra\" version \"1.0.0\" is published twice in namespace team: \
         ClusterProfiles infra and infra-copy; delete or rename one"
    );
}

#[test]
fn versions_of_sorts_oldest_first() {
    let profiles = [
        published("c", Some("infra"), "2.0.0", "team"),
        published("a", Some("infra"), "1.0.0", "team"),
        published("other", None, "1.5.0", "team"),
        published("b", Some("infra"), "1.2.0", "team"),
    ];
    let versions: Vec<&str> = versions_of(&profiles, "infra")
        .iter()
        .map(|p| p.spec.version.as_str())
        .collect();
    assert_eq!(versions, ["1.0.0", "1.2.0", "2.0.0"]);
}
