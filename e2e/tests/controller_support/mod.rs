//! What the controller tests share: samples, waiting for a phase, reading conditions, and
//! what a pivot left in either cluster.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use strata_e2e::cloud_sim::workload;
use strata_e2e::management::{ControllerProcess, ManagementEnv, apply, read_documents, repo_root};
use strata_shared::cluster::{ClusterPhase, WorkloadCluster};
use strata_shared::contracts::names::{AGENT_NAMESPACE, objects_namespace, pivot_journal_name};
use strata_shared::pivot::journal::MoveJournal;

/// Stops the process-wide workload control planes when the test ends, passed or not.
pub struct StopWorkloads;

impl Drop for StopWorkloads {
    fn drop(&mut self) {
        workload::stop_all();
    }
}

pub fn sample(path: &str) -> Vec<Value> {
    read_documents(&repo_root().join("manifests/samples").join(path)).unwrap()
}

pub fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

pub async fn get_dynamic(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Option<DynamicObject> {
    let resource = resource(api_version, kind);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.get_opt(name).await.unwrap()
}

/// Applies a sample's documents into `namespace` (overriding theirs).
pub async fn apply_sample(client: &Client, path: &str, namespace: &str, edit: impl Fn(&mut Value)) {
    for mut document in sample(path) {
        document["metadata"]["namespace"] = json!(namespace);
        edit(&mut document);
        apply(client, &document).await.unwrap();
    }
}

pub async fn cluster(client: &Client, namespace: &str, name: &str) -> Option<WorkloadCluster> {
    Api::<WorkloadCluster>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .unwrap()
}

pub fn describe(cluster: Option<&WorkloadCluster>) -> String {
    match cluster.and_then(|c| c.status.as_ref()) {
        None => "no status".into(),
        Some(s) => {
            let conditions: Vec<String> = s
                .conditions
                .iter()
                .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
                .collect();
            format!("phase {:?}; {}", s.phase, conditions.join(" | "))
        }
    }
}

/// Waits for a phase, running the cluster's agents as processes once its workload
/// control plane exists. Fails with the cluster's conditions and the controller's log.
pub async fn wait_phase(
    env: &ManagementEnv,
    controller: &ControllerProcess,
    namespace: &str,
    name: &str,
    phase: ClusterPhase,
    timeout: Duration,
) -> WorkloadCluster {
    wait_for(env, controller, namespace, name, phase, timeout, true).await
}

/// Waits for a phase with the cluster's agents installed but not run (their Deployment is
/// available all the same, through the simulated kubelet): the cluster stays before its
/// pivot, for tests of what the controller does until then.
pub async fn wait_phase_before_pivot(
    env: &ManagementEnv,
    controller: &ControllerProcess,
    namespace: &str,
    name: &str,
    phase: ClusterPhase,
    timeout: Duration,
) -> WorkloadCluster {
    wait_for(env, controller, namespace, name, phase, timeout, false).await
}

async fn wait_for(
    env: &ManagementEnv,
    controller: &ControllerProcess,
    namespace: &str,
    name: &str,
    phase: ClusterPhase,
    timeout: Duration,
    run_agents: bool,
) -> WorkloadCluster {
    let client = env.client();
    let deadline = Instant::now() + timeout;
    let objects = objects_namespace(namespace, name);
    loop {
        if run_agents {
            env.run_agents_of(&objects, name).await.unwrap();
        }
        let found = cluster(&client, namespace, name).await;
        if let Some(c) = &found
            && c.status.as_ref().and_then(|s| s.phase) == Some(phase)
        {
            return c.clone();
        }
        if Instant::now() >= deadline {
            let agents: Vec<String> = env
                .agents_of(&objects, name)
                .map(|k| k.processes())
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    format!(
                        "--- agent {} ---\n{}",
                        p.pod_name,
                        strata_e2e::control_plane::log_tail(&p.log, 40)
                    )
                })
                .collect();
            panic!(
                "{namespace}/{name} did not reach {phase:?} in {timeout:?}: {}\n--- controller log ---\n{}\n{}",
                describe(found.as_ref()),
                controller.log_tail(40),
                agents.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub fn condition<'a>(cluster: &'a WorkloadCluster, type_: &str) -> (&'a str, &'a str, &'a str) {
    let c = cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} condition: {}", describe(Some(cluster))));
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

/// Where `read` differs from what was `sent` (fields others added are not differences).
pub fn differences(sent: &Value, read: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, read) {
        (Value::Object(s), Value::Object(r)) => {
            for (key, value) in s {
                let here = format!("{path}.{key}");
                match r.get(key) {
                    Some(other) => differences(value, other, &here, out),
                    None => out.push(format!("{here} is missing")),
                }
            }
        }
        (Value::Array(s), Value::Array(r)) if s.len() == r.len() => {
            for (i, (a, b)) in s.iter().zip(r).enumerate() {
                differences(a, b, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: sent {a}, found {b}")),
    }
}

/// The objects of a kind in a namespace; none when the kind is not installed.
pub async fn list_objects(
    client: &Client,
    namespace: &str,
    api_version: &str,
    kind: &str,
) -> Vec<DynamicObject> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource(api_version, kind));
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// CAPI Machine name → its provider ID, in one cluster.
pub async fn machine_instances(client: &Client, namespace: &str) -> BTreeMap<String, String> {
    list_objects(client, namespace, "cluster.x-k8s.io/v1beta2", "Machine")
        .await
        .into_iter()
        .map(|m| {
            let id = m
                .data
                .pointer("/spec/providerID")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            (m.name_any(), id)
        })
        .collect()
}

/// The pivot's journal in the workload cluster.
pub async fn pivot_journal(workload: &Client, cluster: &str) -> MoveJournal {
    let map: ConfigMap = Api::namespaced(workload.clone(), AGENT_NAMESPACE)
        .get(&pivot_journal_name(cluster))
        .await
        .unwrap();
    strata_shared::pivot::journal_record::journal_from(&map).unwrap()
}

/// Checks every object of a finished move: its copy is in the target with the content its
/// source had when planned; objects the source keeps (identities and their Secrets, shared
/// objects) are still there, and nothing else is. Returns the entries checked, described.
pub async fn check_moved_objects(
    source: &Client,
    target: &Client,
    journal: &MoveJournal,
) -> Vec<String> {
    let mut checked = Vec::new();
    for entry in journal.objects.values() {
        let namespace = entry.namespace.as_deref();
        let copy = get_dynamic(
            target,
            &entry.api_version,
            &entry.kind,
            namespace,
            &entry.name,
        )
        .await
        .unwrap_or_else(|| panic!("{} is missing from the target", entry.describe()));
        let mut json = serde_json::to_value(&copy).unwrap();
        json["apiVersion"] = json!(entry.api_version);
        json["kind"] = json!(entry.kind);
        if entry.kind == "KubeadmControlPlane" {
            // The scale-out after the move raises it; the move copied 1.
            json["spec"]["replicas"] = json!(1);
        }
        assert_eq!(
            strata_shared::pivot::content_hash(&json),
            entry.content_hash,
            "{} differs from its source",
            entry.describe()
        );
        let in_source = get_dynamic(
            source,
            &entry.api_version,
            &entry.kind,
            namespace,
            &entry.name,
        )
        .await;
        assert_eq!(
            in_source.is_some(),
            entry.global,
            "{}: {}",
            entry.describe(),
            if entry.global {
                "kept by the source, but gone from it"
            } else {
                "still in the source"
            }
        );
        checked.push(entry.describe());
    }
    checked
}
