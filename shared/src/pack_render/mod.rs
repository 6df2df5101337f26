//! Rendering packs with helm: the `helm template` runs that `strata_core::pack::render`
//! plans, run as processes. Manifests and charts go through the same engine, Helm's own,
//! so what Strata renders is what helm renders from the same template and values
//! (`docs/rendering.md` says why there is no second template engine).
//!
//! - The binary: [`crate::helm_cli::Helm`] (`$STRATA_HELM`, else `helm` on `PATH`).
//! - [`Helm::render`]: one unit; its chart (generated or the pack's) rendered into the
//!   pack's namespace, helm's output returned as it printed it.
//! - [`render_pack`]: every unit of a pack, their outputs one after the other.
//! - [`check_templates`]: what `strata pack validate` adds to [`Pack::load`]'s findings for
//!   templated manifests: their rendered objects checked, or a warning that they were not.

mod check;
mod macros;

use std::fs;
use std::path::{Path, PathBuf};

use serde_yaml::Value;
use thiserror::Error;
use tracing::debug;

use strata_core::pack::Pack;
use strata_core::pack::render::{
    GeneratedChart, RenderPlanError, RenderUnit, UnitChart, render_units, yaml_text,
};
use strata_core::pack::render_failure::{TemplateFailure, explain_failure};

use crate::helm_cli::{Helm, RunError};

pub use check::{DEFAULTS_DO_NOT_RENDER, NOT_RENDERED, check_templates};
pub use macros::resolve_macros;

/// Why a pack could not be rendered. Every variant names the pack and the file of it that
/// was being rendered.
#[derive(Debug, Error)]
pub enum RenderError {
    /// helm refused the template or its values; located in the pack's own file.
    #[error("pack {pack}: {failure}")]
    Template {
        pack: String,
        failure: TemplateFailure,
    },

    #[error(
        "pack {pack}: {unit}: helm ({binary}) did not finish within {seconds} s and was stopped"
    )]
    TimedOut {
        pack: String,
        unit: String,
        binary: PathBuf,
        seconds: u64,
    },

    #[error("pack {pack}: {unit}: cannot run helm ({binary}): {source}")]
    Run {
        pack: String,
        unit: String,
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("pack {pack}: {unit}: cannot write the chart to render at {path}: {source}")]
    WriteChart {
        pack: String,
        unit: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("pack {pack}: {unit}: the values cannot be written as YAML for helm: {source}")]
    Values {
        pack: String,
        unit: String,
        #[source]
        source: serde_yaml::Error,
    },

    #[error("pack {pack}: {unit}: helm ({binary}) printed output that is not UTF-8 text")]
    NotUtf8 {
        pack: String,
        unit: String,
        binary: PathBuf,
    },

    #[error(transparent)]
    Plan(#[from] RenderPlanError),

    #[error("{pack}: the values' system macros: {source}")]
    Macros {
        pack: String,
        #[source]
        source: strata_core::layer::macro_chart::MacroChartError,
    },
}

/// One unit's output: the pack file it came from and what helm printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedUnit {
    pub source: String,
    pub output: String,
}

impl Helm {
    /// Renders one unit of the pack in `pack_dir`: `helm template <release> <chart>
    /// --namespace <namespace> [-f <values>]`. Returns what helm printed.
    pub fn render(&self, pack_dir: &Path, unit: &RenderUnit) -> Result<String, RenderError> {
        let work = tempfile::tempdir().map_err(|source| RenderError::WriteChart {
            pack: unit.pack.clone(),
            unit: unit.source.clone(),
            path: std::env::temp_dir(),
            source,
        })?;
        let chart_path = match &unit.chart {
            UnitChart::InPack { path, .. } => pack_dir.join(path),
            UnitChart::Generated(chart) => write_chart(unit, chart, &work.path().join("chart"))?,
            // Installed as written: nothing for helm to do.
            UnitChart::Verbatim { output } => return Ok(output.clone()),
        };
        let mut args = vec![
            "template".into(),
            unit.release.clone().into(),
            chart_path.into_os_string(),
            "--namespace".into(),
            unit.namespace.clone().into(),
        ];
        if let Some(values) = &unit.values {
            let path = work.path().join("values.yaml");
            let text = yaml_text(values).map_err(|source| RenderError::Values {
                pack: unit.pack.clone(),
                unit: unit.source.clone(),
                source,
            })?;
            write_file(unit, &path, &text)?;
            args.push("--values".into());
            args.push(path.into_os_string());
        }
        debug!(pack = %unit.pack, unit = %unit.source, binary = %self.binary().display(), "helm template");
        let finished = self.run(&args).map_err(|error| match error {
            RunError::Spawn(source) => RenderError::Run {
                pack: unit.pack.clone(),
                unit: unit.source.clone(),
                binary: self.binary().to_path_buf(),
                source,
            },
            RunError::TimedOut => RenderError::TimedOut {
                pack: unit.pack.clone(),
                unit: unit.source.clone(),
                binary: self.binary().to_path_buf(),
                seconds: self.timeout().as_secs(),
            },
        })?;
        if !finished.success {
            let stderr = String::from_utf8_lossy(&finished.stderr);
            return Err(RenderError::Template {
                pack: unit.pack.clone(),
                failure: explain_failure(unit, &stderr),
            });
        }
        String::from_utf8(finished.stdout).map_err(|_| RenderError::NotUtf8 {
            pack: unit.pack.clone(),
            unit: unit.source.clone(),
            binary: self.binary().to_path_buf(),
        })
    }
}

/// Renders every unit of `pack` with `values` (see `strata_core::profile::layer_values::
/// pack_values`), in the plan's order; stops at the first failure.
pub fn render_pack(
    helm: &Helm,
    pack: &Pack,
    values: &Value,
) -> Result<Vec<RenderedUnit>, RenderError> {
    render_units(pack, values)?
        .iter()
        .map(|unit| {
            Ok(RenderedUnit {
                source: unit.source.clone(),
                output: helm.render(&pack.dir, unit)?,
            })
        })
        .collect()
}

fn write_chart(
    unit: &RenderUnit,
    chart: &GeneratedChart,
    dir: &Path,
) -> Result<PathBuf, RenderError> {
    for file in &chart.files {
        write_file(unit, &dir.join(&file.path), &file.content)?;
    }
    Ok(dir.to_path_buf())
}

fn write_file(unit: &RenderUnit, path: &Path, text: &str) -> Result<(), RenderError> {
    let failed = |source| RenderError::WriteChart {
        pack: unit.pack.clone(),
        unit: unit.source.clone(),
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(failed)?;
    }
    fs::write(path, text).map_err(failed)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
