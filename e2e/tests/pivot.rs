//! The pivot end to end: the controller provisions a sim cluster's first control-plane
//! node and installs the agent; the agent (a real process in the workload cluster) moves
//! the cluster's CAPI objects into its own cluster, where a second simulator continues
//! the cluster without replacing a machine, then scales it to its revision and reports
//! Pivoted and the node counts back.
//!
//! The agent installs the workload cluster's provider components itself: the CAPI and
//! sim CRDs copied from the management cluster, and the simulator as the provider
//! controllers' Deployment, which the process kubelet runs as a `strata-sim-cloud` process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use strata_e2e::agent_endpoints::{self, sample};
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::dynamic_objects::{get_dynamic, list_objects};
use strata_e2e::loss_watch::{watch_for_loss, watched_objects};
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, ensure_namespace,
};
use strata_e2e::move_checks::{assert_target_unpaused, check_moved_objects, move_steps};
use strata_e2e::pivoted_cluster::{
    first_control_plane_node, machine_instances, moves_back_when_deleted,
};
use strata_e2e::samples::apply_sample;
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{
    ToldEvent, cluster, condition, describe, events_of, wait_phase,
};
use strata_shared::cluster::ClusterPhase;
use strata_shared::cluster::ledger::{ClusterLedger, PivotLatch};
use strata_shared::conditions::find;
use strata_shared::contracts::names::{
    AGENT_NAME, AGENT_NAMESPACE, PROVIDER_NAME, PROVIDER_NAMESPACE, SITE_EXPORT_SECRET,
    objects_namespace, pivot_journal_name,
};
use strata_shared::pack::archive::unpack_archive;
use strata_shared::pivot::backup::{Backup, BackupFiles, MANIFEST_FILE, read_backup};
use strata_shared::pivot::journal::{MoveJournal, MovePhase};
use strata_shared::pivot::site_export::{EXPORT_DATA_KEY, EXPORT_LIMITS, pack};
use strata_shared::pivot::site_export_parts::{EXPORT_PART_KEY, join, part_secret_name, read_head};

#[tokio::test]
async fn a_sim_cluster_pivots_into_itself_and_scales_out() {
    pivots(false).await;
}

/// The agent exits (as if killed) right after each step of the move, before recording it:
/// every step is then done twice, by two processes, and the move must still converge.
#[tokio::test]
async fn a_move_killed_after_every_step_converges_and_loses_nothing() {
    pivots(true).await;
}

async fn pivots(crash_after_every_step: bool) {
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
    // The disaster-recovery variant reclaims its cluster once the lost agent is seen
    // silent: sooner than the default 90 s.
    let silence: &[&str] = if crash_after_every_step {
        &["--agent-silence-seconds", "30"]
    } else {
        &[]
    };
    let mut controller = ControllerProcess::start(
        env.control_plane.kubeconfig_path(),
        env.dir.path(),
        "controller",
        silence,
    )
    .unwrap();

    // The workload cluster's provider components, once its control plane runs.
    let (workload, before) = first_control_plane_node(&env, &objects, name).await;
    let w = workload.client();
    if crash_after_every_step {
        // The agent's Deployment gets the fault injection (the controller's apply leaves an
        // env var of another field manager alone); the process kubelet restarts it with it.
        let deployments: Api<Deployment> = Api::namespaced(w.clone(), AGENT_NAMESPACE);
        eventually("the agent Deployment", Duration::from_secs(120), || async {
            deployments.get_opt(AGENT_NAME).await.ok().flatten()
        })
        .await;
        strata_e2e::process_kubelet::require_fault_hooks();
        let patch = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": AGENT_NAME, "namespace": AGENT_NAMESPACE },
            "spec": { "template": { "spec": { "containers": [{
                "name": "agent",
                "env": [
                    { "name": "STRATA_MOVE_EXIT_AFTER", "value": "1" },
                    // Its export of about 20 KB goes in parts of 8 KiB, as one past what a
                    // Secret holds would.
                    { "name": "STRATA_EXPORT_PART_BYTES", "value": "8192" },
                ],
            }]}}},
        });
        deployments
            .patch(
                AGENT_NAME,
                &PatchParams::apply("e2e-crash"),
                &Patch::Apply(&patch),
            )
            .await
            .unwrap();
    }
    let watched = watched_objects(name, before.keys());
    // CAPI writes the kubeconfig a moment after the control plane answers.
    eventually(
        "the cluster's kubeconfig Secret",
        Duration::from_secs(60),
        || async {
            Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &objects)
                .get_opt(&format!("{name}-kubeconfig"))
                .await
                .ok()
                .flatten()
        },
    )
    .await;
    if !crash_after_every_step {
        // The admin kubeconfig from the management side while CAPI's Secret is there.
        let (_, said) = eventually(
            "strata cluster kubeconfig before the pivot",
            Duration::from_secs(60),
            || async { kubeconfig_from_management(&env, ns, name).await },
        )
        .await;
        assert!(
            said.contains(&format!("from Secret {objects}/{name}-kubeconfig")),
            "{said}"
        );
        describe_before_the_pivot(&env, ns, name, &objects, before.keys());
        // The dry run: the plan, and nothing changed (the management cluster's CRDs stand in
        // for the target's; no agent runs yet).
        // What a move would change first: the Cluster's spec (its pause, which bumps the
        // generation) and annotations. Its status goes on changing with CAPI's work.
        let touched = |c: DynamicObject| (c.metadata.generation, c.metadata.annotations);
        let cluster_before = touched(
            get_dynamic(
                &client,
                "cluster.x-k8s.io/v1beta2",
                "Cluster",
                Some(&objects),
                name,
            )
            .await
            .unwrap(),
        );
        let kubeconfig = env.control_plane.kubeconfig_path();
        let output =
            std::process::Command::new(strata_e2e::process_kubelet::default_agent_binary())
                .arg("plan")
                .arg("--source-kubeconfig")
                .arg(kubeconfig)
                .arg("--target-kubeconfig")
                .arg(kubeconfig)
                .args(["--namespace", &objects, "--cluster", name])
                .output()
                .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            text.starts_with(&format!("move of Cluster {objects}/{name} (")),
            "{text}"
        );
        assert!(text.contains("group 1:\n"), "{text}");
        assert!(
            text.contains(&format!("  Secret {objects}/{name}-kubeconfig")),
            "{text}"
        );
        for machine in before.keys() {
            assert!(
                text.contains(&format!("  Machine {objects}/{machine} (status restored)")),
                "{text}"
            );
        }
        let cluster_after = touched(
            get_dynamic(
                &client,
                "cluster.x-k8s.io/v1beta2",
                "Cluster",
                Some(&objects),
                name,
            )
            .await
            .unwrap(),
        );
        assert_eq!(
            cluster_before, cluster_after,
            "the dry run changed the Cluster"
        );
    }
    let (watcher, stop_watching) =
        watch_for_loss(client.clone(), w.clone(), objects.clone(), watched);

    let wc = wait_phase(
        &env,
        &controller,
        ns,
        name,
        ClusterPhase::Pivoted,
        Duration::from_secs(240),
    )
    .await;
    let _ = stop_watching.send(true);
    let lost = watcher.await.unwrap();

    // The agent installed the providers from their packs: the CRDs of the core, kubeadm
    // and sim providers the management cluster serves (not the other clouds'), clusterctl's
    // inventory of them, and the simulator as their controllers, run as a process.
    let crd_names = |c: Client| async move {
        let crds: Api<CustomResourceDefinition> = Api::all(c);
        let mut names: Vec<String> = crds
            .list(&ListParams::default().labels("clusterctl.cluster.x-k8s.io"))
            .await
            .unwrap()
            .items
            .iter()
            .map(|c| c.name_any())
            .collect();
        names.sort();
        names
    };
    let for_sim = |name: &String| {
        !["vsphere", "aws", "azure"]
            .iter()
            .any(|cloud| name.starts_with(cloud))
    };
    let management_crds: Vec<String> = crd_names(client.clone())
        .await
        .into_iter()
        .filter(for_sim)
        .collect();
    assert!(management_crds.len() > 10, "{management_crds:?}");
    assert_eq!(crd_names(w.clone()).await, management_crds);
    let inventory: Api<kube::api::DynamicObject> = Api::all_with(
        w.clone(),
        &strata_e2e::dynamic_objects::resource("clusterctl.cluster.x-k8s.io/v1alpha3", "Provider"),
    );
    let mut listed: Vec<String> = inventory
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| {
            format!(
                "{}/{} {} {}",
                p.namespace().unwrap_or_default(),
                p.name_any(),
                p.data["type"].as_str().unwrap_or(""),
                p.data["version"].as_str().unwrap_or("")
            )
        })
        .collect();
    listed.sort();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        listed,
        vec![
            "capi-kubeadm-bootstrap-system/bootstrap-kubeadm BootstrapProvider v1.11.0".to_string(),
            "capi-kubeadm-control-plane-system/control-plane-kubeadm ControlPlaneProvider v1.11.0"
                .to_string(),
            "capi-system/cluster-api CoreProvider v1.11.0".to_string(),
            format!("capi-system/infrastructure-sim InfrastructureProvider v{version}"),
        ]
    );
    let providers = format!("{PROVIDER_NAMESPACE}/{PROVIDER_NAME}");
    let kubelet = env.agents_of(&objects, name).unwrap();
    assert!(
        kubelet
            .processes()
            .iter()
            .any(|p| p.deployment == providers && p.pid.is_some()),
        "{providers} is not running: {:?}",
        kubelet.processes()
    );
    assert_eq!(
        condition(&wc, "Pivoted").0,
        "True",
        "{}",
        describe(Some(&wc))
    );

    // Nothing of the cluster is left in the management cluster; all of it is in the target.
    for kind in ["Cluster", "Machine", "MachineSet", "MachineDeployment"] {
        assert!(
            list_objects(&client, &objects, "cluster.x-k8s.io/v1beta2", kind)
                .await
                .is_empty(),
            "{kind} left in the source"
        );
    }
    assert!(
        list_objects(
            &client,
            &objects,
            "controlplane.cluster.x-k8s.io/v1beta2",
            "KubeadmControlPlane"
        )
        .await
        .is_empty()
    );
    assert!(
        list_objects(
            &client,
            &objects,
            "infrastructure.cluster.x-k8s.io/v1beta2",
            "SimMachine"
        )
        .await
        .is_empty()
    );
    assert_target_unpaused(&w, &objects, name).await;
    let journal: ConfigMap = Api::namespaced(w.clone(), AGENT_NAMESPACE)
        .get(&pivot_journal_name(name))
        .await
        .unwrap();
    let journal: MoveJournal = strata_e2e::move_checks::journal_of_map(&w, &journal)
        .await
        .unwrap();
    assert_eq!(journal.phase, MovePhase::Done);
    let moved: Vec<String> = journal.objects.values().map(|e| e.describe()).collect();
    assert!(
        lost.is_empty(),
        "objects were lost during the move: {lost:?}; the move had {moved:?}"
    );
    // Every moved object exists once in the target, with the source's content, and not in
    // the source any more (unless the source keeps it).
    check_moved_objects(&client, &w, &journal).await;
    if crash_after_every_step {
        let agents = env.agents_of(&objects, name).unwrap().processes();
        let restarts: u32 = agents.iter().map(|p| p.restarts).sum();
        // Every process records one step and leaves the next done but unrecorded.
        let steps = move_steps(&journal);
        assert!(
            restarts as usize + 1 >= steps,
            "the agent was restarted {restarts} times; the move has about {steps} steps"
        );
        eprintln!(
            "the move survived {restarts} crashes ({} objects in {} groups)",
            journal.objects.len(),
            journal.groups.len()
        );
    }

    // The same machine continues; the cluster scales out to its revision.
    let after = machine_instances(&w, &objects).await;
    for (machine, id) in &before {
        assert_eq!(
            after.get(machine),
            Some(id),
            "machine {machine} was replaced or lost its instance"
        );
    }
    // The control plane grows past its first node only once the CNI layer runs (kubeadm's
    // nodes are NotReady until then), and that layer waits for the agent's restarts: on
    // two shared cores beside other clusters this took over 240 s once.
    let wc = eventually(
        "three control-plane and two worker nodes ready",
        Duration::from_secs(420),
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
    // Its story, as `kubectl describe wc` tells it: the phases in order, each Normal.
    let told = events_of(&client, ns, name).await;
    let phases: Vec<&ToldEvent> = told
        .iter()
        .filter(|e| e.note.starts_with("phase "))
        .collect();
    let at = |reasons: &[&str]| {
        phases
            .iter()
            .position(|e| reasons.contains(&e.reason.as_str()))
    };
    let (provisioning, agent, pivoted) = (
        at(&["Provisioning"]),
        at(&["InstallingAgent", "AgentInstalled"]),
        at(&["Pivoted"]),
    );
    assert!(
        provisioning.is_some() && provisioning < agent && agent < pivoted,
        "{told:#?}"
    );
    assert!(phases.iter().all(|e| e.type_ == "Normal"), "{told:#?}");
    let all = machine_instances(&w, &objects).await;
    assert_eq!(all.len(), 5, "{all:?}");
    for (machine, id) in &before {
        assert_eq!(
            all.get(machine),
            Some(id),
            "machine {machine} was replaced during the scale-out"
        );
    }
    if crash_after_every_step {
        restored_from_its_export(&env, &objects, name, &w, &all).await;
    } else {
        // After the pivot CAPI's Secret is in the workload cluster: the kubeconfig comes from
        // the site's export, and reaches the workload cluster.
        let (_, said) = eventually(
            "strata cluster kubeconfig from the site's export",
            Duration::from_secs(120),
            || async {
                kubeconfig_from_management(&env, ns, name)
                    .await
                    .filter(|(_, said)| said.contains("the site's export"))
            },
        )
        .await;
        assert!(said.contains("strata-site-export"), "{said}");
        kubeconfig_bad_input(&env, ns).await;
        cluster_views(&env, ns, name);
        agent_endpoints_report_its_work(&env, &objects, name).await;
        moves_back_when_deleted(
            &env,
            &mut controller,
            env.control_plane.kubeconfig_path(),
            ns,
            name,
            &w,
            &all,
        )
        .await;
    }
}

/// `strata cluster kubeconfig` from the management cluster, once it works: the kubeconfig
/// (checked to reach the workload cluster's API server) and what the command said.
async fn kubeconfig_from_management(
    env: &ManagementEnv,
    ns: &str,
    name: &str,
) -> Option<(String, String)> {
    let file = env.dir.path().join("workload-admin.kubeconfig");
    let output = std::process::Command::new(strata_e2e::management::strata_binary())
        .args(["cluster", "kubeconfig", &format!("{ns}/{name}")])
        .arg("--kubeconfig")
        .arg(env.control_plane.kubeconfig_path())
        .arg("-o")
        .arg(&file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr).to_string();
    if !output.status.success() {
        eprintln!("strata cluster kubeconfig: {said}");
        return None;
    }
    let text = std::fs::read_to_string(&file).unwrap();
    let workload = strata_e2e::control_plane::client_from_kubeconfig_text(&text, name)
        .await
        .unwrap();
    Api::<k8s_openapi::api::core::v1::Namespace>::all(workload)
        .get("kube-system")
        .await
        .unwrap();
    Some((text, said))
}

/// `strata cluster kubeconfig` on an unknown cluster, with a credential the management
/// cluster refuses, and with a management cluster that does not answer: each an error that
/// says so, and nothing written.
async fn kubeconfig_bad_input(env: &ManagementEnv, ns: &str) {
    let run = |kubeconfig: &std::path::Path, cluster: &str| {
        let file = env.dir.path().join("not-written.kubeconfig");
        let result = strata_e2e::cli_run::run(
            std::process::Command::new(strata_e2e::management::strata_binary())
                .args(["cluster", "kubeconfig", cluster])
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .arg("-o")
                .arg(&file),
        );
        assert!(!file.exists(), "{result:?}");
        result
    };
    let (ok, text) = run(env.control_plane.kubeconfig_path(), &format!("{ns}/nope"));
    assert!(
        !ok && text.contains(&format!("there is no WorkloadCluster {ns}/nope")),
        "{text}"
    );
    let refused = env.dir.path().join("refused.kubeconfig");
    std::fs::write(
        &refused,
        env.control_plane
            .kubeconfig_for_token("nobody", "not-a-token"),
    )
    .unwrap();
    let (ok, text) = run(&refused, &format!("{ns}/demo"));
    assert!(
        !ok && text.contains(&format!("cannot read WorkloadCluster {ns}/demo"))
            && text.contains("401"),
        "{text}"
    );
    let unreachable = env.dir.path().join("unreachable.kubeconfig");
    let dead = env
        .control_plane
        .kubeconfig_for_token("nobody", "x")
        .replace(env.control_plane.server(), "https://127.0.0.1:9");
    std::fs::write(&unreachable, dead).unwrap();
    let (ok, text) = run(&unreachable, &format!("{ns}/demo"));
    assert!(
        !ok && text.contains(&format!("cannot read WorkloadCluster {ns}/demo")),
        "{text}"
    );
}

/// `strata cluster list` and `status` of the pivoted cluster, as text and JSON, and of an
/// unknown one.
fn cluster_views(env: &ManagementEnv, ns: &str, name: &str) {
    let strata = |args: &[&str]| {
        strata_e2e::cli_run::run(
            std::process::Command::new(strata_e2e::management::strata_binary())
                .args(["cluster"])
                .args(args)
                .arg("--kubeconfig")
                .arg(env.control_plane.kubeconfig_path()),
        )
    };
    let (ok, text) = strata(&["list"]);
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("{ns} ")) && l.contains(&format!(" {name} ")));
    assert!(
        ok && text.starts_with("NAMESPACE")
            && row.is_some_and(|r| r.contains(" sim ")
                && r.contains(" Pivoted ")
                && r.contains("3/3")),
        "{text}"
    );
    let (ok, text) = strata(&["list", "-n", ns, "-o", "json"]);
    assert!(ok, "{text}");
    let lines: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(lines[0]["name"], json!(name), "{text}");
    assert_eq!(lines[0]["phase"], json!("Pivoted"), "{text}");
    assert_eq!(lines[0]["workers"], json!("2/2"), "{text}");
    let (ok, text) = strata(&["status", &format!("{ns}/{name}")]);
    assert!(
        ok && text.contains("\nCONDITIONS\n") && text.contains("  Ready "),
        "{text}"
    );
    let (ok, text) = strata(&["status", &format!("{ns}/nope")]);
    assert!(
        !ok && text.contains(&format!("there is no WorkloadCluster {ns}/nope")),
        "{text}"
    );
    list_in_yaml_says_what_json_says(env, ns);
    describe_after_the_pivot(env, ns, name);
    describe_bad_input(env, ns, name);
}

/// `strata cluster describe` of `cluster` (NAMESPACE/NAME) against the management cluster,
/// with `args` after it.
fn strata_describe(env: &ManagementEnv, cluster: &str, args: &[&str]) -> (bool, String) {
    strata_e2e::cli_run::run(
        std::process::Command::new(strata_e2e::management::strata_binary())
            .args(["cluster", "describe", cluster])
            .args(args)
            .arg("--kubeconfig")
            .arg(env.control_plane.kubeconfig_path()),
    )
}

/// The node of `kind` among the children of `node` in `describe -o json`.
fn described_child<'a>(node: &'a Value, kind: &str) -> &'a Value {
    node["children"]
        .as_array()
        .and_then(|children| children.iter().find(|c| c["kind"] == kind))
        .unwrap_or_else(|| panic!("no {kind} under {node:#}"))
}

/// Before the pivot `describe` reads the CAPI objects in the management cluster: the
/// control plane and its first machine, where they are, and why there are no workers yet.
fn describe_before_the_pivot<'a>(
    env: &ManagementEnv,
    ns: &str,
    name: &str,
    objects: &str,
    machines: impl Iterator<Item = &'a String>,
) {
    let machines: Vec<&String> = machines.collect();
    assert!(!machines.is_empty());
    let cluster = format!("{ns}/{name}");
    let (ok, text) = strata_describe(env, &cluster, &[]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        ok && lines[0].split_whitespace().collect::<Vec<_>>()
            == ["NAME", "READY", "SEVERITY", "REASON", "SINCE", "MESSAGE"]
            && lines[1].starts_with(&format!("WorkloadCluster {cluster} (")),
        "{text}"
    );
    for expected in [
        format!("├─Cluster {name}"),
        format!("│ └─KubeadmControlPlane {name}-control-plane ("),
        "│ └─no MachineDeployment in the management cluster: the agent creates the worker pools after the pivot".to_string(),
        "└─Conditions".to_string(),
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(&expected)),
            "no line starts with {expected:?}:\n{text}"
        );
    }
    // Under the Cluster: its first note, or its second once the agent's move is granted.
    let namespace_note = format!("─in the management cluster, namespace {objects}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("│ ") && l.ends_with(&namespace_note)),
        "{text}"
    );
    for machine in &machines {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("│   ├─Machine {machine} ("))
                    || l.starts_with(&format!("│   └─Machine {machine} ("))),
            "machine {machine} is not under its control plane:\n{text}"
        );
    }
    let (ok, json) = strata_describe(env, &cluster, &["-o", "json"]);
    assert!(ok, "{json}");
    let root: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(root["kind"], "WorkloadCluster", "{json}");
    assert_eq!(root["name"], json!(cluster), "{json}");
    let control_plane = described_child(
        described_child(&root, "ControlPlane"),
        "KubeadmControlPlane",
    );
    assert_eq!(
        control_plane["name"],
        json!(format!("{name}-control-plane"))
    );
    assert_eq!(control_plane["source"], "management", "{json}");
    let read: Vec<&str> = control_plane["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "Machine" && m["source"] == "management")
        .filter_map(|m| m["name"].as_str())
        .collect();
    for machine in &machines {
        assert!(
            read.contains(&machine.as_str()),
            "{machine} not in {read:?}"
        );
    }
    assert_eq!(described_child(&root, "Cluster")["source"], "management");
}

/// After the pivot `describe` shows the site's counts and says where the machines are; the
/// machines are the site's export's, marked so.
fn describe_after_the_pivot(env: &ManagementEnv, ns: &str, name: &str) {
    let cluster = format!("{ns}/{name}");
    let (ok, text) = strata_describe(env, &cluster, &[]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        ok && lines[0].starts_with("NAME ")
            && lines[0].ends_with("MESSAGE")
            && lines[1].starts_with(&format!("WorkloadCluster {cluster} (Pivoted) ")),
        "{text}"
    );
    for expected in [
        format!("├─ClusterRevision {name}-r"),
        "├─Layers (revision ".to_string(),
        format!("├─Cluster {name}"),
        format!(
            "│ ├─in the workload cluster since the pivot; `strata cluster kubeconfig {cluster}` reaches it"
        ),
        "│ └─shown from the site's export taken at ".to_string(),
        "├─ControlPlane (3/3 ready, as the site reports)".to_string(),
        "├─Workers (2/2 ready, as the site reports)".to_string(),
        "│ └─KubeadmControlPlane ".to_string(),
        "  ├─Condition ".to_string(),
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(&expected)),
            "no line starts with {expected:?}:\n{text}"
        );
    }
    let (ok, json) = strata_describe(env, &cluster, &["-o", "json"]);
    assert!(ok, "{json}");
    let root: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (
            &root["kind"],
            &root["name"],
            &root["detail"],
            &root["ready"]
        ),
        (
            &json!("WorkloadCluster"),
            &json!(cluster),
            &json!("Pivoted"),
            &json!("True")
        ),
        "{json}"
    );
    let kinds: Vec<&str> = root["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["kind"].as_str())
        .collect();
    for kind in [
        "ClusterRevision",
        "Layers",
        "Cluster",
        "ControlPlane",
        "Workers",
        "Conditions",
    ] {
        assert!(kinds.contains(&kind), "{kind} not in {kinds:?}");
    }
    let control_plane = described_child(&root, "ControlPlane");
    assert_eq!(control_plane["source"], "site", "{json}");
    assert_eq!(control_plane["detail"], "3/3 ready, as the site reports");
    // The export lags the cluster by a moment; its first control-plane machine is there.
    let kcp = described_child(control_plane, "KubeadmControlPlane");
    assert_eq!(kcp["source"], "siteExport", "{json}");
    assert!(
        kcp["children"].as_array().is_some_and(|m| m
            .iter()
            .any(|m| m["kind"] == "Machine" && m["source"] == "siteExport")),
        "{json}"
    );
    let pivoted = described_child(&root, "Conditions")["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Pivoted")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (&pivoted["ready"], &pivoted["source"]),
        (&json!("True"), &json!("site")),
        "{json}"
    );
    let (ok, yaml) = strata_describe(env, &cluster, &["-o", "yaml"]);
    assert!(ok, "{yaml}");
    let from_yaml: Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(from_yaml["kind"], "WorkloadCluster", "{yaml}");
    assert_eq!(
        described_child(&from_yaml, "ControlPlane")["detail"],
        "3/3 ready, as the site reports"
    );
}

/// `describe` of an unknown cluster, with a credential the management cluster refuses, and
/// with a management cluster that does not answer: each an error that says which.
fn describe_bad_input(env: &ManagementEnv, ns: &str, name: &str) {
    let (ok, text) = strata_describe(env, &format!("{ns}/nope"), &[]);
    assert!(
        !ok && text.contains(&format!("there is no WorkloadCluster {ns}/nope")),
        "{text}"
    );
    let (ok, text) = strata_describe(env, "no-slash", &[]);
    assert!(
        !ok && text.contains("expected the WorkloadCluster as NAMESPACE/NAME"),
        "{text}"
    );
    // No access and no management cluster, for every command that reads clusters.
    let cluster = format!("{ns}/{name}");
    let refused = env.dir.path().join("views-refused.kubeconfig");
    std::fs::write(
        &refused,
        env.control_plane
            .kubeconfig_for_token("nobody", "not-a-token"),
    )
    .unwrap();
    let unreachable = env.dir.path().join("views-unreachable.kubeconfig");
    let dead = env
        .control_plane
        .kubeconfig_for_token("nobody", "x")
        .replace(env.control_plane.server(), "https://127.0.0.1:9");
    std::fs::write(&unreachable, dead).unwrap();
    let read_one = format!("cannot read WorkloadCluster {cluster}");
    let read_all = format!("cannot list the WorkloadClusters of namespace {ns}");
    for (args, expected) in [
        (vec!["describe", cluster.as_str()], read_one.as_str()),
        (vec!["status", cluster.as_str()], read_one.as_str()),
        (vec!["list", "-n", ns], read_all.as_str()),
    ] {
        for (kubeconfig, says) in [(&refused, Some("401")), (&unreachable, None)] {
            let (ok, text) = strata_e2e::cli_run::run(
                std::process::Command::new(strata_e2e::management::strata_binary())
                    .arg("cluster")
                    .args(&args)
                    .arg("--kubeconfig")
                    .arg(kubeconfig),
            );
            assert!(
                !ok && text.contains(expected) && says.is_none_or(|s| text.contains(s)),
                "strata cluster {args:?} with {}: {text}",
                kubeconfig.display()
            );
        }
    }
}

/// `list -o yaml` is the document `list -o json` is (but for the ages, which tick).
fn list_in_yaml_says_what_json_says(env: &ManagementEnv, ns: &str) {
    let list = |format: &str| {
        let (ok, text) = strata_e2e::cli_run::run(
            std::process::Command::new(strata_e2e::management::strata_binary())
                .args(["cluster", "list", "-n", ns, "-o", format])
                .arg("--kubeconfig")
                .arg(env.control_plane.kubeconfig_path()),
        );
        assert!(ok, "{text}");
        text
    };
    let without_ages = |mut lines: Value| {
        for line in lines.as_array_mut().unwrap() {
            line.as_object_mut().unwrap().remove("ageSeconds");
        }
        lines
    };
    let yaml = list("yaml");
    assert!(yaml.starts_with(&format!("- namespace: {ns}\n")), "{yaml}");
    let from_yaml: Value = serde_yaml::from_str(&yaml).unwrap();
    let from_json: Value = serde_json::from_str(&list("json")).unwrap();
    assert_eq!(without_ages(from_yaml), without_ages(from_json), "{yaml}");
}

/// The leading agent's `/metrics`, `/readyz` and `/healthz`, at its pod IP, say what it
/// does: it leads, holds the pivoted cluster and reaches the management cluster.
async fn agent_endpoints_report_its_work(env: &ManagementEnv, objects: &str, name: &str) {
    let agents = env.agents_of(objects, name).unwrap();
    let leader = eventually(
        "an agent whose /metrics says it leads and holds the cluster, with a working link",
        Duration::from_secs(60),
        || async {
            for agent in agents.processes() {
                let Ok(metrics) = agent_endpoints::get(&agent, "/metrics").await else {
                    continue;
                };
                let text = &metrics.body;
                let holding = sample(text, "strata_agent_leading") == Some(1.0)
                    && sample(text, r#"strata_agent_phase{phase="holding"}"#) == Some(1.0)
                    && sample(text, r#"strata_agent_phase{phase="pivoting"}"#) == Some(0.0)
                    && sample(text, r#"strata_agent_link{state="Connected"}"#) == Some(1.0)
                    && sample(text, r#"strata_agent_link_beats_total{state="Connected"}"#)
                        .is_some_and(|beats| beats >= 1.0);
                if metrics.status == 200 && holding {
                    return Some(agent);
                }
            }
            None
        },
    )
    .await;
    let ready = agent_endpoints::get(&leader, "/readyz").await.unwrap();
    assert_eq!((ready.status, ready.body.as_str()), (200, "ok (leading)\n"));
    let live = agent_endpoints::get(&leader, "/healthz").await.unwrap();
    assert_eq!((live.status, live.body.as_str()), (200, "ok\n"));
}

/// The site's copy of its objects, as the management cluster holds it: the export's
/// manifest and each object, read the way a restore reads them.
async fn export_in_management(client: &Client, objects: &str) -> Option<(Secret, Backup)> {
    let secret = Api::<Secret>::namespaced(client.clone(), objects)
        .get_opt(SITE_EXPORT_SECRET)
        .await
        .ok()
        .flatten()?;
    let head = read_head(secret.metadata.annotations.as_ref()).ok()?;
    let mut parts = vec![secret.data.as_ref()?.get(EXPORT_DATA_KEY)?.0.clone()];
    for index in 1..head.parts {
        let name = part_secret_name(SITE_EXPORT_SECRET, head.sha256.as_deref()?, index);
        let part = Api::<Secret>::namespaced(client.clone(), objects)
            .get_opt(&name)
            .await
            .ok()
            .flatten()?;
        parts.push(part.data?.get(EXPORT_PART_KEY)?.0.clone());
    }
    // Read while the agent writes a newer export: looked at again.
    let bytes = join(&head, &parts).ok()?;
    let dir = tempfile::tempdir().unwrap();
    let unpacked = dir.path().join("export");
    unpack_archive(bytes.as_slice(), &unpacked, &EXPORT_LIMITS).unwrap();
    let manifest = std::fs::read(unpacked.join(MANIFEST_FILE)).unwrap();
    let backup = read_backup(
        &manifest,
        |file| std::fs::read(unpacked.join(file)).map_err(|e| e.to_string()),
        None,
    )
    .unwrap();
    Some((secret, backup))
}

/// Machine name → status, in one copy of the cluster.
fn machine_statuses(backup: &Backup) -> BTreeMap<String, Value> {
    backup
        .objects
        .iter()
        .filter(|(entry, _)| entry.kind == "Machine")
        .map(|(entry, object)| (entry.name.clone(), object.json["status"].clone()))
        .collect()
}

/// Disaster recovery of a pivoted site from the copy its agent keeps in the management
/// cluster. The agent exported the cluster once it held it, and again once it grew to five
/// machines. Then the site's Cluster API is lost (its agent and providers stop for good, and
/// its CAPI objects are gone); an export that names a Role is refused with nothing written; the last export is restored
/// into the management cluster, paused, each status as exported; and once unpaused, the
/// management cluster's Cluster API carries the cluster on with the same five machines.
async fn restored_from_its_export(
    env: &ManagementEnv,
    objects: &str,
    name: &str,
    workload: &Client,
    machines: &BTreeMap<String, String>,
) {
    let client = env.client();
    let (_, backup) = eventually(
        "the site's export of its five machines in the management cluster",
        Duration::from_secs(180),
        || async {
            let (secret, backup) = export_in_management(&client, objects).await?;
            let exported = machine_statuses(&backup);
            let running = exported.len() == machines.len()
                && exported.values().all(|s| s["phase"] == "Running");
            running.then_some((secret, backup))
        },
    )
    .await;
    eprintln!(
        "the site's export: {} objects, in Secret {SITE_EXPORT_SECRET} and its parts",
        backup.objects.len()
    );
    assert!(
        backup.objects.iter().all(|(entry, _)| !entry.global),
        "a site's export holds no shared object"
    );

    // The agent's token, which the reclaim at the end revokes.
    let lost_token = strata_e2e::site_link::link_data(workload)
        .await
        .access
        .token;
    // The site's Cluster API is lost: its agent, then its providers, are gone.
    for (namespace, deployment) in [
        (AGENT_NAMESPACE, AGENT_NAME),
        (PROVIDER_NAMESPACE, PROVIDER_NAME),
    ] {
        Api::<Deployment>::namespaced(workload.clone(), namespace)
            .delete(deployment, &Default::default())
            .await
            .unwrap();
        let key = format!("{namespace}/{deployment}");
        let kubelet = env.agents_of(objects, name).unwrap();
        eventually(
            &format!("{key} stopped"),
            Duration::from_secs(60),
            || async {
                (!kubelet
                    .processes()
                    .iter()
                    .any(|p| p.deployment == key && p.pid.is_some()))
                .then_some(())
            },
        )
        .await;
    }

    // The last export the site wrote before it was lost: the agent may have written a
    // newer one than the one waited for.
    let (exported, backup) = export_in_management(&client, objects)
        .await
        .expect("the site's last export, read whole");
    assert_eq!(machine_statuses(&backup).len(), machines.len());

    // ...and so is its state, as a lost control plane's etcd would leave it: every object
    // the export names is gone from the site (released from its finalizers, deleted). The
    // workload's nodes run on, as surviving machines do.
    for (entry, _) in &backup.objects {
        let api: Api<DynamicObject> = Api::namespaced_with(
            workload.clone(),
            objects,
            &strata_e2e::dynamic_objects::resource(&entry.api_version, &entry.kind),
        );
        let released = api
            .patch(
                &entry.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
            )
            .await;
        if released.is_ok() {
            let _ = api.delete(&entry.name, &Default::default()).await;
        }
    }
    eventually(
        "the site's Cluster API objects gone",
        Duration::from_secs(60),
        || async {
            let left = machine_instances(workload, objects).await.len()
                + list_objects(workload, objects, "cluster.x-k8s.io/v1beta2", "Cluster")
                    .await
                    .len();
            (left == 0).then_some(())
        },
    )
    .await;

    let kubeconfig = env.control_plane.kubeconfig_path();
    let restore = || {
        strata_e2e::cli_run::run(
            std::process::Command::new(strata_e2e::process_kubelet::default_agent_binary())
                .arg("restore")
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["--from-export", &format!("strata-demo/{name}")]),
        )
    };
    // An export holding what the site's agent may not write (a Role) is refused, and
    // nothing is restored.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), objects);
    let mut tampered = BackupFiles {
        manifest: backup.manifest.clone(),
        files: backup
            .objects
            .iter()
            .map(|(entry, object)| {
                (
                    entry.file.clone(),
                    serde_json::to_vec_pretty(&object.json).unwrap(),
                )
            })
            .collect(),
    };
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": { "name": "site-admin", "namespace": objects, "uid": "role-uid" },
        "rules": [{ "apiGroups": ["*"], "resources": ["*"], "verbs": ["*"] }],
    });
    let role_bytes = serde_json::to_vec_pretty(&role).unwrap();
    let mut role_entry = backup.objects[0].0.clone();
    role_entry.file = "objects/9999-role-site-admin.json".into();
    role_entry.api_version = "rbac.authorization.k8s.io/v1".into();
    role_entry.kind = "Role".into();
    role_entry.name = "site-admin".into();
    role_entry.uid = "role-uid".into();
    role_entry.status_subresource = false;
    role_entry.sha256 = strata_shared::pack::archive::sha256_digest(&role_bytes);
    tampered.manifest.objects.push(role_entry);
    tampered
        .files
        .push(("objects/9999-role-site-admin.json".into(), role_bytes));
    let put = |bytes: Vec<u8>, annotations: Value| {
        let secrets = secrets.clone();
        async move {
            secrets
                .patch(
                    SITE_EXPORT_SECRET,
                    &PatchParams::default(),
                    &Patch::Merge(json!({
                        "metadata": { "annotations": annotations },
                        "data": { EXPORT_DATA_KEY: ByteString(bytes) },
                    })),
                )
                .await
                .unwrap();
        }
    };
    // The export the site wrote is in parts.
    let exported_head = read_head(exported.metadata.annotations.as_ref()).unwrap();
    assert!(exported_head.parts >= 2, "{exported_head:?}");
    let exported_sha = exported_head.sha256.clone().unwrap();
    eprintln!("the site's export is in {} parts", exported_head.parts);
    // A part changed: refused, naming the export, and nothing is restored.
    let part_name = part_secret_name(SITE_EXPORT_SECRET, &exported_sha, 1);
    let part = secrets.get(&part_name).await.unwrap();
    let mut changed = part.data.clone().unwrap()[EXPORT_PART_KEY].0.clone();
    changed[0] ^= 0xff;
    let put_part = |bytes: Vec<u8>| {
        let secrets = secrets.clone();
        let part_name = part_name.clone();
        async move {
            secrets
                .patch(
                    &part_name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "data": { EXPORT_PART_KEY: ByteString(bytes) } })),
                )
                .await
                .unwrap();
        }
    };
    put_part(changed).await;
    let (ok, text) = restore();
    assert!(
        !ok && text.contains("a part was changed, or belongs to another export")
            && text.contains("(nothing was restored)"),
        "{text}"
    );
    put_part(part.data.unwrap()[EXPORT_PART_KEY].0.clone()).await;
    // An export in one part that names a Role.
    let role_export = pack(&tampered).unwrap();
    put(
        role_export.clone(),
        json!({
            "strata.dev/export-parts": "1",
            "strata.dev/export-sha256": strata_shared::pack::archive::sha256_digest(&role_export),
        }),
    )
    .await;
    let reclaim = || {
        strata_e2e::cli_run::run(
            std::process::Command::new(strata_e2e::management::strata_binary())
                .args(["cluster", "reclaim", &format!("strata-demo/{name}")])
                .arg("--kubeconfig")
                .arg(kubeconfig),
        )
    };
    // Nothing restored yet: nothing to reclaim.
    let (ok, text) = reclaim();
    assert!(
        !ok && text.contains("restore the site's objects first"),
        "{text}"
    );
    let (ok, text) = restore();
    assert!(
        !ok && text.contains(&format!(
            "objects/9999-role-site-admin.json: Role {objects}/site-admin is of rbac.authorization.k8s.io/v1, which a site's agent may not write"
        )) && text.contains("(nothing was restored)"),
        "{text}"
    );
    assert!(machine_instances(&client, objects).await.is_empty());
    put(
        exported.data.as_ref().unwrap()[EXPORT_DATA_KEY].0.clone(),
        json!(exported.metadata.annotations),
    )
    .await;

    // Restored into the management cluster: paused, each status as exported.
    let (ok, text) = restore();
    assert!(ok && text.contains("paused: "), "{text}");
    let restored_cluster = || async {
        get_dynamic(
            &client,
            "cluster.x-k8s.io/v1beta2",
            "Cluster",
            Some(objects),
            name,
        )
        .await
        .unwrap()
    };
    let cluster = restored_cluster().await;
    assert_eq!(cluster.data["spec"]["paused"], json!(true));
    let (ok, text) = reclaim();
    assert!(
        !ok && text.contains("is paused: unpause it first"),
        "{text}"
    );
    let restored: BTreeMap<String, Value> =
        list_objects(&client, objects, "cluster.x-k8s.io/v1beta2", "Machine")
            .await
            .into_iter()
            .map(|m| (m.name_any(), m.data["status"].clone()))
            .collect();
    assert_eq!(restored, machine_statuses(&backup));

    // Unpaused, Cluster API in the management cluster carries on with the same machines.
    // The status restored is the site's, generation and all: the test removes its
    // observedGeneration first, so that only a status written anew shows that the
    // management cluster's simulator took the cluster over.
    let clusters = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        objects,
        &strata_e2e::dynamic_objects::resource("cluster.x-k8s.io/v1beta2", "Cluster"),
    );
    clusters
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "observedGeneration": null } })),
        )
        .await
        .unwrap();
    let unpaused = clusters
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "paused": false } })),
        )
        .await
        .unwrap();
    let generation = unpaused.metadata.generation.unwrap();
    eventually(
        "the restored Cluster reconciled and provisioned in the management cluster",
        Duration::from_secs(120),
        || async {
            let cluster = restored_cluster().await;
            let status = &cluster.data["status"];
            (status["observedGeneration"] == json!(generation) && status["phase"] == "Provisioned")
                .then_some(())
        },
    )
    .await;
    // A few passes of the management cluster's simulator, then the same five machines.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(&machine_instances(&client, objects).await, machines);

    pivoted_again(env, objects, name, workload, machines, &lost_token, reclaim).await;
}

/// The restored cluster is reclaimed and pivoted again: once the lost agent is seen silent,
/// `strata cluster reclaim` revokes its token and records round 2; the controller installs a
/// new agent, which keeps the rebuilt site's journal of round 1 aside, asks for its own move
/// and moves the same five machines back into the site.
async fn pivoted_again(
    env: &ManagementEnv,
    objects: &str,
    name: &str,
    workload: &Client,
    machines: &BTreeMap<String, String>,
    lost_token: &str,
    reclaim: impl Fn() -> (bool, String),
) {
    let client = env.client();
    let ns = "strata-demo";
    eventually(
        "the lost agent seen silent (AgentConnected=False)",
        Duration::from_secs(180),
        || async {
            let wc = cluster(&client, ns, name).await?;
            let connected = find(&wc.status?.conditions, "AgentConnected")?
                .status
                .clone();
            (connected == "False").then_some(())
        },
    )
    .await;
    let (ok, text) = reclaim();
    assert!(ok && text.contains(": round 2."), "{text}");
    assert!(
        text.contains("revoked every token of WorkloadCluster strata-demo/demo's lost agent"),
        "{text}"
    );
    let namespace = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .get(objects)
        .await
        .unwrap();
    let ledger = ClusterLedger::read(namespace.metadata.annotations.as_ref());
    // The new agent takes seconds to be installed and ask: not granted yet.
    assert_eq!(ledger.pivot, PivotLatch::Reclaimed);
    assert_eq!(ledger.round, 2);
    // A rerun finds it done.
    let (ok, text) = reclaim();
    assert!(
        ok && text.contains("was reclaimed already (round 2)"),
        "{text}"
    );
    let lost = env
        .control_plane
        .client_for_token(lost_token)
        .await
        .unwrap();
    match Api::<strata_shared::cluster::WorkloadCluster>::namespaced(lost, ns)
        .get(name)
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 401 => {}
        other => panic!("the lost agent's token still works after the reclaim: {other:?}"),
    }

    // The new agent moves the objects into the site again, in round 2. On a timeout the
    // ledger, the cluster's conditions and the agents' logs say where it stopped.
    let timeout = Duration::from_secs(420);
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let ledger = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .get(objects)
            .await
            .ok()
            .map(|n| ClusterLedger::read(n.metadata.annotations.as_ref()));
        let granted = ledger
            .as_ref()
            .is_some_and(|l| l.pivot == PivotLatch::Granted && l.round == 2);
        let wc = cluster(&client, ns, name).await;
        let moved = wc
            .as_ref()
            .and_then(|wc| wc.status.as_ref())
            .and_then(|s| find(&s.conditions, "Pivoted"))
            .is_some_and(|c| c.reason == "Moved");
        if granted && moved {
            break;
        }
        if std::time::Instant::now() >= deadline {
            let agents: Vec<String> = env
                .agents_of(objects, name)
                .map(|kubelet| kubelet.processes())
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    format!(
                        "--- agent {} (pid {:?}, restarts {}) ---\n{}",
                        p.pod_name,
                        p.pid,
                        p.restarts,
                        strata_e2e::control_plane::log_tail(&p.log, 40)
                    )
                })
                .collect();
            panic!(
                "the second move was not granted and done within {timeout:?}: ledger {ledger:?}; {}\n{}",
                describe(wc.as_ref()),
                agents.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(&machine_instances(workload, objects).await, machines);
    assert!(
        machine_instances(&client, objects).await.is_empty(),
        "the machines are gone from the management cluster"
    );
    let maps: Api<ConfigMap> = Api::namespaced(workload.clone(), AGENT_NAMESPACE);
    let journal = pivot_journal_name(name);
    let kept = maps
        .get(&format!("{journal}-round-1"))
        .await
        .expect("the round-1 journal kept aside");
    let kept_journal = strata_e2e::move_checks::journal_of_map(workload, &kept)
        .await
        .unwrap();
    assert_eq!(kept_journal.phase, MovePhase::Done);
    let current = maps.get(&journal).await.unwrap();
    assert_eq!(
        current
            .annotations()
            .get("strata.dev/pivot-round")
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(
        strata_e2e::move_checks::journal_of_map(workload, &current)
            .await
            .unwrap()
            .phase,
        MovePhase::Done
    );
    // The story tells the lost agent's silence, then the second pivot's phases.
    let second_pivot_told = |told: &[ToldEvent]| {
        let Some(silent) = told
            .iter()
            .position(|e| e.reason == "AgentSilent" && e.type_ == "Warning")
        else {
            return false;
        };
        let after: Vec<&str> = told[silent..]
            .iter()
            .filter(|e| e.note.starts_with("phase "))
            .map(|e| e.reason.as_str())
            .collect();
        after
            .iter()
            .position(|r| ["InstallingAgent", "AgentInstalled"].contains(r))
            .is_some_and(|agent| after[agent..].contains(&"Pivoted"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let told = loop {
        let told = events_of(&client, ns, name).await;
        if second_pivot_told(&told) {
            break told;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lost agent's silence and the second pivot are not told as events: {told:#?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    eprintln!(
        "the reclaimed cluster moved to its site again, round 2, with its five machines; its story: {told:#?}"
    );
}
