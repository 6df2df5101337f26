#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use proptest::prelude::*;

fn oci_spec(reference: &str) -> Result<String, ParseError> {
    Reference::try_from(reference).map(|parsed| parsed.repository().to_owned())
}

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn reads_the_repository_as_oci_spec_does() {
    let cases = [
        ("nginx", "library/nginx"),
        ("nginx:1.25", "library/nginx"),
        ("team/app:1", "team/app"),
        ("Team/app", "Team/app"),
        ("docker.io/nginx", "library/nginx"),
        ("index.docker.io/nginx", "library/nginx"),
        ("index.docker.io/team/app", "team/app"),
        ("localhost/x", "x"),
        ("registry.local:5000/a/b:v1", "a/b"),
        ("test.com:5000", "library/test.com"),
        ("a--b__c_d/e.f", "a--b__c_d/e.f"),
        ("a.b/c", "c"),
    ];
    for (reference, repository) in cases {
        assert_eq!(
            repository_of(reference),
            Ok(repository.to_owned()),
            "{reference}"
        );
        assert_eq!(
            oci_spec(reference),
            Ok(repository.to_owned()),
            "{reference}"
        );
    }
}

#[test]
fn refuses_as_oci_spec_does() {
    let long = "a".repeat(256);
    let cases = [
        (String::new(), ParseError::NameEmpty),
        (":tag".into(), ParseError::ReferenceInvalidFormat),
        ("nginx:".into(), ParseError::ReferenceInvalidFormat),
        ("a._b".into(), ParseError::ReferenceInvalidFormat),
        ("a___b".into(), ParseError::ReferenceInvalidFormat),
        ("-a.io/b".into(), ParseError::ReferenceInvalidFormat),
        ("a.io:/b".into(), ParseError::ReferenceInvalidFormat),
        ("a/b:c/d".into(), ParseError::ReferenceInvalidFormat),
        ("nginx\n".into(), ParseError::ReferenceInvalidFormat),
        (format!("x@{DIGEST}@"), ParseError::ReferenceInvalidFormat),
        (
            format!("n:{}", "t".repeat(129)),
            ParseError::ReferenceInvalidFormat,
        ),
        (long.clone(), ParseError::NameTooLong),
        (
            format!("x@{}", &DIGEST[..40]),
            ParseError::DigestInvalidLength,
        ),
        (
            format!("x@md5:{}", &DIGEST[7..]),
            ParseError::DigestUnsupported,
        ),
        (
            format!("x@SHA256:{}", &DIGEST[7..]),
            ParseError::DigestUnsupported,
        ),
    ];
    for (reference, error) in cases {
        assert_eq!(oci_spec(&reference), Err(error), "{reference:?}");
        assert_eq!(
            repository_of(&reference),
            oci_spec(&reference),
            "{reference:?}"
        );
    }
    // One character less than the limit, with the `library/` it gains.
    assert_eq!(repository_of(&long[..247]).map(|r| r.len()), Ok(255));
    assert_eq!(repository_of(&long[..248]), Err(ParseError::NameTooLong));
}

#[test]
fn leaves_unicode_tags_to_oci_spec() {
    // `\w` is Unicode in oci-spec's expression: a tag may hold any word character.
    assert_eq!(repository_of("nginx:tâg"), Ok("library/nginx".to_owned()));
    assert_eq!(
        repository_of("nginx:t g\u{e9}"),
        Err(ParseError::ReferenceInvalidFormat)
    );
}

/// Pieces that each part of the grammar is made of, and near misses, so that random
/// references are often valid and often wrong in one place only.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("z9".to_owned()),
        Just("B".to_owned()),
        Just("0".to_owned()),
        Just(".".to_owned()),
        Just("_".to_owned()),
        Just("__".to_owned()),
        Just("-".to_owned()),
        Just("/".to_owned()),
        Just(":".to_owned()),
        Just(":5000".to_owned()),
        Just("@".to_owned()),
        Just("+".to_owned()),
        Just("localhost".to_owned()),
        Just("docker.io".to_owned()),
        Just("index.docker.io".to_owned()),
        Just("sha256:".to_owned()),
        Just("sha512:".to_owned()),
        Just("x-y.z:".to_owned()),
        Just("0123456789abcdef".to_owned()),
        Just("0123456789ABCDEF".to_owned()),
        "[ -~]",
    ]
}

fn reference() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(piece(), 0..12).prop_map(|pieces| pieces.concat()),
        "[a-zA-Z0-9._:/@+-]{0,40}",
        (
            "[a-z0-9]{1,6}(\\.[a-z0-9-]{1,6}){0,2}(:[0-9]{1,5})?",
            "[a-z0-9]{1,4}([._-]{1,2}[a-z0-9]{1,4}){0,2}(/[a-z0-9]{1,4}){0,2}",
            "(:[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,6})?",
            prop_oneof![
                Just(String::new()),
                Just(format!("@{DIGEST}")),
                "@[a-z]{1,6}:[0-9a-f]{30,70}",
            ],
        )
            .prop_map(|(registry, path, tag, digest)| format!("{registry}/{path}{tag}{digest}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn answers_every_ascii_reference_as_oci_spec(reference in reference()) {
        prop_assert_eq!(repository_of(&reference), oci_spec(&reference));
    }

    #[test]
    fn answers_long_references_as_oci_spec(
        path in "[a-z]{1,200}(/[a-z]{1,60}){0,2}",
        tag in "(:[a-z]{120,135})?",
    ) {
        let reference = format!("{path}{tag}");
        prop_assert_eq!(repository_of(&reference), oci_spec(&reference));
    }
}
