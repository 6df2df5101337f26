//! Self-healing settings of a cluster: how Cluster API checks each pool's machines
//! (a MachineHealthCheck) and remediates them, how many retries the control plane gets,
//! when its certificates are renewed by a rollout, and how a worker pool rolls (surge
//! and unavailability). Each is optional in the WorkloadCluster; the revision carries
//! them [`resolved`](NodePools::resolved) with the defaults below.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{NodePools, WorkloadClusterSpec};
use crate::finding::Findings;

/// A node whose `Ready` condition is `False` or `Unknown` this long makes its machine
/// unhealthy.
pub const DEFAULT_UNHEALTHY_SECONDS: u32 = 300;
/// A machine without a node this long after it was created is unhealthy.
pub const DEFAULT_NODE_STARTUP_SECONDS: u32 = 600;
/// Machines are remediated only while at most this share of a pool is unhealthy: more
/// usually means a problem remediation cannot fix (a network outage), and replacing
/// machines then makes it worse.
pub const DEFAULT_MAX_UNHEALTHY: &str = "40%";
/// Replacements of a failed control-plane machine tried before the control plane stops
/// remediating it.
pub const DEFAULT_MAX_RETRY: u32 = 3;
/// The control plane rolls a machine whose certificates expire within this many days.
pub const DEFAULT_CERTIFICATES_EXPIRY_DAYS: u32 = 21;
/// Cluster API's bounds: at least 7 days, and less than kubeadm's certificate validity.
const CERTIFICATES_EXPIRY_DAYS: std::ops::Range<u32> = 7..365;
/// Cluster API refuses a shorter node startup timeout (0, which disables the check, is
/// refused here too: a machine that never gets a node must not stay forever).
const MIN_NODE_STARTUP_SECONDS: u32 = 30;

/// How a pool's machines are checked, as a MachineHealthCheck.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Seconds a node may be `Ready=False` or `Ready=Unknown` before its machine is
    /// replaced; 300 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_timeout_seconds: Option<u32>,
    /// Seconds a machine may go without a node before it is replaced (at least 30); 600
    /// when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_startup_timeout_seconds: Option<u32>,
    /// Machines are replaced only while at most this many (`2`) or this share (`"40%"`)
    /// of the pool is unhealthy; `"40%"` when unset.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "amount_text"
    )]
    #[schemars(schema_with = "amount_schema")]
    pub max_unhealthy: Option<IntOrString>,
}

impl HealthCheck {
    /// Every field set, the defaults where this one has none.
    pub fn resolved(&self) -> HealthCheck {
        HealthCheck {
            unhealthy_timeout_seconds: Some(self.unhealthy_timeout_seconds()),
            node_startup_timeout_seconds: Some(self.node_startup_timeout_seconds()),
            max_unhealthy: Some(self.max_unhealthy()),
        }
    }

    pub fn unhealthy_timeout_seconds(&self) -> u32 {
        self.unhealthy_timeout_seconds
            .unwrap_or(DEFAULT_UNHEALTHY_SECONDS)
    }

    pub fn node_startup_timeout_seconds(&self) -> u32 {
        self.node_startup_timeout_seconds
            .unwrap_or(DEFAULT_NODE_STARTUP_SECONDS)
    }

    pub fn max_unhealthy(&self) -> IntOrString {
        self.max_unhealthy
            .clone()
            .unwrap_or_else(|| IntOrString::String(DEFAULT_MAX_UNHEALTHY.into()))
    }
}

/// How the control plane remediates a machine its health check marked (the
/// KubeadmControlPlane's `remediation`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneRemediation {
    /// Replacements tried when a replacement fails too; 3 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry: Option<u32>,
    /// Seconds to wait before replacing a failed replacement; at once when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_period_seconds: Option<u32>,
    /// Seconds after which a machine's failure no longer counts as a retry of the
    /// previous one; Cluster API's hour when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_healthy_period_seconds: Option<u32>,
}

impl ControlPlaneRemediation {
    pub fn resolved(&self) -> ControlPlaneRemediation {
        ControlPlaneRemediation {
            max_retry: Some(self.max_retry.unwrap_or(DEFAULT_MAX_RETRY)),
            ..self.clone()
        }
    }
}

/// How a worker pool rolls when its machines change (the MachineDeployment's rolling
/// update). Cluster API's defaults (surge 1, none unavailable) apply when unset.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolRollout {
    /// Machines created above the pool's count during a roll: a number or a share of the
    /// count (`"25%"`, rounded up).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "amount_text"
    )]
    #[schemars(schema_with = "amount_schema")]
    pub max_surge: Option<IntOrString>,
    /// Machines that may be unavailable during a roll: a number or a share of the count
    /// (rounded down).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "amount_text"
    )]
    #[schemars(schema_with = "amount_schema")]
    pub max_unavailable: Option<IntOrString>,
}

impl PoolRollout {
    pub fn is_empty(&self) -> bool {
        self.max_surge.is_none() && self.max_unavailable.is_none()
    }
}

impl NodePools {
    /// The pools with every health check and the control plane's remediation resolved
    /// (defaults filled in), as a revision carries them.
    pub fn resolved(&self) -> NodePools {
        let mut pools = self.clone();
        let cp = &mut pools.control_plane;
        cp.health_check = Some(cp.health_check.clone().unwrap_or_default().resolved());
        cp.remediation = Some(cp.remediation.clone().unwrap_or_default().resolved());
        for pool in &mut pools.workers {
            pool.health_check = Some(pool.health_check.clone().unwrap_or_default().resolved());
        }
        pools
    }
}

/// The control plane's certificate rollout threshold, the default when unset.
pub fn certificates_expiry_days(set: Option<u32>) -> u32 {
    set.unwrap_or(DEFAULT_CERTIFICATES_EXPIRY_DAYS)
}

/// Errors in the self-healing and rollout settings, naming the field.
pub fn check_self_healing(spec: &WorkloadClusterSpec) -> Findings {
    let mut findings = Findings::new();
    let pools = &spec.node_pools;
    if let Some(check) = &pools.control_plane.health_check {
        check_health(
            "spec.nodePools.controlPlane.healthCheck",
            check,
            &mut findings,
        );
    }
    for (i, pool) in pools.workers.iter().enumerate() {
        let at = format!("spec.nodePools.workers[{i}]");
        if let Some(check) = &pool.health_check {
            check_health(&format!("{at}.healthCheck"), check, &mut findings);
        }
        if let Some(rollout) = &pool.rollout {
            check_rollout(&format!("{at}.rollout"), rollout, &mut findings);
        }
    }
    if let Some(days) = spec.certificates_expiry_days
        && !CERTIFICATES_EXPIRY_DAYS.contains(&days)
    {
        findings.error(
            "spec.certificatesExpiryDays",
            format!(
                "is {days}; expected {} to {} days (Cluster API's bounds)",
                CERTIFICATES_EXPIRY_DAYS.start,
                CERTIFICATES_EXPIRY_DAYS.end - 1
            ),
        );
    }
    findings
}

fn check_health(at: &str, check: &HealthCheck, findings: &mut Findings) {
    if check.unhealthy_timeout_seconds == Some(0) {
        findings.error(
            format!("{at}.unhealthyTimeoutSeconds"),
            "is 0; expected at least 1 second (a node's first NotReady must not replace its machine)",
        );
    }
    if let Some(seconds) = check.node_startup_timeout_seconds
        && seconds < MIN_NODE_STARTUP_SECONDS
    {
        findings.error(
            format!("{at}.nodeStartupTimeoutSeconds"),
            format!("is {seconds}; expected at least {MIN_NODE_STARTUP_SECONDS} seconds"),
        );
    }
    if let Some(max) = &check.max_unhealthy {
        check_amount(&format!("{at}.maxUnhealthy"), max, findings);
    }
}

fn check_rollout(at: &str, rollout: &PoolRollout, findings: &mut Findings) {
    let surge = rollout
        .max_surge
        .as_ref()
        .map(|v| check_amount(&format!("{at}.maxSurge"), v, findings));
    let unavailable = rollout
        .max_unavailable
        .as_ref()
        .map(|v| check_amount(&format!("{at}.maxUnavailable"), v, findings));
    // Cluster API's defaults: surge 1, none unavailable.
    if surge.unwrap_or(Some(1)) == Some(0) && unavailable.unwrap_or(Some(0)) == Some(0) {
        findings.error(
            at,
            "has maxSurge 0 and maxUnavailable 0; a pool could never roll (set one above 0)",
        );
    }
}

/// An amount in the CRDs is a string, a count (`"2"`) or a share (`"40%"`), not
/// `x-kubernetes-int-or-string`: apiservers before 1.21 cannot build the server-side apply
/// model of a CRD with an int-or-string field anywhere, treat every list of it as atomic,
/// and then the controller's status conditions replace the agent's.
fn amount_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "nullable": true,
        "pattern": "^[0-9]+%?$",
    })
}

/// Written as the CRDs take it: a string, whichever form it was read in (an integer in a
/// file is still read).
fn amount_text<S: serde::Serializer>(
    value: &Option<IntOrString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(IntOrString::Int(n)) => serializer.serialize_str(&n.to_string()),
        Some(IntOrString::String(text)) => serializer.serialize_str(text),
        None => serializer.serialize_none(),
    }
}

/// The amount as Cluster API takes it: a count as an integer, a share as a string.
pub fn capi_amount(value: &IntOrString) -> IntOrString {
    match value {
        IntOrString::String(text) => text
            .parse::<i32>()
            .map_or_else(|_| value.clone(), IntOrString::Int),
        IntOrString::Int(_) => value.clone(),
    }
}

/// The amount (a count, or a percentage as its number), or `None` after an error.
fn check_amount(at: &str, value: &IntOrString, findings: &mut Findings) -> Option<u32> {
    match value {
        IntOrString::Int(n) => match u32::try_from(*n) {
            Ok(n) => Some(n),
            Err(_) => {
                findings.error(at, format!("is {n}; expected a count of 0 or more"));
                None
            }
        },
        IntOrString::String(text) if text.parse::<u32>().is_ok() => text.parse::<u32>().ok(),
        IntOrString::String(text) => {
            let percent = text
                .strip_suffix('%')
                .and_then(|digits| digits.parse::<u32>().ok());
            match percent {
                Some(p) if p <= 100 => Some(p),
                Some(p) => {
                    findings.error(at, format!("is {p}%; expected a percentage of 0% to 100%"));
                    None
                }
                None => {
                    findings.error(
                        at,
                        format!("{text:?} is neither a count nor a percentage such as \"25%\""),
                    );
                    None
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "self_healing_tests.rs"]
mod tests;
