//! Rolling a profile change out over the clusters that use it, a few at a time.
//!
//! A profile version with a [`RolloutPolicy`] gates the new revisions of the pivoted
//! clusters that use it: a cluster publishes its next revision only while fewer than
//! `maxInFlight` others are applying one, never while a cluster has failed its revision
//! and nobody has acknowledged it (`pauseOnFailure`), and, with the `Approval` strategy,
//! only once the profile's current generation is approved. The decision is
//! [`RolloutGate::decide`], over a snapshot of the clusters: no client, unit-tested.
//!
//! What "applying" and "failed" mean comes from the sites' reports (`appliedRevision`,
//! `rollout`, `layers`). A site can lie about them, so they only ever set the pace of a
//! change the operator already made: a site cannot make any cluster take a revision that
//! management did not publish for it, only hold the rollout back (visible, and released by
//! an approval) or let the next cluster go sooner.
//!
//! Only a change that a shared profile brings is paced: a revision records the digests of
//! what it was built from ([`RevisionSources`]), and [`gating`] names the profiles whose
//! rollout the next one waits for. A profile version without a policy gets the default
//! one (automatic, one cluster at a time, pause on a failure): an edit never reaches every
//! cluster at once.
//!
//! An approval is the profile's annotation [`APPROVAL_ANNOTATION`] set to the
//! [`RolloutGate::approval_token`] of the moment (`strata profile rollout NAME --version V
//! --approve` writes it): the generation it approves and the failures it acknowledges.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kube::ResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bounded_text::cut;
use crate::cluster::{ClusterPhase, LayerPhase, WorkloadCluster};
use crate::contracts::conditions::REVISION_PUBLISHED;
use crate::profile::ClusterProfile;
use crate::revision::{RevisionSources, content_hash};

/// The profile annotation that approves a rollout and acknowledges its failures.
pub const APPROVAL_ANNOTATION: &str = "strata.dev/rollout-approval";

/// How a change of this profile version reaches the clusters that use it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPolicy {
    /// `Automatic` (the default): clusters take the change as others finish;
    /// `Approval`: none takes it until the profile's current generation is approved.
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// Clusters applying a new revision at once; 1 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_in_flight: Option<u32>,
    /// Whether a cluster that fails its revision stops the rollout until an approval
    /// acknowledges it; true when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_on_failure: Option<bool>,
}

impl RolloutPolicy {
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.map_or(1, |n| n.max(1) as usize)
    }

    pub fn pause_on_failure(&self) -> bool {
        self.pause_on_failure.unwrap_or(true)
    }
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RolloutStrategy {
    #[default]
    Automatic,
    Approval,
}

/// One cluster using the profile, as management sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetMember {
    /// `namespace/name`.
    pub key: String,
    /// Its objects live in the workload cluster, whose agent applies its revisions. Before
    /// the pivot the controller applies them itself, and the gate does not hold them.
    pub pivoted: bool,
    /// The latest revision management published for it.
    pub published: Option<i64>,
    /// The revision its site reports applied.
    pub applied: Option<i64>,
    /// Why its site says the published revision cannot go on, if it says so.
    pub failure: Option<String>,
    /// The controller holds its next revision back for this rollout (its own condition).
    pub held: bool,
}

/// `name:version`: the rollout of one profile version, as holds and approvals name it.
pub fn rollout_name(profile: &ClusterProfile) -> String {
    format!("{}:{}", profile.profile_name(), profile.spec.version)
}

/// `namespace/name`.
pub fn cluster_key(cluster: &WorkloadCluster) -> String {
    format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    )
}

/// Whether `cluster` selects `profile` by its name and version. Profiles are matched
/// by name and version wherever they live: keep one object per name and version.
pub fn uses(cluster: &WorkloadCluster, profile: &ClusterProfile) -> bool {
    cluster
        .spec
        .profiles
        .iter()
        .any(|p| p.name == profile.profile_name() && p.version == profile.spec.version)
}

impl RevisionSources {
    /// The digests of `cluster`'s spec and of the `profiles` it selects, as a revision
    /// built from them records. What does not change the content is left out: the
    /// cluster's `rollbackTo` (a rollback is published from the earlier revision), a
    /// profile's rollout policy.
    pub fn of(cluster: &WorkloadCluster, profiles: &[ClusterProfile]) -> RevisionSources {
        let mut spec = cluster.spec.clone();
        spec.rollback_to = None;
        RevisionSources {
            cluster: content_hash(&spec),
            profiles: profiles
                .iter()
                .map(|p| (rollout_name(p), profile_digest(p)))
                .collect::<BTreeMap<_, _>>(),
        }
    }
}

/// `sha256:` of a profile version's content: its spec without the rollout policy.
fn profile_digest(profile: &ClusterProfile) -> String {
    let mut spec = profile.spec.clone();
    spec.rollout = None;
    content_hash(&spec)
}

/// The profiles whose rollout paces a cluster's move from the revision built from
/// `previous` to one built from `now`, each with its policy (the default when it has
/// none).
///
/// - A profile version the cluster selected before, whose content changed: its change.
/// - A profile version the cluster did not select before: the operator moved this one
///   cluster to it, which no rollout paces.
/// - Nothing the cluster selects changed and neither did its spec, yet the content did
///   (a pack republished under its version, a cloud account): every profile it selected
///   before paces it, since the change reaches every cluster that uses them.
/// - A previous revision that recorded no sources: every profile it selected paces it;
///   there is no telling where the change came from.
pub fn gating<'a>(
    previous: Option<&RevisionSources>,
    previous_profiles: &[String],
    now: &RevisionSources,
    profiles: &'a [ClusterProfile],
) -> Vec<(&'a ClusterProfile, RolloutPolicy)> {
    let selected_before = |p: &ClusterProfile| {
        previous_profiles
            .iter()
            .any(|name| *name == rollout_name(p))
    };
    let changed = |p: &ClusterProfile| {
        let name = rollout_name(p);
        match previous {
            None => true,
            Some(previous) => previous.profiles.get(&name) != now.profiles.get(&name),
        }
    };
    let own_change = previous.is_some_and(|previous| previous.cluster != now.cluster);
    let any_changed = profiles.iter().any(|p| selected_before(p) && changed(p));
    profiles
        .iter()
        .filter(|p| selected_before(p))
        .filter(|p| changed(p) || (!any_changed && !own_change))
        .map(|p| (p, policy_of(p)))
        .collect()
}

/// The profile version's rollout policy, or the default one when it sets none.
pub fn policy_of(profile: &ClusterProfile) -> RolloutPolicy {
    profile.spec.rollout.clone().unwrap_or_default()
}

impl FleetMember {
    /// One cluster as the rollout of `profile` (`name:version`) sees it: management's
    /// record (phase, published revision, whether this rollout holds it) and its site's
    /// report (applied revision, a failed step or layer of the published revision).
    pub fn of(cluster: &WorkloadCluster, profile: &str) -> FleetMember {
        let status = cluster.status.as_ref();
        let held = status
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == REVISION_PUBLISHED))
            .is_some_and(|c| {
                c.reason.starts_with("Rollout") && c.message.contains(&held_by(profile))
            });
        let published = status.and_then(|s| s.revision);
        let failure = status.and_then(|s| {
            let rollout = s
                .rollout
                .as_ref()
                .filter(|r| Some(r.revision) == published)?;
            if rollout.state == "Failed" {
                return Some(format!(
                    "{}: {}",
                    rollout.step,
                    rollout.message.as_deref().unwrap_or("failed")
                ));
            }
            let layer = s.layers.iter().find(|l| l.state == LayerPhase::Failed)?;
            Some(format!(
                "{}: layer {} {} failed: {}",
                rollout.step,
                layer.name,
                layer.version,
                layer.message.as_deref().unwrap_or("no message")
            ))
        });
        // The site's words end up in the conditions of the other clusters the rollout
        // holds: bounded, so that one site cannot bloat every other cluster's status.
        let failure = failure.map(|text| cut(&text, FAILURE_TEXT_LIMIT));
        FleetMember {
            key: cluster_key(cluster),
            pivoted: status.and_then(|s| s.phase) == Some(ClusterPhase::Pivoted),
            published,
            applied: status.and_then(|s| s.applied_revision),
            failure,
            held,
        }
    }

    /// Applying a revision it has not finished.
    fn applying(&self) -> bool {
        self.pivoted && self.published.is_some() && self.applied != self.published
    }

    /// `namespace/name@r<revision>`: its published revision, as an approval acknowledges
    /// that revision's failure.
    fn revision_key(&self) -> String {
        format!("{}@r{}", self.key, self.published.unwrap_or(0))
    }

    /// [`Self::revision_key`], while it has failed.
    fn failure_key(&self) -> Option<String> {
        self.failure.as_ref()?;
        Some(self.revision_key())
    }
}

/// Why a cluster may not publish its next revision now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// The `Approval` strategy, and this generation is not approved.
    AwaitingApproval { profile: String, token: String },
    /// Clusters failed their revision and no approval acknowledged them.
    Paused {
        profile: String,
        failed: Vec<(String, String)>,
        token: String,
    },
    /// `maxInFlight` clusters are applying a revision, or clusters with earlier names
    /// wait for the places there are.
    Busy {
        profile: String,
        applying: Vec<String>,
        max: usize,
    },
}

impl Hold {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Hold::AwaitingApproval { .. } => "RolloutAwaitingApproval",
            Hold::Paused { .. } => "RolloutPaused",
            Hold::Busy { .. } => "RolloutWaiting",
        }
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::AwaitingApproval { profile, token } => write!(
                f,
                "{}waits for approval (strategy Approval): approve it with `strata profile rollout {} --approve`, or set the annotation {APPROVAL_ANNOTATION}={token:?}",
                held_by(profile),
                approve_args(profile)
            ),
            Hold::Paused {
                profile,
                failed,
                token,
            } => {
                let failed: Vec<String> = failed
                    .iter()
                    .map(|(cluster, why)| format!("cluster {cluster} failed: {why}"))
                    .collect();
                write!(
                    f,
                    "{}is paused: {}; once it is understood, go on with `strata profile rollout {} --approve`, or set the annotation {APPROVAL_ANNOTATION}={token:?}",
                    held_by(profile),
                    failed.join("; "),
                    approve_args(profile)
                )
            }
            Hold::Busy {
                profile,
                applying,
                max,
            } => write!(
                f,
                "{}applies {max} cluster(s) at a time, in name order; waiting for {}",
                held_by(profile),
                applying.join(", ")
            ),
        }
    }
}

/// The longest failure text of a site that a hold repeats.
pub const FAILURE_TEXT_LIMIT: usize = 300;

/// How a hold's message names the rollout it belongs to.
fn held_by(profile: &str) -> String {
    format!("the rollout of profile {profile} ")
}

/// `NAME --version V` of `NAME:V`.
fn approve_args(profile: &str) -> String {
    match profile.rsplit_once(':') {
        Some((name, version)) => format!("{name} --version {version}"),
        None => profile.to_string(),
    }
}

/// One profile version's rollout, at one moment.
#[derive(Debug, Clone)]
pub struct RolloutGate<'a> {
    /// `name:version`.
    pub profile: String,
    pub policy: &'a RolloutPolicy,
    /// The profile object's `metadata.generation`: what an approval approves.
    pub generation: i64,
    /// The profile's [`APPROVAL_ANNOTATION`], if set.
    pub approval: Option<&'a str>,
    /// Every cluster using the profile version.
    pub members: &'a [FleetMember],
    /// Clusters this controller published a revision for and whose status may not show it
    /// yet: applying, whatever their status says.
    pub released: &'a BTreeSet<String>,
}

impl RolloutGate<'_> {
    /// Whether `cluster` may publish its next revision now.
    pub fn decide(&self, cluster: &str) -> Result<(), Hold> {
        let approved = Approval::parse(self.approval);
        if self.policy.strategy == RolloutStrategy::Approval
            && approved.generation != Some(self.generation)
        {
            return Err(Hold::AwaitingApproval {
                profile: self.profile.clone(),
                token: self.approval_token(),
            });
        }
        // A failed cluster does not hold itself: its next revision is how it is fixed.
        let unacknowledged: Vec<(String, String)> = self
            .members
            .iter()
            .filter(|m| m.key != cluster && m.applying())
            .filter_map(|m| {
                let key = m.failure_key()?;
                (!approved.acknowledged.contains(&key))
                    .then(|| (m.key.clone(), m.failure.clone().unwrap_or_default()))
            })
            .collect();
        if self.policy.pause_on_failure() && !unacknowledged.is_empty() {
            return Err(Hold::Paused {
                profile: self.profile.clone(),
                failed: unacknowledged,
                token: self.approval_token(),
            });
        }
        let applying: BTreeSet<String> = self
            .members
            .iter()
            .filter(|m| m.key != cluster && m.applying())
            // An acknowledged failure no longer holds a place, even while its site tries the
            // revision again (and says nothing failed until it fails again): the approval
            // lets the rest go.
            .filter(|m| !approved.acknowledged.contains(&m.revision_key()))
            .map(|m| m.key.clone())
            .chain(self.released.iter().filter(|k| *k != cluster).cloned())
            .collect();
        let max = self.policy.max_in_flight();
        // Clusters go in name order: one this rollout holds with an earlier name goes first.
        let earlier: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.held && m.key.as_str() < cluster && !applying.contains(&m.key))
            .map(|m| m.key.clone())
            .collect();
        if applying.len() >= max || (!earlier.is_empty() && applying.len() + earlier.len() >= max) {
            let mut waiting_for: Vec<String> = applying.into_iter().collect();
            waiting_for.extend(earlier);
            return Err(Hold::Busy {
                profile: self.profile.clone(),
                applying: waiting_for,
                max,
            });
        }
        Ok(())
    }

    /// The approval of this moment: the generation, and every failure there is.
    pub fn approval_token(&self) -> String {
        let mut token = format!("g{}", self.generation);
        let mut failures: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.applying())
            .filter_map(FleetMember::failure_key)
            .collect();
        // Failures acknowledged before stay acknowledged.
        failures.extend(Approval::parse(self.approval).acknowledged);
        failures.sort();
        failures.dedup();
        for failure in failures {
            token.push(';');
            token.push_str(&failure);
        }
        token
    }
}

/// An approval annotation: `g<generation>[;<namespace/name>@r<revision>]…`.
#[derive(Debug, Default)]
struct Approval {
    generation: Option<i64>,
    acknowledged: BTreeSet<String>,
}

impl Approval {
    fn parse(text: Option<&str>) -> Approval {
        let Some(text) = text else {
            return Approval::default();
        };
        let mut parts = text.split(';').map(str::trim);
        let generation = parts
            .next()
            .and_then(|g| g.strip_prefix('g'))
            .and_then(|g| g.parse().ok());
        Approval {
            generation,
            acknowledged: parts
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

#[cfg(test)]
#[path = "fleet_rollout_tests.rs"]
mod tests;
