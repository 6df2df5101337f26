//! Retrying transient failures with backoff, and the deadline of one pack's resolve and
//! download.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use backon::Retryable;
use tracing::warn;

use super::{PackRegistryClient, RegistryError};
use crate::registry::failure::Failure;

impl PackRegistryClient {
    /// Runs `operation` until it succeeds, fails for good, or the attempts are spent.
    pub(super) async fn retrying<T, F, Fut>(
        &self,
        what: &str,
        mut operation: F,
    ) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let policy = &self.options.retry;
        let backoff = policy.backoff();
        let attempts = AtomicUsize::new(0);
        let result = (|| {
            attempts.fetch_add(1, Ordering::Relaxed);
            operation()
        })
        .retry(backoff)
        .when(Failure::is_transient)
        .notify(|failure, delay| {
            warn!(
                registry = %self.address.host,
                what,
                attempt = attempts.load(Ordering::Relaxed),
                ?delay,
                error = %failure,
                "transient registry failure; retrying"
            );
        })
        .await;
        let made = attempts.load(Ordering::Relaxed);
        result.map_err(|failure| match failure {
            Failure::Transient {
                exhausted: Some(error),
                ..
            } => Failure::Final(error),
            Failure::Transient { message, .. } | Failure::Tls(message) => {
                Failure::final_error(RegistryError::Unreachable {
                    registry: self.address.host.clone(),
                    attempts: made,
                    last_error: message,
                })
            }
            other => other,
        })
    }

    /// `work` within [`RegistryOptions::fetch_deadline`].
    pub(super) async fn within_deadline<T>(
        &self,
        reference: &str,
        work: impl Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        let deadline = self.options.fetch_deadline;
        match tokio::time::timeout(deadline, work).await {
            Ok(result) => result,
            Err(_) => {
                warn!(registry = %self.address.host, reference, ?deadline, "registry deadline exceeded");
                Err(RegistryError::DeadlineExceeded {
                    registry: self.address.host.clone(),
                    reference: reference.to_owned(),
                    deadline,
                })
            }
        }
    }
}
