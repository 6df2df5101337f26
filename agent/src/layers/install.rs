//! One layer installed: its pack pulled by the digest its revision pins, its values' system
//! macros resolved and its releases named ([`prepare`]), then its manifests rendered and
//! applied as the layer's ApplySet and its charts installed or upgraded as Helm releases
//! ([`apply`]), and the whole waited for until Ready. Between the two the installer
//! records the releases, so that an agent killed mid-install leaves none it cannot find.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_yaml::Value;
use strata_shared::chart_release::ChartRelease;
use strata_shared::contracts::field_managers::AGENT_FIELD_MANAGER;
use strata_shared::helm_cli::Helm;
use strata_shared::layer::install_order::{ObjectKey, layer_objects};
use strata_shared::layer::macros::ClusterFacts;
use strata_shared::layer::readiness::Readiness;
use strata_shared::layer::release::release_name;
use strata_shared::layer_apply::{ManifestLayer, apply_manifest_layer, layer_readiness};
use strata_shared::pack::render::{RenderUnit, UnitChart, render_units};
use strata_shared::pack::values_schema::check::SECRET_MASK;
use strata_shared::pack_render::resolve_macros;
use strata_shared::registry::site_access::SiteRegistries;
use strata_shared::revision::RevisionLayer;

use super::LayerError;
use super::pinned_pack::{self, PackPin};
use super::record::{InstalledKind, Release};
use super::setup::LayerSetup;

/// A layer as installed: what it is made of, its objects (what its health is read from)
/// and what its drift pass compares them with: for manifests, what was applied; for
/// charts, the releases as installed (their chart folders are kept in `work` while the
/// layer is installed, so that a release can be upgraded again with the same chart).
pub struct Installed {
    pub kind: InstalledKind,
    pub objects: Vec<ObjectKey>,
    pub rendered: Option<(String, String)>,
    pub charts: Vec<ChartRelease>,
    pub work: Option<tempfile::TempDir>,
    pub from_cache: bool,
}

/// A layer pulled and rendered, nothing applied yet.
pub struct Prepared {
    pack_dir: PathBuf,
    charts: Vec<RenderUnit>,
    manifests: Vec<RenderUnit>,
    helm: Option<Helm>,
    work: tempfile::TempDir,
    from_cache: bool,
}

impl Prepared {
    /// The Helm releases installing it creates or upgrades.
    pub fn releases(&self) -> Vec<Release> {
        self.charts
            .iter()
            .map(|unit| Release {
                namespace: unit.namespace.clone(),
                name: unit.release.clone(),
            })
            .collect()
    }
}

/// Pulls `layer`'s pack, resolves its values' macros and renders it into what
/// [`apply`] installs, naming each chart's release ([`release_name`]).
pub async fn prepare(
    setup: &LayerSetup,
    layer: &RevisionLayer,
    registries: &SiteRegistries,
    facts: &ClusterFacts,
) -> Result<Prepared, LayerError> {
    let name = layer.name.as_str();
    let failed = |cause: String| LayerError::new(layer, cause);
    let values: Value = serde_yaml::from_str(&layer.values)
        .map_err(|e| failed(format!("its values in the revision are not YAML: {e}")))?;
    if let Some(key) = masked_key(&values, "") {
        return Err(failed(format!(
            "value {key} is a secret, and revisions carry secrets masked ({SECRET_MASK}); secret values do not reach sites yet"
        )));
    }
    let pinned = pinned_pack::pull(
        setup,
        registries,
        &PackPin {
            name,
            version: &layer.version,
            digest: &layer.digest,
            registry: layer.registry.as_deref(),
        },
        "layer-",
    )
    .await
    .map_err(failed)?;
    let (pack, work) = (pinned.pack, pinned.work);
    let helm = setup.helm.as_ref();
    let values = match helm {
        Some(helm) => {
            let helm = helm.clone();
            let (layer_name, facts) = (name.to_string(), facts.clone());
            blocking(layer, move || {
                resolve_macros(&helm, &layer_name, &values, &facts).map_err(|e| e.to_string())
            })
            .await?
        }
        None => values,
    };
    let units = render_units(&pack, &values).map_err(|e| failed(e.to_string()))?;
    let (mut charts, manifests): (Vec<_>, Vec<_>) = units
        .into_iter()
        .partition(|unit| matches!(unit.chart, UnitChart::InPack { .. }));
    for unit in &mut charts {
        if let UnitChart::InPack { name: chart, .. } = &unit.chart {
            unit.release = release_name(&values, chart).map_err(|e| failed(e.to_string()))?;
        }
    }
    let needs_helm = !charts.is_empty()
        || manifests
            .iter()
            .any(|unit| matches!(unit.chart, UnitChart::Generated(_)));
    let helm = match (helm, needs_helm) {
        (Some(helm), _) => Some(helm.clone().with_timeout(setup.timeout)),
        (None, false) => None,
        (None, true) => {
            return Err(failed(
                "its pack has templates or charts and the agent has no helm (set STRATA_HELM or put helm on PATH)".into(),
            ));
        }
    };
    Ok(Prepared {
        pack_dir: pack.dir.clone(),
        charts,
        manifests,
        helm,
        work,
        from_cache: pinned.from_cache,
    })
}

/// Applies what [`prepare`] made: the manifests as the layer's ApplySet, then each chart
/// as its release. Does not wait for the layer to be Ready.
pub async fn apply(
    setup: &LayerSetup,
    layer: &RevisionLayer,
    prepared: Prepared,
) -> Result<Installed, LayerError> {
    let name = layer.name.as_str();
    let failed = |cause: String| LayerError::new(layer, cause);
    let Prepared {
        pack_dir,
        charts,
        manifests,
        helm,
        work,
        from_cache,
    } = prepared;
    let mut objects = Vec::new();
    let mut rendered = None;
    let mut releases = Vec::new();
    let mut installed_charts = Vec::new();
    if !manifests.is_empty() {
        let namespace = manifests[0].namespace.clone();
        let mut text = String::new();
        for unit in manifests {
            let output = match (&unit.chart, &helm) {
                (UnitChart::Verbatim { output }, _) => output.clone(),
                (_, Some(helm)) => {
                    let (helm, dir) = (helm.clone(), pack_dir.clone());
                    blocking(layer, move || {
                        helm.render(&dir, &unit).map_err(|e| e.to_string())
                    })
                    .await?
                }
                (_, None) => String::new(),
            };
            text.push_str(&output);
            text.push_str("\n---\n");
        }
        let report = apply_manifest_layer(
            &setup.client,
            &ManifestLayer {
                name,
                namespace: &namespace,
                rendered: &text,
            },
            AGENT_FIELD_MANAGER,
            setup.timeout,
        )
        .await
        .map_err(|e| failed(e.to_string()))?;
        objects.extend(report.applied);
        rendered = Some((namespace, text));
    }
    for unit in charts {
        let (UnitChart::InPack { path, .. }, Some(helm)) = (&unit.chart, &helm) else {
            continue;
        };
        let release = ChartRelease {
            name: unit.release.clone(),
            namespace: unit.namespace.clone(),
            chart: pack_dir.join(path),
            values: unit.values.clone().unwrap_or(Value::Null),
            kubeconfig: setup.kubeconfig.clone(),
        };
        let (helm, installing) = (helm.clone(), release.clone());
        let chart_in_pack = format!("pack {}: {}", unit.pack, unit.source);
        let manifest = blocking(layer, move || {
            strata_shared::chart_release::install_or_upgrade(&helm, &installing)
                .and_then(|_| {
                    strata_shared::chart_release::release_manifest(
                        &helm,
                        &installing.kubeconfig,
                        &installing.namespace,
                        &installing.name,
                    )
                })
                .map_err(|e| format!("{chart_in_pack}: {e}"))
        })
        .await?;
        let keys = layer_objects(&manifest, &unit.namespace, None).map_err(|e| {
            failed(format!(
                "release {}/{}: its manifest: {e}",
                unit.namespace, unit.release
            ))
        })?;
        objects.extend(keys.into_iter().map(|o| o.key));
        releases.push(Release {
            namespace: unit.namespace.clone(),
            name: unit.release.clone(),
        });
        installed_charts.push(release);
    }
    let kind = if releases.is_empty() {
        InstalledKind::Manifests
    } else {
        InstalledKind::Charts { releases }
    };
    Ok(Installed {
        kind,
        objects,
        rendered,
        // The charts' folders stay while their releases may be upgraded again.
        work: (!installed_charts.is_empty()).then_some(work),
        charts: installed_charts,
        from_cache,
    })
}

/// Waits until every object is Ready: Err names the object and the cause when one fails or
/// the time runs out.
pub async fn wait_ready(
    setup: &LayerSetup,
    layer: &RevisionLayer,
    objects: &[ObjectKey],
) -> Result<(), LayerError> {
    let deadline = Instant::now() + setup.timeout;
    loop {
        let states = layer_readiness(&setup.client, &layer.name, objects)
            .await
            .map_err(|e| LayerError::new(layer, e.to_string()))?;
        let waiting = states.iter().find(|(_, state)| !state.is_ready());
        match waiting {
            None => return Ok(()),
            // The reason names the object.
            Some((_, Readiness::Failed { reason })) => {
                return Err(LayerError::new(layer, format!("failed: {reason}")));
            }
            Some((_, Readiness::NotReady { reason })) => {
                if Instant::now() >= deadline {
                    return Err(LayerError::new(
                        layer,
                        format!("not Ready within {} s: {reason}", setup.timeout.as_secs()),
                    ));
                }
            }
            Some((_, Readiness::Ready)) => {}
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The first values key (dotted) whose value is the secret mask.
fn masked_key(values: &Value, at: &str) -> Option<String> {
    match values {
        Value::String(text) if text == SECRET_MASK => Some(at.to_string()),
        Value::Mapping(map) => map.iter().find_map(|(key, value)| {
            let key = key
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("{key:?}"));
            let path = if at.is_empty() {
                key
            } else {
                format!("{at}.{key}")
            };
            masked_key(value, &path)
        }),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, value)| masked_key(value, &format!("{at}[{i}]"))),
        _ => None,
    }
}

/// helm runs as a process: off the async threads.
async fn blocking<T: Send + 'static>(
    layer: &RevisionLayer,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, LayerError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(cause)) => Err(LayerError::new(layer, cause)),
        Err(e) => Err(LayerError::new(
            layer,
            format!("the helm task stopped: {e}"),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_secret_is_found_by_its_key() {
        let values: Value = serde_yaml::from_str(
            "pack: {namespace: a}\nauth:\n  users:\n    - {name: x, password: <secret>}\n",
        )
        .unwrap();
        assert_eq!(
            masked_key(&values, "").as_deref(),
            Some("auth.users[0].password")
        );
        let plain: Value = serde_yaml::from_str("a: {b: secret}").unwrap();
        assert_eq!(masked_key(&plain, ""), None);
    }
}
