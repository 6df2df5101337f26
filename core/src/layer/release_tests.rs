#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

#[test]
fn the_chart_name_unless_the_pack_overrides_it() {
    assert_eq!(release_name(&yaml("{}"), "calico").unwrap(), "calico");
    let overridden = yaml("pack:\n  releaseNameOverride:\n    hello-universe: hellouni-1\n");
    assert_eq!(
        release_name(&overridden, "hello-universe").unwrap(),
        "hellouni-1"
    );
    assert_eq!(release_name(&overridden, "other").unwrap(), "other");
    for unset in [
        "pack: {releaseNameOverride: }",
        "pack: {releaseNameOverride: ''}",
        "pack: {releaseNameOverride: {calico: }}",
        "pack: {releaseNameOverride: {calico: ''}}",
        "pack: {namespace: kube-system}",
    ] {
        assert_eq!(
            release_name(&yaml(unset), "calico").unwrap(),
            "calico",
            "{unset}"
        );
    }
}

#[test]
fn a_malformed_override_is_named() {
    assert_eq!(
        release_name(&yaml("pack: {releaseNameOverride: [a]}"), "calico")
            .unwrap_err()
            .to_string(),
        "chart calico: values pack.releaseNameOverride is a list, expected a mapping of chart names to release names"
    );
    assert_eq!(
        release_name(&yaml("pack: {releaseNameOverride: {calico: 7}}"), "calico").unwrap_err(),
        ReleaseNameError::OverrideNotString {
            chart: "calico".into(),
            found: "a number (7)".into()
        }
    );
}

#[test]
fn names_follow_helms_rule() {
    let error = release_name(
        &yaml("pack: {releaseNameOverride: {calico: My_Calico}}"),
        "calico",
    )
    .unwrap_err();
    assert_eq!(
        error,
        ReleaseNameError::Invalid {
            chart: "calico".into(),
            name: "My_Calico".into(),
            origin: "values pack.releaseNameOverride.calico".into(),
            problem: "contains 'M'".into(),
        }
    );
    assert!(error.to_string().starts_with(
        "chart calico: the release name \"My_Calico\" (from values pack.releaseNameOverride.calico) contains 'M'; Helm takes"
    ));

    let longest = "a".repeat(53);
    assert_eq!(release_name(&yaml("{}"), &longest).unwrap(), longest);
    let too_long = "a".repeat(54);
    assert!(matches!(
        release_name(&yaml("{}"), &too_long),
        Err(ReleaseNameError::Invalid { problem, origin, .. })
            if problem == "is 54 characters long, more than 53" && origin == "the chart's name"
    ));
    assert_eq!(
        release_name(&yaml("{}"), "kube.prometheus-stack").unwrap(),
        "kube.prometheus-stack"
    );
}

#[test]
fn dns_subdomains_are_checked_part_by_part() {
    assert_eq!(dns_subdomain_problem("a-b.c9", 253), None);
    assert_eq!(dns_subdomain_problem("", 253).as_deref(), Some("is empty"));
    assert_eq!(
        dns_subdomain_problem("-a", 253).as_deref(),
        Some("has the part \"-a\", which starts or ends with '-'")
    );
    assert_eq!(
        dns_subdomain_problem("a.b-", 253).as_deref(),
        Some("has the part \"b-\", which starts or ends with '-'")
    );
    assert!(
        dns_subdomain_problem("a..b", 253)
            .unwrap()
            .contains("empty part")
    );
    assert!(dns_subdomain_problem(".a", 253).is_some());
    assert_eq!(
        dns_subdomain_problem("a b", 253).as_deref(),
        Some("contains ' '")
    );
    assert_eq!(
        dns_subdomain_problem("abcd", 3).as_deref(),
        Some("is 4 characters long, more than 3")
    );
}
