//! `strata profile rollout NAME --version V [--approve]`: where the rollout of one profile
//! version stands (each cluster that uses it: published, applied, failed or waiting, and
//! what holds the next one back), and its approval: `--approve` writes the profile's
//! approval annotation with the token of this moment (the generation it approves and the
//! failures it acknowledges), which releases the clusters the rollout holds.

use std::io::Write;
use std::path::PathBuf;

use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde::Serialize;
use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::conditions::REVISION_PUBLISHED;
use strata_shared::profile::fleet_rollout::{cluster_key, policy_of, rollout_name, uses};
use strata_shared::profile::{
    APPROVAL_ANNOTATION, ClusterProfile, FleetMember, RolloutGate, RolloutPolicy, versions_of,
};

use crate::management_client::{client_from, command_runtime};
use crate::report::{OutputFormat, document_text};
use crate::{CommandError, ExitStatus};

#[derive(clap::Args, Debug)]
pub struct RolloutArgs {
    /// The profile's name (its `spec.name`, else its object's name).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The profile version whose rollout to show.
    #[arg(long)]
    pub version: String,
    /// The namespace of the profile object, when several namespaces publish this version.
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Approve the rollout as it stands: its generation, and every failure so far.
    #[arg(long)]
    pub approve: bool,
    /// The management cluster's kubeconfig; else $KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// One cluster of the rollout.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutMember {
    pub cluster: String,
    pub published: Option<i64>,
    pub applied: Option<i64>,
    /// `done`, `applying`, `failed`, `held` (the rollout keeps its change back) or
    /// `not pivoted`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The rollout of one profile version.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutReport {
    pub profile: String,
    pub object: String,
    pub generation: i64,
    /// The policy in force: the profile's `spec.rollout`, or the default.
    pub policy: RolloutPolicy,
    /// The profile sets no `spec.rollout`.
    pub default_policy: bool,
    pub approval: Option<String>,
    /// What holds the next cluster back, or `open`.
    pub gate: String,
    pub clusters: Vec<RolloutMember>,
    /// The approval written by `--approve`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved: Option<String>,
}

pub fn rollout(args: &RolloutArgs) -> Result<ExitStatus, CommandError> {
    let report = command_runtime()?.block_on(run(args))?;
    let mut stdout = std::io::stdout().lock();
    let text = match args.output.document() {
        Some(format) => document_text(&report, format)?,
        None => text(&report),
    };
    stdout
        .write_all(text.as_bytes())
        .map_err(|e| CommandError::Failed(format!("cannot write to stdout: {e}")))?;
    Ok(ExitStatus::Success)
}

async fn run(args: &RolloutArgs) -> Result<RolloutReport, CommandError> {
    let client = client_from(
        args.kubeconfig.as_deref(),
        "the management cluster's kubeconfig",
    )
    .await?;
    let failed =
        |what: &str, e: kube::Error| CommandError::Failed(format!("cannot list {what}: {e}"));
    let profiles = Api::<ClusterProfile>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| failed("ClusterProfiles", e))?
        .items;
    let clusters = Api::<WorkloadCluster>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| failed("WorkloadClusters", e))?
        .items;
    let profile = the_profile(&profiles, args)?;
    let mut report = report_of(&profile, &clusters);
    if args.approve {
        let token = approval_token(&profile, &clusters);
        let namespace = profile.namespace().unwrap_or_default();
        Api::<ClusterProfile>::namespaced(client, &namespace)
            .patch(
                &profile.name_any(),
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({
                    "metadata": { "annotations": { APPROVAL_ANNOTATION: token } }
                })),
            )
            .await
            .map_err(|e| {
                CommandError::Failed(format!(
                    "cannot write the approval on ClusterProfile {namespace}/{}: {e}",
                    profile.name_any()
                ))
            })?;
        report.approved = Some(token);
    }
    Ok(report)
}

/// The profile object of `NAME` at `--version`, in `--namespace` when given.
fn the_profile(
    profiles: &[ClusterProfile],
    args: &RolloutArgs,
) -> Result<ClusterProfile, CommandError> {
    let found: Vec<&ClusterProfile> = versions_of(profiles, &args.name)
        .into_iter()
        .filter(|p| p.spec.version == args.version)
        .filter(|p| {
            args.namespace
                .as_deref()
                .is_none_or(|n| p.namespace().as_deref() == Some(n))
        })
        .collect();
    match found.as_slice() {
        [profile] => Ok((*profile).clone()),
        [] => Err(CommandError::Failed(format!(
            "profile {:?} has no published version {:?}{} (see `strata profile versions {}`)",
            args.name,
            args.version,
            args.namespace
                .as_deref()
                .map(|n| format!(" in namespace {n}"))
                .unwrap_or_default(),
            args.name
        ))),
        several => Err(CommandError::Failed(format!(
            "profile {:?} version {:?} is published in several namespaces ({}); name one with --namespace",
            args.name,
            args.version,
            several
                .iter()
                .map(|p| p.namespace().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn members(profile: &ClusterProfile, clusters: &[WorkloadCluster]) -> Vec<FleetMember> {
    let mut members: Vec<FleetMember> = clusters
        .iter()
        .filter(|c| uses(c, profile))
        .map(|c| FleetMember::of(c, &rollout_name(profile)))
        .collect();
    members.sort_by(|a, b| a.key.cmp(&b.key));
    members
}

fn gate<'a>(
    profile: &'a ClusterProfile,
    policy: &'a RolloutPolicy,
    members: &'a [FleetMember],
) -> RolloutGate<'a> {
    static NONE_RELEASED: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    RolloutGate {
        profile: rollout_name(profile),
        policy,
        generation: profile.metadata.generation.unwrap_or(0),
        approval: profile
            .annotations()
            .get(APPROVAL_ANNOTATION)
            .map(String::as_str),
        members,
        released: &NONE_RELEASED,
    }
}

fn approval_token(profile: &ClusterProfile, clusters: &[WorkloadCluster]) -> String {
    let members = members(profile, clusters);
    gate(profile, &policy_of(profile), &members).approval_token()
}

/// The rollout as management records it; needs no client.
pub fn report_of(profile: &ClusterProfile, clusters: &[WorkloadCluster]) -> RolloutReport {
    let members = members(profile, clusters);
    let policy = policy_of(profile);
    // A cluster outside the fleet asks: is there a place for one more?
    let gate_state = match gate(profile, &policy, &members).decide("") {
        Ok(()) => "open".to_string(),
        Err(hold) => hold.to_string(),
    };
    let clusters_report = members
        .iter()
        .map(|m| {
            let cluster = clusters.iter().find(|c| cluster_key(c) == m.key);
            let held = cluster
                .and_then(|c| c.status.as_ref())
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == REVISION_PUBLISHED))
                .filter(|c| c.reason.starts_with("Rollout"))
                .map(|c| c.message.clone());
            let (state, message) = if !m.pivoted {
                ("not pivoted", None)
            } else if let Some(failure) = &m.failure {
                ("failed", Some(failure.clone()))
            } else if m.applied != m.published {
                ("applying", None)
            } else if let Some(held) = held {
                ("held", Some(held))
            } else {
                ("done", None)
            };
            RolloutMember {
                cluster: m.key.clone(),
                published: m.published,
                applied: m.applied,
                state: state.to_string(),
                message,
            }
        })
        .collect();
    RolloutReport {
        profile: rollout_name(profile),
        object: format!(
            "{}/{}",
            profile.namespace().unwrap_or_default(),
            profile.name_any()
        ),
        generation: profile.metadata.generation.unwrap_or(0),
        policy,
        default_policy: profile.spec.rollout.is_none(),
        approval: profile.annotations().get(APPROVAL_ANNOTATION).cloned(),
        gate: gate_state,
        clusters: clusters_report,
        approved: None,
    }
}

fn text(report: &RolloutReport) -> String {
    let mut out = format!(
        "profile {} ({}, generation {})\n",
        report.profile, report.object, report.generation
    );
    let policy = &report.policy;
    out.push_str(&format!(
        "policy: {:?}, {} at a time, {}{}\n",
        policy.strategy,
        policy.max_in_flight(),
        if policy.pause_on_failure() {
            "pause on failure"
        } else {
            "go on after a failure"
        },
        if report.default_policy {
            " (the default: the profile sets no spec.rollout)"
        } else {
            ""
        }
    ));
    if let Some(approval) = &report.approval {
        out.push_str(&format!("approval: {approval}\n"));
    }
    out.push_str(&format!("next cluster: {}\n", report.gate));
    let show = |n: Option<i64>| n.map_or("-".to_string(), |n| n.to_string());
    for member in &report.clusters {
        out.push_str(&format!(
            "  {:<40} published {:<4} applied {:<4} {}{}\n",
            member.cluster,
            show(member.published),
            show(member.applied),
            member.state,
            member
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    if report.clusters.is_empty() {
        out.push_str("  no cluster uses this version\n");
    }
    if let Some(token) = &report.approved {
        out.push_str(&format!("approved: {APPROVAL_ANNOTATION}={token}\n"));
    }
    out
}

#[cfg(test)]
#[path = "profile_rollout_command_tests.rs"]
mod tests;
