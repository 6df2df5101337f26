//! What keeps a cluster healthy without an operator, as Cluster API takes it: a
//! `MachineHealthCheck` for the control plane and each worker pool, the
//! `KubeadmControlPlane`'s remediation and certificate rollout, and a pool's rolling
//! update. A revision carries the settings resolved; one published before they existed
//! has none, and gets the defaults here.

use serde_json::{Map, Value, json};

use super::{BuildInput, cluster_labels, control_plane_name, metadata, object};
use crate::cluster::{
    ControlPlaneRemediation, HealthCheck, PoolRollout, WorkerPool, capi_amount,
    certificates_expiry_days,
};
use crate::contracts::capi::MACHINE_HEALTH_CHECK;
use crate::contracts::labels::CAPI_CLUSTER_NAME_LABEL;
use crate::revision::DesiredState;

/// Set by the KubeadmControlPlane on its machines, to its own name. (Not
/// `cluster.x-k8s.io/control-plane`, whose value is empty: kube-apiserver 1.20's
/// server-side apply turns an empty string into null, which the schema refuses.)
const CAPI_CONTROL_PLANE_NAME_LABEL: &str = "cluster.x-k8s.io/control-plane-name";

/// The control plane's health check, `<cluster>-control-plane` like its
/// `KubeadmControlPlane`, over the machines that controller labels as its own.
pub(super) fn control_plane_health_check(input: &BuildInput) -> Value {
    let cluster = input.cluster_name;
    let check = input
        .desired
        .node_pools
        .control_plane
        .health_check
        .clone()
        .unwrap_or_default();
    let name = control_plane_name(cluster);
    health_check(
        input,
        &name,
        json!({ CAPI_CLUSTER_NAME_LABEL: cluster, CAPI_CONTROL_PLANE_NAME_LABEL: name }),
        &check,
    )
}

/// A pool's health check, named like its `MachineDeployment`, over the same machines.
pub(super) fn pool_health_check(
    input: &BuildInput,
    deployment: &str,
    selector: &Value,
    pool: &WorkerPool,
) -> Value {
    let check = pool.health_check.clone().unwrap_or_default();
    health_check(input, deployment, selector.clone(), &check)
}

fn health_check(input: &BuildInput, name: &str, selector: Value, check: &HealthCheck) -> Value {
    let cluster = input.cluster_name;
    let unhealthy = check.unhealthy_timeout_seconds();
    object(
        &MACHINE_HEALTH_CHECK,
        metadata(input, name, cluster_labels(cluster)),
        json!({
            "clusterName": cluster,
            "selector": { "matchLabels": selector },
            "checks": {
                "nodeStartupTimeoutSeconds": check.node_startup_timeout_seconds(),
                "unhealthyNodeConditions": [
                    { "type": "Ready", "status": "Unknown", "timeoutSeconds": unhealthy },
                    { "type": "Ready", "status": "False", "timeoutSeconds": unhealthy },
                ],
            },
            "remediation": {
                "triggerIf": { "unhealthyLessThanOrEqualTo": capi_amount(&check.max_unhealthy()) },
            },
        }),
    )
}

/// The `KubeadmControlPlane`'s `remediation`: the retries, and the periods only where
/// set (Cluster API's defaults otherwise).
pub(super) fn control_plane_remediation(desired: &DesiredState) -> Value {
    let remediation = desired
        .node_pools
        .control_plane
        .remediation
        .clone()
        .unwrap_or_default()
        .resolved();
    let ControlPlaneRemediation {
        max_retry,
        retry_period_seconds,
        min_healthy_period_seconds,
    } = remediation;
    let mut spec = Map::new();
    super::insert_some(&mut spec, "maxRetry", max_retry);
    super::insert_some(&mut spec, "retryPeriodSeconds", retry_period_seconds);
    super::insert_some(
        &mut spec,
        "minHealthyPeriodSeconds",
        min_healthy_period_seconds,
    );
    Value::Object(spec)
}

/// The `KubeadmControlPlane`'s `rollout`: machines whose certificates expire soon are
/// replaced, which renews them.
pub(super) fn control_plane_rollout(desired: &DesiredState) -> Value {
    json!({
        "before": {
            "certificatesExpiryDays": certificates_expiry_days(desired.certificates_expiry_days),
        },
    })
}

/// A `MachineDeployment`'s `rollout`, only when the pool sets its surge or
/// unavailability (Cluster API's defaults otherwise, and nothing written).
pub(super) fn pool_rollout(pool: &WorkerPool) -> Option<Value> {
    let rollout = pool.rollout.as_ref().filter(|r| !r.is_empty())?;
    let PoolRollout {
        max_surge,
        max_unavailable,
    } = rollout;
    let mut rolling = Map::new();
    if let Some(surge) = max_surge {
        rolling.insert("maxSurge".into(), json!(capi_amount(surge)));
    }
    if let Some(unavailable) = max_unavailable {
        rolling.insert("maxUnavailable".into(), json!(capi_amount(unavailable)));
    }
    Some(json!({ "strategy": { "type": "RollingUpdate", "rollingUpdate": rolling } }))
}
