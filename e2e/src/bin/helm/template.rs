//! `helm template`: a chart rendered by the engine, printed as helm prints it. The engine
//! renders only inside an install, so the install goes to a fake API server
//! (fake_cluster.rs) that keeps nothing. Output, as helm's template command writes it:
//! the release's manifest trimmed, plus a newline (hooks are refused by the fake server,
//! so there are none to append).

use std::collections::BTreeSet;
use std::io::Write;

use serde_json::Value;

use crate::HelmError;
use crate::engine::{Engine, EngineError};
use crate::fake_cluster::{FakeCluster, Kind, builtin_kinds, unmapped_kinds};

/// The engine needs one attempt to name the kinds that discovery lacked (CRD kinds); a
/// second has them. A third only helps a chart whose kinds change with the capabilities.
const ATTEMPTS: usize = 3;

/// What `helm template` printed after `Error: ` for a failed render, when the release
/// exists but is broken; kept so that error output reads as helm's.
const DEBUG_HINT: &str = "\n\nUse --debug flag to render out invalid YAML";

pub struct TemplateRequest<'a> {
    pub release: &'a str,
    pub chart: &'a str,
    pub namespace: &'a str,
    pub values: &'a Value,
    pub version: Option<&'a str>,
    pub work_dir: &'a std::path::Path,
}

pub fn run(
    engine: &Engine,
    request: &TemplateRequest<'_>,
    out: &mut dyn Write,
) -> Result<(), HelmError> {
    let mut kinds = builtin_kinds();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let cluster = FakeCluster::start(kinds.clone()).map_err(HelmError::Template)?;
        let kubeconfig = request.work_dir.join(format!("kubeconfig-{attempt}"));
        cluster
            .write_kubeconfig(&kubeconfig)
            .map_err(HelmError::Template)?;
        let config = engine.configure(Some(request.namespace), kubeconfig.to_str(), None)?;
        match config.render(
            request.release,
            request.chart,
            request.values,
            request.version,
        ) {
            Ok(release) => {
                let manifest = release
                    .get("manifest")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return out
                    .write_all(format!("{}\n", manifest.trim()).as_bytes())
                    .map_err(HelmError::Stdout);
            }
            Err(EngineError::Failed { message }) => {
                let message = message
                    .strip_prefix("install failed: ")
                    .unwrap_or(&message)
                    .to_string();
                let learned: BTreeSet<Kind> = unmapped_kinds(&message)
                    .into_iter()
                    .filter(|kind| !kinds.contains(kind))
                    .collect();
                if !learned.is_empty() && attempt < ATTEMPTS {
                    kinds.extend(learned);
                    continue;
                }
                return Err(HelmError::Action(helm_message(message)));
            }
            Err(other) => return Err(other.into()),
        }
    }
}

/// helm's template command adds a hint after an error from rendering (one that names a
/// template); other errors are printed bare.
fn helm_message(message: String) -> String {
    let from_rendering = [
        "parse error",
        "execution error",
        "YAML parse error",
        "template: ",
    ]
    .iter()
    .any(|start| message.starts_with(start))
        || message.contains("/templates/");
    if from_rendering {
        format!("{message}{DEBUG_HINT}")
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_errors_get_helms_hint_and_others_do_not() {
        assert_eq!(
            helm_message("parse error at (c/templates/a.yaml:1): boom".into()),
            "parse error at (c/templates/a.yaml:1): boom\n\nUse --debug flag to render out invalid YAML"
        );
        assert!(helm_message("c/templates/a.yaml:4:18\n  executing".into()).ends_with(DEBUG_HINT));
        assert_eq!(
            helm_message("chart requires kubeVersion".into()),
            "chart requires kubeVersion"
        );
    }
}
