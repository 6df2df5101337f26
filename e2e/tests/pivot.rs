//! The pivot end to end: the controller provisions a sim cluster's first control-plane
//! node and installs the agent; the agent (a real process in the workload cluster) moves
//! the cluster's CAPI objects into its own cluster, where a second simulator continues
//! the cluster without replacing a machine, then scales it to its revision and reports
//! Pivoted and the node counts back.
//!
//! The provider components of the workload cluster (the CAPI and sim CRDs and the
//! simulator) are set up by the test for now.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;
use strata_e2e::capi_crds;
use strata_e2e::cloud_sim::{CloudSimulator, SimOptions, sim_crds};
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, ensure_namespace,
};
use strata_e2e::wait::eventually;
use strata_shared::agent_install::AGENT_NAMESPACE;
use strata_shared::cluster::{ClusterPhase, objects_namespace};
use strata_shared::pivot::journal::{MoveJournal, MovePhase};

mod controller_support;
use controller_support::*;

async fn list(
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

/// Machine name → provider ID.
async fn machines(client: &Client, namespace: &str) -> BTreeMap<String, String> {
    list(client, namespace, "cluster.x-k8s.io/v1beta2", "Machine")
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

#[tokio::test]
async fn a_sim_cluster_pivots_into_itself_and_scales_out() {
    let _stop = StopWorkloads;
    let env = ManagementEnv::start(ManagementOptions::named("pivot"))
        .await
        .unwrap();
    let client = env.client();
    let ns = "strata-demo";
    let name = "demo";
    let objects = objects_namespace(ns, name);
    ensure_namespace(&client, ns).await.unwrap();
    apply_sample(&client, "clusters/sim-demo.yaml", ns, |_| {}).await;
    let controller = ControllerProcess::start(
        env.control_plane.kubeconfig_path(),
        env.dir.path(),
        "controller",
        &[],
    )
    .unwrap();

    // The workload cluster's provider components, once its control plane runs.
    let workload = eventually(
        "the workload control plane",
        Duration::from_secs(180),
        || async { env.workload(&objects, name).await.ok().flatten() },
    )
    .await;
    let w = workload.client();
    let before = eventually(
        "the first control-plane machine's instance",
        Duration::from_secs(60),
        || async {
            let m = machines(&client, &objects).await;
            (m.len() == 1 && m.values().all(|id| !id.is_empty())).then_some(m)
        },
    )
    .await;
    capi_crds::install(&w).await.unwrap();
    sim_crds::install(&w).await.unwrap();
    let _target_cloud = CloudSimulator::start(w.clone(), SimOptions::fast());

    let wc = wait_phase(
        &env,
        &controller,
        ns,
        name,
        ClusterPhase::Pivoted,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        condition(&wc, "Pivoted").0,
        "True",
        "{}",
        describe(Some(&wc))
    );

    // Nothing of the cluster is left in the management cluster; all of it is in the target.
    for kind in ["Cluster", "Machine", "MachineSet", "MachineDeployment"] {
        assert!(
            list(&client, &objects, "cluster.x-k8s.io/v1beta2", kind)
                .await
                .is_empty(),
            "{kind} left in the source"
        );
    }
    assert!(
        list(
            &client,
            &objects,
            "controlplane.cluster.x-k8s.io/v1beta2",
            "KubeadmControlPlane"
        )
        .await
        .is_empty()
    );
    assert!(
        list(
            &client,
            &objects,
            "infrastructure.cluster.x-k8s.io/v1beta2",
            "SimMachine"
        )
        .await
        .is_empty()
    );
    let target_cluster = get_dynamic(
        &w,
        "cluster.x-k8s.io/v1beta2",
        "Cluster",
        Some(&objects),
        name,
    )
    .await
    .expect("the Cluster in the target");
    assert_ne!(
        target_cluster.data.pointer("/spec/paused"),
        Some(&Value::Bool(true)),
        "the target is left paused"
    );
    let journal: ConfigMap = Api::namespaced(w.clone(), AGENT_NAMESPACE)
        .get(&format!("strata-move-{name}-pivot"))
        .await
        .unwrap();
    let journal: MoveJournal =
        serde_json::from_str(&journal.data.unwrap()["journal.json"]).unwrap();
    assert_eq!(journal.phase, MovePhase::Done);

    // The same machine continues; the cluster scales out to its revision.
    let after = machines(&w, &objects).await;
    for (machine, id) in &before {
        assert_eq!(
            after.get(machine),
            Some(id),
            "machine {machine} was replaced or lost its instance"
        );
    }
    let wc = eventually(
        "three control-plane and two worker nodes ready",
        Duration::from_secs(240),
        || async {
            let wc = cluster(&client, ns, name).await?;
            let status = wc.status.clone()?;
            let ready =
                status.control_plane.as_ref()?.ready == 3 && status.workers.as_ref()?.ready == 2;
            ready.then_some(wc)
        },
    )
    .await;
    assert_eq!(
        wc.status.as_ref().unwrap().phase,
        Some(ClusterPhase::Pivoted)
    );
    let all = machines(&w, &objects).await;
    assert_eq!(all.len(), 5, "{all:?}");
    for (machine, id) in &before {
        assert_eq!(
            all.get(machine),
            Some(id),
            "machine {machine} was replaced during the scale-out"
        );
    }
}
