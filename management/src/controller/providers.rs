//! The management cluster's Cluster API providers, read from clusterctl's inventory there:
//! what a workload cluster runs once its objects move into it (`docs/providers.md`). The
//! inventory is the management cluster's own (written by `clusterctl init`), never a
//! site's. It changes when an operator upgrades the providers, so it is read at most once
//! a [`REREAD_AFTER`] for all clusters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{ApiResource, GroupVersionKind, ListParams};
use strata_shared::cluster::ClusterCloud;
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::provider::inventory::{INVENTORY_GROUP, INVENTORY_VERSION};
use strata_shared::provider::{
    CERT_MANAGER_NAMESPACE, CERT_MANAGER_VERSION_ANNOTATION, CertManagerInstall, InventoryEntry,
    InventoryEntryError, SelectionError, WantedProvider, inventory_entry, select,
};
use tokio::sync::Mutex;

/// How long one read of the inventory serves every cluster.
const REREAD_AFTER: Duration = Duration::from_secs(30);
/// The CRD whose clusterctl annotation gives cert-manager's version.
const CERT_MANAGER_CRD: &str = "certificates.cert-manager.io";

#[derive(Debug, thiserror::Error)]
pub enum ProviderInventoryError {
    #[error("reading the clusterctl provider inventory (providers.{INVENTORY_GROUP}): {0}")]
    Read(#[source] WriteError),
    #[error("reading cert-manager's CRD {CERT_MANAGER_CRD}: {0}")]
    CertManager(#[source] WriteError),
}

/// What the management cluster's inventory says, as read.
#[derive(Debug, Clone, Default)]
pub struct ProviderInventory {
    pub entries: Vec<InventoryEntry>,
    pub cert_manager: Option<CertManagerInstall>,
    /// Inventory objects left out, and why (a type Strata does not install, a bad field).
    pub left_out: Vec<InventoryEntryError>,
}

impl ProviderInventory {
    /// The providers a cluster of `cloud` runs.
    pub fn select(&self, cloud: ClusterCloud) -> Result<Vec<WantedProvider>, SelectionError> {
        select(&self.entries, cloud, self.cert_manager.as_ref())
    }
}

/// The inventory, read again once it is older than [`REREAD_AFTER`].
#[derive(Default)]
pub struct ProviderInventoryReader {
    last: Mutex<Option<(Instant, Arc<ProviderInventory>)>>,
}

impl ProviderInventoryReader {
    pub async fn current(
        &self,
        writer: &KubeWriter,
    ) -> Result<Arc<ProviderInventory>, ProviderInventoryError> {
        // Held across the read: clusters reconciled at once wait for one read, not each
        // make their own.
        let mut last = self.last.lock().await;
        if let Some((at, inventory)) = last.as_ref()
            && at.elapsed() < REREAD_AFTER
        {
            return Ok(Arc::clone(inventory));
        }
        let inventory = Arc::new(read(writer).await?);
        *last = Some((Instant::now(), Arc::clone(&inventory)));
        Ok(inventory)
    }
}

async fn read(writer: &KubeWriter) -> Result<ProviderInventory, ProviderInventoryError> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(INVENTORY_GROUP, INVENTORY_VERSION, "Provider"),
        "providers",
    );
    let listed = match writer
        .dynamic(&resource, None)
        .list(&ListParams::default())
        .await
    {
        Ok(listed) => listed,
        // No inventory CRD: no clusterctl here, so no providers to hand on.
        Err(e) if e.code() == Some(404) => Vec::new(),
        Err(e) => return Err(ProviderInventoryError::Read(e)),
    };
    let mut inventory = ProviderInventory::default();
    for object in listed {
        let value = serde_json::to_value(&object).unwrap_or_default();
        match inventory_entry(&value) {
            Ok(entry) => inventory.entries.push(entry),
            Err(why) => inventory.left_out.push(why),
        }
    }
    for why in &inventory.left_out {
        tracing::warn!(%why, "a clusterctl inventory object is left out of workload clusters");
    }
    if !inventory.entries.is_empty() {
        inventory.cert_manager = cert_manager(writer).await?;
    }
    tracing::debug!(
        providers = inventory.entries.len(),
        left_out = inventory.left_out.len(),
        cert_manager = inventory.cert_manager.is_some(),
        "clusterctl provider inventory read"
    );
    Ok(inventory)
}

/// cert-manager's version when clusterctl installed it (its CRDs carry clusterctl's version
/// annotation); `None` when it is absent or was installed another way.
async fn cert_manager(
    writer: &KubeWriter,
) -> Result<Option<CertManagerInstall>, ProviderInventoryError> {
    let crd = writer
        .cluster_scoped::<CustomResourceDefinition>()
        .get(CERT_MANAGER_CRD)
        .await
        .map_err(ProviderInventoryError::CertManager)?;
    Ok(crd.and_then(|crd| {
        crd.annotations()
            .get(CERT_MANAGER_VERSION_ANNOTATION)
            .filter(|v| !v.trim().is_empty())
            .map(|version| CertManagerInstall {
                namespace: CERT_MANAGER_NAMESPACE.into(),
                version: version.clone(),
            })
    }))
}
