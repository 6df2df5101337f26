//! What each cloud looks like from its CAPI objects: provider IDs, addresses, endpoints,
//! machine sizes and the status shape of its infrastructure cluster and machines. All of
//! it derives from object UIDs and names through a stable hash, so a pass that repeats
//! computes the same values and a moved object keeps the ones it was given.

use serde_json::{Value, json};

use super::kinds::{Contract, Provider};
use super::objects::{
    Cond, i64_at, metav1_conditions, name, namespace, stable_hash, str_at, uid, v1beta1_conditions,
};

/// `n` lowercase hex digits derived from `seed`.
fn hex(seed: &str, n: usize) -> String {
    let mut out = String::new();
    let mut round = 0u32;
    while out.len() < n {
        out.push_str(&format!("{:016x}", stable_hash(&format!("{seed}/{round}"))));
        round += 1;
    }
    out.truncate(n);
    out
}

fn uuid_from(seed: &str) -> String {
    let h = hex(seed, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A private address in `prefix` (two octets), stable for `seed`.
fn address_in(prefix: &str, seed: &str) -> String {
    let h = stable_hash(seed);
    format!("{prefix}.{}.{}", (h >> 8) % 254 + 1, h % 250 + 4)
}

fn aws_region(infra_cluster: &Value) -> &str {
    str_at(infra_cluster, "/spec/region").unwrap_or("us-east-1")
}

/// The availability zone of the machine's subnet, as CAPA picks it.
fn aws_zone(infra_cluster: &Value, machine: &Value) -> String {
    let subnet = str_at(machine, "/spec/subnet/id");
    let subnets = infra_cluster
        .pointer("/spec/network/subnets")
        .and_then(Value::as_array);
    subnets
        .and_then(|s| {
            s.iter()
                .find(|s| subnet.is_some() && str_at(s, "/id") == subnet)
                .or_else(|| s.first())
        })
        .and_then(|s| str_at(s, "/availabilityZone"))
        .map(String::from)
        .unwrap_or_else(|| format!("{}a", aws_region(infra_cluster)))
}

fn azure_group(infra_cluster: &Value) -> (String, String) {
    let subscription = str_at(infra_cluster, "/spec/subscriptionID")
        .map(String::from)
        .unwrap_or_else(|| uuid_from(&format!("subscription/{}", uid(infra_cluster))));
    let group = str_at(infra_cluster, "/spec/resourceGroup")
        .unwrap_or(name(infra_cluster))
        .to_string();
    (subscription, group)
}

/// What the infrastructure machine becomes once its instance exists.
#[derive(Debug, Clone)]
pub struct Instance {
    pub provider_id: String,
    /// Extra spec fields the provider sets beside `providerID` (CAPA's `instanceID`).
    pub spec: Value,
    pub addresses: Value,
}

/// The instance for an infrastructure machine: its recorded provider ID when it has one
/// (a moved machine keeps its instance), else a new one in the provider's format.
pub fn instance(provider: Provider, infra_cluster: &Value, machine: &Value) -> Instance {
    let seed = uid(machine);
    let machine_name = name(machine);
    let recorded = str_at(machine, "/spec/providerID").map(String::from);
    match provider {
        Provider::VSphere => {
            let ip = address_in("10.10", seed);
            Instance {
                provider_id: recorded.unwrap_or_else(|| format!("vsphere://{}", uuid_from(seed))),
                spec: json!({}),
                addresses: json!([{ "type": "InternalIP", "address": ip }]),
            }
        }
        Provider::Aws => {
            let instance_id = str_at(machine, "/spec/instanceID")
                .map(String::from)
                .unwrap_or_else(|| format!("i-{}", hex(seed, 17)));
            let ip = address_in("10.0", seed);
            let region = aws_region(infra_cluster);
            let domain = if region == "us-east-1" {
                "ec2.internal".to_string()
            } else {
                format!("{region}.compute.internal")
            };
            let zone = aws_zone(infra_cluster, machine);
            Instance {
                provider_id: recorded.unwrap_or_else(|| format!("aws:///{zone}/{instance_id}")),
                spec: json!({ "instanceID": instance_id }),
                addresses: json!([
                    { "type": "InternalIP", "address": ip },
                    { "type": "InternalDNS", "address": format!("ip-{}.{domain}", ip.replace('.', "-")) },
                ]),
            }
        }
        Provider::Azure => {
            let (subscription, group) = azure_group(infra_cluster);
            Instance {
                provider_id: recorded.unwrap_or_else(|| {
                    format!(
                        "azure:///subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{machine_name}"
                    )
                }),
                spec: json!({}),
                addresses: json!([{ "type": "InternalIP", "address": address_in("10.1", seed) }]),
            }
        }
        Provider::Sim => Instance {
            provider_id: recorded.unwrap_or_else(|| {
                format!(
                    "sim://{}/{machine_name}-{}",
                    namespace(machine),
                    hex(seed, 8)
                )
            }),
            spec: json!({}),
            addresses: json!([
                { "type": "InternalIP", "address": address_in("10.99", seed) },
                { "type": "Hostname", "address": machine_name },
            ]),
        },
    }
}

/// CPUs and MiB of memory of the machine's instance type, for the Node's capacity.
pub fn size(provider: Provider, machine: &Value) -> (u32, u64) {
    let by_type = |t: &str| -> (u32, u64) {
        let t = t.to_ascii_lowercase();
        let cpus = if t.contains("8xlarge") || t.contains("d32") {
            32
        } else if t.contains("4xlarge") || t.contains("d16") {
            16
        } else if t.contains("2xlarge") || t.contains("d8") {
            8
        } else if t.contains("xlarge") || t.contains("d4") {
            4
        } else {
            2
        };
        (cpus, u64::from(cpus) * 4096)
    };
    match provider {
        Provider::VSphere => (
            i64_at(machine, "/spec/numCPUs").unwrap_or(2).max(1) as u32,
            i64_at(machine, "/spec/memoryMiB").unwrap_or(4096).max(1) as u64,
        ),
        Provider::Sim => (
            i64_at(machine, "/spec/cpus").unwrap_or(2).max(1) as u32,
            i64_at(machine, "/spec/memoryMiB").unwrap_or(4096).max(1) as u64,
        ),
        Provider::Aws => by_type(str_at(machine, "/spec/instanceType").unwrap_or_default()),
        Provider::Azure => by_type(str_at(machine, "/spec/vmSize").unwrap_or_default()),
    }
}

/// Where the provider says the API server is before the workload control plane exists: a
/// load balancer name for the clouds that make one, the address the user set for vSphere
/// (kube-vip), else an address in the machine network.
pub fn placeholder_endpoint(
    provider: Provider,
    cluster_name: &str,
    infra: &Value,
) -> (String, i64) {
    if let Some(host) = str_at(infra, "/spec/controlPlaneEndpoint/host").filter(|h| !h.is_empty()) {
        let port = i64_at(infra, "/spec/controlPlaneEndpoint/port").unwrap_or(6443);
        return (host.to_string(), port);
    }
    let seed = uid(infra);
    let host = match provider {
        Provider::Aws => format!(
            "{cluster_name}-apiserver-{}.elb.{}.amazonaws.com",
            stable_hash(seed) % 10_000_000_000,
            aws_region(infra)
        ),
        Provider::Azure => format!(
            "{cluster_name}-{}.{}.cloudapp.azure.com",
            hex(seed, 6),
            str_at(infra, "/spec/location").unwrap_or("eastus")
        ),
        Provider::VSphere => address_in("10.10", &format!("vip/{seed}")),
        Provider::Sim => format!("{cluster_name}.{}.sim.strata.dev", namespace(infra)),
    };
    (host, 6443)
}

/// The status an infrastructure cluster reports once (or before) it is provisioned.
pub fn cluster_status(provider: Provider, infra: &Value, provisioned: bool, host: &str) -> Value {
    let generation = i64_at(infra, "/metadata/generation").unwrap_or(0);
    let existing = infra.pointer("/status/conditions");
    let message = if provisioned {
        ""
    } else {
        "the simulated cloud is provisioning the cluster's infrastructure"
    };
    match provider {
        Provider::VSphere => json!({
            "initialization": { "provisioned": provisioned },
            "vCenterVersion": "8.0.3",
            "conditions": metav1_conditions(existing, &[
                Cond::new("Ready", provisioned, "Ready", "NotReady", message),
                Cond::new("VCenterAvailable", true, "Available", "NotAvailable", ""),
            ], generation),
        }),
        Provider::Sim => json!({
            "initialization": { "provisioned": provisioned },
            "conditions": metav1_conditions(existing, &[
                Cond::new("Ready", provisioned, "Ready", "NotReady", message),
            ], generation),
        }),
        Provider::Aws => json!({
            "ready": provisioned,
            "networkStatus": { "apiServerElb": {
                "name": format!("{}-apiserver", name(infra)),
                "dnsName": host,
                "scheme": "internet-facing",
                "loadBalancerType": "nlb",
            }},
            "conditions": v1beta1_conditions(existing, &[
                Cond::new("Ready", provisioned, "", "LoadBalancerProvisioning", message),
                Cond::new("ClusterSecurityGroupsReady", provisioned, "", "SecurityGroupsProvisioning", message),
                Cond::new("LoadBalancerReady", provisioned, "", "LoadBalancerProvisioning", message),
                Cond::new("SubnetsReady", true, "", "", ""),
                Cond::new("VpcReady", true, "", "", ""),
            ]),
        }),
        Provider::Azure => json!({
            "ready": provisioned,
            "conditions": v1beta1_conditions(existing, &[
                Cond::new("Ready", provisioned, "", "Creating", message),
                Cond::new("NetworkInfrastructureReady", provisioned, "", "Creating", message),
                Cond::new("ResourceGroupReady", true, "", "", ""),
            ]),
        }),
    }
}

/// Whether an infrastructure object reports itself provisioned, by its contract.
pub fn is_provisioned(provider: Provider, infra: &Value) -> bool {
    let pointer = match provider.contract() {
        Contract::V1Beta2 => "/status/initialization/provisioned",
        Contract::V1Beta1 => "/status/ready",
    };
    infra.pointer(pointer).and_then(Value::as_bool) == Some(true)
}

/// Where an infrastructure machine is in its life.
#[derive(Debug, Clone)]
pub enum MachineState<'a> {
    /// Waiting for bootstrap data or for its turn.
    Pending(&'a str),
    Running(&'a Instance),
    Failed {
        reason: &'a str,
        message: &'a str,
    },
}

/// The status an infrastructure machine reports in `state`.
pub fn machine_status(provider: Provider, machine: &Value, state: &MachineState<'_>) -> Value {
    let generation = i64_at(machine, "/metadata/generation").unwrap_or(0);
    let existing = machine.pointer("/status/conditions");
    let (ready, reason, message, addresses) = match state {
        MachineState::Pending(why) => (false, "Provisioning", *why, json!([])),
        MachineState::Running(instance) => (true, "", "", instance.addresses.clone()),
        MachineState::Failed { reason, message } => (false, *reason, *message, json!([])),
    };
    let failed = matches!(state, MachineState::Failed { .. });
    match provider {
        Provider::VSphere | Provider::Sim => {
            let mut status = json!({
                "initialization": { "provisioned": ready },
                "conditions": metav1_conditions(existing, &[
                    Cond::new("Ready", ready, "Ready", reason, message),
                    Cond::new(
                        if provider == Provider::Sim { "InstanceProvisioned" } else { "VirtualMachineProvisioned" },
                        ready, "Provisioned", reason, message,
                    ),
                ], generation),
            });
            if ready {
                status["addresses"] = addresses;
            }
            if provider == Provider::Sim {
                status["state"] = json!(if ready {
                    "Running"
                } else if failed {
                    "Failed"
                } else {
                    "Pending"
                });
            }
            status
        }
        Provider::Aws | Provider::Azure => {
            let (state_field, state_word) = match provider {
                Provider::Aws => (
                    "instanceState",
                    if ready {
                        "running"
                    } else if failed {
                        "terminated"
                    } else {
                        "pending"
                    },
                ),
                _ => (
                    "vmState",
                    if ready {
                        "Succeeded"
                    } else if failed {
                        "Failed"
                    } else {
                        "Creating"
                    },
                ),
            };
            let instance_condition = if provider == Provider::Aws {
                "InstanceReady"
            } else {
                "VMRunning"
            };
            let mut status = json!({
                "ready": ready,
                state_field: state_word,
                "conditions": v1beta1_conditions(existing, &[
                    Cond::new("Ready", ready, "", reason, message),
                    Cond::new(instance_condition, ready, "", reason, message),
                ]),
            });
            if ready {
                status["addresses"] = addresses;
            }
            if failed {
                // The v1beta1 contract's terminal failure fields.
                status["failureReason"] = json!("CreateError");
                status["failureMessage"] = json!(message);
            }
            status
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind_uid: &str, name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "uid": kind_uid}, "spec": spec})
    }

    #[test]
    fn provider_ids_have_each_clouds_format() {
        let aws_cluster = object(
            "c",
            "demo",
            json!({"region": "us-east-1", "network": {"subnets": [
                {"id": "subnet-1", "availabilityZone": "us-east-1b"},
            ]}}),
        );
        let aws = instance(
            Provider::Aws,
            &aws_cluster,
            &object("u1", "m1", json!({"subnet": {"id": "subnet-1"}})),
        );
        assert!(
            aws.provider_id.starts_with("aws:///us-east-1b/i-"),
            "{}",
            aws.provider_id
        );
        assert_eq!(aws.provider_id.len(), "aws:///us-east-1b/i-".len() + 17);
        let vsphere = instance(
            Provider::VSphere,
            &json!({}),
            &object("u2", "m2", json!({})),
        );
        assert!(vsphere.provider_id.starts_with("vsphere://"));
        assert_eq!(vsphere.provider_id.len(), "vsphere://".len() + 36);
        let azure_cluster = object(
            "c",
            "demo",
            json!({"subscriptionID": "sub-1", "resourceGroup": "rg-1"}),
        );
        let azure = instance(
            Provider::Azure,
            &azure_cluster,
            &object("u3", "m3", json!({})),
        );
        assert_eq!(
            azure.provider_id,
            "azure:///subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Compute/virtualMachines/m3"
        );
        // A machine that already has a provider ID keeps it.
        let kept = instance(
            Provider::Sim,
            &json!({}),
            &object("u4", "m4", json!({"providerID": "sim://ns/old"})),
        );
        assert_eq!(kept.provider_id, "sim://ns/old");
    }

    #[test]
    fn failed_machines_report_by_contract() {
        let m = object("u", "m", json!({}));
        let failed = MachineState::Failed {
            reason: "InsufficientCapacity",
            message: "no room",
        };
        let aws = machine_status(Provider::Aws, &m, &failed);
        assert_eq!(aws["ready"], false);
        assert_eq!(aws["failureReason"], "CreateError");
        let vsphere = machine_status(Provider::VSphere, &m, &failed);
        assert_eq!(vsphere["initialization"]["provisioned"], false);
        assert_eq!(vsphere["conditions"][0]["reason"], "InsufficientCapacity");
    }
}
