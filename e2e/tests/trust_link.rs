//! The link between a site and management lives (issue 12): an agent's management token is
//! renewed before it expires and the cluster keeps reporting past the first token's real
//! expiry (then its deletion moves back and completes); a site cut off longer than its
//! token's life shows `AgentConnected=False`, says `Unauthorized` in its own cluster once the
//! link returns, and `strata cluster rekey` brings it back.
//!
//! The cut-off site runs alone meanwhile (issue 17): a worker whose kubelet stops is
//! replaced by the site's own health check and CAPI, an add-on layer's object deleted is
//! put back, the agent killed comes back from the site's own copies and keeps the layers;
//! once the site is rekeyed, its status carries what it did, at the times it did it.
//!
//! The API server's shortest token life is 10 minutes, so this test runs about 14 minutes:
//! the two clusters run side by side, one with its link intact, one cut off.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Node};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::dynamic_objects::list_objects;
use strata_e2e::kubelet_sim::KUBELET_STOPPED_ANNOTATION;
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, ensure_namespace, strata_binary,
};
use strata_e2e::pivoted_cluster::{
    first_control_plane_node, kill_agent, machine_instances, moves_back_when_deleted,
    wait_restarted,
};
use strata_e2e::samples::apply_sample;
use strata_e2e::site_link::{link_data, route_through_proxy};
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{cluster, condition, describe, wait_phase};
use strata_shared::cluster::{ClusterPhase, LayerPhase, SiteEvent, WorkloadCluster};
use strata_shared::contracts::capi::MACHINE;
use strata_shared::contracts::names::{
    AGENT_NAMESPACE, LINK_STATE_CONFIG_MAP, SITE_LOG_CONFIG_MAP, objects_namespace,
};

const NAMESPACE: &str = "team-link";
/// The API server's shortest token life.
const TOKEN_SECONDS: u64 = 600;
const SILENCE_SECONDS: u64 = 30;

fn last_report(wc: &WorkloadCluster) -> Option<Timestamp> {
    wc.status
        .as_ref()?
        .agent
        .as_ref()?
        .last_report_time
        .as_ref()
        .map(|t| t.0)
}

async fn link_state(workload: &Client) -> Option<String> {
    Api::<ConfigMap>::namespaced(workload.clone(), AGENT_NAMESPACE)
        .get_opt(LINK_STATE_CONFIG_MAP)
        .await
        .ok()
        .flatten()?
        .data?
        .get("state")
        .cloned()
}

/// Whether the management API server accepts `token`: a read the agent may do, which an
/// expired or revoked token gets 401 for.
async fn accepted(env: &ManagementEnv, token: &str) -> bool {
    let client = env.control_plane.client_for_token(token).await.unwrap();
    match Api::<WorkloadCluster>::namespaced(client, NAMESPACE)
        .get("steady")
        .await
    {
        Ok(_) => true,
        Err(kube::Error::Api(e)) if e.code == 401 => false,
        Err(other) => panic!("expected the cluster or 401, got {other}"),
    }
}

/// The add-on layer object the outage deletes (the sample hello-manifests pack's).
const LAYER_OBJECT: (&str, &str) = ("hello-universe", "hello-universe-config");

/// The worker machines of the cut-off cluster, in its own cluster: name → node.
async fn workers(w: &Client) -> BTreeMap<String, Option<String>> {
    list_objects(
        w,
        &objects_namespace(NAMESPACE, "cutoff"),
        MACHINE.api_version,
        MACHINE.kind,
    )
    .await
    .into_iter()
    .filter(|m| {
        m.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.get("strata.dev/node-pool").map(String::as_str) == Some("general"))
            && m.metadata.deletion_timestamp.is_none()
    })
    .map(|m| {
        let node = m
            .data
            .pointer("/status/nodeRef/name")
            .and_then(|n| n.as_str())
            .map(String::from);
        (m.metadata.name.unwrap_or_default(), node)
    })
    .collect()
}

/// Both workers, once each has a Ready node.
async fn ready_workers(w: &Client) -> Option<BTreeMap<String, Option<String>>> {
    let now = workers(w).await;
    if now.len() != 2 {
        return None;
    }
    for node in now.values() {
        if !node_ready(w, node.as_deref()?).await {
            return None;
        }
    }
    Some(now)
}

async fn node_ready(w: &Client, node: &str) -> bool {
    let Ok(Some(node)) = Api::<Node>::all(w.clone()).get_opt(node).await else {
        return false;
    };
    node.status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Waits until the site's own log (its ConfigMap) holds an event of `kind` whose message
/// contains `text`.
async fn site_logged(w: &Client, kind: &str, text: &str) {
    let maps: Api<ConfigMap> = Api::namespaced(w.clone(), AGENT_NAMESPACE);
    eventually(
        &format!("{kind} \"{text}\" in the site log"),
        Duration::from_secs(120),
        || async {
            let events = maps
                .get_opt(SITE_LOG_CONFIG_MAP)
                .await
                .ok()??
                .data?
                .remove("events")?;
            let events: Vec<SiteEvent> = serde_json::from_str(&events).ok()?;
            events
                .iter()
                .any(|e| e.kind == kind && e.message.contains(text))
                .then_some(())
        },
    )
    .await;
}

/// Deletes the layer object and waits until the site puts it back.
async fn delete_and_see_restored(w: &Client, within: Duration) {
    let configs: Api<ConfigMap> = Api::namespaced(w.clone(), LAYER_OBJECT.0);
    configs
        .delete(LAYER_OBJECT.1, &DeleteParams::default())
        .await
        .unwrap();
    eventually("the layer object put back", within, || async {
        configs.get_opt(LAYER_OBJECT.1).await.ok()?.map(|_| ())
    })
    .await;
}

/// What the cut-off site does alone: one worker's kubelet stops and the site's own health
/// check and CAPI replace its machine; a layer object deleted is put back; the agent killed
/// comes back without management and keeps the layers. Returns when the agent restarted.
async fn run_alone(env: &ManagementEnv, w: &Client) -> Timestamp {
    // The scale-out after the pivot may still be under way: both workers first.
    let before = eventually("both workers Ready", Duration::from_secs(300), || {
        ready_workers(w)
    })
    .await;
    let (failing, node) = before.iter().next().unwrap();
    let node = node.clone().unwrap();
    Api::<Node>::all(w.clone())
        .patch(
            &node,
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { KUBELET_STOPPED_ANNOTATION: "true" } } }),
            ),
        )
        .await
        .unwrap();
    let replaced = eventually(
        "the failed worker replaced by the site",
        Duration::from_secs(300),
        || async {
            ready_workers(w)
                .await
                .filter(|now| !now.contains_key(failing))
        },
    )
    .await;
    eprintln!("{failing} (node {node}) replaced: workers now {replaced:?}");

    // Once this agent installed the layer, a deletion is set back by its drift pass, which
    // logs it; the log is kept in the site before the agent is killed.
    site_logged(w, "LayerChanged", "layer hello-manifests 1.0.0 is Ready").await;
    delete_and_see_restored(w, Duration::from_secs(90)).await;
    site_logged(w, "DriftCorrected", "hello-universe-config (recreated)").await;

    let objects = objects_namespace(NAMESPACE, "cutoff");
    let restarts = kill_agent(env, &objects, "cutoff");
    let restarted_at = Timestamp::now();
    wait_restarted(env, &objects, "cutoff", restarts).await;
    // The restarted agent has the revision and the packs from the site's copies: it keeps
    // the layers.
    delete_and_see_restored(w, Duration::from_secs(150)).await;
    restarted_at
}

/// The cut-off site's status once it is back: what it did alone, each at its time inside
/// the outage, and its counts and layers as they are.
fn assert_outage_reported(
    wc: &WorkloadCluster,
    began: Timestamp,
    ended: Timestamp,
    agent_restarted_at: Timestamp,
) {
    let status = wc.status.as_ref().unwrap();
    let during = |kind: &str| -> Vec<Timestamp> {
        status
            .site_events
            .iter()
            .filter(|e| e.kind == kind && e.time.0 >= began && e.time.0 <= ended)
            .map(|e| e.time.0)
            .collect()
    };
    let shown = format!("{}\n{:#?}", describe(Some(wc)), status.site_events);
    assert_eq!(during("MachineRemediated").len(), 1, "{shown}");
    assert!(!during("MachineCreated").is_empty(), "{shown}");
    // The deletion before the restart is set back by a drift pass (the test waited for it
    // in the site's log); the one after it by the restarted agent's first pass (which
    // applies every layer again, recording no drift) or by its next drift pass, whichever
    // comes first.
    assert!(!during("DriftCorrected").is_empty(), "{shown}");
    let started = during("AgentStarted");
    assert_eq!(started.len(), 1, "{shown}");
    assert!(started[0] >= agent_restarted_at, "{shown}");
    assert!(
        status
            .site_events
            .iter()
            .any(|e| e.kind == "AgentStarted"
                && e.message.contains("without the management cluster")),
        "{shown}"
    );
    // The replacement came before the restart, in the order it happened.
    assert!(during("MachineRemediated")[0] < started[0], "{shown}");
    assert!(
        status
            .site_events
            .windows(2)
            .all(|p| p[0].time.0 <= p[1].time.0),
        "{shown}"
    );
    let workers = status.workers.as_ref().unwrap();
    assert_eq!((workers.desired, workers.ready), (2, 2), "{shown}");
    assert!(
        status.layers.iter().all(|l| l.state == LayerPhase::Ready),
        "{shown}"
    );
}

#[tokio::test]
async fn tokens_are_renewed_and_a_site_cut_off_longer_than_its_token_comes_back() {
    let _stop = StopWorkloads;
    let started = Instant::now();
    let env = ManagementEnv::start(ManagementOptions::named("trust-link"))
        .await
        .unwrap();
    let client = env.client();
    ensure_namespace(&client, NAMESPACE).await.unwrap();
    for name in ["steady", "cutoff"] {
        apply_sample(&client, "clusters/sim-demo.yaml", NAMESPACE, |d| {
            d["metadata"]["name"] = name.into();
            // The cut-off site replaces a failed worker within the outage: a short
            // timeout, and one of the pool's two may be unhealthy.
            d["spec"]["nodePools"]["workers"][0]["healthCheck"] =
                json!({ "unhealthyTimeoutSeconds": 30, "maxUnhealthy": "1" });
        })
        .await;
    }
    let kubeconfig = env.controller_kubeconfig().await.unwrap();
    let token_seconds = TOKEN_SECONDS.to_string();
    let silence = SILENCE_SECONDS.to_string();
    let mut controller = ControllerProcess::start(
        &kubeconfig,
        env.dir.path(),
        "controller",
        &[
            "--agent-token-seconds",
            &token_seconds,
            "--agent-silence-seconds",
            &silence,
        ],
    )
    .unwrap();
    let (steady_w, _) =
        first_control_plane_node(&env, &objects_namespace(NAMESPACE, "steady"), "steady").await;
    let (cutoff_w, _) =
        first_control_plane_node(&env, &objects_namespace(NAMESPACE, "cutoff"), "cutoff").await;
    let steady = wait_phase(
        &env,
        &controller,
        NAMESPACE,
        "steady",
        ClusterPhase::Pivoted,
        Duration::from_secs(300),
    );
    let cutoff = wait_phase(
        &env,
        &controller,
        NAMESPACE,
        "cutoff",
        ClusterPhase::Pivoted,
        Duration::from_secs(300),
    );
    tokio::join!(steady, cutoff);
    let (steady_c, cutoff_c) = (steady_w.client(), cutoff_w.client());
    eprintln!("both clusters pivoted after {:?}", started.elapsed());

    // The cut-off site reaches management through a proxy of its own (a site admin can
    // point its agent anywhere; here, at a path the test can cut).
    let proxy = route_through_proxy(&env, &cutoff_c).await;
    proxy.cut();
    let cut_at = Instant::now();
    let first = link_data(&steady_c).await.access;
    assert!(accepted(&env, &first.token).await, "the first token works");
    let cutoff_token = link_data(&cutoff_c).await.access;
    eprintln!(
        "cut the site off; the steady site's first token expires at {}",
        first.token_expires
    );

    // While cut off: management sees the silence, the site keeps its objects.
    let silent = eventually(
        "AgentConnected=False for the cut-off site",
        Duration::from_secs(SILENCE_SECONDS * 4),
        || async {
            let wc = cluster(&client, NAMESPACE, "cutoff").await?;
            (condition(&wc, "AgentConnected").0 == "False").then_some(wc)
        },
    )
    .await;
    assert_eq!(condition(&silent, "AgentConnected").1, "AgentSilent");
    let wc = cluster(&client, NAMESPACE, "steady").await.unwrap();
    assert_eq!(
        condition(&wc, "AgentConnected").0,
        "True",
        "the steady site stays connected: {}",
        describe(Some(&wc))
    );
    assert_eq!(
        link_state(&cutoff_c).await.as_deref(),
        Some("Unreachable"),
        "the cut-off site says so in its own cluster"
    );

    let noticed = cut_at.elapsed();
    eprintln!("management noticed the silent site after {noticed:?}");
    let outage_began = Timestamp::now();
    let agent_restarted_at = run_alone(&env, &cutoff_c).await;
    eprintln!(
        "the cut-off site healed a worker, put a deleted object back and survived an agent restart ({:?} in)",
        started.elapsed()
    );

    // Past the first token's real expiry: it is refused, and the steady site reports on
    // with a renewed one.
    let until_expiry = first.token_expires.duration_since(Timestamp::now());
    let wait = Duration::try_from(until_expiry).unwrap_or_default() + Duration::from_secs(5);
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let wc = cluster(&client, NAMESPACE, "steady").await.unwrap();
        assert_eq!(
            condition(&wc, "AgentConnected").0,
            "True",
            "the steady site went silent before its first token expired: {}",
            describe(Some(&wc))
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    // The API server allows a minute of clock skew past a token's expiry (and caches a
    // successful authentication for seconds): the first token is refused within that.
    eventually(
        "the first token to be refused after its expiry",
        Duration::from_secs(90),
        || async { (!accepted(&env, &first.token).await).then_some(()) },
    )
    .await;
    let renewed = link_data(&steady_c).await.access;
    assert_ne!(
        renewed.token, first.token,
        "the steady site's token was not renewed"
    );
    assert!(renewed.token_expires > first.token_expires);
    let before = last_report(&cluster(&client, NAMESPACE, "steady").await.unwrap()).unwrap();
    let after_expiry = eventually(
        "a report after the first token expired",
        Duration::from_secs(60),
        || async {
            let wc = cluster(&client, NAMESPACE, "steady").await?;
            last_report(&wc)
                .filter(|t| *t > before && *t > first.token_expires)
                .map(|_| wc)
        },
    )
    .await;
    assert_eq!(condition(&after_expiry, "AgentConnected").0, "True");
    eprintln!(
        "the steady site reports past its first token's expiry ({:?} in)",
        started.elapsed()
    );

    // The cut lasts longer than the cut-off site's token: restore it, and the token it
    // holds is refused.
    let cut_for = Duration::from_secs(TOKEN_SECONDS + 30);
    if let Some(rest) = cut_for.checked_sub(cut_at.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    assert!(cutoff_token.token_expires < Timestamp::now());
    let outage_ended = Timestamp::now();
    proxy.restore();
    eventually(
        "the cut-off site to say its token is refused",
        Duration::from_secs(90),
        || async { (link_state(&cutoff_c).await.as_deref() == Some("Unauthorized")).then_some(()) },
    )
    .await;
    let wc = cluster(&client, NAMESPACE, "cutoff").await.unwrap();
    assert_eq!(
        condition(&wc, "AgentConnected").0,
        "False",
        "{}",
        describe(Some(&wc))
    );

    // The documented way back: the operator hands the agent its current token.
    let site_kubeconfig = env.dir.path().join("cutoff-admin.kubeconfig");
    std::fs::write(&site_kubeconfig, cutoff_w.kubeconfig()).unwrap();
    let (ok, text) = strata_e2e::cli_run::run(
        std::process::Command::new(strata_binary())
            .args(["cluster", "rekey", &format!("{NAMESPACE}/cutoff")])
            .arg("--workload-kubeconfig")
            .arg(&site_kubeconfig)
            .arg("--kubeconfig")
            .arg(env.control_plane.kubeconfig_path())
            .args(["--timeout", "120"]),
    );
    assert!(ok, "rekey failed: {text}");
    assert!(text.contains("the agent reports again"), "{text}");
    let rekeyed = Instant::now();
    eventually(
        "AgentConnected=True for the rekeyed site",
        Duration::from_secs(SILENCE_SECONDS * 3),
        || async {
            let wc = cluster(&client, NAMESPACE, "cutoff").await?;
            (condition(&wc, "AgentConnected").0 == "True").then_some(())
        },
    )
    .await;
    // What the site did alone arrives, at the times it happened, and its counts and layers
    // are right: within one report of the agent (10 seconds) and the link's beat.
    let back = eventually(
        "the site's events of the outage",
        Duration::from_secs(40),
        || async {
            let wc = cluster(&client, NAMESPACE, "cutoff").await?;
            let events = &wc.status.as_ref()?.site_events;
            events
                .iter()
                .any(|e| e.kind == "LinkRestored")
                .then_some(wc)
        },
    )
    .await;
    eprintln!(
        "the site's events arrived {:?} after the rekey",
        rekeyed.elapsed()
    );
    assert_outage_reported(&back, outage_began, outage_ended, agent_restarted_at);
    eventually(
        "the site to say it is connected",
        Duration::from_secs(60),
        || async { (link_state(&cutoff_c).await.as_deref() == Some("Connected")).then_some(()) },
    )
    .await;
    // A rekey with the wrong site's kubeconfig writes nothing.
    let other_kubeconfig = env.dir.path().join("steady-admin.kubeconfig");
    std::fs::write(&other_kubeconfig, steady_w.kubeconfig()).unwrap();
    let steady_before = link_data(&steady_c).await;
    let output = std::process::Command::new(strata_binary())
        .args(["cluster", "rekey", &format!("{NAMESPACE}/cutoff")])
        .arg("--workload-kubeconfig")
        .arg(&other_kubeconfig)
        .arg("--kubeconfig")
        .arg(env.control_plane.kubeconfig_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("not of team-link/cutoff"), "{text}");
    assert_eq!(link_data(&steady_c).await, steady_before);

    // A deletion after the renewal moves back and completes.
    let in_workload = machine_instances(&steady_c, &objects_namespace(NAMESPACE, "steady")).await;
    moves_back_when_deleted(
        &env,
        &mut controller,
        &kubeconfig,
        NAMESPACE,
        "steady",
        &steady_c,
        &in_workload,
    )
    .await;
    eprintln!("done in {:?}", started.elapsed());
}
