//! The simulator's access to one apiserver: dynamic objects as JSON, server-side apply
//! with one field manager, status through the status subresource, and writes skipped when
//! they would change nothing (so a converged cluster sees no writes at all).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::SimError;
use super::kinds::Kind;
use super::objects::{contains, finalizers, name, namespace};

pub const FIELD_MANAGER: &str = "strata.dev/sim-cloud";

/// One apiserver, seen through dynamic kinds.
#[derive(Clone)]
pub struct Kube {
    pub client: Client,
    /// Writes made so far, so that the pass loop can tell an idle pass from a busy one.
    writes: Arc<AtomicU64>,
}

fn api_error(
    action: &'static str,
    kind: &Kind,
    ns: &str,
    object: &str,
) -> impl FnOnce(kube::Error) -> SimError {
    let (kind, ns, object) = (kind.kind.to_string(), ns.to_string(), object.to_string());
    move |source| SimError::Api {
        action,
        kind,
        object: format!("{ns}/{object}"),
        source: Box::new(source),
    }
}

fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

impl Kube {
    pub fn new(client: Client) -> Kube {
        Kube {
            client,
            writes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many writes this apiserver got from the simulator so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn api(&self, kind: &Kind, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &kind.api_resource())
    }

    fn api_all(&self, kind: &Kind) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), &kind.api_resource())
    }

    /// Every object of `kind` (in `ns`, or everywhere); an uninstalled kind has none.
    pub async fn list(&self, kind: &Kind, ns: Option<&str>) -> Result<Vec<Value>, SimError> {
        let api = match ns {
            Some(ns) => self.api(kind, ns),
            None => self.api_all(kind),
        };
        match api.list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .into_iter()
                .map(|item| {
                    let mut value = serde_json::to_value(item).map_err(|e| SimError::Invalid {
                        what: format!("a listed {}", kind.kind),
                        reason: e.to_string(),
                    })?;
                    // Lists leave the type out of their items; the writers need it back.
                    value["apiVersion"] = json!(kind.api_version());
                    value["kind"] = json!(kind.kind);
                    Ok(value)
                })
                .collect(),
            Err(e) if is_status(&e, 404) => Ok(Vec::new()),
            Err(source) => Err(SimError::List {
                kind: kind.kind.into(),
                source: Box::new(source),
            }),
        }
    }

    pub async fn get(
        &self,
        kind: &Kind,
        ns: &str,
        object: &str,
    ) -> Result<Option<Value>, SimError> {
        let found = self
            .api(kind, ns)
            .get_opt(object)
            .await
            .map_err(api_error("read", kind, ns, object))?;
        found
            .map(|o| {
                serde_json::to_value(o).map_err(|e| SimError::Invalid {
                    what: format!("{} {ns}/{object}", kind.kind),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    /// Creates an object; one that already exists is left as it is (a previous pass made
    /// it), and its current state is returned.
    pub async fn create(&self, kind: &Kind, object: Value) -> Result<Value, SimError> {
        let (ns, object_name) = (namespace(&object).to_string(), name(&object).to_string());
        let dynamic: DynamicObject =
            serde_json::from_value(object).map_err(|e| SimError::Invalid {
                what: format!("the new {} {ns}/{object_name}", kind.kind),
                reason: e.to_string(),
            })?;
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let created = match self.api(kind, &ns).create(&params, &dynamic).await {
            Ok(created) => {
                self.wrote();
                created
            }
            Err(e) if is_status(&e, 409) => self
                .api(kind, &ns)
                .get(&object_name)
                .await
                .map_err(api_error("read", kind, &ns, &object_name))?,
            Err(e) => return Err(api_error("create", kind, &ns, &object_name)(e)),
        };
        serde_json::to_value(created).map_err(|e| SimError::Invalid {
            what: format!("the created {} {ns}/{object_name}", kind.kind),
            reason: e.to_string(),
        })
    }

    /// Merge-patches `fields` into `object` (spec or metadata touches: an endpoint, a
    /// provider ID, an annotation). These are partial by nature, and server-side apply
    /// removes whatever a manager stops sending, so a later touch of another field would
    /// undo an earlier one; a merge patch under the same field manager does not.
    pub async fn merge(&self, kind: &Kind, object: &Value, fields: Value) -> Result<(), SimError> {
        let (ns, object_name) = (namespace(object), name(object));
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        self.api(kind, ns)
            .patch(object_name, &params, &Patch::Merge(&fields))
            .await
            .map_err(api_error("patch", kind, ns, object_name))?;
        self.wrote();
        Ok(())
    }

    /// [`Kube::merge`] when `object` does not already hold `fields`; true when it wrote.
    pub async fn merge_if_changed(
        &self,
        kind: &Kind,
        object: &Value,
        fields: Value,
    ) -> Result<bool, SimError> {
        if contains(object, &fields) {
            return Ok(false);
        }
        self.merge(kind, object, fields).await?;
        Ok(true)
    }

    /// Server-side applies `status` through the status subresource when it differs from
    /// the object's; true when it wrote. Each kind's status has one writer in the
    /// simulator, which always sends every field it owns.
    pub async fn apply_status(
        &self,
        kind: &Kind,
        object: &Value,
        status: Value,
    ) -> Result<bool, SimError> {
        if object
            .get("status")
            .is_some_and(|have| contains(have, &status))
        {
            return Ok(false);
        }
        let (ns, object_name) = (namespace(object), name(object));
        let patch = json!({
            "apiVersion": kind.api_version(),
            "kind": kind.kind,
            "metadata": { "name": object_name, "namespace": ns },
            "status": status,
        });
        match self
            .api(kind, ns)
            .patch_status(
                object_name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => {
                self.wrote();
                Ok(true)
            }
            // Deleted since the pass listed it: nothing left to report on.
            Err(e) if is_status(&e, 404) => Ok(false),
            Err(e) => Err(api_error("update the status of", kind, ns, object_name)(e)),
        }
    }

    /// Sets the finalizer list, guarded by the resource version the decision was made on:
    /// finalizers are shared with other controllers, so a blind write could drop theirs.
    /// A conflict is not an error; the next pass decides again.
    pub async fn set_finalizers(
        &self,
        kind: &Kind,
        object: &Value,
        wanted: Vec<String>,
    ) -> Result<(), SimError> {
        if finalizers(object) == wanted {
            return Ok(());
        }
        self.guarded_merge(
            kind,
            object,
            json!({ "metadata": { "finalizers": wanted } }),
        )
        .await
    }

    /// A merge patch that applies only to the version of `object` it was computed from
    /// (for lists, which a merge patch replaces whole). A conflict is not an error.
    pub async fn guarded_merge(
        &self,
        kind: &Kind,
        object: &Value,
        mut patch: Value,
    ) -> Result<(), SimError> {
        let (ns, object_name) = (namespace(object), name(object));
        patch["metadata"]["resourceVersion"] = object
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        match self
            .api(kind, ns)
            .patch(
                object_name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                self.wrote();
                Ok(())
            }
            Err(e) if is_status(&e, 409) || is_status(&e, 404) => Ok(()),
            Err(e) => Err(api_error("patch", kind, ns, object_name)(e)),
        }
    }

    /// Deletes an object (in the background; owner references clean up what it owns).
    /// Server-side applies a Secret (bootstrap data, the cluster's `<cluster>-*` secrets).
    pub async fn apply_secret(
        &self,
        namespace: &str,
        secret: &k8s_openapi::api::core::v1::Secret,
    ) -> Result<(), SimError> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let api: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.client.clone(), namespace);
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(secret),
        )
        .await
        .map(|_| self.wrote())
        .map_err(|source| SimError::Api {
            action: "apply",
            kind: "Secret".into(),
            object: format!("{namespace}/{name}"),
            source: Box::new(source),
        })
    }

    pub async fn delete(&self, kind: &Kind, ns: &str, object: &str) -> Result<(), SimError> {
        match self
            .api(kind, ns)
            .delete(object, &DeleteParams::background())
            .await
        {
            Ok(_) => {
                self.wrote();
                Ok(())
            }
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(api_error("delete", kind, ns, object)(e)),
        }
    }
}

/// Deep-merges `from` into `into` (objects merged key by key, anything else replaced).
pub fn merge_into(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (k, v) in from {
                merge_into(into.entry(k).or_insert(Value::Null), v);
            }
        }
        (into, from) => *into = from,
    }
}
