//! A workload cluster this process did not start: after a pivot the simulator runs in the
//! workload cluster itself (as its provider controllers), while the cluster's apiserver
//! was started by the simulator that ran its first machine. The machines it provisions
//! from then on must join that same apiserver, as real machines join the cluster they
//! were made for, so it attaches to it through the cluster's kubeconfig instead of
//! starting another.
//!
//! Every control plane the simulator starts carries its identity in a ConfigMap, so a
//! kubeconfig left over from an earlier run, whose port another test's apiserver may now
//! use, is never attached to.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::control_plane::ControlPlane;
use crate::kubelet_sim::{KubeletSettings, SimulatedKubelet};

/// Where a workload cluster's apiserver comes from.
pub(super) enum Apiserver {
    /// Started by this process, and stopped with its workload cluster.
    Owned(ControlPlane),
    /// Started by another simulator's process (the one that ran this cluster's machines
    /// before they moved here), reached through the cluster's kubeconfig: its machines
    /// go on joining the same cluster.
    Attached {
        server: String,
        port: u16,
        client: Client,
        ca_pem: String,
    },
}

/// Where a simulated control plane says whose it is.
const MARKER_NAMESPACE: &str = "kube-system";
const MARKER_NAME: &str = "strata-sim-cluster";
const MARKER_KEY: &str = "id";
/// A live apiserver on loopback answers at once; a dead one refuses at once.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes the identity marker into a control plane this process started.
pub(super) async fn mark(client: &Client, id: &str) -> Result<(), kube::Error> {
    let marker = ConfigMap {
        metadata: ObjectMeta {
            name: Some(MARKER_NAME.into()),
            namespace: Some(MARKER_NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(MARKER_KEY.to_string(), id.to_string())])),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), MARKER_NAMESPACE)
        .patch(
            MARKER_NAME,
            &PatchParams::apply("strata-sim-cloud").force(),
            &Patch::Apply(&marker),
        )
        .await
        .map(|_| ())
}

/// The running apiserver `kubeconfig` names, when it is identity `id`'s, with a simulated
/// kubelet of this process for the nodes it registers there. None (and why, in the log)
/// when it cannot be used: the caller starts a control plane instead.
pub(super) async fn attach(
    id: &str,
    cluster: &str,
    kubeconfig: &str,
    nodes: KubeletSettings,
) -> Option<(SimulatedKubelet, Apiserver)> {
    match try_attach(id, kubeconfig, nodes).await {
        Ok((kubelet, apiserver)) => {
            if let Apiserver::Attached { server, .. } = &apiserver {
                tracing::info!(cluster, %server, "attached to the workload cluster's running apiserver");
            }
            Some((kubelet, apiserver))
        }
        Err(reason) => {
            tracing::info!(cluster, %reason, "cannot attach to the cluster's kubeconfig apiserver");
            None
        }
    }
}

async fn try_attach(
    id: &str,
    kubeconfig: &str,
    nodes: KubeletSettings,
) -> Result<(SimulatedKubelet, Apiserver), String> {
    let parsed = Kubeconfig::from_yaml(kubeconfig).map_err(|e| format!("kubeconfig: {e}"))?;
    let cluster = parsed
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .ok_or("the kubeconfig names no cluster")?;
    let server = cluster
        .server
        .clone()
        .ok_or("the kubeconfig's cluster has no server")?;
    let port = server
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .ok_or_else(|| format!("server {server:?} names no port"))?;
    let ca_data = cluster
        .certificate_authority_data
        .as_deref()
        .ok_or("the kubeconfig's cluster has no certificate-authority-data")?;
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(ca_data)
        .map_err(|e| format!("certificate-authority-data: {e}"))
        .and_then(|b| {
            String::from_utf8(b).map_err(|e| format!("certificate-authority-data: {e}"))
        })?;
    let config = Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("kubeconfig: {e}"))?;
    let client = Client::try_from(config).map_err(|e| format!("client: {e}"))?;
    let markers: Api<ConfigMap> = Api::namespaced(client.clone(), MARKER_NAMESPACE);
    let marker = tokio::time::timeout(REACH_TIMEOUT, markers.get_opt(MARKER_NAME))
        .await
        .map_err(|_| format!("{server} did not answer in {REACH_TIMEOUT:?}"))?
        .map_err(|e| format!("{server}: {e}"))?;
    let found = marker
        .and_then(|m| m.data)
        .and_then(|mut d| d.remove(MARKER_KEY));
    if found.as_deref() != Some(id) {
        return Err(format!(
            "{server} is the apiserver of cluster identity {found:?}, not {id:?}"
        ));
    }
    let kubelet = SimulatedKubelet::start_with(client.clone(), Vec::new(), nodes)
        .await
        .map_err(|e| format!("simulated kubelet: {e}"))?;
    Ok((
        kubelet,
        Apiserver::Attached {
            server,
            port,
            client,
            ca_pem,
        },
    ))
}
