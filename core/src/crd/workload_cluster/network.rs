//! The cluster network: pod and service ranges and the service domain.

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::finding::Findings;

/// What the operator may set; anything unset comes from the Kubernetes layer's values
/// (`pack.podCIDR`, `pack.serviceClusterIpRange`), then from Kubernetes' usual defaults.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetwork {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_domain: Option<String>,
}

/// The network a revision pins, every field decided.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedNetwork {
    pub pod_cidrs: Vec<String>,
    pub service_cidrs: Vec<String>,
    pub service_domain: String,
}

pub const DEFAULT_POD_CIDR: &str = "192.168.0.0/16";
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
pub const DEFAULT_SERVICE_DOMAIN: &str = "cluster.local";

impl ResolvedNetwork {
    /// The cluster's choice, else the Kubernetes layer's, else the defaults.
    pub fn resolve(
        cluster: Option<&ClusterNetwork>,
        layer_pod_cidr: Option<&str>,
        layer_service_cidr: Option<&str>,
    ) -> ResolvedNetwork {
        let pick = |set: Option<&Vec<String>>, layer: Option<&str>, default: &str| match set
            .filter(|v| !v.is_empty())
        {
            Some(v) => v.clone(),
            None => vec![layer.unwrap_or(default).to_string()],
        };
        ResolvedNetwork {
            pod_cidrs: pick(
                cluster.map(|c| &c.pod_cidrs),
                layer_pod_cidr,
                DEFAULT_POD_CIDR,
            ),
            service_cidrs: pick(
                cluster.map(|c| &c.service_cidrs),
                layer_service_cidr,
                DEFAULT_SERVICE_CIDR,
            ),
            service_domain: cluster
                .and_then(|c| c.service_domain.clone())
                .unwrap_or_else(|| DEFAULT_SERVICE_DOMAIN.to_string()),
        }
    }
}

/// Every range parses, and no pod range overlaps a service range.
pub fn check_network(network: &ResolvedNetwork) -> Findings {
    let mut findings = Findings::new();
    let mut parsed = |field: &str, cidrs: &[String]| -> Vec<(String, IpNet)> {
        let mut nets = Vec::new();
        for (i, cidr) in cidrs.iter().enumerate() {
            match cidr.parse::<IpNet>() {
                Ok(net) if net.trunc() == net => nets.push((cidr.clone(), net)),
                Ok(net) => findings.error(
                    format!("spec.clusterNetwork.{field}[{i}]"),
                    format!(
                        "{cidr:?} has host bits set; expected the network address, {}",
                        net.trunc()
                    ),
                ),
                Err(_) => findings.error(
                    format!("spec.clusterNetwork.{field}[{i}]"),
                    format!(
                        "{cidr:?} is not a CIDR; expected an address range such as 10.96.0.0/12"
                    ),
                ),
            }
        }
        nets
    };
    let pods = parsed("podCidrs", &network.pod_cidrs);
    let services = parsed("serviceCidrs", &network.service_cidrs);
    for (p, pod) in &pods {
        for (s, service) in &services {
            if pod.contains(&service.network()) || service.contains(&pod.network()) {
                findings.error(
                    "spec.clusterNetwork",
                    format!(
                        "the pod range {p} overlaps the service range {s}; they must be disjoint"
                    ),
                );
            }
        }
    }
    if !is_dns_name(&network.service_domain) {
        findings.error(
            "spec.clusterNetwork.serviceDomain",
            format!(
                "{:?} is not a DNS domain; expected lowercase labels separated by dots, e.g. cluster.local",
                network.service_domain
            ),
        );
    }
    findings
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_choice_wins_over_layer_and_defaults() {
        let set = ClusterNetwork {
            pod_cidrs: vec!["10.244.0.0/16".into()],
            ..ClusterNetwork::default()
        };
        let network = ResolvedNetwork::resolve(Some(&set), Some("172.16.0.0/16"), None);
        assert_eq!(network.pod_cidrs, ["10.244.0.0/16"]);
        assert_eq!(network.service_cidrs, [DEFAULT_SERVICE_CIDR]);
        assert_eq!(network.service_domain, "cluster.local");
        let from_layer = ResolvedNetwork::resolve(None, Some("172.16.0.0/16"), None);
        assert_eq!(from_layer.pod_cidrs, ["172.16.0.0/16"]);
        assert!(check_network(&from_layer).is_empty());
    }

    #[test]
    fn bad_and_overlapping_ranges_are_named() {
        let network = ResolvedNetwork {
            pod_cidrs: vec!["10.96.0.0/16".into(), "banana".into()],
            service_cidrs: vec!["10.96.0.1/12".into(), "10.0.0.0/8".into()],
            service_domain: "Cluster.Local".into(),
        };
        let findings = check_network(&network);
        assert!(findings.contains(
            "spec.clusterNetwork.podCidrs[1]",
            "\"banana\" is not a CIDR"
        ));
        assert!(findings.contains(
            "spec.clusterNetwork.serviceCidrs[0]",
            "host bits set; expected the network address, 10.96.0.0/12"
        ));
        assert!(findings.contains(
            "spec.clusterNetwork",
            "10.96.0.0/16 overlaps the service range 10.0.0.0/8"
        ));
        assert!(findings.contains("spec.clusterNetwork.serviceDomain", "not a DNS domain"));
        assert_eq!(findings.errors().count(), 4);
    }
}
