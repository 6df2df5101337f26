//! Wakes an idle simulator when an object it plays changes. Listing every kind every
//! second or so for clusters that stand still was most of the test API servers' work; a
//! watch per kind costs them nothing while nothing changes, so an idle simulator can
//! pause for seconds and still act on a change at once. The pass itself still lists (a
//! consistent read): the watches only say *when*, never *what*.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::kinds::{
    CLUSTER, KUBEADM_CONFIG, KUBEADM_CONTROL_PLANE, Kind, MACHINE, MACHINE_DEPLOYMENT,
    MACHINE_HEALTH_CHECK, MACHINE_SET, Provider,
};

/// Every kind a pass lists.
fn watched_kinds() -> Vec<Kind> {
    let mut kinds = vec![
        CLUSTER,
        KUBEADM_CONTROL_PLANE,
        MACHINE_DEPLOYMENT,
        MACHINE_SET,
        MACHINE,
        MACHINE_HEALTH_CHECK,
        KUBEADM_CONFIG,
    ];
    for provider in Provider::ALL {
        kinds.push(provider.cluster_kind());
        kinds.push(provider.machine_kind());
    }
    kinds
}

/// One watch per kind the simulator plays, all waking the same waiter.
pub struct ChangeWatch {
    changed: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl ChangeWatch {
    /// Starts the watches (in `namespace`, or everywhere). A kind that is not installed
    /// yet is retried with the watcher's backoff, so CRDs installed later are picked up.
    pub fn start(client: &Client, namespace: Option<&str>) -> ChangeWatch {
        let changed = Arc::new(Notify::new());
        let tasks = watched_kinds()
            .into_iter()
            .map(|kind| {
                let api: Api<DynamicObject> = match namespace {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &kind.api_resource()),
                    None => Api::all_with(client.clone(), &kind.api_resource()),
                };
                let changed = changed.clone();
                tokio::spawn(async move {
                    let mut events = watcher(api, watcher::Config::default())
                        .default_backoff()
                        .boxed();
                    while let Some(event) = events.next().await {
                        match event {
                            // A relist's start and end carry no change of their own; the
                            // objects it delivers do.
                            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                            Ok(_) => changed.notify_one(),
                            Err(e) => {
                                tracing::trace!(kind = kind.kind, error = %e, "watch failed; the watcher retries")
                            }
                        }
                    }
                })
            })
            .collect();
        ChangeWatch { changed, tasks }
    }

    /// Someone changed what the simulator plays outside its objects (a fault, a node's
    /// readiness): the next pass should not wait.
    pub fn wake(&self) {
        self.changed.notify_one();
    }

    /// Returns after `pause`, or as soon as something changed (also a change made since
    /// the last wait: the notification is kept until taken).
    pub async fn wait(&self, pause: Duration) {
        let _ = tokio::time::timeout(pause, self.changed.notified()).await;
    }
}

impl Drop for ChangeWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
