//! CRDs read for what the agent needs of them, never whole. A CRD's schemas, and its
//! `managedFields` that mirror them, are nearly all of its size: Cluster API's run to
//! megabytes. Read whole as one list, they were the agent's highest heap (13 MiB, against
//! 1 MiB in steady state), and a heap that has grown stays grown. Here the parser skips
//! those fields as it reads: only the outline below is ever held.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Resource;
use kube::api::{GetParams, ListParams};
use kube::core::{ObjectList, Request};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strata_shared::kube_writer::{KubeWriter, Operation, Target, WriteError};

/// What a move and the provider install read of a CRD: its name and labels, and the kind it
/// serves in which versions.
///
/// A field missing is read as empty, as k8s-openapi reads a whole CRD: what is made of an
/// outline is what was made of the whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CrdOutline {
    pub metadata: OutlineMeta,
    pub spec: OutlineSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutlineMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutlineSpec {
    pub group: String,
    pub names: OutlineNames,
    pub scope: String,
    pub versions: Vec<OutlineVersion>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutlineNames {
    pub kind: String,
    pub plural: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutlineVersion {
    pub name: String,
    pub served: bool,
    pub storage: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subresources: Option<Value>,
}

impl CrdOutline {
    /// The outline as the JSON of a CRD that has only these fields.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Whether the CRD's `Established` condition is true; nothing else of it is read.
#[derive(Deserialize)]
struct EstablishedOnly {
    status: Option<ConditionsOnly>,
}

#[derive(Deserialize)]
struct ConditionsOnly {
    #[serde(default)]
    conditions: Vec<Condition>,
}

#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
}

impl EstablishedOnly {
    fn is_established(&self) -> bool {
        self.status.as_ref().is_some_and(|status| {
            status
                .conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
    }
}

const KIND: &str = "CustomResourceDefinition";

fn path() -> String {
    CustomResourceDefinition::url_path(&(), None)
}

/// The outlines of the CRDs `params` selects.
pub async fn list(writer: &KubeWriter, params: &ListParams) -> Result<Vec<CrdOutline>, WriteError> {
    let call = async {
        let request = Request::new(path())
            .list(params)
            .map_err(kube::Error::BuildRequest)?;
        writer
            .client()
            .request::<ObjectList<CrdOutline>>(request)
            .await
    };
    let list = writer
        .bounded(Operation::List, Target::kind(KIND, None), call)
        .await?;
    Ok(list.items)
}

/// Whether the CRD `name` is served: false while it is not, and when it cannot be read.
pub async fn is_established(writer: &KubeWriter, name: &str) -> bool {
    let call = async {
        let request = Request::new(path())
            .get(name, &GetParams::default())
            .map_err(kube::Error::BuildRequest)?;
        writer.client().request::<EstablishedOnly>(request).await
    };
    let found = writer
        .bounded(Operation::Get, Target::object(KIND, None, name), call)
        .await;
    found.is_ok_and(|crd| crd.is_established())
}

#[cfg(test)]
#[path = "crd_outline_tests.rs"]
mod crd_outline_tests;
