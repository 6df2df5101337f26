//! `helm rollback` without the engine's rollback, which is broken in helm-sdkpy 0.1.32:
//! it never sets a wait strategy, so Helm fails with "unable to get waiter: wait strategy
//! not set" after it has already stored the new revision as pending-rollback, wedging the
//! release ("another operation is in progress") until someone repairs it by hand.
//!
//! Helm's rollback stores a new revision with the target revision's chart, values and
//! *rendered manifest*, and applies that manifest; it renders nothing. This does the same
//! through the engine's upgrade: a throwaway chart whose templates emit the target
//! revision's manifest verbatim (each template reads its documents with `.Files.Get`, so
//! no template syntax in them is evaluated, and is named after the documents' original
//! `# Source:` so the new manifest reads like the old one), with the target's chart
//! metadata and default values and the target's user-supplied values. The engine then
//! applies exactly the old objects, deletes the ones the old revision did not have,
//! waits if asked, and records a new revision.
//!
//! Differences from helm, none of which Strata relies on: the new revision's description
//! is "Upgrade complete" (not "Rollback to N") and it has no rollback_revision; the target's
//! hooks are not carried over (helm would run its pre/post-rollback hooks); and the new
//! revision's stored chart is the throwaway one (same metadata and default values).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::output::Release;

/// Where in the throwaway chart the verbatim texts live: outside templates/, so they are
/// chart files, not templates.
const FILES_DIR: &str = "strata-rollback";
const NOTES_FILE: &str = "strata-rollback/NOTES.txt";
/// The template for documents that carry no `# Source:` line.
const UNSOURCED_TEMPLATE: &str = "templates/strata-rollback.yaml";

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("release has no {0} version")]
    NoSuchRevision(i64),
    #[error("release {0:?} has no revisions")]
    NoRevisions(String),
    #[error("revision {revision} of the release has no chart metadata to roll back to")]
    NoChart { revision: i64 },
    #[error("cannot prepare the rollback chart in {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {what} of the rollback chart: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_yaml::Error,
    },
}

/// The revision to roll back to, as helm picks it: the given one, or the one before the
/// latest when none (0) is given; it must exist.
pub fn target<'a>(
    history: &'a [Value],
    release: &str,
    revision: u32,
) -> Result<&'a Value, RollbackError> {
    let latest = history
        .iter()
        .map(|r| Release(r).revision())
        .max()
        .ok_or_else(|| RollbackError::NoRevisions(release.to_string()))?;
    let wanted = if revision == 0 {
        latest - 1
    } else {
        i64::from(revision)
    };
    history
        .iter()
        .find(|r| Release(r).revision() == wanted)
        .ok_or(RollbackError::NoSuchRevision(wanted))
}

/// `--server-side=auto` as helm's rollback resolves it: the target revision's method.
pub fn server_side_apply(target: &Value) -> &'static str {
    match target.get("apply_method").and_then(Value::as_str) {
        Some("ssa") => "true",
        _ => "false",
    }
}

/// The target revision's user-supplied values.
pub fn user_values(target: &Value) -> Value {
    match target.get("config") {
        Some(Value::Object(map)) => Value::Object(map.clone()),
        _ => Value::Object(Map::new()),
    }
}

/// A throwaway chart that renders exactly `target`'s manifest; removed when dropped.
pub struct RollbackChart {
    dir: tempfile::TempDir,
}

impl RollbackChart {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(target: &Value) -> Result<Self, RollbackError> {
        let release = Release(target);
        let revision = release.revision();
        let mut metadata = target
            .pointer("/chart/metadata")
            .and_then(Value::as_object)
            .cloned()
            .ok_or(RollbackError::NoChart { revision })?;
        // Declared dependencies would make Helm look for subcharts under charts/; their
        // objects are already in the manifest.
        metadata.remove("dependencies");
        let defaults = match target.pointer("/chart/values") {
            Some(Value::Object(values)) => Value::Object(values.clone()),
            _ => Value::Object(Map::new()),
        };

        let dir = tempfile::Builder::new()
            .prefix("strata-helm-rollback-")
            .tempdir()
            .map_err(|source| RollbackError::Write {
                path: std::env::temp_dir(),
                source,
            })?;
        let root = dir.path();
        let yaml = |what: &'static str, value: &Value| {
            serde_yaml::to_string(value).map_err(|source| RollbackError::Encode { what, source })
        };
        write_file(
            root,
            "Chart.yaml",
            &yaml("Chart.yaml", &Value::Object(metadata))?,
        )?;
        write_file(root, "values.yaml", &yaml("values.yaml", &defaults)?)?;
        let documents = split_manifest(chart_name(target), release.manifest());
        for (index, (template, text)) in documents.iter().enumerate() {
            let file = format!("{FILES_DIR}/{index}.yaml");
            write_file(root, &file, text)?;
            write_file(root, template, &format!("{{{{ .Files.Get {file:?} }}}}"))?;
        }
        if !release.notes().is_empty() {
            write_file(root, NOTES_FILE, release.notes())?;
            write_file(
                root,
                "templates/NOTES.txt",
                &format!("{{{{ .Files.Get {NOTES_FILE:?} }}}}"),
            )?;
        }
        Ok(Self { dir })
    }
}

fn chart_name(target: &Value) -> &str {
    target
        .pointer("/chart/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Splits a release manifest ("---\n# Source: chart/templates/x.yaml\n<document>" for
/// each document) into template paths and their documents, in order of first
/// appearance. Documents from the chart's own templates keep their template path
/// (`templates/x.yaml`); subcharts' and unsourced ones go under templates/strata-rollback.
fn split_manifest(chart: &str, manifest: &str) -> Vec<(String, String)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |source: Option<&str>, body: &str| {
        if body.trim().is_empty() {
            return;
        }
        let own = source.and_then(|s| s.strip_prefix(chart)?.strip_prefix('/'));
        let template = match (source, own) {
            (_, Some(path)) if path.starts_with("templates/") => path.to_string(),
            (Some(source), _) => format!("templates/strata-rollback/{}", source.replace('/', "_")),
            (None, _) => UNSOURCED_TEMPLATE.to_string(),
        };
        let body = body.trim_end().to_string();
        match groups.iter_mut().find(|(t, _)| *t == template) {
            Some((_, bodies)) => bodies.push(body),
            None => groups.push((template, vec![body])),
        }
    };
    let mut source: Option<&str> = None;
    let mut body = String::new();
    for line in manifest.lines() {
        if line.trim_end() == "---" {
            add(source, &body);
            source = None;
            body.clear();
            continue;
        }
        // The Source comment helm writes first in each document.
        if source.is_none()
            && body.trim().is_empty()
            && let Some(path) = line.strip_prefix("# Source: ")
        {
            source = Some(path.trim());
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    add(source, &body);
    groups
        .into_iter()
        .map(|(template, bodies)| (template, format!("{}\n", bodies.join("\n---\n"))))
        .collect()
}

fn write_file(root: &Path, relative: &str, content: &str) -> Result<(), RollbackError> {
    let path = root.join(relative);
    let error = |source| RollbackError::Write {
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    std::fs::write(&path, content).map_err(error)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn revision(version: i64, greeting: &str) -> Value {
        json!({
            "name": "demo",
            "namespace": "apps",
            "version": version,
            "apply_method": "ssa",
            "info": {"status": "superseded", "notes": format!("says {greeting}\n")},
            "chart": {
                "metadata": {"name": "sprig-demo", "version": "0.1.0", "appVersion": "1.0.0", "apiVersion": "v2",
                             "dependencies": [{"name": "sub", "version": "1.0.0"}]},
                "values": {"greeting": "hello", "settings": {"size": 3}},
                "templates": []
            },
            "config": {"greeting": greeting},
            "manifest": format!("---\n# Source: sprig-demo/templates/cm.yaml\nkind: ConfigMap\ndata:\n  tpl: '{{{{ not a template }}}}'\n  greeting: {greeting}\n")
        })
    }

    #[test]
    fn picks_the_target_like_helm() {
        let history = [revision(1, "a"), revision(2, "b"), revision(3, "c")];
        assert_eq!(Release(target(&history, "demo", 0).unwrap()).revision(), 2);
        assert_eq!(Release(target(&history, "demo", 1).unwrap()).revision(), 1);
        assert_eq!(Release(target(&history, "demo", 3).unwrap()).revision(), 3);
        let error = target(&history, "demo", 7).unwrap_err();
        assert_eq!(error.to_string(), "release has no 7 version");
        let error = target(&history[..1], "demo", 0).unwrap_err();
        assert_eq!(error.to_string(), "release has no 0 version");
        assert!(target(&[], "demo", 0).is_err());
    }

    #[test]
    fn values_and_apply_method_of_the_target() {
        let target = revision(1, "bonjour");
        assert_eq!(user_values(&target), json!({"greeting": "bonjour"}));
        assert_eq!(server_side_apply(&target), "true");
        assert_eq!(server_side_apply(&json!({"apply_method": "csa"})), "false");
        assert_eq!(user_values(&json!({})), json!({}));
    }

    #[test]
    fn splits_a_manifest_by_source() {
        let manifest = "---\n# Source: web/templates/cm.yaml\nkind: ConfigMap\nmetadata: {name: a}\n\
---\n# Source: web/templates/deploy.yaml\nkind: Deployment\n\
---\n# Source: web/templates/cm.yaml\nkind: ConfigMap\nmetadata: {name: b}\n\n\
---\n# Source: web/charts/db/templates/svc.yaml\nkind: Service\n\
---\nkind: Secret\n---\n";
        let groups = split_manifest("web", manifest);
        let expected = [
            (
                "templates/cm.yaml",
                "kind: ConfigMap\nmetadata: {name: a}\n---\nkind: ConfigMap\nmetadata: {name: b}\n",
            ),
            ("templates/deploy.yaml", "kind: Deployment\n"),
            (
                "templates/strata-rollback/web_charts_db_templates_svc.yaml",
                "kind: Service\n",
            ),
            ("templates/strata-rollback.yaml", "kind: Secret\n"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(t, d)| (t.to_string(), d.to_string()))
            .collect();
        assert_eq!(groups, expected);
        assert!(split_manifest("web", "").is_empty());
    }

    #[test]
    fn writes_a_chart_that_emits_the_manifest_verbatim() {
        let target = revision(1, "hola");
        let chart = RollbackChart::write(&target).unwrap();
        let root = chart.path();
        let chart_yaml: Value =
            serde_yaml::from_str(&std::fs::read_to_string(root.join("Chart.yaml")).unwrap())
                .unwrap();
        assert_eq!(chart_yaml["name"], "sprig-demo");
        assert_eq!(chart_yaml["version"], "0.1.0");
        assert_eq!(chart_yaml["appVersion"], "1.0.0");
        assert!(chart_yaml.get("dependencies").is_none());
        let values: Value =
            serde_yaml::from_str(&std::fs::read_to_string(root.join("values.yaml")).unwrap())
                .unwrap();
        assert_eq!(
            values,
            json!({"greeting": "hello", "settings": {"size": 3}})
        );
        assert_eq!(
            std::fs::read_to_string(root.join("strata-rollback/0.yaml")).unwrap(),
            "kind: ConfigMap\ndata:\n  tpl: '{{ not a template }}'\n  greeting: hola\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("templates/cm.yaml")).unwrap(),
            "{{ .Files.Get \"strata-rollback/0.yaml\" }}"
        );
        assert_eq!(
            std::fs::read_to_string(root.join(NOTES_FILE)).unwrap(),
            "says hola\n"
        );
        let path = root.to_path_buf();
        drop(chart);
        assert!(!path.exists(), "the throwaway chart is removed");
    }
}
