//! What installing the agent means, as objects: in the management cluster, the agent's
//! service account and the RBAC that limits it to its own cluster; in the workload
//! cluster, the `strata-system` namespace, the agent's service account and rights, the
//! Secret that tells it how to reach the management cluster, and its Deployment.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    HostPathVolumeSource, Namespace, ObjectFieldSelector, PodSpec, Probe, Secret, SecurityContext,
    ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::contracts::capi::{CAPI_GROUPS, CLUSTER_SCOPED_IDENTITIES, INFRASTRUCTURE_GROUP};
use crate::contracts::labels::{
    APP_NAME_LABEL, MANAGED_BY, MANAGED_BY_LABEL, WORKLOAD_CLUSTER_LABEL,
    WORKLOAD_CLUSTER_NAMESPACE_LABEL,
};
use crate::contracts::names::{
    AGENT_BINDING, AGENT_HTTP_PORT, AGENT_HTTP_PORT_NAME, AGENT_NAME, AGENT_NAMESPACE,
    AGENT_OBJECTS_ROLE, AGENT_PACK_CACHE, CONTROLLER_BINDING, CONTROLLER_OBJECTS_ROLE,
    ClusterLocation, MANAGEMENT_SECRET,
};
use crate::management_access::ManagementLinkData;
use crate::workload_singleton::{
    SINGLETON_UID, cluster_admin_binding, resources, restricted_container, singleton_deployment,
    singleton_pod,
};

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP_NAME_LABEL.to_string(), AGENT_NAME.to_string()),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
    ])
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(String::from),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

const READ: &[&str] = &["get", "list", "watch"];
/// A move reads, creates, patches (status, pause, finalizers) and deletes: nothing else.
const MOVE: &[&str] = &["get", "list", "create", "patch", "delete"];

/// The rules of [`AGENT_OBJECTS_ROLE`], each with its reason. Every right here is for the
/// objects namespace of one cluster only (the binding's namespace).
pub fn agent_objects_rules() -> Vec<PolicyRule> {
    vec![
        // Its cluster's revisions: what the cluster should be.
        rule(&["strata.dev"], &["clusterrevisions"], READ),
        // The move and the move back: every CAPI object of the cluster, with status.
        rule(&CAPI_GROUPS, &["*"], MOVE),
        // The move and the move back carry the Secrets and ConfigMaps of the cluster
        // (kubeconfig, certificates, bootstrap data).
        rule(&[""], &["secrets", "configmaps"], MOVE),
    ]
}

/// The static ClusterRole of the agent's rights in its objects namespace.
pub fn agent_objects_role() -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(AGENT_OBJECTS_ROLE.into()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_string(),
                MANAGED_BY.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        rules: Some(agent_objects_rules()),
        ..ClusterRole::default()
    }
}

/// The rules of [`CONTROLLER_OBJECTS_ROLE`]: the identity Secrets it writes beside a
/// cluster's objects (Azure) and in a provider's namespace (vSphere, AWS).
pub fn controller_objects_rules() -> Vec<PolicyRule> {
    vec![rule(&[""], &["secrets"], &["get", "create", "patch"])]
}

/// The static ClusterRole of the controller's writes in a namespace it manages.
pub fn controller_objects_role() -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(CONTROLLER_OBJECTS_ROLE.into()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_string(),
                MANAGED_BY.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        rules: Some(controller_objects_rules()),
        ..ClusterRole::default()
    }
}

/// The controller's binding of [`CONTROLLER_OBJECTS_ROLE`] in `namespace`, for its own
/// service account `account` in `system_namespace`.
pub fn controller_binding(namespace: &str, system_namespace: &str, account: &str) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(CONTROLLER_BINDING.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_string(),
                MANAGED_BY.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: CONTROLLER_OBJECTS_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.into(),
            namespace: Some(system_namespace.into()),
            ..Subject::default()
        }]),
    }
}

/// The agent's identity and rights in the management cluster, for one cluster:
/// - its service account in the system namespace, where it can write nothing;
/// - in the objects namespace, the static [`AGENT_OBJECTS_ROLE`], bound;
/// - in the WorkloadCluster's namespace, reading that one object and writing its status;
/// - in the system namespace, reading its own credential Secret (its renewed token);
/// - for clouds whose identity Secret lives in the provider's namespace, reading that one
///   Secret there (the pivot copies it into the workload cluster, and a changed one is
///   copied again);
/// - cluster-wide, reading only: the CRDs, its cluster's own identity and its objects
///   namespace, by name.
///
/// It may mint no token: its tokens come from the controller, which caps their life.
pub struct ManagementRbac {
    pub service_account: ServiceAccount,
    pub roles: Vec<Role>,
    pub bindings: Vec<RoleBinding>,
    pub cluster_role: ClusterRole,
    pub cluster_binding: ClusterRoleBinding,
}

/// The labels that say which cluster an object of the agent's belongs to: deletion removes
/// only what carries them.
pub fn owner_labels(location: &ClusterLocation) -> BTreeMap<String, String> {
    let mut labels = labels();
    labels.insert(
        WORKLOAD_CLUSTER_NAMESPACE_LABEL.to_string(),
        location.cluster_namespace.clone(),
    );
    labels.insert(WORKLOAD_CLUSTER_LABEL.to_string(), location.cluster.clone());
    labels
}

/// Whether an object carries `location`'s ownership labels.
pub fn owned_by(labels: Option<&BTreeMap<String, String>>, location: &ClusterLocation) -> bool {
    labels.is_some_and(|labels| {
        labels.get(WORKLOAD_CLUSTER_NAMESPACE_LABEL) == Some(&location.cluster_namespace)
            && labels.get(WORKLOAD_CLUSTER_LABEL) == Some(&location.cluster)
    })
}

fn owned_meta(location: &ClusterLocation, name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(String::from),
        labels: Some(owner_labels(location)),
        ..ObjectMeta::default()
    }
}

/// `system_namespace`: the controller's, where the agent's account and credential live.
/// `provider_namespace`: where the provider reads the cluster's identity Secret, for clouds
/// whose identity is cluster-scoped (vSphere, AWS); None otherwise (the Secret, if any, is
/// in the objects namespace).
pub fn management_rbac(
    location: &ClusterLocation,
    system_namespace: &str,
    provider_namespace: Option<&str>,
) -> ManagementRbac {
    let ns = location.objects_namespace.as_str();
    let names = location.agent_names();
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: names.service_account.clone(),
        namespace: Some(system_namespace.into()),
        ..Subject::default()
    };
    let status = Role {
        metadata: owned_meta(location, &names.rbac, Some(&location.cluster_namespace)),
        rules: Some(vec![
            // Whether its cluster is being deleted (the move back), and its revision number.
            PolicyRule {
                resource_names: Some(vec![location.cluster.clone()]),
                ..rule(&["strata.dev"], &["workloadclusters"], &["get"])
            },
            // Its reports: where the objects are, the node counts, its last report time.
            PolicyRule {
                resource_names: Some(vec![location.cluster.clone()]),
                ..rule(
                    &["strata.dev"],
                    &["workloadclusters/status"],
                    &["get", "patch"],
                )
            },
        ]),
    };
    let credential = Role {
        metadata: owned_meta(location, &names.rbac, Some(system_namespace)),
        // Its renewed token, which the controller keeps fresh there.
        rules: Some(vec![PolicyRule {
            resource_names: Some(vec![names.credential_secret.clone()]),
            ..rule(&[""], &["secrets"], &["get"])
        }]),
    };
    // The move copies the cluster's identity Secret into the workload cluster, and a
    // changed one again later.
    let identity_secret = provider_namespace.map(|namespace| Role {
        metadata: owned_meta(location, &names.rbac, Some(namespace)),
        rules: Some(vec![PolicyRule {
            resource_names: Some(vec![crate::capi::identity_secret_name(ns)]),
            ..rule(&[""], &["secrets"], &["get"])
        }]),
    });
    let roles: Vec<Role> = [Some(status), Some(credential), identity_secret]
        .into_iter()
        .flatten()
        .collect();
    let mut bindings: Vec<RoleBinding> = roles
        .iter()
        .map(|role| RoleBinding {
            metadata: role.metadata.clone(),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: role.metadata.name.clone().unwrap_or_default(),
            },
            subjects: Some(vec![subject.clone()]),
        })
        .collect();
    bindings.insert(
        0,
        RoleBinding {
            metadata: owned_meta(location, AGENT_BINDING, Some(ns)),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: AGENT_OBJECTS_ROLE.into(),
            },
            subjects: Some(vec![subject.clone()]),
        },
    );
    let cluster_role = ClusterRole {
        metadata: owned_meta(location, &names.rbac, None),
        rules: Some(vec![
            // The move finds the kinds it carries through the management cluster's CRDs
            // labelled for clusterctl.
            rule(
                &["apiextensions.k8s.io"],
                &["customresourcedefinitions"],
                READ,
            ),
            // Its cluster's own identity (cluster-scoped for vSphere and AWS), to copy it.
            PolicyRule {
                resource_names: Some(vec![crate::capi::identity_name(ns)]),
                ..rule(
                    &[INFRASTRUCTURE_GROUP],
                    &CLUSTER_SCOPED_IDENTITIES.map(|kind| kind.plural),
                    &["get"],
                )
            },
            // A move back rewrites owner references to its objects namespace's UID; the
            // controller's pivot grant is an annotation there.
            PolicyRule {
                resource_names: Some(vec![ns.to_string()]),
                ..rule(&[""], &["namespaces"], &["get"])
            },
        ]),
        ..ClusterRole::default()
    };
    let cluster_binding = ClusterRoleBinding {
        metadata: cluster_role.metadata.clone(),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: names.rbac.clone(),
        },
        subjects: Some(vec![subject]),
    };
    ManagementRbac {
        service_account: ServiceAccount {
            metadata: owned_meta(location, &names.service_account, Some(system_namespace)),
            // No token Secrets are made for it: its tokens are requested, bound and capped.
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        },
        roles,
        bindings,
        cluster_role,
        cluster_binding,
    }
}

/// Everything the agent needs in the workload cluster, in the order to apply it.
pub struct WorkloadAgentObjects {
    pub namespace: Namespace,
    pub service_account: ServiceAccount,
    pub binding: ClusterRoleBinding,
    pub secret: Secret,
    pub deployment: Deployment,
}

fn http_probe(path: &str, period_seconds: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(AGENT_HTTP_PORT_NAME.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(3),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// The agent's objects in the workload cluster.
pub fn workload_objects(link: &ManagementLinkData, image: &str) -> WorkloadAgentObjects {
    let secret = link.to_secret(meta(MANAGEMENT_SECRET, Some(AGENT_NAMESPACE)));
    let field_env = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let plain_env = |name: &str, value: &str| EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    };
    let container = Container {
        name: "agent".into(),
        image: Some(image.into()),
        env: Some(vec![
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_IP", "status.podIP"),
            EnvVar {
                name: "STRATA_MANAGEMENT_SECRET".into(),
                value: Some(MANAGEMENT_SECRET.into()),
                ..EnvVar::default()
            },
            EnvVar {
                name: "STRATA_AGENT_PACK_CACHE".into(),
                value: Some(AGENT_PACK_CACHE.into()),
                ..EnvVar::default()
            },
            // glibc's allocator gives each thread that allocates an arena of its own and
            // rarely hands freed memory back; one arena, trimmed from 128 KiB free, is
            // about 8 MiB less resident for the agent (docs/benchmarks.md), which is
            // mostly waiting on the network.
            plain_env("MALLOC_ARENA_MAX", "1"),
            plain_env("MALLOC_TRIM_THRESHOLD_", "131072"),
        ]),
        volume_mounts: Some(vec![VolumeMount {
            name: "pack-cache".into(),
            mount_path: AGENT_PACK_CACHE.into(),
            ..VolumeMount::default()
        }]),
        ports: Some(vec![ContainerPort {
            name: Some(AGENT_HTTP_PORT_NAME.into()),
            container_port: i32::from(AGENT_HTTP_PORT),
            ..ContainerPort::default()
        }]),
        // Liveness only asks whether the process answers; readiness whether it reached
        // this cluster's apiserver (not management's: an edge agent works without it).
        liveness_probe: Some(http_probe("/healthz", 10)),
        readiness_probe: Some(http_probe("/readyz", 5)),
        // The agent's own steady state is meant to stay within 30 MiB resident: the
        // request is that with room for a move's journal and the layer installer's state.
        // The limit is for the `helm` it runs as a child (same cgroup) while a chart layer
        // installs, which renders the chart in memory, and for unpacking a pack.
        resources: Some(resources(("50m", "64Mi"), ("1", "256Mi"))),
        security_context: Some(restricted_container()),
        ..Container::default()
    };
    // The pack cache is a folder of the node, created by the kubelet as root: made the
    // agent's before it starts, by a container that may change an owner and nothing else.
    // Only the folder itself: what is inside the agent wrote, as its own user.
    let cache_owner = Container {
        name: "pack-cache-owner".into(),
        image: Some(image.into()),
        // The agent's own image and binary: it needs no shell or coreutils.
        args: Some(vec![
            "own-cache".into(),
            format!("--uid={SINGLETON_UID}"),
            AGENT_PACK_CACHE.into(),
        ]),
        volume_mounts: Some(vec![VolumeMount {
            name: "pack-cache".into(),
            mount_path: AGENT_PACK_CACHE.into(),
            ..VolumeMount::default()
        }]),
        resources: Some(resources(("10m", "16Mi"), ("100m", "32Mi"))),
        security_context: Some(SecurityContext {
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: Some(vec!["CHOWN".into()]),
            }),
            ..restricted_container()
        }),
        ..Container::default()
    };
    // The lease keeps two agents from working at once; Recreate keeps a rollout from
    // making them wait on each other.
    let deployment = singleton_deployment(
        meta(AGENT_NAME, Some(AGENT_NAMESPACE)),
        singleton_pod(PodSpec {
            service_account_name: Some(AGENT_NAME.into()),
            init_containers: Some(vec![cache_owner]),
            containers: vec![container],
            // On the node, so that an agent started again (even in a new pod) installs
            // its layers from it with the registry out of reach.
            volumes: Some(vec![Volume {
                name: "pack-cache".into(),
                host_path: Some(HostPathVolumeSource {
                    path: AGENT_PACK_CACHE.into(),
                    type_: Some("DirectoryOrCreate".into()),
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
    );
    WorkloadAgentObjects {
        namespace: Namespace {
            metadata: meta(AGENT_NAMESPACE, None),
            ..Namespace::default()
        },
        service_account: ServiceAccount {
            metadata: meta(AGENT_NAME, Some(AGENT_NAMESPACE)),
            ..ServiceAccount::default()
        },
        // The agent installs CRDs, providers and every layer of its own cluster: it is
        // that cluster's administrator.
        binding: cluster_admin_binding(meta(AGENT_NAME, None), AGENT_NAMESPACE),
        secret,
        deployment,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::management_access::ManagementAccess;

    fn location() -> ClusterLocation {
        ClusterLocation::of("team-a", "edge-1")
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn management_rights_stay_in_the_cluster_s_namespaces() {
        let location = location();
        let names = location.agent_names();
        let rbac = management_rbac(&location, "strata-system", None);
        let namespaces: Vec<_> = rbac
            .roles
            .iter()
            .map(|r| r.metadata.namespace.clone().unwrap())
            .collect();
        assert_eq!(namespaces, ["team-a", "strata-system"]);
        // In the shared namespace only the one WorkloadCluster, by name, and never its spec.
        let shared = &rbac.roles[0];
        for rule in shared.rules.as_ref().unwrap() {
            assert_eq!(
                rule.resource_names.as_deref(),
                Some(&strings(&["edge-1"])[..])
            );
            assert!(
                !rule
                    .verbs
                    .iter()
                    .any(|v| ["delete", "create", "update"].contains(&v.as_str()))
            );
        }
        assert_eq!(
            shared.rules.as_ref().unwrap()[0].verbs,
            ["get"],
            "the WorkloadCluster itself is read only"
        );
        // In the system namespace, reading its own credential Secret and nothing else.
        let system = &rbac.roles[1].rules.as_ref().unwrap();
        assert_eq!(system.len(), 1);
        assert_eq!(system[0].verbs, ["get"]);
        assert_eq!(
            system[0].resource_names.as_deref(),
            Some(&[names.credential_secret.clone()][..])
        );
        // Every binding names the agent's account in the system namespace.
        assert_eq!(rbac.bindings.len(), rbac.roles.len() + 1);
        for binding in &rbac.bindings {
            let subject = &binding.subjects.as_ref().unwrap()[0];
            assert_eq!(subject.namespace.as_deref(), Some("strata-system"));
            assert_eq!(subject.name, names.service_account);
        }
        // In the objects namespace, the static role, bound.
        let objects = &rbac.bindings[0];
        assert_eq!(
            objects.metadata.namespace.as_deref(),
            Some(location.objects_namespace.as_str())
        );
        assert_eq!(objects.role_ref.kind, "ClusterRole");
        assert_eq!(objects.role_ref.name, AGENT_OBJECTS_ROLE);
        // Cluster-wide: reading only, and of identities and namespaces only its own, by name.
        for rule in rbac.cluster_role.rules.as_ref().unwrap() {
            assert!(
                rule.verbs
                    .iter()
                    .all(|v| ["get", "list", "watch"].contains(&v.as_str())),
                "{rule:?}"
            );
            let resources = rule.resources.as_ref().unwrap();
            if resources
                .iter()
                .any(|r| r.contains("identit") || r == "namespaces")
            {
                assert_eq!(rule.verbs, ["get"]);
                assert_eq!(rule.resource_names.as_ref().map(Vec::len), Some(1));
            }
        }
        assert_eq!(rbac.cluster_binding.role_ref.name, names.rbac);
        // No token: the agent may request none, and no Secret is made for its account.
        let everything = rbac
            .roles
            .iter()
            .flat_map(|r| r.rules.clone().unwrap())
            .chain(rbac.cluster_role.rules.clone().unwrap())
            .chain(agent_objects_rules());
        for rule in everything {
            assert!(
                !rule
                    .resources
                    .unwrap()
                    .iter()
                    .any(|r| r.starts_with("serviceaccounts")),
                "the agent may not touch service accounts or their tokens"
            );
        }
        assert_eq!(
            rbac.service_account.automount_service_account_token,
            Some(false)
        );
    }

    #[test]
    fn in_the_provider_namespace_only_its_own_identity_secret_and_only_get() {
        let location = location();
        let rbac = management_rbac(&location, "strata-system", Some("capv-system"));
        let provider = rbac
            .roles
            .iter()
            .find(|r| r.metadata.namespace.as_deref() == Some("capv-system"))
            .unwrap();
        let rules = provider.rules.as_ref().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].resources.as_deref(),
            Some(&strings(&["secrets"])[..])
        );
        assert_eq!(rules[0].verbs, ["get"]);
        assert_eq!(
            rules[0].resource_names.as_deref(),
            Some(
                &[crate::capi::identity_secret_name(
                    &location.objects_namespace
                )][..]
            )
        );
        // Each Role has its binding, in its namespace.
        for role in &rbac.roles {
            let binding = rbac
                .bindings
                .iter()
                .find(|b| b.metadata.namespace == role.metadata.namespace)
                .unwrap();
            assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
        }
    }

    #[test]
    fn everything_the_agent_has_in_management_carries_its_cluster() {
        let location = location();
        let rbac = management_rbac(&location, "strata-system", Some("capv-system"));
        let labels = std::iter::once(&rbac.service_account.metadata)
            .chain(rbac.roles.iter().map(|r| &r.metadata))
            .chain(rbac.bindings.iter().map(|b| &b.metadata))
            .chain([&rbac.cluster_role.metadata, &rbac.cluster_binding.metadata]);
        for meta in labels {
            assert!(owned_by(meta.labels.as_ref(), &location), "{meta:?}");
            assert!(!owned_by(
                meta.labels.as_ref(),
                &ClusterLocation::of("team-a-edge", "1")
            ));
        }
    }

    #[test]
    fn the_workload_cluster_gets_the_link_secret_and_the_agent() {
        let location = location();
        let link = ManagementLinkData {
            access: ManagementAccess {
                server: "https://mgmt.example:6443".into(),
                ca_pem: "-----BEGIN CERTIFICATE-----\n".into(),
                token: "tok".into(),
                token_expires: "2026-11-22T00:00:00Z".parse().unwrap(),
            },
            credential_secret: location.agent_names().credential_secret,
            location,
            system_namespace: "strata-system".into(),
            identity_secret: None,
            pivot_round: 1,
        };
        let objects = workload_objects(&link, "strata-agent:1");
        assert_eq!(
            ManagementLinkData::from_secret(&objects.secret).unwrap(),
            link
        );
        let pod = objects.deployment.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.containers[0].image.as_deref(), Some("strata-agent:1"));
        // What the agent installs before the move comes from the revision, not its arguments.
        assert_eq!(pod.containers[0].args, None);
        assert_eq!(pod.service_account_name.as_deref(), Some(AGENT_NAME));

        // The probes name the port the agent listens on, on the pod's IP.
        let agent = &pod.containers[0];
        let port = &agent.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some(AGENT_HTTP_PORT_NAME), 8080)
        );
        let probe_path = |probe: Option<&Probe>| {
            let get = probe.unwrap().http_get.as_ref().unwrap();
            assert_eq!(get.port, IntOrString::String(AGENT_HTTP_PORT_NAME.into()));
            get.path.clone().unwrap()
        };
        assert_eq!(probe_path(agent.liveness_probe.as_ref()), "/healthz");
        assert_eq!(probe_path(agent.readiness_probe.as_ref()), "/readyz");
        let pod_ip = agent
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "POD_IP")
            .unwrap();
        // One allocator arena: the measured difference in resident memory.
        let arenas = agent
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "MALLOC_ARENA_MAX")
            .unwrap();
        assert_eq!(arenas.value.as_deref(), Some("1"));
        // On the host's network, so it runs before the CNI it installs; on the first
        // control-plane node while it is still NotReady.
        assert_eq!(pod.host_network, Some(true));
        assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
        assert_eq!(
            pod.priority_class_name.as_deref(),
            Some("system-cluster-critical")
        );
        let tolerations = pod.tolerations.clone().unwrap();
        let tolerates = |key: &str, effect: &str| {
            tolerations.iter().find(|t| {
                t.key.as_deref() == Some(key)
                    && t.effect.as_deref() == Some(effect)
                    && t.operator.as_deref() == Some("Exists")
            })
        };
        for (key, effect) in [
            ("node-role.kubernetes.io/control-plane", "NoSchedule"),
            ("node-role.kubernetes.io/master", "NoSchedule"),
            ("node.kubernetes.io/not-ready", "NoSchedule"),
        ] {
            assert!(tolerates(key, effect).is_some(), "{key}:{effect}");
        }
        assert_eq!(
            tolerates("node.kubernetes.io/not-ready", "NoExecute")
                .unwrap()
                .toleration_seconds,
            None,
            "never evicted for a NotReady node"
        );
        assert_eq!(
            tolerates("node.kubernetes.io/unreachable", "NoExecute")
                .unwrap()
                .toleration_seconds,
            Some(60),
            "but given back when its node died"
        );
        // Restricted: a UID, no escalation, no capability, a read-only root; what it
        // writes is the pack cache volume.
        let pod_security = pod.security_context.as_ref().unwrap();
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(pod_security.run_as_user, Some(SINGLETON_UID));
        assert_eq!(
            pod_security.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        let security = agent.security_context.as_ref().unwrap();
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.run_as_user, None, "the pod's UID");
        assert_eq!(
            security.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&strings(&["ALL"])[..])
        );
        assert_eq!(
            agent.volume_mounts.as_ref().unwrap()[0].mount_path,
            AGENT_PACK_CACHE
        );
        assert_ne!(
            agent.volume_mounts.as_ref().unwrap()[0].read_only,
            Some(true)
        );
        let resources = agent.resources.as_ref().unwrap();
        assert_eq!(resources.requests.as_ref().unwrap()["memory"].0, "64Mi");
        assert_eq!(resources.limits.as_ref().unwrap()["memory"].0, "256Mi");
        // The cache folder is made the agent's user's first, by a container that can only
        // change owners, of that folder only.
        let owner = &pod.init_containers.as_ref().unwrap()[0];
        assert_eq!(
            owner.args.as_deref().unwrap(),
            ["own-cache", "--uid=65532", AGENT_PACK_CACHE]
        );
        let owner_security = owner.security_context.as_ref().unwrap();
        let capabilities = owner_security.capabilities.as_ref().unwrap();
        assert_eq!(capabilities.add.as_deref(), Some(&strings(&["CHOWN"])[..]));
        assert_eq!(capabilities.drop.as_deref(), Some(&strings(&["ALL"])[..]));
        assert_eq!(owner_security.allow_privilege_escalation, Some(false));
        assert_eq!(owner_security.read_only_root_filesystem, Some(true));
        assert_eq!(
            pod_ip
                .value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "status.podIP"
        );
    }
}
