//! What a registry's `401` asks for (`WWW-Authenticate`), and where credentials may go.
//!
//! # The realm rule
//!
//! A token registry names a token server (the realm) that the client sends its user name
//! and password to. Docker and containerd send them to whatever realm the registry names;
//! Strata does not, because the registry (or whoever answers in its name) then decides
//! where the password goes. Credentials go to a realm only when
//!
//! - it is `https://`, and
//! - its host name is the registry's host name (compared without case; the port may
//!   differ, since a token server on another port of the same host is a common
//!   deployment, and the TLS certificate the client checks binds the name, not the port).
//!
//! A client without credentials sends nothing secret, so it may fetch an anonymous token
//! from any realm, but never over plain HTTP when the registry itself is HTTPS. Plain
//! HTTP registries are anonymous only (see `RegistryOptions`), so there the realm's
//! scheme is not checked.

use reqwest::Url;
use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};

/// How a registry wants to be authenticated to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Basic credentials, sent to the registry itself.
    Basic,
    /// A bearer token from `realm` (the token server), for `service`.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// The challenge of a `401`: a Bearer one wins over Basic when both are offered, since a
/// token keeps the password away from the registry.
pub(crate) fn challenge_of(headers: &HeaderMap) -> Option<Challenge> {
    let challenges: Vec<Challenge> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(parse_challenge)
        .collect();
    challenges
        .iter()
        .find(|c| matches!(c, Challenge::Bearer { .. }))
        .or_else(|| challenges.first())
        .cloned()
}

/// `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    for part in split_params(params) {
        if let Some((key, value)) = part.split_once('=') {
            let value = value.trim().trim_matches('"').to_owned();
            match key.trim().to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "service" => service = Some(value),
                _ => {}
            }
        }
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service: service.filter(|s| !s.is_empty()),
    })
}

/// Splits `a="x,y",b=z` on the commas outside quotes.
fn split_params(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Why a realm may not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RealmProblem {
    /// Not an absolute `http(s)://` URL with a host.
    Unusable(String),
    /// Plain HTTP for credentials, or for an HTTPS registry.
    PlainHttp,
    /// Credentials, and a realm on another host.
    OtherHost { realm_host: String },
}

impl RealmProblem {
    /// The reason, as the end of "the realm … ".
    pub(crate) fn reason(&self, registry_host: &str) -> String {
        match self {
            RealmProblem::Unusable(why) => format!("is not usable: {why}"),
            RealmProblem::PlainHttp => "is plain HTTP".to_owned(),
            RealmProblem::OtherHost { realm_host } => format!(
                "is on another host ({realm_host}; the registry is {})",
                host_name(registry_host).unwrap_or_else(|| registry_host.to_owned())
            ),
        }
    }
}

/// The host name of `host[:port]` (an IPv6 literal keeps its brackets), lowercased.
pub(crate) fn host_name(registry_host: &str) -> Option<String> {
    Url::parse(&format!("https://{registry_host}/"))
        .ok()?
        .host_str()
        .map(str::to_ascii_lowercase)
}

/// Checks `realm` against the rule in the module docs; the parsed URL when it may be used.
pub(crate) fn check_realm(
    registry_host: &str,
    registry_plain_http: bool,
    sends_credentials: bool,
    realm: &str,
) -> Result<Url, RealmProblem> {
    let url = Url::parse(realm).map_err(|e| RealmProblem::Unusable(e.to_string()))?;
    let scheme = url.scheme();
    if scheme != "https" && scheme != "http" {
        return Err(RealmProblem::Unusable(format!(
            "its scheme is {scheme:?}, not https"
        )));
    }
    let Some(realm_host) = url.host_str().map(str::to_ascii_lowercase) else {
        return Err(RealmProblem::Unusable("it has no host".to_owned()));
    };
    if scheme == "http" && (sends_credentials || !registry_plain_http) {
        return Err(RealmProblem::PlainHttp);
    }
    if sends_credentials && host_name(registry_host).as_deref() != Some(realm_host.as_str()) {
        return Err(RealmProblem::OtherHost { realm_host });
    }
    Ok(url)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let header = r#"Bearer realm="https://127.0.0.1:5001/token",service="registry",scope="repository:a:pull,push",error="insufficient_scope""#;
        assert_eq!(
            parse_challenge(header),
            Some(Challenge::Bearer {
                realm: "https://127.0.0.1:5001/token".into(),
                service: Some("registry".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer Realm="https://h/t""#),
            Some(Challenge::Bearer {
                realm: "https://h/t".into(),
                service: None
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=\"s\""), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn prefers_a_bearer_challenge() {
        let mut headers = HeaderMap::new();
        headers.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"r\""),
        );
        headers.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"https://h/token\""),
        );
        assert!(matches!(
            challenge_of(&headers),
            Some(Challenge::Bearer { .. })
        ));
        assert_eq!(challenge_of(&HeaderMap::new()), None);
    }

    #[test]
    fn credentials_go_only_to_an_https_realm_on_the_registry_host() {
        // Same host name, another port: allowed.
        assert!(
            check_realm(
                "127.0.0.1:5000",
                false,
                true,
                "https://127.0.0.1:5001/token"
            )
            .is_ok()
        );
        assert!(
            check_realm(
                "Registry.Example:443",
                false,
                true,
                "https://registry.example/service/token"
            )
            .is_ok()
        );
        // Another host name for the same machine is another host.
        assert_eq!(
            check_realm(
                "127.0.0.1:5000",
                false,
                true,
                "https://localhost:5001/token"
            ),
            Err(RealmProblem::OtherHost {
                realm_host: "localhost".into()
            })
        );
        assert_eq!(
            check_realm(
                "registry.example",
                false,
                true,
                "https://auth.example/token"
            ),
            Err(RealmProblem::OtherHost {
                realm_host: "auth.example".into()
            })
        );
        // Plain HTTP, even on the same host.
        assert_eq!(
            check_realm("127.0.0.1:5000", false, true, "http://127.0.0.1:5001/token"),
            Err(RealmProblem::PlainHttp)
        );
        assert!(matches!(
            check_realm("h", false, true, "ftp://h/token"),
            Err(RealmProblem::Unusable(_))
        ));
        assert!(matches!(
            check_realm("h", false, true, "/token"),
            Err(RealmProblem::Unusable(_))
        ));
    }

    #[test]
    fn anonymous_clients_may_use_another_host_but_not_a_downgrade() {
        assert!(check_realm("registry.example", false, false, "https://auth.example/t").is_ok());
        assert_eq!(
            check_realm("registry.example", false, false, "http://auth.example/t"),
            Err(RealmProblem::PlainHttp)
        );
        // A plain HTTP registry is anonymous; its realm may be plain HTTP too.
        assert!(check_realm("127.0.0.1:5000", true, false, "http://127.0.0.1:5001/t").is_ok());
    }

    #[test]
    fn reasons_name_both_hosts() {
        let problem = RealmProblem::OtherHost {
            realm_host: "localhost".into(),
        };
        assert_eq!(
            problem.reason("127.0.0.1:5000"),
            "is on another host (localhost; the registry is 127.0.0.1)"
        );
    }
}
