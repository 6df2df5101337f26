//! The link with a cluster's agent as the management side sees it: whether the agent reports.
//! The agent writes its last report time into the WorkloadCluster's status, by its own clock,
//! which at an edge site may be anything; so the controller judges silence by when it saw that
//! report change, on its own monotonic clock, and never by the time the agent wrote.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strata_shared::conditions::ConditionUpdate;
use strata_shared::contracts::conditions::AGENT_CONNECTED;

/// When each cluster's agent report last changed, as this controller saw it.
#[derive(Default)]
pub struct LinkWatch {
    seen: Mutex<HashMap<String, Sighting>>,
}

struct Sighting {
    report: Option<String>,
    changed: Instant,
}

/// What the controller knows of an agent's reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silence {
    /// Whether the agent ever reported.
    pub reported: bool,
    /// Since the report last changed (or since the controller first looked, when it never
    /// reported or the controller just started).
    pub for_: Duration,
}

impl LinkWatch {
    /// Records the report the cluster's status carries now (`None`: none yet) and says how
    /// long it has not changed.
    pub fn observe(&self, cluster: &str, report: Option<&str>) -> Silence {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let sighting = seen.entry(cluster.to_string()).or_insert(Sighting {
            report: report.map(String::from),
            changed: now,
        });
        if sighting.report.as_deref() != report {
            sighting.report = report.map(String::from);
            sighting.changed = now;
        }
        Silence {
            reported: report.is_some(),
            for_: now.duration_since(sighting.changed),
        }
    }

    pub fn forget(&self, cluster: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.remove(cluster);
    }
}

/// The AgentConnected condition for `silence`, with `threshold` the longest silence that
/// still counts as connected. Its message does not change while its state does not, so it
/// does not make a status write of every look.
pub fn connected_condition(silence: Silence, threshold: Duration) -> ConditionUpdate<'static> {
    let limit = threshold.as_secs();
    match (silence.reported, silence.for_ < threshold) {
        (true, true) => ConditionUpdate::ok(
            AGENT_CONNECTED,
            "Reporting",
            "the agent reports to the management cluster",
        ),
        (true, false) => ConditionUpdate::not(
            AGENT_CONNECTED,
            "AgentSilent",
            format!(
                "no report from the agent for more than {limit} s; status.agent.lastReportTime is its last one (the site may be cut off; see docs/security.md for reconnecting it)"
            ),
        ),
        (false, true) => ConditionUpdate::unknown(
            AGENT_CONNECTED,
            "WaitingForFirstReport",
            "the agent has not reported yet",
        ),
        (false, false) => ConditionUpdate::not(
            AGENT_CONNECTED,
            "NeverReported",
            format!("the agent has not reported in more than {limit} s since it was installed"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_follows_silence_on_the_controller_s_clock() {
        let threshold = Duration::from_secs(90);
        let cases = [
            (true, 10, "True", "Reporting"),
            (true, 89, "True", "Reporting"),
            (true, 90, "False", "AgentSilent"),
            (false, 30, "Unknown", "WaitingForFirstReport"),
            (false, 300, "False", "NeverReported"),
        ];
        for (reported, seconds, status, reason) in cases {
            let condition = connected_condition(
                Silence {
                    reported,
                    for_: Duration::from_secs(seconds),
                },
                threshold,
            );
            let shown = match condition.status {
                Some(true) => "True",
                Some(false) => "False",
                None => "Unknown",
            };
            assert_eq!(
                (shown, condition.reason),
                (status, reason),
                "{reported} {seconds}"
            );
        }
    }

    #[test]
    fn a_changed_report_resets_the_silence_and_the_same_one_does_not() {
        let watch = LinkWatch::default();
        let first = watch.observe("a/b", Some("2026-12-01T00:00:00Z"));
        assert!(first.reported && first.for_ < Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(30));
        // The same report again, even with a time in the future: the silence grows.
        let same = watch.observe("a/b", Some("2026-12-01T00:00:00Z"));
        assert!(same.for_ >= Duration::from_millis(30));
        let changed = watch.observe("a/b", Some("2099-01-01T00:00:00Z"));
        assert!(changed.for_ < Duration::from_millis(30));
        watch.forget("a/b");
        assert!(watch.observe("a/b", None).for_ < Duration::from_millis(30));
    }
}
