//! A pack's `schema.yaml`: constraints on its values, from the docs' "pack constraints".
//!
//! ```yaml
//! charts.app.password:
//!   schema: '{{ required | format "${password}" | hints "The admin password" }}'
//! registry.addresses.$[]:
//!   schema: '{{ format "${ipv4} - ${ipv4}" }}'
//! pack.namespace:
//!   schema: '{{ readonly }}'
//! ```
//!
//! Each top-level key is a dotted path into the values (see [`KeyPath`]); its `schema` is a
//! template of constraints separated by `|`: `required`, `readonly`, `format "…"` (see
//! [`format`]) and `hints "…" "…"`. Published packs comment their entries and write nothing
//! else there. A malformed entry, an unknown constraint or format, a key that cannot name a
//! value of `values.yaml` (it runs into a number or a string) are errors naming the file,
//! line and key; a required value without a default is a warning: the pack is valid, and
//! every profile or cluster using it must set the value. [`check`] applies the schema to a
//! layer's values.

pub mod check;
pub mod format;

use serde_yaml::Value;

use crate::finding::Findings;
use crate::pack::key_path::{KeyPath, Resolved};
use crate::pack::values_schema::format::ValueFormat;
use crate::pack::yaml_text::{describe_kind, yaml_error_message};

pub use check::{ValueProblem, is_unset};

/// One constrained key.
#[derive(Debug, Clone)]
pub struct SchemaEntry {
    pub key: KeyPath,
    /// The 1-based line of the key in schema.yaml, when it could be found.
    pub line: Option<usize>,
    pub required: bool,
    pub readonly: bool,
    pub format: Option<ValueFormat>,
    pub hints: Vec<String>,
}

impl SchemaEntry {
    /// Whether the value is a secret (a `${password}` format).
    pub fn is_secret(&self) -> bool {
        self.format.as_ref().is_some_and(ValueFormat::is_secret)
    }

    /// `message` with the entry's line in front, for findings about schema.yaml.
    pub fn at_line(&self, message: &str) -> String {
        match self.line {
            Some(line) => format!("line {line}: {message}"),
            None => message.to_string(),
        }
    }
}

/// A parsed `schema.yaml`; empty when the pack has none.
#[derive(Debug, Clone, Default)]
pub struct ValuesSchema {
    pub entries: Vec<SchemaEntry>,
}

/// Why a schema template cannot be used; follows `schema` in a finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "{found:?} is not a template; expected constraints between {{{{ and }}}}, such as '{{{{ required | format \"${{string}}\" }}}}'"
    )]
    NotATemplate { found: String },
    #[error("has a string that is not closed")]
    UnclosedString,
    #[error("has {found:?} where a constraint or a quoted string was expected")]
    Unexpected { found: String },
    #[error("has an empty constraint between two `|`")]
    EmptyConstraint,
    #[error(
        "has the unknown constraint {name:?}; expected required, readonly, format \"…\" or hints \"…\""
    )]
    UnknownConstraint { name: String },
    #[error("gives {name} {found} quoted arguments; it takes {expected}")]
    Arguments {
        name: &'static str,
        found: usize,
        expected: &'static str,
    },
    #[error("has format {format:?}, which {reason}")]
    Format {
        format: String,
        reason: format::FormatError,
    },
}

/// The constraints of one entry's template.
#[derive(Debug, Default)]
struct Constraints {
    required: bool,
    readonly: bool,
    format: Option<ValueFormat>,
    hints: Vec<String>,
}

impl ValuesSchema {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries whose values are secrets.
    pub fn secrets(&self) -> impl Iterator<Item = &SchemaEntry> {
        self.entries.iter().filter(|e| e.is_secret())
    }
}

/// Parses `schema.yaml`. Findings' subjects are the key (or empty for the whole file), for
/// the caller to prefix with the file name; messages give the line.
pub fn parse_schema(text: &str) -> (ValuesSchema, Findings) {
    let mut findings = Findings::new();
    let mut schema = ValuesSchema::default();
    let document: Value = match serde_yaml::from_str(text) {
        Ok(document) => document,
        Err(error) => {
            findings.error("", yaml_error_message(&error));
            return (schema, findings);
        }
    };
    let entries = match document {
        Value::Null => return (schema, findings),
        Value::Mapping(entries) => entries,
        other => {
            findings.error(
                "",
                format!(
                    "found {}, expected a mapping of value keys to {{schema: '{{{{ … }}}}'}}",
                    describe_kind(&other)
                ),
            );
            return (schema, findings);
        }
    };
    for (key, entry) in &entries {
        let Some(key_text) = key.as_str() else {
            findings.error(
                "",
                format!(
                    "has the key {}; expected dotted value keys such as charts.app.replicas",
                    describe_kind(key)
                ),
            );
            continue;
        };
        let line = line_of_key(text, key_text);
        let at = |what: &str| match line {
            Some(line) => format!("line {line}: {what}"),
            None => what.to_string(),
        };
        let key = match KeyPath::parse(key_text) {
            Ok(key) => key,
            Err(error) => {
                findings.error(key_text, at(&error.to_string()));
                continue;
            }
        };
        let template = match entry {
            Value::Mapping(fields) => {
                for name in fields.keys() {
                    if name.as_str() != Some("schema") {
                        findings.warning(
                            key_text,
                            at(&format!(
                                "the entry has {}, which is ignored; an entry holds `schema`",
                                name.as_str().map_or_else(
                                    || describe_kind(name).to_string(),
                                    |n| format!("{n:?}")
                                )
                            )),
                        );
                    }
                }
                match fields.get("schema") {
                    Some(Value::String(template)) => template,
                    Some(other) => {
                        findings.error(
                            key_text,
                            at(&format!(
                                "schema is {}; expected a string such as '{{{{ required }}}}'",
                                describe_kind(other)
                            )),
                        );
                        continue;
                    }
                    None => {
                        findings.error(
                            key_text,
                            at("the entry has no `schema`; expected schema: '{{ … }}'"),
                        );
                        continue;
                    }
                }
            }
            other => {
                findings.error(
                    key_text,
                    at(&format!(
                        "the entry is {}; expected a mapping with `schema: '{{{{ … }}}}'`",
                        describe_kind(other)
                    )),
                );
                continue;
            }
        };
        match parse_template(template) {
            Ok(constraints) => schema.entries.push(SchemaEntry {
                key,
                line,
                required: constraints.required,
                readonly: constraints.readonly,
                format: constraints.format,
                hints: constraints.hints,
            }),
            Err(error) => findings.error(key_text, at(&format!("schema {error}"))),
        }
    }
    (schema, findings)
}

/// Checks the schema against the pack's own values (its defaults, presets applied): a key
/// that can name nothing is an error, a required value without a default a warning, a
/// default of the wrong type an error. Subjects are the keys, for the caller to prefix
/// with `schema.yaml`.
///
/// `variants` are the defaults as each preset would make them: a key blocked in the
/// defaults that some preset makes reachable (a preset turning `objstoreConfig: ""` into
/// a mapping) names something.
pub fn check_against_defaults(
    schema: &ValuesSchema,
    defaults: &Value,
    variants: &[Value],
) -> Findings {
    let mut findings = Findings::new();
    for entry in &schema.entries {
        let blocked = |doc: &Value| {
            entry
                .key
                .resolve(doc)
                .into_iter()
                .find_map(|place| match place {
                    Resolved::Blocked { at, found, .. } => Some((at, found)),
                    _ => None,
                })
        };
        if let Some((at, found)) = blocked(defaults)
            && variants.iter().all(|variant| blocked(variant).is_some())
        {
            findings.error(
                entry.key.as_str(),
                entry.at_line(&format!(
                    "names nothing values.yaml can hold: {at} is {found} there (and in every \
                     preset), not a mapping or list"
                )),
            );
        }
    }
    for problem in check::check_values(schema, defaults) {
        match &problem {
            ValueProblem::RequiredUnset { key, .. } => findings.warning(
                key.as_str(),
                format!(
                    "{problem}; the pack has no default, so every profile or cluster using it \
                     must set it"
                ),
            ),
            ValueProblem::WrongType { key, .. } => {
                findings.error(key.as_str(), format!("the pack's default: {problem}"))
            }
            ValueProblem::ReadOnlyChanged { .. } => {}
        }
    }
    findings
}

/// The line of a top-level key, found in the text because the YAML parser keeps no
/// positions: a line starting with the key (bare or quoted) and a colon.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let forms = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ];
    text.lines()
        .position(|line| forms.iter().any(|form| line.starts_with(form.as_str())))
        .map(|index| index + 1)
}

/// `{{ required | format "${string}" | hints "a" "b" }}`.
fn parse_template(template: &str) -> Result<Constraints, TemplateError> {
    let trimmed = template.trim();
    let inner = trimmed
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .ok_or_else(|| TemplateError::NotATemplate {
            found: template.to_string(),
        })?;
    let mut constraints = Constraints::default();
    for action in split_actions(inner)? {
        let Some((name, arguments)) = action.split_first() else {
            return Err(TemplateError::EmptyConstraint);
        };
        let Token::Word(name) = name else {
            return Err(TemplateError::Unexpected { found: name.text() });
        };
        let strings: Vec<String> = arguments
            .iter()
            .map(|t| match t {
                Token::Quoted(s) => Ok(s.clone()),
                Token::Word(w) => Err(TemplateError::Unexpected { found: w.clone() }),
            })
            .collect::<Result<_, _>>()?;
        let count = |name: &'static str, ok: bool, expected: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(TemplateError::Arguments {
                    name,
                    found: strings.len(),
                    expected,
                })
            }
        };
        match name.as_str() {
            "required" => {
                count("required", strings.is_empty(), "none")?;
                constraints.required = true;
            }
            "readonly" => {
                count("readonly", strings.is_empty(), "none")?;
                constraints.readonly = true;
            }
            "format" => {
                count("format", strings.len() == 1, "one")?;
                let text = &strings[0];
                let format = ValueFormat::parse(text).map_err(|reason| TemplateError::Format {
                    format: text.clone(),
                    reason,
                })?;
                constraints.format = Some(format);
            }
            "hints" => {
                count("hints", !strings.is_empty(), "one or more")?;
                constraints.hints.extend(strings);
            }
            other => {
                return Err(TemplateError::UnknownConstraint {
                    name: other.to_string(),
                });
            }
        }
    }
    Ok(constraints)
}

#[derive(Debug, Clone)]
enum Token {
    Word(String),
    Quoted(String),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Word(w) => w.clone(),
            Token::Quoted(q) => format!("{q:?}"),
        }
    }
}

/// Splits a template's inside into actions at `|` outside quotes. Inside quotes `\"` and
/// `\\` are escapes; any other backslash is kept, so a regex's `\d` survives as written.
fn split_actions(inner: &str) -> Result<Vec<Vec<Token>>, TemplateError> {
    let mut actions = vec![Vec::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '|' => actions.push(Vec::new()),
            '"' => {
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => return Err(TemplateError::UnclosedString),
                        Some('"') => break,
                        Some('\\') => match chars.peek() {
                            Some('"') | Some('\\') => text.extend(chars.next()),
                            _ => text.push('\\'),
                        },
                        Some(other) => text.push(other),
                    }
                }
                if let Some(action) = actions.last_mut() {
                    action.push(Token::Quoted(text));
                }
            }
            c if c.is_ascii_alphabetic() => {
                let mut word = String::from(c);
                while let Some(&next) = chars.peek() {
                    if next.is_ascii_alphanumeric() || next == '_' {
                        word.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if let Some(action) = actions.last_mut() {
                    action.push(Token::Word(word));
                }
            }
            other => {
                return Err(TemplateError::Unexpected {
                    found: other.to_string(),
                });
            }
        }
    }
    Ok(actions)
}

/// Whether `key` names something a pack section (`charts.<chart>`, `manifests.<name>`)
/// that the pack lacks: `Some(message)` for a warning.
pub fn names_missing_section(
    entry: &SchemaEntry,
    charts: &[String],
    manifests: &[String],
) -> Option<String> {
    use crate::pack::key_path::KeySegment;
    let [KeySegment::Key(section), KeySegment::Key(name), ..] = entry.key.segments() else {
        return None;
    };
    let (available, what) = match section.as_str() {
        "charts" => (charts, "chart"),
        "manifests" => (manifests, "manifest"),
        _ => return None,
    };
    (!available.iter().any(|a| a == name)).then(|| {
        entry.at_line(&format!(
            "names the {what} {name}, which the pack does not have (it has: {})",
            if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            }
        ))
    })
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
