//! The Cluster API provider components of a workload cluster, which its agent installs
//! before anything moves: the CRDs (copied from the management cluster, which runs the
//! very provider versions the cluster's objects were written for) and the controllers
//! that act on them, one Deployment of the image the management controller is configured
//! with for the cluster's cloud (`strata controller --provider-image CLOUD=IMAGE`).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, Namespace, PodSpec, ResourceRequirements, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::cluster::ClusterCloud;
use crate::contracts::labels::{APP_NAME_LABEL, MANAGED_BY, MANAGED_BY_LABEL};
use crate::contracts::names::{PROVIDER_NAME, PROVIDER_NAMESPACE};
use crate::workload_singleton::{
    cluster_admin_binding, restricted_container, singleton_deployment, singleton_pod,
};
/// The image the sim cloud's providers run by default: the simulator.
pub const DEFAULT_SIM_PROVIDER_IMAGE: &str =
    concat!("strata-sim-cloud:", env!("CARGO_PKG_VERSION"));

/// The provider controllers of one cloud: an image and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderController {
    pub image: String,
    pub args: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderFlagError {
    #[error("{flag} {value:?}: expected CLOUD=VALUE with CLOUD one of vsphere, aws, azure, sim")]
    Malformed { flag: &'static str, value: String },
    #[error("{flag} {value:?}: unknown cloud {cloud:?} (expected vsphere, aws, azure or sim)")]
    UnknownCloud {
        flag: &'static str,
        value: String,
        cloud: String,
    },
    #[error(
        "--provider-arg {value:?} is for cloud {cloud}, which has no --provider-image to pass it to"
    )]
    ArgWithoutImage { value: String, cloud: String },
}

fn cloud_named(name: &str) -> Option<ClusterCloud> {
    [
        ClusterCloud::Vsphere,
        ClusterCloud::Aws,
        ClusterCloud::Azure,
        ClusterCloud::Sim,
    ]
    .into_iter()
    .find(|c| c.as_str() == name)
}

fn split_flag(
    flag: &'static str,
    value: &str,
) -> Result<(ClusterCloud, String), ProviderFlagError> {
    let (cloud, rest) = value
        .split_once('=')
        .filter(|(c, r)| !c.is_empty() && !r.is_empty())
        .ok_or_else(|| ProviderFlagError::Malformed {
            flag,
            value: value.to_string(),
        })?;
    let cloud = cloud_named(cloud).ok_or_else(|| ProviderFlagError::UnknownCloud {
        flag,
        value: value.to_string(),
        cloud: cloud.to_string(),
    })?;
    Ok((cloud, rest.to_string()))
}

/// The provider controllers per cloud from `--provider-image CLOUD=IMAGE` and
/// `--provider-arg CLOUD=ARG` (in order; an argument needs its cloud's image).
pub fn parse_provider_flags(
    images: &[String],
    args: &[String],
) -> Result<HashMap<ClusterCloud, ProviderController>, ProviderFlagError> {
    let mut controllers = HashMap::new();
    for value in images {
        let (cloud, image) = split_flag("--provider-image", value)?;
        controllers.insert(
            cloud,
            ProviderController {
                image,
                args: Vec::new(),
            },
        );
    }
    for value in args {
        let (cloud, arg) = split_flag("--provider-arg", value)?;
        let controller =
            controllers
                .get_mut(&cloud)
                .ok_or_else(|| ProviderFlagError::ArgWithoutImage {
                    value: value.to_string(),
                    cloud: cloud.as_str().to_string(),
                })?;
        controller.args.push(arg);
    }
    Ok(controllers)
}

/// The objects that run the provider controllers in a workload cluster.
pub struct ProviderObjects {
    pub namespace: Namespace,
    pub service_account: ServiceAccount,
    pub binding: ClusterRoleBinding,
    pub deployment: Deployment,
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP_NAME_LABEL.to_string(), PROVIDER_NAME.to_string()),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
    ])
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(String::from),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

/// Requests and limits, each `(cpu, memory)`.
pub fn resources(requests: (&str, &str), limits: (&str, &str)) -> ResourceRequirements {
    let pair = |(cpu, memory): (&str, &str)| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])
    };
    ResourceRequirements {
        requests: Some(pair(requests)),
        limits: Some(pair(limits)),
        ..ResourceRequirements::default()
    }
}

pub fn provider_objects(controller: &ProviderController) -> ProviderObjects {
    let container = Container {
        name: "providers".into(),
        image: Some(controller.image.clone()),
        args: (!controller.args.is_empty()).then(|| controller.args.clone()),
        // Cluster API's core, kubeadm and infrastructure controllers together: upstream
        // each asks for tens of millicores and about 64 MiB and stays within a few hundred
        // MiB with their caches of a cluster's objects; one cluster's objects are few.
        resources: Some(resources(("100m", "128Mi"), ("1", "512Mi"))),
        security_context: Some(restricted_container()),
        // No probes: the controllers serve no health endpoint; a crash restarts them.
        ..Container::default()
    };
    // Two provider controllers acting on the same objects at once would fight.
    let deployment = singleton_deployment(
        meta(PROVIDER_NAME, Some(PROVIDER_NAMESPACE)),
        singleton_pod(PodSpec {
            service_account_name: Some(PROVIDER_NAME.into()),
            containers: vec![container],
            ..PodSpec::default()
        }),
    );
    ProviderObjects {
        namespace: Namespace {
            metadata: meta(PROVIDER_NAMESPACE, None),
            ..Namespace::default()
        },
        service_account: ServiceAccount {
            metadata: meta(PROVIDER_NAME, Some(PROVIDER_NAMESPACE)),
            ..ServiceAccount::default()
        },
        // Cluster API's controllers manage machines, nodes and secrets across the cluster.
        binding: cluster_admin_binding(meta(PROVIDER_NAME, None), PROVIDER_NAMESPACE),
        deployment,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_give_each_cloud_its_image_and_arguments_in_order() {
        let parsed = parse_provider_flags(
            &strings(&["sim=strata-sim-cloud:1", "vsphere=capv:1.11"]),
            &strings(&["sim=--fast", "sim=--resync-ms=200"]),
        )
        .unwrap();
        assert_eq!(
            parsed[&ClusterCloud::Sim],
            ProviderController {
                image: "strata-sim-cloud:1".into(),
                args: strings(&["--fast", "--resync-ms=200"]),
            }
        );
        assert_eq!(parsed[&ClusterCloud::Vsphere].args, Vec::<String>::new());
        assert!(!parsed.contains_key(&ClusterCloud::Aws));
    }

    #[test]
    fn bad_flags_name_the_flag_and_what_was_expected() {
        let err = parse_provider_flags(&strings(&["strata-sim-cloud:1"]), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--provider-image \"strata-sim-cloud:1\": expected CLOUD=VALUE with CLOUD one of vsphere, aws, azure, sim"
        );
        let err = parse_provider_flags(&strings(&["gcp=capg:1"]), &[]).unwrap_err();
        assert!(
            matches!(&err, ProviderFlagError::UnknownCloud { cloud, .. } if cloud == "gcp"),
            "{err}"
        );
        let err = parse_provider_flags(&strings(&["sim=s:1"]), &strings(&["aws=--x"])).unwrap_err();
        assert_eq!(
            err,
            ProviderFlagError::ArgWithoutImage {
                value: "aws=--x".into(),
                cloud: "aws".into()
            }
        );
    }

    #[test]
    fn provider_deployment_runs_the_image_with_its_arguments_as_cluster_admin() {
        let objects = provider_objects(&ProviderController {
            image: "strata-sim-cloud:1".into(),
            args: strings(&["--fast"]),
        });
        let pod = objects.deployment.spec.unwrap().template.spec.unwrap();
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("strata-sim-cloud:1")
        );
        assert_eq!(
            pod.containers[0].args.as_deref(),
            Some(&strings(&["--fast"])[..])
        );
        assert_eq!(pod.service_account_name.as_deref(), Some(PROVIDER_NAME));
        let subject = &objects.binding.subjects.unwrap()[0];
        assert_eq!(subject.namespace.as_deref(), Some(PROVIDER_NAMESPACE));
        assert_eq!(objects.binding.role_ref.name, "cluster-admin");
    }

    #[test]
    fn provider_pod_runs_before_the_cni_on_any_node_and_cannot_gain_privileges() {
        let objects = provider_objects(&ProviderController {
            image: "strata-sim-cloud:1".into(),
            args: Vec::new(),
        });
        let pod = objects.deployment.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.host_network, Some(true));
        assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
        assert_eq!(
            pod.priority_class_name.as_deref(),
            Some("system-cluster-critical")
        );
        let tolerated: Vec<(String, String)> = pod
            .tolerations
            .unwrap()
            .into_iter()
            .map(|t| (t.key.unwrap(), t.effect.unwrap()))
            .collect();
        for wanted in [
            ("node-role.kubernetes.io/control-plane", "NoSchedule"),
            ("node.kubernetes.io/not-ready", "NoSchedule"),
            ("node.kubernetes.io/not-ready", "NoExecute"),
        ] {
            assert!(
                tolerated.contains(&(wanted.0.into(), wanted.1.into())),
                "{wanted:?} in {tolerated:?}"
            );
        }
        let security = pod.security_context.unwrap();
        assert_eq!(security.run_as_non_root, Some(true));
        assert!(security.run_as_user.unwrap() > 0);
        assert_eq!(security.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let container = &pod.containers[0];
        let own = container.security_context.as_ref().unwrap();
        assert_eq!(own.allow_privilege_escalation, Some(false));
        assert_eq!(own.read_only_root_filesystem, Some(true));
        assert_eq!(
            own.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&strings(&["ALL"])[..])
        );
        let resources = container.resources.as_ref().unwrap();
        assert_eq!(resources.requests.as_ref().unwrap()["memory"].0, "128Mi");
        assert_eq!(resources.limits.as_ref().unwrap()["memory"].0, "512Mi");
    }
}
