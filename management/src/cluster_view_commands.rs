//! `strata cluster list` and `strata cluster status`: what the management cluster knows of
//! its clusters, as a table for people or JSON or YAML for scripts. They read
//! WorkloadClusters and change nothing. The counts, layers and site events after the pivot
//! are the agent's reports (the site's words), shown as such.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::ListParams;
use serde::Serialize;
use strata_shared::cluster::{ReplicaCounts, WorkloadCluster};
use strata_shared::conditions::find;
use strata_shared::contracts::conditions::AGENT_CONNECTED;
use strata_shared::contracts::field_managers::CLI_FIELD_MANAGER;
use strata_shared::kube_writer::KubeWriter;

use crate::cluster_commands::parse_cluster;
use crate::management_client::{client_from, command_runtime};
use crate::report::{OutputFormat, print_document};
use crate::{CommandError, ExitStatus};

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only the clusters of this namespace; else every namespace.
    #[arg(long, short, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// The management cluster's kubeconfig; else $KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The WorkloadCluster, NAMESPACE/NAME.
    #[arg(value_name = "NAMESPACE/NAME")]
    pub cluster: String,
    /// The management cluster's kubeconfig; else $KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

fn failed(message: impl Into<String>) -> CommandError {
    CommandError::Failed(message.into())
}

/// One cluster in a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterLine {
    pub namespace: String,
    pub name: String,
    pub cloud: String,
    pub phase: String,
    pub profiles: Vec<String>,
    pub revision: Option<i64>,
    pub applied_revision: Option<i64>,
    pub control_plane: Option<String>,
    pub workers: Option<String>,
    pub layers: Option<String>,
    /// `AgentConnected`: True, False or Unknown; None before an agent.
    pub agent_connected: Option<String>,
    /// Seconds since the cluster was created, when known.
    pub age_seconds: Option<i64>,
}

fn counts(counts: Option<&ReplicaCounts>) -> Option<String> {
    counts.map(|c| format!("{}/{}", c.ready, c.desired))
}

/// The line of `cluster`, its age taken at `now`.
pub fn line_of(cluster: &WorkloadCluster, now: Timestamp) -> ClusterLine {
    let status = cluster.status.clone().unwrap_or_default();
    ClusterLine {
        namespace: cluster.namespace().unwrap_or_default(),
        name: cluster.name_any(),
        cloud: cluster.spec.cloud_type.as_str().to_string(),
        phase: status
            .phase
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "Pending".to_string()),
        profiles: cluster
            .spec
            .profiles
            .iter()
            .map(|p| format!("{}:{}", p.name, p.version))
            .collect(),
        revision: status.revision,
        applied_revision: status.applied_revision,
        control_plane: counts(status.control_plane.as_ref()),
        workers: counts(status.workers.as_ref()),
        layers: status.layers_summary.clone(),
        agent_connected: find(&status.conditions, AGENT_CONNECTED).map(|c| c.status.clone()),
        age_seconds: cluster
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| now.duration_since(t.0).as_secs()),
    }
}

/// An age as kubectl shows one: 45s, 12m, 5h, 3d.
pub(crate) fn age(seconds: Option<i64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 120 => format!("{}s", s.max(0)),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 2 * 86400 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86400),
    }
}

/// The lines as an aligned table.
pub fn table(lines: &[ClusterLine]) -> String {
    let header = [
        "NAMESPACE",
        "NAME",
        "CLOUD",
        "PHASE",
        "REVISION",
        "CONTROL PLANE",
        "WORKERS",
        "LAYERS",
        "AGENT",
        "AGE",
    ];
    let dash = || "-".to_string();
    let rows: Vec<[String; 10]> = lines
        .iter()
        .map(|l| {
            let revision = match (l.revision, l.applied_revision) {
                (Some(r), Some(a)) if a != r => format!("{a}→{r}"),
                (Some(r), _) => r.to_string(),
                (None, _) => dash(),
            };
            [
                l.namespace.clone(),
                l.name.clone(),
                l.cloud.clone(),
                l.phase.clone(),
                revision,
                l.control_plane.clone().unwrap_or_else(dash),
                l.workers.clone().unwrap_or_else(dash),
                l.layers.clone().unwrap_or_else(dash),
                l.agent_connected.clone().unwrap_or_else(dash),
                age(l.age_seconds),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let render = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
        }
        line.push('\n');
        line
    };
    let mut out = render(header.to_vec());
    for row in &rows {
        out.push_str(&render(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The status of one cluster as text: its line, its conditions and its layers.
pub fn status_text(cluster: &WorkloadCluster, now: Timestamp) -> String {
    let line = line_of(cluster, now);
    let status = cluster.status.clone().unwrap_or_default();
    let mut out = table(std::slice::from_ref(&line));
    out.push_str("\nCONDITIONS\n");
    for c in &status.conditions {
        out.push_str(&format!(
            "  {:<24} {:<7} {:<24} {}\n",
            c.type_, c.status, c.reason, c.message
        ));
    }
    if !status.layers.is_empty() {
        out.push_str("\nLAYERS (the agent's report)\n");
        for layer in &status.layers {
            out.push_str(&format!(
                "  {:<24} {:<12} {:<10} {}\n",
                layer.name,
                layer.version,
                layer.state.as_str(),
                layer.message.as_deref().unwrap_or_default()
            ));
        }
    }
    if let Some(report) = status
        .agent
        .as_ref()
        .and_then(|a| a.last_report_time.as_ref())
    {
        out.push_str(&format!("\nlast agent report: {}\n", report.0));
    }
    out
}

pub fn list(args: &ListArgs) -> Result<ExitStatus, CommandError> {
    command_runtime()?.block_on(list_async(args))
}

async fn list_async(args: &ListArgs) -> Result<ExitStatus, CommandError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = client_from(args.kubeconfig.as_deref(), "--kubeconfig").await?;
    let writer = KubeWriter::new(client, CLI_FIELD_MANAGER, CALL_TIMEOUT);
    let (clusters, scope) = match &args.namespace {
        Some(namespace) => (
            writer.namespaced::<WorkloadCluster>(namespace),
            format!("namespace {namespace}"),
        ),
        None => (
            writer.all_namespaces::<WorkloadCluster>(),
            "any namespace".to_string(),
        ),
    };
    let mut found = clusters
        .list(&ListParams::default())
        .await
        .map_err(|e| failed(format!("cannot list the WorkloadClusters of {scope}: {e}")))?;
    found.sort_by_key(|c| (c.namespace(), c.name_any()));
    let now = Timestamp::now();
    let lines: Vec<ClusterLine> = found.iter().map(|c| line_of(c, now)).collect();
    match args.output.document() {
        Some(format) => print_document(&lines, format)?,
        None if lines.is_empty() => eprintln!("no WorkloadCluster in {scope}"),
        None => print!("{}", table(&lines)),
    }
    Ok(ExitStatus::Success)
}

pub fn status(args: &StatusArgs) -> Result<ExitStatus, CommandError> {
    command_runtime()?.block_on(status_async(args))
}

async fn status_async(args: &StatusArgs) -> Result<ExitStatus, CommandError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (namespace, name) = parse_cluster(&args.cluster)?;
    let client = client_from(args.kubeconfig.as_deref(), "--kubeconfig").await?;
    let writer = KubeWriter::new(client, CLI_FIELD_MANAGER, CALL_TIMEOUT);
    let shown = format!("WorkloadCluster {namespace}/{name}");
    let cluster = writer
        .namespaced::<WorkloadCluster>(&namespace)
        .get(&name)
        .await
        .map_err(|e| failed(format!("cannot read {shown}: {e}")))?
        .ok_or_else(|| failed(format!("there is no {shown}")))?;
    match args.output.document() {
        Some(format) => print_document(&StatusView::of(&cluster, Timestamp::now()), format)?,
        None => print!("{}", status_text(&cluster, Timestamp::now())),
    }
    Ok(ExitStatus::Success)
}

/// What `status -o json|yaml` prints: the cluster's line and its whole status.
#[derive(Debug, Serialize)]
pub struct StatusView {
    pub cluster: ClusterLine,
    pub status: Option<strata_shared::cluster::WorkloadClusterStatus>,
}

impl StatusView {
    pub fn of(cluster: &WorkloadCluster, now: Timestamp) -> StatusView {
        StatusView {
            cluster: line_of(cluster, now),
            status: cluster.status.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(name: &str, status: serde_json::Value) -> WorkloadCluster {
        serde_json::from_value(json!({
            "apiVersion": "strata.dev/v1alpha1",
            "kind": "WorkloadCluster",
            "metadata": {
                "name": name, "namespace": "edge",
                "creationTimestamp": "2026-12-04T10:00:00Z",
            },
            "spec": {
                "cloudType": "sim",
                "profiles": [{ "name": "sim-demo", "version": "1.0.0" }],
                "nodePools": {
                    "controlPlane": { "count": 3 },
                    "workers": [],
                },
            },
            "status": status,
        }))
        .unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_pivoted_cluster_in_a_line() {
        let pivoted = cluster(
            "store-1",
            json!({
                "phase": "Pivoted", "revision": 4, "appliedRevision": 3,
                "controlPlane": { "desired": 3, "ready": 3, "summary": "3/3" },
                "workers": { "desired": 2, "ready": 1, "summary": "1/2" },
                "layersSummary": "4/5 Ready",
                "conditions": [{
                    "type": "AgentConnected", "status": "False", "reason": "AgentSilent",
                    "message": "", "lastTransitionTime": "2026-12-04T10:00:00Z",
                }],
            }),
        );
        let line = line_of(&pivoted, at("2026-12-04T12:30:00Z"));
        assert_eq!(line.phase, "Pivoted");
        assert_eq!(line.profiles, ["sim-demo:1.0.0"]);
        assert_eq!(line.control_plane.as_deref(), Some("3/3"));
        assert_eq!(line.workers.as_deref(), Some("1/2"));
        assert_eq!(line.agent_connected.as_deref(), Some("False"));
        assert_eq!(line.age_seconds, Some(9000));
        let new = line_of(&cluster("store-2", json!({})), at("2026-12-04T10:00:30Z"));
        assert_eq!(
            table(&[line, new]),
            "NAMESPACE  NAME     CLOUD  PHASE    REVISION  CONTROL PLANE  WORKERS  LAYERS     AGENT  AGE\n\
             edge       store-1  sim    Pivoted  3→4       3/3            1/2      4/5 Ready  False  2h\n\
             edge       store-2  sim    Pending  -         -              -        -          -      30s\n"
        );
    }

    #[test]
    fn the_status_document_says_the_same_in_json_and_yaml() {
        use crate::report::{DocumentFormat, document_text};
        let pivoted = cluster(
            "store-1",
            json!({
                "phase": "Pivoted", "revision": 4,
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "Pivoted", "message": "",
                    "lastTransitionTime": "2026-12-04T10:00:00Z",
                }],
            }),
        );
        let view = StatusView::of(&pivoted, at("2026-12-04T10:01:00Z"));
        let yaml = document_text(&view, DocumentFormat::Yaml).unwrap();
        let from_json: serde_json::Value =
            serde_json::from_str(&document_text(&view, DocumentFormat::Json).unwrap()).unwrap();
        let from_yaml: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(from_json, from_yaml, "{yaml}");
        assert_eq!(from_json["cluster"]["phase"], "Pivoted");
        assert_eq!(from_json["cluster"]["ageSeconds"], 60);
        assert_eq!(from_json["status"]["conditions"][0]["reason"], "Pivoted");
        assert!(
            yaml.starts_with("cluster:\n  namespace: edge\n  name: store-1\n"),
            "{yaml}"
        );
    }

    #[test]
    fn ages_read_as_kubectl_shows_them() {
        assert_eq!(age(Some(59)), "59s");
        assert_eq!(age(Some(600)), "10m");
        assert_eq!(age(Some(3 * 3600)), "3h");
        assert_eq!(age(Some(5 * 86400)), "5d");
        assert_eq!(age(None), "-");
    }

    #[test]
    fn the_status_shows_conditions_and_the_agents_layers() {
        let pivoted = cluster(
            "store-1",
            json!({
                "phase": "Pivoted",
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "Pivoted",
                    "message": "the cluster's CAPI objects live in the workload cluster",
                    "lastTransitionTime": "2026-12-04T10:00:00Z",
                }],
                "layers": [{ "name": "cni", "version": "3.19.0", "state": "Ready" }],
            }),
        );
        let text = status_text(&pivoted, at("2026-12-04T10:01:00Z"));
        assert!(text.contains("\nCONDITIONS\n  Ready"), "{text}");
        assert!(
            text.contains("the cluster's CAPI objects live in the workload cluster"),
            "{text}"
        );
        assert!(
            text.contains("LAYERS (the agent's report)\n  cni"),
            "{text}"
        );
    }
}
