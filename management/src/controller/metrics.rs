//! Prometheus metrics: reconciles by result, errors by reason, reconcile durations, and
//! clusters by phase.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use strata_shared::cluster::ClusterPhase;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabel, Counter>,
    errors: Family<ReasonLabel, Counter>,
    duration: Histogram,
    clusters: Family<PhaseLabel, Gauge>,
    /// The last phase of each cluster, to move it between the gauges.
    phases: Mutex<HashMap<String, ClusterPhase>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("strata_controller");
        let reconciles = Family::<ResultLabel, Counter>::default();
        let errors = Family::<ReasonLabel, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let clusters = Family::<PhaseLabel, Gauge>::default();
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long one reconcile took",
            duration.clone(),
        );
        registry.register("clusters", "WorkloadClusters by phase", clusters.clone());
        for phase in ClusterPhase::ALL {
            clusters
                .get_or_create(&PhaseLabel {
                    phase: phase.as_str(),
                })
                .set(0);
        }
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            clusters,
            phases: Mutex::new(HashMap::new()),
        }
    }

    pub fn reconciled(&self, took: Duration, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn failed(&self, reason: &str) {
        self.errors
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Records a cluster's phase; `None` when the cluster is gone.
    pub fn set_phase(&self, cluster: &str, phase: Option<ClusterPhase>) {
        let mut phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
        let previous = match phase {
            Some(p) => phases.insert(cluster.to_string(), p),
            None => phases.remove(cluster),
        };
        if previous == phase {
            return;
        }
        if let Some(p) = previous {
            self.clusters
                .get_or_create(&PhaseLabel { phase: p.as_str() })
                .dec();
        }
        if let Some(p) = phase {
            self.clusters
                .get_or_create(&PhaseLabel { phase: p.as_str() })
                .inc();
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_move_between_phases() {
        let metrics = Metrics::new();
        metrics.set_phase("a/x", Some(ClusterPhase::Provisioning));
        metrics.set_phase("a/y", Some(ClusterPhase::Provisioning));
        metrics.set_phase("a/x", Some(ClusterPhase::AgentInstalled));
        metrics.set_phase("a/y", None);
        metrics.reconciled(Duration::from_millis(20), true);
        metrics.failed("ApplyFailed");
        let text = metrics.encode();
        assert!(
            text.contains("strata_controller_clusters{phase=\"Provisioning\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("strata_controller_clusters{phase=\"AgentInstalled\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("strata_controller_reconciles_total{result=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("strata_controller_reconcile_errors_total{reason=\"ApplyFailed\"} 1"),
            "{text}"
        );
    }
}
