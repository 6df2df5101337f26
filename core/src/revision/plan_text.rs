//! A plan for people: its steps, its one-line summary, and the full text
//! (`+` added or created, `-` removed or deleted, `~` changed), like `terraform plan`.

use std::fmt::{self, Write as _};

use super::{
    LayerAction, LayerChange, ObjectAction, PlanStep, PoolAction, PoolChange, RevisionPlan,
    RolloutStep, ValueChange,
};
use crate::cluster::MachineShape;
use crate::revision::OsImage;

/// The agent's three steps in order, each with its work in this plan.
pub(super) fn steps(plan: &RevisionPlan) -> Vec<PlanStep> {
    let mut control_plane = Vec::new();
    let mut workers = Vec::new();
    for replaced in &plan.replaced {
        let line = format!(
            "replace {} ({})",
            machines_of(replaced.control_plane, &replaced.pool, replaced.machines),
            replaced.reasons.join(", ")
        );
        if replaced.control_plane {
            control_plane.push(line);
        } else {
            workers.push(line);
        }
    }
    for pool in &plan.node_pools {
        let line = match pool.action {
            PoolAction::Added => format!("add pool {} ({})", pool.pool, count(pool.count.to)),
            PoolAction::Removed => {
                format!("remove pool {} ({})", pool.pool, count(pool.count.from))
            }
            PoolAction::Changed if pool.count.from != pool.count.to => format!(
                "resize {} {} → {}",
                pool_name(pool),
                pool.count.from,
                pool.count.to
            ),
            PoolAction::Changed => continue,
        };
        if pool.control_plane {
            control_plane.push(line);
        } else {
            workers.push(line);
        }
    }
    for (step, work) in [
        (RolloutStep::ControlPlane, &mut control_plane),
        (RolloutStep::Workers, &mut workers),
    ] {
        let count = plan.objects.iter().filter(|o| o.step == step).count();
        if count > 0 {
            work.push(if count == 1 {
                "apply 1 Cluster API object change".to_string()
            } else {
                format!("apply {count} Cluster API object changes")
            });
        }
    }
    let layers = plan
        .layers
        .iter()
        .map(|l| match l.action {
            LayerAction::Added => format!("install {} {}", l.name, version(&l.to_version)),
            LayerAction::Removed => format!("remove {} {}", l.name, version(&l.from_version)),
            LayerAction::Upgraded | LayerAction::Downgraded => {
                let verb = if l.action == LayerAction::Upgraded {
                    "upgrade"
                } else {
                    "downgrade"
                };
                format!("{verb} {} {}", l.name, versions(l))
            }
            LayerAction::Reconfigured => format!("reconfigure {}", l.name),
        })
        .collect();
    vec![
        PlanStep {
            step: RolloutStep::ControlPlane,
            work: control_plane,
        },
        PlanStep {
            step: RolloutStep::Workers,
            work: workers,
        },
        PlanStep {
            step: RolloutStep::Layers,
            work: layers,
        },
    ]
}

/// "Kubernetes v1.20.2 → v1.21.1; 2 layers upgraded, 1 removed; control plane rolls (3
/// machines); pool general resized 2 → 4", or "nothing to apply".
pub(super) fn summary(plan: &RevisionPlan) -> String {
    let mut parts = Vec::new();
    if let Some(k8s) = &plan.kubernetes_version {
        parts.push(format!("Kubernetes {} → {}", k8s.from, k8s.to));
    }
    if let Some(os) = &plan.os_image {
        parts.push(format!("OS image {} → {}", image(&os.from), image(&os.to)));
    }
    let counts: Vec<String> = [
        (LayerAction::Upgraded, "upgraded"),
        (LayerAction::Downgraded, "downgraded"),
        (LayerAction::Added, "added"),
        (LayerAction::Removed, "removed"),
        (LayerAction::Reconfigured, "reconfigured"),
    ]
    .into_iter()
    .filter_map(|(action, word)| {
        let n = plan.layers.iter().filter(|l| l.action == action).count();
        (n > 0).then_some((n, word))
    })
    .enumerate()
    .map(|(i, (n, word))| match (i, n) {
        (0, 1) => format!("1 layer {word}"),
        (0, n) => format!("{n} layers {word}"),
        (_, n) => format!("{n} {word}"),
    })
    .collect();
    if !counts.is_empty() {
        parts.push(counts.join(", "));
    }
    for replaced in &plan.replaced {
        let who = if replaced.control_plane {
            "control plane".to_string()
        } else {
            format!("pool {}", replaced.pool)
        };
        parts.push(format!("{who} rolls ({})", count(replaced.machines)));
    }
    for pool in &plan.node_pools {
        let (from, to) = (pool.count.from, pool.count.to);
        match pool.action {
            PoolAction::Added => parts.push(format!("pool {} added ({})", pool.pool, count(to))),
            PoolAction::Removed => {
                parts.push(format!("pool {} removed ({})", pool.pool, count(from)))
            }
            PoolAction::Changed if from != to => {
                parts.push(format!("{} resized {from} → {to}", pool_name(pool)))
            }
            PoolAction::Changed => {}
        }
    }
    if parts.is_empty() && !plan.objects.is_empty() {
        parts.push(format!("{} Cluster API objects change", plan.objects.len()));
    }
    if parts.is_empty() && plan.profiles.is_some() {
        parts.push("profiles renamed, content unchanged".to_string());
    }
    if parts.is_empty() {
        return "nothing to apply".to_string();
    }
    parts.join("; ")
}

fn pool_name(pool: &PoolChange) -> String {
    if pool.control_plane {
        "control plane".to_string()
    } else {
        format!("pool {}", pool.pool)
    }
}

/// "all 3 control-plane machines", "the 1 machine of pool edge".
fn machines_of(control_plane: bool, pool: &str, machines: u32) -> String {
    let all = if machines == 1 { "the" } else { "all" };
    let what = if control_plane {
        "control-plane machine".to_string()
    } else {
        format!("machine of pool {pool}")
    };
    let what = if machines == 1 {
        what
    } else {
        what.replacen("machine", "machines", 1)
    };
    format!("{all} {machines} {what}")
}

/// "1 machine", "3 machines".
fn count(machines: u32) -> String {
    if machines == 1 {
        "1 machine".to_string()
    } else {
        format!("{machines} machines")
    }
}

fn version(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

fn versions(l: &LayerChange) -> String {
    match (&l.from_version, &l.to_version, &l.digest) {
        (Some(a), Some(b), _) if a != b => format!("{a} → {b}"),
        (_, Some(b), Some(digest)) => format!(
            "{b} (republished: {} → {})",
            short_digest(&digest.from),
            short_digest(&digest.to)
        ),
        (_, to, _) => version(to).to_string(),
    }
}

fn short_digest(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

fn image(os: &OsImage) -> String {
    format!("{} {}", os.pack, os.version)
}

fn shape_changes(from: &MachineShape, to: &MachineShape) -> String {
    let mut parts = Vec::new();
    let mut field = |name: &str, a: Option<String>, b: Option<String>| {
        if a != b {
            let show = |v: Option<String>| v.unwrap_or_else(|| "unset".to_string());
            parts.push(format!("{name} {} → {}", show(a), show(b)));
        }
    };
    let s = |v: Option<u64>| v.map(|v| v.to_string());
    field(
        "cpus",
        from.cpus.map(|v| v.to_string()),
        to.cpus.map(|v| v.to_string()),
    );
    field("memoryMiB", s(from.memory_mib), s(to.memory_mib));
    field("diskGiB", s(from.disk_gib), s(to.disk_gib));
    field(
        "instanceType",
        from.instance_type.clone(),
        to.instance_type.clone(),
    );
    field("vmSize", from.vm_size.clone(), to.vm_size.clone());
    parts.join(", ")
}

fn value_line(out: &mut String, indent: &str, change: &ValueChange) -> fmt::Result {
    match (&change.from, &change.to) {
        (Some(a), Some(b)) if a == b => {
            writeln!(out, "{indent}~ {} (changed, not shown)", change.path)
        }
        (Some(a), Some(b)) => writeln!(out, "{indent}~ {}: {a} → {b}", change.path),
        (None, Some(b)) => writeln!(out, "{indent}+ {}: {b}", change.path),
        (Some(a), None) => writeln!(out, "{indent}- {}: {a}", change.path),
        (None, None) => Ok(()),
    }
}

fn section(out: &mut String, title: &str, body: &str) {
    if !body.is_empty() {
        out.push_str(title);
        out.push('\n');
        out.push_str(body);
    }
}

fn write_plan(plan: &RevisionPlan) -> Result<String, fmt::Error> {
    let rollback = plan
        .rollback_of
        .map(|n| format!(" (a rollback to the content of revision {n})"))
        .unwrap_or_default();
    let mut out = format!(
        "cluster {}: revision {} → {}{rollback}\n",
        plan.cluster, plan.from, plan.to
    );
    if plan.is_empty() {
        out.push_str("nothing to apply\n");
        return Ok(out);
    }
    let mut cluster = String::new();
    if let Some(p) = &plan.profiles {
        writeln!(
            cluster,
            "  ~ profiles {} → {}",
            p.from.join(","),
            p.to.join(",")
        )?;
    }
    if let Some(k8s) = &plan.kubernetes_version {
        writeln!(cluster, "  ~ Kubernetes {} → {}", k8s.from, k8s.to)?;
    }
    if let Some(os) = &plan.os_image {
        writeln!(
            cluster,
            "  ~ OS image {} → {}",
            image(&os.from),
            image(&os.to)
        )?;
    }
    for change in &plan.kubeadm {
        value_line(
            &mut cluster,
            "  ",
            &ValueChange {
                path: format!("kubeadm {}", change.path),
                ..change.clone()
            },
        )?;
    }
    section(&mut out, "\nCluster:", &cluster);

    let mut pools = String::new();
    for pool in &plan.node_pools {
        let name = &pool.pool;
        match pool.action {
            PoolAction::Added => writeln!(pools, "  + {name}: {}", count(pool.count.to))?,
            PoolAction::Removed => writeln!(pools, "  - {name}: {}", count(pool.count.from))?,
            PoolAction::Changed => {
                let mut what = Vec::new();
                if pool.count.from != pool.count.to {
                    what.push(format!("count {} → {}", pool.count.from, pool.count.to));
                }
                if let Some(machine) = &pool.machine {
                    what.push(format!(
                        "machine {}",
                        shape_changes(&machine.from, &machine.to)
                    ));
                }
                writeln!(pools, "  ~ {name}: {}", what.join("; "))?;
            }
        }
    }
    section(&mut out, "\nNode pools:", &pools);

    let mut layers = String::new();
    for l in &plan.layers {
        let (sign, what) = match l.action {
            LayerAction::Added => ("+", version(&l.to_version).to_string()),
            LayerAction::Removed => ("-", version(&l.from_version).to_string()),
            LayerAction::Upgraded | LayerAction::Downgraded => ("~", versions(l)),
            LayerAction::Reconfigured => ("~", format!("{} values", version(&l.to_version))),
        };
        writeln!(layers, "  {sign} {} ({}) {what}", l.name, l.layer)?;
        for change in &l.values {
            value_line(&mut layers, "      ", change)?;
        }
        if l.secrets_changed {
            writeln!(layers, "      ~ secret values changed (not shown)")?;
        }
    }
    section(&mut out, "\nLayers:", &layers);

    let mut objects = String::new();
    for o in &plan.objects {
        let sign = match o.action {
            ObjectAction::Created => "+",
            ObjectAction::Changed => "~",
            ObjectAction::Deleted => "-",
        };
        write!(objects, "  {sign} {} {}", o.kind, o.name)?;
        if !o.fields.is_empty() {
            write!(objects, ": {}", o.fields.join(", "))?;
        }
        objects.push('\n');
    }
    section(&mut out, "\nCluster API objects:", &objects);

    let mut replaced = String::new();
    for r in &plan.replaced {
        writeln!(
            replaced,
            "  {} ({})",
            machines_of(r.control_plane, &r.pool, r.machines),
            r.reasons.join(", ")
        )?;
    }
    section(&mut out, "\nMachines replaced:", &replaced);

    out.push_str("\nSteps:\n");
    for (i, step) in plan.steps.iter().enumerate() {
        let work = if step.work.is_empty() {
            "nothing to do".to_string()
        } else {
            step.work.join("; ")
        };
        writeln!(out, "  {}. {}: {work}", i + 1, step.step.as_str())?;
    }
    writeln!(out, "\nSummary: {}", plan.summary)?;
    Ok(out)
}

impl fmt::Display for RevisionPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&write_plan(self)?)
    }
}
