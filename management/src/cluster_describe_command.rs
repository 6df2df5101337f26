//! `strata cluster describe NAMESPACE/NAME`: one cluster as a tree, like `clusterctl describe
//! cluster`: the WorkloadCluster, its revision, its layers, its CAPI Cluster, control plane
//! and workers with their machines, and its conditions. It reads and changes nothing.
//!
//! Before the pivot the CAPI objects are in the cluster's objects namespace of the management
//! cluster, and are read there. After it they live in the workload cluster: the management
//! cluster holds the counts and layers the agent reports, and the site's export, whose objects
//! are shown marked as the site's words at the time it took them. The export is only shown:
//! one that is missing or unreadable is a line of the tree, never an error of the command.
//!
//! [`tree`] builds the tree from what was read, without a client; [`observe`] reads it.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{DynamicObject, ListParams};
use serde::Serialize;
use serde_json::Value;
use strata_shared::cluster::{
    ClusterPhase, LayerPhase, LayerState, WorkloadCluster, WorkloadClusterStatus,
};
use strata_shared::conditions::find;
use strata_shared::contracts::capi::{
    CLUSTER, CapiKind, KUBEADM_CONTROL_PLANE, MACHINE, MACHINE_DEPLOYMENT,
};
use strata_shared::contracts::conditions::{PIVOTED, READY};
use strata_shared::contracts::field_managers::CLI_FIELD_MANAGER;
use strata_shared::contracts::labels::{CAPI_CLUSTER_NAME_LABEL, CAPI_DEPLOYMENT_NAME_LABEL};
use strata_shared::contracts::names::ClusterLocation;
use strata_shared::kube_writer::KubeWriter;
use strata_shared::revision::{ClusterRevision, revision_name};
use strata_shared::site_export_fetch::{export_backup, export_secret_shown, fetch_export};

use crate::cluster_commands::{cluster_and_objects_namespace, parse_cluster};
pub use crate::cluster_describe_text::text;
use crate::controller::ledger;
use crate::management_client::{client_from, command_runtime};
use crate::report::{OutputFormat, print_document};
use crate::{CommandError, ExitStatus};

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// On a control-plane machine (any value), and with the `KubeadmControlPlane`'s name: set by
/// CAPI's control plane, which is how its machines are told from the workers'.
const CAPI_CONTROL_PLANE_LABEL: &str = "cluster.x-k8s.io/control-plane";
const CAPI_CONTROL_PLANE_NAME_LABEL: &str = "cluster.x-k8s.io/control-plane-name";

#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
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

/// Who says what a node shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// The management cluster: the controller's objects and observations, and CAPI's objects
    /// while they are there.
    Management,
    /// The agent's report on the WorkloadCluster: the site's words.
    Site,
    /// The site's export of its CAPI objects: the site's words, as of when it took them.
    SiteExport,
}

/// One line of the tree and the lines under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// The object's kind (`WorkloadCluster`, `ClusterRevision`, `Cluster`,
    /// `KubeadmControlPlane`, `MachineDeployment`, `Machine`), a group's (`Layers`,
    /// `ControlPlane`, `Workers`, `Machines`, `Conditions`), `Layer`, `Condition`, or `Note`
    /// (a sentence, in `message`).
    pub kind: String,
    pub name: String,
    /// What the name does not say: phase, counts, versions, provider ID.
    pub detail: Option<String>,
    /// The status of the condition that says whether it is ready: True, False or Unknown.
    pub ready: Option<String>,
    /// That condition's severity, where its writer gives one (CAPI's v1beta1 conditions).
    pub severity: Option<String>,
    pub reason: Option<String>,
    /// When `ready` last changed (RFC 3339).
    pub since: Option<String>,
    pub message: Option<String>,
    /// A machine's `spec.providerID`: the cloud's name for it, once it has one. The text
    /// shows it at the head of the message column, where its length does not widen the tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    pub source: Source,
    pub children: Vec<Node>,
}

/// The condition a node's readiness is read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Readiness {
    status: String,
    severity: Option<String>,
    reason: Option<String>,
    since: Option<String>,
    message: Option<String>,
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

impl Readiness {
    fn of_condition(condition: &Condition) -> Readiness {
        Readiness {
            status: condition.status.clone(),
            severity: None,
            reason: non_empty(&condition.reason),
            since: Some(condition.last_transition_time.0.to_string()),
            message: non_empty(&condition.message),
        }
    }

    /// The first of `types` among the object's `status.conditions`.
    fn of_object(object: &DynamicObject, types: &[&str]) -> Option<Readiness> {
        let conditions = object
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array)?;
        let text = |c: &Value, key: &str| c.get(key).and_then(Value::as_str).and_then(non_empty);
        types.iter().find_map(|wanted| {
            let found = conditions
                .iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(*wanted))?;
            Some(Readiness {
                status: text(found, "status").unwrap_or_else(|| "Unknown".into()),
                severity: text(found, "severity"),
                reason: text(found, "reason"),
                since: text(found, "lastTransitionTime"),
                message: text(found, "message"),
            })
        })
    }
}

impl Node {
    fn new(kind: &str, name: impl Into<String>, source: Source) -> Node {
        Node {
            kind: kind.to_string(),
            name: name.into(),
            detail: None,
            ready: None,
            severity: None,
            reason: None,
            since: None,
            message: None,
            provider_id: None,
            source,
            children: Vec::new(),
        }
    }

    /// A sentence of the tree.
    fn note(text: impl Into<String>, source: Source) -> Node {
        Node {
            message: Some(text.into()),
            ..Node::new("Note", "", source)
        }
    }

    fn detail(mut self, detail: impl Into<String>) -> Node {
        self.detail = Some(detail.into());
        self
    }

    fn readiness(mut self, readiness: Option<Readiness>) -> Node {
        if let Some(r) = readiness {
            self.ready = Some(r.status);
            self.severity = r.severity;
            self.reason = r.reason;
            self.since = r.since;
            self.message = r.message;
        }
        self
    }

    fn children(mut self, children: Vec<Node>) -> Node {
        self.children = children;
        self
    }
}

/// The CAPI objects of a cluster, wherever they were read.
#[derive(Debug, Clone, Default)]
pub struct CapiObjects {
    pub cluster: Option<DynamicObject>,
    pub control_planes: Vec<DynamicObject>,
    pub deployments: Vec<DynamicObject>,
    pub machines: Vec<DynamicObject>,
}

/// The site's export, read back.
#[derive(Debug, Clone)]
pub struct Exported {
    /// When the site took it (its clock, RFC 3339).
    pub taken_at: String,
    pub objects: CapiObjects,
}

/// Where the cluster's CAPI objects were found.
#[derive(Debug, Clone)]
pub enum CapiSight {
    /// In the objects namespace of the management cluster.
    Management(CapiObjects),
    /// Not in the management cluster, which granted the agent its move: in the workload
    /// cluster. The site's export, or why it cannot be shown.
    Workload(Result<Exported, String>),
    /// Not created: the cluster has no objects namespace yet, or no CAPI Cluster in it.
    NotCreated,
}

/// Everything `describe` read of one cluster.
#[derive(Debug, Clone)]
pub struct Observed {
    pub cluster: WorkloadCluster,
    /// The cluster's objects namespace, when it has one.
    pub objects_namespace: Option<String>,
    /// Whether the controller granted the agent its move (its ledger says so): from then on
    /// the counts and CAPI objects are the site's.
    pub move_granted: bool,
    /// The ClusterRevision `status.revision` names, when it was found.
    pub revision: Option<ClusterRevision>,
    pub capi: CapiSight,
}

/// The tree of an observed cluster.
pub fn tree(observed: &Observed) -> Node {
    let cluster = &observed.cluster;
    let status = cluster.status.clone().unwrap_or_default();
    let phase = status.phase.map_or("Pending", |p| p.as_str());
    let key = format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    );
    let mut children = vec![
        revision_node(observed, &status),
        layers_node(observed.revision.as_ref(), &status.layers),
        capi_cluster_node(observed, &key),
    ];
    let objects = match &observed.capi {
        CapiSight::Management(objects) => Some((objects, Source::Management)),
        CapiSight::Workload(Ok(exported)) => Some((&exported.objects, Source::SiteExport)),
        CapiSight::Workload(Err(_)) | CapiSight::NotCreated => None,
    };
    let mut machines: Vec<&DynamicObject> = objects
        .map(|(o, _)| o.machines.iter().collect())
        .unwrap_or_default();
    machines.sort_by_key(|m| m.name_any());
    let counts_source = if observed.move_granted {
        Source::Site
    } else {
        Source::Management
    };
    children.push(control_plane_node(
        objects,
        &mut machines,
        status.control_plane.as_ref().map(|c| c.summary.as_str()),
        counts_source,
    ));
    // Only then does an absent MachineDeployment mean it is still to come.
    let before_the_pivot = matches!(
        status.phase,
        None | Some(
            ClusterPhase::Pending
                | ClusterPhase::Provisioning
                | ClusterPhase::InstallingAgent
                | ClusterPhase::AgentInstalled
        )
    );
    children.push(workers_node(
        objects,
        &mut machines,
        status.workers.as_ref().map(|c| c.summary.as_str()),
        counts_source,
        before_the_pivot,
    ));
    if let (Some((_, source)), false) = (objects, machines.is_empty()) {
        children.push(
            Node::new("Machines", "", source)
                .detail("of no control plane or MachineDeployment")
                .children(machines.iter().map(|m| machine_node(m, source)).collect()),
        );
    }
    if let Some(at) = status
        .agent
        .as_ref()
        .and_then(|a| a.last_report_time.as_ref())
    {
        children.push(Node::note(
            format!("the agent last reported at {} (its clock)", at.0),
            Source::Site,
        ));
    }
    children.push(conditions_node(&status.conditions));
    Node::new("WorkloadCluster", key, Source::Management)
        .detail(phase)
        .readiness(find(&status.conditions, READY).map(Readiness::of_condition))
        .children(children)
}

fn revision_node(observed: &Observed, status: &WorkloadClusterStatus) -> Node {
    let cluster = observed.cluster.name_any();
    let Some(number) = status.revision else {
        return Node::note(
            "no revision published yet (the Valid and RevisionPublished conditions say why)",
            Source::Management,
        );
    };
    let name = revision_name(&cluster, number);
    let Some(revision) = &observed.revision else {
        let namespace = observed.objects_namespace.as_deref().unwrap_or("-");
        return Node::new("ClusterRevision", name, Source::Management)
            .detail(format!("revision {number}"))
            .children(vec![Node::note(
                format!("it is not in namespace {namespace}"),
                Source::Management,
            )]);
    };
    let desired = &revision.spec.desired;
    // In the message column: the name column stays narrow enough for the tree.
    let mut message = format!(
        "profiles {}; Kubernetes {}",
        desired.profiles.join(", "),
        desired.kubernetes_version
    );
    if let Some(applied) = status.applied_revision {
        message.push_str(&format!("; the site reports revision {applied} applied"));
    }
    let mut children = Vec::new();
    if let Some(pending) = &status.pending {
        let from = pending
            .from
            .map(|f| format!(" from revision {f}"))
            .unwrap_or_default();
        children.push(Node::note(
            format!(
                "pending: revision {}{from}: {} (`strata cluster plan` prints it in full)",
                pending.revision, pending.summary
            ),
            Source::Management,
        ));
    }
    if let Some(rollout) = &status.rollout {
        let message = rollout
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        children.push(Node::note(
            format!(
                "the site reports applying revision {}: step {}, {}{message}",
                rollout.revision, rollout.step, rollout.state
            ),
            Source::Site,
        ));
    }
    let mut node = Node::new("ClusterRevision", name, Source::Management)
        .detail(format!("revision {number}"))
        .children(children);
    node.message = Some(message);
    node
}

/// A layer as the site reports it: ready when Ready, its state as the reason.
fn reported_layer(node: Node, reported: &LayerState) -> Node {
    let mut node = node;
    node.ready = Some(
        if reported.state == LayerPhase::Ready {
            "True"
        } else {
            "False"
        }
        .to_string(),
    );
    node.reason = Some(reported.state.as_str().to_string());
    node.since = reported
        .last_transition_time
        .as_ref()
        .map(|t| t.0.to_string());
    node.message = reported.message.clone();
    node.source = Source::Site;
    node
}

fn layers_node(revision: Option<&ClusterRevision>, reported: &[LayerState]) -> Node {
    let mut children = Vec::new();
    let planned = revision
        .map(|r| r.spec.desired.layers.as_slice())
        .unwrap_or_default();
    for layer in planned {
        let node = Node::new("Layer", layer.name.clone(), Source::Management)
            .detail(format!("{} {}", layer.layer, layer.version));
        children.push(match reported.iter().find(|r| r.name == layer.name) {
            Some(state) if state.version != layer.version => {
                let mut node = reported_layer(node, state);
                let said = node
                    .message
                    .take()
                    .map(|m| format!("; {m}"))
                    .unwrap_or_default();
                node.message = Some(format!("the site reports version {}{said}", state.version));
                node
            }
            Some(state) => reported_layer(node, state),
            None => node,
        });
    }
    for state in reported
        .iter()
        .filter(|r| !planned.iter().any(|l| l.name == r.name))
    {
        let node = Node::new("Layer", state.name.clone(), Source::Site)
            .detail(format!("{}, not in the revision", state.version));
        children.push(reported_layer(node, state));
    }
    let whose_state = if reported.is_empty() {
        "no state reported yet (the agent reports it)"
    } else {
        "state as the site reports it"
    };
    let mut node = Node::new("Layers", "", Source::Management).children(children);
    match revision {
        Some(r) => {
            node.detail = Some(format!("revision {}", r.spec.number));
            node.message = Some(whose_state.to_string());
        }
        None if reported.is_empty() => node.message = Some("none known yet".to_string()),
        None => node.message = Some(whose_state.to_string()),
    }
    node
}

fn capi_cluster_node(observed: &Observed, key: &str) -> Node {
    let name = observed.cluster.name_any();
    let reaches = format!(
        "in the workload cluster since the pivot; `strata cluster kubeconfig {key}` reaches it"
    );
    match &observed.capi {
        CapiSight::Management(objects) => {
            let namespace = observed.objects_namespace.as_deref().unwrap_or("-");
            let mut notes = vec![Node::note(
                format!("in the management cluster, namespace {namespace}"),
                Source::Management,
            )];
            if observed.move_granted {
                notes.push(Node::note(
                    "the agent's move is granted: the agent holds these objects while they move between the clusters",
                    Source::Management,
                ));
            }
            object_node(&CLUSTER, objects.cluster.as_ref(), &name, Source::Management)
                .children(notes)
        }
        CapiSight::Workload(Ok(exported)) => object_node(
            &CLUSTER,
            exported.objects.cluster.as_ref(),
            &name,
            Source::SiteExport,
        )
        .children(vec![
            Node::note(reaches, Source::Management),
            Node::note(
                format!(
                    "shown from the site's export taken at {} (its clock): the site's words",
                    exported.taken_at
                ),
                Source::SiteExport,
            ),
        ]),
        CapiSight::Workload(Err(reason)) => Node::new("Cluster", name, Source::Management)
            .children(vec![
                Node::note(reaches, Source::Management),
                Node::note(
                    format!("the site's export cannot be shown: {reason}"),
                    Source::Management,
                ),
            ]),
        CapiSight::NotCreated => Node::new("Cluster", name, Source::Management).children(vec![
            Node::note(
                match &observed.objects_namespace {
                    Some(namespace) => format!(
                        "not in namespace {namespace} yet: the controller applies it once the revision is published (see ObjectsApplied)"
                    ),
                    None => "not created yet: the cluster has no objects namespace".to_string(),
                },
                Source::Management,
            ),
        ]),
    }
}

/// A CAPI object's node: its name, its phase or counts, and the condition CAPI's v1beta2
/// objects say they are ready by (`Available`; `Ready` for a machine, and for objects that
/// only have the v1beta1 one).
fn object_node(
    kind: &CapiKind,
    object: Option<&DynamicObject>,
    name: &str,
    source: Source,
) -> Node {
    let node = Node::new(kind.kind, name, source);
    let Some(object) = object else {
        return node;
    };
    let text = |pointer: &str| object.data.pointer(pointer).and_then(Value::as_str);
    let count = |pointer: &str| object.data.pointer(pointer).and_then(Value::as_i64);
    let replicas = || {
        format!(
            "{}/{} ready",
            count("/status/readyReplicas").unwrap_or(0),
            count("/spec/replicas").unwrap_or(0)
        )
    };
    let (detail, readiness) = if kind == &MACHINE {
        let mut detail = text("/status/phase").unwrap_or("no phase yet").to_string();
        if let Some(node) = text("/status/nodeRef/name").filter(|n| *n != name) {
            detail.push_str(&format!(", node {node}"));
        }
        (Some(detail), Readiness::of_object(object, &["Ready"]))
    } else if kind == &KUBEADM_CONTROL_PLANE {
        let mut detail = replicas();
        if let Some(version) = text("/spec/version") {
            detail.push_str(&format!(", {version}"));
        }
        (
            Some(detail),
            Readiness::of_object(object, &["Available", "Ready"]),
        )
    } else if kind == &MACHINE_DEPLOYMENT {
        (
            Some(replicas()),
            Readiness::of_object(object, &["Available", "Ready"]),
        )
    } else {
        (
            text("/status/phase").map(String::from),
            Readiness::of_object(object, &["Available", "Ready"]),
        )
    };
    let mut node = node.readiness(readiness);
    if kind == &MACHINE {
        node.provider_id = text("/spec/providerID").map(String::from);
    }
    match detail {
        Some(detail) => node.detail(detail),
        None => node,
    }
}

fn machine_node(machine: &DynamicObject, source: Source) -> Node {
    object_node(&MACHINE, Some(machine), &machine.name_any(), source)
}

fn label<'a>(object: &'a DynamicObject, key: &str) -> Option<&'a str> {
    object
        .metadata
        .labels
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Takes the machines `belongs` picks out of `machines`, as nodes.
fn take_machines(
    machines: &mut Vec<&DynamicObject>,
    source: Source,
    belongs: impl Fn(&DynamicObject) -> bool,
) -> Vec<Node> {
    let (taken, left): (Vec<&DynamicObject>, Vec<&DynamicObject>) =
        machines.iter().partition(|m| belongs(m));
    *machines = left;
    taken.iter().map(|m| machine_node(m, source)).collect()
}

/// `3/3 ready`, and whose count it is.
fn counts_detail(summary: Option<&str>, source: Source) -> String {
    match (summary, source) {
        (None, _) => "no count yet".to_string(),
        (Some(s), Source::Site) => format!("{s} ready, as the site reports"),
        (Some(s), _) => format!("{s} ready"),
    }
}

fn control_plane_node(
    objects: Option<(&CapiObjects, Source)>,
    machines: &mut Vec<&DynamicObject>,
    summary: Option<&str>,
    counts_source: Source,
) -> Node {
    let mut children = Vec::new();
    if let Some((objects, source)) = objects {
        let mut control_planes: Vec<&DynamicObject> = objects.control_planes.iter().collect();
        control_planes.sort_by_key(|c| c.name_any());
        let only_one = control_planes.len() == 1;
        for control_plane in control_planes {
            let name = control_plane.name_any();
            let owned = take_machines(machines, source, |m| {
                match label(m, CAPI_CONTROL_PLANE_NAME_LABEL) {
                    Some(owner) => owner == name,
                    // Older control planes label their machines only as control-plane ones.
                    None => only_one && label(m, CAPI_CONTROL_PLANE_LABEL).is_some(),
                }
            });
            children.push(
                object_node(&KUBEADM_CONTROL_PLANE, Some(control_plane), &name, source)
                    .children(owned),
            );
        }
        if children.is_empty() && source == Source::Management {
            children.push(Node::note(
                "no KubeadmControlPlane in the management cluster",
                Source::Management,
            ));
        }
    }
    Node::new("ControlPlane", "", counts_source)
        .detail(counts_detail(summary, counts_source))
        .children(children)
}

fn workers_node(
    objects: Option<(&CapiObjects, Source)>,
    machines: &mut Vec<&DynamicObject>,
    summary: Option<&str>,
    counts_source: Source,
    before_the_pivot: bool,
) -> Node {
    let mut children = Vec::new();
    if let Some((objects, source)) = objects {
        let mut deployments: Vec<&DynamicObject> = objects.deployments.iter().collect();
        deployments.sort_by_key(|d| d.name_any());
        for deployment in deployments {
            let name = deployment.name_any();
            let owned = take_machines(machines, source, |m| {
                label(m, CAPI_DEPLOYMENT_NAME_LABEL) == Some(name.as_str())
            });
            children.push(
                object_node(&MACHINE_DEPLOYMENT, Some(deployment), &name, source).children(owned),
            );
        }
        if children.is_empty() && source == Source::Management {
            children.push(Node::note(
                if before_the_pivot {
                    "no MachineDeployment in the management cluster: the agent creates the worker pools after the pivot"
                } else {
                    "no MachineDeployment in the management cluster"
                },
                Source::Management,
            ));
        }
    }
    Node::new("Workers", "", counts_source)
        .detail(counts_detail(summary, counts_source))
        .children(children)
}

fn conditions_node(conditions: &[Condition]) -> Node {
    let children = conditions
        .iter()
        .map(|condition| {
            // The agent writes Pivoted; the controller every other one.
            let node = if condition.type_ == PIVOTED {
                Node::new("Condition", condition.type_.clone(), Source::Site)
                    .detail("reported by the site")
            } else {
                Node::new("Condition", condition.type_.clone(), Source::Management)
            };
            node.readiness(Some(Readiness::of_condition(condition)))
        })
        .collect();
    Node::new("Conditions", "", Source::Management).children(children)
}

pub fn describe(args: &DescribeArgs) -> Result<ExitStatus, CommandError> {
    command_runtime()?.block_on(describe_async(args))
}

async fn describe_async(args: &DescribeArgs) -> Result<ExitStatus, CommandError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (namespace, name) = parse_cluster(&args.cluster)?;
    let client = client_from(args.kubeconfig.as_deref(), "--kubeconfig").await?;
    let writer = KubeWriter::new(client, CLI_FIELD_MANAGER, CALL_TIMEOUT);
    let observed = observe(&writer, &namespace, &name).await?;
    let root = tree(&observed);
    match args.output.document() {
        Some(format) => print_document(&root, format)?,
        None => print!("{}", text(&root, Timestamp::now())),
    }
    Ok(ExitStatus::Success)
}

/// Reads the cluster, its objects namespace's ledger, its revision and its CAPI objects (or,
/// once the agent holds them and they left, the site's export). Each read of the management
/// cluster that fails is an error naming what it read; the export is only shown, so its
/// failure is returned as a reason.
pub async fn observe(
    writer: &KubeWriter,
    namespace: &str,
    name: &str,
) -> Result<Observed, CommandError> {
    let shown = format!("WorkloadCluster {namespace}/{name}");
    let (cluster, location, objects_namespace) =
        cluster_and_objects_namespace(writer, namespace, name).await?;
    let objects = location.objects_namespace.clone();
    let Some(objects_namespace) = objects_namespace else {
        return Ok(Observed {
            cluster,
            objects_namespace: None,
            move_granted: false,
            revision: None,
            capi: CapiSight::NotCreated,
        });
    };
    let move_granted = ledger::of(Some(&objects_namespace)).agent_holds_the_objects();
    let revision = match cluster.status.as_ref().and_then(|s| s.revision) {
        Some(number) => writer
            .namespaced::<ClusterRevision>(&objects)
            .get(&revision_name(name, number))
            .await
            .map_err(|e| failed(format!("{shown}: {e}")))?,
        None => None,
    };
    let capi_cluster = writer
        .dynamic(&CLUSTER.api_resource(), Some(&objects))
        .get(name)
        .await
        .map_err(|e| failed(format!("{shown}: {e}")))?;
    let capi = match capi_cluster {
        Some(capi_cluster) => {
            let of_cluster =
                ListParams::default().labels(&format!("{CAPI_CLUSTER_NAME_LABEL}={name}"));
            let list = |kind: &CapiKind| writer.dynamic(&kind.api_resource(), Some(&objects));
            let listed = |e| failed(format!("{shown}: {e}"));
            CapiSight::Management(CapiObjects {
                cluster: Some(capi_cluster),
                control_planes: list(&KUBEADM_CONTROL_PLANE)
                    .list(&of_cluster)
                    .await
                    .map_err(listed)?,
                deployments: list(&MACHINE_DEPLOYMENT)
                    .list(&of_cluster)
                    .await
                    .map_err(listed)?,
                machines: list(&MACHINE).list(&of_cluster).await.map_err(listed)?,
            })
        }
        None if move_granted => CapiSight::Workload(exported(writer, &location).await),
        None => CapiSight::NotCreated,
    };
    Ok(Observed {
        cluster,
        objects_namespace: Some(objects),
        move_granted,
        revision,
        capi,
    })
}

/// The CAPI objects of the site's export, read and checked as a restore reads it (its parts'
/// digest, its files', that it is this cluster's); or why not.
async fn exported(writer: &KubeWriter, location: &ClusterLocation) -> Result<Exported, String> {
    let shown = export_secret_shown(location);
    let bytes = fetch_export(writer, location)
        .await
        .map_err(|e| e.to_string())?;
    let backup = export_backup(&bytes, location, &shown).map_err(|e| e.to_string())?;
    Ok(Exported {
        taken_at: backup.manifest.taken_at.clone(),
        objects: capi_objects_of(
            backup
                .objects
                .into_iter()
                .map(|(_, object)| object.json)
                .collect(),
            &location.cluster,
        ),
    })
}

/// The cluster's CAPI objects among `objects` (whole objects as JSON, the site's words):
/// those of the kinds describe shows that read as objects; the rest is left out.
fn capi_objects_of(objects: Vec<Value>, cluster: &str) -> CapiObjects {
    let mut found = CapiObjects::default();
    for json in objects {
        let api_version = json
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = json.get("kind").and_then(Value::as_str).unwrap_or_default();
        let is = |capi: &CapiKind| capi.is(api_version, kind);
        let wanted = [
            &CLUSTER,
            &KUBEADM_CONTROL_PLANE,
            &MACHINE_DEPLOYMENT,
            &MACHINE,
        ];
        let Some(which) = wanted.into_iter().find(|k| is(k)) else {
            continue;
        };
        let Ok(object) = serde_json::from_value::<DynamicObject>(json) else {
            continue;
        };
        if which == &CLUSTER {
            if object.name_any() == cluster {
                found.cluster = Some(object);
            }
        } else if which == &KUBEADM_CONTROL_PLANE {
            found.control_planes.push(object);
        } else if which == &MACHINE_DEPLOYMENT {
            found.deployments.push(object);
        } else {
            found.machines.push(object);
        }
    }
    found
}

#[cfg(test)]
#[path = "cluster_describe_command_tests.rs"]
mod cluster_describe_command_tests;
