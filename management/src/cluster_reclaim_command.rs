//! `strata cluster reclaim`: the last step of a site's disaster recovery. Once a lost site's
//! CAPI objects are restored into the management cluster from its export (`strata-agent
//! restore --from-export`) and unpaused there, the ledger still says the site's agent holds
//! them, so the controller leaves them alone and the cluster can never be pivoted again.
//! Reclaiming gives them back to the controller in a new round: the lost agent's tokens are
//! revoked, its stale move report is taken away, and the ledger records the reclaim (guarded
//! by the resourceVersion it was read at), after which the controller installs a new agent
//! that asks for a move of its own.
//!
//! The decision is the operator's: what the site last wrote (its `AgentConnected` reports)
//! may only stop a reclaim, never start one.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::DynamicObject;
use serde_json::{Value, json};
use strata_shared::cluster::WorkloadCluster;
use strata_shared::cluster::ledger::{self as recorded, ClusterLedger, PivotLatch};
use strata_shared::conditions::find;
use strata_shared::contracts::capi::CLUSTER;
use strata_shared::contracts::conditions::{AGENT_CONNECTED, PIVOTED};
use strata_shared::contracts::field_managers::CLI_FIELD_MANAGER;
use strata_shared::contracts::names::ClusterLocation;
use strata_shared::kube_writer::{Deleted, KubeWriter};

use crate::cluster_commands::{cluster_and_ledger, parse_cluster};
use crate::controller::ledger::{self, Recorded};
use crate::management_client::{client_from, command_runtime};
use crate::{CommandError, ExitStatus};

/// Every call the command makes is bounded by this.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the removal of the stale report is tried when the status moves under it.
const STATUS_TRIES: usize = 5;

#[derive(clap::Args, Debug)]
pub struct ReclaimArgs {
    /// The WorkloadCluster, NAMESPACE/NAME.
    #[arg(value_name = "NAMESPACE/NAME")]
    pub cluster: String,
    /// The management cluster's kubeconfig; else $KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Where the controller keeps the agents' credentials.
    #[arg(long, default_value = "strata-system")]
    pub system_namespace: String,
    /// Reclaim even though the site's agent still reports (AgentConnected=True): for a site
    /// whose reports are not to be believed. Its tokens are revoked either way.
    #[arg(long)]
    pub force: bool,
}

fn failed(message: impl Into<String>) -> CommandError {
    CommandError::Failed(message.into())
}

/// What the management cluster holds for the cluster, as far as a reclaim depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    ledger: ClusterLedger,
    /// The CAPI Cluster in the objects namespace: None when absent, else whether paused.
    capi_paused: Option<bool>,
    /// `AgentConnected` as the controller last wrote it.
    agent_connected: Option<String>,
}

/// What to do.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Reclaim into this round.
    Reclaim { next_round: u32 },
    /// Reclaimed before (a rerun): nothing to write.
    AlreadyReclaimed { round: u32 },
}

/// Whether the cluster may be reclaimed, and why not. Needs no client.
fn decide(cluster: &str, objects: &str, found: &Found, force: bool) -> Result<Decision, String> {
    let ledger = &found.ledger;
    if ledger.deletion_decided {
        return Err(format!(
            "{cluster} is being deleted where it is (its ledger in namespace {objects} says so); nothing to reclaim"
        ));
    }
    match ledger.pivot {
        PivotLatch::Reclaimed => {
            return Ok(Decision::AlreadyReclaimed {
                round: ledger.round,
            });
        }
        PivotLatch::NotGranted => {
            return Err(format!(
                "{cluster} was never moved to its site: the controller holds its objects already"
            ));
        }
        PivotLatch::Returned => {
            return Err(format!(
                "{cluster}'s objects came back to the management cluster for its deletion; nothing to reclaim"
            ));
        }
        PivotLatch::Granted => {}
    }
    match found.capi_paused {
        None => {
            return Err(format!(
                "there is no CAPI Cluster in namespace {objects} of the management cluster: restore the site's objects first (strata-agent restore --kubeconfig MANAGEMENT --from-export {cluster}), then unpause it"
            ));
        }
        Some(true) => {
            return Err(format!(
                "the CAPI Cluster in namespace {objects} is paused: unpause it first (kubectl -n {objects} patch cluster NAME --type merge -p '{{\"spec\":{{\"paused\":false}}}}'), so that Cluster API in the management cluster carries the cluster's machines until its new agent takes them"
            ));
        }
        Some(false) => {}
    }
    if found.agent_connected.as_deref() == Some("True") && !force {
        return Err(format!(
            "{cluster}'s agent still reports (AgentConnected=True): its site holds the objects, and two copies would both run its machines. Reclaim only a lost site; --force if its reports are not to be believed"
        ));
    }
    let next_round = ledger
        .round
        .checked_add(1)
        .ok_or_else(|| format!("{cluster} has been reclaimed too often to count"))?;
    Ok(Decision::Reclaim { next_round })
}

/// What the lost agent reported on the status, besides its `Pivoted` condition: fields
/// only an agent writes once it holds the cluster (the counts too, which the controller
/// writes again while it holds the objects).
const AGENT_REPORTS: [&str; 8] = [
    "agent",
    "appliedRevision",
    "rollout",
    "layers",
    "layersSummary",
    "siteEvents",
    "controlPlane",
    "workers",
];

/// The JSON patch that takes the lost agent's reports off `status` (as read): its
/// `Pivoted` condition, if it is still where it was read, and each of [`AGENT_REPORTS`]
/// there. None when there is nothing to take.
///
/// They describe a site that is lost, and the new agent (the same field manager) would
/// otherwise apply its first report over them: server-side apply then drops the items it
/// no longer names from the lists it owned, leaving them null, which the CRD refuses.
fn lost_agent_reports(status: &Value) -> Option<Value> {
    let mut ops = Vec::new();
    if let Some(index) = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().position(|c| c["type"] == PIVOTED))
    {
        ops.push(json!({ "op": "test", "path": format!("/status/conditions/{index}/type"), "value": PIVOTED }));
        ops.push(json!({ "op": "remove", "path": format!("/status/conditions/{index}") }));
    }
    for key in AGENT_REPORTS {
        if status.get(key).is_some() {
            ops.push(json!({ "op": "remove", "path": format!("/status/{key}") }));
        }
    }
    (!ops.is_empty()).then_some(Value::Array(ops))
}

pub fn reclaim(args: &ReclaimArgs) -> Result<ExitStatus, CommandError> {
    command_runtime()?.block_on(reclaim_async(args))
}

async fn reclaim_async(args: &ReclaimArgs) -> Result<ExitStatus, CommandError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (namespace, name) = parse_cluster(&args.cluster)?;
    let shown = format!("WorkloadCluster {namespace}/{name}");
    let client = client_from(args.kubeconfig.as_deref(), "--kubeconfig").await?;
    let writer = KubeWriter::new(client, CLI_FIELD_MANAGER, CALL_TIMEOUT);
    let (cluster, location, objects_namespace) =
        cluster_and_ledger(&writer, &namespace, &name).await?;
    if cluster.metadata.deletion_timestamp.is_some() {
        return Err(failed(format!(
            "{shown} is being deleted; its deletion goes on without a reclaim"
        )));
    }
    let objects = &location.objects_namespace;
    let capi = writer.dynamic(&CLUSTER.api_resource(), Some(objects));
    let capi_cluster: Option<DynamicObject> = match capi.get(&name).await {
        Ok(found) => found,
        Err(e) if e.is_gone() => None,
        Err(e) => {
            return Err(failed(format!(
                "cannot read CAPI Cluster {objects}/{name}: {e}"
            )));
        }
    };
    let status = cluster.status.clone().unwrap_or_default();
    let found = Found {
        ledger: ledger::of(Some(&objects_namespace)),
        capi_paused: capi_cluster.map(|c| c.data["spec"]["paused"] == json!(true)),
        agent_connected: find(&status.conditions, AGENT_CONNECTED).map(|c| c.status.clone()),
    };
    let next_round = match decide(&shown, objects, &found, args.force).map_err(failed)? {
        Decision::AlreadyReclaimed { round } => {
            println!(
                "{shown} was reclaimed already (round {round}); the controller installs its new agent, which moves the objects to the site again"
            );
            return Ok(ExitStatus::Success);
        }
        Decision::Reclaim { next_round } => next_round,
    };

    take_away_stale_report(&writer, &namespace, &name, &shown).await?;
    revoke_agent(&writer, &args.system_namespace, &location, &shown).await?;
    let round = next_round.to_string();
    match ledger::record(&writer, &objects_namespace, &recorded::reclaim(&round))
        .await
        .map_err(|e| failed(format!("{shown}: {e}")))?
    {
        Recorded::Done(_) => {}
        Recorded::Stale => {
            return Err(failed(format!(
                "the ledger of {shown} (namespace {objects}) changed since it was read, so nothing was recorded; run the command again (what it did before the ledger is safe to do twice)"
            )));
        }
    }
    println!(
        "reclaimed {shown}: round {round}. The controller installs a new agent into the workload cluster once it can reach it; the agent asks for its move and, once granted, moves the objects from namespace {objects} to its site again. Follow it with: kubectl -n {namespace} get workloadcluster {name} -w"
    );
    Ok(ExitStatus::Success)
}

/// Takes the lost agent's reports off the status, so that the controller grants the move
/// only when the new agent asks for it, and the new agent reports afresh.
async fn take_away_stale_report(
    writer: &KubeWriter,
    namespace: &str,
    name: &str,
    shown: &str,
) -> Result<(), CommandError> {
    let clusters = writer.namespaced::<WorkloadCluster>(namespace);
    for _ in 0..STATUS_TRIES {
        let current = clusters
            .get(name)
            .await
            .map_err(|e| failed(format!("cannot read {shown}: {e}")))?
            .ok_or_else(|| failed(format!("{shown} is gone")))?;
        let status = serde_json::to_value(current.status.unwrap_or_default())
            .map_err(|e| failed(format!("{shown}'s status: {e}")))?;
        let Some(patch) = lost_agent_reports(&status) else {
            return Ok(());
        };
        match clusters.json_patch_status(name, &patch).await {
            Ok(_) => {
                println!(
                    "took the lost agent's reports (its Pivoted condition, layers, counts and site events) off {shown}"
                );
                return Ok(());
            }
            // The status moved between the read and the patch: read again.
            Err(e) if matches!(e.code(), Some(409 | 422 | 500)) => continue,
            Err(e) => {
                return Err(failed(format!(
                    "cannot take the lost agent's reports off {shown}'s status: {e}"
                )));
            }
        }
    }
    Err(failed(format!(
        "{shown}'s status kept changing; nothing was recorded; run the command again"
    )))
}

/// Revokes every token the lost site's agent has: its credential Secret is what they are
/// bound to. The controller mints the new agent's.
async fn revoke_agent(
    writer: &KubeWriter,
    system_namespace: &str,
    location: &ClusterLocation,
    shown: &str,
) -> Result<(), CommandError> {
    let credential = location.agent_names().credential_secret;
    let secrets = writer.namespaced::<Secret>(system_namespace);
    let deleted = secrets.delete(&credential).await.map_err(|e| {
        failed(format!(
            "cannot revoke the tokens of {shown}'s agent (deleting Secret {system_namespace}/{credential}): {e}"
        ))
    })?;
    if deleted == Deleted::AlreadyGone {
        println!("the tokens of {shown}'s lost agent were revoked already");
    } else {
        println!(
            "revoked every token of {shown}'s lost agent (Secret {system_namespace}/{credential})"
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strata_shared::cluster::ledger::{decide_deletion, grant_move, objects_returned};

    fn found(pairs: &[(&str, &str)], capi_paused: Option<bool>, connected: &str) -> Found {
        Found {
            ledger: ClusterLedger::of_pairs(pairs),
            capi_paused,
            agent_connected: Some(connected.to_string()),
        }
    }

    fn decided(found: &Found, force: bool) -> Result<Decision, String> {
        decide("WorkloadCluster a/edge", "strata-wc-a-edge", found, force)
    }

    #[test]
    fn a_restored_unpaused_silent_site_is_reclaimed_into_the_next_round() {
        let lost = found(&[grant_move()], Some(false), "False");
        assert_eq!(
            decided(&lost, false),
            Ok(Decision::Reclaim { next_round: 2 })
        );
        let [_, round] = recorded::reclaim("2");
        let again = found(&[grant_move(), round], Some(false), "Unknown");
        assert_eq!(
            decided(&again, false),
            Ok(Decision::Reclaim { next_round: 3 })
        );
    }

    #[test]
    fn a_rerun_after_the_reclaim_changes_nothing() {
        let [reclaimed, round] = recorded::reclaim("2");
        assert_eq!(
            decided(&found(&[reclaimed, round], Some(false), "False"), false),
            Ok(Decision::AlreadyReclaimed { round: 2 })
        );
    }

    #[test]
    fn each_refusal_says_what_to_do() {
        let cases = [
            (
                found(&[grant_move()], None, "False"),
                "restore the site's objects first (strata-agent restore --kubeconfig MANAGEMENT --from-export WorkloadCluster a/edge)",
            ),
            (
                found(&[grant_move()], Some(true), "False"),
                "is paused: unpause it first",
            ),
            (
                found(&[grant_move()], Some(false), "True"),
                "still reports (AgentConnected=True)",
            ),
            (
                found(&[], Some(false), "False"),
                "was never moved to its site",
            ),
            (
                found(&[objects_returned()], Some(false), "False"),
                "came back to the management cluster for its deletion",
            ),
            (
                found(&[grant_move(), decide_deletion()], Some(false), "False"),
                "is being deleted where it is",
            ),
        ];
        for (found, expected) in cases {
            let error = decided(&found, false).unwrap_err();
            assert!(error.contains(expected), "{found:?}: {error}");
        }
    }

    #[test]
    fn force_overrules_only_the_sites_own_reports() {
        let reporting = found(&[grant_move()], Some(false), "True");
        assert_eq!(
            decided(&reporting, true),
            Ok(Decision::Reclaim { next_round: 2 })
        );
        let paused = found(&[grant_move()], Some(true), "True");
        assert!(decided(&paused, true).is_err());
    }

    #[test]
    fn the_lost_agents_reports_are_taken_off_and_nothing_else() {
        let status = json!({
            "phase": "Pivoted",
            "revision": 3,
            "agentImage": "strata-agent:1",
            "conditions": [
                { "type": "Ready", "status": "True" },
                { "type": "Pivoted", "status": "True", "reason": "Moved" },
            ],
            "layers": [{ "name": "cni" }],
            "layersSummary": "1/1",
            "siteEvents": [],
            "agent": { "lastReportTime": "2026-12-04T10:00:00Z" },
            "workers": { "desired": 2 },
        });
        assert_eq!(
            lost_agent_reports(&status),
            Some(json!([
                { "op": "test", "path": "/status/conditions/1/type", "value": "Pivoted" },
                { "op": "remove", "path": "/status/conditions/1" },
                { "op": "remove", "path": "/status/agent" },
                { "op": "remove", "path": "/status/layers" },
                { "op": "remove", "path": "/status/layersSummary" },
                { "op": "remove", "path": "/status/siteEvents" },
                { "op": "remove", "path": "/status/workers" },
            ]))
        );
        serde_json::from_value::<json_patch::Patch>(lost_agent_reports(&status).unwrap()).unwrap();
        let controllers_only = json!({ "phase": "Pivoted", "conditions": [{ "type": "Ready" }] });
        assert_eq!(lost_agent_reports(&controllers_only), None);
    }
}
