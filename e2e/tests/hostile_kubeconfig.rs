//! A site that writes a hostile `<cluster>-kubeconfig` into its objects namespace (its agent
//! may write Secrets there) gets nothing from the controller: no command runs, no file is
//! read for it, no request goes where the site points, the cluster's AgentInstalled
//! condition says `UnsafeKubeconfig`, and nothing the hostile kubeconfig names or would
//! print reaches a place the site can read. The real kubeconfig put back, the controller
//! uses it again.
//!
//! The simulated cloud writes `<cluster>-kubeconfig` back whenever it differs from the
//! workload cluster's (as CAPI's controllers do), so the test pauses the CAPI Cluster once
//! the pin is recorded; the controller's apply leaves `spec.paused` alone. The agent is
//! installed but not run (and no provider image is given), so nothing moves meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::connection_trap::ConnectionTrap;
use strata_e2e::dynamic_objects::resource;
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, ensure_namespace,
};
use strata_e2e::samples::apply_sample;
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{cluster, condition, wait_phase_before_pivot};
use strata_shared::cluster::ClusterPhase;
use strata_shared::contracts::labels::{WORKLOAD_CA_ANNOTATION, WORKLOAD_SERVER_ANNOTATION};
use strata_shared::contracts::names::{AGENT_NAMESPACE, ClusterLocation, MANAGEMENT_SECRET};

const UNSAFE: &str = "UnsafeKubeconfig";
/// What the controller logs, with the details, for each refusal.
const REFUSAL_LOG: &str = "refusing the workload cluster's kubeconfig";
const CYCLES: usize = 2;

/// One hostile kubeconfig, and what of it must never show where the site can read.
struct HostileForm {
    name: &'static str,
    kubeconfig: String,
    secrets: Vec<String>,
    /// The controller's log of the refusal names one of these (what was wrong).
    logged: &'static [&'static str],
}

/// A shell script that leaves `marker` and prints `output` (as the token of an
/// ExecCredential, and on stderr).
fn exec_script(marker: &Path, output: &str) -> String {
    format!(
        "echo {output} > {marker}; echo '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{output}\"}}}}'; echo {output} >&2",
        marker = marker.display()
    )
}

/// The exec form's script does leave its marker and print its output when it runs, so
/// that their absence means it did not run.
fn check_exec_script_works() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let ran = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(exec_script(&marker, "STRATA-EXEC-CONTROL"))
        .output()
        .unwrap();
    assert!(ran.status.success(), "{ran:?}");
    assert!(marker.is_file(), "the script left no marker");
    assert!(String::from_utf8_lossy(&ran.stdout).contains("STRATA-EXEC-CONTROL"));
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

/// The four forms of issue 12, made from the real kubeconfig so that each differs from a
/// usable one in what makes it hostile (and, but for (b), keeps the pinned server and CA).
fn hostile_forms(
    real: &str,
    cycle: usize,
    scratch: &Path,
    server_trap: &ConnectionTrap,
    proxy_trap: &ConnectionTrap,
) -> Vec<HostileForm> {
    let trap_server = format!("https://{}", server_trap.address());
    let trap_proxy = format!("http://{}", proxy_trap.address());

    // (a) An exec credential plugin that would leave a marker file and print a token.
    let marker = scratch.join(format!("exec-ran-{cycle}"));
    let output = format!("STRATA-EXEC-OUTPUT-{cycle}-7f3a9c");
    let script = exec_script(&marker, &output);
    let mut exec = yaml(real);
    let user = &mut exec["users"][0]["user"];
    *user = json!({
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "/bin/sh",
            "args": ["-c", script],
        }
    });

    // (b) A token read from a file on the controller's disk, for a server the test owns,
    // without verifying its certificate.
    let token_file = scratch.join(format!("token-file-{cycle}"));
    let token = format!("STRATA-TOKEN-FILE-{cycle}-c41e07");
    std::fs::write(&token_file, &token).unwrap();
    let mut token_form = yaml(real);
    token_form["clusters"][0]["cluster"] = json!({
        "server": trap_server,
        "insecure-skip-tls-verify": true,
    });
    token_form["users"][0]["user"] = json!({ "tokenFile": token_file.display().to_string() });

    // (c) The real server, through a proxy the test owns.
    let mut proxied = yaml(real);
    proxied["clusters"][0]["cluster"]["proxy-url"] = json!(trap_proxy);

    // (d) Well formed, as CAPI writes it, but for another server than the pinned one.
    let mut moved = yaml(real);
    moved["clusters"][0]["cluster"]["server"] = json!(trap_server);

    let dump = |v: &Value| serde_yaml::to_string(v).unwrap();
    vec![
        HostileForm {
            name: "an exec credential plugin",
            kubeconfig: dump(&exec),
            secrets: vec![output, marker.display().to_string()],
            logged: &["exec"],
        },
        HostileForm {
            name: "a tokenFile for the test's server with insecure TLS",
            kubeconfig: dump(&token_form),
            secrets: vec![
                token,
                token_file.display().to_string(),
                server_trap.address().to_string(),
            ],
            logged: &["insecure-skip-tls-verify", "tokenFile"],
        },
        HostileForm {
            name: "a proxy-url",
            kubeconfig: dump(&proxied),
            secrets: vec![proxy_trap.address().to_string()],
            logged: &["proxy-url"],
        },
        HostileForm {
            name: "a changed server",
            kubeconfig: dump(&moved),
            secrets: vec![server_trap.address().to_string()],
            logged: &["pinned"],
        },
    ]
}

async fn write_kubeconfig(client: &Client, location: &ClusterLocation, text: &str) {
    let value = base64::engine::general_purpose::STANDARD.encode(text);
    Api::<Secret>::namespaced(client.clone(), &location.objects_namespace)
        .patch(
            &format!("{}-kubeconfig", location.cluster),
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "value": value } })),
        )
        .await
        .unwrap();
}

async fn read_kubeconfig(client: &Client, location: &ClusterLocation) -> String {
    let secret = Api::<Secret>::namespaced(client.clone(), &location.objects_namespace)
        .get(&format!("{}-kubeconfig", location.cluster))
        .await
        .unwrap();
    String::from_utf8(secret.data.unwrap()["value"].0.clone()).unwrap()
}

/// The controller looks at a cluster again when it changes: a touch of an annotation, so
/// that the test need not wait for its periodic look.
async fn nudge(client: &Client, location: &ClusterLocation, count: &mut u64) {
    *count += 1;
    Api::<strata_shared::cluster::WorkloadCluster>::namespaced(
        client.clone(),
        &location.cluster_namespace,
    )
    .patch(
        &location.cluster,
        &PatchParams::default(),
        &Patch::Merge(
            json!({ "metadata": { "annotations": { "e2e.strata.dev/nudge": count.to_string() } } }),
        ),
    )
    .await
    .unwrap();
}

fn refusals_logged(controller: &ControllerProcess) -> Vec<String> {
    std::fs::read_to_string(&controller.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(REFUSAL_LOG))
        .map(String::from)
        .collect()
}

/// Everything about the cluster the site can read in the management cluster: its
/// WorkloadCluster's status and the Events of its namespace and of its objects namespace.
async fn site_readable(client: &Client, location: &ClusterLocation) -> String {
    let wc = cluster(client, &location.cluster_namespace, &location.cluster)
        .await
        .unwrap();
    let mut text = serde_json::to_string(&wc.status).unwrap();
    for namespace in [&location.cluster_namespace, &location.objects_namespace] {
        let events = Api::<Event>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .unwrap();
        text.push_str(&serde_json::to_string(&events.items).unwrap());
    }
    text
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[tokio::test]
async fn hostile_kubeconfigs_are_refused_without_effect_and_the_real_one_recovers() {
    let _stop = StopWorkloads;
    check_exec_script_works();
    let env = ManagementEnv::start(ManagementOptions::named("hostile"))
        .await
        .unwrap();
    let admin = env.client();
    let location = ClusterLocation::of("team-hostile", "edge");
    ensure_namespace(&admin, &location.cluster_namespace)
        .await
        .unwrap();
    apply_sample(
        &admin,
        "clusters/sim-demo.yaml",
        &location.cluster_namespace,
        |d| d["metadata"]["name"] = json!(location.cluster),
    )
    .await;
    let kubeconfig = env.controller_kubeconfig().await.unwrap();
    let controller =
        ControllerProcess::start(&kubeconfig, env.dir.path(), "controller", &[]).unwrap();
    wait_phase_before_pivot(
        &env,
        &controller,
        &location.cluster_namespace,
        &location.cluster,
        ClusterPhase::AgentInstalled,
        Duration::from_secs(240),
    )
    .await;

    // The pin, from the first use of the real kubeconfig.
    let workload = env
        .workload(&location.objects_namespace, &location.cluster)
        .await
        .unwrap()
        .expect("the workload control plane");
    let real = workload.kubeconfig().to_string();
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let pin = |n: &Namespace| {
        let annotations = n.metadata.annotations.clone().unwrap_or_default();
        (
            annotations.get(WORKLOAD_SERVER_ANNOTATION).cloned(),
            annotations.get(WORKLOAD_CA_ANNOTATION).cloned(),
        )
    };
    let pinned = pin(&namespaces.get(&location.objects_namespace).await.unwrap());
    assert_eq!(pinned.0.as_deref(), Some(workload.server()), "{pinned:?}");
    assert!(pinned.1.is_some(), "no CA pinned: {pinned:?}");

    // The simulator stops rewriting the cluster's Secrets: paused, and a full pass of it
    // begun after the pause has ended.
    let cloud = env.cloud.as_ref().unwrap();
    let capi_clusters = Api::<kube::api::DynamicObject>::namespaced_with(
        admin.clone(),
        &location.objects_namespace,
        &resource("cluster.x-k8s.io/v1beta2", "Cluster"),
    );
    capi_clusters
        .patch(
            &location.cluster,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "paused": true } })),
        )
        .await
        .unwrap();
    let passes = cloud.passes();
    eventually(
        "two passes of the simulator after the pause",
        Duration::from_secs(30),
        || async { (cloud.passes() >= passes + 2).then_some(()) },
    )
    .await;
    assert_eq!(read_kubeconfig(&admin, &location).await, real);

    // The site writes with its agent's own management token.
    let link = Api::<Secret>::namespaced(workload.client(), AGENT_NAMESPACE)
        .get(MANAGEMENT_SECRET)
        .await
        .unwrap();
    let token = String::from_utf8(link.data.unwrap()["token"].0.clone()).unwrap();
    let site = env.control_plane.client_for_token(&token).await.unwrap();

    let scratch = tempfile::Builder::new()
        .prefix("strata-hostile-kubeconfig-")
        .tempdir()
        .unwrap();
    let server_trap = ConnectionTrap::start().await.unwrap();
    let proxy_trap = ConnectionTrap::start().await.unwrap();
    let mut nudges = 0;
    let agent_installed = |admin: Client| {
        let location = location.clone();
        async move {
            let wc = cluster(&admin, &location.cluster_namespace, &location.cluster).await?;
            let (status, reason, _) = condition(&wc, "AgentInstalled");
            Some((status.to_string(), reason.to_string()))
        }
    };

    for cycle in 0..CYCLES {
        let forms = hostile_forms(&real, cycle, scratch.path(), &server_trap, &proxy_trap);
        for form in forms {
            let what = format!("cycle {cycle}, {}", form.name);
            let refused_before = refusals_logged(&controller).len();
            write_kubeconfig(&site, &location, &form.kubeconfig).await;
            nudge(&admin, &location, &mut nudges).await;
            eventually(
                &format!("{what}: AgentInstalled reason {UNSAFE}"),
                Duration::from_secs(60),
                || async {
                    let (_, reason) = agent_installed(admin.clone()).await?;
                    (reason == UNSAFE).then_some(())
                },
            )
            .await;
            // One more look at it by the controller after the refusal showed, so that
            // whatever that look would do has been done.
            let refusals = refusals_logged(&controller);
            let refused_shown = refusals.len();
            assert!(
                refused_shown > refused_before,
                "{what}: the refusal is not in the controller's log:\n{}",
                controller.log_tail(20)
            );
            // The details are the controller's (and its operator's) to read.
            let detail = &refusals[refused_shown - 1];
            assert!(
                form.logged.iter().any(|word| detail.contains(word)),
                "{what}: the controller's log of the refusal names none of {:?}: {detail}",
                form.logged
            );
            nudge(&admin, &location, &mut nudges).await;
            eventually(
                &format!("{what}: another refusal by the controller"),
                Duration::from_secs(60),
                || async { (refusals_logged(&controller).len() > refused_shown).then_some(()) },
            )
            .await;

            let ran = entries(scratch.path())
                .into_iter()
                .filter(|p| {
                    !p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("token-file-")
                })
                .collect::<Vec<_>>();
            assert!(ran.is_empty(), "{what}: the command ran: {ran:?}");
            assert_eq!(
                server_trap.accepted(),
                Vec::<String>::new(),
                "{what}: the test's server was reached"
            );
            assert_eq!(
                proxy_trap.accepted(),
                Vec::<String>::new(),
                "{what}: the test's proxy was reached"
            );
            let readable = site_readable(&admin, &location).await;
            for secret in &form.secrets {
                assert!(
                    !readable.contains(secret.as_str()),
                    "{what}: {secret:?} shows where the site can read:\n{readable}"
                );
            }
            assert_eq!(
                read_kubeconfig(&admin, &location).await,
                form.kubeconfig,
                "{what}: the hostile kubeconfig was replaced while it was checked"
            );
            assert_eq!(
                pin(&namespaces.get(&location.objects_namespace).await.unwrap()),
                pinned,
                "{what}: the pin changed"
            );

            // The real one back: the controller uses it again.
            write_kubeconfig(&admin, &location, &real).await;
            nudge(&admin, &location, &mut nudges).await;
            eventually(
                &format!("{what}, then the real kubeconfig: AgentInstalled True again"),
                Duration::from_secs(60),
                || async {
                    let (status, reason) = agent_installed(admin.clone()).await?;
                    (status == "True" && reason != UNSAFE).then_some(())
                },
            )
            .await;
        }
    }

    // Nothing the controller applied unpaused the simulator's Cluster meanwhile.
    let capi = capi_clusters.get(&location.cluster).await.unwrap();
    assert_eq!(capi.data.pointer("/spec/paused"), Some(&json!(true)));
    assert_eq!(
        server_trap.accepted().len() + proxy_trap.accepted().len(),
        0,
        "after all cycles"
    );
}
