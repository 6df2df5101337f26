//! How to talk to a registry: retries, limits on answers, deadlines.

use std::time::Duration;

use crate::registry::credentials::Credentials;

/// The User-Agent of every request to a registry.
pub(crate) const USER_AGENT: &str = concat!("strata/", env!("CARGO_PKG_VERSION"));

/// How transient failures are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (0 counts as 1).
    pub attempts: usize,
    /// The first delay; each next one doubles, plus random jitter.
    pub min_delay: Duration,
    /// The longest base delay.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The backoff this policy describes, for `backon`'s `retry`.
    pub(crate) fn backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.attempts.saturating_sub(1))
            .with_jitter()
    }
}

impl Default for RetryPolicy {
    /// 4 attempts, 200 ms doubling to at most 2 s: rides out a registry restart or a
    /// dropped connection without making a real outage take long to report.
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// The most a registry's answers (other than pack blobs) may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseLimits {
    /// A manifest or image index, in bytes. Default 4 MiB, distribution's own limit.
    pub manifest_bytes: u64,
    /// One page of a tag list or of the catalog, in bytes. Default 4 MiB (a registry may
    /// ignore the page size asked for and answer everything at once).
    pub list_page_bytes: u64,
    /// Names in a whole tag list or catalog, all pages together. Default 100,000.
    pub list_entries: usize,
}

impl Default for ResponseLimits {
    fn default() -> Self {
        ResponseLimits {
            manifest_bytes: 4 << 20,
            list_page_bytes: 4 << 20,
            list_entries: 100_000,
        }
    }
}

/// How to talk to a registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// HTTP instead of HTTPS; anonymous only (credentials with it are refused).
    pub plain_http: bool,
    /// A CA (PEM) to trust in addition to the system's, for a registry with a private CA.
    pub ca_pem: Option<String>,
    pub credentials: Credentials,
    pub retry: RetryPolicy,
    /// The largest pack archive accepted, compressed; also the most its content may
    /// unpack to. Default 1 GiB.
    pub max_pack_bytes: u64,
    /// The longest resolving and downloading one pack may take, retries included
    /// (`resolve`, `fetch`, the network part of `pull` and `inspect`, `versions`).
    /// Default 5 minutes.
    pub fetch_deadline: Duration,
    /// The longest one small request (a manifest, a list page, a token) may take, its
    /// whole answer included. Default 30 s.
    pub request_timeout: Duration,
    pub limits: ResponseLimits,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            plain_http: false,
            ca_pem: None,
            credentials: Credentials::Anonymous,
            retry: RetryPolicy::default(),
            max_pack_bytes: 1 << 30,
            fetch_deadline: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            limits: ResponseLimits::default(),
        }
    }
}
