//! Which published profile a cluster's `spec.profiles[i]` names: the object whose profile
//! name ([`ClusterProfile::profile_name`]) and version match. Several versions of one
//! profile coexist as separate objects, so publishing 1.1.0 leaves the clusters pinned to
//! 1.0.0 valid.
//!
//! Profiles are looked up in the cluster's namespace, then the system namespace: callers
//! pass them in that order and the first namespace holding the version wins, so a team can
//! shadow a shared version. Two objects of one namespace publishing the same name and
//! version are ambiguous and refused, naming both.

use crate::crd::cluster_profile::ClusterProfile;

/// Why no single profile was selected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("profile {name:?} was not found; profiles given: {known}")]
    NoProfile { name: String, known: String },
    #[error("profile {name:?} has no version {version:?}; versions given: {versions}")]
    NoVersion {
        name: String,
        version: String,
        versions: String,
    },
    #[error(
        "profile {name:?} version {version:?} is published twice in namespace {namespace}: ClusterProfiles {first} and {second}; delete or rename one"
    )]
    Ambiguous {
        name: String,
        version: String,
        namespace: String,
        first: String,
        second: String,
    },
}

/// The profile `name` at `version` among `profiles` (in lookup order).
pub fn select_profile<'a>(
    profiles: &'a [ClusterProfile],
    name: &str,
    version: &str,
) -> Result<&'a ClusterProfile, SelectionError> {
    let named: Vec<&ClusterProfile> = profiles
        .iter()
        .filter(|p| p.profile_name() == name)
        .collect();
    let mut matching = named.iter().filter(|p| p.spec.version == version);
    let Some(first) = matching.next() else {
        if named.is_empty() {
            let known: std::collections::BTreeSet<&str> =
                profiles.iter().map(|p| p.profile_name()).collect();
            return Err(SelectionError::NoProfile {
                name: name.to_string(),
                known: if known.is_empty() {
                    "none".to_string()
                } else {
                    known.into_iter().collect::<Vec<_>>().join(", ")
                },
            });
        }
        let mut versions: Vec<&str> = named.iter().map(|p| p.spec.version.as_str()).collect();
        versions.sort_by(|a, b| by_version(a, b));
        versions.dedup();
        return Err(SelectionError::NoVersion {
            name: name.to_string(),
            version: version.to_string(),
            versions: versions.join(", "),
        });
    };
    if let Some(second) = matching.find(|p| p.metadata.namespace == first.metadata.namespace) {
        return Err(SelectionError::Ambiguous {
            name: name.to_string(),
            version: version.to_string(),
            namespace: first.metadata.namespace.clone().unwrap_or_default(),
            first: object_name(first),
            second: object_name(second),
        });
    }
    Ok(first)
}

/// The versions published under each profile name, oldest first (semver order; a version
/// that is not semver after the others, by text).
pub fn versions_of<'a>(profiles: &'a [ClusterProfile], name: &str) -> Vec<&'a ClusterProfile> {
    let mut found: Vec<&ClusterProfile> = profiles
        .iter()
        .filter(|p| p.profile_name() == name)
        .collect();
    found.sort_by(|a, b| by_version(&a.spec.version, &b.spec.version));
    found
}

fn by_version(a: &str, b: &str) -> std::cmp::Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

fn object_name(profile: &ClusterProfile) -> String {
    profile.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
#[path = "selection_tests.rs"]
mod selection_tests;
