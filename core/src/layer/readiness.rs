//! When an applied object is ready, read from the object as the cluster returns it.
//!
//! - Deployment: the controller has seen the latest spec (`observedGeneration >=
//!   generation`), every replica is updated and available, condition `Available=True`.
//! - DaemonSet: seen, and on every eligible node a pod is updated and ready
//!   (`updatedNumberScheduled` and `numberReady` equal `desiredNumberScheduled`).
//! - StatefulSet: seen, every replica ready, and updated (the replicas above a rolling
//!   update's `partition`).
//! - Job: condition `Complete=True`; `Failed=True` is a failure, not a wait.
//! - CustomResourceDefinition: condition `Established=True`.
//! - APIService: condition `Available=True`.
//! - cert-manager's Certificate, Issuer and ClusterIssuer: condition `Ready=True` (a
//!   provider's webhook serves with the Certificate's Secret).
//! - Any other kind is ready once it exists.
//!
//! A DaemonSet or StatefulSet with the `OnDelete` update strategy updates no pod by itself,
//! so only its readiness is waited for.

use serde_json::Value;

use crate::layer::object_key::{describe_object, split_api_version};

/// Whether an object is ready, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet: waiting may help. The reason names the object and what is missing.
    NotReady {
        reason: String,
    },
    /// Never will be without a change (a failed Job).
    Failed {
        reason: String,
    },
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

/// The readiness of `object`.
pub fn readiness(object: &Value) -> Readiness {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let group = split_api_version(api_version).map_or("", |(group, _)| group);
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let subject = describe_object(object);
    let result = match (group, kind) {
        ("apps" | "extensions", "Deployment") => deployment(object),
        ("apps" | "extensions", "DaemonSet") => daemon_set(object),
        ("apps", "StatefulSet") => stateful_set(object),
        ("batch", "Job") => return job(object, &subject),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            condition_true(object, "Established", Some("NamesAccepted"))
        }
        ("apiregistration.k8s.io", "APIService") => condition_true(object, "Available", None),
        ("cert-manager.io", "Certificate" | "Issuer" | "ClusterIssuer") => {
            condition_true(object, "Ready", None)
        }
        _ => Ok(()),
    };
    match result {
        Ok(()) => Readiness::Ready,
        Err(missing) => Readiness::NotReady {
            reason: format!("{subject}: {missing}"),
        },
    }
}

/// What is missing, as the end of a sentence after the object's name.
type Check = Result<(), String>;

fn deployment(object: &Value) -> Check {
    let status = status(object)?;
    observed(object, status)?;
    let replicas = int(object, &["spec", "replicas"]).unwrap_or(1);
    let updated = int(status, &["updatedReplicas"]).unwrap_or(0);
    if updated != replicas {
        return Err(format!("{updated} of {replicas} replicas updated"));
    }
    let available = int(status, &["availableReplicas"]).unwrap_or(0);
    if available < replicas {
        return Err(format!("{available} of {replicas} replicas available"));
    }
    condition_true(object, "Available", None)
}

fn daemon_set(object: &Value) -> Check {
    let status = status(object)?;
    observed(object, status)?;
    let desired = int(status, &["desiredNumberScheduled"]).unwrap_or(0);
    if !on_delete(object) {
        let updated = int(status, &["updatedNumberScheduled"]).unwrap_or(0);
        if updated != desired {
            return Err(format!("{updated} of {desired} scheduled pods updated"));
        }
    }
    let ready = int(status, &["numberReady"]).unwrap_or(0);
    if ready != desired {
        return Err(format!("{ready} of {desired} scheduled pods ready"));
    }
    Ok(())
}

fn stateful_set(object: &Value) -> Check {
    let status = status(object)?;
    observed(object, status)?;
    let replicas = int(object, &["spec", "replicas"]).unwrap_or(1);
    let ready = int(status, &["readyReplicas"]).unwrap_or(0);
    if ready != replicas {
        return Err(format!("{ready} of {replicas} replicas ready"));
    }
    if !on_delete(object) {
        let partition = int(
            object,
            &["spec", "updateStrategy", "rollingUpdate", "partition"],
        )
        .unwrap_or(0);
        let expected = (replicas - partition).max(0);
        let updated = int(status, &["updatedReplicas"]).unwrap_or(0);
        if updated < expected {
            return Err(format!("{updated} of {expected} replicas updated"));
        }
    }
    Ok(())
}

fn job(object: &Value, subject: &str) -> Readiness {
    if let Some(failed) = condition(object, "Failed").filter(|c| c.status == "True") {
        return Readiness::Failed {
            reason: format!("{subject}: failed{}", failed.explained()),
        };
    }
    if condition(object, "Complete").is_some_and(|c| c.status == "True") {
        return Readiness::Ready;
    }
    let succeeded = int(object, &["status", "succeeded"]).unwrap_or(0);
    let completions = int(object, &["spec", "completions"]).unwrap_or(1);
    Readiness::NotReady {
        reason: format!(
            "{subject}: not complete yet ({succeeded} of {completions} completions succeeded)"
        ),
    }
}

fn status(object: &Value) -> Result<&Value, String> {
    object
        .get("status")
        .filter(|status| status.is_object())
        .ok_or_else(|| "no status yet".to_string())
}

/// Whether the controller has seen the object's latest spec.
fn observed(object: &Value, status: &Value) -> Check {
    let Some(generation) = int(object, &["metadata", "generation"]) else {
        return Ok(());
    };
    match int(status, &["observedGeneration"]) {
        Some(seen) if seen >= generation => Ok(()),
        Some(seen) => Err(format!(
            "generation {generation} not yet observed by its controller (observed {seen})"
        )),
        None => Err(format!(
            "generation {generation} not yet observed by its controller"
        )),
    }
}

fn on_delete(object: &Value) -> bool {
    object
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        == Some("OnDelete")
}

fn int(value: &Value, path: &[&str]) -> Option<i64> {
    path.iter()
        .try_fold(value, |value, key| value.get(key))?
        .as_i64()
}

struct Condition<'v> {
    status: &'v str,
    reason: Option<&'v str>,
    message: Option<&'v str>,
}

impl Condition<'_> {
    /// `: Reason: message`, or nothing when the condition says nothing.
    fn explained(&self) -> String {
        let parts: Vec<&str> = [self.reason, self.message]
            .into_iter()
            .flatten()
            .filter(|text| !text.is_empty())
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!(": {}", parts.join(": "))
        }
    }
}

fn condition<'v>(object: &'v Value, kind: &str) -> Option<Condition<'v>> {
    let found = object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))?;
    let text = |field| found.get(field).and_then(Value::as_str);
    Some(Condition {
        status: text("status").unwrap_or("Unknown"),
        reason: text("reason"),
        message: text("message"),
    })
}

/// Condition `kind` is `True`; otherwise the reason names it, and `blocking` when that
/// condition is `False` (a CRD whose names are refused never becomes Established).
fn condition_true(object: &Value, kind: &str, blocking: Option<&str>) -> Check {
    let found = condition(object, kind);
    if found.as_ref().is_some_and(|c| c.status == "True") {
        return Ok(());
    }
    let blocked = blocking.and_then(|other| {
        condition(object, other)
            .filter(|c| c.status == "False")
            .map(|c| format!("; condition {other} is False{}", c.explained()))
    });
    let blocked = blocked.unwrap_or_default();
    Err(match found {
        Some(c) => format!("condition {kind} is {}{}{blocked}", c.status, c.explained()),
        None => format!("no {kind} condition yet{blocked}"),
    })
}

#[cfg(test)]
#[path = "readiness_tests.rs"]
mod readiness_tests;
