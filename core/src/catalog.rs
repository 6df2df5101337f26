//! Where profiles find their packs. [`PackSource`] resolves a layer's `name:version` to a
//! validated pack with its digest; [`LocalPackCatalog`] is a folder of pack folders (the
//! `--packs` flag). A pack registry is another source.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::finding::{Finding, FindingKind, Findings};
use crate::pack::manifest::PackManifest;
use crate::pack::{Pack, PackContent, ValueRules};
use crate::version::PackVersion;

/// A pack a layer resolved to: what composition and rendering need of it.
#[derive(Debug, Clone)]
pub struct ResolvedPack {
    pub manifest: PackManifest,
    /// The pack's own values.yaml.
    pub values: serde_yaml::Value,
    /// Its schema.yaml, presets.yaml and the presets its values.yaml enables.
    pub rules: ValueRules,
    /// The pack's content digest (`Pack::digest`): sha256 of its canonical tar stream,
    /// before compression. What a revision pins.
    pub digest: String,
    pub content: PackContent,
    /// Where it came from (a folder, or a registry reference).
    pub origin: String,
}

impl ResolvedPack {
    /// What a layer needs of a loaded pack, with its digest and where it came from.
    pub fn of(pack: &Pack, digest: String, origin: String) -> ResolvedPack {
        ResolvedPack {
            manifest: pack.manifest.clone(),
            values: pack.values.document.clone(),
            rules: pack.value_rules(),
            digest,
            content: pack.content(),
            origin,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "no pack named {name:?} in {source_name}{}",
        list_suffix("packs there", available)
    )]
    UnknownPack {
        name: String,
        source_name: String,
        available: Vec<String>,
    },
    #[error(
        "pack {name:?} has no version {version:?} in {source_name}{}",
        list_suffix("versions there", available)
    )]
    UnknownVersion {
        name: String,
        version: String,
        source_name: String,
        available: Vec<String>,
    },
    #[error(
        "pack {reference} at {origin} is not valid: {}",
        first_errors(problems)
    )]
    InvalidPack {
        reference: String,
        origin: String,
        problems: Vec<Finding>,
    },
    #[error("pack {reference} is in more than one folder ({}); keep one", origins.join(", "))]
    Ambiguous {
        reference: String,
        origins: Vec<String>,
    },
    #[error("pack {reference} could not be fetched from {origin}: {reason}")]
    Fetch {
        reference: String,
        origin: String,
        reason: String,
    },
    #[error("pack {reference} at {origin} could not be archived to compute its digest: {reason}")]
    Unreadable {
        reference: String,
        origin: String,
        reason: String,
    },
}

impl ResolveError {
    /// The kind of finding this error makes on the layer that named the pack.
    pub fn finding_kind(&self) -> FindingKind {
        match self {
            ResolveError::UnknownPack { .. }
            | ResolveError::UnknownVersion { .. }
            | ResolveError::Fetch { .. } => FindingKind::PackUnresolved,
            ResolveError::InvalidPack { .. }
            | ResolveError::Ambiguous { .. }
            | ResolveError::Unreadable { .. } => FindingKind::Invalid,
        }
    }
}

fn list_suffix(what: &str, items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!("; {what}: {}", items.join(", "))
    }
}

fn first_errors(problems: &[Finding]) -> String {
    let shown: Vec<String> = problems.iter().take(3).map(|f| f.to_string()).collect();
    let more = problems.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} (and {more} more)", shown.join("; "))
    } else {
        shown.join("; ")
    }
}

pub trait PackSource {
    /// Resolves `name:version`. `registry` is the layer's registry name, for sources that
    /// hold several registries.
    fn resolve(
        &self,
        name: &str,
        version: &str,
        registry: Option<&str>,
    ) -> Result<ResolvedPack, ResolveError>;
}

struct CatalogEntry {
    dir: PathBuf,
    /// Name and version when pack.json could be read, even if the pack is invalid, so that
    /// a layer naming it gets the pack's own problems rather than "not found".
    identity: Option<(String, String)>,
    pack: Option<Pack>,
    findings: Findings,
}

/// A folder whose subfolders are packs (any subfolder holding a pack.json).
pub struct LocalPackCatalog {
    root: PathBuf,
    entries: Vec<CatalogEntry>,
}

impl fmt::Debug for LocalPackCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalPackCatalog")
            .field("root", &self.root)
            .field("packs", &self.entries.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the pack folder {path}: {source}")]
pub struct CatalogError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl LocalPackCatalog {
    /// Loads every pack folder directly under `root`. Invalid packs are kept with their
    /// findings and reported when a layer names them.
    pub fn load(root: &Path) -> Result<Self, CatalogError> {
        let read = fs::read_dir(root).map_err(|source| CatalogError {
            path: root.to_path_buf(),
            source,
        })?;
        let mut dirs: Vec<PathBuf> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("pack.json").is_file())
            .collect();
        dirs.sort();
        let entries = dirs
            .into_iter()
            .map(|dir| {
                let (pack, findings) = Pack::load(&dir);
                let identity = match &pack {
                    Some(pack) => Some((pack.manifest.name.clone(), pack.manifest.version.clone())),
                    None => identity_of_invalid(&dir),
                };
                CatalogEntry {
                    dir,
                    identity,
                    pack,
                    findings,
                }
            })
            .collect();
        Ok(LocalPackCatalog {
            root: root.to_path_buf(),
            entries,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn source_name(&self) -> String {
        format!("pack folder {}", self.root.display())
    }
}

fn identity_of_invalid(dir: &Path) -> Option<(String, String)> {
    let text = fs::read_to_string(dir.join("pack.json")).ok()?;
    let (clean, _) = crate::pack::lenient_json::strip_trailing_commas(&text);
    let value: serde_json::Value = serde_json::from_str(&clean).ok()?;
    Some((
        value.get("name")?.as_str()?.to_string(),
        value.get("version")?.as_str()?.to_string(),
    ))
}

/// Whether two pack version strings name the same version: equal text, or equal as
/// versions (`1.28` and `1.28.0`).
pub fn same_version(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (PackVersion::parse(a), PackVersion::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

impl PackSource for LocalPackCatalog {
    fn resolve(
        &self,
        name: &str,
        version: &str,
        _registry: Option<&str>,
    ) -> Result<ResolvedPack, ResolveError> {
        let named: Vec<&CatalogEntry> = self
            .entries
            .iter()
            .filter(|e| e.identity.as_ref().is_some_and(|(n, _)| n == name))
            .collect();
        if named.is_empty() {
            let mut available: Vec<String> = self
                .entries
                .iter()
                .filter_map(|e| e.identity.as_ref().map(|(n, _)| n.clone()))
                .collect();
            available.sort();
            available.dedup();
            return Err(ResolveError::UnknownPack {
                name: name.to_string(),
                source_name: self.source_name(),
                available,
            });
        }
        let matching: Vec<&&CatalogEntry> = named
            .iter()
            .filter(|e| {
                e.identity
                    .as_ref()
                    .is_some_and(|(_, v)| same_version(v, version))
            })
            .collect();
        if matching.len() > 1 {
            return Err(ResolveError::Ambiguous {
                reference: format!("{name}:{version}"),
                origins: matching
                    .iter()
                    .map(|e| e.dir.display().to_string())
                    .collect(),
            });
        }
        let Some(entry) = matching.first() else {
            return Err(ResolveError::UnknownVersion {
                name: name.to_string(),
                version: version.to_string(),
                source_name: self.source_name(),
                available: named
                    .iter()
                    .filter_map(|e| e.identity.as_ref().map(|(_, v)| v.clone()))
                    .collect(),
            });
        };
        let origin = entry.dir.display().to_string();
        let reference = format!("{name}:{version}");
        let Some(pack) = &entry.pack else {
            return Err(ResolveError::InvalidPack {
                reference,
                origin,
                problems: entry.findings.errors().cloned().collect(),
            });
        };
        let digest = pack.digest().map_err(|e| ResolveError::Unreadable {
            reference,
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
        Ok(ResolvedPack::of(pack, digest, origin))
    }
}
