//! Every Cluster API object Strata creates (the samples in `tests/fixtures/capi/`) is
//! accepted by the real upstream CRD schemas with nothing pruned, and the minimal CRDs
//! (installed when the upstream folder is absent) accept an object of every kind.
//!
//! kube-apiserver 1.20 prunes unknown fields instead of rejecting them, so each object is
//! server-side applied, read back, and compared with what was sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::{Value, json};
use strata_e2e::capi_crds::{self, CrdSet, STRATA_KINDS, pruned_fields};
use strata_e2e::control_plane::{ControlPlane, ControlPlaneOptions};

const NAMESPACE: &str = "strata-demo";
const FIELD_MANAGER: &str = "strata-e2e-test";

/// The kinds Strata creates, each of which must have at least one sample.
const CREATED_KINDS: &[&str] = &[
    "Cluster",
    "KubeadmControlPlane",
    "MachineDeployment",
    "MachineHealthCheck",
    "KubeadmConfigTemplate",
    "VSphereCluster",
    "VSphereMachineTemplate",
    "VSphereClusterIdentity",
    "AWSCluster",
    "AWSMachineTemplate",
    "AWSClusterStaticIdentity",
    "AzureCluster",
    "AzureMachineTemplate",
    "AzureClusterIdentity",
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/capi")
}

/// One sample object and the file it came from.
struct Fixture {
    file: String,
    object: Value,
}

impl Fixture {
    fn str_at(&self, pointer: &str) -> &str {
        self.object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{}: an object has no {pointer}", self.file))
    }

    fn kind(&self) -> &str {
        self.str_at("/kind")
    }

    fn name(&self) -> &str {
        self.str_at("/metadata/name")
    }

    fn gvk(&self) -> GroupVersionKind {
        let (group, version) = self
            .str_at("/apiVersion")
            .split_once('/')
            .unwrap_or_else(|| panic!("{}: {} has a core apiVersion", self.file, self.name()));
        GroupVersionKind::gvk(group, version, self.kind())
    }

    fn describe(&self) -> String {
        format!("{}: {} {}", self.file, self.kind(), self.name())
    }
}

/// Every document of every `*.yaml` file in the fixtures folder, in file order.
fn load_fixtures() -> Vec<Fixture> {
    let dir = fixtures_dir();
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut fixtures = Vec::new();
    for path in files {
        let text = fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let object = Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}"));
            if object.is_null() {
                continue;
            }
            fixtures.push(Fixture {
                file: file.clone(),
                object,
            });
        }
    }
    assert!(!fixtures.is_empty(), "no samples in {}", dir.display());
    fixtures
}

/// What the server must keep of a sent object: everything but the metadata the server
/// owns (only name, namespace, labels and annotations of `metadata` are compared).
fn comparable(sent: &Value) -> Value {
    let mut view = sent.clone();
    if let Some(metadata) = view.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.retain(|key, _| {
            matches!(
                key.as_str(),
                "name" | "namespace" | "labels" | "annotations"
            )
        });
    }
    view
}

/// Resolves kinds through discovery, waiting for freshly established CRDs to be served.
async fn resolve_all(
    client: &Client,
    gvks: &[GroupVersionKind],
) -> BTreeMap<(String, String), (ApiResource, ApiCapabilities)> {
    let groups: BTreeSet<&str> = gvks.iter().map(|gvk| gvk.group.as_str()).collect();
    let groups: Vec<&str> = groups.into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let discovery = Discovery::new(client.clone()).filter(&groups).run().await;
        let mut missing = Vec::new();
        let mut resolved = BTreeMap::new();
        match discovery {
            Ok(discovery) => {
                for gvk in gvks {
                    match discovery.resolve_gvk(gvk) {
                        Some(found) => {
                            resolved.insert((gvk.api_version(), gvk.kind.clone()), found);
                        }
                        None => missing.push(format!("{}/{}", gvk.api_version(), gvk.kind)),
                    }
                }
            }
            Err(e) => missing.push(format!("discovery failed: {e}")),
        }
        if missing.is_empty() {
            return resolved;
        }
        assert!(
            Instant::now() < deadline,
            "not served after 30s: {}",
            missing.join(", ")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn api_for(
    client: &Client,
    resource: &ApiResource,
    caps: &ApiCapabilities,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match caps.scope {
        Scope::Cluster => Api::all_with(client.clone(), resource),
        Scope::Namespaced => {
            Api::namespaced_with(client.clone(), namespace.unwrap_or(NAMESPACE), resource)
        }
    }
}

/// Server-side applies `object`, reads it back and returns the fields the server dropped,
/// or the apiserver's error.
async fn apply_and_compare(
    client: &Client,
    resource: &ApiResource,
    caps: &ApiCapabilities,
    object: &Value,
) -> Result<Vec<String>, kube::Error> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap();
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    let api = api_for(client, resource, caps, namespace);
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Apply(object),
    )
    .await?;
    let read_back = serde_json::to_value(api.get(name).await?).unwrap();
    Ok(pruned_fields(&comparable(object), &read_back))
}

async fn create_namespace(client: &Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(json!({ "metadata": { "name": NAMESPACE } })).unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
}

/// Applies every sample, collecting every refusal and every pruned field.
async fn apply_fixtures(client: &Client, fixtures: &[Fixture]) -> Vec<String> {
    let gvks: Vec<GroupVersionKind> = fixtures.iter().map(Fixture::gvk).collect();
    let resolved = resolve_all(client, &gvks).await;
    let mut failures = Vec::new();
    for fixture in fixtures {
        let gvk = fixture.gvk();
        let (resource, caps) = &resolved[&(gvk.api_version(), gvk.kind.clone())];
        let namespaced = fixture.object.pointer("/metadata/namespace").is_some();
        if namespaced != (caps.scope == Scope::Namespaced) {
            failures.push(format!(
                "{}: the kind is {:?}-scoped but the sample {} a namespace",
                fixture.describe(),
                caps.scope,
                if namespaced { "has" } else { "has no" }
            ));
            continue;
        }
        match apply_and_compare(client, resource, caps, &fixture.object).await {
            Ok(pruned) if pruned.is_empty() => {}
            Ok(pruned) => failures.push(format!(
                "{}: pruned {}",
                fixture.describe(),
                pruned.join(", ")
            )),
            Err(e) => failures.push(format!("{}: refused: {e}", fixture.describe())),
        }
    }
    failures
}

fn find<'a>(fixtures: &'a [Fixture], file: &str, kind: &str) -> &'a Fixture {
    fixtures
        .iter()
        .find(|f| f.file == file && f.kind() == kind)
        .unwrap_or_else(|| panic!("no {kind} in {file}"))
}

#[tokio::test]
async fn strata_objects_fit_the_upstream_schemas_without_pruning() {
    let started = Instant::now();
    let fixtures = load_fixtures();

    // Every kind Strata creates has a sample, at the version Strata uses for it.
    let strata_versions: BTreeMap<&str, String> = STRATA_KINDS
        .iter()
        .map(|(group, version, kind, _)| (*kind, format!("{group}/{version}")))
        .collect();
    for kind in CREATED_KINDS {
        assert!(
            fixtures.iter().any(|f| f.kind() == *kind),
            "no sample of {kind} in {}",
            fixtures_dir().display()
        );
    }
    for fixture in &fixtures {
        let expected = strata_versions
            .get(fixture.kind())
            .unwrap_or_else(|| panic!("{}: the kind is not in STRATA_KINDS", fixture.describe()));
        assert_eq!(
            fixture.str_at("/apiVersion"),
            expected,
            "{}: not the storage version",
            fixture.describe()
        );
    }

    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("capi")
    })
    .await
    .expect("the control plane starts");
    let client = cp.client();
    eprintln!("control plane ready after {:?}", started.elapsed());

    let set = capi_crds::install(&client)
        .await
        .expect("the upstream CRDs install");
    assert!(
        matches!(set, CrdSet::Upstream(_)),
        "expected the upstream CRDs, got {set:?}"
    );
    eprintln!("upstream CRDs established after {:?}", started.elapsed());

    // The minimal CRDs (used when the upstream folder is absent) declare the same plural
    // and scope as upstream for every kind.
    let all_kinds: Vec<GroupVersionKind> = STRATA_KINDS
        .iter()
        .map(|(group, version, kind, _)| GroupVersionKind::gvk(group, version, kind))
        .collect();
    let resolved = resolve_all(&client, &all_kinds).await;
    for crd in capi_crds::minimal() {
        let group = crd["spec"]["group"].as_str().unwrap();
        let version = crd["spec"]["versions"][0]["name"].as_str().unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        let (resource, caps) = &resolved[&(format!("{group}/{version}"), kind.to_string())];
        assert_eq!(
            crd["spec"]["names"]["plural"],
            resource.plural.as_str(),
            "{kind}: plural"
        );
        let scope = match caps.scope {
            Scope::Cluster => "Cluster",
            Scope::Namespaced => "Namespaced",
        };
        assert_eq!(
            crd["spec"]["scope"], scope,
            "{kind}: the minimal CRD's scope differs from upstream"
        );
    }

    create_namespace(&client).await;

    let failures = apply_fixtures(&client, &fixtures).await;
    assert!(
        failures.is_empty(),
        "{} of {} samples do not fit the upstream schemas:\n  {}",
        failures.len(),
        fixtures.len(),
        failures.join("\n  ")
    );
    eprintln!(
        "{} samples applied and read back unpruned after {:?}",
        fixtures.len(),
        started.elapsed()
    );

    // The check catches a misspelled field, and fields put where v1beta1 had them. (For
    // these kinds 1.20 prunes silently; for some others, e.g. AWSCluster and the identities,
    // server-side apply refuses unknown fields with "field not declared in schema". Either
    // way a sample with a wrong field fails above.)
    let mut misspelled = find(&fixtures, "vsphere.yaml", "Cluster").object.clone();
    misspelled["metadata"]["name"] = json!("typo-cluster");
    misspelled["spec"]["clusterNetwork"]["podz"] = json!({ "cidrBlocks": ["192.168.0.0/16"] });
    let mut misplaced = find(&fixtures, "vsphere.yaml", "KubeadmControlPlane")
        .object
        .clone();
    misplaced["metadata"]["name"] = json!("typo-control-plane");
    let configuration = &mut misplaced["spec"]["kubeadmConfigSpec"]["clusterConfiguration"];
    configuration["networking"] = json!({ "podSubnet": "192.168.0.0/16" });
    configuration["apiServer"]["timeoutForControlPlane"] = json!("20m");
    misplaced["spec"]["kubeadmConfigSpec"]["files"][0]["contnet"] = json!("x");
    for (object, expected) in [
        (misspelled, vec!["spec.clusterNetwork.podz"]),
        (
            misplaced,
            vec![
                "spec.kubeadmConfigSpec.clusterConfiguration.apiServer.timeoutForControlPlane",
                "spec.kubeadmConfigSpec.clusterConfiguration.networking",
                "spec.kubeadmConfigSpec.files[0].contnet",
            ],
        ),
    ] {
        let typo = Fixture {
            file: "a deliberate mistake".into(),
            object,
        };
        let gvk = typo.gvk();
        let (resource, caps) = &resolved[&(gvk.api_version(), gvk.kind.clone())];
        let mut pruned = apply_and_compare(&client, resource, caps, &typo.object)
            .await
            .unwrap_or_else(|e| panic!("{} was refused instead of pruned: {e}", typo.describe()));
        pruned.sort();
        assert_eq!(
            pruned,
            expected,
            "{}: the check missed a wrong field",
            typo.describe()
        );
    }
    eprintln!("done after {:?}", started.elapsed());
}

#[tokio::test]
async fn minimal_crds_accept_every_strata_kind() {
    let started = Instant::now();
    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("capi-minimal")
    })
    .await
    .expect("the control plane starts");
    let client = cp.client();

    let set = capi_crds::install_from(&client, Path::new("/nonexistent"))
        .await
        .expect("the minimal CRDs install");
    assert_eq!(
        set,
        CrdSet::Minimal {
            looked_in: PathBuf::from("/nonexistent")
        }
    );
    create_namespace(&client).await;

    let gvks: Vec<GroupVersionKind> = STRATA_KINDS
        .iter()
        .map(|(group, version, kind, _)| GroupVersionKind::gvk(group, version, kind))
        .collect();
    let resolved = resolve_all(&client, &gvks).await;
    for (group, version, kind, plural) in STRATA_KINDS {
        let (resource, caps) = &resolved[&(format!("{group}/{version}"), kind.to_string())];
        assert_eq!(resource.plural, *plural, "{kind}");
        let mut metadata = json!({ "name": format!("sample-{}", kind.to_lowercase()) });
        if caps.scope == Scope::Namespaced {
            metadata["namespace"] = json!(NAMESPACE);
        }
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": format!("{group}/{version}"),
            "kind": kind,
            "metadata": metadata,
            "spec": { "anything": { "goes": ["here"] } },
        }))
        .unwrap();
        let api = api_for(&client, resource, caps, None);
        let created = api
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("{kind} was refused by the minimal CRD: {e}"));
        assert_eq!(
            created.data["spec"]["anything"]["goes"][0], "here",
            "{kind}: the open schema pruned spec"
        );
    }

    // The samples fit the minimal CRDs too (their schemas are open, so nothing is pruned).
    let failures = apply_fixtures(&client, &load_fixtures()).await;
    assert!(
        failures.is_empty(),
        "samples refused by the minimal CRDs:\n  {}",
        failures.join("\n  ")
    );
    eprintln!("minimal CRDs checked after {:?}", started.elapsed());
}
