//! `-f/--values` files: read as YAML, turned into the JSON the engine takes, and merged in
//! order the way helm merges them (maps merge key by key, recursively; anything else is
//! replaced by the later file's value).

use std::io::Read;
use std::path::PathBuf;

use serde_json::{Map, Value};
use serde_yaml::Value as Yaml;

#[derive(Debug, thiserror::Error)]
pub enum ValuesError {
    #[error("cannot read values file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to parse {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("values file {path} is not a map of values (its top level is {found})")]
    NotAMap { path: PathBuf, found: &'static str },
    #[error("values file {path}: {reason}")]
    Unrepresentable { path: PathBuf, reason: String },
    #[error("values from a URL ({url}) are not supported by this helm: pass a local file")]
    Url { url: String },
}

/// Reads and merges the values files in order ("-" is standard input, as in helm).
pub fn load(files: &[String]) -> Result<Value, ValuesError> {
    let mut merged = Map::new();
    for file in files {
        let (path, text) = read(file)?;
        let values = parse(&path, &text)?;
        merge_into(&mut merged, values);
    }
    Ok(Value::Object(merged))
}

fn read(file: &str) -> Result<(PathBuf, String), ValuesError> {
    if file.contains("://") {
        return Err(ValuesError::Url {
            url: file.to_string(),
        });
    }
    let path = PathBuf::from(file);
    let text = if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| ValuesError::Read {
                path: path.clone(),
                source,
            })?;
        text
    } else {
        std::fs::read_to_string(&path).map_err(|source| ValuesError::Read {
            path: path.clone(),
            source,
        })?
    };
    Ok((path, text))
}

/// Parses one values document; an empty file is an empty map, as in helm.
pub fn parse(path: &std::path::Path, text: &str) -> Result<Map<String, Value>, ValuesError> {
    let yaml: Yaml = serde_yaml::from_str(text).map_err(|source| ValuesError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let json = to_json(yaml).map_err(|reason| ValuesError::Unrepresentable {
        path: path.to_path_buf(),
        reason,
    })?;
    match json {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        other => Err(ValuesError::NotAMap {
            path: path.to_path_buf(),
            found: kind(&other),
        }),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// YAML to JSON as helm's YAML library (sigs.k8s.io/yaml) does it: non-string keys become
/// their string form, tags are dropped.
fn to_json(yaml: Yaml) -> Result<Value, String> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| format!("the number {n} cannot be represented in JSON"))?
            }
        }
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Yaml::Mapping(mapping) => {
            let mut map = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Yaml::String(s) => s,
                    Yaml::Bool(b) => b.to_string(),
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Null => "null".to_string(),
                    other => return Err(format!("a map key must be a scalar, not {other:?}")),
                };
                map.insert(key, to_json(value)?);
            }
            Value::Object(map)
        }
        Yaml::Tagged(tagged) => to_json(tagged.value)?,
    })
}

/// helm's `mergeMaps`: keys of `overlay` win; where both sides hold maps, they merge.
pub fn merge_into(base: &mut Map<String, Value>, overlay: Map<String, Value>) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(incoming)) => {
                merge_into(existing, incoming)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn later_files_win_and_maps_merge() {
        let mut base = map(json!({"a": 1, "nested": {"x": 1, "y": [1, 2]}, "keep": "me"}));
        merge_into(
            &mut base,
            map(json!({"a": 2, "nested": {"y": [3], "z": true}, "new": null})),
        );
        assert_eq!(
            Value::Object(base),
            json!({"a": 2, "nested": {"x": 1, "y": [3], "z": true}, "keep": "me", "new": null})
        );
    }

    #[test]
    fn a_scalar_replaces_a_map_and_back() {
        let mut base = map(json!({"a": {"b": 1}, "c": 1}));
        merge_into(&mut base, map(json!({"a": "flat", "c": {"d": 2}})));
        assert_eq!(Value::Object(base), json!({"a": "flat", "c": {"d": 2}}));
    }

    #[test]
    fn yaml_to_json() {
        let parsed = parse(
            Path::new("v.yaml"),
            "greeting: hi\ncount: 3\nratio: 0.5\nflag: true\nempty:\nlist: [a, 1]\n1: one\nnested:\n  k: v\n",
        )
        .unwrap();
        assert_eq!(
            Value::Object(parsed),
            json!({"greeting": "hi", "count": 3, "ratio": 0.5, "flag": true, "empty": null,
                   "list": ["a", 1], "1": "one", "nested": {"k": "v"}})
        );
    }

    #[test]
    fn empty_file_is_no_values() {
        assert!(parse(Path::new("v.yaml"), "").unwrap().is_empty());
        assert!(
            parse(Path::new("v.yaml"), "# only a comment\n")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn top_level_must_be_a_map() {
        let error = parse(Path::new("v.yaml"), "- a\n- b\n").unwrap_err();
        assert!(error.to_string().contains("a list"), "{error}");
    }

    #[test]
    fn load_merges_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("1.yaml");
        let second = dir.path().join("2.yaml");
        std::fs::write(
            &first,
            "greeting: hello\nsettings: {color: blue, size: 3}\n",
        )
        .unwrap();
        std::fs::write(&second, "greeting: bonjour\nsettings: {size: 4}\n").unwrap();
        let merged = load(&[first.display().to_string(), second.display().to_string()]).unwrap();
        assert_eq!(
            merged,
            json!({"greeting": "bonjour", "settings": {"color": "blue", "size": 4}})
        );
    }

    #[test]
    fn missing_file_and_url_are_errors() {
        let error = load(&["/nonexistent/values.yaml".to_string()]).unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/values.yaml"),
            "{error}"
        );
        let error = load(&["https://example.invalid/v.yaml".to_string()]).unwrap_err();
        assert!(error.to_string().contains("not supported"), "{error}");
    }
}
