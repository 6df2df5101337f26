//! The packs of `manifests/samples/compat-packs/`: each reproduces forms published packs
//! use (see each pack's README.md) and must load with exactly the warnings below; the
//! ones with a schema, presets or kubeadmconfig are taken through composition.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::*;
use crate::cluster::{ClusterCloud, LayerOverride, WorkloadCluster};
use crate::finding::Severity;
use crate::pack::manifest::{PackCloud, ScheduleType};
use crate::profile::compose::{ComposedStack, compose};
use crate::profile::fixtures::*;
use crate::profile::{ClusterProfile, ProfileCloud, ProfileType};
use crate::revision::desired_state;

fn compat(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/samples/compat-packs")
        .join(name)
}

/// Loads a compat pack; it must be valid and warn exactly `expected` as
/// (subject, part of the message).
fn load(name: &str, expected: &[(&str, &str)]) -> Pack {
    let (pack, findings) = Pack::load(&compat(name));
    let pack = pack.unwrap_or_else(|| panic!("{name}: {findings:#?}"));
    let warnings: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .collect();
    assert_eq!(warnings.len(), expected.len(), "{name}: {findings:#?}");
    for (subject, needle) in expected {
        assert!(
            findings.contains(subject, needle),
            "{name}: {subject}: {needle}\n{findings:#?}"
        );
    }
    pack
}

#[test]
fn every_compat_pack_is_covered_here() {
    let mut names: Vec<String> = std::fs::read_dir(compat(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "addon-kubeadmconfig",
            "empty-bounds",
            "foreign-templates",
            "leading-v",
            "mapping-images",
            "presets-groups",
            "schema-values",
            "unknown-vocabulary"
        ]
    );
}

#[test]
fn foreign_templates() {
    let pack = load("foreign-templates", &[]);
    assert_eq!(pack.values.verbatim_manifests, ["injector-templates"]);
    let values = pack.values.document.clone();
    let units = crate::pack::render::render_units(&pack, &values).unwrap();
    let verbatim: Vec<&str> = units
        .iter()
        .filter(|u| matches!(u.chart, crate::pack::render::UnitChart::Verbatim { .. }))
        .map(|u| u.source.as_str())
        .collect();
    assert_eq!(verbatim, ["manifests/injector-templates.yaml"]);
}

#[test]
fn mapping_images() {
    let pack = load("mapping-images", &[]);
    assert_eq!(
        pack.values.images,
        [
            "ghcr.io/strata-compat/app:1.3.2",
            "docker.io/library/busybox:1.36",
            "quay.io/strata-compat/sidecar:0.4.0"
        ]
    );
    assert_eq!(pack.manifest.addon_type.as_deref(), Some("app-services"));
}

#[test]
fn empty_bounds() {
    let pack = load("empty-bounds", &[]);
    let dependencies = &pack.manifest.constraints.dependencies;
    assert!(dependencies[0].bounds.min.is_some() && dependencies[0].bounds.max.is_none());
    assert!(dependencies[1].bounds.is_unbounded());
    assert_eq!(
        pack.manifest.constraints.resources[0].components[0].schedule_type,
        ScheduleType::ControlPlane
    );
}

#[test]
fn unknown_vocabulary() {
    let pack = load(
        "unknown-vocabulary",
        &[
            (
                "pack.json: cloudTypes[3]",
                "\"nimbus\" is not a cloud type Strata knows",
            ),
            (
                "pack.json: addonType",
                "\"data pipelines\" is not an add-on type Strata knows",
            ),
        ],
    );
    assert_eq!(
        pack.manifest.cloud_types,
        [PackCloud::All, PackCloud::Libvirt, PackCloud::Custom]
    );
    assert_eq!(pack.manifest.other_cloud_types, ["nimbus"]);
}

#[test]
fn leading_v() {
    let pack = load(
        "leading-v",
        &[
            (
                "pack.json: version",
                "\"v1.2.3\" has a leading 'v'; accepted",
            ),
            ("values.yaml: pack.namespace", "is empty; it is ignored"),
        ],
    );
    assert_eq!(pack.manifest.version().unwrap().numbers(), [1, 2, 3]);
    assert_eq!(pack.values.namespace, None);
}

fn stack_with(
    pack: &Pack,
    over: Option<LayerOverride>,
) -> (Option<ComposedStack>, Findings, WorkloadCluster) {
    let source = MemorySource::core().loaded(pack);
    let base = profile("base", ProfileType::Infra, ProfileCloud::All, core_layers());
    let addons: ClusterProfile = profile(
        "compat",
        ProfileType::AddOn,
        ProfileCloud::All,
        vec![layer(&pack.reference())],
    );
    let mut c = cluster(ClusterCloud::Sim, &["base", "compat"]);
    c.spec.overrides.extend(over);
    let (stack, findings) = compose(&c, &[base, addons], &source);
    (stack, findings, c)
}

fn layer_values<'s>(stack: &'s ComposedStack, name: &str) -> &'s Value {
    stack
        .layers
        .iter()
        .find(|l| l.name == name)
        .unwrap()
        .values
        .unmasked()
}

#[test]
fn schema_values() {
    let pack = load(
        "schema-values",
        &[
            (
                "schema.yaml: manifests.console.licenseKey",
                "manifests.console.licenseKey is required and not set (hint: The license key from your account page.); the pack has no default",
            ),
            (
                "values.yaml",
                "values manifests.console.apiToken: .spectro.var.CONSOLE_TOKEN: user variables (.spectro.var.*) are not supported by Strata yet",
            ),
        ],
    );
    assert_eq!(pack.schema.entries.len(), 11);
    assert_eq!(pack.schema.secrets().count(), 2);
    // A cluster that leaves the required value unset is refused, with the key and hint.
    let (stack, findings, _) = stack_with(&pack, None);
    assert!(stack.is_none());
    assert!(
        findings.contains(
            "profile compat: spec.layers[0]",
            "pack schema-values:1.0.0: manifests.console.licenseKey is required and not set (hint: The license key from your account page.); set it in the profile layer's values or in the cluster's spec.overrides"
        ),
        "{findings:#?}"
    );
    // Set, with a secret: valid, and the secret is masked in the printed stack.
    let over = LayerOverride {
        pack: "schema-values".into(),
        values:
            "manifests:\n  console:\n    licenseKey: LIC-123\n    adminPassword: s3cret-admin\n    apiToken: t0kenValue0123456789\n"
                .into(),
        presets: None,
    };
    let (stack, findings, _) = stack_with(&pack, Some(over.clone()));
    let stack = stack.unwrap_or_else(|| panic!("{findings:#?}"));
    assert_eq!(
        layer_values(&stack, "schema-values")["manifests"]["console"]["licenseKey"],
        Value::from("LIC-123")
    );
    let printed = serde_yaml::to_string(&stack).unwrap();
    assert!(!printed.contains("s3cret-admin") && printed.contains("adminPassword: <secret>"));
    // A value of the wrong type names the key, what was found and what was expected.
    let mut wrong = over;
    wrong
        .values
        .push_str("    port: 80\n    tlsEnabled: maybe\n");
    let (stack, findings, _) = stack_with(&pack, Some(wrong));
    assert!(stack.is_none());
    assert!(findings.contains(
        "profile compat: spec.layers[0]",
        "manifests.console.port: found the number 80, expected a number from 1024 to 65535"
    ));
    assert!(findings.contains(
        "profile compat: spec.layers[0]",
        "manifests.console.tlsEnabled: found \"maybe\", expected a boolean (true or false)"
    ));
}

#[test]
fn presets_groups() {
    let pack = load("presets-groups", &[]);
    assert_eq!(pack.presets.presets.len(), 4);
    // The pack's comment enables a preset of each group.
    let rules = pack.value_rules();
    let defaults = rules.defaults_with_presets(&pack.values.document);
    assert_eq!(
        defaults["manifests"]["gateway"],
        serde_yaml::from_str::<Value>("service: {type: LoadBalancer}\nlogLevel: info\n").unwrap()
    );
    // A cluster choosing the other preset of a group replaces the pack's there.
    let over = LayerOverride {
        pack: "presets-groups".into(),
        values: String::new(),
        presets: Some(vec!["expose-ingress".into(), "Log level:logs-debug".into()]),
    };
    let (stack, findings, _) = stack_with(&pack, Some(over));
    let stack = stack.unwrap_or_else(|| panic!("{findings:#?}"));
    assert_eq!(
        layer_values(&stack, "presets-groups")["manifests"]["gateway"],
        serde_yaml::from_str::<Value>(
            "service: {type: ClusterIP}\ningress: {enabled: true, host: gateway.example}\nlogLevel: debug\n"
        )
        .unwrap()
    );
    // Two presets of one group exclude each other.
    let both = LayerOverride {
        pack: "presets-groups".into(),
        values: String::new(),
        presets: Some(vec!["expose-ingress".into(), "expose-loadbalancer".into()]),
    };
    let (stack, findings, _) = stack_with(&pack, Some(both));
    assert!(stack.is_none());
    assert!(findings.contains(
        "spec.overrides[0].presets",
        "names Exposure:expose-ingress and Exposure:expose-loadbalancer, which are both in group \"Exposure\""
    ));
}

#[test]
fn addon_kubeadmconfig() {
    let pack = load("addon-kubeadmconfig", &[]);
    let (stack, findings, cluster) = stack_with(&pack, None);
    let stack = stack.unwrap_or_else(|| panic!("{findings:#?}"));
    let desired = desired_state(&cluster, &stack, None).unwrap();
    assert_eq!(
        desired.kubeadm.pre_kubeadm_commands,
        [
            "echo \"Installing nfs-common\"",
            "apt update",
            "apt install -y nfs-common"
        ]
    );
    assert_eq!(desired.kubeadm.files[0].path, "/etc/nfsmount.conf");
    assert_eq!(desired.kubeadm.files[0].owner.as_deref(), Some("root:root"));
    let input = crate::capi::BuildInput {
        cluster_name: "demo",
        namespace: "compat",
        revision: 1,
        desired: &desired,
    };
    let objects = crate::capi::control_plane_objects(&input).unwrap();
    let kcp = objects
        .iter()
        .find(|o| o["kind"] == "KubeadmControlPlane")
        .unwrap();
    let spec = &kcp["spec"]["kubeadmConfigSpec"];
    assert_eq!(spec["preKubeadmCommands"][2], "apt install -y nfs-common");
    assert_eq!(spec["files"][0]["path"], "/etc/nfsmount.conf");
    assert_eq!(spec["files"][0]["permissions"], "0644");
}
