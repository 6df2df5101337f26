//! The Cluster API providers a self-hosted workload cluster runs, delivered as packs.
//!
//! The management cluster's clusterctl inventory (`providers.clusterctl.cluster.x-k8s.io`)
//! says which providers, at which versions, wrote the cluster's objects; the controller
//! picks those a cluster of one cloud needs ([`select`]), names their packs
//! ([`ProviderKind::pack_name`]) and pins them in the revision. The agent installs them in
//! its own cluster before the move, in [`ProviderKind`] order, with clusterctl's variable
//! substitution ([`substitution`]), and writes clusterctl's inventory there
//! ([`inventory`]), so that `clusterctl` recognises them later. `docs/providers.md` has the
//! pack format and the rules.

pub mod inventory;
pub mod substitution;
pub mod webhooks;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::ClusterCloud;

/// What a provider is to clusterctl, in install order: cert-manager first (the others'
/// webhooks take their certificates from it), the infrastructure provider last.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum ProviderKind {
    /// cert-manager, which clusterctl installs beside the providers but keeps no inventory
    /// entry for.
    CertManager,
    CoreProvider,
    BootstrapProvider,
    ControlPlaneProvider,
    InfrastructureProvider,
}

impl ProviderKind {
    /// The kind of a clusterctl inventory `type`; `None` for the types Strata does not
    /// install (IPAM, runtime extension and add-on providers).
    pub fn of_inventory_type(value: &str) -> Option<ProviderKind> {
        match value {
            "CoreProvider" => Some(ProviderKind::CoreProvider),
            "BootstrapProvider" => Some(ProviderKind::BootstrapProvider),
            "ControlPlaneProvider" => Some(ProviderKind::ControlPlaneProvider),
            "InfrastructureProvider" => Some(ProviderKind::InfrastructureProvider),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ProviderKind::CertManager => "CertManager",
            ProviderKind::CoreProvider => "CoreProvider",
            ProviderKind::BootstrapProvider => "BootstrapProvider",
            ProviderKind::ControlPlaneProvider => "ControlPlaneProvider",
            ProviderKind::InfrastructureProvider => "InfrastructureProvider",
        }
    }

    /// clusterctl's name for one provider of this kind (its `cluster.x-k8s.io/provider`
    /// label and inventory object name): `cluster-api`, `bootstrap-kubeadm`,
    /// `control-plane-kubeadm`, `infrastructure-vsphere`.
    pub fn instance_name(&self, provider: &str) -> String {
        match self {
            ProviderKind::CertManager => "cert-manager".into(),
            ProviderKind::CoreProvider => provider.into(),
            ProviderKind::BootstrapProvider => format!("bootstrap-{provider}"),
            ProviderKind::ControlPlaneProvider => format!("control-plane-{provider}"),
            ProviderKind::InfrastructureProvider => format!("infrastructure-{provider}"),
        }
    }

    /// The pack that carries one provider's components: `cert-manager`, else
    /// `capi-provider-` and the instance name (`capi-provider-cluster-api`,
    /// `capi-provider-infrastructure-vsphere`).
    pub fn pack_name(&self, provider: &str) -> String {
        match self {
            ProviderKind::CertManager => "cert-manager".into(),
            _ => format!("capi-provider-{}", self.instance_name(provider)),
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pack version of a provider version: clusterctl's versions carry a `v` (`v1.10.4`),
/// pack versions do not.
pub fn pack_version(version: &str) -> String {
    version.trim_start_matches('v').to_string()
}

/// One provider the management cluster runs, from its clusterctl inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryEntry {
    /// `namespace/name` of the inventory object, for messages.
    pub object: String,
    /// Where its components live.
    pub namespace: String,
    pub kind: ProviderKind,
    pub provider_name: String,
    pub version: String,
}

/// An inventory object that cannot be used, or one of a type Strata leaves out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryEntryError {
    #[error("clusterctl inventory object {object}: field {field} is {found}; expected {expected}")]
    Field {
        object: String,
        field: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error(
        "clusterctl inventory object {object}: a {provider_type} is not installed in workload clusters (only CoreProvider, BootstrapProvider, ControlPlaneProvider and InfrastructureProvider are)"
    )]
    NotInstalled {
        object: String,
        provider_type: String,
    },
}

/// One inventory object (`clusterctl.cluster.x-k8s.io/v1alpha3` `Provider`) read.
pub fn inventory_entry(object: &Value) -> Result<InventoryEntry, InventoryEntryError> {
    let text = |path: &[&str]| {
        let mut at = object;
        for key in path {
            at = at.get(key)?;
        }
        at.as_str().map(str::to_string)
    };
    let namespace = text(&["metadata", "namespace"]).unwrap_or_default();
    let name = text(&["metadata", "name"]).unwrap_or_default();
    let id = format!("{namespace}/{name}");
    let bad_field = |field: &'static str, expected: &'static str| {
        let found = match object.get(field) {
            None | Some(Value::Null) => "missing".to_string(),
            Some(v) => crate::bounded_text::cut(&v.to_string(), 120),
        };
        InventoryEntryError::Field {
            object: id.clone(),
            field,
            found,
            expected,
        }
    };
    let nonempty = |field: &'static str, expected: &'static str| {
        text(&[field])
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| bad_field(field, expected))
    };
    let provider_type = nonempty("type", "a provider type such as CoreProvider")?;
    let kind = ProviderKind::of_inventory_type(&provider_type).ok_or_else(|| {
        InventoryEntryError::NotInstalled {
            object: id.clone(),
            provider_type: provider_type.clone(),
        }
    })?;
    let provider_name = nonempty("providerName", "the provider's name, such as kubeadm")?;
    let version = nonempty("version", "the provider's version, such as v1.10.4")?;
    if namespace.is_empty() {
        return Err(InventoryEntryError::Field {
            object: id,
            field: "metadata.namespace",
            found: "missing".into(),
            expected: "the provider's namespace",
        });
    }
    Ok(InventoryEntry {
        object: id,
        namespace,
        kind,
        provider_name,
        version,
    })
}

/// cert-manager as the management cluster runs it, when clusterctl installed it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertManagerInstall {
    pub namespace: String,
    pub version: String,
}

/// The annotation clusterctl puts on the cert-manager objects it installs, with their
/// version.
pub const CERT_MANAGER_VERSION_ANNOTATION: &str = "certmanager.clusterctl.cluster.x-k8s.io/version";
/// The namespace clusterctl installs cert-manager into.
pub const CERT_MANAGER_NAMESPACE: &str = "cert-manager";

/// One provider a workload cluster needs, named as a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedProvider {
    pub kind: ProviderKind,
    pub provider_name: String,
    pub version: String,
    pub namespace: String,
    pub pack: String,
    pub pack_version: String,
}

impl WantedProvider {
    fn of(entry: &InventoryEntry) -> WantedProvider {
        WantedProvider {
            kind: entry.kind,
            provider_name: entry.provider_name.clone(),
            version: entry.version.clone(),
            namespace: entry.namespace.clone(),
            pack: entry.kind.pack_name(&entry.provider_name),
            pack_version: pack_version(&entry.version),
        }
    }
}

/// Why the inventory does not give a cluster of a cloud what it needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error(
        "the management cluster's clusterctl inventory has no {kind}{for_cloud}; it lists: {listed}"
    )]
    Missing {
        kind: ProviderKind,
        for_cloud: String,
        listed: String,
    },
    #[error(
        "the management cluster's clusterctl inventory has more than one {kind} named {name}: {objects}"
    )]
    Ambiguous {
        kind: ProviderKind,
        name: String,
        objects: String,
    },
}

/// The providers a cluster of `cloud` runs once its objects move into it, in install order:
/// cert-manager (when clusterctl installed it in the management cluster), the core
/// provider, every bootstrap and control-plane provider (the cluster's objects may use any
/// of them), and the infrastructure provider named for the cloud. An empty inventory (no
/// clusterctl in the management cluster) selects nothing.
pub fn select(
    entries: &[InventoryEntry],
    cloud: ClusterCloud,
    cert_manager: Option<&CertManagerInstall>,
) -> Result<Vec<WantedProvider>, SelectionError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let listed = || {
        entries
            .iter()
            .map(|e| format!("{} {} {}", e.kind, e.provider_name, e.version))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut wanted: Vec<WantedProvider> = Vec::new();
    if let Some(cert_manager) = cert_manager {
        wanted.push(WantedProvider {
            kind: ProviderKind::CertManager,
            provider_name: "cert-manager".into(),
            version: cert_manager.version.clone(),
            namespace: cert_manager.namespace.clone(),
            pack: ProviderKind::CertManager.pack_name(""),
            pack_version: pack_version(&cert_manager.version),
        });
    }
    let cloud_name = cloud.as_str();
    for entry in entries {
        let needed = match entry.kind {
            ProviderKind::InfrastructureProvider => entry.provider_name == cloud_name,
            _ => true,
        };
        if !needed {
            continue;
        }
        let twins: Vec<&InventoryEntry> = entries
            .iter()
            .filter(|e| e.kind == entry.kind && e.provider_name == entry.provider_name)
            .collect();
        if twins.len() > 1 {
            return Err(SelectionError::Ambiguous {
                kind: entry.kind,
                name: entry.provider_name.clone(),
                objects: twins
                    .iter()
                    .map(|e| e.object.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        wanted.push(WantedProvider::of(entry));
    }
    for (kind, for_cloud) in [
        (ProviderKind::CoreProvider, String::new()),
        (ProviderKind::BootstrapProvider, String::new()),
        (ProviderKind::ControlPlaneProvider, String::new()),
        (
            ProviderKind::InfrastructureProvider,
            format!(" named {cloud_name} (the cluster's cloud)"),
        ),
    ] {
        if !wanted.iter().any(|w| w.kind == kind) {
            return Err(SelectionError::Missing {
                kind,
                for_cloud,
                listed: listed(),
            });
        }
    }
    wanted.sort_by(|a, b| (a.kind, &a.provider_name).cmp(&(b.kind, &b.provider_name)));
    Ok(wanted)
}
