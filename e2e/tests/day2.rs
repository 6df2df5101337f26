//! Day 2 after the pivot: a new revision reaches the pivoted cluster through its agent, in
//! order. A new version of the sample profiles moves Kubernetes up one minor version,
//! upgrades the chart layer and drops the manifest layer: a watcher on the cluster's
//! Machines sees every control-plane machine at the new version and ready before the first
//! worker changes, and never a worker newer than the control plane; the layers change only
//! after the workers. Then worker pools are added, resized and removed, a chart's values
//! overridden while the site is cut off from management (applied once the link returns)
//! and rolled back (`spec.rollbackTo`); a rollback that would take Kubernetes down and a
//! jump of two minor versions are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::{Value, json};
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::dynamic_objects::{list_objects, resource};
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, SYSTEM_NAMESPACE, ensure_namespace,
    publish_pack,
};
use strata_e2e::pivoted_cluster::first_control_plane_node;
use strata_e2e::samples::{apply_sample, copy_sample_pack};
use strata_e2e::site_link::route_through_proxy;
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{cluster, condition, describe, wait_phase};
use strata_shared::cluster::{ClusterPhase, LayerPhase, WorkloadCluster};
use strata_shared::contracts::capi::{MACHINE, MACHINE_DEPLOYMENT};
use strata_shared::contracts::names::objects_namespace;
use strata_shared::revision::{ClusterRevision, revision_name};
use strata_shared::version::PackVersion;

const NS: &str = "strata-demo";
const NAME: &str = "demo";
const OLD: &str = "v1.20.2";
const NEW: &str = "v1.21.14";

/// What the watcher knows of one Machine.
#[derive(Debug, Clone, PartialEq)]
struct MachineState {
    control_plane: bool,
    version: String,
    ready: bool,
    deleting: bool,
    created: Timestamp,
}

fn machine_state(machine: &DynamicObject) -> MachineState {
    let data = &machine.data;
    let ready = data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
    MachineState {
        control_plane: machine
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("cluster.x-k8s.io/control-plane")),
        version: data
            .pointer("/spec/version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        ready,
        deleting: machine.metadata.deletion_timestamp.is_some(),
        created: machine
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
    }
}

/// The watcher's record: every Machine as last seen, a violation of "no worker newer than
/// the control plane" if one was ever seen, and when the control plane and the workers
/// were first all at the new version and ready.
#[derive(Debug, Default)]
struct Record {
    machines: BTreeMap<String, MachineState>,
    violation: Option<String>,
    control_plane_done: Option<Timestamp>,
    workers_done: Option<Timestamp>,
    first_new_worker: Option<Timestamp>,
}

impl Record {
    fn clone_record(&self) -> Record {
        Record {
            machines: self.machines.clone(),
            violation: self.violation.clone(),
            control_plane_done: self.control_plane_done,
            workers_done: self.workers_done,
            first_new_worker: self.first_new_worker,
        }
    }

    fn seen(&mut self, name: String, state: Option<MachineState>, expected: (usize, usize)) {
        match state {
            Some(state) => {
                if !state.control_plane && state.version == NEW && self.first_new_worker.is_none() {
                    self.first_new_worker = Some(state.created);
                }
                self.machines.insert(name, state);
            }
            None => {
                self.machines.remove(&name);
            }
        }
        let live: Vec<&MachineState> = self.machines.values().filter(|m| !m.deleting).collect();
        let lowest_control_plane = live
            .iter()
            .filter(|m| m.control_plane)
            .map(|m| m.version.as_str())
            .min_by(|a, b| by_version(a, b));
        let newest_worker = live
            .iter()
            .filter(|m| !m.control_plane)
            .map(|m| m.version.as_str())
            .max_by(|a, b| by_version(a, b));
        if let (Some(control_plane), Some(worker)) = (lowest_control_plane, newest_worker)
            && by_version(worker, control_plane).is_gt()
            && self.violation.is_none()
        {
            self.violation = Some(format!(
                "a worker at {worker} while a control-plane machine is at {control_plane}: {:?}",
                self.machines
            ));
        }
        let all_new_and_ready = |control_plane: bool, count: usize| {
            let of_role: Vec<&&MachineState> = live
                .iter()
                .filter(|m| m.control_plane == control_plane)
                .collect();
            of_role.len() == count && of_role.iter().all(|m| m.version == NEW && m.ready)
        };
        if self.control_plane_done.is_none() && all_new_and_ready(true, expected.0) {
            self.control_plane_done = Some(Timestamp::now());
        }
        if self.workers_done.is_none() && all_new_and_ready(false, expected.1) {
            self.workers_done = Some(Timestamp::now());
        }
    }
}

fn by_version(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |v: &str| PackVersion::parse(v).ok();
    parse(a).cmp(&parse(b))
}

/// Records every Machine of the cluster's objects namespace in the workload cluster.
fn watch_machines(w: Client, namespace: String, expected: (usize, usize)) -> Arc<Mutex<Record>> {
    let record = Arc::new(Mutex::new(Record::default()));
    let writing = record.clone();
    let api: Api<DynamicObject> =
        Api::namespaced_with(w, &namespace, &resource(MACHINE.api_version, MACHINE.kind));
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            let Ok(event) = event else { continue };
            let mut record = writing.lock().unwrap();
            match event {
                watcher::Event::Apply(m) | watcher::Event::InitApply(m) => {
                    let name = m.metadata.name.clone().unwrap_or_default();
                    record.seen(name, Some(machine_state(&m)), expected);
                }
                watcher::Event::Delete(m) => {
                    let name = m.metadata.name.clone().unwrap_or_default();
                    record.seen(name, None, expected);
                }
                watcher::Event::Init | watcher::Event::InitDone => {}
            }
        }
    });
    record
}

fn applied(wc: &WorkloadCluster) -> Option<i64> {
    wc.status.as_ref().and_then(|s| s.applied_revision)
}

/// Waits for the cluster to report revision `number` applied; returns it with each rollout
/// step it reported on the way.
async fn wait_applied(client: &Client, number: i64) -> (WorkloadCluster, Vec<String>) {
    let steps: Arc<Mutex<Vec<String>>> = Arc::default();
    let wc = eventually(
        &format!("revision {number} applied"),
        Duration::from_secs(600),
        || {
            let (client, steps) = (client.clone(), steps.clone());
            async move {
                let wc = cluster(&client, NS, NAME).await?;
                if let Some(rollout) = wc.status.as_ref().and_then(|s| s.rollout.as_ref())
                    && rollout.revision == number
                {
                    let mut seen = steps.lock().unwrap();
                    if seen.last() != Some(&rollout.step) {
                        eprintln!(
                            "revision {number}: {} {}: {}",
                            rollout.step,
                            rollout.state,
                            rollout.message.as_deref().unwrap_or_default()
                        );
                        seen.push(rollout.step.clone());
                    }
                }
                (applied(&wc) == Some(number)).then_some(wc)
            }
        },
    )
    .await;
    let steps = steps.lock().unwrap().clone();
    (wc, steps)
}

async fn set_spec(client: &Client, spec: Value) {
    Api::<WorkloadCluster>::namespaced(client.clone(), NS)
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

/// The worker pools' MachineDeployments: name → replicas.
async fn pools(w: &Client, objects: &str) -> BTreeMap<String, i64> {
    list_objects(
        w,
        objects,
        MACHINE_DEPLOYMENT.api_version,
        MACHINE_DEPLOYMENT.kind,
    )
    .await
    .into_iter()
    .map(|d| {
        (
            d.metadata.name.clone().unwrap_or_default(),
            d.data
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(-1),
        )
    })
    .collect()
}

#[tokio::test]
async fn a_new_revision_rolls_the_control_plane_then_the_workers_then_the_layers() {
    let _stop = StopWorkloads;
    let env = ManagementEnv::start(ManagementOptions::named("day2"))
        .await
        .unwrap();
    let client = env.client();
    let objects = objects_namespace(NS, NAME);

    // The next Kubernetes minor version and the next hello-chart in the registry, and the
    // next versions of both sample profiles beside the ones the cluster starts on.
    let kubernetes = env.dir.path().join("kubernetes");
    copy_sample_pack("kubernetes", &kubernetes);
    let pack_json = std::fs::read_to_string(kubernetes.join("pack.json")).unwrap();
    std::fs::write(
        kubernetes.join("pack.json"),
        pack_json.replace("\"version\": \"1.20.2\"", "\"version\": \"1.21.14\""),
    )
    .unwrap();
    publish_pack(&env.registry, &kubernetes).await.unwrap();
    // And one two minor versions further, which no cluster may jump to.
    let far = env.dir.path().join("kubernetes-far");
    copy_sample_pack("kubernetes", &far);
    std::fs::write(
        far.join("pack.json"),
        pack_json.replace("\"version\": \"1.20.2\"", "\"version\": \"1.23.17\""),
    )
    .unwrap();
    publish_pack(&env.registry, &far).await.unwrap();
    // The sample CNI supports Kubernetes up to 1.22: a version of it that supports 1.23, so
    // that the jump is refused for the jump and not for the stack.
    let cni = env.dir.path().join("cni-calico");
    copy_sample_pack("cni-calico", &cni);
    let cni_json = std::fs::read_to_string(cni.join("pack.json")).unwrap();
    std::fs::write(
        cni.join("pack.json"),
        cni_json
            .replace("\"version\": \"3.19.0\"", "\"version\": \"3.20.0\"")
            .replace("\"maxVersion\": \"1.22\"", "\"maxVersion\": \"1.24\""),
    )
    .unwrap();
    publish_pack(&env.registry, &cni).await.unwrap();
    let chart = env.dir.path().join("hello-chart");
    copy_sample_pack("hello-chart", &chart);
    for file in ["pack.json", "charts/hello-web/Chart.yaml"] {
        let text = std::fs::read_to_string(chart.join(file)).unwrap();
        std::fs::write(chart.join(file), text.replace("0.3.0", "0.4.0")).unwrap();
    }
    let values = std::fs::read_to_string(chart.join("values.yaml")).unwrap();
    std::fs::write(
        chart.join("values.yaml"),
        values.replace(
            "replicaCount: 3",
            "replicaCount: 3\n    greeting: Hello from 0.4.0",
        ),
    )
    .unwrap();
    publish_pack(&env.registry, &chart).await.unwrap();
    apply_sample(&client, "profiles/sim-infra.yaml", SYSTEM_NAMESPACE, |d| {
        d["metadata"]["name"] = json!("sim-infra-1-1-0");
        d["spec"]["name"] = json!("sim-infra");
        d["spec"]["version"] = json!("1.1.0");
        d["spec"]["layers"][1]["version"] = json!("1.21.14");
    })
    .await;
    apply_sample(&client, "profiles/sim-infra.yaml", SYSTEM_NAMESPACE, |d| {
        d["metadata"]["name"] = json!("sim-infra-1-3-0");
        d["spec"]["name"] = json!("sim-infra");
        d["spec"]["version"] = json!("1.3.0");
        d["spec"]["layers"][1]["version"] = json!("1.23.17");
        d["spec"]["layers"][2]["version"] = json!("3.20.0");
    })
    .await;
    apply_sample(&client, "profiles/sim-addons.yaml", SYSTEM_NAMESPACE, |d| {
        d["metadata"]["name"] = json!("sim-addons-1-1-0");
        d["spec"]["name"] = json!("sim-addons");
        d["spec"]["version"] = json!("1.1.0");
        d["spec"]["layers"] = json!([{ "name": "hello-chart", "version": "0.4.0" }]);
    })
    .await;

    ensure_namespace(&client, NS).await.unwrap();
    apply_sample(&client, "clusters/sim-demo.yaml", NS, |_| {}).await;
    let controller = ControllerProcess::start(
        env.control_plane.kubeconfig_path(),
        env.dir.path(),
        "controller",
        &[],
    )
    .unwrap();
    let (workload, _) = first_control_plane_node(&env, &objects, NAME).await;
    let w = workload.client();
    wait_phase(
        &env,
        &controller,
        NS,
        NAME,
        ClusterPhase::Pivoted,
        Duration::from_secs(300),
    )
    .await;
    let (wc, steps) = wait_applied(&client, 1).await;
    assert_eq!(steps, ["ScaleOut"], "{}", describe(Some(&wc)));
    assert_eq!(
        wc.status.as_ref().unwrap().layers_summary.as_deref(),
        Some("4/4")
    );

    // Revision 2: Kubernetes 1.21, hello-chart 0.4.0, hello-manifests gone.
    let record = watch_machines(w.clone(), objects.clone(), (3, 2));
    eventually(
        "the watcher has every machine",
        Duration::from_secs(30),
        || async { (record.lock().unwrap().machines.len() == 5).then_some(()) },
    )
    .await;
    set_spec(
        &client,
        json!({ "profiles": [
            { "name": "sim-infra", "version": "1.1.0" },
            { "name": "sim-addons", "version": "1.1.0" },
        ]}),
    )
    .await;
    let (wc, steps) = wait_applied(&client, 2).await;
    let status = wc.status.as_ref().unwrap();
    assert_eq!(status.revision, Some(2));
    assert!(status.rollout.is_none(), "{}", describe(Some(&wc)));
    assert_eq!(steps, ["ControlPlane", "Workers", "Layers"]);
    let record = record.lock().unwrap().clone_record();
    assert_eq!(record.violation, None);
    let live: Vec<&MachineState> = record.machines.values().filter(|m| !m.deleting).collect();
    assert_eq!(live.len(), 5, "{:?}", record.machines);
    assert!(
        live.iter().all(|m| m.version == NEW && m.ready),
        "{:?}",
        record.machines
    );
    // Every machine was replaced: none at the old version is left.
    assert!(
        record.machines.values().all(|m| m.version != OLD),
        "{:?}",
        record.machines
    );
    let control_plane_done = record.control_plane_done.unwrap();
    let first_new_worker = record.first_new_worker.unwrap();
    assert!(
        first_new_worker >= control_plane_done,
        "a new worker at {first_new_worker} before the control plane was done at {control_plane_done}"
    );
    let workers_done = record.workers_done.unwrap();
    // The layers after the workers: the chart upgraded (its Ready transition after the
    // workers were done), the manifest layer uninstalled.
    let layers = &status.layers;
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["cni-calico", "csi-hostpath", "hello-chart"]);
    let chart_layer = &layers[2];
    assert_eq!(
        (chart_layer.version.as_str(), chart_layer.state),
        ("0.4.0", LayerPhase::Ready)
    );
    let upgraded_at = chart_layer.last_transition_time.as_ref().unwrap().0;
    assert!(
        upgraded_at >= workers_done,
        "hello-chart Ready at {upgraded_at}, workers done at {workers_done}"
    );
    let greeting = eventually(
        "the upgraded chart's ConfigMap",
        Duration::from_secs(30),
        || async {
            let configs: Api<ConfigMap> = Api::namespaced(w.clone(), "hello-web");
            let config = configs.get_opt("hello-web-hello-web").await.ok()??;
            config.data?.get("greeting").cloned()
        },
    )
    .await;
    assert_eq!(greeting, "Hello from 0.4.0");
    let universe: Api<ConfigMap> = Api::namespaced(w.clone(), "hello-universe");
    assert!(
        universe
            .get_opt("hello-universe-config")
            .await
            .unwrap()
            .is_none()
    );

    // Revision 3: pool general resized 2 → 1 and a pool batch added; revision 4: batch
    // removed.
    set_spec(
        &client,
        json!({ "nodePools": { "controlPlane": wc.spec.node_pools.control_plane, "workers": [
            { "name": "general", "count": 1, "machine": wc.spec.node_pools.workers[0].machine },
            { "name": "batch", "count": 1, "machine": wc.spec.node_pools.workers[0].machine },
        ]}}),
    )
    .await;
    wait_applied(&client, 3).await;
    assert_eq!(
        pools(&w, &objects).await,
        BTreeMap::from([(format!("{NAME}-batch"), 1), (format!("{NAME}-general"), 1)])
    );
    set_spec(
        &client,
        json!({ "nodePools": { "controlPlane": wc.spec.node_pools.control_plane, "workers": [
            { "name": "general", "count": 1, "machine": wc.spec.node_pools.workers[0].machine },
        ]}}),
    )
    .await;
    let (wc, _) = wait_applied(&client, 4).await;
    assert_eq!(
        pools(&w, &objects).await,
        BTreeMap::from([(format!("{NAME}-general"), 1)])
    );
    let machines = list_objects(&w, &objects, MACHINE.api_version, MACHINE.kind).await;
    let workers: Vec<&DynamicObject> = machines
        .iter()
        .filter(|m| !machine_state(m).control_plane)
        .collect();
    assert_eq!(workers.len(), 1, "{machines:?}");
    let workers_status = wc.status.as_ref().unwrap().workers.clone().unwrap();
    assert_eq!((workers_status.desired, workers_status.ready), (1, 1));

    // Revision 5, the chart's values overridden, is published while the site is cut off
    // from management: the site keeps revision 4 and applies 5 once the link is back.
    let proxy = route_through_proxy(&env, &w).await;
    proxy.cut();
    set_spec(
        &client,
        json!({ "overrides": [{
            "pack": "hello-chart",
            "values": "charts:\n  hello-web:\n    greeting: Hello from an override\n",
        }]}),
    )
    .await;
    eventually("revision 5 published", Duration::from_secs(60), || async {
        let wc = cluster(&client, NS, NAME).await?;
        (wc.status?.revision == Some(5)).then_some(())
    })
    .await;
    // Longer than the agent's round (its revision follower reads management every few
    // seconds): had the revision reached the site, the greeting would have changed.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(greeting_of(&w).await, "Hello from 0.4.0");
    let cut_off = cluster(&client, NS, NAME).await.unwrap();
    assert_eq!(applied(&cut_off), Some(4), "{}", describe(Some(&cut_off)));
    // Management shows what is pending and what it will do.
    let pending = cut_off.status.as_ref().unwrap().pending.clone().unwrap();
    assert_eq!((pending.revision, pending.from), (5, Some(4)));
    assert!(
        pending.summary.contains("1 layer reconfigured"),
        "{}",
        pending.summary
    );
    proxy.restore();
    wait_applied(&client, 5).await;
    assert_eq!(greeting_of(&w).await, "Hello from an override");
    eventually("nothing pending", Duration::from_secs(60), || async {
        let wc = cluster(&client, NS, NAME).await?;
        wc.status?.pending.is_none().then_some(())
    })
    .await;

    // Revision 6: rolled back to revision 4's content, which restores the chart's own
    // greeting through the same ordered path.
    set_spec(&client, json!({ "rollbackTo": 4 })).await;
    let (wc, steps) = wait_applied(&client, 6).await;
    assert_eq!(
        steps.last().map(String::as_str),
        Some("Layers"),
        "{steps:?}"
    );
    let (status, reason, message) = condition(&wc, "RevisionPublished");
    assert_eq!((status, reason), ("True", "Published"), "{message}");
    assert!(
        message.contains("revision 6") && message.contains("the content of revision 4"),
        "{message}"
    );
    assert_eq!(
        eventually(
            "the greeting of revision 4",
            Duration::from_secs(60),
            || async {
                let greeting = greeting_of(&w).await;
                (greeting == "Hello from 0.4.0").then_some(greeting)
            },
        )
        .await,
        "Hello from 0.4.0"
    );
    let revisions: Api<ClusterRevision> = Api::namespaced(client.clone(), &objects);
    let six = revisions.get(&revision_name(NAME, 6)).await.unwrap();
    let four = revisions.get(&revision_name(NAME, 4)).await.unwrap();
    assert_eq!(six.spec.rollback_of, Some(4));
    assert_eq!(six.spec.content_hash, four.spec.content_hash);

    // A rollback to revision 1 would take Kubernetes from 1.21 down to 1.20: refused with
    // the rule, nothing published, the cluster stays on revision 6.
    set_spec(&client, json!({ "rollbackTo": 1 })).await;
    let refused = eventually("the rollback refused", Duration::from_secs(60), || async {
        let wc = cluster(&client, NS, NAME).await?;
        let (_, reason, message) = condition(&wc, "RevisionPublished");
        (reason == "UpgradeRefused").then(|| message.to_string())
    })
    .await;
    assert!(
        refused.contains("Kubernetes never goes down") && refused.contains("revision 6"),
        "{refused}"
    );
    assert!(
        revisions
            .get_opt(&revision_name(NAME, 7))
            .await
            .unwrap()
            .is_none()
    );

    // Without the rollback, a profile version two Kubernetes minors ahead (1.21 → 1.23) is
    // refused the same way.
    set_spec(
        &client,
        json!({ "rollbackTo": null, "profiles": [
            { "name": "sim-infra", "version": "1.3.0" },
            { "name": "sim-addons", "version": "1.1.0" },
        ]}),
    )
    .await;
    let jump = eventually("the jump refused", Duration::from_secs(60), || async {
        let wc = cluster(&client, NS, NAME).await?;
        let (_, reason, message) = condition(&wc, "RevisionPublished");
        (reason == "UpgradeRefused" && message.contains("1.23")).then(|| message.to_string())
    })
    .await;
    assert!(
        jump.contains("one Kubernetes minor version at a time") && jump.contains("revision 6"),
        "{jump}"
    );
    assert!(
        revisions
            .get_opt(&revision_name(NAME, 7))
            .await
            .unwrap()
            .is_none()
    );
}

/// The greeting the hello-chart layer's ConfigMap carries now.
async fn greeting_of(w: &Client) -> String {
    let configs: Api<ConfigMap> = Api::namespaced(w.clone(), "hello-web");
    configs
        .get("hello-web-hello-web")
        .await
        .unwrap()
        .data
        .unwrap_or_default()
        .get("greeting")
        .cloned()
        .unwrap_or_default()
}
