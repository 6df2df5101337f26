//! Server-side apply under the controller's field manager, with a bound on every write.
//! The same objects applied twice change nothing, which is what makes a reconcile (and a
//! controller restarted half-way through one) converge.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use strata_shared::contracts::field_managers::CONTROLLER_FIELD_MANAGER;
use strata_shared::contracts::labels::{
    MANAGED_BY, MANAGED_BY_LABEL, OBJECTS_NAMESPACE_LABEL, WORKLOAD_CLUSTER_LABEL,
    WORKLOAD_CLUSTER_NAMESPACE_LABEL,
};

use super::context::WRITE_TIMEOUT;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot apply {kind} {name}: {source}")]
    Api {
        kind: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("applying {kind} {name} took longer than {seconds} s")]
    Timeout {
        kind: String,
        name: String,
        seconds: u64,
    },
    #[error("{kind} {name} cannot be applied: {reason}")]
    Invalid {
        kind: String,
        name: String,
        reason: String,
    },
}

impl ApplyError {
    /// Whether the API server refused the write for want of rights.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ApplyError::Api { source, .. }
            if matches!(source.as_ref(), kube::Error::Api(e) if e.code == 403))
    }
}

/// `namespace/name`, or `name` for cluster-scoped objects.
fn display_name(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

async fn bounded<T>(
    kind: &str,
    name: &str,
    write: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, ApplyError> {
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(ApplyError::Api {
            kind: kind.to_string(),
            name: name.to_string(),
            source: Box::new(source),
        }),
        Err(_) => Err(ApplyError::Timeout {
            kind: kind.to_string(),
            name: name.to_string(),
            seconds: WRITE_TIMEOUT.as_secs(),
        }),
    }
}

/// Applies a built object given as JSON (apiVersion, kind, metadata.name, and
/// metadata.namespace for namespaced kinds).
pub async fn apply_json(client: &Client, object: &Value) -> Result<DynamicObject, ApplyError> {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    let kind = text("/kind").unwrap_or("object").to_string();
    let name = text("/metadata/name").unwrap_or_default().to_string();
    let invalid = |reason: &str| ApplyError::Invalid {
        kind: kind.clone(),
        name: name.clone(),
        reason: reason.to_string(),
    };
    let api_version = text("/apiVersion").ok_or_else(|| invalid("it has no apiVersion"))?;
    if name.is_empty() {
        return Err(invalid("it has no metadata.name"));
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
    let namespace = text("/metadata/namespace");
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let params = PatchParams::apply(CONTROLLER_FIELD_MANAGER).force();
    let shown = display_name(namespace, &name);
    bounded(
        &kind,
        &shown,
        api.patch(&name, &params, &Patch::Apply(object)),
    )
    .await
}

/// Applies a typed object (through its JSON, which carries apiVersion and kind, so one
/// path serves namespaced and cluster-scoped kinds).
pub async fn apply_typed<K>(client: &Client, object: &K) -> Result<K, ApplyError>
where
    K: Resource + Serialize + DeserializeOwned,
{
    let invalid = |reason: String| ApplyError::Invalid {
        kind: std::any::type_name::<K>()
            .rsplit("::")
            .next()
            .unwrap_or("object")
            .to_string(),
        name: object.meta().name.clone().unwrap_or_default(),
        reason,
    };
    let json = serde_json::to_value(object).map_err(|e| invalid(e.to_string()))?;
    let applied = apply_json(client, &json).await?;
    let back = serde_json::to_value(applied).map_err(|e| invalid(e.to_string()))?;
    serde_json::from_value(back)
        .map_err(|e| invalid(format!("the applied object reads back wrong: {e}")))
}

/// The labels that mark a namespace as a cluster's objects namespace.
pub fn namespace_labels(
    cluster_namespace: &str,
    cluster: &str,
    objects_namespace: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            WORKLOAD_CLUSTER_NAMESPACE_LABEL.to_string(),
            cluster_namespace.to_string(),
        ),
        (WORKLOAD_CLUSTER_LABEL.to_string(), cluster.to_string()),
        (
            OBJECTS_NAMESPACE_LABEL.to_string(),
            objects_namespace.to_string(),
        ),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
    ])
}

/// Whether an existing namespace is this cluster's (by its labels).
pub fn namespace_belongs_to(namespace: &Namespace, cluster_namespace: &str, cluster: &str) -> bool {
    let labels = namespace.labels();
    labels.get(WORKLOAD_CLUSTER_NAMESPACE_LABEL).map(String::as_str) == Some(cluster_namespace)
        && labels.get(WORKLOAD_CLUSTER_LABEL).map(String::as_str) == Some(cluster)
}

/// Creates or updates the cluster's objects namespace; returns it (with its UID).
pub async fn ensure_namespace(
    client: &Client,
    cluster_namespace: &str,
    cluster: &str,
    objects_namespace: &str,
) -> Result<Namespace, ApplyError> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(objects_namespace.to_string()),
            labels: Some(namespace_labels(
                cluster_namespace,
                cluster,
                objects_namespace,
            )),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    apply_typed(client, &namespace).await
}

/// Makes sure a namespace exists (a provider's, for its identity secrets), without
/// taking over any of its fields when it does.
pub async fn ensure_plain_namespace(client: &Client, name: &str) -> Result<(), ApplyError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let found = bounded("Namespace", name, api.get_opt(name)).await?;
    if found.is_some() {
        return Ok(());
    }
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match bounded(
        "Namespace",
        name,
        api.create(&Default::default(), &namespace),
    )
    .await
    {
        Ok(_) => Ok(()),
        // Created meanwhile by someone else: what we wanted.
        Err(ApplyError::Api { source, .. }) if matches!(*source, kube::Error::Api(ref e) if e.code == 409) => {
            Ok(())
        }
        Err(e) => Err(e),
    }
}
