//! `strata pack render`: the Kubernetes objects a pack installs, as YAML, like `helm
//! template`: each chart of the pack and each manifest (wrapped into a chart) rendered by
//! helm with the pack's values, the presets asked for and the `--values` files over them.

use std::io::Write;
use std::path::{Path, PathBuf};

use strata_shared::helm_cli::{HELM_ENV, Helm};
use strata_shared::pack::Pack;
use strata_shared::pack::render::parse_values_file;
use strata_shared::pack_render::render_pack;
use strata_shared::profile::layer_values::pack_values;

use crate::registry_commands::{RegistryArgs, client, pack_cache, parse_reference, runtime};
use crate::report::print_findings;
use crate::{CommandError, ExitStatus};

/// What `strata pack render` was asked.
pub struct RenderRequest<'a> {
    /// A pack folder, or NAME:VERSION with `--registry`.
    pub target: &'a str,
    pub values_files: &'a [PathBuf],
    pub presets: &'a [String],
    /// Render with the real secret values instead of `<secret>`.
    pub show_secrets: bool,
    pub registry: &'a RegistryArgs,
}

pub fn render(request: &RenderRequest<'_>) -> Result<ExitStatus, CommandError> {
    // Holds a pulled pack's folder until rendering is done.
    let mut _pulled = None;
    let dir = match request.registry.given() {
        Some(_) => {
            let temp = tempfile::tempdir()
                .map_err(|e| CommandError::io(Path::new("a temporary folder"), "create", e))?;
            let dir = pull(request.target, request.registry, &temp.path().join("pack"))?;
            _pulled = Some(temp);
            dir
        }
        None => PathBuf::from(request.target),
    };
    let (pack, findings) = Pack::load(&dir);
    print_findings(request.target, &findings);
    let Some(pack) = pack else {
        return Ok(ExitStatus::Invalid);
    };
    let overrides = request
        .values_files
        .iter()
        .map(|path| {
            let text =
                std::fs::read_to_string(path).map_err(|e| CommandError::io(path, "read", e))?;
            parse_values_file(&path.display().to_string(), &text)
                .map_err(|e| CommandError::Failed(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let reference = pack.reference();
    let resolution = pack_values(&pack, request.presets, overrides).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        CommandError::Failed(format!(
            "pack {reference}: the presets cannot be applied:\n{}",
            lines.join("\n")
        ))
    })?;
    // The same checks as a cluster's layer: a required value left unset or a value of the
    // wrong type is an error here too (pass it with --values).
    if !resolution.problems.is_empty() {
        let lines: Vec<String> = resolution
            .problems
            .iter()
            .map(|problem| format!("  {problem}"))
            .collect();
        return Err(CommandError::Failed(format!(
            "pack {reference}: its values do not satisfy its schema.yaml (set them with --values FILE):\n{}",
            lines.join("\n")
        )));
    }
    // What is printed is shared and pasted: the schema's secrets stay out of it unless asked.
    let values = if request.show_secrets {
        resolution.values.unmasked().clone()
    } else {
        resolution.values.masked()
    };
    let helm = match Helm::locate() {
        Ok(Some(helm)) => helm,
        Ok(None) => {
            return Err(CommandError::Failed(format!(
                "no helm binary to render with: set {HELM_ENV} to one or put helm on PATH"
            )));
        }
        Err(error) => return Err(CommandError::Failed(error.to_string())),
    };
    let rendered =
        render_pack(&helm, &pack, &values).map_err(|e| CommandError::Failed(e.to_string()))?;
    let mut stdout = std::io::stdout().lock();
    for unit in &rendered {
        stdout
            .write_all(unit.output.as_bytes())
            .map_err(|e| CommandError::Failed(format!("cannot write the output: {e}")))?;
    }
    Ok(ExitStatus::Success)
}

/// Pulls `NAME:VERSION` from the registry into `dest`.
fn pull(reference: &str, args: &RegistryArgs, dest: &Path) -> Result<PathBuf, CommandError> {
    let (name, version) = parse_reference(reference)?;
    let client = client(args)?;
    let cache = pack_cache()?;
    let pulled = runtime()?
        .block_on(client.pull(&name, &version, dest, Some(&cache)))
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    Ok(pulled.dir)
}
