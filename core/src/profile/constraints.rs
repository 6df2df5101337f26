//! Pack constraints, checked on a composed stack.
//!
//! Dependencies (`constraints.dependencies` in pack.json), with inclusive version bounds:
//! - `required`: the named pack is in the stack, in the named layer, within the bounds;
//! - `optional`: if the named pack is in the stack, it is within the bounds;
//! - `notSupported`: the named pack is not in the stack within the bounds (with no bounds,
//!   not at all);
//! - `upgrade`: Strata's reading: this pack version can only be applied on top of the named
//!   pack at or above `minVersion` (and at most `maxVersion` when given), so the named pack
//!   must be in the stack and within the bounds; it is the pack that has to be upgraded
//!   first. When an upgrade dependency has no bounds it only requires presence.
//!
//! Resources (`constraints.resources`): every node of the pools a component's
//! `scheduleType` names (`control-plane`, `worker`, or `all` for both; a constraint with no
//! components means `all`) must have at least `minLimit`: CPUs for `cpu`, MiB for `memory`,
//! GiB for `diskSize`. A component's `resourceRequestParamRef` and `replicaCountParamRef`
//! are evaluated against the layer's effective values when the stack has them
//! ([`crate::profile::resource_demand`]).

use serde_yaml::Value;

use crate::cluster::NodePools;
use crate::finding::{Finding, FindingKind, Findings};
use crate::pack::manifest::{
    Dependency, DependencyType, Layer, PackManifest, ResourceType, ScheduleType,
};
use crate::profile::resource_demand::{DemandFinding, PoolCapacity, amount, check_component, unit};
use crate::version::PackVersion;

/// One pack of a stack, as constraints see it.
#[derive(Debug, Clone)]
pub struct StackEntry<'a> {
    /// Where the pack sits, for messages (`spec.layers[2]`, `profile edge-infra, layer 3`).
    pub location: String,
    pub manifest: &'a PackManifest,
    /// The layer's effective values, where they are known (a cluster's composed stack):
    /// what the resource constraints' parameter references are read from.
    pub values: Option<&'a Value>,
}

impl<'a> StackEntry<'a> {
    pub fn new(location: String, manifest: &'a PackManifest) -> Self {
        StackEntry {
            location,
            manifest,
            values: None,
        }
    }

    pub fn with_values(mut self, values: &'a Value) -> Self {
        self.values = Some(values);
        self
    }

    fn reference(&self) -> String {
        format!("{}:{}", self.manifest.name, self.manifest.version)
    }
}

/// A broken dependency; `target_layer` is the layer of the pack depended on.
#[derive(Debug, Clone)]
pub struct DependencyViolation {
    pub target_layer: Layer,
    pub finding: Finding,
}

pub fn check_dependencies(stack: &[StackEntry<'_>]) -> Vec<DependencyViolation> {
    let mut violations = Vec::new();
    for entry in stack {
        for (d, dependency) in entry.manifest.constraints.dependencies.iter().enumerate() {
            if let Some(message) = check_dependency(entry, dependency, stack) {
                violations.push(DependencyViolation {
                    target_layer: dependency.layer,
                    finding: Finding::error(
                        format!("{}: constraints.dependencies[{d}]", entry.location),
                        message,
                    )
                    .of_kind(FindingKind::ConstraintNotMet),
                });
            }
        }
    }
    violations
}

fn check_dependency(
    entry: &StackEntry<'_>,
    dependency: &Dependency,
    stack: &[StackEntry<'_>],
) -> Option<String> {
    let owner = entry.reference();
    let target = stack
        .iter()
        .find(|e| e.manifest.name == dependency.pack_name);
    let bounds = &dependency.bounds;
    let name = &dependency.pack_name;
    let layer = dependency.layer;
    let version_of = |t: &StackEntry<'_>| t.manifest.version().cloned();
    let within =
        |t: &StackEntry<'_>| version_of(t).is_some_and(|v: PackVersion| bounds.contains(&v));
    if let Some(t) = target
        && t.manifest.layer != layer
        && dependency.kind != DependencyType::NotSupported
    {
        return Some(format!(
            "{owner} depends on {name} in the {layer} layer, but {} is in the {} layer",
            t.reference(),
            t.manifest.layer
        ));
    }
    match (dependency.kind, target) {
        (DependencyType::Required, None) => Some(format!(
            "{owner} requires {name} ({bounds}) in the {layer} layer; the stack has no {name}"
        )),
        (DependencyType::Upgrade, None) => Some(format!(
            "{owner} can only be applied on top of {name} ({bounds}) in the {layer} layer; the stack has no {name}"
        )),
        (DependencyType::Required | DependencyType::Optional, Some(t)) if !within(t) => {
            Some(format!(
                "{owner} needs {name} {bounds}; the stack has {} at {}",
                name, t.manifest.version
            ))
        }
        (DependencyType::Upgrade, Some(t)) if !within(t) => Some(format!(
            "{owner} needs {name} upgraded to {bounds} first; the stack has {} at {}",
            name, t.manifest.version
        )),
        (DependencyType::NotSupported, Some(t)) if within(t) => Some(if bounds.is_unbounded() {
            format!(
                "{owner} does not support {name}, which the stack has at {}",
                t.manifest.version
            )
        } else {
            format!(
                "{owner} does not support {name} {bounds}; the stack has it at {}",
                t.manifest.version
            )
        }),
        _ => None,
    }
}

/// Checks every resource minimum of the stack against the cluster's node pools.
pub fn check_resources(stack: &[StackEntry<'_>], pools: &NodePools) -> Findings {
    let mut findings = Findings::new();
    for entry in stack {
        for (r, resource) in entry.manifest.constraints.resources.iter().enumerate() {
            let mut schedules: Vec<ScheduleType> = resource
                .components
                .iter()
                .map(|c| c.schedule_type)
                .collect();
            if schedules.is_empty() {
                schedules.push(ScheduleType::All);
            }
            let subject = format!("{}: constraints.resources[{r}]", entry.location);
            if let Some(values) = entry.values {
                for component in &resource.components {
                    let capacity = pools_for(&[component.schedule_type], pools);
                    match check_component(
                        &entry.reference(),
                        resource.kind,
                        component,
                        values,
                        &capacity,
                    ) {
                        Some(DemandFinding::Unmet(message)) => {
                            findings.error_of(FindingKind::ConstraintNotMet, &subject, message)
                        }
                        Some(DemandFinding::Unchecked(message)) => {
                            findings.warning(&subject, message)
                        }
                        None => {}
                    }
                }
            }
            let Some(min) = resource.min_limit else {
                continue;
            };
            for PoolCapacity {
                name: pool_name,
                machine,
                ..
            } in pools_for(&schedules, pools)
            {
                match amount(machine, resource.kind) {
                    Some(have) if have < min => findings.error_of(
                        FindingKind::ConstraintNotMet,
                        &subject,
                        format!(
                            "{} needs at least {min} {} of {} per node; node pool {pool_name} has {have}",
                            entry.reference(),
                            unit(resource.kind),
                            resource.kind
                        ),
                    ),
                    Some(_) => {}
                    None => findings.warning(
                        &subject,
                        format!(
                            "{} needs at least {min} {} of {} per node; node pool {pool_name} does not say its {}, so this is not checked",
                            entry.reference(),
                            unit(resource.kind),
                            resource.kind,
                            field(resource.kind)
                        ),
                    ),
                }
            }
        }
    }
    findings
}

fn pools_for<'a>(schedules: &[ScheduleType], pools: &'a NodePools) -> Vec<PoolCapacity<'a>> {
    let control_plane = schedules
        .iter()
        .any(|s| matches!(s, ScheduleType::All | ScheduleType::ControlPlane));
    let workers = schedules
        .iter()
        .any(|s| matches!(s, ScheduleType::All | ScheduleType::Worker));
    let mut result = Vec::new();
    if control_plane {
        result.push(PoolCapacity {
            name: "control-plane".to_string(),
            count: pools.control_plane.count,
            machine: &pools.control_plane.machine,
        });
    }
    if workers {
        result.extend(pools.workers.iter().map(|w| PoolCapacity {
            name: w.name.clone(),
            count: w.count,
            machine: &w.machine,
        }));
    }
    result
}

fn field(kind: ResourceType) -> &'static str {
    match kind {
        ResourceType::Cpu => "machine.cpus",
        ResourceType::Memory => "machine.memoryMib",
        ResourceType::DiskSize => "machine.diskGib",
    }
}
