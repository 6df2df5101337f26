//! clusterctl's variable substitution in provider components, before they are parsed:
//!
//! - `${NAME}`: the variable's value; a variable without one is an error.
//! - `${NAME:=default}` and `${NAME:-default}`: the default when the variable is unset
//!   or empty; `${NAME=default}` and `${NAME-default}`: the default only when unset.
//! - `$${` is a literal `${`; any other `$` is left as it is (shell scripts in
//!   components keep their `$HOME`).
//!
//! Names are letters, digits and `_`, not starting with a digit; spaces inside the braces
//! around the name are allowed, as clusterctl's lookup allows them. Every missing variable
//! is reported at once, as `clusterctl generate` does.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstitutionError {
    #[error(
        "variables without a value: {} (give each a value in the pack's values.yaml `variables:`, or a default in place: ${{NAME:=default}})",
        .names.join(", ")
    )]
    Missing { names: Vec<String> },
    #[error(
        "line {line}: {found:?} is not a variable reference; expected ${{NAME}}, ${{NAME:=default}} or ${{NAME:-default}} (write $${{ for a literal ${{)"
    )]
    Malformed { line: usize, found: String },
}

/// `text` with its variables replaced from `values`.
pub fn substitute(
    text: &str,
    values: &BTreeMap<String, String>,
) -> Result<String, SubstitutionError> {
    let mut out = String::with_capacity(text.len());
    let mut missing: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(inner_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let line = text[..text.len() - after.len()].matches('\n').count() + 1;
        let malformed = |found: &str| SubstitutionError::Malformed {
            line,
            found: crate::bounded_text::cut(found, 80),
        };
        let close = inner_start
            .find(['}', '\n'])
            .filter(|&i| inner_start.as_bytes()[i] == b'}')
            .ok_or_else(|| malformed(after.lines().next().unwrap_or(after)))?;
        let inner = &inner_start[..close];
        let reference = Reference::parse(inner).ok_or_else(|| malformed(&after[..close + 3]))?;
        match reference.value(values) {
            Some(value) => out.push_str(value),
            None => {
                if !missing.contains(&reference.name.to_string()) {
                    missing.push(reference.name.to_string());
                }
            }
        }
        rest = &inner_start[close + 1..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(SubstitutionError::Missing { names: missing })
    }
}

/// When a default applies.
#[derive(Clone, Copy)]
enum Unless {
    /// `:=` and `:-`: unless set and not empty.
    SetAndNotEmpty,
    /// `=` and `-`: unless set.
    Set,
}

struct Reference<'a> {
    name: &'a str,
    default: Option<(Unless, &'a str)>,
}

impl<'a> Reference<'a> {
    fn parse(inner: &'a str) -> Option<Reference<'a>> {
        let inner = inner.trim_start();
        let end = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        let name = &inner[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let operator = &inner[end..];
        let default = if operator.trim().is_empty() {
            None
        } else if let Some(d) = operator
            .strip_prefix(":=")
            .or_else(|| operator.strip_prefix(":-"))
        {
            Some((Unless::SetAndNotEmpty, d))
        } else if let Some(d) = operator
            .strip_prefix('=')
            .or_else(|| operator.strip_prefix('-'))
        {
            Some((Unless::Set, d))
        } else {
            return None;
        };
        Some(Reference { name, default })
    }

    fn value<'v>(&self, values: &'v BTreeMap<String, String>) -> Option<&'v str>
    where
        'a: 'v,
    {
        let set = values.get(self.name).map(String::as_str);
        match (self.default, set) {
            (None, value) => value,
            (Some((Unless::SetAndNotEmpty, _)), Some(value)) if !value.is_empty() => Some(value),
            (Some((Unless::Set, _)), Some(value)) => Some(value),
            (Some((_, default)), _) => Some(default),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn references_take_values_and_defaults_as_clusterctl_does() {
        let text = "a: ${A}\nb: ${B:=two}\nc: ${C:-three}\nd: ${ D }\ne: ${E=five}\nf: ${F-six}\n";
        let set = values(&[("A", "one"), ("D", "four"), ("E", ""), ("C", "")]);
        assert_eq!(
            substitute(text, &set).unwrap(),
            "a: one\nb: two\nc: three\nd: four\ne: \nf: six\n"
        );
        // Set and not empty wins over every default.
        let set = values(&[
            ("A", "1"),
            ("B", "2"),
            ("C", "3"),
            ("D", "4"),
            ("E", "5"),
            ("F", "6"),
        ]);
        assert_eq!(
            substitute(text, &set).unwrap(),
            "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\n"
        );
    }

    #[test]
    fn other_dollars_stay_and_a_doubled_one_is_a_literal_reference() {
        let text = "run: echo $HOME $1 $$ $${KEEP} ${X}$\n";
        assert_eq!(
            substitute(text, &values(&[("X", "x")])).unwrap(),
            "run: echo $HOME $1 $$ ${KEEP} x$\n"
        );
    }

    #[test]
    fn every_missing_variable_is_named_once() {
        let err = substitute("${B} ${A} ${B} ${C:=ok}", &values(&[])).unwrap_err();
        assert_eq!(
            err,
            SubstitutionError::Missing {
                names: vec!["B".into(), "A".into()]
            }
        );
        assert!(
            err.to_string().contains("values.yaml `variables:`"),
            "{err}"
        );
    }

    #[test]
    fn a_broken_reference_names_its_line() {
        let err = substitute("a: 1\nb: ${not closed\n", &values(&[])).unwrap_err();
        assert_eq!(
            err,
            SubstitutionError::Malformed {
                line: 2,
                found: "${not closed".into()
            }
        );
        let err = substitute("x: ${.Values.image}", &values(&[])).unwrap_err();
        assert!(
            matches!(&err, SubstitutionError::Malformed { line: 1, found } if found == "${.Values.image}"),
            "{err:?}"
        );
        let err = substitute("x: ${1ABC}", &values(&[])).unwrap_err();
        assert!(
            matches!(err, SubstitutionError::Malformed { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn values_are_not_substituted_again() {
        // A value holding a reference is text, as clusterctl leaves it.
        let out = substitute("${A}", &values(&[("A", "${B}")])).unwrap();
        assert_eq!(out, "${B}");
    }
}
