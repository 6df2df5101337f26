//! The Helm release name of a layer's chart: deterministic, so that installing a layer
//! again upgrades the same release.
//!
//! The name is the pack values' `pack.releaseNameOverride.<chart>` when set (published
//! packs map chart names to release names there, to run one chart twice in a cluster or to
//! shorten a long name), else the chart's name. Either is checked against Helm's rule
//! (`ValidateReleaseName`): a DNS-1123 subdomain of at most 53 characters. Values reach
//! this check with their macros resolved.

use serde_yaml::Value;
use thiserror::Error;

use crate::pack::yaml_text::describe_kind_and_value;

/// Helm's longest release name: release names go into Secret names and labels.
pub const MAX_RELEASE_NAME_LENGTH: usize = 53;
/// The key under `pack` that maps chart names to release names.
pub const RELEASE_NAME_OVERRIDE_KEY: &str = "releaseNameOverride";

/// Why a chart has no usable release name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReleaseNameError {
    #[error(
        "chart {chart}: values pack.{RELEASE_NAME_OVERRIDE_KEY} is {found}, expected a mapping of chart names to release names"
    )]
    OverridesNotMapping { chart: String, found: String },
    #[error(
        "chart {chart}: values pack.{RELEASE_NAME_OVERRIDE_KEY}.{chart} is {found}, expected a release name (a string)"
    )]
    OverrideNotString { chart: String, found: String },
    #[error(
        "chart {chart}: the release name {name:?} (from {origin}) {problem}; Helm takes lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit, at most {MAX_RELEASE_NAME_LENGTH} characters"
    )]
    Invalid {
        chart: String,
        name: String,
        origin: String,
        problem: String,
    },
}

/// The release name of `chart` in a layer whose merged values are `values`.
pub fn release_name(values: &Value, chart: &str) -> Result<String, ReleaseNameError> {
    let overrides = values
        .get("pack")
        .and_then(|pack| pack.get(RELEASE_NAME_OVERRIDE_KEY));
    let chosen = match overrides {
        // Published packs write `releaseNameOverride:` with nothing after it.
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.is_empty() => None,
        Some(Value::Mapping(overrides)) => match overrides.get(chart) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.is_empty() => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => {
                return Err(ReleaseNameError::OverrideNotString {
                    chart: chart.to_string(),
                    found: describe_kind_and_value(other),
                });
            }
        },
        Some(other) => {
            return Err(ReleaseNameError::OverridesNotMapping {
                chart: chart.to_string(),
                found: describe_kind_and_value(other),
            });
        }
    };
    let (name, origin) = match chosen {
        Some(name) => (
            name,
            format!("values pack.{RELEASE_NAME_OVERRIDE_KEY}.{chart}"),
        ),
        None => (chart.to_string(), "the chart's name".to_string()),
    };
    match dns_subdomain_problem(&name, MAX_RELEASE_NAME_LENGTH) {
        Some(problem) => Err(ReleaseNameError::Invalid {
            chart: chart.to_string(),
            name,
            origin,
            problem,
        }),
        None => Ok(name),
    }
}

/// Why `name` is not a DNS-1123 subdomain of at most `max_length` characters (the form of
/// Kubernetes object names, and of Helm release names at 53), as the end of a sentence.
pub fn dns_subdomain_problem(name: &str, max_length: usize) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".to_string());
    }
    if name.len() > max_length {
        return Some(format!(
            "is {} characters long, more than {max_length}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'))
    {
        return Some(format!("contains {bad:?}"));
    }
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    for part in name.split('.') {
        if part.is_empty() {
            return Some("has an empty part between dots, or starts or ends with '.'".to_string());
        }
        if !part.starts_with(alphanumeric) || !part.ends_with(alphanumeric) {
            return Some(format!(
                "has the part {part:?}, which starts or ends with '-'"
            ));
        }
    }
    None
}

#[cfg(test)]
#[path = "release_tests.rs"]
mod release_tests;
