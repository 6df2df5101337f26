//! The Cluster API kinds Strata builds, reads and moves, at the versions it writes them:
//! the upstream storage versions (core, kubeadm, vSphere and AWS `v1beta2`; Azure
//! `v1beta1`), as `e2e/tests/capi_build.rs` checks against the real CRDs. Code elsewhere
//! names a kind by its constant here, never by its group or version as text.

use kube::core::{ApiResource, GroupVersionKind};

/// One Cluster API kind at the version Strata writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapiKind {
    pub group: &'static str,
    pub version: &'static str,
    /// `group/version`, as an object's `apiVersion`.
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

impl CapiKind {
    /// The resource to build an `Api<DynamicObject>` of this kind with.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, self.version, self.kind),
            self.plural,
        )
    }

    /// Whether an object of `api_version` and `kind` is of this kind, at any version: a
    /// reference written at another version names the same object.
    pub fn is(&self, api_version: &str, kind: &str) -> bool {
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        kind == self.kind && group == self.group
    }
}

/// A kind of `$group` at `$version`, its `apiVersion` joined at compile time.
macro_rules! capi_kind {
    ($group:literal, $version:literal, $kind:literal, $plural:literal) => {
        CapiKind {
            group: $group,
            version: $version,
            api_version: concat!($group, "/", $version),
            kind: $kind,
            plural: $plural,
        }
    };
}

macro_rules! core_kind {
    ($kind:literal, $plural:literal) => {
        capi_kind!("cluster.x-k8s.io", "v1beta2", $kind, $plural)
    };
}

macro_rules! bootstrap_kind {
    ($kind:literal, $plural:literal) => {
        capi_kind!("bootstrap.cluster.x-k8s.io", "v1beta2", $kind, $plural)
    };
}

macro_rules! infrastructure_kind {
    ($version:literal, $kind:literal, $plural:literal) => {
        capi_kind!("infrastructure.cluster.x-k8s.io", $version, $kind, $plural)
    };
}

// Core.
pub const CLUSTER: CapiKind = core_kind!("Cluster", "clusters");
pub const CLUSTER_CLASS: CapiKind = core_kind!("ClusterClass", "clusterclasses");
pub const MACHINE_DEPLOYMENT: CapiKind = core_kind!("MachineDeployment", "machinedeployments");
pub const MACHINE_SET: CapiKind = core_kind!("MachineSet", "machinesets");
pub const MACHINE: CapiKind = core_kind!("Machine", "machines");
pub const MACHINE_HEALTH_CHECK: CapiKind = core_kind!("MachineHealthCheck", "machinehealthchecks");

// Kubeadm control plane and bootstrap.
pub const KUBEADM_CONTROL_PLANE: CapiKind = capi_kind!(
    "controlplane.cluster.x-k8s.io",
    "v1beta2",
    "KubeadmControlPlane",
    "kubeadmcontrolplanes"
);
pub const KUBEADM_CONFIG: CapiKind = bootstrap_kind!("KubeadmConfig", "kubeadmconfigs");
pub const KUBEADM_CONFIG_TEMPLATE: CapiKind =
    bootstrap_kind!("KubeadmConfigTemplate", "kubeadmconfigtemplates");

// vSphere (CAPV).
pub const VSPHERE_CLUSTER: CapiKind =
    infrastructure_kind!("v1beta2", "VSphereCluster", "vsphereclusters");
pub const VSPHERE_MACHINE_TEMPLATE: CapiKind = infrastructure_kind!(
    "v1beta2",
    "VSphereMachineTemplate",
    "vspheremachinetemplates"
);
/// Cluster-scoped.
pub const VSPHERE_CLUSTER_IDENTITY: CapiKind = infrastructure_kind!(
    "v1beta2",
    "VSphereClusterIdentity",
    "vsphereclusteridentities"
);

// AWS (CAPA).
pub const AWS_CLUSTER: CapiKind = infrastructure_kind!("v1beta2", "AWSCluster", "awsclusters");
pub const AWS_MACHINE_TEMPLATE: CapiKind =
    infrastructure_kind!("v1beta2", "AWSMachineTemplate", "awsmachinetemplates");
/// Cluster-scoped.
pub const AWS_CLUSTER_STATIC_IDENTITY: CapiKind = infrastructure_kind!(
    "v1beta2",
    "AWSClusterStaticIdentity",
    "awsclusterstaticidentities"
);

// Azure (CAPZ, still `v1beta1`).
pub const AZURE_CLUSTER: CapiKind =
    infrastructure_kind!("v1beta1", "AzureCluster", "azureclusters");
pub const AZURE_MACHINE_TEMPLATE: CapiKind =
    infrastructure_kind!("v1beta1", "AzureMachineTemplate", "azuremachinetemplates");
/// Namespaced, unlike the other clouds' identities.
pub const AZURE_CLUSTER_IDENTITY: CapiKind =
    infrastructure_kind!("v1beta1", "AzureClusterIdentity", "azureclusteridentities");

// The simulated cloud of `e2e/src/cloud_sim`.
pub const SIM_CLUSTER: CapiKind = infrastructure_kind!("v1beta2", "SimCluster", "simclusters");
pub const SIM_MACHINE_TEMPLATE: CapiKind =
    infrastructure_kind!("v1beta2", "SimMachineTemplate", "simmachinetemplates");

/// The core group, of `Cluster`, `ClusterClass` and the machines.
pub const CORE_GROUP: &str = CLUSTER.group;
pub const CONTROL_PLANE_GROUP: &str = KUBEADM_CONTROL_PLANE.group;
pub const BOOTSTRAP_GROUP: &str = KUBEADM_CONFIG.group;
pub const INFRASTRUCTURE_GROUP: &str = VSPHERE_CLUSTER.group;
pub const ADDONS_GROUP: &str = "addons.cluster.x-k8s.io";

/// The CAPI groups whose objects a move carries.
pub const CAPI_GROUPS: [&str; 5] = [
    CORE_GROUP,
    INFRASTRUCTURE_GROUP,
    BOOTSTRAP_GROUP,
    CONTROL_PLANE_GROUP,
    ADDONS_GROUP,
];

/// The identity kinds that are cluster-scoped (vSphere, AWS); Azure's lives in the objects
/// namespace.
pub const CLUSTER_SCOPED_IDENTITIES: [CapiKind; 2] =
    [VSPHERE_CLUSTER_IDENTITY, AWS_CLUSTER_STATIC_IDENTITY];

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [CapiKind; 20] = [
        CLUSTER,
        CLUSTER_CLASS,
        MACHINE_DEPLOYMENT,
        MACHINE_SET,
        MACHINE,
        MACHINE_HEALTH_CHECK,
        KUBEADM_CONTROL_PLANE,
        KUBEADM_CONFIG,
        KUBEADM_CONFIG_TEMPLATE,
        VSPHERE_CLUSTER,
        VSPHERE_MACHINE_TEMPLATE,
        VSPHERE_CLUSTER_IDENTITY,
        AWS_CLUSTER,
        AWS_MACHINE_TEMPLATE,
        AWS_CLUSTER_STATIC_IDENTITY,
        AZURE_CLUSTER,
        AZURE_MACHINE_TEMPLATE,
        AZURE_CLUSTER_IDENTITY,
        SIM_CLUSTER,
        SIM_MACHINE_TEMPLATE,
    ];

    #[test]
    fn every_kind_is_of_a_capi_group_with_its_api_version_and_plural() {
        for kind in ALL {
            assert!(CAPI_GROUPS.contains(&kind.group), "{kind:?}");
            assert_eq!(kind.api_version, format!("{}/{}", kind.group, kind.version));
            // The resource's plural is the one declared, not a guess from the kind.
            let resource = kind.api_resource();
            assert_eq!(resource.plural, kind.plural);
            assert_eq!(resource.api_version, kind.api_version);
            assert!(kind.plural.starts_with(&kind.kind.to_lowercase()[..4]));
        }
    }

    #[test]
    fn a_kind_is_recognised_at_any_version_of_its_group() {
        assert!(CLUSTER.is("cluster.x-k8s.io/v1beta1", "Cluster"));
        assert!(CLUSTER.is(CLUSTER.api_version, "Cluster"));
        assert!(!CLUSTER.is("infrastructure.cluster.x-k8s.io/v1beta2", "Cluster"));
        assert!(!CLUSTER.is(CLUSTER.api_version, "ClusterClass"));
        assert!(!CLUSTER.is("v1", "Cluster"));
    }
}
