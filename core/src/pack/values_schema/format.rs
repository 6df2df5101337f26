//! The `format "…"` of a `schema.yaml` entry: the shape a value must have.
//!
//! A format is text with typed fields: `${string}`, `${ipv4} - ${ipv4}`,
//! `${string}/${string}:${version}`. A field is `${type}` or `${type:argument}`:
//!
//! | type | argument | matches | source |
//! |---|---|---|---|
//! | `string` | `/regex/` | any text (matching the regex) | docs |
//! | `password` | `/regex/` | like `string`; the value is a secret | docs |
//! | `input` | | any text | published packs |
//! | `number` | `[min-max]` or `/regex/` | a number (in the range, matching the regex) | docs |
//! | `boolean` | | `true` or `false` | docs |
//! | `list` | `[a,b,c]` | one of the options | docs |
//! | `ipv4` | | an IPv4 address | docs |
//! | `version` | | a semantic version, `v` allowed in front | docs |
//!
//! Regexes use RE2's syntax (the docs say so; the `regex` crate implements it). A whole
//! format becomes one anchored regex; fields that need more than a regex (an address's
//! octets, a number's range, a version) are checked again on what their group captured.

use std::fmt;
use std::net::Ipv4Addr;

use regex::Regex;

/// What a field accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    String,
    /// A string whose value is a secret: masked wherever Strata prints or stores values.
    Password,
    /// Free input; published packs use it beside `string`.
    Input,
    Number {
        /// Inclusive bounds from `${number:[min-max]}`.
        range: Option<(f64, f64)>,
    },
    Boolean,
    List(Vec<String>),
    Ipv4,
    Version,
}

/// One `${…}` of a format.
#[derive(Debug, Clone)]
pub struct Field {
    pub kind: FieldKind,
    /// The `/regex/` argument, as written between the slashes.
    pub pattern: Option<String>,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Field(Field),
}

/// A parsed `format "…"`.
#[derive(Debug, Clone)]
pub struct ValueFormat {
    text: String,
    parts: Vec<Part>,
    matcher: Regex,
}

/// Why a format cannot be used; the message follows `format "…"` in a finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("is empty; expected a format such as \"${{string}}\"")]
    Empty,
    #[error("has a `${{` at character {at} without its closing `}}`")]
    Unclosed { at: usize },
    #[error(
        "has the unknown type {name:?} at character {at}; known types: string, password, input, number, boolean, list, ipv4, version"
    )]
    UnknownType { name: String, at: usize },
    #[error("gives ${{{name}}} an argument ({argument:?}), which it does not take")]
    UnexpectedArgument { name: String, argument: String },
    #[error("gives ${{{name}}} the argument {argument:?}; expected {expected}")]
    BadArgument {
        name: String,
        argument: String,
        expected: &'static str,
    },
    #[error("has the regex /{pattern}/, which does not compile: {reason}")]
    BadRegex { pattern: String, reason: String },
    #[error("has no typed field; expected at least one ${{type}}")]
    NoField,
}

impl ValueFormat {
    pub fn parse(text: &str) -> Result<ValueFormat, FormatError> {
        if text.trim().is_empty() {
            return Err(FormatError::Empty);
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(start) = rest.find("${") {
            literal.push_str(&rest[..start]);
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            let at = offset + start;
            let (field, used) = parse_field(&rest[start + 2..], at)?;
            parts.push(Part::Field(field));
            let consumed = start + 2 + used;
            rest = &rest[consumed..];
            offset += consumed;
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if !parts.iter().any(|p| matches!(p, Part::Field(_))) {
            return Err(FormatError::NoField);
        }
        // Named groups: a user's regex may hold groups of its own.
        let mut pattern = String::from("(?s)^");
        let mut index = 0;
        for part in &parts {
            match part {
                Part::Literal(text) => pattern.push_str(&regex::escape(text)),
                Part::Field(field) => {
                    pattern.push_str(&format!("(?P<f{index}>{})", fragment(field)));
                    index += 1;
                }
            }
        }
        pattern.push('$');
        let matcher = Regex::new(&pattern).map_err(|e| FormatError::BadRegex {
            pattern: pattern.clone(),
            reason: e.to_string(),
        })?;
        Ok(ValueFormat {
            text: text.to_string(),
            parts,
            matcher,
        })
    }

    /// The format as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The field, when the format is one field and nothing else (`${boolean}`), which is
    /// when a value's YAML type matters rather than its text.
    pub fn single_field(&self) -> Option<&Field> {
        match self.parts.as_slice() {
            [Part::Field(field)] => Some(field),
            _ => None,
        }
    }

    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(field) => Some(field),
            Part::Literal(_) => None,
        })
    }

    /// Whether the value is a secret: the format has a `${password}` field.
    pub fn is_secret(&self) -> bool {
        self.fields().any(|f| f.kind == FieldKind::Password)
    }

    /// Whether `text` has this format.
    pub fn matches_text(&self, text: &str) -> bool {
        let Some(captures) = self.matcher.captures(text) else {
            return false;
        };
        self.fields().enumerate().all(|(i, field)| {
            captures
                .name(&format!("f{i}"))
                .is_some_and(|m| field.accepts_capture(m.as_str()))
        })
    }

    /// What a value must look like, for "expected …" in messages.
    pub fn expected(&self) -> String {
        match self.single_field() {
            Some(field) => field.expected(),
            None => format!("text of the form {:?}", self.text),
        }
    }
}

impl fmt::Display for ValueFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Field {
    /// Checks a field's capture needs beyond its regex fragment.
    fn accepts_capture(&self, text: &str) -> bool {
        match &self.kind {
            FieldKind::Number { range } => match parse_number(text) {
                Some(number) => range.is_none_or(|(min, max)| number >= min && number <= max),
                // A number with a regex is checked by the regex alone.
                None => self.pattern.is_some(),
            },
            FieldKind::Ipv4 => text.parse::<Ipv4Addr>().is_ok(),
            FieldKind::Version => {
                semver::Version::parse(text.strip_prefix(['v', 'V']).unwrap_or(text)).is_ok()
            }
            _ => true,
        }
    }

    pub fn expected(&self) -> String {
        let matching = |base: &str| match &self.pattern {
            Some(pattern) => format!("{base} matching /{pattern}/"),
            None => base.to_string(),
        };
        match &self.kind {
            FieldKind::String | FieldKind::Input => matching("a string"),
            FieldKind::Password => matching("a secret string"),
            FieldKind::Number {
                range: Some((min, max)),
            } => matching(&format!("a number from {min} to {max}")),
            FieldKind::Number { range: None } => matching("a number"),
            FieldKind::Boolean => "a boolean (true or false)".to_string(),
            FieldKind::List(options) => format!("one of {}", options.join(", ")),
            FieldKind::Ipv4 => "an IPv4 address such as 10.0.0.1".to_string(),
            FieldKind::Version => "a semantic version such as 1.2.3".to_string(),
        }
    }
}

/// A number as YAML or a Go program would write it.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// `name` or `name:argument` up to the closing brace; returns the field and how many bytes
/// of `text` it used (the brace included). `at` is where its `${` starts, for messages.
fn parse_field(text: &str, at: usize) -> Result<(Field, usize), FormatError> {
    let name_end = text
        .find(|c: char| !c.is_ascii_alphanumeric())
        .ok_or(FormatError::Unclosed { at })?;
    let name = &text[..name_end];
    let after = &text[name_end..];
    let (argument, used) = if after.starts_with('}') {
        (None, name_end + 1)
    } else if let Some(argument) = after.strip_prefix(':') {
        // A regex or list may itself hold `}`: the argument ends where its own closing
        // delimiter is followed by the field's brace.
        let close = match argument.chars().next() {
            Some('/') => argument[1..].find("/}").map(|i| i + 2),
            Some('[') => argument.find("]}").map(|i| i + 1),
            _ => argument.find('}'),
        }
        .ok_or(FormatError::Unclosed { at })?;
        (Some(&argument[..close]), name_end + 1 + close + 1)
    } else {
        return Err(FormatError::Unclosed { at });
    };
    let field = field(name, argument, at)?;
    Ok((field, used))
}

fn field(name: &str, argument: Option<&str>, at: usize) -> Result<Field, FormatError> {
    let bad = |expected: &'static str| FormatError::BadArgument {
        name: name.to_string(),
        argument: argument.unwrap_or_default().to_string(),
        expected,
    };
    let regex = |argument: &str| -> Result<String, FormatError> {
        let pattern = argument
            .strip_prefix('/')
            .and_then(|a| a.strip_suffix('/'))
            .ok_or_else(|| bad("a regex between slashes, such as /^[a-z]+$/"))?;
        Regex::new(pattern).map_err(|e| FormatError::BadRegex {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })?;
        Ok(pattern.to_string())
    };
    let no_argument = |kind: FieldKind| match argument {
        None => Ok(Field {
            kind,
            pattern: None,
        }),
        Some(argument) => Err(FormatError::UnexpectedArgument {
            name: name.to_string(),
            argument: argument.to_string(),
        }),
    };
    match name {
        "string" | "password" => Ok(Field {
            kind: if name == "string" {
                FieldKind::String
            } else {
                FieldKind::Password
            },
            pattern: argument.map(regex).transpose()?,
        }),
        "input" => no_argument(FieldKind::Input),
        "boolean" => no_argument(FieldKind::Boolean),
        "ipv4" => no_argument(FieldKind::Ipv4),
        "version" => no_argument(FieldKind::Version),
        "number" => match argument {
            None => Ok(Field {
                kind: FieldKind::Number { range: None },
                pattern: None,
            }),
            Some(a) if a.starts_with('/') => Ok(Field {
                kind: FieldKind::Number { range: None },
                pattern: Some(regex(a)?),
            }),
            Some(a) => {
                let range = a
                    .strip_prefix('[')
                    .and_then(|a| a.strip_suffix(']'))
                    .and_then(number_range)
                    .ok_or_else(|| {
                        bad("a range such as [5000-5005] or a regex such as /^5\\d+$/")
                    })?;
                Ok(Field {
                    kind: FieldKind::Number { range: Some(range) },
                    pattern: None,
                })
            }
        },
        "list" => {
            let options: Vec<String> = argument
                .and_then(|a| a.strip_prefix('['))
                .and_then(|a| a.strip_suffix(']'))
                .ok_or_else(|| bad("options between brackets, such as [Delete,Retain]"))?
                .split(',')
                .map(|o| o.trim().to_string())
                .collect();
            if options.iter().any(String::is_empty) {
                return Err(bad(
                    "non-empty options separated by commas, such as [Delete,Retain]",
                ));
            }
            Ok(Field {
                kind: FieldKind::List(options),
                pattern: None,
            })
        }
        other => Err(FormatError::UnknownType {
            name: other.to_string(),
            at,
        }),
    }
}

/// `5000-5005`, `-10-10`, `0.5-1.5`: the dash that separates is the first one after a
/// digit.
fn number_range(text: &str) -> Option<(f64, f64)> {
    let bytes = text.as_bytes();
    let split = (1..bytes.len()).find(|&i| bytes[i] == b'-' && bytes[i - 1].is_ascii_digit())?;
    let min = parse_number(&text[..split])?;
    let max = parse_number(&text[split + 1..])?;
    (min <= max).then_some((min, max))
}

/// The regex a field contributes to its format's regex. A user's regex loses its anchors,
/// which the whole format's regex provides.
fn fragment(field: &Field) -> String {
    if let Some(pattern) = &field.pattern {
        let pattern = pattern.strip_prefix('^').unwrap_or(pattern);
        let pattern = match pattern.strip_suffix('$') {
            Some(stripped) if !stripped.ends_with('\\') => stripped,
            _ => pattern,
        };
        return format!("(?:{pattern})");
    }
    match &field.kind {
        FieldKind::String | FieldKind::Password | FieldKind::Input => ".*?".to_string(),
        FieldKind::Number { .. } => r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?".to_string(),
        FieldKind::Boolean => "true|false".to_string(),
        FieldKind::List(options) => options
            .iter()
            .map(|o| regex::escape(o))
            .collect::<Vec<_>>()
            .join("|"),
        FieldKind::Ipv4 => r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}".to_string(),
        FieldKind::Version => {
            r"[vV]?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?".to_string()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn format(text: &str) -> ValueFormat {
        ValueFormat::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_documented_and_published_types_parse() {
        for (text, secret) in [
            ("${string}", false),
            ("${password}", true),
            ("${input}", false),
            ("${number}", false),
            ("${boolean}", false),
            ("${list:[Delete,Retain]}", false),
            ("${ipv4}", false),
            ("${version}", false),
            ("${string:/^([a-z0-9].*)$/}", false),
            ("${password:/^([a-z0-9].*)$/}", true),
            ("${number:[5000-5005]}", false),
            ("${number:/^(500[0-5])$/}", false),
            ("${ipv4} - ${ipv4}", false),
            ("${string}/${string}:${version}", false),
            ("${string}, ${string:/size=\\d+/}", false),
        ] {
            assert_eq!(format(text).is_secret(), secret, "{text}");
        }
    }

    #[test]
    fn malformed_formats_say_what_is_wrong() {
        let cases = [
            ("", "is empty"),
            ("plain text", "has no typed field"),
            ("${string", "without its closing"),
            ("${strnig}", "unknown type \"strnig\" at character 0"),
            ("a ${ip}", "unknown type \"ip\" at character 2"),
            ("${boolean:[x]}", "gives ${boolean} an argument"),
            ("${list:Delete,Retain}", "expected options between brackets"),
            ("${list:[a,,b]}", "non-empty options"),
            ("${number:[9-1]}", "expected a range such as [5000-5005]"),
            ("${string:/(/}", "does not compile"),
            ("${string:abc}", "expected a regex between slashes"),
        ];
        for (text, needle) in cases {
            let error = ValueFormat::parse(text).expect_err(text).to_string();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn values_match_by_type() {
        let cases: &[(&str, &str, bool)] = &[
            ("${number}", "8080", true),
            ("${number}", "0.28", true),
            ("${number}", "eighty", false),
            ("${number:[5000-5005]}", "5003", true),
            ("${number:[5000-5005]}", "5006", false),
            ("${number:[-10-10]}", "-3", true),
            ("${number:/^(500[0-5])$/}", "5005", true),
            ("${number:/^(500[0-5])$/}", "5006", false),
            ("${boolean}", "true", true),
            ("${boolean}", "yes", false),
            ("${list:[Delete,Retain]}", "Retain", true),
            ("${list:[Delete,Retain]}", "retain", false),
            ("${ipv4}", "10.10.10.10", true),
            ("${ipv4}", "10.10.10.256", false),
            ("${version}", "1.2.3", true),
            ("${version}", "v1.2.3-rc.1", true),
            ("${version}", "1.2", false),
            ("${string:/^([a-z0-9].*)$/}", "abc", true),
            ("${string:/^([a-z0-9].*)$/}", "Abc", false),
            ("${string}", "anything at all\nover lines", true),
            // The docs' examples of composite formats.
            ("${ipv4} - ${ipv4}", "10.10.10.10 - 10.10.10.255", true),
            ("${ipv4} - ${ipv4}", "10.10.10.10", false),
            ("${ipv4} - ${ipv4}", "10.10.10.10-10.10.10.255", false),
            (
                "${string}, ${string:/size=\\d+/}",
                "type-zeroedthick, size=150",
                true,
            ),
            (
                "${string}, ${string:/size=\\d+/}",
                "type-zeroedthick, size=s",
                false,
            ),
            // A published pack's image format.
            (
                "${string}/${string}:${version}",
                "ghcr.io/spectrocloud/hello-universe:1.1.0",
                true,
            ),
            (
                "${string}/${string}:${version}",
                "hello-universe:1.1.0",
                false,
            ),
        ];
        for (text, value, expected) in cases {
            assert_eq!(
                format(text).matches_text(value),
                *expected,
                "{text} against {value:?}"
            );
        }
    }

    #[test]
    fn expected_says_what_to_write() {
        assert_eq!(format("${boolean}").expected(), "a boolean (true or false)");
        assert_eq!(
            format("${list:[Delete, Retain]}").expected(),
            "one of Delete, Retain"
        );
        assert_eq!(format("${number:[1-3]}").expected(), "a number from 1 to 3");
        assert_eq!(
            format("${ipv4} - ${ipv4}").expected(),
            "text of the form \"${ipv4} - ${ipv4}\""
        );
    }
}
