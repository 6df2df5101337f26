#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::*;
use crate::cluster::WorkloadCluster;

/// A sim cluster whose spec has `extra` merged into `nodePools` and the top level.
fn spec(node_pools: serde_json::Value, top: serde_json::Value) -> WorkloadClusterSpec {
    let mut spec = json!({
        "cloudType": "sim",
        "profiles": [{ "name": "sim-infra", "version": "1.0.0" }],
        "nodePools": node_pools,
    });
    for (key, value) in top.as_object().unwrap() {
        spec[key] = value.clone();
    }
    serde_json::from_value(spec).unwrap()
}

/// Every error as `subject: message`.
fn errors(spec: &WorkloadClusterSpec) -> Vec<String> {
    check_self_healing(spec)
        .errors()
        .map(|f| format!("{}: {}", f.subject, f.message))
        .collect()
}

#[test]
fn the_settings_are_read_from_the_cluster_spec() {
    let spec = spec(
        json!({
            "controlPlane": {
                "count": 3,
                "healthCheck": { "unhealthyTimeoutSeconds": 120 },
                "remediation": { "maxRetry": 5 },
            },
            "workers": [{
                "name": "general",
                "count": 3,
                "healthCheck": { "nodeStartupTimeoutSeconds": 900, "maxUnhealthy": "25%" },
                "rollout": { "maxSurge": 2, "maxUnavailable": "10%" },
            }],
        }),
        json!({ "certificatesExpiryDays": 30 }),
    );
    assert!(errors(&spec).is_empty(), "{:?}", errors(&spec));
    assert_eq!(spec.certificates_expiry_days, Some(30));
    let pool = &spec.node_pools.workers[0];
    assert_eq!(
        pool.health_check.as_ref().unwrap().max_unhealthy,
        Some(IntOrString::String("25%".into()))
    );
    assert_eq!(
        pool.rollout,
        Some(PoolRollout {
            max_surge: Some(IntOrString::Int(2)),
            max_unavailable: Some(IntOrString::String("10%".into())),
        })
    );
    // Written back as the CRD's text.
    let back = serde_json::to_value(&spec).unwrap();
    assert_eq!(back["nodePools"]["workers"][0]["rollout"]["maxSurge"], "2");
    assert_eq!(
        back["nodePools"]["controlPlane"]["healthCheck"],
        json!({ "unhealthyTimeoutSeconds": 120 })
    );
}

#[test]
fn resolution_fills_in_the_defaults_and_keeps_what_is_set() {
    let spec = spec(
        json!({
            "controlPlane": { "count": 1 },
            "workers": [
                { "name": "a", "count": 1 },
                { "name": "b", "count": 1, "healthCheck": { "maxUnhealthy": 2 } },
            ],
        }),
        json!({}),
    );
    let resolved = spec.node_pools.resolved();
    let defaults = HealthCheck {
        unhealthy_timeout_seconds: Some(300),
        node_startup_timeout_seconds: Some(600),
        max_unhealthy: Some(IntOrString::String("40%".into())),
    };
    assert_eq!(resolved.control_plane.health_check, Some(defaults.clone()));
    assert_eq!(
        resolved.control_plane.remediation,
        Some(ControlPlaneRemediation {
            max_retry: Some(3),
            retry_period_seconds: None,
            min_healthy_period_seconds: None,
        })
    );
    assert_eq!(resolved.workers[0].health_check, Some(defaults.clone()));
    assert_eq!(
        resolved.workers[1].health_check,
        Some(HealthCheck {
            max_unhealthy: Some(IntOrString::Int(2)),
            ..defaults
        })
    );
    // The rollout stays unset: Cluster API's defaults apply.
    assert_eq!(resolved.workers[0].rollout, None);
    // Resolving twice changes nothing.
    assert_eq!(resolved.resolved(), resolved);
    assert_eq!(certificates_expiry_days(None), 21);
}

#[test]
fn bad_settings_are_errors_naming_the_field() {
    let spec = spec(
        json!({
            "controlPlane": {
                "count": 3,
                "healthCheck": { "unhealthyTimeoutSeconds": 0, "maxUnhealthy": "140%" },
            },
            "workers": [
                {
                    "name": "a",
                    "count": 3,
                    "healthCheck": { "nodeStartupTimeoutSeconds": 0, "maxUnhealthy": -1 },
                    "rollout": { "maxSurge": 0 },
                },
                {
                    "name": "b",
                    "count": 3,
                    "healthCheck": { "maxUnhealthy": "half" },
                    "rollout": { "maxSurge": "0%", "maxUnavailable": "101%" },
                },
            ],
        }),
        json!({ "certificatesExpiryDays": 5 }),
    );
    assert_eq!(
        errors(&spec),
        vec![
            "spec.nodePools.controlPlane.healthCheck.unhealthyTimeoutSeconds: is 0; expected at least 1 second (a node's first NotReady must not replace its machine)",
            "spec.nodePools.controlPlane.healthCheck.maxUnhealthy: is 140%; expected a percentage of 0% to 100%",
            "spec.nodePools.workers[0].healthCheck.nodeStartupTimeoutSeconds: is 0; expected at least 30 seconds",
            "spec.nodePools.workers[0].healthCheck.maxUnhealthy: is -1; expected a count of 0 or more",
            "spec.nodePools.workers[0].rollout: has maxSurge 0 and maxUnavailable 0; a pool could never roll (set one above 0)",
            "spec.nodePools.workers[1].healthCheck.maxUnhealthy: \"half\" is neither a count nor a percentage such as \"25%\"",
            "spec.nodePools.workers[1].rollout.maxUnavailable: is 101%; expected a percentage of 0% to 100%",
            "spec.certificatesExpiryDays: is 5; expected 7 to 364 days (Cluster API's bounds)",
        ]
    );
}

#[test]
fn the_cluster_validation_reports_them() {
    let cluster = WorkloadCluster::new(
        "demo",
        spec(
            json!({ "controlPlane": { "count": 1 }, "workers": [
                { "name": "a", "count": 1, "rollout": { "maxSurge": 0, "maxUnavailable": 0 } },
            ]}),
            json!({}),
        ),
    );
    let findings = crate::profile::compose::validate_cluster_spec(&cluster);
    assert!(findings.contains(
        "spec.nodePools.workers[0].rollout",
        "has maxSurge 0 and maxUnavailable 0"
    ));
}

#[test]
fn amounts_are_written_as_text_and_handed_to_cluster_api_typed() {
    let rollout: PoolRollout =
        serde_json::from_value(serde_json::json!({ "maxSurge": 2, "maxUnavailable": "25%" }))
            .unwrap();
    // Read in either form, written as the CRD's string.
    assert_eq!(
        serde_json::to_value(&rollout).unwrap(),
        serde_json::json!({ "maxSurge": "2", "maxUnavailable": "25%" })
    );
    let written: PoolRollout =
        serde_json::from_value(serde_json::to_value(&rollout).unwrap()).unwrap();
    assert_eq!(
        capi_amount(written.max_surge.as_ref().unwrap()),
        IntOrString::Int(2)
    );
    assert_eq!(
        capi_amount(written.max_unavailable.as_ref().unwrap()),
        IntOrString::String("25%".into())
    );
}

#[test]
fn a_count_written_as_text_is_a_count() {
    let spec = spec(
        json!({
            "controlPlane": { "count": 1 },
            "workers": [{
                "name": "general",
                "count": 2,
                "rollout": { "maxSurge": "0", "maxUnavailable": "0" },
            }],
        }),
        json!({}),
    );
    let errors = errors(&spec);
    assert!(
        errors.iter().any(|e| e.contains("could never roll")),
        "{errors:?}"
    );
}
