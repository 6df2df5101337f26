use super::*;

#[test]
fn only_helm_not_knowing_force_conflicts_is_asked_again_without_it() {
    // Helm 3's words (cobra's), as `run` keeps them after "Error: ".
    assert!(is_unknown_flag("unknown flag: --force-conflicts"));
    assert!(!is_unknown_flag("unknown flag: --server-side"));
    assert!(!is_unknown_flag(
        "UPGRADE FAILED: conflict with \"kubectl-edit\" using v1: .data.greeting"
    ));
}

#[test]
fn missing_releases_are_told_from_other_failures() {
    assert!(is_not_found("release: not found"));
    assert!(!is_not_found(
        "another operation (install/upgrade/rollback) is in progress"
    ));
}
