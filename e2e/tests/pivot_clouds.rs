//! The pivot end to end for the clouds with credentials: a vSphere, an AWS and an Azure
//! sample cluster each get their first control-plane node from the controller (run with
//! the rights of the chart's `templates/rbac.yaml` (`manifests/chart/strata`)), and their agent moves the CAPI objects
//! into the workload cluster, with the cluster's identity and its Secret (copied; the
//! management cluster keeps them), then scales the cluster out to its revision.
//!
//! vSphere's and AWS's identities are cluster-scoped with their Secret in the provider's
//! namespace, which the agent may only `get` by name; Azure's are in the objects namespace.
//! The vSphere cluster is then deleted: its objects move back, adopting the identity the
//! management cluster kept, and CAPI there deletes the cluster.
//!
//! The tests run one at a time: each ends by stopping the process-wide workload control
//! planes, which would pull them from under a test still running.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{Api, Client};

use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::dynamic_objects::{get_dynamic, list_objects};
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, ensure_namespace,
};
use strata_e2e::move_checks::{assert_target_unpaused, check_moved_objects, pivot_journal};
use strata_e2e::pivoted_cluster::{
    first_control_plane_node, machine_instances, moves_back_when_deleted,
};
use strata_e2e::samples::apply_sample;
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{cluster, condition, describe, wait_phase};
use strata_shared::capi::{identity_name, identity_secret_name};
use strata_shared::cluster::ClusterPhase;
use strata_shared::contracts::labels::OBJECTS_NAMESPACE_LABEL;
use strata_shared::contracts::names::{
    PACK_REGISTRIES_SECRET, SITE_EXPORT_SECRET, objects_namespace,
};
use strata_shared::pivot::journal::MovePhase;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One cloud's sample and what its pivot must carry.
struct Cloud {
    name: &'static str,
    cluster_file: &'static str,
    account_file: &'static str,
    namespace: &'static str,
    cluster: &'static str,
    identity_api_version: &'static str,
    identity_kind: &'static str,
    /// Cluster-scoped identities read their Secret from the provider's namespace.
    provider_namespace: Option<&'static str>,
    /// The provider's kinds of cluster and machines, none of which may stay behind.
    infrastructure_api_version: &'static str,
    infrastructure_kinds: [&'static str; 3],
    control_plane_nodes: i64,
    worker_nodes: i64,
    /// Whether the test goes on to delete the cluster, moving its objects back.
    moves_back: bool,
}

const VSPHERE: Cloud = Cloud {
    name: "vsphere",
    cluster_file: "clusters/vsphere-edge.yaml",
    account_file: "accounts/vsphere.yaml",
    namespace: "team-edge",
    cluster: "vsphere-edge",
    identity_api_version: "infrastructure.cluster.x-k8s.io/v1beta2",
    identity_kind: "VSphereClusterIdentity",
    provider_namespace: Some("capv-system"),
    infrastructure_api_version: "infrastructure.cluster.x-k8s.io/v1beta2",
    infrastructure_kinds: ["VSphereCluster", "VSphereMachine", "VSphereMachineTemplate"],
    control_plane_nodes: 3,
    worker_nodes: 2,
    moves_back: true,
};

const AWS: Cloud = Cloud {
    name: "aws",
    cluster_file: "clusters/aws-ml.yaml",
    account_file: "accounts/aws.yaml",
    namespace: "team-ml",
    cluster: "aws-ml",
    identity_api_version: "infrastructure.cluster.x-k8s.io/v1beta2",
    identity_kind: "AWSClusterStaticIdentity",
    provider_namespace: Some("capa-system"),
    infrastructure_api_version: "infrastructure.cluster.x-k8s.io/v1beta2",
    infrastructure_kinds: ["AWSCluster", "AWSMachine", "AWSMachineTemplate"],
    control_plane_nodes: 3,
    worker_nodes: 3,
    moves_back: false,
};

const AZURE: Cloud = Cloud {
    name: "azure",
    cluster_file: "clusters/azure-web.yaml",
    account_file: "accounts/azure.yaml",
    namespace: "team-web",
    cluster: "azure-web",
    identity_api_version: "infrastructure.cluster.x-k8s.io/v1beta1",
    identity_kind: "AzureClusterIdentity",
    provider_namespace: None,
    infrastructure_api_version: "infrastructure.cluster.x-k8s.io/v1beta1",
    infrastructure_kinds: ["AzureCluster", "AzureMachine", "AzureMachineTemplate"],
    control_plane_nodes: 1,
    worker_nodes: 2,
    moves_back: false,
};

#[tokio::test]
async fn a_vsphere_cluster_pivots_with_its_identity_scales_out_and_moves_back() {
    pivots(&VSPHERE).await;
}

#[tokio::test]
async fn an_aws_cluster_pivots_with_its_identity_and_scales_out() {
    pivots(&AWS).await;
}

#[tokio::test]
async fn an_azure_cluster_pivots_with_its_identity_and_scales_out() {
    pivots(&AZURE).await;
}

async fn pivots(cloud: &Cloud) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let _stop = StopWorkloads;
    let started = Instant::now();
    let env = ManagementEnv::start(ManagementOptions::named(&format!("pivot-{}", cloud.name)))
        .await
        .unwrap();
    let client = env.client();
    let (ns, name) = (cloud.namespace, cloud.cluster);
    let objects = objects_namespace(ns, name);
    ensure_namespace(&client, ns).await.unwrap();
    apply_sample(&client, cloud.account_file, ns, |_| {}).await;
    apply_sample(&client, cloud.cluster_file, ns, |_| {}).await;
    // The controller with exactly the rights its manifests give it: it must be able to
    // grant the agent its read of the identity Secret in the provider's namespace.
    let kubeconfig = env.controller_kubeconfig().await.unwrap();
    // The simulator plays every provider: the agent installs it in the workload cluster
    // from the cloud's infrastructure provider pack.
    let mut controller =
        ControllerProcess::start(&kubeconfig, env.dir.path(), "controller", &[]).unwrap();

    let (workload, before) = first_control_plane_node(&env, &objects, name).await;
    let w = workload.client();

    let wc = wait_phase(
        &env,
        &controller,
        ns,
        name,
        ClusterPhase::Pivoted,
        Duration::from_secs(240),
    )
    .await;
    let pivoted_after = started.elapsed();
    assert_eq!(
        condition(&wc, "Pivoted").0,
        "True",
        "{}",
        describe(Some(&wc))
    );

    // Every object of the move is in the target with its source's content; the source
    // kept only what it keeps.
    let journal = pivot_journal(&w, name).await.expect("the move's journal");
    assert_eq!(journal.phase, MovePhase::Done);
    let moved = check_moved_objects(&client, &w, &journal).await;

    // Nothing of the cluster is left in the management cluster's namespace.
    let infra = cloud.infrastructure_api_version;
    let mut kinds = vec![
        ("cluster.x-k8s.io/v1beta2", "Cluster"),
        ("cluster.x-k8s.io/v1beta2", "Machine"),
        ("cluster.x-k8s.io/v1beta2", "MachineSet"),
        ("cluster.x-k8s.io/v1beta2", "MachineDeployment"),
        (
            "controlplane.cluster.x-k8s.io/v1beta2",
            "KubeadmControlPlane",
        ),
        ("bootstrap.cluster.x-k8s.io/v1beta2", "KubeadmConfig"),
    ];
    kinds.extend(cloud.infrastructure_kinds.iter().map(|kind| (infra, *kind)));
    for (api_version, kind) in kinds {
        let left = list_objects(&client, &objects, api_version, kind).await;
        assert!(
            left.is_empty(),
            "{kind} left in the source: {:?}",
            left.iter()
                .map(|o| o.metadata.name.clone())
                .collect::<Vec<_>>()
        );
    }
    let secrets: Vec<String> = Api::<Secret>::namespaced(client.clone(), &objects)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|s| s.type_.as_deref() != Some("kubernetes.io/service-account-token"))
        .filter_map(|s| s.metadata.name)
        // Not left behind: written afterwards by the agent, its copy of what moved.
        .filter(|name| name != SITE_EXPORT_SECRET)
        .collect();
    // The registries its agent installs layers from stay with the controller, as the
    // identity Secret of a cloud without a provider namespace does.
    let mut kept: Vec<String> = vec![PACK_REGISTRIES_SECRET.to_string()];
    if cloud.provider_namespace.is_none() {
        kept.push(identity_secret_name(&objects));
    }
    kept.sort();
    assert_eq!(secrets, kept, "secrets left in the source namespace");

    // The identity and its Secret: moved into the target, and still in the management
    // cluster for the controller and a move back.
    let identity = identity_name(&objects);
    let identity_namespace = match cloud.provider_namespace {
        Some(_) => None,
        None => Some(objects.as_str()),
    };
    for (side, c) in [("management", &client), ("workload", &w)] {
        get_dynamic(
            c,
            cloud.identity_api_version,
            cloud.identity_kind,
            identity_namespace,
            &identity,
        )
        .await
        .unwrap_or_else(|| {
            panic!(
                "no {} {identity} in the {side} cluster",
                cloud.identity_kind
            )
        });
    }
    assert!(
        moved.iter().any(|m| m.starts_with(cloud.identity_kind)),
        "the identity is not among the moved objects: {moved:?}"
    );
    let secret_namespace = cloud.provider_namespace.unwrap_or(&objects);
    let secret_name = identity_secret_name(&objects);
    let read_secret = |c: Client| {
        let secret_name = secret_name.clone();
        async move {
            Api::<Secret>::namespaced(c, secret_namespace)
                .get(&secret_name)
                .await
                .unwrap()
                .data
        }
    };
    let (in_management, in_workload) =
        tokio::join!(read_secret(client.clone()), read_secret(w.clone()));
    assert!(in_management.as_ref().is_some_and(|d| !d.is_empty()));
    assert_eq!(
        in_management, in_workload,
        "the identity Secret's copy differs"
    );
    // A rotated account secret reaches the pivoted cluster: the controller keeps the
    // identity Secret current in the management cluster, and the agent copies it.
    let account: strata_shared::cloud_account::CloudAccount = Api::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|a: &strata_shared::cloud_account::CloudAccount| {
            a.spec.cloud_type.as_str() == cloud.name
        })
        .unwrap();
    let account_secret = account.spec.secret_ref.clone().unwrap().name;
    let key = strata_shared::cloud_account::required_secret_keys(account.spec.cloud_type)
        .last()
        .unwrap()
        .to_string();
    let rotated = format!("rotated-{}", std::process::id());
    let mut values: Vec<(String, String)> = Api::<Secret>::namespaced(client.clone(), ns)
        .get(&account_secret)
        .await
        .unwrap()
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    for (k, v) in values.iter_mut() {
        if *k == key {
            *v = rotated.clone();
        }
    }
    let pairs: Vec<(&str, &str)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    strata_e2e::management::apply_secret(&client, ns, &account_secret, &pairs)
        .await
        .unwrap();
    let rotated_copy = eventually(
        "the rotated credentials in the workload cluster",
        Duration::from_secs(150),
        || {
            let w = w.clone();
            let rotated = rotated.clone();
            let read = read_secret(w);
            async move {
                let data = read.await?;
                data.values()
                    .any(|v| String::from_utf8_lossy(&v.0).contains(&rotated))
                    .then_some(data)
            }
        },
    )
    .await;
    assert_eq!(
        read_secret(client.clone()).await.as_ref(),
        Some(&rotated_copy),
        "the workload cluster's identity Secret differs from the management cluster's"
    );
    if cloud.provider_namespace.is_some() {
        // Admitted by label (vSphere): the target namespace carries the label.
        let target_ns = Api::<Namespace>::all(w.clone())
            .get(&objects)
            .await
            .unwrap();
        let identity_json = serde_json::to_value(
            get_dynamic(
                &w,
                cloud.identity_api_version,
                cloud.identity_kind,
                None,
                &identity,
            )
            .await
            .unwrap(),
        )
        .unwrap();
        if identity_json
            .pointer("/spec/allowedNamespaces/selector")
            .is_some()
        {
            let labels = target_ns.metadata.labels.unwrap_or_default();
            assert_eq!(
                labels.get(OBJECTS_NAMESPACE_LABEL),
                Some(&objects),
                "the target namespace is not admitted by its identity"
            );
        }
    }

    // The target Cluster runs on, with the same machine.
    assert_target_unpaused(&w, &objects, name).await;
    let after = machine_instances(&w, &objects).await;
    for (machine, id) in &before {
        assert_eq!(
            after.get(machine),
            Some(id),
            "machine {machine} was replaced or lost its instance"
        );
    }

    // The scale-out to the revision's counts.
    let (control_plane, workers) = (cloud.control_plane_nodes, cloud.worker_nodes);
    let wc = eventually(
        "the cluster scaled out to its revision",
        Duration::from_secs(240),
        || async {
            let wc = cluster(&client, ns, name).await?;
            let status = wc.status.clone()?;
            let ready = status.control_plane.as_ref()?.ready == control_plane
                && status.workers.as_ref()?.ready == workers;
            ready.then_some(wc)
        },
    )
    .await;
    assert_eq!(
        wc.status.as_ref().unwrap().phase,
        Some(ClusterPhase::Pivoted)
    );
    let all = machine_instances(&w, &objects).await;
    assert_eq!(
        all.len() as i64,
        control_plane + workers,
        "machines in the target: {all:?}"
    );
    for (machine, id) in &before {
        assert_eq!(
            all.get(machine),
            Some(id),
            "machine {machine} was replaced during the scale-out"
        );
    }
    let kept_by_source: Vec<String> = journal
        .objects
        .values()
        .filter(|e| e.global)
        .map(|e| e.describe())
        .collect();
    eprintln!(
        "{}: pivoted {} objects in {:.0?} (kept in the management cluster: {}), scaled out to {control_plane}+{workers} in {:.0?}",
        cloud.name,
        journal.objects.len(),
        pivoted_after,
        kept_by_source.join(", "),
        started.elapsed()
    );
    if cloud.moves_back {
        // The move back adopts the identity the management cluster kept (the agent may
        // only read it there).
        moves_back_when_deleted(&env, &mut controller, &kubeconfig, ns, name, &w, &all).await;
        eprintln!(
            "{}: moved back and deleted in {:.0?}",
            cloud.name,
            started.elapsed()
        );
    }
}
