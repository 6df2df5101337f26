//! Tests of `rules.rs`: tables of inputs and the findings they must produce.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

use super::*;
use crate::profile::ProfileCloud;
use crate::profile::fixtures::*;

fn findings_of(source: &MemorySource, p: &ClusterProfile) -> Findings {
    validate_profile(p, source).1
}

#[test]
fn infra_full_and_addon_profiles_that_follow_the_rules() {
    let source = MemorySource::core()
        .pack("kernel-rt", "5.15", "kernel", "")
        .pack("istio", "1.6.2", "addon", "");
    let mut full = core_layers();
    full.push(layer("istio:1.6.2"));
    full.push(layer("kernel-rt:5.15"));
    let cases = [
        profile(
            "infra",
            ProfileType::Infra,
            ProfileCloud::Aws,
            core_layers(),
        ),
        profile("full", ProfileType::Full, ProfileCloud::Azure, full),
        profile(
            "addons",
            ProfileType::AddOn,
            ProfileCloud::All,
            vec![layer("istio:1.6.2")],
        ),
    ];
    for p in cases {
        let (resolved, findings) = validate_profile(&p, &source);
        assert!(
            findings.is_empty(),
            "{}: {findings:?}",
            p.metadata.name.unwrap()
        );
        assert_eq!(resolved.len(), p.spec.layers.len());
    }
}

#[test]
fn layer_count_rules() {
    let source = MemorySource::core()
        .pack("centos", "7.7", "os", "")
        .pack("kernel-a", "1", "kernel", "")
        .pack("kernel-b", "1", "kernel", "")
        .pack("istio", "1.6.2", "addon", "");
    let without = |name: &str| -> Vec<ProfileLayer> {
        core_layers()
            .into_iter()
            .filter(|l| l.name != name)
            .collect()
    };
    let with = |extra: &[&str]| -> Vec<ProfileLayer> {
        let mut layers = core_layers();
        layers.extend(extra.iter().map(|r| layer(r)));
        layers
    };
    // (profile type, layers, subject, expected message)
    let cases: Vec<(ProfileType, Vec<ProfileLayer>, &str, &str)> = vec![
        (
            ProfileType::Infra,
            without("hostpath"),
            "spec.layers",
            "has no csi layer; an infra profile needs exactly one",
        ),
        (
            ProfileType::Infra,
            without("ubuntu"),
            "spec.layers",
            "has no os layer",
        ),
        (
            ProfileType::Full,
            without("kubernetes"),
            "spec.layers",
            "has no k8s layer; a full profile needs exactly one",
        ),
        (
            ProfileType::Infra,
            without("calico"),
            "spec.layers",
            "has no cni layer",
        ),
        (
            ProfileType::Infra,
            with(&["centos:7.7"]),
            "spec.layers",
            "has 2 os layers (ubuntu:22.04 at spec.layers[0], centos:7.7 at spec.layers[4])",
        ),
        (
            ProfileType::Infra,
            with(&["kernel-a:1", "kernel-b:1"]),
            "spec.layers",
            "has 2 kernel layers",
        ),
        (
            ProfileType::Infra,
            with(&["istio:1.6.2"]),
            "spec.layers[4]",
            "an infra profile holds no add-ons",
        ),
        (
            ProfileType::AddOn,
            vec![layer("istio:1.6.2"), layer("calico:3.19.0")],
            "spec.layers[1]",
            "is a cni pack; an add-on profile holds only addon packs",
        ),
        (
            ProfileType::Full,
            with(&["istio:1.6.2", "istio:1.6.2"]),
            "spec.layers[5]",
            "is already in this profile at spec.layers[4]",
        ),
    ];
    for (profile_type, layers, subject, message) in cases {
        let p = profile("p", profile_type, ProfileCloud::All, layers);
        let findings = findings_of(&source, &p);
        assert!(
            findings.contains(subject, message),
            "{subject}: {message}\n got {findings:#?}"
        );
    }
}

#[test]
fn profile_fields_and_layer_references() {
    let source = MemorySource::core();
    let mut p = profile("p", ProfileType::Infra, ProfileCloud::All, core_layers());
    p.spec.version = "1.0".into();
    p.spec.layers[0].values = Some("pack: [unclosed".into());
    p.spec.layers[1].version = "1.99.0".into();
    p.spec.layers[2].values = Some("- a list".into());
    p.spec.layers[3].version = "latest".into();
    let findings = findings_of(&source, &p);
    assert!(findings.contains("spec.version", "\"1.0\" is not a semantic version"));
    assert!(findings.contains("spec.layers[0].values", "is not valid YAML"));
    assert!(findings.contains(
        "spec.layers[1]",
        "pack \"kubernetes\" has no version \"1.99.0\""
    ));
    assert!(findings.contains(
        "spec.layers[2].values",
        "found a list, expected YAML text holding a mapping"
    ));
    assert!(findings.contains("spec.layers[3].version", "\"latest\" is not a version"));

    let empty = profile("p", ProfileType::AddOn, ProfileCloud::All, vec![]);
    assert!(findings_of(&source, &empty).contains("spec.layers", "is empty"));
    let mut unnamed = profile("p", ProfileType::AddOn, ProfileCloud::All, vec![]);
    unnamed.metadata.name = None;
    assert!(findings_of(&source, &unnamed).contains("metadata.name", "is missing"));
    let mut badly_named = profile("p-1-0-0", ProfileType::AddOn, ProfileCloud::All, vec![]);
    badly_named.spec.name = Some("My_Profile".into());
    assert!(findings_of(&source, &badly_named).contains(
        "spec.name",
        "\"My_Profile\" contains 'M'; expected a name like an object's"
    ));
    badly_named.spec.name = Some("my-profile".into());
    assert!(!findings_of(&source, &badly_named).contains("spec.name", ""));
}

#[test]
fn packs_must_allow_the_profile_cloud() {
    let source = MemorySource::default()
        .pack("centos-aws", "7.7", "os", r#", "cloudTypes": ["aws"]"#)
        .pack("kubernetes", "1.20.2", "k8s", r#", "cloudTypes": ["all"]"#)
        .pack("calico", "3.19.0", "cni", r#", "cloudType": "azure""#)
        .pack("hostpath", "1.7.3", "csi", "");
    let layers = vec![
        layer("centos-aws:7.7"),
        layer("kubernetes:1.20.2"),
        layer("calico:3.19.0"),
        layer("hostpath:1.7.3"),
    ];
    let aws = profile("p", ProfileType::Infra, ProfileCloud::Aws, layers.clone());
    let findings = findings_of(&source, &aws);
    assert!(findings.contains(
        "spec.layers[2]",
        "supports clouds [azure], which does not include this profile's cloud \"aws\""
    ));
    assert_eq!(findings.errors().count(), 1, "{findings:#?}");
    let sim = profile("p", ProfileType::Infra, ProfileCloud::Sim, layers);
    let findings = findings_of(&source, &sim);
    assert!(findings.contains("spec.layers[0]", "needs packs with cloudTypes [\"all\"]"));
}

#[test]
fn dependencies_on_infra_layers_are_checked_within_a_base_profile() {
    let source = MemorySource::core()
        .pack(
            "istio",
            "1.6.2",
            "addon",
            r#", "constraints": {"dependencies": [
                {"packName": "kubernetes", "layer": "k8s", "type": "required", "minVersion": "1.21"},
                {"packName": "cert-manager", "layer": "addon", "type": "required"}]}"#,
        );
    let mut layers = core_layers();
    layers.push(layer("istio:1.6.2"));
    let full = profile("p", ProfileType::Full, ProfileCloud::All, layers);
    let findings = findings_of(&source, &full);
    assert!(findings.contains(
        "spec.layers[4]: constraints.dependencies[0]",
        "istio:1.6.2 needs kubernetes >= 1.21; the stack has kubernetes at 1.20.2"
    ));
    // cert-manager may come from an add-on profile the cluster adds.
    assert_eq!(findings.errors().count(), 1, "{findings:#?}");
    let addons = profile(
        "a",
        ProfileType::AddOn,
        ProfileCloud::All,
        vec![layer("istio:1.6.2")],
    );
    assert!(findings_of(&source, &addons).is_empty());
}
