#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use super::*;
use crate::cloud_account::{AzureAccount, VsphereAccount};
use crate::cluster::{
    AwsPlacement, AwsSubnet, AzurePlacement, ControlPlanePool, NodePools, ResolvedNetwork,
    VspherePlacement, WorkerPool,
};
use crate::contracts::labels::MOVE_HIERARCHY_LABEL;
use crate::revision::{AccountSettings, KubeadmSettings, OsImage, RevisionLayer};

const NAMESPACE: &str = "strata-demo";
const REGENERATE: &str = "STRATA_UPDATE_GOLDEN=1 cargo test -p strata-core capi::";
pub(super) const CLOUDS: [ClusterCloud; 4] = [
    ClusterCloud::Vsphere,
    ClusterCloud::Aws,
    ClusterCloud::Azure,
    ClusterCloud::Sim,
];

pub(super) fn cluster_name(cloud: ClusterCloud) -> String {
    format!("demo-{cloud}")
}

/// A well-formed OpenSSH public key (its data names its type).
const SSH_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9d1Vt0y3b0k0P2o3v5Ykq3Vb1b9n4lE6mX2JQm7cQ strata@example.com";

fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn layer(order: u32, name: &str, version: &str, layer: &str) -> RevisionLayer {
    RevisionLayer {
        order,
        name: name.into(),
        version: version.into(),
        layer: layer.into(),
        registry: None,
        digest: format!("sha256:{:064x}", order),
        values: "pack: {}\n".into(),
        secrets_digest: None,
    }
}

fn shape(cpus: Option<u32>, memory_mib: Option<u64>, disk_gib: Option<u64>) -> MachineShape {
    MachineShape {
        cpus,
        memory_mib,
        disk_gib,
        ..MachineShape::default()
    }
}

/// A realistic revision of a 3 + 3 node cluster on `cloud`, Kubernetes v1.20.2.
pub(super) fn fixture(cloud: ClusterCloud) -> DesiredState {
    let (os, control_plane, general) = match cloud {
        ClusterCloud::Vsphere => (
            OsImage {
                pack: "ubuntu-vsphere".into(),
                version: "18.04".into(),
                annotations: args(&[
                    ("imageId", "/dc-east/vm/templates/ubuntu-1804-kube-v1.20.2"),
                    ("osName", "ubuntu"),
                ]),
            },
            shape(Some(4), Some(8192), Some(80)),
            shape(Some(8), Some(16384), Some(100)),
        ),
        ClusterCloud::Aws => (
            OsImage {
                pack: "centos-aws".into(),
                version: "7.7".into(),
                annotations: args(&[("imageId", "ami-0affd4508a5d2481b"), ("osName", "centos")]),
            },
            MachineShape {
                instance_type: Some("m5.xlarge".into()),
                ..MachineShape::default()
            },
            MachineShape {
                instance_type: Some("m5.2xlarge".into()),
                disk_gib: Some(100),
                ..MachineShape::default()
            },
        ),
        ClusterCloud::Azure => (
            OsImage {
                pack: "centos-azure".into(),
                version: "7.7".into(),
                annotations: args(&[
                    ("imagePublisher", "OpenLogic"),
                    ("imageOffer", "CentOS"),
                    ("imageSKU", "7_7"),
                    ("imageVersion", "7.7.2020062400"),
                    ("osName", "centos"),
                ]),
            },
            MachineShape {
                vm_size: Some("Standard_D4s_v3".into()),
                ..MachineShape::default()
            },
            MachineShape {
                vm_size: Some("Standard_D8s_v3".into()),
                disk_gib: Some(100),
                ..MachineShape::default()
            },
        ),
        ClusterCloud::Sim => (
            OsImage {
                pack: "ubuntu-sim".into(),
                version: "20.04".into(),
                annotations: args(&[("osName", "ubuntu")]),
            },
            shape(Some(2), Some(4096), None),
            shape(Some(4), Some(8192), None),
        ),
    };
    let os_layer = os.pack.clone();
    let os_version = os.version.clone();
    DesiredState {
        cloud_type: cloud,
        providers: Vec::new(),
        profiles: vec![format!("{cloud}-infra:1.2.0"), "observability:0.4.1".into()],
        kubernetes_version: "v1.20.2".into(),
        os,
        kubeadm: KubeadmSettings {
            api_server_extra_args: args(&[
                ("profiling", "false"),
                ("audit-log-path", "/var/log/kubernetes/audit.log"),
                ("audit-log-maxage", "30"),
            ]),
            controller_manager_extra_args: args(&[("profiling", "false")]),
            scheduler_extra_args: args(&[("profiling", "false")]),
            kubelet_extra_args: args(&[("read-only-port", "0")]),
            ..KubeadmSettings::default()
        },
        layers: vec![
            layer(1, &os_layer, &os_version, "os"),
            layer(2, "kubernetes", "1.20.2", "k8s"),
            layer(3, "cni-calico", "3.16.0", "cni"),
            layer(4, "prometheus-operator", "12.3.0", "addon"),
        ],
        node_pools: NodePools {
            control_plane: ControlPlanePool {
                count: 3,
                machine: control_plane,
                health_check: None,
                remediation: None,
            },
            workers: vec![WorkerPool {
                name: "general".into(),
                count: 3,
                machine: general,
                health_check: None,
                rollout: None,
            }],
        },
        network: ResolvedNetwork {
            pod_cidrs: vec!["192.168.0.0/16".into()],
            service_cidrs: vec!["10.96.0.0/12".into()],
            service_domain: "cluster.local".into(),
        },
        vsphere: (cloud == ClusterCloud::Vsphere).then(|| VspherePlacement {
            datacenter: "dc-east".into(),
            datastore: "vsanDatastore".into(),
            network: "/dc-east/network/VM Network".into(),
            resource_pool: "/dc-east/host/cluster-a/Resources/strata".into(),
            folder: "/dc-east/vm/strata/demo-vsphere".into(),
            storage_policy: Some("vSAN Default Storage Policy".into()),
            control_plane_endpoint: Some("10.10.0.50".into()),
            ssh_authorized_keys: vec![SSH_KEY.into()],
        }),
        aws: (cloud == ClusterCloud::Aws).then(|| AwsPlacement {
            region: "us-east-1".into(),
            ssh_key_name: "strata-demo".into(),
            vpc_id: Some("vpc-0a1b2c3d4e5f60718".into()),
            subnets: vec![
                AwsSubnet {
                    id: "subnet-0123456789abcdef0".into(),
                    availability_zone: Some("us-east-1a".into()),
                    is_public: Some(true),
                },
                AwsSubnet {
                    id: "subnet-0fedcba9876543210".into(),
                    availability_zone: Some("us-east-1a".into()),
                    is_public: Some(false),
                },
            ],
        }),
        azure: (cloud == ClusterCloud::Azure).then(|| AzurePlacement {
            location: "eastus".into(),
            resource_group: "strata-demo-azure".into(),
            subscription_id: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into(),
            ssh_public_key: Some("c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUhxOWQxVnQweTNiMGswUDJvM3Y1WWtxM1ZiMWI5bjRsRTZtWDJKUW03Y1Egc3RyYXRhQGV4YW1wbGUuY29t".into()),
        }),
        account: (cloud != ClusterCloud::Sim).then(|| account(cloud)),
        certificates_expiry_days: None,
    }
}

fn account(cloud: ClusterCloud) -> AccountSettings {
    AccountSettings {
        name: format!("{cloud}-prod"),
        vsphere: (cloud == ClusterCloud::Vsphere).then(|| VsphereAccount {
            server: "vcenter.example.com".into(),
            thumbprint: "5D:01:06:63:55:9D:DF:FE:38:81:6E:2C:FA:71:BC:BC:A2:1D:EA:DE".into(),
        }),
        azure: (cloud == ClusterCloud::Azure).then(|| AzureAccount {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "6f1a2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b".into(),
        }),
    }
}

fn secret_data(cloud: ClusterCloud) -> BTreeMap<String, String> {
    match cloud {
        ClusterCloud::Vsphere => args(&[
            ("username", "strata@vsphere.local"),
            ("password", "not-a-real-password"),
        ]),
        ClusterCloud::Aws => args(&[
            ("AccessKeyID", "AKIAIOSFODNN7EXAMPLE"),
            (
                "SecretAccessKey",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
        ]),
        ClusterCloud::Azure => args(&[("clientSecret", "not-a-real-client-secret")]),
        ClusterCloud::Sim => BTreeMap::new(),
    }
}

fn provider_namespace(cloud: ClusterCloud) -> &'static str {
    match cloud {
        ClusterCloud::Vsphere => "capv-system",
        ClusterCloud::Aws => "capa-system",
        ClusterCloud::Azure => "capz-system",
        ClusterCloud::Sim => "sim-system",
    }
}

pub(super) fn input<'a>(cluster: &'a str, desired: &'a DesiredState) -> BuildInput<'a> {
    BuildInput {
        cluster_name: cluster,
        namespace: NAMESPACE,
        revision: 4,
        desired,
    }
}

fn identities(
    cloud: ClusterCloud,
    account: &AccountSettings,
    secret: &BTreeMap<String, String>,
) -> Result<Vec<Value>, BuildError> {
    identity_objects(&IdentityInput {
        namespace: NAMESPACE,
        account,
        cloud,
        secret_data: secret,
        provider_namespace: provider_namespace(cloud),
    })
}

/// Identity, control plane and worker objects, as the controller and agent apply them.
fn build_all(cloud: ClusterCloud) -> Vec<Value> {
    let desired = fixture(cloud);
    let cluster = cluster_name(cloud);
    let input = input(&cluster, &desired);
    let mut objects = identities(cloud, &account(cloud), &secret_data(cloud)).unwrap();
    objects.extend(control_plane_objects(&input).unwrap());
    objects.extend(worker_pool_objects(&input).unwrap());
    objects
}

fn golden_text(cloud: ClusterCloud) -> String {
    let mut text = format!(
        "# The Cluster API objects Strata builds for the {cloud} fixture of core/src/capi/tests.rs.\n\
         # Generated; do not edit. Regenerate with: {REGENERATE}\n"
    );
    for (i, object) in build_all(cloud).iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(&serde_yaml::to_string(object).unwrap());
    }
    text
}

fn check_golden(cloud: ClusterCloud) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/capi/golden")
        .join(format!("{cloud}.yaml"));
    let built = golden_text(cloud);
    if std::env::var("STRATA_UPDATE_GOLDEN").as_deref() == Ok("1") {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &built).unwrap();
        return;
    }
    let golden = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the golden file {}: {e}\nGenerate it with: {REGENERATE}",
            path.display()
        )
    });
    if golden == built {
        return;
    }
    let mut golden_lines = golden.lines();
    let mut built_lines = built.lines();
    let mut line = 1;
    let (want, got) = loop {
        match (golden_lines.next(), built_lines.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (a, b) => break (a.unwrap_or("<end of file>"), b.unwrap_or("<end of file>")),
        }
    };
    panic!(
        "{} differs from what the builders produce, first at line {line}:\n  golden: {want}\n  built:  {got}\n\
         If the change is intended, regenerate it with `{REGENERATE}` and review the diff.",
        path.display()
    );
}

#[test]
fn vsphere_matches_its_golden_file() {
    check_golden(ClusterCloud::Vsphere);
}

#[test]
fn aws_matches_its_golden_file() {
    check_golden(ClusterCloud::Aws);
}

#[test]
fn azure_matches_its_golden_file() {
    check_golden(ClusterCloud::Azure);
}

#[test]
fn sim_matches_its_golden_file() {
    check_golden(ClusterCloud::Sim);
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} among {} objects", objects.len()))
}

#[test]
fn the_control_plane_starts_at_one_replica_and_workers_at_their_count() {
    for cloud in CLOUDS {
        let desired = fixture(cloud);
        let cluster = cluster_name(cloud);
        let input = input(&cluster, &desired);
        let control_plane = control_plane_objects(&input).unwrap();
        assert_eq!(desired.node_pools.control_plane.count, 3);
        assert_eq!(
            find(&control_plane, "KubeadmControlPlane")["spec"]["replicas"],
            1,
            "{cloud}"
        );
        assert_eq!(full_control_plane_replicas(&desired), 3);
        let workers = worker_pool_objects(&input).unwrap();
        assert_eq!(
            find(&workers, "MachineDeployment")["spec"]["replicas"],
            3,
            "{cloud}"
        );
    }
}

#[test]
fn every_reference_names_an_object_that_is_built() {
    for cloud in CLOUDS {
        let desired = fixture(cloud);
        let cluster = cluster_name(cloud);
        let input = input(&cluster, &desired);
        let mut objects = control_plane_objects(&input).unwrap();
        objects.extend(worker_pool_objects(&input).unwrap());
        let refs = [
            ("Cluster", "/spec/controlPlaneRef"),
            ("Cluster", "/spec/infrastructureRef"),
            (
                "KubeadmControlPlane",
                "/spec/machineTemplate/spec/infrastructureRef",
            ),
            (
                "MachineDeployment",
                "/spec/template/spec/bootstrap/configRef",
            ),
            ("MachineDeployment", "/spec/template/spec/infrastructureRef"),
        ];
        for (kind, pointer) in refs {
            let reference = find(&objects, kind).pointer(pointer).unwrap();
            let target = objects.iter().find(|o| {
                o["kind"] == reference["kind"] && o["metadata"]["name"] == reference["name"]
            });
            assert!(
                target.is_some(),
                "{cloud}: {kind} {pointer} names {reference}, which is not built"
            );
            let group = target.unwrap()["apiVersion"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap();
            assert_eq!(reference["apiGroup"], group, "{cloud}: {kind} {pointer}");
        }
        for object in &objects {
            assert_eq!(object["metadata"]["namespace"], NAMESPACE);
            assert_eq!(
                object["metadata"]["labels"][CAPI_CLUSTER_NAME_LABEL], cluster,
                "{cloud}: {} {}",
                object["kind"], object["metadata"]["name"]
            );
        }
    }
}

fn control_plane_template(desired: &DesiredState) -> String {
    let cluster = cluster_name(desired.cloud_type);
    let objects = control_plane_objects(&input(&cluster, desired)).unwrap();
    find(&objects, "KubeadmControlPlane")["spec"]["machineTemplate"]["spec"]["infrastructureRef"]
        ["name"]
        .as_str()
        .unwrap()
        .to_string()
}

fn worker_template(desired: &DesiredState) -> String {
    let cluster = cluster_name(desired.cloud_type);
    let objects = worker_pool_objects(&input(&cluster, desired)).unwrap();
    find(&objects, "MachineDeployment")["spec"]["template"]["spec"]["infrastructureRef"]["name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The KubeadmConfigTemplate of the first worker pool, and the name its MachineDeployment
/// points at.
fn worker_config(desired: &DesiredState) -> (String, String) {
    let objects = worker_pool_objects(&BuildInput {
        cluster_name: "demo",
        namespace: "team-a-demo",
        revision: 1,
        desired,
    })
    .unwrap();
    let config = objects
        .iter()
        .find(|o| o["kind"] == "KubeadmConfigTemplate")
        .unwrap();
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "MachineDeployment")
        .unwrap();
    (
        config["metadata"]["name"].as_str().unwrap().to_string(),
        deployment["spec"]["template"]["spec"]["bootstrap"]["configRef"]["name"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

#[test]
fn a_changed_kubelet_flag_is_a_new_bootstrap_template_so_workers_roll() {
    let before = fixture(ClusterCloud::Aws);
    let (name, referenced) = worker_config(&before);
    assert_eq!(name, referenced);
    assert_eq!(worker_config(&before).0, name, "not deterministic");
    let mut flagged = before.clone();
    flagged
        .kubeadm
        .kubelet_extra_args
        .insert("max-pods".into(), "200".into());
    let (new_name, new_reference) = worker_config(&flagged);
    assert_ne!(new_name, name);
    assert_eq!(new_name, new_reference);
    let mut elsewhere = before.clone();
    elsewhere.node_pools.workers[0].count += 2;
    assert_eq!(
        worker_config(&elsewhere).0,
        name,
        "a count is not a new template"
    );
}

#[test]
fn a_template_is_renamed_when_its_machine_changes_and_only_then() {
    let before = fixture(ClusterCloud::Vsphere);
    let name = control_plane_template(&before);
    assert!(
        name.starts_with("demo-vsphere-control-plane-")
            && name.len() == "demo-vsphere-control-plane-".len() + 8,
        "{name}"
    );
    assert!(
        name.rsplit('-')
            .next()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_hexdigit())
    );
    assert_eq!(control_plane_template(&before), name, "not deterministic");

    // Changes elsewhere keep the template.
    let mut elsewhere = before.clone();
    elsewhere.node_pools.control_plane.count = 5;
    elsewhere.node_pools.workers[0].machine.cpus = Some(16);
    elsewhere
        .kubeadm
        .kubelet_extra_args
        .insert("max-pods".into(), "200".into());
    assert_eq!(control_plane_template(&elsewhere), name);
    assert_ne!(worker_template(&elsewhere), worker_template(&before));

    let mut bigger = before.clone();
    bigger.node_pools.control_plane.machine.memory_mib = Some(16384);
    assert_ne!(control_plane_template(&bigger), name);
    assert_eq!(worker_template(&bigger), worker_template(&before));

    let mut new_image = before.clone();
    new_image
        .os
        .annotations
        .insert("imageId".into(), "/dc-east/vm/templates/ubuntu-2004".into());
    assert_ne!(control_plane_template(&new_image), name);

    // The name does not depend on the order the JSON was built in.
    let spec = json!({ "template": { "spec": { "a": 1, "b": { "c": 2, "d": [3] } } } });
    let reordered = json!({ "template": { "spec": { "b": { "d": [3], "c": 2 }, "a": 1 } } });
    assert_eq!(
        control_plane_template_name("x", &spec),
        control_plane_template_name("x", &reordered)
    );
}

#[test]
fn cloud_arguments_come_first_and_the_layers_settings_win() {
    let mut desired = fixture(ClusterCloud::Azure);
    desired
        .kubeadm
        .api_server_extra_args
        .insert("cloud-config".into(), "/etc/kubernetes/custom.json".into());
    let cluster = cluster_name(ClusterCloud::Azure);
    let objects = control_plane_objects(&input(&cluster, &desired)).unwrap();
    let spec = &find(&objects, "KubeadmControlPlane")["spec"]["kubeadmConfigSpec"];
    let names = |pointer: &str| -> Vec<String> {
        spec.pointer(pointer)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                format!(
                    "{}={}",
                    a["name"].as_str().unwrap(),
                    a["value"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        names("/clusterConfiguration/apiServer/extraArgs"),
        [
            "cloud-provider=azure",
            "audit-log-maxage=30",
            "audit-log-path=/var/log/kubernetes/audit.log",
            "cloud-config=/etc/kubernetes/custom.json",
            "profiling=false",
        ]
    );
    assert_eq!(
        names("/joinConfiguration/nodeRegistration/kubeletExtraArgs"),
        [
            "cloud-provider=azure",
            "cloud-config=/etc/kubernetes/azure.json",
            "read-only-port=0",
        ]
    );
    // The scheduler gets no cloud arguments.
    assert_eq!(
        names("/clusterConfiguration/scheduler/extraArgs"),
        ["profiling=false"]
    );
    // Nothing empty is written: the sim cloud without settings has only the format.
    let mut bare = fixture(ClusterCloud::Sim);
    bare.kubeadm = KubeadmSettings::default();
    let objects = control_plane_objects(&input("bare", &bare)).unwrap();
    assert_eq!(
        find(&objects, "KubeadmControlPlane")["spec"]["kubeadmConfigSpec"],
        json!({ "format": "cloud-config" })
    );
}

#[test]
fn layer_commands_and_files_reach_every_machine_after_the_clouds_files() {
    let mut desired = fixture(ClusterCloud::Azure);
    desired.kubeadm.pre_kubeadm_commands =
        vec!["echo os".into(), "apt install -y nfs-common".into()];
    desired.kubeadm.post_kubeadm_commands = vec!["echo done".into()];
    desired.kubeadm.files = vec![crate::revision::KubeadmFile {
        path: "/etc/nfs.conf".into(),
        content: "[nfsd]\n".into(),
        owner: Some("root:root".into()),
        permissions: Some("0644".into()),
        encoding: None,
    }];
    let cluster = cluster_name(ClusterCloud::Azure);
    let control_plane = control_plane_objects(&input(&cluster, &desired)).unwrap();
    let workers = worker_pool_objects(&input(&cluster, &desired)).unwrap();
    let specs = [
        &find(&control_plane, "KubeadmControlPlane")["spec"]["kubeadmConfigSpec"],
        &find(&workers, "KubeadmConfigTemplate")["spec"]["template"]["spec"],
    ];
    for spec in specs {
        assert_eq!(
            spec["preKubeadmCommands"],
            json!(["echo os", "apt install -y nfs-common"])
        );
        assert_eq!(spec["postKubeadmCommands"], json!(["echo done"]));
        let files = spec["files"].as_array().unwrap();
        // Azure's cloud config first, then the layers' file.
        assert_eq!(files.len(), 2, "{files:#?}");
        assert_eq!(files[0]["path"], "/etc/kubernetes/azure.json");
        assert_eq!(
            files[1],
            json!({"path": "/etc/nfs.conf", "content": "[nfsd]\n", "owner": "root:root", "permissions": "0644"})
        );
    }
    // A changed command is a new bootstrap template, so the workers roll.
    let before = worker_config(&desired).0;
    desired
        .kubeadm
        .pre_kubeadm_commands
        .push("echo more".into());
    assert_ne!(worker_config(&desired).0, before);
}

#[test]
fn a_missing_placement_is_named() {
    for cloud in [
        ClusterCloud::Vsphere,
        ClusterCloud::Aws,
        ClusterCloud::Azure,
    ] {
        let mut desired = fixture(cloud);
        desired.vsphere = None;
        desired.aws = None;
        desired.azure = None;
        let cluster = cluster_name(cloud);
        let err = control_plane_objects(&input(&cluster, &desired)).unwrap_err();
        assert_eq!(err, BuildError::MissingPlacement { cloud });
        assert_eq!(
            err.to_string(),
            format!(
                "a {cloud} cluster needs its placement (desired.{cloud}), but the revision has none"
            )
        );
    }
}

#[test]
fn missing_account_settings_are_named() {
    let mut desired = fixture(ClusterCloud::Vsphere);
    desired.account.as_mut().unwrap().vsphere = None;
    let err = control_plane_objects(&input("demo", &desired)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cloud account vsphere-prod has no vsphere settings; a vsphere cluster needs vCenter's server and thumbprint"
    );
    desired.account = None;
    let err = control_plane_objects(&input("demo", &desired)).unwrap_err();
    assert!(err.to_string().contains("(desired.account)"), "{err}");

    let mut azure = account(ClusterCloud::Azure);
    azure.azure = None;
    let err = identities(
        ClusterCloud::Azure,
        &azure,
        &secret_data(ClusterCloud::Azure),
    )
    .unwrap_err();
    assert!(err.to_string().contains("has no azure settings"), "{err}");
}

#[test]
fn a_missing_image_annotation_is_named() {
    let mut desired = fixture(ClusterCloud::Azure);
    desired.os.annotations.remove("imageSKU");
    let err = control_plane_objects(&input("demo", &desired)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "os layer centos-azure 7.7 has no annotation imageSKU; on azure it gives the marketplace image of the machines"
    );
    // A blank annotation is as good as none.
    let mut desired = fixture(ClusterCloud::Aws);
    desired.os.annotations.insert("imageId".into(), " ".into());
    let err = worker_pool_objects(&input("demo", &desired)).unwrap_err();
    assert!(
        err.to_string()
            .contains("no annotation imageId; on aws it gives the AMI"),
        "{err}"
    );
    // The image version is optional on Azure.
    let mut desired = fixture(ClusterCloud::Azure);
    desired.os.annotations.remove("imageVersion");
    let objects = worker_pool_objects(&input("demo", &desired)).unwrap();
    assert_eq!(
        find(&objects, "AzureMachineTemplate")["spec"]["template"]["spec"]["image"]["marketplace"]
            ["version"],
        "latest"
    );
}

#[test]
fn a_machine_without_its_size_is_named() {
    let mut desired = fixture(ClusterCloud::Aws);
    desired.node_pools.workers[0].machine.instance_type = None;
    let err = worker_pool_objects(&input("demo", &desired)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "nodePools.workers[general].machine has no instanceType; aws machines are sized by it"
    );
}

#[test]
fn a_missing_secret_key_is_named() {
    let mut secret = secret_data(ClusterCloud::Aws);
    secret.remove("SecretAccessKey");
    let err = identities(ClusterCloud::Aws, &account(ClusterCloud::Aws), &secret).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the Secret of cloud account aws-prod has no key SecretAccessKey; the aws provider reads AccessKeyID, SecretAccessKey from it"
    );
    let mut secret = secret_data(ClusterCloud::Vsphere);
    secret.insert("password".into(), String::new());
    let err = identities(
        ClusterCloud::Vsphere,
        &account(ClusterCloud::Vsphere),
        &secret,
    )
    .unwrap_err();
    assert!(err.to_string().contains("has no key password"), "{err}");
}

#[test]
fn identities_carry_the_credentials_where_the_provider_reads_them() {
    let mut secret = secret_data(ClusterCloud::Aws);
    secret.insert("SessionToken".into(), "token".into());
    secret.insert("Unrelated".into(), "x".into());
    let objects = identities(ClusterCloud::Aws, &account(ClusterCloud::Aws), &secret).unwrap();
    let secret = find(&objects, "Secret");
    assert_eq!(secret["metadata"]["namespace"], "capa-system");
    let keys: Vec<&String> = secret["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["AccessKeyID", "SecretAccessKey", "SessionToken"]);
    assert_eq!(secret["data"]["SessionToken"], "dG9rZW4=");
    let identity = find(&objects, "AWSClusterStaticIdentity");
    assert!(identity["metadata"].get("namespace").is_none());
    assert_eq!(identity["spec"]["secretRef"], secret["metadata"]["name"]);

    let objects = identities(
        ClusterCloud::Azure,
        &account(ClusterCloud::Azure),
        &secret_data(ClusterCloud::Azure),
    )
    .unwrap();
    for object in &objects {
        assert_eq!(object["metadata"]["namespace"], NAMESPACE);
        assert_eq!(object["metadata"]["labels"][MOVE_HIERARCHY_LABEL], "true");
    }
    assert!(
        identities(
            ClusterCloud::Sim,
            &account(ClusterCloud::Sim),
            &BTreeMap::new()
        )
        .unwrap()
        .is_empty()
    );
}
