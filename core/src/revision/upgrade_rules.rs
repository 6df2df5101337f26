//! Upgrade rules: whether a cluster may move from the revision it runs to the next one.
//! Checked before a revision is published, so that a refused change publishes nothing and
//! the cluster stays where it is.
//!
//! - [`UpgradeRule::KubernetesMinorStep`]: Kubernetes moves up at most one minor version
//!   at a time (the control plane and kubeadm support no more), within its major version.
//! - [`UpgradeRule::KubernetesNeverDown`]: Kubernetes never goes down, a patch release
//!   included (etcd and the API objects are not downgradable). A rollback to an earlier
//!   revision's content meets the same rule.
//! - [`UpgradeRule::PackUpgradeConstraint`]: a pack whose version changes and that has an
//!   `upgrade` dependency can only be applied on top of the named pack within the bounds,
//!   so the named pack must already be within them in the *running* revision: it has to be
//!   upgraded by a revision of its own first. Within one stack the same dependency is
//!   checked at composition ([`crate::profile::constraints`]); a pack new in the next
//!   revision is installed, not upgraded, so only that check applies to it.
//!
//! - [`UpgradeRule::RollbackTarget`]: `spec.rollbackTo` names a revision the cluster has,
//!   other than the one it runs.
//!
//! The first revision of a cluster has nothing to be checked against.

use std::fmt;

use super::DesiredState;
use crate::pack::manifest::{DependencyType, PackManifest};
use crate::version::{PackVersion, VersionBounds};

/// The rule a change breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeRule {
    KubernetesMinorStep,
    KubernetesNeverDown,
    PackUpgradeConstraint,
    RollbackTarget,
}

impl fmt::Display for UpgradeRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UpgradeRule::KubernetesMinorStep => "one Kubernetes minor version at a time",
            UpgradeRule::KubernetesNeverDown => "Kubernetes never goes down",
            UpgradeRule::PackUpgradeConstraint => "pack upgrade constraint",
            UpgradeRule::RollbackTarget => "rollback target",
        })
    }
}

/// One broken rule: what was found, what is allowed and what to do, in `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeViolation {
    pub rule: UpgradeRule,
    pub message: String,
}

impl fmt::Display for UpgradeViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.message)
    }
}

/// A change the rules refuse, with every rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct UpgradeRefused {
    pub violations: Vec<UpgradeViolation>,
}

/// An `upgrade` dependency of a pack of the next stack: `pack` at `version` can only be
/// applied on top of `on_top_of` within `bounds`. The revision pins versions, not pack
/// manifests, so the constraints come from the stack the next revision is resolved from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeConstraint {
    pub pack: String,
    pub version: String,
    pub on_top_of: String,
    pub bounds: VersionBounds,
}

impl UpgradeConstraint {
    /// The `upgrade` dependencies of `manifest`.
    pub fn of(manifest: &PackManifest) -> Vec<UpgradeConstraint> {
        manifest
            .constraints
            .dependencies
            .iter()
            .filter(|d| d.kind == DependencyType::Upgrade)
            .map(|d| UpgradeConstraint {
                pack: manifest.name.clone(),
                version: manifest.version.clone(),
                on_top_of: d.pack_name.clone(),
                bounds: d.bounds.clone(),
            })
            .collect()
    }
}

/// Whether a cluster running `running` may move to `next`, whose packs have the upgrade
/// dependencies `constraints`. Every broken rule is reported.
pub fn check_upgrade(
    running: &DesiredState,
    next: &DesiredState,
    constraints: &[UpgradeConstraint],
) -> Result<(), UpgradeRefused> {
    let mut violations = Vec::new();
    violations.extend(kubernetes_step(
        &running.kubernetes_version,
        &next.kubernetes_version,
    ));
    for constraint in constraints {
        violations.extend(pack_constraint(running, constraint));
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(UpgradeRefused { violations })
    }
}

/// `1.20.2` for `v1.20.2`: the form people write in profiles.
fn shown(version: &str) -> &str {
    let trimmed = version.trim();
    trimmed
        .strip_prefix('v')
        .or_else(|| trimmed.strip_prefix('V'))
        .unwrap_or(trimmed)
}

/// The (major, minor) of a Kubernetes version.
fn major_minor(version: &PackVersion) -> (u64, u64) {
    let part = |i: usize| version.numbers().get(i).copied().unwrap_or(0);
    (part(0), part(1))
}

fn kubernetes_step(running: &str, next: &str) -> Option<UpgradeViolation> {
    let (from, to) = (shown(running), shown(next));
    let (running_version, next_version) = match (
        PackVersion::parse(running),
        PackVersion::parse(next),
    ) {
        (Ok(r), Ok(n)) => (r, n),
        (Err(e), _) | (_, Err(e)) => {
            // Both were checked when resolved; a revision edited by hand is not guessed at.
            return Some(UpgradeViolation {
                rule: UpgradeRule::KubernetesMinorStep,
                message: format!(
                    "Kubernetes {from} → {to} cannot be compared: {e}; publish a revision with a MAJOR.MINOR.PATCH release"
                ),
            });
        }
    };
    let (major, minor) = major_minor(&running_version);
    let (next_major, next_minor) = major_minor(&next_version);
    if next_version < running_version {
        return Some(UpgradeViolation {
            rule: UpgradeRule::KubernetesNeverDown,
            message: format!(
                "Kubernetes {from} → {to} is a downgrade; keep {from} or move up to a later {major}.{minor} or a {major}.{}.x release",
                minor + 1
            ),
        });
    }
    if next_major != major {
        return Some(UpgradeViolation {
            rule: UpgradeRule::KubernetesMinorStep,
            message: format!(
                "Kubernetes {from} → {to} changes the major version; stay within {major}.x, one minor version at a time ({major}.{minor}.x or {major}.{}.x)",
                minor + 1
            ),
        });
    }
    if next_minor > minor + 1 {
        let skipped: Vec<String> = (minor + 1..next_minor)
            .map(|m| format!("{major}.{m}"))
            .collect();
        let noun = if skipped.len() == 1 {
            "minor"
        } else {
            "minors"
        };
        return Some(UpgradeViolation {
            rule: UpgradeRule::KubernetesMinorStep,
            message: format!(
                "Kubernetes {from} → {to} skips {noun} {}; publish a revision with {major}.{}.x first",
                skipped.join(", "),
                minor + 1
            ),
        });
    }
    None
}

fn pack_constraint(
    running: &DesiredState,
    constraint: &UpgradeConstraint,
) -> Option<UpgradeViolation> {
    let current = running.layers.iter().find(|l| l.name == constraint.pack)?;
    let unchanged = match (
        PackVersion::parse(&current.version),
        PackVersion::parse(&constraint.version),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => current.version == constraint.version,
    };
    if unchanged {
        return None;
    }
    let target = &constraint.on_top_of;
    let bounds = &constraint.bounds;
    let wanted = if bounds.is_unbounded() {
        target.clone()
    } else {
        format!("{target} {bounds}")
    };
    let change = format!(
        "{} {} → {} can only be applied on top of {wanted}",
        constraint.pack, current.version, constraint.version
    );
    let found = match running.layers.iter().find(|l| &l.name == target) {
        None => format!("the running revision has no {target}"),
        Some(layer) => match PackVersion::parse(&layer.version) {
            Ok(v) if bounds.contains(&v) => return None,
            Ok(_) => format!("the running revision has {target} {}", layer.version),
            Err(e) => format!("the running revision has {target} at {e}"),
        },
    };
    Some(UpgradeViolation {
        rule: UpgradeRule::PackUpgradeConstraint,
        message: format!(
            "{change}; {found}; publish a revision with {wanted} first, then {} {}",
            constraint.pack, constraint.version
        ),
    })
}

#[cfg(test)]
#[path = "upgrade_rules_tests.rs"]
mod tests;
