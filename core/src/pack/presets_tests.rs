//! Tests of `presets.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

const INGRESS: &str = r#"
presets:
  - name: "enable-ingress"
    displayName: "Enable"
    group: "Ingress"
    remove: ["charts.app.service"]
    add: |
      charts:
        app:
          ingress:
            enabled: true
  - name: "disable-ingress"
    displayName: "Disable"
    group: "Ingress"
    remove: []
    add: |
      charts:
        app:
          ingress:
            enabled: false
  - name: "debug"
    displayName: "Debug logging"
    add: |
      charts:
        app:
          logLevel: debug
"#;

fn presets() -> PackPresets {
    let (presets, findings) = parse_presets(INGRESS);
    assert!(findings.is_empty(), "{findings:?}");
    presets
}

fn choice(source: &str, refs: &[&str]) -> PresetChoice {
    PresetChoice {
        source: source.to_string(),
        presets: refs.iter().map(|r| PresetRef::parse(r)).collect(),
    }
}

fn names(selected: &[&Preset]) -> Vec<String> {
    selected.iter().map(|p| p.name.clone()).collect()
}

#[test]
fn parses_the_documented_form() {
    let presets = presets();
    assert_eq!(presets.presets.len(), 3);
    let enable = &presets.presets[0];
    assert_eq!(enable.group.as_deref(), Some("Ingress"));
    assert_eq!(enable.display_name.as_deref(), Some("Enable"));
    assert_eq!(enable.remove[0].as_str(), "charts.app.service");
    assert_eq!(
        enable.add,
        yaml("charts: {app: {ingress: {enabled: true}}}")
    );
    assert_eq!(presets.presets[2].group, None);
}

#[test]
fn empty_files_hold_no_presets() {
    for text in ["", "# nothing\n", "presets:\n", "presets: []\n"] {
        let (presets, findings) = parse_presets(text);
        assert!(
            presets.is_empty() && findings.is_empty(),
            "{text:?}: {findings:?}"
        );
    }
}

#[test]
fn malformed_presets_are_errors_naming_the_entry() {
    let (presets, findings) = parse_presets(
        "presets:\n\
         - name: a\n  add: 'x: [unclosed'\n\
         - name: a\n  add: '- item'\n\
         - displayName: nameless\n\
         - name: b\n  remove: [3, 'x..y']\n  extra: 1\n\
         - just text\n",
    );
    assert!(
        findings.contains("presets[0].add", "is not valid YAML at line"),
        "{findings:?}"
    );
    assert!(findings.contains("presets[1].name", "already the name of presets[0]"));
    assert!(findings.contains("presets[2].name", "is missing"));
    assert!(findings.contains(
        "presets[3].remove[0]",
        "found a number, expected a dotted value key"
    ));
    assert!(findings.contains("presets[3].remove[1]", "has an empty part between dots"));
    assert!(findings.contains("presets[3].extra", "unknown field"));
    assert!(findings.contains("presets[4]", "found a string, expected a mapping"));
    assert_eq!(presets.presets.len(), 2);
    let (_, findings) = parse_presets("presets: {a: 1}\n");
    assert!(findings.contains("presets", "expected a list of presets"));
    let (_, findings) = parse_presets("presets:\n- name: c\n  add: '- x'\n");
    assert!(findings.contains(
        "presets[0].add",
        "holds a list, expected YAML text of a mapping"
    ));
}

#[test]
fn the_annotation_is_read_from_the_opening_comments() {
    let text = "\n# spectrocloud.com/enabled-presets: IPAM mode:ipam-kubernetes,VMO - Bridge interface:vmo-auto\npack: {}\n";
    let annotation = enabled_presets_annotation(text).unwrap();
    assert_eq!(annotation.line, 2);
    assert_eq!(
        annotation.presets,
        vec![
            PresetRef {
                group: Some("IPAM mode".into()),
                name: "ipam-kubernetes".into()
            },
            PresetRef {
                group: Some("VMO - Bridge interface".into()),
                name: "vmo-auto".into()
            },
        ]
    );
    // Written with nothing after it, it names none.
    let annotation =
        enabled_presets_annotation("# spectrocloud.com/enabled-presets:\npack: {}\n").unwrap();
    assert!(annotation.presets.is_empty());
    // After the first value it is an ordinary comment.
    assert_eq!(
        enabled_presets_annotation("pack: {}\n# spectrocloud.com/enabled-presets: A:b\n"),
        None
    );
}

#[test]
fn later_choices_replace_the_same_group_and_keep_the_others() {
    let presets = presets();
    let selected = presets
        .select(
            &[
                choice("pack", &["Ingress:disable-ingress"]),
                choice("profile", &["debug"]),
                choice("cluster", &["enable-ingress"]),
            ],
            &[],
        )
        .unwrap();
    // In presets.yaml order, not choice order.
    assert_eq!(names(&selected), ["enable-ingress", "debug"]);
}

#[test]
fn presets_of_one_group_exclude_each_other() {
    let errors = presets()
        .select(
            &[choice(
                "spec.layers[0].presets",
                &["enable-ingress", "disable-ingress"],
            )],
            &[],
        )
        .unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "spec.layers[0].presets names Ingress:enable-ingress and Ingress:disable-ingress, which \
         are both in group \"Ingress\"; presets of one group exclude each other"
    );
}

#[test]
fn naming_a_missing_preset_or_group_is_an_error() {
    let presets = presets();
    let errors = presets
        .select(
            &[choice(
                "spec.layers[1].presets",
                &["enable-ingres", "Routing:debug"],
            )],
            &[],
        )
        .unwrap_err();
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0].to_string().contains(
            "spec.layers[1].presets names the preset enable-ingres, but presets.yaml has no preset \"enable-ingres\" (it has: Ingress:enable-ingress, Ingress:disable-ingress, debug)"
        ),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].to_string().contains(
            "names the preset Routing:debug, but presets.yaml has \"debug\" without a group"
        ),
        "{}",
        errors[1]
    );
    let none = PackPresets::default();
    let errors = none.select(&[choice("cluster", &["x"])], &[]).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "cluster names the preset x, but the pack has no presets.yaml"
    );
    // Lenient for the pack's own comment when the pack has no presets at all.
    assert!(
        none.select(&[choice("pack", &["G:x"])], &["pack"])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn applying_removes_then_merges() {
    let presets = presets();
    let defaults = yaml(
        "charts:\n  app:\n    service: {type: LoadBalancer}\n    ingress: {enabled: false, host: a}\n",
    );
    let selected = presets
        .select(&[choice("p", &["enable-ingress", "debug"])], &[])
        .unwrap();
    assert_eq!(
        apply_presets(&selected, &defaults),
        yaml("charts:\n  app:\n    ingress: {enabled: true, host: a}\n    logLevel: debug\n")
    );
    // Removing a key that is not there changes nothing (published presets do it).
    let bare = yaml("charts: {app: {}}\n");
    assert_eq!(
        apply_presets(&selected[..1], &bare),
        yaml("charts: {app: {ingress: {enabled: true}}}\n")
    );
}

#[test]
fn pack_checks_name_missing_presets_and_removals_of_nothing() {
    let presets = presets();
    let annotation =
        enabled_presets_annotation("# spectrocloud.com/enabled-presets: Ingress:nope\n").unwrap();
    let defaults = yaml("charts: {app: {}}\n");
    let findings = check_against_defaults(&presets, Some(&annotation), &defaults);
    assert!(
        findings.contains(
            "values.yaml: line 1",
            "values.yaml line 1 (spectrocloud.com/enabled-presets) names the preset Ingress:nope"
        ),
        "{findings:?}"
    );
    assert!(findings.contains(
        "presets.yaml: presets[0].remove[0]",
        "preset \"enable-ingress\" removes charts.app.service, which names nothing in values.yaml nor in any preset's add"
    ));
    // A comment naming presets of a pack without presets.yaml is ignored, with a warning.
    let copied =
        enabled_presets_annotation("# spectrocloud.com/enabled-presets: MicroK8s:off\n").unwrap();
    let findings = check_against_defaults(&PackPresets::default(), Some(&copied), &defaults);
    assert!(!findings.has_errors());
    assert!(findings.contains(
        "values.yaml: line 1",
        "the pack has no presets.yaml; the comment is ignored"
    ));
}
