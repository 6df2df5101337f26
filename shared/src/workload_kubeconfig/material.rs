//! The values themselves: the server URL, the CA and the credential, each checked the way
//! the client will use it, so that a kubeconfig accepted here builds a working client.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore};

use super::document::UserFields;
use super::{UnsafeKubeconfig, WorkloadCredential, excerpt, excerpt_to};

/// Bound on messages passed on from rustls and url: they name error kinds, not values,
/// but that is their promise rather than ours.
const PROBLEM_LIMIT: usize = 160;

/// `https://host[:port]`: no user information, query, fragment or path. CAPI writes the
/// bare endpoint; a path would put the API under a prefix kube prepends to every request,
/// which nothing here needs, so it is refused rather than carried along.
pub(super) fn server_url(
    cluster_at: &str,
    server: Option<&str>,
) -> Result<String, UnsafeKubeconfig> {
    let at = format!("{cluster_at}.server");
    let Some(text) = server.filter(|s| !s.trim().is_empty()) else {
        return Err(UnsafeKubeconfig::MissingServer { at });
    };
    let bad = |at: String, problem: &str| UnsafeKubeconfig::BadServer {
        at,
        problem: excerpt_to(problem, PROBLEM_LIMIT),
    };
    let url = reqwest::Url::parse(text).map_err(|error| bad(at.clone(), &error.to_string()))?;
    if url.scheme() != "https" {
        return Err(UnsafeKubeconfig::NotHttps {
            at,
            scheme: excerpt(url.scheme()),
        });
    }
    if url.host().is_none() {
        return Err(bad(at, "it has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(at, "it carries a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(at, "it has a query or fragment"));
    }
    if url.path() != "/" {
        return Err(bad(
            at,
            "it has a path; only an API server at the root of its host is accepted",
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// The CA bundle's PEM and its certificates' DER, each one accepted as a trust anchor.
pub(super) fn certificate_authority(
    cluster_at: &str,
    data: Option<&str>,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), UnsafeKubeconfig> {
    let at = format!("{cluster_at}.certificate-authority-data");
    let Some(data) = data.filter(|d| !d.trim().is_empty()) else {
        return Err(UnsafeKubeconfig::MissingCertificateAuthority { at });
    };
    let pem = decode_base64(&at, data)?;
    let ders = certificates(&at, &pem)?;
    // The same check kube's TLS set-up makes, done here so a bad CA is a finding about
    // the kubeconfig rather than a failure to build a client later.
    let mut roots = RootCertStore::empty();
    for der in &ders {
        roots
            .add(CertificateDer::from(der.as_slice()))
            .map_err(|error| UnsafeKubeconfig::BadCertificate {
                at: at.clone(),
                problem: excerpt_to(&error.to_string(), PROBLEM_LIMIT),
            })?;
    }
    Ok((pem, ders))
}

/// Exactly one inline credential: a client certificate with its key, or a token.
pub(super) fn credential(
    user_at: &str,
    user: &UserFields,
) -> Result<WorkloadCredential, UnsafeKubeconfig> {
    let at = user_at.to_string();
    match (
        user.client_certificate_data.as_deref(),
        user.client_key_data.as_deref(),
        user.token.as_deref(),
    ) {
        (None, None, None) => Err(UnsafeKubeconfig::MissingCredential { at }),
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            Err(UnsafeKubeconfig::TwoCredentials { at })
        }
        (Some(_), None, None) => Err(UnsafeKubeconfig::IncompleteClientCertificate {
            at,
            missing: "client-key-data",
        }),
        (None, Some(_), None) => Err(UnsafeKubeconfig::IncompleteClientCertificate {
            at,
            missing: "client-certificate-data",
        }),
        (Some(cert), Some(key), None) => client_certificate(user_at, cert, key),
        (None, None, Some(token)) => bearer_token(user_at, token),
    }
}

fn client_certificate(
    user_at: &str,
    cert_data: &str,
    key_data: &str,
) -> Result<WorkloadCredential, UnsafeKubeconfig> {
    let cert_at = format!("{user_at}.client-certificate-data");
    let key_at = format!("{user_at}.client-key-data");
    let cert_pem = decode_base64(&cert_at, cert_data)?;
    let chain = certificates(&cert_at, &cert_pem)?;
    let key_pem = decode_base64(&key_at, key_data)?;
    let key = private_key(&key_at, &key_pem)?;
    let signing_key = default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|error| UnsafeKubeconfig::BadPrivateKey {
            at: key_at,
            problem: excerpt_to(&error.to_string(), PROBLEM_LIMIT),
        })?;
    let chain = chain.into_iter().map(CertificateDer::from).collect();
    match CertifiedKey::new(chain, signing_key).keys_match() {
        // A key type whose public half the provider cannot tell is left to the handshake,
        // as rustls itself does.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {
            Ok(WorkloadCredential::ClientCertificate { cert_pem, key_pem })
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(UnsafeKubeconfig::KeyMismatch {
            at: user_at.to_string(),
        }),
        Err(error) => Err(UnsafeKubeconfig::BadCertificate {
            at: cert_at,
            problem: excerpt_to(&error.to_string(), PROBLEM_LIMIT),
        }),
    }
}

/// Visible ASCII only, so that `Bearer <token>` is a valid header value and nothing can
/// be smuggled into the request with it.
fn bearer_token(user_at: &str, token: &str) -> Result<WorkloadCredential, UnsafeKubeconfig> {
    let at = format!("{user_at}.token");
    if token.is_empty() {
        return Err(UnsafeKubeconfig::BadToken {
            at,
            problem: "it is empty",
        });
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(UnsafeKubeconfig::BadToken {
            at,
            problem: "it holds characters other than visible ASCII",
        });
    }
    Ok(WorkloadCredential::Token(token.to_string()))
}

/// Standard base64 with padding, as kube decodes `*-data` fields.
fn decode_base64(at: &str, data: &str) -> Result<Vec<u8>, UnsafeKubeconfig> {
    STANDARD
        .decode(data)
        .map_err(|_| UnsafeKubeconfig::NotBase64 { at: at.to_string() })
}

/// The DER of every section, all of which must be certificates, at least one.
fn certificates(at: &str, pem: &[u8]) -> Result<Vec<Vec<u8>>, UnsafeKubeconfig> {
    let bad = |problem: String| UnsafeKubeconfig::BadPem {
        at: at.to_string(),
        problem,
    };
    let mut ders = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        match section.map_err(|error| bad(pem_problem(&error).to_string()))? {
            (SectionKind::Certificate, der) => ders.push(der),
            (kind, _) => {
                return Err(bad(format!(
                    "it holds a {kind:?} section; only CERTIFICATE sections are accepted"
                )));
            }
        }
    }
    if ders.is_empty() {
        return Err(bad("it holds no CERTIFICATE section".to_string()));
    }
    Ok(ders)
}

/// Exactly one section, a private key in one of the encodings kube reads.
fn private_key(at: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, UnsafeKubeconfig> {
    let bad = |problem: String| UnsafeKubeconfig::BadPrivateKey {
        at: at.to_string(),
        problem,
    };
    let mut sections = <(SectionKind, Vec<u8>)>::pem_slice_iter(pem);
    let Some(first) = sections.next() else {
        return Err(bad("it holds no private key".to_string()));
    };
    let (kind, der) = first.map_err(|error| bad(pem_problem(&error).to_string()))?;
    if sections.next().is_some() {
        return Err(bad(
            "it holds more than one PEM section; exactly one private key is accepted".to_string(),
        ));
    }
    match kind {
        SectionKind::PrivateKey => Ok(PrivateKeyDer::Pkcs8(der.into())),
        SectionKind::RsaPrivateKey => Ok(PrivateKeyDer::Pkcs1(der.into())),
        SectionKind::EcPrivateKey => Ok(PrivateKeyDer::Sec1(der.into())),
        other => Err(bad(format!(
            "it holds a {other:?} section, not a private key"
        ))),
    }
}

/// pki-types' own messages can quote the offending line, which may be key material.
fn pem_problem(error: &pem::Error) -> &'static str {
    match error {
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a PEM section's body is not valid base64",
        pem::Error::SectionTooLarge => "a PEM section is too large",
        _ => "the PEM cannot be read",
    }
}
