//! Resolving a valid cluster: its profiles' packs (from the registries it may use), the
//! composed stack, and the desired state a revision is made of. A stack that does not
//! compose makes the cluster [`Invalid`], its reason from the kinds of the findings.
//! The packs' `upgrade` dependencies are kept beside the desired state: a revision pins
//! versions, not manifests, and the upgrade rules need them when the revision is published.

use strata_shared::conditions::ConditionUpdate;
use strata_shared::contracts::conditions::VALID;
use strata_shared::profile::compose::{compose, end_of_life_warnings};
use strata_shared::profile::{ClusterProfile, select_profile};
use strata_shared::revision::{DesiredState, RevisionSources, UpgradeConstraint, desired_state};

use super::context::Context;
use super::dereference::Inputs;
use super::outcome::{Invalid, InvalidReason};
use super::validate::ValidCluster;

/// What a valid cluster resolves to.
pub struct Resolved {
    pub desired: DesiredState,
    /// The `upgrade` dependencies of the stack's packs.
    pub upgrade_constraints: Vec<UpgradeConstraint>,
    /// The profiles the cluster selects (their rollout policies gate its next revision).
    pub profiles: Vec<ClusterProfile>,
    /// The digests of the cluster's spec and its profiles, which the revision records.
    pub sources: RevisionSources,
    /// The warnings of the composition, `severity: subject: message`.
    pub warnings: Vec<String>,
}

impl Resolved {
    /// The Valid condition of a cluster that resolved.
    pub fn valid_condition(&self) -> ConditionUpdate<'static> {
        ConditionUpdate::ok(
            VALID,
            "Valid",
            if self.warnings.is_empty() {
                format!(
                    "{} layers from {}",
                    self.desired.layers.len(),
                    self.desired.profiles.join(", ")
                )
            } else {
                format!("valid, with warnings: {}", self.warnings.join("; "))
            },
        )
    }
}

/// Today's date in UTC, for packs' end of life.
fn today() -> k8s_openapi::jiff::civil::Date {
    k8s_openapi::jiff::Timestamp::now()
        .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
        .date()
}

pub async fn stack(
    ctx: &Context,
    valid: &ValidCluster<'_>,
    inputs: &Inputs,
) -> Result<Resolved, Invalid> {
    let cluster = valid.cluster;
    let selected: Vec<&ClusterProfile> = cluster
        .spec
        .profiles
        .iter()
        .filter_map(|r| select_profile(&inputs.profiles, &r.name, &r.version).ok())
        .collect();
    let packs = ctx
        .packs
        .resolve(&ctx.writer, &selected, &inputs.registries)
        .await;
    let (stack, findings) = compose(cluster, &inputs.profiles, &packs);
    let Some(stack) = stack else {
        let reason = InvalidReason::of_composition(&findings);
        return Err(Invalid::from_findings(reason, &findings));
    };
    let desired = desired_state(cluster, &stack, valid.account)
        .map_err(|findings| Invalid::from_findings(InvalidReason::InvalidStack, &findings))?;
    let upgrade_constraints = stack
        .layers
        .iter()
        .flat_map(|l| UpgradeConstraint::of(&l.manifest))
        .collect();
    let profiles: Vec<ClusterProfile> = selected.into_iter().cloned().collect();
    Ok(Resolved {
        desired,
        upgrade_constraints,
        sources: RevisionSources::of(cluster, &profiles),
        profiles,
        warnings: findings
            .warnings()
            .chain(end_of_life_warnings(&stack, today()).warnings())
            .map(|w| w.to_string())
            .collect(),
    })
}
