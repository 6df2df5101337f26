//! Watching a pivot's objects for loss: while a move runs, an object must always be in the
//! source cluster or the target one. A watcher polls both and records every moment one was
//! in neither; the test stops it and asserts it saw none.

use std::collections::BTreeSet;
use std::time::Duration;

use kube::Client;
use strata_shared::contracts::capi::{CLUSTER, KUBEADM_CONTROL_PLANE, MACHINE};

use crate::dynamic_objects::{exists, object_names};
use crate::move_checks::pivot_journal;

/// (api version, kind, name) of the source objects watched for loss.
pub type Watched = Vec<(String, String, String)>;

/// The objects every pivot of cluster `name` moves: its Cluster, kubeconfig Secret and
/// control plane, and `machines`.
pub fn watched_objects<'a>(name: &str, machines: impl IntoIterator<Item = &'a String>) -> Watched {
    let mut watched: Watched = vec![
        (CLUSTER.api_version.into(), CLUSTER.kind.into(), name.into()),
        ("v1".into(), "Secret".into(), format!("{name}-kubeconfig")),
        (
            KUBEADM_CONTROL_PLANE.api_version.into(),
            KUBEADM_CONTROL_PLANE.kind.into(),
            format!("{name}-control-plane"),
        ),
    ];
    for machine in machines {
        watched.push((
            MACHINE.api_version.into(),
            MACHINE.kind.into(),
            machine.clone(),
        ));
    }
    watched
}

/// Polls the `watched` objects of `namespace` until stopped, and records any moment one the
/// source has had is in neither cluster. The task returns what was lost once the sender is
/// sent `true` (or dropped).
pub fn watch_for_loss(
    source: Client,
    target: Client,
    namespace: String,
    watched: Watched,
) -> (
    tokio::task::JoinHandle<Vec<String>>,
    tokio::sync::watch::Sender<bool>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let mut lost = Vec::new();
        // Only what the source has had can be lost (the kubeconfig appears a moment after
        // the workload control plane does).
        let mut seen = BTreeSet::new();
        loop {
            for (api_version, kind, name) in &watched {
                let in_source = exists(&source, api_version, kind, &namespace, name).await;
                if in_source == Some(true) {
                    seen.insert(name.clone());
                }
                if in_source == Some(false) && seen.contains(name) {
                    let in_target = exists(&target, api_version, kind, &namespace, name).await;
                    if in_target == Some(false) {
                        lost.push(format!("{kind} {name} was in neither cluster"));
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stopped.changed() => return lost,
            }
        }
    });
    (task, stop)
}

/// A loss watcher over every object of the move: the `fixed` ones from the start, and each
/// object of the journal once the journal exists (it is written before anything is
/// touched). Every 100 ms it lists each kind in the source, and in the target for what
/// the source has had and lost: an object then in neither is a loss.
pub struct LossWatch {
    task: tokio::task::JoinHandle<Vec<String>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl LossWatch {
    /// Starts watching `namespace` in `source` and `target`, for the move of `cluster`.
    pub fn start(
        source: Client,
        target: Client,
        namespace: &str,
        cluster: &str,
        fixed: Watched,
    ) -> LossWatch {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let namespace = namespace.to_string();
        let cluster = cluster.to_string();
        let task = tokio::spawn(async move {
            let mut lost = Vec::new();
            let mut seen: BTreeSet<(String, String, String)> = BTreeSet::new();
            loop {
                let mut watched: BTreeSet<(String, String, String)> =
                    fixed.iter().cloned().collect();
                if let Some(journal) = pivot_journal(&target, &cluster).await {
                    watched.extend(
                        journal
                            .objects
                            .values()
                            .filter(|e| e.namespace.as_deref() == Some(namespace.as_str()))
                            .map(|e| (e.api_version.clone(), e.kind.clone(), e.name.clone())),
                    );
                }
                let kinds: BTreeSet<(String, String)> = watched
                    .iter()
                    .map(|(v, k, _)| (v.clone(), k.clone()))
                    .collect();
                for (api_version, kind) in kinds {
                    let Some(in_source) =
                        object_names(&source, &namespace, &api_version, &kind).await
                    else {
                        continue;
                    };
                    let mut missing = Vec::new();
                    for key in watched
                        .iter()
                        .filter(|(v, k, _)| *v == api_version && *k == kind)
                    {
                        if in_source.contains(&key.2) {
                            seen.insert(key.clone());
                        } else if seen.contains(key) {
                            missing.push(key.2.clone());
                        }
                    }
                    if missing.is_empty() {
                        continue;
                    }
                    // Read after the source: a copy made later cannot hide a loss.
                    let Some(in_target) =
                        object_names(&target, &namespace, &api_version, &kind).await
                    else {
                        continue;
                    };
                    for name in missing.iter().filter(|n| !in_target.contains(*n)) {
                        lost.push(format!("{kind} {namespace}/{name} was in neither cluster"));
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stopped.changed() => return lost,
                }
            }
        });
        LossWatch { task, stop }
    }

    /// Stops watching; the losses seen.
    pub async fn finish(self) -> Vec<String> {
        let _ = self.stop.send(true);
        self.task
            .await
            .unwrap_or_else(|e| panic!("the loss watcher stopped before it was asked: {e}"))
    }
}
