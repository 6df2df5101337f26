//! Tests of the upgrade rules between the running and the next revision.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::cluster::{ClusterCloud, ControlPlanePool, NodePools, ResolvedNetwork};
use crate::pack::manifest::parse_manifest;
use crate::revision::{KubeadmSettings, OsImage, RevisionLayer};

/// A desired state with Kubernetes `kubernetes` and the layers `name:version`.
fn state(kubernetes: &str, layers: &[&str]) -> DesiredState {
    DesiredState {
        cloud_type: ClusterCloud::Sim,
        providers: Vec::new(),
        profiles: vec!["infra:1.0.0".into()],
        kubernetes_version: kubernetes.into(),
        os: OsImage {
            pack: "ubuntu".into(),
            version: "18.04.4".into(),
            annotations: Default::default(),
        },
        kubeadm: KubeadmSettings::default(),
        layers: layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let (name, version) = l.split_once(':').unwrap();
                RevisionLayer {
                    order: u32::try_from(i + 1).unwrap(),
                    name: name.into(),
                    version: version.into(),
                    layer: "addon".into(),
                    registry: None,
                    digest: format!("sha256:{name}{version}"),
                    values: String::new(),
                    secrets_digest: None,
                }
            })
            .collect(),
        node_pools: NodePools {
            control_plane: ControlPlanePool {
                count: 1,
                machine: Default::default(),
                health_check: None,
                remediation: None,
            },
            workers: Vec::new(),
        },
        network: ResolvedNetwork::resolve(None, None, None),
        certificates_expiry_days: None,
        vsphere: None,
        aws: None,
        azure: None,
        account: None,
    }
}

fn k8s(version: &str) -> DesiredState {
    state(version, &[])
}

fn refused(running: &str, next: &str) -> Vec<String> {
    check_upgrade(&k8s(running), &k8s(next), &[])
        .unwrap_err()
        .violations
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn bounds(min: Option<&str>, max: Option<&str>) -> VersionBounds {
    VersionBounds {
        min: min.map(|v| PackVersion::parse(v).unwrap()),
        max: max.map(|v| PackVersion::parse(v).unwrap()),
    }
}

fn constraint(pack: &str, version: &str, on_top_of: &str, min: &str) -> UpgradeConstraint {
    UpgradeConstraint {
        pack: pack.into(),
        version: version.into(),
        on_top_of: on_top_of.into(),
        bounds: bounds(Some(min), None),
    }
}

#[test]
fn one_minor_up_is_allowed() {
    assert_eq!(check_upgrade(&k8s("v1.20.2"), &k8s("v1.21.1"), &[]), Ok(()));
    assert_eq!(check_upgrade(&k8s("v1.20.2"), &k8s("v1.21.0"), &[]), Ok(()));
}

#[test]
fn a_patch_up_and_the_same_version_are_allowed() {
    assert_eq!(check_upgrade(&k8s("v1.20.2"), &k8s("v1.20.9"), &[]), Ok(()));
    assert_eq!(check_upgrade(&k8s("v1.20.2"), &k8s("v1.20.2"), &[]), Ok(()));
    // Written with and without the `v`, padded or not: the same release.
    assert_eq!(check_upgrade(&k8s("v1.20.2"), &k8s("1.20.2"), &[]), Ok(()));
    assert_eq!(check_upgrade(&k8s("v1.21.0"), &k8s("v1.21"), &[]), Ok(()));
}

#[test]
fn two_minors_up_are_refused_naming_the_minor_to_publish_first() {
    assert_eq!(
        refused("v1.20.2", "v1.22.1"),
        [
            "one Kubernetes minor version at a time: Kubernetes 1.20.2 → 1.22.1 skips minor 1.21; publish a revision with 1.21.x first"
        ]
    );
    assert_eq!(
        refused("v1.20.2", "v1.23.0"),
        [
            "one Kubernetes minor version at a time: Kubernetes 1.20.2 → 1.23.0 skips minors 1.21, 1.22; publish a revision with 1.21.x first"
        ]
    );
    let refusal = check_upgrade(&k8s("v1.20.2"), &k8s("v1.22.1"), &[]).unwrap_err();
    assert_eq!(refusal.violations[0].rule, UpgradeRule::KubernetesMinorStep);
}

#[test]
fn a_new_major_is_refused() {
    assert_eq!(
        refused("v1.28.3", "v2.0.0"),
        [
            "one Kubernetes minor version at a time: Kubernetes 1.28.3 → 2.0.0 changes the major version; stay within 1.x, one minor version at a time (1.28.x or 1.29.x)"
        ]
    );
}

#[test]
fn any_downgrade_is_refused_a_patch_included() {
    assert_eq!(
        refused("v1.20.2", "v1.20.1"),
        [
            "Kubernetes never goes down: Kubernetes 1.20.2 → 1.20.1 is a downgrade; keep 1.20.2 or move up to a later 1.20 or a 1.21.x release"
        ]
    );
    assert_eq!(
        refused("v1.21.1", "v1.20.2"),
        [
            "Kubernetes never goes down: Kubernetes 1.21.1 → 1.20.2 is a downgrade; keep 1.21.1 or move up to a later 1.21 or a 1.22.x release"
        ]
    );
    // A release's own pre-release is below it; a major down is a downgrade, not a jump.
    for (running, next) in [("v1.21.0", "v1.21.0-rc.1"), ("v2.0.0", "v1.29.0")] {
        let refusal = check_upgrade(&k8s(running), &k8s(next), &[]).unwrap_err();
        assert_eq!(
            refusal
                .violations
                .iter()
                .map(|v| v.rule)
                .collect::<Vec<_>>(),
            [UpgradeRule::KubernetesNeverDown],
            "{running} → {next}"
        );
    }
}

#[test]
fn a_version_that_is_not_one_is_refused_not_guessed() {
    assert_eq!(
        refused("v1.20.2", "latest"),
        [
            "one Kubernetes minor version at a time: Kubernetes 1.20.2 → latest cannot be compared: \"latest\" is not a version: \"latest\" is not a number; expected numbers separated by dots, like 1.28, 18.04.4 or v1.2.3-rc.1; publish a revision with a MAJOR.MINOR.PATCH release"
        ]
    );
}

#[test]
fn an_upgrade_constraint_met_by_the_running_revision_is_allowed() {
    let running = state("v1.21.1", &["kubernetes:1.21.1", "cilium:1.10.0"]);
    let next = state("v1.21.1", &["kubernetes:1.21.1", "cilium:1.11.0"]);
    let constraints = [constraint("cilium", "1.11.0", "kubernetes", "1.21.0")];
    assert_eq!(check_upgrade(&running, &next, &constraints), Ok(()));
    // Inclusive bounds, compared leniently (`18.04.4` is `18.4.4`).
    let running = state("v1.21.1", &["ubuntu:18.04.4", "agent:1.0"]);
    let next = state("v1.21.1", &["ubuntu:18.04.4", "agent:2.0"]);
    let constraints = [UpgradeConstraint {
        bounds: bounds(Some("18.4.4"), Some("18.04.4")),
        ..constraint("agent", "2.0", "ubuntu", "0")
    }];
    assert_eq!(check_upgrade(&running, &next, &constraints), Ok(()));
}

#[test]
fn an_upgrade_constraint_is_checked_against_the_running_revision_not_the_next() {
    // The next revision upgrades Kubernetes and cilium together: the stack is consistent,
    // but cilium 1.11.0 needs Kubernetes 1.21 to be running first.
    let running = state("v1.20.2", &["kubernetes:1.20.2", "cilium:1.10.0"]);
    let next = state("v1.21.1", &["kubernetes:1.21.1", "cilium:1.11.0"]);
    let constraints = [constraint("cilium", "1.11.0", "kubernetes", "1.21.0")];
    let refusal = check_upgrade(&running, &next, &constraints).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "pack upgrade constraint: cilium 1.10.0 → 1.11.0 can only be applied on top of kubernetes >= 1.21.0; the running revision has kubernetes 1.20.2; publish a revision with kubernetes >= 1.21.0 first, then cilium 1.11.0"
    );
    assert_eq!(
        refusal.violations[0].rule,
        UpgradeRule::PackUpgradeConstraint
    );
}

#[test]
fn an_upgrade_constraint_on_a_pack_the_running_revision_lacks_is_refused() {
    let running = state("v1.21.1", &["cilium:1.10.0"]);
    let next = state("v1.21.1", &["hubble:1.0.0", "cilium:1.11.0"]);
    let constraints = [UpgradeConstraint {
        bounds: VersionBounds::default(),
        ..constraint("cilium", "1.11.0", "hubble", "0")
    }];
    assert_eq!(
        check_upgrade(&running, &next, &constraints)
            .unwrap_err()
            .to_string(),
        "pack upgrade constraint: cilium 1.10.0 → 1.11.0 can only be applied on top of hubble; the running revision has no hubble; publish a revision with hubble first, then cilium 1.11.0"
    );
}

#[test]
fn an_upgrade_constraint_above_its_maximum_is_refused() {
    let running = state("v1.22.0", &["kubernetes:1.22.0", "legacy:1.0.0"]);
    let next = state("v1.22.0", &["kubernetes:1.22.0", "legacy:1.1.0"]);
    let constraints = [UpgradeConstraint {
        bounds: bounds(Some("1.20"), Some("1.21")),
        ..constraint("legacy", "1.1.0", "kubernetes", "0")
    }];
    assert_eq!(
        check_upgrade(&running, &next, &constraints)
            .unwrap_err()
            .to_string(),
        "pack upgrade constraint: legacy 1.0.0 → 1.1.0 can only be applied on top of kubernetes >= 1.20 and <= 1.21; the running revision has kubernetes 1.22.0; publish a revision with kubernetes >= 1.20 and <= 1.21 first, then legacy 1.1.0"
    );
}

#[test]
fn a_pack_new_in_the_next_revision_or_unchanged_is_not_an_upgrade() {
    let running = state("v1.20.2", &["kubernetes:1.20.2"]);
    let next = state("v1.21.1", &["kubernetes:1.21.1", "cilium:1.11.0"]);
    let constraints = [constraint("cilium", "1.11.0", "kubernetes", "1.21.0")];
    assert_eq!(check_upgrade(&running, &next, &constraints), Ok(()));
    // The same version (written differently): nothing is applied on top of anything.
    let running = state("v1.20.2", &["kubernetes:1.20.2", "cilium:1.11"]);
    let next = state("v1.21.1", &["kubernetes:1.21.1", "cilium:1.11.0"]);
    assert_eq!(check_upgrade(&running, &next, &constraints), Ok(()));
}

#[test]
fn every_broken_rule_is_reported() {
    let running = state("v1.20.2", &["kubernetes:1.20.2", "cilium:1.10.0"]);
    let next = state("v1.22.0", &["kubernetes:1.22.0", "cilium:1.11.0"]);
    let constraints = [constraint("cilium", "1.11.0", "kubernetes", "1.21.0")];
    let refusal = check_upgrade(&running, &next, &constraints).unwrap_err();
    assert_eq!(
        refusal
            .violations
            .iter()
            .map(|v| v.rule)
            .collect::<Vec<_>>(),
        [
            UpgradeRule::KubernetesMinorStep,
            UpgradeRule::PackUpgradeConstraint
        ]
    );
    assert!(
        refusal
            .to_string()
            .contains("publish a revision with 1.21.x first; pack upgrade constraint: "),
        "{refusal}"
    );
}

#[test]
fn constraints_are_the_upgrade_dependencies_of_a_manifest() {
    let (manifest, findings) = parse_manifest(
        r#"{"name": "cilium", "displayName": "Cilium", "version": "1.11.0", "layer": "cni",
            "constraints": {"dependencies": [
              {"packName": "kubernetes", "layer": "k8s", "type": "upgrade", "minVersion": "1.21.0"},
              {"packName": "kubernetes", "layer": "k8s", "type": "required", "minVersion": "1.18"}
            ]}}"#,
    );
    let manifest = manifest.unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(
        UpgradeConstraint::of(&manifest),
        [constraint("cilium", "1.11.0", "kubernetes", "1.21.0")]
    );
}
