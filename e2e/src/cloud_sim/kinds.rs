//! The kinds the simulator reads and writes, and the four infrastructure providers it
//! plays. Versions are the upstream storage versions (see `shared/capi-crds/README.md`):
//! CAPI core, kubeadm control plane and bootstrap, CAPV and CAPA are `v1beta2`, CAPZ is
//! `v1beta1`. References in v1beta2 objects carry only `apiGroup` and `kind`, so the
//! version of a referenced kind comes from this table, as CAPI takes it from the CRD.

use kube::discovery::ApiResource;

/// One namespaced custom resource kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

impl Kind {
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.into(),
            version: self.version.into(),
            api_version: self.api_version(),
            kind: self.kind.into(),
            plural: self.plural.into(),
        }
    }
}

const fn kind(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
) -> Kind {
    Kind {
        group,
        version,
        kind,
        plural,
    }
}

pub const CORE_GROUP: &str = "cluster.x-k8s.io";
pub const INFRA_GROUP: &str = "infrastructure.cluster.x-k8s.io";
pub const BOOTSTRAP_GROUP: &str = "bootstrap.cluster.x-k8s.io";
pub const CONTROL_PLANE_GROUP: &str = "controlplane.cluster.x-k8s.io";

pub const CLUSTER: Kind = kind(CORE_GROUP, "v1beta2", "Cluster", "clusters");
pub const MACHINE: Kind = kind(CORE_GROUP, "v1beta2", "Machine", "machines");
pub const MACHINE_SET: Kind = kind(CORE_GROUP, "v1beta2", "MachineSet", "machinesets");
pub const MACHINE_DEPLOYMENT: Kind = kind(
    CORE_GROUP,
    "v1beta2",
    "MachineDeployment",
    "machinedeployments",
);
pub const MACHINE_HEALTH_CHECK: Kind = kind(
    CORE_GROUP,
    "v1beta2",
    "MachineHealthCheck",
    "machinehealthchecks",
);
pub const KUBEADM_CONTROL_PLANE: Kind = kind(
    CONTROL_PLANE_GROUP,
    "v1beta2",
    "KubeadmControlPlane",
    "kubeadmcontrolplanes",
);
pub const KUBEADM_CONFIG: Kind = kind(
    BOOTSTRAP_GROUP,
    "v1beta2",
    "KubeadmConfig",
    "kubeadmconfigs",
);
pub const KUBEADM_CONFIG_TEMPLATE: Kind = kind(
    BOOTSTRAP_GROUP,
    "v1beta2",
    "KubeadmConfigTemplate",
    "kubeadmconfigtemplates",
);

/// How an infrastructure provider reports readiness: the v1beta2 contract
/// (`status.initialization.provisioned`, `metav1.Condition`s) or the v1beta1 contract
/// (`status.ready`, CAPI v1beta1 conditions with a severity). CAPA's API is named v1beta2
/// but still implements the v1beta1 contract, like CAPZ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    V1Beta1,
    V1Beta2,
}

/// An infrastructure provider the simulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    VSphere,
    Aws,
    Azure,
    Sim,
}

impl Provider {
    pub const ALL: [Provider; 4] = [
        Provider::VSphere,
        Provider::Aws,
        Provider::Azure,
        Provider::Sim,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Provider::VSphere => "vsphere",
            Provider::Aws => "aws",
            Provider::Azure => "azure",
            Provider::Sim => "sim",
        }
    }

    pub fn contract(self) -> Contract {
        match self {
            Provider::VSphere | Provider::Sim => Contract::V1Beta2,
            Provider::Aws | Provider::Azure => Contract::V1Beta1,
        }
    }

    /// The infrastructure cluster, machine and machine template kinds.
    fn kinds(self) -> [Kind; 3] {
        let v = match self {
            Provider::Azure => "v1beta1",
            _ => "v1beta2",
        };
        let g = INFRA_GROUP;
        match self {
            Provider::VSphere => [
                kind(g, v, "VSphereCluster", "vsphereclusters"),
                kind(g, v, "VSphereMachine", "vspheremachines"),
                kind(g, v, "VSphereMachineTemplate", "vspheremachinetemplates"),
            ],
            Provider::Aws => [
                kind(g, v, "AWSCluster", "awsclusters"),
                kind(g, v, "AWSMachine", "awsmachines"),
                kind(g, v, "AWSMachineTemplate", "awsmachinetemplates"),
            ],
            Provider::Azure => [
                kind(g, v, "AzureCluster", "azureclusters"),
                kind(g, v, "AzureMachine", "azuremachines"),
                kind(g, v, "AzureMachineTemplate", "azuremachinetemplates"),
            ],
            Provider::Sim => [
                kind(g, v, "SimCluster", "simclusters"),
                kind(g, v, "SimMachine", "simmachines"),
                kind(g, v, "SimMachineTemplate", "simmachinetemplates"),
            ],
        }
    }

    pub fn cluster_kind(self) -> Kind {
        self.kinds()[0]
    }

    pub fn machine_kind(self) -> Kind {
        self.kinds()[1]
    }

    pub fn template_kind(self) -> Kind {
        self.kinds()[2]
    }

    /// The provider whose infrastructure cluster, machine or machine template is `kind`.
    pub fn of_kind(kind: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|p| p.kinds().iter().any(|k| k.kind == kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_found_by_any_of_their_kinds() {
        assert_eq!(Provider::of_kind("AWSMachineTemplate"), Some(Provider::Aws));
        assert_eq!(Provider::of_kind("VSphereCluster"), Some(Provider::VSphere));
        assert_eq!(Provider::of_kind("SimMachine"), Some(Provider::Sim));
        assert_eq!(Provider::of_kind("DockerCluster"), None);
        assert_eq!(Provider::Azure.machine_kind().version, "v1beta1");
        assert_eq!(Provider::Aws.template_kind().plural, "awsmachinetemplates");
    }
}
