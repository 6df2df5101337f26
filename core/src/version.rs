//! Pack versions, compared numerically and leniently.
//!
//! Pack versions follow the versions of what they package, which are often not semver:
//! `7.7.1908` (CentOS), `18.04.4` (Ubuntu, leading zero), `1.28` (two parts), `v1.2.3`.
//! A version here is one or more dot-separated numbers (leading zeros allowed, an optional
//! leading `v`), then optionally `-<pre-release>` and `+<build>`.
//!
//! Ordering:
//! - the numeric parts compare as numbers, part by part, missing parts counting as zero:
//!   `1.9.0 < 1.10.0`, and `1.28 == 1.28.0`;
//! - a pre-release orders before its release and after the release before it, as in semver:
//!   `1.2.0 < 1.3.0-rc.1 < 1.3.0`; pre-releases compare by semver's rules (identifiers left
//!   to right, numeric identifiers numerically, numeric before alphanumeric): `rc.2 < rc.10`,
//!   `alpha < beta`. So a bound `minVersion: 1.3.0` does *not* admit `1.3.0-rc.1`;
//! - build metadata (`+…`) is ignored for ordering and equality.
//!
//! [`VersionBounds`] are inclusive at both ends.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use semver::Prerelease;

/// Parts past this count are refused; no real package version has more, and it keeps a
/// typo such as a pasted IP-like string from being taken for a version.
const MAX_NUMERIC_PARTS: usize = 6;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a version: {reason}; expected numbers separated by dots, like 1.28, 18.04.4 or v1.2.3-rc.1"
)]
pub struct VersionError {
    pub input: String,
    pub reason: String,
}

/// A leniently parsed pack version. Displays as it was written.
#[derive(Debug, Clone)]
pub struct PackVersion {
    numbers: Vec<u64>,
    pre: Prerelease,
    original: String,
}

impl PackVersion {
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let fail = |reason: &str| VersionError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(fail("it is empty"));
        }
        let without_v = trimmed
            .strip_prefix('v')
            .or_else(|| trimmed.strip_prefix('V'))
            .unwrap_or(trimmed);
        let without_build = match without_v.split_once('+') {
            Some((head, build)) => {
                if build.is_empty()
                    || !build
                        .split('.')
                        .all(|id| !id.is_empty() && id.chars().all(is_identifier_char))
                {
                    return Err(fail("the build metadata after '+' is malformed"));
                }
                head
            }
            None => without_v,
        };
        let (core, pre) = match without_build.split_once('-') {
            Some((core, pre)) => {
                let pre = Prerelease::new(pre).map_err(|e| {
                    fail(&format!(
                        "the pre-release {pre:?} after '-' is malformed ({e})"
                    ))
                })?;
                if pre.is_empty() {
                    return Err(fail("the pre-release after '-' is empty"));
                }
                (core, pre)
            }
            None => (without_build, Prerelease::EMPTY),
        };
        let mut numbers = Vec::new();
        for part in core.split('.') {
            if part.is_empty() {
                return Err(fail("it has an empty part between dots"));
            }
            if !part.chars().all(|c| c.is_ascii_digit()) {
                return Err(fail(&format!("{part:?} is not a number")));
            }
            let number = part
                .parse::<u64>()
                .map_err(|_| fail(&format!("{part:?} is too large")))?;
            numbers.push(number);
        }
        if numbers.len() > MAX_NUMERIC_PARTS {
            return Err(fail(&format!(
                "it has {} numeric parts, at most {MAX_NUMERIC_PARTS} are accepted",
                numbers.len()
            )));
        }
        Ok(PackVersion {
            numbers,
            pre,
            original: trimmed.to_string(),
        })
    }

    /// The numeric parts as written (`18.04.4` → `[18, 4, 4]`).
    pub fn numbers(&self) -> &[u64] {
        &self.numbers
    }

    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The version as strict semver `major.minor.patch[-pre]`, when it has at most three
    /// numeric parts; Kubernetes versions are handed to Cluster API in this form.
    pub fn to_semver(&self) -> Option<semver::Version> {
        if self.numbers.len() > 3 {
            return None;
        }
        let part = |i: usize| self.numbers.get(i).copied().unwrap_or(0);
        let mut version = semver::Version::new(part(0), part(1), part(2));
        version.pre = self.pre.clone();
        Some(version)
    }
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

impl FromStr for PackVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PackVersion::parse(s)
    }
}

impl fmt::Display for PackVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl Ord for PackVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.numbers.len().max(other.numbers.len());
        for i in 0..len {
            let a = self.numbers.get(i).copied().unwrap_or(0);
            let b = other.numbers.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => continue,
                unequal => return unequal,
            }
        }
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => self.pre.cmp(&other.pre),
        }
    }
}

impl PartialOrd for PackVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PackVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PackVersion {}

/// Inclusive bounds on a version; either end may be open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionBounds {
    pub min: Option<PackVersion>,
    pub max: Option<PackVersion>,
}

impl VersionBounds {
    pub fn is_unbounded(&self) -> bool {
        self.min.is_none() && self.max.is_none()
    }

    pub fn contains(&self, version: &PackVersion) -> bool {
        self.min.as_ref().is_none_or(|min| version >= min)
            && self.max.as_ref().is_none_or(|max| version <= max)
    }
}

impl fmt::Display for VersionBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.min, &self.max) {
            (None, None) => f.write_str("any version"),
            (Some(min), None) => write!(f, ">= {min}"),
            (None, Some(max)) => write!(f, "<= {max}"),
            (Some(min), Some(max)) => write!(f, ">= {min} and <= {max}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn v(s: &str) -> PackVersion {
        PackVersion::parse(s).unwrap()
    }

    #[test]
    fn parses_the_seed_versions() {
        assert_eq!(v("7.7.1908").numbers(), &[7, 7, 1908]);
        assert_eq!(v("18.04.4").numbers(), &[18, 4, 4]);
        assert_eq!(v("1.28").numbers(), &[1, 28]);
        assert_eq!(v("v1.2.3").numbers(), &[1, 2, 3]);
        assert_eq!(v("2").numbers(), &[2]);
        assert_eq!(v("18.04.4").to_string(), "18.04.4");
    }

    #[test]
    fn orders_numerically_not_lexically() {
        let ordered = [
            "0.9",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-beta",
            "1.0.0-rc.2",
            "1.0.0-rc.10",
            "1.0.0",
            "1.2",
            "1.9.0",
            "1.10.0",
            "7.7.1908",
            "18.04.4",
            "18.4.5",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn equality_ignores_padding_v_prefix_and_build() {
        assert_eq!(v("1.28"), v("1.28.0"));
        assert_eq!(v("v1.2.3"), v("1.2.3"));
        assert_eq!(v("1.2.3+build.5"), v("1.2.3"));
        assert_eq!(v("18.04.4"), v("18.4.4"));
        assert_ne!(v("1.2.3-rc.1"), v("1.2.3"));
    }

    #[test]
    fn rejects_what_is_not_a_version() {
        for bad in [
            "",
            " ",
            "latest",
            "1..2",
            "1.2.",
            ".1",
            "1.x",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-rc..1",
            "1.2.3.4.5.6.7",
            "99999999999999999999",
        ] {
            let err = PackVersion::parse(bad).unwrap_err();
            assert!(
                err.to_string().contains("is not a version"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn bounds_are_inclusive() {
        let bounds = VersionBounds {
            min: Some(v("1.2.0")),
            max: Some(v("1.4")),
        };
        assert!(bounds.contains(&v("1.2.0")));
        assert!(bounds.contains(&v("1.4.0")));
        assert!(bounds.contains(&v("1.3.99")));
        assert!(!bounds.contains(&v("1.4.1")));
        assert!(!bounds.contains(&v("1.1.9")));
        assert!(
            !bounds.contains(&v("1.2.0-rc.1")),
            "a pre-release orders before its release"
        );
        assert!(VersionBounds::default().contains(&v("0.0.1")));
        assert_eq!(bounds.to_string(), ">= 1.2.0 and <= 1.4");
    }

    #[test]
    fn converts_to_semver_for_kubernetes() {
        assert_eq!(v("v1.28").to_semver().unwrap().to_string(), "1.28.0");
        assert_eq!(
            v("1.2.3-rc.1").to_semver().unwrap().to_string(),
            "1.2.3-rc.1"
        );
        assert!(v("1.2.3.4").to_semver().is_none());
    }
}
