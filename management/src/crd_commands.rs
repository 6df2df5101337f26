//! `strata crds`: the CRDs generated from the Rust types.

use std::fs;
use std::path::Path;

use strata_shared::crd;

use crate::{CommandError, ExitStatus};

/// The CRDs as one multi-document YAML stream.
pub fn render_all() -> Result<String, CommandError> {
    let mut out = String::new();
    for definition in crd::all() {
        out.push_str("---\n");
        out.push_str(&crd::to_yaml(&definition).map_err(|e| CommandError::Failed(e.to_string()))?);
    }
    Ok(out)
}

/// Prints the CRDs, or writes one file per CRD into `dir` (what `manifests/crds/` holds).
pub fn run(output_dir: Option<&Path>) -> Result<ExitStatus, CommandError> {
    let Some(dir) = output_dir else {
        print!("{}", render_all()?);
        return Ok(ExitStatus::Success);
    };
    fs::create_dir_all(dir).map_err(|e| CommandError::io(dir, "create", e))?;
    for definition in crd::all() {
        let path = dir.join(crd::file_name(&definition));
        let yaml = crd::to_yaml(&definition).map_err(|e| CommandError::Failed(e.to_string()))?;
        fs::write(&path, yaml).map_err(|e| CommandError::io(&path, "write", e))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitStatus::Success)
}
