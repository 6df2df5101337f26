//! How findings reach the operator: one line per finding on stderr,
//! `<input>: error|warning: <field or file>: <message>`, or JSON on stdout.

use std::io::Write;

use serde::Serialize;
use strata_shared::finding::{Finding, Findings};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}
