//! The site's machines compared from one look to the next, for its log: machines created,
//! deleted, and deleted while unhealthy (their health check failed, or their node was not
//! healthy the last time the agent looked), which the site's own CAPI then replaces, with
//! or without management.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use serde_json::Value;
use strata_shared::contracts::labels::{CAPI_DEPLOYMENT_NAME_LABEL, NODE_POOL_LABEL};

use crate::site_log::SiteEventKind;

/// The condition CAPI's MachineHealthCheck sets on the machines it checks.
const HEALTH_CHECK_SUCCEEDED: &str = "HealthCheckSucceeded";
/// The condition CAPI sets on a machine from its node's conditions (v1beta2).
const NODE_HEALTHY: &str = "NodeHealthy";

#[derive(Debug, Clone)]
struct SeenMachine {
    pool: String,
    /// Why it was unhealthy, the last time it was seen so.
    unhealthy: Option<String>,
    deleting: bool,
}

/// What the last look saw; nothing before the first.
#[derive(Debug, Default)]
pub struct MachineWatch {
    seen: Option<BTreeMap<String, SeenMachine>>,
}

impl MachineWatch {
    /// The events since the last look, given the machines there are now. The first look
    /// only learns what there is (a restarted agent does not report every machine again).
    pub fn observe(&mut self, machines: &[DynamicObject]) -> Vec<(SiteEventKind, String)> {
        let now: BTreeMap<String, SeenMachine> = machines
            .iter()
            .map(|m| (m.metadata.name.clone().unwrap_or_default(), seen(m)))
            .collect();
        let Some(before) = self.seen.replace(now.clone()) else {
            return Vec::new();
        };
        let mut events = Vec::new();
        for (name, was) in &before {
            let is = now.get(name);
            let newly_deleting = match is {
                Some(is) => is.deleting && !was.deleting,
                None => !was.deleting,
            };
            if !newly_deleting {
                continue;
            }
            let unhealthy = is
                .and_then(|m| m.unhealthy.clone())
                .or(was.unhealthy.clone());
            events.push(match unhealthy {
                Some(why) => (
                    SiteEventKind::MachineRemediated,
                    format!(
                        "machine {name} of pool {} was deleted while unhealthy ({why}), for its owner to replace",
                        was.pool
                    ),
                ),
                None => (
                    SiteEventKind::MachineDeleted,
                    format!("machine {name} of pool {} was deleted", was.pool),
                ),
            });
        }
        for (name, is) in &now {
            if !before.contains_key(name) {
                events.push((
                    SiteEventKind::MachineCreated,
                    format!("machine {name} was created in pool {}", is.pool),
                ));
            }
        }
        events
    }
}

fn seen(machine: &DynamicObject) -> SeenMachine {
    let labels = machine.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).cloned();
    SeenMachine {
        pool: label(NODE_POOL_LABEL)
            .or_else(|| label(CAPI_DEPLOYMENT_NAME_LABEL))
            .unwrap_or_else(|| "unknown".into()),
        unhealthy: unhealthy(&machine.data),
        deleting: machine.metadata.deletion_timestamp.is_some(),
    }
}

/// Why the machine is unhealthy: its health check failed, else its node is not healthy.
fn unhealthy(data: &Value) -> Option<String> {
    let conditions = data.pointer("/status/conditions")?.as_array()?;
    let failed = |kind: &str| {
        let condition = conditions
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))?;
        if condition.get("status").and_then(Value::as_str) != Some("False") {
            return None;
        }
        let text = |key: &str| condition.get(key).and_then(Value::as_str).unwrap_or("");
        Some(match (text("reason"), text("message")) {
            (reason, "") => format!("{kind}: {reason}"),
            (reason, message) => format!("{kind}: {reason}: {message}"),
        })
    };
    failed(HEALTH_CHECK_SUCCEEDED).or_else(|| failed(NODE_HEALTHY))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn machine(name: &str, pool: &str, status: Value, deleting: bool) -> DynamicObject {
        let mut metadata = json!({ "name": name, "labels": { NODE_POOL_LABEL: pool } });
        if deleting {
            metadata["deletionTimestamp"] = json!("2026-12-04T10:00:00Z");
        }
        serde_json::from_value(json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
            "metadata": metadata, "status": status,
        }))
        .unwrap()
    }

    fn unhealthy() -> Value {
        json!({ "conditions": [{ "type": "HealthCheckSucceeded", "status": "False",
            "reason": "UnhealthyNode", "message": "Ready=False for 30s" }] })
    }

    #[test]
    fn the_first_look_reports_nothing_and_later_ones_the_differences() {
        let mut watch = MachineWatch::default();
        let a = machine("w-a", "general", json!({}), false);
        let b = machine("w-b", "general", json!({}), false);
        assert!(watch.observe(&[a.clone(), b.clone()]).is_empty());
        assert!(watch.observe(&[a.clone(), b.clone()]).is_empty());
        // w-b fails its check, is deleted, and w-c takes its place.
        let b_failed = machine("w-b", "general", unhealthy(), false);
        assert!(watch.observe(&[a.clone(), b_failed]).is_empty());
        let c = machine("w-c", "general", json!({}), false);
        let events = watch.observe(&[a.clone(), c.clone()]);
        let kinds: Vec<SiteEventKind> = events.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                SiteEventKind::MachineRemediated,
                SiteEventKind::MachineCreated
            ]
        );
        assert!(
            events[0]
                .1
                .contains("machine w-b of pool general was deleted while unhealthy (HealthCheckSucceeded: UnhealthyNode: Ready=False for 30s)"),
            "{}",
            events[0].1
        );
        assert_eq!(events[1].1, "machine w-c was created in pool general");
    }

    #[test]
    fn a_node_seen_unhealthy_before_the_machine_went_makes_it_a_remediation() {
        let mut watch = MachineWatch::default();
        let a = machine("w-a", "general", json!({}), false);
        watch.observe(std::slice::from_ref(&a));
        let sick = machine(
            "w-a",
            "general",
            json!({ "conditions": [{ "type": "NodeHealthy", "status": "False",
                "reason": "NodeNotHealthy", "message": "the node is not ready" }] }),
            false,
        );
        assert!(watch.observe(&[sick]).is_empty());
        let events = watch.observe(&[]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, SiteEventKind::MachineRemediated);
        assert!(
            events[0]
                .1
                .contains("NodeHealthy: NodeNotHealthy: the node is not ready"),
            "{}",
            events[0].1
        );
    }

    #[test]
    fn a_deletion_is_reported_once_when_it_starts() {
        let mut watch = MachineWatch::default();
        let a = machine("w-a", "general", json!({}), false);
        watch.observe(std::slice::from_ref(&a));
        let deleting = machine("w-a", "general", json!({}), true);
        let events = watch.observe(std::slice::from_ref(&deleting));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, SiteEventKind::MachineDeleted);
        assert!(watch.observe(std::slice::from_ref(&deleting)).is_empty());
        assert!(watch.observe(&[]).is_empty(), "already reported");
    }
}
