//! Everything Strata's Cluster API builders (`strata_shared::capi`) produce, for every
//! cloud, is accepted by the real upstream CRD schemas (and the sim cloud's CRDs) with
//! nothing pruned: each object is server-side applied, read back and compared with what
//! was sent, because kube-apiserver 1.20 drops unknown fields silently. A second apply of
//! the same build must change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope, pinned_kind};
use kube::{Api, Client};
use serde_json::{Value, json};
use strata_e2e::capi_crds::{self, CrdSet, pruned_fields};
use strata_e2e::cloud_sim::sim_crds;
use strata_e2e::control_plane::{ControlPlane, ControlPlaneOptions};
use strata_shared::capi::{
    BuildInput, IdentityInput, control_plane_objects, identity_objects, worker_pool_objects,
};
use strata_shared::cluster::ClusterCloud;
use strata_shared::contracts::labels::OBJECTS_NAMESPACE_LABEL;
use strata_shared::revision::DesiredState;

const FIELD_MANAGER: &str = "strata-e2e-capi-build";
const CLOUDS: [ClusterCloud; 4] = [
    ClusterCloud::Vsphere,
    ClusterCloud::Aws,
    ClusterCloud::Azure,
    ClusterCloud::Sim,
];

fn provider_namespace(cloud: ClusterCloud) -> &'static str {
    match cloud {
        ClusterCloud::Vsphere => "capv-system",
        ClusterCloud::Aws => "capa-system",
        // CAPZ reads its identity's Secret from the cluster's namespace.
        ClusterCloud::Azure => "capz-system",
        ClusterCloud::Sim => "sim-system",
    }
}

/// A revision that sets every optional field the builders can write, so that each is
/// checked against the schema.
fn desired(cloud: ClusterCloud) -> DesiredState {
    let (annotations, control_plane, general) = match cloud {
        ClusterCloud::Vsphere => (
            json!({ "imageId": "/dc-east/vm/templates/ubuntu-1804-kube-v1.20.2" }),
            json!({ "cpus": 4, "memoryMib": 8192, "diskGib": 80 }),
            json!({ "cpus": 8, "memoryMib": 16384, "diskGib": 100 }),
        ),
        ClusterCloud::Aws => (
            json!({ "imageId": "ami-0affd4508a5d2481b" }),
            json!({ "instanceType": "m5.xlarge", "diskGib": 100 }),
            json!({ "instanceType": "m5.2xlarge" }),
        ),
        ClusterCloud::Azure => (
            json!({ "imagePublisher": "OpenLogic", "imageOffer": "CentOS", "imageSKU": "7_7", "imageVersion": "7.7.2020062400" }),
            json!({ "vmSize": "Standard_D4s_v3", "diskGib": 256 }),
            json!({ "vmSize": "Standard_D8s_v3" }),
        ),
        ClusterCloud::Sim => (
            json!({ "osName": "ubuntu" }),
            json!({ "cpus": 2, "memoryMib": 4096 }),
            json!({ "cpus": 4, "memoryMib": 8192 }),
        ),
    };
    let mut desired = json!({
        "cloudType": cloud,
        "profiles": [format!("{cloud}-infra:1.2.0"), "observability:0.4.1"],
        "kubernetesVersion": "v1.20.2",
        "os": { "pack": format!("os-{cloud}"), "version": "20.04", "annotations": annotations },
        "kubeadm": {
            "apiServerExtraArgs": { "profiling": "false", "audit-log-maxage": "30" },
            "controllerManagerExtraArgs": { "profiling": "false" },
            "schedulerExtraArgs": { "profiling": "false" },
            "kubeletExtraArgs": { "read-only-port": "0" },
        },
        "layers": [],
        "nodePools": {
            "controlPlane": {
                "count": 3,
                "machine": control_plane,
                "healthCheck": { "unhealthyTimeoutSeconds": 120, "nodeStartupTimeoutSeconds": 900, "maxUnhealthy": 1 },
                "remediation": { "maxRetry": 5, "retryPeriodSeconds": 60, "minHealthyPeriodSeconds": 1800 },
            },
            "workers": [
                {
                    "name": "general",
                    "count": 3,
                    "machine": general,
                    "rollout": { "maxSurge": "25%", "maxUnavailable": 1 },
                },
                {
                    "name": "gpu",
                    "count": 1,
                    "machine": general,
                    "healthCheck": { "maxUnhealthy": "100%" },
                    "rollout": { "maxSurge": 0, "maxUnavailable": "50%" },
                },
            ],
        },
        "certificatesExpiryDays": 30,
        "network": {
            "podCidrs": ["192.168.0.0/16"],
            "serviceCidrs": ["10.96.0.0/12"],
            "serviceDomain": "cluster.local",
        },
    });
    let account = |settings: Value| {
        let mut account = json!({ "name": format!("{cloud}-prod") });
        if let (Some(account), Some(settings)) = (account.as_object_mut(), settings.as_object()) {
            account.extend(settings.clone());
        }
        account
    };
    match cloud {
        ClusterCloud::Vsphere => {
            desired["vsphere"] = json!({
                "datacenter": "dc-east",
                "datastore": "vsanDatastore",
                "network": "/dc-east/network/VM Network",
                "resourcePool": "/dc-east/host/cluster-a/Resources/strata",
                "folder": "/dc-east/vm/strata",
                "storagePolicy": "vSAN Default Storage Policy",
                "controlPlaneEndpoint": "10.10.0.50",
            });
            desired["account"] = account(json!({ "vsphere": {
                "server": "vcenter.example.com",
                "thumbprint": "5D:01:06:63:55:9D:DF:FE:38:81:6E:2C:FA:71:BC:BC:A2:1D:EA:DE",
            }}));
        }
        ClusterCloud::Aws => {
            desired["aws"] = json!({
                "region": "us-east-1",
                "sshKeyName": "strata-demo",
                "vpcId": "vpc-0a1b2c3d4e5f60718",
                "subnets": [
                    { "id": "subnet-0123456789abcdef0", "availabilityZone": "us-east-1a", "isPublic": true },
                    { "id": "subnet-0fedcba9876543210", "availabilityZone": "us-east-1a", "isPublic": false },
                ],
            });
            desired["account"] = account(json!({}));
        }
        ClusterCloud::Azure => {
            desired["azure"] = json!({
                "location": "eastus",
                "resourceGroup": "strata-demo-azure",
                "subscriptionId": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                "sshPublicKey": "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUhxOWQxVnQweTNiMGswUDJvM3Y1WWtxM1ZiMWI5bjRsRTZtWDJKUW03Y1Egc3RyYXRhQGV4YW1wbGUuY29t",
            });
            desired["account"] = account(json!({ "azure": {
                "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "clientId": "6f1a2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b",
            }}));
        }
        ClusterCloud::Sim => {}
    }
    serde_json::from_value(desired).expect("the test revision deserializes")
}

fn secret_data(cloud: ClusterCloud) -> BTreeMap<String, String> {
    let pairs: &[(&str, &str)] = match cloud {
        ClusterCloud::Vsphere => &[("username", "strata@vsphere.local"), ("password", "pw")],
        ClusterCloud::Aws => &[
            ("AccessKeyID", "AKIAIOSFODNN7EXAMPLE"),
            ("SecretAccessKey", "secret"),
            ("SessionToken", "token"),
        ],
        ClusterCloud::Azure => &[("clientSecret", "secret")],
        ClusterCloud::Sim => &[],
    };
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every object the controller and the agent would apply for one cluster on `cloud`, in
/// its own namespace `strata-<cloud>`.
fn build(cloud: ClusterCloud) -> Vec<Value> {
    let namespace = format!("strata-{cloud}");
    let cluster = format!("demo-{cloud}");
    let desired = desired(cloud);
    let input = BuildInput {
        cluster_name: &cluster,
        namespace: &namespace,
        revision: 1,
        desired: &desired,
    };
    let mut objects = Vec::new();
    if let Some(account) = &desired.account {
        let identities = identity_objects(&IdentityInput {
            namespace: &namespace,
            account,
            cloud,
            secret_data: &secret_data(cloud),
            provider_namespace: provider_namespace(cloud),
        });
        objects.extend(identities.unwrap_or_else(|e| panic!("{cloud}: identity: {e}")));
    }
    objects.extend(control_plane_objects(&input).unwrap_or_else(|e| panic!("{cloud}: {e}")));
    objects.extend(worker_pool_objects(&input).unwrap_or_else(|e| panic!("{cloud}: {e}")));
    objects
}

fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn describe(cloud: ClusterCloud, object: &Value) -> String {
    format!(
        "{cloud}: {} {}",
        str_at(object, "/kind"),
        str_at(object, "/metadata/name")
    )
}

fn gvk(object: &Value) -> GroupVersionKind {
    let api_version = str_at(object, "/apiVersion");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, str_at(object, "/kind"))
}

/// Resolves kinds through discovery, waiting for freshly established CRDs to be served.
#[derive(Default)]
struct Kinds(HashMap<(String, String), (ApiResource, ApiCapabilities)>);

impl Kinds {
    async fn resolve(
        &mut self,
        client: &Client,
        gvk: &GroupVersionKind,
    ) -> &(ApiResource, ApiCapabilities) {
        let key = (gvk.api_version(), gvk.kind.clone());
        if !self.0.contains_key(&key) {
            let deadline = Instant::now() + Duration::from_secs(30);
            let found = loop {
                match pinned_kind(client, gvk).await {
                    Ok(found) => break found,
                    Err(e) if Instant::now() < deadline => {
                        tracing::debug!("{gvk:?} not served yet: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => panic!(
                        "{}/{} is not served after 30s: {e}",
                        gvk.api_version(),
                        gvk.kind
                    ),
                }
            };
            self.0.insert(key.clone(), found);
        }
        &self.0[&key]
    }
}

fn api(
    client: &Client,
    resource: &ApiResource,
    caps: &ApiCapabilities,
    object: &Value,
) -> Api<DynamicObject> {
    match caps.scope {
        Scope::Cluster => Api::all_with(client.clone(), resource),
        Scope::Namespaced => Api::namespaced_with(
            client.clone(),
            str_at(object, "/metadata/namespace"),
            resource,
        ),
    }
}

/// Applies one object and returns its resourceVersion after the apply and the fields the
/// server dropped, or why it could not be applied.
async fn apply_and_compare(
    client: &Client,
    kinds: &mut Kinds,
    object: &Value,
) -> Result<(String, Vec<String>), String> {
    let (resource, caps) = kinds.resolve(client, &gvk(object)).await;
    let namespaced = object.pointer("/metadata/namespace").is_some();
    if namespaced != (caps.scope == Scope::Namespaced) {
        return Err(format!(
            "the kind is {:?}-scoped but the object {} a namespace",
            caps.scope,
            if namespaced { "has" } else { "has no" }
        ));
    }
    let api = api(client, resource, caps, object);
    let name = str_at(object, "/metadata/name");
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Apply(object),
    )
    .await
    .map_err(|e| format!("refused: {e}"))?;
    let read_back = api
        .get(name)
        .await
        .map_err(|e| format!("cannot be read back: {e}"))?;
    let version = read_back
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    Ok((
        version,
        pruned_fields(object, &serde_json::to_value(read_back).unwrap()),
    ))
}

async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    // The vSphere identity admits cluster namespaces by this label.
    let namespace = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { OBJECTS_NAMESPACE_LABEL: name } },
    }))
    .unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("cannot create namespace {name}: {e}"));
}

#[tokio::test]
async fn built_objects_fit_the_upstream_schemas_without_pruning() {
    let started = Instant::now();
    // Build first: a builder error fails the test before a control plane is started.
    let built: Vec<(ClusterCloud, Vec<Value>)> =
        CLOUDS.iter().map(|&cloud| (cloud, build(cloud))).collect();

    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("capi-build")
    })
    .await
    .expect("the control plane starts");
    let client = cp.client();
    let set = capi_crds::install(&client)
        .await
        .expect("the upstream CRDs install");
    assert!(
        matches!(set, CrdSet::Upstream(_)),
        "expected the upstream CRDs, got {set:?}"
    );
    sim_crds::install(&client)
        .await
        .expect("the sim CRDs install");
    for cloud in CLOUDS {
        create_namespace(&client, &format!("strata-{cloud}")).await;
    }
    for namespace in ["capv-system", "capa-system"] {
        create_namespace(&client, namespace).await;
    }
    eprintln!(
        "control plane, CRDs and namespaces ready after {:?}",
        started.elapsed()
    );

    let mut kinds = Kinds::default();
    let mut failures = Vec::new();
    let mut versions = HashMap::new();
    let mut count = 0;
    for (cloud, objects) in &built {
        for object in objects {
            count += 1;
            match apply_and_compare(&client, &mut kinds, object).await {
                Ok((version, pruned)) => {
                    if !pruned.is_empty() {
                        failures.push(format!(
                            "{}: pruned {}",
                            describe(*cloud, object),
                            pruned.join(", ")
                        ));
                    }
                    versions.insert(describe(*cloud, object), version);
                }
                Err(e) => failures.push(format!("{}: {e}", describe(*cloud, object))),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} built objects do not fit their schemas:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    let kinds_seen: std::collections::BTreeSet<&str> = built
        .iter()
        .flat_map(|(_, o)| o.iter().map(|o| str_at(o, "/kind")))
        .collect();
    eprintln!(
        "{count} objects of {} kinds applied and read back unpruned after {:?}: {}",
        kinds_seen.len(),
        started.elapsed(),
        kinds_seen.into_iter().collect::<Vec<_>>().join(", ")
    );

    // Building again gives the same objects, and applying them again changes nothing.
    for cloud in CLOUDS {
        for object in build(cloud) {
            let (version, _) = apply_and_compare(&client, &mut kinds, &object)
                .await
                .unwrap();
            assert_eq!(
                Some(&version),
                versions.get(&describe(cloud, &object)),
                "{}: a second apply of the same build changed the object (or the build named a new one)",
                describe(cloud, &object)
            );
        }
    }
    eprintln!("re-applied unchanged after {:?}", started.elapsed());

    // A field the schema lacks does not go unnoticed (shown here for the sim cloud's CRDs,
    // which `capi_crds.rs` does not exercise): 1.20 prunes it, or for some kinds its typed
    // server-side apply refuses it; either way the loop above reports the object.
    let mut typo = build(ClusterCloud::Sim)
        .into_iter()
        .find(|o| str_at(o, "/kind") == "SimMachineTemplate")
        .unwrap();
    typo["metadata"]["name"] = json!("typo-template");
    typo["spec"]["template"]["spec"]["memoryMib"] = json!(4096);
    match apply_and_compare(&client, &mut kinds, &typo).await {
        Ok((_, pruned)) => assert_eq!(pruned, ["spec.template.spec.memoryMib"]),
        Err(e) => assert!(e.contains("memoryMib: field not declared in schema"), "{e}"),
    }
}
