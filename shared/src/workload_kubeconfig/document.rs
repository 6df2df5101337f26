//! The kubeconfig's shape: strict structs whose catch-all maps are screened field by
//! field, so each refused field gets its own finding and nothing unknown passes
//! unnoticed; then the context that says which cluster and user are meant.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_yaml::Value;

use super::{UnsafeKubeconfig, excerpt, excerpt_to};

#[derive(Deserialize)]
pub(super) struct Document {
    #[serde(default)]
    clusters: Option<Vec<NamedCluster>>,
    #[serde(default)]
    contexts: Option<Vec<NamedContext>>,
    #[serde(default)]
    users: Option<Vec<NamedUser>>,
    #[serde(rename = "current-context", default)]
    current_context: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: ClusterFields,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterFields {
    server: Option<String>,
    certificate_authority_data: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    context: ContextFields,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct ContextFields {
    cluster: String,
    user: String,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    user: UserFields,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct UserFields {
    pub(super) client_certificate_data: Option<String>,
    pub(super) client_key_data: Option<String>,
    pub(super) token: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// The cluster and user the kubeconfig's context points at, with their places in the
/// document for findings.
pub(super) struct Selected<'a> {
    /// `clusters[i].cluster`
    pub(super) cluster_at: String,
    pub(super) server: Option<&'a str>,
    pub(super) certificate_authority_data: Option<&'a str>,
    /// `users[j].user`
    pub(super) user_at: String,
    pub(super) user: &'a UserFields,
}

impl Document {
    /// Parses and screens every entry, used or not: a kubeconfig holding a command or a
    /// file path anywhere is not one CAPI wrote.
    pub(super) fn from_yaml(text: &str) -> Result<Document, UnsafeKubeconfig> {
        let document: Document = serde_yaml::from_str(text).map_err(malformed)?;
        document.screen()?;
        Ok(document)
    }

    fn screen(&self) -> Result<(), UnsafeKubeconfig> {
        for key in self.rest.keys() {
            if !matches!(
                key.as_str(),
                "apiVersion" | "kind" | "preferences" | "extensions"
            ) {
                return Err(UnsafeKubeconfig::UnknownField { at: excerpt(key) });
            }
        }
        for (index, entry) in self.clusters().iter().enumerate() {
            let at = format!("clusters[{index}]");
            only_known(&at, &entry.rest)?;
            for (key, value) in &entry.cluster.rest {
                screen_cluster_field(format!("{at}.cluster.{}", excerpt(key)), key, value)?;
            }
        }
        for (index, entry) in self.users().iter().enumerate() {
            let at = format!("users[{index}]");
            only_known(&at, &entry.rest)?;
            for key in entry.user.rest.keys() {
                screen_user_field(format!("{at}.user.{}", excerpt(key)), key)?;
            }
        }
        for (index, entry) in self.contexts().iter().enumerate() {
            let at = format!("contexts[{index}]");
            only_known(&at, &entry.rest)?;
            for key in entry.context.rest.keys() {
                // The namespace is tolerated because it is never applied.
                if !matches!(key.as_str(), "namespace" | "extensions") {
                    return Err(UnsafeKubeconfig::UnknownField {
                        at: format!("{at}.context.{}", excerpt(key)),
                    });
                }
            }
        }
        unique_names("clusters", self.clusters().iter().map(|c| c.name.as_str()))?;
        unique_names("users", self.users().iter().map(|u| u.name.as_str()))?;
        unique_names("contexts", self.contexts().iter().map(|c| c.name.as_str()))
    }

    /// Follows `current-context`, or the only context when it is absent or empty.
    pub(super) fn select(&self) -> Result<Selected<'_>, UnsafeKubeconfig> {
        let contexts = self.contexts();
        let (index, context) = match self.current_context.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => contexts
                .iter()
                .enumerate()
                .find(|(_, c)| c.name == name)
                .ok_or_else(|| UnsafeKubeconfig::UnknownContext {
                    name: excerpt(name),
                })?,
            None => match contexts {
                [] => return Err(UnsafeKubeconfig::NoContext),
                [only] => (0, only),
                _ => {
                    return Err(UnsafeKubeconfig::AmbiguousContext {
                        count: contexts.len(),
                    });
                }
            },
        };
        let at = format!("contexts[{index}].context");
        let wanted = &context.context;
        let (cluster_index, cluster) = self
            .clusters()
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == wanted.cluster)
            .ok_or_else(|| UnsafeKubeconfig::UnknownReference {
                at: format!("{at}.cluster"),
                section: "clusters",
                name: excerpt(&wanted.cluster),
            })?;
        let (user_index, user) = self
            .users()
            .iter()
            .enumerate()
            .find(|(_, u)| u.name == wanted.user)
            .ok_or_else(|| UnsafeKubeconfig::UnknownReference {
                at: format!("{at}.user"),
                section: "users",
                name: excerpt(&wanted.user),
            })?;
        Ok(Selected {
            cluster_at: format!("clusters[{cluster_index}].cluster"),
            server: cluster.cluster.server.as_deref(),
            certificate_authority_data: cluster.cluster.certificate_authority_data.as_deref(),
            user_at: format!("users[{user_index}].user"),
            user: &user.user,
        })
    }

    fn clusters(&self) -> &[NamedCluster] {
        self.clusters.as_deref().unwrap_or_default()
    }

    fn users(&self) -> &[NamedUser] {
        self.users.as_deref().unwrap_or_default()
    }

    fn contexts(&self) -> &[NamedContext] {
        self.contexts.as_deref().unwrap_or_default()
    }
}

fn screen_cluster_field(at: String, key: &str, value: &Value) -> Result<(), UnsafeKubeconfig> {
    match key {
        "extensions" => Ok(()),
        // Saying explicitly that verification stays on changes nothing.
        "insecure-skip-tls-verify" if *value == Value::Bool(false) => Ok(()),
        "insecure-skip-tls-verify" => Err(UnsafeKubeconfig::InsecureSkipTlsVerify { at }),
        "certificate-authority" => Err(UnsafeKubeconfig::FilePath { at }),
        "proxy-url" => Err(UnsafeKubeconfig::ProxyUrl { at }),
        "tls-server-name" => Err(UnsafeKubeconfig::TlsServerName { at }),
        _ => Err(UnsafeKubeconfig::UnknownField { at }),
    }
}

fn screen_user_field(at: String, key: &str) -> Result<(), UnsafeKubeconfig> {
    match key {
        "extensions" => Ok(()),
        "exec" => Err(UnsafeKubeconfig::Exec { at }),
        "auth-provider" => Err(UnsafeKubeconfig::AuthProvider { at }),
        "tokenFile" | "client-certificate" | "client-key" => Err(UnsafeKubeconfig::FilePath { at }),
        "username" | "password" => Err(UnsafeKubeconfig::BasicAuth { at }),
        "as" | "as-uid" | "as-groups" | "as-user-extra" => {
            Err(UnsafeKubeconfig::Impersonation { at })
        }
        _ => Err(UnsafeKubeconfig::UnknownField { at }),
    }
}

/// The entries (`- name: …, cluster: …`) have no field besides their name and body.
fn only_known(at: &str, rest: &BTreeMap<String, Value>) -> Result<(), UnsafeKubeconfig> {
    match rest.keys().next() {
        Some(key) => Err(UnsafeKubeconfig::UnknownField {
            at: format!("{at}.{}", excerpt(key)),
        }),
        None => Ok(()),
    }
}

fn unique_names<'a>(
    section: &'static str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), UnsafeKubeconfig> {
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(UnsafeKubeconfig::DuplicateName {
                section,
                name: excerpt(name),
            });
        }
    }
    Ok(())
}

fn malformed(error: serde_yaml::Error) -> UnsafeKubeconfig {
    UnsafeKubeconfig::Malformed {
        detail: without_values(&error.to_string()),
    }
}

/// serde quotes the values it could not use (`invalid type: string "…"`,
/// ``integer `123` ``); a token or key put in the wrong place would end up in a condition.
/// So quoted text is blanked, except backquoted words that can only be field names or
/// booleans, and the message is cut to a bounded length.
pub(super) fn without_values(message: &str) -> String {
    const LIMIT: usize = 240;
    let mut out = String::new();
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut escaped = false;
                for inner in chars.by_ref() {
                    match (escaped, inner) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        (false, _) => {}
                    }
                }
                out.push_str("\"…\"");
            }
            '`' => {
                let quoted: String = chars.by_ref().take_while(|inner| *inner != '`').collect();
                let is_word = !quoted.is_empty()
                    && quoted.len() <= 40
                    && quoted
                        .chars()
                        .all(|q| q.is_ascii_alphabetic() || q == '-' || q == '_');
                out.push('`');
                out.push_str(if is_word { &quoted } else { "…" });
                out.push('`');
            }
            other => out.push(other),
        }
    }
    excerpt_to(&out, LIMIT)
}
