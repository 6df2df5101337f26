//! CAPI core's MachineHealthCheck controller, enough for tests: for the machines a check's
//! `matchLabels` select, a node whose condition matches an `unhealthyNodeConditions`
//! entry for its timeout, or no node `nodeStartupTimeoutSeconds` after the control plane
//! is initialized, makes the machine unhealthy. The verdicts become the Machine's
//! `HealthCheckSucceeded` and (when remediation is allowed) `OwnerRemediated=False`
//! conditions, written by the Machine controller with the rest of its status; the check
//! reports `expectedMachines`, `currentHealthy`, `remediationsAllowed` and
//! `RemediationAllowed`. Remediation is allowed while the unhealthy machines are at most
//! `remediation.triggerIf.unhealthyLessThanOrEqualTo` (a count, or a share rounded down).
//!
//! The owners then remediate a marked machine, as CAPI's do ([`remediate`]): a
//! MachineSet deletes it (and creates a replacement to keep its count); a
//! KubeadmControlPlane deletes it unless it has a single machine, another is being
//! deleted, etcd would lose quorum, or its `remediation` says no more (`maxRetry` within
//! `minHealthyPeriodSeconds`, `retryPeriodSeconds` not yet passed).
//!
//! Unlike CAPI, a condition's age is its node's `lastTransitionTime` (the simulated
//! kubelet keeps it while a test holds a node NotReady), and a machine without a node is
//! timed from when the simulator first saw it so, once the control plane is initialized.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::kinds::{CLUSTER, KUBEADM_CONTROL_PLANE, MACHINE, MACHINE_HEALTH_CHECK};
use super::objects::{
    CONTROL_PLANE_LABEL, Cond, SET_NAME_LABEL, annotation, generation, has_owner, i64_at,
    is_deleting, is_paused, label, labels_of, metav1_conditions, name, now, owner_reference,
    str_at, uid,
};
use super::snapshot::ClusterView;
use super::{Shared, SimError};

pub const HEALTH_CHECK_SUCCEEDED: &str = "HealthCheckSucceeded";
pub const OWNER_REMEDIATED: &str = "OwnerRemediated";
/// The retries of the control plane's remediation, on its KubeadmControlPlane:
/// `{"retryCount": n, "timestamp": "…"}` of the last one.
const REMEDIATIONS_ANNOTATION: &str = "sim.strata.dev/control-plane-remediation";
/// CAPI's default `minHealthyPeriodSeconds`.
const MIN_HEALTHY_PERIOD_SECONDS: i64 = 3600;

/// What a health check found of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The reason and message when unhealthy.
    pub unhealthy: Option<(&'static str, String)>,
    /// Unhealthy, and few enough of its check's machines are for it to be remediated.
    pub remediate: bool,
}

impl Verdict {
    /// The Machine's conditions for this verdict.
    pub fn conditions(&self) -> Vec<Cond> {
        let mut conditions = vec![match &self.unhealthy {
            None => Cond::new(HEALTH_CHECK_SUCCEEDED, true, "HealthCheckSucceeded", "", ""),
            Some((reason, message)) => Cond {
                kind: HEALTH_CHECK_SUCCEEDED,
                status: false,
                reason: (*reason).into(),
                message: message.clone(),
            },
        }];
        if self.remediate {
            conditions.push(Cond::new(
                OWNER_REMEDIATED,
                false,
                "",
                "WaitingForRemediation",
                "waiting for the owner to remediate the machine",
            ));
        }
        conditions
    }
}

fn selects(check: &Value, machine: &Value) -> bool {
    // Only `matchLabels`: a check with expressions selects nothing here.
    if check.pointer("/spec/selector/matchExpressions").is_some() {
        return false;
    }
    let wanted = labels_of(check, "/spec/selector/matchLabels");
    !wanted.is_empty()
        && wanted
            .iter()
            .all(|(k, v)| label(machine, k) == Some(v.as_str()))
}

fn seconds_since(time: &str) -> Option<i64> {
    let then: Timestamp = time.parse().ok()?;
    Some(Timestamp::now().as_second() - then.as_second())
}

/// The machine's problem, if it has one.
fn check_machine(
    shared: &Shared,
    view: &ClusterView<'_>,
    check: &Value,
    machine: &Value,
    node: Option<&Node>,
) -> Option<(&'static str, String)> {
    let Some(node) = node else {
        if machine.pointer("/status/nodeRef").is_some() || !view.control_plane_initialized() {
            return None;
        }
        let timeout = i64_at(check, "/spec/checks/nodeStartupTimeoutSeconds").unwrap_or(600);
        let waited = std::time::Duration::from_secs(timeout.max(0) as u64);
        return (timeout > 0 && shared.waited(uid(machine), "health-check-startup", waited, false))
            .then(|| {
                (
                    "NodeStartupTimeout",
                    format!("the machine has had no node for {timeout}s"),
                )
            });
    };
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .cloned()
        .unwrap_or_default();
    let wanted = check
        .pointer("/spec/checks/unhealthyNodeConditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for rule in &wanted {
        let (Some(kind), Some(status)) = (str_at(rule, "/type"), str_at(rule, "/status")) else {
            continue;
        };
        let timeout = i64_at(rule, "/timeoutSeconds").unwrap_or(0);
        let Some(found) = conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == status)
        else {
            continue;
        };
        let since = found
            .last_transition_time
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .and_then(|t| t.as_str().and_then(seconds_since));
        if since.is_some_and(|s| s >= timeout) {
            return Some((
                "UnhealthyNode",
                format!("node condition {kind} is {status} for more than {timeout}s"),
            ));
        }
    }
    None
}

/// `unhealthyLessThanOrEqualTo` of `total` (a share rounded down); everything when unset.
fn max_unhealthy(check: &Value, total: usize) -> usize {
    match check.pointer("/spec/remediation/triggerIf/unhealthyLessThanOrEqualTo") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as usize,
        Some(Value::String(text)) => text
            .strip_suffix('%')
            .and_then(|p| p.parse::<usize>().ok())
            .map_or(0, |percent| total * percent / 100),
        _ => total,
    }
}

/// Evaluates every health check of the cluster and reports on each; returns the verdict
/// for every machine one selects. Nothing is judged while the workload cluster's nodes
/// cannot be listed.
pub async fn reconcile(
    shared: &Shared,
    view: &ClusterView<'_>,
    nodes: Option<&BTreeMap<String, Node>>,
) -> Result<BTreeMap<String, Verdict>, SimError> {
    let mut verdicts = BTreeMap::new();
    let Some(nodes) = nodes else {
        return Ok(verdicts);
    };
    for check in &view.health_checks {
        if is_paused(check) || is_deleting(check) {
            continue;
        }
        adopt(shared, view, check).await?;
        let targets: Vec<&Value> = ClusterView::live(&view.machines)
            .filter(|m| selects(check, m))
            .collect();
        let problems: Vec<Option<(&'static str, String)>> = targets
            .iter()
            .map(|m| check_machine(shared, view, check, m, nodes.get(name(m))))
            .collect();
        let unhealthy = problems.iter().filter(|p| p.is_some()).count();
        let max = max_unhealthy(check, targets.len());
        let allowed = unhealthy <= max;
        for (machine, problem) in targets.iter().zip(problems) {
            let remediate = allowed && problem.is_some();
            verdicts.insert(
                name(machine).to_string(),
                Verdict {
                    unhealthy: problem,
                    remediate,
                },
            );
        }
        let message = if allowed {
            String::new()
        } else {
            format!(
                "{unhealthy} of {} machines are unhealthy, more than the {max} allowed",
                targets.len()
            )
        };
        let conditions = [
            Cond::new(
                "RemediationAllowed",
                allowed,
                "RemediationAllowed",
                "TooManyUnhealthy",
                &message,
            ),
            Cond::new("Paused", false, "", "NotPaused", ""),
        ];
        let generation = generation(check);
        let status = json!({
            "observedGeneration": generation.max(1),
            "expectedMachines": targets.len(),
            "currentHealthy": targets.len() - unhealthy,
            "remediationsAllowed": max.saturating_sub(unhealthy),
            "targets": targets.iter().map(|m| name(m)).collect::<Vec<_>>(),
            "conditions": metav1_conditions(check.pointer("/status/conditions"), &conditions, generation),
        });
        if shared
            .kube
            .apply_status(&MACHINE_HEALTH_CHECK, check, status)
            .await?
            && !allowed
        {
            tracing::info!(check = %name(check), %message, "remediation not allowed");
        }
    }
    Ok(verdicts)
}

/// The Cluster owns its health checks (CAPI sets it), which is how clusterctl move finds
/// them.
async fn adopt(shared: &Shared, view: &ClusterView<'_>, check: &Value) -> Result<(), SimError> {
    if has_owner(check, uid(view.cluster)) {
        return Ok(());
    }
    let mut reference = owner_reference(&CLUSTER, view.cluster);
    reference["controller"] = json!(false);
    let mut references = check
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    references.push(reference);
    shared
        .kube
        .guarded_merge(
            &MACHINE_HEALTH_CHECK,
            check,
            json!({ "metadata": { "ownerReferences": references } }),
        )
        .await
}

fn marked(machine: &Value) -> bool {
    let is_false = |kind: &str| {
        machine
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter().any(|c| {
                    str_at(c, "/type") == Some(kind) && str_at(c, "/status") == Some("False")
                })
            })
    };
    is_false(OWNER_REMEDIATED) && is_false(HEALTH_CHECK_SUCCEEDED)
}

/// The owners' part: each machine a health check marked for its owner is deleted by
/// that owner, when the owner's rules allow.
pub async fn remediate(shared: &Shared, view: &ClusterView<'_>) -> Result<(), SimError> {
    let marked: Vec<&Value> = ClusterView::live(&view.machines)
        .filter(|m| marked(m) && !is_paused(m))
        .collect();
    for machine in marked {
        if label(machine, CONTROL_PLANE_LABEL).is_some() {
            remediate_control_plane(shared, view, machine).await?;
        } else if label(machine, SET_NAME_LABEL).is_some() {
            tracing::info!(machine = %name(machine), "remediating an unhealthy machine: its MachineSet deletes it");
            shared
                .kube
                .delete(&MACHINE, view.namespace, name(machine))
                .await?;
        }
    }
    Ok(())
}

async fn remediate_control_plane(
    shared: &Shared,
    view: &ClusterView<'_>,
    machine: &Value,
) -> Result<(), SimError> {
    let Some(kcp) = view.kcp.filter(|k| !is_paused(k) && !is_deleting(k)) else {
        return Ok(());
    };
    let machines: Vec<&Value> = view
        .machines
        .iter()
        .copied()
        .filter(|m| ClusterView::is_control_plane(m))
        .collect();
    let live: Vec<&Value> = ClusterView::live(&machines).collect();
    let unhealthy = live.iter().filter(|m| marked(m)).count();
    let refuse = |why: String| {
        tracing::info!(machine = %name(machine), reason = %why, "the control plane does not remediate the machine");
        Ok(())
    };
    if machines.iter().any(|m| is_deleting(m)) {
        return refuse("another control-plane machine is being deleted".into());
    }
    if live.len() <= 1 {
        return refuse("a control plane of one machine cannot replace it".into());
    }
    if live.len() - unhealthy < live.len() / 2 + 1 {
        return refuse("etcd would lose its quorum".into());
    }
    let last = annotation(kcp, REMEDIATIONS_ANNOTATION)
        .and_then(|text| serde_json::from_str::<Value>(text).ok());
    let since_last = last
        .as_ref()
        .and_then(|l| str_at(l, "/timestamp"))
        .and_then(seconds_since);
    let min_healthy = i64_at(kcp, "/spec/remediation/minHealthyPeriodSeconds")
        .unwrap_or(MIN_HEALTHY_PERIOD_SECONDS);
    let retry = match (
        since_last,
        last.as_ref().and_then(|l| i64_at(l, "/retryCount")),
    ) {
        (Some(since), Some(count)) if since < min_healthy => {
            let period = i64_at(kcp, "/spec/remediation/retryPeriodSeconds").unwrap_or(0);
            if since < period {
                return refuse(format!("the retry period of {period}s has not passed"));
            }
            count + 1
        }
        _ => 0,
    };
    if let Some(max) = i64_at(kcp, "/spec/remediation/maxRetry")
        && retry > max
    {
        return refuse(format!("it has been retried {max} times (maxRetry)"));
    }
    tracing::info!(machine = %name(machine), retry, "remediating an unhealthy control-plane machine");
    let record = json!({ "retryCount": retry, "timestamp": now(), "machine": name(machine) });
    shared
        .kube
        .merge(
            &KUBEADM_CONTROL_PLANE,
            kcp,
            json!({ "metadata": { "annotations": { REMEDIATIONS_ANNOTATION: record.to_string() } } }),
        )
        .await?;
    shared
        .kube
        .delete(&MACHINE, view.namespace, name(machine))
        .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_allowed_unhealthy_count_is_a_count_or_a_share_rounded_down() {
        let check = |v: Value| json!({ "spec": { "remediation": { "triggerIf": { "unhealthyLessThanOrEqualTo": v } } } });
        assert_eq!(max_unhealthy(&check(json!("40%")), 3), 1);
        assert_eq!(max_unhealthy(&check(json!("40%")), 5), 2);
        assert_eq!(max_unhealthy(&check(json!("40%")), 2), 0);
        assert_eq!(max_unhealthy(&check(json!(2)), 10), 2);
        assert_eq!(max_unhealthy(&json!({ "spec": {} }), 4), 4);
    }

    #[test]
    fn a_check_selects_by_its_match_labels() {
        let check = json!({ "spec": { "selector": { "matchLabels": { "pool": "a" } } } });
        let machine = |pool: &str| json!({ "metadata": { "labels": { "pool": pool, "x": "y" } } });
        assert!(selects(&check, &machine("a")));
        assert!(!selects(&check, &machine("b")));
        assert!(!selects(
            &json!({ "spec": { "selector": {} } }),
            &machine("a")
        ));
    }

    #[test]
    fn an_unhealthy_machine_is_marked_for_its_owner_only_when_allowed() {
        let waiting = Verdict {
            unhealthy: Some(("UnhealthyNode", "down".into())),
            remediate: true,
        };
        let kinds: Vec<(&str, bool, String)> = waiting
            .conditions()
            .into_iter()
            .map(|c| (c.kind, c.status, c.reason))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (HEALTH_CHECK_SUCCEEDED, false, "UnhealthyNode".to_string()),
                (OWNER_REMEDIATED, false, "WaitingForRemediation".to_string()),
            ]
        );
        let held = Verdict {
            remediate: false,
            ..waiting
        };
        assert_eq!(held.conditions().len(), 1);
        let marked_machine = json!({ "status": { "conditions": [
            { "type": "HealthCheckSucceeded", "status": "False" },
            { "type": "OwnerRemediated", "status": "False" },
        ]}});
        assert!(marked(&marked_machine));
        assert!(!marked(&json!({ "status": { "conditions": [
            { "type": "HealthCheckSucceeded", "status": "False" },
        ]}})));
    }
}
