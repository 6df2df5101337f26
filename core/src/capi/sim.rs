//! The simulated cloud (`e2e/src/cloud_sim`): `SimCluster` and `SimMachineTemplate`. It
//! needs no placement, account or identity.

use serde_json::{Map, Value, json};

use super::{InfraKinds, insert_some};
use crate::cluster::MachineShape;
use crate::contracts::capi::{SIM_CLUSTER, SIM_MACHINE_TEMPLATE};
use crate::revision::DesiredState;

pub(super) const KINDS: InfraKinds = InfraKinds {
    cluster: SIM_CLUSTER,
    machine_template: SIM_MACHINE_TEMPLATE,
};

/// Empty: the simulator sets the control-plane endpoint once it has started the
/// cluster's apiserver.
pub(super) fn cluster_spec() -> Value {
    json!({})
}

pub(super) fn machine_spec(desired: &DesiredState, machine: &MachineShape) -> Value {
    let os = &desired.os;
    let image = match os.annotation("imageId") {
        Some(image) => image.to_string(),
        None => format!(
            "{}-{}",
            os.annotation("osName").unwrap_or(&os.pack),
            os.version
        ),
    };
    let mut spec = Map::new();
    insert_some(&mut spec, "cpus", machine.cpus);
    insert_some(&mut spec, "memoryMiB", machine.memory_mib);
    spec.insert("image".into(), json!(image));
    Value::Object(spec)
}
