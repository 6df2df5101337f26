//! Retrying one step of a copy. A blob copy reads from one registry and writes to another
//! in the same attempt, so a failure says which side it came from, and a registry that
//! stays unreachable is named as the one it was.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use backon::Retryable;
use tracing::warn;

use crate::registry::client::RegistryError;
use crate::registry::failure::Failure;
use crate::registry::options::RetryPolicy;

/// Which registry a failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Source,
    Target,
}

/// A failure and the registry it came from.
#[derive(Debug)]
pub(crate) struct SidedFailure {
    pub(crate) side: Side,
    pub(crate) failure: Failure,
}

impl SidedFailure {
    pub(crate) fn source(failure: Failure) -> Self {
        SidedFailure {
            side: Side::Source,
            failure,
        }
    }

    pub(crate) fn target(failure: Failure) -> Self {
        SidedFailure {
            side: Side::Target,
            failure,
        }
    }
}

/// The two registries of a copy step, for messages.
pub(crate) struct Hosts<'a> {
    pub(crate) source: &'a str,
    pub(crate) target: &'a str,
}

/// Runs `operation` until it succeeds, fails for good or the attempts of `policy` are
/// spent; a transient failure that outlasts them becomes `Unreachable`, naming its side's
/// registry.
pub(crate) async fn retrying<T, F, Fut>(
    policy: &RetryPolicy,
    hosts: &Hosts<'_>,
    what: &str,
    mut operation: F,
) -> Result<T, SidedFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SidedFailure>>,
{
    let backoff = policy.backoff();
    let attempts = AtomicUsize::new(0);
    let result = (|| {
        attempts.fetch_add(1, Ordering::Relaxed);
        operation()
    })
    .retry(backoff)
    .when(|sided| sided.failure.is_transient())
    .notify(|sided, delay| {
        warn!(
            what,
            side = ?sided.side,
            attempt = attempts.load(Ordering::Relaxed),
            ?delay,
            error = %sided.failure,
            "transient registry failure during a copy; retrying"
        );
    })
    .await;
    let made = attempts.load(Ordering::Relaxed);
    result.map_err(|sided| {
        let registry = match sided.side {
            Side::Source => hosts.source,
            Side::Target => hosts.target,
        };
        let failure = match sided.failure {
            Failure::Transient {
                exhausted: Some(error),
                ..
            } => Failure::Final(error),
            Failure::Transient { message, .. } | Failure::Tls(message) => {
                Failure::final_error(RegistryError::Unreachable {
                    registry: registry.to_owned(),
                    attempts: made,
                    last_error: message,
                })
            }
            other => other,
        };
        SidedFailure {
            side: sided.side,
            failure,
        }
    })
}
