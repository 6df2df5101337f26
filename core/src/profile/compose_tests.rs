//! Tests of `compose.rs`: tables of inputs and the findings they must produce.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

use super::*;
use crate::cluster::{ClusterCloud, LayerOverride};
use crate::profile::fixtures::*;
use crate::profile::{ClusterProfile, ProfileCloud, ProfileLayer, ProfileType};

fn base() -> ClusterProfile {
    profile("base", ProfileType::Infra, ProfileCloud::All, core_layers())
}

fn names(stack: &ComposedStack) -> Vec<String> {
    stack.layers.iter().map(|l| l.name.clone()).collect()
}

fn prioritized(reference: &str, priority: Option<i32>) -> ProfileLayer {
    ProfileLayer {
        priority,
        ..layer(reference)
    }
}

#[test]
fn install_order_is_infra_layers_then_add_ons_by_priority_then_profile_order() {
    let source = MemorySource::core()
        .pack("kernel-rt", "5.15", "kernel", "")
        .pack("a", "1", "addon", "")
        .pack("b", "1", "addon", "")
        .pack("c", "1", "addon", "")
        .pack("d", "1", "addon", "")
        .pack("e", "1", "addon", "");
    // Listed out of install order on purpose.
    let full = profile(
        "base",
        ProfileType::Full,
        ProfileCloud::All,
        vec![
            layer("hostpath:1.7.3"),
            prioritized("a:1", Some(5)),
            layer("calico:3.19.0"),
            layer("kubernetes:1.20.2"),
            layer("kernel-rt:5.15"),
            layer("ubuntu:22.04"),
            layer("b:1"),
        ],
    );
    let first = profile(
        "first",
        ProfileType::AddOn,
        ProfileCloud::All,
        vec![layer("c:1"), prioritized("d:1", Some(-1))],
    );
    let second = profile(
        "second",
        ProfileType::AddOn,
        ProfileCloud::All,
        vec![prioritized("e:1", Some(5))],
    );
    let cluster = cluster(ClusterCloud::Sim, &["base", "first", "second"]);
    let (stack, findings) = compose(&cluster, &[second, full, first], &source);
    assert!(!findings.has_errors(), "{findings:#?}");
    let stack = stack.unwrap();
    assert_eq!(
        names(&stack),
        [
            "ubuntu",
            "kernel-rt",
            "kubernetes",
            "calico",
            "hostpath",
            "d",
            "b",
            "c",
            "a",
            "e"
        ]
    );
    assert_eq!(stack.layers[5].order, 6);
    assert_eq!(stack.layers[5].profile, "first");
    assert_eq!(
        stack.profiles,
        ["base:1.0.0", "first:1.0.0", "second:1.0.0"]
    );
}

#[test]
fn profile_selection_errors() {
    let source = MemorySource::core().pack("x", "1", "addon", "");
    let addons = profile(
        "addons",
        ProfileType::AddOn,
        ProfileCloud::All,
        vec![layer("x:1")],
    );
    let other_base = profile("other", ProfileType::Full, ProfileCloud::All, core_layers());
    let aws_only = profile(
        "aws-base",
        ProfileType::Infra,
        ProfileCloud::Aws,
        core_layers(),
    );
    let mut v2 = base();
    v2.spec.version = "2.0.0".into();
    // (cluster cloud, profiles the cluster selects, profiles given, subject, message)
    let cases: Vec<(ClusterCloud, Vec<&str>, Vec<ClusterProfile>, &str, &str)> = vec![
        (
            ClusterCloud::Sim,
            vec!["addons"],
            vec![addons.clone()],
            "spec.profiles",
            "has no infra or full profile",
        ),
        (
            ClusterCloud::Sim,
            vec!["base", "other"],
            vec![base(), other_base.clone()],
            "spec.profiles",
            "has 2 infra or full profiles (base, other)",
        ),
        (
            ClusterCloud::Sim,
            vec!["missing"],
            vec![base()],
            "spec.profiles[0]",
            "profile \"missing\" was not found; profiles given: base",
        ),
        (
            ClusterCloud::Sim,
            vec!["base"],
            vec![v2],
            "spec.profiles[0]",
            "profile \"base\" has no version \"1.0.0\"; versions given: 2.0.0",
        ),
        (
            ClusterCloud::Azure,
            vec!["aws-base"],
            vec![aws_only],
            "spec.profiles[0]",
            "profile aws-base is for cloud \"aws\", but the cluster's cloudType is \"azure\"",
        ),
        (
            ClusterCloud::Sim,
            vec![],
            vec![base()],
            "spec.profiles",
            "is empty",
        ),
    ];
    for (cloud, selected, given, subject, message) in cases {
        let (stack, findings) = compose(&cluster(cloud, &selected), &given, &source);
        assert!(stack.is_none());
        assert!(
            findings.contains(subject, message),
            "{subject}: {message}\n got {findings:#?}"
        );
    }
}

#[test]
fn a_pack_in_two_profiles_names_both() {
    let source = MemorySource::core().pack("istio", "1.6.2", "addon", "");
    let mut full_layers = core_layers();
    full_layers.push(layer("istio:1.6.2"));
    let full = profile("base", ProfileType::Full, ProfileCloud::All, full_layers);
    let addons = profile(
        "mesh",
        ProfileType::AddOn,
        ProfileCloud::All,
        vec![layer("istio:1.6.2")],
    );
    let (stack, findings) = compose(
        &cluster(ClusterCloud::Sim, &["base", "mesh"]),
        &[full, addons],
        &source,
    );
    assert!(stack.is_none());
    assert!(findings.contains(
        "profile mesh: spec.layers[0]",
        "pack istio is also in profile base (spec.layers[4])"
    ));
}

#[test]
fn packs_must_allow_the_cluster_cloud_even_in_an_all_profile() {
    let source = MemorySource::core().pack("aws-lb", "1", "addon", r#", "cloudTypes": ["aws"]"#);
    let addons = profile(
        "lb",
        ProfileType::AddOn,
        ProfileCloud::Aws,
        vec![layer("aws-lb:1")],
    );
    let (stack, _) = compose(
        &cluster(ClusterCloud::Aws, &["base", "lb"]),
        &[base(), addons.clone()],
        &source,
    );
    assert!(stack.is_some());
    let (stack, findings) = compose(
        &cluster(ClusterCloud::Azure, &["base", "lb"]),
        &[base(), addons],
        &source,
    );
    assert!(stack.is_none());
    assert!(
        findings.contains("spec.profiles[1]", "is for cloud \"aws\""),
        "{findings:#?}"
    );
}

#[test]
fn values_merge_pack_then_profile_then_cluster() {
    let source = MemorySource::core().with(
        r#"{"name": "app", "displayName": "App", "version": "1", "layer": "addon", "addonType": "ingress"}"#,
        "replicas: 1\nimage: {repo: app, tag: v1}\nports: [80, 443]\ndebug: true\nkeep: yes\n",
    );
    // (profile values, cluster override, expected merged values)
    let cases = [
        (
            None,
            None,
            "replicas: 1\nimage: {repo: app, tag: v1}\nports: [80, 443]\ndebug: true\nkeep: yes\n",
        ),
        (
            Some("replicas: 2"),
            None,
            "replicas: 2\nimage: {repo: app, tag: v1}\nports: [80, 443]\ndebug: true\nkeep: yes\n",
        ),
        (
            Some("replicas: 2"),
            Some("replicas: 3"),
            "replicas: 3\nimage: {repo: app, tag: v1}\nports: [80, 443]\ndebug: true\nkeep: yes\n",
        ),
        (
            Some("image: {tag: v2}"),
            Some("image: {repo: mirror/app}"),
            "replicas: 1\nimage: {repo: mirror/app, tag: v2}\nports: [80, 443]\ndebug: true\nkeep: yes\n",
        ),
        (
            Some("ports: [8080]"),
            None,
            "replicas: 1\nimage: {repo: app, tag: v1}\nports: [8080]\ndebug: true\nkeep: yes\n",
        ),
        (
            Some("debug: null"),
            None,
            "replicas: 1\nimage: {repo: app, tag: v1}\nports: [80, 443]\nkeep: yes\n",
        ),
        (
            None,
            Some("image: {tag: null}\nkeep: null"),
            "replicas: 1\nimage: {repo: app}\nports: [80, 443]\ndebug: true\n",
        ),
        (
            Some("extra: {a: 1}"),
            Some("extra: {b: 2}"),
            "replicas: 1\nimage: {repo: app, tag: v1}\nports: [80, 443]\ndebug: true\nkeep: yes\nextra: {a: 1, b: 2}\n",
        ),
    ];
    for (profile_values, cluster_values, expected) in cases {
        let mut app = layer("app:1");
        app.values = profile_values.map(String::from);
        let addons = profile("apps", ProfileType::AddOn, ProfileCloud::All, vec![app]);
        let mut c = cluster(ClusterCloud::Sim, &["base", "apps"]);
        if let Some(values) = cluster_values {
            c.spec.overrides.push(LayerOverride {
                pack: "app".into(),
                values: values.into(),
                presets: None,
            });
        }
        let (stack, findings) = compose(&c, &[base(), addons], &source);
        assert!(!findings.has_errors(), "{findings:#?}");
        let merged = &stack.unwrap().layers[4].values.unmasked().clone();
        let expected: serde_yaml::Value = serde_yaml::from_str(expected).unwrap();
        assert_eq!(
            merged, &expected,
            "profile {profile_values:?}, cluster {cluster_values:?}"
        );
    }
}

#[test]
fn overrides_must_name_a_pack_of_the_stack_and_be_a_mapping() {
    let mut c = cluster(ClusterCloud::Sim, &["base"]);
    c.spec.overrides = vec![
        LayerOverride {
            pack: "nginx".into(),
            values: "a: 1".into(),
            presets: None,
        },
        LayerOverride {
            pack: "calico".into(),
            values: "just text".into(),
            presets: None,
        },
    ];
    let (stack, findings) = compose(&c, &[base()], &MemorySource::core());
    assert!(stack.is_none());
    assert!(findings.contains(
        "spec.overrides[0].pack",
        "\"nginx\" is not a pack of this cluster's stack; the stack has: ubuntu, kubernetes, calico, hostpath"
    ));
    assert!(findings.contains(
        "spec.overrides[1].values",
        "found a string, expected YAML text holding a mapping"
    ));
}

fn with_dependency(kind: &str, target: &str, layer_name: &str, bounds: &str) -> MemorySource {
    MemorySource::core().pack("linkerd", "2.9.0", "addon", "").pack(
        "app",
        "1.0.0",
        "addon",
        &format!(
            r#", "constraints": {{"dependencies": [{{"packName": "{target}", "layer": "{layer_name}", "type": "{kind}"{bounds}}}]}}"#
        ),
    )
}

#[test]
fn dependency_constraints_on_the_composed_stack() {
    // (type, named pack, its layer, bounds, add linkerd to the stack, expected error or None)
    let cases: Vec<(&str, &str, &str, &str, bool, Option<&str>)> = vec![
        (
            "required",
            "kubernetes",
            "k8s",
            r#", "minVersion": "1.20""#,
            false,
            None,
        ),
        (
            "required",
            "kubernetes",
            "k8s",
            r#", "minVersion": "1.20.2", "maxVersion": "1.20.2""#,
            false,
            None,
        ),
        (
            "required",
            "kubernetes",
            "k8s",
            r#", "minVersion": "1.21""#,
            false,
            Some("app:1.0.0 needs kubernetes >= 1.21; the stack has kubernetes at 1.20.2"),
        ),
        (
            "required",
            "kubernetes",
            "k8s",
            r#", "maxVersion": "1.19.9""#,
            false,
            Some("needs kubernetes <= 1.19.9"),
        ),
        (
            "required",
            "cert-manager",
            "addon",
            "",
            false,
            Some(
                "app:1.0.0 requires cert-manager (any version) in the addon layer; the stack has no cert-manager",
            ),
        ),
        (
            "required",
            "kubernetes",
            "cni",
            "",
            false,
            Some(
                "depends on kubernetes in the cni layer, but kubernetes:1.20.2 is in the k8s layer",
            ),
        ),
        (
            "optional",
            "cert-manager",
            "addon",
            r#", "minVersion": "9""#,
            false,
            None,
        ),
        (
            "optional",
            "linkerd",
            "addon",
            r#", "minVersion": "2.10""#,
            true,
            Some("needs linkerd >= 2.10; the stack has linkerd at 2.9.0"),
        ),
        (
            "optional",
            "linkerd",
            "addon",
            r#", "minVersion": "2.9""#,
            true,
            None,
        ),
        (
            "notSupported",
            "linkerd",
            "addon",
            "",
            true,
            Some("app:1.0.0 does not support linkerd, which the stack has at 2.9.0"),
        ),
        ("notSupported", "linkerd", "addon", "", false, None),
        (
            "notSupported",
            "linkerd",
            "addon",
            r#", "maxVersion": "2.8""#,
            true,
            None,
        ),
        (
            "notSupported",
            "linkerd",
            "addon",
            r#", "minVersion": "2.0", "maxVersion": "2.9.0""#,
            true,
            Some("does not support linkerd >= 2.0 and <= 2.9.0; the stack has it at 2.9.0"),
        ),
        (
            "upgrade",
            "kubernetes",
            "k8s",
            r#", "minVersion": "1.20""#,
            false,
            None,
        ),
        (
            "upgrade",
            "kubernetes",
            "k8s",
            r#", "minVersion": "1.21""#,
            false,
            Some("needs kubernetes upgraded to >= 1.21 first"),
        ),
        (
            "upgrade",
            "cert-manager",
            "addon",
            r#", "minVersion": "1.0""#,
            false,
            Some("can only be applied on top of cert-manager (>= 1.0)"),
        ),
    ];
    for (kind, target, layer_name, bounds, add_linkerd, expected) in cases {
        let source = with_dependency(kind, target, layer_name, bounds);
        let mut layers = vec![layer("app:1.0.0")];
        if add_linkerd {
            layers.push(layer("linkerd:2.9.0"));
        }
        let addons = profile("apps", ProfileType::AddOn, ProfileCloud::All, layers);
        let (stack, findings) = compose(
            &cluster(ClusterCloud::Sim, &["base", "apps"]),
            &[base(), addons],
            &source,
        );
        let label = format!("{kind} {target} {bounds} linkerd={add_linkerd}");
        match expected {
            None => assert!(
                stack.is_some() && !findings.has_errors(),
                "{label}: {findings:#?}"
            ),
            Some(message) => {
                assert!(stack.is_none(), "{label}: expected an error");
                assert!(
                    findings.contains("profile apps: app: constraints.dependencies[0]", message),
                    "{label}: {message}\n got {findings:#?}"
                );
            }
        }
    }
}

#[test]
fn resource_minimums_against_node_pools() {
    let source = |constraint: &str| {
        MemorySource::core().pack(
            "app",
            "1",
            "addon",
            &format!(r#", "constraints": {{"resources": [{constraint}]}}"#),
        )
    };
    let run = |constraint: &str, cluster: WorkloadCluster| {
        let addons = profile(
            "apps",
            ProfileType::AddOn,
            ProfileCloud::All,
            vec![layer("app:1")],
        );
        compose(&cluster, &[base(), addons], &source(constraint))
    };
    let subject = "profile apps: app: constraints.resources[0]";
    // The fixture's control plane: 4 CPUs, 8192 MiB, 80 GiB; workers: 8, 16384, 100.
    let (stack, findings) = run(
        r#"{"type": "cpu", "minLimit": 6, "components": [{"scheduleType": "control-plane"}]}"#,
        cluster(ClusterCloud::Sim, &["base", "apps"]),
    );
    assert!(stack.is_none());
    assert!(findings.contains(
        subject,
        "app:1 needs at least 6 CPUs of cpu per node; node pool control-plane has 4"
    ));
    let (stack, _) = run(
        r#"{"type": "cpu", "minLimit": 6, "components": [{"scheduleType": "worker"}]}"#,
        cluster(ClusterCloud::Sim, &["base", "apps"]),
    );
    assert!(stack.is_some());
    let (_, findings) = run(
        r#"{"type": "memory", "minLimit": 10000}"#,
        cluster(ClusterCloud::Sim, &["base", "apps"]),
    );
    assert!(findings.contains(subject, "node pool control-plane has 8192"));
    assert!(!findings.contains(subject, "node pool general"));
    let (_, findings) = run(
        r#"{"type": "diskSize", "minLimit": 90, "components": [{"scheduleType": "all"}]}"#,
        cluster(ClusterCloud::Sim, &["base", "apps"]),
    );
    assert!(findings.contains(
        subject,
        "at least 90 GiB of diskSize per node; node pool control-plane has 80"
    ));
    let mut unknown = cluster(ClusterCloud::Sim, &["base", "apps"]);
    unknown.spec.node_pools.workers[0].machine.memory_mib = None;
    let (stack, findings) = run(
        r#"{"type": "memory", "minLimit": 1024, "components": [{"scheduleType": "worker"}]}"#,
        unknown,
    );
    assert!(
        stack.is_some(),
        "an unknown size is a warning, not an error"
    );
    assert!(findings.contains(
        subject,
        "node pool general does not say its machine.memoryMib"
    ));
}

#[test]
fn cluster_spec_rules() {
    let mut c = cluster(ClusterCloud::Sim, &["base"]);
    c.spec.node_pools.control_plane.count = 2;
    c.spec
        .node_pools
        .workers
        .push(c.spec.node_pools.workers[0].clone());
    c.spec.node_pools.workers.push(crate::cluster::WorkerPool {
        name: "GPU_pool".into(),
        count: 1,
        machine: Default::default(),
        health_check: None,
        rollout: None,
    });
    let findings = validate_cluster_spec(&c);
    assert!(findings.contains(
        "spec.nodePools.controlPlane.count",
        "is 2; expected 1, 3 or 5"
    ));
    assert!(findings.contains(
        "spec.nodePools.workers[1].name",
        "is already the name of spec.nodePools.workers[0]"
    ));
    assert!(findings.contains(
        "spec.nodePools.workers[2].name",
        "\"GPU_pool\" is not a valid pool name"
    ));
}

#[test]
fn findings_carry_the_kind_of_problem_where_they_are_made() {
    use crate::finding::FindingKind;
    let kinds = |cloud: ClusterCloud,
                 selected: &[&str],
                 given: &[ClusterProfile],
                 source: &MemorySource| {
        let (_, findings) = compose(&cluster(cloud, selected), given, source);
        findings.errors().map(|f| f.kind).collect::<Vec<_>>()
    };
    let source = MemorySource::core();
    let aws_only = profile(
        "aws-base",
        ProfileType::Infra,
        ProfileCloud::Aws,
        core_layers(),
    );
    let mut v2 = base();
    v2.spec.version = "2.0.0".into();
    let unresolved = profile(
        "apps",
        ProfileType::AddOn,
        ProfileCloud::All,
        vec![layer("absent:1")],
    );
    let demanding = MemorySource::core().pack(
        "app",
        "1",
        "addon",
        r#", "constraints": {"resources": [{"type": "cpu", "minLimit": 64}]}"#,
    );
    let apps = profile(
        "apps",
        ProfileType::AddOn,
        ProfileCloud::All,
        vec![layer("app:1")],
    );
    let cases: Vec<(Vec<FindingKind>, Vec<FindingKind>)> = vec![
        (
            kinds(ClusterCloud::Sim, &["missing"], &[base()], &source),
            vec![FindingKind::ProfileNotFound],
        ),
        (
            kinds(ClusterCloud::Sim, &["base"], &[v2], &source),
            vec![FindingKind::ProfileNotFound],
        ),
        (
            kinds(ClusterCloud::Azure, &["aws-base"], &[aws_only], &source),
            vec![FindingKind::CloudMismatch],
        ),
        (
            kinds(
                ClusterCloud::Sim,
                &["base", "apps"],
                &[base(), unresolved],
                &source,
            ),
            vec![FindingKind::PackUnresolved],
        ),
        (
            kinds(
                ClusterCloud::Sim,
                &["base", "apps"],
                &[base(), apps],
                &demanding,
            ),
            vec![FindingKind::ConstraintNotMet; 2],
        ),
        (
            kinds(ClusterCloud::Sim, &[], &[base()], &source),
            vec![FindingKind::Invalid],
        ),
    ];
    for (got, expected) in cases {
        assert_eq!(got, expected);
    }
}

#[test]
fn a_pack_past_its_end_of_life_is_a_warning_not_a_refusal() {
    let source = MemorySource::default()
        .pack(
            "ubuntu",
            "22.04",
            "os",
            r#", "cloudTypes": ["all"], "eol": "2024-06-30""#,
        )
        .pack("kubernetes", "1.20.2", "k8s", r#", "eol": "2030-01-01""#)
        .pack("calico", "3.19.0", "cni", r#", "eol": "June 2025""#)
        .pack("hostpath", "1.7.3", "csi", "");
    let c = cluster(ClusterCloud::Sim, &["base"]);
    let (stack, findings) = compose(&c, &[base()], &source);
    let stack = stack.unwrap_or_else(|| panic!("{findings:#?}"));
    let today: k8s_openapi::jiff::civil::Date = "2026-12-04".parse().unwrap();
    let warnings = end_of_life_warnings(&stack, today);
    assert_eq!(warnings.errors().count(), 0);
    let texts: Vec<String> = warnings.warnings().map(|w| w.to_string()).collect();
    assert_eq!(texts.len(), 2, "{texts:#?}");
    assert!(
        texts[0].contains("layer ubuntu 22.04")
            && texts[0].contains("reached its end of life on 2024-06-30"),
        "{texts:#?}"
    );
    assert!(
        texts[1].contains("layer calico 3.19.0") && texts[1].contains("is not a date"),
        "{texts:#?}"
    );
    // On its last day it is still supported.
    let last_day: k8s_openapi::jiff::civil::Date = "2024-06-30".parse().unwrap();
    assert_eq!(end_of_life_warnings(&stack, last_day).warnings().count(), 1);
}

#[test]
fn resource_requests_named_by_parameter_references_are_evaluated_with_the_merged_values() {
    let pack = r#"{"name": "app", "displayName": "app", "version": "1", "layer": "addon", "addonType": "system app",
        "constraints": {"resources": [
            {"type": "memory", "components": [{"scheduleType": "worker",
                "resourceRequestParamRef": "manifests.app.memory",
                "replicaCountParamRef": "manifests.app.replicas"}]},
            {"type": "cpu", "components": [{"scheduleType": "control-plane",
                "resourceRequestParamRef": "manifests.app.cpu"}]}]}}"#;
    let values = "manifests:\n  app:\n    memory: 6Gi\n    replicas: 3\n    cpu: 500m\n";
    let source = MemorySource::core().with(pack, values);
    let run = |cluster_values: Option<&str>| {
        let addons = profile(
            "apps",
            ProfileType::AddOn,
            ProfileCloud::All,
            vec![layer("app:1")],
        );
        let mut c = cluster(ClusterCloud::Sim, &["base", "apps"]);
        if let Some(values) = cluster_values {
            c.spec.overrides.push(LayerOverride {
                pack: "app".into(),
                values: values.into(),
                presets: None,
            });
        }
        compose(&c, &[base(), addons], &source)
    };
    let memory = "profile apps: app: constraints.resources[0]";
    let cpu = "profile apps: app: constraints.resources[1]";
    // Workers: 2 nodes of 16384 MiB; the control plane: 1 node of 4 CPUs.
    let (stack, findings) = run(None);
    assert!(stack.is_some() && findings.is_empty(), "{findings:#?}");

    let (stack, findings) = run(Some("manifests:\n  app:\n    replicas: 6\n"));
    assert!(stack.is_none());
    assert!(
        findings.contains(
            memory,
            "app:1 asks 6144 MiB of memory (manifests.app.memory) × 6 replicas (manifests.app.replicas) = 36864 MiB; node pool general has 32768 MiB in all"
        ),
        "{findings:#?}"
    );

    let (stack, findings) = run(Some(
        "manifests:\n  app:\n    memory: 20Gi\n    replicas: 1\n",
    ));
    assert!(stack.is_none());
    assert!(
        findings.contains(
            memory,
            "app:1 asks 20480 MiB of memory per replica (manifests.app.memory); no node of node pool general has that much (the largest has 16384)"
        ),
        "{findings:#?}"
    );

    let (stack, findings) = run(Some(
        "manifests:\n  app:\n    cpu: 4500m\n    replicas: two\n",
    ));
    assert!(stack.is_none());
    assert!(findings.contains(cpu, "no node of node pool control-plane has that much"));
    assert!(findings.contains(
        memory,
        "app:1's manifests.app.replicas is \"two\", not a replica count"
    ));

    let (stack, findings) = run(Some("manifests:\n  app:\n    memory: lots\n"));
    assert!(stack.is_none());
    assert!(findings.contains(
        memory,
        "app:1's manifests.app.memory is \"lots\", not a memory quantity; expected bytes such as 512Mi"
    ));

    // A value of any size is named in a message of bounded size.
    let (_, findings) = run(Some(&format!(
        "manifests:\n  app:\n    memory: \"{}\"\n",
        "9".repeat(100_000) + "x"
    )));
    let long = findings
        .errors()
        .find(|f| f.subject == memory)
        .expect("a megabyte of digits is no quantity");
    assert!(
        long.message.contains("not a memory quantity") && long.message.len() < 400,
        "{}",
        long.message.len()
    );

    // A request path naming a mapping, or nothing: not checked, said as a warning.
    let (stack, findings) = run(Some(
        "manifests:\n  app:\n    memory: {requests: 1Gi}\n    cpu: null\n",
    ));
    assert!(stack.is_some(), "{findings:#?}");
    assert!(findings.contains(
        memory,
        "is a mapping, not a single quantity, so it is not checked"
    ));
    assert!(findings.contains(cpu, "app:1's values have no manifests.app.cpu"));
}
