//! The cluster `helm template` renders against. The engine library renders only inside
//! its install action (it has no client-only or dry-run option), and install talks to an
//! API server before and after rendering: version and discovery, a release-name check,
//! the storage of the release record, the objects' creation. This is an in-process HTTP
//! server on loopback that answers all of that and keeps nothing, so an install against it
//! is a render.
//!
//! - `/version`: the Kubernetes version helm's own `helm template` assumes, `v1.37.0`
//!   (client-go 0.37 plus one, helm's rule), so `.Capabilities.KubeVersion` matches it.
//! - discovery: the common built-in kinds and the kinds learned from an earlier attempt
//!   (helm names a kind it cannot map in its error; `template` retries with it added).
//! - reads: a single object is not found, a list is empty.
//! - writes: the request's body is echoed back, in its own content type (the release
//!   record is protobuf); a hook (`helm.sh/hook`) is refused, since running one would
//!   wait for a Job or Pod that never runs.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// helm's default `.Capabilities.KubeVersion` for a build on client-go 0.37.
const KUBE_VERSION: (&str, &str, &str) = ("1", "37", "v1.37.0");

/// One kind the fake API server lists in discovery.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kind {
    pub group_version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl Kind {
    fn new(group_version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        Kind {
            group_version: group_version.into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
        }
    }

    /// A kind helm could not map, as its error names it; its plural is a guess, which is
    /// harmless: nothing reads the objects back.
    pub fn learned(group_version: &str, kind: &str) -> Self {
        Kind::new(
            group_version,
            kind,
            &format!("{}s", kind.to_ascii_lowercase()),
            true,
        )
    }
}

/// The built-in kinds charts commonly render.
pub fn builtin_kinds() -> BTreeSet<Kind> {
    let namespaced = [
        ("v1", "ConfigMap", "configmaps"),
        ("v1", "Secret", "secrets"),
        ("v1", "Service", "services"),
        ("v1", "ServiceAccount", "serviceaccounts"),
        ("v1", "Pod", "pods"),
        ("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        ("v1", "Endpoints", "endpoints"),
        ("v1", "LimitRange", "limitranges"),
        ("v1", "ResourceQuota", "resourcequotas"),
        ("apps/v1", "Deployment", "deployments"),
        ("apps/v1", "StatefulSet", "statefulsets"),
        ("apps/v1", "DaemonSet", "daemonsets"),
        ("apps/v1", "ReplicaSet", "replicasets"),
        ("batch/v1", "Job", "jobs"),
        ("batch/v1", "CronJob", "cronjobs"),
        ("rbac.authorization.k8s.io/v1", "Role", "roles"),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            "rolebindings",
        ),
        ("networking.k8s.io/v1", "Ingress", "ingresses"),
        ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
        ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
        (
            "autoscaling/v1",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
        ),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
        ),
        ("coordination.k8s.io/v1", "Lease", "leases"),
    ];
    let cluster = [
        ("v1", "Namespace", "namespaces"),
        ("v1", "PersistentVolume", "persistentvolumes"),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "clusterroles",
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
        ),
        ("networking.k8s.io/v1", "IngressClass", "ingressclasses"),
        ("storage.k8s.io/v1", "StorageClass", "storageclasses"),
        ("storage.k8s.io/v1", "CSIDriver", "csidrivers"),
        (
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
        ),
        (
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
        ),
        ("scheduling.k8s.io/v1", "PriorityClass", "priorityclasses"),
    ];
    namespaced
        .iter()
        .map(|(gv, kind, plural)| Kind::new(gv, kind, plural, true))
        .chain(
            cluster
                .iter()
                .map(|(gv, kind, plural)| Kind::new(gv, kind, plural, false)),
        )
        .collect()
}

/// The kinds helm could not map, from its error: `no matches for kind "K" in version
/// "G/V"` once per object.
pub fn unmapped_kinds(message: &str) -> BTreeSet<Kind> {
    const KIND: &str = "no matches for kind \"";
    const VERSION: &str = "\" in version \"";
    let mut kinds = BTreeSet::new();
    let mut rest = message;
    while let Some(start) = rest.find(KIND) {
        rest = &rest[start + KIND.len()..];
        let Some(kind_end) = rest.find(VERSION) else {
            break;
        };
        let kind = &rest[..kind_end];
        let after = &rest[kind_end + VERSION.len()..];
        let Some(version_end) = after.find('"') else {
            break;
        };
        kinds.insert(Kind::learned(&after[..version_end], kind));
        rest = &after[version_end..];
    }
    kinds
}

#[derive(Debug, thiserror::Error)]
pub enum FakeClusterError {
    #[error("cannot start the runtime of the fake API server: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot listen on loopback for the fake API server: {0}")]
    Listen(#[source] std::io::Error),
    #[error("cannot write the kubeconfig of the fake API server to {path}: {source}")]
    Kubeconfig {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A running fake API server; stops with its runtime when dropped.
pub struct FakeCluster {
    _runtime: tokio::runtime::Runtime,
    address: SocketAddr,
}

impl FakeCluster {
    pub fn start(kinds: BTreeSet<Kind>) -> Result<Self, FakeClusterError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(FakeClusterError::Runtime)?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .map_err(FakeClusterError::Listen)?;
        let address = listener.local_addr().map_err(FakeClusterError::Listen)?;
        let kinds = std::sync::Arc::new(kinds);
        let app = Router::new().fallback(move |method, uri, headers, body| {
            let kinds = kinds.clone();
            async move { answer(&kinds, method, uri, headers, body) }
        });
        runtime.spawn(async move {
            // The server ends with the runtime; an accept error ends it early, and the
            // engine then reports the connection failure.
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeCluster {
            _runtime: runtime,
            address,
        })
    }

    /// Writes a kubeconfig for this server into `path`.
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> Result<(), FakeClusterError> {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: template\n  cluster:\n    server: http://{}\nusers:\n- name: template\n  user: {{}}\ncontexts:\n- name: template\n  context:\n    cluster: template\n    user: template\ncurrent-context: template\n",
            self.address
        );
        std::fs::write(path, text).map_err(|source| FakeClusterError::Kubeconfig {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn answer(
    kinds: &BTreeSet<Kind>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/');
    match method {
        Method::GET => get(kinds, path),
        Method::POST | Method::PUT | Method::PATCH => {
            if is_hook(&body) {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "this helm's template does not run chart hooks (helm.sh/hook): it renders by installing into a fake API server, where a hook would wait for a Job or Pod that never runs",
                );
            }
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .cloned()
                .unwrap_or_else(|| header::HeaderValue::from_static("application/json"));
            let code = if method == Method::POST {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (code, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Method::DELETE => json_response(
            StatusCode::OK,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        ),
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "not supported",
        ),
    }
}

fn get(kinds: &BTreeSet<Kind>, path: &str) -> Response {
    if path == "/version" {
        let (major, minor, git) = KUBE_VERSION;
        return json_response(
            StatusCode::OK,
            json!({"major": major, "minor": minor, "gitVersion": git, "platform": "linux/amd64"}),
        );
    }
    if path == "/api" {
        return json_response(
            StatusCode::OK,
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        );
    }
    if path == "/apis" {
        let groups: BTreeSet<(&str, &str)> = kinds
            .iter()
            .filter_map(|k| k.group_version.split_once('/'))
            .collect();
        let mut by_group: Vec<(&str, Vec<&str>)> = Vec::new();
        for (group, version) in groups {
            match by_group.last_mut() {
                Some((last, versions)) if *last == group => versions.push(version),
                _ => by_group.push((group, vec![version])),
            }
        }
        let groups: Vec<Value> = by_group
            .iter()
            .map(|(group, versions)| {
                let list: Vec<Value> = versions
                    .iter()
                    .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
                    .collect();
                json!({"name": group, "versions": list, "preferredVersion": list[0]})
            })
            .collect();
        return json_response(
            StatusCode::OK,
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
        );
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group_version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ((*version).to_string(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return not_found(path),
    };
    if rest.is_empty() {
        let resources: Vec<Value> = kinds
            .iter()
            .filter(|k| k.group_version == group_version)
            .map(|k| {
                json!({"name": k.plural, "singularName": "", "namespaced": k.namespaced, "kind": k.kind,
                       "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
            })
            .collect();
        if resources.is_empty() {
            return not_found(path);
        }
        return json_response(
            StatusCode::OK,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
        );
    }
    // namespaces/<ns>/<resource>[/<name>] or <resource>[/<name>]
    let object_path = match rest {
        ["namespaces", _, resource @ ..] if !resource.is_empty() => resource,
        other => other,
    };
    if object_path.len() == 1 {
        json_response(
            StatusCode::OK,
            json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []}),
        )
    } else {
        not_found(path)
    }
}

/// Whether a JSON body is an object carrying helm's hook annotation. Protobuf bodies (the
/// release record) are never hooks.
fn is_hook(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|object| {
            object
                .pointer("/metadata/annotations")
                .and_then(Value::as_object)
                .map(|annotations| annotations.contains_key("helm.sh/hook"))
        })
        .unwrap_or(false)
}

fn json_response(code: StatusCode, body: Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn not_found(path: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{path} not found"),
    )
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    json_response(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "reason": reason, "message": message, "code": code.as_u16()}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmapped_kinds_are_read_from_helms_error() {
        let message = "unable to build kubernetes objects from release manifest: [resource mapping not found for name: \"w\" namespace: \"\" from \"\": no matches for kind \"Widget\" in version \"example.com/v1\"\nensure CRDs are installed first, resource mapping not found for name: \"g\" namespace: \"\" from \"\": no matches for kind \"Gadget\" in version \"v2\"\nensure CRDs are installed first]";
        let kinds: Vec<(String, String, String)> = unmapped_kinds(message)
            .into_iter()
            .map(|k| (k.group_version, k.kind, k.plural))
            .collect();
        assert_eq!(
            kinds,
            [
                ("example.com/v1".into(), "Widget".into(), "widgets".into()),
                ("v2".into(), "Gadget".into(), "gadgets".into()),
            ]
        );
        assert!(unmapped_kinds("parse error at (x:1): boom").is_empty());
    }

    #[test]
    fn hooks_are_recognised_by_their_annotation() {
        assert!(is_hook(
            br#"{"metadata":{"name":"a","annotations":{"helm.sh/hook":"pre-install"}}}"#
        ));
        assert!(!is_hook(
            br#"{"metadata":{"name":"a","annotations":{"x":"y"}}}"#
        ));
        assert!(!is_hook(b"k8s\x00\x0a\x0b protobuf"));
    }
}
