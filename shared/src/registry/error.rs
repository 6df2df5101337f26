//! The registry client's one error type.

use std::time::Duration;

use crate::finding::Finding;
use crate::pack::archive::ArchiveError;
use crate::registry::address::AddressError;
use crate::registry::cache::CacheError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("wrong or missing credentials for {registry}{}", as_user(username))]
    Unauthorized {
        registry: String,
        username: Option<String>,
    },
    #[error(
        "{} may not access {repository} on {registry}: the credentials are valid, the permission is missing",
        who(username)
    )]
    Forbidden {
        registry: String,
        repository: String,
        username: Option<String>,
    },
    #[error(
        "no pack named {name:?} in {registry}{}",
        list_suffix("packs there", available)
    )]
    UnknownPack {
        registry: String,
        name: String,
        available: Vec<String>,
    },
    #[error(
        "pack {name:?} has no version {version:?} in {registry}{}",
        list_suffix("versions there", available)
    )]
    UnknownVersion {
        registry: String,
        name: String,
        version: String,
        available: Vec<String>,
    },
    #[error("{reference} already exists; push with force to replace it")]
    Exists { reference: String },
    #[error("cannot reach {registry} (after {attempts} attempt(s)): {last_error}")]
    Unreachable {
        registry: String,
        attempts: usize,
        last_error: String,
    },
    #[error("{reference}: downloaded content hashes to {found}, expected {expected}")]
    DigestMismatch {
        reference: String,
        expected: String,
        found: String,
    },
    #[error(
        "{reference}: the registry serves a pack whose content digest is {found}, but it is pinned to {pinned}; the tag was pushed again since it was pinned, so nothing was unpacked or cached (push the pinned pack back, or pin the new digest)"
    )]
    PinChanged {
        reference: String,
        pinned: String,
        found: String,
    },
    #[error("{reference}: the download ended after {found} of {expected} bytes")]
    Truncated {
        reference: String,
        expected: u64,
        found: u64,
    },
    #[error("{reference} is {size} bytes, over the {limit}-byte limit for packs")]
    TooLarge {
        reference: String,
        size: u64,
        limit: u64,
    },
    #[error("{reference} is not a pack: {reason}")]
    NotAPack { reference: String, reason: String },
    #[error("{reference}: cannot use the pack archive: {source}")]
    Archive {
        reference: String,
        #[source]
        source: ArchiveError,
    },
    #[error("pack {reference} is not valid: {}", first_problems(problems))]
    InvalidPack {
        reference: String,
        problems: Vec<Finding>,
    },
    #[error("{reference}: unexpected answer from the registry: {message}")]
    Protocol { reference: String, message: String },
    #[error(
        "{registry} sent a {what} for {reference} of {}, over the {limit}-byte limit for a {what}",
        size_text(*size, *declared, *limit)
    )]
    ResponseTooLarge {
        registry: String,
        reference: String,
        /// What the body was: `manifest`, `tag list page`, `catalog page`, …
        what: &'static str,
        size: u64,
        /// `size` is what the answer declared; else it is what had arrived when reading
        /// stopped, and the answer was longer still.
        declared: bool,
        limit: u64,
    },
    #[error(
        "the {what} of {reference} in {registry} has more than {limit} entries; refusing to \
         read further"
    )]
    ListTooLong {
        registry: String,
        what: &'static str,
        reference: String,
        limit: usize,
    },
    #[error(
        "fetching {reference} from {registry} took longer than {} (the deadline for one \
         pack): the registry is too slow or stalled",
        seconds(*deadline)
    )]
    DeadlineExceeded {
        registry: String,
        reference: String,
        deadline: Duration,
    },
    #[error(
        "{registry} names the token realm {realm:?}, which {reason}; Strata sends \
         credentials only over HTTPS to the registry's own host name, and fetches tokens \
         over plain HTTP only for plain HTTP registries"
    )]
    RealmRefused {
        registry: String,
        realm: String,
        reason: String,
    },
    #[error(
        "credentials are configured for {registry}{} but it is reached over plain HTTP \
         (--plain-http, or spec.plainHttp of a PackRegistry); credentials are only sent \
         over HTTPS: use HTTPS, or no credentials",
        as_user(username)
    )]
    CredentialsOverPlainHttp {
        registry: String,
        username: Option<String>,
    },
    #[error("cannot set up a client for {registry}: {reason}")]
    Setup { registry: String, reason: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

fn as_user(username: &Option<String>) -> String {
    match username {
        Some(user) => format!(" (user {user:?})"),
        None => " (no credentials given)".to_owned(),
    }
}

fn who(username: &Option<String>) -> String {
    match username {
        Some(user) => format!("user {user:?}"),
        None => "an anonymous user".to_owned(),
    }
}

fn list_suffix(what: &str, items: &[String]) -> String {
    if items.is_empty() {
        format!("; there are no {what}")
    } else {
        format!("; {what}: {}", items.join(", "))
    }
}

fn size_text(size: u64, declared: bool, limit: u64) -> String {
    if declared {
        format!("{size} bytes")
    } else {
        // Reading stopped at the first piece past the limit: all that is known.
        format!("more than {limit} bytes")
    }
}

fn first_problems(problems: &[Finding]) -> String {
    let shown: Vec<String> = problems.iter().take(3).map(ToString::to_string).collect();
    match problems.len().saturating_sub(shown.len()) {
        0 => shown.join("; "),
        more => format!("{} (and {more} more)", shown.join("; ")),
    }
}

/// `30 s`, `0.5 s`: a duration as people read limits.
pub(crate) fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if duration.subsec_nanos() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{secs:.1} s")
    }
}
