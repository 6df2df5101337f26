//! The checks that need no pack: the cloud-specific fields of a cluster, and its cloud
//! account against its cloud.

use crate::bounded_text::cut;
use crate::cloud_account::{CloudAccount, required_secret_keys};
use crate::cluster::{ClusterCloud, MachineShape, WorkloadCluster};
use crate::finding::Findings;

/// Each cloud's placement section and machine fields are present, and other clouds'
/// sections are absent (they would be silently ignored otherwise).
pub fn validate_placement(cluster: &WorkloadCluster) -> Findings {
    let mut findings = Findings::new();
    let spec = &cluster.spec;
    let cloud = spec.cloud_type;
    let sections = [
        ("vsphere", spec.vsphere.is_some(), ClusterCloud::Vsphere),
        ("aws", spec.aws.is_some(), ClusterCloud::Aws),
        ("azure", spec.azure.is_some(), ClusterCloud::Azure),
    ];
    for (field, present, owner) in sections {
        if owner == cloud && !present {
            findings.error(
                format!("spec.{field}"),
                format!(
                    "is missing; clusters on {cloud} need their placement ({})",
                    placement_fields(cloud)
                ),
            );
        } else if owner != cloud && present {
            findings.error(
                format!("spec.{field}"),
                format!(
                    "is set, but the cluster's cloudType is {cloud}; remove it or change cloudType"
                ),
            );
        }
    }
    if let Some(vsphere) = &spec.vsphere {
        for (i, key) in vsphere.ssh_authorized_keys.iter().enumerate() {
            if let Err(problem) = check_ssh_public_key(key) {
                findings.error(format!("spec.vsphere.sshAuthorizedKeys[{i}]"), problem);
            }
        }
    }
    if let Some(aws) = &spec.aws {
        for (i, subnet) in aws.subnets.iter().enumerate() {
            if !subnet.id.starts_with("subnet-") {
                findings.error(
                    format!("spec.aws.subnets[{i}].id"),
                    format!("{:?} is not a subnet ID; expected subnet-…", subnet.id),
                );
            }
        }
        if aws
            .vpc_id
            .as_deref()
            .is_some_and(|v| !v.starts_with("vpc-"))
        {
            findings.error(
                "spec.aws.vpcId",
                format!(
                    "{:?} is not a VPC ID; expected vpc-…",
                    aws.vpc_id.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    let pools = std::iter::once((
        "spec.nodePools.controlPlane.machine".to_string(),
        &spec.node_pools.control_plane.machine,
    ))
    .chain(
        spec.node_pools
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("spec.nodePools.workers[{i}].machine"), &w.machine)),
    );
    for (subject, machine) in pools {
        check_machine(cloud, &subject, machine, &mut findings);
    }
    if cloud != ClusterCloud::Sim && spec.cloud_account_ref.is_none() {
        findings.error(
            "spec.cloudAccountRef",
            format!("is missing; clusters on {cloud} need a CloudAccount with the credentials"),
        );
    }
    findings
}

/// How much of a key a message repeats: enough to recognise it, never a pasted file.
const SHOWN_CHARS: usize = 40;

/// The key types OpenSSH accepts in `authorized_keys`.
const SSH_KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// One line of `authorized_keys` without options: a key type, the key in base64 (whose
/// first field repeats the type), and an optional comment. A private key, a key in another
/// format or two keys on one line would otherwise fail only on the machine, silently.
fn check_ssh_public_key(key: &str) -> Result<(), String> {
    use base64::Engine;
    let shown = cut(key, SHOWN_CHARS);
    if key.contains("PRIVATE KEY") {
        return Err("is a private key; give the public key (the .pub file)".into());
    }
    if key.contains('\n') {
        return Err("holds more than one line; give one key per item".into());
    }
    let mut fields = key.split_whitespace();
    let (Some(kind), Some(body)) = (fields.next(), fields.next()) else {
        return Err(format!(
            "{shown:?} is not an OpenSSH public key; expected \"ssh-ed25519 AAAA… comment\""
        ));
    };
    if !SSH_KEY_TYPES.contains(&kind) {
        return Err(format!(
            "{:?} is not an SSH key type; expected one of {}",
            cut(kind, SHOWN_CHARS),
            SSH_KEY_TYPES.join(", ")
        ));
    }
    let blob = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| format!("the key after {kind} is not base64"))?;
    // The blob starts with the key type as an SSH string: a 4-byte length, then the name.
    let named = blob
        .get(..4)
        .and_then(|len| {
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            blob.get(4..4 + len)
        })
        .map(|name| name == kind.as_bytes())
        .unwrap_or(false);
    if !named {
        return Err(format!(
            "the key's data does not say {kind}; the line is cut or mixes two keys"
        ));
    }
    Ok(())
}

fn placement_fields(cloud: ClusterCloud) -> &'static str {
    match cloud {
        ClusterCloud::Vsphere => "datacenter, datastore, network, resourcePool, folder",
        ClusterCloud::Aws => "region, sshKeyName, subnets",
        ClusterCloud::Azure => "location, resourceGroup, subscriptionId",
        ClusterCloud::Sim => "",
    }
}

fn check_machine(
    cloud: ClusterCloud,
    subject: &str,
    machine: &MachineShape,
    findings: &mut Findings,
) {
    let mut need = |field: &str, present: bool, why: &str| {
        if !present {
            findings.error(format!("{subject}.{field}"), format!("is missing; {why}"));
        }
    };
    match cloud {
        ClusterCloud::Vsphere => {
            need(
                "cpus",
                machine.cpus.is_some(),
                "vSphere machines are sized by cpus, memoryMib and diskGib",
            );
            need(
                "memoryMib",
                machine.memory_mib.is_some(),
                "vSphere machines are sized by cpus, memoryMib and diskGib",
            );
            need(
                "diskGib",
                machine.disk_gib.is_some(),
                "vSphere machines are sized by cpus, memoryMib and diskGib",
            );
        }
        ClusterCloud::Aws => need(
            "instanceType",
            machine.instance_type.is_some(),
            "AWS machines are sized by their EC2 instance type, e.g. m5.xlarge",
        ),
        ClusterCloud::Azure => need(
            "vmSize",
            machine.vm_size.is_some(),
            "Azure machines are sized by their VM size, e.g. Standard_D4s_v3",
        ),
        ClusterCloud::Sim => {}
    }
    let foreign = [
        (
            "instanceType",
            machine.instance_type.is_some() && cloud != ClusterCloud::Aws,
        ),
        (
            "vmSize",
            machine.vm_size.is_some() && cloud != ClusterCloud::Azure,
        ),
    ];
    for (field, wrong) in foreign {
        if wrong {
            findings.error(
                format!("{subject}.{field}"),
                format!("is set, but means nothing on {cloud}; remove it"),
            );
        }
    }
}

/// The account is for the cluster's cloud, carries its cloud's settings, and its secret
/// (whose key names are given, when it was found) holds the keys the provider reads.
pub fn validate_account(
    cluster: &WorkloadCluster,
    account: &CloudAccount,
    secret_keys: Option<&[String]>,
) -> Findings {
    let mut findings = Findings::new();
    let name = account.metadata.name.as_deref().unwrap_or_default();
    let subject = format!("CloudAccount {name}");
    let cloud = cluster.spec.cloud_type;
    if account.spec.cloud_type != cloud {
        findings.error(
            format!("{subject}: spec.cloudType"),
            format!(
                "is {}, but the cluster's cloudType is {cloud}",
                account.spec.cloud_type
            ),
        );
        return findings;
    }
    match cloud {
        ClusterCloud::Vsphere if account.spec.vsphere.is_none() => findings.error(
            format!("{subject}: spec.vsphere"),
            "is missing; a vsphere account needs vCenter's server and thumbprint",
        ),
        ClusterCloud::Azure if account.spec.azure.is_none() => findings.error(
            format!("{subject}: spec.azure"),
            "is missing; an azure account needs the service principal's tenantId and clientId",
        ),
        _ => {}
    }
    let required = required_secret_keys(cloud);
    if required.is_empty() {
        return findings;
    }
    let Some(secret) = &account.spec.secret_ref else {
        findings.error(
            format!("{subject}: spec.secretRef"),
            format!(
                "is missing; {cloud} accounts need a Secret with {}",
                required.join(", ")
            ),
        );
        return findings;
    };
    match secret_keys {
        None => findings.error(
            format!("{subject}: spec.secretRef"),
            format!(
                "Secret {:?} was not found in the account's namespace",
                secret.name
            ),
        ),
        Some(keys) => {
            let missing: Vec<&str> = required
                .iter()
                .copied()
                .filter(|k| !keys.iter().any(|have| have == k))
                .collect();
            if !missing.is_empty() {
                findings.error(
                    format!("{subject}: Secret {}", secret.name),
                    format!(
                        "has no key {}; {cloud} accounts need {} (it has: {})",
                        missing.join(", "),
                        required.join(", "),
                        if keys.is_empty() {
                            "none".to_string()
                        } else {
                            keys.join(", ")
                        }
                    ),
                );
            }
        }
    }
    findings
}
