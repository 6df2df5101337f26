//! The objects of one kind (in one namespace, or cluster-scoped), every call bounded and
//! named.

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{KubeWriter, Operation, Target, WriteError};

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The deletion was accepted (the object may linger while its finalizers run).
    Requested,
    /// There was nothing to delete.
    AlreadyGone,
}

/// An `Api` of one kind through a [`KubeWriter`].
pub struct BoundedApi<K> {
    writer: KubeWriter,
    api: Api<K>,
    kind: String,
    namespace: Option<String>,
}

impl<K> BoundedApi<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    pub(super) fn new(
        writer: KubeWriter,
        api: Api<K>,
        kind: String,
        namespace: Option<&str>,
    ) -> BoundedApi<K> {
        BoundedApi {
            writer,
            api,
            kind,
            namespace: namespace.map(String::from),
        }
    }

    /// The object `name` of this kind, as errors name it.
    pub fn target(&self, name: &str) -> Target {
        Target::object(&self.kind, self.namespace.as_deref(), name)
    }

    async fn call<T>(
        &self,
        operation: Operation,
        name: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, WriteError> {
        self.writer
            .bounded(operation, self.target(name), call)
            .await
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.writer.field_manager().to_string()),
            ..PostParams::default()
        }
    }

    fn patch_params(&self) -> PatchParams {
        self.writer.patch_params()
    }

    /// The object, or None when there is none (404).
    pub async fn get(&self, name: &str) -> Result<Option<K>, WriteError> {
        self.call(Operation::Get, name, self.api.get_opt(name))
            .await
    }

    /// Every object of the kind here that `params` selects.
    pub async fn list(&self, params: &ListParams) -> Result<Vec<K>, WriteError> {
        let target = Target::kind(&self.kind, self.namespace.as_deref());
        let list = self
            .writer
            .bounded(Operation::List, target, self.api.list(params))
            .await?;
        Ok(list.items)
    }

    /// The metadata of every object of the kind here that `params` selects: a list that
    /// does not carry the objects' contents.
    pub async fn list_metadata(&self, params: &ListParams) -> Result<Vec<ObjectMeta>, WriteError> {
        let target = Target::kind(&self.kind, self.namespace.as_deref());
        let list = self
            .writer
            .bounded(Operation::List, target, self.api.list_metadata(params))
            .await?;
        Ok(list.items.into_iter().map(|item| item.metadata).collect())
    }

    /// Creates `object`; a conflict (409) is an error.
    pub async fn create(&self, object: &K) -> Result<K, WriteError> {
        let name = object.meta().name.clone().unwrap_or_default();
        let params = self.post_params();
        self.call(Operation::Create, &name, self.api.create(&params, object))
            .await
    }

    /// Creates `object`, or, when one of its name exists already (made meanwhile by another
    /// writer, or by an earlier run), returns that one as it is.
    pub async fn create_or_adopt(&self, object: &K) -> Result<K, WriteError> {
        let name = object.meta().name.clone().unwrap_or_default();
        match self.create(object).await {
            Err(e) if e.is_conflict() => {
                self.call(Operation::Get, &name, self.api.get(&name)).await
            }
            other => other,
        }
    }

    /// Replaces `object` (whose resourceVersion, when set, must still be the server's).
    pub async fn replace(&self, object: &K) -> Result<K, WriteError> {
        let name = object.meta().name.clone().unwrap_or_default();
        let params = self.post_params();
        self.call(
            Operation::Replace,
            &name,
            self.api.replace(&name, &params, object),
        )
        .await
    }

    /// Server-side applies (forced) `status` (a partial object with `apiVersion`, `kind` and
    /// `status`) to the status subresource of `name`.
    pub async fn apply_status(&self, name: &str, status: &Value) -> Result<K, WriteError> {
        let params = PatchParams::apply(self.writer.field_manager()).force();
        self.call(
            Operation::ApplyStatus,
            name,
            self.api.patch_status(name, &params, &Patch::Apply(status)),
        )
        .await
    }

    /// A JSON merge patch of `name` (a partial object, or any value that serializes to one).
    pub async fn merge_patch<P>(&self, name: &str, patch: &P) -> Result<K, WriteError>
    where
        P: Serialize + Debug,
    {
        let params = self.patch_params();
        self.call(
            Operation::MergePatch,
            name,
            self.api.patch(name, &params, &Patch::Merge(patch)),
        )
        .await
    }

    /// A JSON merge patch of the status subresource of `name`.
    pub async fn merge_patch_status<P>(&self, name: &str, patch: &P) -> Result<K, WriteError>
    where
        P: Serialize + Debug,
    {
        let params = self.patch_params();
        self.call(
            Operation::MergePatchStatus,
            name,
            self.api.patch_status(name, &params, &Patch::Merge(patch)),
        )
        .await
    }

    /// A JSON patch (RFC 6902, given as its JSON array) of `name`: with a `test` of the
    /// resourceVersion first, a write guarded by the version it was decided on.
    pub async fn json_patch(&self, name: &str, operations: &Value) -> Result<K, WriteError> {
        let patch = self.json_patch_of(name, Operation::JsonPatch, operations)?;
        let params = self.patch_params();
        self.call(
            Operation::JsonPatch,
            name,
            self.api.patch(name, &params, &Patch::<()>::Json(patch)),
        )
        .await
    }

    /// A JSON patch of the status subresource of `name` (with a `test`, a write guarded by
    /// what it was decided on).
    pub async fn json_patch_status(&self, name: &str, operations: &Value) -> Result<K, WriteError> {
        let patch = self.json_patch_of(name, Operation::JsonPatchStatus, operations)?;
        let params = self.patch_params();
        self.call(
            Operation::JsonPatchStatus,
            name,
            self.api
                .patch_status(name, &params, &Patch::<()>::Json(patch)),
        )
        .await
    }

    fn json_patch_of(
        &self,
        name: &str,
        operation: Operation,
        operations: &Value,
    ) -> Result<json_patch::Patch, WriteError> {
        serde_json::from_value(operations.clone()).map_err(|e| WriteError::Invalid {
            operation,
            target: Box::new(self.target(name)),
            reason: format!("the patch is not a JSON patch: {e}"),
        })
    }

    /// Deletes `name` (its dependents in the background); an object already gone (404) is
    /// what was wanted.
    pub async fn delete(&self, name: &str) -> Result<Deleted, WriteError> {
        let params = DeleteParams::background();
        match self
            .call(Operation::Delete, name, self.api.delete(name, &params))
            .await
        {
            Ok(_) => Ok(Deleted::Requested),
            Err(e) if e.is_gone() => Ok(Deleted::AlreadyGone),
            Err(e) => Err(e),
        }
    }
}
