//! The names of the objects the crates find each other's work by: where the agent lives,
//! its Secrets and ConfigMaps, the provider controllers, the static roles, and where a
//! cluster's objects are in the management cluster.

use sha2::Digest;

/// The agent's namespace in the workload cluster (also where `strata-agent move` keeps its
/// journal in a target given by hand).
pub const AGENT_NAMESPACE: &str = "strata-system";
/// The agent's name everywhere: service accounts, roles, Deployment, Lease.
pub const AGENT_NAME: &str = "strata-agent";
/// The port of the agent's `/metrics`, `/healthz` and `/readyz`: its `--http-port`
/// default and its Deployment's container port.
pub const AGENT_HTTP_PORT: u16 = 8080;
/// That container port's name, which the probes name.
pub const AGENT_HTTP_PORT_NAME: &str = "http";
/// The Secret in the workload cluster holding the agent's management-cluster access.
/// Written by the controller at install (and by `strata cluster rekey`); the agent reads it
/// for every connection and writes a renewed token into it.
pub const MANAGEMENT_SECRET: &str = "strata-management";
/// The ConfigMap in the agent's namespace with the state of its link to the management
/// cluster (`Connected`, `Unreachable`, `Unauthorized`). Written by the agent; read by people
/// at the site and by tests.
pub const LINK_STATE_CONFIG_MAP: &str = "strata-link";
/// The ConfigMap in the agent's namespace with the copy of the cluster's latest revision,
/// so that a cluster cut off from the management cluster still knows what it should be.
/// Written and read by the agent.
pub const REVISION_COPY_CONFIG_MAP: &str = "strata-revision";
/// The ConfigMap (in [`AGENT_NAMESPACE`]) with what the site did by itself (its site
/// events, newest last), kept across agent restarts and outages; the latest of them go to
/// the WorkloadCluster's status. Written and read by the agent.
pub const SITE_LOG_CONFIG_MAP: &str = "strata-site-log";
/// The Secret, in the cluster's objects namespace in the management cluster, with the
/// site's latest copy of its own CAPI objects (see `pivot::site_export`). Written by the
/// agent; read only by a restore an operator runs.
pub const SITE_EXPORT_SECRET: &str = "strata-site-export";
/// The ConfigMap (in [`AGENT_NAMESPACE`]) with the revision the cluster runs, every step of
/// it done: what the agent rolls the next revision out from. Written and read by the agent.
pub const APPLIED_REVISION_CONFIG_MAP: &str = "strata-applied-revision";
/// The Secret with the pack registries a cluster's layers come from (address, CA, read
/// credentials), as its agent needs them: the controller keeps it in the cluster's objects
/// namespace in the management cluster, and the agent keeps a copy of that name in its own
/// namespace, so that a site cut off from the management cluster still reaches them.
pub const PACK_REGISTRIES_SECRET: &str = "strata-pack-registries";
/// Where the agent keeps the packs of its layers, on its node (a hostPath), so that a
/// restarted agent installs them with the registry out of reach.
pub const AGENT_PACK_CACHE: &str = "/var/lib/strata-agent";
/// The ConfigMap in the agent's namespace with the state of each layer (what
/// `status.layers` says in the management cluster), so that a site shows it with the
/// management cluster unreachable. Written by the agent.
pub const LAYER_STATE_CONFIG_MAP: &str = "strata-layers";

/// The ConfigMap in the agent's namespace with the journal of the move of `cluster` into
/// its workload cluster. Written and read by the agent (and `strata-agent move`).
pub fn pivot_journal_name(cluster: &str) -> String {
    format!("strata-move-{cluster}-pivot")
}

/// The ConfigMap with the journal of the move of `cluster` back to the management cluster.
pub fn reverse_journal_name(cluster: &str) -> String {
    format!("strata-move-{cluster}-reverse")
}

/// Where the provider controllers run in a workload cluster.
pub const PROVIDER_NAMESPACE: &str = "capi-system";
/// The provider controllers' Deployment, service account and binding.
pub const PROVIDER_NAME: &str = "capi-providers";

/// The static ClusterRole (`manifests/chart/strata/templates/rbac.yaml`) with the agent's rights
/// inside its own objects namespace, bound there per cluster. Being static, the controller
/// grants it with `bind` and needs none of these rights itself.
pub const AGENT_OBJECTS_ROLE: &str = "strata-agent-objects";
/// The static ClusterRole with the controller's writes inside a namespace it manages (a
/// cluster's objects namespace, a provider's namespace): it binds it there for itself,
/// rather than holding Secret writes in every namespace.
pub const CONTROLLER_OBJECTS_ROLE: &str = "strata-controller-objects";
/// The RoleBinding of [`CONTROLLER_OBJECTS_ROLE`] in each namespace it is bound in.
pub const CONTROLLER_BINDING: &str = "strata-controller";
/// The RoleBinding of [`AGENT_OBJECTS_ROLE`] in an objects namespace.
pub const AGENT_BINDING: &str = AGENT_NAME;

/// The prefix every objects namespace starts with: names that begin with it are Strata's,
/// and a namespace of that name that does not carry the cluster's labels is never adopted.
pub const OBJECTS_NAMESPACE_PREFIX: &str = "strata-wc-";

/// The namespace of the management cluster that holds a cluster's CAPI objects and
/// revisions and nothing else, so that RBAC can give its agent that namespace alone:
/// `strata-wc-<namespace>-<name>-<hash>`, the readable part shortened to fit 63 characters.
///
/// The hash (of `namespace/name`, where `/` cannot occur in either) is what makes the name
/// unique: joined with `-` alone, `b/c-a` and `b-c/a` would share one, and `capv/system`
/// would take the provider's own `capv-system`. The prefix keeps the names apart from
/// every namespace people make by hand.
pub fn objects_namespace(namespace: &str, name: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{namespace}/{name}").as_bytes());
    // 48 bits: a collision among a million clusters has odds of about 1 in 500.
    let hash: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let room = 63 - OBJECTS_NAMESPACE_PREFIX.len() - 1 - hash.len();
    let readable = format!("{namespace}-{name}");
    let readable = readable[..readable.len().min(room)].trim_end_matches('-');
    format!("{OBJECTS_NAMESPACE_PREFIX}{readable}-{hash}")
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
            objects_namespace: objects_namespace(cluster_namespace, cluster),
        }
    }

    /// `namespace/name` of the WorkloadCluster.
    pub fn key(&self) -> String {
        format!("{}/{}", self.cluster_namespace, self.cluster)
    }

    /// The names of the agent's identity and rights in the management cluster, all derived
    /// from the objects namespace, which is unique per cluster.
    pub fn agent_names(&self) -> AgentNames {
        AgentNames {
            service_account: format!("agent-{}", self.objects_namespace),
            credential_secret: format!("agent-{}-credential", self.objects_namespace),
            rbac: format!("{AGENT_NAME}-{}", self.objects_namespace),
        }
    }
}

/// The agent's objects in the management cluster, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentNames {
    /// Its service account, in the controller's system namespace: a namespace where the
    /// agent may write nothing, so it cannot make itself a token Secret (which would never
    /// expire) for that account.
    pub service_account: String,
    /// The Secret in the system namespace that holds the agent's current token. The tokens
    /// are bound to it: deleting it revokes every token the agent has.
    pub credential_secret: String,
    /// Its Roles, RoleBindings, ClusterRole and ClusterRoleBinding.
    pub rbac: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label(name: &str) -> bool {
        name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    }

    #[test]
    fn objects_namespaces_do_not_collide_where_joined_names_would() {
        let a = objects_namespace("b", "c-a");
        let b = objects_namespace("b-c", "a");
        assert_ne!(a, b);
        assert!(a.starts_with("strata-wc-b-c-a-"), "{a}");
        // A cluster named like a provider's namespace gets a namespace of its own.
        assert_ne!(objects_namespace("capv", "system"), "capv-system");
        let long = "x".repeat(63);
        let name = objects_namespace(&long, &long);
        assert!(is_dns_label(&name), "{name}");
    }

    #[test]
    fn the_two_journals_of_a_cluster_have_their_own_names() {
        assert_eq!(pivot_journal_name("edge-1"), "strata-move-edge-1-pivot");
        assert_eq!(reverse_journal_name("edge-1"), "strata-move-edge-1-reverse");
    }

    proptest::proptest! {
        #[test]
        fn objects_namespaces_are_valid_unique_and_reserved(
            pairs in proptest::collection::vec(
                ("[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?", "[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?"),
                2..40,
            )
        ) {
            let mut seen = std::collections::BTreeMap::new();
            for (namespace, name) in &pairs {
                let objects = objects_namespace(namespace, name);
                proptest::prop_assert!(is_dns_label(&objects), "{}", objects);
                proptest::prop_assert!(objects.starts_with(OBJECTS_NAMESPACE_PREFIX));
                if let Some(other) = seen.insert(objects.clone(), (namespace, name)) {
                    proptest::prop_assert_eq!(other, (namespace, name), "{} is shared", objects);
                }
            }
        }

        /// Every way of cutting one dashed name into a namespace and a name gives its own
        /// objects namespace: the collisions a plain join would make.
        #[test]
        fn every_split_of_a_dashed_name_is_distinct(
            segments in proptest::collection::vec("[a-z0-9]{1,6}", 2..8)
        ) {
            let mut seen = std::collections::BTreeSet::new();
            for cut in 1..segments.len() {
                let namespace = segments[..cut].join("-");
                let name = segments[cut..].join("-");
                proptest::prop_assert!(seen.insert(objects_namespace(&namespace, &name)));
            }
        }

        /// Clusters whose names join to the same text get apart RBAC names.
        #[test]
        fn rbac_names_are_unique_per_cluster(
            segments in proptest::collection::vec("[a-z0-9]{1,6}", 2..6)
        ) {
            let mut seen = std::collections::BTreeSet::new();
            for cut in 1..segments.len() {
                let location = ClusterLocation::of(
                    &segments[..cut].join("-"),
                    &segments[cut..].join("-"),
                );
                let names = location.agent_names();
                proptest::prop_assert!(seen.insert(names.rbac.clone()));
                proptest::prop_assert!(seen.insert(names.service_account.clone()));
                proptest::prop_assert!(seen.insert(names.credential_secret.clone()));
                proptest::prop_assert!(names.service_account.len() <= 253);
            }
        }
    }
}
