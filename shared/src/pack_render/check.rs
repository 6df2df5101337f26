//! What validation learns by rendering: a pack's templated manifests and its charts,
//! rendered with the pack's own values and checked as plain manifests are. Without helm,
//! each templated manifest gets a warning that it was not checked; nothing is guessed.

use strata_core::finding::Findings;
use strata_core::pack::Pack;
use strata_core::pack::kube_manifest::check_manifest;
use strata_core::pack::render::{RenderUnit, chart_units, templated_manifest_units};
use strata_core::pack::render_failure::TemplateFailure;
use strata_core::pack::values::WHOLE_FILE;
use strata_core::pack::values_schema::ValueProblem;
use strata_core::profile::layer_values::pack_values;

use super::RenderError;
use crate::helm_cli::{HELM_ENV, Helm};

/// The warning on what validation did not render because the pack's schema requires values
/// its defaults leave unset.
pub const REQUIRED_UNSET: &str =
    "not rendered with the pack's defaults, which leave values its schema requires unset";

/// The warning on what fails to render with the pack's default values alone.
pub const DEFAULTS_DO_NOT_RENDER: &str = "it does not render with the pack's default values alone: a profile or cluster must set what it needs (try them with `strata pack render -f FILE`)";

/// The warning on a templated manifest that validation could not render.
pub const NOT_RENDERED: &str = "has template actions ({{ … }}) that were not rendered, so its objects were not checked: no helm binary was found";

/// Findings about what `pack` renders to, with `helm`, or the warnings that say what could
/// not be checked without it. Subjects are the pack's files: `manifests/app.yaml` for a
/// template that does not render, `manifests/app.yaml (rendered): document 2` for an object
/// of its output.
pub fn check_templates(pack: &Pack, helm: Option<&Helm>) -> Findings {
    let mut findings = Findings::new();
    // The pack's defaults with its own presets; the preset errors themselves are
    // validation's (`Pack::load`) to report.
    let Ok(resolution) = pack_values(pack, &[], Vec::new()) else {
        return findings;
    };
    let values = resolution.values.unmasked();
    let unset: Vec<String> = resolution
        .problems
        .iter()
        .filter(|problem| matches!(problem, ValueProblem::RequiredUnset { .. }))
        .map(|problem| problem.key().to_string())
        .collect();
    let manifests = match templated_manifest_units(pack, values) {
        Ok(units) => units,
        Err(error) => {
            findings.error(WHOLE_FILE, error.to_string());
            return findings;
        }
    };
    let Some(helm) = helm else {
        for unit in &manifests {
            findings.warning(
                &unit.source,
                format!(
                    "{NOT_RENDERED} (set {HELM_ENV} or put helm on PATH to check it, or see its output with `strata pack render`)"
                ),
            );
        }
        return findings;
    };
    // A pack may leave a required value to the profile or cluster (schema.yaml): its
    // templates cannot render with its defaults alone, which is no fault of the pack.
    if !unset.is_empty() {
        for unit in chart_units(pack, values).iter().chain(&manifests) {
            findings.warning(
                &unit.source,
                format!(
                    "{REQUIRED_UNSET}: {} (schema.yaml); render it with them set: `strata pack render --values FILE`",
                    unset.join(", ")
                ),
            );
        }
        return findings;
    }
    for unit in chart_units(pack, values).iter().chain(&manifests) {
        check_unit(pack, helm, unit, &mut findings);
    }
    findings
}

fn check_unit(pack: &Pack, helm: &Helm, unit: &RenderUnit, findings: &mut Findings) {
    let output = match helm.render(&pack.dir, unit) {
        Ok(output) => output,
        Err(RenderError::Template { failure, .. }) if failure.is_template_fault() => {
            findings.error(&failure.file, located(&failure));
            return;
        }
        // The template is sound but fails with the pack's defaults (a `required` value, a
        // chart's values.schema.json, a `fail`): published packs leave such values to the
        // profile or cluster, and their publisher's checks accept them.
        Err(RenderError::Template { failure, .. }) => {
            findings.warning(
                &failure.file,
                format!("{}; {DEFAULTS_DO_NOT_RENDER}", located(&failure)),
            );
            return;
        }
        Err(other) => {
            findings.error(&unit.source, other.to_string());
            return;
        }
    };
    let (objects, rendered_findings) = check_manifest(&output);
    let subject = format!("{} (rendered)", unit.source);
    let renders_nothing = objects.is_empty()
        && rendered_findings
            .errors()
            .all(|finding| finding.subject == WHOLE_FILE);
    if renders_nothing {
        // Everything behind a condition that the defaults leave off is a pack's choice.
        findings.warning(
            subject,
            "renders no Kubernetes objects with the pack's default values",
        );
    } else {
        findings.extend_prefixed(&subject, rendered_findings);
    }
}

/// helm's message after the line and column it names.
fn located(failure: &TemplateFailure) -> String {
    match (failure.line, failure.column) {
        (Some(line), Some(column)) => format!("line {line}, column {column}: {}", failure.message),
        (Some(line), None) => format!("line {line}: {}", failure.message),
        _ => failure.message.clone(),
    }
}
