//! Strata installed from its Helm chart (`manifests/chart/strata`) with the real Helm
//! engine into a substrate control plane, where the process kubelet runs the controller
//! from the chart's Deployment, with the chart's service account and rights: it leads,
//! answers `/readyz` and provisions a sample cluster through its pivot; `helm upgrade` to a
//! changed value rolls it. Also: the committed renderings (`scripts/render-manifests.sh`)
//! are what the chart renders, and the values schema refuses bad values by name.
//!
//! Needs the engine library (`scripts/helm-engine.sh`) and the Kubernetes binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::management::{
    ManagementEnv, ManagementOptions, SYSTEM_NAMESPACE, apply_sample_profiles,
    publish_sample_packs, repo_root, strata_binary,
};
use strata_e2e::process_kubelet::{
    AgentProcess, ClusterAccess, ImageBinaries, ProcessKubelet, default_agent_binary,
};
use strata_e2e::samples::apply_small_sim_cluster;
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{cluster, describe};
use strata_shared::cluster::ClusterPhase;
use strata_shared::contracts::names::objects_namespace;

const CHART: &str = "manifests/chart/strata";
const CONTROLLER: &str = "strata-system/strata-controller";

struct Run {
    ok: bool,
    text: String,
}

fn helm(kubeconfig: Option<&Path>, args: &[&str]) -> Run {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_helm"));
    command.current_dir(repo_root()).args(args);
    if let Some(kubeconfig) = kubeconfig {
        command.arg("--kubeconfig").arg(kubeconfig);
    }
    let (ok, text) = strata_e2e::cli_run::run(&mut command);
    Run { ok, text }
}

fn values_file(dir: &Path, name: &str, values: &serde_json::Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_yaml::to_string(values).unwrap()).unwrap();
    path.display().to_string()
}

#[test]
fn the_committed_renderings_are_what_the_chart_and_the_types_generate() {
    let output = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/render-manifests.sh"))
        .arg("--check")
        .env("STRATA_BIN_DIR", strata_binary().parent().unwrap())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_values_schema_and_the_templates_refuse_bad_values_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            json!({}),
            "managementServer is required: the management API server's URL",
        ),
        (
            json!({"managementServer": "https://m:6443", "replicaCount": "two"}),
            "at '/replicaCount': got string, want integer",
        ),
        (
            json!({"managementServer": "https://m:6443", "agent": {"tokenSeconds": 60}}),
            "at '/agent/tokenSeconds': minimum: got 60, want 600",
        ),
        (
            json!({"managementServer": "https://m:6443", "providers": {"registry": "Not A Name"}}),
            "/providers/registry",
        ),
        (
            json!({"managementServer": "http://m:6443"}),
            "/managementServer",
        ),
        (
            json!({"managementServer": "https://m:6443", "packRegistries": [
                {"name": "r", "endpoint": "h", "existingSecret": "s",
                 "credentials": {"username": "u", "password": "p"}}]}),
            "packRegistries r: give credentials or existingSecret, not both",
        ),
        (
            json!({"managementServer": "https://m:6443",
                   "metrics": {"service": {"enabled": false}, "serviceMonitor": {"enabled": true}}}),
            "metrics.serviceMonitor.enabled needs metrics.service.enabled",
        ),
    ];
    for (i, (values, expected)) in cases.iter().enumerate() {
        let file = values_file(dir.path(), &format!("bad-{i}.yaml"), values);
        let run = helm(None, &["template", "strata", CHART, "-f", &file]);
        assert!(
            !run.ok && run.text.contains(expected),
            "values {values} should be refused with {expected:?}; helm said:\n{}",
            run.text
        );
    }
}

#[test]
fn the_options_render_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let values = json!({
        "managementServer": "https://m.example:6443",
        "managementCA": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "imageRegistry": "registry.example:5000/strata/",
        "image": {"repository": "strata", "tag": "1.2.3"},
        "agent": {"image": {"repository": "strata-agent"}},
        "providers": {"registry": "capi-packs"},
        "controller": {"watchNamespace": "team-a", "extraArgs": ["--cache-dir=/var/cache/strata"]},
        "packRegistries": [{"name": "packs", "endpoint": "registry.example:5000",
                            "basePath": "p", "default": true,
                            "credentials": {"username": "u", "password": "p w"}}],
        "metrics": {"serviceMonitor": {"enabled": true, "labels": {"release": "prom"}}},
    });
    let file = values_file(dir.path(), "full.yaml", &values);
    let run = helm(
        None,
        &[
            "template",
            "strata",
            CHART,
            "--namespace",
            "ops",
            "-f",
            &file,
        ],
    );
    assert!(run.ok, "{}", run.text);
    let documents = documents(&run.text);
    let kinds: BTreeSet<String> = documents
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "ConfigMap/strata-management-ca",
        "Deployment/strata-controller",
        "PackRegistry/packs",
        "Secret/packs-credentials",
        "Service/strata-controller-metrics",
        "ServiceMonitor/strata-controller",
    ] {
        assert!(
            kinds.contains(expected),
            "{expected} missing from {kinds:?}"
        );
    }
    let deployment = documents
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        "registry.example:5000/strata/strata:1.2.3"
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for expected in [
        "--management-server=https://m.example:6443",
        "--management-ca-file=/etc/strata/management-ca/ca.crt",
        "--agent-image=registry.example:5000/strata/strata-agent:0.1.0",
        "--namespace=team-a",
        "--provider-registry=capi-packs",
        "--cache-dir=/var/cache/strata",
    ] {
        assert!(args.contains(&expected), "{expected} missing from {args:?}");
    }
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(
        deployment["spec"]["template"]["metadata"]["annotations"]
            ["strata.dev/management-ca-sha256"]
            .is_string(),
        "a CA change must roll the replicas"
    );
    let registry = documents
        .iter()
        .find(|d| d["kind"] == "PackRegistry")
        .unwrap();
    assert_eq!(registry["metadata"]["namespace"], "ops");
    assert_eq!(
        registry["spec"]["credentialsSecretRef"]["name"],
        "packs-credentials"
    );
    assert_eq!(registry["spec"]["default"], true);
    let monitor = documents
        .iter()
        .find(|d| d["kind"] == "ServiceMonitor")
        .unwrap();
    assert_eq!(monitor["metadata"]["labels"]["release"], "prom");
    let binding = documents
        .iter()
        .find(|d| d["kind"] == "ClusterRoleBinding")
        .unwrap();
    assert_eq!(binding["subjects"][0]["namespace"], "ops");
}

fn documents(text: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| <serde_json::Value as serde::Deserialize>::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

async fn lease_holder(client: &kube::Client) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), SYSTEM_NAMESPACE)
        .get_opt("strata-controller")
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
}

fn controllers(kubelet: &ProcessKubelet) -> Vec<AgentProcess> {
    kubelet
        .processes()
        .into_iter()
        .filter(|p| p.deployment == CONTROLLER)
        .collect()
}

fn logs(kubelet: &ProcessKubelet) -> String {
    controllers(kubelet)
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!(
                "--- {} (pid {:?}, restarts {}, last error {:?}) ---\n{}",
                p.pod_name,
                p.pid,
                p.restarts,
                p.last_error,
                tail.join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The replica that holds the Lease, once one does and answers `/readyz` with 200.
async fn ready_leader(
    client: &kube::Client,
    kubelet: &ProcessKubelet,
    timeout: Duration,
) -> AgentProcess {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(holder) = lease_holder(client).await
            && let Some(leader) = controllers(kubelet)
                .into_iter()
                .find(|p| p.pod_name == holder && p.pid.is_some())
        {
            let url = format!("http://{}:8080/readyz", leader.pod_ip);
            if let Ok(response) = reqwest::get(&url).await
                && response.status().as_u16() == 200
            {
                return leader;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no replica of the chart's controller leads and answers /readyz within {timeout:?}\n{}",
            logs(kubelet)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_chart_installs_a_controller_that_leads_provisions_and_rolls_on_upgrade() {
    strata_e2e::registry::ensure_rustls_provider().unwrap();
    let _stop = StopWorkloads;
    let env = ManagementEnv::start(ManagementOptions {
        strata: false,
        ..ManagementOptions::named("chart")
    })
    .await
    .unwrap();
    let client = env.client();
    publish_sample_packs(&env.registry).await.unwrap();
    strata_e2e::management::install_provider_packs(&client, &env.registry, "fast")
        .await
        .unwrap();
    let kubeconfig = env.control_plane.kubeconfig_path();

    let mut values = json!({
        "managementServer": env.control_plane.server(),
        "managementCA": env.control_plane.ca_pem(),
        "image": {"tag": "e2e"},
        "agent": {"image": {"tag": "e2e"}},
        "packRegistries": [{
            "name": "samples",
            "endpoint": env.registry.host(),
            "basePath": "samples",
            "default": true,
            "caBundle": env.registry.ca_pem().unwrap_or_default(),
            "credentials": {"username": env.registry.username(), "password": env.registry.password()},
        }],
    });
    let file = values_file(env.dir.path(), "values.yaml", &values);
    let install = helm(
        Some(kubeconfig),
        &[
            "upgrade",
            "--install",
            "strata",
            CHART,
            "--namespace",
            SYSTEM_NAMESPACE,
            "--create-namespace",
            "-f",
            &file,
        ],
    );
    assert!(install.ok, "helm install: {}", install.text);
    // The chart's crds/ went in first: its PackRegistry is there.
    let registries: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        SYSTEM_NAMESPACE,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "strata.dev",
            "v1alpha1",
            "PackRegistry",
        )),
    );
    assert!(registries.get_opt("samples").await.unwrap().is_some());
    apply_sample_profiles(&client).await.unwrap();

    let kubelet = ProcessKubelet::start_with(
        ClusterAccess::of(&env.control_plane),
        ImageBinaries::with_controller(default_agent_binary(), strata_binary()),
    )
    .unwrap();
    let leader = ready_leader(&client, &kubelet, Duration::from_secs(90)).await;
    assert_eq!(
        controllers(&kubelet).len(),
        2,
        "the chart's two replicas run\n{}",
        logs(&kubelet)
    );

    // A sample cluster, provisioned and pivoted by the chart's controller alone.
    let (namespace, name) = ("chart-demo", "small");
    apply_small_sim_cluster(&client, namespace, name, false).await;
    let objects = objects_namespace(namespace, name);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        env.run_agents_of(&objects, name).await.unwrap();
        let found = cluster(&client, namespace, name).await;
        if found
            .as_ref()
            .and_then(|c| c.status.as_ref())
            .and_then(|s| s.phase)
            == Some(ClusterPhase::Pivoted)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{namespace}/{name} was not pivoted by the chart's controller: {}\n{}",
            describe(found.as_ref()),
            logs(&kubelet)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // helm upgrade with a changed value rolls every replica, and one leads again.
    let before: BTreeSet<u32> = controllers(&kubelet).iter().filter_map(|p| p.pid).collect();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let generation = deployments
        .get("strata-controller")
        .await
        .unwrap()
        .metadata
        .generation;
    values["controller"] = json!({"logLevel": "debug"});
    let file = values_file(env.dir.path(), "values-2.yaml", &values);
    let upgrade = helm(
        Some(kubeconfig),
        &[
            "upgrade",
            "strata",
            CHART,
            "--namespace",
            SYSTEM_NAMESPACE,
            "-f",
            &file,
        ],
    );
    assert!(upgrade.ok, "helm upgrade: {}", upgrade.text);
    let rolled = deployments.get("strata-controller").await.unwrap();
    assert!(
        rolled.metadata.generation > generation,
        "the upgrade changed the pod template"
    );
    let env_of_pod = &rolled.spec.unwrap().template.spec.unwrap().containers[0];
    assert!(
        env_of_pod
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "RUST_LOG" && e.value.as_deref() == Some("debug")),
        "the new value reached the Deployment"
    );
    eventually(
        "every replica replaced after the upgrade",
        Duration::from_secs(60),
        || async {
            let now: Vec<u32> = controllers(&kubelet).iter().filter_map(|p| p.pid).collect();
            (now.len() == 2 && now.iter().all(|p| !before.contains(p))).then_some(())
        },
    )
    .await;
    let new_leader = ready_leader(&client, &kubelet, Duration::from_secs(90)).await;
    assert!(
        !before.contains(&new_leader.pid.unwrap()),
        "the leader after the upgrade ({new_leader:?}) is a new process, not {leader:?}"
    );
    let history = helm(
        Some(kubeconfig),
        &[
            "history",
            "strata",
            "--namespace",
            SYSTEM_NAMESPACE,
            "-o",
            "json",
        ],
    );
    assert!(history.ok, "{}", history.text);
    let revisions: serde_json::Value = serde_json::from_str(&history.text).unwrap();
    assert_eq!(
        revisions.as_array().map(Vec::len),
        Some(2),
        "{}",
        history.text
    );
}
