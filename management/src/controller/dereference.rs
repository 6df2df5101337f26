//! Reading everything a WorkloadCluster names: its cloud account and the account's
//! secret, the profiles and pack registries (the cluster's namespace first, then the
//! system namespace), and its objects namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use strata_shared::cloud_account::CloudAccount;
use strata_shared::cluster::WorkloadCluster;
use strata_shared::pack_registry::PackRegistry;
use strata_shared::profile::ClusterProfile;

#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {what}: {source}")]
pub struct DereferenceError {
    pub action: &'static str,
    pub what: String,
    #[source]
    pub source: kube::Error,
}

fn failed(action: &'static str, what: String) -> impl FnOnce(kube::Error) -> DereferenceError {
    move |source| DereferenceError {
        action,
        what,
        source,
    }
}

/// What a cluster names, as found.
pub struct Inputs {
    pub account: Option<CloudAccount>,
    /// The account secret's keys and text values, when the Secret exists.
    pub account_secret: Option<BTreeMap<String, String>>,
    pub profiles: Vec<ClusterProfile>,
    pub registries: Vec<PackRegistry>,
    pub objects_namespace: Option<Namespace>,
}

/// The objects of `store` in each namespace in turn, so that the first namespace's come
/// first and win a lookup by name.
fn in_namespaces<K>(store: &Store<K>, namespaces: &[&str]) -> Vec<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    let all = store.state();
    let mut found = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for namespace in namespaces {
        if seen.contains(namespace) {
            continue;
        }
        seen.push(namespace);
        let mut here: Vec<K> = all
            .iter()
            .filter(|o| o.meta().namespace.as_deref() == Some(*namespace))
            .map(|o| (**o).clone())
            .collect();
        here.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
        found.extend(here);
    }
    found
}

pub async fn load(
    client: &Client,
    cluster: &WorkloadCluster,
    objects_namespace: &str,
    system_namespace: &str,
    profiles: &Store<ClusterProfile>,
    registries: &Store<PackRegistry>,
) -> Result<Inputs, DereferenceError> {
    let namespace = cluster.namespace().unwrap_or_default();
    let lookup = [namespace.as_str(), system_namespace];
    let mut account = None;
    let mut account_secret = None;
    if let Some(reference) = &cluster.spec.cloud_account_ref {
        let accounts: Api<CloudAccount> = Api::namespaced(client.clone(), &namespace);
        account = accounts.get_opt(&reference.name).await.map_err(failed(
            "read",
            format!("CloudAccount {namespace}/{}", reference.name),
        ))?;
        if let Some(secret_ref) = account.as_ref().and_then(|a| a.spec.secret_ref.as_ref()) {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
            let secret = secrets.get_opt(&secret_ref.name).await.map_err(failed(
                "read",
                format!("Secret {namespace}/{}", secret_ref.name),
            ))?;
            account_secret = secret.map(|s| {
                let mut values: BTreeMap<String, String> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                values.extend(s.string_data.unwrap_or_default());
                values
            });
        }
    }
    let profiles = in_namespaces(profiles, &lookup);
    let registries = in_namespaces(registries, &lookup);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let objects_namespace = namespaces
        .get_opt(objects_namespace)
        .await
        .map_err(failed("read", format!("Namespace {objects_namespace}")))?;
    Ok(Inputs {
        account,
        account_secret,
        profiles,
        registries,
        objects_namespace,
    })
}
