//! Registry credentials: given explicitly (flags, secrets), else from the docker
//! configuration (`config.json`: `auths` entries and credential helpers), else anonymous.
//!
//! [`resolve_credentials`] takes the docker configuration folder as an argument so that it
//! can be tested without touching the process environment; [`resolve_credentials_from_env`]
//! is the thin wrapper that reads `$DOCKER_CONFIG` / `$HOME`.

use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use docker_credential::{CredentialRetrievalError, DockerCredential};
use tracing::debug;

/// How to authenticate to a registry.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
}

impl Credentials {
    /// The user name, for messages; never the password.
    pub fn username(&self) -> Option<&str> {
        match self {
            Credentials::Anonymous => None,
            Credentials::Basic { username, .. } => Some(username),
        }
    }
}

// By hand, so that a password never reaches a log line or an error message.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "explicit credentials for {host} have an empty user name; expected a user name and a password"
    )]
    EmptyUsername { host: String },
    #[error("cannot read the docker configuration {} (looking for credentials for {host}): {source}", .path.display())]
    ReadConfig {
        path: PathBuf,
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the docker configuration {} is not valid (looking for credentials for {host}): {reason}; expected JSON with \"auths\", \"credHelpers\" or \"credsStore\"", .path.display())]
    ParseConfig {
        path: PathBuf,
        host: String,
        reason: String,
    },
    #[error("the docker configuration {} has credentials for {host} (entry {entry:?}) that cannot be used: {reason}", .path.display())]
    BadEntry {
        path: PathBuf,
        host: String,
        entry: String,
        reason: String,
    },
    #[error("the docker configuration {} holds an identity token for {host} (entry {entry:?}); only user name and password are supported: log in with a password or pass the credentials explicitly", .path.display())]
    IdentityToken {
        path: PathBuf,
        host: String,
        entry: String,
    },
    #[error("the docker credential helper {helper:?} (from {}) failed for {host}: {reason}", .path.display())]
    Helper {
        path: PathBuf,
        host: String,
        helper: String,
        reason: String,
    },
}

/// Explicit credentials win; else the docker configuration in `docker_config_dir` (the
/// folder holding `config.json`); else anonymous. A missing folder or file means no
/// configured credentials, not an error.
pub fn resolve_credentials(
    explicit: Option<(String, String)>,
    host: &str,
    docker_config_dir: Option<&Path>,
) -> Result<Credentials, CredentialsError> {
    if let Some((username, password)) = explicit {
        if username.is_empty() {
            return Err(CredentialsError::EmptyUsername {
                host: host.to_owned(),
            });
        }
        return Ok(Credentials::Basic { username, password });
    }
    let Some(dir) = docker_config_dir else {
        return Ok(Credentials::Anonymous);
    };
    from_docker_config(&dir.join("config.json"), host)
}

/// `$DOCKER_CONFIG`, else `$HOME/.docker`: where docker itself looks.
pub fn docker_config_dir_from_env() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".docker"))
}

/// [`resolve_credentials`] with the docker configuration folder from the environment.
pub fn resolve_credentials_from_env(
    explicit: Option<(String, String)>,
    host: &str,
) -> Result<Credentials, CredentialsError> {
    resolve_credentials(explicit, host, docker_config_dir_from_env().as_deref())
}

/// Which of the configuration's keys names `host`: docker writes `host`, older tools
/// `https://host` or `https://host/v1/`, so keys are compared without scheme and path.
fn matching_key<'a>(keys: impl Iterator<Item = &'a String>, host: &str) -> Option<&'a String> {
    let normalize = |key: &str| {
        let without_scheme = key
            .strip_prefix("https://")
            .or_else(|| key.strip_prefix("http://"))
            .unwrap_or(key);
        let host_part = without_scheme.split('/').next().unwrap_or_default();
        host_part.to_ascii_lowercase()
    };
    let wanted = host.to_ascii_lowercase();
    let keys: Vec<&String> = keys.collect();
    // An exact key first, so `host` wins over `https://host/v1/` when both exist.
    keys.iter()
        .find(|key| key.as_str() == host)
        .or_else(|| keys.iter().find(|key| normalize(key) == wanted))
        .copied()
}

fn from_docker_config(path: &Path, host: &str) -> Result<Credentials, CredentialsError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == ErrorKind::NotFound => {
            debug!(path = %path.display(), host, "no docker configuration; anonymous");
            return Ok(Credentials::Anonymous);
        }
        Err(source) => {
            return Err(CredentialsError::ReadConfig {
                path: path.to_path_buf(),
                host: host.to_owned(),
                source,
            });
        }
    };
    let config: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| CredentialsError::ParseConfig {
            path: path.to_path_buf(),
            host: host.to_owned(),
            reason: e.to_string(),
        })?;
    let keys_of = |field: &str| -> Vec<String> {
        config
            .get(field)
            .and_then(|v| v.as_object())
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    let helper_keys = keys_of("credHelpers");
    let auth_keys = keys_of("auths");
    let creds_store = config
        .get("credsStore")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    // docker_credential looks an entry up by its exact key, so find the key naming this
    // host first. A per-registry helper beats `auths`, as in docker.
    let entry = matching_key(helper_keys.iter(), host)
        .or_else(|| matching_key(auth_keys.iter(), host))
        .cloned();
    let (entry, helper) = match (entry, creds_store) {
        (Some(entry), store) => {
            let helper = config
                .get("credHelpers")
                .and_then(|h| h.get(&entry))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .or(store);
            (entry, helper)
        }
        (None, Some(store)) => (host.to_owned(), Some(store)),
        (None, None) => {
            debug!(path = %path.display(), host, "no docker credentials for this host; anonymous");
            return Ok(Credentials::Anonymous);
        }
    };
    let helper_error = |reason: String| CredentialsError::Helper {
        path: path.to_path_buf(),
        host: host.to_owned(),
        helper: helper
            .as_deref()
            .map_or_else(|| "(none)".to_owned(), |h| format!("docker-credential-{h}")),
        reason,
    };
    match docker_credential::get_credential_from_reader(bytes.as_slice(), &entry) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            debug!(path = %path.display(), host, entry, username, "credentials from the docker configuration");
            Ok(Credentials::Basic { username, password })
        }
        Ok(DockerCredential::IdentityToken(_)) => Err(CredentialsError::IdentityToken {
            path: path.to_path_buf(),
            host: host.to_owned(),
            entry,
        }),
        // An entry without auth or username (docker writes `{}` when a store holds the
        // secret) is "no credentials".
        Err(CredentialRetrievalError::NoCredentialConfigured) => Ok(Credentials::Anonymous),
        Err(CredentialRetrievalError::HelperFailure { stdout, stderr, .. }) => {
            // Helpers report "no stored login" by failing with this text; docker then
            // goes on anonymously, and so do we.
            if stdout.contains("credentials not found") || stderr.contains("credentials not found")
            {
                debug!(
                    host,
                    ?helper,
                    "the credential helper has nothing for this host; anonymous"
                );
                return Ok(Credentials::Anonymous);
            }
            Err(helper_error(format!(
                "it failed; stdout: {:?}, stderr: {:?}",
                stdout.trim(),
                stderr.trim()
            )))
        }
        Err(CredentialRetrievalError::HelperCommunicationError) => Err(helper_error(
            "it could not be run or talked to (is it installed and on PATH?)".to_owned(),
        )),
        Err(CredentialRetrievalError::MalformedHelperResponse) => Err(helper_error(
            "it answered something other than {\"Username\": …, \"Secret\": …}".to_owned(),
        )),
        Err(error) => Err(CredentialsError::BadEntry {
            path: path.to_path_buf(),
            host: host.to_owned(),
            entry,
            reason: error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn config_dir(json: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.json"), json).unwrap();
        dir
    }

    // base64("user:pa:ss") — a password may itself contain ':'.
    const USER_PASS_B64: &str = "dXNlcjpwYTpzcw==";

    #[test]
    fn explicit_credentials_win() {
        let dir = config_dir(&format!(
            r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{USER_PASS_B64}"}}}}}}"#
        ));
        let credentials = resolve_credentials(
            Some(("me".into(), "secret".into())),
            "127.0.0.1:5000",
            Some(dir.path()),
        )
        .unwrap();
        assert_eq!(
            credentials,
            Credentials::Basic {
                username: "me".into(),
                password: "secret".into()
            }
        );
        let error = resolve_credentials(Some((String::new(), "x".into())), "h", None).unwrap_err();
        assert!(matches!(error, CredentialsError::EmptyUsername { .. }));
    }

    #[test]
    fn reads_auths_from_the_docker_config() {
        let dir = config_dir(&format!(
            r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{USER_PASS_B64}"}},"other:1":{{"auth":"eDp5"}}}}}}"#
        ));
        let credentials = resolve_credentials(None, "127.0.0.1:5000", Some(dir.path())).unwrap();
        assert_eq!(
            credentials,
            Credentials::Basic {
                username: "user".into(),
                password: "pa:ss".into()
            }
        );
        assert_eq!(credentials.username(), Some("user"));
    }

    #[test]
    fn matches_keys_written_with_a_scheme_and_path() {
        let dir = config_dir(&format!(
            r#"{{"auths":{{"https://Registry.Example:5000/v1/":{{"auth":"{USER_PASS_B64}"}}}}}}"#
        ));
        let credentials =
            resolve_credentials(None, "registry.example:5000", Some(dir.path())).unwrap();
        assert_eq!(credentials.username(), Some("user"));
    }

    #[test]
    fn username_and_password_fields_work_too() {
        let dir = config_dir(r#"{"auths":{"h:1":{"username":"u","password":"p"}}}"#);
        let credentials = resolve_credentials(None, "h:1", Some(dir.path())).unwrap();
        assert_eq!(
            credentials,
            Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
    }

    #[test]
    fn anonymous_without_config_or_entry() {
        assert_eq!(
            resolve_credentials(None, "h:1", None).unwrap(),
            Credentials::Anonymous
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve_credentials(None, "h:1", Some(empty.path())).unwrap(),
            Credentials::Anonymous
        );
        let dir = config_dir(r#"{"auths":{"other:1":{"auth":"eDp5"}}}"#);
        assert_eq!(
            resolve_credentials(None, "h:1", Some(dir.path())).unwrap(),
            Credentials::Anonymous
        );
        let dir = config_dir(r#"{"auths":{"h:1":{}}}"#);
        assert_eq!(
            resolve_credentials(None, "h:1", Some(dir.path())).unwrap(),
            Credentials::Anonymous
        );
    }

    #[test]
    fn bad_configs_are_errors_with_context() {
        let dir = config_dir("{not json");
        let error = resolve_credentials(None, "h:1", Some(dir.path())).unwrap_err();
        assert!(
            matches!(error, CredentialsError::ParseConfig { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("h:1"));

        let dir = config_dir(r#"{"auths":{"h:1":{"auth":"!!!not base64"}}}"#);
        let error = resolve_credentials(None, "h:1", Some(dir.path())).unwrap_err();
        assert!(
            matches!(error, CredentialsError::BadEntry { .. }),
            "{error}"
        );

        let dir = config_dir(r#"{"auths":{"h:1":{"identitytoken":"tok"}}}"#);
        let error = resolve_credentials(None, "h:1", Some(dir.path())).unwrap_err();
        assert!(
            matches!(error, CredentialsError::IdentityToken { .. }),
            "{error}"
        );

        // A helper that does not exist cannot be run.
        let dir = config_dir(r#"{"credHelpers":{"h:1":"strata-test-no-such-helper"}}"#);
        let error = resolve_credentials(None, "h:1", Some(dir.path())).unwrap_err();
        assert!(matches!(error, CredentialsError::Helper { .. }), "{error}");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let credentials = Credentials::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{credentials:?}");
        assert!(shown.contains("\"u\""));
        assert!(!shown.contains("hunter2"));
    }
}
