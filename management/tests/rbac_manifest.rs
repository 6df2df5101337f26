//! The chart (`manifests/chart/strata`, rendered into `manifests/controller/strata.yaml`)
//! holds the static ClusterRoles the controller binds per namespace; their rules are defined once, in `strata_shared::agent_install`, and must match.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use strata_shared::agent_install::{agent_objects_rules, controller_objects_rules};
use strata_shared::contracts::names::{AGENT_OBJECTS_ROLE, CONTROLLER_OBJECTS_ROLE};

fn manifest_role(name: &str) -> Vec<PolicyRule> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/controller/strata.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
        if value["kind"] == "ClusterRole" && value["metadata"]["name"] == name {
            let role: ClusterRole = serde_json::from_value(value).unwrap();
            return role.rules.unwrap_or_default();
        }
    }
    panic!("{} has no ClusterRole {name}", path.display());
}

#[test]
fn the_static_roles_in_the_manifest_are_the_ones_the_code_grants() {
    for (name, rules) in [
        (AGENT_OBJECTS_ROLE, agent_objects_rules()),
        (CONTROLLER_OBJECTS_ROLE, controller_objects_rules()),
    ] {
        assert_eq!(
            manifest_role(name),
            rules,
            "ClusterRole {name} in manifests/chart/strata/templates/rbac.yaml (rendered into manifests/controller/strata.yaml) differs from the rules in shared/src/agent_install.rs; make them equal"
        );
    }
}
