//! Leader election on a `coordination.k8s.io` Lease: one replica at a time does the work
//! (two controller replicas must not both write; the agent's pivot above all must never run
//! twice at once). The same elector serves the controller and the agent.
//!
//! The rules, each there because a replica's wall clock cannot be trusted (an edge
//! cluster's clock may be minutes off) and the network can drop any call:
//!
//! - A holder stops working one renewal period before its lease could lapse, measured on
//!   its own monotonic clock from the start of its last successful renewal (the request's
//!   start, never later than what the apiserver recorded), whether or not its renewals fail.
//! - Another replica takes the lease over only when the lease record (holder, renewTime,
//!   resourceVersion) has not changed for a whole `leaseDurationSeconds`, measured on its own
//!   monotonic clock since it first saw that record. Nobody compares `renewTime` with a wall
//!   clock, so a skewed clock changes nothing.
//! - Every lease call is bounded by a timeout shorter than the renewal period.
//! - Takeover writes carry the resourceVersion they were decided on: of two replicas racing
//!   for a lease, one gets 409 Conflict.
//! - A replica that stops gives the lease up, so a successor need not wait for it to lapse.
//!
//! What is left: a write sent before the holder stopped but held up in the network for
//! longer than a renewal period can still land after a successor started (no lease-based
//! election can rule that out without fencing tokens on every write).

mod decision;
mod elector;

use std::time::Duration;

pub use decision::{ElectionState, LeaseDecision, LeaseRecord, LeaseTiming, Sighting, decide};
pub use elector::{LeaderElector, LeaderWatch, Leadership};

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "lease timing: {rule} (duration {duration:?}, renewal every {renew_every:?}, calls bounded by {call_timeout:?})"
    )]
    Timing {
        rule: &'static str,
        duration: Duration,
        renew_every: Duration,
        call_timeout: Duration,
    },
    #[error("{identity} cannot {action} lease {namespace}/{name}: {source}")]
    Api {
        action: &'static str,
        namespace: String,
        name: String,
        identity: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "{identity} got no answer to its {action} of lease {namespace}/{name} within {timeout:?}"
    )]
    Timeout {
        action: &'static str,
        namespace: String,
        name: String,
        identity: String,
        timeout: Duration,
    },
    #[error(
        "lease {namespace}/{name} changed while {identity} tried to {action} it (409 Conflict)"
    )]
    Conflict {
        action: &'static str,
        namespace: String,
        name: String,
        identity: String,
    },
}
