//! A layer that left the stack, uninstalled: its Helm releases, newest first, then every
//! member of its ApplySet (pruned in reverse install order), then the set's parent.

use strata_shared::contracts::field_managers::AGENT_FIELD_MANAGER;
use strata_shared::kube_writer::KubeWriter;
use strata_shared::layer::applyset::layer_parent_name;
use strata_shared::layer_apply::{ManifestLayer, apply_manifest_layer};

use super::LayerSetup;
use super::record::{InstalledKind, InstalledLayer};

pub async fn uninstall(
    setup: &LayerSetup,
    workload: &KubeWriter,
    layer: &InstalledLayer,
) -> Result<(), String> {
    if let InstalledKind::Charts { releases } = &layer.kind {
        let helm = setup
            .helm
            .clone()
            .ok_or("its releases need helm, and the agent has none")?;
        for release in releases.iter().rev() {
            let (helm, kubeconfig, release) =
                (helm.clone(), setup.kubeconfig.clone(), release.clone());
            tokio::task::spawn_blocking(move || {
                strata_shared::chart_release::uninstall(
                    &helm,
                    &kubeconfig,
                    &release.namespace,
                    &release.name,
                )
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        }
    }
    // Nothing rendered: every member of the layer's ApplySet is pruned, in reverse
    // install order; then the set's parent goes.
    apply_manifest_layer(
        &setup.client,
        &ManifestLayer {
            name: &layer.name,
            namespace: "default",
            rendered: "",
        },
        AGENT_FIELD_MANAGER,
        setup.timeout,
    )
    .await
    .map_err(|e| e.to_string())?;
    let parents = workload.namespaced::<k8s_openapi::api::core::v1::ConfigMap>(
        strata_shared::contracts::names::AGENT_NAMESPACE,
    );
    parents
        .delete(&layer_parent_name(&layer.name))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
