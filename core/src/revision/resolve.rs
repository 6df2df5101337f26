//! From a validated cluster, its composed stack and its cloud account to the desired
//! state a revision pins.

use serde_yaml::Value;
use sha2::{Digest, Sha256};

use super::kubeadm_values::{layer_settings, merge_layer};
use super::{AccountSettings, DesiredState, KubeadmSettings, OsImage, RevisionLayer};
use crate::cloud_account::CloudAccount;
use crate::cluster::{
    ClusterCloud, ResolvedNetwork, WorkloadCluster, certificates_expiry_days, check_network,
};
use crate::finding::Findings;
use crate::pack::manifest::Layer;
use crate::profile::compose::{ComposedStack, StackLayer};
use crate::values_merge::lookup;

/// The name of revision `number` of cluster `cluster`.
pub fn revision_name(cluster: &str, number: i64) -> String {
    format!("{cluster}-r{number}")
}

/// `sha256:<hex>` of a spec's JSON (struct fields in declaration order, maps sorted), so
/// equal intents hash equal: a desired state, a cluster's or a profile's spec.
pub fn content_hash<T: serde::Serialize + ?Sized>(spec: &T) -> String {
    let json = serde_json::to_vec(spec).unwrap_or_default();
    let digest = Sha256::digest(&json);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn layer_name(layer: Layer) -> String {
    serde_json::to_value(layer)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{layer:?}").to_lowercase())
}

/// The desired state of `cluster` from its composed `stack`. Errors name the field or
/// layer: a stack without an OS or Kubernetes layer, an OS pack without the image its
/// cloud needs, bad kubeadm values, a bad cluster network. Layer values are stored with
/// their secrets masked.
pub fn desired_state(
    cluster: &WorkloadCluster,
    stack: &ComposedStack,
    account: Option<&CloudAccount>,
) -> Result<DesiredState, Findings> {
    let mut findings = Findings::new();
    let cloud = cluster.spec.cloud_type;
    let os = stack.layers.iter().find(|l| l.layer == Layer::Os);
    let k8s = stack.layers.iter().find(|l| l.layer == Layer::K8s);
    if os.is_none() {
        findings.error(
            "spec.profiles",
            "the composed stack has no os layer; the machines need an image",
        );
    }
    if k8s.is_none() {
        findings.error(
            "spec.profiles",
            "the composed stack has no k8s layer; the cluster needs a Kubernetes version",
        );
    }
    let (Some(os), Some(k8s)) = (os, k8s) else {
        return Err(findings);
    };
    let os_image = OsImage {
        pack: os.name.clone(),
        version: os.version.clone(),
        annotations: os.manifest.annotations.clone(),
    };
    check_image(cloud, &os_image, &mut findings);
    check_image_fits(cluster, &os_image, &mut findings);

    let k8s_subject = format!("profile {}: layer {}", k8s.profile, k8s.name);
    let kubernetes_version = format!("v{}", k8s.version.trim_start_matches('v'));
    if semver::Version::parse(kubernetes_version.trim_start_matches('v')).is_err() {
        findings.error(
            &k8s_subject,
            format!(
                "version {:?} is not a Kubernetes release; expected MAJOR.MINOR.PATCH",
                k8s.version
            ),
        );
    }
    let mut kubeadm = KubeadmSettings::default();
    for l in &stack.layers {
        let subject = format!("profile {}: layer {}", l.profile, l.name);
        merge_layer(
            &mut kubeadm,
            layer_settings(l.values.unmasked(), &subject, &mut findings),
        );
    }
    let text = |path: &str| lookup(k8s.values.unmasked(), path).and_then(Value::as_str);
    let network = ResolvedNetwork::resolve(
        cluster.spec.cluster_network.as_ref(),
        text("pack.podCIDR"),
        text("pack.serviceClusterIpRange"),
    );
    findings.extend(check_network(&network));

    let mut layers = Vec::new();
    for l in &stack.layers {
        let values = match serde_yaml::to_string(&l.values.masked()) {
            Ok(v) => v,
            Err(e) => {
                findings.error(
                    format!("profile {}: layer {}", l.profile, l.name),
                    format!("its merged values cannot be written as YAML: {e}"),
                );
                continue;
            }
        };
        layers.push(RevisionLayer {
            order: u32::try_from(l.order).unwrap_or(u32::MAX),
            name: l.name.clone(),
            version: l.version.clone(),
            layer: layer_name(l.layer),
            registry: l.registry.clone(),
            digest: l.digest.clone(),
            values,
            secrets_digest: secrets_digest(l),
        });
    }
    if findings.has_errors() {
        return Err(findings);
    }
    let spec = &cluster.spec;
    Ok(DesiredState {
        cloud_type: cloud,
        profiles: stack.profiles.clone(),
        kubernetes_version,
        os: os_image,
        kubeadm,
        layers,
        node_pools: spec.node_pools.resolved(),
        network,
        certificates_expiry_days: Some(certificates_expiry_days(spec.certificates_expiry_days)),
        vsphere: spec
            .vsphere
            .clone()
            .filter(|_| cloud == ClusterCloud::Vsphere),
        aws: spec.aws.clone().filter(|_| cloud == ClusterCloud::Aws),
        azure: spec.azure.clone().filter(|_| cloud == ClusterCloud::Azure),
        account: account.map(|a| AccountSettings {
            name: a.metadata.name.clone().unwrap_or_default(),
            vsphere: a.spec.vsphere.clone(),
            azure: a.spec.azure.clone(),
        }),
        // The providers come from the management cluster's inventory, which the
        // controller reads and pins beside this.
        providers: Vec::new(),
    })
}

/// `sha256:` over the layer's name, pack digest and secret values, or `None` without any.
fn secrets_digest(layer: &StackLayer) -> Option<String> {
    let secrets = layer.values.secret_values();
    if secrets.is_empty() {
        return None;
    }
    let mut hasher = Sha256::new();
    for part in [layer.name.as_str(), layer.digest.as_str()] {
        hasher.update(part.len().to_le_bytes());
        hasher.update(part.as_bytes());
    }
    for (key, value) in &secrets {
        let value = serde_json::to_string(value).unwrap_or_default();
        for part in [key.as_str(), value.as_str()] {
            hasher.update(part.len().to_le_bytes());
            hasher.update(part.as_bytes());
        }
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!("sha256:{hex}"))
}

/// The OS pack carries the image its cloud boots from.
fn check_image(cloud: ClusterCloud, os: &OsImage, findings: &mut Findings) {
    let needed: &[&str] = match cloud {
        ClusterCloud::Aws => &["imageId"],
        ClusterCloud::Vsphere => &["imageId"],
        ClusterCloud::Azure => &["imagePublisher", "imageOffer", "imageSKU"],
        ClusterCloud::Sim => &[],
    };
    let what = match cloud {
        ClusterCloud::Aws => "the AMI of the machines",
        ClusterCloud::Vsphere => "the VM template or OVA the machines are cloned from",
        ClusterCloud::Azure => "the marketplace image of the machines",
        ClusterCloud::Sim => "",
    };
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|k| os.annotation(k).is_none())
        .collect();
    if !missing.is_empty() {
        findings.error(
            format!("os layer {} {}", os.pack, os.version),
            format!(
                "pack.json has no annotation {}; on {cloud} it gives {what}",
                missing.join(", ")
            ),
        );
    }
}

/// An OS pack image the cloud's provider cannot use, refused before anything is created,
/// with what to do instead.
fn check_image_fits(cluster: &WorkloadCluster, os: &OsImage, findings: &mut Findings) {
    let subject = format!("os layer {} {}", os.pack, os.version);
    let Some(image) = os.annotation("imageId") else {
        return;
    };
    match cluster.spec.cloud_type {
        ClusterCloud::Vsphere => {
            let lower = image.to_ascii_lowercase();
            if lower.starts_with("http://")
                || lower.starts_with("https://")
                || lower.ends_with(".ova")
            {
                findings.error(
                    subject,
                    format!(
                        "annotation imageId is {image:?}, an OVA; CAPV clones machines from a VM template in vCenter and cannot import an OVA: import it once as a template (for example govc import.ova -name NAME URL, then govc vm.markastemplate NAME) and set imageId to that template's inventory path or name"
                    ),
                );
            }
        }
        ClusterCloud::Aws => {
            let hex = image.strip_prefix("ami-").unwrap_or_default();
            if !matches!(hex.len(), 8 | 17) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                findings.error(
                    &subject,
                    format!("annotation imageId is {image:?}: expected an AMI ID (ami- and 8 or 17 hexadecimal digits)"),
                );
            }
            // An AMI exists in one region only.
            let region = cluster.spec.aws.as_ref().map(|a| a.region.as_str());
            if let (Some(image_region), Some(region)) = (os.annotation("cloudRegion"), region)
                && image_region != region
            {
                findings.error(
                    subject,
                    format!(
                        "AMI {image} is in region {image_region} (annotation cloudRegion), and the cluster is in {region} (spec.aws.region); AMIs are regional: copy it to {region} (aws ec2 copy-image) and use an OS pack version that names the copy"
                    ),
                );
            }
        }
        ClusterCloud::Azure | ClusterCloud::Sim => {}
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
