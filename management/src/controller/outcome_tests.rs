use super::*;

use strata_shared::finding::Finding;

const LINK: Duration = Duration::from_secs(45);

type Shape = Vec<(&'static str, Option<bool>, &'static str)>;
/// outcome, phase, conditions, requeue, whether the status is written, counts.
type Row<'a> = (&'a Outcome, ClusterPhase, Shape, Duration, bool, Counts);

/// (type, status, reason) of each condition a decision adds, in order.
fn shape(decision: &Decision) -> Shape {
    decision
        .conditions
        .iter()
        .map(|c| (c.type_, c.status, c.reason))
        .collect()
}

#[test]
fn every_outcome_has_its_phase_conditions_and_requeue() {
    let invalid = Outcome::Invalid(Invalid::new(InvalidReason::CloudMismatch, "m"));
    let gone = Outcome::ObjectsGone {
        message: "gone".into(),
    };
    let kubeconfig = Outcome::WaitingForKubeconfig {
        message: "k".into(),
    };
    let unsafe_kubeconfig = Outcome::UnsafeKubeconfig {
        message: "u".into(),
    };
    let failed = Outcome::AgentInstallFailed { message: "f" };
    let starting = Outcome::AgentStarting {
        image: "a:1".into(),
    };
    let running = Outcome::AgentRunning {
        image: "a:1".into(),
    };
    let no = Some(false);
    let yes = Some(true);
    #[rustfmt::skip]
    let table: Vec<Row<'_>> = vec![
        (&invalid, ClusterPhase::Invalid,
            vec![(VALID, no, "CloudMismatch"), (READY, no, "CloudMismatch")],
            INVALID_RETRY, true, Counts::Keep),
        (&Outcome::HandedOver { moved: true }, ClusterPhase::Pivoted,
            vec![(READY, yes, "Pivoted")], LINK, true, Counts::LeftToAgent),
        (&Outcome::HandedOver { moved: false }, ClusterPhase::Pivoting,
            vec![(READY, no, "Pivoting")], LINK, true, Counts::LeftToAgent),
        (&Outcome::LedgerChanged, ClusterPhase::Pending, vec![], RACE_RETRY, false, Counts::Keep),
        (&gone, ClusterPhase::Provisioning,
            vec![(OBJECTS_APPLIED, no, "ObjectsGone"), (READY, no, "ObjectsGone")],
            WAITING_FOR_CAPI, true, Counts::Keep),
        (&Outcome::WaitingForControlPlane, ClusterPhase::Provisioning,
            vec![(CONTROL_PLANE_INITIALIZED, no, "WaitingForControlPlane"),
                 (AGENT_INSTALLED, no, "WaitingForControlPlane"), (READY, no, "Provisioning")],
            WAITING_FOR_CAPI, true, Counts::Keep),
        (&kubeconfig, ClusterPhase::Provisioning,
            vec![(AGENT_INSTALLED, no, "WaitingForKubeconfig"), (READY, no, "Provisioning")],
            WAITING, true, Counts::Keep),
        (&Outcome::KubeconfigInFlux, ClusterPhase::Provisioning, vec![], RACE_RETRY, false, Counts::Keep),
        (&unsafe_kubeconfig, ClusterPhase::Provisioning,
            vec![(AGENT_INSTALLED, no, "UnsafeKubeconfig"), (READY, no, "Provisioning")],
            INVALID_RETRY, true, Counts::Keep),
        (&failed, ClusterPhase::InstallingAgent,
            vec![(AGENT_INSTALLED, no, "AgentInstallFailed"), (READY, no, "InstallingAgent")],
            WAITING, true, Counts::Keep),
        (&starting, ClusterPhase::InstallingAgent,
            vec![(AGENT_INSTALLED, no, "AgentStarting"), (READY, no, "InstallingAgent")],
            WAITING, true, Counts::Keep),
        (&running, ClusterPhase::AgentInstalled,
            vec![(AGENT_INSTALLED, yes, "Running"), (READY, yes, "AgentInstalled")],
            LINK, true, Counts::Keep),
    ];
    for (outcome, phase, conditions, requeue, write, counts) in table {
        let decision = decide(outcome, LINK);
        assert_eq!(decision.phase, phase, "{outcome:?}");
        assert_eq!(shape(&decision), conditions, "{outcome:?}");
        assert_eq!(decision.requeue, requeue, "{outcome:?}");
        assert_eq!(decision.write_status, write, "{outcome:?}");
        assert_eq!(decision.counts, counts, "{outcome:?}");
    }
}

#[test]
fn the_messages_users_read_are_kept() {
    let message = |outcome: &Outcome, type_: &str| {
        decide(outcome, LINK)
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.message)
            .unwrap_or_default()
    };
    let invalid = Outcome::Invalid(Invalid::new(InvalidReason::InvalidSpec, "spec.x: bad"));
    assert_eq!(message(&invalid, VALID), "spec.x: bad");
    assert_eq!(
        message(&invalid, READY),
        "the cluster is not valid; see the Valid condition"
    );
    let starting = Outcome::AgentStarting {
        image: "a:1".into(),
    };
    assert_eq!(
        message(&starting, AGENT_INSTALLED),
        "the agent Deployment (a:1) has no available replica yet"
    );
    assert_eq!(
        message(
            &Outcome::AgentRunning {
                image: "a:1".into()
            },
            AGENT_INSTALLED
        ),
        "the agent (a:1) runs in the workload cluster"
    );
    assert_eq!(
        message(&Outcome::WaitingForControlPlane, READY),
        "CAPI is provisioning the first control-plane machine"
    );
}

fn with_errors(errors: &[(FindingKind, &str)]) -> Findings {
    let mut findings = Findings::new();
    for (kind, message) in errors {
        findings.push(Finding::error("s", *message).of_kind(*kind));
    }
    findings
}

#[test]
fn every_composition_reason_follows_the_kind_of_finding() {
    let table = [
        (FindingKind::ProfileNotFound, InvalidReason::ProfileNotFound),
        (FindingKind::CloudMismatch, InvalidReason::CloudMismatch),
        (FindingKind::PackUnresolved, InvalidReason::PackUnresolved),
        (
            FindingKind::ConstraintNotMet,
            InvalidReason::ConstraintsNotMet,
        ),
        (FindingKind::Invalid, InvalidReason::InvalidProfile),
    ];
    for (kind, reason) in table {
        let findings = with_errors(&[(kind, "whatever")]);
        assert_eq!(InvalidReason::of_composition(&findings), reason, "{kind:?}");
    }
    assert_eq!(
        InvalidReason::of_composition(&Findings::new()),
        InvalidReason::InvalidProfile
    );
}

#[test]
fn the_first_kind_in_order_wins() {
    let findings = with_errors(&[
        (FindingKind::ConstraintNotMet, "c"),
        (FindingKind::PackUnresolved, "p"),
        (FindingKind::CloudMismatch, "m"),
    ]);
    assert_eq!(
        InvalidReason::of_composition(&findings),
        InvalidReason::CloudMismatch
    );
    let mut warned = Findings::new();
    warned.push(Finding::warning("s", "w").of_kind(FindingKind::ProfileNotFound));
    warned.error("s", "e");
    assert_eq!(
        InvalidReason::of_composition(&warned),
        InvalidReason::InvalidProfile,
        "warnings do not choose the reason"
    );
}

#[test]
fn a_reworded_message_cannot_change_the_reason() {
    // The texts the reasons used to be found in, now on findings of another kind...
    let old_texts = [
        "profile \"x\" was not found; profiles given: none",
        "profile aws-infra is for cloud \"aws\", but the cluster's cloudType is \"azure\"",
        "pack kubernetes:1.20.2 could not be fetched from registry r: refused",
        "no pack named \"x\" in r",
    ];
    for text in old_texts {
        let findings = with_errors(&[(FindingKind::Invalid, text)]);
        assert_eq!(
            InvalidReason::of_composition(&findings),
            InvalidReason::InvalidProfile,
            "{text}"
        );
    }
    // ...and a finding of each kind, with a message that says nothing of it.
    let findings = with_errors(&[(FindingKind::PackUnresolved, "reworded beyond recognition")]);
    assert_eq!(
        InvalidReason::of_composition(&findings),
        InvalidReason::PackUnresolved
    );
}

#[test]
fn every_invalid_reason_has_its_name() {
    let table = [
        (InvalidReason::InvalidSpec, "InvalidSpec"),
        (InvalidReason::NamespaceConflict, "NamespaceConflict"),
        (InvalidReason::CloudAccountNotFound, "CloudAccountNotFound"),
        (InvalidReason::CloudAccountInvalid, "CloudAccountInvalid"),
        (
            InvalidReason::CloudAccountNotCopyable,
            "CloudAccountNotCopyable",
        ),
        (InvalidReason::ProfileNotFound, "ProfileNotFound"),
        (InvalidReason::CloudMismatch, "CloudMismatch"),
        (InvalidReason::PackUnresolved, "PackUnresolved"),
        (InvalidReason::ConstraintsNotMet, "ConstraintsNotMet"),
        (InvalidReason::InvalidProfile, "InvalidProfile"),
        (InvalidReason::InvalidStack, "InvalidStack"),
    ];
    for (reason, name) in table {
        assert_eq!(reason.as_str(), name);
    }
}

#[test]
fn summaries_stop_at_five() {
    let mut f = Findings::new();
    for i in 0..7 {
        f.error(format!("s{i}"), "bad");
    }
    let text = summarize(&f);
    assert!(text.ends_with("(and 2 more)"), "{text}");
}
