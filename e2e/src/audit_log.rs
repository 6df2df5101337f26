//! The apiserver's audit log, for tests that must know who wrote what and when as the
//! apiserver saw it (not as the writers' clocks say). `ControlPlaneOptions::audit_log`
//! turns it on with [`WRITE_POLICY`]; [`read`] parses the JSON lines.

use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use serde::Deserialize;

/// Every write request, at Metadata level (no bodies), once, when its response is
/// complete; nothing else.
pub const WRITE_POLICY: &str = "\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
";

/// Verbs that change what is stored.
pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    #[error("cannot read the audit log {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit log {path}, line {line}: not an audit event ({source}): {text}")]
    Parse {
        path: PathBuf,
        line: usize,
        text: String,
        #[source]
        source: serde_json::Error,
    },
}

/// One event of the log (the fields the tests use).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: String,
    pub verb: String,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub user: AuditUser,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub object_ref: Option<AuditObjectRef>,
    #[serde(default)]
    pub response_status: Option<AuditResponseStatus>,
    /// When the apiserver received the request.
    pub request_received_timestamp: MicroTime,
    /// When the apiserver reached this stage (for `ResponseComplete`: the write is done).
    pub stage_timestamp: MicroTime,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuditUser {
    #[serde(default)]
    pub username: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditObjectRef {
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub api_group: Option<String>,
    #[serde(default)]
    pub subresource: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuditResponseStatus {
    #[serde(default)]
    pub code: Option<u16>,
}

impl AuditEvent {
    /// A write that the apiserver carried out (2xx, its response complete).
    pub fn is_successful_write(&self) -> bool {
        self.stage == "ResponseComplete"
            && WRITE_VERBS.contains(&self.verb.as_str())
            && self
                .response_status
                .as_ref()
                .and_then(|s| s.code)
                .is_some_and(|code| (200..300).contains(&code))
    }

    /// `resource[/subresource] namespace/name`, for messages.
    pub fn describe(&self) -> String {
        match &self.object_ref {
            None => self.request_uri.clone(),
            Some(o) => format!(
                "{}{} {}/{}",
                o.resource,
                o.subresource
                    .as_deref()
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default(),
                o.namespace.as_deref().unwrap_or(""),
                o.name.as_deref().unwrap_or("")
            ),
        }
    }
}

/// Every event of the log so far. The apiserver writes whole lines, but a line it is
/// writing while the file is read may be cut short: a last line without its newline is
/// left for the next read.
pub fn read(path: &Path) -> Result<Vec<AuditEvent>, AuditLogError> {
    let text = fs::read_to_string(path).map_err(|source| AuditLogError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|source| AuditLogError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                text: line.chars().take(300).collect(),
                source,
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    // As kube-apiserver 1.20 writes them.
    const LINES: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"0b5c","stage":"ResponseComplete","requestURI":"/apis/coordination.k8s.io/v1/namespaces/strata-system/leases/strata-controller","verb":"update","user":{"username":"system:serviceaccount:strata-system:strata-controller","groups":["system:serviceaccounts"]},"sourceIPs":["127.0.0.1"],"userAgent":"strata-controller/0.1.0 (controller-a)","objectRef":{"resource":"leases","namespace":"strata-system","name":"strata-controller","apiGroup":"coordination.k8s.io","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2021-01-13T10:00:00.123456Z","stageTimestamp":"2021-01-13T10:00:00.130001Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"77aa","stage":"ResponseComplete","requestURI":"/apis/coordination.k8s.io/v1/namespaces/strata-system/leases/strata-controller","verb":"update","user":{"username":"system:serviceaccount:strata-system:strata-controller"},"userAgent":"strata-controller/0.1.0 (controller-b)","objectRef":{"resource":"leases","namespace":"strata-system","name":"strata-controller","apiGroup":"coordination.k8s.io","apiVersion":"v1"},"responseStatus":{"metadata":{},"status":"Failure","reason":"Conflict","code":409},"requestReceivedTimestamp":"2021-01-13T10:00:01.000000Z","stageTimestamp":"2021-01-13T10:00:01.002000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"9f00","stage":"ResponseComplete","requestURI":"/apis/strata.dev/v1alpha1/namespaces/team/workloadclusters/a/status","verb":"patch","user":{"username":"x"},"objectRef":{"resource":"workloadclusters","namespace":"team","name":"a","apiGroup":"strata.dev","apiVersion":"v1alpha1","subresource":"status"},"responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":"2021-01-13T10:00:02.000000Z","stageTimestamp":"2021-01-13T10:00:02.010000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"cut"#;

    #[test]
    fn reads_events_and_tells_successful_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        fs::write(&path, LINES).unwrap();
        let events = read(&path).unwrap();
        assert_eq!(events.len(), 3, "the unfinished last line is left out");
        assert_eq!(
            events[0].user_agent.as_deref(),
            Some("strata-controller/0.1.0 (controller-a)")
        );
        assert_eq!(
            events[0].describe(),
            "leases strata-system/strata-controller"
        );
        assert_eq!(events[2].describe(), "workloadclusters/status team/a");
        assert_eq!(
            events
                .iter()
                .map(AuditEvent::is_successful_write)
                .collect::<Vec<_>>(),
            [true, false, true]
        );
        assert!(events[0].request_received_timestamp < events[0].stage_timestamp);
        assert_eq!(events[2].user_agent, None);
    }

    #[test]
    fn a_broken_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        fs::write(&path, "{\"kind\":\"Event\"}\n").unwrap();
        let error = read(&path).unwrap_err().to_string();
        assert!(error.contains("line 1"), "{error}");
        assert!(error.contains("audit.log"), "{error}");
    }
}
