//! The election loop: reads and writes the Lease round after round, and tells the work
//! through a [`LeaderWatch`] whether this replica may work.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::LeaderError;
use super::decision::{ElectionState, LeaseDecision, LeaseRecord, LeaseTiming};

/// A replica's candidacy for one Lease; [`LeaderElector::start`] runs it.
pub struct LeaderElector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    timing: LeaseTiming,
}

impl LeaderElector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: LeaseTiming,
    ) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            timing,
        }
    }

    /// Runs the election in the background until [`Leadership::release`].
    pub fn start(self) -> Leadership {
        let elector = Arc::new(self);
        let (leading, watch) = watch::channel(false);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(elector.clone(), leading, stopped));
        Leadership {
            watch: LeaderWatch(Some(watch)),
            stop,
            task,
            elector,
        }
    }

    fn api_error(&self, action: &'static str, source: kube::Error) -> LeaderError {
        match source {
            kube::Error::Api(status) if status.code == 409 => LeaderError::Conflict {
                action,
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                identity: self.identity.clone(),
            },
            source => LeaderError::Api {
                action,
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                identity: self.identity.clone(),
                source: Box::new(source),
            },
        }
    }

    /// One lease call, bounded by the call timeout.
    async fn call<T>(
        &self,
        action: &'static str,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, LeaderError> {
        match tokio::time::timeout(self.timing.call_timeout, request).await {
            Ok(result) => result.map_err(|e| self.api_error(action, e)),
            Err(_) => Err(LeaderError::Timeout {
                action,
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                identity: self.identity.clone(),
                timeout: self.timing.call_timeout,
            }),
        }
    }

    fn held_spec(&self, previous: Option<&LeaseSpec>, take_over: bool) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let transitions = previous.and_then(|s| s.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            // `LeaseTiming` made sure it fits.
            lease_duration_seconds: Some(
                i32::try_from(self.timing.duration.as_secs()).unwrap_or(i32::MAX),
            ),
            // Informational only (the rules never read it back): our own clock's opinion.
            acquire_time: match (take_over, previous) {
                (false, Some(spec)) => spec.acquire_time.clone().or(Some(now.clone())),
                _ => Some(now.clone()),
            },
            renew_time: Some(now),
            lease_transitions: Some(if take_over {
                transitions + 1
            } else {
                transitions
            }),
            ..LeaseSpec::default()
        }
    }

    /// One round: read the lease, decide, write when ours to write. A conflict means the
    /// lease changed after we read it (another replica won a race, or a renewal of ours
    /// that timed out did land): read it again and decide anew, once.
    async fn round(&self, state: &mut ElectionState) -> Result<(), LeaderError> {
        let mut last_conflict = None;
        for _ in 0..2 {
            let lease = self.call("read", self.api.get_opt(&self.name)).await?;
            let now = Instant::now();
            state.saw(lease.as_ref().map(LeaseRecord::of), now);
            let decision = state.decide(&self.identity, &self.timing, now);
            let started = Instant::now();
            let written = match (decision, lease) {
                (LeaseDecision::Standby, _) => {
                    state.stand_by();
                    return Ok(());
                }
                (LeaseDecision::Create, _) => {
                    let lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(self.name.clone()),
                            ..ObjectMeta::default()
                        },
                        spec: Some(self.held_spec(None, true)),
                    };
                    self.call("create", self.api.create(&PostParams::default(), &lease))
                        .await
                }
                (decision, Some(mut lease)) => {
                    let take_over = decision == LeaseDecision::TakeOver;
                    lease.spec = Some(self.held_spec(lease.spec.as_ref(), take_over));
                    // `replace` sends the resourceVersion the decision was made on.
                    let action = if take_over { "take over" } else { "renew" };
                    self.call(
                        action,
                        self.api.replace(&self.name, &PostParams::default(), &lease),
                    )
                    .await
                }
                // `decide` says Create when there is no lease.
                (_, None) => return Ok(()),
            };
            match written {
                Ok(lease) => {
                    state.wrote(started, LeaseRecord::of(&lease), Instant::now());
                    return Ok(());
                }
                Err(conflict @ LeaderError::Conflict { .. }) => last_conflict = Some(conflict),
                Err(e) => return Err(e),
            }
        }
        match last_conflict {
            Some(conflict) => Err(conflict),
            None => Ok(()),
        }
    }

    /// Gives the lease up if this replica holds it. A 409 means it changed since the read:
    /// it is no longer ours to give up.
    async fn release(&self) -> Result<(), LeaderError> {
        let Some(mut lease) = self.call("read", self.api.get_opt(&self.name)).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        match self
            .call(
                "release",
                self.api.replace(&self.name, &PostParams::default(), &lease),
            )
            .await
        {
            Ok(_) => {
                tracing::info!(lease = %self.name, namespace = %self.namespace, identity = %self.identity, "gave the lease up");
                Ok(())
            }
            Err(LeaderError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Awaits `work` while watching the deadline of the current term: past it, the work is
/// told to stop even though the round is still waiting for an answer. `None` when asked to
/// stop (the work is dropped).
async fn guarded<T>(
    elector: &LeaderElector,
    work: impl Future<Output = T>,
    mut deadline: Option<Instant>,
    leading: &watch::Sender<bool>,
    stop: &mut watch::Receiver<bool>,
) -> Option<T> {
    tokio::pin!(work);
    loop {
        let until = deadline.map(tokio::time::Instant::from_std);
        tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => return None,
            _ = tokio::time::sleep_until(until.unwrap_or_else(tokio::time::Instant::now)), if until.is_some() => {
                deadline = None;
                if set(leading, false) {
                    tracing::error!(
                        lease = %elector.name,
                        namespace = %elector.namespace,
                        identity = %elector.identity,
                        "could not renew the lease in time; stopping work one renewal period before it could lapse"
                    );
                }
            }
            out = &mut work => return Some(out),
        }
    }
}

async fn run(
    elector: Arc<LeaderElector>,
    leading: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let timing = elector.timing;
    let mut state = ElectionState::default();
    loop {
        let deadline = state.works_until(&timing).filter(|_| *leading.borrow());
        let Some(result) = guarded(
            &elector,
            elector.round(&mut state),
            deadline,
            &leading,
            &mut stop,
        )
        .await
        else {
            break;
        };
        let now = Instant::now();
        let leads = state.leads(&timing, now);
        let next = match &result {
            Err(e) => {
                tracing::warn!("{e}");
                now + timing.renew_every / 4
            }
            Ok(()) => match state.renewed().filter(|_| leads) {
                Some(renewed) => renewed + timing.renew_every,
                None => now + timing.renew_every,
            },
        };
        if set(&leading, leads) {
            let holder = state
                .sighting()
                .and_then(|s| s.record.holder.clone())
                .unwrap_or_default();
            tracing::info!(
                lease = %elector.name,
                namespace = %elector.namespace,
                identity = %elector.identity,
                %holder,
                "{}",
                if leads { "holding the lease" } else { "another replica holds the lease" }
            );
        }
        let deadline = state.works_until(&timing).filter(|_| leads);
        let wait = tokio::time::sleep_until(tokio::time::Instant::from_std(next));
        if guarded(&elector, wait, deadline, &leading, &mut stop)
            .await
            .is_none()
        {
            break;
        }
    }
    set(&leading, false);
}

/// Tells the watchers when the value changes; true when it did.
fn set(leading: &watch::Sender<bool>, value: bool) -> bool {
    leading.send_if_modified(|current| std::mem::replace(current, value) != value)
}

/// The running election of one replica.
pub struct Leadership {
    watch: LeaderWatch,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    elector: Arc<LeaderElector>,
}

impl Leadership {
    /// Whether this replica may work, as it changes.
    pub fn watch(&self) -> LeaderWatch {
        self.watch.clone()
    }

    /// Ends the election and gives the lease up if this replica holds it, so a successor
    /// need not wait for it to lapse. Call it once the work has stopped.
    pub async fn release(self) -> Result<(), LeaderError> {
        self.stop.send_replace(true);
        // The loop ends at its next await; a panic in it leaves nothing to wait for.
        let _ = self.task.await;
        self.elector.release().await
    }
}

/// Whether this replica may work. Cheap to clone; every clone sees every change.
#[derive(Debug, Clone)]
pub struct LeaderWatch(Option<watch::Receiver<bool>>);

impl LeaderWatch {
    /// Always leading: for a single replica without election.
    pub fn always() -> LeaderWatch {
        LeaderWatch(None)
    }

    /// An election that ended (its task gone, whatever it last said) does not lead.
    pub fn is_leading(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(|r| r.has_changed().is_ok() && *r.borrow())
    }

    /// Resolves with `true` once this replica leads, `false` when the election ended first.
    pub async fn acquired(&mut self) -> bool {
        match &mut self.0 {
            None => true,
            Some(r) => r.wait_for(|leading| *leading).await.is_ok() && r.has_changed().is_ok(),
        }
    }

    /// Resolves once this replica does not lead (at once if it does not now); an ended
    /// election does not lead.
    pub async fn lost(&mut self) {
        match &mut self.0 {
            None => std::future::pending().await,
            Some(r) => {
                let _ = r.wait_for(|leading| !*leading).await;
            }
        }
    }

    /// The next change: `Some(leading)`, or `None` once the election ended.
    pub async fn changed(&mut self) -> Option<bool> {
        match &mut self.0 {
            None => std::future::pending().await,
            Some(r) => match r.changed().await {
                Ok(()) => Some(*r.borrow_and_update()),
                Err(_) => None,
            },
        }
    }

    /// Runs `work` while this replica leads: `None`, with the work dropped wherever it
    /// was, when leadership ends first or was not held to begin with.
    pub async fn run_while_leading<F: Future>(&self, work: F) -> Option<F::Output> {
        let mut watch = self.clone();
        if !watch.is_leading() {
            return None;
        }
        tokio::select! {
            biased;
            _ = watch.lost() => None,
            out = work => Some(out),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn work_is_dropped_when_leadership_ends() {
        let (leading, receiver) = watch::channel(true);
        let watch = LeaderWatch(Some(receiver));
        let finished = Arc::new(AtomicBool::new(false));
        let work = {
            let finished = finished.clone();
            async move {
                std::future::pending::<()>().await;
                finished.store(true, Ordering::SeqCst);
            }
        };
        let running = tokio::spawn({
            let watch = watch.clone();
            async move { watch.run_while_leading(work).await }
        });
        tokio::task::yield_now().await;
        leading.send_replace(false);
        assert_eq!(running.await.unwrap(), None);
        assert!(!finished.load(Ordering::SeqCst));
        // Not leading: the work does not start.
        assert_eq!(watch.run_while_leading(async { 1 }).await, None);
        leading.send_replace(true);
        assert_eq!(watch.run_while_leading(async { 1 }).await, Some(1));
        // An ended election does not lead, even when it ended without saying so.
        drop(leading);
        assert!(!watch.is_leading());
        let mut ended = watch.clone();
        ended.lost().await;
        assert!(!ended.acquired().await);
        assert_eq!(ended.changed().await, None);
    }

    #[tokio::test]
    async fn without_election_the_work_always_runs() {
        let mut watch = LeaderWatch::always();
        assert!(watch.is_leading());
        assert!(watch.acquired().await);
        assert_eq!(watch.run_while_leading(async { 2 }).await, Some(2));
    }
}
