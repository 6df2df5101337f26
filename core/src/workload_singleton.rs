//! Strata's singletons in a workload cluster (the agent): one
//! replica, replaced rather than rolled, running as the cluster's administrator, on the
//! host's network so that they run before the CNI does (the agent installs it), on
//! control-plane nodes and on nodes that are not Ready yet, with a restrictive security
//! context.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements,
    SeccompProfile, SecurityContext, Toleration,
};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::contracts::labels::APP_NAME_LABEL;

/// Requests and limits, each `(cpu, memory)`.
pub fn resources(requests: (&str, &str), limits: (&str, &str)) -> ResourceRequirements {
    let pair = |(cpu, memory): (&str, &str)| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])
    };
    ResourceRequirements {
        requests: Some(pair(requests)),
        limits: Some(pair(limits)),
        ..ResourceRequirements::default()
    }
}

/// Makes the service account named like `meta`, in `namespace`, the workload cluster's
/// administrator.
pub fn cluster_admin_binding(meta: ObjectMeta, namespace: &str) -> ClusterRoleBinding {
    let account = meta.name.clone().unwrap_or_default();
    ClusterRoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account,
            namespace: Some(namespace.into()),
            ..Subject::default()
        }]),
    }
}

/// One replica of `pod`, replaced rather than rolled (`Recreate`), selected and labelled by
/// the name label of `meta`: two copies at once would act on the same objects.
pub fn singleton_deployment(meta: ObjectMeta, pod: PodSpec) -> Deployment {
    let labels = meta.labels.clone().unwrap_or_default();
    let selector: BTreeMap<String, String> = labels
        .iter()
        .filter(|(k, _)| k.as_str() == APP_NAME_LABEL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Deployment {
        metadata: meta,
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The user the singletons run as (the conventional unprivileged `nonroot` of minimal
/// images); a folder of the node they write is made theirs first.
pub const SINGLETON_UID: i64 = 65532;
/// The priority class of the singletons: they run the cluster itself (its machines, its
/// layers), so they go before ordinary workloads when a node is short.
pub const SINGLETON_PRIORITY_CLASS: &str = "system-cluster-critical";
/// How long a singleton stays bound to a node that stopped answering before it is
/// evicted and started elsewhere. The lease keeps an old copy that still runs there from
/// acting once a new one holds it.
pub const UNREACHABLE_TOLERATION_SECONDS: i64 = 60;

fn toleration(key: &str, effect: &str, seconds: Option<i64>) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        toleration_seconds: seconds,
        ..Toleration::default()
    }
}

/// The taints a singleton tolerates: the control plane's (kubeadm 1.20 sets `master`,
/// later ones `control-plane`), since a new cluster has only its first control-plane
/// node when the agent starts; `not-ready`, with no bound, since nodes stay NotReady until
/// the CNI the agent installs runs, and a singleton on the host's network works all the
/// same; `unreachable`, for a bounded time only, so that a node that died gives its
/// singleton back.
pub fn singleton_tolerations() -> Vec<Toleration> {
    vec![
        toleration("node-role.kubernetes.io/control-plane", "NoSchedule", None),
        toleration("node-role.kubernetes.io/master", "NoSchedule", None),
        toleration("node.kubernetes.io/not-ready", "NoSchedule", None),
        toleration("node.kubernetes.io/not-ready", "NoExecute", None),
        toleration(
            "node.kubernetes.io/unreachable",
            "NoExecute",
            Some(UNREACHABLE_TOLERATION_SECONDS),
        ),
    ]
}

/// A container that cannot gain anything: no privilege escalation, no capability, a
/// read-only root filesystem (what it writes goes to volumes).
pub fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// `pod` as a singleton runs: on the host's network (with the cluster's DNS still first,
/// `ClusterFirstWithHostNet`), tolerating [`singleton_tolerations`], at
/// [`SINGLETON_PRIORITY_CLASS`], as [`SINGLETON_UID`] with the runtime's default seccomp
/// profile. Its containers' own security contexts are the caller's.
pub fn singleton_pod(pod: PodSpec) -> PodSpec {
    PodSpec {
        host_network: Some(true),
        dns_policy: Some("ClusterFirstWithHostNet".into()),
        tolerations: Some(singleton_tolerations()),
        priority_class_name: Some(SINGLETON_PRIORITY_CLASS.into()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(SINGLETON_UID),
            run_as_group: Some(SINGLETON_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        ..pod
    }
}
