//! Whether CAPI has finished what a rollout step asked of it, read from the objects' status
//! as CAPI (v1beta2) writes it. Pure: the step reads the objects, these judge them.
//!
//! A step is done only once the controller that owns the object has seen the change
//! (`status.observedGeneration` at least `metadata.generation`), so a status written before
//! the change is never taken for its result.

use serde_json::Value;

/// How far a step is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Done,
    /// What it still waits for, for the status.
    Waiting(String),
}

fn int(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn text<'v>(object: &'v Value, pointer: &str) -> &'v str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn observed(object: &Value) -> bool {
    int(object, "/status/observedGeneration") >= int(object, "/metadata/generation")
}

/// The KubeadmControlPlane `kcp` at `version` with `replicas` machines, every one of them
/// up to date and ready, and no machine more (a rollout's surge machine gone).
/// `status.version` is the lowest version of its machines, so equal means all are there.
pub fn control_plane(kcp: &Value, version: &str, replicas: i64) -> Progress {
    if !observed(kcp) {
        return Progress::Waiting(
            "the control plane's controller has not seen the change yet".into(),
        );
    }
    let lowest = text(kcp, "/status/version");
    let (machines, up_to_date, ready) = (
        int(kcp, "/status/replicas"),
        int(kcp, "/status/upToDateReplicas"),
        int(kcp, "/status/readyReplicas"),
    );
    if lowest == version && machines == replicas && up_to_date == replicas && ready == replicas {
        return Progress::Done;
    }
    Progress::Waiting(format!(
        "control plane at {version}: {up_to_date} of {replicas} machines up to date, {ready} ready, {machines} in all, lowest version {}",
        if lowest.is_empty() { "unknown" } else { lowest }
    ))
}

/// The MachineDeployment `md` with `replicas` machines, every one up to date and ready.
pub fn worker_pool(md: &Value, replicas: i64) -> Progress {
    let name = text(md, "/metadata/name");
    if !observed(md) {
        return Progress::Waiting(format!(
            "MachineDeployment {name}: its controller has not seen the change yet"
        ));
    }
    let (machines, up_to_date, ready) = (
        int(md, "/status/replicas"),
        int(md, "/status/upToDateReplicas"),
        int(md, "/status/readyReplicas"),
    );
    if machines == replicas && up_to_date == replicas && ready == replicas {
        return Progress::Done;
    }
    Progress::Waiting(format!(
        "MachineDeployment {name}: {up_to_date} of {replicas} machines up to date, {ready} ready, {machines} in all"
    ))
}

/// All of `parts` done, else what the first that is not waits for.
pub fn all(parts: impl IntoIterator<Item = Progress>) -> Progress {
    parts
        .into_iter()
        .find(|p| *p != Progress::Done)
        .unwrap_or(Progress::Done)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kcp(generation: i64, observed: i64, version: &str, counts: [i64; 3]) -> Value {
        json!({
            "metadata": {"name": "c-control-plane", "generation": generation},
            "spec": {"replicas": 3, "version": "v1.21.14"},
            "status": {
                "observedGeneration": observed, "version": version,
                "replicas": counts[0], "upToDateReplicas": counts[1], "readyReplicas": counts[2],
            },
        })
    }

    #[test]
    fn the_control_plane_is_done_when_every_machine_is_at_the_version_and_ready() {
        assert_eq!(
            control_plane(&kcp(4, 4, "v1.21.14", [3, 3, 3]), "v1.21.14", 3),
            Progress::Done
        );
    }

    #[test]
    fn a_status_from_before_the_change_is_not_taken_for_its_result() {
        // Everything looks done, but at the generation before the new version.
        let waiting = control_plane(&kcp(5, 4, "v1.21.14", [3, 3, 3]), "v1.21.14", 3);
        assert_eq!(
            waiting,
            Progress::Waiting("the control plane's controller has not seen the change yet".into())
        );
    }

    #[test]
    fn a_rolling_control_plane_says_how_far_it_is() {
        // The surge machine is up at the new version; two old ones remain.
        let waiting = control_plane(&kcp(5, 5, "v1.20.2", [4, 2, 4]), "v1.21.14", 3);
        assert_eq!(
            waiting,
            Progress::Waiting(
                "control plane at v1.21.14: 2 of 3 machines up to date, 4 ready, 4 in all, lowest version v1.20.2".into()
            )
        );
        // All new, but the surge machine is not gone yet.
        assert!(matches!(
            control_plane(&kcp(5, 5, "v1.21.14", [4, 3, 4]), "v1.21.14", 3),
            Progress::Waiting(_)
        ));
        // A new machine not ready yet.
        assert!(matches!(
            control_plane(&kcp(5, 5, "v1.21.14", [3, 3, 2]), "v1.21.14", 3),
            Progress::Waiting(_)
        ));
    }

    #[test]
    fn a_control_plane_without_status_waits() {
        let fresh = json!({"metadata": {"generation": 1}});
        assert!(
            matches!(control_plane(&fresh, "v1.21.14", 3), Progress::Waiting(m) if m.contains("has not seen"))
        );
    }

    #[test]
    fn a_worker_pool_is_done_at_its_count_all_up_to_date_and_ready() {
        let md = |observed: i64, counts: [i64; 3]| {
            json!({
                "metadata": {"name": "c-general", "generation": 2},
                "status": {
                    "observedGeneration": observed,
                    "replicas": counts[0], "upToDateReplicas": counts[1], "readyReplicas": counts[2],
                },
            })
        };
        assert_eq!(worker_pool(&md(2, [2, 2, 2]), 2), Progress::Done);
        assert_eq!(
            worker_pool(&md(2, [3, 1, 3]), 2),
            Progress::Waiting(
                "MachineDeployment c-general: 1 of 2 machines up to date, 3 ready, 3 in all".into()
            )
        );
        assert!(matches!(
            worker_pool(&md(1, [2, 2, 2]), 2),
            Progress::Waiting(_)
        ));
        // Resized down: done only once the extra machine is gone.
        assert!(matches!(
            worker_pool(&md(2, [3, 3, 3]), 2),
            Progress::Waiting(_)
        ));
    }

    #[test]
    fn all_is_done_only_when_every_part_is() {
        assert_eq!(all([Progress::Done, Progress::Done]), Progress::Done);
        assert_eq!(all(Vec::<Progress>::new()), Progress::Done);
        assert_eq!(
            all([
                Progress::Done,
                Progress::Waiting("b".into()),
                Progress::Waiting("c".into())
            ]),
            Progress::Waiting("b".into())
        );
    }
}
