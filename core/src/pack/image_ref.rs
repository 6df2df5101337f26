//! Container image references as a pack lists them (`pack.content.images`).
//!
//! The grammar is Docker's (`[registry[:port]/]path[:tag][@algorithm:hex]`), checked as
//! `oci_spec::distribution::Reference` checks it (`reference_grammar`, which spares the
//! process oci-spec's regular expression). That grammar misses one rule: a first path
//! component without a dot, colon or `localhost` is read as a Docker Hub repository, yet
//! the grammar lets it carry uppercase (`Nginx/app` parses), which no registry accepts.
//! That rule is added here. oci-spec answers most failures with a bare "invalid reference format", so the
//! reason returned here points at the part that is wrong.

use oci_spec::distribution::ParseError;

use crate::pack::reference_grammar::repository_of;

/// Why an image reference is refused. The message does not repeat the reference: it is
/// put after it in a finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageReferenceError {
    #[error("it is empty")]
    Empty,
    #[error("it contains whitespace")]
    Whitespace,
    #[error("{parser}; expected e.g. sha256:<64 hex digits>")]
    DigestRejected { parser: String },
    #[error("{parser}")]
    NameTooLong { parser: String },
    #[error("the repository name is missing")]
    NoName,
    #[error(
        "the repository path \"{path}\" has uppercase letters; repository paths must be lowercase"
    )]
    UppercasePath { path: String },
    #[error("the tag after ':' is empty")]
    EmptyTag,
    #[error(
        "the tag \"{tag}\" is not valid; a tag is 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
    )]
    InvalidTag { tag: String },
    #[error(
        "the digest \"{digest}\" is not valid; expected algorithm:hex, e.g. sha256:<64 hex digits>"
    )]
    InvalidDigest { digest: String },
    #[error(
        "the name \"{name}\" is not valid; expected [registry[:port]/]path with lowercase letters, digits and the separators '.', '_', '__', '-' inside path components"
    )]
    InvalidName { name: String },
}

/// Checks that `reference` is a valid image reference.
pub fn check_image_reference(reference: &str) -> Result<(), ImageReferenceError> {
    match repository_of(reference) {
        Ok(repository) => {
            if repository.chars().any(|c| c.is_ascii_uppercase()) {
                Err(ImageReferenceError::UppercasePath { path: repository })
            } else {
                Ok(())
            }
        }
        Err(error) => Err(explain_parse_error(reference, &error)),
    }
}

fn explain_parse_error(reference: &str, error: &ParseError) -> ImageReferenceError {
    if reference.is_empty() {
        return ImageReferenceError::Empty;
    }
    if reference.chars().any(char::is_whitespace) {
        return ImageReferenceError::Whitespace;
    }
    match error {
        ParseError::DigestInvalidLength
        | ParseError::DigestUnsupported
        | ParseError::DigestInvalidFormat => {
            return ImageReferenceError::DigestRejected {
                parser: error.to_string(),
            };
        }
        ParseError::NameTooLong => {
            return ImageReferenceError::NameTooLong {
                parser: error.to_string(),
            };
        }
        _ => {}
    }

    let (name_and_tag, digest) = match reference.split_once('@') {
        Some((before, after)) => (before, Some(after)),
        None => (reference, None),
    };
    // A tag's ':' comes after the last '/'; an earlier ':' belongs to the registry's port.
    let last_component_start = name_and_tag.rfind('/').map_or(0, |slash| slash + 1);
    let (name, tag) = match name_and_tag[last_component_start..].find(':') {
        Some(colon) => {
            let colon = last_component_start + colon;
            (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
        }
        None => (name_and_tag, None),
    };

    if name.is_empty() {
        return ImageReferenceError::NoName;
    }
    let path = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => name,
    };
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return ImageReferenceError::UppercasePath {
            path: path.to_owned(),
        };
    }
    if let Some(tag) = tag {
        if tag.is_empty() {
            return ImageReferenceError::EmptyTag;
        }
        if !is_valid_tag(tag) {
            return ImageReferenceError::InvalidTag {
                tag: tag.to_owned(),
            };
        }
    }
    if let Some(digest) = digest {
        return ImageReferenceError::InvalidDigest {
            digest: digest.to_owned(),
        };
    }
    ImageReferenceError::InvalidName {
        name: name.to_owned(),
    }
}

fn is_valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    first_ok
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_valid_references() {
        let with_digest = format!("quay.io/x/y@{DIGEST}");
        let valid = [
            "nginx",
            "nginx:1.25",
            "docker.io/library/nginx:latest",
            "gcr.io/example-image-two:latest",
            "registry.local:5000/a/b:v1",
            with_digest.as_str(),
            "localhost/x",
            "nginx:Uppercase-Tag_1.0",
            "Registry.Example.com/team/app:1",
        ];
        for reference in valid {
            assert_eq!(check_image_reference(reference), Ok(()), "{reference}");
        }
    }

    fn reason(reference: &str) -> String {
        check_image_reference(reference)
            .expect_err(reference)
            .to_string()
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(reason(""), "it is empty");
    }

    #[test]
    fn rejects_empty_tag() {
        assert_eq!(reason("nginx:"), "the tag after ':' is empty");
    }

    #[test]
    fn rejects_uppercase_repository() {
        assert!(reason("Nginx").contains("\"Nginx\" has uppercase letters"));
        assert!(reason("registry.io/Team/app").contains("\"Team/app\" has uppercase"));
    }

    #[test]
    fn rejects_uppercase_first_component_that_oci_spec_accepts() {
        // oci-spec's grammar takes `Team` for a registry host, then calls it a Hub path.
        assert!(oci_spec::distribution::Reference::try_from("Team/app").is_ok());
        assert!(reason("Team/app").contains("\"Team/app\" has uppercase letters"));
    }

    #[test]
    fn rejects_whitespace() {
        assert_eq!(reason("a b"), "it contains whitespace");
        assert_eq!(reason(" nginx"), "it contains whitespace");
    }

    #[test]
    fn rejects_double_colon() {
        assert!(reason("nginx::1").contains("the tag \":1\" is not valid"));
    }

    #[test]
    fn rejects_tag_without_name() {
        assert_eq!(reason(":tag"), "the repository name is missing");
        assert_eq!(
            reason(&format!("@{DIGEST}")),
            "the repository name is missing"
        );
    }

    #[test]
    fn rejects_short_or_malformed_digest() {
        assert!(reason("x@sha256:short").contains("the digest \"sha256:short\" is not valid"));
        assert!(reason("x@sha256:0123456789abcdef0123456789abcdef").contains("digest length"));
        assert!(reason(&format!("x@md5:{}", &DIGEST[7..])).contains("unsupported digest"));
    }

    #[test]
    fn rejects_bad_path_characters() {
        assert!(reason("a/b$c").contains("the name \"a/b$c\" is not valid"));
        assert!(reason("registry.io:5000/-lead").contains("the name"));
    }
}
