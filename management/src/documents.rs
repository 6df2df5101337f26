//! Reading Strata objects (profiles, clusters) from YAML files, as an operator writes
//! them for `kubectl apply`. Unknown fields are warnings, because the apiserver would
//! silently prune them and the operator would lose what they meant to say.

use std::fs;
use std::path::Path;

use serde::de::DeserializeOwned;
use strata_shared::finding::Findings;

/// One object read from a file, with its position for messages.
pub struct Document<T> {
    pub object: T,
}

/// Reads every document of `kind` from a (multi-document) YAML file. Documents of other
/// kinds, unparsable ones and unknown fields are findings; the file's path is their input.
pub fn read_objects<T: DeserializeOwned>(
    path: &Path,
    kind: &str,
    api_version: &str,
) -> (Vec<Document<T>>, Findings) {
    let mut findings = Findings::new();
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            findings.error("", format!("cannot be read: {e}"));
            return (Vec::new(), findings);
        }
    };
    let mut documents = Vec::new();
    let raw: Vec<serde_yaml::Value> = {
        let mut raw = Vec::new();
        for (i, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            match <serde_yaml::Value as serde::Deserialize>::deserialize(document) {
                Ok(serde_yaml::Value::Null) => {}
                Ok(value) => raw.push(value),
                Err(e) => {
                    findings.error(
                        format!("document {}", i + 1),
                        format!("is not valid YAML: {e}"),
                    );
                    return (Vec::new(), findings);
                }
            }
        }
        raw
    };
    let several = raw.len() > 1;
    for (i, value) in raw.into_iter().enumerate() {
        let where_ = if several {
            format!("document {}", i + 1)
        } else {
            String::new()
        };
        let prefix = |s: &str| match (where_.is_empty(), s.is_empty()) {
            (true, _) => s.to_string(),
            (false, true) => where_.clone(),
            (false, false) => format!("{where_}: {s}"),
        };
        let found_kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        let found_api = value
            .get("apiVersion")
            .and_then(|k| k.as_str())
            .unwrap_or("");
        if found_kind != kind || found_api != api_version {
            findings.error(
                prefix("kind"),
                format!(
                    "found apiVersion {found_api:?} kind {found_kind:?}; expected apiVersion {api_version:?} kind {kind:?}"
                ),
            );
            continue;
        }
        let mut unknown: Vec<String> = Vec::new();
        let mut record_unknown = |field: serde_ignored::Path<'_>| unknown.push(field.to_string());
        let tracking_unknown = serde_ignored::Deserializer::new(value, &mut record_unknown);
        let parsed: Result<T, serde_path_to_error::Error<serde_yaml::Error>> =
            serde_path_to_error::deserialize(tracking_unknown);
        // apiVersion and kind were checked above; the derived types read them outside serde.
        for field in unknown
            .into_iter()
            .filter(|f| f != "apiVersion" && f != "kind")
        {
            findings.warning(
                prefix(&field),
                "unknown field; it is ignored (and the apiserver would prune it)",
            );
        }
        match parsed {
            Ok(object) => documents.push(Document { object }),
            Err(e) => {
                // `.` is serde_path_to_error's name for the document itself.
                let field = e.path().to_string();
                let field = if field == "." { String::new() } else { field };
                let inner = e.inner().to_string();
                // YAML reads 1.20 as the number 1.2: a version must be quoted to survive.
                let hint = if inner.starts_with("invalid type")
                    && inner.ends_with("expected a string")
                {
                    "; quote it, e.g. version: \"1.20\", because YAML reads 1.20 as the number 1.2"
                } else {
                    ""
                };
                findings.error(
                    prefix(&field),
                    format!("{inner}{hint}; this is not a valid {kind}"),
                );
            }
        }
    }
    if documents.is_empty() && !findings.has_errors() {
        findings.error("", format!("holds no {kind}"));
    }
    (documents, findings)
}
