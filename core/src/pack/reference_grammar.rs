//! Docker's image reference grammar, with the answers of `oci_spec::distribution::Reference`
//! (the same errors, the same repository), read by hand for references in ASCII.
//!
//! oci-spec checks a reference with one regular expression whose tag part (`\w`, a Unicode
//! class, repeated up to 128 times) compiles into an automaton of about 8 MiB that stays for
//! the life of the process, after some 15 MiB while it compiles. The agent checks every pack
//! it pulls, and held more memory for that automaton than for all the rest of its heap.
//! Outside ASCII only a tag can match (Unicode word characters), so a reference with any
//! other character is still oci-spec's to answer: that rare case alone compiles it.
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain [ ":" port ] "/" ] path-component ( "/" path-component )*
//! domain     := domain-part ( "." domain-part )*     domain-part := [a-zA-Z0-9-]+, no '-' at either end
//! path-component := [a-z0-9]+ ( separator [a-z0-9]+ )*   separator := "." | "_" | "__" | "-"+
//! tag        := [a-zA-Z0-9_] [a-zA-Z0-9_.-]{0,127}
//! digest     := algorithm-part ( [-_+.] algorithm-part )* ":" hex{32,}   algorithm-part := [a-zA-Z][a-zA-Z0-9]*
//! ```

use oci_spec::distribution::{ParseError, Reference};

/// oci-spec's limit on the repository (the name without its registry).
const REPOSITORY_MAX: usize = 255;
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const DOCKER_HUB_OFFICIAL: &str = "library";

/// The repository `reference` names (`library/nginx` for `nginx`), or why oci-spec refuses
/// it.
pub fn repository_of(reference: &str) -> Result<String, ParseError> {
    if !reference.is_ascii() {
        return Reference::try_from(reference).map(|parsed| parsed.repository().to_owned());
    }
    if reference.is_empty() {
        return Err(ParseError::NameEmpty);
    }
    let (name_and_tag, digest) = match reference.split_once('@') {
        Some((before, after)) => (before, Some(after)),
        None => (reference, None),
    };
    // A tag holds no '/' or ':', and a ':' of the name (the registry's port) is followed by
    // a '/': a ':' after the last '/' starts the tag.
    let after_last_slash = name_and_tag.rfind('/').map_or(0, |slash| slash + 1);
    let (name, tag) = match name_and_tag[after_last_slash..].rfind(':') {
        Some(colon) => {
            let colon = after_last_slash + colon;
            (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
        }
        None => (name_and_tag, None),
    };
    let well_formed = is_name(name) && tag.is_none_or(is_tag) && digest.is_none_or(is_digest);
    if !well_formed {
        return Err(ParseError::ReferenceInvalidFormat);
    }
    let repository = repository_of_name(name);
    if repository.len() > REPOSITORY_MAX {
        return Err(ParseError::NameTooLong);
    }
    if let Some(digest) = digest {
        let (algorithm, hex) = digest
            .split_once(':')
            .ok_or(ParseError::DigestInvalidFormat)?;
        let length = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return Err(ParseError::DigestUnsupported),
        };
        if hex.len() != length {
            return Err(ParseError::DigestInvalidLength);
        }
    }
    Ok(repository)
}

/// Path components, the first of them possibly a registry (`host[:port]`) instead.
fn is_name(name: &str) -> bool {
    let mut components = name.split('/');
    let Some(first) = components.next() else {
        return false;
    };
    let rest_are_paths = components.clone().all(is_path_component);
    if is_path_component(first) && rest_are_paths {
        return true;
    }
    let has_path = components.next().is_some();
    has_path && rest_are_paths && is_registry(first)
}

fn is_registry(component: &str) -> bool {
    let (host, port) = match component.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (component, None),
    };
    host.split('.').all(is_domain_part)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_domain_part(part: &str) -> bool {
    !part.is_empty()
        && !part.starts_with('-')
        && !part.ends_with('-')
        && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Runs of lowercase letters and digits, joined by ".", "_", "__" or dashes.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alphanumeric = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(alphanumeric) || !bytes.last().is_some_and(alphanumeric) {
        return false;
    }
    bytes
        .split(alphanumeric)
        .filter(|separator| !separator.is_empty())
        .all(|separator| {
            matches!(separator, b"." | b"_" | b"__") || separator.iter().all(|&b| b == b'-')
        })
}

fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    bytes.first().is_some_and(|&b| word(b))
        && bytes.len() <= 128
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let is_algorithm_part = |part: &str| {
        let bytes = part.as_bytes();
        bytes.first().is_some_and(u8::is_ascii_alphabetic)
            && bytes.iter().all(u8::is_ascii_alphanumeric)
    };
    algorithm.split(['-', '_', '+', '.']).all(is_algorithm_part)
        && hex.len() >= 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The name without its registry, as oci-spec reads it: a first component names a registry
/// only with a '.' or ':' in it, or as `localhost`; Docker Hub's official images are under
/// `library/`.
fn repository_of_name(name: &str) -> String {
    let (domain, remainder) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
        _ => (DOCKER_HUB, name),
    };
    let on_hub = domain == DOCKER_HUB || domain == DOCKER_HUB_LEGACY;
    if on_hub && !remainder.contains('/') {
        format!("{DOCKER_HUB_OFFICIAL}/{remainder}")
    } else {
        remainder.to_owned()
    }
}

#[cfg(test)]
#[path = "reference_grammar_tests.rs"]
mod reference_grammar_tests;
