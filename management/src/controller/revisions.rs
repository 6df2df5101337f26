//! Publishing revisions: the desired state becomes `<cluster>-r<N>` in the cluster's
//! objects namespace when it differs from the latest revision, and never changes after.
//! The latest revision is the one the cluster runs (management's own record, never what
//! the site reports), and a change the upgrade rules refuse publishes nothing: the
//! cluster stays on it. A rollback republishes an earlier revision's content as the next
//! revision, so the agent applies it through the same ordered path.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use strata_shared::cluster::{PendingRevision, WorkloadCluster};
use strata_shared::contracts::labels::{REVISION_CLUSTER_LABEL, REVISION_NUMBER_LABEL};
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::profile::fleet_rollout::gating;
use strata_shared::profile::{ClusterProfile, Hold};
use strata_shared::revision::{
    ClusterRevision, ClusterRevisionSpec, DesiredState, RevisionPlan, RevisionSources,
    UpgradeConstraint, UpgradeRefused, UpgradeRule, UpgradeViolation, check_upgrade, content_hash,
    revision_name,
};

use super::fleet_gate::FleetGate;

#[derive(Debug, thiserror::Error)]
pub enum RevisionError {
    #[error("cannot publish the revision of cluster {cluster}: {source}")]
    Write {
        cluster: String,
        #[source]
        source: WriteError,
    },
    #[error(transparent)]
    NothingToRollBack(#[from] NothingToRollBack),
}

/// The revision in force after publishing: its number, whether it is new, and its desired
/// state, which is not the one asked for when the change was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub number: i64,
    pub new: bool,
    pub desired: DesiredState,
    /// The earlier revision whose content it republishes, for a rollback.
    pub rollback_of: Option<i64>,
    /// It, while the site reports an earlier revision applied.
    pub pending: Option<PendingRevision>,
    /// The rollout that holds the change back for now.
    pub held: Option<Hold>,
    /// Why the asked-for desired state was not published.
    pub refused: Option<UpgradeRefused>,
}

/// The latest revision of a cluster, among `revisions`.
pub fn latest(revisions: &[ClusterRevision]) -> Option<&ClusterRevision> {
    revisions.iter().max_by_key(|r| r.spec.number)
}

/// What the cluster asks to run.
#[derive(Debug, Clone, Copy)]
pub enum Wanted<'a> {
    /// The state its spec resolves to; `constraints` are the `upgrade` dependencies of
    /// its packs.
    Spec {
        desired: &'a DesiredState,
        constraints: &'a [UpgradeConstraint],
        /// What `desired` was built from.
        sources: &'a RevisionSources,
    },
    /// The content of an earlier revision (`spec.rollbackTo`). Its packs' `upgrade`
    /// dependencies are not checked: a revision pins versions, not manifests, and those
    /// dependencies constrain upgrades, not a return to versions the cluster ran.
    Rollback(i64),
}

/// What publishing decides, before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub enum PublishDecision {
    /// The latest revision stays in force; `refused` says why the asked-for one was not
    /// published, when it was not already the latest's content.
    Keep {
        current: ClusterRevisionSpec,
        refused: Option<UpgradeRefused>,
    },
    /// A new revision, numbered after the latest.
    Create(ClusterRevisionSpec),
}

/// The rollback target: not a revision the cluster has, or already the one it runs.
#[derive(Debug, thiserror::Error)]
#[error("spec.rollbackTo is {asked}, but cluster {cluster} has no revision yet to roll back from")]
pub struct NothingToRollBack {
    pub cluster: String,
    pub asked: i64,
}

/// Decides what to publish for `cluster` given its `existing` revisions; needs no client.
pub fn decide(
    cluster: &str,
    existing: &[ClusterRevision],
    wanted: Wanted<'_>,
) -> Result<PublishDecision, NothingToRollBack> {
    let current = latest(existing).map(|r| &r.spec);
    let (desired, constraints, sources, rollback_of) = match wanted {
        Wanted::Spec {
            desired,
            constraints,
            sources,
        } => (desired, constraints, Some(sources.clone()), None),
        Wanted::Rollback(asked) => {
            let Some(current) = current else {
                return Err(NothingToRollBack {
                    cluster: cluster.to_string(),
                    asked,
                });
            };
            match existing.iter().find(|r| r.spec.number == asked) {
                Some(target) if asked < current.number => (
                    &target.spec.desired,
                    &[][..],
                    target.spec.sources.clone(),
                    Some(asked),
                ),
                _ => {
                    return Ok(PublishDecision::Keep {
                        current: current.clone(),
                        refused: Some(rollback_target_refused(asked, current, existing)),
                    });
                }
            }
        }
    };
    let hash = content_hash(desired);
    if let Some(current) = current {
        if current.content_hash == hash {
            return Ok(PublishDecision::Keep {
                current: current.clone(),
                refused: None,
            });
        }
        if let Err(refused) = check_upgrade(&current.desired, desired, constraints) {
            return Ok(PublishDecision::Keep {
                current: current.clone(),
                refused: Some(refused),
            });
        }
    }
    Ok(PublishDecision::Create(ClusterRevisionSpec {
        cluster_name: cluster.to_string(),
        number: current.map_or(1, |r| r.number + 1),
        content_hash: hash,
        desired: desired.clone(),
        rollback_of,
        sources,
    }))
}

fn rollback_target_refused(
    asked: i64,
    current: &ClusterRevisionSpec,
    existing: &[ClusterRevision],
) -> UpgradeRefused {
    let first = existing.iter().map(|r| r.spec.number).min().unwrap_or(1);
    let message = if asked == current.number {
        format!(
            "spec.rollbackTo is {asked}, the revision the cluster runs; name an earlier one or unset it"
        )
    } else {
        format!(
            "spec.rollbackTo is {asked}; the cluster has revisions {first} to {}, and can roll back to one before {}",
            current.number, current.number
        )
    };
    UpgradeRefused {
        violations: vec![UpgradeViolation {
            rule: UpgradeRule::RollbackTarget,
            message,
        }],
    }
}

/// The latest revision while the site reports an earlier one applied, with the plan's
/// summary. `applied` is the site's report: it only picks the plan's baseline among the
/// revisions management has, and a number that is not one of them is said, not used.
pub fn pending(
    existing: &[ClusterRevisionSpec],
    latest: &ClusterRevisionSpec,
    applied: Option<i64>,
) -> Option<PendingRevision> {
    let applied = applied?;
    if applied == latest.number {
        return None;
    }
    let summary = match existing.iter().find(|r| r.number == applied) {
        Some(from) if applied < latest.number => match RevisionPlan::between(from, latest) {
            Ok(plan) if plan.is_empty() => "nothing to apply".to_string(),
            Ok(plan) => plan.summary,
            Err(e) => format!("no plan: {e}"),
        },
        _ => format!(
            "no plan: the cluster reports revision {applied} applied, which is not one of its revisions before {}",
            latest.number
        ),
    };
    Some(PendingRevision {
        revision: latest.number,
        from: Some(applied),
        summary,
    })
}

/// Whether a new revision must pass the rollout gate of the cluster's profiles. The first
/// has nothing to wait for: there is nothing it changes. A rollback is one cluster's
/// operator acting on that cluster (often the one that failed and paused the rollout): no
/// rollout holds it back.
pub fn gated(existing: &[ClusterRevision], wanted: Wanted<'_>) -> bool {
    !existing.is_empty() && !matches!(wanted, Wanted::Rollback(_))
}

/// The rollout gate a new revision (not the first) must pass.
pub struct Admission<'a> {
    pub gate: &'a FleetGate,
    pub cluster: &'a WorkloadCluster,
    /// The profiles the cluster selects.
    pub profiles: &'a [ClusterProfile],
}

/// Publishes what the cluster asks for as its next revision unless it is the latest one's
/// content already, or the upgrade rules refuse the move from the latest one to it. The
/// first revision has no rule to meet.
pub async fn publish(
    writer: &KubeWriter,
    namespace: &str,
    cluster: &str,
    wanted: Wanted<'_>,
    applied: Option<i64>,
    admission: Admission<'_>,
) -> Result<Published, RevisionError> {
    let revisions = writer.namespaced::<ClusterRevision>(namespace);
    let existing = revisions
        .list(&ListParams::default().labels(&format!("{REVISION_CLUSTER_LABEL}={cluster}")))
        .await
        .map_err(|source| RevisionError::Write {
            cluster: cluster.to_string(),
            source,
        })?;
    let mut specs: Vec<ClusterRevisionSpec> = existing.iter().map(|r| r.spec.clone()).collect();
    let keep = |current: &ClusterRevisionSpec, refused, held| Published {
        number: current.number,
        new: false,
        pending: pending(&specs, current, applied),
        desired: current.desired.clone(),
        rollback_of: current.rollback_of,
        refused,
        held,
    };
    let spec = match decide(cluster, &existing, wanted)? {
        PublishDecision::Keep { current, refused } => return Ok(keep(&current, refused, None)),
        PublishDecision::Create(spec) => spec,
    };
    let admitted = match (latest(&existing), wanted) {
        (Some(current), Wanted::Spec { sources, .. }) if gated(&existing, wanted) => {
            match admission
                .gate
                .admit(
                    admission.cluster,
                    gating(
                        current.spec.sources.as_ref(),
                        &current.spec.desired.profiles,
                        sources,
                        admission.profiles,
                    ),
                )
                .await
            {
                Ok(admitted) => Some(admitted),
                Err(hold) => return Ok(keep(&current.spec, None, Some(hold))),
            }
        }
        _ => None,
    };
    let number = spec.number;
    let revision = ClusterRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(cluster, number)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (REVISION_CLUSTER_LABEL.to_string(), cluster.to_string()),
                (REVISION_NUMBER_LABEL.to_string(), number.to_string()),
            ])),
            ..ObjectMeta::default()
        },
        spec,
    };
    // Create, never apply: a revision that exists is never rewritten. Losing a race to
    // another writer of the same number fails with a conflict and the next reconcile
    // sees the winner.
    revisions
        .create(&revision)
        .await
        .map_err(|source| RevisionError::Write {
            cluster: cluster.to_string(),
            source,
        })?;
    if let Some(admitted) = admitted {
        admitted.published(number);
    }
    specs.push(revision.spec.clone());
    Ok(Published {
        number,
        new: true,
        pending: pending(&specs, &revision.spec, applied),
        desired: revision.spec.desired,
        rollback_of: revision.spec.rollback_of,
        refused: None,
        held: None,
    })
}

#[cfg(test)]
#[path = "revisions_tests.rs"]
mod tests;
