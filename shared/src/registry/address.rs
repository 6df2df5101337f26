//! Where packs live in a registry: `HOST[:PORT]/BASE/spectro-packs/archive/<name>:<tag>`.
//!
//! The address an operator types names the registry and an optional base path; everything
//! below it follows the layout existing pack registries use, so it is fixed here rather
//! than configurable.

use std::fmt;
use std::str::FromStr;

use oci_client::Reference;

use crate::pack::manifest::is_oci_path_component;

/// The path below the base under which every pack is a repository.
pub const ARCHIVE_PATH: &str = "spectro-packs/archive";

/// Longest tag the OCI distribution spec allows (1 leading + 127 more characters).
const MAX_TAG_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the registry address is empty; expected HOST[:PORT] or HOST[:PORT]/BASE")]
    Empty,
    #[error(
        "registry address {input:?} starts with {scheme:?}; expected HOST[:PORT] or \
         HOST[:PORT]/BASE without a scheme: drop {scheme:?} (use --plain-http for a registry \
         served over plain HTTP)"
    )]
    Scheme { input: String, scheme: String },
    #[error("registry address {input:?} has no host before the first '/'; expected HOST[:PORT]")]
    EmptyHost { input: String },
    #[error("registry address {input:?}: host {host:?} {reason}")]
    InvalidHost {
        input: String,
        host: String,
        reason: String,
    },
    #[error("registry address {input:?}: port {port:?} is not a number from 1 to 65535")]
    InvalidPort { input: String, port: String },
    #[error(
        "registry address {input:?}: base path component {component:?} {reason}; expected \
         lowercase letters and digits separated by single '.', '_', '__' or '-'"
    )]
    InvalidBase {
        input: String,
        component: String,
        reason: String,
    },
    #[error(
        "pack name {name:?} cannot name an OCI repository; expected lowercase letters and \
         digits separated by single '.', '_', '__' or '-'"
    )]
    InvalidPackName { name: String },
    #[error("pack version {version:?} cannot be an OCI tag: {reason}")]
    InvalidTag { version: String, reason: String },
}

/// A pack registry: its host (with port) and the base path packs live under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryAddress {
    /// `host[:port]`, as image references name it.
    pub host: String,
    /// Path below the host, without leading or trailing '/'; may be empty.
    pub base: String,
}

impl RegistryAddress {
    /// `BASE/spectro-packs/archive/<pack>` (no host): the repository holding a pack's
    /// versions as tags.
    pub fn repository(&self, pack: &str) -> String {
        format!("{}/{pack}", self.archive_prefix())
    }

    /// `BASE/spectro-packs/archive`: the repository prefix shared by every pack.
    pub fn archive_prefix(&self) -> String {
        if self.base.is_empty() {
            ARCHIVE_PATH.to_owned()
        } else {
            format!("{}/{ARCHIVE_PATH}", self.base)
        }
    }

    /// The OCI reference of `pack:version`, checking that both can appear in one.
    pub fn reference(&self, pack: &str, version: &str) -> Result<Reference, AddressError> {
        if !is_oci_path_component(pack) {
            return Err(AddressError::InvalidPackName {
                name: pack.to_owned(),
            });
        }
        let tag = tag_for_version(version)?;
        // Built from parts rather than parsed: parsing would read a host without a dot
        // or port ("registry/…") as a Docker Hub namespace.
        Ok(Reference::with_tag(
            self.host.clone(),
            self.repository(pack),
            tag,
        ))
    }
}

impl fmt::Display for RegistryAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.base.is_empty() {
            f.write_str(&self.host)
        } else {
            write!(f, "{}/{}", self.host, self.base)
        }
    }
}

impl FromStr for RegistryAddress {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(AddressError::Empty);
        }
        if let Some(index) = trimmed.find("://") {
            return Err(AddressError::Scheme {
                input: input.to_owned(),
                scheme: trimmed[..index + 3].to_owned(),
            });
        }
        let (host, base) = match trimmed.split_once('/') {
            Some((host, base)) => (host, base),
            None => (trimmed, ""),
        };
        if host.is_empty() {
            return Err(AddressError::EmptyHost {
                input: input.to_owned(),
            });
        }
        check_host(input, host)?;
        // One trailing '/' is what shell completion leaves; it names nothing.
        let base = base.trim_end_matches('/');
        if !base.is_empty() {
            for component in base.split('/') {
                check_base_component(input, component)?;
            }
        }
        Ok(RegistryAddress {
            host: host.to_owned(),
            base: base.to_owned(),
        })
    }
}

fn check_host(input: &str, host: &str) -> Result<(), AddressError> {
    let invalid = |reason: &str| AddressError::InvalidHost {
        input: input.to_owned(),
        host: host.to_owned(),
        reason: reason.to_owned(),
    };
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        // A bracketed IPv6 literal, optionally followed by :PORT.
        let Some((literal, after)) = rest.split_once(']') else {
            return Err(invalid("opens '[' without closing ']'"));
        };
        if literal.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid("is not a valid IPv6 address in brackets"));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(invalid("has text after ']' that is not :PORT")),
            },
        };
        (None, port)
    } else {
        match host.split_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        }
    };
    if let Some(name) = name {
        if name.is_empty() {
            return Err(invalid("has no name before ':'"));
        }
        for label in name.split('.') {
            let alnum_ends = label.starts_with(|c: char| c.is_ascii_alphanumeric())
                && label.ends_with(|c: char| c.is_ascii_alphanumeric());
            if label.is_empty()
                || !alnum_ends
                || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(invalid(
                    "is not a host name (letters, digits and inner '-', in labels separated by \
                     single dots), an IPv4 address or a bracketed IPv6 address",
                ));
            }
        }
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        if !valid {
            return Err(AddressError::InvalidPort {
                input: input.to_owned(),
                port: port.to_owned(),
            });
        }
    }
    Ok(())
}

fn check_base_component(input: &str, component: &str) -> Result<(), AddressError> {
    if is_oci_path_component(component) {
        return Ok(());
    }
    let reason = if component.is_empty() {
        "is empty (two '/' in a row)".to_owned()
    } else if component.contains([':', '@']) {
        "contains ':' or '@'; a registry address names no tag or digest".to_owned()
    } else if component.chars().any(|c| c.is_ascii_uppercase()) {
        "has uppercase letters; OCI repository names are lowercase".to_owned()
    } else {
        "is not a valid repository path component".to_owned()
    };
    Err(AddressError::InvalidBase {
        input: input.to_owned(),
        component: component.to_owned(),
        reason,
    })
}

/// The tag a pack version is stored under: the version itself, when the OCI tag grammar
/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}` allows it.
pub fn tag_for_version(version: &str) -> Result<String, AddressError> {
    let fail = |reason: String| AddressError::InvalidTag {
        version: version.to_owned(),
        reason,
    };
    if version.is_empty() {
        return Err(fail("it is empty".to_owned()));
    }
    if version.contains('+') {
        return Err(fail(
            "'+' (build metadata) is not allowed in OCI tags, so a version with '+' cannot be \
             stored in a registry; drop the '+…' part from pack.json's version"
                .to_owned(),
        ));
    }
    if version.len() > MAX_TAG_LEN {
        return Err(fail(format!(
            "it is {} characters long, tags have at most {MAX_TAG_LEN}",
            version.len()
        )));
    }
    let mut chars = version.chars();
    if let Some(first) = chars.next()
        && !(first.is_ascii_alphanumeric() || first == '_')
    {
        return Err(fail(format!(
            "it starts with {first:?}; a tag starts with a letter, digit or '_'"
        )));
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(fail(format!(
            "{bad:?} is not allowed; tags hold letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(version.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(input: &str) -> Result<RegistryAddress, AddressError> {
        input.parse()
    }

    #[test]
    fn parses_host_port_and_base() {
        let address = parse("127.0.0.1:5000/team/packs").unwrap();
        assert_eq!(address.host, "127.0.0.1:5000");
        assert_eq!(address.base, "team/packs");
        assert_eq!(address.to_string(), "127.0.0.1:5000/team/packs");
        assert_eq!(address.archive_prefix(), "team/packs/spectro-packs/archive");
        assert_eq!(
            address.repository("istio"),
            "team/packs/spectro-packs/archive/istio"
        );
    }

    #[test]
    fn parses_host_without_base() {
        let address = parse("localhost").unwrap();
        assert_eq!(address.host, "localhost");
        assert_eq!(address.base, "");
        assert_eq!(address.archive_prefix(), ARCHIVE_PATH);
        assert_eq!(address.repository("k8s"), "spectro-packs/archive/k8s");
        assert_eq!(address.to_string(), "localhost");

        let address = parse(" example.internal:443/ ").unwrap();
        assert_eq!(address.host, "example.internal:443");
        assert_eq!(address.base, "");

        let address = parse("[::1]:5000/base").unwrap();
        assert_eq!(address.host, "[::1]:5000");
        assert_eq!(address.base, "base");
    }

    #[test]
    fn reference_uses_the_layout() {
        let address = parse("127.0.0.1:5000/base").unwrap();
        let reference = address.reference("istio", "1.6.2").unwrap();
        assert_eq!(reference.registry(), "127.0.0.1:5000");
        assert_eq!(reference.repository(), "base/spectro-packs/archive/istio");
        assert_eq!(reference.tag(), Some("1.6.2"));
        assert_eq!(
            reference.whole(),
            "127.0.0.1:5000/base/spectro-packs/archive/istio:1.6.2"
        );
        // A dot-less host stays the registry (parsing would make it a Docker Hub path).
        let reference = parse("registry").unwrap().reference("a", "1").unwrap();
        assert_eq!(reference.registry(), "registry");
    }

    #[test]
    fn reference_refuses_bad_names_and_versions() {
        let address = parse("127.0.0.1:5000").unwrap();
        for name in ["Istio", "", "-a", "a/b", "a..b", "a b"] {
            let error = address.reference(name, "1.0").unwrap_err();
            assert!(
                matches!(error, AddressError::InvalidPackName { .. }),
                "{name}: {error}"
            );
        }
        let error = address.reference("istio", "1.0+build").unwrap_err();
        assert!(matches!(error, AddressError::InvalidTag { .. }), "{error}");
    }

    #[test]
    fn refuses_a_scheme_and_says_what_to_do() {
        for input in ["https://127.0.0.1:5000/base", "http://localhost"] {
            let error = parse(input).unwrap_err();
            assert!(matches!(error, AddressError::Scheme { .. }), "{error}");
            let message = error.to_string();
            assert!(message.contains("drop"), "{message}");
            assert!(message.contains("--plain-http"), "{message}");
        }
    }

    #[test]
    fn refuses_bad_inputs() {
        assert_eq!(parse("").unwrap_err(), AddressError::Empty);
        assert_eq!(parse("   ").unwrap_err(), AddressError::Empty);
        assert!(matches!(
            parse("/base").unwrap_err(),
            AddressError::EmptyHost { .. }
        ));
        for input in [
            ":5000",
            "bad_host",
            "-host",
            "host-",
            "a..b",
            "[::1",
            "[nonsense]:5000",
            "[::1]x",
            "ho st",
        ] {
            let error = parse(input).unwrap_err();
            assert!(
                matches!(error, AddressError::InvalidHost { .. }),
                "{input}: {error}"
            );
        }
        for input in ["host:", "host:0", "host:65536", "host:http", "host:1:2"] {
            let error = parse(input).unwrap_err();
            assert!(
                matches!(error, AddressError::InvalidPort { .. }),
                "{input}: {error}"
            );
        }
        for (input, needle) in [
            ("host/a//b", "empty"),
            ("host/Team", "uppercase"),
            ("host/base:tag", "':' or '@'"),
            ("host/base@sha256:00", "':' or '@'"),
            ("host/-x", "not a valid"),
            ("host/a b", "not a valid"),
        ] {
            let error = parse(input).unwrap_err();
            assert!(
                matches!(error, AddressError::InvalidBase { .. }),
                "{input}: {error}"
            );
            assert!(error.to_string().contains(needle), "{input}: {error}");
        }
    }

    #[test]
    fn tags_follow_the_oci_grammar() {
        for version in [
            "1.6.2",
            "v1.2.3-rc.1",
            "18.04.4",
            "_x",
            "A",
            &"9".repeat(128),
        ] {
            assert_eq!(tag_for_version(version).unwrap(), version);
        }
        let error = tag_for_version("1.2.3+build.5").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("'+'"), "{message}");
        assert!(message.contains("cannot be stored"), "{message}");
        for (version, needle) in [
            ("", "empty"),
            (".1", "starts with"),
            ("-1", "starts with"),
            ("1/2", "'/'"),
            ("1 2", "' '"),
            ("1:2", "':'"),
        ] {
            let error = tag_for_version(version).unwrap_err();
            assert!(error.to_string().contains(needle), "{version:?}: {error}");
        }
        let long = "1".repeat(129);
        assert!(
            tag_for_version(&long)
                .unwrap_err()
                .to_string()
                .contains("at most 128")
        );
    }
}
