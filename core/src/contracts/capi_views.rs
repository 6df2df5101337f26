//! What the crates read of Cluster API objects, as typed views. CAPI writes these fields
//! (its storage versions, [`super::capi`]); a field that is absent or of another type reads
//! as its zero value, as the objects are read while CAPI is still filling them in.

use kube::core::DynamicObject;
use serde_json::Value;

/// What the controller and the agent read of a CAPI `Cluster`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub uid: Option<String>,
    /// `spec.paused`.
    pub paused: bool,
    /// `status.initialization`: the v1beta2 flags.
    pub initialization: Initialization,
    /// Whether `status.conditions` has `ControlPlaneInitialized=True` (the condition CAPI
    /// also sets, and the only sign of some providers' clusters).
    pub control_plane_initialized_condition: bool,
    /// `status.controlPlane.readyReplicas`.
    pub control_plane_ready: i64,
    /// `status.workers.readyReplicas`.
    pub workers_ready: i64,
}

/// `status.initialization` of a v1beta2 `Cluster`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Initialization {
    pub infrastructure_provisioned: bool,
    pub control_plane_initialized: bool,
}

impl ClusterView {
    pub fn of(cluster: &DynamicObject) -> ClusterView {
        let data = &cluster.data;
        let flag = |pointer: &str| data.pointer(pointer).and_then(Value::as_bool) == Some(true);
        let count = |pointer: &str| data.pointer(pointer).and_then(Value::as_i64).unwrap_or(0);
        let condition = data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|conditions| {
                conditions.iter().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some("ControlPlaneInitialized")
                        && c.get("status").and_then(Value::as_str) == Some("True")
                })
            });
        ClusterView {
            uid: cluster.metadata.uid.clone(),
            paused: flag("/spec/paused"),
            initialization: Initialization {
                infrastructure_provisioned: flag(
                    "/status/initialization/infrastructureProvisioned",
                ),
                control_plane_initialized: flag("/status/initialization/controlPlaneInitialized"),
            },
            control_plane_initialized_condition: condition,
            control_plane_ready: count("/status/controlPlane/readyReplicas"),
            workers_ready: count("/status/workers/readyReplicas"),
        }
    }

    /// Whether CAPI has brought up the first control-plane node, by the flag or the
    /// condition.
    pub fn control_plane_initialized(&self) -> bool {
        self.initialization.control_plane_initialized || self.control_plane_initialized_condition
    }
}

/// What the agent reads of a CAPI `Machine`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineView {
    pub name: String,
    /// `status.nodeRef.name`: the node the machine became, once it has.
    pub node: Option<String>,
}

impl MachineView {
    pub fn of(machine: &DynamicObject) -> MachineView {
        MachineView {
            name: machine.metadata.name.clone().unwrap_or_default(),
            node: machine
                .data
                .pointer("/status/nodeRef/name")
                .and_then(Value::as_str)
                .map(String::from),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    fn cluster(status: Value) -> DynamicObject {
        object(json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "Cluster",
            "metadata": { "name": "edge-1", "uid": "u-1" },
            "spec": { "paused": true },
            "status": status,
        }))
    }

    #[test]
    fn initialization_is_read_from_the_flag_or_the_condition() {
        let flagged = ClusterView::of(&cluster(
            json!({"initialization": {"controlPlaneInitialized": true}}),
        ));
        assert!(flagged.control_plane_initialized());
        assert!(flagged.initialization.control_plane_initialized);
        let by_condition = ClusterView::of(&cluster(
            json!({"conditions": [{"type": "ControlPlaneInitialized", "status": "True"}]}),
        ));
        assert!(by_condition.control_plane_initialized());
        assert!(!by_condition.initialization.control_plane_initialized);
        assert!(
            !ClusterView::of(&cluster(
                json!({"conditions": [{"type": "ControlPlaneInitialized", "status": "False"}]})
            ))
            .control_plane_initialized()
        );
        assert!(!ClusterView::of(&cluster(Value::Null)).control_plane_initialized());
    }

    #[test]
    fn counts_flags_and_the_uid_are_read_and_what_is_missing_reads_as_zero() {
        let view = ClusterView::of(&cluster(json!({
            "initialization": { "infrastructureProvisioned": true },
            "controlPlane": { "readyReplicas": 3 },
            "workers": { "readyReplicas": "two" },
        })));
        assert_eq!(
            view,
            ClusterView {
                uid: Some("u-1".into()),
                paused: true,
                initialization: Initialization {
                    infrastructure_provisioned: true,
                    control_plane_initialized: false,
                },
                control_plane_initialized_condition: false,
                control_plane_ready: 3,
                workers_ready: 0,
            }
        );
    }

    #[test]
    fn a_machine_has_a_node_once_its_node_ref_is_set() {
        let machine = |status: Value| {
            MachineView::of(&object(json!({
                "apiVersion": "cluster.x-k8s.io/v1beta2",
                "kind": "Machine",
                "metadata": { "name": "edge-1-md-0-abc" },
                "status": status,
            })))
        };
        assert_eq!(machine(json!({})).node, None);
        let up = machine(json!({"nodeRef": {"name": "node-7"}}));
        assert_eq!(
            (up.name.as_str(), up.node.as_deref()),
            ("edge-1-md-0-abc", Some("node-7"))
        );
    }
}
