//! Resolving a valid cluster: its profiles' packs (from the registries it may use), the
//! composed stack, and the desired state a revision is made of. A stack that does not
//! compose makes the cluster [`Invalid`], its reason from the kinds of the findings.
//! The packs' `upgrade` dependencies are kept beside the desired state: a revision pins
//! versions, not manifests, and the upgrade rules need them when the revision is published.
//! The Cluster API providers the cluster runs after its move come from the management
//! cluster's clusterctl inventory ([`super::providers`]), fetched as packs beside the
//! layers' and pinned the same way.

use strata_shared::catalog::PackSource;
use strata_shared::conditions::ConditionUpdate;
use strata_shared::contracts::conditions::VALID;
use strata_shared::profile::compose::{compose, end_of_life_warnings};
use strata_shared::profile::{ClusterProfile, select_profile};
use strata_shared::provider::WantedProvider;
use strata_shared::revision::{
    DesiredState, RevisionProvider, RevisionSources, UpgradeConstraint, desired_state,
};

use super::context::Context;
use super::dereference::Inputs;
use super::outcome::{Invalid, InvalidReason};
use super::packs::{PackWant, ResolvedPacks};
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
    let providers_unresolved =
        |message: String| Invalid::new(InvalidReason::ProvidersUnresolved, message);
    let wanted = ctx
        .provider_inventory
        .current(&ctx.writer)
        .await
        .map_err(|e| providers_unresolved(e.to_string()))?
        .select(cluster.spec.cloud_type)
        .map_err(|e| providers_unresolved(e.to_string()))?;
    let provider_registry = ctx.settings.provider_registry.clone();
    let provider_packs: Vec<PackWant> = wanted
        .iter()
        .map(|w| PackWant {
            registry: provider_registry.clone(),
            name: w.pack.clone(),
            version: w.pack_version.clone(),
        })
        .collect();
    let packs = ctx
        .packs
        .resolve(&ctx.writer, &selected, &provider_packs, &inputs.registries)
        .await;
    let (stack, findings) = compose(cluster, &inputs.profiles, &packs);
    let Some(stack) = stack else {
        let reason = InvalidReason::of_composition(&findings);
        return Err(Invalid::from_findings(reason, &findings));
    };
    let mut desired = desired_state(cluster, &stack, valid.account)
        .map_err(|findings| Invalid::from_findings(InvalidReason::InvalidStack, &findings))?;
    desired.providers = pin_providers(&wanted, &packs, provider_registry.as_deref())
        .map_err(providers_unresolved)?;
    let no_providers = wanted.is_empty().then(|| {
        "warning: spec.cloudType: the management cluster has no clusterctl provider inventory, so no provider packs: the cluster is provisioned but its objects stay here (docs/providers.md)".to_string()
    });
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
            .chain(no_providers)
            .collect(),
    })
}

/// Each wanted provider with its pack's digest; Err names every pack that could not be
/// fetched (a cluster is never pinned to some of its providers).
fn pin_providers(
    wanted: &[WantedProvider],
    packs: &ResolvedPacks,
    registry: Option<&str>,
) -> Result<Vec<RevisionProvider>, String> {
    let mut pinned = Vec::with_capacity(wanted.len());
    let mut failures = Vec::new();
    for provider in wanted {
        match packs.resolve(&provider.pack, &provider.pack_version, registry) {
            Ok(pack) => pinned.push(RevisionProvider {
                kind: provider.kind,
                provider_name: provider.provider_name.clone(),
                version: provider.version.clone(),
                namespace: provider.namespace.clone(),
                pack: provider.pack.clone(),
                pack_version: provider.pack_version.clone(),
                registry: registry.map(str::to_string),
                digest: pack.digest,
            }),
            Err(e) => failures.push(format!("{} {}: {e}", provider.kind, provider.provider_name)),
        }
    }
    if failures.is_empty() {
        Ok(pinned)
    } else {
        Err(format!(
            "the provider packs of the management cluster's clusterctl inventory: {}",
            failures.join("; ")
        ))
    }
}
