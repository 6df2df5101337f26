//! Keeps the agent's link with the management cluster: every beat it takes a renewed token
//! when the controller has one, and reports that it is alive. All of it is started from the
//! site (the management side never calls in). What it found is kept in the agent's own
//! cluster too (ConfigMap `strata-system/strata-link`), so that the site shows the state of
//! its link while management is unreachable; a token the management cluster refuses (401,
//! 403) is said at warn level, there and in the log, with what to do.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use strata_shared::contracts::names::{AGENT_NAMESPACE, LINK_STATE_CONFIG_MAP};
use strata_shared::kube_writer::{KubeWriter, WriteError};

use crate::health::AgentHealth;
use crate::management_link::{ManagementLink, RenewOutcome};
use crate::site_log::{SiteEventKind, SiteLog};
use crate::status_report::StatusReport;

/// How often the agent reports and looks for a renewed token.
pub const BEAT: Duration = Duration::from_secs(20);

/// The link as the agent last found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// The report went through.
    Connected,
    /// The management cluster could not be reached (cut off, slow, down).
    Unreachable(String),
    /// The management cluster answered 401 or 403: the token expired or was revoked.
    Refused(u16),
    /// The agent's own link Secret is missing or unusable.
    Unconfigured(String),
}

impl LinkState {
    /// Every state's name, as [`LinkState::name`] gives it.
    pub const NAMES: [&'static str; 4] =
        ["Connected", "Unreachable", "Unauthorized", "Unconfigured"];

    pub fn name(&self) -> &'static str {
        match self {
            LinkState::Connected => "Connected",
            LinkState::Unreachable(_) => "Unreachable",
            LinkState::Refused(_) => "Unauthorized",
            LinkState::Unconfigured(_) => "Unconfigured",
        }
    }

    fn message(&self) -> String {
        match self {
            LinkState::Connected => "the agent reports to the management cluster".into(),
            LinkState::Unreachable(why) => {
                format!("the management cluster cannot be reached: {why}")
            }
            LinkState::Refused(code) => format!(
                "the management cluster refuses the agent's token (HTTP {code}): it expired while the site was cut off, or was revoked. Run `strata cluster rekey` from the management side with this cluster's admin kubeconfig (docs/security.md)"
            ),
            LinkState::Unconfigured(why) => why.clone(),
        }
    }
}

/// One beat: renew, report, and say how it went.
pub async fn beat(link: &ManagementLink, report: &StatusReport) -> LinkState {
    let management = match link.management().await {
        Ok(management) => management,
        Err(e) => return LinkState::Unconfigured(e.to_string()),
    };
    match link.renew(&management).await {
        Ok(RenewOutcome::Current(access) | RenewOutcome::Renewed(access)) => {
            report.set_token_expiry(access.token_expires);
        }
        Err(e) => {
            return match e.status() {
                Some(code @ (401 | 403)) => LinkState::Refused(code),
                _ => LinkState::Unreachable(e.to_string()),
            };
        }
    }
    // A renewed token is in the link Secret now: the report goes with it.
    let management = match link.management().await {
        Ok(management) => management,
        Err(e) => return LinkState::Unconfigured(e.to_string()),
    };
    match report.send(&management, link).await {
        Ok(()) => LinkState::Connected,
        Err(e) => match e.code() {
            Some(code @ (401 | 403)) => LinkState::Refused(code),
            _ => LinkState::Unreachable(e.to_string()),
        },
    }
}

/// Beats until the task is dropped.
pub async fn run(
    workload: KubeWriter,
    link: ManagementLink,
    report: StatusReport,
    health: Arc<AgentHealth>,
    site_log: SiteLog,
) {
    let mut last: Option<LinkState> = None;
    // Since when the link has been down, as this agent saw it.
    let mut down_since: Option<Timestamp> = None;
    loop {
        let state = beat(&link, &report).await;
        health.link_beat(state.name());
        match (&state, down_since) {
            (LinkState::Connected, Some(since)) => {
                let down = Timestamp::now().duration_since(since);
                site_log.record(
                    SiteEventKind::LinkRestored,
                    format!(
                        "the link with the management cluster works again, after {}s without it",
                        down.as_secs()
                    ),
                );
                down_since = None;
            }
            (LinkState::Connected, None) => {}
            (down, None) => {
                site_log.record(
                    SiteEventKind::LinkLost,
                    format!(
                        "the link with the management cluster is {}: {}; the site goes on by itself",
                        down.name(),
                        down.message()
                    ),
                );
                down_since = Some(Timestamp::now());
            }
            (_, Some(_)) => {}
        }
        if last.as_ref() != Some(&state) {
            match &state {
                LinkState::Connected => {
                    tracing::info!("the link with the management cluster works")
                }
                LinkState::Refused(_) | LinkState::Unconfigured(_) => {
                    tracing::warn!(link = state.name(), "{}", state.message())
                }
                LinkState::Unreachable(_) => {
                    tracing::info!(link = state.name(), "{}", state.message())
                }
            }
        }
        if let Err(e) = record(&workload, &state, last.as_ref() != Some(&state)).await {
            tracing::debug!(error = %e, "cannot record the link's state in this cluster");
        }
        last = Some(state);
        tokio::time::sleep(BEAT).await;
    }
}

/// Writes the link's state into the agent's own cluster (`changed`: a new state, whose time
/// is now).
async fn record(workload: &KubeWriter, state: &LinkState, changed: bool) -> Result<(), WriteError> {
    let now = Timestamp::now().to_string();
    let mut data = BTreeMap::from([
        ("state".to_string(), state.name().to_string()),
        ("message".to_string(), state.message()),
    ]);
    if changed {
        data.insert("since".into(), now.clone());
    }
    if *state == LinkState::Connected {
        data.insert("lastContact".into(), now);
    }
    let map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(LINK_STATE_CONFIG_MAP.into()),
            namespace: Some(AGENT_NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    };
    // Keys left out keep their values: a merge, not an apply, so `since` and `lastContact`
    // stay until they change.
    let maps = workload.namespaced::<ConfigMap>(AGENT_NAMESPACE);
    match maps.merge_patch(LINK_STATE_CONFIG_MAP, &map).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_gone() => maps.create(&map).await.map(|_| ()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_name_is_listed_once() {
        let states = [
            LinkState::Connected,
            LinkState::Unreachable("cut off".into()),
            LinkState::Refused(401),
            LinkState::Unconfigured("no Secret".into()),
        ];
        let names: Vec<&str> = states.iter().map(LinkState::name).collect();
        assert_eq!(names, LinkState::NAMES);
    }
}
