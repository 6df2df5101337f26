#![allow(clippy::unwrap_used)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::watcher::Event;
use serde_json::json;
use strata_shared::cluster::{AgentReport, ClusterPhase, WorkloadCluster, WorkloadClusterStatus};
use strata_shared::contracts::capi::CLUSTER;

use super::*;

fn cluster() -> WorkloadCluster {
    let mut cluster: WorkloadCluster = serde_json::from_value(json!({
        "apiVersion": "strata.dev/v1alpha1",
        "kind": "WorkloadCluster",
        "metadata": { "name": "edge-1", "namespace": "team", "generation": 1 },
        "spec": spec(),
    }))
    .unwrap();
    cluster.status = None;
    cluster
}

fn spec() -> serde_json::Value {
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/samples/clusters/sim-demo.yaml"
    ))
    .unwrap();
    let document: serde_json::Value = serde_yaml::from_str(&sample).unwrap();
    document["spec"].clone()
}

fn condition(type_: &str, status: &str) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: "Because".to_string(),
        message: String::new(),
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        observed_generation: None,
    }
}

/// A named change of a cluster, or of its status.
type Change<T> = (&'static str, Box<dyn Fn(&mut T)>);

fn filter() -> WakeFilter<WorkloadCluster> {
    WakeFilter::new(cluster_fingerprint, FirstSight::Wakes)
}

#[test]
fn a_new_cluster_wakes_and_the_controllers_own_status_does_not() {
    let mut wakes = filter();
    let mut seen = cluster();
    assert!(wakes.wakes(&Event::Apply(seen.clone())).is_some());
    let status = seen.status.insert(WorkloadClusterStatus::default());
    status.phase = Some(ClusterPhase::Provisioning);
    status.observed_generation = Some(1);
    status.revision = Some(1);
    status.namespace = Some("strata-wc-team-edge-1".into());
    status.agent_image = Some("strata-agent:1".into());
    status.conditions = vec![condition(VALID, "True"), condition(READY, "False")];
    seen.metadata.finalizers = Some(vec!["strata.dev/cleanup".into()]);
    seen.metadata.resource_version = Some("2".into());
    assert!(
        wakes.wakes(&Event::Apply(seen.clone())).is_none(),
        "the controller's status and finalizer woke the cluster"
    );
    // The same object listed again by a restarted watch.
    assert!(wakes.wakes(&Event::InitApply(seen)).is_none());
}

#[test]
fn the_spec_labels_annotations_and_deletion_wake() {
    let base = cluster();
    let changes: Vec<Change<WorkloadCluster>> = vec![
        ("generation", Box::new(|c| c.metadata.generation = Some(2))),
        (
            "labels",
            Box::new(|c| c.metadata.labels = Some([("team".into(), "a".into())].into())),
        ),
        (
            "annotations",
            Box::new(|c| c.metadata.annotations = Some([("note".into(), "x".into())].into())),
        ),
        (
            "deletion",
            Box::new(|c| {
                c.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
            }),
        ),
    ];
    for (what, change) in changes {
        let mut wakes = filter();
        wakes.wakes(&Event::Apply(base.clone()));
        let mut changed = base.clone();
        change(&mut changed);
        assert!(
            wakes.wakes(&Event::Apply(changed)).is_some(),
            "a change of {what} did not wake"
        );
    }
}

#[test]
fn what_the_agent_writes_wakes() {
    let base = cluster();
    let changes: Vec<Change<WorkloadClusterStatus>> = vec![
        (
            "the Pivoted condition",
            Box::new(|s| s.conditions.push(condition("Pivoted", "False"))),
        ),
        (
            "the agent's report",
            Box::new(|s| {
                s.agent = Some(AgentReport {
                    last_report_time: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
                    token_expires: None,
                })
            }),
        ),
        (
            "the applied revision",
            Box::new(|s| s.applied_revision = Some(3)),
        ),
    ];
    for (what, change) in changes {
        let mut wakes = filter();
        wakes.wakes(&Event::Apply(base.clone()));
        let mut changed = base.clone();
        change(changed.status.get_or_insert_default());
        assert!(
            wakes.wakes(&Event::Apply(changed)).is_some(),
            "{what} did not wake"
        );
    }
}

#[test]
fn a_deleted_object_wakes_and_is_forgotten() {
    let mut wakes = filter();
    wakes.wakes(&Event::Apply(cluster()));
    assert_eq!(wakes.remembered(), 1);
    assert!(wakes.wakes(&Event::Delete(cluster())).is_some());
    assert_eq!(wakes.remembered(), 0);
    assert!(wakes.wakes(&Event::Init).is_none());
    assert!(wakes.wakes(&Event::InitDone).is_none());
}

fn capi(status: serde_json::Value) -> DynamicObject {
    let resource: ApiResource = CLUSTER.api_resource();
    let mut object = DynamicObject::new("edge-1", &resource).within("strata-wc-team-edge-1");
    object.metadata.generation = Some(1);
    object.metadata.uid = Some("u-1".into());
    object.data = json!({ "spec": { "paused": false }, "status": status });
    object
}

#[test]
fn a_capi_cluster_wakes_only_when_what_the_controller_reads_changes() {
    let mut wakes = WakeFilter::new(capi_fingerprint, FirstSight::Recorded);
    assert!(
        wakes.wakes(&Event::Apply(capi(json!({})))).is_none(),
        "the controller's own apply woke the cluster"
    );
    for unread in [
        json!({ "phase": "Provisioning", "observedGeneration": 1 }),
        json!({ "initialization": { "infrastructureProvisioned": true } }),
    ] {
        assert!(
            wakes.wakes(&Event::Apply(capi(unread.clone()))).is_none(),
            "{unread}, which the controller does not read, woke the cluster"
        );
    }
    assert!(
        wakes
            .wakes(&Event::Apply(capi(
                json!({ "workers": { "readyReplicas": 2 } })
            )))
            .is_some(),
        "a ready worker did not wake"
    );
    assert!(
        wakes
            .wakes(&Event::Apply(capi(
                json!({ "initialization": { "controlPlaneInitialized": true } })
            )))
            .is_some()
    );
    let mut edited = capi(json!({ "initialization": { "controlPlaneInitialized": true } }));
    edited.metadata.generation = Some(2);
    assert!(
        wakes.wakes(&Event::Apply(edited.clone())).is_some(),
        "an edit of the spec did not wake"
    );
    assert!(wakes.wakes(&Event::Delete(edited)).is_some());
}
