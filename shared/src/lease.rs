//! A leader Lease: one replica at a time does the work (the agent's pivot above all must
//! never run twice at once; two controller replicas must not both write). A replica holds the lease by renewing it; another takes
//! it over only when it has not been renewed for its whole duration. Writes carry the
//! resourceVersion they were decided on, so two replicas racing for an expired lease
//! cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("cannot {action} lease {namespace}/{name}: {source}")]
    Api {
        action: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// What a replica should do with the lease as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseDecision {
    /// Nobody holds it: create it.
    Create,
    /// We hold it: renew it.
    Renew,
    /// Someone else's expired: take it over.
    TakeOver,
    /// Someone else holds it and renews it: wait.
    Standby,
}

/// Decides from the lease's current spec (None when it does not exist).
pub fn decide(current: Option<&LeaseSpec>, me: &str, now: Timestamp) -> LeaseDecision {
    let Some(spec) = current else {
        return LeaseDecision::Create;
    };
    if spec.holder_identity.as_deref() == Some(me) {
        return LeaseDecision::Renew;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    let expired = match &spec.renew_time {
        Some(MicroTime(renewed)) => renewed.checked_add(duration).is_ok_and(|until| until < now),
        None => true,
    };
    if spec.holder_identity.is_none() || expired {
        LeaseDecision::TakeOver
    } else {
        LeaseDecision::Standby
    }
}

/// A replica's handle on the lease.
pub struct LeaderLease {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaderLease {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        LeaderLease {
            api: Api::namespaced(client, namespace),
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            duration,
        }
    }

    fn error(&self, action: &'static str) -> impl FnOnce(kube::Error) -> LeaseError + '_ {
        move |source| LeaseError::Api {
            action,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: acquired.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One round: returns whether this replica holds the lease afterwards. A lost race
    /// (409 Conflict) is not an error: the other replica won.
    pub async fn try_hold(&self) -> Result<bool, LeaseError> {
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(self.error("read"))?;
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        );
        let result = match (decision, current) {
            (LeaseDecision::Standby, _) => return Ok(false),
            (LeaseDecision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(now, None, 0)),
                };
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            (decision, Some(mut lease)) => {
                let previous = lease.spec.clone().unwrap_or_default();
                let (acquired, transitions) = if decision == LeaseDecision::Renew {
                    (
                        previous.acquire_time,
                        previous.lease_transitions.unwrap_or(0),
                    )
                } else {
                    (None, previous.lease_transitions.unwrap_or(0) + 1)
                };
                lease.spec = Some(self.spec(now, acquired, transitions));
                // `replace` sends the resourceVersion we read: a concurrent change makes it fail.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            (_, None) => return Ok(false),
        };
        match result {
            Ok(()) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(self.error("write")(e)),
        }
    }
}

impl LeaderLease {
    /// Gives the lease up if this replica holds it, so that a successor need not wait for
    /// it to expire (graceful shutdown).
    pub async fn release(&self) -> Result<(), LeaseError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(self.error("read"))?
        else {
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
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            // Someone changed it meanwhile: it is no longer ours to give up.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(self.error("release")(e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn spec(
        holder: Option<&str>,
        renewed_secs_ago: Option<i64>,
        duration: i32,
        now: Timestamp,
    ) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(String::from),
            lease_duration_seconds: Some(duration),
            renew_time: renewed_secs_ago
                .map(|ago| MicroTime(now.checked_sub(SignedDuration::from_secs(ago)).unwrap())),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions() {
        let now = Timestamp::now();
        let cases = [
            (None, LeaseDecision::Create),
            (
                Some(spec(Some("me"), Some(100), 15, now)),
                LeaseDecision::Renew,
            ),
            (
                Some(spec(Some("other"), Some(5), 15, now)),
                LeaseDecision::Standby,
            ),
            (
                Some(spec(Some("other"), Some(15), 15, now)),
                LeaseDecision::Standby,
            ),
            (
                Some(spec(Some("other"), Some(16), 15, now)),
                LeaseDecision::TakeOver,
            ),
            (
                Some(spec(Some("other"), None, 15, now)),
                LeaseDecision::TakeOver,
            ),
            (Some(spec(None, Some(1), 15, now)), LeaseDecision::TakeOver),
        ];
        for (current, expected) in cases {
            assert_eq!(decide(current.as_ref(), "me", now), expected, "{current:?}");
        }
    }
}
