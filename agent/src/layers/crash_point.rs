//! Test fault injection for the layer installer, only in a build with the cargo feature
//! `fault-hooks` (the test build); without it nothing here reads the environment.
//!
//! - `STRATA_LAYER_EXIT_AFTER_APPLY=<layer>`: the agent exits at once (as if killed) right
//!   after it applied that layer (its manifests applied, its charts' releases installed),
//!   before it waited for the layer to be Ready or recorded it complete; once only: the
//!   marker `exited-after-<layer>` in its work folder says it did, so the next agent
//!   finishes the install.

use std::path::Path;

#[cfg(feature = "fault-hooks")]
pub fn after_apply(layer: &str, work_dir: &Path) {
    if std::env::var("STRATA_LAYER_EXIT_AFTER_APPLY")
        .ok()
        .as_deref()
        != Some(layer)
    {
        return;
    }
    let marker = work_dir.join(format!("exited-after-{layer}"));
    if marker.exists() {
        return;
    }
    if std::fs::write(&marker, b"").is_ok() {
        tracing::warn!(layer, "fault hook: exiting right after applying the layer");
        std::process::exit(3);
    }
}

#[cfg(not(feature = "fault-hooks"))]
pub fn after_apply(_layer: &str, _work_dir: &Path) {}
