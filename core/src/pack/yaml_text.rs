//! How a YAML value or a YAML error reads in a finding: the words every pack file's
//! checks share ("found a list, expected a string").

use serde_yaml::Value;

/// "a list", "a string", … for "found X, expected Y" messages.
pub(crate) fn describe_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Like [`describe_kind`], with the value itself when it is a short scalar.
pub(crate) fn describe_kind_and_value(value: &Value) -> String {
    match value {
        Value::Bool(flag) => format!("a boolean ({flag})"),
        Value::Number(number) => format!("a number ({number})"),
        Value::String(text) => format!("a string ({text:?})"),
        other => describe_kind(other).to_string(),
    }
}

/// A serde_yaml error as a finding message, with its position up front where it has one.
pub(crate) fn yaml_error_message(error: &serde_yaml::Error) -> String {
    let text = error.to_string();
    match error.location() {
        Some(location) => {
            let (line, column) = (location.line(), location.column());
            // serde_yaml embeds the position in its text; it is moved to the front instead.
            let text = text.replace(&format!(" at line {line} column {column}"), "");
            format!("not valid YAML at line {line}, column {column}: {text}")
        }
        None => format!("not valid YAML: {text}"),
    }
}
