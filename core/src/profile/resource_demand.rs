//! What a pack's components ask of the nodes, read from the layer's effective values
//! through the `resourceRequestParamRef` and `replicaCountParamRef` of its resource
//! constraints, and checked against the node pools the component is scheduled on.
//!
//! Strata's reading (the format documents the fields, not their meaning): the request path
//! names one replica's request as a Kubernetes quantity (`500m`, `2`, `512Mi`, `10Gi`), the
//! replica path an integer (1 when there is no replica path). Then:
//! - one replica must fit on a node of at least one of the component's pools;
//! - all replicas together must fit in those pools' total (count × node size).
//!
//! The values are the merged ones (pack defaults < profile < cluster overrides), so raising
//! the replicas in a cluster's override is checked as much as the pack's defaults.

use serde_yaml::Value;

use crate::bounded_text::cut;
use crate::cluster::MachineShape;
use crate::pack::key_path::{KeyPath, Resolved};
use crate::pack::manifest::{ResourceComponent, ResourceType};
use crate::quantity::parse_quantity;

/// How much of a value a message repeats: the values are a pack's, and may be anything.
const SHOWN_CHARS: usize = 64;

/// One pool a component may run on: its name, node count and node shape.
pub struct PoolCapacity<'a> {
    pub name: String,
    pub count: u32,
    pub machine: &'a MachineShape,
}

/// What checking one component found.
#[derive(Debug, Clone, PartialEq)]
pub enum DemandFinding {
    /// The demand does not fit: an error.
    Unmet(String),
    /// Something made the check impossible (a pool without its size, a path naming no
    /// value): a warning.
    Unchecked(String),
}

/// The component's demand, when it names a request path; `None` when it asks nothing
/// checkable (no request path), which the per-node `minLimit` check covers.
pub fn check_component(
    pack: &str,
    kind: ResourceType,
    component: &ResourceComponent,
    values: &Value,
    pools: &[PoolCapacity<'_>],
) -> Option<DemandFinding> {
    let request_path = component.resource_request_param_ref.as_deref()?;
    let request_text = match lookup(values, request_path) {
        Ok(Some(value)) => value,
        Ok(None) => {
            return Some(DemandFinding::Unchecked(format!(
                "{pack}'s values have no {request_path} (its resourceRequestParamRef), so its {kind} request is not checked"
            )));
        }
        Err(problem) => return Some(DemandFinding::Unchecked(problem)),
    };
    let Some(request) = quantity_in_unit(&request_text, kind) else {
        return Some(DemandFinding::Unmet(format!(
            "{pack}'s {request_path} is {:?}, not a {kind} quantity; expected {}",
            cut(&request_text, SHOWN_CHARS),
            example(kind)
        )));
    };
    let (replicas, replicas_from) = match component.replica_count_param_ref.as_deref() {
        None => (1u64, String::new()),
        Some(path) => match lookup(values, path) {
            Ok(Some(text)) => match text.trim().parse::<u64>() {
                Ok(n) => (n, format!(" × {n} replicas ({path})")),
                Err(_) => {
                    return Some(DemandFinding::Unmet(format!(
                        "{pack}'s {path} is {:?}, not a replica count; expected a whole number",
                        cut(&text, SHOWN_CHARS)
                    )));
                }
            },
            Ok(None) => (1, format!(" (no {path}: 1 replica)")),
            Err(problem) => return Some(DemandFinding::Unchecked(problem)),
        },
    };
    if replicas == 0 {
        return None;
    }
    let unit = unit(kind);
    let mut unknown = Vec::new();
    let mut known = Vec::new();
    for pool in pools {
        match amount(pool.machine, kind) {
            Some(size) => known.push((pool, size)),
            None => unknown.push(pool.name.as_str()),
        }
    }
    if !unknown.is_empty() {
        return Some(DemandFinding::Unchecked(format!(
            "{pack} asks {} {unit} of {kind} per replica ({request_path}); node pool {} does not say its size, so this is not checked",
            show(request),
            unknown.join(", ")
        )));
    }
    let names = || {
        known
            .iter()
            .map(|(p, _)| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let largest = known.iter().map(|(_, size)| *size).fold(0.0, f64::max);
    if request > largest {
        return Some(DemandFinding::Unmet(format!(
            "{pack} asks {} {unit} of {kind} per replica ({request_path}); no node of node pool {} has that much (the largest has {})",
            show(request),
            names(),
            show(largest)
        )));
    }
    let capacity: f64 = known
        .iter()
        .map(|(p, size)| f64::from(p.count) * size)
        .sum();
    let total = request * replicas as f64;
    if total > capacity {
        return Some(DemandFinding::Unmet(format!(
            "{pack} asks {} {unit} of {kind} ({request_path}){replicas_from} = {} {unit}; node pool {} has {} {unit} in all",
            show(request),
            show(total),
            names(),
            show(capacity)
        )));
    }
    None
}

/// The value at a dotted path, as text; `Ok(None)` when absent, `Err` (a warning: the
/// format leaves the path's target open) when it names several values or no scalar.
fn lookup(values: &Value, path: &str) -> Result<Option<String>, String> {
    let Ok(key_path) = KeyPath::parse(path) else {
        // The pack's validation names a malformed path; nothing to evaluate here.
        return Ok(None);
    };
    let found: Vec<&Value> = key_path
        .resolve(values)
        .into_iter()
        .filter_map(|r| match r {
            Resolved::Found { value, .. } => Some(value),
            _ => None,
        })
        .collect();
    match found.as_slice() {
        [] => Ok(None),
        [Value::Null] => Ok(None),
        [Value::String(text)] => Ok(Some(text.clone())),
        [Value::Number(n)] => Ok(Some(n.to_string())),
        [other] => Err(format!(
            "the value at {path} is {}, not a single quantity, so it is not checked",
            crate::pack::yaml_text::describe_kind(other)
        )),
        _ => Err(format!(
            "{path} names {} values, not one, so it is not checked",
            found.len()
        )),
    }
}

/// A Kubernetes quantity in the unit nodes are sized in: CPUs for cpu, MiB for memory,
/// GiB for diskSize.
pub fn quantity_in_unit(text: &str, kind: ResourceType) -> Option<f64> {
    let base = parse_quantity(text)?;
    Some(match kind {
        ResourceType::Cpu => base,
        ResourceType::Memory => base / f64::from(1u32 << 20),
        ResourceType::DiskSize => base / f64::from(1u32 << 30),
    })
}

/// A node's size in `kind`'s unit ([`unit`]), when its pool says it.
pub(crate) fn amount(machine: &MachineShape, kind: ResourceType) -> Option<f64> {
    match kind {
        ResourceType::Cpu => machine.cpus.map(f64::from),
        ResourceType::Memory => machine.memory_mib.map(|m| m as f64),
        ResourceType::DiskSize => machine.disk_gib.map(|g| g as f64),
    }
}

pub(crate) fn unit(kind: ResourceType) -> &'static str {
    match kind {
        ResourceType::Cpu => "CPUs",
        ResourceType::Memory => "MiB",
        ResourceType::DiskSize => "GiB",
    }
}

fn example(kind: ResourceType) -> &'static str {
    match kind {
        ResourceType::Cpu => "cores such as 500m or 2",
        ResourceType::Memory => "bytes such as 512Mi or 2Gi",
        ResourceType::DiskSize => "bytes such as 10Gi",
    }
}

/// A figure without a trailing `.0`, and at most two decimals.
fn show(value: f64) -> String {
    let rounded = (value * 100.0).round() / 100.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_kubernetes_reads_them() {
        assert_eq!(quantity_in_unit("500m", ResourceType::Cpu), Some(0.5));
        assert_eq!(quantity_in_unit("2", ResourceType::Cpu), Some(2.0));
        assert_eq!(quantity_in_unit("512Mi", ResourceType::Memory), Some(512.0));
        assert_eq!(quantity_in_unit("2Gi", ResourceType::Memory), Some(2048.0));
        assert_eq!(quantity_in_unit("10Gi", ResourceType::DiskSize), Some(10.0));
        assert_eq!(quantity_in_unit("lots", ResourceType::Cpu), None);
    }
}
