//! Dotted key paths into a values document, as `schema.yaml` and `presets.yaml` write
//! them: `charts.app.image.tag`, with `$[]` standing for every item of a list
//! (`registry.addresses.$[]`, from the docs' schema constraints).
//!
//! A path resolves to every place it names: a value found, a key absent, or a path that
//! runs into something that is neither a mapping nor a list and so can name nothing.

use serde_yaml::Value;

use crate::pack::yaml_text::describe_kind;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySegment {
    Key(String),
    /// `$[]`: each item of a list.
    EachItem,
}

/// A parsed dotted path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath {
    text: String,
    segments: Vec<KeySegment>,
}

/// Why a key path is malformed; follows the key in a finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyPathError {
    #[error("is empty; expected a dotted path such as charts.app.replicas")]
    Empty,
    #[error("has an empty part between dots; expected a dotted path such as charts.app.replicas")]
    EmptySegment,
    #[error("starts with $[]; a list must be named before its items")]
    LeadingEachItem,
}

/// One place a path names in a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved<'v> {
    Found {
        key: String,
        value: &'v Value,
    },
    Absent {
        key: String,
    },
    /// The path runs into `found` at `at`, which can hold no keys (or items).
    Blocked {
        key: String,
        at: String,
        found: &'static str,
    },
}

impl KeyPath {
    pub fn parse(text: &str) -> Result<KeyPath, KeyPathError> {
        if text.trim().is_empty() {
            return Err(KeyPathError::Empty);
        }
        let mut segments = Vec::new();
        for part in text.split('.') {
            let segment = match part {
                "" => return Err(KeyPathError::EmptySegment),
                "$[]" => KeySegment::EachItem,
                key => KeySegment::Key(key.to_string()),
            };
            segments.push(segment);
        }
        if segments.first() == Some(&KeySegment::EachItem) {
            return Err(KeyPathError::LeadingEachItem);
        }
        Ok(KeyPath {
            text: text.to_string(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segments(&self) -> &[KeySegment] {
        &self.segments
    }

    /// Every place the path names in `root`, in document order. Keys name list items by
    /// index (`registry.addresses[1]`).
    pub fn resolve<'v>(&self, root: &'v Value) -> Vec<Resolved<'v>> {
        let mut out = Vec::new();
        resolve_from(root, &self.segments, String::new(), &mut out);
        out
    }

    /// Applies `f` to every value the path finds.
    pub fn for_each_mut(&self, root: &mut Value, f: &mut dyn FnMut(&mut Value)) {
        for_each_mut_from(root, &self.segments, f);
    }

    /// Removes what the path names; returns whether anything was there.
    pub fn remove(&self, root: &mut Value) -> bool {
        let Some((last, parents)) = self.segments.split_last() else {
            return false;
        };
        let mut removed = false;
        for_each_mut_from(root, parents, &mut |parent| match (last, parent) {
            (KeySegment::Key(key), Value::Mapping(map)) => {
                removed |= map.remove(key.as_str()).is_some();
            }
            (KeySegment::EachItem, Value::Sequence(items)) => {
                removed |= !items.is_empty();
                items.clear();
            }
            _ => {}
        });
        removed
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn join(prefix: &str, segment: &KeySegment, index: Option<usize>) -> String {
    match (segment, index) {
        (KeySegment::Key(key), _) if prefix.is_empty() => key.clone(),
        (KeySegment::Key(key), _) => format!("{prefix}.{key}"),
        (KeySegment::EachItem, Some(i)) => format!("{prefix}[{i}]"),
        (KeySegment::EachItem, None) => format!("{prefix}.$[]"),
    }
}

fn resolve_from<'v>(
    value: &'v Value,
    segments: &[KeySegment],
    prefix: String,
    out: &mut Vec<Resolved<'v>>,
) {
    let Some((segment, rest)) = segments.split_first() else {
        out.push(Resolved::Found { key: prefix, value });
        return;
    };
    match (segment, value) {
        (KeySegment::Key(key), Value::Mapping(map)) => match map.get(key.as_str()) {
            Some(child) => resolve_from(child, rest, join(&prefix, segment, None), out),
            None => out.push(Resolved::Absent {
                key: full_key(&join(&prefix, segment, None), rest),
            }),
        },
        (KeySegment::EachItem, Value::Sequence(items)) if items.is_empty() => {
            out.push(Resolved::Absent {
                key: full_key(&join(&prefix, segment, None), rest),
            });
        }
        (KeySegment::EachItem, Value::Sequence(items)) => {
            for (i, item) in items.iter().enumerate() {
                resolve_from(item, rest, join(&prefix, segment, Some(i)), out);
            }
        }
        // `null` and `""` hold nothing yet (published packs default a section a preset
        // fills to ""): what the path names is absent, not blocked.
        (_, Value::Null) => out.push(Resolved::Absent {
            key: full_key(&prefix, segments),
        }),
        (_, Value::String(text)) if text.is_empty() => out.push(Resolved::Absent {
            key: full_key(&prefix, segments),
        }),
        (_, other) => out.push(Resolved::Blocked {
            key: full_key(&prefix, segments),
            at: if prefix.is_empty() {
                "the document".to_string()
            } else {
                prefix
            },
            found: describe_kind(other),
        }),
    }
}

fn full_key(prefix: &str, rest: &[KeySegment]) -> String {
    rest.iter()
        .fold(prefix.to_string(), |key, segment| join(&key, segment, None))
}

fn for_each_mut_from(value: &mut Value, segments: &[KeySegment], f: &mut dyn FnMut(&mut Value)) {
    let Some((segment, rest)) = segments.split_first() else {
        f(value);
        return;
    };
    match (segment, value) {
        (KeySegment::Key(key), Value::Mapping(map)) => {
            if let Some(child) = map.get_mut(key.as_str()) {
                for_each_mut_from(child, rest, f);
            }
        }
        (KeySegment::EachItem, Value::Sequence(items)) => {
            for item in items {
                for_each_mut_from(item, rest, f);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    fn path(text: &str) -> KeyPath {
        KeyPath::parse(text).unwrap()
    }

    #[test]
    fn malformed_paths_are_refused() {
        assert_eq!(KeyPath::parse(""), Err(KeyPathError::Empty));
        assert_eq!(KeyPath::parse("a..b"), Err(KeyPathError::EmptySegment));
        assert_eq!(KeyPath::parse("a."), Err(KeyPathError::EmptySegment));
        assert_eq!(KeyPath::parse("$[].a"), Err(KeyPathError::LeadingEachItem));
    }

    #[test]
    fn resolves_found_absent_and_blocked() {
        let doc = yaml("a: {b: 1, n: null, e: ''}\nlist: [x, y]\nscalar: 3\n");
        assert_eq!(
            path("a.b").resolve(&doc),
            vec![Resolved::Found {
                key: "a.b".into(),
                value: &Value::from(1)
            }]
        );
        assert_eq!(
            path("a.c.d").resolve(&doc),
            vec![Resolved::Absent {
                key: "a.c.d".into()
            }]
        );
        assert_eq!(
            path("a.n.d").resolve(&doc),
            vec![Resolved::Absent {
                key: "a.n.d".into()
            }]
        );
        assert_eq!(
            path("a.e.d").resolve(&doc),
            vec![Resolved::Absent {
                key: "a.e.d".into()
            }]
        );
        assert_eq!(
            path("scalar.x").resolve(&doc),
            vec![Resolved::Blocked {
                key: "scalar.x".into(),
                at: "scalar".into(),
                found: "a number"
            }]
        );
        let items: Vec<String> = path("list.$[]")
            .resolve(&doc)
            .into_iter()
            .map(|r| match r {
                Resolved::Found { key, .. } => key,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(items, ["list[0]", "list[1]"]);
        assert_eq!(
            path("empty.$[].ip").resolve(&yaml("empty: []")),
            vec![Resolved::Absent {
                key: "empty.$[].ip".into()
            }]
        );
    }

    #[test]
    fn remove_and_mutate_in_place() {
        let mut doc = yaml("a: {b: 1, c: 2}\nlist: [{p: 1}, {p: 2}]\n");
        assert!(path("a.b").remove(&mut doc));
        assert!(!path("a.b").remove(&mut doc));
        assert!(!path("x.y").remove(&mut doc));
        path("list.$[].p").for_each_mut(&mut doc, &mut |v| *v = Value::from("*"));
        assert_eq!(doc, yaml("a: {c: 2}\nlist: [{p: '*'}, {p: '*'}]\n"));
    }
}
