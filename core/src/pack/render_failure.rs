//! helm's error output read back into the pack's own terms: which file of the pack, which
//! line and column, and helm's message with every template name it holds replaced by the
//! pack's path of that template.
//!
//! helm names a template `<chart>/templates/<file>` and reports a location in one of these
//! forms (all from the Helm engine):
//!
//! ```text
//! Error: parse error at (<name>:<line>): function "nope" not defined
//! Error: execution error at (<name>:<line>:<col>): namespace is required
//! Error: <name>:<line>:<col>
//!   executing "<name>" at <.Values.a.b>:
//!     nil pointer evaluating interface {}.b
//! Error: template: <name>:<line>:<col>: executing "<name>" at <...>: ...
//! Error: YAML parse error on <name>: error converting YAML to JSON: yaml: line 6: ...
//! ```
//!
//! The last form's line is of the rendered output, not of the template, so it is kept in
//! the message and not taken as the location.

use std::fmt;

use crate::pack::render::{RenderUnit, UnitChart};
use crate::pack::values::VERBATIM_MANIFESTS_KEY;

/// What `helm template` printed after `Error: ` when it renders from the same chart in
/// debug mode; not part of what went wrong.
const DEBUG_HINT: &str = "Use --debug flag to render out invalid YAML";

/// A failed render, located in the pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFailure {
    /// The pack's file: `manifests/app.yaml`, `charts/web/templates/svc.yaml`.
    pub file: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// helm's message on one line, with the pack's paths in place of helm's names.
    pub message: String,
}

impl TemplateFailure {
    /// Whether the template itself is wrong (it does not parse, or calls a function that
    /// does not exist), which no values can mend; anything else helm refuses depends on the
    /// values it rendered with.
    pub fn is_template_fault(&self) -> bool {
        self.message.starts_with("parse error") || self.message.contains("\" not defined")
    }
}

impl fmt::Display for TemplateFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
            if let Some(column) = self.column {
                write!(f, " column {column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// Reads helm's standard error after a failed render of `unit`.
pub fn explain_failure(unit: &RenderUnit, stderr: &str) -> TemplateFailure {
    let error = error_text(stderr);
    let mut location: Option<(String, Option<u32>, Option<u32>)> = None;
    let mut message = String::with_capacity(error.len());
    let prefix = format!("{}/", unit.chart_name());
    let mut rest = error;
    while let Some(found) = find_name_start(rest, &prefix) {
        message.push_str(&rest[..found]);
        let from_name = &rest[found..];
        let name_len = from_name
            .find(|c: char| c == ':' || c == '"' || c == ')' || c == '(' || c.is_whitespace())
            .unwrap_or(from_name.len());
        let name = &from_name[..name_len];
        let (line, column, position_len) = position(&from_name[name_len..]);
        match unit.pack_path_of(name) {
            Some(path) => {
                let better = match &location {
                    None => true,
                    Some((_, None, _)) => line.is_some(),
                    Some(_) => false,
                };
                if better {
                    location = Some((path.clone(), line, column));
                }
                message.push_str(&path);
            }
            None => message.push_str(name),
        }
        message.push_str(&from_name[name_len..name_len + position_len]);
        rest = &from_name[name_len + position_len..];
    }
    message.push_str(rest);
    let (file, line, column) = location.unwrap_or_else(|| (unit.source.clone(), None, None));
    let mut failure = TemplateFailure {
        file,
        line,
        column,
        message: one_line(&message),
    };
    // A manifest that does not parse may hold another tool's templates rather than broken
    // ones; only the pack or the layer can say which.
    let manifest = match &unit.chart {
        UnitChart::Generated(chart) => chart.manifest.as_ref(),
        _ => None,
    };
    if let (true, Some(name)) = (failure.is_template_fault(), manifest) {
        failure.message.push_str(&format!(
            " (if {} carries another tool's templates, to be installed as written, list {name:?} under pack.\"{VERBATIM_MANIFESTS_KEY}\" in the pack's or the layer's values)",
            unit.source
        ));
    }
    failure
}

/// The error helm printed: from the last line starting with `Error: ` (warnings come
/// before it), without that prefix or the debug hint.
fn error_text(stderr: &str) -> &str {
    let start = stderr
        .match_indices("Error: ")
        .filter(|(at, _)| *at == 0 || stderr.as_bytes()[at - 1] == b'\n')
        .map(|(at, _)| at + "Error: ".len())
        .last()
        .unwrap_or(0);
    let error = stderr[start..].trim();
    error.strip_suffix(DEBUG_HINT).unwrap_or(error).trim()
}

/// Where a template name starts in `text`: `prefix` not glued to a longer word before it.
fn find_name_start(text: &str, prefix: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(offset) = text[from..].find(prefix) {
        let at = from + offset;
        let glued = text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
        if !glued {
            return Some(at);
        }
        from = at + prefix.len();
    }
    None
}

/// `:<line>` and `:<line>:<col>` after a template name, and how many bytes they take.
fn position(after_name: &str) -> (Option<u32>, Option<u32>, usize) {
    let Some((line, line_len)) = number_after_colon(after_name) else {
        return (None, None, 0);
    };
    match number_after_colon(&after_name[line_len..]) {
        Some((column, column_len)) => (Some(line), Some(column), line_len + column_len),
        None => (Some(line), None, line_len),
    }
}

fn number_after_colon(text: &str) -> Option<(u32, usize)> {
    let digits = text.strip_prefix(':')?;
    let len = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let number = digits[..len].parse().ok()?;
    Some((number, 1 + len))
}

/// helm's multi-line traces (`executing ... at <...>:` on indented lines) as one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::pack::render::{ChartFile, GeneratedChart};

    fn manifest_unit() -> RenderUnit {
        RenderUnit {
            pack: "hello:1.0.0".into(),
            source: "manifests/sub/app.yaml".into(),
            release: "hello".into(),
            namespace: "default".into(),
            chart: UnitChart::Generated(GeneratedChart {
                name: "hello".into(),
                files: vec![ChartFile {
                    path: "templates/sub/app.yaml".into(),
                    content: String::new(),
                }],
                template: "templates/sub/app.yaml".into(),
                manifest: Some("app".into()),
            }),
            values: None,
        }
    }

    fn chart_unit(path: &str) -> RenderUnit {
        RenderUnit {
            pack: "web:2.0.0".into(),
            source: path.into(),
            release: "web".into(),
            namespace: "apps".into(),
            chart: UnitChart::InPack {
                name: "web".into(),
                path: path.into(),
            },
            values: None,
        }
    }

    fn failure(
        file: &str,
        line: Option<u32>,
        column: Option<u32>,
        message: &str,
    ) -> TemplateFailure {
        TemplateFailure {
            file: file.into(),
            line,
            column,
            message: message.into(),
        }
    }

    #[test]
    fn parse_error_names_the_manifest_and_line() {
        let stderr = "Error: parse error at (hello/templates/sub/app.yaml:4): function \"nope\" not defined\n\nUse --debug flag to render out invalid YAML\n";
        assert_eq!(
            explain_failure(&manifest_unit(), stderr),
            failure(
                "manifests/sub/app.yaml",
                Some(4),
                None,
                "parse error at (manifests/sub/app.yaml:4): function \"nope\" not defined (if manifests/sub/app.yaml carries another tool's templates, to be installed as written, list \"app\" under pack.\"strata.dev/verbatim-manifests\" in the pack's or the layer's values)"
            )
        );
    }

    #[test]
    fn execution_error_has_line_and_column() {
        let stderr = "Error: execution error at (hello/templates/sub/app.yaml:5:16): namespace is required\n";
        let explained = explain_failure(&manifest_unit(), stderr);
        assert_eq!(
            explained,
            failure(
                "manifests/sub/app.yaml",
                Some(5),
                Some(16),
                "execution error at (manifests/sub/app.yaml:5:16): namespace is required"
            )
        );
        assert_eq!(
            explained.to_string(),
            "manifests/sub/app.yaml line 5 column 16: execution error at (manifests/sub/app.yaml:5:16): namespace is required"
        );
    }

    #[test]
    fn a_multi_line_trace_becomes_one_line_naming_the_value() {
        let stderr = "Error: hello/templates/sub/app.yaml:4:18\n  executing \"hello/templates/sub/app.yaml\" at <.Values.a.b.c>:\n    nil pointer evaluating interface {}.b\n\nUse --debug flag to render out invalid YAML";
        assert_eq!(
            explain_failure(&manifest_unit(), stderr),
            failure(
                "manifests/sub/app.yaml",
                Some(4),
                Some(18),
                "manifests/sub/app.yaml:4:18 executing \"manifests/sub/app.yaml\" at <.Values.a.b.c>: nil pointer evaluating interface {}.b"
            )
        );
    }

    #[test]
    fn go_template_form_and_warnings_before_the_error() {
        let stderr = "walk.go:74: found symbolic link in path\nError: template: hello/templates/sub/app.yaml:2:9: executing \"hello/templates/sub/app.yaml\" at <.Values.x>: boom\n";
        let explained = explain_failure(&manifest_unit(), stderr);
        assert_eq!((explained.line, explained.column), (Some(2), Some(9)));
        assert_eq!(
            explained.message,
            "template: manifests/sub/app.yaml:2:9: executing \"manifests/sub/app.yaml\" at <.Values.x>: boom"
        );
    }

    #[test]
    fn yaml_error_keeps_the_rendered_line_in_the_message_only() {
        let stderr = "Error: YAML parse error on hello/templates/sub/app.yaml: error converting YAML to JSON: yaml: line 6: did not find expected node content\n";
        assert_eq!(
            explain_failure(&manifest_unit(), stderr),
            failure(
                "manifests/sub/app.yaml",
                None,
                None,
                "YAML parse error on manifests/sub/app.yaml: error converting YAML to JSON: yaml: line 6: did not find expected node content"
            )
        );
    }

    #[test]
    fn an_error_naming_no_template_is_the_units_own() {
        let stderr = "Error: chart requires kubeVersion: >=1.30 which is incompatible\n";
        assert_eq!(
            explain_failure(&chart_unit("charts/web"), stderr),
            failure(
                "charts/web",
                None,
                None,
                "chart requires kubeVersion: >=1.30 which is incompatible"
            )
        );
        // No `Error: ` at all (a crash): the whole text is the message.
        assert_eq!(
            explain_failure(&manifest_unit(), "panic: oops\n").message,
            "panic: oops"
        );
    }

    #[test]
    fn chart_templates_map_into_the_chart_folder_or_archive() {
        let stderr = "Error: execution error at (web/templates/svc.yaml:3:5): port is required";
        assert_eq!(
            explain_failure(&chart_unit("charts/web-app"), stderr),
            failure(
                "charts/web-app/templates/svc.yaml",
                Some(3),
                Some(5),
                "execution error at (charts/web-app/templates/svc.yaml:3:5): port is required"
            )
        );
        let explained = explain_failure(&chart_unit("charts/web-2.0.0.tgz"), stderr);
        assert_eq!(
            explained.file,
            "charts/web-2.0.0.tgz (web/templates/svc.yaml)"
        );
        assert_eq!(explained.line, Some(3));
        // A subchart's template is inside the chart.
        let stderr = "Error: parse error at (web/charts/db/templates/x.yaml:7): unexpected EOF";
        assert_eq!(
            explain_failure(&chart_unit("charts/web"), stderr).file,
            "charts/web/charts/db/templates/x.yaml"
        );
    }

    #[test]
    fn names_of_other_charts_or_glued_words_are_left_alone() {
        let stderr =
            "Error: parse error at (webapp/templates/x.yaml:7): unexpected EOF in my-web/templates";
        let explained = explain_failure(&chart_unit("charts/web"), stderr);
        assert_eq!(explained.file, "charts/web");
        assert_eq!(explained.line, None);
        assert_eq!(
            explained.message,
            "parse error at (webapp/templates/x.yaml:7): unexpected EOF in my-web/templates"
        );
        // The generated chart's other files are not the manifest.
        let explained = explain_failure(
            &manifest_unit(),
            "Error: cannot load hello/values.yaml: error converting YAML",
        );
        assert_eq!(explained.file, "manifests/sub/app.yaml");
        assert_eq!(
            explained.message,
            "cannot load hello/values.yaml: error converting YAML"
        );
    }

    #[test]
    fn the_first_name_with_a_line_is_the_location() {
        let stderr = "Error: YAML parse error on hello/templates/sub/app.yaml: then hello/templates/sub/app.yaml:9:1 later";
        let explained = explain_failure(&manifest_unit(), stderr);
        assert_eq!((explained.line, explained.column), (Some(9), Some(1)));
    }

    #[test]
    fn only_a_template_that_cannot_parse_is_its_own_fault() {
        let failure = |message: &str| TemplateFailure {
            file: "manifests/app.yaml".into(),
            line: Some(3),
            column: None,
            message: message.into(),
        };
        let parse = "parse error at (manifests/app.yaml:3): unexpected \"}\" in operand";
        let unknown = "parse error at (manifests/app.yaml:3): function \"shout\" not defined";
        assert!(failure(parse).is_template_fault());
        assert!(failure(unknown).is_template_fault());
        let required = "execution error at (manifests/app.yaml:3:5): namespace is required";
        let schema = "values don't meet the specifications of the schema(s) in the following chart(s): app: - at '/auth': missing properties 'key'";
        assert!(!failure(required).is_template_fault());
        assert!(!failure(schema).is_template_fault());
    }
}
