//! The one way Strata's controller and agent call a Kubernetes API server (an adapter: this
//! module does I/O). Every call is bounded by the writer's timeout, so a hung API server
//! cannot hold a reconcile or an agent forever; every write is made under the writer's field
//! manager; and every failure is one [`WriteError`] that names the operation, the object and
//! the cause, with the answers callers decide on (conflict, forbidden, gone) classified once.
//!
//! Reads go through it too: a read that never answers holds the caller as long as a write.

mod bounded_api;
mod error;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use bounded_api::{BoundedApi, Deleted};
pub use error::{Operation, Target, WriteError};

/// A client with a field manager and a bound on every call.
#[derive(Clone)]
pub struct KubeWriter {
    client: Client,
    field_manager: Arc<str>,
    timeout: Duration,
}

impl std::fmt::Debug for KubeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeWriter")
            .field("field_manager", &self.field_manager)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl KubeWriter {
    pub fn new(client: Client, field_manager: &str, timeout: Duration) -> KubeWriter {
        KubeWriter {
            client,
            field_manager: field_manager.into(),
            timeout,
        }
    }

    /// The client, for what the writer does not do (watches).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn field_manager(&self) -> &str {
        &self.field_manager
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The objects of a namespaced kind in `namespace`.
    pub fn namespaced<K>(&self, namespace: &str) -> BoundedApi<K>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        BoundedApi::new(
            self.clone(),
            Api::namespaced(self.client.clone(), namespace),
            kind,
            Some(namespace),
        )
    }

    /// The objects of a namespaced kind in every namespace (to list them).
    pub fn all_namespaces<K>(&self) -> BoundedApi<K>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        BoundedApi::new(self.clone(), Api::all(self.client.clone()), kind, None)
    }

    /// The objects of a cluster-scoped kind.
    pub fn cluster_scoped<K>(&self) -> BoundedApi<K>
    where
        K: Resource<Scope = ClusterResourceScope>
            + Clone
            + DeserializeOwned
            + Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        BoundedApi::new(self.clone(), Api::all(self.client.clone()), kind, None)
    }

    /// The objects of a kind known at run time: in `namespace`, or cluster-scoped (None).
    pub fn dynamic(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
    ) -> BoundedApi<DynamicObject> {
        let api = match namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, resource),
            None => Api::all_with(self.client.clone(), resource),
        };
        BoundedApi::new(self.clone(), api, resource.kind.clone(), namespace)
    }

    /// Server-side applies (forced) a typed object where its metadata says it goes, and
    /// returns it as the API server has it now.
    pub async fn apply<K>(&self, object: &K) -> Result<K, WriteError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let meta = object.meta();
        let target = Target::object(
            K::kind(&()),
            meta.namespace.as_deref(),
            meta.name.clone().unwrap_or_default(),
        );
        let invalid = |reason: String| WriteError::Invalid {
            operation: Operation::Apply,
            target: Box::new(target.clone()),
            reason,
        };
        let json = serde_json::to_value(object)
            .map_err(|e| invalid(format!("it does not serialize: {e}")))?;
        let applied = self
            .apply_at(&ApiResource::erase::<K>(&()), &target, &json)
            .await?;
        let back = serde_json::to_value(applied)
            .map_err(|e| invalid(format!("the applied object does not serialize: {e}")))?;
        serde_json::from_value(back)
            .map_err(|e| invalid(format!("the applied object reads back wrong: {e}")))
    }

    /// Server-side applies (forced) an object given as JSON: its `apiVersion`, `kind`,
    /// `metadata.name`, and `metadata.namespace` for namespaced kinds say where it goes.
    pub async fn apply_json(&self, object: &Value) -> Result<DynamicObject, WriteError> {
        let (resource, target) = json_address(object)?;
        self.apply_at(&resource, &target, object).await
    }

    async fn apply_at(
        &self,
        resource: &ApiResource,
        target: &Target,
        object: &Value,
    ) -> Result<DynamicObject, WriteError> {
        let Target::Object {
            namespace, name, ..
        } = target
        else {
            return Err(WriteError::Invalid {
                operation: Operation::Apply,
                target: Box::new(target.clone()),
                reason: "only one object can be applied at a time".into(),
            });
        };
        let api: Api<DynamicObject> = match namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, resource),
            None => Api::all_with(self.client.clone(), resource),
        };
        let params = PatchParams::apply(&self.field_manager).force();
        self.bounded(
            Operation::Apply,
            target.clone(),
            api.patch(name, &params, &Patch::Apply(object)),
        )
        .await
    }

    /// Runs `call` (a call of the API server the writer has no method for) within the
    /// writer's timeout, naming its failure `operation` on `target`.
    pub async fn bounded<T>(
        &self,
        operation: Operation,
        target: Target,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, WriteError> {
        bound(self.timeout, operation, target, call).await
    }

    fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.field_manager.to_string()),
            ..PatchParams::default()
        }
    }
}

/// `call` within `timeout`, its failure named.
async fn bound<T>(
    timeout: Duration,
    operation: Operation,
    target: Target,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, WriteError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(WriteError::from_kube(operation, target, error)),
        Err(_) => Err(WriteError::TimedOut {
            operation,
            target: Box::new(target),
            timeout,
        }),
    }
}

/// Where a JSON object goes: its resource (the plural guessed from the kind, as kube does)
/// and its name.
fn json_address(object: &Value) -> Result<(ApiResource, Target), WriteError> {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    let kind = text("/kind").unwrap_or("object");
    let name = text("/metadata/name").unwrap_or_default();
    let namespace = text("/metadata/namespace");
    let target = Target::object(kind, namespace, name);
    let invalid = |reason: &str| WriteError::Invalid {
        operation: Operation::Apply,
        target: Box::new(target.clone()),
        reason: reason.to_string(),
    };
    if text("/kind").is_none() {
        return Err(invalid("it has no kind"));
    }
    let api_version = text("/apiVersion").ok_or_else(|| invalid("it has no apiVersion"))?;
    if name.is_empty() {
        return Err(invalid("it has no metadata.name"));
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Ok((resource, target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_json_object_goes_where_its_api_version_kind_and_metadata_say() {
        let (resource, target) = json_address(&json!({
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "Cluster",
            "metadata": { "name": "edge-1", "namespace": "strata-wc-a" },
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resource.group, "cluster.x-k8s.io");
        assert_eq!(resource.version, "v1beta2");
        assert_eq!(resource.plural, "clusters");
        assert_eq!(
            target,
            Target::object("Cluster", Some("strata-wc-a"), "edge-1")
        );
        let (resource, target) = json_address(&json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": "strata-wc-a" },
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (resource.group.as_str(), resource.plural.as_str()),
            ("", "namespaces")
        );
        assert_eq!(target, Target::object("Namespace", None, "strata-wc-a"));
    }

    #[test]
    fn a_json_object_without_its_address_is_refused_by_name() {
        let cases = [
            (
                json!({ "kind": "Secret", "metadata": { "name": "s" } }),
                "it has no apiVersion",
            ),
            (
                json!({ "apiVersion": "v1", "kind": "Secret", "metadata": {} }),
                "it has no metadata.name",
            ),
            (
                json!({ "apiVersion": "v1", "metadata": { "name": "s" } }),
                "it has no kind",
            ),
        ];
        for (object, reason) in cases {
            match json_address(&object) {
                Err(WriteError::Invalid {
                    reason: found,
                    operation: Operation::Apply,
                    ..
                }) => assert_eq!(found, reason),
                other => panic!("{object}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_call_without_an_answer_ends_at_the_timeout_and_says_so() {
        let target = Target::object("Secret", Some("strata-system"), "strata-management");
        let never = std::future::pending::<Result<(), kube::Error>>();
        let error = bound(
            Duration::from_millis(10),
            Operation::Get,
            target.clone(),
            never,
        )
        .await
        .err();
        match error {
            Some(WriteError::TimedOut {
                operation,
                target: found,
                timeout,
            }) => {
                assert_eq!(operation, Operation::Get);
                assert_eq!(*found, target);
                assert_eq!(timeout, Duration::from_millis(10));
            }
            other => panic!("{other:?}"),
        }
        let answered = bound(Duration::from_secs(5), Operation::Get, target, async {
            Ok(7)
        });
        assert_eq!(answered.await.ok(), Some(7));
    }
}
