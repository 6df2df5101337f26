//! A node pool's machine: its size, and for AWS and Azure the instance type or VM size
//! whose size is known when the operator does not state it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ClusterCloud;

/// A machine's size, which pack resource minimums are checked against. vSphere and the
/// sim cloud take CPUs, memory and disk; AWS takes an instance type and Azure a VM size
/// (whose CPUs and memory are known for common types), with `diskGib` as the root disk.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineShape {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_gib: Option<u64>,
    /// AWS: the EC2 instance type, e.g. `m5.xlarge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Azure: the VM size, e.g. `Standard_D4s_v3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_size: Option<String>,
}

/// CPUs and MiB of memory of common instance types and VM sizes.
const KNOWN_SIZES: &[(&str, u32, u64)] = &[
    ("t3.medium", 2, 4096),
    ("t3.large", 2, 8192),
    ("t3.xlarge", 4, 16384),
    ("t3.2xlarge", 8, 32768),
    ("m5.large", 2, 8192),
    ("m5.xlarge", 4, 16384),
    ("m5.2xlarge", 8, 32768),
    ("m5.4xlarge", 16, 65536),
    ("m5.8xlarge", 32, 131072),
    ("c5.large", 2, 4096),
    ("c5.xlarge", 4, 8192),
    ("c5.2xlarge", 8, 16384),
    ("c5.4xlarge", 16, 32768),
    ("r5.large", 2, 16384),
    ("r5.xlarge", 4, 32768),
    ("r5.2xlarge", 8, 65536),
    ("Standard_B2s", 2, 4096),
    ("Standard_B2ms", 2, 8192),
    ("Standard_B4ms", 4, 16384),
    ("Standard_D2s_v3", 2, 8192),
    ("Standard_D4s_v3", 4, 16384),
    ("Standard_D8s_v3", 8, 32768),
    ("Standard_D16s_v3", 16, 65536),
    ("Standard_DS2_v2", 2, 7168),
    ("Standard_DS3_v2", 4, 14336),
    ("Standard_E4s_v3", 4, 32768),
    ("Standard_E8s_v3", 8, 65536),
    ("Standard_F4s_v2", 4, 8192),
    ("Standard_F8s_v2", 8, 16384),
];

/// The CPUs and MiB of a known instance type or VM size.
pub fn known_instance_size(name: &str) -> Option<(u32, u64)> {
    KNOWN_SIZES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, cpus, mib)| (*cpus, *mib))
}

impl MachineShape {
    /// The type name the cloud sizes machines by, if it has one.
    pub fn type_name(&self, cloud: ClusterCloud) -> Option<&str> {
        match cloud {
            ClusterCloud::Aws => self.instance_type.as_deref(),
            ClusterCloud::Azure => self.vm_size.as_deref(),
            ClusterCloud::Vsphere | ClusterCloud::Sim => None,
        }
    }

    /// The shape with CPUs and memory filled in from the known size of its instance type
    /// or VM size where the operator left them out (stated values win).
    pub fn effective(&self, cloud: ClusterCloud) -> MachineShape {
        let mut shape = self.clone();
        if let Some((cpus, mib)) = self.type_name(cloud).and_then(known_instance_size) {
            shape.cpus = shape.cpus.or(Some(cpus));
            shape.memory_mib = shape.memory_mib.or(Some(mib));
        }
        shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types_fill_in_what_is_not_stated() {
        let shape = MachineShape {
            instance_type: Some("m5.xlarge".into()),
            memory_mib: Some(12000),
            ..MachineShape::default()
        };
        let effective = shape.effective(ClusterCloud::Aws);
        assert_eq!(effective.cpus, Some(4));
        assert_eq!(effective.memory_mib, Some(12000));
        // An instance type means nothing on a cloud that sizes machines otherwise.
        assert_eq!(shape.effective(ClusterCloud::Vsphere).cpus, None);
        assert_eq!(known_instance_size("Standard_D4s_v3"), Some((4, 16384)));
        assert_eq!(known_instance_size("x9.huge"), None);
    }
}
