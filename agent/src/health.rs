//! What the agent's `/metrics`, `/healthz` and `/readyz` report (served by
//! `strata_shared::probe_endpoints`). Ready means the agent reached its own cluster's
//! apiserver: the management cluster being out of reach is normal at an edge site and
//! shows in `strata_agent_link`, not in readiness.

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use strata_shared::probe_endpoints::{Probes, Readiness};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LayerLabel {
    layer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkLabel {
    state: &'static str,
}

/// The names a phase and a link state can have are given at construction (by `main`, from
/// `Phase::NAMES` and `LinkState::NAMES`), so every series exists from the start.
pub struct AgentHealth {
    registry: Registry,
    phases: &'static [&'static str],
    link_states: &'static [&'static str],
    ready: AtomicBool,
    leading_flag: AtomicBool,
    leading: Gauge,
    phase: Family<PhaseLabel, Gauge>,
    link: Family<LinkLabel, Gauge>,
    beats: Family<LinkLabel, Counter>,
    layer_ready: Family<LayerLabel, Gauge>,
    drift_corrections: Family<LayerLabel, Counter>,
}

impl AgentHealth {
    pub fn new(
        phases: &'static [&'static str],
        link_states: &'static [&'static str],
    ) -> AgentHealth {
        let mut registry = Registry::with_prefix("strata_agent");
        let leading = Gauge::default();
        let phase = Family::<PhaseLabel, Gauge>::default();
        let link = Family::<LinkLabel, Gauge>::default();
        let beats = Family::<LinkLabel, Counter>::default();
        registry.register(
            "leading",
            "1 while this replica holds the agent's lease",
            leading.clone(),
        );
        registry.register(
            "phase",
            "1 for the phase the leading agent's work is in",
            phase.clone(),
        );
        registry.register(
            "link",
            "1 for the state the link with the management cluster was last found in",
            link.clone(),
        );
        registry.register(
            "link_beats",
            "Beats of the link with the management cluster, by the state found",
            beats.clone(),
        );
        let layer_ready = Family::<LayerLabel, Gauge>::default();
        let drift_corrections = Family::<LayerLabel, Counter>::default();
        registry.register(
            "layer_ready",
            "1 while the layer is Ready, 0 while it is not",
            layer_ready.clone(),
        );
        registry.register(
            "layer_drift_corrections",
            "Objects and fields of the layer set back after they changed or went",
            drift_corrections.clone(),
        );
        for &name in phases {
            phase.get_or_create(&PhaseLabel { phase: name }).set(0);
        }
        for &state in link_states {
            link.get_or_create(&LinkLabel { state }).set(0);
        }
        AgentHealth {
            registry,
            phases,
            link_states,
            ready: AtomicBool::new(false),
            leading_flag: AtomicBool::new(false),
            leading,
            phase,
            link,
            beats,
            layer_ready,
            drift_corrections,
        }
    }

    /// The agent reached its own cluster's apiserver.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn set_leading(&self, leading: bool) {
        self.leading_flag.store(leading, Ordering::Relaxed);
        self.leading.set(i64::from(leading));
        if !leading {
            for &name in self.phases {
                self.phase.get_or_create(&PhaseLabel { phase: name }).set(0);
            }
        }
    }

    /// The leading agent's work is in phase `current` (one of the names given to `new`).
    pub fn set_phase(&self, current: &'static str) {
        for &name in self.phases {
            let value = i64::from(name == current);
            self.phase
                .get_or_create(&PhaseLabel { phase: name })
                .set(value);
        }
    }

    pub fn layer_ready(&self, layer: &str, ready: bool) {
        self.layer_ready
            .get_or_create(&LayerLabel {
                layer: layer.to_string(),
            })
            .set(i64::from(ready));
    }

    pub fn drift_corrected(&self, layer: &str, count: u64) {
        self.drift_corrections
            .get_or_create(&LayerLabel {
                layer: layer.to_string(),
            })
            .inc_by(count);
    }

    /// A beat of the link found it in state `found` (one of the names given to `new`).
    pub fn link_beat(&self, found: &'static str) {
        for &state in self.link_states {
            let value = i64::from(state == found);
            self.link.get_or_create(&LinkLabel { state }).set(value);
        }
        self.beats.get_or_create(&LinkLabel { state: found }).inc();
    }
}

impl Probes for AgentHealth {
    fn metrics_text(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    fn readiness(&self) -> Readiness {
        if !self.ready.load(Ordering::Relaxed) {
            return Readiness::NotReady("this cluster's apiserver was not reached yet".into());
        }
        if self.leading_flag.load(Ordering::Relaxed) {
            Readiness::Ready("leading".into())
        } else {
            Readiness::Ready("standing by".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    const PHASES: [&str; 3] = ["pivoting", "holding", "moving back"];
    const LINK_STATES: [&str; 2] = ["Connected", "Unreachable"];

    #[test]
    fn one_phase_and_one_link_state_at_a_time() {
        let health = AgentHealth::new(&PHASES, &LINK_STATES);
        assert_eq!(
            health.readiness(),
            Readiness::NotReady("this cluster's apiserver was not reached yet".into())
        );
        health.set_ready();
        health.set_leading(true);
        health.set_phase("pivoting");
        health.set_phase("moving back");
        health.link_beat("Unreachable");
        health.link_beat("Connected");
        health.link_beat("Connected");
        assert_eq!(health.readiness(), Readiness::Ready("leading".into()));
        let text = health.metrics_text();
        assert_eq!(
            line(&text, "strata_agent_phase{phase=\"moving back\"}"),
            Some("strata_agent_phase{phase=\"moving back\"} 1")
        );
        assert_eq!(
            line(&text, "strata_agent_phase{phase=\"pivoting\"}"),
            Some("strata_agent_phase{phase=\"pivoting\"} 0")
        );
        assert_eq!(
            line(&text, "strata_agent_link{state=\"Connected\"}"),
            Some("strata_agent_link{state=\"Connected\"} 1")
        );
        assert_eq!(
            line(&text, "strata_agent_link{state=\"Unreachable\"}"),
            Some("strata_agent_link{state=\"Unreachable\"} 0")
        );
        assert_eq!(
            line(&text, "strata_agent_link_beats_total{state=\"Connected\"}"),
            Some("strata_agent_link_beats_total{state=\"Connected\"} 2")
        );
        assert_eq!(
            line(&text, "strata_agent_leading "),
            Some("strata_agent_leading 1")
        );

        health.set_leading(false);
        let text = health.metrics_text();
        assert_eq!(
            line(&text, "strata_agent_leading "),
            Some("strata_agent_leading 0")
        );
        assert_eq!(
            line(&text, "strata_agent_phase{phase=\"moving back\"}"),
            Some("strata_agent_phase{phase=\"moving back\"} 0")
        );
        assert_eq!(health.readiness(), Readiness::Ready("standing by".into()));
    }
}
