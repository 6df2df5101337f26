//! What one cluster's agent has in the management cluster: its service account and
//! credential Secret in the system namespace, its Roles and RoleBindings (in the
//! WorkloadCluster's namespace, the system namespace and, for vSphere and AWS, the provider
//! namespace), its binding in the objects namespace, and its ClusterRole and binding. Tests
//! use it to check that deleting one cluster leaves another's agent its rights, and that
//! nothing of a deleted cluster's agent is left; the two assertions panic with what is
//! missing or left.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::ListParams;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use strata_shared::agent_install::owned_by;
use strata_shared::contracts::labels::{WORKLOAD_CLUSTER_LABEL, WORKLOAD_CLUSTER_NAMESPACE_LABEL};
use strata_shared::contracts::names::{AGENT_BINDING, ClusterLocation};

use crate::management::SYSTEM_NAMESPACE;

#[derive(Debug, thiserror::Error)]
pub enum FootprintError {
    #[error("cannot read {what} of the agent of {cluster}: {source}")]
    Read {
        cluster: String,
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// Whether an object of the agent's is there, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// There, carrying this cluster's ownership labels.
    Owned,
    /// There under the name, but its labels name another cluster (or none).
    Foreign,
    Missing,
}

/// The agent's objects by description (`Role b/strata-agent-…`) and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFootprint(pub BTreeMap<String, Presence>);

impl AgentFootprint {
    /// The objects not found carrying this cluster's labels.
    pub fn not_owned(&self) -> Vec<String> {
        self.described(|p| *p != Presence::Owned)
    }

    /// The objects still there, whoever's they are.
    pub fn present(&self) -> Vec<String> {
        self.described(|p| *p != Presence::Missing)
    }

    fn described(&self, keep: impl Fn(&Presence) -> bool) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, p)| keep(p))
            .map(|(what, p)| format!("{what} ({p:?})"))
            .collect()
    }
}

/// Reads, by name, every object the controller makes for `location`'s agent.
/// `provider_namespace`: where the cloud's provider reads identity Secrets (vSphere, AWS).
pub async fn read(
    client: &Client,
    location: &ClusterLocation,
    system_namespace: &str,
    provider_namespace: Option<&str>,
) -> Result<AgentFootprint, FootprintError> {
    let names = location.agent_names();
    let mut found = BTreeMap::new();
    let mut record = |what: String, presence: Presence| {
        found.insert(what, presence);
    };
    let account: Api<ServiceAccount> = Api::namespaced(client.clone(), system_namespace);
    record(
        format!(
            "ServiceAccount {system_namespace}/{}",
            names.service_account
        ),
        presence(&account, &names.service_account, location).await?,
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), system_namespace);
    record(
        format!("Secret {system_namespace}/{}", names.credential_secret),
        presence(&secrets, &names.credential_secret, location).await?,
    );
    let mut role_namespaces = vec![location.cluster_namespace.as_str(), system_namespace];
    role_namespaces.extend(provider_namespace);
    for namespace in role_namespaces {
        let roles: Api<Role> = Api::namespaced(client.clone(), namespace);
        record(
            format!("Role {namespace}/{}", names.rbac),
            presence(&roles, &names.rbac, location).await?,
        );
        let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
        record(
            format!("RoleBinding {namespace}/{}", names.rbac),
            presence(&bindings, &names.rbac, location).await?,
        );
    }
    let objects_binding: Api<RoleBinding> =
        Api::namespaced(client.clone(), &location.objects_namespace);
    record(
        format!("RoleBinding {}/{AGENT_BINDING}", location.objects_namespace),
        presence(&objects_binding, AGENT_BINDING, location).await?,
    );
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    record(
        format!("ClusterRole {}", names.rbac),
        presence(&cluster_roles, &names.rbac, location).await?,
    );
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    record(
        format!("ClusterRoleBinding {}", names.rbac),
        presence(&cluster_bindings, &names.rbac, location).await?,
    );
    Ok(AgentFootprint(found))
}

async fn presence<K>(
    api: &Api<K>,
    name: &str,
    location: &ClusterLocation,
) -> Result<Presence, FootprintError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let found = api.get_opt(name).await.map_err(|e| FootprintError::Read {
        cluster: format!("{}/{}", location.cluster_namespace, location.cluster),
        what: name.to_string(),
        source: Box::new(e),
    })?;
    Ok(match found {
        None => Presence::Missing,
        Some(object) if owned_by(object.meta().labels.as_ref(), location) => Presence::Owned,
        Some(_) => Presence::Foreign,
    })
}

/// Everything in the management cluster, under any name and in any namespace, that carries
/// `location`'s ownership labels: service accounts, Secrets, Roles, RoleBindings,
/// ClusterRoles and ClusterRoleBindings, described.
pub async fn labelled_leftovers(
    client: &Client,
    location: &ClusterLocation,
) -> Result<Vec<String>, FootprintError> {
    let selector = format!(
        "{WORKLOAD_CLUSTER_NAMESPACE_LABEL}={},{WORKLOAD_CLUSTER_LABEL}={}",
        location.cluster_namespace, location.cluster
    );
    let params = ListParams::default().labels(&selector);
    let mut left = Vec::new();
    left.extend(labelled::<ServiceAccount>(client, location, &params, "ServiceAccount").await?);
    left.extend(labelled::<Secret>(client, location, &params, "Secret").await?);
    left.extend(labelled::<Role>(client, location, &params, "Role").await?);
    left.extend(labelled::<RoleBinding>(client, location, &params, "RoleBinding").await?);
    left.extend(labelled::<ClusterRole>(client, location, &params, "ClusterRole").await?);
    left.extend(
        labelled::<ClusterRoleBinding>(client, location, &params, "ClusterRoleBinding").await?,
    );
    Ok(left)
}

/// Asserts that everything of `location`'s agent is there, carrying its cluster's labels;
/// `when` names the moment in the failure's message.
pub async fn assert_agent_footprint_whole(
    client: &Client,
    location: &ClusterLocation,
    provider_namespace: Option<&str>,
    when: &str,
) {
    let found = footprint(client, location, provider_namespace).await;
    assert!(
        found.not_owned().is_empty(),
        "{when}: the agent of {}/{} is missing {:?}",
        location.cluster_namespace,
        location.cluster,
        found.not_owned()
    );
}

/// Asserts that nothing of `location`'s agent is left: not by name, not under any name
/// carrying its labels.
pub async fn assert_agent_gone(
    client: &Client,
    location: &ClusterLocation,
    provider_namespace: Option<&str>,
) {
    let found = footprint(client, location, provider_namespace).await;
    assert!(
        found.present().is_empty(),
        "the agent of {}/{} left {:?}",
        location.cluster_namespace,
        location.cluster,
        found.present()
    );
    let labelled = labelled_leftovers(client, location)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        labelled.is_empty(),
        "left with the labels of {}/{}: {labelled:?}",
        location.cluster_namespace,
        location.cluster
    );
}

/// The agent's footprint with the controller's objects in the substrate's system
/// namespace; a read that fails is the test's failure.
async fn footprint(
    client: &Client,
    location: &ClusterLocation,
    provider_namespace: Option<&str>,
) -> AgentFootprint {
    read(client, location, SYSTEM_NAMESPACE, provider_namespace)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn labelled<K>(
    client: &Client,
    location: &ClusterLocation,
    params: &ListParams,
    kind: &str,
) -> Result<Vec<String>, FootprintError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    <K as Resource>::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    let list = api.list(params).await.map_err(|e| FootprintError::Read {
        cluster: format!("{}/{}", location.cluster_namespace, location.cluster),
        what: format!("the labelled {kind}s"),
        source: Box::new(e),
    })?;
    Ok(list
        .items
        .iter()
        .map(|o| match o.namespace() {
            Some(namespace) => format!("{kind} {namespace}/{}", o.name_any()),
            None => format!("{kind} {}", o.name_any()),
        })
        .collect())
}
