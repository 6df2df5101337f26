//! The infrastructure cluster controllers (VSphereCluster, AWSCluster, AzureCluster,
//! SimCluster): after the configured delay the cluster's infrastructure is provisioned and
//! reported the way each provider reports it, with a control-plane endpoint: the workload
//! API server (`127.0.0.1:<port>`) once it runs, before that the address the provider
//! would give (a load balancer name, or the one the user set).

use serde_json::json;

use super::objects::{i64_at, is_paused, str_at, uid};
use super::providers;
use super::snapshot::ClusterView;
use super::workload::Workload;
use super::{Shared, SimError};

pub async fn reconcile(
    shared: &Shared,
    view: &ClusterView<'_>,
    workload: Option<&Workload>,
) -> Result<(), SimError> {
    let Some((provider, infra)) = view.infra else {
        return Ok(());
    };
    if is_paused(infra) {
        return Ok(());
    }
    let kind = provider.cluster_kind();
    let provisioned = providers::is_provisioned(provider, infra)
        || shared.waited(
            uid(infra),
            "infrastructure",
            shared.options.infrastructure_delay,
            false,
        );
    let (host, port) = match workload {
        Some(w) => ("127.0.0.1".to_string(), i64::from(w.port())),
        None => providers::placeholder_endpoint(provider, view.name, infra),
    };
    if provisioned {
        let same = str_at(infra, "/spec/controlPlaneEndpoint/host") == Some(host.as_str())
            && i64_at(infra, "/spec/controlPlaneEndpoint/port") == Some(port);
        if !same {
            tracing::info!(infra = %kind.kind, %host, port, "setting the control-plane endpoint");
            shared
                .kube
                .merge(
                    &kind,
                    infra,
                    json!({ "spec": { "controlPlaneEndpoint": { "host": host, "port": port } } }),
                )
                .await?;
        }
    }
    let status = providers::cluster_status(provider, infra, provisioned, &host);
    shared.kube.apply_status(&kind, infra, status).await?;
    Ok(())
}
