#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const AT: Located = Located {
    namespace: "team-a",
    name: "demo",
    objects_namespace: "strata-team-a-demo",
};

/// Revision `number` of `demo` with `workers` machines in pool general and Kubernetes
/// `version`.
fn revision(number: i64, version: &str, workers: u32) -> ClusterRevision {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "strata.dev/v1alpha1", "kind": "ClusterRevision",
        "metadata": {"name": format!("demo-r{number}"), "namespace": AT.objects_namespace},
        "spec": {
            "clusterName": "demo", "number": number, "contentHash": format!("sha256:{number}"),
            "desired": {
                "cloudType": "sim",
                "profiles": ["sim-infra:1.0.0"],
                "kubernetesVersion": version,
                "os": {"pack": "ubuntu-sim", "version": "22.04"},
                "kubeadm": {},
                "layers": [
                    {"order": 1, "name": "ubuntu-sim", "version": "22.04", "layer": "os",
                     "digest": "sha256:os", "values": "pack: {}\n"},
                    {"order": 2, "name": "kubernetes", "version": version.trim_start_matches('v'),
                     "layer": "k8s", "digest": format!("sha256:k8s-{version}"), "values": "pack: {}\n"},
                ],
                "nodePools": {
                    "controlPlane": {"count": 1, "machine": {"cpus": 2, "memoryMib": 4096}},
                    "workers": [{"name": "general", "count": workers, "machine": {"cpus": 2, "memoryMib": 4096}}],
                },
                "network": {"podCidrs": ["192.168.0.0/16"], "serviceCidrs": ["10.96.0.0/12"], "serviceDomain": "cluster.local"},
            },
        },
    }))
    .unwrap()
}

fn status(revision: Option<i64>, applied: Option<i64>) -> WorkloadClusterStatus {
    WorkloadClusterStatus {
        revision,
        applied_revision: applied,
        namespace: Some(AT.objects_namespace.into()),
        ..WorkloadClusterStatus::default()
    }
}

fn revisions() -> Vec<ClusterRevision> {
    vec![
        revision(1, "v1.30.2", 1),
        revision(2, "v1.30.2", 3),
        revision(3, "v1.31.0", 3),
    ]
}

fn error(result: Result<PlanReport, CommandError>) -> String {
    result.unwrap_err().to_string()
}

#[test]
fn the_plan_goes_from_the_applied_revision_to_the_latest() {
    let report = plan_report(&AT, &status(Some(3), Some(1)), &revisions(), None).unwrap();
    assert_eq!(report.baseline, Baseline::Applied { revision: 1 });
    assert_eq!((report.plan.from, report.plan.to), (1, 3));
    assert_eq!(
        report.plan.summary,
        "Kubernetes v1.30.2 → v1.31.0; 1 layer upgraded; control plane rolls (1 machine); \
         pool general rolls (1 machine); pool general resized 1 → 3"
    );
    let text = report.text();
    assert!(
        text.starts_with(
            "WorkloadCluster team-a/demo: baseline: revision 1, the applied one (status.appliedRevision)\n\
             cluster demo: revision 1 → 3\n"
        ),
        "{text}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["baseline"],
        serde_json::json!({"kind": "applied", "revision": 1})
    );
    assert_eq!(json["cluster"], "team-a/demo");
}

#[test]
fn before_the_pivot_the_revision_before_the_target_is_the_baseline() {
    let report = plan_report(&AT, &status(Some(3), None), &revisions(), None).unwrap();
    assert_eq!(report.baseline, Baseline::Previous { revision: 2 });
    assert_eq!(
        report.plan.summary,
        "Kubernetes v1.30.2 → v1.31.0; 1 layer upgraded; control plane rolls (1 machine); pool general rolls (3 machines)"
    );
    assert!(report.text().contains("the cluster is not pivoted yet"));

    let report = plan_report(&AT, &status(Some(3), None), &revisions(), Some(2)).unwrap();
    assert_eq!(report.baseline, Baseline::Previous { revision: 1 });
    assert_eq!(report.plan.summary, "pool general resized 1 → 3");

    let report = plan_report(&AT, &status(Some(1), None), &revisions()[..1], None).unwrap();
    assert_eq!(report.baseline, Baseline::None);
    assert!(report.plan.is_empty());
}

#[test]
fn the_applied_revision_is_nothing_to_apply() {
    let report = plan_report(&AT, &status(Some(3), Some(3)), &revisions(), None).unwrap();
    assert!(report.plan.is_empty());
    assert!(
        report
            .text()
            .ends_with("cluster demo: revision 3 → 3\nnothing to apply\n")
    );
}

#[test]
fn a_requested_earlier_revision_plans_a_rollback() {
    let report = plan_report(&AT, &status(Some(3), Some(3)), &revisions(), Some(2)).unwrap();
    assert_eq!((report.plan.from, report.plan.to), (3, 2));
    assert_eq!(
        report
            .plan
            .kubernetes_version
            .as_ref()
            .map(|c| c.to.as_str()),
        Some("v1.30.2")
    );
}

#[test]
fn what_is_missing_is_named() {
    assert_eq!(
        error(plan_report(&AT, &status(None, None), &[], None)),
        "WorkloadCluster team-a/demo has no status.revision: the controller has published no revision for it yet"
    );
    assert_eq!(
        error(plan_report(
            &AT,
            &status(Some(3), None),
            &revisions(),
            Some(7)
        )),
        "ClusterRevision strata-team-a-demo/demo-r7 (--revision 7) does not exist; the cluster has revisions 1, 2, 3"
    );
    assert_eq!(
        error(plan_report(
            &AT,
            &status(Some(3), Some(2)),
            &revisions()[2..],
            None
        )),
        "ClusterRevision strata-team-a-demo/demo-r2 (status.appliedRevision of WorkloadCluster team-a/demo) does not exist; the cluster has revisions 3"
    );
    assert_eq!(
        error(plan_report(&AT, &status(Some(4), None), &revisions(), None)),
        "ClusterRevision strata-team-a-demo/demo-r4 (status.revision of WorkloadCluster team-a/demo) does not exist; the cluster has revisions 1, 2, 3"
    );
}

#[test]
fn the_cluster_is_namespace_slash_name() {
    assert_eq!(
        parse_cluster("team-a/demo").unwrap(),
        ("team-a".to_string(), "demo".to_string())
    );
    for bad in ["demo", "/demo", "team-a/", "a/b/c"] {
        assert!(parse_cluster(bad).is_err(), "{bad}");
    }
}
