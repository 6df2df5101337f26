//! `strata pack validate | inspect | archive`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use strata_shared::finding::Findings;
use strata_shared::helm_cli::Helm;
use strata_shared::pack::Pack;
use strata_shared::pack::archive::{
    ArchiveLimits, PACK_COMPRESSION, PackArchive, archive_pack, unpack_archive,
};
use strata_shared::pack_render::check_templates;

use crate::report::{InputReport, OutputFormat, print_document, print_findings};
use crate::{CommandError, ExitStatus};

/// Validates every pack folder; exit status 1 when any has an error. Templated manifests
/// and charts are rendered with the pack's values and checked when a helm binary is found
/// ($STRATA_HELM, else helm on PATH); without one, each templated manifest is a warning.
pub fn validate(dirs: &[PathBuf], output: OutputFormat) -> Result<ExitStatus, CommandError> {
    let helm = Helm::locate().map_err(|e| CommandError::Failed(e.to_string()))?;
    let mut reports = Vec::new();
    for dir in dirs {
        let input = dir.display().to_string();
        let (pack, mut findings) = Pack::load(dir);
        let pack = pack.filter(|pack| {
            findings.extend(check_templates(pack, helm.as_ref()));
            !findings.has_errors()
        });
        if output == OutputFormat::Text {
            print_findings(&input, &findings);
            if let Some(pack) = &pack {
                println!(
                    "{input}: ok: {} ({} layer)",
                    pack.reference(),
                    pack.manifest.layer
                );
            }
        }
        reports.push(InputReport {
            input,
            valid: pack.is_some(),
            name: pack.as_ref().map(|p| p.manifest.name.clone()),
            version: pack.as_ref().map(|p| p.manifest.version.clone()),
            findings,
        });
    }
    if let Some(format) = output.document() {
        print_document(&reports, format)?;
    }
    Ok(if reports.iter().all(|r| r.valid) {
        ExitStatus::Success
    } else {
        ExitStatus::Invalid
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inspection<'a> {
    name: &'a str,
    display_name: &'a str,
    version: &'a str,
    layer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    addon_type: Option<String>,
    content: &'static str,
    clouds: Vec<String>,
    charts: Vec<String>,
    manifests: Vec<String>,
    images: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    digest: String,
}

/// Inspects a pack folder or a pack archive (`.tar.gz`). The digest is the pack's content
/// digest: for an archive, the sha256 of the archive's decompressed tar stream (whatever
/// compressed it); for a folder, that of its canonical tar stream. Either is what a
/// revision pins once the pack is in a registry.
pub fn inspect(target: &Path, output: OutputFormat) -> Result<ExitStatus, CommandError> {
    let input = target.display().to_string();
    // Holds the unpacked archive until we are done with it.
    let mut _unpacked_dir = None;
    let (dir, archive_digest) = if target.is_file() {
        let bytes = fs::read(target).map_err(|e| CommandError::io(target, "read", e))?;
        let temp = tempfile::tempdir()
            .map_err(|e| CommandError::io(Path::new("temporary folder"), "create", e))?;
        let dest = temp.path().join("pack");
        let unpacked = match unpack_archive(bytes.as_slice(), &dest, &ArchiveLimits::default()) {
            Ok(unpacked) => unpacked,
            Err(e) => {
                let mut findings = Findings::new();
                findings.error("", format!("is not a usable pack archive: {e}"));
                print_findings(&input, &findings);
                return Ok(ExitStatus::Invalid);
            }
        };
        _unpacked_dir = Some(temp);
        (dest, Some(unpacked.content_digest))
    } else {
        (target.to_path_buf(), None)
    };
    let (pack, findings) = Pack::load(&dir);
    print_findings(&input, &findings);
    let Some(pack) = pack else {
        return Ok(ExitStatus::Invalid);
    };
    let digest = match archive_digest {
        Some(digest) => digest,
        None => pack
            .digest()
            .map_err(|e| CommandError::Failed(format!("{input}: {e}")))?,
    };
    let manifest = &pack.manifest;
    let inspection = Inspection {
        name: &manifest.name,
        display_name: &manifest.display_name,
        version: &manifest.version,
        layer: manifest.layer.to_string(),
        addon_type: manifest.addon_type.clone(),
        content: pack.content().as_str(),
        clouds: manifest.declared_cloud_names(),
        charts: pack
            .layout
            .charts
            .iter()
            .map(|c| format!("{} {} ({})", c.name, c.version, c.path))
            .collect(),
        manifests: pack
            .layout
            .manifests
            .iter()
            .map(|m| m.path.clone())
            .collect(),
        images: &pack.values.images,
        namespace: pack.values.namespace.as_deref(),
        digest,
    };
    match output.document() {
        Some(format) => print_document(&inspection, format)?,
        None => {
            let list = |items: &[String]| {
                if items.is_empty() {
                    "-".to_string()
                } else {
                    items.join(", ")
                }
            };
            println!("name:         {}", inspection.name);
            println!("display name: {}", inspection.display_name);
            println!("version:      {}", inspection.version);
            match &inspection.addon_type {
                Some(addon) => println!("layer:        {} ({addon})", inspection.layer),
                None => println!("layer:        {}", inspection.layer),
            }
            println!(
                "clouds:       {}",
                if inspection.clouds.is_empty() {
                    "any".to_string()
                } else {
                    inspection.clouds.join(", ")
                }
            );
            println!("content:      {}", inspection.content);
            println!("charts:       {}", list(&inspection.charts));
            println!("manifests:    {}", list(&inspection.manifests));
            println!("images:       {}", list(inspection.images));
            if let Some(namespace) = inspection.namespace {
                println!("namespace:    {namespace}");
            }
            println!("digest:       {}", inspection.digest);
        }
    }
    Ok(ExitStatus::Success)
}

/// Writes a valid pack's deterministic archive to `output` (atomically) and prints its
/// digest. An invalid pack writes nothing.
pub fn archive(dir: &Path, output: &Path) -> Result<ExitStatus, CommandError> {
    let input = dir.display().to_string();
    let (pack, findings) = Pack::load(dir);
    print_findings(&input, &findings);
    let Some(pack) = pack else {
        return Ok(ExitStatus::Invalid);
    };
    let PackArchive {
        bytes,
        content_digest,
        layer_digest,
    } = archive_pack(&pack.dir, &pack.manifest.name, PACK_COMPRESSION)
        .map_err(|e| CommandError::Failed(format!("{input}: {e}")))?;
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp = tempfile::NamedTempFile::new_in(&parent)
        .map_err(|e| CommandError::io(&parent, "create a file in", e))?;
    temp.write_all(&bytes)
        .map_err(|e| CommandError::io(output, "write", e))?;
    temp.persist(output)
        .map_err(|e| CommandError::io(output, "write", e.error))?;
    // The file's own sha256 first, as sha256sum writes it; then the pack's identity.
    println!("{layer_digest}  {}", output.display());
    println!("pack digest: {content_digest}");
    Ok(ExitStatus::Success)
}
