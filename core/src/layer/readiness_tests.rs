#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use super::*;

fn not_ready(object: &Value) -> String {
    match readiness(object) {
        Readiness::NotReady { reason } => reason,
        other => panic!("expected NotReady, got {other:?}"),
    }
}

fn deployment(status: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "generation": 2},
        "spec": {"replicas": 3},
        "status": status,
    })
}

fn available(status: &str) -> Value {
    json!([{"type": "Available", "status": status, "reason": "MinimumReplicasAvailable"}])
}

#[test]
fn a_deployment_is_ready_when_every_replica_is_updated_and_available() {
    let ready = deployment(json!({
        "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
        "conditions": available("True"),
    }));
    assert_eq!(readiness(&ready), Readiness::Ready);
    assert!(readiness(&ready).is_ready());

    let mut short = ready.clone();
    short["status"]["availableReplicas"] = json!(1);
    assert_eq!(
        not_ready(&short),
        "Deployment web: 1 of 3 replicas available"
    );

    let mut rolling = ready.clone();
    rolling["status"]["updatedReplicas"] = json!(2);
    assert_eq!(
        not_ready(&rolling),
        "Deployment web: 2 of 3 replicas updated"
    );

    let mut unseen = ready.clone();
    unseen["status"]["observedGeneration"] = json!(1);
    assert_eq!(
        not_ready(&unseen),
        "Deployment web: generation 2 not yet observed by its controller (observed 1)"
    );

    let mut unavailable = ready.clone();
    unavailable["status"]["conditions"] = available("False");
    assert_eq!(
        not_ready(&unavailable),
        "Deployment web: condition Available is False: MinimumReplicasAvailable"
    );

    let mut no_condition = ready.clone();
    no_condition["status"]["conditions"] = json!([]);
    assert_eq!(
        not_ready(&no_condition),
        "Deployment web: no Available condition yet"
    );

    let mut fresh = ready.clone();
    fresh.as_object_mut().unwrap().remove("status");
    fresh["metadata"]["namespace"] = json!("shop");
    assert_eq!(not_ready(&fresh), "Deployment shop/web: no status yet");
}

#[test]
fn a_deployment_without_replicas_wants_one() {
    let mut object = deployment(json!({
        "observedGeneration": 2, "updatedReplicas": 1, "availableReplicas": 1,
        "conditions": available("True"),
    }));
    object["spec"] = json!({});
    assert_eq!(readiness(&object), Readiness::Ready);
    object["status"]["availableReplicas"] = json!(0);
    assert_eq!(
        not_ready(&object),
        "Deployment web: 0 of 1 replicas available"
    );
}

fn daemon_set(status: Value, strategy: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "calico-node", "namespace": "kube-system", "generation": 4},
        "spec": {"updateStrategy": {"type": strategy}},
        "status": status,
    })
}

#[test]
fn a_daemon_set_is_ready_on_every_eligible_node() {
    let ready = daemon_set(
        json!({"observedGeneration": 4, "desiredNumberScheduled": 3, "numberReady": 3, "updatedNumberScheduled": 3}),
        "RollingUpdate",
    );
    assert_eq!(readiness(&ready), Readiness::Ready);

    let mut one_short = ready.clone();
    one_short["status"]["numberReady"] = json!(2);
    assert_eq!(
        not_ready(&one_short),
        "DaemonSet kube-system/calico-node: 2 of 3 scheduled pods ready"
    );

    let mut old_pods = ready.clone();
    old_pods["status"]["updatedNumberScheduled"] = json!(1);
    assert_eq!(
        not_ready(&old_pods),
        "DaemonSet kube-system/calico-node: 1 of 3 scheduled pods updated"
    );
    // OnDelete updates no pod by itself: only readiness counts.
    old_pods["spec"]["updateStrategy"]["type"] = json!("OnDelete");
    assert_eq!(readiness(&old_pods), Readiness::Ready);

    let mut unseen = ready.clone();
    unseen["status"]
        .as_object_mut()
        .unwrap()
        .remove("observedGeneration");
    assert_eq!(
        not_ready(&unseen),
        "DaemonSet kube-system/calico-node: generation 4 not yet observed by its controller"
    );
}

fn stateful_set(status: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "generation": 1},
        "spec": {"replicas": 3},
        "status": status,
    })
}

#[test]
fn a_stateful_set_is_ready_when_every_replica_is_ready_and_updated() {
    let ready =
        stateful_set(json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3}));
    assert_eq!(readiness(&ready), Readiness::Ready);

    let mut waiting = ready.clone();
    waiting["status"]["readyReplicas"] = json!(2);
    assert_eq!(not_ready(&waiting), "StatefulSet db: 2 of 3 replicas ready");

    let mut rolling = ready.clone();
    rolling["status"]["updatedReplicas"] = json!(1);
    assert_eq!(
        not_ready(&rolling),
        "StatefulSet db: 1 of 3 replicas updated"
    );
    // A partition keeps the replicas below it at the old revision on purpose.
    rolling["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}});
    assert_eq!(readiness(&rolling), Readiness::Ready);
}

fn job(conditions: Value) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "migrate", "namespace": "shop"},
        "spec": {"completions": 1},
        "status": {"conditions": conditions},
    })
}

#[test]
fn a_job_is_ready_when_complete_and_failed_when_failed() {
    assert_eq!(
        readiness(&job(json!([{"type": "Complete", "status": "True"}]))),
        Readiness::Ready
    );
    assert_eq!(
        not_ready(&job(json!([]))),
        "Job shop/migrate: not complete yet (0 of 1 completions succeeded)"
    );
    assert_eq!(
        not_ready(&job(json!([{"type": "Failed", "status": "False"}]))),
        "Job shop/migrate: not complete yet (0 of 1 completions succeeded)"
    );
    assert_eq!(
        readiness(&job(json!([{
            "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
        }]))),
        Readiness::Failed {
            reason: "Job shop/migrate: failed: BackoffLimitExceeded: Job has reached the specified backoff limit".into()
        }
    );
}

#[test]
fn a_crd_is_ready_when_established() {
    let crd = |conditions: Value| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "ippools.crd.projectcalico.org"},
            "status": {"conditions": conditions},
        })
    };
    assert_eq!(
        readiness(&crd(json!([{"type": "Established", "status": "True"}]))),
        Readiness::Ready
    );
    assert_eq!(
        not_ready(&crd(json!([{"type": "Established", "status": "False"}]))),
        "CustomResourceDefinition ippools.crd.projectcalico.org: condition Established is False"
    );
    assert_eq!(
        not_ready(&crd(json!([{
            "type": "NamesAccepted", "status": "False", "reason": "ListKindConflict",
            "message": "\"IPPoolList\" is already in use",
        }]))),
        "CustomResourceDefinition ippools.crd.projectcalico.org: no Established condition yet; condition NamesAccepted is False: ListKindConflict: \"IPPoolList\" is already in use"
    );
}

#[test]
fn an_api_service_is_ready_when_available() {
    let service = |status: &str| {
        json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "status": {"conditions": [{"type": "Available", "status": status, "reason": "MissingEndpoints"}]},
        })
    };
    assert_eq!(readiness(&service("True")), Readiness::Ready);
    assert_eq!(
        not_ready(&service("False")),
        "APIService v1beta1.metrics.k8s.io: condition Available is False: MissingEndpoints"
    );
}

#[test]
fn a_cert_manager_certificate_is_ready_when_issued() {
    let certificate = |conditions: serde_json::Value| {
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "capi-serving-cert", "namespace": "capi-system"},
            "status": {"conditions": conditions},
        })
    };
    assert_eq!(
        readiness(&certificate(json!([{"type": "Ready", "status": "True"}]))),
        Readiness::Ready
    );
    assert_eq!(
        not_ready(&certificate(
            json!([{"type": "Ready", "status": "False", "reason": "DoesNotExist"}])
        )),
        "Certificate capi-system/capi-serving-cert: condition Ready is False: DoesNotExist"
    );
    assert!(!readiness(&certificate(json!([]))).is_ready());
}

#[test]
fn other_kinds_are_ready_once_they_exist() {
    for object in [
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}),
        // A custom kind named like a built-in one is not the built-in one.
        json!({"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "d"}, "status": {}}),
    ] {
        assert_eq!(readiness(&object), Readiness::Ready, "{object}");
    }
}
