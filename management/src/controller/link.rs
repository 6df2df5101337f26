//! The controller's side of the link with a cluster's agent, kept whatever else is wrong with
//! the cluster: the agent's token renewed when due, and the AgentConnected condition from how
//! long its report has not changed ([`super::link_watch`]).

use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::names::ClusterLocation;

use super::context::Context;
use super::credentials::{self, CredentialError};
use super::link_watch::connected_condition;
use super::status::StatusUpdate;

/// Once an agent was installed (its credential exists), renews its token when due and sets
/// whether it reports. True when an agent was installed.
pub async fn keep(
    ctx: &Context,
    cluster: &WorkloadCluster,
    location: &ClusterLocation,
    update: &mut StatusUpdate<'_>,
) -> Result<bool, CredentialError> {
    let key = location.key();
    let Some(existing) = credentials::current(&ctx.writer, &ctx.settings, location).await? else {
        ctx.link.forget(&key);
        return Ok(false);
    };
    credentials::refresh(&ctx.writer, &ctx.settings, location, Some(existing)).await?;
    let report = cluster
        .status
        .as_ref()
        .and_then(|s| s.agent.as_ref())
        .and_then(|a| a.last_report_time.as_ref())
        .map(|t| t.0.to_string());
    let silence = ctx.link.observe(&key, report.as_deref());
    update.condition(connected_condition(silence, ctx.settings.agent_silence));
    Ok(true)
}
