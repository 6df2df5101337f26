//! A layer's system macros resolved with Helm's engine: the chart that
//! `strata_core::layer::macro_chart` plans, rendered by `helm template`, read back into the
//! values.

use std::path::Path;

use serde_yaml::Value;

use strata_core::layer::macro_chart::{MACRO_CHART, macro_chart, resolved_values};
use strata_core::layer::macros::ClusterFacts;
use strata_core::pack::render::{RenderUnit, UnitChart};

use super::RenderError;
use crate::helm_cli::Helm;

/// `values` of layer `layer` with every system macro resolved from `facts`; `values` itself
/// when it holds none (helm does not run).
pub fn resolve_macros(
    helm: &Helm,
    layer: &str,
    values: &Value,
    facts: &ClusterFacts,
) -> Result<Value, RenderError> {
    let pack = format!("layer {layer}");
    let macros = |source| RenderError::Macros {
        pack: pack.clone(),
        source,
    };
    let Some(chart) = macro_chart(values, facts).map_err(macros)? else {
        return Ok(values.clone());
    };
    let unit = RenderUnit {
        pack: pack.clone(),
        source: "values (system macros)".into(),
        release: MACRO_CHART.into(),
        namespace: "default".into(),
        chart: UnitChart::Generated(chart.chart.clone()),
        values: None,
    };
    // A generated chart needs no pack folder.
    let output = helm.render(Path::new("."), &unit)?;
    resolved_values(values, &chart, &output).map_err(macros)
}
