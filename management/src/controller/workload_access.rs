//! A client of a workload cluster from `<cluster>-kubeconfig`. CAPI writes that Secret in the
//! objects namespace, where the cluster's agent may write too: its content is the site's data.
//! Only a server, CA data and inline credentials are used (`strata_shared::workload_kubeconfig`:
//! no command runs, no file is read, no proxy or unverified TLS), the server and CA are pinned
//! in the cluster's ledger when first used (the site cannot write there, so it cannot point the
//! controller elsewhere later), and every request has a deadline. What was refused, and why,
//! goes to the controller's log only: the site reads its own status.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use strata_shared::cluster::ledger::WorkloadPin;
use strata_shared::contracts::field_managers::CONTROLLER_FIELD_MANAGER;
use strata_shared::contracts::labels::{WORKLOAD_CA_ANNOTATION, WORKLOAD_SERVER_ANNOTATION};
use strata_shared::contracts::names::ClusterLocation;
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::workload_kubeconfig::{ClientTimeouts, parse};

use super::context::WRITE_TIMEOUT;
use super::ledger::{self, LedgerError, Recorded};

/// How long a request to a workload cluster may take before it counts as unreachable.
const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The condition reason for a kubeconfig Strata refuses to use.
pub const UNSAFE_KUBECONFIG: &str = "UnsafeKubeconfig";

#[derive(Debug, thiserror::Error)]
pub enum WorkloadAccessError {
    #[error(transparent)]
    Read(#[from] WriteError),
    #[error(transparent)]
    Pin(#[from] LedgerError),
}

/// What the kubeconfig Secret gave.
pub enum Workload {
    /// CAPI has not written it yet.
    Missing,
    /// The workload cluster, under the controller's field manager, every call bounded.
    Ready(KubeWriter),
    /// The pin was just recorded, on a namespace that then moved on: read again.
    Retry,
    /// Refused; the reason is logged, never shown to the site.
    Unsafe,
}

/// The client of `location`'s workload cluster. `namespace`: the objects namespace as just
/// read (its annotations are the ledger the pin is kept in).
pub async fn connect(
    management: &KubeWriter,
    namespace: &Namespace,
    location: &ClusterLocation,
) -> Result<Workload, WorkloadAccessError> {
    let secrets = management.namespaced::<Secret>(&location.objects_namespace);
    let name = format!("{}-kubeconfig", location.cluster);
    let shown = format!("{}/{name}", location.objects_namespace);
    let secret = secrets.get(&name).await?;
    let Some(value) = secret
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove("value"))
    else {
        return Ok(Workload::Missing);
    };
    let refused = |detail: String| {
        tracing::warn!(secret = %shown, reason = UNSAFE_KUBECONFIG, %detail, "refusing the workload cluster's kubeconfig");
        Ok(Workload::Unsafe)
    };
    let Ok(text) = String::from_utf8(value.0) else {
        return refused("the value is not UTF-8 text".into());
    };
    let access = match parse(&text) {
        Ok(access) => access,
        Err(e) => return refused(e.to_string()),
    };
    let seen = WorkloadPin {
        server: access.server().to_string(),
        ca_sha256: access.ca_fingerprint(),
    };
    match ledger::of(Some(namespace)).pin {
        Some(pinned) if pinned == seen => {}
        Some(pinned) => {
            return refused(format!(
                "it names server {} with CA sha256 {}, but the cluster was pinned to server {} with CA sha256 {} when first used",
                seen.server, seen.ca_sha256, pinned.server, pinned.ca_sha256
            ));
        }
        None => {
            let recorded = ledger::record(
                management,
                namespace,
                &[
                    (WORKLOAD_SERVER_ANNOTATION, seen.server.as_str()),
                    (WORKLOAD_CA_ANNOTATION, seen.ca_sha256.as_str()),
                ],
            )
            .await?;
            if let Recorded::Stale = recorded {
                return Ok(Workload::Retry);
            }
        }
    }
    let config = match access.to_kube_config(ClientTimeouts::uniform(WORKLOAD_TIMEOUT)) {
        Ok(config) => config,
        Err(e) => return refused(e.to_string()),
    };
    match Client::try_from(config) {
        Ok(client) => Ok(Workload::Ready(KubeWriter::new(
            client,
            CONTROLLER_FIELD_MANAGER,
            WRITE_TIMEOUT,
        ))),
        Err(e) => refused(format!("no client can be built from it: {e}")),
    }
}
