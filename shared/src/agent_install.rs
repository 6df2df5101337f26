//! What installing the agent means, as objects: in the management cluster, the agent's
//! service account and the RBAC that limits it to its own cluster; in the workload
//! cluster, the `strata-system` namespace, the agent's service account and rights, the
//! Secret that tells it how to reach the management cluster, and its Deployment.

use std::collections::BTreeMap;

use crate::provider_components::ProviderController;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, Namespace, ObjectFieldSelector, PodSpec, PodTemplateSpec,
    Secret, SecretVolumeSource, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

/// The agent's namespace in the workload cluster.
pub const AGENT_NAMESPACE: &str = "strata-system";
/// The agent's name everywhere: service accounts, roles, Deployment, Lease.
pub const AGENT_NAME: &str = "strata-agent";
/// The Secret in the workload cluster holding the agent's management-cluster access.
pub const MANAGEMENT_SECRET: &str = "strata-management";
/// Where the agent finds that Secret's files.
pub const MANAGEMENT_MOUNT: &str = "/etc/strata/management";
/// Annotation on the Secret: when its token expires (RFC 3339).
pub const TOKEN_EXPIRES_ANNOTATION: &str = "strata.dev/token-expires";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "strata";

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), AGENT_NAME.to_string()),
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

/// Where a cluster's objects are in the management cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterLocation {
    /// The WorkloadCluster's name (and the CAPI Cluster's).
    pub cluster: String,
    /// The WorkloadCluster's namespace.
    pub cluster_namespace: String,
    /// The namespace holding its CAPI objects and revisions, and nothing else.
    pub objects_namespace: String,
}

impl ClusterLocation {
    pub fn of(cluster_namespace: &str, cluster: &str) -> ClusterLocation {
        ClusterLocation {
            cluster: cluster.to_string(),
            cluster_namespace: cluster_namespace.to_string(),
            objects_namespace: crate::cluster::objects_namespace(cluster_namespace, cluster),
        }
    }
}

/// The agent's identity and rights in the management cluster: a service account in the
/// cluster's own namespace; a Role there to read its revisions, move its CAPI objects
/// and the secrets and config maps beside them, and renew its own token; a Role in
/// the WorkloadCluster's namespace to read that one object and write its status; and, for
/// clouds whose identity Secret lives in the provider's namespace, a Role there to read
/// that one Secret (the pivot copies it into the workload cluster). Cluster-wide it may
/// only read: the CRDs (the provider components it installs in its own cluster, and the
/// kinds a move back may create), and its cluster's own identity by name. Nothing of any
/// other cluster.
pub struct ManagementRbac {
    pub service_account: ServiceAccount,
    pub roles: Vec<Role>,
    pub bindings: Vec<RoleBinding>,
    pub cluster_role: ClusterRole,
    pub cluster_binding: ClusterRoleBinding,
}

/// Cluster-scoped identity kinds (vSphere and AWS; Azure's lives in the objects namespace).
const CLUSTER_SCOPED_IDENTITIES: &[&str] =
    &["vsphereclusteridentities", "awsclusterstaticidentities"];

/// `provider_namespace`: where the provider reads the cluster's identity Secret, for clouds
/// whose identity is cluster-scoped (vSphere, AWS); None otherwise (the Secret, if any, is
/// in the objects namespace).
pub fn management_rbac(
    location: &ClusterLocation,
    provider_namespace: Option<&str>,
) -> ManagementRbac {
    let ns = location.objects_namespace.as_str();
    const MOVE: &[&str] = &[
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    const READ: &[&str] = &["get", "list", "watch"];
    let own_namespace = Role {
        metadata: meta(AGENT_NAME, Some(ns)),
        rules: Some(vec![
            rule(&["strata.dev"], &["clusterrevisions"], READ),
            rule(
                &[
                    "cluster.x-k8s.io",
                    "infrastructure.cluster.x-k8s.io",
                    "bootstrap.cluster.x-k8s.io",
                    "controlplane.cluster.x-k8s.io",
                    "addons.cluster.x-k8s.io",
                ],
                &["*"],
                MOVE,
            ),
            rule(&[""], &["secrets", "configmaps"], MOVE),
            rule(&[""], &["events"], &["create", "patch"]),
            PolicyRule {
                resource_names: Some(vec![AGENT_NAME.to_string()]),
                ..rule(&[""], &["serviceaccounts/token"], &["create"])
            },
        ]),
    };
    let status = Role {
        metadata: meta(
            &status_role_name(location),
            Some(&location.cluster_namespace),
        ),
        rules: Some(vec![
            PolicyRule {
                resource_names: Some(vec![location.cluster.clone()]),
                ..rule(&["strata.dev"], &["workloadclusters"], READ)
            },
            PolicyRule {
                resource_names: Some(vec![location.cluster.clone()]),
                ..rule(
                    &["strata.dev"],
                    &["workloadclusters/status"],
                    &["get", "patch", "update"],
                )
            },
        ]),
    };
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: AGENT_NAME.into(),
        namespace: Some(ns.into()),
        ..Subject::default()
    };
    let binding = |role: &Role| RoleBinding {
        metadata: role.metadata.clone(),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: role.metadata.name.clone().unwrap_or_default(),
        },
        subjects: Some(vec![subject.clone()]),
    };
    let identity_secret = provider_namespace.map(|namespace| Role {
        metadata: meta(&provider_role_name(location), Some(namespace)),
        rules: Some(vec![PolicyRule {
            resource_names: Some(vec![crate::capi::identity_secret_name(ns)]),
            ..rule(&[""], &["secrets"], &["get"])
        }]),
    });
    let roles: Vec<Role> = [Some(own_namespace), Some(status), identity_secret]
        .into_iter()
        .flatten()
        .collect();
    let bindings = roles.iter().map(binding).collect();
    let cluster_role = ClusterRole {
        metadata: meta(&cluster_role_name(location), None),
        rules: Some(vec![
            rule(
                &["apiextensions.k8s.io"],
                &["customresourcedefinitions"],
                READ,
            ),
            PolicyRule {
                resource_names: Some(vec![crate::capi::identity_name(ns)]),
                ..rule(
                    &["infrastructure.cluster.x-k8s.io"],
                    CLUSTER_SCOPED_IDENTITIES,
                    &["get"],
                )
            },
            // A move back rewrites owner references to its objects namespace's UID.
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
            name: cluster_role_name(location),
        },
        subjects: Some(vec![subject]),
    };
    ManagementRbac {
        service_account: ServiceAccount {
            metadata: meta(AGENT_NAME, Some(ns)),
            ..ServiceAccount::default()
        },
        roles,
        bindings,
        cluster_role,
        cluster_binding,
    }
}

/// The agent's ClusterRole and its binding, named after the objects namespace (one per
/// cluster; a namespaced owner cannot own them, so deletion removes them by name).
pub fn cluster_role_name(location: &ClusterLocation) -> String {
    format!("{AGENT_NAME}-{}", location.objects_namespace)
}

/// The Role (and binding) in the provider's namespace to read the cluster's identity
/// Secret, named after the objects namespace: every cluster of that cloud has one there.
pub fn provider_role_name(location: &ClusterLocation) -> String {
    format!("{AGENT_NAME}-{}", location.objects_namespace)
}

/// The Role in the WorkloadCluster's namespace, named after the objects namespace so
/// that clusters sharing a namespace get one each.
pub fn status_role_name(location: &ClusterLocation) -> String {
    format!("{AGENT_NAME}-{}", location.objects_namespace)
}

/// How the agent reaches the management cluster.
#[derive(Clone)]
pub struct ManagementAccess {
    pub server: String,
    pub ca_pem: String,
    pub token: String,
    /// RFC 3339.
    pub token_expires: String,
}

impl std::fmt::Debug for ManagementAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementAccess")
            .field("server", &self.server)
            .field("token_expires", &self.token_expires)
            .finish_non_exhaustive()
    }
}

/// A kubeconfig for the agent's management-cluster access, defaulting to its namespace.
pub fn management_kubeconfig(access: &ManagementAccess, namespace: &str) -> Kubeconfig {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(access.ca_pem.as_bytes());
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: "management".into(),
            cluster: Some(Cluster {
                server: Some(access.server.clone()),
                certificate_authority_data: Some(ca),
                ..Cluster::default()
            }),
            other: BTreeMap::new(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: AGENT_NAME.into(),
            auth_info: Some(AuthInfo {
                token: Some(access.token.clone().into()),
                ..AuthInfo::default()
            }),
            other: BTreeMap::new(),
        }],
        contexts: vec![NamedContext {
            name: "management".into(),
            context: Some(Context {
                cluster: "management".into(),
                user: Some(AGENT_NAME.into()),
                namespace: Some(namespace.into()),
                ..Context::default()
            }),
            other: BTreeMap::new(),
        }],
        current_context: Some("management".into()),
        ..Kubeconfig::default()
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

#[derive(Debug, thiserror::Error)]
#[error("the agent's management kubeconfig for cluster {cluster} cannot be written: {reason}")]
pub struct AgentInstallError {
    pub cluster: String,
    pub reason: String,
}

/// Makes the service account named like `meta`, in `namespace`, the workload cluster's
/// administrator.
pub(crate) fn cluster_admin_binding(meta: ObjectMeta, namespace: &str) -> ClusterRoleBinding {
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
/// the name label of `meta`: Strata's singletons in a workload cluster, where two copies
/// at once would act on the same objects.
pub(crate) fn singleton_deployment(meta: ObjectMeta, pod: PodSpec) -> Deployment {
    let labels = meta.labels.clone().unwrap_or_default();
    let selector: BTreeMap<String, String> = labels
        .iter()
        .filter(|(k, _)| k.as_str() == "app.kubernetes.io/name")
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

/// The agent's objects in the workload cluster. `providers` is what the agent deploys as
/// the cluster's provider controllers before it moves anything (passed as its arguments).
pub fn workload_objects(
    location: &ClusterLocation,
    access: &ManagementAccess,
    image: &str,
    providers: Option<&ProviderController>,
) -> Result<WorkloadAgentObjects, AgentInstallError> {
    let kubeconfig =
        serde_yaml::to_string(&management_kubeconfig(access, &location.objects_namespace))
            .map_err(|e| AgentInstallError {
                cluster: location.cluster.clone(),
                reason: e.to_string(),
            })?;
    let data = BTreeMap::from([
        ("kubeconfig".to_string(), kubeconfig),
        ("server".to_string(), access.server.clone()),
        ("ca.crt".to_string(), access.ca_pem.clone()),
        ("token".to_string(), access.token.clone()),
        ("namespace".to_string(), location.objects_namespace.clone()),
        ("cluster".to_string(), location.cluster.clone()),
        (
            "clusterNamespace".to_string(),
            location.cluster_namespace.clone(),
        ),
    ]);
    let mut secret_meta = meta(MANAGEMENT_SECRET, Some(AGENT_NAMESPACE));
    secret_meta.annotations = Some(BTreeMap::from([(
        TOKEN_EXPIRES_ANNOTATION.to_string(),
        access.token_expires.clone(),
    )]));
    let secret = Secret {
        metadata: secret_meta,
        type_: Some("Opaque".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    };
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
    let args: Vec<String> = providers
        .into_iter()
        .flat_map(|p| {
            std::iter::once(format!("--provider-image={}", p.image))
                .chain(p.args.iter().map(|a| format!("--provider-arg={a}")))
        })
        .collect();
    let container = Container {
        name: "agent".into(),
        image: Some(image.into()),
        args: (!args.is_empty()).then_some(args),
        env: Some(vec![
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("POD_NAME", "metadata.name"),
            EnvVar {
                name: "STRATA_MANAGEMENT_KUBECONFIG".into(),
                value: Some(format!("{MANAGEMENT_MOUNT}/kubeconfig")),
                ..EnvVar::default()
            },
        ]),
        volume_mounts: Some(vec![VolumeMount {
            name: "management".into(),
            mount_path: MANAGEMENT_MOUNT.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    // The lease keeps two agents from working at once; Recreate keeps a rollout from
    // making them wait on each other.
    let deployment = singleton_deployment(
        meta(AGENT_NAME, Some(AGENT_NAMESPACE)),
        PodSpec {
            service_account_name: Some(AGENT_NAME.into()),
            containers: vec![container],
            volumes: Some(vec![Volume {
                name: "management".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(MANAGEMENT_SECRET.into()),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        },
    );
    Ok(WorkloadAgentObjects {
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
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn location() -> ClusterLocation {
        ClusterLocation {
            cluster: "edge-1".into(),
            cluster_namespace: "team-a".into(),
            objects_namespace: "team-a-edge-1".into(),
        }
    }

    #[test]
    fn management_rights_stay_in_the_cluster_s_namespaces() {
        let rbac = management_rbac(&location(), None);
        let namespaces: Vec<_> = rbac
            .roles
            .iter()
            .map(|r| r.metadata.namespace.clone().unwrap())
            .collect();
        assert_eq!(namespaces, ["team-a-edge-1", "team-a"]);
        // In the shared namespace only the one WorkloadCluster, by name.
        let shared = &rbac.roles[1];
        for rule in shared.rules.as_ref().unwrap() {
            assert_eq!(
                rule.resource_names.as_deref(),
                Some(&["edge-1".to_string()][..])
            );
            assert!(!rule.verbs.iter().any(|v| v == "delete" || v == "create"));
        }
        for binding in &rbac.bindings {
            let subject = &binding.subjects.as_ref().unwrap()[0];
            assert_eq!(subject.namespace.as_deref(), Some("team-a-edge-1"));
            assert_eq!(binding.role_ref.kind, "Role");
        }
        // Cluster-wide: reading only, and of identities and namespaces only its own, by name.
        for rule in rbac.cluster_role.rules.as_ref().unwrap() {
            if rule.resources.as_deref() == Some(&["namespaces".to_string()][..]) {
                assert_eq!(
                    rule.resource_names.as_deref(),
                    Some(&["team-a-edge-1".to_string()][..])
                );
            }
            assert!(
                rule.verbs
                    .iter()
                    .all(|v| ["get", "list", "watch"].contains(&v.as_str())),
                "{rule:?}"
            );
            if rule
                .resources
                .as_ref()
                .unwrap()
                .iter()
                .any(|r| r.contains("identit"))
            {
                assert_eq!(
                    rule.resource_names.as_deref(),
                    Some(&["strata-team-a-edge-1".to_string()][..])
                );
                assert_eq!(rule.verbs, ["get"]);
            }
        }
        let subject = &rbac.cluster_binding.subjects.as_ref().unwrap()[0];
        assert_eq!(subject.namespace.as_deref(), Some("team-a-edge-1"));
        assert_eq!(
            rbac.cluster_binding.role_ref.name,
            "strata-agent-team-a-edge-1"
        );
    }

    #[test]
    fn in_the_provider_namespace_only_its_own_identity_secret_and_only_get() {
        let rbac = management_rbac(&location(), Some("capv-system"));
        let namespaces: Vec<_> = rbac
            .roles
            .iter()
            .map(|r| r.metadata.namespace.clone().unwrap())
            .collect();
        assert_eq!(namespaces, ["team-a-edge-1", "team-a", "capv-system"]);
        let provider = &rbac.roles[2];
        assert_eq!(
            provider.metadata.name.as_deref(),
            Some(provider_role_name(&location()).as_str())
        );
        let rules = provider.rules.as_ref().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].api_groups.as_deref(), Some(&[String::new()][..]));
        assert_eq!(
            rules[0].resources.as_deref(),
            Some(&["secrets".to_string()][..])
        );
        assert_eq!(rules[0].verbs, ["get"]);
        assert_eq!(
            rules[0].resource_names.as_deref(),
            Some(&[crate::capi::identity_secret_name("team-a-edge-1")][..])
        );
        // Each Role has its binding, in its namespace, for the agent of this cluster only.
        assert_eq!(rbac.bindings.len(), rbac.roles.len());
        for (role, binding) in rbac.roles.iter().zip(&rbac.bindings) {
            assert_eq!(binding.metadata.namespace, role.metadata.namespace);
            assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
            let subjects = binding.subjects.as_ref().unwrap();
            assert_eq!(subjects.len(), 1);
            assert_eq!(subjects[0].namespace.as_deref(), Some("team-a-edge-1"));
            assert_eq!(subjects[0].name, AGENT_NAME);
        }
        // Without a provider namespace there is no such Role.
        assert_eq!(management_rbac(&location(), None).roles.len(), 2);
    }

    #[test]
    fn workload_secret_carries_a_kubeconfig_for_the_management_cluster() {
        let access = ManagementAccess {
            server: "https://mgmt.example:6443".into(),
            ca_pem: "-----BEGIN CERTIFICATE-----\n".into(),
            token: "tok".into(),
            token_expires: "2026-11-22T00:00:00Z".into(),
        };
        let providers = ProviderController {
            image: "strata-sim-cloud:1".into(),
            args: vec!["--fast".into()],
        };
        let objects =
            workload_objects(&location(), &access, "strata-agent:1", Some(&providers)).unwrap();
        let data = objects.secret.data.unwrap();
        let kubeconfig: Kubeconfig = serde_yaml::from_slice(&data["kubeconfig"].0).unwrap();
        let context = kubeconfig.contexts[0].context.as_ref().unwrap();
        assert_eq!(context.namespace.as_deref(), Some("team-a-edge-1"));
        assert_eq!(
            kubeconfig.clusters[0]
                .cluster
                .as_ref()
                .unwrap()
                .server
                .as_deref(),
            Some("https://mgmt.example:6443")
        );
        let pod = objects.deployment.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.containers[0].image.as_deref(), Some("strata-agent:1"));
        assert_eq!(
            pod.containers[0].args.as_deref().unwrap(),
            [
                "--provider-image=strata-sim-cloud:1",
                "--provider-arg=--fast"
            ]
        );
        assert_eq!(pod.service_account_name.as_deref(), Some(AGENT_NAME));
    }
}
