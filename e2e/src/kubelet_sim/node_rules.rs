//! The simulated kubelet's rules for nodes and pods, kept pure: which taints a node
//! carries, when it is Ready, which pods may be placed on it (Kubernetes' toleration
//! matching) and which pods may run there while its network is down.

use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};

/// The label kubeadm gives control-plane nodes; 1.20 also sets `master`.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
pub const MASTER_LABEL: &str = "node-role.kubernetes.io/master";
/// The taint kubeadm puts on control-plane nodes (`NoSchedule`).
pub const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";
/// The taint a node carries while it is not Ready (`NoSchedule`), as the kubelet and the
/// node lifecycle controller set it.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// What kubelet says while the container runtime's network is not ready.
pub const NETWORK_NOT_READY_MESSAGE: &str = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:docker: network plugin is not ready: cni config uninitialized";

/// Why a node is or is not Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeReadiness {
    Ready,
    /// No pod of the CNI has run on it yet.
    NetworkNotReady,
    /// A test asked for it to be NotReady.
    Fault,
}

impl NodeReadiness {
    /// A requested fault wins over the network: the node's heartbeat is what stopped.
    pub fn of(network_ready: bool, fault: bool) -> NodeReadiness {
        match (fault, network_ready) {
            (true, _) => NodeReadiness::Fault,
            (false, false) => NodeReadiness::NetworkNotReady,
            (false, true) => NodeReadiness::Ready,
        }
    }

    pub fn is_ready(self) -> bool {
        self == NodeReadiness::Ready
    }

    /// The Ready condition's status, reason and message.
    pub fn condition(self) -> (&'static str, &'static str, &'static str) {
        match self {
            NodeReadiness::Ready => (
                "True",
                "KubeletReady",
                "simulated kubelet is posting ready status",
            ),
            NodeReadiness::NetworkNotReady => {
                ("False", "KubeletNotReady", NETWORK_NOT_READY_MESSAGE)
            }
            NodeReadiness::Fault => (
                "False",
                "KubeletNotReady",
                "simulated fault: node not ready",
            ),
        }
    }
}

pub fn is_control_plane(labels: &std::collections::BTreeMap<String, String>) -> bool {
    labels.contains_key(CONTROL_PLANE_LABEL) || labels.contains_key(MASTER_LABEL)
}

fn no_schedule(key: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: "NoSchedule".into(),
        ..Taint::default()
    }
}

/// The taints the simulated kubelet keeps on a node: kubeadm's control-plane taint, and
/// the not-ready taint while the node is not Ready.
pub fn own_taints(control_plane: bool, ready: bool) -> Vec<Taint> {
    let mut taints = Vec::new();
    if control_plane {
        taints.push(no_schedule(CONTROL_PLANE_TAINT));
    }
    if !ready {
        taints.push(no_schedule(NOT_READY_TAINT));
    }
    taints
}

/// Whether `taint` is one of those [`own_taints`] manages (whatever its current state).
pub fn is_own_taint(taint: &Taint) -> bool {
    taint.effect == "NoSchedule"
        && [CONTROL_PLANE_TAINT, NOT_READY_TAINT].contains(&taint.key.as_str())
}

/// A node's taint list with the kubelet's own taints replaced by `own`, others' kept.
pub fn merged_taints(current: &[Taint], own: &[Taint]) -> Vec<Taint> {
    current
        .iter()
        .filter(|t| !is_own_taint(t))
        .cloned()
        .chain(own.iter().cloned())
        .collect()
}

/// Kubernetes' rule: an empty effect matches every effect, an empty key (with `Exists`)
/// every key; `Exists` ignores the value, `Equal` (or no operator) compares it.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// Whether a pod with `tolerations` may be placed on a node with `taints`: every taint
/// that repels (`NoSchedule`, `NoExecute`) is tolerated; `PreferNoSchedule` never blocks.
pub fn tolerates_all(tolerations: &[Toleration], taints: &[Taint]) -> bool {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
}

pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// Whether a pod's containers may start on a node: without a network only hostNetwork
/// pods can, since every other pod's sandbox needs the CNI.
pub fn may_start(host_network: bool, network_ready: bool) -> bool {
    host_network || network_ready
}

/// Whether `pod` belongs to one of the DaemonSets `(namespace, name)` in `cni`.
pub fn is_cni_pod(pod: &Pod, cni: &[(String, String)]) -> bool {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    pod.metadata.owner_references.iter().flatten().any(|owner| {
        owner.kind == "DaemonSet"
            && cni
                .iter()
                .any(|(ns, name)| ns == namespace && name == &owner.name)
    })
}

#[cfg(test)]
#[path = "node_rules_tests.rs"]
mod node_rules_tests;
