//! Standard (`metav1.Condition`) conditions: set one, keeping its transition time while
//! its status does not change, so that repeating a reconcile writes the same status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// One condition's wanted state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate<'a> {
    pub type_: &'a str,
    /// True or False; None for Unknown.
    pub status: Option<bool>,
    /// CamelCase, machine-readable.
    pub reason: &'a str,
    pub message: String,
}

impl<'a> ConditionUpdate<'a> {
    pub fn ok(type_: &'a str, reason: &'a str, message: impl Into<String>) -> Self {
        ConditionUpdate {
            type_,
            status: Some(true),
            reason,
            message: message.into(),
        }
    }

    pub fn not(type_: &'a str, reason: &'a str, message: impl Into<String>) -> Self {
        ConditionUpdate {
            type_,
            status: Some(false),
            reason,
            message: message.into(),
        }
    }

    pub fn unknown(type_: &'a str, reason: &'a str, message: impl Into<String>) -> Self {
        ConditionUpdate {
            type_,
            status: None,
            reason,
            message: message.into(),
        }
    }
}

fn status_text(status: Option<bool>) -> &'static str {
    match status {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    }
}

/// Sets `update` in `conditions` (by type), with `lastTransitionTime = now` only when the
/// status changes or the condition is new.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    update: ConditionUpdate<'_>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = status_text(update.status);
    let existing = conditions.iter_mut().find(|c| c.type_ == update.type_);
    let transition = match &existing {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: update.type_.to_string(),
        status: status.to_string(),
        reason: update.reason.to_string(),
        message: update.message,
        observed_generation: generation,
        last_transition_time: transition,
    };
    match existing {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
}

/// Whether `type_` is present and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ConditionUpdate::not("Ready", "Waiting", "a"),
            Some(1),
            t0,
        );
        set_condition(
            &mut conditions,
            ConditionUpdate::not("Ready", "StillWaiting", "b"),
            Some(2),
            t1,
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time.0, t0);
        assert_eq!(conditions[0].reason, "StillWaiting");
        assert_eq!(conditions[0].observed_generation, Some(2));
        set_condition(
            &mut conditions,
            ConditionUpdate::ok("Ready", "Done", ""),
            Some(2),
            t1,
        );
        assert_eq!(conditions[0].last_transition_time.0, t1);
        assert!(is_true(&conditions, "Ready"));
        assert!(!is_true(&conditions, "Other"));
    }
}
