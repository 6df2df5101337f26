//! Provider packs when they are wrong (docs/providers.md): a pack the management cluster's
//! clusterctl inventory asks for that the registry lacks makes the cluster Invalid, naming
//! it, and nothing is applied; once the inventory and the registry agree again the
//! revision pins every provider. A provider pack whose components need a variable it does
//! not set stops its cluster before the move, and the agent says which variable on the
//! cluster's `Pivoted` condition. The happy path, a pivoted cluster whose providers come
//! from their packs, is `pivot.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::dynamic_objects::{list_objects, resource};
use strata_e2e::management::{ControllerProcess, ManagementEnv, ManagementOptions, publish_pack};
use strata_e2e::provider_packs::{SimulatedProvider, simulated_providers, write_pack};
use strata_e2e::samples::apply_small_sim_cluster;
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{cluster, describe};
use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::capi::CLUSTER;
use strata_shared::contracts::names::objects_namespace;
use strata_shared::provider::ProviderKind;
use strata_shared::revision::ClusterRevision;

const INVENTORY: &str = "clusterctl.cluster.x-k8s.io/v1alpha3";

fn sim_infrastructure() -> SimulatedProvider {
    simulated_providers()
        .into_iter()
        .find(|p| p.kind == ProviderKind::InfrastructureProvider && p.name == "sim")
        .unwrap()
}

/// Sets the version the inventory gives the sim infrastructure provider.
async fn inventory_version(client: &Client, version: &str) {
    let provider = sim_infrastructure();
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        provider.namespace,
        &resource(INVENTORY, "Provider"),
    );
    api.patch(
        "infrastructure-sim",
        &PatchParams::default(),
        &Patch::Merge(json!({ "version": version })),
    )
    .await
    .unwrap();
}

fn condition_of(wc: &WorkloadCluster, type_: &str) -> Option<(String, String, String)> {
    wc.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn a_provider_pack_the_registry_lacks_makes_the_cluster_invalid_naming_it() {
    let _stop = StopWorkloads;
    let env = ManagementEnv::start(ManagementOptions::named("provider-packs-missing"))
        .await
        .unwrap();
    let client = env.client();
    // The management cluster's sim provider was upgraded, its pack not published.
    inventory_version(&client, "v9.9.9").await;
    let (ns, name) = ("team-a", "no-pack");
    apply_small_sim_cluster(&client, ns, name, false).await;
    let _controller = ControllerProcess::start(
        env.control_plane.kubeconfig_path(),
        env.dir.path(),
        "controller",
        &[],
    )
    .unwrap();
    let (status, reason, message) = eventually(
        "the cluster Invalid for its provider pack",
        Duration::from_secs(60),
        || async {
            let wc = cluster(&client, ns, name).await?;
            condition_of(&wc, "Valid").filter(|(status, _, _)| status == "False")
        },
    )
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ProvidersUnresolved")
    );
    assert!(
        message.contains("clusterctl inventory: InfrastructureProvider sim")
            && message
                .contains("pack \"capi-provider-infrastructure-sim\" has no version \"9.9.9\"")
            && message.contains("versions there: 0.1.0"),
        "{message}"
    );
    let objects = objects_namespace(ns, name);
    assert!(
        list_objects(&client, &objects, CLUSTER.api_version, CLUSTER.kind)
            .await
            .is_empty(),
        "nothing is applied for a cluster whose providers cannot be pinned"
    );

    // The inventory and the registry agree again (the inventory is read again within 30 s):
    // the revision pins every provider the cluster runs after its move, in install order.
    inventory_version(&client, sim_infrastructure().version).await;
    let revision = eventually(
        "a revision with its providers",
        Duration::from_secs(90),
        || async {
            Api::<ClusterRevision>::namespaced(client.clone(), &objects)
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .next()
        },
    )
    .await;
    let pinned: Vec<String> = revision
        .spec
        .desired
        .providers
        .iter()
        .map(|p| format!("{} {}", p.pack, p.pack_version))
        .collect();
    assert_eq!(
        pinned,
        [
            "capi-provider-cluster-api 1.11.0",
            "capi-provider-bootstrap-kubeadm 1.11.0",
            "capi-provider-control-plane-kubeadm 1.11.0",
            &format!(
                "capi-provider-infrastructure-sim {}",
                env!("CARGO_PKG_VERSION")
            ),
        ]
    );
    assert!(
        revision
            .spec
            .desired
            .providers
            .iter()
            .all(|p| p.digest.starts_with("sha256:")),
        "{:?}",
        revision.spec.desired.providers
    );
    // The status follows the revision in the same reconcile, a moment later.
    eventually(
        "the cluster Valid again",
        Duration::from_secs(30),
        || async {
            let wc = cluster(&client, ns, name).await?;
            (condition_of(&wc, "Valid")?.0 == "True").then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_provider_variable_without_a_value_stops_the_cluster_before_its_move() {
    let _stop = StopWorkloads;
    let env = ManagementEnv::start(ManagementOptions::named("provider-packs-variable"))
        .await
        .unwrap();
    let client = env.client();
    // The sim infrastructure pack published again without a value for SIM_IMAGE, which
    // its controllers' manifest needs.
    let work = tempfile::tempdir().unwrap();
    let crds = Api::<CustomResourceDefinition>::all(client.clone())
        .list(&ListParams::default().labels("clusterctl.cluster.x-k8s.io"))
        .await
        .unwrap()
        .items;
    let dir = work.path().join("broken");
    write_pack(&sim_infrastructure(), &crds, "fast", &dir).unwrap();
    std::fs::write(
        dir.join("values.yaml"),
        "pack:\n  namespace: capi-system\nvariables:\n  SIM_SPEED: fast\n",
    )
    .unwrap();
    publish_pack(&env.registry, &dir).await.unwrap();

    let (ns, name) = ("team-b", "no-variable");
    apply_small_sim_cluster(&client, ns, name, false).await;
    let controller = ControllerProcess::start(
        env.control_plane.kubeconfig_path(),
        env.dir.path(),
        "controller",
        &[],
    )
    .unwrap();
    let objects = objects_namespace(ns, name);
    let message = eventually(
        "the agent to say which variable has no value",
        Duration::from_secs(240),
        || async {
            env.run_agents_of(&objects, name).await.ok()?;
            let wc = cluster(&client, ns, name).await?;
            condition_of(&wc, "Pivoted")
                .filter(|(_, reason, message)| {
                    reason == "InstallingProviders" && message.contains("cannot install")
                })
                .map(|c| c.2)
        },
    )
    .await;
    assert!(
        message.contains("capi-provider-infrastructure-sim")
            && message.contains("manifests/controllers.yaml")
            && message.contains("variables without a value: SIM_IMAGE"),
        "{message}\ncontroller log: {}",
        controller.log.display()
    );
    // The providers before it were installed; the objects did not move.
    let capi_clusters = list_objects(&client, &objects, CLUSTER.api_version, CLUSTER.kind).await;
    assert_eq!(
        capi_clusters.len(),
        1,
        "the Cluster is still in the management cluster"
    );
    let wc = cluster(&client, ns, name).await.unwrap();
    assert_ne!(
        wc.status.as_ref().and_then(|s| s.phase),
        Some(strata_shared::cluster::ClusterPhase::Pivoted),
        "{}",
        describe(Some(&wc))
    );
}
