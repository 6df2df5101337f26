//! System macros in layer values: Go template actions inside values strings that name a
//! fact of the cluster, as published packs write them
//! (`"{{ .spectro.system.cluster.name }}"`,
//! `"v{{ .spectro.system.kubernetes.version | substr 0 4 }}"`).
//!
//! Strata resolves the `.spectro.system.*` names of [`SYSTEM_MACROS`]. User variables
//! (`.spectro.var.NAME`) and other packs' values (`.spectro.pack.<pack>.<path>`) are not
//! supported yet: [`check_macros`] says so, naming the values key.
//!
//! Resolution is Helm's: a values string holding a `.spectro.` reference is rendered by
//! Helm's template engine (so Sprig functions such as `substr` and `default` work as the
//! packs expect) with [`macro_values`] as its values, after [`helm_form`] has turned
//! `.spectro.` into `.Values.spectro.` inside its actions. Strings without such a reference
//! are never rendered: values may carry other tools' templates (`{{ $labels.instance }}`).

use std::fmt;
use std::ops::Range;

use serde_yaml::{Mapping, Value};

use crate::crd::workload_cluster::ClusterCloud;

/// A fact of the cluster a layer's values can name as `.spectro.system.<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemMacro {
    pub name: &'static str,
    pub description: &'static str,
    /// Whether Palette has the same name; otherwise Strata's own.
    pub palette_name: bool,
}

const fn system(name: &'static str, description: &'static str, palette_name: bool) -> SystemMacro {
    SystemMacro {
        name,
        description,
        palette_name,
    }
}

/// The system macros Strata resolves.
pub const SYSTEM_MACROS: &[SystemMacro] = &[
    system("cluster.name", "the cluster's name", true),
    system(
        "cluster.uid",
        "the uid of the cluster's WorkloadCluster",
        true,
    ),
    system(
        "cluster.namespace",
        "the namespace of the cluster's objects in the management cluster",
        false,
    ),
    system("cluster.podCidr", "the first pod CIDR", false),
    system("cluster.podCidrs", "every pod CIDR, comma-separated", false),
    system("cluster.serviceCidr", "the first service CIDR", false),
    system(
        "cluster.serviceCidrs",
        "every service CIDR, comma-separated",
        false,
    ),
    system(
        "cluster.endpoint.host",
        "the control-plane endpoint's host",
        false,
    ),
    system(
        "cluster.endpoint.port",
        "the control-plane endpoint's port",
        false,
    ),
    system(
        "cluster.kubevip",
        "the control-plane endpoint's host (Palette's control-plane VIP)",
        true,
    ),
    system(
        "kubernetes.version",
        "the Kubernetes version without its leading v (1.30.4)",
        true,
    ),
    system("cloud.type", "the cloud: vsphere, aws, azure or sim", true),
];

/// The facts the system macros name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterFacts {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub pod_cidrs: Vec<String>,
    pub service_cidrs: Vec<String>,
    pub endpoint_host: String,
    pub endpoint_port: u16,
    /// As the revision has it (`v1.30.4`).
    pub kubernetes_version: String,
    pub cloud_type: ClusterCloud,
}

fn system_value(facts: &ClusterFacts, name: &str) -> Value {
    let first = |cidrs: &[String]| Value::from(cidrs.first().cloned().unwrap_or_default());
    match name {
        "cluster.name" => Value::from(facts.name.clone()),
        "cluster.uid" => Value::from(facts.uid.clone()),
        "cluster.namespace" => Value::from(facts.namespace.clone()),
        "cluster.podCidr" => first(&facts.pod_cidrs),
        "cluster.podCidrs" => Value::from(facts.pod_cidrs.join(",")),
        "cluster.serviceCidr" => first(&facts.service_cidrs),
        "cluster.serviceCidrs" => Value::from(facts.service_cidrs.join(",")),
        "cluster.endpoint.host" | "cluster.kubevip" => Value::from(facts.endpoint_host.clone()),
        "cluster.endpoint.port" => Value::from(facts.endpoint_port),
        "kubernetes.version" => Value::from(
            facts
                .kubernetes_version
                .strip_prefix('v')
                .unwrap_or(&facts.kubernetes_version),
        ),
        "cloud.type" => Value::from(facts.cloud_type.as_str()),
        _ => Value::Null,
    }
}

/// The facts as values for Helm: `spectro: {system: {cluster: {name: …}, …}}`, every name
/// of [`SYSTEM_MACROS`] set.
pub fn macro_values(facts: &ClusterFacts) -> Value {
    let mut system = Mapping::new();
    for known in SYSTEM_MACROS {
        let path: Vec<&str> = known.name.split('.').collect();
        insert_at(&mut system, &path, system_value(facts, known.name));
    }
    let mut spectro = Mapping::new();
    spectro.insert(Value::from("system"), Value::Mapping(system));
    let mut root = Mapping::new();
    root.insert(Value::from("spectro"), Value::Mapping(spectro));
    Value::Mapping(root)
}

fn insert_at(mapping: &mut Mapping, path: &[&str], value: Value) {
    match path {
        [] => {}
        [leaf] => {
            mapping.insert(Value::from(*leaf), value);
        }
        [first, rest @ ..] => {
            let entry = mapping
                .entry(Value::from(*first))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if !entry.is_mapping() {
                *entry = Value::Mapping(Mapping::new());
            }
            if let Value::Mapping(next) = entry {
                insert_at(next, rest, value);
            }
        }
    }
}

/// A `.spectro.` reference in a values string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroUse {
    /// The values key holding the string: `charts.app.cluster`, `extraArgs[2]`.
    pub key: String,
    /// As written in the action: `.spectro.system.cluster.name`.
    pub reference: String,
}

/// Every `.spectro.` reference in the string scalars of `values`, in document order.
pub fn find_macros(values: &Value) -> Vec<MacroUse> {
    let mut uses = Vec::new();
    walk(values, String::new(), &mut uses);
    uses
}

fn walk(value: &Value, key: String, uses: &mut Vec<MacroUse>) {
    match value {
        Value::String(text) => uses.extend(references(text).into_iter().map(|range| MacroUse {
            key: key.clone(),
            reference: text[range].to_string(),
        })),
        Value::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                walk(item, format!("{key}[{index}]"), uses);
            }
        }
        Value::Mapping(mapping) => {
            for (name, item) in mapping {
                let name = match name {
                    Value::String(text) => text.clone(),
                    other => serde_yaml::to_string(other)
                        .map(|text| text.trim().to_string())
                        .unwrap_or_default(),
                };
                let child = if key.is_empty() {
                    name
                } else {
                    format!("{key}.{name}")
                };
                walk(item, child, uses);
            }
        }
        Value::Tagged(tagged) => walk(&tagged.value, key, uses),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// What is wrong with a macro.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacroProblemKind {
    /// `.spectro.system.<name>` with a name not in [`SYSTEM_MACROS`].
    UnknownSystemMacro,
    /// `.spectro.var.*`.
    UserVariable,
    /// `.spectro.pack.*`.
    PackReference,
    /// `.spectro` or `.spectro.<other>`.
    Unknown,
}

/// A macro Strata cannot resolve. Reads as a sentence naming the key, the macro and what
/// Strata knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroProblem {
    pub key: String,
    pub reference: String,
    pub kind: MacroProblemKind,
}

impl fmt::Display for MacroProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, reference) = (&self.key, &self.reference);
        match self.kind {
            MacroProblemKind::UnknownSystemMacro => write!(
                f,
                "values {key}: {reference} is not a system macro Strata knows"
            )?,
            MacroProblemKind::UserVariable => write!(
                f,
                "values {key}: {reference}: user variables (.spectro.var.*) are not supported by Strata yet; write the value into the layer's values in the profile or the cluster instead"
            )?,
            MacroProblemKind::PackReference => write!(
                f,
                "values {key}: {reference}: other packs' values (.spectro.pack.*) are not supported by Strata yet; copy the value into this layer's values instead"
            )?,
            MacroProblemKind::Unknown => write!(
                f,
                "values {key}: {reference} is not a macro Strata knows; macros are .spectro.system.<name>"
            )?,
        }
        let known: Vec<String> = SYSTEM_MACROS
            .iter()
            .map(|m| format!(".spectro.system.{}", m.name))
            .collect();
        write!(f, "; the system macros are {}", known.join(", "))
    }
}

/// The macros of `values` Strata cannot resolve.
pub fn check_macros(values: &Value) -> Vec<MacroProblem> {
    find_macros(values)
        .into_iter()
        .filter_map(|found| {
            let path = found.reference.strip_prefix(".spectro").unwrap_or("");
            let kind = if let Some(name) = path.strip_prefix(".system.") {
                if SYSTEM_MACROS.iter().any(|known| known.name == name) {
                    return None;
                }
                MacroProblemKind::UnknownSystemMacro
            } else if path.starts_with(".var.") || path == ".var" {
                MacroProblemKind::UserVariable
            } else if path.starts_with(".pack.") || path == ".pack" {
                MacroProblemKind::PackReference
            } else if path == ".system" {
                MacroProblemKind::UnknownSystemMacro
            } else {
                MacroProblemKind::Unknown
            };
            Some(MacroProblem {
                key: found.key,
                reference: found.reference,
                kind,
            })
        })
        .collect()
}

/// `text` with every `.spectro` reference inside its actions turned into
/// `.Values.spectro`, for Helm's engine; plain text, string literals and comments are left
/// as they are.
pub fn helm_form(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut copied = 0;
    for range in references(text) {
        // After the reference's leading dot.
        let at = range.start + 1;
        out.push_str(&text[copied..at]);
        out.push_str("Values.");
        copied = at;
    }
    out.push_str(&text[copied..]);
    out
}

/// The byte ranges of the `.spectro` references inside the actions of `text`: a field
/// chain from the root (`.spectro.a.b`, or `$.spectro.a.b` past the `$`), not a field of
/// something else (`.x.spectro`, `$v.spectro`, `(f).spectro`).
fn references(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut position = 0;
    while let Some(offset) = text[position..].find("{{") {
        match scan_action(bytes, position + offset, &mut found) {
            Some(end) => position = end,
            // Unclosed: Go would refuse it; nothing after it is an action.
            None => break,
        }
    }
    found
}

/// Scans the action opened at `open`, adding its references to `found`; returns the
/// index after its `}}`, or `None` when it is not closed.
fn scan_action(bytes: &[u8], open: usize, found: &mut Vec<Range<usize>>) -> Option<usize> {
    let mut at = open + 2;
    // `{{- ` trims the text before; the marker needs the whitespace after it.
    if bytes.get(at) == Some(&b'-') && bytes.get(at + 1).is_some_and(u8::is_ascii_whitespace) {
        at += 2;
    }
    if bytes[at..].starts_with(b"/*") {
        let close = find(bytes, at + 2, b"*/")?;
        return Some(find(bytes, close + 2, b"}}")? + 2);
    }
    let mut candidates = Vec::new();
    while at < bytes.len() {
        match bytes[at] {
            b'"' | b'\'' => at = skip_quoted(bytes, at)?,
            b'`' => at = find(bytes, at + 1, b"`")? + 1,
            b'}' if bytes.get(at + 1) == Some(&b'}') => {
                found.extend(candidates);
                return Some(at + 2);
            }
            b'.' if starts_chain(bytes[at - 1]) => {
                let end = chain_end(bytes, at);
                if is_spectro(&bytes[at..end]) {
                    candidates.push(at..end);
                }
                at = end.max(at + 1);
            }
            _ => at += 1,
        }
    }
    None
}

/// Whether a `.` after `previous` starts a chain from the root data.
fn starts_chain(previous: u8) -> bool {
    !(is_identifier(previous) || matches!(previous, b'.' | b')' | b']'))
}

/// Go identifiers take Unicode letters too: any byte of a non-ASCII character counts, so
/// that `.spectroü` is not read as `.spectro`.
fn is_identifier(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || !byte.is_ascii()
}

/// The end of the field chain starting with the `.` at `start`.
fn chain_end(bytes: &[u8], start: usize) -> usize {
    let mut end = start;
    while bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(|b| is_identifier(*b)) {
        end += 1;
        while bytes.get(end).is_some_and(|b| is_identifier(*b)) {
            end += 1;
        }
    }
    end
}

fn is_spectro(chain: &[u8]) -> bool {
    chain == b".spectro" || chain.starts_with(b".spectro.")
}

/// The index after the quoted literal (`"…"` or `'…'`) opened at `open`.
fn skip_quoted(bytes: &[u8], open: usize) -> Option<usize> {
    let quote = bytes[open];
    let mut at = open + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            byte if byte == quote => return Some(at + 1),
            _ => at += 1,
        }
    }
    None
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|position| from + position)
}

#[cfg(test)]
#[path = "macros_tests.rs"]
mod macros_tests;
