//! What the controller's `/metrics`, `/healthz` and `/readyz` report (served by
//! `strata_shared::probe_endpoints`): ready once it reached the apiserver, leading or
//! standing by.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use strata_shared::probe_endpoints::{Probes, Readiness};

use super::metrics::Metrics;

/// What the endpoints report on.
pub struct Health {
    pub metrics: Arc<Metrics>,
    pub ready: AtomicBool,
    pub leading: AtomicBool,
}

impl Probes for Health {
    fn metrics_text(&self) -> String {
        self.metrics.encode()
    }

    fn readiness(&self) -> Readiness {
        if !self.ready.load(Ordering::Relaxed) {
            return Readiness::NotReady("the apiserver was not reached yet".into());
        }
        if self.leading.load(Ordering::Relaxed) {
            Readiness::Ready("leading".into())
        } else {
            Readiness::Ready("standing by".into())
        }
    }
}
