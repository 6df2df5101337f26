//! What one attempt of a registry operation ran into ([`Failure`]), sorted from
//! `oci-client`'s errors (pushes), reqwest's errors and HTTP statuses (everything else):
//! what is worth another attempt, what is the credentials' fault, what is final.

use oci_client::errors::{DigestError, OciDistributionError, OciEnvelope, OciErrorCode};

use crate::registry::error::RegistryError;

/// What one attempt of a registry operation ran into, before it is put into the words of
/// the operation (which repository, which pack).
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth another attempt. `exhausted` replaces Unreachable once attempts run out
    /// (a truncated download is retried, but reported as truncated).
    Transient {
        message: String,
        exhausted: Option<Box<RegistryError>>,
    },
    Unauthorized,
    Forbidden,
    NotFound(String),
    NotAPack(String),
    Mismatch {
        expected: String,
        found: String,
    },
    /// The TLS handshake failed on certificates or protocol: retrying cannot help.
    Tls(String),
    Protocol(String),
    Final(Box<RegistryError>),
}

impl Failure {
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, Failure::Transient { .. })
    }

    pub(crate) fn final_error(error: RegistryError) -> Failure {
        Failure::Final(Box::new(error))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transient { message, .. }
            | Failure::NotFound(message)
            | Failure::NotAPack(message)
            | Failure::Tls(message)
            | Failure::Protocol(message) => f.write_str(message),
            Failure::Unauthorized => f.write_str("401 Unauthorized"),
            Failure::Forbidden => f.write_str("403 Forbidden"),
            Failure::Mismatch { expected, found } => {
                write!(f, "content hashes to {found}, expected {expected}")
            }
            Failure::Final(error) => write!(f, "{error}"),
        }
    }
}

/// Sorts `oci-client`'s errors (from pushes) into what Strata reports. See the client's
/// module docs.
pub(crate) fn classify(error: OciDistributionError) -> Failure {
    use OciDistributionError as E;
    match error {
        // A token server refusing the credentials, or a 401 from the registry.
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => Failure::Unauthorized,
        // Only built from 4xx answers with an OCI error body.
        E::RegistryError { envelope, url } => envelope_failure(&envelope, &url),
        E::ServerError { code, url, message } => {
            let message = format!("{url} answered {code}: {}", shorten(&message));
            status_failure(code, message)
        }
        E::ImageManifestNotFoundError(message) => Failure::NotFound(message),
        E::RequestError(error) => request_failure(&error),
        E::IoError(error) => io_failure(&error),
        E::DigestError(DigestError::VerificationError { expected, actual }) => Failure::Mismatch {
            expected,
            found: actual,
        },
        E::UnsupportedMediaTypeError(media_type) => Failure::NotAPack(format!(
            "its manifest has media type {media_type:?}; expected an OCI image manifest"
        )),
        E::UnsupportedSchemaVersionError(version) => Failure::NotAPack(format!(
            "its manifest has schema version {version}; expected 2"
        )),
        E::ImageIndexParsingNoPlatformResolverError => Failure::NotAPack(
            "it is an image index (a list of manifests); expected one pack manifest".to_owned(),
        ),
        E::IncompatibleLayerMediaTypeError(media_type) => {
            Failure::NotAPack(format!("it has a layer of media type {media_type:?}"))
        }
        E::PullNoLayersError => Failure::NotAPack("its manifest has no layers".to_owned()),
        other => Failure::Protocol(other.to_string()),
    }
}

/// A 4xx answer with an OCI error body: its codes say more than the status.
pub(crate) fn envelope_failure(envelope: &OciEnvelope, url: &str) -> Failure {
    let has = |code: OciErrorCode| envelope.errors.iter().any(|e| e.code == code);
    if has(OciErrorCode::Unauthorized) {
        Failure::Unauthorized
    } else if has(OciErrorCode::Denied) {
        Failure::Forbidden
    } else if has(OciErrorCode::ManifestUnknown)
        || has(OciErrorCode::NameUnknown)
        || has(OciErrorCode::NotFound)
        || has(OciErrorCode::BlobUnknown)
    {
        Failure::NotFound(format!("{url}: {envelope}"))
    } else {
        Failure::Protocol(format!("{url}: {envelope}"))
    }
}

/// A request that got no usable answer: the network's doing (retried) unless it is TLS,
/// a redirect that was refused, or a request that could not be built.
pub(crate) fn request_failure(error: &reqwest::Error) -> Failure {
    let message = error_chain(error);
    if let Some(status) = error.status() {
        status_failure(status.as_u16(), message)
    } else if has_tls_error(error) {
        Failure::Tls(message)
    } else if error.is_builder() || error.is_decode() || error.is_redirect() {
        Failure::Protocol(message)
    } else {
        // Connecting, sending, timeouts, a body cut off: the network's doing.
        Failure::Transient {
            message,
            exhausted: None,
        }
    }
}

/// An answer of status `status` whose (start of the) body is `body`, from `url`.
pub(crate) fn answer_failure(status: u16, body: &[u8], url: &str) -> Failure {
    if (400..500).contains(&status)
        && let Ok(envelope) = serde_json::from_slice::<OciEnvelope>(body)
        && !envelope.errors.is_empty()
    {
        return envelope_failure(&envelope, url);
    }
    let message = format!(
        "{url} answered {status}: {}",
        shorten(&String::from_utf8_lossy(body))
    );
    status_failure(status, message)
}

pub(crate) fn status_failure(code: u16, message: String) -> Failure {
    match code {
        401 => Failure::Unauthorized,
        403 => Failure::Forbidden,
        404 => Failure::NotFound(message),
        500..=599 => Failure::Transient {
            message,
            exhausted: None,
        },
        _ => Failure::Protocol(message),
    }
}

pub(crate) fn io_failure(error: &std::io::Error) -> Failure {
    use std::io::ErrorKind as K;
    let message = error_chain(error);
    match error.kind() {
        K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::BrokenPipe
        | K::TimedOut
        | K::UnexpectedEof
        | K::Interrupted => Failure::Transient {
            message,
            exhausted: None,
        },
        _ => Failure::Protocol(message),
    }
}

/// Whether a rustls error (bad certificate, not TLS at all) is behind `error`. io::Error
/// hides its payload from `source()`, so it is opened explicitly.
fn has_tls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && (inner.is::<rustls::Error>() || has_tls_error(inner))
        {
            return true;
        }
        current = error.source();
    }
    false
}

/// An error and its causes on one line: reqwest keeps the reason (refused, reset, bad
/// certificate) in the sources.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Registry error bodies can be whole HTML pages; the start says enough.
pub(crate) fn shorten(message: &str) -> String {
    const MAX: usize = 300;
    let message = message.trim();
    match message.char_indices().nth(MAX) {
        Some((index, _)) => format!("{}…", &message[..index]),
        None => message.to_owned(),
    }
}

/// The context an error is reported in.
pub(crate) struct Context {
    /// The registry's host.
    pub(crate) registry: String,
    /// The user the client authenticates as, if any.
    pub(crate) username: Option<String>,
    pub(crate) reference: String,
    pub(crate) repository: String,
}

impl Context {
    pub(crate) fn error(&self, failure: Failure) -> RegistryError {
        let registry = self.registry.clone();
        let username = self.username.clone();
        match failure {
            Failure::Transient { message, .. } | Failure::Tls(message) => {
                RegistryError::Unreachable {
                    registry,
                    attempts: 1,
                    last_error: message,
                }
            }
            Failure::Unauthorized => RegistryError::Unauthorized { registry, username },
            Failure::Forbidden => RegistryError::Forbidden {
                registry,
                repository: self.repository.clone(),
                username,
            },
            Failure::NotFound(message) => RegistryError::Protocol {
                reference: self.reference.clone(),
                message: format!("not found: {message}"),
            },
            Failure::NotAPack(reason) => RegistryError::NotAPack {
                reference: self.reference.clone(),
                reason,
            },
            Failure::Mismatch { expected, found } => RegistryError::DigestMismatch {
                reference: self.reference.clone(),
                expected,
                found,
            },
            Failure::Protocol(message) => RegistryError::Protocol {
                reference: self.reference.clone(),
                message,
            },
            Failure::Final(error) => *error,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use oci_client::errors::OciError;

    fn envelope(code: OciErrorCode) -> OciDistributionError {
        OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![OciError {
                    code,
                    message: "m".into(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "http://h/v2/x".into(),
        }
    }

    fn server(code: u16) -> OciDistributionError {
        OciDistributionError::ServerError {
            code,
            url: "http://h/v2/x".into(),
            message: "body".into(),
        }
    }

    fn kind(failure: &Failure) -> &'static str {
        match failure {
            Failure::Transient { .. } => "transient",
            Failure::Unauthorized => "unauthorized",
            Failure::Forbidden => "forbidden",
            Failure::NotFound(_) => "not found",
            Failure::NotAPack(_) => "not a pack",
            Failure::Mismatch { .. } => "mismatch",
            Failure::Tls(_) => "tls",
            Failure::Protocol(_) => "protocol",
            Failure::Final(_) => "final",
        }
    }

    #[test]
    fn classifies_every_oci_client_error() {
        use OciDistributionError as E;
        let io = |kind| E::IoError(std::io::Error::new(kind, "x"));
        let cases: Vec<(OciDistributionError, &str)> = vec![
            (E::AuthenticationFailure("no".into()), "unauthorized"),
            (E::UnauthorizedError { url: "u".into() }, "unauthorized"),
            (envelope(OciErrorCode::Unauthorized), "unauthorized"),
            (envelope(OciErrorCode::Denied), "forbidden"),
            (envelope(OciErrorCode::ManifestUnknown), "not found"),
            (envelope(OciErrorCode::NameUnknown), "not found"),
            (envelope(OciErrorCode::NotFound), "not found"),
            (envelope(OciErrorCode::BlobUnknown), "not found"),
            (envelope(OciErrorCode::NameInvalid), "protocol"),
            // A 4xx, so never retried, even "too many requests".
            (envelope(OciErrorCode::Toomanyrequests), "protocol"),
            (server(401), "unauthorized"),
            (server(403), "forbidden"),
            (server(404), "not found"),
            (server(400), "protocol"),
            (server(409), "protocol"),
            (server(429), "protocol"),
            (server(500), "transient"),
            (server(502), "transient"),
            (server(503), "transient"),
            (server(599), "transient"),
            (server(302), "protocol"),
            (E::ImageManifestNotFoundError("x".into()), "not found"),
            (io(std::io::ErrorKind::ConnectionRefused), "transient"),
            (io(std::io::ErrorKind::ConnectionReset), "transient"),
            (io(std::io::ErrorKind::TimedOut), "transient"),
            (io(std::io::ErrorKind::UnexpectedEof), "transient"),
            (io(std::io::ErrorKind::PermissionDenied), "protocol"),
            (
                E::DigestError(DigestError::VerificationError {
                    expected: "a".into(),
                    actual: "b".into(),
                }),
                "mismatch",
            ),
            (
                E::DigestError(DigestError::UnsupportedAlgorithm("md5".into())),
                "protocol",
            ),
            (E::UnsupportedMediaTypeError("x".into()), "not a pack"),
            (E::UnsupportedSchemaVersionError(1), "not a pack"),
            (E::ImageIndexParsingNoPlatformResolverError, "not a pack"),
            (E::IncompatibleLayerMediaTypeError("x".into()), "not a pack"),
            (E::PullNoLayersError, "not a pack"),
            (E::ManifestParsingError("x".into()), "protocol"),
            (E::VersionedParsingError("x".into()), "protocol"),
            (E::SpecViolationError("x".into()), "protocol"),
            (E::RegistryNoLocationError, "protocol"),
            (E::RegistryNoDigestError, "protocol"),
            (E::RegistryTokenDecodeError("x".into()), "protocol"),
            (E::GenericError(None), "protocol"),
            (E::UrlParseError("x".into()), "protocol"),
            (E::PushNoDataError, "protocol"),
        ];
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            let failure = classify(error);
            assert_eq!(kind(&failure), expected, "{shown}");
        }
    }

    #[test]
    fn answers_are_classified_by_their_error_codes_then_their_status() {
        let url = "https://h/v2/x/manifests/1";
        let envelope = |code: &str| format!(r#"{{"errors":[{{"code":"{code}","message":"m"}}]}}"#);
        assert_eq!(
            kind(&answer_failure(
                404,
                envelope("MANIFEST_UNKNOWN").as_bytes(),
                url
            )),
            "not found"
        );
        assert_eq!(
            kind(&answer_failure(400, envelope("DENIED").as_bytes(), url)),
            "forbidden"
        );
        assert_eq!(
            kind(&answer_failure(404, b"<html>gone</html>", url)),
            "not found"
        );
        assert_eq!(kind(&answer_failure(403, b"", url)), "forbidden");
        assert_eq!(kind(&answer_failure(429, b"slow down", url)), "protocol");
        assert_eq!(kind(&answer_failure(503, b"later", url)), "transient");
        match answer_failure(500, "x".repeat(1000).as_bytes(), url) {
            Failure::Transient { message, .. } => {
                assert!(message.starts_with("https://h/v2/x/manifests/1 answered 500: xxx"));
                assert!(message.len() < 400, "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
