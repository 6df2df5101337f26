//! `strata cluster plan NAMESPACE/NAME`: what applying a cluster's next revision will do,
//! printed in full ([`RevisionPlan`]). It reads the WorkloadCluster and its revisions from
//! the management cluster and writes nothing.
//!
//! The plan goes from the revision the cluster runs (`status.appliedRevision`, the agent's
//! report after the pivot) to the latest published one (`status.revision`) or the one
//! asked for. Before the pivot no revision is reported applied; the plan then goes from the
//! revision before the target, and says so.

use std::io::Write;
use std::path::PathBuf;

use kube::Api;
use kube::api::ListParams;
use serde::Serialize;
use strata_shared::cluster::{WorkloadCluster, WorkloadClusterStatus};
use strata_shared::contracts::labels::REVISION_CLUSTER_LABEL;
use strata_shared::revision::{ClusterRevision, RevisionPlan, revision_name};

use crate::management_client::{client_from, command_runtime};
use crate::report::{OutputFormat, document_text};
use crate::{CommandError, ExitStatus};

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// The WorkloadCluster, NAMESPACE/NAME.
    #[arg(value_name = "NAMESPACE/NAME")]
    pub cluster: String,
    /// The management cluster's kubeconfig; else $KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Plan this revision instead of the latest published one (an earlier number plans a
    /// rollback).
    #[arg(long, value_name = "N")]
    pub revision: Option<i64>,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// The revision the plan starts from, and why that one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Baseline {
    /// `status.appliedRevision`: the revision the agent reports the cluster runs.
    Applied { revision: i64 },
    /// No revision reported applied (the cluster is not pivoted yet): the revision
    /// published before the target.
    Previous { revision: i64 },
    /// No revision applied and none before the target: the target is the cluster's first.
    None,
}

impl Baseline {
    fn describe(&self, to: i64) -> String {
        match self {
            Baseline::Applied { revision } => {
                format!("baseline: revision {revision}, the applied one (status.appliedRevision)")
            }
            Baseline::Previous { revision } => format!(
                "baseline: revision {revision}, the one published before revision {to} (no revision is reported applied: the cluster is not pivoted yet)"
            ),
            Baseline::None => format!(
                "baseline: none; revision {to} is the cluster's first and no revision is reported applied"
            ),
        }
    }
}

/// What the command prints as JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    /// `NAMESPACE/NAME` of the WorkloadCluster.
    pub cluster: String,
    pub baseline: Baseline,
    pub plan: RevisionPlan,
}

impl PlanReport {
    pub fn text(&self) -> String {
        format!(
            "WorkloadCluster {}: {}\n{}",
            self.cluster,
            self.baseline.describe(self.plan.to),
            self.plan
        )
    }
}

fn failed(message: impl Into<String>) -> CommandError {
    CommandError::Failed(message.into())
}

/// `NAMESPACE/NAME`.
fn parse_cluster(text: &str) -> Result<(String, String), CommandError> {
    match text.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok((namespace.to_string(), name.to_string()))
        }
        _ => Err(failed(format!(
            "{text:?}: expected the WorkloadCluster as NAMESPACE/NAME"
        ))),
    }
}

pub fn plan(args: &PlanArgs) -> Result<ExitStatus, CommandError> {
    let report = command_runtime()?.block_on(read_and_plan(args))?;
    let text = match args.output.document() {
        Some(format) => document_text(&report, format)?,
        None => report.text(),
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| failed(format!("cannot write to stdout: {e}")))?;
    Ok(ExitStatus::Success)
}

async fn read_and_plan(args: &PlanArgs) -> Result<PlanReport, CommandError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (namespace, name) = parse_cluster(&args.cluster)?;
    let client = client_from(args.kubeconfig.as_deref(), "--kubeconfig").await?;
    let shown = format!("WorkloadCluster {namespace}/{name}");
    let cluster = Api::<WorkloadCluster>::namespaced(client.clone(), &namespace)
        .get_opt(&name)
        .await
        .map_err(|e| failed(format!("cannot read {shown}: {e}")))?
        .ok_or_else(|| failed(format!("there is no {shown}")))?;
    let status = cluster.status.unwrap_or_default();
    let objects_namespace = status.namespace.clone().ok_or_else(|| {
        failed(format!(
            "{shown} has no status.namespace: the controller has not given it an objects namespace, so it has no revision yet"
        ))
    })?;
    let revisions = Api::<ClusterRevision>::namespaced(client, &objects_namespace)
        .list(&ListParams::default().labels(&format!("{REVISION_CLUSTER_LABEL}={name}")))
        .await
        .map_err(|e| {
            failed(format!(
                "cannot list the ClusterRevisions of {shown} in namespace {objects_namespace}: {e}"
            ))
        })?
        .items;
    plan_report(
        &Located {
            namespace: &namespace,
            name: &name,
            objects_namespace: &objects_namespace,
        },
        &status,
        &revisions,
        args.revision,
    )
}

/// Where a cluster and its revisions are, for errors.
pub struct Located<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub objects_namespace: &'a str,
}

/// The plan of a cluster with `status` and `revisions`, to revision `requested` or else
/// the latest published. Errors name the object and what is missing.
pub fn plan_report(
    at: &Located,
    status: &WorkloadClusterStatus,
    revisions: &[ClusterRevision],
    requested: Option<i64>,
) -> Result<PlanReport, CommandError> {
    let shown = format!("WorkloadCluster {}/{}", at.namespace, at.name);
    let target = match requested.or(status.revision) {
        Some(target) => target,
        None => {
            return Err(failed(format!(
                "{shown} has no status.revision: the controller has published no revision for it yet"
            )));
        }
    };
    let find = |number: i64, why: &str| {
        revisions
            .iter()
            .find(|r| r.spec.number == number)
            .ok_or_else(|| {
                failed(format!(
                    "ClusterRevision {}/{} ({why}) does not exist; the cluster has revisions {}",
                    at.objects_namespace,
                    revision_name(at.name, number),
                    numbers(revisions)
                ))
            })
    };
    let to = find(
        target,
        &match requested {
            Some(n) => format!("--revision {n}"),
            None => format!("status.revision of {shown}"),
        },
    )?;
    let (from, baseline) = match status.applied_revision {
        Some(applied) => (
            find(applied, &format!("status.appliedRevision of {shown}"))?,
            Baseline::Applied { revision: applied },
        ),
        None => match revisions
            .iter()
            .filter(|r| r.spec.number < target)
            .max_by_key(|r| r.spec.number)
        {
            Some(previous) => (
                previous,
                Baseline::Previous {
                    revision: previous.spec.number,
                },
            ),
            None => (to, Baseline::None),
        },
    };
    let plan = RevisionPlan::between(&from.spec, &to.spec)
        .map_err(|e| failed(format!("cannot plan {shown}: {e}")))?;
    Ok(PlanReport {
        cluster: format!("{}/{}", at.namespace, at.name),
        baseline,
        plan,
    })
}

fn numbers(revisions: &[ClusterRevision]) -> String {
    let mut numbers: Vec<i64> = revisions.iter().map(|r| r.spec.number).collect();
    numbers.sort_unstable();
    if numbers.is_empty() {
        return "none".to_string();
    }
    numbers
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "cluster_plan_command_tests.rs"]
mod cluster_plan_command_tests;
