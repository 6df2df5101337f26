//! How findings and reports reach the operator: one line per finding on stderr,
//! `<input>: error|warning: <field or file>: <message>`; text for people, or a JSON or YAML
//! document on stdout for scripts.

use std::io::Write;

use serde::Serialize;
use strata_shared::finding::{Finding, Findings};

use crate::CommandError;

/// The findings about one input (a pack folder, a profile file).
#[derive(Debug, Serialize)]
pub struct InputReport {
    pub input: String,
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub findings: Findings,
}

pub fn finding_line(input: &str, finding: &Finding) -> String {
    if finding.subject.is_empty() {
        format!("{input}: {}: {}", finding.severity, finding.message)
    } else {
        format!(
            "{input}: {}: {}: {}",
            finding.severity, finding.subject, finding.message
        )
    }
}

pub fn print_findings(input: &str, findings: &Findings) {
    let mut stderr = std::io::stderr().lock();
    for finding in findings.iter() {
        // A closed stderr leaves nothing to report to.
        let _ = writeln!(stderr, "{}", finding_line(input, finding));
    }
}

/// What `-o` asks for: text for people, or a document for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Yaml,
}

/// A document scripts read: the same content as JSON or as YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentFormat {
    Json,
    Yaml,
}

impl OutputFormat {
    /// The document asked for, or None for text.
    pub fn document(self) -> Option<DocumentFormat> {
        match self {
            OutputFormat::Text => None,
            OutputFormat::Json => Some(DocumentFormat::Json),
            OutputFormat::Yaml => Some(DocumentFormat::Yaml),
        }
    }
}

/// `value` as a document in `format`, ending in a newline, its maps in the order the value
/// gives them. Both say the same: serde_yaml on its own writes an enum's variant as a YAML
/// tag (`!Name value`) where JSON has a map (`{"Name": value}`), so the YAML is written with
/// those tags turned into the JSON's maps.
pub fn document_text<T: Serialize + ?Sized>(
    value: &T,
    format: DocumentFormat,
) -> Result<String, CommandError> {
    match format {
        DocumentFormat::Json => serde_json::to_string_pretty(value)
            .map(|text| text + "\n")
            .map_err(|e| CommandError::Failed(format!("cannot write JSON: {e}"))),
        DocumentFormat::Yaml => serde_yaml::to_value(value)
            .map(untagged)
            .and_then(|yaml| serde_yaml::to_string(&yaml))
            .map_err(|e| CommandError::Failed(format!("cannot write YAML: {e}"))),
    }
}

/// `value` with each tagged value `!Name value` written as JSON writes it, `{Name: value}`.
fn untagged(value: serde_yaml::Value) -> serde_yaml::Value {
    use serde_yaml::Value;
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.strip_prefix('!').unwrap_or(&tag).to_string();
            let mut map = serde_yaml::Mapping::new();
            map.insert(Value::String(name), untagged(tagged.value));
            Value::Mapping(map)
        }
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(untagged).collect()),
        Value::Mapping(map) => Value::Mapping(
            map.into_iter()
                .map(|(key, value)| (untagged(key), untagged(value)))
                .collect(),
        ),
        plain => plain,
    }
}

/// Prints `value` on stdout as a document in `format`.
pub fn print_document<T: Serialize + ?Sized>(
    value: &T,
    format: DocumentFormat,
) -> Result<(), CommandError> {
    let text = document_text(value, format)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| CommandError::Failed(format!("cannot write to stdout: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    enum Origin {
        Folder(String),
        Registry { host: String, port: u16 },
        Nowhere,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Report {
        input: String,
        valid: bool,
        version: Option<String>,
        origins: Vec<Origin>,
        /// Text YAML would read as another type if written bare.
        tricky: Vec<String>,
    }

    fn report() -> Report {
        Report {
            input: "demo".into(),
            valid: false,
            version: None,
            origins: vec![
                Origin::Folder("packs/demo".into()),
                Origin::Registry {
                    host: "registry.local".into(),
                    port: 5000,
                },
                Origin::Nowhere,
            ],
            tricky: [
                "1.0", "true", "yes", "null", "~", "0x10", "a: b", "- x", "", "# c",
            ]
            .map(String::from)
            .to_vec(),
        }
    }

    #[test]
    fn yaml_and_json_say_the_same() {
        let json_text = document_text(&report(), DocumentFormat::Json).unwrap();
        let yaml_text = document_text(&report(), DocumentFormat::Yaml).unwrap();
        let from_json: Value = serde_json::from_str(&json_text).unwrap();
        let from_yaml: Value = serde_yaml::from_str(&yaml_text).unwrap();
        assert_eq!(from_json, from_yaml, "{yaml_text}");
        assert_eq!(
            from_json["origins"],
            json!([
                { "folder": "packs/demo" },
                { "registry": { "host": "registry.local", "port": 5000 } },
                "nowhere",
            ])
        );
        assert_eq!(from_json["version"], Value::Null);
        assert_eq!(
            from_yaml["tricky"],
            json!([
                "1.0", "true", "yes", "null", "~", "0x10", "a: b", "- x", "", "# c"
            ])
        );
        // No YAML tags: a script reads plain maps, as in the JSON.
        assert!(!yaml_text.contains('!'), "{yaml_text}");
    }

    #[test]
    fn each_document_ends_its_last_line() {
        for format in [DocumentFormat::Json, DocumentFormat::Yaml] {
            let text = document_text(&report(), format).unwrap();
            assert!(text.ends_with('\n') && !text.ends_with("\n\n"), "{text:?}");
        }
        assert!(
            document_text(&report(), DocumentFormat::Json)
                .unwrap()
                .starts_with("{\n  \"input\": \"demo\"")
        );
        assert!(
            document_text(&report(), DocumentFormat::Yaml)
                .unwrap()
                .starts_with(
                    "input: demo\nvalid: false\nversion: null\norigins:\n- folder: packs/demo\n"
                )
        );
    }

    #[test]
    fn text_is_no_document() {
        assert_eq!(OutputFormat::Text.document(), None);
        assert_eq!(OutputFormat::Json.document(), Some(DocumentFormat::Json));
        assert_eq!(OutputFormat::Yaml.document(), Some(DocumentFormat::Yaml));
    }
}
