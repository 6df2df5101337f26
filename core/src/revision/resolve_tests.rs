//! Tests of the desired state a revision pins, and of the checks that need no pack.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::cloud_account::{CloudAccount, CloudAccountSpec, VsphereAccount};
use crate::cluster::{
    AwsPlacement, AwsSubnet, ClusterCloud, ClusterNetwork, LocalObjectReference, MachineShape,
    VspherePlacement, WorkloadCluster,
};
use crate::profile::compose::compose;
use crate::profile::fixtures::*;
use crate::profile::{ProfileCloud, ProfileType};
use crate::revision::{validate_account, validate_placement};

const KUBERNETES_VALUES: &str = r#"
pack:
  podCIDR: 172.16.0.0/16
kubeadmconfig:
  apiServer:
    extraArgs:
      profiling: "false"
      audit-log-maxage: 30
  kubeletExtraArgs:
    read-only-port: "0"
    rotate-certificates: true
"#;

fn source(os_annotations: &str) -> MemorySource {
    MemorySource::default()
        .with(
            &format!(
                r#"{{"name": "ubuntu", "displayName": "Ubuntu", "version": "22.04", "layer": "os", "cloudTypes": ["all"], "annotations": {{{os_annotations}}}}}"#
            ),
            "{}",
        )
        .with(
            r#"{"name": "kubernetes", "displayName": "Kubernetes", "version": "1.20.2", "layer": "k8s"}"#,
            KUBERNETES_VALUES,
        )
        .pack("calico", "3.19.0", "cni", "")
        .pack("hostpath", "1.7.3", "csi", "")
}

fn resolve(cluster: &WorkloadCluster, source: &MemorySource) -> Result<DesiredState, Findings> {
    let base = profile("base", ProfileType::Infra, ProfileCloud::All, core_layers());
    let (stack, findings) = compose(cluster, &[base], source);
    let stack = stack.unwrap_or_else(|| panic!("{findings:#?}"));
    desired_state(cluster, &stack, None)
}

fn aws_cluster() -> WorkloadCluster {
    let mut c = cluster(ClusterCloud::Aws, &["base"]);
    c.spec.aws = Some(AwsPlacement {
        region: "us-east-1".into(),
        ssh_key_name: "k".into(),
        vpc_id: None,
        subnets: vec![AwsSubnet {
            id: "subnet-1".into(),
            availability_zone: None,
            is_public: None,
        }],
    });
    c.spec.cloud_account_ref = Some(LocalObjectReference {
        name: "acct".into(),
    });
    c.spec.node_pools.control_plane.machine = MachineShape {
        instance_type: Some("m5.xlarge".into()),
        ..MachineShape::default()
    };
    for pool in &mut c.spec.node_pools.workers {
        pool.machine = MachineShape {
            instance_type: Some("m5.2xlarge".into()),
            disk_gib: Some(100),
            ..MachineShape::default()
        };
    }
    c
}

#[test]
fn the_desired_state_pins_version_image_kubeadm_args_and_network() {
    let desired = resolve(
        &cluster(ClusterCloud::Sim, &["base"]),
        &source(r#""imageId": "img-1""#),
    )
    .unwrap();
    assert_eq!(desired.kubernetes_version, "v1.20.2");
    assert_eq!(desired.os.annotation("imageId"), Some("img-1"));
    assert_eq!(desired.profiles, ["base:1.0.0"]);
    assert_eq!(
        desired.kubeadm.api_server_extra_args["audit-log-maxage"],
        "30"
    );
    assert_eq!(
        desired.kubeadm.kubelet_extra_args["rotate-certificates"],
        "true"
    );
    assert_eq!(
        desired.network.pod_cidrs,
        ["172.16.0.0/16"],
        "from the Kubernetes layer"
    );
    assert_eq!(
        desired.network.service_cidrs,
        ["10.96.0.0/12"],
        "the default"
    );
    let orders: Vec<(u32, &str)> = desired
        .layers
        .iter()
        .map(|l| (l.order, l.layer.as_str()))
        .collect();
    assert_eq!(orders, [(1, "os"), (2, "k8s"), (3, "cni"), (4, "csi")]);
    assert!(desired.layers[1].values.contains("podCIDR: 172.16.0.0/16"));
    assert_eq!(desired.layers[1].digest, "sha256:kubernetes:1.20.2");
}

#[test]
fn cluster_overrides_reach_the_kubeadm_args_and_null_removes_a_flag() {
    let mut c = cluster(ClusterCloud::Sim, &["base"]);
    c.spec.overrides.push(crate::cluster::LayerOverride {
        pack: "kubernetes".into(),
        values:
            "kubeadmconfig:\n  kubeletExtraArgs:\n    read-only-port: null\n    max-pods: 200\n"
                .into(),
        presets: None,
    });
    c.spec.cluster_network = Some(ClusterNetwork {
        pod_cidrs: vec!["10.244.0.0/16".into()],
        ..ClusterNetwork::default()
    });
    let desired = resolve(&c, &source("")).unwrap();
    assert!(
        !desired
            .kubeadm
            .kubelet_extra_args
            .contains_key("read-only-port")
    );
    assert_eq!(desired.kubeadm.kubelet_extra_args["max-pods"], "200");
    assert_eq!(
        desired.network.pod_cidrs,
        ["10.244.0.0/16"],
        "the cluster's choice wins"
    );
}

#[test]
fn each_cloud_needs_its_image_annotations() {
    let cases = [
        (
            ClusterCloud::Aws,
            "",
            "has no annotation imageId; on aws it gives the AMI",
        ),
        (
            ClusterCloud::Azure,
            r#""imagePublisher": "p", "imageOffer": "o""#,
            "has no annotation imageSKU; on azure",
        ),
        (
            ClusterCloud::Vsphere,
            r#""imageId": "  ""#,
            "has no annotation imageId; on vsphere",
        ),
    ];
    for (cloud, annotations, message) in cases {
        let c = cluster(cloud, &["base"]);
        let findings = resolve(&c, &source(annotations)).unwrap_err();
        assert!(
            findings.contains("os layer ubuntu 22.04", message),
            "{cloud}: {findings:#?}"
        );
    }
    // The sim cloud boots anything.
    assert!(resolve(&cluster(ClusterCloud::Sim, &["base"]), &source("")).is_ok());
}

#[test]
fn kubeadm_args_must_be_single_values() {
    let bad = MemorySource::default()
        .pack("ubuntu", "22.04", "os", r#", "cloudTypes": ["all"]"#)
        .with(
            r#"{"name": "kubernetes", "displayName": "Kubernetes", "version": "1.20.2", "layer": "k8s"}"#,
            "kubeadmconfig:\n  apiServer:\n    extraArgs:\n      feature-gates: [a, b]\n  scheduler:\n    extraArgs: nonsense\n",
        )
        .pack("calico", "3.19.0", "cni", "")
        .pack("hostpath", "1.7.3", "csi", "");
    let findings = resolve(&cluster(ClusterCloud::Sim, &["base"]), &bad).unwrap_err();
    assert!(
        findings.contains(
            "profile base: layer kubernetes: kubeadmconfig.apiServer.extraArgs.feature-gates",
            "expected a single value"
        ),
        "{findings:#?}"
    );
    assert!(
        findings.contains(
            "profile base: layer kubernetes: kubeadmconfig.scheduler.extraArgs",
            "is not a mapping"
        ),
        "{findings:#?}"
    );
}

#[test]
fn the_content_hash_follows_the_intent() {
    let source = source("");
    let a = resolve(&cluster(ClusterCloud::Sim, &["base"]), &source).unwrap();
    let b = resolve(&cluster(ClusterCloud::Sim, &["base"]), &source).unwrap();
    assert_eq!(content_hash(&a), content_hash(&b));
    assert!(content_hash(&a).starts_with("sha256:") && content_hash(&a).len() == 71);
    let mut bigger = cluster(ClusterCloud::Sim, &["base"]);
    bigger.spec.node_pools.workers[0].count += 1;
    let c = resolve(&bigger, &source).unwrap();
    assert_ne!(content_hash(&a), content_hash(&c));
    assert_eq!(revision_name("edge", 3), "edge-r3");
}

#[test]
fn self_healing_settings_are_resolved_into_the_revision() {
    use crate::cluster::{HealthCheck, PoolRollout};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    let source = source("");
    let plain = resolve(&cluster(ClusterCloud::Sim, &["base"]), &source).unwrap();
    let pools = &plain.node_pools;
    let check = pools.workers[0].health_check.as_ref().unwrap();
    assert_eq!(check.unhealthy_timeout_seconds, Some(300));
    assert_eq!(check.node_startup_timeout_seconds, Some(600));
    assert_eq!(check.max_unhealthy, Some(IntOrString::String("40%".into())));
    assert_eq!(pools.control_plane.health_check.as_ref(), Some(check));
    let remediation = pools.control_plane.remediation.as_ref().unwrap();
    assert_eq!(remediation.max_retry, Some(3));
    assert_eq!(plain.certificates_expiry_days, Some(21));
    assert_eq!(pools.workers[0].rollout, None);

    let mut tuned = cluster(ClusterCloud::Sim, &["base"]);
    tuned.spec.node_pools.workers[0].health_check = Some(HealthCheck {
        unhealthy_timeout_seconds: Some(60),
        ..HealthCheck::default()
    });
    tuned.spec.node_pools.workers[0].rollout = Some(PoolRollout {
        max_surge: Some(IntOrString::Int(0)),
        max_unavailable: Some(IntOrString::Int(1)),
    });
    tuned.spec.certificates_expiry_days = Some(60);
    let tuned = resolve(&tuned, &source).unwrap();
    let check = tuned.node_pools.workers[0].health_check.as_ref().unwrap();
    assert_eq!(check.unhealthy_timeout_seconds, Some(60));
    assert_eq!(check.node_startup_timeout_seconds, Some(600));
    assert_eq!(
        tuned.node_pools.workers[0]
            .rollout
            .as_ref()
            .unwrap()
            .max_surge,
        Some(IntOrString::Int(0))
    );
    assert_eq!(tuned.certificates_expiry_days, Some(60));
    // A changed setting is a changed intent: a new revision carries it to the cluster.
    assert_ne!(content_hash(&plain), content_hash(&tuned));
}

#[test]
fn placement_and_machines_follow_the_cloud() {
    assert!(
        validate_placement(&aws_cluster()).is_empty(),
        "{:#?}",
        validate_placement(&aws_cluster())
    );

    let mut no_placement = aws_cluster();
    no_placement.spec.aws = None;
    no_placement.spec.vsphere = Some(VspherePlacement {
        datacenter: "dc".into(),
        datastore: "ds".into(),
        network: "n".into(),
        resource_pool: "rp".into(),
        folder: "f".into(),
        storage_policy: None,
        control_plane_endpoint: None,
        ssh_authorized_keys: Vec::new(),
    });
    no_placement
        .spec
        .node_pools
        .control_plane
        .machine
        .instance_type = None;
    no_placement.spec.cloud_account_ref = None;
    no_placement.spec.aws = Some(AwsPlacement {
        vpc_id: Some("vpc1".into()),
        subnets: vec![AwsSubnet {
            id: "sub-1".into(),
            availability_zone: None,
            is_public: None,
        }],
        ..aws_cluster().spec.aws.unwrap()
    });
    let findings = validate_placement(&no_placement);
    assert!(findings.contains("spec.vsphere", "is set, but the cluster's cloudType is aws"));
    assert!(findings.contains("spec.aws.subnets[0].id", "\"sub-1\" is not a subnet ID"));
    assert!(findings.contains("spec.aws.vpcId", "\"vpc1\" is not a VPC ID"));
    assert!(findings.contains(
        "spec.nodePools.controlPlane.machine.instanceType",
        "is missing; AWS machines are sized"
    ));
    assert!(findings.contains(
        "spec.cloudAccountRef",
        "is missing; clusters on aws need a CloudAccount"
    ));
    assert_eq!(findings.errors().count(), 5, "{findings:#?}");

    let mut vsphere = cluster(ClusterCloud::Vsphere, &["base"]);
    vsphere.spec.node_pools.workers[0].machine.vm_size = Some("Standard_D4s_v3".into());
    vsphere.spec.node_pools.workers[0].machine.disk_gib = None;
    let findings = validate_placement(&vsphere);
    assert!(findings.contains(
        "spec.vsphere",
        "is missing; clusters on vsphere need their placement"
    ));
    assert!(findings.contains(
        "spec.nodePools.workers[0].machine.vmSize",
        "means nothing on vsphere"
    ));
    assert!(findings.contains("spec.nodePools.workers[0].machine.diskGib", "is missing"));
}

#[test]
fn vsphere_ssh_keys_must_be_openssh_public_keys() {
    let good =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq9d1Vt0y3b0k0P2o3v5Ykq3Vb1b9n4lE6mX2JQm7cQ me@x";
    let mut vsphere = cluster(ClusterCloud::Vsphere, &["base"]);
    vsphere.spec.vsphere = Some(VspherePlacement {
        datacenter: "dc".into(),
        datastore: "ds".into(),
        network: "n".into(),
        resource_pool: "rp".into(),
        folder: "f".into(),
        storage_policy: None,
        control_plane_endpoint: None,
        ssh_authorized_keys: vec![
            good.into(),
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----".into(),
            "ssh-dsa AAAAB3NzaC1kc3MAAACBAP".into(),
            "ssh-rsa not*base64".into(),
            // An ed25519 key's data under the rsa type: a line cut and pasted wrong.
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIHq9d1Vt0y3b0k0P2o3v5Ykq3Vb1b9n4lE6mX2JQm7cQ".into(),
            "AAAAC3NzaC1lZDI1NTE5AAAAIHq9".into(),
            format!("{good}\n{good}"),
            // A pasted megabyte: named, not repeated.
            format!("ssh-{} AAAA", "x".repeat(1 << 20)),
        ],
    });
    let findings = validate_placement(&vsphere);
    let key = |i: usize| format!("spec.vsphere.sshAuthorizedKeys[{i}]");
    assert!(findings.contains(&key(1), "is a private key; give the public key"));
    assert!(findings.contains(&key(2), "\"ssh-dsa\" is not an SSH key type"));
    assert!(findings.contains(&key(3), "the key after ssh-rsa is not base64"));
    assert!(findings.contains(&key(4), "the key's data does not say ssh-rsa"));
    assert!(findings.contains(&key(5), "is not an OpenSSH public key"));
    assert!(findings.contains(&key(6), "holds more than one line"));
    let huge = findings
        .errors()
        .find(|f| f.subject == key(7))
        .expect("the pasted megabyte is refused");
    assert!(
        huge.message.contains("is not an SSH key type") && huge.message.len() < 300,
        "{}",
        huge.message.len()
    );
    assert_eq!(
        findings
            .errors()
            .filter(|f| f.subject.starts_with("spec.vsphere.ssh"))
            .count(),
        7,
        "{findings:#?}"
    );
}

fn account(cloud: ClusterCloud, secret: Option<&str>) -> CloudAccount {
    CloudAccount::new(
        "acct",
        CloudAccountSpec {
            cloud_type: cloud,
            secret_ref: secret.map(|name| LocalObjectReference { name: name.into() }),
            vsphere: None,
            azure: None,
            copy_secret_to_workload_clusters: true,
        },
    )
}

#[test]
fn accounts_must_fit_the_cloud_and_hold_the_keys() {
    let cluster = aws_cluster();
    let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let ok = validate_account(
        &cluster,
        &account(ClusterCloud::Aws, Some("s")),
        Some(&keys(&["AccessKeyID", "SecretAccessKey"])),
    );
    assert!(ok.is_empty(), "{ok:#?}");

    let wrong_cloud = validate_account(&cluster, &account(ClusterCloud::Vsphere, Some("s")), None);
    assert!(wrong_cloud.contains(
        "CloudAccount acct: spec.cloudType",
        "is vsphere, but the cluster's cloudType is aws"
    ));

    let no_secret = validate_account(&cluster, &account(ClusterCloud::Aws, None), None);
    assert!(no_secret.contains(
        "CloudAccount acct: spec.secretRef",
        "is missing; aws accounts need a Secret with AccessKeyID, SecretAccessKey"
    ));

    let missing_secret = validate_account(&cluster, &account(ClusterCloud::Aws, Some("s")), None);
    assert!(missing_secret.contains(
        "CloudAccount acct: spec.secretRef",
        "Secret \"s\" was not found"
    ));

    let half = validate_account(
        &cluster,
        &account(ClusterCloud::Aws, Some("s")),
        Some(&keys(&["AccessKeyID"])),
    );
    assert!(half.contains("CloudAccount acct: Secret s", "has no key SecretAccessKey; aws accounts need AccessKeyID, SecretAccessKey (it has: AccessKeyID)"));

    let mut vsphere_cluster = cluster.clone();
    vsphere_cluster.spec.cloud_type = ClusterCloud::Vsphere;
    let mut vsphere_account = account(ClusterCloud::Vsphere, Some("s"));
    let findings = validate_account(
        &vsphere_cluster,
        &vsphere_account,
        Some(&keys(&["username", "password"])),
    );
    assert!(findings.contains(
        "CloudAccount acct: spec.vsphere",
        "needs vCenter's server and thumbprint"
    ));
    vsphere_account.spec.vsphere = Some(VsphereAccount {
        server: "vc".into(),
        thumbprint: "AA".into(),
    });
    assert!(
        validate_account(
            &vsphere_cluster,
            &vsphere_account,
            Some(&keys(&["username", "password"]))
        )
        .is_empty()
    );
}

/// An infra profile whose OS layer adds a command, and an add-on profile with an NFS CSI-like
/// add-on that installs nfs-common and writes a file, and a secret.
fn nfs_source(addon_values: &str) -> MemorySource {
    MemorySource::default()
        .with(
            r#"{"name": "ubuntu", "displayName": "Ubuntu", "version": "22.04", "layer": "os", "cloudTypes": ["all"]}"#,
            "kubeadmconfig:\n  preKubeadmCommands: ['echo os']\n  kubeletExtraArgs: {node-labels: os=ubuntu}\n",
        )
        .with(
            r#"{"name": "kubernetes", "displayName": "Kubernetes", "version": "1.20.2", "layer": "k8s"}"#,
            KUBERNETES_VALUES,
        )
        .pack("calico", "3.19.0", "cni", "")
        .pack("hostpath", "1.7.3", "csi", "")
        .with_rules(
            r#"{"name": "nfs", "displayName": "NFS", "version": "4.0.13", "layer": "addon", "addonType": "storage"}"#,
            addon_values,
            "charts.nfs.server.password:\n  schema: '{{ format \"${password}\" }}'\n",
            "",
        )
}

const NFS_VALUES: &str = r#"
kubeadmconfig:
  preKubeadmCommands:
    - apt update
    - apt install -y nfs-common
  postKubeadmCommands: ['echo nfs ready']
  kubeletExtraArgs: {node-labels: nfs=yes}
  files:
    - targetPath: /etc/nfs.conf
      targetOwner: root:root
      targetPermissions: '0644'
      content: '[nfsd]'
charts:
  nfs:
    server: {host: 10.0.0.5, password: ''}
"#;

fn resolve_with_addon(
    cluster: &WorkloadCluster,
    source: &MemorySource,
) -> Result<DesiredState, Findings> {
    let base = profile("base", ProfileType::Infra, ProfileCloud::All, core_layers());
    let addons = profile(
        "storage",
        ProfileType::AddOn,
        ProfileCloud::All,
        vec![layer("nfs:4.0.13")],
    );
    let (stack, findings) = compose(cluster, &[base, addons], source);
    let stack = stack.unwrap_or_else(|| panic!("{findings:#?}"));
    desired_state(cluster, &stack, None)
}

#[test]
fn every_layers_kubeadmconfig_is_merged_in_install_order() {
    let c = cluster(ClusterCloud::Sim, &["base", "storage"]);
    let desired = resolve_with_addon(&c, &nfs_source(NFS_VALUES)).unwrap();
    let kubeadm = &desired.kubeadm;
    assert_eq!(
        kubeadm.pre_kubeadm_commands,
        ["echo os", "apt update", "apt install -y nfs-common"]
    );
    assert_eq!(kubeadm.post_kubeadm_commands, ["echo nfs ready"]);
    assert_eq!(
        kubeadm.files,
        [crate::revision::KubeadmFile {
            path: "/etc/nfs.conf".into(),
            content: "[nfsd]".into(),
            owner: Some("root:root".into()),
            permissions: Some("0644".into()),
            encoding: None,
        }]
    );
    // A later layer's flag replaces an earlier one's; the others stay.
    assert_eq!(kubeadm.kubelet_extra_args["node-labels"], "nfs=yes");
    assert_eq!(kubeadm.kubelet_extra_args["read-only-port"], "0");
    assert_eq!(kubeadm.api_server_extra_args["profiling"], "false");
}

#[test]
fn malformed_kubeadmconfig_of_an_add_on_is_named() {
    let bad = "kubeadmconfig:\n  preKubeadmCommands: [ok, {run: x}]\n  files:\n  - {targetPath: /a}\n  - {path: /b, content: c, mode: '0600'}\n";
    let findings = resolve_with_addon(
        &cluster(ClusterCloud::Sim, &["base", "storage"]),
        &nfs_source(bad),
    )
    .unwrap_err();
    assert!(
        findings.contains(
            "profile storage: layer nfs: kubeadmconfig.preKubeadmCommands[1]",
            "found a mapping, expected a shell command"
        ),
        "{findings:#?}"
    );
    assert!(findings.contains(
        "profile storage: layer nfs: kubeadmconfig.files[0]",
        "has no content; a file needs its path and content"
    ));
    assert!(findings.contains(
        "profile storage: layer nfs: kubeadmconfig.files[1].mode",
        "is not a field of a file; known fields: path, targetPath, content, owner, targetOwner"
    ));
}

#[test]
fn a_secret_never_appears_in_the_desired_state_or_the_capi_objects() {
    const SECRET: &str = "pa55-w0rd-never-shown";
    let mut c = cluster(ClusterCloud::Sim, &["base", "storage"]);
    c.spec.overrides.push(crate::cluster::LayerOverride {
        pack: "nfs".into(),
        values: format!("charts:\n  nfs:\n    server:\n      password: {SECRET}\n"),
        presets: None,
    });
    let source = nfs_source(NFS_VALUES);
    let base = profile("base", ProfileType::Infra, ProfileCloud::All, core_layers());
    let addons = profile(
        "storage",
        ProfileType::AddOn,
        ProfileCloud::All,
        vec![layer("nfs:4.0.13")],
    );
    let (stack, findings) = compose(&c, &[base, addons], &source);
    let stack = stack.unwrap_or_else(|| panic!("{findings:#?}"));
    // The real value is there for whatever installs the layer.
    let nfs = stack.layers.iter().find(|l| l.name == "nfs").unwrap();
    assert_eq!(
        nfs.values.unmasked()["charts"]["nfs"]["server"]["password"],
        serde_yaml::Value::from(SECRET)
    );
    let desired = desired_state(&c, &stack, None).unwrap();
    let revision = crate::revision::ClusterRevisionSpec {
        cluster_name: "demo".into(),
        number: 1,
        content_hash: content_hash(&desired),
        rollback_of: None,
        sources: None,
        desired: desired.clone(),
    };
    let input = crate::capi::BuildInput {
        cluster_name: "demo",
        namespace: "team-a-demo",
        revision: 1,
        desired: &desired,
    };
    let mut objects = crate::capi::control_plane_objects(&input).unwrap();
    objects.extend(crate::capi::worker_pool_objects(&input).unwrap());
    let printed = [
        serde_yaml::to_string(&stack).unwrap(),
        format!("{stack:?}"),
        serde_yaml::to_string(&revision).unwrap(),
        serde_json::to_string(&revision).unwrap(),
        format!("{revision:?}"),
        findings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        serde_json::to_string(&objects).unwrap(),
    ];
    for text in &printed {
        assert!(!text.contains(SECRET), "the secret leaked into: {text}");
    }
    let nfs_layer = desired.layers.iter().find(|l| l.name == "nfs").unwrap();
    assert!(
        nfs_layer.values.contains("password: <secret>"),
        "{}",
        nfs_layer.values
    );
    assert!(nfs_layer.values.contains("host: 10.0.0.5"));
    // A changed secret is a changed revision; no secret, no digest.
    let digest = nfs_layer.secrets_digest.clone().unwrap();
    c.spec.overrides[0].values = "charts:\n  nfs:\n    server:\n      password: another\n".into();
    let changed = resolve_with_addon(&c, &source).unwrap();
    assert_ne!(content_hash(&changed), content_hash(&desired));
    let changed_layer = changed.layers.iter().find(|l| l.name == "nfs").unwrap();
    assert_ne!(changed_layer.secrets_digest.as_ref(), Some(&digest));
    assert_eq!(changed_layer.values, nfs_layer.values);
    c.spec.overrides.clear();
    let unset = resolve_with_addon(&c, &source).unwrap();
    assert_eq!(
        unset
            .layers
            .iter()
            .find(|l| l.name == "nfs")
            .unwrap()
            .secrets_digest,
        None
    );
}

#[test]
fn an_image_its_cloud_cannot_use_is_refused_with_what_to_do() {
    let vsphere = cluster(ClusterCloud::Vsphere, &["base"]);
    let ova = r#""imageId": "https://cloud-images.ubuntu.com/releases/18.04/release/ubuntu-18.04-server-cloudimg-amd64.ova""#;
    let findings = resolve(&vsphere, &source(ova)).unwrap_err();
    assert!(
        findings.contains(
            "os layer ubuntu 22.04",
            "an OVA; CAPV clones machines from a VM template in vCenter and cannot import an OVA: import it once as a template"
        ),
        "{findings:#?}"
    );
    // A template path is what CAPV takes.
    let template = r#""imageId": "/Datacenter/vm/spectro-templates/base-images/centos-7""#;
    assert!(
        resolve(&vsphere, &source(template))
            .err()
            .is_none_or(|f| !f.contains("os layer ubuntu 22.04", "OVA")),
    );

    let aws = aws_cluster();
    let elsewhere = r#""imageId": "ami-071f6fc516c53fca1", "cloudRegion": "eu-west-1""#;
    let findings = resolve(&aws, &source(elsewhere)).unwrap_err();
    assert!(
        findings.contains(
            "os layer ubuntu 22.04",
            "AMI ami-071f6fc516c53fca1 is in region eu-west-1 (annotation cloudRegion), and the cluster is in us-east-1 (spec.aws.region); AMIs are regional"
        ),
        "{findings:#?}"
    );
    let not_an_ami = r#""imageId": "ubuntu-22.04""#;
    let findings = resolve(&aws, &source(not_an_ami)).unwrap_err();
    assert!(
        findings.contains("os layer ubuntu 22.04", "expected an AMI ID"),
        "{findings:#?}"
    );
    let here = r#""imageId": "ami-071f6fc516c53fca1", "cloudRegion": "us-east-1""#;
    assert!(
        resolve(&aws, &source(here))
            .err()
            .is_none_or(|f| !f.contains("os layer ubuntu 22.04", "AMI")),
    );
}
