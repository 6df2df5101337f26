//! What the trust tests share: a small sim cluster, the controller run with the rights of
//! its manifests and a simulator for every cloud they use, and the checks of an agent's
//! footprint and its management token. A test using it declares `mod controller_support;`
//! too.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::json;
use strata_e2e::agent_footprint::{self, AgentFootprint};
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, SYSTEM_NAMESPACE, ensure_namespace,
};
use strata_e2e::wait::eventually;
use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::names::{AGENT_NAMESPACE, ClusterLocation, MANAGEMENT_SECRET};
use strata_shared::provider_components::DEFAULT_SIM_PROVIDER_IMAGE;

use crate::controller_support::{apply_sample, cluster};

/// The sim sample as `namespace/name`, with one control-plane node and one worker: the
/// pivot happens at the first node all the same, and the scale-out after it is short.
pub async fn apply_small_sim_cluster(client: &Client, namespace: &str, name: &str, orphan: bool) {
    ensure_namespace(client, namespace).await.unwrap();
    apply_sample(client, "clusters/sim-demo.yaml", namespace, |document| {
        document["metadata"]["name"] = json!(name);
        document["spec"]["nodePools"]["controlPlane"]["count"] = json!(1);
        document["spec"]["nodePools"]["workers"][0]["count"] = json!(1);
        if orphan {
            document["spec"]["deletionPolicy"] = json!("Orphan");
        }
    })
    .await;
}

/// `strata controller` with exactly the rights of `manifests/controller/rbac.yaml`, the
/// simulator as the provider controllers of the sim cloud and of vSphere.
pub async fn start_controller(env: &ManagementEnv, name: &str) -> ControllerProcess {
    let kubeconfig = env.controller_kubeconfig().await.unwrap();
    let sim = format!("sim={DEFAULT_SIM_PROVIDER_IMAGE}");
    let vsphere = format!("vsphere={DEFAULT_SIM_PROVIDER_IMAGE}");
    ControllerProcess::start(
        &kubeconfig,
        env.dir.path(),
        name,
        &[
            "--provider-image",
            &sim,
            "--provider-image",
            &vsphere,
            "--provider-arg",
            "sim=--fast",
            "--provider-arg",
            "vsphere=--fast",
        ],
    )
    .unwrap()
}

/// Waits until the cluster reports `control_plane` and `workers` ready nodes.
pub async fn wait_scaled(
    client: &Client,
    namespace: &str,
    name: &str,
    control_plane: i64,
    workers: i64,
) -> WorkloadCluster {
    eventually(
        &format!("{namespace}/{name} scaled to {control_plane}+{workers} ready nodes"),
        Duration::from_secs(240),
        || async {
            let wc = cluster(client, namespace, name).await?;
            let status = wc.status.clone()?;
            let ready = status.control_plane.as_ref()?.ready == control_plane
                && status.workers.as_ref()?.ready == workers;
            ready.then_some(wc)
        },
    )
    .await
}

/// The agent's footprint in the management cluster.
pub async fn footprint(
    client: &Client,
    location: &ClusterLocation,
    provider_namespace: Option<&str>,
) -> AgentFootprint {
    agent_footprint::read(client, location, SYSTEM_NAMESPACE, provider_namespace)
        .await
        .unwrap()
}

/// Everything of the agent is there, carrying its cluster's labels.
pub async fn assert_agent_footprint_whole(
    client: &Client,
    location: &ClusterLocation,
    provider_namespace: Option<&str>,
    when: &str,
) {
    let found = footprint(client, location, provider_namespace).await;
    assert!(
        found.not_owned().is_empty(),
        "{when}: the agent of {}/{} is missing {:?}",
        location.cluster_namespace,
        location.cluster,
        found.not_owned()
    );
}

/// Nothing of the agent is left: not by name, not under any name carrying its labels.
pub async fn assert_agent_gone(
    client: &Client,
    location: &ClusterLocation,
    provider_namespace: Option<&str>,
) {
    let found = footprint(client, location, provider_namespace).await;
    assert!(
        found.present().is_empty(),
        "the agent of {}/{} left {:?}",
        location.cluster_namespace,
        location.cluster,
        found.present()
    );
    let labelled = agent_footprint::labelled_leftovers(client, location)
        .await
        .unwrap();
    assert!(
        labelled.is_empty(),
        "left with the labels of {}/{}: {labelled:?}",
        location.cluster_namespace,
        location.cluster
    );
}

/// The management token the agent holds in its own cluster (`strata-system/strata-management`).
pub async fn agent_token(workload: &Client) -> String {
    let secret = Api::<Secret>::namespaced(workload.clone(), AGENT_NAMESPACE)
        .get(MANAGEMENT_SECRET)
        .await
        .unwrap();
    let data = secret.data.unwrap_or_default();
    String::from_utf8(data["token"].0.clone()).unwrap()
}

/// What the management API server answers a read of the cluster's own WorkloadCluster made
/// with `token`: its status code (200 when it was read).
pub async fn answer_to_token(env: &ManagementEnv, token: &str, namespace: &str, name: &str) -> u16 {
    let agent = env.control_plane.client_for_token(token).await.unwrap();
    match Api::<WorkloadCluster>::namespaced(agent, namespace)
        .get(name)
        .await
    {
        Ok(_) => 200,
        Err(kube::Error::Api(e)) => e.code,
        Err(other) => panic!("reading {namespace}/{name} with the agent's token: {other}"),
    }
}
