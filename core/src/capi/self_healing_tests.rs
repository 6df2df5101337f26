#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use super::tests::{CLOUDS, cluster_name, fixture, input};
use super::{control_plane_objects, worker_pool_objects};
use crate::cluster::{ControlPlaneRemediation, HealthCheck, PoolRollout};

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objects, kind);
    assert_eq!(found.len(), 1, "expected one {kind}");
    found[0]
}

#[test]
fn every_cloud_gets_health_checks_and_control_plane_remediation_with_the_defaults() {
    for cloud in CLOUDS {
        let desired = fixture(cloud);
        let cluster = cluster_name(cloud);
        let control_plane = control_plane_objects(&input(&cluster, &desired)).unwrap();
        let workers = worker_pool_objects(&input(&cluster, &desired)).unwrap();

        let kcp = one(&control_plane, "KubeadmControlPlane");
        assert_eq!(
            kcp["spec"]["remediation"],
            json!({ "maxRetry": 3 }),
            "{cloud}"
        );
        assert_eq!(
            kcp["spec"]["rollout"],
            json!({ "before": { "certificatesExpiryDays": 21 } }),
            "{cloud}"
        );
        let defaults = json!({
            "nodeStartupTimeoutSeconds": 600,
            "unhealthyNodeConditions": [
                { "type": "Ready", "status": "Unknown", "timeoutSeconds": 300 },
                { "type": "Ready", "status": "False", "timeoutSeconds": 300 },
            ],
        });
        let trigger = json!({ "triggerIf": { "unhealthyLessThanOrEqualTo": "40%" } });

        let cp_check = one(&control_plane, "MachineHealthCheck");
        assert_eq!(cp_check["apiVersion"], "cluster.x-k8s.io/v1beta2");
        assert_eq!(
            cp_check["metadata"]["name"],
            format!("{cluster}-control-plane")
        );
        assert_eq!(cp_check["spec"]["clusterName"], cluster.as_str());
        assert_eq!(
            cp_check["spec"]["selector"]["matchLabels"],
            json!({
                "cluster.x-k8s.io/cluster-name": cluster,
                "cluster.x-k8s.io/control-plane-name": format!("{cluster}-control-plane"),
            })
        );
        assert_eq!(cp_check["spec"]["checks"], defaults, "{cloud}");
        assert_eq!(cp_check["spec"]["remediation"], trigger, "{cloud}");

        // The pool's check watches exactly the pool's machines.
        let deployment = one(&workers, "MachineDeployment");
        let pool_check = one(&workers, "MachineHealthCheck");
        assert_eq!(
            pool_check["metadata"]["name"],
            deployment["metadata"]["name"]
        );
        assert_eq!(
            pool_check["spec"]["selector"], deployment["spec"]["selector"],
            "{cloud}"
        );
        assert_eq!(pool_check["spec"]["checks"], defaults, "{cloud}");
        assert_eq!(pool_check["spec"]["remediation"], trigger, "{cloud}");
        // Nothing set, nothing written: CAPI's own rolling-update defaults apply.
        assert!(deployment["spec"].get("rollout").is_none(), "{cloud}");

        // The agent skips the objects named after the cluster (the Cluster and the cloud
        // cluster); the health check must not be one of them.
        let named_after_cluster: Vec<&Value> = control_plane
            .iter()
            .filter(|o| o["metadata"]["name"] == cluster.as_str())
            .collect();
        assert_eq!(named_after_cluster.len(), 2, "{cloud}");
    }
}

#[test]
fn a_clusters_settings_replace_the_defaults() {
    let mut desired = fixture(crate::cluster::ClusterCloud::Aws);
    let pools = &mut desired.node_pools;
    pools.control_plane.health_check = Some(HealthCheck {
        unhealthy_timeout_seconds: Some(120),
        ..HealthCheck::default()
    });
    pools.control_plane.remediation = Some(ControlPlaneRemediation {
        max_retry: Some(5),
        retry_period_seconds: Some(60),
        min_healthy_period_seconds: Some(1800),
    });
    pools.workers[0].health_check = Some(HealthCheck {
        unhealthy_timeout_seconds: Some(30),
        node_startup_timeout_seconds: Some(900),
        max_unhealthy: Some(IntOrString::Int(1)),
    });
    pools.workers[0].rollout = Some(PoolRollout {
        max_surge: Some(IntOrString::String("25%".into())),
        max_unavailable: Some(IntOrString::Int(1)),
    });
    desired.certificates_expiry_days = Some(45);
    let cluster = "edge";
    let control_plane = control_plane_objects(&input(cluster, &desired)).unwrap();
    let workers = worker_pool_objects(&input(cluster, &desired)).unwrap();

    let kcp = one(&control_plane, "KubeadmControlPlane");
    assert_eq!(
        kcp["spec"]["remediation"],
        json!({ "maxRetry": 5, "retryPeriodSeconds": 60, "minHealthyPeriodSeconds": 1800 })
    );
    assert_eq!(
        kcp["spec"]["rollout"]["before"]["certificatesExpiryDays"],
        45
    );
    let cp_check = one(&control_plane, "MachineHealthCheck");
    assert_eq!(
        cp_check["spec"]["checks"]["unhealthyNodeConditions"][1],
        json!({ "type": "Ready", "status": "False", "timeoutSeconds": 120 })
    );
    assert_eq!(cp_check["spec"]["checks"]["nodeStartupTimeoutSeconds"], 600);

    let pool_check = one(&workers, "MachineHealthCheck");
    assert_eq!(
        pool_check["spec"]["checks"],
        json!({
            "nodeStartupTimeoutSeconds": 900,
            "unhealthyNodeConditions": [
                { "type": "Ready", "status": "Unknown", "timeoutSeconds": 30 },
                { "type": "Ready", "status": "False", "timeoutSeconds": 30 },
            ],
        })
    );
    assert_eq!(
        pool_check["spec"]["remediation"]["triggerIf"]["unhealthyLessThanOrEqualTo"],
        1
    );
    assert_eq!(
        one(&workers, "MachineDeployment")["spec"]["rollout"],
        json!({ "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": 1 },
        }})
    );
}

#[test]
fn self_healing_settings_change_no_template_so_no_machine_rolls() {
    let names = |desired: &crate::revision::DesiredState| -> Vec<String> {
        let mut objects = control_plane_objects(&input("edge", desired)).unwrap();
        objects.extend(worker_pool_objects(&input("edge", desired)).unwrap());
        objects
            .iter()
            .filter(|o| o["kind"].as_str().unwrap().ends_with("Template"))
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let before = fixture(crate::cluster::ClusterCloud::Vsphere);
    let mut after = before.clone();
    after.node_pools = after.node_pools.resolved();
    after.node_pools.workers[0].health_check = Some(HealthCheck {
        unhealthy_timeout_seconds: Some(60),
        ..HealthCheck::default()
    });
    after.node_pools.workers[0].rollout = Some(PoolRollout {
        max_surge: Some(IntOrString::Int(2)),
        max_unavailable: None,
    });
    after.certificates_expiry_days = Some(30);
    assert_eq!(names(&before), names(&after));
    assert_eq!(names(&before).len(), 3);
}

#[test]
fn a_resolved_revision_builds_the_same_objects_as_one_without_the_settings() {
    // Revisions published before the settings existed carry none; resolved ones carry
    // the defaults. Both must build the same objects, or every old cluster would change.
    for cloud in CLOUDS {
        let old = fixture(cloud);
        let mut resolved = old.clone();
        resolved.node_pools = resolved.node_pools.resolved();
        resolved.certificates_expiry_days = Some(21);
        let cluster = cluster_name(cloud);
        assert_eq!(
            control_plane_objects(&input(&cluster, &old)).unwrap(),
            control_plane_objects(&input(&cluster, &resolved)).unwrap()
        );
        assert_eq!(
            worker_pool_objects(&input(&cluster, &old)).unwrap(),
            worker_pool_objects(&input(&cluster, &resolved)).unwrap()
        );
    }
}
