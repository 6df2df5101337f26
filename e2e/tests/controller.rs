//! `strata controller` end to end, as a real process against a real management control
//! plane with the upstream CAPI CRDs, a TLS registry holding the sample packs, and the
//! simulated cloud, whose first control-plane machine of each cluster is a real workload
//! control plane where the agent Deployment runs as a real `strata-agent` process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use strata_e2e::capi_crds::pruned_fields;
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::dynamic_objects::{get_dynamic, resource};
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, ensure_namespace,
};
use strata_e2e::samples::apply_sample;
use strata_e2e::workload_cluster_status::{cluster, condition, describe, wait_phase};
use strata_shared::capi::{BuildInput, control_plane_objects, identity_name, identity_secret_name};
use strata_shared::cluster::{ClusterPhase, WorkloadCluster};
use strata_shared::contracts::names::{
    AGENT_NAME, AGENT_NAMESPACE, MANAGEMENT_SECRET, objects_namespace,
};
use strata_shared::revision::ClusterRevision;

fn is_forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(e)) if e.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

/// What the agent's management token may and may not do.
async fn check_agent_token(
    env: &ManagementEnv,
    workload: &Client,
    namespace: &str,
    name: &str,
    other_objects: &str,
) {
    let secret = Api::<Secret>::namespaced(workload.clone(), AGENT_NAMESPACE)
        .get(MANAGEMENT_SECRET)
        .await
        .unwrap();
    let data = secret.data.unwrap();
    let token = String::from_utf8(data["token"].0.clone()).unwrap();
    let own = String::from_utf8(data["namespace"].0.clone()).unwrap();
    assert_eq!(own, objects_namespace(namespace, name));
    let kubeconfig = String::from_utf8(data["kubeconfig"].0.clone()).unwrap();
    assert!(
        kubeconfig.contains(env.control_plane.server()),
        "{kubeconfig}"
    );
    let agent = env.control_plane.client_for_token(&token).await.unwrap();

    let revisions = Api::<ClusterRevision>::namespaced(agent.clone(), &own)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(!revisions.items.is_empty(), "the agent reads its revisions");
    Api::<Secret>::namespaced(agent.clone(), &own)
        .get(&format!("{name}-kubeconfig"))
        .await
        .expect("the agent reads its cluster's secrets");
    let capi = resource("cluster.x-k8s.io/v1beta2", "Cluster");
    Api::<DynamicObject>::namespaced_with(agent.clone(), &own, &capi)
        .get(name)
        .await
        .expect("the agent reads its CAPI Cluster");
    Api::<WorkloadCluster>::namespaced(agent.clone(), namespace)
        .get(name)
        .await
        .expect("the agent reads its WorkloadCluster");

    is_forbidden(
        Api::<ClusterRevision>::namespaced(agent.clone(), other_objects)
            .list(&ListParams::default())
            .await,
        "listing another cluster's revisions",
    );
    is_forbidden(
        Api::<Secret>::namespaced(agent.clone(), other_objects)
            .list(&ListParams::default())
            .await,
        "listing another cluster's secrets",
    );
    is_forbidden(
        Api::<DynamicObject>::namespaced_with(agent.clone(), other_objects, &capi)
            .list(&ListParams::default())
            .await,
        "listing another cluster's CAPI Clusters",
    );
    is_forbidden(
        Api::<Namespace>::all(agent.clone())
            .list(&ListParams::default())
            .await,
        "listing namespaces",
    );
    is_forbidden(
        Api::<DynamicObject>::all_with(agent.clone(), &capi)
            .list(&ListParams::default())
            .await,
        "listing CAPI Clusters everywhere",
    );
    is_forbidden(
        Api::<WorkloadCluster>::namespaced(agent.clone(), namespace)
            .list(&ListParams::default())
            .await,
        "listing the WorkloadClusters of its namespace",
    );
    is_forbidden(
        Api::<Secret>::namespaced(agent.clone(), namespace)
            .list(&ListParams::default())
            .await,
        "listing the secrets of the WorkloadCluster's namespace",
    );
}

/// A WorkloadCluster of `cloud` from the samples becomes its revision, its CAPI objects
/// (accepted by the upstream CRDs with nothing pruned), its first control-plane node and
/// a running agent whose token is confined to its own cluster.
async fn provisions(cloud: &str, cluster_file: &str, account_file: &str, name: &str) {
    let _stop = StopWorkloads;
    let env = ManagementEnv::start(ManagementOptions::named(cloud))
        .await
        .unwrap();
    let client = env.client();
    let namespace = format!("team-{cloud}");
    ensure_namespace(&client, &namespace).await.unwrap();
    apply_sample(&client, account_file, &namespace, |_| {}).await;
    apply_sample(&client, cluster_file, &namespace, |_| {}).await;
    // Another cluster, whose machines never come up: its namespace is the one the agent
    // must not reach.
    ensure_namespace(&client, "team-other").await.unwrap();
    env.cloud.as_ref().unwrap().fail_provisioning(
        &objects_namespace("team-other", "other"),
        "",
        "no capacity (test)",
    );
    apply_sample(&client, "clusters/sim-demo.yaml", "team-other", |d| {
        d["metadata"]["name"] = json!("other")
    })
    .await;

    let kubeconfig = env.controller_kubeconfig().await.unwrap();
    let controller =
        ControllerProcess::start(&kubeconfig, env.dir.path(), "controller", &[]).unwrap();
    let wc = wait_phase(
        &env,
        &controller,
        &namespace,
        name,
        ClusterPhase::AgentInstalled,
        Duration::from_secs(240),
    )
    .await;
    for type_ in [
        "Valid",
        "RevisionPublished",
        "ObjectsApplied",
        "ControlPlaneInitialized",
        "AgentInstalled",
        "Ready",
    ] {
        assert_eq!(
            condition(&wc, type_).0,
            "True",
            "{type_}: {}",
            describe(Some(&wc))
        );
    }
    let status = wc.status.clone().unwrap();
    let objects = objects_namespace(&namespace, name);
    assert_eq!(status.revision, Some(1));
    assert_eq!(status.namespace.as_deref(), Some(objects.as_str()));
    assert_eq!(status.agent_image.as_deref(), Some("strata-agent:e2e"));

    // The revision pins every layer by digest.
    let revision = Api::<ClusterRevision>::namespaced(client.clone(), &objects)
        .get(&format!("{name}-r1"))
        .await
        .unwrap();
    assert_eq!(revision.spec.desired.kubernetes_version, "v1.20.2");
    for layer in &revision.spec.desired.layers {
        assert!(
            layer.digest.starts_with("sha256:") && layer.digest.len() == 71,
            "{layer:?}"
        );
    }

    // What the controller applied is what the builders make of that revision, and the
    // upstream CRDs kept every field of it.
    let built = control_plane_objects(&BuildInput {
        cluster_name: name,
        namespace: &objects,
        revision: 1,
        desired: &revision.spec.desired,
    })
    .unwrap();
    for sent in &built {
        let text = |p: &str| sent.pointer(p).and_then(Value::as_str).unwrap();
        let read = get_dynamic(
            &client,
            text("/apiVersion"),
            text("/kind"),
            Some(&objects),
            text("/metadata/name"),
        )
        .await
        .unwrap_or_else(|| {
            panic!(
                "{} {} was not applied",
                text("/kind"),
                text("/metadata/name")
            )
        });
        let read = serde_json::to_value(&read).unwrap();
        let pruned = pruned_fields(sent, &read);
        assert!(
            pruned.is_empty(),
            "{} {}: pruned {pruned:?}",
            text("/kind"),
            text("/metadata/name")
        );
        let managers: BTreeSet<&str> = read["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(managers.contains("strata.dev/controller"), "{managers:?}");
        if text("/kind") == "KubeadmControlPlane" {
            assert_eq!(
                read["spec"]["replicas"], 1,
                "one control-plane replica before the pivot"
            );
        }
        if text("/kind") != "Cluster" {
            assert_eq!(
                read["metadata"]["ownerReferences"][0]["kind"],
                "Cluster",
                "{}",
                text("/kind")
            );
        }
    }
    // The provider's identity, with its secret where the provider reads it.
    let (identity_kind, identity_namespace, secret_namespace, api_version) = match cloud {
        "vsphere" => (
            "VSphereClusterIdentity",
            None,
            "capv-system",
            "infrastructure.cluster.x-k8s.io/v1beta2",
        ),
        "aws" => (
            "AWSClusterStaticIdentity",
            None,
            "capa-system",
            "infrastructure.cluster.x-k8s.io/v1beta2",
        ),
        _ => (
            "AzureClusterIdentity",
            Some(objects.as_str()),
            objects.as_str(),
            "infrastructure.cluster.x-k8s.io/v1beta1",
        ),
    };
    get_dynamic(
        &client,
        api_version,
        identity_kind,
        identity_namespace,
        &identity_name(&objects),
    )
    .await
    .unwrap_or_else(|| panic!("no {identity_kind}"));
    Api::<Secret>::namespaced(client.clone(), secret_namespace)
        .get(&identity_secret_name(&objects))
        .await
        .unwrap();

    // In the workload cluster: the agent, running as a process, holding its lease.
    let workload = env
        .workload(&objects, name)
        .await
        .unwrap()
        .expect("a workload control plane");
    let w = workload.client();
    let deployment = Api::<Deployment>::namespaced(w.clone(), AGENT_NAMESPACE)
        .get(AGENT_NAME)
        .await
        .unwrap();
    let image = deployment.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("strata-agent:e2e"));
    let kubelet = env.agents_of(&objects, name).unwrap();
    strata_e2e::wait::eventually(
        "the agent process and its lease",
        Duration::from_secs(60),
        || {
            let kubelet = kubelet.clone();
            let w = w.clone();
            async move {
                let running = kubelet.processes().iter().any(|p| p.pid.is_some());
                let lease = Api::<Lease>::namespaced(w, AGENT_NAMESPACE)
                    .get_opt(AGENT_NAME)
                    .await
                    .ok()
                    .flatten();
                let held = lease
                    .and_then(|l| l.spec)
                    .and_then(|s| s.holder_identity)
                    .is_some();
                (running && held).then_some(())
            }
        },
    )
    .await;

    check_agent_token(
        &env,
        &w,
        &namespace,
        name,
        &objects_namespace("team-other", "other"),
    )
    .await;

    // The other cluster got its objects too; its machines simply never came up.
    let other = cluster(&client, "team-other", "other").await.unwrap();
    assert_eq!(
        other.status.unwrap().phase,
        Some(ClusterPhase::Provisioning)
    );

    let (code, metrics) = controller.get("/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("strata_controller_clusters{phase=\"AgentInstalled\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("strata_controller_reconciles_total{result=\"success\"}"),
        "{metrics}"
    );
    let (code, ready) = controller.get("/readyz").await.unwrap();
    assert_eq!((code, ready.trim()), (200, "ok (leading)"));
}

#[tokio::test]
async fn vsphere_cluster_gets_its_first_node_and_agent() {
    provisions(
        "vsphere",
        "clusters/vsphere-edge.yaml",
        "accounts/vsphere.yaml",
        "vsphere-edge",
    )
    .await;
}

#[tokio::test]
async fn aws_cluster_gets_its_first_node_and_agent() {
    provisions("aws", "clusters/aws-ml.yaml", "accounts/aws.yaml", "aws-ml").await;
}

#[tokio::test]
async fn azure_cluster_gets_its_first_node_and_agent() {
    provisions(
        "azure",
        "clusters/azure-web.yaml",
        "accounts/azure.yaml",
        "azure-web",
    )
    .await;
}
