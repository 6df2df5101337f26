//! What the site did by itself: node replacements, drift set back, layer changes, agent
//! restarts, the link to management lost and back. Each event is kept in the site's own
//! cluster as it happens (the ConfigMap [`SITE_LOG_CONFIG_MAP`], so that an outage or a
//! restart loses nothing) and the latest go with every report, each with the time it
//! happened: when the link returns after an outage, management learns what happened
//! during it, in order and at the right times.
//!
//! Management only shows them. The schema bounds their number and length, and the
//! controller decides nothing on them.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use strata_shared::bounded_text::cut;
use strata_shared::cluster::{SITE_EVENT_MESSAGE_LIMIT, SITE_EVENTS_IN_STATUS, SiteEvent};
use strata_shared::contracts::names::{AGENT_NAMESPACE, SITE_LOG_CONFIG_MAP};
use strata_shared::kube_writer::{KubeWriter, WriteError};
use tokio::sync::Mutex;

use crate::status_report::StatusReport;

/// How many events the site keeps (the status carries the latest
/// [`SITE_EVENTS_IN_STATUS`]).
pub const KEPT: usize = 200;
/// The ConfigMap key holding the events, as a JSON list.
const EVENTS_KEY: &str = "events";

/// What kind of thing the site did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteEventKind {
    /// A machine its health check failed was deleted for its owner to replace.
    MachineRemediated,
    MachineCreated,
    MachineDeleted,
    DriftCorrected,
    /// A layer installed, upgraded, removed or failed.
    LayerChanged,
    AgentStarted,
    LinkLost,
    LinkRestored,
}

impl SiteEventKind {
    /// Every kind's name, as the status field's description lists them.
    const NAMES: [&'static str; 8] = [
        "MachineRemediated",
        "MachineCreated",
        "MachineDeleted",
        "DriftCorrected",
        "LayerChanged",
        "AgentStarted",
        "LinkLost",
        "LinkRestored",
    ];

    pub fn name(self) -> &'static str {
        match self {
            SiteEventKind::MachineRemediated => "MachineRemediated",
            SiteEventKind::MachineCreated => "MachineCreated",
            SiteEventKind::MachineDeleted => "MachineDeleted",
            SiteEventKind::DriftCorrected => "DriftCorrected",
            SiteEventKind::LayerChanged => "LayerChanged",
            SiteEventKind::AgentStarted => "AgentStarted",
            SiteEventKind::LinkLost => "LinkLost",
            SiteEventKind::LinkRestored => "LinkRestored",
        }
    }
}

/// The site's log, shared by the agent's tasks.
#[derive(Clone)]
pub struct SiteLog {
    workload: KubeWriter,
    report: StatusReport,
    events: Arc<std::sync::Mutex<Vec<SiteEvent>>>,
    /// One write at a time, each of the log as it stands then: the last write is of the
    /// newest log.
    writing: Arc<Mutex<()>>,
}

impl SiteLog {
    /// The log as the site's cluster keeps it; empty when it has none, or when what it has
    /// does not parse (the agent's own record, written again from now on).
    pub async fn open(workload: KubeWriter, report: StatusReport) -> SiteLog {
        let kept = match workload
            .namespaced::<ConfigMap>(AGENT_NAMESPACE)
            .get(SITE_LOG_CONFIG_MAP)
            .await
        {
            Ok(map) => map
                .and_then(|m| m.data)
                .and_then(|mut d| d.remove(EVENTS_KEY))
                .map(|text| parse(&text))
                .unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the site log; it starts empty");
                Vec::new()
            }
        };
        report.set_site_events(latest(&kept));
        SiteLog {
            workload,
            report,
            events: Arc::new(std::sync::Mutex::new(kept)),
            writing: Arc::default(),
        }
    }

    fn events(&self) -> std::sync::MutexGuard<'_, Vec<SiteEvent>> {
        // Plain values: a panic elsewhere cannot leave them half-updated.
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an event that happened now: in the next report at once, and kept in the
    /// site's cluster by a write of its own (one that fails is made again with the next
    /// event), so that no caller waits for it.
    pub fn record(&self, kind: SiteEventKind, message: impl Into<String>) {
        let message = message.into();
        tracing::info!(kind = kind.name(), "{message}");
        let reported = {
            let mut events = self.events();
            append(&mut events, event(kind, &message, Timestamp::now()));
            latest(&events)
        };
        self.report.set_site_events(reported);
        let log = self.clone();
        tokio::spawn(async move {
            let _one = log.writing.lock().await;
            let events = log.events().clone();
            if let Err(e) = log.keep(&events).await {
                tracing::warn!(error = %e, "cannot keep the site log in this cluster; will try with the next event");
            }
        });
    }

    async fn keep(&self, events: &[SiteEvent]) -> Result<(), WriteError> {
        let text = serde_json::to_string(events).unwrap_or_else(|_| "[]".into());
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(SITE_LOG_CONFIG_MAP.into()),
                namespace: Some(AGENT_NAMESPACE.into()),
                ..ObjectMeta::default()
            },
            data: Some([(EVENTS_KEY.to_string(), text)].into()),
            ..ConfigMap::default()
        };
        let maps = self.workload.namespaced::<ConfigMap>(AGENT_NAMESPACE);
        match maps.merge_patch(SITE_LOG_CONFIG_MAP, &map).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_gone() => maps.create(&map).await.map(|_| ()),
            Err(e) => Err(e),
        }
    }
}

fn event(kind: SiteEventKind, message: &str, at: Timestamp) -> SiteEvent {
    SiteEvent {
        time: Time(at),
        kind: kind.name().to_string(),
        message: cut(message, SITE_EVENT_MESSAGE_LIMIT),
    }
}

/// Appends `event`, keeping the newest [`KEPT`].
fn append(events: &mut Vec<SiteEvent>, event: SiteEvent) {
    events.push(event);
    let over = events.len().saturating_sub(KEPT);
    events.drain(..over);
}

/// The events a report carries: the newest [`SITE_EVENTS_IN_STATUS`], oldest first.
fn latest(events: &[SiteEvent]) -> Vec<SiteEvent> {
    events[events.len().saturating_sub(SITE_EVENTS_IN_STATUS)..].to_vec()
}

/// The kept list, bounded as if it had been recorded here (anyone with access to the
/// site's cluster can edit the ConfigMap): only the kinds the agent writes, messages cut
/// to what the schema allows, the newest [`KEPT`].
fn parse(text: &str) -> Vec<SiteEvent> {
    match serde_json::from_str::<Vec<SiteEvent>>(text) {
        Ok(read) => {
            let mut events = Vec::new();
            // A kind the agent does not write is not this agent's record: left out.
            for mut event in read {
                if !SiteEventKind::NAMES.contains(&event.kind.as_str()) {
                    continue;
                }
                event.message = cut(&event.message, SITE_EVENT_MESSAGE_LIMIT);
                append(&mut events, event);
            }
            events
        }
        Err(e) => {
            tracing::warn!(error = %e, "the kept site log does not parse; it starts empty");
            Vec::new()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    #[test]
    fn every_kind_name_is_listed_once() {
        let kinds = [
            SiteEventKind::MachineRemediated,
            SiteEventKind::MachineCreated,
            SiteEventKind::MachineDeleted,
            SiteEventKind::DriftCorrected,
            SiteEventKind::LayerChanged,
            SiteEventKind::AgentStarted,
            SiteEventKind::LinkLost,
            SiteEventKind::LinkRestored,
        ];
        let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        assert_eq!(names, SiteEventKind::NAMES);
    }

    #[test]
    fn the_site_keeps_the_newest_and_reports_fewer() {
        let mut events = Vec::new();
        for i in 0..(KEPT as i64 + 10) {
            append(
                &mut events,
                event(SiteEventKind::DriftCorrected, &format!("pass {i}"), at(i)),
            );
        }
        assert_eq!(events.len(), KEPT);
        assert_eq!(events[0].message, "pass 10");
        let reported = latest(&events);
        assert_eq!(reported.len(), SITE_EVENTS_IN_STATUS);
        assert_eq!(
            reported.last().unwrap().message,
            format!("pass {}", KEPT + 9)
        );
        assert_eq!(reported.last().unwrap().time, Time(at(KEPT as i64 + 9)));
    }

    #[test]
    fn a_message_is_cut_to_what_the_schema_allows() {
        let long = "x".repeat(10_000);
        let recorded = event(SiteEventKind::LayerChanged, &long, at(0));
        assert!(recorded.message.chars().count() <= 512);
        assert!(recorded.message.ends_with("… (cut)"));
    }

    #[test]
    fn a_kept_log_is_read_back_bounded_and_garbage_starts_empty() {
        let kept = serde_json::to_string(&vec![
            event(SiteEventKind::AgentStarted, "started", at(1)),
            SiteEvent {
                time: Time(at(2)),
                kind: "k".repeat(1000),
                message: "m".repeat(1000),
            },
        ])
        .unwrap();
        let read = parse(&kept);
        assert_eq!(read.len(), 1, "an unknown kind is left out");
        assert_eq!(read[0].kind, "AgentStarted");
        let long = serde_json::to_string(&vec![SiteEvent {
            time: Time(at(3)),
            kind: "DriftCorrected".into(),
            message: "m".repeat(1000),
        }])
        .unwrap();
        let read = parse(&long);
        assert!(read[0].message.chars().count() <= 512);
        assert!(parse("{not json").is_empty());
        assert!(parse("[]").is_empty());
    }
}
