//! The `helm` CLI as Strata runs it: which binary ([`Helm::locate`]: `$STRATA_HELM`, else
//! `helm` on `PATH`) and one run of it with a deadline. What is run lives with its users:
//! `pack_render` (`helm template`) and `chart_release` (`helm upgrade --install` and the
//! rest of a release's life).

mod locate;
mod process;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use locate::{HELM_ENV, LocateError, locate_in};
pub use process::{Finished, RunError};

/// A helm binary, and how long one run of it may take before it is stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helm {
    binary: PathBuf,
    timeout: Duration,
}

impl Helm {
    /// The default deadline of one run. Rendering is local work; a minute is far beyond
    /// any real chart and short of a hung process. Installs set their own.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Helm {
            binary: binary.into(),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `helm args…` with no standard input, stopped at the deadline.
    pub fn run(&self, args: &[OsString]) -> Result<Finished, RunError> {
        process::run(&self.binary, args, self.timeout)
    }
}
