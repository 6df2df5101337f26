#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn profile(namespace: &str, object: &str, name: Option<&str>, version: &str) -> ClusterProfile {
    let mut value = serde_json::json!({
        "apiVersion": "strata.dev/v1alpha1", "kind": "ClusterProfile",
        "metadata": {"name": object, "namespace": namespace},
        "spec": {
            "type": "infra", "version": version, "cloudType": "sim",
            "layers": [{"name": "kubernetes", "version": "1.20.2"}],
        },
    });
    if let Some(name) = name {
        value["spec"]["name"] = serde_json::json!(name);
    }
    serde_json::from_value(value).unwrap()
}

fn cluster(namespace: &str, name: &str, profiles: &[(&str, &str)]) -> WorkloadCluster {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "strata.dev/v1alpha1", "kind": "WorkloadCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "cloudType": "sim",
            "profiles": profiles.iter().map(|(n, v)| serde_json::json!({"name": n, "version": v})).collect::<Vec<_>>(),
            "nodePools": {
                "controlPlane": {"count": 1, "machine": {"cpus": 2, "memoryMib": 4096, "diskGib": 40}},
                "workers": [],
            },
        },
    }))
    .unwrap()
}

#[test]
fn each_version_lists_the_clusters_the_controller_would_give_it() {
    let profiles = [
        profile("strata-system", "infra", None, "1.0.0"),
        profile("strata-system", "infra-1-1-0", Some("infra"), "1.1.0"),
        // team shadows the shared 1.1.0 for its own clusters.
        profile("team", "team-infra", Some("infra"), "1.1.0"),
        profile("strata-system", "addons", None, "1.1.0"),
    ];
    let clusters = [
        cluster("edge", "a", &[("infra", "1.0.0"), ("addons", "1.1.0")]),
        cluster("edge", "b", &[("infra", "1.1.0")]),
        cluster("team", "c", &[("infra", "1.1.0")]),
        cluster("team", "d", &[("infra", "9.9.9")]),
    ];
    let listed = published_versions(&profiles, &clusters, "infra", None, "strata-system");
    let rows: Vec<(&str, &str, Vec<&str>)> = listed
        .iter()
        .map(|v| {
            (
                v.version.as_str(),
                v.object.as_str(),
                v.clusters.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("1.0.0", "infra", vec!["edge/a"]),
            ("1.1.0", "infra-1-1-0", vec!["edge/b"]),
            ("1.1.0", "team-infra", vec!["team/c"]),
        ]
    );
    let only_team =
        published_versions(&profiles, &clusters, "infra", Some("team"), "strata-system");
    assert_eq!(only_team.len(), 1);
    assert_eq!(only_team[0].namespace, "team");
}

#[test]
fn the_table_has_a_header_and_a_row_per_version() {
    let profiles = [
        profile("strata-system", "infra-2-0-0", Some("infra"), "2.0.0"),
        profile("strata-system", "infra", None, "1.0.0"),
    ];
    let clusters = [cluster("edge", "a", &[("infra", "2.0.0")])];
    let listed = published_versions(&profiles, &clusters, "infra", None, "strata-system");
    assert_eq!(
        table("infra", &listed),
        "profile infra: 2 version(s)\n\
         VERSION  TYPE   CLOUD  OBJECT                     CLUSTERS\n\
         1.0.0    infra  sim    strata-system/infra        -\n\
         2.0.0    infra  sim    strata-system/infra-2-0-0  edge/a\n"
    );
}
