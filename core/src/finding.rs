//! Validation findings: what was found wrong with an input, where, and how bad.
//!
//! Validators collect every finding instead of stopping at the first, so an operator
//! fixes a pack or profile in one pass. A finding names the field or file (`subject`)
//! and says what was found and what was expected (`message`).

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Severity::Error => f.write_str("error"),
            Severity::Warning => f.write_str("warning"),
        }
    }
}

/// What kind of problem a finding is, set where the finding is made, so that a caller can
/// branch on it (a condition's reason) without reading the message, which may be reworded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum FindingKind {
    /// A cluster names a profile (or a version of it) that is not there.
    ProfileNotFound,
    /// A profile is for another cloud than the cluster's.
    CloudMismatch,
    /// A layer's pack could not be found or fetched.
    PackUnresolved,
    /// A pack's constraint (a dependency, a resource minimum) is not met.
    ConstraintNotMet,
    /// Any other problem with the input.
    #[default]
    Invalid,
}

/// One problem with an input. `subject` is a field path (`constraints.dependencies[0].type`)
/// or a file inside the input (`manifests/operator.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Not serialized: the reports that print findings keep their shape.
    #[serde(skip)]
    pub kind: FindingKind,
    pub subject: String,
    pub message: String,
}

impl Finding {
    pub fn error(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Error,
            kind: FindingKind::Invalid,
            subject: subject.into(),
            message: message.into(),
        }
    }

    pub fn warning(subject: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            kind: FindingKind::Invalid,
            subject: subject.into(),
            message: message.into(),
        }
    }

    /// The same finding, of kind `kind`.
    pub fn of_kind(mut self, kind: FindingKind) -> Self {
        self.kind = kind;
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.severity, self.subject, self.message)
    }
}

/// The findings of one validation run, in the order they were made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Findings(Vec<Finding>);

impl Findings {
    pub fn new() -> Self {
        Findings(Vec::new())
    }

    pub fn push(&mut self, finding: Finding) {
        self.0.push(finding);
    }

    pub fn error(&mut self, subject: impl Into<String>, message: impl Into<String>) {
        self.push(Finding::error(subject, message));
    }

    pub fn warning(&mut self, subject: impl Into<String>, message: impl Into<String>) {
        self.push(Finding::warning(subject, message));
    }

    /// An error of a kind a caller branches on.
    pub fn error_of(
        &mut self,
        kind: FindingKind,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.push(Finding::error(subject, message).of_kind(kind));
    }

    pub fn extend(&mut self, other: Findings) {
        self.0.extend(other.0);
    }

    /// Adds findings made on a nested input, prefixing their subject (`charts/x.tgz` → `values.yaml: …`).
    pub fn extend_prefixed(&mut self, prefix: &str, other: Findings) {
        for mut finding in other.0 {
            finding.subject = if finding.subject.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}: {}", finding.subject)
            };
            self.0.push(finding);
        }
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|f| f.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.0.iter().filter(|f| f.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.0.iter().filter(|f| f.severity == Severity::Warning)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Finding> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when some finding has this subject and its message contains `needle`; for tests
    /// and callers that branch on a specific problem.
    pub fn contains(&self, subject: &str, needle: &str) -> bool {
        self.0
            .iter()
            .any(|f| f.subject == subject && f.message.contains(needle))
    }
}

impl IntoIterator for Findings {
    type Item = Finding;
    type IntoIter = std::vec::IntoIter<Finding>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
