//! Tests of `plan.rs`: each kind of change, what it replaces, and the printed plan.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use super::*;
use crate::cluster::{ClusterCloud, ControlPlanePool, NodePools, ResolvedNetwork, WorkerPool};
use crate::revision::{DesiredState, KubeadmFile, KubeadmSettings, RevisionLayer};

fn layer(order: u32, name: &str, version: &str, kind: &str, values: &str) -> RevisionLayer {
    RevisionLayer {
        order,
        name: name.into(),
        version: version.into(),
        layer: kind.into(),
        registry: None,
        digest: format!("sha256:{name}-{version}"),
        values: values.into(),
        secrets_digest: None,
    }
}

fn machine(cpus: u32, memory_mib: u64) -> MachineShape {
    MachineShape {
        cpus: Some(cpus),
        memory_mib: Some(memory_mib),
        ..MachineShape::default()
    }
}

/// Revision 1 of a simulated 3 + 2 node cluster `demo`, Kubernetes v1.30.2.
fn revision() -> ClusterRevisionSpec {
    ClusterRevisionSpec {
        cluster_name: "demo".into(),
        number: 1,
        content_hash: "sha256:1".into(),
        rollback_of: None,
        sources: None,
        desired: DesiredState {
            cloud_type: ClusterCloud::Sim,
            providers: Vec::new(),
            profiles: vec!["sim-infra:1.0.0".into()],
            kubernetes_version: "v1.30.2".into(),
            os: OsImage {
                pack: "ubuntu-sim".into(),
                version: "22.04".into(),
                annotations: BTreeMap::from([("osName".into(), "ubuntu".into())]),
            },
            kubeadm: KubeadmSettings {
                kubelet_extra_args: BTreeMap::from([("max-pods".into(), "110".into())]),
                ..KubeadmSettings::default()
            },
            layers: vec![
                layer(1, "ubuntu-sim", "22.04", "os", "pack: {}\n"),
                layer(
                    2,
                    "kubernetes",
                    "1.30.2",
                    "k8s",
                    "pack:\n  podCIDR: 192.168.0.0/16\n",
                ),
                layer(
                    3,
                    "cni-calico",
                    "3.27.0",
                    "cni",
                    "manifests:\n  calico:\n    mtu: 1440\n",
                ),
                layer(
                    4,
                    "nginx",
                    "1.10.0",
                    "addon",
                    "charts:\n  nginx:\n    replicas: 2\n",
                ),
            ],
            node_pools: NodePools {
                control_plane: ControlPlanePool {
                    count: 3,
                    machine: machine(2, 4096),
                    health_check: None,
                    remediation: None,
                },
                workers: vec![WorkerPool {
                    name: "general".into(),
                    count: 2,
                    machine: machine(4, 8192),
                    health_check: None,
                    rollout: None,
                }],
            },
            network: ResolvedNetwork {
                pod_cidrs: vec!["192.168.0.0/16".into()],
                service_cidrs: vec!["10.96.0.0/12".into()],
                service_domain: "cluster.local".into(),
            },
            certificates_expiry_days: None,
            vsphere: None,
            aws: None,
            azure: None,
            account: None,
        },
    }
}

/// The next revision, changed by `change`.
fn next(from: &ClusterRevisionSpec, change: impl FnOnce(&mut DesiredState)) -> ClusterRevisionSpec {
    let mut to = from.clone();
    to.number = from.number + 1;
    to.content_hash = format!("sha256:{}", to.number);
    change(&mut to.desired);
    to
}

fn plan_of(change: impl FnOnce(&mut DesiredState)) -> RevisionPlan {
    let from = revision();
    RevisionPlan::between(&from, &next(&from, change)).unwrap()
}

fn layer_named<'p>(plan: &'p RevisionPlan, name: &str) -> &'p LayerChange {
    plan.layers.iter().find(|l| l.name == name).unwrap()
}

fn objects(plan: &RevisionPlan, action: ObjectAction) -> Vec<String> {
    plan.objects
        .iter()
        .filter(|o| o.action == action)
        .map(|o| format!("{} {}", o.kind, o.name))
        .collect()
}

fn step_work(plan: &RevisionPlan, step: RolloutStep) -> &[String] {
    &plan.steps.iter().find(|s| s.step == step).unwrap().work
}

#[test]
fn the_same_content_under_another_number_is_nothing_to_apply() {
    let plan = plan_of(|_| {});
    assert!(plan.is_empty());
    assert_eq!(plan.summary, "nothing to apply");
    assert!(plan.replaced.is_empty());
    assert!(plan.steps.iter().all(|s| s.work.is_empty()));
    assert_eq!(
        plan.to_string(),
        "cluster demo: revision 1 → 2\nnothing to apply\n"
    );
}

#[test]
fn layers_upgraded_added_and_removed_print_in_full() {
    let plan = plan_of(|d| {
        d.layers[2] = layer(
            3,
            "cni-calico",
            "3.28.1",
            "cni",
            "manifests:\n  calico:\n    mtu: 1400\n",
        );
        d.layers.remove(3);
        d.layers
            .push(layer(4, "fluent-bit", "3.1.0", "addon", "charts: {}\n"));
    });
    assert_eq!(
        layer_named(&plan, "cni-calico").action,
        LayerAction::Upgraded
    );
    assert_eq!(layer_named(&plan, "nginx").action, LayerAction::Removed);
    assert_eq!(layer_named(&plan, "fluent-bit").action, LayerAction::Added);
    // Layers alone touch no machine.
    assert!(plan.objects.is_empty());
    assert!(plan.replaced.is_empty());
    assert_eq!(
        plan.to_string(),
        "\
cluster demo: revision 1 → 2

Layers:
  ~ cni-calico (cni) 3.27.0 → 3.28.1
      ~ manifests.calico.mtu: 1440 → 1400
  + fluent-bit (addon) 3.1.0
  - nginx (addon) 1.10.0

Steps:
  1. ControlPlane: nothing to do
  2. Workers: nothing to do
  3. Layers: upgrade cni-calico 3.27.0 → 3.28.1; install fluent-bit 3.1.0; remove nginx 1.10.0

Summary: 1 layer upgraded, 1 added, 1 removed
"
    );
}

#[test]
fn a_republished_pack_is_an_upgrade_and_an_older_version_a_downgrade() {
    let plan = plan_of(|d| {
        d.layers[3].digest = "sha256:rebuilt".into();
        d.layers[2].version = "3.26.4".into();
    });
    assert_eq!(
        layer_named(&plan, "cni-calico").action,
        LayerAction::Downgraded
    );
    let nginx = layer_named(&plan, "nginx");
    assert_eq!(nginx.action, LayerAction::Upgraded);
    assert_eq!(nginx.digest.as_ref().unwrap().to, "sha256:rebuilt");
    assert_eq!(plan.summary, "1 layer upgraded, 1 downgraded");
}

#[test]
fn changed_values_are_listed_by_path_and_secrets_stay_masked() {
    let from = next(&revision(), |d| {
        d.layers[3].values = "charts:\n  nginx:\n    replicas: 2\n    auth:\n      password: <secret>\n      user: admin\n    token: s3cr3t-old\n".into();
        d.layers[3].secrets_digest = Some("sha256:old".into());
    });
    // `token` became a secret of the pack's schema: masked in the new revision only, it
    // must not show its old value either.
    let to = next(&from, |d| {
        d.layers[3].values = "charts:\n  nginx:\n    replicas: 3\n    auth:\n      password: <secret>\n      user: root\n    token: <secret>\n    tls: true\n".into();
        d.layers[3].secrets_digest = Some("sha256:new".into());
    });
    let plan = RevisionPlan::between(&from, &to).unwrap();
    let nginx = layer_named(&plan, "nginx");
    assert_eq!(nginx.action, LayerAction::Reconfigured);
    assert!(nginx.secrets_changed);
    let text = plan.to_string();
    let json = serde_json::to_string(&plan).unwrap();
    for shown in [&text, &json] {
        assert!(!shown.contains("s3cr3t-old"), "{shown}");
    }
    assert!(
        text.contains(
            "  ~ nginx (addon) 1.10.0 values
      ~ charts.nginx.auth.user: \"admin\" → \"root\"
      ~ charts.nginx.replicas: 2 → 3
      + charts.nginx.tls: true
      ~ secret values changed (not shown)
"
        ),
        "{text}"
    );
    // The masked key is the same `<secret>` on both sides: no line of its own.
    assert!(!text.contains("charts.nginx.token"), "{text}");
    assert_eq!(plan.summary, "1 layer reconfigured");
    assert_eq!(step_work(&plan, RolloutStep::Layers), ["reconfigure nginx"]);
}

#[test]
fn a_kubernetes_upgrade_rolls_the_control_plane_and_every_pool() {
    let from = next(&revision(), |d| {
        d.node_pools.workers.push(WorkerPool {
            name: "edge".into(),
            count: 1,
            machine: machine(2, 2048),
            health_check: None,
            rollout: None,
        });
    });
    let to = next(&from, |d| {
        d.kubernetes_version = "v1.31.0".into();
        d.layers[1].version = "1.31.0".into();
    });
    let plan = RevisionPlan::between(&from, &to).unwrap();
    assert_eq!(
        plan.kubernetes_version,
        Some(Change {
            from: "v1.30.2".to_string(),
            to: "v1.31.0".to_string()
        })
    );
    let replaced: Vec<(&str, u32, &[String])> = plan
        .replaced
        .iter()
        .map(|r| (r.pool.as_str(), r.machines, r.reasons.as_slice()))
        .collect();
    let version = ["Kubernetes version".to_string()];
    assert_eq!(
        replaced,
        [
            ("control-plane", 3, &version[..]),
            ("general", 2, &version[..]),
            ("edge", 1, &version[..]),
        ]
    );
    assert_eq!(
        plan.summary,
        "Kubernetes v1.30.2 → v1.31.0; 1 layer upgraded; control plane rolls (3 machines); \
         pool general rolls (2 machines); pool edge rolls (1 machine)"
    );
    assert_eq!(
        step_work(&plan, RolloutStep::ControlPlane)[0],
        "replace all 3 control-plane machines (Kubernetes version)"
    );
    assert_eq!(
        step_work(&plan, RolloutStep::Workers)[..2],
        [
            "replace all 2 machines of pool general (Kubernetes version)",
            "replace the 1 machine of pool edge (Kubernetes version)"
        ]
    );
    // The same machine templates: only the version fields change.
    assert!(objects(&plan, ObjectAction::Created).is_empty());
    let kcp = plan
        .objects
        .iter()
        .find(|o| o.kind == "KubeadmControlPlane")
        .unwrap();
    assert_eq!(kcp.fields, ["spec.version"]);
    assert_eq!(kcp.step, RolloutStep::ControlPlane);
}

#[test]
fn pools_added_resized_and_removed_replace_no_machine() {
    let from = next(&revision(), |d| {
        d.node_pools.workers.push(WorkerPool {
            name: "batch".into(),
            count: 3,
            machine: machine(8, 16384),
            health_check: None,
            rollout: None,
        });
    });
    let to = next(&from, |d| {
        d.node_pools.workers.retain(|p| p.name != "batch");
        d.node_pools.workers[0].count = 4;
        d.node_pools.workers.push(WorkerPool {
            name: "gpu".into(),
            count: 2,
            machine: machine(16, 65536),
            health_check: None,
            rollout: None,
        });
    });
    let plan = RevisionPlan::between(&from, &to).unwrap();
    let pools: Vec<(&str, PoolAction, u32, u32)> = plan
        .node_pools
        .iter()
        .map(|p| (p.pool.as_str(), p.action, p.count.from, p.count.to))
        .collect();
    assert_eq!(
        pools,
        [
            ("general", PoolAction::Changed, 2, 4),
            ("gpu", PoolAction::Added, 0, 2),
            ("batch", PoolAction::Removed, 3, 0),
        ]
    );
    assert!(plan.replaced.is_empty());
    let changed = plan
        .objects
        .iter()
        .find(|o| o.action == ObjectAction::Changed)
        .unwrap();
    assert_eq!(
        (
            changed.kind.as_str(),
            changed.name.as_str(),
            changed.fields.as_slice()
        ),
        (
            "MachineDeployment",
            "demo-general",
            &["spec.replicas".to_string()][..]
        )
    );
    let created = objects(&plan, ObjectAction::Created);
    // Each pool is a machine template, a bootstrap template, a MachineDeployment and the
    // MachineHealthCheck that heals it.
    assert_eq!(created.len(), 4, "{created:?}");
    assert!(created.contains(&"MachineDeployment demo-gpu".to_string()));
    assert!(created.contains(&"MachineHealthCheck demo-gpu".to_string()));
    let deleted = objects(&plan, ObjectAction::Deleted);
    assert_eq!(deleted.len(), 4, "{deleted:?}");
    assert!(deleted.contains(&"MachineDeployment demo-batch".to_string()));
    assert!(deleted.contains(&"MachineHealthCheck demo-batch".to_string()));
    assert_eq!(
        plan.summary,
        "pool general resized 2 → 4; pool gpu added (2 machines); pool batch removed (3 machines)"
    );
    assert!(step_work(&plan, RolloutStep::ControlPlane).is_empty());
}

#[test]
fn a_bigger_machine_for_one_pool_rolls_that_pool_only() {
    let plan = plan_of(|d| d.node_pools.workers[0].machine = machine(8, 16384));
    let text = plan.to_string();
    // Template names are content hashes; read them from the plan rather than pin them.
    let template = |action| {
        plan.objects
            .iter()
            .find(|o| o.action == action && o.kind == "SimMachineTemplate")
            .unwrap()
            .name
            .clone()
    };
    let (new, old) = (
        template(ObjectAction::Created),
        template(ObjectAction::Deleted),
    );
    assert!(new.starts_with("demo-general-") && old.starts_with("demo-general-"));
    assert_eq!(
        text,
        format!(
            "\
cluster demo: revision 1 → 2

Node pools:
  ~ general: machine cpus 4 → 8, memoryMiB 8192 → 16384

Cluster API objects:
  + SimMachineTemplate {new}
  ~ MachineDeployment demo-general: spec.template.spec.infrastructureRef.name
  - SimMachineTemplate {old}

Machines replaced:
  all 2 machines of pool general (machine template)

Steps:
  1. ControlPlane: nothing to do
  2. Workers: replace all 2 machines of pool general (machine template); apply 3 Cluster API object changes
  3. Layers: nothing to do

Summary: pool general rolls (2 machines)
"
        )
    );
}

#[test]
fn a_larger_control_plane_adds_machines_and_replaces_none() {
    let from = next(&revision(), |d| d.node_pools.control_plane.count = 1);
    let to = next(&from, |d| d.node_pools.control_plane.count = 3);
    let plan = RevisionPlan::between(&from, &to).unwrap();
    assert!(plan.replaced.is_empty());
    // Compared at the pool's count, as the agent sets it, not at the builder's one.
    let kcp = &plan.objects[0];
    assert_eq!(
        (kcp.kind.as_str(), kcp.fields.as_slice()),
        ("KubeadmControlPlane", &["spec.replicas".to_string()][..])
    );
    assert_eq!(plan.summary, "control plane resized 1 → 3");
}

#[test]
fn a_kubelet_setting_or_os_image_rolls_every_machine_and_files_stay_unprinted() {
    let plan = plan_of(|d| {
        d.kubeadm
            .kubelet_extra_args
            .insert("max-pods".into(), "200".into());
        d.kubeadm.files.push(KubeadmFile {
            path: "/etc/kubernetes/encryption.yaml".into(),
            content: "key: c2VjcmV0".into(),
            ..KubeadmFile::default()
        });
    });
    let reasons: Vec<(&str, &[String])> = plan
        .replaced
        .iter()
        .map(|r| (r.pool.as_str(), r.reasons.as_slice()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("control-plane", &["kubeadm config".to_string()][..]),
            ("general", &["bootstrap config".to_string()][..]),
        ]
    );
    let text = plan.to_string();
    assert!(
        text.contains("  ~ kubeadm kubeletExtraArgs.max-pods: \"110\" → \"200\"\n"),
        "{text}"
    );
    assert!(
        text.contains("  + kubeadm files[\"/etc/kubernetes/encryption.yaml\"]: <not shown>\n"),
        "{text}"
    );
    assert!(!text.contains("c2VjcmV0"), "{text}");

    let plan = plan_of(|d| d.os.version = "24.04".into());
    assert_eq!(plan.replaced.len(), 2);
    assert!(
        plan.replaced
            .iter()
            .all(|r| r.reasons == ["machine template"])
    );
    assert!(
        plan.summary
            .starts_with("OS image ubuntu-sim 22.04 → ubuntu-sim 24.04; "),
        "{}",
        plan.summary
    );
}

#[test]
fn revisions_of_two_clusters_are_refused() {
    let from = revision();
    let mut to = next(&from, |_| {});
    to.cluster_name = "other".into();
    let error = RevisionPlan::between(&from, &to).unwrap_err();
    assert_eq!(
        error.to_string(),
        "revision 1 is of cluster demo, revision 2 of cluster other; a plan compares two revisions of one cluster"
    );
}

#[test]
fn values_that_are_not_yaml_name_the_layer_and_revision() {
    let from = revision();
    let to = next(&from, |d| d.layers[3].values = "charts: [unclosed\n".into());
    let error = RevisionPlan::between(&from, &to).unwrap_err().to_string();
    assert!(
        error.starts_with("revision 2 of cluster demo: layer nginx: its values are not YAML"),
        "{error}"
    );
}

#[test]
fn the_plan_serializes_with_its_steps_in_order() {
    let plan = plan_of(|d| d.node_pools.workers[0].count = 5);
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["summary"], "pool general resized 2 → 5");
    assert_eq!(
        json["nodePools"][0]["count"],
        serde_json::json!({"from": 2, "to": 5})
    );
    let steps: Vec<&str> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["ControlPlane", "Workers", "Layers"]);
    assert_eq!(json["steps"][1]["work"][0], "resize pool general 2 → 5");
    assert!(json.get("layers").is_none());
}

#[test]
fn a_rollback_plan_says_whose_content_it_restores() {
    let first = revision();
    let second = next(&first, |d| d.node_pools.workers[0].count += 2);
    let mut third = next(&second, |_| {});
    third.desired = first.desired.clone();
    third.rollback_of = Some(first.number);
    let plan = RevisionPlan::between(&second, &third).unwrap();
    assert_eq!(plan.rollback_of, Some(1));
    let text = plan.to_string();
    assert!(
        text.starts_with(
            "cluster demo: revision 2 → 3 (a rollback to the content of revision 1)\n"
        ),
        "{text}"
    );
    let pool = &plan.node_pools[0];
    assert_eq!(
        pool.count.from,
        first.desired.node_pools.workers[0].count + 2
    );
    assert_eq!(pool.count.to, first.desired.node_pools.workers[0].count);
}
