//! Names that cannot collide (issue 12, item 7), end to end. Joined with `-` alone,
//! `capv/system` would take `capv-system`, the namespace where the vSphere provider reads
//! its identity Secrets, and `b/c-a` and `b-c/a` would share one objects namespace and one
//! set of agent RBAC names, so that deleting one would remove the other's rights:
//!
//! - a sim cluster `capv/system` beside a vSphere cluster whose identity Secret lives in
//!   `capv-system`: both pivot; `capv-system` is nobody's objects namespace; deleting
//!   `capv/system` (moved back, then deleted by CAPI) leaves `capv-system`, the Secret and
//!   the vSphere cluster as they were;
//! - `b/c-a` and `b-c/a`: distinct objects namespaces and agent names, both pivot; one is
//!   deleted (moved back and completed), the other keeps its agent's rights and then moves
//!   back and completes too; nothing of either is left.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client, ResourceExt};
use strata_e2e::agent_footprint::{assert_agent_footprint_whole, assert_agent_gone};
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::management::{ManagementEnv, ManagementOptions, ensure_namespace};
use strata_e2e::management_trust::start_controller;
use strata_e2e::pivoted_cluster::{
    first_control_plane_node, machine_instances, moves_back_when_deleted,
};
use strata_e2e::samples::{apply_sample, apply_small_sim_cluster};
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{cluster, condition, describe, wait_phase, wait_scaled};
use strata_shared::capi::identity_secret_name;
use strata_shared::cluster::{ClusterPhase, WorkloadCluster};
use strata_shared::contracts::names::{
    AGENT_NAME, AGENT_NAMESPACE, CONTROLLER_BINDING, ClusterLocation, OBJECTS_NAMESPACE_PREFIX,
};

const VSPHERE_PROVIDER_NAMESPACE: &str = "capv-system";

#[tokio::test]
async fn capv_system_beside_a_vsphere_cluster_shares_nothing_with_it() {
    let _stop = StopWorkloads;
    let started = Instant::now();
    let env = ManagementEnv::start(ManagementOptions::named("trust-capv"))
        .await
        .unwrap();
    let client = env.client();
    let edge = ClusterLocation::of("team-edge", "vsphere-edge");
    let system = ClusterLocation::of("capv", "system");
    ensure_namespace(&client, &edge.cluster_namespace)
        .await
        .unwrap();
    apply_sample(
        &client,
        "accounts/vsphere.yaml",
        &edge.cluster_namespace,
        |_| {},
    )
    .await;
    apply_sample(
        &client,
        "clusters/vsphere-edge.yaml",
        &edge.cluster_namespace,
        |_| {},
    )
    .await;
    apply_small_sim_cluster(&client, &system.cluster_namespace, &system.cluster, false).await;
    let mut controller = start_controller(&env, "controller").await;

    let ((edge_workload, _), (system_workload, _)) = tokio::join!(
        first_control_plane_node(&env, &edge.objects_namespace, &edge.cluster),
        first_control_plane_node(&env, &system.objects_namespace, &system.cluster),
    );
    let (edge_wc, system_wc) = tokio::join!(
        pivoted(&env, &controller, &edge),
        pivoted(&env, &controller, &system),
    );
    eprintln!("both pivoted in {:.0?}", started.elapsed());

    // `capv/system` has an objects namespace of its own, not the provider's.
    assert_ne!(system.objects_namespace, VSPHERE_PROVIDER_NAMESPACE);
    assert!(
        system
            .objects_namespace
            .starts_with(OBJECTS_NAMESPACE_PREFIX),
        "{}",
        system.objects_namespace
    );
    assert_reported_namespace(&system_wc, &system);
    assert_reported_namespace(&edge_wc, &edge);
    let identity_secret = identity_secret_name(&edge.objects_namespace);
    let provider_state = |c: Client| {
        let identity_secret = identity_secret.clone();
        async move {
            let namespace: Namespace = Api::all(c.clone())
                .get(VSPHERE_PROVIDER_NAMESPACE)
                .await
                .unwrap();
            let secret: Secret = Api::namespaced(c, VSPHERE_PROVIDER_NAMESPACE)
                .get(&identity_secret)
                .await
                .unwrap_or_else(|e| {
                    panic!("no vSphere identity Secret {VSPHERE_PROVIDER_NAMESPACE}/{identity_secret}: {e}")
                });
            (namespace, secret)
        }
    };
    let (provider_namespace, secret) = provider_state(client.clone()).await;
    let strata_labels: Vec<&String> = provider_namespace
        .labels()
        .keys()
        .filter(|k| k.starts_with("strata.dev/"))
        .collect();
    assert!(
        strata_labels.is_empty(),
        "{VSPHERE_PROVIDER_NAMESPACE} is labelled as a cluster's namespace: {:?}",
        provider_namespace.labels()
    );
    assert!(secret.data.as_ref().is_some_and(|d| !d.is_empty()));
    assert_agent_footprint_whole(
        &client,
        &edge,
        Some(VSPHERE_PROVIDER_NAMESPACE),
        "after the pivots",
    )
    .await;
    assert_agent_footprint_whole(&client, &system, None, "after the pivots").await;
    assert_agent_runs(&env, &edge);
    assert_agent_runs(&env, &system);

    // `capv/system` is deleted: moved back, then deleted by CAPI in the management cluster.
    wait_scaled(&env, &system.cluster_namespace, &system.cluster, 1, 1).await;
    let system_w = system_workload.client();
    let machines = machine_instances(&system_w, &system.objects_namespace).await;
    let edge_report = last_report(&client, &edge).await;
    let kubeconfig = env.controller_kubeconfig().await.unwrap();
    moves_back_when_deleted(
        &env,
        &mut controller,
        &kubeconfig,
        &system.cluster_namespace,
        &system.cluster,
        &system_w,
        &machines,
    )
    .await;
    wait_namespace_gone(&client, &system.objects_namespace).await;
    assert_agent_gone(&client, &system, None).await;
    eprintln!(
        "capv/system moved back and deleted at {:.0?}",
        started.elapsed()
    );

    // The provider's namespace, the vSphere identity Secret and the vSphere cluster are as
    // they were.
    let (provider_namespace_after, secret_after) = provider_state(client.clone()).await;
    assert!(
        provider_namespace_after
            .metadata
            .deletion_timestamp
            .is_none()
    );
    assert_eq!(provider_namespace_after.uid(), provider_namespace.uid());
    assert_eq!(
        secret_after.uid(),
        secret.uid(),
        "the identity Secret was replaced"
    );
    assert_eq!(secret_after.data, secret.data);
    assert!(secret_after.metadata.deletion_timestamp.is_none());
    Api::<RoleBinding>::namespaced(client.clone(), VSPHERE_PROVIDER_NAMESPACE)
        .get(CONTROLLER_BINDING)
        .await
        .expect("the controller's binding in the provider namespace");
    let edge_namespace: Namespace = Api::all(client.clone())
        .get(&edge.objects_namespace)
        .await
        .unwrap();
    assert!(edge_namespace.metadata.deletion_timestamp.is_none());
    assert_agent_footprint_whole(
        &client,
        &edge,
        Some(VSPHERE_PROVIDER_NAMESPACE),
        "after capv/system was deleted",
    )
    .await;
    // Its agent reports on and takes its cluster to its revision's size.
    eventually(
        "a new report of the vSphere cluster's agent",
        Duration::from_secs(90),
        || async { (last_report(&client, &edge).await > edge_report).then_some(()) },
    )
    .await;
    let edge_wc = wait_scaled(&env, &edge.cluster_namespace, &edge.cluster, 3, 2).await;
    assert_eq!(
        edge_wc.status.as_ref().and_then(|s| s.phase),
        Some(ClusterPhase::Pivoted),
        "{}",
        describe(Some(&edge_wc))
    );
    assert_eq!(condition(&edge_wc, "Pivoted").0, "True");
    let edge_machines = machine_instances(&edge_workload.client(), &edge.objects_namespace).await;
    assert_eq!(edge_machines.len(), 5, "{edge_machines:?}");
    eprintln!("done in {:.0?}", started.elapsed());
}

#[tokio::test]
async fn b_c_a_and_b_c_a_share_nothing_and_each_moves_back() {
    let _stop = StopWorkloads;
    let started = Instant::now();
    let env = ManagementEnv::start(ManagementOptions::named("trust-dashes"))
        .await
        .unwrap();
    let client = env.client();
    let first = ClusterLocation::of("b", "c-a");
    let second = ClusterLocation::of("b-c", "a");
    for location in [&first, &second] {
        apply_small_sim_cluster(
            &client,
            &location.cluster_namespace,
            &location.cluster,
            false,
        )
        .await;
    }
    let mut controller = start_controller(&env, "controller").await;
    let ((first_workload, _), (second_workload, _)) = tokio::join!(
        first_control_plane_node(&env, &first.objects_namespace, &first.cluster),
        first_control_plane_node(&env, &second.objects_namespace, &second.cluster),
    );
    let (first_wc, second_wc) = tokio::join!(
        pivoted(&env, &controller, &first),
        pivoted(&env, &controller, &second),
    );
    eprintln!("both pivoted in {:.0?}", started.elapsed());

    // Nothing shared: namespaces, and every name of the agents' in the management cluster.
    assert_ne!(first.objects_namespace, second.objects_namespace);
    assert_reported_namespace(&first_wc, &first);
    assert_reported_namespace(&second_wc, &second);
    let (a, b) = (first.agent_names(), second.agent_names());
    assert_ne!(a.service_account, b.service_account);
    assert_ne!(a.credential_secret, b.credential_secret);
    assert_ne!(a.rbac, b.rbac);
    for location in [&first, &second] {
        assert_agent_footprint_whole(&client, location, None, "after the pivots").await;
        assert_agent_runs(&env, location);
    }
    let (first_w, second_w) = (first_workload.client(), second_workload.client());
    let (first_machines, second_machines) = tokio::join!(
        scaled_machines(&env, &first_w, &first),
        scaled_machines(&env, &second_w, &second),
    );

    // `b/c-a` goes: moved back and deleted. No controller runs afterwards, so whatever of
    // `b-c/a` it removed would stay removed.
    let kubeconfig = env.controller_kubeconfig().await.unwrap();
    moves_back_when_deleted(
        &env,
        &mut controller,
        &kubeconfig,
        &first.cluster_namespace,
        &first.cluster,
        &first_w,
        &first_machines,
    )
    .await;
    wait_namespace_gone(&client, &first.objects_namespace).await;
    assert_agent_gone(&client, &first, None).await;
    eprintln!("b/c-a moved back and deleted at {:.0?}", started.elapsed());
    assert_agent_footprint_whole(&client, &second, None, "after b/c-a was deleted").await;
    let second_namespace: Namespace = Api::all(client.clone())
        .get(&second.objects_namespace)
        .await
        .unwrap();
    assert!(second_namespace.metadata.deletion_timestamp.is_none());
    let second_wc = cluster(&client, &second.cluster_namespace, &second.cluster)
        .await
        .unwrap();
    assert_eq!(
        second_wc.status.as_ref().and_then(|s| s.phase),
        Some(ClusterPhase::Pivoted),
        "{}",
        describe(Some(&second_wc))
    );

    // `b-c/a`'s agent still has what its move back needs: it moves back and completes.
    let mut controller = start_controller(&env, "controller-2").await;
    moves_back_when_deleted(
        &env,
        &mut controller,
        &kubeconfig,
        &second.cluster_namespace,
        &second.cluster,
        &second_w,
        &second_machines,
    )
    .await;
    for location in [&first, &second] {
        wait_namespace_gone(&client, &location.objects_namespace).await;
        assert!(
            cluster(&client, &location.cluster_namespace, &location.cluster)
                .await
                .is_none()
        );
        assert_agent_gone(&client, location, None).await;
    }
    eprintln!(
        "b-c/a moved back and deleted; done in {:.0?}",
        started.elapsed()
    );
}

/// Waits for the cluster to be Pivoted (running its agents), with its Pivoted condition true.
async fn pivoted(
    env: &ManagementEnv,
    controller: &strata_e2e::management::ControllerProcess,
    location: &ClusterLocation,
) -> WorkloadCluster {
    let wc = wait_phase(
        env,
        controller,
        &location.cluster_namespace,
        &location.cluster,
        ClusterPhase::Pivoted,
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(
        condition(&wc, "Pivoted").0,
        "True",
        "{}",
        describe(Some(&wc))
    );
    wc
}

/// The status names the cluster's own objects namespace, which carries its labels.
fn assert_reported_namespace(wc: &WorkloadCluster, location: &ClusterLocation) {
    assert_eq!(
        wc.status.as_ref().and_then(|s| s.namespace.as_deref()),
        Some(location.objects_namespace.as_str()),
        "{}/{}",
        location.cluster_namespace,
        location.cluster
    );
}

/// The cluster's agent runs as a process in its workload cluster.
fn assert_agent_runs(env: &ManagementEnv, location: &ClusterLocation) {
    let kubelet = env
        .agents_of(&location.objects_namespace, &location.cluster)
        .unwrap();
    let agent = format!("{AGENT_NAMESPACE}/{AGENT_NAME}");
    assert!(
        kubelet
            .processes()
            .iter()
            .any(|p| p.deployment == agent && p.pid.is_some()),
        "the agent of {}/{} does not run: {:?}",
        location.cluster_namespace,
        location.cluster,
        kubelet.processes()
    );
}

/// Once the small cluster has its two nodes: its machines in the workload cluster.
async fn scaled_machines(
    env: &ManagementEnv,
    workload: &Client,
    location: &ClusterLocation,
) -> std::collections::BTreeMap<String, String> {
    wait_scaled(env, &location.cluster_namespace, &location.cluster, 1, 1).await;
    let machines = machine_instances(workload, &location.objects_namespace).await;
    assert_eq!(machines.len(), 2, "{machines:?}");
    machines
}

/// The time of the agent's last report on the WorkloadCluster.
async fn last_report(client: &Client, location: &ClusterLocation) -> Option<Timestamp> {
    cluster(client, &location.cluster_namespace, &location.cluster)
        .await
        .and_then(|wc| wc.status?.agent?.last_report_time)
        .map(|t| t.0)
}

async fn wait_namespace_gone(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    eventually(
        &format!("namespace {name} to be gone"),
        Duration::from_secs(120),
        || async {
            namespaces
                .get_opt(name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
}
